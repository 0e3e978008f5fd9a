"""The polyphonic task's NADE output (``output: nade``, seqkit.music.nade): a proper
distribution over the chords of a step, its NLL against a key-by-key NumPy computation,
seeded sampling, and a tiny run through ``seqkit train`` / ``seqkit generate`` / a reload in
a fresh process."""

from __future__ import annotations

import itertools
import json
import pickle
import subprocess
import sys

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from seqkit.cli import cli
from seqkit.errors import ParameterError
from seqkit.music.metrics import step_nll
from seqkit.music.nade import (
    LAYER_NAME,
    NadeKeys,
    nade_conditionals,
    nade_weights,
    sample_nade,
    state_model,
)
from seqkit.music.task import Polyphonic
from seqkit.runs import Run

K, G, H = 6, 5, 7


def _random_nade(seed=0):
    rng = np.random.default_rng(seed)
    states = keras.Input((None, G))
    roll = keras.Input((None, K))
    layer = NadeKeys(K, H, name=LAYER_NAME)
    model = keras.Model([states, roll], layer([states, roll]))
    for w in layer.weights:
        w.assign(rng.normal(0.0, 1.5, tuple(w.shape)).astype("float32"))
    return model, layer, rng


def test_probabilities_of_all_chords_sum_to_one():
    model, layer, rng = _random_nade()
    chords = np.array(list(itertools.product([0, 1], repeat=K)), np.float32)  # 2^K = 64
    n = len(chords)
    states = rng.normal(size=(1, 3, G)).astype("float32")
    for t in range(3):  # step 0 is predicted from nothing, steps 1 and 2 from the states
        roll = np.zeros((n, 3, K), np.float32)
        roll[:, t] = chords
        p = model.predict([np.repeat(states, n, 0), roll], verbose=0)[:, t].astype(np.float64)
        prob = np.prod(np.where(chords > 0, p, 1.0 - p), axis=1)
        assert prob.sum() == pytest.approx(1.0, abs=1e-5)
        assert prob.min() > 0 and len(set(np.round(prob, 6))) > 10  # not uniform


def test_layer_equals_a_key_by_key_loop_in_float64():
    model, layer, rng = _random_nade(1)
    states = rng.normal(size=(2, 9, G)).astype("float32")
    roll = (rng.random((2, 9, K)) < 0.4).astype("float32")
    p = model.predict([states, roll], verbose=0).astype(np.float64)
    weights = nade_weights(layer)
    for b in range(2):
        ref = nade_conditionals(weights, states[b], roll[b])
        np.testing.assert_allclose(p[b], ref, atol=2e-6)
        # and the step's NLL is the sum of the keys' cross-entropies of those conditionals
        direct = -np.log(np.prod(np.where(roll[b] > 0, ref, 1 - ref), axis=1))
        np.testing.assert_allclose(step_nll(ref, roll[b]), direct, rtol=1e-9)


def test_step_t_does_not_see_step_t_or_later_states():
    model, _, rng = _random_nade(2)
    states = rng.normal(size=(1, 6, G)).astype("float32")
    roll = (rng.random((1, 6, K)) < 0.5).astype("float32")
    base = model.predict([states, roll], verbose=0)
    changed = states.copy()
    changed[:, 3:] += 5.0  # states of steps 3.. move: steps 0..3 keep their probabilities
    other = model.predict([changed, roll], verbose=0)
    np.testing.assert_allclose(base[:, :4], other[:, :4], atol=1e-6)
    assert np.abs(base[:, 4:] - other[:, 4:]).max() > 1e-3


def test_sampler_same_seed_same_keys_and_follows_the_distribution():
    _, layer, rng = _random_nade(3)
    weights = nade_weights(layer)
    state = np.repeat(rng.normal(size=(1, G)), 20000, axis=0)
    a = sample_nade(weights, state, np.random.default_rng(7))
    b = sample_nade(weights, state, np.random.default_rng(7))
    c = sample_nade(weights, state, np.random.default_rng(8))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    # the sampled chords' frequencies match the NADE's probabilities (prev state = `state`)
    chords = np.array(list(itertools.product([0, 1], repeat=K)), np.float64)
    states2 = np.vstack([state[:1], np.zeros((1, G))])
    probs = []
    for chord in chords:
        p = nade_conditionals(weights, states2, np.vstack([np.zeros(K), chord]))[1]
        probs.append(np.prod(np.where(chord > 0, p, 1 - p)))
    codes = (a.astype(int) * (2 ** np.arange(K - 1, -1, -1))).sum(axis=1)
    freq = np.bincount(codes, minlength=2**K) / len(a)
    assert np.abs(freq - np.array(probs)).max() < 0.015


def test_parameters_are_checked():
    with pytest.raises(ParameterError, match="`output` must be one of independent, nade"):
        Polyphonic(output="made")
    with pytest.raises(ParameterError, match="remove `components`"):
        Polyphonic(output="nade", components=8)
    with pytest.raises(ParameterError, match="nade_units"):
        Polyphonic(output="nade", nade_units=0)


# -- a tiny run end to end -----------------------------------------------------------------------


def _chorale(rng, length):
    """Triads on a random walk of roots (MIDI notes per step, the B-L pickle layout)."""
    steps, root = [], 60
    while len(steps) < length:
        for _ in range(int(rng.integers(1, 4))):
            steps.append([root - 12, root, root + 4, root + 7])
        root = int(np.clip(root + rng.choice([-5, -2, 2, 5]), 50, 70))
    return steps[:length]


def write_pickle(path, counts=(10, 4, 4), seed=0, lengths=(12, 30)):
    rng = np.random.default_rng(seed)
    data = {
        split: [_chorale(rng, int(rng.integers(*lengths))) for _ in range(n)]
        for split, n in zip(("train", "valid", "test"), counts)
    }
    path.write_bytes(pickle.dumps(data, protocol=2))
    return data


RECIPE = """name: nade_tiny
seed: 3
data:
  source: {{type: pianoroll_pickle, path: "{path}"}}
model:
  layers:
    - {{type: gru, units: 12}}
task: {{type: polyphonic, output: nade, nade_units: 16, sample_every: 1, sample_steps: 6}}
train:
  epochs: 2
  batch_size: 4
  optimizer: {{type: rmsprop, learning_rate: 0.01, clipnorm: 1.0}}
"""


@pytest.fixture(scope="module")
def nade_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nade")
    data = write_pickle(tmp / "tiny.pickle")
    (tmp / "nade.yaml").write_text(RECIPE.format(path=tmp / "tiny.pickle"))
    res = CliRunner().invoke(cli, ["train", str(tmp / "nade.yaml"), "--run-dir", str(tmp / "run")])
    assert res.exit_code == 0, res.output
    return tmp, tmp / "run", data


def _roll(steps):
    roll = np.zeros((len(steps), 88), np.float32)
    for t, notes in enumerate(steps):
        roll[t, [n - 21 for n in notes]] = 1.0
    return roll


def test_run_nll_equals_a_direct_computation(nade_run):
    _, run, data = nade_run
    metrics = json.loads((run / "metrics.json").read_text())
    model = Run(run).model
    states = state_model(model)
    weights = nade_weights(model.get_layer(LAYER_NAME))
    total, steps = 0.0, 0
    for seq in data["test"]:  # one sequence at a time, no padding: key by key in float64
        roll = _roll(seq)
        s = np.asarray(states.predict(roll[None], verbose=0)[0], np.float64)
        p = np.clip(nade_conditionals(weights, s, roll), 1e-7, 1 - 1e-7)
        total -= float(np.log(np.where(roll > 0, p, 1 - p)).sum())
        steps += len(roll)
    test = metrics["test"]
    assert test["steps"] == steps and test["output"] == "nade"
    assert test["nll_per_step"] == pytest.approx(total / steps, rel=1e-5)
    assert 0 < test["nll_per_step"] < 88 * np.log(2)  # trained: better than coin flips
    history = (run / "history.csv").read_text().splitlines()
    cols = history[0].split(",")
    val = float(history[metrics["best_epoch"]].split(",")[cols.index("val_nll_per_step")])
    assert val == pytest.approx(metrics["validation"]["nll_per_step"], rel=1e-4)
    info = json.loads((run / "data.json").read_text())
    assert info["output"] == "nade" and info["nade_units"] == 16


def test_reload_in_a_fresh_process_gives_the_same_nll(nade_run):
    _, run, data = nade_run
    roll = _roll(data["test"][0])
    np.save(run.parent / "roll.npy", roll[None])
    code = (
        "import numpy as np; from seqkit.runs import load_model; "
        "from seqkit.music.metrics import step_nll; "
        f"m = load_model({str(run / 'model.keras')!r}); "
        f"r = np.load({str(run.parent / 'roll.npy')!r}); "
        "print(repr(float(step_nll(m.predict(r, verbose=0)[0], r[0]).sum())))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    model = Run(run).model
    here = float(step_nll(model.predict(roll[None], verbose=0)[0], roll).sum())
    assert float(out.stdout.strip().splitlines()[-1]) == pytest.approx(here, rel=1e-6)


def test_sample_is_seeded_and_generate_writes_midi_wav_png(nade_run, tmp_path):
    _, run, _ = nade_run
    r = Run(run)
    task, info = r.task, r.data_info
    a = task.sample(r.model, info, 10, num=2, seed=4)
    b = task.sample(r.model, info, 10, num=2, seed=4)
    c = task.sample(r.model, info, 10, num=2, seed=5)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    assert a[0].shape == (10, 88) and a[0].any()
    res = CliRunner().invoke(
        cli, ["generate", str(run), "--out", str(tmp_path / "g"), "--steps", "8", "--num", "2",
              "--seed", "4"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    names = {p.name for p in (tmp_path / "g").iterdir()}
    assert {f"sample-{i}{e}" for i in (1, 2) for e in (".mid", ".wav", ".png")} <= names
    assert (tmp_path / "g" / "sample-1.png").read_bytes()[:4] == b"\x89PNG"


def test_tensorboard_gets_samples(nade_run):
    import tensorflow as tf

    _, run, _ = nade_run
    tags = set()
    for f in (run / "logs" / "samples").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(f)):
            tags |= {(v.tag, event.step) for v in event.summary.value}
    assert {("sample", 1), ("sample", 2), ("sample_piano_roll", 2)} <= tags


def test_export_is_refused_with_what_to_do_and_evaluate_works(nade_run):
    _, run, _ = nade_run
    res = CliRunner().invoke(cli, ["export", str(run), "--format", "keras"])
    assert res.exit_code == 1, res.output
    assert "NADE output" in res.output and "seqkit generate RUN" in res.output
    assert "Traceback" not in res.output and not (run / "export").exists()
    res = CliRunner().invoke(cli, ["evaluate", str(run), "--split", "test"])
    assert res.exit_code == 0, res.output
    metrics = json.loads((run / "metrics.json").read_text())
    assert f"{metrics['test']['nll_per_step']:.4f}" in res.output


def test_memory_estimate_counts_the_nade_and_refuses_one_no_machine_holds(nade_run):
    """seqkit.resources: the NADE's weights in the estimate are the built layer's parameter
    count (x 3: weights, gradients and RMSprop's slot), and a NADE too large for the machine is
    refused by ``task.nade_units`` before anything is built."""
    from seqkit.errors import RecipeError
    from seqkit.recipe import load_recipe
    from seqkit.resources import check, estimate

    tmp, run, _ = nade_run
    recipe = load_recipe(tmp / "nade.yaml")
    (part,) = [p for p in estimate(recipe) if p.path == "task.nade_units"]
    layer = Run(run).model.get_layer(LAYER_NAME)
    assert layer.count_params() == 12 * (88 + 16) + 88 + 16 + 2 * 88 * 16
    assert part.bytes == layer.count_params() * 4 * 3 and part.value == 16
    big = tmp / "big.yaml"
    big.write_text(
        (tmp / "nade.yaml").read_text().replace("nade_units: 16", "nade_units: 1000000000")
    )
    with pytest.raises(RecipeError) as err:
        check(load_recipe(big), memory=16 * 2**30)
    assert err.value.problems[0] == (
        "task.nade_units",
        "1000000000 NADE units need about 2.06 TiB for weights and optimizer state (1.89e+11 "
        "parameters); this machine has 16 GiB of memory.",
    )
