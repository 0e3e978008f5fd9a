"""The worker: one run in a fresh process (``python -m seqkit.compare --worker``)."""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import os
import resource
import statistics
import threading
import time
from pathlib import Path

import keras
import numpy as np

from ..build import build
from ..gradflow import state_gradients
from ..recipe import validate_dict
from ..registry import TASKS
from ..runs import Run
from ..training.trainer import train
from .common import GRADIENT_EXAMPLES, INFERENCE_BATCH
from .plan import trainable_params

log = logging.getLogger("seqkit")

# -- the worker (a fresh process per run) --------------------------------------------------------


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):  # not Linux: fall back to the peak so far

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class _MemorySampler:
    """Peak RSS (sampled every 5 ms on a thread) above the RSS at ``start``."""

    def __init__(self):

        self.base = None
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self):
        if self.base is None:
            self.base = self.peak = _rss_bytes()
            self._thread.start()

    def _loop(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss_bytes())

    def stop(self) -> float:
        """Megabytes above the start."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if self.base is None:
            return 0.0
        self.peak = max(self.peak, _rss_bytes())
        return (self.peak - self.base) / 2**20


def _probe_callback(memory, gradient_batch, state):

    class Probe(keras.callbacks.Callback):
        """Per epoch: first batch start -> last batch end; memory; gradients at the start."""

        def on_train_begin(self, logs=None):
            if gradient_batch is not None and "init" not in state["gradients"]:

                state["gradients"]["init"] = []
                try:
                    flow = state_gradients(self.model, *gradient_batch)
                    state["gradients"]["init"] = flow.norms.tolist()
                except Exception as exc:  # a measurement, not the run
                    state["notes"].append(f"gradients: {type(exc).__name__}: {exc}")
            memory.start()

        def on_epoch_begin(self, epoch, logs=None):
            self._t0, self._c0 = time.perf_counter(), time.process_time()
            self._last = None

        def on_train_batch_end(self, batch, logs=None):
            self._last, self._clast = time.perf_counter(), time.process_time()

        def on_epoch_end(self, epoch, logs=None):
            if self._last is not None:
                state["epoch_seconds"].append(self._last - self._t0)
                state["epoch_cpu_seconds"].append(self._clast - self._c0)

    return Probe()


def _instrument(task_type: str, callback) -> None:
    """In this worker process only: the recipe's task, with ``callback`` among its callbacks.

    The trainer asks its task for extra callbacks every epoch; re-registering the task's name
    with a subclass adds the probe without touching the trainer or the recipe (the run folder
    records the task as usual).
    """

    cls = TASKS.get(task_type)

    class Instrumented(cls):
        def callbacks(self, run_dir, data):
            return [*super().callbacks(run_dir, data), callback]

    Instrumented.__name__ = cls.__name__
    Instrumented.__qualname__ = cls.__qualname__
    Instrumented.__module__ = cls.__module__
    TASKS.register(task_type, Instrumented, override=True)


def _scalars(d: dict) -> dict:
    return {
        k: v
        for k, v in d.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    }


def _median_epoch(seconds: list[float]) -> float | None:
    if not seconds:
        return None
    later = seconds[1:] if len(seconds) > 1 else seconds  # the first epoch traces the graph
    return float(statistics.median(later))


def _history(run_dir: Path) -> dict:
    path = run_dir / "history.csv"
    if not path.is_file():
        return {}
    with open(path) as f:
        rows = list(csv.DictReader(f))
    keys = [k for k in (rows[0] if rows else {}) if k != "epoch"]
    out = {}
    for k in keys:
        with contextlib.suppress(ValueError, TypeError):
            out[k] = [float(r[k]) for r in rows]
    return out


def _stack_batch(split, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``n`` examples of a split as arrays; sequences of different lengths (music) are
    cut to the shortest of them."""
    xs, ys = split.x[:n], split.y[:n]
    if isinstance(xs, np.ndarray):
        return xs, np.asarray(ys)
    steps = min(len(x) for x in xs)
    x = np.stack([np.asarray(v[:steps]) for v in xs]).astype(np.float32)
    y = np.stack([np.asarray(v[:steps]) for v in ys])
    return x, y


def _time_inference(model, split) -> dict:
    """The best model on up to ``INFERENCE_BATCH`` sequences: ms per sequence, wall and CPU."""
    x, _ = _stack_batch(split, INFERENCE_BATCH)
    for _ in range(2):
        model.predict_on_batch(x)
    times, cpu = [], []
    for _ in range(10):
        t0, c0 = time.perf_counter(), time.process_time()
        model.predict_on_batch(x)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {
        "infer_ms_per_sequence": 1000 * statistics.median(times) / len(x),
        "infer_cpu_ms_per_sequence": 1000 * statistics.median(cpu) / len(x),
        "inference_batch": len(x),
        "inference_steps": int(x.shape[1]),
    }


def worker(job: dict) -> dict:
    """Train one run of a comparison and measure it; return (and write) its result."""

    recipe = validate_dict(job["recipe"])
    result = {k: job[k] for k in ("id", "layer", "units", "seed", "length")}
    wall = time.time()
    probe = build(recipe)
    task, data = probe.task, probe.load_data()
    split = "test" if "test" in data.splits else "validation"
    probe_split = data.splits[split]
    gradient_batch = None
    if job.get("gradients"):
        gradient_batch = _stack_batch(probe_split, GRADIENT_EXAMPLES)
    state = {"epoch_seconds": [], "epoch_cpu_seconds": [], "gradients": {}, "notes": []}
    memory = _MemorySampler()
    _instrument(recipe.task.type, _probe_callback(memory, gradient_batch, state))
    try:
        path = train(recipe, run_dir=job["run_dir"], verbose=0)
    finally:
        peak_mb = memory.stop()
    run = Run(path)
    metrics = run.metrics
    model = run.model
    notes = []
    timing = {}
    try:
        timing = _time_inference(model, probe_split)
    except Exception as exc:  # a measurement, not the run: note it and go on
        notes.append(f"inference timing: {type(exc).__name__}: {exc}")
    if gradient_batch is not None:

        try:
            state["gradients"]["trained"] = state_gradients(model, *gradient_batch).norms.tolist()
        except Exception as exc:
            notes.append(f"gradients: {type(exc).__name__}: {exc}")
    result |= {
        "status": "completed",
        "run_dir": str(path),
        "params": trainable_params(model),
        "epochs_run": metrics.get("epochs_run"),
        "best_epoch": metrics.get("best_epoch"),
        "epoch_seconds": [round(s, 4) for s in state["epoch_seconds"]],
        "train_seconds_per_epoch": _median_epoch(state["epoch_seconds"]),
        "train_cpu_seconds_per_epoch": _median_epoch(state["epoch_cpu_seconds"]),
        **timing,
        "peak_mb": peak_mb,
        "process_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "validation": _scalars(metrics.get("validation", {})),
        "test": _scalars(metrics.get("test", {})),
        "history": _history(path),
        "gradients": state["gradients"],
        "wall_seconds": time.time() - wall,
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "notes": notes + state["notes"],
    }
    learns = getattr(task, "learns", None)
    if learns is not None and "test" in metrics:
        result["learns"] = bool(learns(metrics["test"]))
    keras.backend.clear_session()
    return result
