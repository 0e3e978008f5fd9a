"""The run folder: what ``seqkit train`` writes and every other command reads.

A run folder holds ``run.json`` (status, times, versions, command, the model's SHA-256),
``recipe.yaml`` (the resolved recipe), ``data.json``, ``labels.txt`` (kws), ``model.keras``
(the best model), ``metrics.json``, ``history.csv``, ``logs/`` (TensorBoard) and, while a run
can be resumed, ``checkpoint/`` (``seqkit.training.fit``). This module owns that format:

* writing -- ``plan_run_dir`` (a new folder, or one that ``--overwrite`` may replace: only a
  seqkit run folder holding only seqkit's files), atomic writes (``write_json_atomic``,
  ``save_model_atomic``), ``sha256``, ``versions``, ``data_fingerprint``;
* reading -- ``Run`` (recipe, labels, task, feature pipeline, best model checked against its
  recorded SHA-256, metrics), ``load_model``, ``read_run_info``, ``read_run_recipe``.

Every reader of a run (evaluate, predict, stream, export, explain, generate, compare) imports
this module, never the trainer.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata as md
import json
import logging
import os
import platform
import re
from pathlib import Path

import keras

from . import layers  # noqa: F401  (registers seqkit's GRU with Keras' serialization)
from .build import load_data, make_pipeline, make_source, make_task
from .errors import RecipeError, RunError
from .recipe import Recipe, read_yaml, validate_dict
from .registry import REGISTRIES, TASKS, load_plugin_layers

log = logging.getLogger("seqkit")

RUN_MARKER = "run.json"


def _timestamp() -> str:
    return _dt.datetime.now().strftime("%Y%m%d-%H%M%S")


# What seqkit itself writes into a run folder; --overwrite replaces only folders holding these.
RUN_FILES = ("run.json", "recipe.yaml", "labels.txt", "data.json", "model.keras",
             "metrics.json", "history.csv", "logs", "checkpoint", "export")  # fmt: skip


# ... and the pictures other commands write into it (explain, evaluate).
RUN_PICTURES = ("gates-", "confusion-")


def _check_replaceable(path: Path) -> None:
    """Raise unless ``path`` is a seqkit run folder holding only what seqkit wrote."""
    if path.is_symlink() or not path.is_dir():
        kind = "a symbolic link" if path.is_symlink() else "not a folder"
        raise RunError(f"'{path}' is {kind}; refusing to replace it. Choose another --run-dir.")
    try:
        info = json.loads((path / RUN_MARKER).read_text())
        is_run = isinstance(info, dict) and "seqkit" in info.get("versions", {})
    except (OSError, ValueError):
        is_run = False
    if not is_run:
        raise RunError(
            f"'{path}' is not a seqkit run folder (no {RUN_MARKER} written by seqkit); "
            "refusing to delete it even with --overwrite. Choose another --run-dir."
        )
    foreign = sorted(
        p.name
        for p in path.iterdir()
        if p.name not in RUN_FILES and not (p.name.startswith(RUN_PICTURES) and p.suffix == ".png")
    )
    if foreign:
        raise RunError(
            f"Run folder '{path}' holds files seqkit did not write ({', '.join(foreign[:5])}); "
            "refusing to replace it. Move them out, or choose another --run-dir."
        )


def plan_run_dir(name: str, run_dir=None, runs_root="runs", overwrite=False):
    """Return ``(path, replacing)`` for a new run, checking it may be used; changes nothing."""
    if run_dir is None:
        base = Path(runs_root) / f"{name}-{_timestamp()}"
        path, n = base, 1
        while path.exists() or path.is_symlink():
            n += 1
            path = base.with_name(f"{base.name}-{n}")
        return path, False
    path = Path(run_dir)
    if not (path.exists() or path.is_symlink()):
        return path, False
    if not overwrite:
        raise RunError(
            f"Run folder '{path}' already exists; pass --overwrite to replace it, "
            "or choose another --run-dir."
        )
    _check_replaceable(path)
    return path, True


def refuse_inside_data(folder: Path, recipe: Recipe, source=None) -> None:
    """No run (or comparison) folder inside the data folder of the recipe's source (its
    ``data_root``, else its ``root`` parameter): seqkit never writes into a dataset."""
    if source is None:
        try:
            source = make_source(recipe)
        except Exception:  # the source's own checks run again, with their message, with the data
            source = None
    root = getattr(source, "data_root", None)
    if root is None:
        root = recipe.data.source.params.get("root")
    if not isinstance(root, (str, Path)):
        return
    folder_abs, root_abs = Path(folder).resolve(), Path(root).expanduser().resolve()
    if folder_abs == root_abs or root_abs in folder_abs.parents:
        raise RunError(
            f"Run folder '{folder}' would be inside the data folder '{root}' "
            "(data.source); seqkit never writes into a dataset. Choose another "
            "--run-dir or --runs-root."
        )


def _mkdir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=False)
    except OSError as exc:
        raise RunError(f"Cannot create run folder '{path}': {exc.strerror or exc}.") from exc


def versions() -> dict:
    out = {"python": platform.python_version()}
    for dist in (
        "seqkit",
        "keras",
        "tensorflow",
        "tensorflow-cpu",
        "librosa",
        "numpy",
        "soundfile",
    ):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    out["keras_backend"] = keras.backend.backend()
    return out


def plugins_used() -> dict:
    """``{kind/name: "distribution version"}`` of every plugin component imported so far."""
    used = {}
    for kind, reg in REGISTRIES.items():
        for name in reg.names():
            entry = reg.entry(name)
            if entry.is_plugin and entry.obj is not None:
                used[f"{kind}/{name}"] = entry.source
    return used


def _now() -> str:
    return _dt.datetime.now().isoformat(timespec="seconds")


def data_fingerprint(data) -> dict:
    """SHA-256 of the list of examples used (path, label, split; not the contents), per split."""
    out = {}
    for split, s in data.splits.items():
        lines = sorted(
            "\t".join(str(getattr(it, f, "")) for f in ("path", "label", "split"))
            if not isinstance(it, str)
            else it
            for it in s.items
        )
        out[split] = {
            "examples": len(s),
            "list_sha256": hashlib.sha256("\n".join(lines).encode()).hexdigest(),
        }
    return out


def load_model(path, for_training: bool = False, task: str | None = None):
    """``keras.saving.load_model`` after importing installed plugin layers (so they resolve) and
    the module of the run's ``task`` (its losses and metrics are in ``model.keras``). Without a
    task name, a class Keras cannot locate makes every registered task module load, once.

    A model saved with its optimizer on another Keras backend (a run trained with
    ``KERAS_BACKEND=torch``, opened on TensorFlow to export it) names that backend's optimizer
    class, which cannot be imported here: for inference (``for_training=False``) the model is
    then loaded without compiling it (weights and layers are backend-independent; evaluate,
    predict, stream and export need no optimizer); to continue training it, RunError says to
    use the backend it was trained on.
    """
    for failure in load_plugin_layers():
        log.warning("%s", failure)
    if task:
        TASKS.get(task)  # importing a task's module registers its Keras objects
    try:
        return keras.saving.load_model(str(path))
    except (TypeError, ImportError) as exc:  # Keras wraps a missing module in a TypeError
        if not task and "Could not locate" in str(exc) and _load_task_modules():
            return load_model(path, for_training)  # once more: no task module is left to load
        other = re.search(r"keras\.src\.backend\.(\w+)\.", str(exc))
        if other is None or other.group(1) == keras.backend.backend():
            raise
        if for_training:
            raise RunError(
                f"'{path}' was saved while training on the {other.group(1)} backend, and its "
                f"optimizer state cannot be restored on {keras.backend.backend()}; continue it "
                f"with KERAS_BACKEND={other.group(1)}."
            ) from None
    log.info("'%s' was trained on another Keras backend; loaded without its optimizer.", path)
    return keras.saving.load_model(str(path), compile=False)


def _load_task_modules() -> bool:
    """Import every registered task's module (their Keras objects); False if none was new."""
    new = False
    for name in TASKS.names():
        entry = TASKS.entry(name)
        if entry.obj is None and entry.error is None:
            try:
                TASKS.get(name)
                new = True
            except Exception:  # a broken plugin task: reported where it is used
                pass
    return new


def read_run_info(run) -> dict:
    """``run.json`` of a run folder (OSError or ValueError when missing or not JSON)."""
    info = json.loads((Path(run) / RUN_MARKER).read_text())
    if not isinstance(info, dict):
        raise ValueError(f"{RUN_MARKER} holds {type(info).__name__}, not an object")
    return info


def read_run_recipe(run) -> Recipe:
    """The validated ``recipe.yaml`` of a run folder; a file that is not a valid recipe (damaged,
    or edited by hand) is a RunError naming it."""
    path = Path(run) / "recipe.yaml"
    try:
        return validate_dict(read_yaml(path), file=str(path), build_layers=False)
    except RecipeError as exc:
        raise RunError(
            f"Run folder '{Path(run)}' is damaged: its recipe.yaml is not a valid recipe "
            f"({str(exc).splitlines()[0]})."
        ) from None


class Run:
    """A finished run folder: its recipe, task, data facts, feature pipeline and best model.

    ``recipe`` and ``task``: the run's recipe and task object when the caller already holds
    them (the trainer); else ``recipe.yaml`` is read and the task made from it.
    """

    def __init__(self, path, recipe: Recipe | None = None, task=None):
        self.path = Path(path)
        if not (self.path / RUN_MARKER).is_file():
            raise RunError(
                f"'{self.path}' is not a seqkit run folder (no {RUN_MARKER}); "
                "pass the folder `seqkit train` printed."
            )
        for name in ("recipe.yaml", "model.keras"):
            if not (self.path / name).is_file():
                status = self.info.get("status", "?")
                raise RunError(f"Run folder '{self.path}' has no {name} (run status: {status}).")
        self.recipe = recipe if recipe is not None else read_run_recipe(self.path)
        labels = self.path / "labels.txt"
        self.labels = labels.read_text().splitlines() if labels.is_file() else []
        self._model = self._pipeline = None
        self._task = task

    @property
    def info(self) -> dict:
        """run.json: status, times, versions."""
        try:
            return json.loads((self.path / RUN_MARKER).read_text())
        except (OSError, ValueError):
            return {}

    @property
    def data_info(self) -> dict:
        """data.json: what the task recorded about the data (labels, counts, skipped files)."""
        path = self.path / "data.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    @property
    def task(self):
        if self._task is None:
            self._task = make_task(self.recipe)
        return self._task

    def load_data(self, progress=None):
        """The run's data as its task reads it (``seqkit.build.load_data``)."""
        return load_data(self.recipe, progress=progress, task=self.task)

    @property
    def pipeline(self):
        if self._pipeline is None:
            self._pipeline = make_pipeline(self.recipe)
        return self._pipeline

    @property
    def model(self):
        """The best model; its SHA-256 is checked against run.json first (a corrupt or replaced
        file is reported, never used)."""
        if self._model is None:
            path = self.path / "model.keras"
            want = self.info.get("files", {}).get("model.keras")
            if want is not None:
                if sha256(path) != want:
                    raise RunError(
                        f"'{path}' does not match the SHA-256 recorded in run.json when the run "
                        "finished: the file is corrupt or was replaced. Retrain, or restore it."
                    )
            self._model = load_model(path, task=self.recipe.task.type)
        return self._model

    @property
    def metrics(self) -> dict:
        path = self.path / "metrics.json"
        return json.loads(path.read_text()) if path.is_file() else {}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_model_atomic(model, path: Path) -> str:
    """``model.save`` to a temporary ``.keras`` name beside ``path``, then rename; return SHA-256."""
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.keras")
    try:
        model.save(str(tmp))
        digest = sha256(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return digest


def write_json_atomic(path: Path, data) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(json.dumps(data, indent=2) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
