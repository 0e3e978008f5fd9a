"""Piano rolls: the one format every music source produces and every music task reads.

A piano roll is a boolean array ``(steps, keys)``: ``roll[t, k]`` is true when MIDI note
``lowest + k`` sounds during time step ``t``. The full range is the 88 piano keys, MIDI 21
(A0) .. 108 (C8), ``lowest = 21``. Beside the roll a source may keep ``onsets`` (same shape,
true where a note starts), so that two notes of one pitch played back to back stay two notes;
sources without note boundaries (the benchmark pickles) have none, and then a note is a run of
consecutive active steps.

**Quantisation rule** (``quantize``): with a time step of ``step`` (seconds, or quarter notes
when the step is a note value at the file's tempo), a note from ``start`` to ``end`` covers the
steps ``floor(start / step)`` .. ``ceil(end / step) - 1``, and at least one step, so no short
note vanishes. When the step is a note value, MIDI times are read in ticks and the rule is
applied in exact integer arithmetic; when it is in seconds, times within 1/1000 of a step of
a grid line count as on it (MIDI stores tempo and times rounded to ticks and microseconds).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ..errors import ParameterError

LOWEST = 21  # A0, the lowest piano key
HIGHEST = 108  # C8, the highest
KEYS = HIGHEST - LOWEST + 1  # 88
SECONDS_TOLERANCE = 1e-3  # of a step: rounding of MIDI ticks / tempo in seconds-based steps


class Note(NamedTuple):
    """A note in time steps: sounds from step ``start`` up to, not including, step ``end``."""

    pitch: int
    start: int
    end: int


# -- quantisation ------------------------------------------------------------------------------


def quantize(start: float, end: float, step: float) -> tuple[int, int]:
    """``(first step, end step)`` of a note from ``start`` to ``end`` (same unit as ``step``).

    The note covers steps ``floor(start/step)`` .. ``ceil(end/step) - 1``, at least one.
    """
    if not step > 0:
        raise ParameterError(f"`step` must be a positive number; received {step!r}.")
    s = math.floor(start / step + SECONDS_TOLERANCE)
    e = math.ceil(end / step - SECONDS_TOLERANCE)
    return s, max(e, s + 1)


def quantize_ticks(start_tick: int, end_tick: int, ticks_per_step_num: int, den: int):
    """``quantize`` in exact integers: a step is ``ticks_per_step_num / den`` ticks.

    With ``resolution`` ticks per quarter note and ``steps_per_quarter`` steps, a step is
    ``resolution / steps_per_quarter`` ticks: ``num = resolution``, ``den = steps_per_quarter``.
    """
    s = (start_tick * den) // ticks_per_step_num
    e = -((-end_tick * den) // ticks_per_step_num)
    return s, max(e, s + 1)


# -- notes <-> roll ----------------------------------------------------------------------------


def notes_to_roll(notes, length: int | None = None, lowest: int = LOWEST, keys: int = KEYS):
    """``(roll, onsets, outside)`` from ``Note``s: two ``(T, keys)`` boolean arrays and the
    number of notes dropped because their pitch is outside ``lowest .. lowest + keys - 1``.

    ``T`` is ``length`` or the end of the last note.
    """
    notes = list(notes)
    end = max((n.end for n in notes), default=0)
    t = end if length is None else int(length)
    roll = np.zeros((t, keys), dtype=bool)
    onsets = np.zeros((t, keys), dtype=bool)
    outside = 0
    for n in notes:
        k = n.pitch - lowest
        if not 0 <= k < keys:
            outside += 1
            continue
        if n.start >= t:
            continue
        roll[max(n.start, 0) : min(n.end, t), k] = True
        onsets[max(n.start, 0), k] = True
    return roll, onsets, outside


def roll_to_notes(roll, onsets=None, lowest: int = LOWEST) -> list[Note]:
    """The notes of a roll: runs of active steps per key, split where ``onsets`` marks a new
    note (without ``onsets`` a run is one note). Sorted by start, then pitch."""
    roll = np.asarray(roll, dtype=bool)
    if roll.ndim != 2:
        raise ParameterError(
            f"A piano roll must be 2-D (steps, keys); received shape {roll.shape}."
        )
    t = roll.shape[0]
    padded = np.zeros((t + 2, roll.shape[1]), dtype=np.int8)
    padded[1:-1] = roll
    diff = np.diff(padded, axis=0)
    out = []
    for k in range(roll.shape[1]):
        starts = np.flatnonzero(diff[:, k] == 1)
        ends = np.flatnonzero(diff[:, k] == -1)
        for s, e in zip(starts, ends):
            cuts = [int(s)]
            if onsets is not None:
                cuts += [int(c) for c in np.flatnonzero(np.asarray(onsets)[s + 1 : e, k]) + s + 1]
            cuts.append(int(e))
            for a, b in zip(cuts[:-1], cuts[1:]):
                out.append(Note(lowest + k, a, b))
    out.sort(key=lambda n: (n.start, n.pitch, n.end))
    return out


def steps_to_roll(steps, lowest: int = LOWEST, keys: int = KEYS):
    """``(roll, outside)`` from the Boulanger-Lewandowski layout: a list of time steps, each a
    collection of MIDI note numbers sounding. Notes outside the range are dropped (counted)."""
    roll = np.zeros((len(steps), keys), dtype=bool)
    outside = 0
    for t, notes in enumerate(steps):
        for n in notes:
            k = int(n) - lowest
            if 0 <= k < keys:
                roll[t, k] = True
            else:
                outside += 1
    return roll, outside


def roll_to_steps(roll, lowest: int = LOWEST) -> list[tuple[int, ...]]:
    """The Boulanger-Lewandowski layout of a roll: one tuple of MIDI notes per step."""
    return [tuple(int(k) + lowest for k in np.flatnonzero(row)) for row in np.asarray(roll)]


# -- MIDI --------------------------------------------------------------------------------------


def midi_notes(pm, steps_per_quarter: int | None = None, step_seconds: float | None = None):
    """``(notes, drum_notes)``: the pitched notes of a ``pretty_midi.PrettyMIDI`` in steps
    (drum tracks excluded and counted). Exactly one of ``steps_per_quarter`` (a step is a note
    value at the file's tempo, read in ticks) and ``step_seconds`` must be given."""
    if (steps_per_quarter is None) == (step_seconds is None):
        raise ParameterError("Give exactly one of `steps_per_quarter` and `step_seconds`.")
    notes, drums = [], 0
    for inst in pm.instruments:
        if inst.is_drum:
            drums += len(inst.notes)
            continue
        for n in inst.notes:
            if steps_per_quarter is not None:
                s, e = quantize_ticks(
                    pm.time_to_tick(n.start),
                    pm.time_to_tick(n.end),
                    pm.resolution,
                    steps_per_quarter,
                )
            else:
                s, e = quantize(n.start, n.end, step_seconds)
            notes.append(Note(int(n.pitch), s, e))
    notes.sort(key=lambda n: (n.start, n.pitch, n.end))
    return notes, drums


def notes_to_midi(
    notes,
    seconds_per_step: float,
    steps_per_quarter: int = 4,
    program: int = 0,
    velocity: int = 80,
    name: str = "seqkit",
):
    """A ``pretty_midi.PrettyMIDI`` with ``notes`` (in steps) on one instrument.

    The file's tempo makes one step ``1 / steps_per_quarter`` of a quarter note lasting
    ``seconds_per_step`` seconds, at a resolution where a step is exactly 120 ticks, so reading
    it back with the same ``steps_per_quarter`` gives the same steps.
    """
    import pretty_midi  # pretty_midi (0.16 s): only when MIDI is read or written

    if not seconds_per_step > 0:
        raise ParameterError(
            f"`seconds_per_step` must be a positive number; received {seconds_per_step!r}."
        )
    tempo = 60.0 / (seconds_per_step * steps_per_quarter)
    pm = pretty_midi.PrettyMIDI(resolution=120 * steps_per_quarter, initial_tempo=tempo)
    inst = pretty_midi.Instrument(program=program, name=name)
    for n in notes:
        inst.notes.append(
            pretty_midi.Note(
                velocity=int(velocity),
                pitch=int(n.pitch),
                start=n.start * seconds_per_step,
                end=n.end * seconds_per_step,
            )
        )
    pm.instruments.append(inst)
    return pm


# -- transposition, ranges, model inputs -------------------------------------------------------


def transpose_limits(roll) -> tuple[int, int]:
    """``(down, up)``: the largest shifts (semitones, ``down`` <= 0 <= ``up``) that keep every
    note of ``roll`` inside its key range. An empty roll can move anywhere within the range."""
    roll = np.asarray(roll)
    used = np.flatnonzero(roll.any(axis=0))
    keys = roll.shape[1]
    if used.size == 0:
        return -(keys - 1), keys - 1
    return -int(used[0]), int(keys - 1 - used[-1])


def transpose(roll, semitones: int, onsets=None):
    """``roll`` (and ``onsets``) moved by ``semitones``; refused if a note would leave the
    range (``transpose_limits`` gives the allowed shifts)."""
    roll = np.asarray(roll)
    down, up = transpose_limits(roll)
    if not down <= semitones <= up:
        raise ParameterError(
            f"Cannot transpose by {semitones} semitones: notes would leave the key range "
            f"(allowed {down}..{up})."
        )

    def move(a):
        out = np.zeros_like(a)
        if semitones >= 0:
            out[:, semitones:] = a[:, : a.shape[1] - semitones]
        else:
            out[:, :semitones] = a[:, -semitones:]
        return out

    return move(roll) if onsets is None else (move(roll), move(np.asarray(onsets)))


def shifted_inputs(target) -> np.ndarray:
    """Model inputs for next-step prediction: ``target`` delayed by one step, a zero vector
    first, so the output at step ``t`` sees steps ``0 .. t-1`` and every step is predicted."""
    target = np.asarray(target, dtype=np.float32)
    x = np.zeros_like(target)
    x[1:] = target[:-1]
    return x


def chunk_spans(length: int, chunk: int, warmup: int = 0) -> list[tuple[int, int, int]]:
    """Fixed-length training windows over a sequence of ``length`` steps.

    Returns ``(begin, first, end)`` triples: the window feeds steps ``begin .. end-1`` and
    scores (sample weight 1) only ``first .. end-1``; ``first - begin <= warmup`` earlier steps
    warm the recurrent state up unscored. The scored parts tile the sequence exactly once.
    """
    chunk = int(chunk)
    if chunk <= 0:
        raise ParameterError(f"`chunk_length` must be a positive integer; received {chunk!r}.")
    out = []
    for first in range(0, length, chunk):
        out.append((max(0, first - int(warmup)), first, min(first + chunk, length)))
    return out


# Melody events (``melody`` task): 0 hold, 1 rest, 2 + i note on of min_note + i.
HOLD, REST, FIRST_NOTE_EVENT = 0, 1, 2


def top_line(roll, onsets=None) -> tuple[np.ndarray, np.ndarray]:
    """``(pitch index or -1, onset)`` per step: the highest sounding key (the skyline) and
    whether a note starts there (the top key changes, or ``onsets`` marks it)."""
    roll = np.asarray(roll, dtype=bool)
    t = roll.shape[0]
    active = roll.any(axis=1)
    top = np.where(active, roll.shape[1] - 1 - np.argmax(roll[:, ::-1], axis=1), -1)
    onset = np.zeros(t, dtype=bool)
    for i in range(t):
        if top[i] < 0:
            continue
        onset[i] = (
            i == 0
            or top[i] != top[i - 1]
            or (onsets is not None and bool(np.asarray(onsets)[i, top[i]]))
        )
    return top, onset


def melody_events(roll, onsets, min_note: int, max_note: int, lowest: int = LOWEST):
    """``(events, folded)``: the event sequence of a roll's top line; notes outside
    ``min_note .. max_note`` are moved by octaves into it (``folded`` counts them)."""
    top, onset = top_line(roll, onsets)
    events = np.zeros(len(top), dtype=np.int32)
    folded = 0
    for i, k in enumerate(top):
        if k < 0:
            events[i] = REST if i > 0 and top[i - 1] >= 0 else HOLD
            continue
        if not onset[i]:
            events[i] = HOLD
            continue
        pitch = int(k) + lowest
        if not min_note <= pitch <= max_note:
            folded += 1
            while pitch < min_note:
                pitch += 12
            while pitch > max_note:
                pitch -= 12
            if pitch < min_note:  # a range narrower than an octave
                pitch = min_note
        events[i] = FIRST_NOTE_EVENT + pitch - min_note
    return events, folded


def events_to_notes(events, min_note: int):
    """Notes ``(pitch, start, end)`` of an event sequence."""

    notes, current, start = [], None, 0
    for i, e in enumerate(list(events) + [REST]):
        e = int(e)
        if e == HOLD:
            continue
        if current is not None:
            notes.append(Note(current, start, i))
            current = None
        if e >= FIRST_NOTE_EVENT:
            current, start = min_note + e - FIRST_NOTE_EVENT, i
    return notes
