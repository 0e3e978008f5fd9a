"""Run folders and exports written by seqkit 0.1.0 (main at 6ca25ec, before the package was
reorganised) still load and give the same numbers.

``tests/data/runs_0_1_0`` was written by that commit (TensorFlow backend, Keras 3.15.1):

* ``kws_run``: ``seqkit train recipes/quickstart.yaml --set model.layers.0.units=8
  --set train.epochs=2`` (its TensorBoard logs and checkpoint removed to keep it small);
* ``music_run``: ``seqkit train recipes/music_jsb_chung2014.yaml --set model.layers.0.units=8
  --set train.epochs=1`` (a polyphonic model: its loss and metrics are seqkit's Keras objects);
* ``exports``: ``seqkit export kws_run --format tflite [--streaming]``.

The expected values below were printed by that commit for the same inputs.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import soundfile as sf
from click.testing import CliRunner

from seqkit.cli import cli
from seqkit.runs import Run

OLD = Path(__file__).parent / "data" / "runs_0_1_0"
# `seqkit predict kws_run chirp.wav --json` at 6ca25ec: the top 3 labels and probabilities.
KWS_TOP3 = [("ai", 0.345302), ("noise", 0.316608), ("u", 0.247257)]
# Run('music_run').model.predict(roll)[0, -1, 35:45] at 6ca25ec, roll: key 40 held for 8 steps.
MUSIC_PROBS = [0.415828, 0.416339, 0.474835, 0.385453, 0.448242,
               0.405361, 0.409294, 0.420531, 0.389598, 0.411782]  # fmt: skip


@pytest.fixture
def old(tmp_path):
    """A copy of the stored runs (commands may write into a run folder) and a chirp clip."""
    shutil.copytree(OLD, tmp_path / "old")
    t = np.arange(16000) / 16000
    clip = (0.3 * np.sin(2 * np.pi * (300 + 400 * t) * t)).astype(np.float32)
    sf.write(tmp_path / "chirp.wav", clip, 16000)
    return tmp_path / "old", tmp_path / "chirp.wav"


def predict_top3(target, clip):
    result = CliRunner().invoke(cli, ["predict", str(target), str(clip), "--json"])
    assert result.exit_code == 0, result.output
    top = json.loads(result.stdout)["predictions"][0]["top"]
    return [(t["label"], t["probability"]) for t in top]


def test_old_kws_run_predicts_as_before(old):
    root, clip = old
    got = predict_top3(root / "kws_run", clip)
    assert [label for label, _ in got] == [label for label, _ in KWS_TOP3]
    np.testing.assert_allclose([p for _, p in got], [p for _, p in KWS_TOP3], atol=2e-6)


@pytest.mark.parametrize("name", ["kws.tflite", "kws_stream.tflite"])
def test_old_exports_predict_as_before(old, name):
    root, clip = old
    got = predict_top3(root / "exports" / name, clip)
    assert [label for label, _ in got] == [label for label, _ in KWS_TOP3]
    np.testing.assert_allclose([p for _, p in got], [p for _, p in KWS_TOP3], atol=2e-6)


def test_old_streaming_export_streams(old):
    root, clip = old
    result = CliRunner().invoke(cli, ["stream", str(root / "exports" / "kws_stream.tflite"),
                                      str(clip)])  # fmt: skip
    assert result.exit_code == 0, result.output


def test_old_music_run_loads_with_its_loss_and_metrics(old):
    root, _ = old
    run = Run(root / "music_run")
    assert run.recipe.task.type == "polyphonic"
    roll = np.zeros((1, 8, 88), np.float32)
    roll[0, :, 40] = 1
    probs = np.asarray(run.model.predict(roll, verbose=0))[0, -1, 35:45]
    np.testing.assert_allclose(probs, MUSIC_PROBS, atol=2e-6)
    assert run.metrics["test"]["nll_per_step"] == pytest.approx(38.2083, abs=1e-4)


def test_old_music_run_generates_as_before(old, tmp_path):
    root, _ = old
    out = tmp_path / "gen"
    args = ["generate", str(root / "music_run"), "--out", str(out), "--steps", "16", "--num",
            "1", "--seed", "3"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    midi = pretty_midi.PrettyMIDI(str(out / "sample-1.mid"))
    notes = sorted((n.start, n.pitch) for inst in midi.instruments for n in inst.notes)
    assert len(notes) == 310
    assert [p for s, p in notes if s == 0.0][:10] == [21, 22, 25, 26, 28, 30, 31, 33, 37, 40]
