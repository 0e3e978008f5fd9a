"""Audio -> notes: pYIN for melodies, a CQT-based piano roll for polyphony (librosa).

Both work on frames of ``hop_length`` samples, and one frame is one time step of the roll.

* ``melody_notes``: ``librosa.pyin`` gives a fundamental frequency per frame and whether the
  frame is voiced; voiced frames are rounded to the nearest MIDI note, a 5-frame median filter
  removes one- and two-frame blips, and each run of frames on one note becomes a note; notes
  shorter than ``min_note_frames`` are dropped (pitch-tracker jitter, not music).
* ``polyphonic_roll``: a magnitude constant-Q transform with three bins per piano key; in each
  frame its peaks (so the leakage of a note into the next keys is not a note) above
  ``threshold_db`` (relative to the loudest bin of the recording) are notes, strongest first,
  unless the harmonics 2..6 of louder notes explain them; at most ``max_polyphony`` a frame; a
  3-frame median filter along time smooths the result. A simple transcriber: it suits clean
  recordings of tonal instruments, not dense mixes.
"""

from __future__ import annotations

import librosa
import numpy as np

from ..errors import ParameterError
from .rolls import KEYS, LOWEST, Note

HARMONIC_OFFSETS = [int(round(12 * np.log2(k))) for k in range(2, 7)]  # 12, 19, 24, 28, 31


def _check_hop(hop_length: int) -> int:
    if isinstance(hop_length, bool) or not isinstance(hop_length, int) or hop_length <= 0:
        raise ParameterError(f"`hop_length` must be a positive integer; received {hop_length!r}.")
    return hop_length


def _runs(values):
    """``(value, start, end)`` for each run of equal values."""
    out = []
    start = 0
    for i in range(1, len(values) + 1):
        if i == len(values) or values[i] != values[start]:
            out.append((values[start], start, i))
            start = i
    return out


def melody_notes(
    y,
    sr: int,
    hop_length: int = 512,
    fmin_note: int = 36,
    fmax_note: int = 96,
    min_note_frames: int = 3,
) -> list[Note]:
    """Notes of a monophonic recording, in frames of ``hop_length`` samples (pYIN)."""
    import scipy.signal  # scipy.signal (1 s): only on this path

    f0, voiced, _ = librosa.pyin(
        y=np.asarray(y, dtype=np.float32),
        sr=sr,
        fmin=float(librosa.midi_to_hz(fmin_note)),
        fmax=float(librosa.midi_to_hz(fmax_note)),
        frame_length=2048,
        hop_length=hop_length,
    )
    midi = np.where(
        voiced & np.isfinite(f0), np.round(librosa.hz_to_midi(np.nan_to_num(f0, nan=1.0))), 0
    )
    midi = scipy.signal.medfilt(midi.astype(np.float64), kernel_size=5).astype(int)
    notes = []
    for value, start, end in _runs(list(midi)):
        if value > 0 and end - start >= min_note_frames:
            notes.append(Note(int(value), start, end))
    return notes


BINS_PER_KEY = 3  # constant-Q bins per semitone; the middle one is on the key


def cqt_magnitude(y, sr: int, hop_length: int = 512) -> np.ndarray:
    """``(frames, 88 * 3)`` constant-Q magnitudes, three bins per piano key from A0 (the
    middle bin of each three on the key's frequency)."""

    c = librosa.cqt(
        y=np.asarray(y, dtype=np.float32),
        sr=sr,
        hop_length=_check_hop(hop_length),
        fmin=float(librosa.midi_to_hz(LOWEST - 1 / BINS_PER_KEY)),
        n_bins=KEYS * BINS_PER_KEY,
        bins_per_octave=12 * BINS_PER_KEY,
        filter_scale=0.6,
    )
    return np.abs(c).T


def _frame_notes(m, floor: float, max_polyphony: int) -> list[int]:
    """Keys sounding in one frame of fine constant-Q magnitudes ``m``."""
    inner = m[1:-1]
    peaks = np.flatnonzero((inner >= m[:-2]) & (inner >= m[2:]) & (inner >= floor)) + 1
    candidates: dict[int, float] = {}
    for j in peaks:
        k = int(round((j - BINS_PER_KEY // 2) / BINS_PER_KEY))
        if 0 <= k < KEYS:
            candidates[k] = max(candidates.get(k, 0.0), float(m[j]))
    accepted: dict[int, float] = {}
    for k, amp in sorted(candidates.items(), key=lambda kv: -kv[1]):
        if len(accepted) >= max_polyphony:
            break
        # what the harmonics of louder notes already explain at this key
        explained = sum(
            a / h
            for b, a in accepted.items()
            for h, off in enumerate(HARMONIC_OFFSETS, 2)
            if b + off == k
        )
        if amp >= 1.5 * explained:
            accepted[k] = amp
    return list(accepted)


def polyphonic_roll(
    y,
    sr: int,
    hop_length: int = 512,
    threshold_db: float = -30.0,
    max_polyphony: int = 6,
) -> np.ndarray:
    """``(frames, 88)`` boolean piano roll of a recording.

    Each frame: the peaks of a constant-Q transform with three bins per key (leakage into
    the neighbouring keys is not a peak), at least ``threshold_db`` below the loudest bin of
    the recording, strongest first; a peak is a note unless the harmonics 2..6 of louder notes
    (assumed at 1/k of their magnitude) explain two thirds of it. Then a 3-frame median filter.
    """
    import scipy.ndimage  # scipy.signal (1 s): only on this path

    mag = cqt_magnitude(y, sr, hop_length)
    roll = np.zeros((mag.shape[0], KEYS), dtype=bool)
    peak = float(mag.max()) if mag.size else 0.0
    if peak <= 0:
        return roll
    floor = peak * 10.0 ** (threshold_db / 20.0)
    for t in range(mag.shape[0]):
        roll[t, _frame_notes(mag[t], floor, max_polyphony)] = True
    return scipy.ndimage.median_filter(roll, size=(3, 1), mode="nearest")
