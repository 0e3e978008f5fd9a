"""Tests of seqkit.speech.sources: speech_commands, filename_pattern and manifest.

Trees are made in ``tmp_path``; the Speech Commands sample in ``../shared/data`` is used by the
tests that skip when it is absent.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from seqkit.data import Example, which_set
from seqkit.errors import DataError, ParameterError
from seqkit.features import FeaturePipeline, FixLength, Load, LogMel
from seqkit.speech.sources.common import SILENCE_LABEL, STANDARD_WORDS, UNKNOWN_LABEL
from seqkit.speech.sources.manifest import Manifest
from seqkit.speech.sources.pattern import FilenamePattern, Rule
from seqkit.speech.sources.speech_commands import SpeechCommands

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "speech_commands_sample"
needs_sample = pytest.mark.skipif(not SAMPLE.is_dir(), reason="speech_commands_sample absent")


def write_wav(path: Path, seconds=0.1, sr=16000, seed=0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    y = 0.1 * np.random.default_rng(seed).normal(size=max(1, int(sr * seconds)))
    sf.write(path, y.astype(np.float32), sr, subtype="PCM_16")
    return path


@pytest.fixture
def seqkit_log(caplog):
    logger = logging.getLogger("seqkit")
    logger.addHandler(caplog.handler)
    old, propagate = logger.level, logger.propagate
    logger.setLevel(logging.INFO)
    logger.propagate = False  # one record per message (caplog also listens on the root)
    yield caplog
    logger.removeHandler(caplog.handler)
    logger.setLevel(old)
    logger.propagate = propagate


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


# -- speech_commands on the real sample ----------------------------------------------------------


@needs_sample
def test_speech_commands_sample_all_words_split_from_lists(seqkit_log):
    source = SpeechCommands(str(SAMPLE), words="all")
    examples = source.examples()
    assert len(source.label_names()) == 30
    assert source.label_names() == sorted(source.label_names())
    assert Counter(e.split for e in examples) == {"train": 205, "validation": 44, "test": 51}
    val = set((SAMPLE / "validation_list.txt").read_text().split())
    test = set((SAMPLE / "testing_list.txt").read_text().split())
    for ex in examples:
        rel = Path(ex.path).relative_to(SAMPLE).as_posix()
        assert ex.split == ("validation" if rel in val else "test" if rel in test else "train")
        assert ex.label == rel.split("/")[0]
    # The sample keeps the full dataset's lists: the absent files are reported, with counts.
    text = "\n".join(warnings_of(seqkit_log))
    assert "validation_list.txt names 6754 file(s) that do not exist" in text
    assert "testing_list.txt names 6784 file(s) that do not exist" in text


@needs_sample
def test_speech_commands_sample_twelve_classes():
    source = SpeechCommands(str(SAMPLE))
    examples = source.examples()
    assert source.label_names() == [SILENCE_LABEL, UNKNOWN_LABEL, *STANDARD_WORDS]
    counts = Counter((e.split, e.label) for e in examples)
    keywords = {s: sum(n for (sp, lb), n in counts.items() if sp == s and not lb.startswith("_"))
                for s in ("train", "validation", "test")}  # fmt: skip
    assert keywords == {"train": 58, "validation": 19, "test": 23}
    for split, n in keywords.items():  # 10 % each, rounded up, as TF's input_data.py
        assert counts[(split, UNKNOWN_LABEL)] == math.ceil(n / 10)
        assert counts[(split, SILENCE_LABEL)] == math.ceil(n / 10)
    assert Counter(e.split for e in examples) == {"train": 70, "validation": 23, "test": 29}
    unknown = [e for e in examples if e.label == UNKNOWN_LABEL]
    assert all(Path(e.path).parent.name not in STANDARD_WORDS for e in unknown)
    # no _background_noise_ in the sample: silence is generated noise of 1 s
    silence = [e for e in examples if e.label == SILENCE_LABEL]
    assert all(e.noise in ("white", "pink", "brown") and e.duration == 1.0 for e in silence)
    pipeline = FeaturePipeline([Load(16000), FixLength(1.0), LogMel(hop_ms=10)])
    assert pipeline(silence[0]).shape == pipeline(examples[0]).shape == (101, 40)


# -- speech_commands on a tree made here ---------------------------------------------------------

WORDS = ("yes", "no", "up")
OTHERS = ("bed", "cat")
SPEAKERS = [f"{i:08x}" for i in range(0xA0, 0xA0 + 10)]


@pytest.fixture
def sc(tmp_path) -> Path:
    """10 speakers x (3 keywords + 2 other words), lists naming 2 + 2 speakers, noise files."""
    root = tmp_path / "sc"
    for w, word in enumerate(WORDS + OTHERS):
        for s, spk in enumerate(SPEAKERS):
            write_wav(root / word / f"{spk}_nohash_0.wav", seed=10 * w + s)
    val = [f"{w}/{s}_nohash_0.wav" for w in WORDS + OTHERS for s in SPEAKERS[:2]]
    test = [f"{w}/{s}_nohash_0.wav" for w in WORDS + OTHERS for s in SPEAKERS[2:4]]
    (root / "validation_list.txt").write_text("\n".join(val + ["yes/gone_nohash_0.wav"]) + "\n")
    (root / "testing_list.txt").write_text("\n".join(test) + "\n")
    write_wav(root / "_background_noise_" / "white.wav", seconds=3.0, seed=99)
    write_wav(root / "_background_noise_" / "pink.wav", seconds=2.0, seed=98)
    (root / "LICENSE").write_text("a file at the top")
    return root


def test_speech_commands_tree_lists_decide(sc, seqkit_log):
    source = SpeechCommands(str(sc), words=list(WORDS), unknown_percent=50, silence_percent=50)
    examples = source.examples()
    assert source.label_names() == [SILENCE_LABEL, UNKNOWN_LABEL, "yes", "no", "up"]
    spk = {e.path: Path(e.path).name[:8] for e in examples if e.noise is None}
    for ex in examples:
        if ex.label in WORDS:
            want = ("validation" if spk[ex.path] in SPEAKERS[:2]
                    else "test" if spk[ex.path] in SPEAKERS[2:4] else "train")  # fmt: skip
            assert ex.split == want
    counts = Counter((e.split, e.label) for e in examples)
    assert counts[("train", "yes")] == 6 and counts[("validation", "no")] == 2
    # 50 % of each split's keyword clips: train 18 -> 9, validation 6 -> 3, test 6 -> 3
    for split, n in (("train", 9), ("validation", 3), ("test", 3)):
        assert counts[(split, UNKNOWN_LABEL)] == n
        assert counts[(split, SILENCE_LABEL)] == n
    for ex in examples:
        if ex.label == UNKNOWN_LABEL:
            assert Path(ex.path).parent.name in OTHERS
            assert ex.split == ("validation" if spk[ex.path] in SPEAKERS[:2]
                                else "test" if spk[ex.path] in SPEAKERS[2:4] else "train")  # fmt: skip
    text = "\n".join(warnings_of(seqkit_log))
    assert "validation_list.txt names 1 file(s) that do not exist" in text
    assert "yes/gone_nohash_0.wav" in text


def test_speech_commands_silence_cut_from_background_noise(sc):
    source = SpeechCommands(str(sc), words=list(WORDS), silence_percent=100, seed=3)
    silence = [e for e in source.examples() if e.label == SILENCE_LABEL]
    assert len(silence) == 18 + 6 + 6
    lengths = {"white.wav": 3.0, "pink.wav": 2.0}
    assert {Path(e.path).name for e in silence} == set(lengths)
    for ex in silence:
        assert ex.noise is None and ex.duration == 1.0
        assert 0.0 <= ex.offset <= lengths[Path(ex.path).name] - 1.0
        assert 0.0 <= ex.gain <= 1.0
    y = Load(16000)(silence[0])
    full = sf.read(silence[0].path, dtype="float32")[0]
    start = int(round(silence[0].offset * 16000))
    np.testing.assert_allclose(y, full[start : start + 16000] * silence[0].gain, atol=1e-7)


def test_speech_commands_is_deterministic(sc):
    a = SpeechCommands(str(sc), words=list(WORDS), unknown_percent=40, seed=1).examples()
    b = SpeechCommands(str(sc), words=list(WORDS), unknown_percent=40, seed=1).examples()
    c = SpeechCommands(str(sc), words=list(WORDS), unknown_percent=40, seed=2).examples()
    assert a == b
    assert a != c
    assert Counter(e.label for e in a) == Counter(e.label for e in c)


def test_speech_commands_hash_rule_without_lists(sc):
    (sc / "validation_list.txt").unlink()
    (sc / "testing_list.txt").unlink()
    examples = SpeechCommands(
        str(sc), words="all", validation_percent=30, test_percent=30
    ).examples()
    for ex in examples:
        assert ex.split == which_set(Path(ex.path).name, 30, 30)
    assert {e.split for e in examples} == {"train", "validation", "test"}


def test_speech_commands_one_list_only_falls_back_to_hash(sc, seqkit_log):
    (sc / "testing_list.txt").unlink()
    examples = SpeechCommands(str(sc), words="all").examples()
    assert all(e.split == which_set(Path(e.path).name, 10, 10) for e in examples)
    assert any("but no testing_list.txt" in m for m in warnings_of(seqkit_log))


def test_speech_commands_generated_silence_without_noise_folder(sc):
    for p in (sc / "_background_noise_").iterdir():
        p.unlink()
    (sc / "_background_noise_").rmdir()
    source = SpeechCommands(str(sc), words=list(WORDS), silence_seconds=0.5)
    silence = [e for e in source.examples() if e.label == SILENCE_LABEL]
    assert len(silence) == math.ceil(18 / 10) + 1 + 1
    for ex in silence:
        assert ex.noise in ("white", "pink", "brown") and ex.duration == 0.5
        y = Load(16000)(ex)
        assert y.shape == (8000,)
        assert 10 ** (-80 / 20) * 0.99 <= np.sqrt(np.mean(y**2)) <= 10 ** (-20 / 20) * 1.01


def test_speech_commands_short_or_broken_noise_files_skipped(sc, seqkit_log):
    write_wav(sc / "_background_noise_" / "short.wav", seconds=0.5)
    (sc / "_background_noise_" / "junk.wav").write_bytes(b"RIFF1234WAVEjunk")
    silence = [e for e in SpeechCommands(str(sc), words=list(WORDS)).examples()
               if e.label == SILENCE_LABEL]  # fmt: skip
    assert {Path(e.path).name for e in silence} <= {"white.wav", "pink.wav"}
    text = "\n".join(warnings_of(seqkit_log))
    assert "short.wav: 0.50 s is shorter than silence_seconds (1)" in text
    assert "junk.wav: cannot be read as audio" in text


def test_speech_commands_empty_word_folder(sc, seqkit_log):
    (sc / "dog").mkdir()
    (sc / "dog" / "notes.txt").write_text("no audio")
    source = SpeechCommands(str(sc), words=list(WORDS))
    source.examples()
    assert any(f"Word folder '{sc / 'dog'}' has no audio files; skipped." in m
               for m in warnings_of(seqkit_log))  # fmt: skip
    assert "dog" not in SpeechCommands(str(sc), words="all").label_names()
    for p in (sc / "up").iterdir():
        p.unlink()
    with pytest.raises(DataError, match=re.escape(f"Word folder '{sc / 'up'}' has no audio")):
        SpeechCommands(str(sc), words=list(WORDS)).examples()


def test_speech_commands_missing_word(sc):
    with pytest.raises(
        DataError, match=r"Word folder\(s\) left not found in '.*sc' \(data.source.words\); found: "
    ):
        SpeechCommands(str(sc), words=["yes", "left"]).examples()


def test_speech_commands_no_other_words_for_unknown(sc):
    with pytest.raises(DataError, match=r"_unknown_ would have no examples.*unknown_percent: 0"):
        SpeechCommands(str(sc), words=list(WORDS + OTHERS)).examples()
    source = SpeechCommands(str(sc), words=list(WORDS + OTHERS), unknown_percent=0)
    assert source.label_names() == [SILENCE_LABEL, *WORDS, *OTHERS]


def test_speech_commands_percent_zero_drops_classes(sc):
    source = SpeechCommands(str(sc), words=["yes", "no"], unknown_percent=0, silence_percent=0)
    assert source.label_names() == ["yes", "no"]
    assert {e.label for e in source.examples()} == {"yes", "no"}


def test_speech_commands_all_words_can_add_silence(sc):
    source = SpeechCommands(str(sc), words="all", silence_percent=10)
    assert source.label_names() == [SILENCE_LABEL, "bed", "cat", "no", "up", "yes"]


def test_speech_commands_missing_root(tmp_path):
    with pytest.raises(DataError, match=r"Data folder '.*nowhere' does not exist"):
        SpeechCommands(str(tmp_path / "nowhere")).examples()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"words": "some"},
            "`words` must be a list of word folder names or 'all'; received 'some'.",
        ),
        (
            {"words": [True, "no"]},
            "`words` must be a non-empty list of names; received [True, 'no']",
        ),
        ({"words": ["yes", "yes"]}, "`words` names yes more than once."),
        ({"words": ["_silence_"]}, "`words` must name word folders"),
        ({"unknown_percent": -1}, "`unknown_percent` must be a number >= 0; received -1."),
        ({"silence_seconds": 0}, "`silence_seconds` must be a number in (0, 60]; received 0."),
        ({"seed": -1}, "`seed` must be an integer in [0, 2**32); received -1."),
        ({"validation_percent": 60, "test_percent": 40}, "must be < 100; received 60 + 40."),
    ],
)
def test_speech_commands_bad_params(kwargs, message):
    with pytest.raises(ParameterError, match=re.escape(message)):
        SpeechCommands("x", **kwargs)


def test_speech_commands_recipe_unquoted_yes_hint(tmp_path):
    from seqkit.errors import RecipeError
    from seqkit.recipe import load_recipe

    path = tmp_path / "r.yaml"
    path.write_text(
        "data: {source: {type: speech_commands, root: x, words: [yes, no, up]}}\n"
        "features: [{type: load}, {type: fix_length}, {type: log_mel}]\n"
        "model: {layers: [{type: gru, units: 8}]}\ntask: {type: kws}\n"
    )
    with pytest.raises(RecipeError, match=r"data\.source\.words\[0\]: .*quote it: 'yes'"):
        load_recipe(path)


# -- filename_pattern ----------------------------------------------------------------------------

FSDD = r"(?P<label>\d)_(?P<speaker>[a-z]+)_(?P<index>\d+)\.wav"


@pytest.fixture
def fsdd(tmp_path) -> Path:
    root = tmp_path / "fsdd"
    for digit in range(3):
        for speaker in ("jackson", "nicolas", "theo"):
            for index in range(8):
                write_wav(root / "recordings" / f"{digit}_{speaker}_{index}.wav", seconds=0.05)
    write_wav(root / "recordings" / "README.wav", seconds=0.05)
    write_wav(root / "other" / "x_y.wav", seconds=0.05)
    return root


def test_filename_pattern_index_rule(fsdd, seqkit_log):
    source = FilenamePattern(str(fsdd), FSDD, test_if="index < 5")
    examples = source.examples()
    assert source.label_names() == ["0", "1", "2"]
    assert len(examples) == 3 * 3 * 8
    for ex in examples:
        digit, speaker, index = Path(ex.path).stem.split("_")
        assert ex.label == digit
        if int(index) < 5:
            assert ex.split == "test"
        else:  # the rest: hash of the speaker, validation_percent only
            assert ex.split == which_set(speaker, 10, 0)
    warns = [m for m in warnings_of(seqkit_log) if "do not match" in m]
    assert len(warns) == 1
    assert "2 of 74 audio files" in warns[0]
    assert "other/x_y.wav" in warns[0] and "recordings/README.wav" in warns[0]


def test_filename_pattern_held_out_speakers(fsdd):
    source = FilenamePattern(
        str(fsdd), FSDD, test_speakers=["theo"], validation_speakers=["nicolas"]
    )
    by_speaker = {}
    for ex in source.examples():
        by_speaker.setdefault(Path(ex.path).stem.split("_")[1], set()).add(ex.split)
    assert by_speaker == {"theo": {"test"}, "nicolas": {"validation"}, "jackson": {"train"}}


def test_filename_pattern_label_template_and_rules(fsdd):
    pattern = r"recordings/(?P<digit>\d)_(?P<speaker>[a-z]+)_(?P<take>\d+)\.wav"
    source = FilenamePattern(
        str(fsdd), pattern, label="d{digit}", test_if="take >= 6", validation_if="take == '5'"
    )
    examples = source.examples()
    assert source.label_names() == ["d0", "d1", "d2"]
    for ex in examples:
        take = int(Path(ex.path).stem.split("_")[2])
        assert ex.split == ("test" if take >= 6 else "validation" if take == 5 else "train")


def test_filename_pattern_hash_rule_by_speaker(fsdd):
    examples = FilenamePattern(str(fsdd), FSDD, validation_percent=30, test_percent=30).examples()
    for ex in examples:
        assert ex.split == which_set(Path(ex.path).stem.split("_")[1], 30, 30)


def test_filename_pattern_labels_subset(fsdd):
    source = FilenamePattern(str(fsdd), FSDD, labels=["2", "0"])
    assert source.label_names() == ["2", "0"]
    assert {e.label for e in source.examples()} == {"0", "2"}
    with pytest.raises(DataError, match=r"Label\(s\) 7 have no files in"):
        FilenamePattern(str(fsdd), FSDD, labels=["0", "7"]).examples()


def test_filename_pattern_rule_on_text_group(fsdd):
    source = FilenamePattern(str(fsdd), FSDD, test_if="speaker > 'm'")
    splits = {
        Path(e.path).stem.split("_")[1]: e.split for e in source.examples() if e.split == "test"
    }
    assert set(splits) == {"nicolas", "theo"}


def test_filename_pattern_numeric_rule_on_text(fsdd):
    with pytest.raises(DataError, match=r"compares the group 'speaker' with a number"):
        FilenamePattern(str(fsdd), FSDD, test_if="speaker < 5").examples()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"pattern": "(?P<label>"}, "`pattern` is not a valid regular expression"),
        ({"pattern": r"(?P<digit>\d).wav"}, "`pattern` needs a named group 'label'"),
        ({"label": "{word}"}, "`label` must name groups of `pattern` in braces"),
        ({"test_if": "index <"}, "`test_if` must look like 'GROUP OP VALUE'"),
        ({"test_if": "import os"}, "`test_if` must look like 'GROUP OP VALUE'"),
        ({"test_if": "__import__('os') == 1"}, "`test_if` must look like 'GROUP OP VALUE'"),
        (
            {"test_if": "indx < 5"},
            "`test_if` uses the group 'indx', which `pattern` does not "
            "define; Did you mean 'index'?",
        ),
        ({"test_if": "index < 5", "test_speakers": ["theo"]}, "Give `test_if` or `test_speakers`"),
        ({"test_speakers": ["a"], "validation_speakers": ["a"]}, "Speaker(s) a are in both"),
    ],
)
def test_filename_pattern_bad_params(kwargs, message):
    kwargs = {"pattern": FSDD, **kwargs}
    with pytest.raises(ParameterError, match=re.escape(message)):
        FilenamePattern("x", **kwargs)


def test_filename_pattern_speakers_need_group():
    with pytest.raises(ParameterError, match=r"need a named group 'speaker'"):
        FilenamePattern("x", r"(?P<label>\d)_.*\.wav", test_speakers=["theo"])


@pytest.mark.parametrize(
    "text, value, cases",
    [
        ("index < 5", 5, [("4", True), ("5", False), ("10", False)]),
        ("index>=10", 10, [("10", True), ("9", False), ("011", True)]),
        ("take == '05'", "05", [("05", True), ("5", False)]),
        ("take != 2.5", 2.5, [("2.5", False), ("3", True)]),
    ],
)
def test_rule_parsing(text, value, cases):
    rule = Rule(text, "test_if", ["index", "take"])
    assert rule.value == value
    for s, want in cases:
        m = re.fullmatch(rf"(?P<{rule.group}>[\w.]+)", s)
        assert rule(m, "f.wav") is want, (text, s)


# -- manifest ------------------------------------------------------------------------------------


@pytest.fixture
def manifest(tmp_path) -> Path:
    root = tmp_path / "m"
    for i in range(4):
        write_wav(root / "audio" / f"a{i}.wav", seed=i)
        write_wav(root / "audio" / f"b{i}.wav", seed=10 + i)
    rows = ["\ufeffpath,label,split,speaker"]
    for i, split in enumerate(["train", "train", "validation", "test"]):
        rows.append(f"audio/a{i}.wav,alpha,{split},s{i}")
        rows.append(f"audio/b{i}.wav,beta,{split},s{i}")
    rows.append("")
    rows.append("audio/missing.wav,alpha,train,s9")
    (root / "list.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root / "list.csv"


def test_manifest_reads_rows(manifest, seqkit_log):
    source = Manifest(str(manifest))
    examples = source.examples()
    assert source.label_names() == ["alpha", "beta"]
    assert len(examples) == 8
    got = {(Path(e.path).name, e.label, e.split) for e in examples}
    assert ("a2.wav", "alpha", "validation") in got and ("b3.wav", "beta", "test") in got
    assert all(Path(e.path).is_file() for e in examples)
    assert any("names 1 file(s) that do not exist (line 11: audio/missing.wav)" in m
               for m in warnings_of(seqkit_log))  # fmt: skip
    assert source.data_root == manifest.parent
    assert Manifest(str(manifest), labels=["beta"]).label_names() == ["beta"]


def test_manifest_bad_rows_named_by_line(manifest):
    text = manifest.read_text(encoding="utf-8")
    text += "audio/a0.wav,alpha,valid,s1\n,beta,train,s2\naudio/a1.wav,,test,s3\nonly,three\n"
    manifest.write_text(text, encoding="utf-8")
    with pytest.raises(DataError) as ei:
        Manifest(str(manifest)).examples()
    msg = str(ei.value)
    assert "has 4 bad row(s)" in msg
    assert "line 12: split must be train, validation or test; received 'valid'." in msg
    assert "line 13: empty path" in msg
    assert "line 14: empty label" in msg
    assert "line 15: 2 fields, the header has 4" in msg


def test_manifest_header_and_file_problems(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("file,label,split\na.wav,x,train\n")
    with pytest.raises(DataError, match=r"bad.csv:1: the header must name the columns "
                                        r"path,label,split; missing path"):  # fmt: skip
        Manifest(str(p)).examples()
    p.write_text("path,label,split\n")
    with pytest.raises(DataError, match=r"lists no files"):
        Manifest(str(p)).examples()
    p.write_bytes(b"path,label,split\n\xff\xfe\x00bad\n")
    with pytest.raises(DataError, match=r"cannot be read as UTF-8"):
        Manifest(str(p)).examples()
    with pytest.raises(DataError, match=r"Manifest '.*nope.csv' does not exist"):
        Manifest(str(tmp_path / "nope.csv")).examples()


def test_sources_never_write(sc, fsdd, manifest):
    from test_audio_input import tree_digest

    before = [tree_digest(p) for p in (sc, fsdd, manifest.parent)]
    SpeechCommands(str(sc), words=list(WORDS)).examples()
    FilenamePattern(str(fsdd), FSDD, test_if="index < 5").examples()
    Manifest(str(manifest)).examples()
    assert [tree_digest(p) for p in (sc, fsdd, manifest.parent)] == before


def test_example_key_names_parts():
    assert Example("a.wav", "x", "train").key == "a.wav"
    ex = Example("n.wav", "_silence_", "train", offset=1.5, duration=1.0, gain=0.25)
    assert ex.key == "n.wav[offset=1.5 duration=1.0 gain=0.25]"
    noise = Example("<g>", "_silence_", "test", duration=1.0, noise="pink", seed=4)
    assert noise.key == "<pink noise seed=4 duration=1.0 gain=1.0>"
