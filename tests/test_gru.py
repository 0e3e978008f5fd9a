"""Tests of ``seqkit.layers.GRU`` / ``GRUCell``: the documents' GRU as a Keras 3 layer.

What is checked, and against what:

* the documents' worked example ("AI is amazing"), golden numbers written out here;
* a NumPy transcription of the documents' equations, on random weights;
* ``keras.layers.GRU`` (reset_after=False and True) with the same weights, both ways round,
  over the layer options (sequences, states, masks, go_backwards, initial state, no bias);
* the literal expected arrays of Keras' own ``keras/src/layers/rnn/gru_test.py``;
* streaming (carried state, ``stateful=True``), ``.keras`` save/load in a fresh process,
  ``Bidirectional``, dropout, argument validation and gradients.
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import subprocess  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402
from pathlib import Path  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from conftest import numpy_gru as _numpy_gru  # noqa: E402
from conftest import sigmoid as _sigmoid  # noqa: E402
from keras import initializers  # noqa: E402

from seqkit import worked_example  # noqa: E402
from seqkit.layers import GRU, GRUCell  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
ATOL = 1e-5


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _np(value):
    return keras.ops.convert_to_numpy(value)


def _as_list(result):
    """Layer results as a list of numpy arrays (output, then states if any)."""
    if isinstance(result, (list, tuple)):
        return [_np(v) for v in result]
    return [_np(result)]


def _assert_all_close(actual, expected, atol=ATOL):
    actual, expected = _as_list(actual), _as_list(expected)
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert a.shape == e.shape
        np.testing.assert_allclose(a, e, rtol=0, atol=atol)


def _random_weights(rng, input_dim, units, reset_after=False, use_bias=True):
    weights = [
        rng.normal(0.0, 0.5, (input_dim, 3 * units)).astype("float32"),
        rng.normal(0.0, 0.5, (units, 3 * units)).astype("float32"),
    ]
    if use_bias:
        shape = (2, 3 * units) if reset_after else (3 * units,)
        weights.append(rng.normal(0.0, 0.3, shape).astype("float32"))
    return weights


def _sequences(rng, batch=3, steps=7, features=5):
    return rng.normal(0.0, 1.0, (batch, steps, features)).astype("float32")


def _built(layer, input_shape):
    layer.build(input_shape)
    return layer


@pytest.fixture(params=[False, True], ids=["keras_loop", "scans"])
def sequence_path(request, monkeypatch):
    """Run a test through each of the layer's two paths: Keras' loop over the cell, and the
    scans with their own gradient (``seqkit.layers.SEQUENCE_SCAN``; the default picks one per
    backend)."""
    import seqkit.layers

    monkeypatch.setattr(seqkit.layers, "SEQUENCE_SCAN", request.param)
    return request.param


# --------------------------------------------------------------------------------------------
# 1. the documents' worked example
# --------------------------------------------------------------------------------------------
# The documents' figures, written out here (not imported) so that a wrong number in
# seqkit/worked_example.py cannot make these tests agree with it.
EXAMPLE_X = np.array([[[0.5, 0.1, 0.4], [0.2, 0.7, 0.3], [0.6, 0.9, 0.5]]], dtype="float32")
EXAMPLE_STEP1 = {
    "r": [0.5720, 0.6225],
    "z": [0.6365, 0.6479],
    "hh": [0.4621, 0.6696],
    "h": [0.1680, 0.2357],
}
EXAMPLE_H = [[0.1680, 0.2357], [0.3447, 0.4125], [0.4504, 0.5229]]
EXAMPLE_ATOL = 1e-4


def _example_layer(**kwargs):
    layer = _built(GRU(2, **kwargs), (1, 3, 3))
    layer.set_weights(worked_example.keras_weights())
    return layer


def test_worked_example_weights_are_in_keras_layout():
    kernel, recurrent_kernel, bias = worked_example.keras_weights()
    assert kernel.dtype == recurrent_kernel.dtype == bias.dtype == np.float32
    assert kernel.shape == (3, 6) and recurrent_kernel.shape == (2, 6) and bias.shape == (6,)

    # Gate order z, r, h; the documents' W (units, inputs) transposed to (inputs, units).
    def f32(rows):
        return np.array(rows, dtype="float32")

    np.testing.assert_array_equal(kernel[:, 0:2], f32([[0.4, 0.3, 0.7], [0.5, 0.2, 0.6]]).T)
    np.testing.assert_array_equal(kernel[:, 2:4], f32([[0.2, 0.5, 0.1], [0.3, 0.7, 0.2]]).T)
    np.testing.assert_array_equal(kernel[:, 4:6], f32([[0.3, 0.7, 0.2], [0.6, 0.5, 0.4]]).T)
    np.testing.assert_array_equal(recurrent_kernel[:, 0:2], f32([[0.9, 0.5], [0.3, 0.8]]).T)
    np.testing.assert_array_equal(recurrent_kernel[:, 2:4], f32([[0.6, 0.4], [0.8, 0.9]]).T)
    np.testing.assert_array_equal(recurrent_kernel[:, 4:6], f32([[0.4, 0.6], [0.5, 0.7]]).T)
    np.testing.assert_array_equal(bias, f32([0.05, 0.1, 0.1, 0.2, 0.2, 0.3]))
    np.testing.assert_array_equal(worked_example.inputs(), EXAMPLE_X)
    # The figures `seqkit explain` will print are the documents' figures.
    expected = worked_example.WORKED_EXAMPLE["expected"]
    for key, value in EXAMPLE_STEP1.items():
        np.testing.assert_allclose(expected["step1"][key], value, rtol=0, atol=1e-12)
    np.testing.assert_allclose(expected["h"], EXAMPLE_H, rtol=0, atol=1e-12)


def test_worked_example_gate_activations():
    acts = _example_layer().gate_activations(EXAMPLE_X)
    assert set(acts) == {"r", "z", "hh", "h"}
    for key, value in acts.items():
        assert isinstance(value, np.ndarray) and value.shape == (1, 3, 2), key
    for key, value in EXAMPLE_STEP1.items():
        np.testing.assert_allclose(acts[key][0, 0], value, rtol=0, atol=EXAMPLE_ATOL, err_msg=key)
    np.testing.assert_allclose(acts["h"][0], EXAMPLE_H, rtol=0, atol=EXAMPLE_ATOL)


def test_worked_example_layer_call():
    layer = _example_layer(return_sequences=True, return_state=True)
    sequence, state = _as_list(layer(EXAMPLE_X))
    np.testing.assert_allclose(sequence[0], EXAMPLE_H, rtol=0, atol=EXAMPLE_ATOL)
    np.testing.assert_allclose(state[0], EXAMPLE_H[-1], rtol=0, atol=EXAMPLE_ATOL)
    # The default layer returns only the last step.
    last = _np(_example_layer()(EXAMPLE_X))
    np.testing.assert_allclose(last[0], EXAMPLE_H[-1], rtol=0, atol=EXAMPLE_ATOL)


def test_worked_example_is_not_the_reset_after_form():
    """The example distinguishes the two GRU forms: reset_after=True misses the figures."""
    kernel, recurrent_kernel, bias = worked_example.keras_weights()
    layer = _built(GRU(2, reset_after=True, return_sequences=True), (1, 3, 3))
    layer.set_weights([kernel, recurrent_kernel, np.stack([bias, np.zeros_like(bias)])])
    out = _np(layer(EXAMPLE_X))[0]
    np.testing.assert_allclose(out[0], EXAMPLE_H[0], rtol=0, atol=EXAMPLE_ATOL)  # h0 = 0
    assert np.abs(out[1:] - np.array(EXAMPLE_H[1:])).max() > 1e-3


# --------------------------------------------------------------------------------------------
# gate_activations against the NumPy equations, on random weights
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reset_after", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("with_initial_state", [False, True])
def test_gate_activations_match_equations(
    reset_after, go_backwards, with_initial_state, sequence_path
):
    rng = np.random.default_rng(1)
    x = _sequences(rng)
    weights = _random_weights(rng, 5, 4, reset_after=reset_after)
    h0 = rng.normal(0.0, 0.5, (3, 4)).astype("float32") if with_initial_state else None
    layer = _built(
        GRU(4, reset_after=reset_after, go_backwards=go_backwards, return_sequences=True),
        x.shape,
    )
    layer.set_weights(weights)
    acts = layer.gate_activations(x, initial_state=h0)
    ref = _numpy_gru(x, *weights, h0=h0, reset_after=reset_after, go_backwards=go_backwards)
    for key in ("r", "z", "hh", "h"):
        np.testing.assert_allclose(acts[key], ref[key], rtol=0, atol=ATOL, err_msg=key)
    # ... and agree with the layer's own call. With go_backwards, Keras returns the sequence in
    # processing order (reversed); gate_activations keeps input order.
    out = _np(layer(x, initial_state=h0) if h0 is not None else layer(x))
    expected = acts["h"][:, ::-1] if go_backwards else acts["h"]
    np.testing.assert_allclose(out, expected, rtol=0, atol=ATOL)


# --------------------------------------------------------------------------------------------
# 2. same weights, same numbers as keras.layers.GRU
# --------------------------------------------------------------------------------------------
CALL_OPTIONS = {
    "last": {},
    "sequences": {"return_sequences": True},
    "last+state": {"return_state": True},
    "sequences+state": {"return_sequences": True, "return_state": True},
    "backwards": {"go_backwards": True, "return_sequences": True, "return_state": True},
    "no_bias": {"use_bias": False, "return_sequences": True, "return_state": True},
    "unroll": {"unroll": True, "return_sequences": True, "return_state": True},
}


def _pair(reset_after, input_shape, **options):
    """A seqkit GRU and a keras GRU with the same options, both built."""
    ours = _built(GRU(4, reset_after=reset_after, **options), input_shape)
    theirs = _built(keras.layers.GRU(4, reset_after=reset_after, **options), input_shape)
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in theirs.get_weights()]
    return ours, theirs


def _share_weights(ours, theirs, direction, rng, reset_after, use_bias=True):
    weights = _random_weights(rng, 5, 4, reset_after=reset_after, use_bias=use_bias)
    if direction == "keras_to_seqkit":
        theirs.set_weights(weights)
        ours.set_weights(theirs.get_weights())
    else:
        ours.set_weights(weights)
        theirs.set_weights(ours.get_weights())
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("direction", ["keras_to_seqkit", "seqkit_to_keras"])
@pytest.mark.parametrize("options", list(CALL_OPTIONS), ids=list(CALL_OPTIONS))
@pytest.mark.parametrize("reset_after", [False, True])
def test_matches_keras_gru(reset_after, options, direction, sequence_path):
    rng = np.random.default_rng(2)
    x = _sequences(rng)
    kwargs = CALL_OPTIONS[options]
    ours, theirs = _pair(reset_after, x.shape, **kwargs)
    _share_weights(ours, theirs, direction, rng, reset_after, kwargs.get("use_bias", True))
    result = ours(x)
    n_expected = 1 + int(kwargs.get("return_state", False))
    assert len(_as_list(result)) == n_expected
    _assert_all_close(result, theirs(x))


@pytest.mark.parametrize("reset_after", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_matches_keras_gru_with_initial_state(reset_after, go_backwards, sequence_path):
    rng = np.random.default_rng(3)
    x = _sequences(rng)
    h0 = rng.normal(0.0, 0.5, (3, 4)).astype("float32")
    options = {"return_sequences": True, "return_state": True, "go_backwards": go_backwards}
    ours, theirs = _pair(reset_after, x.shape, **options)
    _share_weights(ours, theirs, "seqkit_to_keras", rng, reset_after)
    result = ours(x, initial_state=h0)
    _assert_all_close(result, theirs(x, initial_state=h0))
    # The initial state is actually used.
    assert np.abs(_np(result[1]) - _np(ours(x)[1])).max() > 1e-3


def _padded(rng, padding):
    """Batch of 3: row 0 unpadded, rows 1-2 padded with zero steps on the given side."""
    x = _sequences(rng, batch=3, steps=7, features=5)
    mask = np.ones((3, 7), dtype=bool)
    if padding == "right":
        mask[1, 4:] = False
        mask[2, 2:] = False
    else:
        mask[1, :3] = False
        mask[2, :5] = False
    x[~mask] = 0.0
    return x, mask


@pytest.mark.parametrize("how", ["masking_layer", "mask_argument"])
@pytest.mark.parametrize("padding", ["right", "left"])
@pytest.mark.parametrize("reset_after", [False, True])
def test_matches_keras_gru_with_mask(reset_after, padding, how, sequence_path):
    rng = np.random.default_rng(4)
    x, mask = _padded(rng, padding)
    options = {"return_sequences": True, "return_state": True}
    ours, theirs = _pair(reset_after, x.shape, **options)
    _share_weights(ours, theirs, "keras_to_seqkit", rng, reset_after)

    if how == "mask_argument":
        result, expected = ours(x, mask=mask), theirs(x, mask=mask)
    else:

        def model_of(layer):
            inputs = keras.Input(x.shape[1:])
            return keras.Model(inputs, layer(keras.layers.Masking(0.0)(inputs)))

        result = model_of(ours)(x)
        expected = model_of(theirs)(x)
    _assert_all_close(result, expected)

    # Masked steps are skipped: each row's final state is that of its unpadded part alone.
    final = _np(result[1])
    unmasked = _np(ours(x)[1])
    for row in (1, 2):
        kept = x[row : row + 1, mask[row]]
        alone = _np(ours(kept)[1])
        np.testing.assert_allclose(final[row], alone[0], rtol=0, atol=ATOL)
        assert np.abs(final[row] - unmasked[row]).max() > 1e-4


@pytest.mark.parametrize("reset_after", [False, True])
def test_cell_in_plain_keras_rnn_matches_layer(reset_after):
    """``keras.layers.RNN(GRUCell(n))`` slices the weights per step; same numbers."""
    rng = np.random.default_rng(5)
    x = _sequences(rng)
    weights = _random_weights(rng, 5, 4, reset_after=reset_after)
    ours = _built(GRU(4, reset_after=reset_after, return_sequences=True), x.shape)
    plain = _built(
        keras.layers.RNN(GRUCell(4, reset_after=reset_after), return_sequences=True), x.shape
    )
    ours.set_weights(weights)
    plain.set_weights(weights)
    _assert_all_close(plain(x), ours(x))
    ref = _numpy_gru(x, *weights, reset_after=reset_after)["h"]
    np.testing.assert_allclose(_np(ours(x)), ref, rtol=0, atol=ATOL)


def test_default_is_reset_before():
    assert GRU(3).reset_after is False
    assert GRUCell(3).reset_after is False
    assert GRU(3, reset_after=True).reset_after is True
    layer = _built(GRU(3), (2, 4, 5))
    assert [w.shape for w in layer.get_weights()] == [(5, 9), (3, 9), (9,)]
    layer = _built(GRU(3, reset_after=True), (2, 4, 5))
    assert [w.shape for w in layer.get_weights()] == [(5, 9), (3, 9), (2, 9)]


# --------------------------------------------------------------------------------------------
# 3. Keras' own published GRU test values (keras/src/layers/rnn/gru_test.py, Keras 3.15.1)
# --------------------------------------------------------------------------------------------
# Keras' GRU defaults to reset_after=True, so these pass reset_after=True explicitly except
# where Keras' test says reset_after=False (which is seqkit's default).
def _constant_gru(units, **kwargs):
    kwargs.setdefault("reset_after", True)
    return GRU(
        units,
        kernel_initializer=initializers.Constant(0.01),
        recurrent_initializer=initializers.Constant(0.02),
        bias_initializer=initializers.Constant(0.03),
        **kwargs,
    )


def _close(actual, expected):
    np.testing.assert_allclose(_np(actual), np.array(expected), rtol=1e-5, atol=1e-5)


KERAS_CORRECTNESS = {
    "default": ({}, [[0.5217289] * 3, [0.6371659] * 3, [0.39384964, 0.39384964, 0.3938496]]),
    "go_backwards": (
        {"go_backwards": True},
        [[0.24406259] * 3, [0.611516] * 3, [0.3928808] * 3],
    ),
    "unroll": (
        {"unroll": True},
        [[0.5217289] * 3, [0.6371659] * 3, [0.39384964, 0.39384964, 0.3938496]],
    ),
    "reset_after_false": (
        {"reset_after": False},
        [[0.51447755] * 3, [0.6426879] * 3, [0.40208298] * 3],
    ),
    "use_bias_false": (
        {"use_bias": False},
        [[0.49988455] * 3, [0.64701194] * 3, [0.4103359] * 3],
    ),
}


@pytest.mark.parametrize("case", list(KERAS_CORRECTNESS))
def test_keras_published_correctness(case):
    kwargs, expected = KERAS_CORRECTNESS[case]
    sequence = np.arange(72).reshape((3, 6, 4)).astype("float32")
    _close(_constant_gru(3, **kwargs)(sequence), expected)


def test_keras_published_reset_after_false_is_seqkit_default():
    sequence = np.arange(72).reshape((3, 6, 4)).astype("float32")
    layer = GRU(
        3,
        kernel_initializer=initializers.Constant(0.01),
        recurrent_initializer=initializers.Constant(0.02),
        bias_initializer=initializers.Constant(0.03),
    )
    _close(layer(sequence), [[0.51447755] * 3, [0.6426879] * 3, [0.40208298] * 3])


def test_keras_published_statefulness():
    sequence = np.arange(24).reshape((2, 3, 4)).astype("float32")
    expected = [[0.29542392] * 4, [0.5885018] * 4]
    layer = _constant_gru(4, stateful=True)
    first = _np(layer(sequence))
    _close(layer(sequence), expected)
    layer.reset_state()
    _close(layer(sequence), first)
    _close(layer(sequence), expected)


@pytest.mark.parametrize("return_state", [False, True])
def test_keras_published_initial_state(return_state):
    sequence = np.arange(24).reshape((2, 4, 3)).astype("float32")
    initial_state = np.arange(4).reshape((2, 2)).astype("float32")
    for go_backwards, expected in (
        (False, [[0.23774096, 0.33508456], [0.83659905, 1.0227708]]),
        (True, [[0.13486053, 0.23261218], [0.78257304, 0.9691353]]),
    ):
        layer = _constant_gru(2, go_backwards=go_backwards, return_state=return_state)
        result = layer(sequence, initial_state=initial_state)
        if return_state:
            output, state = result
            _close(state, expected)
        else:
            output = result
        _close(output, expected)


def test_keras_published_masking(sequence_path):
    sequence = np.arange(24).reshape((2, 4, 3)).astype("float32")
    mask = np.array([[True, True, False, True], [True, False, False, True]])

    _close(
        _constant_gru(2, unroll=True)(sequence, mask=mask),
        [[0.19393763] * 2, [0.30818558] * 2],
    )
    output = _constant_gru(2, return_sequences=True)(sequence, mask=mask)
    _close(output[0], [[0.03606692] * 2, [0.09497581] * 2, [0.09497581] * 2, [0.19393763] * 2])
    _close(output[1], [[0.16051409] * 2] * 3 + [[0.30818558] * 2])

    output = _constant_gru(2, return_sequences=True, zero_output_for_mask=True)(sequence, mask=mask)
    _close(output[0], [[0.03606692] * 2, [0.09497581] * 2, [0.0, 0.0], [0.19393763] * 2])
    _close(output[1], [[0.16051409] * 2, [0.0, 0.0], [0.0, 0.0], [0.30818558] * 2])

    _close(
        _constant_gru(2, go_backwards=True)(sequence, mask=mask),
        [[0.11669192] * 2, [0.28380975] * 2],
    )


def test_keras_published_legacy_implementation_argument():
    sequence = np.arange(72).reshape((3, 6, 4)).astype("float32")
    config = _constant_gru(3).get_config()
    config["implementation"] = 0  # a legacy argument, accepted and ignored
    layer = GRU.from_config(config)
    _close(layer(sequence), [[0.5217289] * 3, [0.6371659] * 3, [0.39384964, 0.39384964, 0.3938496]])


# --------------------------------------------------------------------------------------------
# 4. streaming
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("chunk", [1, 3])
@pytest.mark.parametrize("reset_after", [False, True])
def test_streaming_with_carried_state(reset_after, chunk, sequence_path):
    rng = np.random.default_rng(6)
    x = _sequences(rng, batch=2, steps=7)
    layer = GRU(4, reset_after=reset_after, return_sequences=True, return_state=True)
    layer = _built(layer, x.shape)
    layer.set_weights(_random_weights(rng, 5, 4, reset_after=reset_after))
    whole, whole_state = _as_list(layer(x))

    state, pieces = None, []
    for start in range(0, x.shape[1], chunk):
        piece = x[:, start : start + chunk]
        out, state = layer(piece) if state is None else layer(piece, initial_state=state)
        pieces.append(_np(out))
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), whole, rtol=0, atol=ATOL)
    np.testing.assert_allclose(_np(state), whole_state, rtol=0, atol=ATOL)


@pytest.mark.parametrize("reset_after", [False, True])
def test_streaming_stateful(reset_after, sequence_path):
    rng = np.random.default_rng(7)
    x = _sequences(rng, batch=2, steps=6)
    weights = _random_weights(rng, 5, 4, reset_after=reset_after)
    whole_layer = _built(GRU(4, reset_after=reset_after, return_sequences=True), x.shape)
    whole_layer.set_weights(weights)
    whole = _np(whole_layer(x))

    stateful = GRU(4, reset_after=reset_after, return_sequences=True, stateful=True)
    stateful = _built(stateful, (2, 1, 5))
    stateful.set_weights(weights)
    steps = [_np(stateful(x[:, t : t + 1])) for t in range(x.shape[1])]
    np.testing.assert_allclose(np.concatenate(steps, axis=1), whole, rtol=0, atol=ATOL)
    np.testing.assert_allclose(stateful.states[0].numpy(), whole[:, -1], rtol=0, atol=ATOL)

    # reset_state() starts over from zeros.
    stateful.reset_state()
    np.testing.assert_array_equal(stateful.states[0].numpy(), np.zeros((2, 4)))
    np.testing.assert_allclose(_np(stateful(x[:, :1])), whole[:, :1], rtol=0, atol=ATOL)


# --------------------------------------------------------------------------------------------
# 5. serialisation
# --------------------------------------------------------------------------------------------
LOAD_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, {root!r})
    import keras
    import numpy as np

    report = {{}}
    try:  # nothing has registered seqkit's classes yet
        keras.saving.load_model({model!r})
        report["loaded_without_import"] = True
    except Exception as err:
        report["loaded_without_import"] = False

    import seqkit.layers  # registers seqkit>GRU and seqkit>GRUCell

    model = keras.saving.load_model({model!r})
    layer = model.layers[1]
    report["class"] = type(layer).__module__ + "." + type(layer).__name__
    report["units"] = layer.units
    report["reset_after"] = layer.reset_after
    report["dropout"] = layer.cell.dropout
    np.save({out!r}, model.predict(np.load({inputs!r}), verbose=0))
    with open({report!r}, "w") as f:
        json.dump(report, f)
    """
)


def test_keras_file_loads_in_fresh_process(tmp_path):
    rng = np.random.default_rng(8)
    x = _sequences(rng, batch=4, steps=6, features=3)
    inputs = keras.Input((6, 3))
    hidden = GRU(5, dropout=0.2, recurrent_dropout=0.1, name="gru")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2)(hidden))
    gru = model.get_layer("gru")
    gru.set_weights(_random_weights(rng, 3, 5))
    expected = model.predict(x, verbose=0)

    paths = {
        "model": str(tmp_path / "model.keras"),
        "inputs": str(tmp_path / "x.npy"),
        "out": str(tmp_path / "pred.npy"),
        "report": str(tmp_path / "report.json"),
    }
    model.save(paths["model"])
    np.save(paths["inputs"], x)
    script = LOAD_SCRIPT.format(root=str(REPO_ROOT), **paths)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    report = json.loads(Path(paths["report"]).read_text())
    assert report == {
        "loaded_without_import": False,
        "class": "seqkit.layers.GRU",
        "units": 5,
        "reset_after": False,
        "dropout": 0.2,
    }
    np.testing.assert_allclose(np.load(paths["out"]), expected, rtol=0, atol=1e-6)


def test_config_round_trip():
    layer = GRU(
        7,
        reset_after=True,
        dropout=0.25,
        recurrent_dropout=0.125,
        use_bias=False,
        go_backwards=True,
        return_sequences=True,
        seed=3,
        name="g",
    )
    config = layer.get_config()
    assert "cell" not in config and "implementation" not in config
    restored = GRU.from_config(config)
    assert type(restored) is GRU
    assert restored.units == 7
    assert restored.reset_after is True
    assert restored.cell.dropout == 0.25
    assert restored.cell.recurrent_dropout == 0.125
    assert restored.cell.use_bias is False
    assert restored.go_backwards is True and restored.return_sequences is True
    assert restored.get_config() == config

    # A default layer keeps its defaults through the round trip.
    plain = GRU.from_config(GRU(2).get_config())
    assert (plain.units, plain.reset_after, plain.cell.dropout) == (2, False, 0.0)

    # Through Keras' serialisation (the registered name), and for the cell alone.
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(again) is GRU and again.get_config() == config
    cell = GRUCell.from_config(GRUCell(3, dropout=0.5).get_config())
    assert (cell.units, cell.reset_after, cell.dropout) == (3, False, 0.5)


# --------------------------------------------------------------------------------------------
# 6. Bidirectional
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("with_mask", [False, True])
def test_bidirectional_matches_keras(with_mask, sequence_path):
    rng = np.random.default_rng(9)
    x, mask = _padded(rng, "right")
    ours = keras.layers.Bidirectional(GRU(4, return_sequences=True, return_state=True))
    theirs = keras.layers.Bidirectional(
        keras.layers.GRU(4, reset_after=False, return_sequences=True, return_state=True)
    )
    ours.build(x.shape)
    theirs.build(x.shape)
    assert type(ours.backward_layer) is GRU and ours.backward_layer.go_backwards is True
    weights = _random_weights(rng, 5, 4) + _random_weights(rng, 5, 4)
    ours.set_weights(weights)
    theirs.set_weights(ours.get_weights())
    kwargs = {"mask": mask} if with_mask else {}
    result = ours(x, **kwargs)
    assert len(result) == 3  # sequences, forward state, backward state
    _assert_all_close(result, theirs(x, **kwargs))
    seq = _np(result[0])
    assert seq.shape == (3, 7, 8)
    if not with_mask:
        # Forward half ends at the last step, backward half at the first.
        np.testing.assert_allclose(seq[:, -1, :4], _np(result[1]), rtol=0, atol=ATOL)
        np.testing.assert_allclose(seq[:, 0, 4:], _np(result[2]), rtol=0, atol=ATOL)
        backward = _numpy_gru(x, *weights[3:], go_backwards=True)["h"]
        np.testing.assert_allclose(seq[:, :, 4:], backward, rtol=0, atol=ATOL)


# --------------------------------------------------------------------------------------------
# 7. dropout
# --------------------------------------------------------------------------------------------
def _dropout_pair(rng, x, **dropout):
    weights = _random_weights(rng, 5, 4)
    plain = _built(GRU(4, return_sequences=True), x.shape)
    dropped = _built(GRU(4, return_sequences=True, seed=11, **dropout), x.shape)
    plain.set_weights(weights)
    dropped.set_weights(weights)
    return plain, dropped, weights


@pytest.mark.parametrize(
    "dropout",
    [{"dropout": 0.5}, {"recurrent_dropout": 0.5}, {"dropout": 0.4, "recurrent_dropout": 0.3}],
    ids=["input", "recurrent", "both"],
)
def test_dropout_inference_and_training(dropout, sequence_path):
    rng = np.random.default_rng(10)
    x = _sequences(rng)
    plain, dropped, weights = _dropout_pair(rng, x, **dropout)
    reference = _np(plain(x))

    # Each call draws fresh masks from the layer's seed generator, so the seeded layers below
    # are compared on their first call.
    trained = _np(dropped(x, training=True))
    assert np.all(np.isfinite(trained))
    assert np.abs(trained - reference).max() > 1e-2
    # A second training call draws new masks.
    assert np.abs(_np(dropped(x, training=True)) - trained).max() > 1e-3
    # Inference mode (default or explicit) is the no-dropout layer, before or after training.
    np.testing.assert_allclose(_np(dropped(x)), reference, rtol=0, atol=ATOL)
    np.testing.assert_allclose(_np(dropped(x, training=False)), reference, rtol=0, atol=ATOL)

    # Deterministic given the seed: a second layer with the same seed and weights agrees, and so
    # does Keras' GRU (reset_after=False, one mask per gate) with the same seed.
    twin = _built(GRU(4, return_sequences=True, seed=11, **dropout), x.shape)
    twin.set_weights(weights)
    np.testing.assert_allclose(_np(twin(x, training=True)), trained, rtol=0, atol=ATOL)
    keras_gru = _built(
        keras.layers.GRU(
            4, reset_after=False, return_sequences=True, seed=11, implementation=1,
            use_cudnn=False, **dropout,
        ),
        x.shape,
    )  # fmt: skip
    keras_gru.set_weights(weights)
    np.testing.assert_allclose(_np(keras_gru(x, training=True)), trained, rtol=0, atol=ATOL)


def test_trains_with_dropout():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(12)
    x = rng.normal(0.0, 1.0, (32, 6, 3)).astype("float32")
    y = np.stack([x[:, :, 0].mean(axis=1), x[:, -1, 1]], axis=1).astype("float32")
    model = keras.Sequential(
        [
            keras.Input((6, 3)),
            GRU(8, dropout=0.2, recurrent_dropout=0.2, seed=1),
            keras.layers.Dense(2),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="mse")
    before_weights = [w.copy() for w in model.layers[0].get_weights()]
    before = model.evaluate(x, y, verbose=0)
    history = model.fit(x, y, epochs=2, batch_size=8, verbose=0, shuffle=False)
    after = model.evaluate(x, y, verbose=0)
    assert len(history.history["loss"]) == 2
    assert np.all(np.isfinite(history.history["loss"]))
    assert after < 0.9 * before, (before, after)
    for old, new in zip(before_weights, model.layers[0].get_weights()):
        assert np.abs(new - old).max() > 0


# --------------------------------------------------------------------------------------------
# 8. argument validation
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"units": 0}, r"`units`.*\b0\b"),
        ({"units": -3}, r"`units`.*-3"),
        ({"units": 4, "dropout": 1.5}, r"`dropout`.*1\.5"),
        ({"units": 4, "recurrent_dropout": 1.0}, r"`recurrent_dropout`.*1\.0"),
        ({"units": 4, "dropout": -0.1}, r"`dropout`.*-0\.1"),
    ],
)
@pytest.mark.parametrize("cls", [GRU, GRUCell])
def test_invalid_arguments(cls, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        cls(**kwargs)


# --------------------------------------------------------------------------------------------
# 9. gradients
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("with_mask", [False, True])
@pytest.mark.parametrize("reset_after", [False, True])
def test_gradients_match_keras(reset_after, with_mask, sequence_path):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("uses tf.GradientTape")
    import tensorflow as tf

    rng = np.random.default_rng(13)
    x, mask = _padded(rng, "right")
    options = {"return_sequences": True, "return_state": True}
    ours, theirs = _pair(reset_after, x.shape, **options)
    _share_weights(ours, theirs, "seqkit_to_keras", rng, reset_after)
    projection = rng.normal(0.0, 1.0, (3, 7, 4)).astype("float32")
    x_t = tf.constant(x)
    kwargs = {"mask": tf.constant(mask)} if with_mask else {}

    def gradients(layer):
        with tf.GradientTape() as tape:
            tape.watch(x_t)
            seq, state = layer(x_t, **kwargs)
            loss = tf.reduce_sum(seq * projection) + tf.reduce_sum(state**2)
        grads = tape.gradient(loss, list(layer.trainable_weights) + [x_t])
        return [g.numpy() for g in grads]

    ours_grads, theirs_grads = gradients(ours), gradients(theirs)
    assert len(ours_grads) == 4
    names = ("kernel", "recurrent_kernel", "bias", "inputs")
    for name, a, b in zip(names, ours_grads, theirs_grads):
        assert np.abs(a).max() > 1e-3, name
        np.testing.assert_allclose(a, b, rtol=0, atol=ATOL, err_msg=name)


# --------------------------------------------------------------------------------------------
# 10. the whole-sequence path: its own gradient, inside compiled functions, with XLA
# --------------------------------------------------------------------------------------------
def _model_pair(reset_after, steps, mask_value=None):
    """The same two-layer model twice, with seqkit's GRU and with Keras' (same weights)."""
    models = []
    for make in (GRU, keras.layers.GRU):
        keras.utils.set_random_seed(0)
        inputs = keras.Input((steps, 5))
        x = keras.layers.Masking(mask_value)(inputs) if mask_value is not None else inputs
        x = make(6, reset_after=reset_after, return_sequences=True)(x)
        x = make(4, reset_after=reset_after, go_backwards=True)(x)
        models.append(keras.Model(inputs, keras.layers.Dense(2)(x)))
    models[1].set_weights(models[0].get_weights())
    return models


@pytest.mark.parametrize(
    "reset_after, steps, xla",
    [(False, None, True), (True, 7, True), (False, 7, False)],
    ids=["any_length-xla", "reset_after-xla", "graph"],
)
def test_compiled_training_matches_keras(reset_after, steps, xla, monkeypatch):
    """``train_on_batch`` / ``predict`` run the layer traced (XLA-compiled scans on TensorFlow);
    three SGD steps on padded sequences end with the weights Keras' GRU reaches (SGD: Adam's
    first steps move every weight by about the learning rate whatever the size of its
    gradient, which turns float32 rounding in a near-zero gradient into a visible difference)."""
    import seqkit.layers

    monkeypatch.setattr(seqkit.layers, "SEQUENCE_SCAN", True)
    monkeypatch.setattr(seqkit.layers, "TF_XLA", xla)
    rng = np.random.default_rng(20)
    x = rng.normal(0.0, 1.0, (8, 7, 5)).astype("float32")
    x[2, 4:] = 0.0  # right padding
    x[3, :3] = 0.0  # left padding
    y = rng.normal(0.0, 1.0, (8, 2)).astype("float32")
    results = []
    for model in _model_pair(reset_after, steps, mask_value=0.0):
        model.compile(keras.optimizers.SGD(0.5), "mse")
        losses = [float(model.train_on_batch(x, y)) for _ in range(3)]
        results.append((model.get_weights(), losses, model.predict(x, verbose=0)))
    (ours, our_loss, our_pred), (theirs, their_loss, their_pred) = results
    assert our_loss[-1] < our_loss[0]
    np.testing.assert_allclose(our_loss, their_loss, rtol=1e-5)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    np.testing.assert_allclose(our_pred, their_pred, rtol=0, atol=1e-5)


@pytest.mark.parametrize("reset_after", [False, True])
def test_gradients_with_initial_state_and_left_padding_match_keras(reset_after, sequence_path):
    """Masked leading steps output zeros but carry the initial state, as in Keras; the gradient
    reaches the initial state."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("uses tf.GradientTape")
    import tensorflow as tf

    rng = np.random.default_rng(21)
    x, mask = _padded(rng, "left")
    options = {"return_sequences": True, "return_state": True}
    ours, theirs = _pair(reset_after, x.shape, **options)
    _share_weights(ours, theirs, "seqkit_to_keras", rng, reset_after)
    h0 = tf.constant(rng.normal(0.0, 0.5, (3, 4)).astype("float32"))
    projection = rng.normal(0.0, 1.0, (3, 7, 4)).astype("float32")

    def run(layer):
        with tf.GradientTape() as tape:
            tape.watch(h0)
            seq, state = layer(x, mask=mask, initial_state=h0)
            loss = tf.reduce_sum(seq * projection) + tf.reduce_sum(state**2)
        grads = tape.gradient(loss, [h0] + list(layer.trainable_weights))
        return [seq.numpy(), state.numpy()] + [g.numpy() for g in grads]

    got, expected = run(ours), run(theirs)
    assert np.all(got[0][2, :5] == 0.0)  # row 2 is masked for its first 5 steps
    assert np.abs(got[2]).max() > 1e-3  # d loss / d h0
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=0, atol=ATOL)


@pytest.mark.parametrize(
    "activations",
    [
        {"activation": "relu"},
        {"recurrent_activation": "hard_sigmoid"},
        {"activation": "softsign", "recurrent_activation": "tanh"},
    ],
    ids=["relu", "hard_sigmoid", "softsign_tanh"],
)
def test_other_activations_match_keras(activations):
    """The scans' gradient is written for tanh and sigmoid; other activations take Keras' loop
    over the cell, and still give Keras' numbers and gradients."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("uses tf.GradientTape")
    import tensorflow as tf

    rng = np.random.default_rng(25)
    x = tf.constant(_sequences(rng))
    options = {"return_sequences": True, **activations}
    ours, theirs = _pair(False, x.shape, **options)
    _share_weights(ours, theirs, "seqkit_to_keras", rng, False)

    def run(layer):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.sin(layer(x)))
        return [loss] + tape.gradient(loss, [x] + list(layer.trainable_weights))

    for a, b in zip(run(ours), run(theirs)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=ATOL)


def test_xla_and_plain_graph_loops_agree(monkeypatch):
    """The TensorFlow scans compiled with XLA and run as a plain graph give the same outputs
    and gradients (the eager run of the same functions is the third witness)."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("TensorFlow's XLA switch")
    import tensorflow as tf

    import seqkit.layers

    monkeypatch.setattr(seqkit.layers, "SEQUENCE_SCAN", True)
    rng = np.random.default_rng(22)
    x = tf.constant(_sequences(rng, batch=4, steps=9))
    layer = _built(GRU(4, return_sequences=True), x.shape)
    layer.set_weights(_random_weights(rng, 5, 4))

    def grads():
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.sin(layer(x)))
        return [loss] + tape.gradient(loss, [x] + list(layer.trainable_weights))

    results = {}
    for name, xla, fn in (
        ("eager", True, grads),
        ("xla", True, tf.function(grads)),
        ("graph", False, tf.function(grads)),
    ):
        monkeypatch.setattr(seqkit.layers, "TF_XLA", xla)
        results[name] = [v.numpy() for v in fn()]
    for name in ("xla", "graph"):
        for a, b in zip(results[name], results["eager"]):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "reset_after, splits, batch", [(False, 3, 7), (True, 2, None), (False, 4, None)],
    ids=["reset_before-3_of_7", "reset_after-2_dynamic", "masked-4_dynamic"],
)  # fmt: skip
def test_batch_split_recurrences_equal_one(reset_after, splits, batch, monkeypatch):
    """On TensorFlow the scans run as independent recurrences over parts of the batch
    (``BATCH_SPLITS``), each its own compiled loop: outputs, final state and every gradient
    equal one recurrence over the whole batch (and Keras' GRU), for uneven parts, a batch size
    known only when the step runs (``None`` in the signature) and masks."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the batch split is TensorFlow's")
    import tensorflow as tf

    import seqkit.layers

    monkeypatch.setattr(seqkit.layers, "SEQUENCE_SCAN", True)
    rng = np.random.default_rng(23)
    x = _sequences(rng, batch=7, steps=9)
    mask = np.ones((7, 9), bool)
    if splits == 4:  # masked: right and left padding in different parts
        mask[1, 6:] = False
        mask[5, :4] = False
    x, mask = tf.constant(x), tf.constant(mask)
    options = {"return_sequences": True, "return_state": True}
    ours, theirs = _pair(reset_after, x.shape, **options)
    _share_weights(ours, theirs, "seqkit_to_keras", rng, reset_after)
    h0 = tf.constant(rng.normal(0.0, 0.5, (7, 4)).astype("float32"))
    projection = tf.constant(rng.normal(0.0, 1.0, (7, 9, 4)).astype("float32"))
    spec = [tf.TensorSpec((batch, 9, 5)), tf.TensorSpec((batch, 9), tf.bool),
            tf.TensorSpec((batch, 4))]  # fmt: skip

    def run(layer, k):
        def grads(x, mask, h0):
            with tf.GradientTape() as tape:
                tape.watch([x, h0])
                seq, state = layer(x, mask=mask, initial_state=h0)
                loss = tf.reduce_sum(seq * projection) + tf.reduce_sum(state**2)
            return [seq, state] + tape.gradient(loss, [x, h0] + list(layer.trainable_weights))

        monkeypatch.setattr(seqkit.layers, "BATCH_SPLITS", k)
        return [v.numpy() for v in tf.function(grads, input_signature=spec)(x, mask, h0)]

    one, split, keras_gru = run(ours, 1), run(ours, splits), run(theirs, None)
    with tf.Graph().as_default():  # the split really happens: `splits` parts inside a trace
        monkeypatch.setattr(seqkit.layers, "BATCH_SPLITS", splits)
        p = tf.compat.v1.placeholder(tf.float32, (9, batch, 12))
        assert len(seqkit.layers._batch_parts(p)) == splits
    assert np.abs(one[3]).max() > 1e-3  # d loss / d h0
    for a, b, c in zip(split, one, keras_gru):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
        np.testing.assert_allclose(a, c, rtol=0, atol=ATOL)


# --------------------------------------------------------------------------------------------
# 11. mixed precision
# --------------------------------------------------------------------------------------------
@pytest.fixture
def dtype_policy():
    """Set a global dtype policy for one test, and restore float32 afterwards."""
    yield keras.mixed_precision.set_dtype_policy
    keras.mixed_precision.set_dtype_policy("float32")


# Stated tolerances, largest and mean absolute error against float32: the weights and the input
# projection are rounded to the compute dtype (relative 2**-9 for bfloat16, 2**-11 for float16)
# and so is every output (|h| < 1). Measured with the weights below: bfloat16 0.020 / 0.0019,
# float16 0.0017 / 0.0002 (Keras' GRU, state in the compute dtype: 0.029 / 0.0030, 0.0021 /
# 0.0003).
MIXED_TOLERANCE = {"mixed_bfloat16": (3e-2, 3e-3), "mixed_float16": (3e-3, 3e-4)}


@pytest.mark.parametrize("policy", list(MIXED_TOLERANCE))
@pytest.mark.parametrize("reset_after", [False, True])
def test_mixed_precision_outputs_close_to_float32(policy, reset_after, dtype_policy, sequence_path):
    rng = np.random.default_rng(23)
    x = _sequences(rng, batch=4, steps=50, features=8)
    weights = _random_weights(rng, 8, 16, reset_after=reset_after)
    expected = _numpy_gru(x, *weights, reset_after=reset_after)["h"]

    dtype_policy(policy)
    layer = _built(GRU(16, reset_after=reset_after, return_sequences=True), x.shape)
    layer.set_weights(weights)
    compute = policy.split("_")[1]
    assert layer.compute_dtype == compute and layer.cell.compute_dtype == "float32"
    assert all(w.dtype == "float32" for w in layer.weights)
    out = layer(x)
    assert keras.backend.standardize_dtype(out.dtype) == compute
    error = np.abs(_np(keras.ops.cast(out, "float32")) - expected)
    largest, mean = MIXED_TOLERANCE[policy]
    assert error.max() < largest and error.mean() < mean, (error.max(), error.mean())


@pytest.mark.parametrize("policy", list(MIXED_TOLERANCE))
def test_mixed_precision_state_accumulates_in_float32(policy, dtype_policy, sequence_path):
    """A slow integrator (z = sigmoid(7) = 0.99909 at every step, h~ = 1): h_t = 1 - z**t. Each
    step adds < 1e-3, below half a bfloat16 ulp of h once h > 0.25, so a state carried in the
    compute dtype stalls; carried in float32 it is exact up to the output's rounding."""
    steps = 400
    x = np.ones((1, steps, 1), dtype="float32")
    kernel = np.zeros((1, 3), dtype="float32")
    kernel[0, 2] = 20.0  # h~ = tanh(20) = 1
    bias = np.array([7.0, 0.0, 0.0], dtype="float32")  # z = sigmoid(7)
    expected = 1.0 - _sigmoid(7.0) ** np.arange(1, steps + 1)

    dtype_policy(policy)
    layer = _built(GRU(1, return_sequences=True), x.shape)
    layer.set_weights([kernel, np.zeros((1, 3), dtype="float32"), bias])
    out = _np(keras.ops.cast(layer(x), "float32"))[0, :, 0]
    np.testing.assert_allclose(out, expected, rtol=MIXED_TOLERANCE[policy][0] / 4, atol=0)


@pytest.mark.parametrize("policy", list(MIXED_TOLERANCE))
def test_mixed_precision_training_step(policy, dtype_policy, sequence_path):
    dtype_policy(policy)
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(24)
    x = rng.normal(0.0, 1.0, (8, 12, 6)).astype("float32")
    y = rng.integers(0, 3, (8,))
    model = keras.Sequential(
        [
            keras.Input((12, 6)),
            GRU(8, return_sequences=True),
            GRU(8, reset_after=True),
            keras.layers.Dense(3, activation="softmax", dtype="float32"),
        ]
    )
    model.compile(keras.optimizers.Adam(0.02), "sparse_categorical_crossentropy")
    before = [w.copy() for w in model.get_weights()]
    losses = [float(model.train_on_batch(x, y)) for _ in range(3)]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    after = model.get_weights()
    assert all(w.dtype == np.float32 and np.all(np.isfinite(w)) for w in after)
    assert all(np.abs(a - b).max() > 0 for a, b in zip(after, before))
