"""What the keyword-spotting sources share: label checks, the scanned-once base
(``_ScannedSource``), the Speech Commands layout's names, and generation locks.

Each source lists ``Example`` records (``seqkit.data``) and its label names; the feature
pipeline reads them. None of them ever writes into, or deletes from, a dataset folder (the
generated ones write only into folders they made, under ``generation_lock``). Everything is
deterministic given ``seed``: files are sorted, random choices seeded.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import tempfile
import time
from pathlib import Path

from ...data import AUDIO_EXTENSIONS, Example
from ...errors import DataError, ParameterError

log = logging.getLogger("seqkit")

SILENCE_LABEL = "_silence_"
UNKNOWN_LABEL = "_unknown_"
BACKGROUND_NOISE_DIR = "_background_noise_"
STANDARD_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
LIST_FILES = {"validation": "validation_list.txt", "test": "testing_list.txt"}
# Level of generated silence: RMS from -80 to -20 dB full scale (noise files: gain 0..1, as TF).
GENERATED_NOISE_DB = (-80.0, -20.0)


# -- shared helpers ------------------------------------------------------------------------------


def _extensions(extensions) -> tuple[str, ...]:
    if extensions is not None and (
        not isinstance(extensions, (list, tuple))
        or not extensions
        or not all(isinstance(e, str) and e.strip(".") for e in extensions)
    ):
        raise ParameterError(
            f"`extensions` must be a list of file suffixes such as ['.wav']; "
            f"received {extensions!r}."
        )
    return tuple(
        e.lower() if e.startswith(".") else f".{e.lower()}"
        for e in (extensions or AUDIO_EXTENSIONS)
    )


def _seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ParameterError(f"`seed` must be an integer in [0, 2**32); received {seed!r}.")
    return seed


def _check_root(root: Path, key: str = "data.source.root") -> None:
    if root.exists() and not root.is_dir():
        raise DataError(f"Data folder '{root}' is a file, not a folder ({key}).")
    if not root.is_dir():
        raise DataError(f"Data folder '{root}' does not exist ({key}); check the path.")


def _audio_files(folder: Path, extensions) -> list[Path]:
    """Audio files under ``folder`` (recursively, hidden folders skipped), sorted."""
    out = []
    for p in folder.rglob("*"):
        rel = p.relative_to(folder).parts
        if any(part.startswith(".") for part in rel[:-1]):
            continue
        if p.suffix.lower() in extensions and p.is_file():
            out.append(p)
    return sorted(out)


def _check_labels(labels, what="labels") -> list[str] | None:
    if labels is None:
        return None
    if (
        not isinstance(labels, (list, tuple))
        or not labels
        or not all(isinstance(x, str) and x for x in labels)
    ):
        raise ParameterError(
            f"`{what}` must be a non-empty list of names; received {labels!r} (quote yes/no/"
            "on/off in YAML: 'yes')."
        )
    dup = sorted({x for x in labels if list(labels).count(x) > 1})
    if dup:
        raise ParameterError(f"`{what}` names {', '.join(dup)} more than once.")
    return list(labels)


def _examples_line(paths, n=3) -> str:
    return ", ".join(str(p) for p in paths[:n]) + (", ..." if len(paths) > n else "")


def _select_labels(found: dict[str, list], labels, where: str) -> list[str]:
    """Label order: ``labels`` as given (each must have examples), else sorted found labels."""
    if labels is None:
        names = sorted(found)
        if len(names) < 2:
            raise DataError(
                f"{where} gives {len(names)} label(s) ({', '.join(names) or 'none'}); "
                "a classifier needs at least two."
            )
        return names
    missing = [x for x in labels if not found.get(x)]
    if missing:
        raise DataError(
            f"Label(s) {', '.join(missing)} have no files in {where} (data.source.labels); "
            f"found: {', '.join(sorted(found)) or 'none'}."
        )
    return list(labels)


# -- Speech Commands -----------------------------------------------------------------------------


class _ScannedSource:
    """A dataset on disk read once per source object: ``_read()`` returns ``(labels,
    examples)``; ``label_names`` and ``examples`` serve copies of that one scan."""

    _cache = None

    def prepare(self) -> None:
        """Nothing to do for a dataset on disk."""

    def _scan(self):
        if self._cache is None:
            self._cache = self._read()
        return self._cache

    def label_names(self) -> list[str]:
        return list(self._scan()[0])

    def examples(self) -> list[Example]:
        self.prepare()
        return list(self._scan()[1])


# -- labels from file names ----------------------------------------------------------------------


# -- CSV manifest --------------------------------------------------------------------------------


SYNTH_MARKER = ".seqkit-synthetic.json"


_HELD_LOCKS: set = set()  # generation locks this process holds


@contextlib.contextmanager
def generation_lock(root):
    """Hold an exclusive lock while data is generated into ``root``: processes that prepare the
    same folder at once (the workers of a ``multi_worker`` run, two runs started together) take
    turns, and the later ones find the generation complete instead of rewriting it under the
    first. The lock is a file in the temporary folder, ``seqkit-locks/<hash of root's path>``
    (nothing is written beside or into the user's folders; created if absent, never removed:
    removing a lock file others wait on would let two hold it), so it serializes processes of
    one machine. Where ``fcntl`` does not exist (Windows) nothing is locked."""
    try:
        import fcntl  # optional: may not be installed
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    root = Path(root).expanduser()
    key = str(root.resolve())
    if key in _HELD_LOCKS:  # this process holds it already (flock would wait for itself)
        yield
        return
    with open(_lock_path(key), "a") as handle:
        waited = time.monotonic()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("Waiting for another process that is generating '%s'.", root)
            fcntl.flock(handle, fcntl.LOCK_EX)
            log.info("'%s': the other process finished (%.0f s).", root, time.monotonic() - waited)
        _HELD_LOCKS.add(key)
        try:
            yield
        finally:
            _HELD_LOCKS.discard(key)
            fcntl.flock(handle, fcntl.LOCK_UN)


def _lock_path(key: str) -> Path:

    folder = Path(tempfile.gettempdir()) / "seqkit-locks"
    folder.mkdir(exist_ok=True)
    return folder / hashlib.sha1(key.encode()).hexdigest()
