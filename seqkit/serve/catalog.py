"""What ``seqkit serve`` serves: the run folders and exports under one root, by id.

An id is the entry's path relative to the root, in POSIX form (``"."`` when the root is itself
the run or the export). Only ids that a scan of the root found are ever opened: a request names
an id, and ``Catalog.get`` looks it up in the scan's table, so a path the scan did not list
(``../x``, ``/etc/passwd``, a symbolic link leading out of the root) is refused without the file
system ever being asked about it. The scan does not follow links out of the root.

What the scan finds (depth chosen so that ``runs/`` as ``seqkit train`` fills it works, and
``runs/<run>/export/`` as ``seqkit export`` fills it):

* the root itself, when it is a run folder (``run.json``) or an export (a ``.tflite``, ``.onnx``
  or ``.keras`` file with its ``.json`` beside it, or a SavedModel folder with its ``.json``);
* run folders one or two levels below the root (``runs/<run>``, ``runs/<group>/<run>``);
* exports directly in the root, and in each run's ``export/`` folder.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ..errors import RunError
from ..inference import EXPORT_SUFFIXES
from ..runs import RUN_MARKER, read_run_info, read_run_recipe, read_text_bounded

log = logging.getLogger("seqkit")

#: Entries listed at most (a folder of thousands of runs is listed in part, with a warning).
MAX_ENTRIES = 500


@dataclass
class Entry:
    """One servable thing: ``kind`` ``"run"`` or ``"export"``, its id and path, and what the
    runs list shows (recipe name, task, date, headline metric), read from the folder's own
    files without loading a model."""

    id: str
    path: Path
    kind: str
    name: str = ""
    task: str = ""
    date: str = ""
    status: str = ""
    metric: dict | None = None
    problem: str = ""
    extra: dict = field(default_factory=dict)

    def summary(self) -> dict:
        return {
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "task": self.task,
            "date": self.date,
            "status": self.status,
            "metric": self.metric,
            "problem": self.problem,
            **self.extra,
        }


def headline_metric(metrics: dict) -> dict | None:
    """The metric a run was selected on (``monitor``, e.g. ``val_accuracy``), on the test split
    when it has one, else on validation: ``{"name", "split", "value"}``."""
    monitor = metrics.get("monitor")
    if not isinstance(monitor, str):
        return None
    name = monitor[4:] if monitor.startswith("val_") else monitor
    for split in ("test", "validation"):
        value = metrics.get(split, {}).get(name) if isinstance(metrics.get(split), dict) else None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return {"name": name, "split": split, "value": float(value)}
    return None


def _is_run(path: Path) -> bool:
    return path.is_dir() and (path / RUN_MARKER).is_file()


def _is_export(path: Path) -> bool:
    sidecar = path.with_name(path.name + ".json")
    if not sidecar.is_file():
        return False
    if path.is_dir():
        return (path / "saved_model.pb").is_file() and not _is_run(path)
    return path.is_file() and path.suffix in EXPORT_SUFFIXES


def _json(path: Path) -> dict:
    try:
        doc = json.loads(read_text_bounded(path))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _describe_run(entry: Entry) -> Entry:
    try:
        info = read_run_info(entry.path)
    except RunError as exc:
        entry.problem = str(exc)
        return entry
    entry.status = info.get("status", "")
    entry.date = info.get("started", "")
    try:
        recipe = read_run_recipe(entry.path)
        entry.name, entry.task = recipe.name, recipe.task.type
    except RunError as exc:
        entry.problem = str(exc)
    entry.metric = headline_metric(_json(entry.path / "metrics.json"))
    return entry


def _describe_export(entry: Entry) -> Entry:
    meta = _json(entry.path.with_name(entry.path.name + ".json"))
    recipe = meta.get("recipe") if isinstance(meta.get("recipe"), dict) else {}
    entry.name = str(recipe.get("name", entry.path.name))
    task = recipe.get("task")
    entry.task = str(task.get("type", "")) if isinstance(task, dict) else ""
    try:  # the .json records no date: the export's own time
        entry.date = datetime.fromtimestamp(entry.path.stat().st_mtime).isoformat(
            timespec="seconds"
        )
    except OSError:
        entry.date = ""
    entry.status = "export"
    entry.extra = {"format": str(meta.get("format", entry.path.suffix.lstrip("."))),
                   "streaming": bool(meta.get("streaming", False))}  # fmt: skip
    if not meta:
        entry.problem = f"'{entry.path.name}.json' is missing or unreadable"
    return entry


class Catalog:
    """The run folders and exports under ``root`` (module docstring), scanned on each
    ``entries()`` call so that runs finishing while the server runs appear."""

    def __init__(self, root):
        root = Path(root).expanduser()
        if not root.exists():
            raise RunError(
                f"'{root}' does not exist; pass a runs folder, a run folder or an export."
            )
        self.root = root.resolve()
        if not (self.root.is_dir() or _is_export(self.root)):
            raise RunError(
                f"'{root}' is neither a folder nor an export with its .json beside it; pass a runs "
                "folder, a run folder or a file `seqkit export` wrote."
            )

    def _inside(self, path: Path) -> bool:
        try:
            return path.resolve().is_relative_to(self.root if self.root.is_dir() else
                                                 self.root.parent)  # fmt: skip
        except OSError:
            return False

    def _exports_in(self, folder: Path):
        if not folder.is_dir():
            return
        for p in sorted(folder.iterdir()):
            if _is_export(p) and self._inside(p):
                yield p

    def _paths(self):
        root = self.root
        if not root.is_dir():  # an export file
            yield "export", root
            return
        if _is_run(root):
            yield "run", root
            for p in self._exports_in(root / "export"):
                yield "export", p
            return
        if _is_export(root):  # a SavedModel folder
            yield "export", root
            return
        for p in self._exports_in(root):
            yield "export", p
        for child in sorted(root.iterdir()):
            if not child.is_dir() or not self._inside(child):
                continue
            if _is_run(child):
                yield "run", child
                for p in self._exports_in(child / "export"):
                    yield "export", p
                continue
            if child.name.startswith("."):
                continue
            for grandchild in sorted(child.iterdir()) if child.is_dir() else ():
                if _is_run(grandchild) and self._inside(grandchild):
                    yield "run", grandchild
                    for p in self._exports_in(grandchild / "export"):
                        yield "export", p

    def _id(self, path: Path) -> str:
        base = self.root if self.root.is_dir() else self.root.parent
        rel = path.resolve().relative_to(base).as_posix()
        return "." if rel in ("", ".") or path.resolve() == self.root else rel

    def entries(self) -> dict[str, Entry]:
        """Every servable entry, by id, in the order found (runs by name)."""
        found: dict[str, Entry] = {}
        try:
            for kind, path in self._paths():
                if len(found) >= MAX_ENTRIES:
                    log.warning("More than %d runs and exports under %s; listing the first %d.",
                                MAX_ENTRIES, self.root, MAX_ENTRIES)  # fmt: skip
                    break
                entry = Entry(self._id(path), path, kind)
                found[entry.id] = _describe_run(entry) if kind == "run" else _describe_export(entry)
        except OSError as exc:
            log.warning("Cannot list %s: %s", self.root, exc)
        return found

    def get(self, entry_id) -> Entry:
        """The entry of ``entry_id`` as the scan lists it; KeyError for anything else."""
        if not isinstance(entry_id, str) or not entry_id or len(entry_id) > 1000:
            raise KeyError(entry_id)
        entries = self.entries()
        if entry_id not in entries:
            raise KeyError(entry_id)
        return entries[entry_id]
