"""Library code reports progress (seqkit.progress) and never writes to stdout or stderr itself;
how progress looks on the command line: tests/test_cli.py."""

import keras  # noqa: F401  (TensorFlow's start-up lines before any output is captured)
from conftest import tiny_recipe

from seqkit import progress
from seqkit.recipe import validate_dict
from seqkit.training import train


class Recorder(progress.Reporter):
    def __init__(self):
        self.counts, self.epochs = [], []

    def counter(self, label, unit="it"):
        return lambda done, total: self.counts.append((label, done, total))

    def epoch_end(self, end):
        self.epochs.append(end)


def test_training_reports_to_the_reporter_and_prints_nothing(tmp_path, capfd):
    capfd.readouterr()
    recipe = validate_dict(tiny_recipe(tmp_path / "data", epochs=2))
    train(recipe, run_dir=tmp_path / "quiet", verbose=0)  # the default reporter
    assert capfd.readouterr() == ("", "")
    seen = Recorder()
    with progress.using(seen):
        train(recipe, run_dir=tmp_path / "run", verbose=1)
    assert capfd.readouterr() == ("", "")
    assert [(e.epoch, e.epochs, e.final) for e in seen.epochs] == [(1, 2, False), (2, 2, True)]
    assert {"loss", "accuracy", "learning_rate"} <= set(seen.epochs[0].logs)
    assert seen.counts and seen.counts[-1][1] == seen.counts[-1][2]  # features, to the end
    assert isinstance(progress.current(), progress.Reporter) and progress.current() is not seen


def test_default_reporter_logs_epochs_and_draws_nothing(caplog, capfd):
    end = progress.EpochEnd(3, 5, {"loss": 0.5}, 1.25, 7)
    with caplog.at_level("INFO", logger="seqkit.progress"):
        assert progress.counter("features") is None
        progress.epoch_end(end)
    assert [r.getMessage() for r in caplog.records] == ["epoch 3/5  loss 0.5  (1.2 s, 7 steps)"]
    assert capfd.readouterr() == ("", "")
