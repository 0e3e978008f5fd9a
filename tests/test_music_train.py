"""End to end: train tiny polyphonic and melody models on data made here, check the metrics
against an independent computation, TensorBoard samples, a fresh-process reload, and
`seqkit generate` (same seed, same files; --out safety; primers)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pretty_midi
import pytest
from click.testing import CliRunner

from seqkit.cli import cli
from seqkit.errors import RunError
from seqkit.music.generate import generate
from seqkit.music.metrics import mixture_step_nll
from seqkit.music.rolls import (
    Note,
    events_to_notes,
    melody_events,
    midi_notes,
    notes_to_roll,
    roll_to_notes,
)
from seqkit.music.sources import Piece, write_npz
from seqkit.recipe import validate_dict
from seqkit.runs import Run
from seqkit.training import train


def _chorale(rng, length):
    """A little progression: triads on a random walk of roots, held 1-3 steps."""
    notes, t, root = [], 0, 60
    while t < length:
        d = int(rng.integers(1, 4))
        for iv in (0, 4, 7):
            notes.append(Note(root + iv, t, min(t + d, length)))
        notes.append(Note(root - 12, t, min(t + d, length)))
        root = int(np.clip(root + rng.choice([-5, -2, 2, 5]), 50, 70))
        t += d
    return notes_to_roll(notes, length=length)[0]


@pytest.fixture(scope="module")
def poly_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("poly")
    rng = np.random.default_rng(0)
    pieces = [
        Piece(f"p{i}", split, _chorale(rng, int(rng.integers(12, 30))))
        for i, split in enumerate(["train"] * 8 + ["validation"] * 3 + ["test"] * 3)
    ]
    write_npz(tmp / "rolls.npz", pieces, {"steps_per_quarter": 1})
    recipe = validate_dict(
        {
            "name": "poly",
            "seed": 1,
            "data": {"source": {"type": "pianoroll_npz", "path": str(tmp / "rolls.npz")}},
            "model": {"layers": [{"type": "gru", "units": 8}]},
            "task": {"type": "polyphonic", "sample_every": 1, "sample_steps": 8, "transpose": 2},
            "train": {
                "epochs": 2,
                "batch_size": 4,
                "optimizer": {"type": "rmsprop", "learning_rate": 0.01, "clipnorm": 1.0},
            },
        }  # fmt: skip
    )
    run = train(recipe, run_dir=tmp / "run", verbose=0)
    return tmp, run, pieces


def test_metrics_match_an_independent_computation(poly_run):
    tmp, run, pieces = poly_run
    metrics = json.loads((run / "metrics.json").read_text())
    model = Run(run).model
    # one sequence at a time, no padding, no batching: the definition computed by hand
    nll, steps, tp, fp, fn = 0.0, 0, 0, 0, 0
    for p in pieces:
        if p.split != "test":
            continue
        y = p.roll.astype(np.float32)
        x = np.vstack([np.zeros((1, 88), np.float32), y[:-1]])[None]
        prob = np.clip(model.predict(x, verbose=0)[0].astype(np.float64), 1e-7, 1 - 1e-7)
        nll -= float((y * np.log(prob) + (1 - y) * np.log(1 - prob)).sum())
        steps += len(y)
        on = prob >= 0.5
        tp += int((on & (y > 0)).sum())
        fp += int((on & (y == 0)).sum())
        fn += int((~on & (y > 0)).sum())
    test = metrics["test"]
    assert test["steps"] == steps == sum(len(p) for p in pieces if p.split == "test")
    assert test["nll_per_step"] == pytest.approx(nll / steps, rel=1e-5)
    assert test["frame_accuracy"] == pytest.approx(tp / (tp + fp + fn) if tp + fp + fn else 1.0)
    # the in-graph validation metric that picked the best epoch is the same number
    history = (run / "history.csv").read_text().splitlines()
    cols = history[0].split(",")
    best = history[metrics["best_epoch"]].split(",")
    val = float(best[cols.index("val_nll_per_step")])
    assert val == pytest.approx(metrics["validation"]["nll_per_step"], rel=1e-4)
    assert metrics["monitor"] == "val_nll_per_step"
    info = json.loads((run / "data.json").read_text())
    assert info["keys"] == 88 and info["time_step"] == {"steps_per_quarter": 1}


def test_tensorboard_gets_audio_and_piano_roll_samples(poly_run):
    import tensorflow as tf

    _, run, _ = poly_run
    files = list((run / "logs" / "samples").glob("events.out.tfevents.*"))
    assert files
    tags = {}
    for f in files:
        for event in tf.compat.v1.train.summary_iterator(str(f)):
            for v in event.summary.value:
                tags.setdefault((v.tag, v.metadata.plugin_data.plugin_name), set()).add(event.step)
    assert tags[("sample", "audio")] == {1, 2}  # sample_every 1, 2 epochs
    assert tags[("sample_piano_roll", "images")] == {1, 2}


def test_model_reloads_in_a_fresh_process(poly_run):
    _, run, _ = poly_run
    code = (
        "import sys, numpy as np; from seqkit.runs import load_model; "
        f"m = load_model({str(run / 'model.keras')!r}); "
        "print(float(m.predict(np.ones((1, 3, 88), 'float32'), verbose=0).sum()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    model = Run(run).model
    here = float(model.predict(np.ones((1, 3, 88), "float32"), verbose=0).sum())
    assert float(out.stdout.strip().splitlines()[-1]) == pytest.approx(here, rel=1e-6)


def test_generate_same_seed_same_files(poly_run, tmp_path):
    _, run, _ = poly_run
    a = generate(run, tmp_path / "a", steps=12, num=2, seed=5)
    generate(run, tmp_path / "b", steps=12, num=2, seed=5)
    c = generate(run, tmp_path / "c", steps=12, num=2, seed=6)
    names = [f"sample-{i}{ext}" for i in (1, 2) for ext in (".mid", ".wav", ".png")]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(names + ["generate.json"])
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / "sample-1.mid").read_bytes() != (
        tmp_path / "c" / "sample-1.mid"
    ).read_bytes()
    assert a["renderer"] in ("additive", "fluidsynth") and c["seed"] == 6
    pm = pretty_midi.PrettyMIDI(str(tmp_path / "a" / "sample-1.mid"))
    assert pm.get_end_time() <= 12 * 0.5 + 1e-6  # 12 quarter-note steps at 120 bpm


def test_generate_out_safety(poly_run, tmp_path):
    _, run, _ = poly_run
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(RunError, match="exists and is not empty; pass --overwrite"):
        generate(run, out, steps=4, num=1)
    generate(run, out, steps=4, num=1, overwrite=True)
    assert (out / "mine.txt").read_text() == "keep me"
    assert {p.name for p in out.iterdir()} == {
        "mine.txt", "generate.json", "sample-1.mid", "sample-1.wav", "sample-1.png"
    }  # fmt: skip
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunError, match="not a folder"):
        generate(run, tmp_path / "file", steps=4, num=1)


def test_generate_cli_with_primer(poly_run, tmp_path):
    _, run, _ = poly_run
    primer = pretty_midi.PrettyMIDI(initial_tempo=120)
    inst = pretty_midi.Instrument(program=0)
    for pitch, s, e in [(60, 0, 1.0), (64, 0, 1.0), (67, 1.0, 1.5)]:  # 2 + 1 quarter steps
        inst.notes.append(pretty_midi.Note(velocity=80, pitch=pitch, start=s, end=e))
    primer.instruments.append(inst)
    primer.write(str(tmp_path / "primer.mid"))
    res = CliRunner().invoke(
        cli,
        ["generate", str(run), "--out", str(tmp_path / "g"), "--steps", "5", "--num", "1",
         "--primer", str(tmp_path / "primer.mid"), "--seed", "3"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert str(tmp_path / "g" / "sample-1.mid") in res.output
    notes, _ = midi_notes(pretty_midi.PrettyMIDI(str(tmp_path / "g" / "sample-1.mid")), 1)
    roll = notes_to_roll(notes, length=8)[0]
    assert roll.shape[0] == 8  # 3 primer steps + 5 sampled
    assert set(roll_to_notes(roll[:3])) >= {Note(60, 0, 2), Note(64, 0, 2)}
    assert roll[2, 67 - 21]
    report = json.loads((tmp_path / "g" / "generate.json").read_text())
    assert report["primer_steps"] == 3 and report["steps"] == 5


def test_generate_refuses_a_non_music_run(tmp_path):
    res = CliRunner().invoke(cli, ["generate", str(tmp_path), "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and "not a seqkit run folder" in res.output


def test_melody_task_trains_and_generates(tmp_path):
    root = tmp_path / "midi"
    rng = np.random.default_rng(2)
    for split, n in (("train", 6), ("valid", 2)):
        (root / split).mkdir(parents=True)
        for i in range(n):
            pm = pretty_midi.PrettyMIDI(initial_tempo=120)
            inst = pretty_midi.Instrument(program=0)
            t, pitch = 0.0, 60
            for _ in range(12):
                d = float(rng.choice([0.25, 0.5]))
                inst.notes.append(pretty_midi.Note(velocity=80, pitch=pitch, start=t, end=t + d))
                pitch = int(np.clip(pitch + rng.choice([-2, -1, 1, 2]), 55, 79))
                t += d + float(rng.choice([0.0, 0.0, 0.125]))
            inst.notes.append(pretty_midi.Note(velocity=80, pitch=40, start=0, end=t))  # bass
            pm.instruments.append(inst)
            pm.write(str(root / split / f"m{i}.mid"))
    recipe = validate_dict(
        {
            "name": "mel",
            "data": {"source": {"type": "midi_folder", "root": str(root), "steps_per_quarter": 4}},
            "model": {"layers": [{"type": "gru", "units": 8}]},
            "task": {
                "type": "melody",
                "sample_every": 0,
                "transpose": 3,
                "chunk_length": 16,
                "chunk_warmup": 4,
            },
            "train": {"epochs": 1, "batch_size": 4},
        }  # fmt: skip
    )
    run = train(recipe, run_dir=tmp_path / "run", verbose=0)
    metrics = json.loads((run / "metrics.json").read_text())
    val = metrics["validation"]
    assert val["classes"] == 2 + 84 - 48 + 1
    assert 0 < val["nll_per_step"] < np.log(val["classes"]) + 1
    assert 0 <= val["accuracy"] <= 1
    report = generate(run, tmp_path / "g", steps=16, num=2, seed=1)
    for i in (1, 2):
        pm = pretty_midi.PrettyMIDI(str(tmp_path / "g" / f"sample-{i}.mid"))
        notes = sorted(pm.instruments[0].notes, key=lambda n: n.start)
        assert all(a.end <= b.start + 1e-6 for a, b in zip(notes, notes[1:]))  # one at a time
        assert all(48 <= n.pitch <= 84 for n in notes)
    assert report["task"] == "melody"


def test_melody_events_from_top_line_of_mixed_parts():
    roll, onsets, _ = notes_to_roll([Note(72, 0, 4), Note(60, 0, 8)], length=8)
    events, _ = melody_events(roll, onsets, 48, 84)
    # the top line is C5 for 4 steps, then C4 (still sounding, but now the highest)
    assert events_to_notes(events, 48) == [Note(72, 0, 4), Note(60, 4, 8)]


def test_mixture_head_trains_evaluates_and_samples(poly_run, tmp_path):
    tmp, _, pieces = poly_run
    recipe = validate_dict(
        {
            "name": "mix",
            "data": {"source": {"type": "pianoroll_npz", "path": str(tmp / "rolls.npz")}},
            "model": {"layers": [{"type": "gru", "units": 8}]},
            "task": {"type": "polyphonic", "components": 3, "sample_every": 0},
            "train": {"epochs": 1, "batch_size": 4},
        }
    )
    run = train(recipe, run_dir=tmp_path / "run", verbose=0)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["params"] == 3 * (88 * 8 + 8 * 8 + 8) + 8 * 3 * 89 + 3 * 89
    model = Run(run).model
    test = [p for p in pieces if p.split == "test"]
    nll = steps = 0
    for p in test:
        y = p.roll.astype(np.float32)
        x = np.vstack([np.zeros((1, 88), np.float32), y[:-1]])[None]
        nll += mixture_step_nll(model.predict(x, verbose=0)[0], y, 3).sum()
        steps += len(y)
    assert metrics["test"]["nll_per_step"] == pytest.approx(nll / steps, rel=1e-5)
    a = generate(run, tmp_path / "a", steps=6, num=1, seed=2)
    generate(run, tmp_path / "b", steps=6, num=1, seed=2)
    assert (tmp_path / "a" / "sample-1.mid").read_bytes() == (
        tmp_path / "b" / "sample-1.mid"
    ).read_bytes()
    assert a["task"] == "polyphonic"
