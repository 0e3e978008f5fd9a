"""Music data sources: each gives piano rolls (``seqkit.music.rolls``) split into train /
validation / test.

* ``pianoroll_pickle`` -- the Boulanger-Lewandowski (ICML 2012) pickles of the classic
  polyphonic benchmarks (JSB Chorales, Nottingham, MuseData, Piano-midi.de): a dict
  ``{'train', 'valid', 'test'}`` -> sequences -> time steps -> MIDI note numbers 21..108.
  **A pickle can run code when loaded.** seqkit opens one only when a recipe names this source,
  and reads it with an unpickler that refuses every Python object reference (only lists,
  tuples, sets, dicts, strings and numbers are built), so a hostile file is refused, not run.
  Prefer ``pianoroll_npz``: ``seqkit music convert-pickle IN.pickle OUT.npz`` converts once.
* ``pianoroll_npz`` -- the same rolls in a numpy ``.npz`` (read with ``allow_pickle=False``).
* ``midi_folder`` -- ``.mid`` / ``.midi`` files read with pretty_midi, drum tracks excluded,
  quantised with the rule of ``seqkit.music.rolls`` (a step is a note value at the file's
  tempo, ``steps_per_quarter``, or ``step_seconds``).
* ``music21_corpus`` -- scores shipped inside the music21 package (``composer: bach``: the
  Bach chorales), read offline, optionally one part (``part: soprano``).
* ``audio_folder`` -- WAV / FLAC / OGG recordings transcribed with librosa: pYIN for melodies
  (``mode: melody``), a constant-Q piano roll for polyphony (``mode: polyphonic``).

Bad input is skipped with a warning naming the file and what was done, and counted in
``MusicData.skipped`` (written to ``data.json`` and ``metrics.json``): corrupt or empty MIDI,
MIDI with only drums, audio with no detectable pitch, scores without the requested part.
Notes outside 21..108 are dropped with a warning (counted). Nothing usable left: ``DataError``.

Splits: the pickles and npz files carry theirs; folders use ``train/``, ``validation/`` (or
``valid/``) and ``test/`` sub-folders when present, else Speech Commands' rule (a SHA-1 hash of
the file name, ``validation_percent`` / ``test_percent``), stable as files are added.
"""

from __future__ import annotations

import importlib
import logging
import os
import pickle
import reprlib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data import SPLITS, percent, which_set
from ..errors import DataError, ParameterError, positive_int, positive_number
from .rolls import HIGHEST, KEYS, LOWEST, Note, midi_notes, notes_to_roll, steps_to_roll

log = logging.getLogger("seqkit")

PICKLE_SPLITS = {"train": "train", "valid": "validation", "test": "test"}

# Expansion limits: what a music file may expand to, checked while reading, before allocating
# (a pickle's lists can repeat one object many times: sizes are counted expanded). No real
# corpus comes near: Nottingham is 176 K training steps, Piano-midi.de about 1 M.
MAX_ROLL_STEPS = 10_000_000  # time steps of one source, all pieces: 3.5 GB as float32 x 88 keys
MAX_ROLL_NOTES = 50_000_000  # note entries in a pickle's time steps (5 a step at the maximum)
MAX_SEQUENCES = 1_000_000  # sequences in one split of a pickle or npz
MAX_PICKLE_BYTES = 64 * 2**20  # a B-L pickle (JSB Chorales: 0.4 MB); unpickled objects ~30x
MAX_MIDI_BYTES = 8 * 2**20  # one MIDI file (a piano piece: ~100 KB); parsed events ~50x
MAX_MIDI_NOTES = 1_000_000  # notes of one MIDI file
_TOO_BIG = "the file is damaged, or the corpus too big for one source: split it"
MIDI_SUFFIXES = (".mid", ".midi")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif")
SCORE_SUFFIXES = (".mxl", ".xml", ".musicxml", ".krn", ".mid", ".midi", ".abc", ".md")


@dataclass
class Piece:
    """One sequence: a ``(T, 88)`` boolean roll (key 0 = MIDI 21), its note onsets when the
    source knows them (else None), the split and a name for messages."""

    name: str
    split: str
    roll: np.ndarray
    onsets: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.roll.shape[0])


@dataclass
class MusicData:
    """What a music source read: pieces, the time step, and what it skipped or dropped."""

    pieces: list[Piece]
    time_step: dict  # {"steps_per_quarter": 4} or {"seconds": 0.023}
    # {"path", "reason"}: inputs skipped, and pieces with notes dropped ("dropped N note(s) ...")
    skipped: list[dict] = field(default_factory=list)
    notes_dropped: int = 0  # notes outside 21..108, dropped from the pieces kept

    def split(self, name: str) -> list[Piece]:
        return [p for p in self.pieces if p.split == name]


def seconds_per_step(time_step: dict, tempo: float = 120.0) -> float:
    """Seconds of one step: the source's ``seconds``, or a note value at ``tempo`` (bpm)."""
    if "seconds" in time_step:
        return float(time_step["seconds"])
    return 60.0 / float(tempo) / float(time_step["steps_per_quarter"])


def record_skip(skipped: list, path, reason: str) -> None:
    skipped.append({"path": str(path), "reason": reason})
    log.warning("Skipping %s: %s.", path, reason)


def record_dropped(skipped: list, path, n: int) -> None:
    """Record (in ``skipped``, reason ``dropped N note(s) ...``) and warn about notes outside
    the piano range that were left out of a piece that is kept."""
    if n:
        reason = f"dropped {n} note(s) outside the piano range {LOWEST}..{HIGHEST}"
        skipped.append({"path": str(path), "reason": reason})
        log.warning("%s: %s.", path, reason)


def files_skipped(skipped: list) -> list:
    """The entries of ``skipped`` that are whole inputs left out (not dropped notes)."""
    return [s for s in skipped if not s["reason"].startswith("dropped ")]


def finish(pieces, time_step, skipped, dropped, what: str, total: int) -> MusicData:
    if files_skipped(skipped):
        log.warning(
            "Skipped %d of %d %s (see the warnings above).",
            len(files_skipped(skipped)),
            total,
            what,
        )
    if dropped:
        log.warning("Dropped %d note(s) outside %d..%d in all.", dropped, LOWEST, HIGHEST)
    if not pieces:
        raise DataError(
            f"No usable music: all {total} {what} were skipped or empty (see the warnings above)."
        )
    return MusicData(pieces, time_step, skipped, dropped)




def _time_step(steps_per_quarter, step_seconds) -> dict:
    if steps_per_quarter is not None and step_seconds is not None:
        raise ParameterError(
            "Give `steps_per_quarter` or `step_seconds`, not both; received "
            f"{steps_per_quarter!r} and {step_seconds!r}."
        )
    if step_seconds is not None:
        return {"seconds": positive_number("step_seconds", step_seconds)}
    return {"steps_per_quarter": positive_int("steps_per_quarter", steps_per_quarter or 4)}


class MusicSource:
    """Base of music sources: ``load(cache=True)`` -> ``MusicData``. Constructors only check
    their arguments (recipes build them to validate); reading happens in ``load``."""

    kind = "music"

    def load(self, cache: bool = True) -> MusicData:  # pragma: no cover - abstract
        raise NotImplementedError


class FolderSplits:
    """Split rule of folder sources: split sub-folders, else the file-name hash."""

    SPLIT_DIRS = {
        "train": "train",
        "validation": "validation",
        "valid": "validation",
        "test": "test",
    }

    def _files(self, suffixes) -> list[tuple[Path, str]]:
        root = self.root
        if not root.is_dir():
            raise DataError(f"Data folder '{root}' does not exist (data.source.root).")
        named = {
            p.name: p for p in root.iterdir() if p.is_dir() and p.name.lower() in self.SPLIT_DIRS
        }
        out = []
        if named:
            for name, folder in sorted(named.items()):
                split = self.SPLIT_DIRS[name.lower()]
                out += [(p, split) for p in _walk(folder, suffixes)]
        else:
            out = [
                (p, which_set(p.name, self.validation_percent, self.test_percent))
                for p in _walk(root, suffixes)
            ]
        if not out:
            raise DataError(
                f"Data folder '{root}' has no {' / '.join(suffixes)} files; add some or fix "
                "data.source.root."
            )
        return out


def _walk(folder: Path, suffixes) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith(".")
    )


# -- the Boulanger-Lewandowski pickles ---------------------------------------------------------


class _PlainUnpickler(pickle.Unpickler):
    """Builds only plain containers and numbers; any reference to a Python object (a class, a
    function -- the way a pickle runs code) is refused."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"it refers to the Python object {module}.{name}")


def read_plain_pickle(path) -> object:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Piano-roll pickle '{path}' not found (data.source.path).")
    size = path.stat().st_size
    if size > MAX_PICKLE_BYTES:  # unpickled lists take up to ~30 times the file's bytes
        raise DataError(
            f"{path}: the file is {size:,} bytes, more than the {MAX_PICKLE_BYTES:,} seqkit "
            "unpickles (MAX_PICKLE_BYTES); write the rolls as .npz (the layout `seqkit music "
            "convert-pickle` writes) and use pianoroll_npz."
        )
    try:
        with path.open("rb") as fh:
            return _PlainUnpickler(fh).load()
    except pickle.UnpicklingError as exc:
        raise DataError(
            f"{path}: refused: {exc}. seqkit reads only plain pickles (lists, tuples, dicts, "
            "ints), never code; the Boulanger-Lewandowski files are plain."
        ) from exc
    except Exception as exc:  # EOFError, ValueError, ... : a damaged or foreign file
        raise DataError(
            f"{path}: cannot be read as a pickle ({type(exc).__name__}: {exc})."
        ) from exc


def _layout_error(path, where: str, found) -> DataError:
    return DataError(
        f"{path}: {where} is {_describe(found)}; expected the Boulanger-Lewandowski layout: a "
        "dict {'train', 'valid', 'test'} -> list of sequences -> list of time steps -> "
        "tuple of MIDI note numbers (ints 21..108)."
    )


# A value's description in a message: bounded in depth and items, whatever the value (the
# repr of a nested list that repeats one object would not end).
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 6, 30, 30
_REPR.maxlist = _REPR.maxtuple = _REPR.maxset = _REPR.maxfrozenset = _REPR.maxdict = 4


def _describe(value) -> str:
    if isinstance(value, dict):
        keys = sorted(k[:30] if isinstance(k, str) else _REPR.repr(k) for k in value)
        return f"a dict with keys {keys[:6]}"
    text = _REPR.repr(value)
    return f"a {type(value).__name__} ({text[:40]}{'...' if len(text) > 40 else ''})"


def _check_expansion(data, path) -> None:
    """Refuse a B-L layout whose expanded size -- sequences, time steps, notes, repeats of one
    object counted each time -- passes the limits, before anything is built from it."""
    steps = 0
    for key in PICKLE_SPLITS:
        seqs = data[key]
        if not isinstance(seqs, (list, tuple)):
            raise _layout_error(path, f"['{key}']", seqs)
        if len(seqs) > MAX_SEQUENCES:
            raise DataError(
                f"{path}: ['{key}'] lists {len(seqs):,} sequences, more than the "
                f"{MAX_SEQUENCES:,} a music source may hold (MAX_SEQUENCES); {_TOO_BIG}."
            )
        for i, seq in enumerate(seqs):
            if not isinstance(seq, (list, tuple)):
                raise _layout_error(path, f"['{key}'][{i}]", seq)
            steps += len(seq)
    if steps > MAX_ROLL_STEPS:
        raise DataError(
            f"{path}: its sequences add up to {steps:,} time steps (repeats counted), more "
            f"than the {MAX_ROLL_STEPS:,} a music source may hold (MAX_ROLL_STEPS); {_TOO_BIG}."
        )
    notes = 0
    for key in PICKLE_SPLITS:
        for i, seq in enumerate(data[key]):
            for t, step in enumerate(seq):
                if not isinstance(step, (list, tuple, set, frozenset)):
                    raise _layout_error(path, f"['{key}'][{i}][{t}]", step)
                notes += len(step)
                if notes > MAX_ROLL_NOTES:
                    raise DataError(
                        f"{path}: its time steps hold more than {MAX_ROLL_NOTES:,} notes "
                        f"(repeats counted; MAX_ROLL_NOTES); {_TOO_BIG}."
                    )


def layout_to_pieces(data, path) -> tuple[list[Piece], list[dict], int]:
    """Check the B-L layout and turn it into pieces; ``(pieces, skipped, notes_dropped)``.
    Sizes are checked first, expanded (``MAX_SEQUENCES``, ``MAX_ROLL_STEPS``,
    ``MAX_ROLL_NOTES``): a DataError naming the file, before any roll is allocated."""
    if not isinstance(data, dict) or not all(k in data for k in PICKLE_SPLITS):
        raise _layout_error(path, "the top level", data)
    _check_expansion(data, path)
    pieces, skipped, dropped = [], [], 0
    for key, split in PICKLE_SPLITS.items():
        for i, seq in enumerate(data[key]):
            where = f"['{key}'][{i}]"
            for t, step in enumerate(seq):
                if not isinstance(step, (list, tuple, set, frozenset)) or not all(
                    isinstance(n, int) and not isinstance(n, bool) for n in step
                ):
                    raise _layout_error(path, f"{where}[{t}]", step)
            if not seq:
                record_skip(skipped, f"{path}{where}", "empty sequence")
                continue
            roll, outside = steps_to_roll(seq)
            if outside:
                record_dropped(skipped, f"{path}{where}", outside)
                dropped += outside
            pieces.append(Piece(f"{key}[{i}]", split, roll))
    return pieces, skipped, dropped


class PianoRollPickle(MusicSource):
    """A Boulanger-Lewandowski piano-roll pickle (``path``); one step = one frame of the file
    (a quarter note for JSB Chorales, an eighth for the others), ``steps_per_quarter`` says
    which (used to give generated MIDI its tempo). Read with a refusing unpickler: plain data
    only, no code runs. ``seqkit music convert-pickle`` writes the npz equivalent."""

    def __init__(self, path: str, steps_per_quarter: int = 1):
        if not isinstance(path, str) or not path:
            raise ParameterError(f"`path` must be a file name; received {path!r}.")
        self.path = Path(path).expanduser()
        self.steps_per_quarter = positive_int("steps_per_quarter", steps_per_quarter)

    def load(self, cache: bool = True) -> MusicData:
        data = read_plain_pickle(self.path)
        pieces, skipped, dropped = layout_to_pieces(data, self.path)
        n = sum(len(data[k]) for k in PICKLE_SPLITS)
        return finish(
            pieces, {"steps_per_quarter": self.steps_per_quarter}, skipped, dropped, "sequences", n
        )


# -- npz -----------------------------------------------------------------------------------------


def write_npz(path, pieces: list[Piece], time_step: dict) -> None:
    """Write pieces as ``.npz``: per split ``<split>`` (all steps, 88) uint8 and
    ``<split>_lengths``; ``lowest_note`` (21) and the time step. No pickled objects."""
    arrays: dict[str, np.ndarray] = {"lowest_note": np.array(LOWEST)}
    for split in SPLITS:
        rolls = [p.roll for p in pieces if p.split == split]
        arrays[split] = (
            np.concatenate(rolls).astype(np.uint8) if rolls else np.zeros((0, KEYS), np.uint8)
        )
        arrays[f"{split}_lengths"] = np.array([len(r) for r in rolls], dtype=np.int64)
    if "seconds" in time_step:
        arrays["step_seconds"] = np.array(float(time_step["seconds"]))
    else:
        arrays["steps_per_quarter"] = np.array(int(time_step["steps_per_quarter"]))
    tmp = Path(str(path) + ".partial.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


NPZ_ARRAYS = (*SPLITS, *(f"{s}_lengths" for s in SPLITS), "lowest_note", "steps_per_quarter",
              "step_seconds")  # fmt: skip


def npz_shapes(path, names=NPZ_ARRAYS) -> dict[str, tuple[tuple, np.dtype]]:
    """``name -> (shape, dtype)`` of the arrays ``names`` in an ``.npz``, read from each
    member's ``.npy`` header: nothing is decompressed beyond the headers."""
    out = {}
    with zipfile.ZipFile(path) as z:
        for member in z.namelist():
            name = member.removesuffix(".npy")
            if name not in names:
                continue
            with z.open(member) as fh:
                version = np.lib.format.read_magic(fh)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
                elif version == (2, 0):
                    shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
                else:
                    raise ValueError(f"'{member}' has .npy format version {version}")
            out[name] = (shape, dtype)
    return out


def _check_npz_sizes(path, claimed: dict) -> None:
    """Refuse headers that claim more steps or sequences than a music source may hold."""
    steps = 0
    for name, (shape, _) in claimed.items():
        n = int(np.prod(shape, dtype=object))
        if name.endswith("_lengths") and n > MAX_SEQUENCES:
            raise DataError(
                f"{path}: '{name}' claims {n:,} sequences, more than the {MAX_SEQUENCES:,} a "
                f"music source may hold (MAX_SEQUENCES); {_TOO_BIG}."
            )
        if name in SPLITS:
            steps += int(shape[0]) if shape else 0
        elif not name.endswith("_lengths") and n > 1:
            raise DataError(f"{path}: '{name}' has shape {shape}; it must be a single number.")
    if steps > MAX_ROLL_STEPS:
        raise DataError(
            f"{path}: the arrays claim {steps:,} time steps, more than the {MAX_ROLL_STEPS:,} "
            f"a music source may hold (MAX_ROLL_STEPS); {_TOO_BIG}."
        )
    big = [
        (int(np.prod(shape, dtype=object)) * dtype.itemsize, name)
        for name, (shape, dtype) in claimed.items()
        if name in SPLITS
    ]
    limit = MAX_ROLL_STEPS * KEYS * 4
    if big and max(big)[0] > limit:
        raise DataError(
            f"{path}: '{max(big)[1]}' claims {max(big)[0]:,} bytes, more than the {limit:,} "
            f"of {MAX_ROLL_STEPS:,} time steps as float32 (MAX_ROLL_STEPS); {_TOO_BIG}."
        )


class PianoRollNpz(MusicSource):
    """Piano rolls in a ``.npz`` (``seqkit music convert-pickle`` writes one): arrays
    ``train`` / ``validation`` / ``test`` of shape (steps, 88) with ``<split>_lengths`` giving
    each sequence's length, ``lowest_note`` = 21. Loaded with ``allow_pickle=False``."""

    def __init__(self, path: str):
        if not isinstance(path, str) or not path:
            raise ParameterError(f"`path` must be a file name; received {path!r}.")
        self.path = Path(path).expanduser()

    def load(self, cache: bool = True) -> MusicData:
        if not self.path.is_file():
            raise DataError(f"Piano-roll file '{self.path}' not found (data.source.path).")
        expected = (
            "expected arrays train / validation / test (steps, 88) with train_lengths / "
            "validation_lengths / test_lengths and lowest_note = 21 (`seqkit music "
            "convert-pickle` writes this layout)"
        )
        try:
            claimed = npz_shapes(self.path)
        except Exception as exc:
            raise DataError(
                f"{self.path}: cannot be read as .npz ({type(exc).__name__}: {exc}); {expected}."
            ) from exc
        _check_npz_sizes(self.path, claimed)
        try:  # only the layout's arrays, each no bigger than checked
            with np.load(self.path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files if k in claimed}
        except Exception as exc:
            raise DataError(
                f"{self.path}: cannot be read as .npz ({type(exc).__name__}: {exc}); {expected}."
            ) from exc
        missing = [k for s in SPLITS for k in (s, f"{s}_lengths") if k not in arrays] + (
            [] if "lowest_note" in arrays else ["lowest_note"]
        )
        if missing:
            raise DataError(f"{self.path}: missing {', '.join(missing)}; {expected}.")
        if int(arrays["lowest_note"]) != LOWEST:
            raise DataError(
                f"{self.path}: lowest_note is {int(arrays['lowest_note'])}; {expected}."
            )
        pieces = []
        for split in SPLITS:
            rolls, lengths = arrays[split], arrays[f"{split}_lengths"]
            if rolls.ndim != 2 or rolls.shape[1] != KEYS or lengths.ndim != 1:
                raise DataError(
                    f"{self.path}: '{split}' has shape {rolls.shape} and '{split}_lengths' "
                    f"{lengths.shape}; {expected}."
                )
            if lengths.sum() != rolls.shape[0] or (lengths < 0).any():
                raise DataError(
                    f"{self.path}: '{split}_lengths' add up to {int(lengths.sum())} but "
                    f"'{split}' has {rolls.shape[0]} steps; {expected}."
                )
            for i, roll in enumerate(np.split(rolls, np.cumsum(lengths)[:-1])):
                if len(roll):
                    pieces.append(Piece(f"{split}[{i}]", split, roll.astype(bool)))
        if "step_seconds" in arrays:
            step = {"seconds": float(arrays["step_seconds"])}
        else:
            step = {"steps_per_quarter": int(arrays.get("steps_per_quarter", 1))}
        total = sum(len(arrays[f"{s}_lengths"]) for s in SPLITS)
        return finish(pieces, step, [], 0, "sequences", total)


# -- MIDI folders ------------------------------------------------------------------------------


def read_midi(path, time_step: dict) -> tuple[list[Note], int]:
    """``(notes, drum_notes)`` of a MIDI file in steps; DataError if it cannot be read, or
    if it passes the limits (``MAX_MIDI_BYTES``, ``MAX_MIDI_NOTES``, its last note ending
    past ``MAX_ROLL_STEPS``): checked before its piano roll is allocated."""
    import pretty_midi  # pretty_midi (0.16 s): only when MIDI is read or written

    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise DataError(f"cannot be read ({exc.strerror or exc})") from exc
    if size > MAX_MIDI_BYTES:
        raise DataError(
            f"the file is {size:,} bytes, more than the {MAX_MIDI_BYTES:,} seqkit reads as MIDI "
            "(MAX_MIDI_BYTES)"
        )
    try:
        pm = pretty_midi.PrettyMIDI(str(path))
    except Exception as exc:  # mido and pretty_midi raise many types for damaged files
        raise DataError(f"cannot be read as MIDI ({type(exc).__name__}: {exc})") from exc
    n = sum(len(inst.notes) for inst in pm.instruments)
    if n > MAX_MIDI_NOTES:
        raise DataError(
            f"it holds {n:,} notes, more than the {MAX_MIDI_NOTES:,} seqkit reads from one MIDI "
            "file (MAX_MIDI_NOTES)"
        )
    notes, drums = midi_notes(
        pm,
        steps_per_quarter=time_step.get("steps_per_quarter"),
        step_seconds=time_step.get("seconds"),
    )
    end = max((note.end for note in notes), default=0)
    if end > MAX_ROLL_STEPS:
        raise DataError(
            f"its notes reach step {end:,}, more than the {MAX_ROLL_STEPS:,} a music source may "
            "hold (MAX_ROLL_STEPS)"
        )
    return notes, drums


class MidiFolder(MusicSource, FolderSplits):
    """``.mid`` / ``.midi`` files under ``root`` (recursively), one piece each.

    A step is ``1 / steps_per_quarter`` of a quarter note at the file's tempo (default 4: a
    sixteenth), or ``step_seconds`` seconds. Drum tracks are left out; a file that cannot be
    read, has no notes or only drums is skipped (warning, counted); notes outside 21..108 are
    dropped (warning, counted).
    """

    def __init__(
        self,
        root: str,
        steps_per_quarter: int | None = None,
        step_seconds: float | None = None,
        validation_percent: float = 10.0,
        test_percent: float = 10.0,
    ):
        if not isinstance(root, str) or not root:
            raise ParameterError(f"`root` must be a folder name; received {root!r}.")
        self.root = Path(root).expanduser()
        self.time_step = _time_step(steps_per_quarter, step_seconds)
        self.validation_percent = percent("validation_percent", validation_percent)
        self.test_percent = percent("test_percent", test_percent)

    def load(self, cache: bool = True) -> MusicData:
        files = self._files(MIDI_SUFFIXES)
        pieces, skipped, dropped, steps = [], [], 0, 0
        for path, split in files:
            try:
                notes, drums = read_midi(path, self.time_step)
            except DataError as exc:
                record_skip(skipped, path, str(exc))
                continue
            if not notes:
                record_skip(skipped, path, "only drum tracks" if drums else "no notes")
                continue
            steps += max(n.end for n in notes)
            if steps > MAX_ROLL_STEPS:
                raise DataError(
                    f"{self.root}: the MIDI files add up to more than {MAX_ROLL_STEPS:,} time "
                    f"steps (at {path}), the most a music source may hold (MAX_ROLL_STEPS); use "
                    "fewer files or a coarser step."
                )
            roll, onsets, outside = notes_to_roll(notes)
            if outside:
                record_dropped(skipped, path, outside)
                dropped += outside
            if not roll.any():
                record_skip(skipped, path, f"no notes inside {LOWEST}..{HIGHEST}")
                continue
            pieces.append(Piece(str(path), split, roll, onsets))
        return finish(pieces, self.time_step, skipped, dropped, "MIDI files", len(files))


# -- music21's corpus --------------------------------------------------------------------------


# -- audio -------------------------------------------------------------------------------------




# Sources that lived here until seqkit 0.2 (``from seqkit.music.sources import AudioFolder``).
_MOVED = {"Music21Corpus": "scores", "AudioFolder": "recordings", "score_notes": "scores",
          "cache_dir": "scores", "AUDIO_MODES": "recordings"}  # fmt: skip


def __getattr__(name):
    if name in _MOVED:
        return getattr(importlib.import_module(f"{__package__}.{_MOVED[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
