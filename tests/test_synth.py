"""Tests of seqkit.speech.sources.synthetic and .espeak (eSpeak NG through ctypes, the generator, the synthetic_speech source)
and of ``seqkit data synth``. Datasets are small (a few speakers) and made in ``tmp_path``."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from conftest import assert_same_clips

from seqkit.cli import cli
from seqkit.errors import DataError, ParameterError
from seqkit.speech.sources.common import SILENCE_LABEL, SYNTH_MARKER, UNKNOWN_LABEL
from seqkit.speech.sources.espeak import VARIANTS, VOICES, Espeak, make_speakers
from seqkit.speech.sources.speech_commands import SpeechCommands
from seqkit.speech.sources.synthetic import SyntheticSpeech, synthesize

pytest.importorskip("espeakng_loader")

SMALL = dict(
    words=["yes", "no"],
    unknown_words=["cat", "dog", "bird"],
    speakers=6,
    clips_per_speaker=2,
    unknown_per_speaker=2,
    validation_percent=20,
    test_percent=20,
    seed=1,
)


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def wavs(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.wav"))


# -- the engine ----------------------------------------------------------------------------------


def test_espeak_speaks_a_word():
    engine = Espeak.get()
    y, sr = engine.synth("yes", "en-us+f3", rate=150, pitch=60, pitch_range=40)
    assert sr == 22050  # eSpeak NG's native rate
    assert y.dtype == np.int16
    loud = np.flatnonzero(np.abs(y) > 0.02 * np.abs(y).max())
    seconds = (loud[-1] - loud[0]) / sr
    assert 0.2 < seconds < 0.8  # one short word
    assert np.abs(y).max() > 3000  # not silence


def test_espeak_rate_changes_duration():
    engine = Espeak.get()
    slow, sr = engine.synth("seven", "en", rate=100)
    fast, _ = engine.synth("seven", "en", rate=300)
    assert len(slow) > 1.8 * len(fast)


def test_espeak_voices_and_variants_exist():
    engine = Espeak.get()
    for voice in VOICES:
        engine.synth("go", voice)
    for variant in VARIANTS:
        y, _ = engine.synth("go", f"en+{variant}")
        assert len(y) > 1000, variant


def test_espeak_unknown_voice():
    with pytest.raises(ParameterError, match=r"eSpeak NG has no voice 'xx-nowhere'"):
        Espeak.get().synth("yes", "xx-nowhere")


def test_speakers_are_distinct_voice_pairs():
    speakers = make_speakers(300, seed=0)
    pairs = [(s.voice, s.variant) for s in speakers]
    assert len(set(pairs)) == 300
    assert len({s.id for s in speakers}) == 300
    assert make_speakers(5, seed=0) == speakers[:5]
    assert make_speakers(5, seed=1) != speakers[:5]
    for s in speakers:
        assert 20 <= s.pitch <= 80 and 20 <= s.pitch_range <= 80 and 120 <= s.rate <= 210


# -- the generator -------------------------------------------------------------------------------


def test_synthesize_layout_and_speaker_disjoint_lists(tmp_path):
    root = tmp_path / "kws"
    summary = synthesize(root, **SMALL)
    assert summary["clips"] == 6 * (2 * 2 + 2)
    assert summary["speakers"] == {"train": 4, "validation": 1, "test": 1}
    files = wavs(root)
    assert len(files) == 36 + 4
    top = {p.name for p in root.iterdir()}
    assert top == {"yes", "no", "_background_noise_", SYNTH_MARKER, "validation_list.txt",
                   "testing_list.txt"} | ({"cat", "dog", "bird"} & top)  # fmt: skip
    assert len({"cat", "dog", "bird"} & top) >= 2
    for rel in files:
        if rel.startswith("_background_noise_/"):
            continue
        assert re.fullmatch(r"[a-z]+/[0-9a-f]{8}_nohash_[01]\.wav", rel), rel
        info = sf.info(str(root / rel))
        assert (info.samplerate, info.frames, info.channels, info.subtype) == (
            16000, 16000, 1, "PCM_16",
        )  # fmt: skip
    val = (root / "validation_list.txt").read_text().split()
    test = (root / "testing_list.txt").read_text().split()
    assert val and test and set(val).isdisjoint(test)
    assert all((root / n).is_file() for n in val + test)
    speaker = lambda n: n.split("/")[1].split("_nohash_")[0]  # noqa: E731
    train = [n for n in files if n not in val + test and not n.startswith("_")]
    assert {speaker(n) for n in val}.isdisjoint({speaker(n) for n in train})
    assert {speaker(n) for n in test}.isdisjoint({speaker(n) for n in train})
    assert len({speaker(n) for n in val}) == len({speaker(n) for n in test}) == 1
    marker = json.loads((root / SYNTH_MARKER).read_text())
    assert marker["complete"] is True
    assert sorted(marker["files"]) == sorted(files + ["testing_list.txt", "validation_list.txt"])
    assert Counter(s["split"] for s in marker["speakers"]) == {"train": 4, "validation": 1,
                                                               "test": 1}  # fmt: skip
    noise = sorted((root / "_background_noise_").iterdir())
    assert [p.name for p in noise] == sorted(
        ["white_noise.wav", "pink_noise.wav", "brown_noise.wav", "hum_and_hiss.wav"]
    )
    assert all(sf.info(str(p)).duration == 30.0 for p in noise)
    # each keyword: every speaker, twice; each speaker: 2 of the 3 unknown words, once
    assert len(list((root / "yes").iterdir())) == 12
    assert sum(len(list((root / w).iterdir())) for w in ("cat", "dog", "bird")) == 12


def test_clips_have_level_and_noise(tmp_path):
    root = tmp_path / "kws"
    synthesize(root, **SMALL)
    peaks = []
    for path in sorted((root / "yes").iterdir()):
        y, _ = sf.read(path)
        peak = np.abs(y).max()
        peaks.append(20 * np.log10(peak))
        quiet = np.sort(np.abs(y))[: y.size // 10]  # the quietest tenth: noise, never zeros
        assert quiet.mean() > 0
    assert min(peaks) >= -30.5 and max(peaks) <= -2.9
    assert max(peaks) - min(peaks) > 3  # levels vary


def test_synthesize_is_deterministic_for_any_worker_count(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    synthesize(a, workers=1, **SMALL)
    synthesize(b, workers=2, **SMALL)
    synthesize(c, workers=2, **{**SMALL, "seed": 2})
    assert_same_clips(a, b)
    wav_a = {k: v for k, v in snapshot(a).items() if k.endswith(".wav")}
    wav_c = {k: v for k, v in snapshot(c).items() if k.endswith(".wav")}
    assert set(wav_a.values()).isdisjoint(wav_c.values())


def test_synthesize_is_identical_in_fresh_processes(tmp_path):
    """The files depend on the settings alone: two fresh processes, one and two workers.

    (eSpeak NG seeds its noise -- breathy and whispering variants -- per process unless told,
    and keeps state between utterances: each speaker renders in a fresh fork with a seed.)
    """
    import subprocess
    import sys

    args = {**SMALL, "speakers": 3, "unknown_per_speaker": 0, "words": ["yes"]}
    code = (
        "import sys; from seqkit.speech.sources.synthetic import synthesize\n"
        "if __name__ == '__main__':\n"
        f"    synthesize(sys.argv[1], workers=int(sys.argv[2]), **{args!r})"
    )
    for name, workers in (("one", 1), ("two", 2)):
        subprocess.run([sys.executable, "-c", code, str(tmp_path / name), str(workers)], check=True)
    assert snapshot(tmp_path / "one") == snapshot(tmp_path / "two")
    assert len(wavs(tmp_path / "one")) == 3 * 2 + 4



def test_the_files_do_not_depend_on_what_drew_from_libc_rand_before(tmp_path):
    """eSpeak NG draws from libc's rand(), whose state is the whole process's (and a forked
    child's): a process whose libraries drew from it before -- a pytest worker that had run
    other test files -- wrote different clips (a CI run: up to 449 LSB) until each speaker's
    child reset it (``espeak.reset_libc_rand``)."""
    import subprocess
    import sys

    args = dict(words=["yes", "no"], unknown_words=["cat"], speakers=4, clips_per_speaker=1,
                unknown_per_speaker=1, validation_percent=25, test_percent=25)
    code = (
        "import ctypes, sys\n"
        "if sys.argv[2] == 'drawn':\n"
        "    libc = ctypes.CDLL(None); libc.srand(987654); [libc.rand() for _ in range(1000)]\n"
        "from seqkit.speech.sources.synthetic import synthesize\n"
        "if __name__ == '__main__':\n"
        f"    synthesize(sys.argv[1], workers=1, **{args!r})"
    )
    for name in ("fresh", "drawn"):
        subprocess.run([sys.executable, "-c", code, str(tmp_path / name), name], check=True)
    assert snapshot(tmp_path / "fresh") == snapshot(tmp_path / "drawn")


def test_synthesize_reuses_and_regenerates_safely(tmp_path):
    root = tmp_path / "kws"
    synthesize(root, **SMALL)
    old = 1_000_000_000
    for p in root.rglob("*"):
        os.utime(p, (old, old))
    before = snapshot(root)
    assert synthesize(root, **SMALL) is None  # same settings: nothing written
    assert snapshot(root) == before
    assert all(p.stat().st_mtime == old for p in root.rglob("*") if p.is_file())
    mine = root / "yes" / "my_take.wav"
    mine.write_bytes(b"mine")
    (root / "NOTES.txt").write_text("keep")
    synthesize(root, **{**SMALL, "words": ["up"], "seed": 3})
    assert mine.read_bytes() == b"mine" and (root / "NOTES.txt").read_text() == "keep"
    assert sorted(p.name for p in (root / "yes").iterdir()) == ["my_take.wav"]
    assert not (root / "no").exists()  # emptied by the regeneration: removed
    assert len(list((root / "up").iterdir())) == 12
    fresh = tmp_path / "fresh"
    synthesize(fresh, **{**SMALL, "words": ["up"], "seed": 3})
    assert {k: v for k, v in snapshot(root).items() if k.endswith(".wav") and "my_" not in k} == {
        k: v for k, v in snapshot(fresh).items() if k.endswith(".wav")
    }


def test_synthesize_redoes_an_interrupted_generation(tmp_path):
    root = tmp_path / "kws"
    synthesize(root, **SMALL)
    marker = json.loads((root / SYNTH_MARKER).read_text())
    marker["complete"] = False
    (root / SYNTH_MARKER).write_text(json.dumps(marker))
    victim = root / marker["files"][0]
    victim.unlink()  # as if killed half-way
    assert synthesize(root, **SMALL) is not None
    assert victim.is_file()
    assert json.loads((root / SYNTH_MARKER).read_text())["complete"] is True


def test_synthesize_refuses_a_foreign_folder(tmp_path):
    root = tmp_path / "mine"
    (root / "yes").mkdir(parents=True)
    (root / "yes" / "a.wav").write_bytes(b"data")
    before = snapshot(root)
    with pytest.raises(DataError, match=re.escape(f"'{root}' exists and was not generated by "
                                                  "seqkit")):  # fmt: skip
        synthesize(root, **SMALL)
    assert snapshot(root) == before
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match=r"is a file, not a folder"):
        synthesize(tmp_path / "file", **SMALL)


def test_synthesize_marker_cannot_delete_foreign_files(tmp_path):
    root = tmp_path / "kws"
    synthesize(root, **SMALL)
    outside = tmp_path / "precious.wav"
    outside.write_bytes(b"keep")
    marker = json.loads((root / SYNTH_MARKER).read_text())
    marker["files"] += ["../precious.wav", "/etc/passwd", "yes/../../precious.wav"]
    marker["complete"] = False
    (root / SYNTH_MARKER).write_text(json.dumps(marker))
    synthesize(root, **SMALL)
    assert outside.read_bytes() == b"keep"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"words": ["Yes"]}, "`words` must be lower-case words"),
        ({"words": [True]}, "`words` must be a list of words; received [True]"),
        ({"words": []}, "`words` must name at least one word"),
        ({"unknown_words": ["yes"]}, "`unknown_words` must not repeat `words`; yes are in both"),
        ({"speakers": 0}, "`speakers` must be a positive integer; received 0."),
        ({"snr_db": [30, 5]}, "`snr_db` must be [low, high] in dB"),
        ({"validation_percent": 50, "test_percent": 50}, "must be < 100; received 50 + 50."),
    ],
)
def test_synthetic_speech_bad_params(tmp_path, kwargs, message):
    with pytest.raises(ParameterError, match=re.escape(message)):
        SyntheticSpeech(str(tmp_path / "x"), **kwargs)
    assert not (tmp_path / "x").exists()  # checks write nothing


def test_synthetic_speech_source_reads_like_speech_commands(tmp_path):
    root = tmp_path / "kws"
    source = SyntheticSpeech(str(root), **SMALL, unknown_percent=25, silence_percent=25)
    assert not root.exists()  # building the source (recipe validation) generates nothing
    examples = source.examples()
    assert source.label_names() == [SILENCE_LABEL, UNKNOWN_LABEL, "yes", "no"]
    assert examples == SpeechCommands(str(root), words=["yes", "no"], unknown_percent=25,
                                      silence_percent=25, seed=1).examples()  # fmt: skip
    splits = {}
    for ex in examples:
        if ex.noise is None and "_background_noise_" not in ex.path:
            splits.setdefault(Path(ex.path).name.split("_nohash_")[0], set()).add(ex.split)
    assert all(len(s) == 1 for s in splits.values())  # a speaker's clips share one split
    counts = Counter(e.split for e in examples if e.label in ("yes", "no"))
    assert counts == {"train": 16, "validation": 4, "test": 4}
    silence = [e for e in examples if e.label == SILENCE_LABEL]
    assert silence and all("_background_noise_" in e.path for e in silence)


# -- seqkit data synth ---------------------------------------------------------------------------


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_cli_data_synth(tmp_path):
    out = tmp_path / "words"
    args = ["data", "synth", "--words", "yes,no", "--out", out, "--speakers", 4,
            "--unknown-words", "cat", "--unknown-per-speaker", 1, "--clips-per-speaker", 1]  # fmt: skip
    result = run(*args)
    assert result.exit_code == 0, result.output
    assert f"wrote 12 clips to {out}" in result.stdout
    assert "speakers: 2 train, 1 validation, 1 test" in result.stdout
    assert "words: ['yes', 'no']" in result.stdout
    assert len(wavs(out)) == 12 + 4
    again = run(*args)
    assert again.exit_code == 0
    assert "already holds this data (same settings); nothing written." in again.stdout


def test_cli_data_synth_refuses_foreign_folder(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.txt").write_text("do not touch")
    result = run("data", "synth", "--words", "yes", "--out", out)
    assert result.exit_code == 1
    assert "exists and was not generated by seqkit" in result.stderr
    assert [p.name for p in out.iterdir()] == ["thesis.txt"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--words", "Yes,no"], "`words` must be lower-case words"),
        (["--words", ","], "give at least one word"),
        (["--words", "yes", "--snr-db", "5"], "must be LOW,HIGH in dB"),
        (["--words", "yes", "--workers", "0"], "`--workers` must be a positive integer"),
    ],
)
def test_cli_data_synth_usage_errors(tmp_path, args, message):
    result = run("data", "synth", "--out", tmp_path / "o", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert not (tmp_path / "o").exists()


# -- size: estimate, progress, limits ------------------------------------------------------------


def test_cli_data_synth_refuses_more_speakers_than_the_maximum_without_yes(tmp_path):
    out = tmp_path / "huge"
    result = run("data", "synth", "--words", "yes,no", "--out", out, "--speakers", 100_000_000)
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [
        "estimate: 1,100,000,000 clips (100,000,000 speakers x 11), about 32.9 TiB on disk, "
        "about 255 days with 2 processes",
        "error: `--speakers` must be <= 5,000 without --yes (MAX_SPEAKERS); received 100000000.",
    ]
    assert not out.exists()


def test_cli_data_synth_yes_does_not_lift_the_hard_limits(tmp_path):
    out = tmp_path / "huge"
    args = ["data", "synth", "--words", "yes,no", "--out", out, "--yes"]
    result = run(*args, "--speakers", 100_000_000)
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines()[-1] == (
        "error: `--speakers` x clips per speaker must give <= 2,000,000 clips (MAX_CLIPS); "
        "received 100000000 x 11 = 1,100,000,000."
    )
    assert not out.exists()


def test_cli_data_synth_refuses_more_than_the_free_disk(tmp_path, monkeypatch):
    import shutil

    from seqkit.speech.sources import synthetic

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(synthetic.shutil, "disk_usage",
                        lambda p: usage._replace(free=100 * 2**20))  # fmt: skip
    out = tmp_path / "big"
    result = run("data", "synth", "--words", "yes,no", "--out", out, "--speakers", 400)
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines()[-1] == (
        f"error: `--speakers` 400 needs about 142 MiB on disk; {out} has 100 MiB free."
    )
    assert not out.exists()
    with pytest.raises(DataError, match=r"needs about 142 MiB on disk; .* has 100 MiB free"):
        synthesize(out, words=["yes", "no"], speakers=400)  # the library refuses as well
    assert not out.exists()


def test_cli_data_synth_prints_its_estimate_and_the_help_its_maximum(tmp_path):
    from seqkit.speech.sources.synthetic import MAX_SPEAKERS

    out = tmp_path / "words"
    result = run("data", "synth", "--words", "yes", "--out", out, "--speakers", 3,
                 "--unknown-words", "", "--clips-per-speaker", 1, "--workers", 1)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0] == (
        "estimate: 3 clips (3 speakers x 1), about 3.76 MiB on disk, about 1 s with 1 process"
    )
    quiet = run("-q", "data", "synth", "--words", "yes", "--out", out, "--speakers", 3,
                "--unknown-words", "", "--clips-per-speaker", 1)  # fmt: skip
    assert quiet.exit_code == 0 and quiet.stderr == ""
    assert f"more than {MAX_SPEAKERS:,} speakers" in run("data", "synth", "--help").output


def test_synthetic_speech_recipe_refuses_more_than_max_clips(tmp_path):
    with pytest.raises(ParameterError) as err:
        SyntheticSpeech(str(tmp_path / "x"), speakers=100_000_000)
    assert str(err.value) == (
        "`speakers` x clips per speaker must give <= 2,000,000 clips (MAX_CLIPS); received "
        "100000000 x 35 = 3,500,000,000."
    )


def test_generation_reports_progress_and_is_unchanged_by_it(tmp_path):
    from seqkit import progress

    calls = []

    class Recorder(progress.Reporter):
        def counter(self, label, unit="it"):
            calls.append((label, unit))
            return lambda done, total: calls.append((done, total))

    with progress.using(Recorder()):
        synthesize(tmp_path / "a", workers=2, **SMALL)
    synthesize(tmp_path / "b", workers=2, **SMALL)
    assert_same_clips(tmp_path / "a", tmp_path / "b")
    assert calls[0] == ("synthesizing speech", "clip")
    per_speaker = 2 * 2 + 2
    assert calls[1:] == [(per_speaker * k, 6 * per_speaker) for k in range(1, 7)]
