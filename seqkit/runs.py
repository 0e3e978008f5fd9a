"""The run folder: what ``seqkit train`` writes and every other command reads.

A run folder holds ``run.json`` (status, times, versions, command, its files' SHA-256),
``recipe.yaml`` (the resolved recipe), ``data.json``, ``labels.txt`` (kws), ``model.keras``
(the best model), ``metrics.json``, ``history.csv``, ``logs/`` (TensorBoard) and, while a run
can be resumed, ``checkpoint/`` (``seqkit.training.fit``). This module owns that format:

* writing -- ``plan_run_dir`` (a new folder, or one that ``--overwrite`` may replace: only a
  seqkit run folder holding only seqkit's files), atomic writes (``write_json_atomic``,
  ``save_model_atomic``), ``sha256``, ``versions``, ``data_fingerprint``;
* reading -- ``Run`` (recipe, labels, task, feature pipeline, best model, metrics: every file
  checked against the SHA-256 run.json records), ``load_model``, ``read_run_info`` (checked),
  ``read_run_recipe``;
* integrity records -- ``RECORDED_FILES``, ``file_records``, ``check_recorded``, and
  ``write_run_file`` / ``record_run_files``: how a command rewrites a finished run's file
  (metrics.json, a picture, export/) and records its new SHA-256.

Every reader of a run (evaluate, predict, stream, export, explain, generate, compare) imports
this module, never the trainer.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import importlib.metadata as md
import json
import logging
import os
import platform
import re
import zipfile
from pathlib import Path

import keras

from . import layers  # noqa: F401  (registers seqkit's GRU with Keras' serialization)
from .build import load_data, make_pipeline, make_source, make_task
from .errors import RecipeError, RunError
from .recipe import Recipe, read_yaml, validate_dict
from .registry import REGISTRIES, TASKS, load_plugin_layers

try:
    import fcntl
except ImportError:  # Windows: run.json updates are not locked
    fcntl = None

log = logging.getLogger("seqkit")

RUN_MARKER = "run.json"


def _timestamp() -> str:
    return _dt.datetime.now().strftime("%Y%m%d-%H%M%S")


# What seqkit itself writes into a run folder; --overwrite replaces only folders holding these.
RUN_FILES = ("run.json", "recipe.yaml", "labels.txt", "data.json", "model.keras",
             "metrics.json", "history.csv", "logs", "checkpoint", "export", "evaluations")  # fmt: skip


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
    ``data_root``, else its ``root`` parameter; every source's folder for a mixed source,
    ``data_roots``): seqkit never writes into a dataset."""
    if source is None:
        try:
            source = make_source(recipe)
        except Exception:  # the source's own checks run again, with their message, with the data
            source = None
    roots = getattr(source, "data_roots", None)  # a mixed source: every source's folder
    if roots is None:
        root = getattr(source, "data_root", None)
        roots = [root if root is not None else recipe.data.source.params.get("root")]
    folder_abs = Path(folder).resolve()
    for root in roots:
        if not isinstance(root, (str, Path)):
            continue
        root_abs = Path(root).expanduser().resolve()
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
    """``keras.saving.load_model``, with the module of the run's ``task`` imported first (its
    losses and metrics are in ``model.keras``). Only when Keras cannot locate a class are the
    installed plugin layers imported (warning then about broken ones: a model of built-in
    layers never imports a plugin) and, without a task name, every registered task module;
    then the file is loaded once more.

    A model saved with its optimizer on another Keras backend (a run trained with
    ``KERAS_BACKEND=torch``, opened on TensorFlow to export it) names that backend's optimizer
    class, which cannot be imported here: for inference (``for_training=False``) the model is
    then loaded without compiling it (weights and layers are backend-independent; evaluate,
    predict, stream and export need no optimizer); to continue training it, RunError says to
    use the backend it was trained on.
    """
    if Path(path).is_file() and not zipfile.is_zipfile(path):  # Keras would say "not found"
        raise RunError(
            f"'{path}' is not a .keras file (not a zip archive): it is damaged or truncated. "
            "Restore it, or write it again."
        )
    if task:
        TASKS.get(task)  # importing a task's module registers its Keras objects
    try:
        return _keras_load(path, for_training)
    except (TypeError, ImportError) as exc:  # Keras wraps a missing module in a TypeError
        if "Could not locate" not in str(exc):
            raise
    if not task:
        _load_task_modules()
    for failure in load_plugin_layers():
        log.warning("%s", failure)
    return _keras_load(path, for_training)


def _keras_load(path, for_training: bool):
    try:
        return keras.saving.load_model(str(path))
    except (TypeError, ImportError) as exc:
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


# What every run.json seqkit writes holds, and the types of the keys it may hold.
_INFO_REQUIRED = {"status": str, "started": str, "versions": dict}
_INFO_OPTIONAL = {"files": dict, "data": dict, "timing": dict, "plugins": dict, "resumed": list,
                  "finished": str, "error": str, "resume": str, "command": list,
                  "recipe_file": (str, type(None))}  # fmt: skip
RUN_STATUSES = ("running", "completed", "failed", "interrupted")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _info_problem(info) -> str | None:
    """What is wrong with a parsed run.json (None: nothing)."""
    if not isinstance(info, dict):
        return f"holds {type(info).__name__}, not an object"
    missing = [k for k in _INFO_REQUIRED if k not in info]
    if missing:
        return f"has no {', '.join(repr(k) for k in missing)}"
    for key, kind in {**_INFO_REQUIRED, **_INFO_OPTIONAL}.items():
        if key in info and not isinstance(info[key], kind):
            return f"has a {type(info[key]).__name__} at {key!r}"
    if info["status"] not in RUN_STATUSES:
        return f"has status {info['status']!r}, not one of {', '.join(RUN_STATUSES)}"
    for name, digest in info.get("files", {}).items():
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            return f"records no SHA-256 for {name!r} under 'files'"
    return None


def read_run_info(run) -> dict:
    """``run.json`` of a run folder, parsed and checked (a dict with the keys seqkit writes);
    RunError naming the file when it is missing, unreadable or damaged."""
    path = Path(run) / RUN_MARKER
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_JSON_BYTES + 1)
        if len(data) > MAX_JSON_BYTES:
            raise ValueError(f"larger than {MAX_JSON_BYTES:,} bytes")
        info = json.loads(data)
    except FileNotFoundError:
        raise RunError(
            f"'{Path(run)}' is not a seqkit run folder (no {RUN_MARKER}); "
            "pass the folder `seqkit train` printed."
        ) from None
    except OSError as exc:
        raise RunError(f"Cannot read '{path}': {exc.strerror or exc}.") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, too large
        raise RunError(
            f"Run folder '{Path(run)}' is damaged: its {RUN_MARKER} is not valid JSON "
            f"({str(exc).splitlines()[0]}). Restore it, or train the run again."
        ) from None
    problem = _info_problem(info)
    if problem is not None:
        raise RunError(
            f"Run folder '{Path(run)}' is damaged: its {RUN_MARKER} {problem}. Restore it, or "
            "train the run again."
        )
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

    Nothing in the folder is trusted unchecked: ``run.json`` must parse and hold the keys seqkit
    writes, and every file it records (``RECORDED_FILES``) must match its SHA-256; labels must
    match the model's outputs. Each problem is a RunError naming the file (exit 1).
    """

    def __init__(self, path, recipe: Recipe | None = None, task=None):
        self.path = Path(path)
        if not (self.path / RUN_MARKER).is_file():
            raise RunError(
                f"'{self.path}' is not a seqkit run folder (no {RUN_MARKER}); "
                "pass the folder `seqkit train` printed."
            )
        self._info = read_run_info(self.path)
        for name in ("recipe.yaml", "model.keras"):
            if not (self.path / name).is_file():
                status = self._info["status"]
                raise RunError(f"Run folder '{self.path}' has no {name} (run status: {status}).")
        check_recorded(self.path, self._info)
        self.recipe = recipe if recipe is not None else read_run_recipe(self.path)
        self.labels = self._read_labels()
        self._model = self._pipeline = self._data_info = None
        self._task = task

    @property
    def info(self) -> dict:
        """run.json: status, times, versions, the SHA-256 of the files it records."""
        return self._info

    def _damaged(self, name: str, what: str) -> RunError:
        return RunError(
            f"Run folder '{self.path}' is damaged: its {name} {what}. Restore it, or train the "
            "run again."
        )

    def _read_labels(self) -> list[str]:
        path = self.path / "labels.txt"
        if not path.is_file():
            return []
        try:
            labels = read_text_bounded(path).splitlines()
        except ValueError as exc:
            raise self._damaged("labels.txt", f"is not text ({exc})") from None
        if any(not label.strip() for label in labels) or len(set(labels)) != len(labels):
            raise self._damaged("labels.txt", "has an empty or repeated label")
        return labels

    def _json(self, name: str) -> dict:
        path = self.path / name
        if not path.is_file():
            return {}
        try:
            doc = json.loads(read_text_bounded(path))
        except ValueError as exc:
            raise self._damaged(name, f"is not valid JSON ({str(exc).splitlines()[0]})") from None
        if not isinstance(doc, dict):
            raise self._damaged(name, f"holds {type(doc).__name__}, not an object")
        return doc

    @property
    def data_info(self) -> dict:
        """data.json: what the task recorded about the data (labels, counts, skipped files)."""
        if self._data_info is None:
            self._data_info = self._json("data.json")
        return self._data_info

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
        """The best model (its SHA-256 was checked against run.json when the run was opened: a
        corrupt or replaced file is reported, never used); a file Keras cannot load, or whose
        outputs do not match labels.txt, is a RunError naming it."""
        if self._model is None:
            path = self.path / "model.keras"
            try:
                model = load_model(path, task=self.recipe.task.type)
            except (RunError, KeyboardInterrupt):
                raise
            except Exception as exc:  # a damaged file, or a class nothing here provides
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                raise RunError(
                    f"'{path}' could not be loaded ({type(exc).__name__}: {reason}); it is "
                    "damaged, or needs a plugin that is not installed. Restore it, or train the "
                    "run again."
                ) from None
            self._check_labels(model)
            self._model = model
        return self._model

    def _check_labels(self, model) -> None:
        """labels.txt (a kws run: the file exists, or data.json lists labels) must name one
        label per model output."""
        path = self.path / "labels.txt"
        if not (path.is_file() or "labels" in self.data_info):
            return
        outputs = model.outputs[0].shape[-1]
        if not path.is_file():
            raise self._damaged("labels.txt", f"is missing (the model has {outputs} outputs)")
        if len(self.labels) != outputs:
            raise RunError(
                f"'{path}' holds {len(self.labels)} label(s), but the model has {outputs} "
                "outputs: the run folder is damaged. Restore labels.txt, or train the run again."
            )

    @property
    def metrics(self) -> dict:
        """metrics.json (a fresh dict: callers may change it)."""
        return self._json("metrics.json")


# -- integrity records -----------------------------------------------------------------------------

# JSON and text files seqkit reads from a run or an export are refused past this size.
MAX_JSON_BYTES = 64 * 2**20

# The files a run records in run.json's ``files`` (name -> SHA-256) and ``Run`` checks before
# reading them; recorded when written (recipe.yaml, data.json, labels.txt as training starts;
# model.keras, metrics.json, history.csv when it completes) and again whenever seqkit rewrites
# one (``write_run_file``). Not logs/ (TensorBoard's), nor checkpoint/ (state.json holds its
# hashes). Pictures and export/ are recorded too, for the record; their readers check them.
RECORDED_FILES = ("recipe.yaml", "labels.txt", "data.json", "model.keras", "metrics.json",
                  "history.csv")  # fmt: skip


def read_text_bounded(path: Path, limit: int = MAX_JSON_BYTES) -> str:
    """A UTF-8 text file of at most ``limit`` bytes (ValueError otherwise)."""
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"larger than {limit:,} bytes")
    return data.decode("utf-8")


def tree_sha256(path: Path) -> str:
    """SHA-256 of a file; of a folder, over its files' relative paths and SHA-256s."""
    path = Path(path)
    if not path.is_dir():
        return sha256(path)
    lines = sorted(
        f"{p.relative_to(path).as_posix()}\t{sha256(p)}" for p in path.rglob("*") if p.is_file()
    )
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def file_records(run: Path) -> dict:
    """``{name: SHA-256}`` of the ``RECORDED_FILES`` present in ``run``."""
    return {n: sha256(run / n) for n in RECORDED_FILES if (run / n).is_file()}


def check_recorded(run: Path, info: dict, names=RECORDED_FILES) -> None:
    """RunError naming the first of ``names`` that run.json records but that is missing or
    does not match its SHA-256; files it does not record (older runs) pass."""
    recorded = info.get("files", {})
    for name in names:
        if name not in recorded:
            continue
        path = Path(run) / name
        if not path.is_file():
            raise RunError(
                f"Run folder '{run}' is damaged: its {name} is missing (run.json records it). "
                "Restore it, or train the run again."
            )
        if sha256(path) != recorded[name]:
            raise RunError(
                f"'{path}' does not match the SHA-256 recorded in run.json: the file is corrupt "
                "or was replaced. Restore it, or train the run again."
            )


@contextlib.contextmanager
def _locked(run: Path):
    """Hold an exclusive lock on the run folder (two commands updating run.json at once)."""
    if fcntl is None:
        yield
        return
    fd = os.open(run, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def record_run_files(run, *paths) -> None:
    """Record the SHA-256 of ``paths`` (files or folders inside the run folder ``run``) in its
    run.json; a path that no longer exists loses its record."""
    run = Path(run)
    with _locked(run):
        info = read_run_info(run)
        files = info.setdefault("files", {})
        for path in paths:
            rel = Path(path).resolve().relative_to(run.resolve()).as_posix()
            if Path(path).exists():
                files[rel] = tree_sha256(Path(path))
            else:
                files.pop(rel, None)
        write_json_atomic(run / RUN_MARKER, info)


def write_run_file(run, name: str, content) -> Path:
    """Write the file ``name`` of the run folder ``run`` atomically and record its SHA-256 in
    run.json: the one way a command (evaluate, explain...) rewrites a file of a finished run,
    so that the run never looks damaged afterwards. ``content``: str, bytes, or a function
    that writes a given path (a temporary name with the same suffix, renamed afterwards)."""
    path = Path(run) / name
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        if callable(content):
            content(tmp)
        elif isinstance(content, bytes):
            tmp.write_bytes(content)
        else:
            tmp.write_text(content)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    record_run_files(run, path)
    return path


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
