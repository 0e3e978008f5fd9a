"""Tests of seqkit.data (split rule, folder and synthetic sources) and of
seqkit.tasks.classification_report.

Audio trees are made in ``tmp_path``. The Speech Commands oracle test reads
``../shared/data/speech_commands_sample`` and is skipped when it is absent.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from seqkit.data import Example, which_set
from seqkit.errors import DataError, ParameterError
from seqkit.speech.sources.common import SYNTH_MARKER
from seqkit.speech.sources.folder import FolderSource
from seqkit.speech.sources.tones import TONE_CLASSES, SyntheticTones
from seqkit.speech.task import classification_report

SPEECH_COMMANDS = (
    Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "speech_commands_sample"
)


def write_wav(path: Path, seconds: float = 0.1, sr: int = 16000, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    y = 0.1 * np.random.default_rng(seed).normal(size=int(sr * seconds))
    sf.write(path, y.astype(np.float32), sr, subtype="PCM_16")
    return path


# -- which_set -----------------------------------------------------------------------------------

# Computed once with the rule (SHA-1 of the name without its _nohash_ suffix, mod 2**27, scaled
# to [0, 100)) and written here literally: (file name, split at 10/10, split at 15/15).
GOLDEN = [
    ("026290a7_nohash_0.wav", "validation", "validation"),  # 0.68 %
    ("a1b2c3d4_nohash_0.wav", "validation", "validation"),  # 3.33 %
    ("speaker5.wav", "validation", "validation"),  # 7.32 %
    ("1b4c9b89_nohash_1.wav", "test", "validation"),  # 12.19 %
    ("0c40e715_nohash_0.wav", "test", "test"),  # 16.40 %
    ("0ea0e2f4_nohash_1.wav", "test", "test"),  # 18.73 %
    ("x.wav", "train", "test"),  # 27.55 %
    ("speaker1.wav", "train", "train"),  # 37.22 %
    ("0a7c2a8d_nohash_3.wav", "train", "train"),  # 56.84 %
    ("0135f3f2_nohash_0.wav", "train", "train"),  # 99.61 %
]


@pytest.mark.parametrize("name, at10, at15", GOLDEN)
def test_which_set_golden(name, at10, at15):
    assert which_set(name, 10, 10) == at10
    assert which_set(name, 15, 15) == at15


def test_which_set_uses_base_name_only():
    assert which_set("bed/1b4c9b89_nohash_1.wav", 10, 10) == "test"
    assert which_set("/some/where/else/1b4c9b89_nohash_1.wav", 10, 10) == "test"


def test_which_set_speaker_clips_share_a_split():
    for speaker in ["026290a7", "1b4c9b89", "0c40e715", "0a7c2a8d", "c0ffee00", "12345678"]:
        for percents in [(10, 10), (15, 15), (40, 40)]:
            splits = {
                which_set(f"{folder}/{speaker}_nohash_{i}.wav", *percents)
                for i in range(6)
                for folder in ("yes", "no", "")
            }
            assert len(splits) == 1, (speaker, percents, splits)


def test_which_set_percent_edges():
    names = [f"{i:08x}_nohash_0.wav" for i in range(200)]
    assert {which_set(n, 0, 0) for n in names} == {"train"}
    assert {which_set(n, 0, 99.999) for n in names} <= {"test", "train"}
    splits = [which_set(n, 30, 30) for n in names]
    # roughly 30 / 30 / 40 % of 200 names
    assert 35 <= splits.count("validation") <= 85
    assert 35 <= splits.count("test") <= 85


@pytest.mark.skipif(not SPEECH_COMMANDS.is_dir(), reason="speech_commands_sample not available")
def test_which_set_matches_speech_commands_lists():
    val = (SPEECH_COMMANDS / "validation_list.txt").read_text().split()
    test = (SPEECH_COMMANDS / "testing_list.txt").read_text().split()
    assert val and test
    wrong_val = [n for n in val if which_set(n, 10, 10) != "validation"]
    wrong_test = [n for n in test if which_set(n, 10, 10) != "test"]
    assert not wrong_val, wrong_val[:5]
    assert not wrong_test, wrong_test[:5]
    listed = set(val) | set(test)
    rest = [
        p.relative_to(SPEECH_COMMANDS).as_posix()
        for p in SPEECH_COMMANDS.glob("*/*.wav")
        if not p.parent.name.startswith("_")
    ]
    rest = [n for n in rest if n not in listed]
    assert rest  # the sample holds training files too
    assert [n for n in rest if which_set(n, 10, 10) != "train"] == []


@pytest.mark.skipif(not SPEECH_COMMANDS.is_dir(), reason="speech_commands_sample not available")
def test_folder_source_on_speech_commands_sample():
    val = set((SPEECH_COMMANDS / "validation_list.txt").read_text().split())
    test = set((SPEECH_COMMANDS / "testing_list.txt").read_text().split())
    source = FolderSource(str(SPEECH_COMMANDS), validation_percent=10, test_percent=10)
    examples = source.examples()
    assert "_background_noise_" not in source.label_names()
    assert len(source.label_names()) >= 2
    for ex in examples:
        rel = Path(ex.path).relative_to(SPEECH_COMMANDS).as_posix()
        expected = "validation" if rel in val else "test" if rel in test else "train"
        assert ex.split == expected, rel
        assert ex.label == rel.split("/")[0]


# -- FolderSource --------------------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path) -> Path:
    root = tmp_path / "words"
    for label in ("yes", "no", "up"):
        for spk in ("026290a7", "1b4c9b89", "0a7c2a8d"):
            write_wav(root / label / f"{spk}_nohash_0.wav")
    write_wav(root / "up" / "nested" / "0c40e715_nohash_1.WAV")
    (root / "up" / "readme.txt").write_text("not audio")
    write_wav(root / "_background_noise_" / "white.wav")
    write_wav(root / ".hidden" / "x.wav")
    (root / "notes.txt").write_text("a file at the top is not a label")
    return root


def test_folder_source_labels_sorted_and_underscore_ignored(tree):
    source = FolderSource(str(tree))
    assert source.label_names() == ["no", "up", "yes"]


def test_folder_source_examples(tree):
    examples = FolderSource(str(tree), validation_percent=10, test_percent=10).examples()
    assert len(examples) == 10
    assert all(isinstance(e, Example) for e in examples)
    for ex in examples:
        path = Path(ex.path)
        assert path.is_file()
        assert path.relative_to(tree).parts[0] == ex.label
        assert ex.split == which_set(path.name, 10, 10)
    by_name = {(e.label, Path(e.path).name): e.split for e in examples}
    assert by_name[("yes", "026290a7_nohash_0.wav")] == "validation"
    assert by_name[("no", "1b4c9b89_nohash_0.wav")] == "test"
    assert by_name[("up", "0a7c2a8d_nohash_0.wav")] == "train"
    assert by_name[("up", "0c40e715_nohash_1.WAV")] == "test"  # nested, upper-case suffix
    assert not any("readme" in e.path or "_background_noise_" in e.path for e in examples)
    assert not any(".hidden" in e.path for e in examples)


def test_folder_source_labels_subset_keeps_given_order(tree):
    source = FolderSource(str(tree), labels=["yes", "no"])
    assert source.label_names() == ["yes", "no"]
    assert {e.label for e in source.examples()} == {"yes", "no"}


def test_folder_source_extensions(tree):
    write_wav(tree / "yes" / "extra.flac")
    sf.write(tree / "no" / "extra.flac", np.zeros(100, dtype=np.float32), 16000)
    examples = FolderSource(str(tree), extensions=[".flac"], labels=["yes", "no"]).examples()
    assert sorted(Path(e.path).name for e in examples) == ["extra.flac", "extra.flac"]


def test_folder_source_missing_folder(tmp_path):
    root = tmp_path / "nowhere"
    with pytest.raises(DataError, match=re.escape(f"Data folder '{root}' does not exist")):
        FolderSource(str(root)).examples()


def test_folder_source_needs_two_labels(tmp_path):
    root = tmp_path / "one"
    write_wav(root / "yes" / "a.wav")
    write_wav(root / "_background_noise_" / "b.wav")
    with pytest.raises(DataError, match=r"needs at least two label sub-folders; found 1 \(yes\)"):
        FolderSource(str(root)).examples()


def test_folder_source_no_labels(tmp_path):
    with pytest.raises(DataError, match=r"found 0 \(none\)"):
        FolderSource(str(tmp_path)).examples()


def test_folder_source_empty_class_folder(tree):
    (tree / "down").mkdir()
    (tree / "down" / "notes.txt").write_text("no audio here")
    with pytest.raises(
        DataError, match=re.escape(f"Class folder '{tree / 'down'}' has no audio files")
    ):
        FolderSource(str(tree)).examples()


def test_folder_source_labels_name_missing_folder(tree):
    with pytest.raises(
        DataError, match=r"Label folder\(s\) left, right not found in '.*words'"
    ) as ei:
        FolderSource(str(tree), labels=["yes", "left", "right"]).examples()
    assert "found: no, up, yes" in str(ei.value)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"validation_percent": 100},
            "`validation_percent` must be a number in [0, 100); received 100.",
        ),
        ({"test_percent": -1}, "`test_percent` must be a number in [0, 100); received -1."),
        ({"validation_percent": 60, "test_percent": 40}, "must be < 100; received 60 + 40."),
    ],
)
def test_folder_source_bad_percent(kwargs, message):
    with pytest.raises(ParameterError, match=re.escape(message)):
        FolderSource("x", **kwargs)


# -- SyntheticTones ------------------------------------------------------------------------------

SMALL = dict(speakers=2, clips_per_speaker=2, seconds=0.2, file_sample_rate=8000)


def wav_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.wav"))


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_synthetic_generates_into_new_folder(tmp_path):
    root = tmp_path / "synth"
    source = SyntheticTones(str(root), **SMALL)
    examples = source.examples()
    assert source.label_names() == ["ai", "ia", "u", "e_e", "noise"]
    assert list(TONE_CLASSES) == ["ai", "ia", "u", "e_e", "noise"]
    assert (root / SYNTH_MARKER).is_file()
    files = wav_files(root)
    assert len(files) == 5 * 2 * 2
    for label in TONE_CLASSES:
        assert len(list((root / label).glob("*_nohash_*.wav"))) == 4
    assert sorted(p.name for p in root.iterdir()) == sorted([*TONE_CLASSES, SYNTH_MARKER])
    assert len(examples) == 20
    assert {e.label for e in examples} == set(TONE_CLASSES)
    assert {e.split for e in examples} <= {"train", "validation", "test"}
    info = sf.info(str(files[0]))
    assert (info.samplerate, info.frames, info.channels, info.subtype) == (8000, 1600, 1, "PCM_16")
    marker = json.loads((root / SYNTH_MARKER).read_text())
    assert sorted(marker["files"]) == sorted(p.relative_to(root).as_posix() for p in files)


def test_processes_generating_one_folder_take_turns(tmp_path):
    """The workers of a multi_worker run prepare the same data folder at once: while one
    process generates (holds the lock), another waits, then finds the generation complete and
    leaves it as it is."""
    import subprocess
    import sys
    import time

    from seqkit.speech.sources.common import generation_lock

    root = tmp_path / "synth"
    code = (
        "import sys; from seqkit.data import SyntheticTones; "
        f"SyntheticTones(sys.argv[1], **{SMALL!r}).prepare()"
    )
    with generation_lock(root):  # this process is "generating"
        proc = subprocess.Popen([sys.executable, "-c", code, str(root)])
        time.sleep(1.5)
        assert proc.poll() is None  # waiting for the lock
        assert not root.exists()  # and has written nothing
        SyntheticTones(str(root), **SMALL).prepare()  # re-entrant in one process's turn
        before = snapshot(root)
    assert proc.wait(timeout=120) == 0
    assert snapshot(root) == before and len(wav_files(root)) == 20
    assert list(tmp_path.iterdir()) == [root]  # the lock is not beside the folder
    assert sorted(p.name for p in root.iterdir()) == sorted([*TONE_CLASSES, SYNTH_MARKER])


def test_synthetic_generates_into_empty_existing_folder(tmp_path):
    root = tmp_path / "empty"
    root.mkdir()
    SyntheticTones(str(root), **SMALL).examples()
    assert len(wav_files(root)) == 20


def test_synthetic_speaker_clips_share_split(tmp_path):
    examples = SyntheticTones(
        str(tmp_path / "s"), speakers=6, clips_per_speaker=2, seconds=0.2, file_sample_rate=8000
    ).examples()
    by_speaker: dict[str, set[str]] = {}
    for ex in examples:
        by_speaker.setdefault(Path(ex.path).name.split("_nohash_")[0], set()).add(ex.split)
    assert len(by_speaker) == 6
    assert all(len(s) == 1 for s in by_speaker.values())


def test_synthetic_is_deterministic(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    SyntheticTones(str(a), seed=3, **SMALL).prepare()
    SyntheticTones(str(b), seed=3, **SMALL).prepare()
    SyntheticTones(str(c), seed=4, **SMALL).prepare()
    assert snapshot(a) == snapshot(b)
    wav_a = [p.read_bytes() for p in wav_files(a)]
    wav_c = [p.read_bytes() for p in wav_files(c)]
    assert len(wav_a) == len(wav_c) == 20
    assert set(wav_a).isdisjoint(wav_c)


def test_synthetic_reuses_files_when_settings_match(tmp_path):
    root = tmp_path / "synth"
    SyntheticTones(str(root), **SMALL).prepare()
    old = 1_000_000_000
    for p in root.rglob("*"):
        if p.is_file():
            os.utime(p, (old, old))
    before = snapshot(root)
    SyntheticTones(str(root), **SMALL).examples()
    assert snapshot(root) == before
    assert all(p.stat().st_mtime == old for p in root.rglob("*") if p.is_file())


def test_synthetic_regenerates_when_settings_change(tmp_path):
    root = tmp_path / "synth"
    SyntheticTones(str(root), seed=0, **SMALL).prepare()
    first = {p.relative_to(root).as_posix() for p in wav_files(root)}
    user_file = root / "ai" / "my_recording.txt"
    user_file.write_text("mine")
    user_top = root / "README.txt"
    user_top.write_text("also mine")

    source = SyntheticTones(str(root), seed=1, **SMALL)
    source.prepare()
    second = {p.relative_to(root).as_posix() for p in wav_files(root)}
    assert len(second) == 20
    assert first.isdisjoint(second)  # the old clips (other speakers' names) are gone
    marker = json.loads((root / SYNTH_MARKER).read_text())
    assert marker["settings"]["seed"] == 1
    assert set(marker["files"]) == second
    assert user_file.read_text() == "mine"
    assert user_top.read_text() == "also mine"
    # and the new tree equals a fresh generation with the new settings
    fresh = tmp_path / "fresh"
    SyntheticTones(str(fresh), seed=1, **SMALL).prepare()
    assert {k: v for k, v in snapshot(root).items() if k.endswith(".wav")} == {
        k: v for k, v in snapshot(fresh).items() if k.endswith(".wav")
    }


def test_synthetic_regenerates_fewer_speakers(tmp_path):
    root = tmp_path / "synth"
    SyntheticTones(str(root), **SMALL).prepare()
    SyntheticTones(str(root), **{**SMALL, "speakers": 1}).prepare()
    assert len(wav_files(root)) == 5 * 1 * 2


def test_synthetic_refuses_foreign_folder(tmp_path):
    root = tmp_path / "mine"
    write_wav(root / "yes" / "a.wav")
    (root / "notes.txt").write_text("keep me")
    old = 1_000_000_000
    for p in root.rglob("*"):
        if p.is_file():
            os.utime(p, (old, old))
    before = snapshot(root)
    with pytest.raises(
        DataError, match=re.escape(f"'{root}' exists and was not generated by seqkit")
    ):
        SyntheticTones(str(root), **SMALL).examples()
    assert snapshot(root) == before
    assert sorted(p.name for p in root.iterdir()) == ["notes.txt", "yes"]
    assert all(p.stat().st_mtime == old for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"classes": ["ai", "oi"]}, r"`classes` must be two or more of"),
        ({"classes": ["ai"]}, r"`classes` must be two or more of"),
        ({"speakers": 0}, r"`speakers` must be a positive integer; received 0\."),
        ({"seconds": 0.1}, r"`seconds` must be between 0\.2 and 30; received 0\.1\."),
    ],
)
def test_synthetic_bad_params(tmp_path, kwargs, pattern):
    with pytest.raises(ParameterError, match=pattern):
        SyntheticTones(str(tmp_path / "x"), **kwargs)
    assert not (tmp_path / "x").exists()


def test_synthetic_class_subset(tmp_path):
    root = tmp_path / "two"
    source = SyntheticTones(str(root), classes=["u", "noise"], **SMALL)
    assert {e.label for e in source.examples()} == {"u", "noise"}
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["noise", "u"]


# -- classification_report -----------------------------------------------------------------------


def test_classification_report_golden():
    labels = ["a", "b", "c", "d"]
    y_true = [0, 0, 0, 0, 1, 1, 2, 2, 2, 2]
    y_pred = [0, 0, 1, 2, 1, 1, 2, 2, 0, 1]
    report = classification_report(np.array(y_true), np.array(y_pred), labels)
    assert report["confusion_matrix"] == [
        [2, 1, 1, 0],
        [0, 2, 0, 0],
        [1, 1, 2, 0],
        [0, 0, 0, 0],
    ]
    assert report["accuracy"] == pytest.approx(0.6)
    assert report["examples"] == 10
    assert report["per_class"] == {
        "a": {"precision": 0.666667, "recall": 0.5, "f1": 0.571429, "support": 4},
        "b": {"precision": 0.5, "recall": 1.0, "f1": 0.666667, "support": 2},
        "c": {"precision": 0.666667, "recall": 0.5, "f1": 0.571429, "support": 4},
        "d": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0},
    }


def test_classification_report_perfect_and_empty():
    report = classification_report([0, 1, 1], [0, 1, 1], ["x", "y"])
    assert report["accuracy"] == 1.0
    assert report["confusion_matrix"] == [[1, 0], [0, 2]]
    assert report["per_class"]["y"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2}
    none = np.array([], dtype=np.int64)
    empty = classification_report(none, none, ["x", "y"])
    assert empty["accuracy"] == 0.0 and empty["examples"] == 0
    assert empty["confusion_matrix"] == [[0, 0], [0, 0]]


def test_synthetic_interrupted_generation_is_redone(tmp_path):
    root = tmp_path / "s"
    SyntheticTones(str(root), **SMALL).prepare()
    marker = root / SYNTH_MARKER
    made = json.loads(marker.read_text())
    assert made["complete"] is True and len(made["files"]) == len(list(root.rglob("*.wav")))
    # Simulate a kill mid-generation: marker says incomplete, one planned file is missing.
    made["complete"] = False
    marker.write_text(json.dumps(made))
    first = root / made["files"][0]
    first.unlink()
    SyntheticTones(str(root), **SMALL).prepare()
    assert first.is_file()
    assert json.loads(marker.read_text())["complete"] is True


def test_extensions_without_a_dot_and_run_folders_are_not_labels(tree):
    (tree / "runs-inside").mkdir()
    (tree / "runs-inside" / "run.json").write_text("{}")
    source = FolderSource(str(tree), extensions=["WAV"])
    assert source.extensions == (".wav",)
    assert "runs-inside" not in source.label_names()


def test_a_file_given_as_the_data_folder(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(DataError, match=r"'.*afile' is a file, not a folder"):
        FolderSource(str(tmp_path / "afile")).examples()
    with pytest.raises(DataError, match=r"'.*afile' is a file, not a folder"):
        SyntheticTones(str(tmp_path / "afile"), **SMALL).prepare()


@pytest.mark.parametrize("seed", [-1, "abc", True, 2**32])
def test_synthetic_seed_is_checked(tmp_path, seed):
    with pytest.raises(ParameterError, match=r"`seed` must be an integer in \[0, 2\*\*32\)"):
        SyntheticTones(str(tmp_path / "s"), seed=seed)


def test_marker_cannot_make_seqkit_delete_other_files(tmp_path):
    root = tmp_path / "s"
    SyntheticTones(str(root), **SMALL).prepare()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    marker = root / SYNTH_MARKER
    made = json.loads(marker.read_text())
    made["files"].append("../victim.txt")
    made["settings"]["seed"] = 99  # settings differ: seqkit removes the files it listed
    marker.write_text(json.dumps(made))
    SyntheticTones(str(root), **SMALL).prepare()
    assert victim.read_text() == "keep"
