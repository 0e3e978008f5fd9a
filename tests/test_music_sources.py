"""Music sources: the benchmark pickle (layout checks, no code run), npz and convert-pickle,
MIDI folders with bad files, music21's corpus, and audio transcription round trips."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
from click.testing import CliRunner

from seqkit.cli import cli
from seqkit.errors import DataError
from seqkit.music import rolls
from seqkit.music.recordings import AudioFolder
from seqkit.music.rolls import Note
from seqkit.music.scores import Music21Corpus
from seqkit.music.sources import MidiFolder, PianoRollNpz, PianoRollPickle
from seqkit.music.synth import render, write_wav

JSB = (
    Path(__file__).resolve().parents[1]
    / ".."
    / "shared"
    / "data"
    / "jsb_chorales"
    / "JSB Chorales.pickle"
)

LAYOUT = {
    "train": [[(60, 64, 67), (62,), ()], [(20, 60), (109,)]],
    "valid": [[(48,), (50, 53)]],
    "test": [[(72,)], []],
}


def _pickle(path, obj):
    path.write_bytes(pickle.dumps(obj))
    return str(path)


def test_pickle_layout_read(tmp_path, caplog):
    path = _pickle(tmp_path / "set.pickle", LAYOUT)
    with caplog.at_level(logging.WARNING, logger="seqkit"):
        data = PianoRollPickle(path).load()
    assert [len(data.split(s)) for s in ("train", "validation", "test")] == [2, 1, 1]
    assert rolls.roll_to_steps(data.split("train")[0].roll) == [(60, 64, 67), (62,), ()]
    assert rolls.roll_to_steps(data.split("train")[1].roll) == [(60,), ()]
    assert data.notes_dropped == 2  # 20 and 109 are outside 21..108
    assert data.skipped == [
        {
            "path": f"{path}['train'][1]",
            "reason": "dropped 2 note(s) outside the piano range 21..108",
        },
        {"path": f"{path}['test'][1]", "reason": "empty sequence"},
    ]
    assert "dropped 2 note(s) outside the piano range 21..108." in caplog.text
    assert data.time_step == {"steps_per_quarter": 1}


@pytest.mark.parametrize(
    "obj, where",
    [
        ([1, 2], "the top level is a list"),
        ({"train": [], "valid": []}, "the top level is a dict with keys"),
        ({"train": [[(60,)]], "valid": "x", "test": []}, r"\['valid'\] is a str"),
        ({"train": [[[60.5]]], "valid": [], "test": []}, r"\['train'\]\[0\]\[0\] is a list"),
    ],
)
def test_pickle_wrong_layout_names_file_and_expectation(tmp_path, obj, where):
    path = _pickle(tmp_path / "bad.pickle", obj)
    with pytest.raises(DataError, match=where) as err:
        PianoRollPickle(path).load()
    assert str(tmp_path / "bad.pickle") in str(err.value)
    assert "expected the Boulanger-Lewandowski layout" in str(err.value)


class _Payload:
    """Unpickling this would call os.system (it must never happen)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_pickle_with_code_is_refused_not_run(tmp_path):
    marker = tmp_path / "ran"
    path = _pickle(tmp_path / "evil.pickle", {"train": [_Payload(marker)], "valid": [], "test": []})
    with pytest.raises(
        DataError, match=r"refused: it refers to the Python object (posix|os)\.system"
    ):
        PianoRollPickle(path).load()
    assert not marker.exists()


def test_source_constructor_reads_nothing(tmp_path):
    # recipes build sources to validate them: no file access until load()
    PianoRollPickle(str(tmp_path / "missing.pickle"))
    with pytest.raises(DataError, match="not found"):
        PianoRollPickle(str(tmp_path / "missing.pickle")).load()


def test_convert_pickle_to_npz_round_trip(tmp_path):
    src = _pickle(tmp_path / "set.pickle", LAYOUT)
    out = tmp_path / "set.npz"
    runner = CliRunner()
    res = runner.invoke(cli, ["music", "convert-pickle", src, str(out)])
    assert res.exit_code == 0, res.output
    assert "2 train / 1 validation / 1 test sequences" in res.output
    a, b = PianoRollPickle(src).load(), PianoRollNpz(str(out)).load()
    assert [p.split for p in a.pieces] == [p.split for p in b.pieces]
    for p, q in zip(a.pieces, b.pieces):
        assert np.array_equal(p.roll, q.roll)
    assert b.time_step == {"steps_per_quarter": 1}
    # an existing OUT is kept unless --overwrite
    before = out.read_bytes()
    res = runner.invoke(cli, ["music", "convert-pickle", src, str(out)])
    assert res.exit_code == 1 and "exists; pass --overwrite" in res.output
    assert out.read_bytes() == before
    assert (
        runner.invoke(cli, ["music", "convert-pickle", src, str(out), "--overwrite"]).exit_code == 0
    )


def test_npz_wrong_layout(tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, train=np.zeros((3, 88), np.uint8), train_lengths=np.array([2]))
    with pytest.raises(DataError, match="missing validation, validation_lengths"):
        PianoRollNpz(str(path)).load()
    np.savez(
        path,
        lowest_note=np.array(21),
        **{s: np.zeros((3, 88), np.uint8) for s in ("train", "validation", "test")},
        **{f"{s}_lengths": np.array([2]) for s in ("train", "validation", "test")},
    )
    with pytest.raises(DataError, match="'train_lengths' add up to 2 but 'train' has 3 steps"):
        PianoRollNpz(str(path)).load()


def _midi(path, notes, drums=()):
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    if notes:
        inst = pretty_midi.Instrument(program=0)
        inst.notes += [pretty_midi.Note(velocity=80, pitch=p, start=s, end=e) for p, s, e in notes]
        pm.instruments.append(inst)
    if drums:
        kit = pretty_midi.Instrument(program=0, is_drum=True)
        kit.notes += [pretty_midi.Note(velocity=80, pitch=p, start=s, end=e) for p, s, e in drums]
        pm.instruments.append(kit)
    pm.write(str(path))


def test_midi_folder_bad_files_are_skipped_and_counted(tmp_path, caplog):
    root = tmp_path / "midi"
    (root / "train").mkdir(parents=True)
    (root / "valid").mkdir()
    _midi(root / "train" / "good.mid", [(60, 0, 0.5), (64, 0.5, 1.0), (12, 0, 1)])
    _midi(root / "valid" / "ok.midi", [(67, 0, 1.0)])
    (root / "train" / "corrupt.mid").write_bytes(b"MThd\x00\x00garbage")
    _midi(root / "train" / "empty.mid", [])
    _midi(root / "train" / "drums.mid", [], drums=[(36, 0, 0.5)])
    with caplog.at_level(logging.WARNING, logger="seqkit"):
        data = MidiFolder(str(root)).load()
    reasons = {Path(s["path"]).name: s["reason"] for s in data.skipped}
    assert set(reasons) == {"corrupt.mid", "empty.mid", "drums.mid", "good.mid"}
    assert reasons["good.mid"] == "dropped 1 note(s) outside the piano range 21..108"
    assert reasons["corrupt.mid"].startswith("cannot be read as MIDI")
    assert reasons["empty.mid"] == "no notes"
    assert reasons["drums.mid"] == "only drum tracks"
    assert data.notes_dropped == 1  # MIDI 12
    assert "Skipped 3 of 5 MIDI files" in caplog.text
    assert (
        f"{root / 'train' / 'good.mid'}: dropped 1 note(s) outside the piano range" in caplog.text
    )
    assert [p.split for p in data.pieces] == ["train", "validation"]  # split folders used
    good = data.split("train")[0]
    assert rolls.roll_to_notes(good.roll, good.onsets) == [Note(60, 0, 4), Note(64, 4, 8)]


def test_midi_folder_nothing_usable(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.mid").write_bytes(b"not midi")
    with pytest.raises(DataError, match="No usable music: all 1 MIDI files were skipped"):
        MidiFolder(str(tmp_path / "m")).load()


def test_music21_corpus_soprano_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQKIT_CACHE", str(tmp_path / "cache"))
    src = Music21Corpus(composer="bach", part="soprano", steps_per_quarter=4, limit=2)
    data = src.load()
    assert len(data.pieces) == 2
    first = data.pieces[0]
    assert first.name == "music21:bach/bwv1.6.mxl"
    # BWV 1.6's parts are Horn 2, Soprano, Alto, Tenor, Bass; its soprano (read with music21
    # directly) starts F4, C5, A4, F4, quarter notes: 4 sixteenth steps each
    notes = rolls.roll_to_notes(first.roll, first.onsets)
    assert notes[:4] == [Note(65, 0, 4), Note(72, 4, 8), Note(69, 8, 12), Note(65, 12, 16)]
    assert first.roll.sum(axis=1).max() == 1  # one part: one note at a time
    cached = list((tmp_path / "cache" / "music21").glob("*.npz"))
    assert len(cached) == 1
    again = src.load()
    assert all(np.array_equal(a.roll, b.roll) for a, b in zip(data.pieces, again.pieces))


def test_music21_missing_part_is_skipped(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQKIT_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DataError, match="all 1 scores were skipped"):
        Music21Corpus(part="cornetto", limit=1).load(cache=False)


MELODY = [(60, 0.0, 0.3), (62, 0.3, 0.6), (64, 0.6, 0.9), (65, 0.9, 1.2), (67, 1.2, 1.8),
          (72, 2.1, 2.4), (71, 2.4, 2.7), (67, 2.7, 3.3)]  # fmt: skip
CHORDS = [(60, 0, 1), (64, 0, 1), (67, 0, 1), (65, 1, 2), (69, 1, 2), (72, 1, 2),
          (55, 2, 3), (59, 2, 3), (62, 2, 3), (65, 2, 3), (48, 3, 4), (60, 3, 4), (64, 3, 4)]  # fmt: skip


def test_audio_melody_round_trip(tmp_path):
    """Render known notes, transcribe them with pYIN, compare: note accuracy (pitch right,
    onset within 50 ms) over the reference notes."""
    root = tmp_path / "audio"
    (root / "train").mkdir(parents=True)
    write_wav(root / "train" / "tune.wav", render(MELODY, 22050), 22050)
    write_wav(root / "train" / "silence.wav", np.zeros(22050, np.float32), 22050)
    data = AudioFolder(str(root), mode="melody").load()
    assert [Path(s["path"]).name for s in data.skipped] == ["silence.wav"]
    assert data.skipped[0]["reason"] == "no detectable pitch"
    (piece,) = data.pieces
    step = data.time_step["seconds"]
    got = rolls.roll_to_notes(piece.roll, piece.onsets)
    matched = sum(
        any(n.pitch == p and abs(n.start * step - s) <= 0.05 for n in got) for p, s, _ in MELODY
    )
    accuracy = matched / len(MELODY)
    print(f"pYIN note accuracy: {accuracy:.3f} ({matched}/{len(MELODY)}), {len(got)} notes found")
    assert accuracy == 1.0
    assert len(got) == len(MELODY)


def test_audio_polyphonic_round_trip(tmp_path):
    """Render chords, transcribe with the CQT roll, compare frame by frame (Bay et al.'s
    accuracy) and note by note (pitch sounding at the note's middle)."""
    root = tmp_path / "audio"
    (root / "test").mkdir(parents=True)
    (root / "train").mkdir()
    write_wav(root / "test" / "chords.wav", render(CHORDS, 22050), 22050)
    write_wav(root / "train" / "chords.wav", render(CHORDS, 22050), 22050)
    data = AudioFolder(str(root), mode="polyphonic").load()
    roll = data.split("test")[0].roll
    step = data.time_step["seconds"]
    ref = np.zeros_like(roll)
    for p, s, e in CHORDS:
        ref[int(np.floor(s / step)) : int(np.ceil(e / step)), p - 21] = True
    tp, fp, fn = (roll & ref).sum(), (roll & ~ref).sum(), (~roll & ref).sum()
    frame_acc = tp / (tp + fp + fn)
    notes_ok = sum(roll[int((s + e) / 2 / step), p - 21] for p, s, e in CHORDS) / len(CHORDS)
    print(f"CQT frame accuracy {frame_acc:.3f}, note accuracy {notes_ok:.3f}")
    assert notes_ok == 1.0
    assert frame_acc >= 0.85


@pytest.mark.skipif(not JSB.is_file(), reason="../shared/data/jsb_chorales is absent")
def test_jsb_chorales_pickle():
    data = PianoRollPickle(str(JSB)).load()
    counts = [len(data.split(s)) for s in ("train", "validation", "test")]
    steps = [sum(len(p) for p in data.split(s)) for s in ("train", "validation", "test")]
    assert counts == [229, 76, 77]
    assert steps == [13807, 4602, 4725]
    assert data.notes_dropped == 0 and data.skipped == []
    used = np.flatnonzero(np.any([p.roll.any(axis=0) for p in data.pieces], axis=0)) + 21
    assert (used.min(), used.max()) == (43, 96)


def test_music21_exact_duplicates_are_skipped(monkeypatch):
    src = Music21Corpus(part="soprano")
    fake = {"a.mxl": [Note(60, 0, 4)], "b.mxl": [Note(60, 0, 4)], "c.mxl": [Note(60, 0, 2)]}
    monkeypatch.setattr(src, "_paths", lambda: [Path(n) for n in fake])
    monkeypatch.setattr(src, "_read", lambda p: (f"music21:x/{p.name}", "", fake[p.name]))
    data = src.load(cache=False)
    assert [p.name for p in data.pieces] == ["music21:x/a.mxl", "music21:x/c.mxl"]
    assert data.skipped == [
        {"path": "music21:x/b.mxl", "reason": "duplicate (the same notes as music21:x/a.mxl)"}
    ]


# -- expansion limits (more in tests/test_limits.py) ---------------------------------------------


def test_music21_scores_total_steps_are_bounded(monkeypatch):
    from seqkit.music import sources

    src = Music21Corpus(part="soprano")
    fake = {"a.mxl": [Note(60, 0, 60)], "b.mxl": [Note(62, 0, 60)]}
    monkeypatch.setattr(src, "_paths", lambda: [Path(n) for n in fake])
    monkeypatch.setattr(src, "_read", lambda p: (f"music21:x/{p.name}", "", fake[p.name]))
    monkeypatch.setattr(sources, "MAX_ROLL_STEPS", 100)
    with pytest.raises(DataError) as err:
        src.load(cache=False)
    assert str(err.value) == (
        "music21's corpus (bach): the scores add up to more than 100 time steps (at "
        "music21:x/b.mxl), the most a music source may hold (MAX_ROLL_STEPS); set `limit` or a "
        "coarser `steps_per_quarter`."
    )


def test_music21_cache_claiming_huge_arrays_is_rebuilt_not_read(tmp_path):
    import io
    import zipfile

    from seqkit.music.scores import _read_cache

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<i4", "fortran_order": False, "shape": (10**11, 3)}
    )
    path = tmp_path / "bach-0.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("names.npy", header.getvalue())
        z.writestr("notes.npy", header.getvalue())
        z.writestr("counts.npy", header.getvalue())
    assert _read_cache(path) is None


def test_audio_folder_total_steps_are_bounded(tmp_path, monkeypatch):
    from seqkit.music import sources

    root = tmp_path / "audio"
    root.mkdir()
    for name in ("a.wav", "b.wav"):
        write_wav(root / name, render(MELODY, 22050), 22050)
    monkeypatch.setattr(sources, "MAX_ROLL_STEPS", 150)
    with pytest.raises(DataError, match=r"the recordings add up to more than 150 time steps \(at "):
        AudioFolder(str(root), mode="polyphonic").load()
