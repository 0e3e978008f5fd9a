"""Tests of the seqkit-example plugin: the MGU layer, its entry point and its .keras round trip.

Skipped as a whole when the plugin is not installed (``pip install ./plugins/seqkit-example``).
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

seqkit_example = pytest.importorskip("seqkit_example")

import keras  # noqa: E402
from seqkit_example.layers import MGU, MGUCell  # noqa: E402


def _installed() -> bool:
    try:
        importlib.metadata.distribution("seqkit-example")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


needs_dist = pytest.mark.skipif(
    not _installed(), reason="seqkit_example is importable but not installed as a distribution"
)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def mgu_reference(x, kernel, recurrent_kernel, bias, mask=None, go_backwards=False):
    """The MGU in plain numpy, with Keras' masking and go_backwards conventions.

    Returns ``(outputs, last_state)``; ``outputs`` are in processing order (reversed in time
    with ``go_backwards``), and a masked step keeps the state and repeats the previous output.
    """
    batch, steps, _ = x.shape
    u = recurrent_kernel.shape[0]
    kf, kh = kernel[:, :u], kernel[:, u:]
    uf, uh = recurrent_kernel[:, :u], recurrent_kernel[:, u:]
    bf, bh = bias[:u], bias[u:]
    if mask is None:
        mask = np.ones((batch, steps), dtype=bool)
    h = np.zeros((batch, u))
    outputs = []
    order = range(steps - 1, -1, -1) if go_backwards else range(steps)
    for t in order:
        f = _sigmoid(x[:, t] @ kf + h @ uf + bf)
        hh = np.tanh(x[:, t] @ kh + (f * h) @ uh + bh)
        h_new = (1.0 - f) * h + f * hh
        keep = mask[:, t][:, None]
        h = np.where(keep, h_new, h)
        outputs.append(h)
    return np.stack(outputs, axis=1), h


# -- (1) golden values, computed by hand ----------------------------------------------------------
# units 2, input_dim 3, 2 steps, batch 1. Gate order f, h in the packed weights.
GOLDEN_KERNEL = np.array(
    [[0.1, -0.2, 0.3, 0.0],
     [0.0, 0.4, -0.1, 0.2],
     [-0.3, 0.1, 0.2, 0.5]], dtype="float32"
)  # fmt: skip
GOLDEN_RECURRENT = np.array(
    [[0.5, -0.4, 0.3, 0.1],
     [0.2, 0.6, -0.2, 0.4]], dtype="float32"
)  # fmt: skip
GOLDEN_BIAS = np.array([0.1, -0.1, 0.0, 0.2], dtype="float32")
GOLDEN_X = np.array([[[1.0, 0.5, -1.0], [0.0, -1.0, 2.0]]], dtype="float32")
# Step 1 (h0 = 0):
#   pre_f = x W_f + b_f = [0.4 + 0.1, -0.1 - 0.1] = [0.5, -0.2]
#   f     = sigmoid(pre_f) = [0.6224593312, 0.4501660027]
#   pre_h = x W_h + b_h (f * h0 = 0) = [0.05, -0.4 + 0.2] = [0.05, -0.2]
#   h~    = tanh(pre_h) = [0.0499583750, -0.1973753202]
#   h1    = (1 - f) * 0 + f * h~ = [0.0310970567, -0.0888516589]
# Step 2:
#   pre_f = x W_f + h1 U_f + b_f = [-0.5022218035, -0.3657498180]
#   f     = [0.3770186790, 0.4095684132]
#   pre_h = x W_h + (f * h1) U_h + b_h = [0.5107954180, 0.9866160839]
#   h~    = [0.4705647183, 0.7559157127]
#   h2    = (1 - f) * h1 + f * h~ = [0.1967845739, 0.2571383730]
GOLDEN_H = np.array([[[0.0310970567, -0.0888516589], [0.1967845739, 0.2571383730]]])


def test_golden_values():
    layer = MGU(2, return_sequences=True, return_state=True)
    layer.build((1, 2, 3))
    layer.set_weights([GOLDEN_KERNEL, GOLDEN_RECURRENT, GOLDEN_BIAS])
    seq, state = layer(GOLDEN_X)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(seq), GOLDEN_H, atol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(state), GOLDEN_H[:, -1], atol=1e-5)
    # The cell alone, inside Keras' generic RNN, computes the same numbers.
    rnn = keras.layers.RNN(MGUCell(2), return_sequences=True)
    rnn.build((1, 2, 3))
    rnn.set_weights([GOLDEN_KERNEL, GOLDEN_RECURRENT, GOLDEN_BIAS])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(rnn(GOLDEN_X)), GOLDEN_H, atol=1e-5)


def test_golden_reference_agrees():
    # The numpy oracle reproduces the hand-computed numbers, so it can be trusted below.
    out, last = mgu_reference(GOLDEN_X, GOLDEN_KERNEL, GOLDEN_RECURRENT, GOLDEN_BIAS)
    np.testing.assert_allclose(out, GOLDEN_H, atol=1e-6)
    np.testing.assert_allclose(last, GOLDEN_H[:, -1], atol=1e-6)


# -- (2) numpy oracle on random weights ----------------------------------------------------------
@pytest.mark.parametrize("use_mask", [False, True], ids=["nomask", "mask"])
@pytest.mark.parametrize("go_backwards", [False, True], ids=["fwd", "bwd"])
def test_matches_numpy_oracle(use_mask, go_backwards):
    rng = np.random.default_rng(3)
    batch, steps, dim, units = 3, 7, 4, 5
    x = rng.normal(size=(batch, steps, dim)).astype("float32")
    kernel = rng.normal(scale=0.5, size=(dim, 2 * units)).astype("float32")
    recurrent = rng.normal(scale=0.5, size=(units, 2 * units)).astype("float32")
    bias = rng.normal(scale=0.5, size=(2 * units,)).astype("float32")
    mask = None
    if use_mask:
        mask = np.ones((batch, steps), dtype=bool)
        mask[0, 5:] = False  # right padding
        mask[1, :2] = False  # left padding: output stays zero until the first real step
        mask[2, [1, 4]] = False  # holes in the middle
    layer = MGU(units, return_sequences=True, return_state=True, go_backwards=go_backwards)
    layer.build((batch, steps, dim))
    layer.set_weights([kernel, recurrent, bias])
    seq, state = layer(x, mask=mask)
    want_seq, want_state = mgu_reference(
        x.astype("float64"), kernel, recurrent, bias, mask=mask, go_backwards=go_backwards
    )
    np.testing.assert_allclose(keras.ops.convert_to_numpy(seq), want_seq, atol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(state), want_state, atol=1e-5)
    last = MGU(units, go_backwards=go_backwards)
    last.build((batch, steps, dim))
    last.set_weights([kernel, recurrent, bias])
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(last(x, mask=mask)), want_state, atol=1e-5
    )


def test_stateful_continues_the_sequence():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 6, 3)).astype("float32")
    whole = MGU(4, return_sequences=True)
    whole.build((2, 6, 3))
    stateful = MGU(4, return_sequences=True, stateful=True)
    stateful.build((2, 3, 3))
    stateful.set_weights(whole.get_weights())
    first = keras.ops.convert_to_numpy(stateful(x[:, :3]))
    second = keras.ops.convert_to_numpy(stateful(x[:, 3:]))
    np.testing.assert_allclose(
        np.concatenate([first, second], axis=1), keras.ops.convert_to_numpy(whole(x)), atol=1e-5
    )


def test_config_round_trip():
    layer = MGU(
        3, activation="relu", use_bias=False, return_sequences=True, go_backwards=True,
        kernel_regularizer="l2", name="m",
    )  # fmt: skip
    clone = MGU.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert clone.units == 3 and clone.go_backwards and not clone.cell.use_bias
    layer.build((None, 4, 2))
    assert [tuple(w.shape) for w in layer.weights] == [(2, 6), (3, 6)]


# -- (3) the entry point -------------------------------------------------------------------------
@needs_dist
def test_entry_point_is_discovered():
    from seqkit.registry import LAYERS

    assert "mgu" in LAYERS.names()
    assert LAYERS.get("mgu") is seqkit_example.layers.MGU
    entry = LAYERS.entry("mgu")
    assert entry.is_plugin
    assert entry.source.startswith("seqkit-example")
    assert entry.ref == "seqkit_example.layers:MGU"


# -- (4) .keras round trip in a fresh process ----------------------------------------------------
RELOAD_SCRIPT = textwrap.dedent(
    """
    import sys
    import keras
    import numpy as np
    import seqkit.registry

    path, x_path, out_path = sys.argv[1:4]
    assert "seqkit_example" not in sys.modules, "the plugin was imported too early"
    try:
        keras.saving.load_model(path)
    except Exception:
        pass  # expected: Keras alone does not know the plugin's layer
    else:
        raise SystemExit("load_model worked before load_plugin_layers(); the test proves nothing")
    failures = seqkit.registry.load_plugin_layers()
    assert not failures, failures
    model = keras.saving.load_model(path)
    np.save(out_path, model.predict(np.load(x_path), verbose=0))
    """
)


@needs_dist
def test_keras_file_reloads_in_fresh_process(tmp_path):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 5, 3)).astype("float32")
    y = rng.integers(0, 2, size=(4,))
    model = keras.Sequential(
        [keras.Input((5, 3)), MGU(6, return_sequences=True), MGU(4), keras.layers.Dense(2)]
    )
    model.compile(
        optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    model.train_on_batch(x, y)  # weights away from their initial values; gradients flow
    want = model.predict(x, verbose=0)
    path = tmp_path / "mgu.keras"
    model.save(path)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "out.npy"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(
        [sys.executable, "-c", RELOAD_SCRIPT, str(path), str(tmp_path / "x.npy"), str(out)],
        cwd=tmp_path,  # not the plugin's source folder: use the installed package
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    np.testing.assert_array_equal(np.load(out), want)


# -- (5) argument validation ---------------------------------------------------------------------
@pytest.mark.parametrize("units", [0, -3, 2.5, True, "8"])
def test_bad_units_raise(units):
    with pytest.raises(ValueError, match=r"units.*" + repr(units).replace(".", r"\.")):
        MGU(units)


@needs_dist
def test_a_run_records_the_plugin_it_used(tmp_path):
    """run.json names each plugin component a run imported, with its distribution and version."""
    import json

    from seqkit.recipe import validate_dict
    from seqkit.training import train

    doc = {
        "name": "mgu-run",
        "data": {
            "source": {
                "type": "synthetic_tones",
                "root": str(tmp_path / "data"),
                "classes": ["ai", "noise"],
                "speakers": 6,
                "clips_per_speaker": 1,
                "seconds": 0.5,
                "file_sample_rate": 8000,
                "validation_percent": 30,
                "test_percent": 20,
            }  # fmt: skip
        },
        "features": [
            {"type": "load", "sample_rate": 8000},
            {"type": "fix_length", "seconds": 0.5},
            {"type": "melspectrogram", "n_fft": 256, "hop_length": 128, "n_mels": 16},
        ],
        "model": {"layers": [{"type": "mgu", "units": 4}]},
        "task": {"type": "kws"},
        "train": {"epochs": 1, "batch_size": 4},
    }
    run = train(validate_dict(doc), run_dir=tmp_path / "run", verbose=0)
    plugins = json.loads((run / "run.json").read_text())["plugins"]
    assert plugins == {
        "layers/mgu": f"seqkit-example {importlib.metadata.version('seqkit-example')}"
    }
