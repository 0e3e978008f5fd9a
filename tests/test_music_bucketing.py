"""Bucketed music batches (``bucket: true``): every sequence once per epoch, a seeded order,
less padding, and the same NLL per step as batches padded to the longest sequence."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from seqkit.errors import ParameterError
from seqkit.layers import GRU
from seqkit.music.batches import SequenceBatches, bucket_length
from seqkit.music.task import Polyphonic


def _rolls(n=23, seed=0, keys=88):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(5, 120, size=n)
    return [(rng.random((int(t), keys)) < 0.08).astype(np.float32) for t in lengths]


def _served(ds):
    """(sequence ids as their first rows' bytes, lengths, batch lengths) of one epoch."""
    seen, widths = [], []
    for i in range(len(ds)):
        x, y, w = ds[i]
        widths.append(x.shape[1])
        for row in range(len(y)):
            n = int(w[row].sum())
            if n:
                seen.append((y[row, :n].tobytes(), n))
    return seen, widths


@pytest.mark.parametrize("chunk", [None, 16])
def test_every_window_once_per_epoch_and_seeded(chunk):
    ys = _rolls()
    task = Polyphonic()
    plain = SequenceBatches(ys, task.encode, 4, chunk=chunk, shuffle=True, seed=3)
    ds = SequenceBatches(ys, task.encode, 4, chunk=chunk, shuffle=True, seed=3, bucket=True)
    assert len(ds) == len(plain)
    expected, _ = _served(plain)
    orders = []
    for epoch in range(3):
        ds.set_epoch(epoch)
        seen, widths = _served(ds)
        assert sorted(seen) == sorted(expected)  # the same windows, each exactly once
        orders.append(seen)
        assert all(w % 16 == 0 for w in widths)
        # each batch padded only to its own longest window (up to the ladder's next rung); the
        # first one a rung further when the second has its length (Keras' shape sampling)
        lengths = [ds[i][0].shape[1] for i in range(len(ds))]
        natural = [bucket_length(int(ds[i][2].sum(axis=1).max())) for i in range(len(ds))]
        assert lengths[1:] == natural[1:] and lengths[0] != lengths[1]
        assert lengths[0] in (natural[0], bucket_length(natural[0] + 1))
    assert orders[0] != orders[1] != orders[2]
    again = SequenceBatches(ys, task.encode, 4, chunk=chunk, shuffle=True, seed=3, bucket=True)
    again.set_epoch(1)
    assert _served(again)[0] == orders[1]  # a pure function of (seed, epoch)
    ds.set_epoch(1)
    third = ds[2][1]
    again.set_epoch(1, skip_batches=2)  # a run resumed inside the epoch gets the rest
    assert len(again) == len(ds) - 2
    got, n = again[0][1], third.shape[1]  # the same rows (perhaps padded a rung further)
    np.testing.assert_array_equal(got[:, :n], third)
    assert not got[:, n:].any()


def test_bucket_lengths_are_a_short_ladder():
    assert [bucket_length(n) for n in (1, 16, 17, 48, 49, 81, 145, 1788)] == [
        16, 16, 32, 48, 64, 112, 192, 1888,
    ]  # fmt: skip
    rungs = sorted({bucket_length(n) for n in range(1, 2001)})
    assert len(rungs) == 19 and all(b / a <= 2 for a, b in zip(rungs, rungs[1:]))
    assert all(bucket_length(n) < 1.4 * n for n in range(64, 2001))  # < 40 % more steps


def test_bucketing_computes_fewer_padded_steps():
    ys = _rolls(40, seed=1)
    task = Polyphonic()
    real = sum(len(y) for y in ys)
    plain = SequenceBatches(ys, task.encode, 8, shuffle=True, seed=0)
    ds = SequenceBatches(ys, task.encode, 8, shuffle=True, seed=0, bucket=True)
    padded = sum(plain[i][0].shape[1] * 8 for i in range(len(plain)))
    bucketed = sum(ds[i][0].shape[1] * 8 for i in range(len(ds)))
    assert bucketed < 0.75 * padded and bucketed >= real


@pytest.mark.parametrize("output", ["independent", "nade"])
def test_same_nll_bucketed_or_not_for_the_same_weights(output):
    ys = _rolls(19, seed=2, keys=12)
    task = Polyphonic(pitch_range=[60, 71], output=output, nade_units=8)
    keras.utils.set_random_seed(1)
    inputs = keras.Input((None, 12))
    x = GRU(6, return_sequences=True)(inputs)
    out = (
        task.head(x, {"keys": 12, "components": 1}, inputs)
        if task.nade
        else task.head(x, {"keys": 12, "components": 1})
    )
    model = keras.Model(inputs, out)
    model.compile(optimizer="sgd", **task.compile_args())
    results = {}
    for bucket in (False, True):
        ds = SequenceBatches(ys, task.encode, 4, bucket=bucket)
        results[bucket] = model.evaluate(ds, verbose=0, return_dict=True)["nll_per_step"]
    # the numpy reference: every step of every sequence, one sequence at a time
    total = steps = 0
    for y in ys:
        x, _ = task.encode(y)
        total += task.step_nll(model.predict(x[None], verbose=0)[0], y).sum()
        steps += len(y)
    assert results[True] == pytest.approx(results[False], rel=1e-5)
    assert results[True] == pytest.approx(total / steps, rel=1e-5)


def test_keras_accepts_every_batch_length():
    """Keras fixes a PyDataset's shapes from its first two batches: they must differ in length,
    or a later, longer batch is refused mid-epoch (a real failure on JSB before the fix)."""
    rng = np.random.default_rng(0)
    lengths = [40] * 16 + [60] * 8 + [100] * 8  # batches 0 and 1 would both be 48 steps
    ys = [(rng.random((n, 88)) < 0.05).astype(np.float32) for n in lengths]
    task = Polyphonic()
    inputs = keras.Input((None, 88))
    model = keras.Model(inputs, task.head(GRU(4, return_sequences=True)(inputs), {"keys": 88}))
    model.compile(optimizer="sgd", **task.compile_args())
    val = SequenceBatches(ys, task.encode, 8, bucket=True)
    assert [val[i][0].shape[1] for i in range(len(val))] == [64, 48, 64, 112]
    train = SequenceBatches(ys, task.encode, 8, bucket=True, shuffle=True, seed=0)
    history = model.fit(train, epochs=1, verbose=0, validation_data=val)
    assert np.isfinite(history.history["val_nll_per_step"][0])
    train.set_epoch(0, skip_batches=1)  # resumed inside the epoch: served from batch 1 on
    model.fit(train, epochs=1, verbose=0)


def test_bucket_parameter_is_checked():
    assert Polyphonic(bucket=True).bucket is True
    with pytest.raises(ParameterError, match="`bucket` must be true or false"):
        Polyphonic(bucket="yes")
