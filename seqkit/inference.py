"""Opening a trained model for ``predict`` and ``stream``: a run folder or an export
(``load_for_inference``); see ``seqkit.streaming``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import ParameterError
from .speech.streaming.features import FeatureStream
from .speech.streaming.model import ModelStream
from .speech.streaming.runtime import Streamer

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
    from .build import make_pipeline
    from .errors import RunError
    from .export import load_exported
    from .recipe import validate_dict

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
    from .runs import Run

    path = Path(path)
    if _is_export(path) and not (path.is_dir() and (path / "run.json").is_file()):
        return _load_exported_for_inference(path)
    run = Run(path)
    model = run.model  # checked: its SHA-256, and one label per output (labels.txt)
    if not run.labels:
        raise ParameterError(
            f"Run '{run.path}' has no labels.txt (a {run.recipe.task.type} run); predict and "
            "stream need a keyword-spotting (kws) run or an export of one."
        )
    return InferenceModel(run.path, run.labels, run.pipeline, model, run.recipe)


# -- predict and stream: what the commands compute, as data ---------------------------------------


def predict_features(model: InferenceModel, feats: list) -> np.ndarray:
    """Scores ``(len(feats), classes)`` of each feature array; arrays of one shape go through
    the model together, in batches."""
    probs = np.zeros((len(feats), len(model.labels)), np.float32)
    shapes: dict[tuple, list[int]] = {}
    for i, f in enumerate(feats):
        shapes.setdefault(np.shape(f), []).append(i)
    for idx in shapes.values():
        probs[idx] = model.predict(np.stack([feats[i] for i in idx]))
    return probs


def top_labels(probs, labels, k: int) -> list[dict]:
    """The ``k`` (at most ``len(labels)``) best ``{"label", "probability"}`` of a score
    vector, best first (ties in label order)."""
    order = np.argsort(-np.asarray(probs), kind="stable")[: min(k, len(labels))]
    return [{"label": labels[j], "probability": float(probs[j])} for j in order]


def predict_files(model: InferenceModel, files, top_k: int = 3) -> dict:
    """Top-``top_k`` labels of each audio file, by ``model`` (``load_for_inference``).

    Each file goes whole through the recipe's feature pipeline and the model. A file that
    cannot be read (``DataError``) or that a step rejects (``ParameterError``: too short, ...)
    is skipped with a warning naming it. Returns ``{"run": path, "predictions": [{"file",
    "top": [{"label", "probability"}, ...]}, ...], "skipped": [{"file", "error"}, ...]}``
    (probabilities as computed, not rounded); DataError when no file could be read.
    """
    import logging

    from .errors import DataError, SeqkitError

    files = list(files)
    feats, names, skipped = [], [], []
    for name in files:
        try:
            feats.append(model.features(name))
            names.append(str(name))
        except SeqkitError as exc:  # DataError (unreadable), ParameterError (too short, ...)
            text, shown = str(exc), str(name)
            if not shown.isprintable():  # a newline in the name must not split the warning
                text, shown = text.replace(shown, repr(shown)), repr(shown)
            logging.getLogger("seqkit").warning(
                "Skipping %s", text if shown in text else f"{shown}: {text}"
            )
            skipped.append({"file": str(name), "error": text})
    if not names:
        raise DataError(
            f"None of the {len(files)} file(s) could be read (see the warnings above); "
            "nothing to predict."
        )
    probs = predict_features(model, feats)
    return {
        "run": str(model.path),
        "predictions": [
            {"file": name, "top": top_labels(p, model.labels, top_k)}
            for name, p in zip(names, probs)
        ],
        "skipped": skipped,
    }


class FileDetections:
    """Keyword detections in a long recording, found frame by frame as it is read: iterate to
    get each ``Detection`` (``time_s``, ``label``, ``score``) when it fires; afterwards
    ``detections``, ``frames``, ``seconds`` and ``report()``. Made by ``detect_in_file``."""

    def __init__(self, model: InferenceModel, audio, streamer, detector, carry_state: bool,
                 settings: dict):  # fmt: skip
        self.model, self.audio = model, audio
        self.streamer, self.detector, self.carry_state = streamer, detector, carry_state
        self.settings = settings  # what report() repeats besides the streamer's own
        self.detections: list = []

    def __iter__(self):
        from .speech.streaming import audio_blocks, detect

        load = self.model.pipeline.steps[0]
        features = self.streamer.features
        blocks = audio_blocks(
            self.audio, features.sample_rate, getattr(load, "res_type", "soxr_hq")
        )
        for d in detect(self.streamer, self.detector, blocks,
                        reset_on_detection=not self.carry_state):  # fmt: skip
            self.detections.append(d)
            yield d

    @property
    def frames(self) -> int:
        return self.streamer.frames

    @property
    def seconds(self) -> float:
        return self.streamer.frames * self.streamer.features.frame_seconds

    def report(self) -> dict:
        """The run, the recording, its length, the settings and every detection, as a
        JSON-ready dict."""
        s, det = self.streamer, self.detector
        return {
            "run": str(self.model.path),
            "audio": str(self.audio),
            "seconds": round(self.seconds, 3),
            "frames": s.frames,
            "settings": {
                **self.settings,
                "labels": [det.labels[i] for i in det.report],
                "copies": s.copies,
                "reset_every_frames": s.reset_every,
                "latency_s": round(s.features.latency_seconds, 4),
            },
            "detections": [
                {"time_s": d.time_s, "label": d.label, "score": d.score} for d in self.detections
            ],
        }


def detect_in_file(model: InferenceModel, audio, *, threshold: float = 0.8,
                   smooth_ms: float = 300.0, refractory_ms: float = 1000.0, labels=None,
                   copies: int = 4, carry_state: bool = False) -> FileDetections:  # fmt: skip
    """Detect keywords in the recording ``audio`` with ``model``, streaming (``seqkit stream``).

    Posteriors are smoothed over ``smooth_ms``; a detection fires when a reported label
    (``labels``, default every label but silence/unknown/noise-like ones) reaches
    ``threshold``, then nothing fires for ``refractory_ms``. ``copies`` recurrent states run
    staggered, each reset every clip length and all after a detection; ``carry_state``
    carries one state through the whole recording instead. Returns a ``FileDetections`` to
    iterate; ParameterError for a model that cannot stream or a label it does not have.
    """
    import logging

    from .speech.streaming import Detector

    try:
        streamer = model.streamer(
            copies=1 if carry_state else copies, reset_every=None if carry_state else "clip"
        )
    except ParameterError as exc:
        text = str(exc)
        raise ParameterError(text if str(model.path) in text else f"{model.path}: {text}") from None
    if streamer.reset_every is None and not carry_state:
        logging.getLogger("seqkit").warning(
            "The recipe has no fix_length step, so there is no clip length to reset "
            "the state at; carrying one state through the recording."
        )
    detector = Detector(
        model.labels,
        streamer.features.frame_seconds,
        threshold=threshold,
        smooth_ms=smooth_ms,
        refractory_ms=refractory_ms,
        report=labels,
    )
    settings = {"threshold": threshold, "smooth_ms": smooth_ms, "refractory_ms": refractory_ms}
    return FileDetections(model, audio, streamer, detector, carry_state, settings)
