"""On-disk feature cache: unaugmented features computed once per (file content, pipeline
settings), reused by later epochs and later runs, and read back memory-mapped, so a split of
any size trains without being held in RAM.

Where: ``$SEQKIT_CACHE``, else ``$XDG_CACHE_HOME/seqkit``, else ``~/.cache/seqkit``. A cache
folder inside the data folder is refused: seqkit never writes into a dataset. ``data.cache:
false`` in a recipe turns the cache off (features are then kept in memory).

Layout (``v1`` is the format version)::

    <root>/v1/files.sqlite                  path, size, mtime_ns -> SHA-1 of the file's bytes
    <root>/v1/features/<pipeline id>/       one folder per pipeline settings
        <set>-<content>.npy                 the features of one list of examples, in order
        <set>-<content>.json                its meta: row keys, skipped files, shapes, checksum

Keys. A file is known by the SHA-1 of its bytes. The index remembers each file's size and
modification time (ns) with its SHA-1, so an unchanged file is not read again; a file changed
in the last 2 s is not remembered (its timestamp could still hide a change, the "racy" case
git also guards). An example's key is the SHA-1 of its content SHA-1 and its own settings
(offset, duration, gain, generated-noise colour and seed). The pipeline id is the SHA-1 of
every step's class and public settings (defaults resolved), the step names, the librosa and
soxr versions and the format version: any change gives another folder. A list of examples is
stored under its content id (SHA-1 of the pipeline id and its ordered (name, key) pairs); when
a list is built, rows already stored in another list of the same pipeline are copied instead
of recomputed (a dataset that grew extracts only its new files), and the lists it replaces
(same ``<set>``: the same source settings) are deleted.

Integrity. The meta records the array header and the SHA-1 of the data bytes; every open
checks both (about 1.8 GB/s here), and a list that fails is deleted and rebuilt, never used.
Files are written under temporary names and renamed into place, data first and meta last, so
an interrupted write never looks complete.

Size. Each list is its features as float32 (101 x 40 per one-second clip: 16 KB; Speech
Commands v2 about 1.7 GB). A list not used for 30 days is deleted when its pipeline folder is
next written; delete the cache folder at any time to reclaim the space.

Storage. Rows of one shape are one ``(N, ...)`` float32 ``.npy`` (``np.load(mmap_mode="r")``
maps it); rows of different shapes (waveforms) are one flat array with their shapes in the
meta. ``Rows`` is the picklable, lazily mapped view that batches read from.

Why one module of ~620 lines: the file format, its writer, its verifying reader and the
index of files are one on-disk format; split, each part would have to know the others' layout.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata as md
import json
import logging
import os
import sqlite3
import struct
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .errors import DataError
from .extract import default_workers, example_name, extract_features, iter_features, report_skipped

log = logging.getLogger("seqkit")

CACHE_ENV = "SEQKIT_CACHE"
FORMAT = "v1"
HEADER_BYTES = 4096  # fixed .npy header size: the header is written last, in place
RACY_SECONDS = 2.0
READ_CHUNK = 16 << 20
UNUSED_DAYS = 30  # a list not used for this long is deleted when its folder is next written


def cache_root() -> Path:
    """``$SEQKIT_CACHE``, else ``$XDG_CACHE_HOME/seqkit``, else ``~/.cache/seqkit``."""
    env = os.environ.get(CACHE_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "seqkit"


def check_outside(root: Path, data_root) -> None:
    """DataError when the cache folder is the data folder or inside it."""
    if data_root is None:
        return
    root_abs, data_abs = Path(root).resolve(), Path(data_root).expanduser().resolve()
    if root_abs == data_abs or data_abs in root_abs.parents:
        raise DataError(
            f"The feature cache '{root}' is inside the data folder '{data_root}'; seqkit never "
            f"writes into a dataset. Set ${CACHE_ENV} to a folder outside it, or set "
            "data.cache: false in the recipe."
        )


# -- identities ----------------------------------------------------------------------------------


def _sha1(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=repr).encode()).hexdigest()


def _state(obj, depth=0):
    """A JSON-able picture of a step's public settings (attributes not starting with ``_``)."""
    if depth > 8:
        return repr(obj)
    if obj is None or isinstance(obj, (str, bool, int, float)):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return {"ndarray": hashlib.sha1(np.ascontiguousarray(obj).tobytes()).hexdigest(),
                "shape": list(obj.shape), "dtype": str(obj.dtype)}  # fmt: skip
    if isinstance(obj, (list, tuple)):
        return [_state(o, depth + 1) for o in obj]
    if isinstance(obj, dict):
        return {
            str(k): _state(v, depth + 1) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))
        }
    if hasattr(obj, "__dict__"):
        public = {k: v for k, v in vars(obj).items() if not k.startswith("_")}
        return {"class": f"{type(obj).__module__}.{type(obj).__qualname__}",
                "settings": _state(public, depth + 1)}  # fmt: skip
    return repr(obj)


def _versions() -> dict:

    out = {}
    for dist in ("librosa", "soxr"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = None
    return out


def pipeline_id(pipeline) -> str:
    """SHA-1 of the pipeline's steps (class and public settings), names and library versions."""
    steps = [_state(s) for s in pipeline.steps]
    return _sha1({"format": FORMAT, "steps": steps, "names": list(getattr(pipeline, "names", [])),
                  "versions": _versions()})  # fmt: skip


def source_identity(source_type: str, params: dict) -> str:
    """A data source's registry name and parameters, plus the working folder (relative roots),
    as one id: lists of the same identity replace each other in the cache."""
    return _sha1({"type": source_type, "params": params, "cwd": os.getcwd()})


def example_key(ex, digest) -> str:
    """Cache key of one example: its content SHA-1 and its own settings."""
    noise = getattr(ex, "noise", None)
    parts = [
        digest,
        getattr(ex, "offset", None),
        getattr(ex, "duration", None),
        getattr(ex, "gain", 1.0),
        noise,
        getattr(ex, "seed", 0) if noise is not None else None,
    ]
    return _sha1(parts)[:32]


# -- file index ----------------------------------------------------------------------------------


def _hash_file(path) -> str | None:
    h = hashlib.sha1()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    except OSError:
        return None
    return h.hexdigest()


class FileIndex:
    """``path, size, mtime_ns -> SHA-1`` in SQLite, so unchanged files are not read again.

    A damaged index file is deleted and started afresh; an index that cannot be opened at all
    (read-only folder) only means every file is hashed.
    """

    def __init__(self, path: Path):
        self.path = Path(path)

    def _connect(self):
        db = sqlite3.connect(str(self.path), timeout=30)
        db.execute(
            "CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER, "
            "mtime_ns INTEGER, digest TEXT)"
        )
        return db

    def _open(self):
        try:
            return self._connect()
        except sqlite3.DatabaseError as exc:
            if not self.path.exists():
                log.info("File index %s unavailable (%s); hashing every file.", self.path, exc)
                return None
            log.warning("File index %s is damaged (%s); starting a new one.", self.path, exc)
            try:
                self.path.unlink()
                return self._connect()
            except (OSError, sqlite3.DatabaseError):
                return None

    def digests(self, paths, workers: int = 1) -> list[str | None]:
        """SHA-1 of each file's bytes (``None`` for a file that cannot be read)."""
        stats = []
        for p in paths:
            try:
                st = os.stat(p)
                stats.append((st.st_size, st.st_mtime_ns))
            except OSError:
                stats.append(None)
        db = self._open()
        known = {}
        if db is not None:
            try:
                uniq = sorted({str(p) for p, s in zip(paths, stats) if s is not None})
                for i in range(0, len(uniq), 500):
                    part = uniq[i : i + 500]
                    rows = db.execute(
                        "SELECT path, size, mtime_ns, digest FROM files WHERE path IN "
                        f"({','.join('?' * len(part))})",
                        part,
                    ).fetchall()
                    known.update({r[0]: (r[1], r[2], r[3]) for r in rows})
            except sqlite3.DatabaseError as exc:
                log.info("File index %s unreadable (%s); hashing every file.", self.path, exc)
                known = {}
        out: list[str | None] = [None] * len(paths)
        todo = []
        for i, (p, s) in enumerate(zip(paths, stats)):
            if s is None:
                continue
            k = known.get(str(p))
            if k is not None and (k[0], k[1]) == s:
                out[i] = k[2]
            else:
                todo.append(i)
        if todo:

            with ThreadPoolExecutor(max(1, workers)) as pool:  # hashlib releases the GIL
                for i, digest in zip(todo, pool.map(_hash_file, [paths[i] for i in todo])):
                    out[i] = digest
            now_ns = time.time_ns()
            rows = [
                (str(paths[i]), stats[i][0], stats[i][1], out[i])
                for i in todo
                if out[i] is not None and now_ns - stats[i][1] > RACY_SECONDS * 1e9
            ]
            if db is not None and rows:
                try:
                    with db:
                        db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)", rows)
                except sqlite3.DatabaseError as exc:
                    log.info("File index %s not updated (%s).", self.path, exc)
        if db is not None:
            db.close()
        return out


# -- stored arrays -------------------------------------------------------------------------------


class CorruptEntry(Exception):
    """A stored list whose data or meta does not match its checksum."""


def _npy_header(shape) -> bytes:
    head = repr({"descr": "<f4", "fortran_order": False, "shape": tuple(shape)})
    body = head.encode("latin1")
    room = HEADER_BYTES - 10 - 1
    if len(body) > room:
        raise ValueError(f"array header too long for {shape}")
    return (
        b"\x93NUMPY\x01\x00"
        + struct.pack("<H", HEADER_BYTES - 10)
        + body
        + b" " * (room - len(body))
        + b"\n"
    )


class _Writer:
    """Appends float32 rows to a temporary ``.npy`` whose header is written at the end."""

    def __init__(self, final: Path):
        self.final = final
        self.tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        self.f = open(self.tmp, "wb")
        self.f.write(b"\0" * HEADER_BYTES)
        self.sha = hashlib.sha1()
        self.shapes: list[tuple] = []
        self.keys: list[str] = []
        self.nbytes = 0

    def add(self, key: str, row) -> None:
        a = np.ascontiguousarray(row, dtype=np.float32)
        view = memoryview(a).cast("B")
        self.f.write(view)
        self.sha.update(view)
        self.nbytes += a.nbytes
        self.shapes.append(tuple(int(d) for d in a.shape))
        self.keys.append(key)

    def finish(self) -> dict:
        uniform = len(set(self.shapes)) == 1
        shape = (len(self.shapes), *self.shapes[0]) if uniform else (self.nbytes // 4,)
        header = _npy_header(shape)
        self.f.seek(0)
        self.f.write(header)
        self.f.close()
        return {
            "shape": list(shape),
            "shapes": None if uniform else [list(s) for s in self.shapes],
            "keys": self.keys,
            "checksum": {"sha1": self.sha.hexdigest(), "bytes": self.nbytes},
        }

    def abort(self) -> None:
        try:
            self.f.close()
        finally:
            self.tmp.unlink(missing_ok=True)


def _verify(npy: Path, meta: dict) -> None:
    """Raise CorruptEntry unless the header and the data's SHA-1 match the meta."""
    try:
        with open(npy, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version != (1, 0):
                raise CorruptEntry(f"unexpected .npy version {version}")
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            if f.tell() != HEADER_BYTES or fortran or dtype != np.float32:
                raise CorruptEntry("unexpected array header")
            if list(shape) != meta["shape"]:
                raise CorruptEntry(f"shape {shape} differs from the meta's {meta['shape']}")
            want = meta["checksum"]["bytes"]
            if (
                int(np.prod(shape)) * 4 != want
                or os.fstat(f.fileno()).st_size != HEADER_BYTES + want
            ):
                raise CorruptEntry("file size differs from the meta")
            h = hashlib.sha1()
            buf = bytearray(READ_CHUNK)
            while n := f.readinto(buf):
                h.update(memoryview(buf)[:n])
            if h.hexdigest() != meta["checksum"]["sha1"]:
                raise CorruptEntry("data checksum mismatch")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CorruptEntry(str(exc)) from exc


class Rows:
    """The rows ``[start, stop)`` of a stored list, mapped on first use; picklable (a worker
    process maps the file itself instead of receiving a copy of the data)."""

    def __init__(self, npy, shape, shapes=None, start=0, stop=None):
        self.npy = str(npy)
        self.shape = tuple(shape)
        self.shapes = [tuple(s) for s in shapes] if shapes is not None else None
        n = len(self.shapes) if self.shapes is not None else self.shape[0]
        self.start, self.stop = start, n if stop is None else stop
        self._map = None
        self._offsets = None

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in ("_map", "_offsets")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._map, self._offsets = None, None

    def __len__(self) -> int:
        return self.stop - self.start

    @property
    def uniform(self) -> bool:
        return self.shapes is None

    def _mapped(self):
        if self._map is None:
            self._map = np.load(self.npy, mmap_mode="r")
            if self.shapes is not None:
                sizes = [int(np.prod(s)) for s in self.shapes]
                self._offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        return self._map

    def slice(self, start: int, stop: int) -> Rows:
        out = Rows(self.npy, self.shape, self.shapes, self.start + start, self.start + stop)
        out._map, out._offsets = self._map, self._offsets
        return out

    def array(self):
        """The rows as one read-only memory-mapped ``(n, ...)`` array (uniform shapes only)."""
        if not self.uniform:
            raise ValueError("rows of different shapes are not one array")
        return self._mapped()[self.start : self.stop]

    def __getitem__(self, i):
        """Row ``i`` (a read-only view), or rows ``i`` (an index array: a copy)."""
        m = self._mapped()
        if self.uniform:
            if isinstance(i, (int, np.integer)):
                return m[self.start + int(i)]
            return m[np.asarray(i) + self.start]
        if not isinstance(i, (int, np.integer)):
            return [self[int(j)] for j in np.asarray(i)]
        j = self.start + int(i)
        return m[self._offsets[j] : self._offsets[j + 1]].reshape(self.shapes[j])

    def tolist(self) -> list:
        return [self[i] for i in range(len(self))]


# -- the cache -----------------------------------------------------------------------------------


def _read_meta(path: Path) -> dict | None:
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("format") == FORMAT else None


def _remove(npy: Path) -> None:
    for p in (npy, npy.with_suffix(".json")):
        try:
            p.unlink(missing_ok=True)
        except OSError:
            pass


class FeatureCache:
    """Features of example lists for one pipeline, stored under ``root`` (module docstring).

    ``identity`` names the source settings (``source_identity``): a newly built list
    replaces older lists of the same identity. ``data_root`` is refused as a place for the
    cache, and anything inside it.
    """

    def __init__(self, pipeline, root=None, identity: str = "", data_root=None, workers=None):
        self.pipeline = pipeline
        self.root = Path(root).expanduser() if root is not None else cache_root()
        check_outside(self.root, data_root)
        self.pid = pipeline_id(pipeline)
        self.dir = self.root / FORMAT / "features" / self.pid[:24]
        self.set_id = _sha1(identity)[:12]
        self.workers = workers

    def _workers(self) -> int:

        return self.workers or default_workers()

    def keys(self, examples) -> list[str]:
        """Cache key of each example (reads files the index does not know yet)."""
        files = [i for i, ex in enumerate(examples) if getattr(ex, "noise", None) is None]
        index = FileIndex(self.root / FORMAT / "files.sqlite")
        digests = index.digests([str(examples[i].path) for i in files], self._workers())
        by_index = dict(zip(files, digests))
        return [example_key(ex, by_index.get(i)) for i, ex in enumerate(examples)]

    def extract(self, examples, progress=None):
        """``(kept examples, rows, skipped paths)`` for ``examples``, from the cache or computed
        and stored. ``rows`` is a ``Rows`` (memory-mapped). Skipped files get a warning each,
        as in ``extract_features``; DataError when nothing is usable."""
        examples = list(examples)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return self._in_memory(examples, progress, f"cannot create {self.dir}: {exc}")
        keys = self.keys(examples)
        content = _sha1([self.pid, [[example_name(ex), k] for ex, k in zip(examples, keys)]])
        npy = self.dir / f"{self.set_id}-{content[:24]}.npy"
        meta = self._open(npy)
        self.last_file, self.last_hit = npy, meta is not None
        if meta is None:
            try:
                meta = self._build(npy, examples, keys, progress)
            except OSError as exc:
                return self._in_memory(examples, progress, f"cannot write {self.dir}: {exc}")
        else:  # the warnings of the run that built it, again
            for _, warning in meta["skipped"]:
                log.warning("%s", warning)
            report_skipped(len(meta["skipped"]), meta["n_examples"])
            if progress is not None:
                progress(len(examples), len(examples))
        skipped = {i for i, _ in meta["skipped"]}
        kept = [ex for i, ex in enumerate(examples) if i not in skipped]
        rows = Rows(npy, meta["shape"], meta["shapes"])
        return kept, rows, [str(getattr(examples[i], "path", "")) for i in sorted(skipped)]

    def _in_memory(self, examples, progress, why):

        log.warning("Feature cache unavailable (%s); features are kept in memory this run.", why)
        return extract_features(examples, self.pipeline, progress=progress, workers=self.workers)

    def _open(self, npy: Path) -> dict | None:
        """The meta of a stored, verified list; None when absent; corrupt lists are removed."""
        meta_path = npy.with_suffix(".json")
        if not meta_path.exists():
            return None
        meta = _read_meta(meta_path)
        try:
            if meta is None:
                raise CorruptEntry("meta unreadable")
            _verify(npy, meta)
        except CorruptEntry as exc:
            log.warning(
                "Feature cache entry %s is damaged (%s); it is deleted and rebuilt.", npy, exc
            )
            _remove(npy)
            return None
        try:
            os.utime(meta_path)  # last use, for anyone pruning the cache by age
        except OSError:
            pass
        return meta

    def _donors(self, exclude: Path, wanted: set) -> dict:
        """``key -> (Rows, row)`` for wanted keys stored in other verified lists here."""
        found = {}
        for meta_path in sorted(self.dir.glob("*.json")):
            npy = meta_path.with_suffix(".npy")
            if npy == exclude or not wanted:
                continue
            meta = _read_meta(meta_path)
            if meta is None or not wanted.intersection(meta.get("keys", ())):
                continue
            try:
                _verify(npy, meta)
            except CorruptEntry as exc:
                log.warning("Feature cache entry %s is damaged (%s); deleted.", npy, exc)
                _remove(npy)
                continue
            rows = Rows(npy, meta["shape"], meta["shapes"])
            for j, k in enumerate(meta["keys"]):
                if k in wanted:
                    found[k] = (rows, j)
                    wanted.discard(k)
        return found

    def _build(self, npy: Path, examples, keys, progress) -> dict:
        self._sweep()
        donors = self._donors(npy, set(keys))
        todo = [i for i, k in enumerate(keys) if k not in donors]
        if donors:
            log.info(
                "Feature cache: %d of %d examples already computed; extracting %d.",
                len(examples) - len(todo), len(examples), len(todo),
            )  # fmt: skip
        total = len(examples)
        done = [0]

        def step(*_):
            done[0] += 1
            if progress is not None:
                progress(done[0], total)

        results = iter_features([examples[i] for i in todo], self.pipeline, workers=self.workers)
        writer = _Writer(npy)
        skipped = []
        try:
            for i, key in enumerate(keys):
                if key in donors:
                    rows, j = donors[key]
                    writer.add(key, rows[j])
                else:
                    _, x, warning = next(results)
                    if warning is None:
                        writer.add(key, x)
                    else:
                        skipped.append([i, warning])
                        log.warning("%s", warning)
                step()
            report_skipped(len(skipped), total)
            meta = writer.finish()
        except BaseException:
            writer.abort()
            raise
        meta.update(
            format=FORMAT,
            pipeline=self.pid,
            set=self.set_id,
            n_examples=total,
            skipped=skipped,
            created=_dt.datetime.now().isoformat(timespec="seconds"),
        )
        meta_path = npy.with_suffix(".json")
        tmp_meta = meta_path.with_name(f".{meta_path.name}.tmp-{os.getpid()}")
        tmp_meta.write_text(json.dumps(meta))
        os.replace(writer.tmp, npy)
        os.replace(tmp_meta, meta_path)
        for old in self.dir.glob(f"{self.set_id}-*.npy"):  # lists this one replaces
            if old != npy:
                _remove(old)
        return meta

    def _sweep(self, age: float = 86400.0) -> None:
        """Remove temporary files left by interrupted writes more than ``age`` seconds ago, and
        lists of this pipeline not used for ``UNUSED_DAYS`` days."""
        now = time.time()
        for p in self.dir.glob(".*.tmp-*"):
            try:
                if now - p.stat().st_mtime > age:
                    p.unlink()
            except OSError:
                pass
        for meta in self.dir.glob("*.json"):
            try:
                if now - meta.stat().st_mtime > UNUSED_DAYS * 86400:
                    _remove(meta.with_suffix(".npy"))
            except OSError:
                pass
