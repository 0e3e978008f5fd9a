"""Writing exports: formats, file names, never replacing without ``overwrite``, checks."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__
from ..build import load_data
from ..errors import ParameterError, RunError, did_you_mean
from ..runs import Run, record_run_files, tree_sha256, write_json_atomic
from ..speech.streaming.features import FeatureStream
from .load import export_size, load_exported, meta_digest
from .models import _onnx_streaming_copy, inference_copy, probe_inputs, streaming_model
from .tflite import _quiet, to_tflite

FORMATS = ("keras", "saved_model", "tflite", "tflite_int8", "onnx")
SUFFIXES = {"keras": ".keras", "saved_model": "", "tflite": ".tflite", "tflite_int8": ".tflite",
            "onnx": ".onnx"}  # fmt: skip
# What a SavedModel folder holds; --overwrite replaces only folders holding nothing else.
SAVED_MODEL_ENTRIES = {"saved_model.pb", "fingerprint.pb", "variables", "assets", "assets.extra"}


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
        raise ParameterError(
            f"`format` must be one of {', '.join(FORMATS)}; received {fmt!r}.{did_you_mean(fmt, FORMATS)}"
        )


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
        (
            streaming_model(model)
            if streaming
            else inference_copy(model, named_output=False, keras_loops=False)
        ).save(str(tmp))
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
    result = ExportResult(path, fmt, streaming, export_size(path), quant, notes=notes)
    info = {
        "sha256": tree_sha256(path),  # checked by load_exported before the file is opened
        "size": result.size,
        "format": fmt,
        "streaming": streaming,
        "quantization": quant,
        "input": {"name": model.inputs[0].name, "shape": list(model.inputs[0].shape[1:])},
        **(meta or {}),
    }
    if streaming:
        step = streaming_model(model)
        info["states"] = [{"name": t.name, "size": int(t.shape[-1])} for t in step.inputs[1:]]
    info["meta_sha256"] = meta_digest(info)  # the .json's own contents, checked on loading
    write_json_atomic(sidecar, info)
    return result


def check_export(model, path, x, y=None) -> dict:
    """Compare the exported model at ``path`` with ``model`` on clips ``x`` (labels ``y``):
    max abs difference of the scores, and accuracies when ``y`` is given. A streaming export
    is fed the frames one by one and its last scores are compared."""
    exported = load_exported(path)
    ref = np.concatenate(
        [np.asarray(model(x[i : i + 64], training=False)) for i in range(0, len(x), 64)]
    )
    got = exported.predict(x)
    if exported.streaming and ref.ndim == 3:  # a per-frame model: compare the last frame
        ref = ref[:, -1]
    out = {"clips": int(len(x)), "max_abs_diff": float(np.max(np.abs(got - ref)))}
    if y is not None and np.ndim(y) == 1 and ref.ndim == 2:  # a clip classifier
        y = np.asarray(y)
        out["accuracy"] = float(np.mean(got.argmax(-1) == y))
        out["keras_accuracy"] = float(np.mean(ref.argmax(-1) == y))
        out["argmax_agreement"] = float(np.mean(got.argmax(-1) == ref.argmax(-1)))
    return out


# -- run folders ---------------------------------------------------------------------------------


def training_splits(recipe):
    """``{split: (x, y)}`` of the recipe's data, read by its task (``seqkit.train.load_data``)."""

    return {name: (s.x, s.y) for name, s in load_data(recipe).splits.items()}


def check_streamable_features(run) -> None:
    """``--streaming``: the run's feature steps must have a streaming version (the runtime that
    feeds a streaming export computes them frame by frame, ``FeatureStream``); checked before
    the model is loaded or converted. ``cmvn`` (whole-clip mean and variance) and
    ``speech_embedding`` (TFLite models on whole clips) have none."""
    if not run.recipe.features or run.recipe.features[0].type != "load":
        return  # no audio front end (piano rolls), or a plugin's own reader: nothing to check
    try:
        FeatureStream(run.pipeline)
    except ParameterError as exc:
        steps = ", ".join(f"features[{i}] ({s.type})" for i, s in enumerate(run.recipe.features)
                          if s.type in ("cmvn", "speech_embedding"))  # fmt: skip
        which = f" ({steps})" if steps else ""
        raise ParameterError(
            f"--streaming: the feature steps of '{run.path}'{which} cannot run frame by frame, "
            f"so this run cannot be exported for streaming: {exc} Retrain with steps that "
            "stream (e.g. `pcen` in place of `cmvn`, `log_mel` in place of `speech_embedding`), "
            "or export without --streaming (whole clips)."
        ) from None


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

    _check_format(fmt)
    run = Run(run_dir)
    if streaming:
        check_streamable_features(run)
    if getattr(run.task, "nade", False):
        raise RunError(
            f"Run '{run.path}' has a NADE output (task.output: nade), which an export cannot "
            "carry: its model gives each key's probability given the true lower keys of the "
            "step, and sampling needs seqkit's key-by-key NADE sampler. Sample with `seqkit "
            "generate RUN`, score with `seqkit evaluate RUN`; to export, train with "
            "task.output: independent."
        )
    path = Path(out) if out else run.path / "export" / default_name(fmt, streaming)
    _check_destination(path, fmt, overwrite)
    model = run.model
    if streaming:
        streaming_model(model)
    splits = training_splits(run.recipe) if fmt == "tflite_int8" else None
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
    if run.path.resolve() in path.resolve().parents:  # RUN/export/...: recorded in run.json
        record_run_files(run.path, path, path.with_name(path.name + ".json"))
    if check and (fmt != "onnx" or importlib.util.find_spec("onnxruntime")):
        if splits:
            x, y = splits["test"] if "test" in splits else splits["validation"]
            result.check = check_export(model, path, x, y)
            result.check["split"] = "test" if "test" in splits else "validation"
        else:
            result.check = check_export(model, path, probe_inputs(model))
    return result
