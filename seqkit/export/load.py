"""Opening an export, whatever its format: ``load_exported(path)`` -> ``Exported``."""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from pathlib import Path

import numpy as np

from ..errors import ParameterError, RunError
from ..runs import load_model, read_text_bounded, tree_sha256
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
        self.num_outputs = None  # scores per clip, where the format tells

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


def _interpreter(content: bytes):
    """An interpreter over the model's bytes: given bytes (not a path) it verifies the FlatBuffer
    first (from a path it does not, and a damaged file kills the process)."""
    try:  # LiteRT, TFLite's successor, when installed
        from ai_edge_litert.interpreter import Interpreter  # optional: may not be installed
    except ImportError:
        import tensorflow as tf  # optional: TensorFlow is one Keras backend of three

        Interpreter = tf.lite.Interpreter
    with warnings.catch_warnings():  # tf.lite.Interpreter's deprecation notice
        warnings.simplefilter("ignore")
        return Interpreter(model_content=content)


# A FlatBuffer cannot exceed 2 GiB (its offsets are 32-bit).
MAX_TFLITE_BYTES = 2**31 - 1


def _tflite_problem(data: bytes) -> str | None:
    """What makes ``data`` unsafe to give the TFLite interpreter, which reads the FlatBuffer in
    C++ without checking it (a truncated file kills the process): every table parsed in Python
    (bounds-checked), every index in range, every external buffer inside the file. None: none
    found."""
    if len(data) < 16 or data[4:8] != b"TFL3":
        return "it has no TFL3 FlatBuffer identifier: not a TFLite model"
    try:
        from tensorflow.lite.python import schema_py_generated as schema  # optional: TensorFlow
    except ImportError:  # LiteRT alone: the identifier is all that can be checked here
        return None
    try:
        model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    except Exception:  # struct.error, IndexError, ValueError... on a damaged buffer
        return "its FlatBuffer is truncated or damaged: it does not parse"
    buffers, subgraphs = model.buffers or [], model.subgraphs or []
    codes = model.operatorCodes or []
    if not subgraphs or not buffers:
        return "it has no subgraph or no buffer"
    for b in buffers:
        if (b.offset or b.size) and not (1 < b.offset and b.offset + b.size <= len(data)):
            return "a buffer lies outside the file"
    for g in subgraphs:
        tensors = g.tensors or []
        n = len(tensors)

        def bad(indices, optional=False, n=n):
            low = -1 if optional else 0
            return any(not low <= int(i) < n for i in (indices if indices is not None else []))

        if bad(g.inputs) or bad(g.outputs):
            return "a subgraph's input or output is not one of its tensors"
        for t in tensors:
            if not 0 <= t.buffer < len(buffers):
                return "a tensor's buffer index is out of range"
            dims = [int(d) for d in (t.shape if t.shape is not None else [])]
            if any(d < -1 for d in dims) or int(np.prod([max(d, 1) for d in dims])) > 2**28:
                return "a tensor has an impossible shape"
        for op in g.operators or []:
            if not 0 <= op.opcodeIndex < len(codes):
                return "an operator's code index is out of range"
            if bad(op.inputs, True) or bad(op.outputs, True) or bad(op.intermediates, True):
                return "an operator's tensor index is out of range"
            for options in (op.builtinOptions, op.builtinOptions2):
                for key, value in getattr(options, "__dict__", {}).items():
                    if key.endswith("SubgraphIndex") and not 0 <= value < len(subgraphs):
                        return "an operator names a subgraph that does not exist"
    for sig in model.signatureDefs or []:
        if not 0 <= sig.subgraphIndex < len(subgraphs):
            return "a signature names a subgraph that does not exist"
        n = len(subgraphs[sig.subgraphIndex].tensors or [])
        if any(not 0 <= m.tensorIndex < n for m in (sig.inputs or []) + (sig.outputs or [])):
            return "a signature names a tensor that does not exist"
    return None


def _load_tflite(path: Path, meta: dict) -> Exported:
    if path.stat().st_size > MAX_TFLITE_BYTES:
        raise RunError(f"'{path}' is larger than a TFLite model can be (2 GiB); export again.")
    content = path.read_bytes()
    if "sha256" not in meta:  # an export from before seqkit recorded its hash: check it
        problem = _tflite_problem(content)
        if problem is not None:
            raise RunError(
                f"'{path}' is damaged ({problem}); export it again with `seqkit export`."
            )
    interp = _interpreter(content)
    sigs = interp.get_signature_list()
    if not sigs:
        raise RunError(f"'{path}' has no signature; export it again with `seqkit export`.")
    key = "serving_default" if "serving_default" in sigs else next(iter(sigs))
    runner = interp.get_signature_runner(key)

    def run(inputs):
        return runner(**inputs)

    exp = Exported(path, run, sigs[key]["inputs"], sigs[key]["outputs"], meta)
    exp.interpreter = interp
    exp.num_outputs = int(runner.get_output_details()[exp.output_name]["shape"][-1])
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
    exp.num_outputs = fn.structured_outputs[exp.output_name].shape[-1]
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
    exp.num_outputs = model.outputs[0].shape[-1]
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
    shape = next(o.shape for o in session.get_outputs() if o.name == exp.output_name)
    exp.num_outputs = shape[-1] if isinstance(shape[-1], int) else None
    return exp


def load_exported(path) -> Exported:
    """Open an export (``.tflite``, ``.keras``, ``.onnx`` or a SavedModel folder)."""
    path = Path(path)
    if not path.exists():
        raise RunError(f"'{path}' does not exist; pass a file `seqkit export` wrote.")
    sidecar = path.with_name(path.name + ".json")
    meta = _read_sidecar(sidecar) if sidecar.is_file() else {}
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
    check_recorded_export(path, sidecar, meta)
    try:
        exported = loader(path, meta)
    except (ParameterError, RunError):
        raise
    except Exception as exc:  # a damaged or foreign file: say which, keep the reason
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RunError(
            f"'{path}' could not be opened ({type(exc).__name__}: {reason}); "
            "export it again with `seqkit export`."
        ) from exc
    labels = exported.labels
    if labels is not None and exported.num_outputs not in (None, len(labels)):
        raise RunError(
            f"'{sidecar}' lists {len(labels)} label(s), but '{path}' has "
            f"{exported.num_outputs} outputs: damaged or replaced; export again."
        )
    return exported


def _read_sidecar(sidecar: Path) -> dict:
    """The ``.json`` beside an export, checked: an object whose labels are distinct non-empty
    strings, whose input shape is a list of sizes, whose hash (when there) is a SHA-256."""
    try:
        meta = json.loads(read_text_bounded(sidecar))
    except (OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RunError(f"'{sidecar}' is not valid JSON ({reason}); export again.") from None
    problem = None
    if not isinstance(meta, dict):
        problem = f"holds {type(meta).__name__}, not an object"
    elif "labels" in meta and not (
        isinstance(meta["labels"], list)
        and all(isinstance(x, str) and x.strip() for x in meta["labels"])
        and len(set(meta["labels"])) == len(meta["labels"])
    ):
        problem = "has `labels` that are not distinct non-empty strings"
    elif "input" in meta and not (
        isinstance(meta["input"], dict)
        and isinstance(meta["input"].get("shape"), list)
        and meta["input"]["shape"]
        and all(x is None or (type(x) is int and x > 0) for x in meta["input"]["shape"])
    ):
        problem = "has an `input` without a list of sizes as its shape"
    elif "sha256" in meta and not (
        isinstance(meta["sha256"], str)
        and re.fullmatch(r"[0-9a-f]{64}", meta["sha256"])
        and type(meta.get("size")) is int
    ):
        problem = "has a `sha256` or `size` that is not a SHA-256 and a byte count"
    if problem is not None:
        raise RunError(f"'{sidecar}' {problem}: damaged or edited; export again.")
    if "meta_sha256" in meta and meta["meta_sha256"] != meta_digest(meta):
        raise RunError(
            f"'{sidecar}' does not match the SHA-256 it records of its own contents: damaged or "
            "edited; export again."
        )
    return meta


def meta_digest(meta: dict) -> str:
    """SHA-256 of an export's ``.json`` without its ``meta_sha256`` key (canonical JSON): any
    change to the labels, recipe or hash recorded there is found."""
    rest = {k: v for k, v in meta.items() if k != "meta_sha256"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True).encode()).hexdigest()


def export_size(path: Path) -> int:
    """Bytes of an export (a SavedModel folder: all its files)."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def check_recorded_export(path: Path, sidecar: Path, meta: dict) -> None:
    """RunError unless ``path`` has the size and SHA-256 its ``.json`` records (an export
    written before seqkit recorded them passes here; its loader checks what it can)."""
    if "sha256" not in meta:
        return
    if export_size(path) != meta["size"] or tree_sha256(path) != meta["sha256"]:
        raise RunError(
            f"'{path}' does not match the SHA-256 recorded in its .json ('{sidecar}'): damaged "
            "or replaced; export it again with `seqkit export`."
        )
