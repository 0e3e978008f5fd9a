"""Opening an export, whatever its format: ``load_exported(path)`` -> ``Exported``."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from ..errors import ParameterError, RunError
from ..runs import load_model
from .models import FRAME_INPUT, NEXT


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
        self.batch_limit = None  # a model converted with a fixed batch size runs that many

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
        step = self.batch_limit or batch_size
        return np.concatenate(
            [
                np.asarray(self._run({name: x[i : i + step]})[self.output_name])
                for i in range(0, len(x), step)
            ]
        )


def _interpreter(content_path: str):
    try:  # LiteRT, TFLite's successor, when installed
        from ai_edge_litert.interpreter import Interpreter  # optional: may not be installed
    except ImportError:
        import tensorflow as tf  # optional: TensorFlow is one Keras backend of three

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
        exp.batch_limit = int(details[exp.input_names[0]]["shape"][0])
    return exp


def _load_saved_model(path: Path, meta: dict) -> Exported:
    import tensorflow as tf  # optional: TensorFlow is one Keras backend of three

    loaded = tf.saved_model.load(str(path))
    fn = loaded.signatures["serving_default"]
    specs = fn.structured_input_signature[1]

    def run(inputs):
        out = fn(**{k: tf.constant(v) for k, v in inputs.items()})
        return {k: v.numpy() for k, v in out.items()}

    exp = Exported(path, run, list(specs), list(fn.structured_outputs), meta)
    exp.state_sizes = {n: int(specs[n].shape[-1]) for n in exp.state_names}
    exp._keep = loaded  # the signature needs its SavedModel object alive
    return exp


def _load_keras(path: Path, meta: dict) -> Exported:

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
        import onnxruntime as ort  # optional: seqkit[onnx]
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
    try:
        meta = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    except ValueError as exc:
        raise RunError(f"'{sidecar}' is not valid JSON ({exc}); export again.") from None
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise RunError(f"'{path}' is a folder without saved_model.pb; not a SavedModel.")
        loader = _load_saved_model
    else:
        loaders = {".tflite": _load_tflite, ".keras": _load_keras, ".onnx": _load_onnx}
        if path.suffix not in loaders:
            raise ParameterError(
                f"'{path}': unknown export type '{path.suffix}'; expected .tflite, .keras, "
                ".onnx or a SavedModel folder."
            )
        loader = loaders[path.suffix]
    try:
        return loader(path, meta)
    except (ParameterError, RunError):
        raise
    except Exception as exc:  # a damaged or foreign file: say which, keep the reason
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RunError(
            f"'{path}' could not be opened ({type(exc).__name__}: {reason}); "
            "export it again with `seqkit export`."
        ) from exc
