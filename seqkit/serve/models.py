"""Models opened once per server process and shared by every request and stream.

A keyword-spotting run folder or export is opened with ``seqkit.inference.load_for_inference``
(the one place ``predict`` and ``stream`` open models); a music run with ``seqkit.runs.Run``.
Each stream gets its own ``Streamer`` (``InferenceModel.streamer``: its own feature buffers and
recurrent states, read from the shared Keras model's weights), so streams never share state.

What is not thread-safe is guarded by the entry's ``lock``: an export's interpreter (TFLite,
ONNX Runtime), whose ``step`` every stream of that export calls, and Keras' ``predict``.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field

import keras

from ..errors import ParameterError, RunError
from ..inference import ExportedInferenceModel, InferenceModel, load_for_inference
from ..layers import GRU
from ..runs import Run, read_run_recipe
from ..speech.streaming import filler_labels
from .catalog import Entry

#: Tasks ``serve`` has a page for.
KWS_TASKS = ("kws",)
MUSIC_TASKS = ("polyphonic", "melody")


@dataclass
class Loaded:
    """An entry opened for serving: ``kind`` ``"kws"`` or ``"music"``; ``model`` (kws: an
    ``InferenceModel``), ``run`` (music: a ``Run``); ``lock`` (see the module docstring)."""

    entry: Entry
    kind: str
    model: InferenceModel | None = None
    run: Run | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    stream_problem: str = ""
    gate_layers: list = field(default_factory=list)
    gate_problem: str = ""
    sample_rate: int = 0
    frame_seconds: float = 0.0

    @property
    def exported(self) -> bool:
        return isinstance(self.model, ExportedInferenceModel)

    def guard(self):
        """The lock when calls into the shared model must take turns (exports' interpreters);
        a no-op context for a run folder's numpy streaming runtime."""
        return self.lock if self.exported else contextlib.nullcontext()

    def describe(self) -> dict:
        e = self.entry
        doc = {**e.summary(), "kind": self.kind, "servable_as": self.kind}
        if self.kind == "kws":
            labels = self.model.labels
            fillers = set(filler_labels(labels))
            doc.update(
                labels=labels,
                keywords=[x for x in labels if x not in fillers],
                streaming=not self.stream_problem,
                stream_problem=self.stream_problem,
                gates=bool(self.gate_layers),
                gate_layers=self.gate_layers,
                gate_problem=self.gate_problem,
                model_sample_rate=self.sample_rate,
                frame_seconds=self.frame_seconds,
            )
        return doc


def _gate_layers(model) -> list[str]:
    """Names of the model's seqkit GRU layers (plain or inside Bidirectional), in order."""
    names = []
    for layer in model.layers:
        inner = layer.forward_layer if isinstance(layer, keras.layers.Bidirectional) else layer
        if isinstance(inner, GRU):
            names.append(layer.name)
    return names


def _task_of(entry: Entry) -> str:
    if entry.kind == "run":
        return read_run_recipe(entry.path).task.type
    return entry.task


def open_entry(entry: Entry) -> Loaded:
    """Open ``entry`` for serving (blocking: Keras loads the model); RunError or
    ParameterError for a damaged run or a task serve has no page for."""
    if entry.problem:
        raise RunError(entry.problem)
    task = _task_of(entry)
    if task in MUSIC_TASKS and entry.kind == "run":
        run = Run(entry.path)
        run.model  # noqa: B018 -- loaded (and checked) now, once, not on the first request
        return Loaded(entry, "music", run=run)
    if task not in KWS_TASKS:
        what = "an export of a music run" if task in MUSIC_TASKS else f"a {task or 'unknown'} run"
        raise ParameterError(
            f"'{entry.id}' is {what}; serve has pages for keyword-spotting runs and their "
            "exports, and for music run folders (polyphonic, melody)."
        )
    model = load_for_inference(entry.path)
    loaded = Loaded(entry, "kws", model=model)
    try:
        streamer = model.streamer(copies=1)
        loaded.sample_rate = int(streamer.features.sample_rate)
        loaded.frame_seconds = float(streamer.features.frame_seconds)
    except ParameterError as exc:
        loaded.stream_problem = str(exc)
        loaded.sample_rate = int(getattr(model.pipeline.steps[0], "sample_rate", 16000))
    if loaded.exported:
        loaded.gate_problem = "an export holds no Keras layers to read the gates of"
    else:
        loaded.gate_layers = _gate_layers(model.model)
        if not loaded.gate_layers:
            loaded.gate_problem = "the model has no seqkit GRU layer (`gru`)"
    return loaded


class Models:
    """Each entry opened at most once per process (``get``), by id; a failed open is not
    remembered, so a run fixed on disk can be opened again."""

    def __init__(self):
        self._loaded: dict[str, Loaded] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, entry: Entry) -> Loaded:
        with self._guard:
            lock = self._locks.setdefault(entry.id, threading.Lock())
        with lock:  # two first requests for one model: one loads, the other waits for it
            loaded = self._loaded.get(entry.id)
            if loaded is None or loaded.entry.path != entry.path:
                loaded = open_entry(entry)
                self._loaded[entry.id] = loaded
            return loaded
