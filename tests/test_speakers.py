"""Per-speaker results (issue 14): who said each clip, accuracy per speaker, the worst five, in
metrics.json, in `seqkit evaluate` and in TensorBoard."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import tiny_recipe, write_wav

from seqkit.cli import cli
from seqkit.data import Example, speaker_accuracy, speaker_of
from seqkit.recipe import validate_dict
from seqkit.speech.sources.pattern import FilenamePattern
from seqkit.training import train


def test_speaker_of_reads_the_field_then_the_speech_commands_name():
    assert speaker_of(Example("a/b/3b4f8f24_nohash_0.wav", "yes", "test")) == "3b4f8f24"
    assert speaker_of(Example("x/3b4f8f24_nohash_0.wav", "yes", "test", speaker="ann")) == "ann"
    assert speaker_of(Example("x/take1.wav", "yes", "test")) is None
    noise = Example("<noise>", "_silence_", "train", duration=1.0, noise="pink", seed=3)
    assert speaker_of(noise) is None


def test_speaker_accuracy_golden():
    items = [Example(f"w/{s}_nohash_{i}.wav", "w", "test")
             for s, n in (("a", 4), ("b", 2), ("c", 3), ("d", 1), ("e", 1), ("f", 2)) for i in range(n)]  # fmt: skip
    correct = [1, 1, 1, 0,  0, 1,  1, 1, 1,  0,  1,  0, 0]  # fmt: skip
    out = speaker_accuracy(items, correct)
    assert out["speakers"] == 6
    assert out["per_speaker"]["a"] == {"accuracy": 0.75, "examples": 4}
    assert [w["speaker"] for w in out["worst_speakers"]] == ["d", "f", "b", "a", "c"]
    assert out["min"] == 0.0
    assert out["mean"] == pytest.approx((0.75 + 0.5 + 1 + 0 + 1 + 0) / 6)
    assert out["std"] == pytest.approx(np.std([0.75, 0.5, 1, 0, 1, 0]))
    assert speaker_accuracy([Example("x/take.wav", "w", "test")], [True]) == {}


def test_filename_pattern_speaker_group_names_the_speaker(tmp_path):
    for speaker in ("ann", "bob"):
        for word in ("yes", "no"):
            write_wav(tmp_path / f"{speaker}-{word}.wav")
    src = FilenamePattern(root=str(tmp_path), pattern=r"(?P<speaker>[a-z]+)-(?P<label>[a-z]+)\.wav",
                          test_speakers=["bob"])  # fmt: skip
    got = sorted((ex.label, ex.speaker, ex.split) for ex in src.examples())
    assert got == [("no", "ann", "train"), ("no", "bob", "test"),
                   ("yes", "ann", "train"), ("yes", "bob", "test")]  # fmt: skip


def test_metrics_and_evaluate_report_accuracy_per_speaker(tmp_path):
    run = train(validate_dict(tiny_recipe(tmp_path / "data", epochs=1)), run_dir=tmp_path / "run",
                verbose=0)  # fmt: skip
    metrics = json.loads((run / "metrics.json").read_text())
    test = metrics["test"]
    speakers = test["speakers"]
    wrong = {m["path"] for m in test["misclassified"]}
    by_speaker = {}
    for path in (run.parent / "data").rglob("*_nohash_*.wav"):
        if path.name.split("_nohash_")[0] in speakers["per_speaker"]:
            by_speaker.setdefault(path.name.split("_nohash_")[0], []).append(str(path) not in wrong)
    assert {s: m["examples"] for s, m in speakers["per_speaker"].items()} == {
        s: len(v) for s, v in by_speaker.items()
    }
    for s, m in speakers["per_speaker"].items():
        assert m["accuracy"] == pytest.approx(np.mean(by_speaker[s]))
    assert sum(m["examples"] for m in speakers["per_speaker"].values()) == test["examples"]
    assert len(speakers["worst_speakers"]) == min(5, speakers["speakers"])
    result = CliRunner().invoke(cli, ["evaluate", str(run)])
    assert result.exit_code == 0, result.output
    assert f"per speaker ({speakers['speakers']} speakers): accuracy mean" in result.stdout
    worst = speakers["worst_speakers"][0]
    assert f"worst speakers (accuracy, clips): {worst['speaker']} {worst['accuracy']:.4f}" in result.stdout
    events = list((run / "logs" / "validation_media").glob("events.out.tfevents.*"))
    assert events, "no TensorBoard media events"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(events[0].parent), size_guidance={"histograms": 0, "tensors": 0})
    acc.Reload()
    tags = acc.Tags()
    assert "speaker_accuracy" in tags["tensors"] + tags.get("histograms", [])
