"""Piano rolls: the quantisation rule, notes <-> roll, the benchmark layout, MIDI round trips,
transposition and chunking (seqkit.music.rolls)."""

from __future__ import annotations

import numpy as np
import pretty_midi
import pytest

from seqkit.errors import ParameterError
from seqkit.music import rolls
from seqkit.music.rolls import Note
from seqkit.music.sources import MidiFolder


def test_quantize_rule_golden():
    # floor(start/step) .. ceil(end/step) - 1, end exclusive, at least one step
    assert rolls.quantize(0.0, 0.5, 0.25) == (0, 2)
    assert rolls.quantize(0.26, 0.27, 0.25) == (1, 2)  # a 10 ms note keeps one step
    assert rolls.quantize(0.3, 0.3, 0.25) == (1, 2)  # even a zero-length one
    assert rolls.quantize(0.2, 0.8, 0.25) == (0, 4)  # covers every step it touches
    assert rolls.quantize(0.75 - 1e-9, 1.0 + 1e-9, 0.25) == (3, 4)  # float rounding of the grid
    assert rolls.quantize_ticks(0, 480, 480, 4) == (0, 4)  # one quarter = 4 sixteenths
    assert rolls.quantize_ticks(121, 125, 480, 4) == (1, 2)
    assert rolls.quantize_ticks(100, 361, 480, 4) == (0, 4)


def test_notes_roll_round_trip_keeps_repeated_notes():
    notes = [Note(60, 0, 2), Note(60, 2, 4), Note(64, 1, 3), Note(67, 3, 4), Note(15, 0, 1)]
    roll, onsets, outside = rolls.notes_to_roll(notes)
    assert outside == 1  # MIDI 15 is below the piano
    assert roll.shape == (4, 88)
    assert roll[:, 60 - 21].tolist() == [True, True, True, True]
    back = rolls.roll_to_notes(roll, onsets)
    assert back == [Note(60, 0, 2), Note(64, 1, 3), Note(60, 2, 4), Note(67, 3, 4)]
    # without onsets the two C4s are one run
    assert Note(60, 0, 4) in rolls.roll_to_notes(roll)


def test_benchmark_layout_round_trip():
    steps = [(60, 64, 67), (), (21, 108), (20, 109, 60)]
    roll, outside = rolls.steps_to_roll(steps)
    assert outside == 2
    assert rolls.roll_to_steps(roll) == [(60, 64, 67), (), (21, 108), (60,)]


def test_transpose_limits_and_refusal():
    roll, _, _ = rolls.notes_to_roll([Note(30, 0, 1), Note(100, 1, 2)])
    assert rolls.transpose_limits(roll) == (-9, 8)
    up = rolls.transpose(roll, 8)
    assert rolls.roll_to_steps(up) == [(38,), (108,)]
    with pytest.raises(ParameterError, match="allowed -9..8"):
        rolls.transpose(roll, 9)


def test_shifted_inputs_predict_every_step():
    y = np.eye(3, 4, dtype=bool)
    x = rolls.shifted_inputs(y)
    assert x[0].tolist() == [0, 0, 0, 0]
    assert (x[1:] == y[:-1]).all()


def test_chunk_spans_tile_each_step_once():
    spans = rolls.chunk_spans(10, 4, warmup=3)
    assert spans == [(0, 0, 4), (1, 4, 8), (5, 8, 10)]
    scored = [t for _, first, end in spans for t in range(first, end)]
    assert scored == list(range(10))


def _write_midi(path, tempo=90.0):
    """A file with a 10 ms note, repeated notes, a chord, overlapping notes and a drum track."""
    pm = pretty_midi.PrettyMIDI(initial_tempo=tempo, resolution=480)
    q = 60.0 / tempo  # seconds per quarter note
    piano = pretty_midi.Instrument(program=0)
    spec = [
        (60, 0.0, 1.0),  # quarter notes (sixteenth grid: 4 steps each)
        (60, 1.0, 2.0),  # the same pitch again, back to back
        (64, 0.0, 2.0),
        (67, 0.5, 0.75),  # a sixteenth
        (72, 2.0, 2.0 + 0.01 / q),  # 10 ms: must not vanish
        (48, 2.1, 3.3),  # off the grid
        (62, 3.0, 4.0),
    ]
    for pitch, s, e in spec:
        piano.notes.append(pretty_midi.Note(velocity=90, pitch=pitch, start=s * q, end=e * q))
    drums = pretty_midi.Instrument(program=0, is_drum=True)
    drums.notes.append(pretty_midi.Note(velocity=100, pitch=36, start=0.0, end=0.1))
    pm.instruments += [piano, drums]
    pm.write(str(path))
    # expected steps (4 per quarter): floor(start*4) .. ceil(end*4)
    return sorted(
        Note(p, int(np.floor(s * 4 + 1e-9)), max(int(np.ceil(e * 4 - 1e-9)), int(s * 4) + 1))
        for p, s, e in spec
    )


def test_midi_round_trip_keeps_every_note(tmp_path):
    (tmp_path / "data").mkdir()
    expected = _write_midi(tmp_path / "data" / "a.mid")
    data = MidiFolder(str(tmp_path / "data"), steps_per_quarter=4, validation_percent=0,
                      test_percent=0).load()  # fmt: skip
    (piece,) = data.pieces
    notes = sorted(rolls.roll_to_notes(piece.roll, piece.onsets))
    assert notes == expected  # drums left out, the 10 ms note kept, repeated C4s kept apart
    assert Note(72, 8, 9) in notes
    # roll -> MIDI -> roll gives the same notes
    pm = rolls.notes_to_midi(notes, seconds_per_step=0.125, steps_per_quarter=4)
    pm.write(str(tmp_path / "back.mid"))
    again, drums = rolls.midi_notes(pretty_midi.PrettyMIDI(str(tmp_path / "back.mid")), 4)
    assert drums == 0
    assert sorted(again) == expected
    # and in seconds: 0.125 s steps read back the same
    again_s, _ = rolls.midi_notes(
        pretty_midi.PrettyMIDI(str(tmp_path / "back.mid")), step_seconds=0.125
    )
    assert sorted(again_s) == expected


def test_midi_seconds_steps_follow_the_rule(tmp_path):
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    inst = pretty_midi.Instrument(program=0)
    inst.notes.append(pretty_midi.Note(velocity=80, pitch=70, start=0.26, end=0.27))
    inst.notes.append(pretty_midi.Note(velocity=80, pitch=71, start=0.49, end=1.01))
    pm.instruments.append(inst)
    notes, _ = rolls.midi_notes(pm, step_seconds=0.25)
    assert sorted(notes) == [Note(70, 1, 2), Note(71, 1, 5)]
