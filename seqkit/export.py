"""Export a trained model for serving and for devices: ``.keras``, SavedModel, TFLite (float
and int8) and ONNX, whole-clip or streaming.

Two shapes of model:

* **whole clip** -- the Keras model as trained: ``features`` (N, T, F) in, ``scores`` out.
* **streaming** -- one feature frame in, the recurrent states in, the scores and the new states
  out, with every state an explicit input and output (google-research kws_streaming's
  external-state mode). It is built from the trained model's own layers: each recurrent layer
  is replaced by one call of its cell (seqkit's GRU cell with either ``reset_after``, Keras'
  GRU, LSTM and SimpleRNN cells, or a plugin's cell); normalisation, dense and dropout layers
  act on the frame. Fed the frames of a clip one by one, starting from zero states, its last
  scores are the whole-clip scores. Inputs: ``frame`` (N, F) and ``<layer>_state<k>``
  (N, size); outputs: the model's output (``scores``) and ``next_<layer>_state<k>``.

What works on TensorFlow 2.21 (measured; ``/work/shared/REFERENCES.md`` section 7 and
``bench/bench_export.py``):

* TFLite cannot convert a Keras RNN with an unknown batch size (its TensorList needs a static
  element shape), so the whole-clip float ``.tflite`` is converted with batch size 1 (a
  ``WHILE`` loop; any number of clips is run one at a time).
* The int8 calibrator crashes the process on any ``WHILE`` model (tensorflow#75140), so the
  whole-clip int8 model is converted from an unrolled copy (``unroll=True``), which gives
  full integer kernels but repeats per-step tensors: it is larger than the float one. The
  streaming model has no loop and quantises to a fraction of the float size: it is the one to
  put on a device.
* int8 models keep float32 inputs and outputs (quantise/dequantise inside), so the state fed
  back between calls is float. Calibration data: clips of the run's training split (whole
  clip), or frames and states from Keras rollouts of those clips (streaming).
* ONNX goes through Keras' own exporter and ``tf2onnx`` (``pip install 'seqkit[onnx]'``);
  ``onnxruntime`` runs it. tf2onnx turns captured constants into graph inputs, so the
  normalisation is rebuilt with variables for it.

``load_exported(path)`` opens any of these files and gives ``predict(x)`` and, for streaming
exports, ``step(frame, state)``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ParameterError, RunError

__all__ = [
    "FORMATS",
    "ExportResult",
    "Exported",
    "export_model",
    "export_run",
    "load_exported",
    "streaming_model",
    "to_tflite",
]

FORMATS = ("keras", "saved_model", "tflite", "tflite_int8", "onnx")
SUFFIXES = {"keras": ".keras", "saved_model": "", "tflite": ".tflite", "tflite_int8": ".tflite",
            "onnx": ".onnx"}  # fmt: skip
FRAME_INPUT = "frame"
NEXT = "next_"
# What a SavedModel folder holds; --overwrite replaces only folders holding nothing else.
SAVED_MODEL_ENTRIES = {"saved_model.pb", "fingerprint.pb", "variables", "assets", "assets.extra"}
CALIBRATION_ROLLOUTS = 100  # streaming int8: clips rolled out for (frame, state) samples
FULL_INT8 = "full int8 (int8 weights and activations; float32 inputs and outputs)"
DYNAMIC_RANGE = "dynamic range (int8 weights, float32 activations)"


@dataclass
class ExportResult:
    """What an export wrote, and how its outputs compare with the Keras model's."""

    path: Path
    format: str
    streaming: bool
    size: int  # bytes (a SavedModel folder: all its files)
    quantization: str | None = None
    check: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def default_name(fmt: str, streaming: bool) -> str:
    """``model.tflite``, ``model_stream_int8.tflite``, ``saved_model_stream``..."""
    _check_format(fmt)
    stem = "saved_model" if fmt == "saved_model" else "model"
    stem += "_stream" if streaming else ""
    stem += "_int8" if fmt == "tflite_int8" else ""
    return stem + SUFFIXES[fmt]


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        from .errors import did_you_mean

        raise ParameterError(
            f"`format` must be one of {', '.join(FORMATS)}; received {fmt!r}.{did_you_mean(fmt, FORMATS)}"
        )


# -- models for export ---------------------------------------------------------------------------


def _keras():
    import keras

    return keras


def _layer_chain(model):
    """The model's layers after its input, checked to form one chain (as ``build_model`` does)."""
    keras = _keras()
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ParameterError(
            f"Model '{model.name}' has {len(model.inputs)} inputs and {len(model.outputs)} "
            "outputs; export handles the one-input, one-output models `seqkit train` builds."
        )
    return [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]


def _standardize_stats(layer):
    """``(mean, variance)`` of a Normalization layer, flat, float32."""
    mean = np.asarray(_keras().ops.convert_to_numpy(layer.mean), dtype=np.float32).reshape(-1)
    var = np.asarray(_keras().ops.convert_to_numpy(layer.variance), dtype=np.float32).reshape(-1)
    return mean, var


def _copy_weights(src_layers, dst_layers) -> None:
    for src, dst in zip(src_layers, dst_layers):
        if getattr(dst, "_seqkit_fixed", False) or not src.weights:
            continue
        dst.set_weights(src.get_weights())
        if hasattr(dst, "finalize_state"):  # Normalization keeps mean/variance beside its weights
            dst.finalize_state()


def _set_rnn_options(config: dict, options: dict) -> dict:
    """Set ``options`` (``unroll``) in a recurrent layer's config, inside wrappers too."""
    config = dict(config)
    if "unroll" in config:
        config.update(options)
    for key in ("layer", "backward_layer"):  # keras.layers.Bidirectional
        inner = config.get(key)
        if isinstance(inner, dict) and isinstance(inner.get("config"), dict):
            config[key] = {**inner, "config": _set_rnn_options(inner["config"], options)}
    return config


def inference_copy(model, batch_size=None, unroll=False, onnx=False, named_output=True):
    """A copy of ``model`` for conversion: no optimizer, optional fixed batch size, unrolled
    recurrent layers, Normalization rebuilt with variables (``onnx``), and a dict output named
    after the last layer (``scores``), so exported signatures carry names."""
    keras = _keras()
    _layer_chain(model)

    def clone(layer):
        if onnx and isinstance(layer, keras.layers.Normalization):
            mean, var = _standardize_stats(layer)
            return _standardize_layer(mean, var, layer.name)
        config = layer.get_config()
        if unroll:
            config = _set_rnn_options(config, {"unroll": True})
        return layer.__class__.from_config(config)

    shape = tuple(model.inputs[0].shape[1:])
    inp = keras.Input(shape, batch_size=batch_size, name=model.inputs[0].name)
    copy = keras.models.clone_model(model, input_tensors=inp, clone_function=clone)
    _copy_weights(model.layers, copy.layers)
    out = {model.layers[-1].name: copy.outputs[0]} if named_output else copy.outputs[0]
    return keras.Model(copy.inputs[0], out, name=model.name)  # uncompiled: no optimizer state


def _standardize_layer(mean, var, name):
    """``(x - mean) / max(sqrt(var), eps)`` (Keras' Normalization) with variables, not
    captured constants, so that tf2onnx keeps them inside the graph."""
    keras = _keras()

    class Standardize(keras.layers.Layer):
        _seqkit_fixed = True

        def build(self, input_shape):
            scale = 1.0 / np.maximum(np.sqrt(var), keras.config.epsilon())
            self.shift = self.add_weight(
                shape=mean.shape, initializer=keras.initializers.Constant(mean), trainable=False
            )
            self.scale = self.add_weight(
                shape=mean.shape, initializer=keras.initializers.Constant(scale), trainable=False
            )

        def call(self, x):
            return (x - self.shift) * self.scale

    return Standardize(name=name)


def _not_streamable(layer, why: str, fix: str = "") -> ParameterError:
    return ParameterError(
        f"Layer '{layer.name}' ({type(layer).__name__}) {why}, so the model cannot be "
        f"exported with --streaming; {fix}export it without --streaming (whole clip in, "
        "scores out)."
    )


def streaming_model(model):
    """The single-step model of ``model``: ``[frame, *states] -> {output, next_<state>...}``.

    Built from the trained layers themselves (they share weights): a recurrent layer becomes
    one call of its cell, Normalization / Dense / Dropout / Activation act on the frame.
    Raises ParameterError for layers that need the whole clip (Bidirectional, go_backwards,
    pooling over time) or that it does not know.
    """
    keras = _keras()
    layers = _layer_chain(model)
    per_frame = (
        keras.layers.Dense,
        keras.layers.Dropout,
        keras.layers.Activation,
        keras.layers.LayerNormalization,
    )
    frame = keras.Input((model.inputs[0].shape[-1],), name=FRAME_INPUT)
    inputs, outputs, x = [frame], {}, frame
    for layer in layers:
        if isinstance(layer, keras.layers.Bidirectional):
            raise _not_streamable(layer, "reads the clip backwards as well as forwards")
        if isinstance(layer, keras.layers.RNN):
            if layer.go_backwards:
                raise _not_streamable(layer, "reads the clip backwards (go_backwards)")
            sizes = layer.cell.state_size
            sizes = list(sizes) if isinstance(sizes, (list, tuple)) else [sizes]
            if not all(isinstance(s, int) for s in sizes):
                raise _not_streamable(layer, f"has nested states {sizes}")
            states = [
                keras.Input((size,), name=f"{layer.name}_state{k}") for k, size in enumerate(sizes)
            ]
            x, new = layer.cell(x, states)
            new = list(new) if isinstance(new, (list, tuple)) else [new]
            inputs += states
            for state, value in zip(states, new):
                outputs[NEXT + state.name] = value
        elif isinstance(layer, keras.layers.Normalization):
            mean, var = _standardize_stats(layer)
            x = keras.layers.Normalization(axis=-1, mean=mean, variance=var, name=layer.name)(x)
        elif isinstance(layer, per_frame):
            x = layer(x)
        elif isinstance(
            layer, (keras.layers.GlobalAveragePooling1D, keras.layers.GlobalMaxPooling1D)
        ):
            raise _not_streamable(
                layer,
                "pools over the whole clip (task pooling mean or max, or a head on a layer "
                "that returns sequences)",
                "retrain with `task: {type: kws, pooling: last}`, or ",
            )
        else:
            raise _not_streamable(layer, "is not a layer seqkit knows how to run frame by frame")
    name = layers[-1].name
    return keras.Model(inputs, {name: x, **outputs}, name=f"{model.name}_stream")


# -- TFLite --------------------------------------------------------------------------------------


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
    import tensorflow as tf

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


# -- writing -------------------------------------------------------------------------------------


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _check_writable(path: Path, fmt: str, overwrite: bool) -> None:
    if not (path.exists() or path.is_symlink()):
        return
    if not overwrite:
        raise RunError(f"'{path}' exists; pass --overwrite to replace it, or choose another --out.")
    if fmt == "saved_model":
        entries = (
            {p.name for p in path.iterdir()} if path.is_dir() and not path.is_symlink() else None
        )
        if entries is None or "saved_model.pb" not in entries or entries - SAVED_MODEL_ENTRIES:
            raise RunError(
                f"'{path}' is not a SavedModel folder holding only SavedModel files; refusing to "
                "replace it even with --overwrite. Choose another --out."
            )
    elif path.is_dir() and not path.is_symlink():
        raise RunError(f"'{path}' is a folder; refusing to replace it. Choose another --out.")


def _replace(tmp: Path, dest: Path) -> None:
    """Move ``tmp`` to ``dest``, replacing a file or (checked) SavedModel folder there."""
    if dest.is_dir() and not dest.is_symlink():
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        os.rename(dest, old)
        os.rename(tmp, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, dest)


def _write(model, fmt, tmp: Path, streaming, calibration, max_samples):
    """Write the artifact to ``tmp``; return ``(quantization, notes)``."""
    if fmt == "keras":
        (streaming_model(model) if streaming else inference_copy(model, named_output=False)).save(
            str(tmp)
        )
        return None, []
    if fmt == "saved_model":
        m = streaming_model(model) if streaming else inference_copy(model)
        with _quiet():
            m.export(str(tmp), format="tf_saved_model", verbose=False)
        return None, []
    if fmt in ("tflite", "tflite_int8"):
        data, quant, notes = to_tflite(
            model, streaming, fmt == "tflite_int8", calibration, max_samples=max_samples
        )
        tmp.write_bytes(data)
        return quant, notes
    if fmt == "onnx":
        # Normalization rebuilt with variables: tf2onnx makes captured constants inputs.
        if streaming:
            m = _onnx_streaming_copy(streaming_model(model))
        else:
            m = inference_copy(model, onnx=True)
        zeros = [np.zeros((1, *t.shape[1:]), np.float32) for t in m.inputs]
        m(zeros if len(zeros) > 1 else zeros[0])  # Keras exports only models that were called
        with _quiet():
            m.export(str(tmp), format="onnx", verbose=False)
        return None, []
    raise AssertionError(fmt)


def _onnx_streaming_copy(m):
    keras = _keras()

    def clone(layer):
        if isinstance(layer, keras.layers.Normalization):
            mean, var = _standardize_stats(layer)
            return _standardize_layer(mean, var, layer.name)
        return layer.__class__.from_config(layer.get_config())

    copy = keras.models.clone_model(m, clone_function=clone)
    _copy_weights(m.layers, copy.layers)
    return copy


def _need_onnx() -> None:
    missing = [m for m in ("tf2onnx", "onnx") if importlib.util.find_spec(m) is None]
    if missing:
        raise ParameterError(
            f"--format onnx needs {' and '.join(missing)} (not installed). Install the "
            "converter Keras uses: pip install 'seqkit[onnx]' (tf2onnx>=1.17, onnxruntime)."
        )


def _check_destination(path: Path, fmt: str, overwrite: bool) -> None:
    """Raise before any work if ``fmt`` cannot be written to ``path`` (and its ``.json``)."""
    _check_format(fmt)
    suffix = SUFFIXES[fmt]
    if suffix and path.suffix != suffix:
        raise ParameterError(
            f"--out for --format {fmt} must end in '{suffix}'; received '{path}'. "
            f"Use e.g. '{path.with_suffix(suffix)}'."
        )
    _check_writable(path, fmt, overwrite)
    _check_writable(path.with_name(path.name + ".json"), "json", overwrite)
    if fmt == "onnx":
        _need_onnx()


def export_model(
    model,
    fmt: str,
    path,
    streaming: bool = False,
    calibration=None,
    overwrite: bool = False,
    max_samples: int = 500,
    meta: dict | None = None,
) -> ExportResult:
    """Export the Keras ``model`` as ``fmt`` to ``path``; never replaces a file without
    ``overwrite``. ``calibration``: whole clips for int8. ``meta`` (labels, recipe...) goes into
    the ``<path>.json`` written beside it, which ``load_exported`` reads."""
    path = Path(path)
    _check_destination(path, fmt, overwrite)
    sidecar = path.with_name(path.name + ".json")
    suffix = SUFFIXES[fmt]
    if streaming:
        streaming_model(model)  # a clear error before anything is written
    if fmt == "tflite_int8" and calibration is None:
        raise ParameterError("--format tflite_int8 needs calibration clips; none given.")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial-{os.getpid()}{suffix}")
    try:
        quant, notes = _write(model, fmt, tmp, streaming, calibration, max_samples)
        _replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
    result = ExportResult(path, fmt, streaming, _size(path), quant, notes=notes)
    info = {
        "format": fmt,
        "streaming": streaming,
        "quantization": quant,
        "input": {"name": model.inputs[0].name, "shape": list(model.inputs[0].shape[1:])},
        **(meta or {}),
    }
    if streaming:
        step = streaming_model(model)
        info["states"] = [{"name": t.name, "size": int(t.shape[-1])} for t in step.inputs[1:]]
    sidecar.write_text(json.dumps(info, indent=2) + "\n")
    return result


# -- checks --------------------------------------------------------------------------------------


def probe_inputs(model, n: int = 4, seed: int = 0) -> np.ndarray:
    """Random clips shaped like the model's input, spread as its Normalization expects."""
    keras = _keras()
    shape = tuple(model.inputs[0].shape[1:])
    mean, std = 0.0, 1.0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Normalization):
            m, v = _standardize_stats(layer)
            mean, std = m, np.sqrt(np.maximum(v, 1e-12))
            break
    rng = np.random.default_rng(seed)
    return (mean + std * rng.normal(size=(n, *shape))).astype(np.float32)


def check_export(model, path, x, y=None) -> dict:
    """Compare the exported model at ``path`` with ``model`` on clips ``x`` (labels ``y``):
    max abs difference of the scores, and accuracies when ``y`` is given. A streaming export
    is fed the frames one by one and its last scores are compared."""
    exported = load_exported(path)
    ref = np.concatenate(
        [np.asarray(model(x[i : i + 64], training=False)) for i in range(0, len(x), 64)]
    )
    got = exported.predict(x)
    out = {"clips": int(len(x)), "max_abs_diff": float(np.max(np.abs(got - ref)))}
    if y is not None:
        y = np.asarray(y)
        out["accuracy"] = float(np.mean(got.argmax(-1) == y))
        out["keras_accuracy"] = float(np.mean(ref.argmax(-1) == y))
        out["argmax_agreement"] = float(np.mean(got.argmax(-1) == ref.argmax(-1)))
    return out


# -- run folders ---------------------------------------------------------------------------------


def _splits(recipe):
    """``{split: (x, y)}`` of the recipe's data, via the task's loader."""
    from . import train

    if hasattr(train, "load_data"):
        data = train.load_data(recipe)
        return {name: (s.x, s.y) for name, s in data.splits.items()}
    _, data = train.load_dataset(recipe)  # before the task protocol
    return {name: (v[0], v[1]) for name, v in data.items()}


def export_run(
    run_dir,
    fmt: str,
    streaming: bool = False,
    out=None,
    overwrite: bool = False,
    check: bool = True,
    max_samples: int = 500,
) -> ExportResult:
    """Export a run folder's model (``RUN/export/<default name>`` unless ``out``) and check it.

    int8: calibrated on the training split, checked on the test split (the validation split
    when there is no test split): accuracy of the export and of the Keras model. Float: max abs
    difference from the Keras model on random clips spread like the training features.
    """
    from . import __version__
    from .train import Run

    _check_format(fmt)
    run = Run(run_dir)
    path = Path(out) if out else run.path / "export" / default_name(fmt, streaming)
    _check_destination(path, fmt, overwrite)
    model = run.model
    if streaming:
        streaming_model(model)
    splits = _splits(run.recipe) if fmt == "tflite_int8" else None
    calibration = splits["train"][0] if splits else None
    meta = {
        "seqkit": __version__,
        "run": str(run.path.resolve()),
        "labels": run.labels,
        "recipe": json.loads(json.dumps(run.recipe.to_dict())),
    }
    result = export_model(
        model, fmt, path, streaming, calibration, overwrite, max_samples=max_samples, meta=meta
    )
    if check and (fmt != "onnx" or importlib.util.find_spec("onnxruntime")):
        if splits:
            x, y = splits["test"] if "test" in splits else splits["validation"]
            result.check = check_export(model, path, x, y)
            result.check["split"] = "test" if "test" in splits else "validation"
        else:
            result.check = check_export(model, path, probe_inputs(model))
    return result


# -- loading -------------------------------------------------------------------------------------


class Exported:
    """An exported model, whatever its format: ``predict(x)`` and, when streaming, ``step``.

    ``predict(x)``: clips (N, T, F) -> scores (N, classes); a streaming export runs the frames
    one by one from zero states. ``step(frame, state)``: frames (N, F) or (F,) and the state
    dict from the previous call (``None``: zeros) -> ``(scores, new state dict)``.
    """

    def __init__(self, path, run, input_names, output_names, meta):
        self.path = Path(path)
        self.meta = meta
        self.labels = meta.get("labels")
        self._run = run  # dict of named float32 arrays -> dict of named arrays
        self.input_names = list(input_names)
        self.streaming = FRAME_INPUT in self.input_names
        states = [n for n in self.input_names if n != FRAME_INPUT]
        self.state_names = states if self.streaming else []
        outs = [n for n in output_names if not n.startswith(NEXT)]
        if len(outs) != 1:
            raise RunError(f"'{path}' has outputs {output_names}; expected one score output.")
        self.output_name = outs[0]
        self.state_sizes = {}

    def initial_state(self, batch: int = 1) -> dict:
        return {n: np.zeros((batch, self.state_sizes[n]), np.float32) for n in self.state_names}

    def step(self, frame, state=None):
        if not self.streaming:
            raise ParameterError(
                f"'{self.path}' is a whole-clip export; `step` needs one made with --streaming."
            )
        frame = np.asarray(frame, dtype=np.float32)
        single = frame.ndim == 1
        frame = frame[None] if single else frame
        state = self.initial_state(len(frame)) if state is None else state
        out = self._run({FRAME_INPUT: frame, **{n: state[n] for n in self.state_names}})
        new = {n: np.asarray(out[NEXT + n], np.float32) for n in self.state_names}
        scores = np.asarray(out[self.output_name])
        return (scores[0] if single else scores), new

    def predict(self, x, batch_size: int = 64) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if self.streaming:
            out, state = [], None
            for i in range(0, len(x), batch_size):
                chunk, state = x[i : i + batch_size], None
                for t in range(chunk.shape[1]):
                    scores, state = self.step(chunk[:, t], state)
                out.append(scores)
            return np.concatenate(out)
        name = self.input_names[0]
        step = self._batch_limit or batch_size
        return np.concatenate(
            [
                np.asarray(self._run({name: x[i : i + step]})[self.output_name])
                for i in range(0, len(x), step)
            ]
        )

    _batch_limit = None


def _interpreter(content_path: str):
    try:  # LiteRT, TFLite's successor, when installed
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    with warnings.catch_warnings():  # tf.lite.Interpreter's deprecation notice
        warnings.simplefilter("ignore")
        return Interpreter(model_path=content_path)


def _load_tflite(path: Path, meta: dict) -> Exported:
    interp = _interpreter(str(path))
    sigs = interp.get_signature_list()
    if not sigs:
        raise RunError(f"'{path}' has no signature; export it again with `seqkit export`.")
    key = "serving_default" if "serving_default" in sigs else next(iter(sigs))
    runner = interp.get_signature_runner(key)

    def run(inputs):
        return runner(**inputs)

    exp = Exported(path, run, sigs[key]["inputs"], sigs[key]["outputs"], meta)
    exp.interpreter = interp
    details = runner.get_input_details()
    exp.state_sizes = {n: int(details[n]["shape"][-1]) for n in exp.state_names}
    if not exp.streaming and details[exp.input_names[0]]["shape_signature"][0] != -1:
        exp._batch_limit = int(details[exp.input_names[0]]["shape"][0])
    return exp


def _load_saved_model(path: Path, meta: dict) -> Exported:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    fn = loaded.signatures["serving_default"]
    specs = fn.structured_input_signature[1]

    def run(inputs):
        out = fn(**{k: tf.constant(v) for k, v in inputs.items()})
        return {k: v.numpy() for k, v in out.items()}

    exp = Exported(path, run, list(specs), list(fn.structured_outputs), meta)
    exp.state_sizes = {n: int(specs[n].shape[-1]) for n in exp.state_names}
    exp._keep = loaded
    return exp


def _load_keras(path: Path, meta: dict) -> Exported:
    from .train import load_model

    model = load_model(path)
    names = [t.name for t in model.inputs]
    outputs = model.output if isinstance(model.output, dict) else {model.layers[-1].name: None}

    def run(inputs):
        out = model(
            [inputs[n] for n in names] if len(names) > 1 else inputs[names[0]], training=False
        )
        if not isinstance(out, dict):
            out = {model.layers[-1].name: out}
        return {k: np.asarray(v) for k, v in out.items()}

    exp = Exported(path, run, names, list(outputs), meta)
    exp.state_sizes = {t.name: int(t.shape[-1]) for t in model.inputs[1:]}
    exp.model = model
    return exp


def _load_onnx(path: Path, meta: dict) -> Exported:
    try:
        import onnxruntime as ort
    except ImportError:
        raise ParameterError(
            f"Running '{path}' needs onnxruntime: pip install 'seqkit[onnx]'."
        ) from None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ins = {i.name: i for i in session.get_inputs()}
    outs = [o.name for o in session.get_outputs()]

    def run(inputs):
        return dict(zip(outs, session.run(outs, inputs)))

    exp = Exported(path, run, list(ins), outs, meta)
    exp.state_sizes = {n: int(ins[n].shape[-1]) for n in exp.state_names}
    return exp


def load_exported(path) -> Exported:
    """Open an export (``.tflite``, ``.keras``, ``.onnx`` or a SavedModel folder)."""
    path = Path(path)
    if not path.exists():
        raise RunError(f"'{path}' does not exist; pass a file `seqkit export` wrote.")
    sidecar = path.with_name(path.name + ".json")
    meta = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise RunError(f"'{path}' is a folder without saved_model.pb; not a SavedModel.")
        return _load_saved_model(path, meta)
    loaders = {".tflite": _load_tflite, ".keras": _load_keras, ".onnx": _load_onnx}
    if path.suffix not in loaders:
        raise ParameterError(
            f"'{path}': unknown export type '{path.suffix}'; expected .tflite, .keras, .onnx "
            "or a SavedModel folder."
        )
    return loaders[path.suffix](path, meta)
