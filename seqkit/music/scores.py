"""``music21_corpus``: the scores that ship with music21 (Bach chorales and more), as piano rolls
or melodies, parsed once and cached under seqkit's cache folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..cache import cache_root
from ..data import percent, which_set
from ..errors import DataError, ParameterError, positive_int
from . import sources
from .rolls import Note, notes_to_roll
from .sources import (
    SCORE_SUFFIXES,
    MusicData,
    MusicSource,
    Piece,
    finish,
    npz_shapes,
    record_dropped,
    record_skip,
)

log = logging.getLogger("seqkit")

# The score cache's arrays, as their headers claim them (all Bach chorales: ~1 MB of notes).
_MAX_CACHE_BYTES = 256 * 2**20

def cache_dir() -> Path:
    """seqkit's cache folder (``seqkit.cache.cache_root``): ``$SEQKIT_CACHE``, else
    ``$XDG_CACHE_HOME/seqkit``, else ``~/.cache/seqkit``."""

    return cache_root()


def score_notes(score, part: str | int | None, steps_per_quarter: int):
    """Notes (in steps) of a music21 score, or of one part; None when ``part`` is missing.

    Ties are merged; a step is ``1 / steps_per_quarter`` quarter note; times are exact
    fractions, so the quantisation rule is applied exactly.
    """
    parts = list(score.parts) or [score]
    if part is not None:
        if isinstance(part, int):
            parts = parts[part : part + 1] if -len(parts) <= part < len(parts) else []
        else:
            want = part.lower()
            parts = [p for p in parts if want in str(p.partName or p.id or "").lower()][:1]
        if not parts:
            return None
    notes = []
    for p in parts:
        for el in p.stripTies().flatten().notes:
            start = Fraction(el.offset).limit_denominator(10_000)
            end = start + Fraction(el.duration.quarterLength).limit_denominator(10_000)
            s = int((start * steps_per_quarter).__floor__())
            e = max(int((end * steps_per_quarter).__ceil__()), s + 1)
            for pitch in el.pitches:
                notes.append(Note(int(pitch.midi), s, e))
    notes.sort(key=lambda n: (n.start, n.pitch, n.end))
    return notes


class Music21Corpus(MusicSource):
    """Scores shipped with music21 (offline): every score of ``composer`` in its corpus
    (``bach``: the chorales, 400-odd MusicXML files; RomanText analyses are left out), all
    parts or one (``part``: a part name such as ``soprano``, or an index), ``limit`` scores at
    most. A step is ``1 / steps_per_quarter`` quarter note. Bach reused chorale tunes: a score
    whose (selected) notes are exactly those of an earlier one is skipped (``skip_duplicates``)
    so that no melody is in two splits; the same tune in another key or rhythm is kept. Parsed scores are cached as an
    ``.npz`` of rolls under ``seqkit.music.sources.cache_dir()`` (never as pickles) when the
    recipe's ``data.cache`` is true."""

    def __init__(
        self,
        composer: str = "bach",
        part: str | int | None = None,
        steps_per_quarter: int = 4,
        validation_percent: float = 10.0,
        test_percent: float = 10.0,
        limit: int | None = None,
        skip_duplicates: bool = True,
    ):
        if not isinstance(composer, str) or not composer:
            raise ParameterError(
                f"`composer` must be a name such as 'bach'; received {composer!r}."
            )
        if part is not None and not isinstance(part, (str, int)):
            raise ParameterError(f"`part` must be a part name or index; received {part!r}.")
        self.composer = composer
        self.part = part
        self.steps_per_quarter = positive_int("steps_per_quarter", steps_per_quarter)
        self.validation_percent = percent("validation_percent", validation_percent)
        self.test_percent = percent("test_percent", test_percent)
        self.limit = None if limit is None else positive_int("limit", limit)
        if not isinstance(skip_duplicates, bool):
            raise ParameterError(
                f"`skip_duplicates` must be true or false; received {skip_duplicates!r}."
            )
        self.skip_duplicates = skip_duplicates

    def _paths(self) -> list[Path]:
        try:
            from music21 import corpus  # music21 (0.45 s): only for its corpus
        except ImportError as exc:  # pragma: no cover - a dependency
            raise DataError(f"music21 is needed for music21_corpus ({exc}).") from exc
        paths = sorted(
            Path(p) for p in corpus.getComposer(self.composer) if Path(p).suffix in SCORE_SUFFIXES
        )
        if not paths:
            raise DataError(
                f"music21's corpus has no scores by composer '{self.composer}' "
                "(data.source.composer); try bach, beethoven, mozart, palestrina, monteverdi."
            )
        return paths[: self.limit] if self.limit else paths

    def _cache_file(self, paths) -> Path:
        import music21  # music21 (0.45 s): only for its corpus

        key = json.dumps(
            [music21.__version__, self.composer, self.part, self.steps_per_quarter,
             [p.name for p in paths]]
        )  # fmt: skip
        digest = hashlib.sha1(key.encode()).hexdigest()[:16]
        return cache_dir() / "music21" / f"{self.composer}-{digest}.npz"

    def load(self, cache: bool = True) -> MusicData:
        paths = self._paths()
        step = {"steps_per_quarter": self.steps_per_quarter}
        cached = self._cache_file(paths)
        entries = _read_cache(cached) if cache else None
        if entries is None:
            entries = [self._read(p) for p in paths]
            if cache:
                _write_cache(cached, entries)
        pieces, skipped, dropped, seen, steps = [], [], 0, {}, 0
        for name, reason, notes in entries:
            if reason:
                record_skip(skipped, name, reason)
                continue
            key = hashlib.sha1(repr(sorted(notes)).encode()).hexdigest()
            if self.skip_duplicates and key in seen:
                record_skip(skipped, name, f"duplicate (the same notes as {seen[key]})")
                continue
            seen[key] = name
            steps += max(n.end for n in notes)
            if steps > sources.MAX_ROLL_STEPS:
                raise DataError(
                    f"music21's corpus ({self.composer}): the scores add up to more than "
                    f"{sources.MAX_ROLL_STEPS:,} time steps (at {name}), the most a music source "
                    "may hold (MAX_ROLL_STEPS); set `limit` or a coarser `steps_per_quarter`."
                )
            roll, onsets, outside = notes_to_roll(notes)
            if outside:
                record_dropped(skipped, name, outside)
                dropped += outside
            split = which_set(Path(name).name, self.validation_percent, self.test_percent)
            pieces.append(Piece(name, split, roll, onsets))
        return finish(pieces, step, skipped, dropped, "scores", len(paths))

    def _read(self, path: Path):
        from music21 import converter  # music21 (0.45 s): only for its corpus

        name = f"music21:{path.parent.name}/{path.name}"
        try:
            score = converter.parse(str(path), forceSource=True)  # never music21's pickles
        except Exception as exc:
            return name, f"cannot be parsed ({type(exc).__name__}: {exc})", []
        notes = score_notes(score, self.part, self.steps_per_quarter)
        if notes is None:
            return name, f"no part named {self.part!r}", []
        if not notes:
            return name, "no notes", []
        return name, "", notes


def _read_cache(path: Path):
    if not path.is_file():
        return None
    try:
        claimed = npz_shapes(path, ("names", "notes", "counts")).values()
        if max(np.prod(s, dtype=object) * d.itemsize for s, d in claimed) > _MAX_CACHE_BYTES:
            return None  # not what seqkit wrote: rebuilt
        with np.load(path, allow_pickle=False) as z:
            names = json.loads(str(z["names"]))
            notes = z["notes"]
            counts = z["counts"]
    except Exception:  # a damaged cache is rebuilt
        return None
    out, i = [], 0
    for (name, reason), n in zip(names, counts):
        out.append((name, reason, [Note(*map(int, row)) for row in notes[i : i + n]]))
        i += n
    return out


def _write_cache(path: Path, entries) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        notes = [tuple(n) for _, _, ns in entries for n in ns]
        tmp = path.with_name(path.name + f".{os.getpid()}.partial.npz")
        np.savez_compressed(
            tmp,
            names=np.array(json.dumps([[n, r] for n, r, _ in entries])),
            notes=np.array(notes, dtype=np.int32).reshape(-1, 3),
            counts=np.array([len(ns) for _, _, ns in entries], dtype=np.int64),
        )
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("Could not write the score cache %s (%s); continuing without.", path, exc)
