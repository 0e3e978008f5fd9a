"""Opening a trained model for ``predict`` and ``stream``: a run folder or an export
(``load_for_inference``); see ``seqkit.streaming``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ParameterError
from .features import FeatureStream
from .model import ModelStream
from .runtime import Streamer

# -- loading a trained model ---------------------------------------------------------------------


class InferenceModel:
    """What ``predict`` and ``stream`` need from a trained model.

    ``labels``, ``pipeline`` (whole-clip features), ``predict(x)`` (clip scores, (n, classes)),
    ``streamer(...)`` (the numpy streaming runtime). Made by ``load_for_inference``.
    """

    def __init__(self, path, labels, pipeline, model, recipe=None):
        self.path, self.labels, self.pipeline = Path(path), list(labels), pipeline
        self.model, self.recipe = model, recipe

    def features(self, source) -> np.ndarray:
        """(time, features) of a file (or example) through the recipe's whole-clip pipeline."""
        return self.pipeline(source)

    def predict(self, x, batch_size: int = 64) -> np.ndarray:
        return np.asarray(
            self.model.predict(np.asarray(x, np.float32), batch_size=batch_size, verbose=0)
        )

    def model_stream(self, copies: int = 1, dtype=np.float32) -> ModelStream:
        return ModelStream(self.model, copies=copies, dtype=dtype)

    def streamer(
        self, copies: int = 1, reset_every="clip", dtype=np.float32, top_db_frames="clip"
    ) -> Streamer:
        features = FeatureStream(self.pipeline, top_db_frames=top_db_frames, dtype=dtype)
        return Streamer(features, self.model_stream(copies, dtype), reset_every=reset_every)


class ExportedStream:
    """``ModelStream``'s interface over a streaming export (``seqkit export --streaming``):
    ``step(frame) -> (copies, classes)``, the states fed back as explicit inputs, one row per
    copy; ``reset(k)`` zeroes copy ``k``'s rows."""

    def __init__(self, exported, copies: int = 1):
        if copies < 1:
            raise ParameterError(f"`copies` must be >= 1; received {copies}.")
        if not exported.streaming:
            raise ParameterError(
                f"'{exported.path}' is a whole-clip export: streaming needs the states as "
                "inputs. Export one with `seqkit export RUN --format tflite --streaming`."
            )
        self.exported, self.copies, self.dtype = exported, copies, np.float32
        self.num_features = int(exported.meta["input"]["shape"][-1])
        self._frames = np.zeros((copies, self.num_features), np.float32)
        self._state = exported.initial_state(copies)  # ours, written in place
        self.num_outputs = int(np.shape(exported.step(self._frames, self._state)[0])[-1])

    def reset(self, k=slice(None)):
        for v in self._state.values():
            v[k] = 0.0

    def step(self, frame) -> np.ndarray:
        self._frames[:] = frame
        scores, state = self.exported.step(self._frames, self._state)
        for name, value in state.items():
            self._state[name][...] = value
        return np.asarray(scores, np.float32)


class ExportedInferenceModel(InferenceModel):
    """``InferenceModel`` over an exported file: the scores come from the export (TFLite,
    ONNX, SavedModel, ``.keras``), the labels and the feature pipeline from the recipe that
    ``seqkit export`` wrote beside it (``<file>.json``)."""

    def __init__(self, path, labels, pipeline, exported, recipe):
        super().__init__(path, labels, pipeline, None, recipe)
        self.exported = exported

    def predict(self, x, batch_size: int = 64) -> np.ndarray:
        return np.asarray(self.exported.predict(np.asarray(x, np.float32), batch_size=batch_size))

    def model_stream(self, copies: int = 1, dtype=np.float32) -> ExportedStream:
        return ExportedStream(self.exported, copies=copies)


#: Files (and a SavedModel folder) that ``load_for_inference`` opens as exports.
EXPORT_SUFFIXES = (".tflite", ".onnx", ".keras")


def _is_export(path: Path) -> bool:
    if path.is_dir():
        return (path / "saved_model.pb").is_file()
    return path.suffix in EXPORT_SUFFIXES


def _load_exported_for_inference(path: Path) -> ExportedInferenceModel:
    from ..errors import RunError
    from ..export import load_exported
    from ..recipe import validate_dict
    from ..tasks import make_pipeline

    sidecar = path.with_name(path.name + ".json")
    if not path.exists():
        raise RunError(
            f"'{path}' does not exist; pass a run folder or a file `seqkit export` wrote."
        )
    if not sidecar.is_file():
        raise RunError(
            f"'{sidecar}' is missing: the labels and the feature pipeline of '{path}' are read "
            "from the .json that `seqkit export` writes beside the export; keep it next to the "
            "file (or export again)."
        )
    exported = load_exported(path)
    meta = exported.meta
    if not isinstance(meta.get("recipe"), dict) or not meta.get("labels") or "input" not in meta:
        raise RunError(
            f"'{sidecar}' has no recipe, labels or input shape (written by `seqkit export` of "
            "a run folder); export the run again."
        )
    recipe = validate_dict(meta["recipe"], file=f"{sidecar} (key 'recipe')", build_layers=False)
    return ExportedInferenceModel(path, meta["labels"], make_pipeline(recipe), exported, recipe)


def load_for_inference(path) -> InferenceModel:
    """Load a trained model for inference: a run folder (``seqkit train``'s output) or a file
    that ``seqkit export`` wrote from one (``.tflite`` float or int8, ``.onnx``, ``.keras`` or a
    SavedModel folder, with its ``.json`` beside it). Streaming (``streamer``) needs a run
    folder or a ``--streaming`` export.

    The one place that reads what ``predict`` and ``stream`` are given.
    """
    from ..train import Run

    path = Path(path)
    if _is_export(path) and not (path.is_dir() and (path / "run.json").is_file()):
        return _load_exported_for_inference(path)
    run = Run(path)
    return InferenceModel(run.path, run.labels, run.pipeline, run.model, run.recipe)
