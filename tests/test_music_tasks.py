"""The polyphonic and melody tasks: nll_per_step and frame accuracy (golden numbers), the Keras
loss and metrics against the numpy definitions, batches and masks, melody events, recipes."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from seqkit.build import check_recipe
from seqkit.errors import ParameterError, RecipeError
from seqkit.music.batches import SequenceBatches
from seqkit.music.callbacks import WeightNoise
from seqkit.music.losses import FrameAccuracy, NLLPerStep, StepNLLLoss
from seqkit.music.melody import Melody
from seqkit.music.metrics import (
    event_nll,
    frame_accuracy,
    frame_counts,
    mixture_marginals,
    mixture_step_nll,
    nll_per_step,
    step_nll,
)
from seqkit.music.rolls import Note, events_to_notes, melody_events, notes_to_roll
from seqkit.music.task import Polyphonic
from seqkit.recipe import load_recipe, validate_dict

# A hand-made roll of 2 keys: sequence A has 3 steps, sequence B 1 step.
TARGET_A = [[1, 0], [0, 0], [1, 1]]
PROBS_A = [[0.8, 0.1], [0.5, 0.5], [0.9, 0.2]]
TARGET_B = [[1, 0]]
PROBS_B = [[0.5, 0.5]]


def test_step_nll_golden():
    # -(ln .8 + ln .9), -(ln .5 + ln .5), -(ln .9 + ln .2)
    assert step_nll(PROBS_A, TARGET_A) == pytest.approx(
        [0.3285040669, 1.3862943611, 1.7147984281], abs=1e-9
    )


def test_nll_per_step_weights_every_step_equally():
    nll = nll_per_step([PROBS_A, PROBS_B], [TARGET_A, TARGET_B])
    # (0.3285040669 + 1.3862943611 + 1.7147984281 + 1.3862943611) / 4 steps
    assert nll == pytest.approx(1.2039728043, abs=1e-9)
    # not the mean of per-sequence means (1.2647), not per key (0.6020)
    assert nll != pytest.approx((1.1431989520 + 1.3862943611) / 2, abs=1e-3)


def test_frame_accuracy_golden():
    # threshold 0.5: predicted on A: (1,0) (1,1) (1,0); B: (1,1)
    # TP = 1 + 0 + 1 + 1 = 3; FP = 0 + 2 + 0 + 1 = 3; FN = 0 + 0 + 1 + 0 = 1
    assert frame_counts(PROBS_A, TARGET_A) == (2, 2, 1)
    assert frame_accuracy([PROBS_A, PROBS_B], [TARGET_A, TARGET_B]) == pytest.approx(3 / 7)
    assert frame_accuracy([PROBS_A], [TARGET_A], threshold=0.85) == pytest.approx(1 / 3)


def test_keras_loss_and_metric_equal_the_numpy_definition():
    """Padded batch with sample weights: the in-graph NLL equals the numpy one."""
    rng = np.random.default_rng(0)
    lengths = [5, 2, 7]
    probs = [rng.uniform(0.01, 0.99, (n, 6)) for n in lengths]
    targets = [rng.random((n, 6)) < 0.3 for n in lengths]
    y = np.zeros((3, 8, 6), np.float32)
    p = np.full((3, 8, 6), 0.5, np.float32)
    w = np.zeros((3, 8), np.float32)
    for i, n in enumerate(lengths):
        y[i, :n], p[i, :n], w[i, :n] = targets[i], probs[i], 1.0
    expected = nll_per_step(probs, targets)
    metric = NLLPerStep()
    metric.update_state(y[:2], p[:2], w[:2])  # two batches accumulate over the split
    metric.update_state(y[2:], p[2:], w[2:])
    assert float(metric.result()) == pytest.approx(expected, rel=1e-5)
    loss = StepNLLLoss()(y, p, sample_weight=w)
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    acc = FrameAccuracy()
    acc.update_state(y, p, w)
    assert float(acc.result()) == pytest.approx(frame_accuracy(probs, targets), rel=1e-6)


def test_categorical_metric_equals_event_nll():
    probs = np.array([[[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.3, 0.4]]], np.float32)
    events = np.array([[0, 2, 1]])
    w = np.array([[1.0, 1.0, 0.0]], np.float32)
    metric = NLLPerStep("categorical")
    metric.update_state(events, probs, w)
    expected = (-math.log(0.7) - math.log(0.8)) / 2
    assert float(metric.result()) == pytest.approx(expected, rel=1e-6)
    assert event_nll(probs[0, :2], events[0, :2]).mean() == pytest.approx(expected)


def test_sequence_batches_masks_chunks_and_epochs():
    seqs = [np.ones((n, 3), np.float32) * (i + 1) for i, n in enumerate([5, 11, 3])]

    def encode(t):
        return t, t

    ds = SequenceBatches(seqs, encode, batch_size=2, chunk=4, warmup=2, shuffle=True, seed=7)
    assert ds.length == 8  # 4 scored + 2 warm-up, rounded up to 8
    assert len(ds) == 3  # 2 + 3 + 1 = 6 windows
    batches = [ds[i] for i in range(len(ds))]
    assert all(b[0].shape == (2, 8, 3) and b[2].shape == (2, 8) for b in batches)
    # every real step is scored exactly once per epoch
    scored = sum(float(b[2].sum()) for b in batches)
    assert scored == 5 + 11 + 3
    again = SequenceBatches(seqs, encode, 2, chunk=4, warmup=2, shuffle=True, seed=7)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(batches, (again[i] for i in range(3))))
    ds.set_epoch(1)
    other = [ds[i] for i in range(3)]
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(batches, other))
    ds.set_epoch(1, skip_batches=1)  # resumed after one batch: the rest, same order
    assert len(ds) == 2 and np.array_equal(ds[0][0], other[1][0])


def test_polyphonic_transposition_augment_stays_in_range():
    task = Polyphonic(transpose=5)
    move = task._augment({})
    roll = notes_to_roll([Note(22, 0, 2), Note(60, 1, 3)])[0].astype(np.float32)
    rng = np.random.default_rng(0)
    shifts = set()
    for _ in range(50):
        out = move(rng, roll)
        assert out.sum() == roll.sum()
        shifts.add(int(np.flatnonzero(out.any(axis=0))[0]) - 1)
    assert shifts == {-1, 0, 1, 2, 3, 4, 5}  # down by at most 1 (A0 is the floor), up to 5


def test_melody_events_golden_and_back():
    # C4 two steps, C4 again (repeated), rest, E4 held 3 steps with a lower note under it
    notes = [Note(60, 0, 2), Note(60, 2, 3), Note(64, 4, 7), Note(55, 4, 6)]
    roll, onsets, _ = notes_to_roll(notes, length=8)
    events, folded = melody_events(roll, onsets, min_note=48, max_note=84)
    on = lambda p: 2 + p - 48  # noqa: E731
    assert events.tolist() == [on(60), 0, on(60), 1, on(64), 0, 0, 1]
    assert folded == 0
    assert events_to_notes(events, 48) == [Note(60, 0, 2), Note(60, 2, 3), Note(64, 4, 7)]
    # out of range: moved by octaves
    roll2, on2, _ = notes_to_roll([Note(96, 0, 1), Note(30, 1, 2)])
    events2, folded2 = melody_events(roll2, on2, 48, 84)
    assert folded2 == 2 and events_to_notes(events2, 48) == [Note(84, 0, 1), Note(54, 1, 2)]


def test_melody_encode_is_previous_event_one_hot():
    task = Melody(min_note=60, max_note=62)
    x, y = task.encode(np.array([2, 0, 1, 4]))
    assert x.shape == (4, 5)
    assert x[0].sum() == 0 and x[1].argmax() == 2 and x[2].argmax() == 0 and x[3].argmax() == 1


def test_task_parameter_checks():
    with pytest.raises(ParameterError, match="pitch_range"):
        Polyphonic(pitch_range=[60, 50])
    with pytest.raises(ParameterError, match="chunk_warmup` needs `chunk_length"):
        Polyphonic(chunk_warmup=4)
    with pytest.raises(ParameterError, match="transpose"):
        Melody(transpose=30)
    with pytest.raises(ParameterError, match="temperature"):
        Polyphonic()._temperature(0)


def _doc(**over):
    doc = {
        "name": "m",
        "data": {"source": {"type": "pianoroll_npz", "path": "x.npz"}},
        "model": {"layers": [{"type": "gru", "units": 4}]},
        "task": {"type": "polyphonic"},
    }
    doc.update(over)
    return doc


def test_recipe_checks_music_tasks():
    recipe = validate_dict(_doc(features=[{"type": "load"}, {"type": "mfcc"}]))
    with pytest.raises(RecipeError, match="features: the polyphonic task reads piano rolls"):
        check_recipe(recipe)
    recipe = validate_dict(_doc(data={"source": {"type": "folder", "root": "x"}}))
    with pytest.raises(RecipeError, match="needs a music source"):
        check_recipe(recipe)
    recipe = validate_dict(_doc(model={"layers": [{"type": "gru", "units": 4}], "normalize": True}))
    with pytest.raises(RecipeError, match="model.normalize"):
        check_recipe(recipe)
    recipe = validate_dict(
        _doc(model={"layers": [{"type": "gru", "units": 4, "bidirectional": True}]})
    )
    with pytest.raises(
        RecipeError, match=r"model.layers\[0\].bidirectional: a next-step model must not"
    ):
        check_recipe(recipe)
    recipe = validate_dict(
        _doc(model={"layers": [{"type": "gru", "units": 4, "go_backwards": True}]})
    )
    with pytest.raises(
        RecipeError, match="go_backwards: a next-step model must not see the future"
    ):
        check_recipe(recipe)
    with pytest.raises(RecipeError, match="task.pitch_range"):
        validate_dict(_doc(task={"type": "polyphonic", "pitch_range": [10, 20]}))
    check_recipe(validate_dict(_doc()))


@pytest.mark.parametrize(
    "name", ["music_jsb_chung2014.yaml", "music_jsb_best.yaml", "music_bach_melody.yaml"]
)
def test_shipped_recipes_are_valid(name):
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "recipes" / name
    recipe = load_recipe(path)
    check_recipe(recipe, str(path))
    keras.backend.clear_session()


def test_summary_counts_what_was_skipped_and_dropped():
    metrics = {
        "best_epoch": 3,
        "test": {"nll_per_step": 8.1234, "frame_accuracy": 0.25, "sequences": 2, "steps": 40},
        "skipped": [
            {"path": "a.mid", "reason": "cannot be read as MIDI (OSError: bad)"},
            {"path": "b.mid", "reason": "only drum tracks"},
            {"path": "c.mid", "reason": "cannot be read as MIDI (KeyError: 3)"},
            {"path": "d.mid", "reason": "dropped 3 note(s) outside the piano range 21..108"},
            {"path": "e.mid", "reason": "dropped 1 note(s) outside the piano range 21..108"},
        ],
    }
    assert Polyphonic().summary(metrics) == [
        "test nll_per_step: 8.1234, frame accuracy 0.2500 (2 sequences, 40 steps, best epoch 3)",
        "skipped 3 input(s): 2 cannot be read as MIDI, 1 only drum tracks",
        "dropped 4 note(s) outside the piano range 21..108 in 2 input(s)",
    ]


# A mixture of two independent-key distributions over 2 keys: weights 0.25 / 0.75, key
# probabilities (0.8, 0.1) and (0.5, 0.5). Head values: weight logits, then key logits.
MIX = [0.0, math.log(3), math.log(4), math.log(1 / 9), 0.0, 0.0]


def test_mixture_nll_golden():
    params = np.array([MIX, MIX])
    target = np.array([[1, 0], [0, 1]])
    # P([1,0]) = .25*.8*.9 + .75*.5*.5 = .3675; P([0,1]) = .25*.2*.1 + .75*.25 = .1925
    assert mixture_step_nll(params, target, 2) == pytest.approx(
        [1.0010319603, 1.6476591253], abs=1e-9
    )
    assert mixture_marginals(params, 2)[0] == pytest.approx([0.575, 0.4])
    # one component is the independent-key model
    logits = np.array([[0.3, -1.2, 2.0]])
    probs = 1 / (1 + np.exp(-logits))
    one = np.concatenate([[[0.0]], logits], axis=1)
    v = np.array([[1, 0, 1]])
    assert mixture_step_nll(one, v, 1) == pytest.approx(step_nll(probs, v), abs=1e-9)


def test_mixture_keras_loss_and_metrics_equal_numpy():
    rng = np.random.default_rng(1)
    params = rng.normal(size=(2, 5, 3 * (4 + 1))).astype(np.float32)
    y = (rng.random((2, 5, 4)) < 0.4).astype(np.float32)
    w = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], np.float32)
    per = [mixture_step_nll(params[i], y[i], 3)[w[i] > 0] for i in range(2)]
    expected = float(np.concatenate(per).mean())
    metric = NLLPerStep("mixture", 3)
    metric.update_state(y, params, w)
    assert float(metric.result()) == pytest.approx(expected, rel=1e-5)
    loss = StepNLLLoss("mixture", 3)(y, params, sample_weight=w)
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    acc = FrameAccuracy(components=3)
    acc.update_state(y, params, w)
    probs = [mixture_marginals(params[i], 3)[w[i] > 0] for i in range(2)]
    targets = [y[i][w[i] > 0] for i in range(2)]
    assert float(acc.result()) == pytest.approx(frame_accuracy(probs, targets), rel=1e-6)


def test_weight_noise_gradient_at_noisy_weights_update_on_clean():
    """One SGD step with weight noise: w1 = w0 - lr * grad(w0 + n), n drawn from the seed."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse")
    x = np.array([[1.0, 2.0], [3.0, -1.0]], np.float32)
    y = np.array([[1.0], [0.0]], np.float32)
    w0, b0 = (v.numpy().astype(np.float64) for v in model.trainable_variables)
    task = Polyphonic(weight_noise=0.3)
    task.seed = 5
    rng = np.random.default_rng([5, 0, 0, 17])
    nw = rng.normal(0.0, 0.3, (2, 1)).astype(np.float32)
    nb = rng.normal(0.0, 0.3, (1,)).astype(np.float32)
    w, b = w0 + nw, b0 + nb
    err = x @ w + b - y  # mse = mean(err^2): d/dw = 2 x^T err / N
    gw, gb = 2 * x.T @ err / len(x), 2 * err.mean(axis=0)
    model.fit(x, y, batch_size=2, epochs=1, shuffle=False, verbose=0,
              callbacks=[WeightNoise(task, 0.3)])  # fmt: skip
    w1, b1 = (v.numpy() for v in model.trainable_variables)
    assert w1 == pytest.approx(w0 - 0.1 * gw, abs=1e-5)
    assert b1 == pytest.approx(b0 - 0.1 * gb, abs=1e-5)
    with pytest.raises(ParameterError, match="weight_noise"):
        Melody(weight_noise=-0.1)
