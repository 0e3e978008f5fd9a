"""TFLite conversion: float, full int8 (calibrated) and the dynamic-range fallback."""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np

from ..errors import ParameterError
from .models import NEXT, inference_copy, streaming_model

CALIBRATION_ROLLOUTS = 100  # streaming int8: clips rolled out for (frame, state) samples
FULL_INT8 = "full int8 (int8 weights and activations; float32 inputs and outputs)"
DYNAMIC_RANGE = "dynamic range (int8 weights, float32 activations)"


@contextlib.contextmanager
def _quiet():
    """Keep converters' prints off stdout (results only there) and their warnings silent."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:  # converter errors: the line that says what failed
        if "error:" in line:
            return line[line.index("error:") :]
    return lines[0] if lines else type(exc).__name__


def _representative(model, calibration, streaming: bool, max_samples: int, seed: int = 0):
    """A representative-dataset generator: clips (whole clip) or rollout (frame, state) pairs."""
    x = np.asarray(calibration, dtype=np.float32)
    rng = np.random.default_rng(seed)
    if not streaming:
        pick = rng.permutation(len(x))[:max_samples]
        return lambda: ([x[i : i + 1]] for i in pick)
    step = streaming_model(model)
    names = [t.name for t in step.inputs]
    clips = x[rng.permutation(len(x))[:CALIBRATION_ROLLOUTS]]
    samples = []
    states = [np.zeros((len(clips), t.shape[-1]), np.float32) for t in step.inputs[1:]]
    for t in range(clips.shape[1]):
        samples.append([clips[:, t], *states])
        out = step([clips[:, t], *states], training=False)
        states = [np.asarray(out[NEXT + n]) for n in names[1:]]
    flat = [
        {n: s[k][i : i + 1] for k, n in enumerate(names)}
        for s in samples
        for i in range(len(clips))
    ]
    pick = rng.permutation(len(flat))[:max_samples]
    return lambda: (flat[i] for i in pick)


def _convert(keras_model, quantize=None, representative=None) -> bytes:
    """One TFLite conversion: float, ``"int8"`` (full integer kernels, float32 inputs and
    outputs, calibrated on ``representative``) or ``"dynamic"`` (dynamic-range)."""
    import tensorflow as tf  # optional: TensorFlow is one Keras backend of three

    conv = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    if quantize:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "int8":
        conv.representative_dataset = representative
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    with _quiet():
        return conv.convert()


def to_tflite(model, streaming=False, int8=False, calibration=None, max_samples=500):
    """Convert ``model`` (the whole-clip Keras model) to TFLite; return ``(bytes, quantization,
    notes)``.

    ``int8`` needs ``calibration``: an array of whole clips (N, T, F), for example the training
    split. Full integer quantisation is tried first; if the converter refuses, dynamic-range
    quantisation is used and a note says why.
    """
    if not int8:
        return _convert(streaming_model(model) if streaming else inference_copy(model, 1)), None, []
    if calibration is None or len(calibration) == 0:
        raise ParameterError(
            "int8 export needs calibration clips (the training split); none given."
        )
    if streaming:
        keras_model = streaming_model(model)
    elif model.inputs[0].shape[1] is not None:
        # The calibrator crashes on a WHILE loop (tensorflow#75140): unroll the time steps.
        keras_model = inference_copy(model, unroll=True)
    else:
        keras_model = None
        failure = "the clip length is not fixed, so the recurrent layers cannot be unrolled"
    if keras_model is not None:
        representative = _representative(model, calibration, streaming, max_samples)
        try:
            return _convert(keras_model, "int8", representative), FULL_INT8, []
        except Exception as exc:  # ConverterError and friends: fall back, say why
            failure = _first_line(exc)
    note = (
        f"full int8 quantisation is not possible for this model ({failure}); "
        "wrote dynamic-range quantisation instead (int8 weights, float32 activations)."
    )
    keras_model = streaming_model(model) if streaming else inference_copy(model, batch_size=1)
    return _convert(keras_model, "dynamic"), DYNAMIC_RANGE, [note]
