"""``audio_folder``: recordings as music, transcribed to melodies (pYIN) or polyphonic rolls
(CQT) by ``seqkit.music.transcribe``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data import percent
from ..errors import DataError, ParameterError, positive_int
from ..features import Load
from . import sources
from . import transcribe as tr
from .rolls import HIGHEST, LOWEST, notes_to_roll
from .sources import (
    AUDIO_SUFFIXES,
    FolderSplits,
    MusicData,
    MusicSource,
    Piece,
    finish,
    record_skip,
)

AUDIO_MODES = ("melody", "polyphonic")


class AudioFolder(MusicSource, FolderSplits):
    """Recordings under ``root`` (WAV, FLAC, OGG, ...), transcribed to piano rolls.

    ``mode: melody`` -- pYIN (``seqkit.music.transcribe.melody_notes``), one note at a time,
    with onsets; ``mode: polyphonic`` -- a constant-Q roll (``polyphonic_roll``). One step is
    one analysis frame, ``hop_length / sample_rate`` seconds. A recording in which no pitch is
    found is skipped (warning, counted).
    """

    def __init__(
        self,
        root: str,
        mode: str = "melody",
        sample_rate: int = 22050,
        hop_length: int = 512,
        threshold_db: float = -30.0,
        max_polyphony: int = 6,
        lowest_note: int = 36,
        highest_note: int = 96,
        validation_percent: float = 10.0,
        test_percent: float = 10.0,
    ):
        if not isinstance(root, str) or not root:
            raise ParameterError(f"`root` must be a folder name; received {root!r}.")
        if mode not in AUDIO_MODES:
            raise ParameterError(
                f"`mode` must be one of {', '.join(AUDIO_MODES)}; received {mode!r}."
            )
        self.root = Path(root).expanduser()
        self.mode = mode
        self.sample_rate = positive_int("sample_rate", sample_rate)
        self.hop_length = positive_int("hop_length", hop_length)
        if not isinstance(threshold_db, (int, float)) or threshold_db >= 0:
            raise ParameterError(
                f"`threshold_db` must be a number below 0; received {threshold_db!r}."
            )
        self.threshold_db = float(threshold_db)
        self.max_polyphony = positive_int("max_polyphony", max_polyphony)
        for name, v in (("lowest_note", lowest_note), ("highest_note", highest_note)):
            if isinstance(v, bool) or not isinstance(v, int) or not LOWEST <= v <= HIGHEST:
                raise ParameterError(
                    f"`{name}` must be a MIDI note in {LOWEST}..{HIGHEST}; received {v!r}."
                )
        if lowest_note >= highest_note:
            raise ParameterError(
                f"`lowest_note` ({lowest_note}) must be below `highest_note` ({highest_note})."
            )
        self.lowest_note, self.highest_note = lowest_note, highest_note
        self.validation_percent = percent("validation_percent", validation_percent)
        self.test_percent = percent("test_percent", test_percent)

    def transcribe(self, path) -> tuple[np.ndarray, np.ndarray | None]:
        """``(roll, onsets)`` of one recording; DataError when it cannot be read."""

        y = Load(sample_rate=self.sample_rate).read(path)
        if self.mode == "melody":
            notes = tr.melody_notes(
                y, self.sample_rate, self.hop_length, self.lowest_note, self.highest_note
            )
            frames = 1 + len(y) // self.hop_length
            roll, onsets, _ = notes_to_roll(notes, length=frames)
            return roll, onsets
        roll = tr.polyphonic_roll(
            y, self.sample_rate, self.hop_length, self.threshold_db, self.max_polyphony
        )
        return roll, None

    def load(self, cache: bool = True) -> MusicData:
        files = self._files(AUDIO_SUFFIXES)
        pieces, skipped, steps = [], [], 0
        for path, split in files:
            try:
                roll, onsets = self.transcribe(path)
            except DataError as exc:
                record_skip(skipped, path, str(exc).removeprefix(f"{path}: "))
                continue
            if not roll.any():
                record_skip(skipped, path, "no detectable pitch")
                continue
            steps += len(roll)
            if steps > sources.MAX_ROLL_STEPS:
                raise DataError(
                    f"{self.root}: the recordings add up to more than "
                    f"{sources.MAX_ROLL_STEPS:,} time steps (at {path}), the most a music source "
                    "may hold (MAX_ROLL_STEPS); use fewer files or a larger `hop_length`."
                )
            pieces.append(Piece(str(path), split, roll, onsets))
        step = {"seconds": self.hop_length / self.sample_rate}
        return finish(pieces, step, skipped, 0, "recordings", len(files))
