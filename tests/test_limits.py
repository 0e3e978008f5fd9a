"""Expansion limits of every reader of user files: a small file may not claim more steps,
notes, rows or frames than a stated maximum, checked while reading, before allocating; and
truncated WAV files are skipped with a named warning."""

from __future__ import annotations

import io
import logging
import pickle
import struct
import time
import tracemalloc
import zipfile

import numpy as np
import pretty_midi
import pytest
import soundfile as sf

from seqkit.errors import DataError
from seqkit.extract import extract_features
from seqkit.features import FeaturePipeline, FixLength, Load, LogMel
from seqkit.music import sources as music
from seqkit.music.sources import MidiFolder, PianoRollNpz, PianoRollPickle
from seqkit.speech.sources import manifest
from seqkit.speech.sources.folder import FolderSource
from seqkit.speech.sources.manifest import Manifest
from seqkit.speech.sources.speech_commands import SpeechCommands


def _peak(fn):
    """``(exception raised by fn, peak traced bytes)``."""
    tracemalloc.start()
    try:
        try:
            fn()
        except Exception as exc:  # the caller checks it
            raised = exc
        else:
            raised = None
        return raised, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# -- music: B-L pickles --------------------------------------------------------------------------


def test_limits_are_stated():
    assert music.MAX_ROLL_STEPS == 10_000_000
    assert music.MAX_ROLL_NOTES == 50_000_000
    assert music.MAX_SEQUENCES == 1_000_000
    assert music.MAX_PICKLE_BYTES == 64 * 2**20
    assert music.MAX_MIDI_BYTES == 8 * 2**20
    assert music.MAX_MIDI_NOTES == 1_000_000
    assert manifest.MAX_MANIFEST_ROWS == 1_000_000


def test_pickle_aliasing_one_sequence_is_refused_before_allocating(tmp_path):
    """500 references to one 200,000-step sequence: 400 KB on disk, 8.8 GB as rolls."""
    seq = [[60, 64]] * 200_000
    path = tmp_path / "bomb.pickle"
    path.write_bytes(pickle.dumps({"train": [seq] * 500, "valid": [], "test": []}, protocol=4))
    assert path.stat().st_size < 1_000_000
    t0 = time.perf_counter()
    exc, peak = _peak(PianoRollPickle(str(path)).load)
    assert time.perf_counter() - t0 < 10
    assert isinstance(exc, DataError)
    assert str(exc) == (
        f"{path}: its sequences add up to 100,000,000 time steps (repeats counted), more than "
        "the 10,000,000 a music source may hold (MAX_ROLL_STEPS); the file is damaged, or the "
        "corpus too big for one source: split it."
    )
    assert peak < 64 * 2**20


def test_pickle_aliasing_one_step_is_refused_by_its_notes(tmp_path):
    step = list(range(21, 109)) * 100  # 8,800 note entries in one step object
    path = tmp_path / "notes.pickle"
    path.write_bytes(pickle.dumps({"train": [[step] * 10_000], "valid": [], "test": []}))
    exc, peak = _peak(PianoRollPickle(str(path)).load)
    assert isinstance(exc, DataError)
    assert str(exc) == (
        f"{path}: its time steps hold more than 50,000,000 notes (repeats counted; "
        "MAX_ROLL_NOTES); the file is damaged, or the corpus too big for one source: split it."
    )
    assert peak < 64 * 2**20


def test_pickle_with_too_many_sequences(tmp_path):
    path = tmp_path / "many.pickle"
    path.write_bytes(pickle.dumps({"train": [[]] * 1_000_001, "valid": [], "test": []}))
    with pytest.raises(DataError) as err:
        PianoRollPickle(str(path)).load()
    assert str(err.value) == (
        f"{path}: ['train'] lists 1,000,001 sequences, more than the 1,000,000 a music source "
        "may hold (MAX_SEQUENCES); the file is damaged, or the corpus too big for one source: "
        "split it."
    )


def test_pickle_file_size_is_bounded(tmp_path):
    path = tmp_path / "big.pickle"
    with path.open("wb") as fh:
        fh.truncate(music.MAX_PICKLE_BYTES + 1)
    with pytest.raises(DataError) as err:
        PianoRollPickle(str(path)).load()
    assert str(err.value) == (
        f"{path}: the file is 67,108,865 bytes, more than the 67,108,864 seqkit unpickles "
        "(MAX_PICKLE_BYTES); write the rolls as .npz (the layout `seqkit music convert-pickle` "
        "writes) and use pianoroll_npz."
    )


def test_pickle_layout_error_of_a_deep_aliased_value_is_short_and_quick(tmp_path):
    """The message describing a wrong value is bounded: repr of a nested, aliased list would
    take 2**60 steps."""
    x = [60]
    for _ in range(60):
        x = [x, x]
    path = tmp_path / "deep.pickle"
    path.write_bytes(pickle.dumps({"train": [[x]], "valid": [], "test": []}))
    t0 = time.perf_counter()
    with pytest.raises(DataError, match=r"\['train'\]\[0\]\[0\] is a list \(\[\[\[\[\[\[") as err:
        PianoRollPickle(str(path)).load()
    assert time.perf_counter() - t0 < 5
    assert len(str(err.value)) < 400


def test_real_sized_pickle_is_read(tmp_path):
    """A corpus of Piano-midi.de's size (about a million steps) passes the limits."""
    seq = [(60, 64, 67)] * 10_000
    path = tmp_path / "ok.pickle"
    path.write_bytes(pickle.dumps({"train": [seq] * 100, "valid": [seq], "test": [seq]}))
    data = PianoRollPickle(str(path)).load()
    assert sum(len(p) for p in data.pieces) == 1_020_000


# -- music: npz ----------------------------------------------------------------------------------


def _npy(shape, dtype="|u1", data=b"") -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        out, {"descr": dtype, "fortran_order": False, "shape": shape}
    )
    return out.getvalue() + data


def _npz_claiming(path, train_steps):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("lowest_note.npy", _npy((), "<i8", struct.pack("<q", 21)))
        z.writestr("train.npy", _npy((train_steps, 88), data=b"\x00" * 880))
        z.writestr("train_lengths.npy", _npy((1,), "<i8", struct.pack("<q", train_steps)))
        for s in ("validation", "test"):
            z.writestr(f"{s}.npy", _npy((0, 88)))
            z.writestr(f"{s}_lengths.npy", _npy((0,), "<i8"))


def test_npz_header_claiming_too_many_steps_is_refused_before_reading(tmp_path):
    path = tmp_path / "claims.npz"
    _npz_claiming(path, 2_000_000_000)
    exc, peak = _peak(PianoRollNpz(str(path)).load)
    assert isinstance(exc, DataError)
    assert str(exc) == (
        f"{path}: the arrays claim 2,000,000,000 time steps, more than the 10,000,000 a music "
        "source may hold (MAX_ROLL_STEPS); the file is damaged, or the corpus too big for one "
        "source: split it."
    )
    assert peak < 64 * 2**20


def test_npz_header_claiming_huge_lengths_is_refused(tmp_path):
    path = tmp_path / "lengths.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("lowest_note.npy", _npy((), "<i8", struct.pack("<q", 21)))
        for s in ("train", "validation", "test"):
            z.writestr(f"{s}.npy", _npy((0, 88)))
            z.writestr(f"{s}_lengths.npy", _npy((3_000_000_000 if s == "train" else 0,), "<i8"))
    with pytest.raises(DataError) as err:
        PianoRollNpz(str(path)).load()
    assert str(err.value) == (
        f"{path}: 'train_lengths' claims 3,000,000,000 sequences, more than the 1,000,000 a "
        "music source may hold (MAX_SEQUENCES); the file is damaged, or the corpus too big for "
        "one source: split it."
    )


def test_npz_extra_arrays_are_not_read(tmp_path):
    """Only the arrays of the layout are decompressed: a huge foreign member costs nothing."""
    path = tmp_path / "extra.npz"
    _npz_claiming(path, 10)
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("junk.npy", _npy((10**12,), "<f8"))
    data = PianoRollNpz(str(path)).load()
    assert [len(p) for p in data.pieces] == [10]


# -- music: MIDI ---------------------------------------------------------------------------------


def _long_midi(path, quarters):
    """One note lasting ``quarters`` quarter notes, in a file of a few dozen bytes."""
    pm = pretty_midi.PrettyMIDI(resolution=1, initial_tempo=120)
    inst = pretty_midi.Instrument(program=0)
    inst.notes.append(pretty_midi.Note(velocity=80, pitch=60, start=0.0, end=quarters * 0.5))
    pm.instruments.append(inst)
    pm.write(str(path))


def test_midi_file_whose_notes_reach_too_far_is_skipped(tmp_path, caplog):
    root = tmp_path / "midi"
    root.mkdir()
    _long_midi(root / "long.mid", 9_000_000)  # 36,000,000 sixteenths
    _long_midi(root / "ok.mid", 4)
    assert (root / "long.mid").stat().st_size < 100
    with caplog.at_level(logging.WARNING, logger="seqkit"):
        exc, peak = _peak(lambda: MidiFolder(str(root)).load())
    assert exc is None
    assert peak < 256 * 2**20  # pretty_midi's own tick table: 72 MB; no (36 M, 88) roll
    reason = (
        "its notes reach step 36,000,000, more than the 10,000,000 a music source may hold "
        "(MAX_ROLL_STEPS)"
    )
    assert f"Skipping {root / 'long.mid'}: {reason}." in caplog.text


def test_midi_file_too_big_is_skipped(tmp_path, caplog):
    root = tmp_path / "midi"
    root.mkdir()
    with (root / "big.mid").open("wb") as fh:
        fh.write(b"MThd")
        fh.truncate(music.MAX_MIDI_BYTES + 1)
    _long_midi(root / "ok.mid", 4)
    with caplog.at_level(logging.WARNING, logger="seqkit"):
        data = MidiFolder(str(root)).load()
    assert [s["reason"] for s in data.skipped] == [
        "the file is 8,388,609 bytes, more than the 8,388,608 seqkit reads as MIDI (MAX_MIDI_BYTES)"
    ]


def test_midi_file_with_too_many_notes_is_skipped(tmp_path, monkeypatch):
    root = tmp_path / "midi"
    root.mkdir()
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    inst = pretty_midi.Instrument(program=0)
    inst.notes += [pretty_midi.Note(velocity=80, pitch=60, start=i, end=i + 0.5) for i in range(6)]
    pm.instruments.append(inst)
    pm.write(str(root / "six.mid"))
    _long_midi(root / "ok.mid", 4)
    monkeypatch.setattr(music, "MAX_MIDI_NOTES", 5)
    data = MidiFolder(str(root)).load()
    assert [s["reason"] for s in data.skipped] == [
        "it holds 6 notes, more than the 5 seqkit reads from one MIDI file (MAX_MIDI_NOTES)"
    ]


def test_midi_folder_total_steps_are_bounded(tmp_path, monkeypatch):
    root = tmp_path / "midi"
    root.mkdir()
    for i in range(3):
        _long_midi(root / f"{i}.mid", 10)  # 40 steps each
    monkeypatch.setattr(music, "MAX_ROLL_STEPS", 100)
    with pytest.raises(DataError) as err:
        MidiFolder(str(root)).load()
    assert str(err.value) == (
        f"{root}: the MIDI files add up to more than 100 time steps (at {root / '2.mid'}), the "
        "most a music source may hold (MAX_ROLL_STEPS); use fewer files or a coarser step."
    )


# -- speech: manifests ---------------------------------------------------------------------------


def test_manifest_rows_are_bounded_while_reading(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("path,label,split\n" + "a.wav,yes,train\n" * 1_000_001)
    t0 = time.perf_counter()
    with pytest.raises(DataError) as err:
        Manifest(str(path)).examples()
    assert time.perf_counter() - t0 < 30
    assert str(err.value) == (
        f"Manifest '{path}' has more than 1,000,000 rows (MAX_MANIFEST_ROWS); split it, or "
        "check that it is the right file."
    )


def test_manifest_at_the_limit_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(manifest, "MAX_MANIFEST_ROWS", 4)
    (tmp_path / "a.wav").write_bytes(b"")
    path = tmp_path / "m.csv"
    path.write_text("path,label,split\na.wav,yes,train\na.wav,no,train\n\na.wav,yes,test\n"
                    "a.wav,no,test\n")  # fmt: skip
    assert len(Manifest(str(path)).examples()) == 4


# -- audio: truncated WAV ------------------------------------------------------------------------


def _truncated_wav(path, seconds=1.0, keep=0.5, sr=16000):
    y = (0.1 * np.sin(np.arange(int(seconds * sr)) / 5)).astype(np.float32)
    sf.write(path, y, sr, subtype="PCM_16")
    raw = path.read_bytes()
    path.write_bytes(raw[: 44 + int(len(raw[44:]) * keep)])
    return path


def test_truncated_wav_is_refused_naming_the_claim(tmp_path):
    path = _truncated_wav(tmp_path / "cut.wav")
    with pytest.raises(DataError) as err:
        Load(16000)(path)
    assert str(err.value) == (
        f"{path}: the header claims 16000 frames but the file holds 8000; the file is "
        "truncated (copy it again)."
    )
    one_byte_short = tmp_path / "short.wav"
    sf.write(one_byte_short, np.zeros(100, np.float32), 16000, subtype="PCM_16")
    one_byte_short.write_bytes(one_byte_short.read_bytes()[:-1])
    with pytest.raises(DataError, match="claims 100 frames but the file holds 99"):
        Load(16000)(one_byte_short)


def test_truncated_wav_is_skipped_with_a_named_warning(tmp_path, caplog):
    root = tmp_path / "words"
    for word in ("yes", "no"):
        (root / word).mkdir(parents=True)
        sf.write(root / word / "a_nohash_0.wav", np.zeros(8000, np.float32), 16000)
    cut = _truncated_wav(root / "yes" / "b_nohash_0.wav")
    logger = logging.getLogger("seqkit")
    logger.addHandler(caplog.handler)
    try:
        examples = FolderSource(str(root)).examples()
        kept, _, skipped = extract_features(
            examples, FeaturePipeline([Load(16000), FixLength(0.5), LogMel()]), workers=1
        )
    finally:
        logger.removeHandler(caplog.handler)
    assert skipped == [str(cut)]
    assert len(kept) == 2
    assert (
        f"Skipping {cut}: the header claims 16000 frames but the file holds 8000; the file is "
        "truncated (copy it again)." in caplog.text
    )


def test_truncated_background_noise_is_skipped(tmp_path, caplog):
    root = tmp_path / "sc"
    for word in ("yes", "no"):
        (root / word).mkdir(parents=True)
        sf.write(root / word / "a_nohash_0.wav", np.zeros(8000, np.float32), 16000)
    (root / "_background_noise_").mkdir()
    good = root / "_background_noise_" / "good.wav"
    sf.write(good, np.zeros(32000, np.float32), 16000)
    cut = _truncated_wav(root / "_background_noise_" / "cut.wav", seconds=4.0)
    source = SpeechCommands(str(root), words=["yes", "no"], unknown_percent=0)
    with caplog.at_level(logging.WARNING, logger="seqkit"):
        files = source.background_noise_files()
    assert files == [good]
    assert (
        f"Skipping background noise {cut}: the header claims 64000 frames but the file holds "
        "32000; the file is truncated (copy it again)." in caplog.text
    )
