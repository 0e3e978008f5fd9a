"""Feature extraction (seqkit.extract): unreadable files skipped and named, parallel workers give
the same features in the same order, progress reporting, worker settings.

Audio is written into ``tmp_path`` by the tests themselves.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import threading

import numpy as np
import pytest
import soundfile as sf

from seqkit import progress
from seqkit.data import Example
from seqkit.errors import DataError, ParameterError
from seqkit.extract import default_progress, default_workers, extract_features, iter_features
from seqkit.features import Deltas, FeaturePipeline, FixLength, Load, MelSpectrogram, PowerToDb


def write_wav(path, seconds: float = 0.1, sr: int = 16000, seed: int = 0):
    path.parent.mkdir(parents=True, exist_ok=True)
    y = 0.1 * np.random.default_rng(seed).normal(size=int(sr * seconds))
    sf.write(path, y.astype(np.float32), sr, subtype="PCM_16")
    return path


@pytest.fixture
def seqkit_log(caplog):
    """Capture the "seqkit" logger even if a CLI test turned its propagation off."""
    logger = logging.getLogger("seqkit")
    logger.addHandler(caplog.handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    yield caplog
    logger.removeHandler(caplog.handler)
    logger.setLevel(old_level)


def small_pipeline():
    return FeaturePipeline(
        [
            Load(16000),
            FixLength(0.25),
            MelSpectrogram(n_fft=400, hop_length=160, n_mels=20),
            PowerToDb(),
        ]
    )


def warnings_of(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


# -- skipping (moved from tests/test_data.py) ----------------------------------------------------


def test_extract_features_skips_unreadable(tmp_path, seqkit_log):
    good = [write_wav(tmp_path / f"g{i}.wav", seed=i) for i in range(3)]
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    examples = [
        Example(str(good[0]), "a", "train"),
        Example(str(bad), "b", "train"),
        Example(str(good[1]), "a", "test"),
        Example(str(good[2]), "b", "validation"),
    ]
    seen = []
    kept, feats, skipped = extract_features(
        examples, small_pipeline(), progress=lambda i, n: seen.append((i, n))
    )
    assert kept == [examples[0], examples[2], examples[3]]
    assert skipped == [str(bad)]
    assert len(feats) == 3
    assert all(f.shape == (26, 20) for f in feats)
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    warnings = warnings_of(seqkit_log)
    assert any(str(bad) in w and "cannot be read as audio" in w for w in warnings), warnings
    assert any("Skipped 1 of 4 files" in w for w in warnings), warnings
    assert not any(str(good[0]) in w for w in warnings)


def test_extract_features_nothing_left(tmp_path, seqkit_log):
    bad = []
    for i in range(2):
        p = tmp_path / f"bad{i}.wav"
        p.write_bytes(os.urandom(64))
        bad.append(Example(str(p), "a", "train"))
    with pytest.raises(DataError, match=r"No usable audio: all 2 files were skipped"):
        extract_features(bad, small_pipeline())
    assert any("Skipped 2 of 2 files" in w for w in warnings_of(seqkit_log))


def test_extract_features_no_warning_when_all_read(tmp_path, seqkit_log):
    examples = [
        Example(str(write_wav(tmp_path / f"g{i}.wav", seed=i)), "a", "train") for i in range(2)
    ]
    kept, feats, skipped = extract_features(examples, small_pipeline())
    assert kept == examples and len(feats) == 2 and skipped == []
    assert not [r for r in seqkit_log.records if r.levelno >= logging.WARNING]


def test_a_clip_a_step_cannot_handle_is_skipped_not_fatal(tmp_path, seqkit_log):
    short = write_wav(tmp_path / "a" / "short_nohash_0.wav", seconds=0.02)
    long = write_wav(tmp_path / "a" / "long_nohash_0.wav", seconds=0.5)
    pipeline = FeaturePipeline(
        [
            Load(sample_rate=16000),
            MelSpectrogram(n_fft=256, hop_length=128),
            PowerToDb(),
            Deltas(width=9),
        ]
    )
    examples = [Example(str(short), "a", "train"), Example(str(long), "a", "train")]
    kept, feats, skipped = extract_features(examples, pipeline)
    assert [e.path for e in kept] == [str(long)]
    assert skipped == [str(short)]
    assert f"Skipping {short}: `width` must be <= the number of frames" in seqkit_log.text


def test_no_examples_is_a_data_error():
    with pytest.raises(DataError, match="listed no files"):
        extract_features([], small_pipeline())


# -- parallel workers ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    examples = []
    for i in range(14):
        if i == 5:
            bad = root / "bad.wav"
            bad.write_bytes(b"not audio at all")
            examples.append(Example(str(bad), "b", "train"))
        # clips of different lengths and rates, so that the order of results matters
        sr = 16000 if i % 2 else 22050
        path = write_wav(root / f"c{i}.wav", seconds=0.1 + 0.02 * i, sr=sr, seed=i)
        examples.append(Example(str(path), "a", "train"))
    return examples


def test_parallel_workers_give_the_same_features_in_order(corpus, seqkit_log, monkeypatch):
    import seqkit.extract as extract

    pools, real_pool = [], extract._pool
    monkeypatch.setattr(extract, "_pool", lambda *a: pools.append(a) or real_pool(*a))
    pipeline = small_pipeline()
    serial = list(iter_features(corpus, pipeline, workers=1))
    assert pools == []
    seen = []
    parallel = list(
        iter_features(corpus, pipeline, workers=2, progress=lambda i, n: seen.append((i, n)))
    )
    assert [i for i, _, _ in parallel] == list(range(len(corpus)))
    assert seen[-1] == (len(corpus), len(corpus)) and len(seen) == len(corpus)
    for (i, a, wa), (j, b, wb) in zip(serial, parallel):
        assert i == j and wa == wb
        if a is None:
            assert b is None and "bad.wav" in wa and "cannot be read as audio" in wa
        else:
            np.testing.assert_array_equal(a, b)
    assert len(pools) == 1 and pools[0][0] == 2  # two worker processes did the work
    assert "continuing in one process" not in seqkit_log.text


def test_an_unpicklable_pipeline_runs_in_process(corpus, seqkit_log):
    pipeline = small_pipeline()
    pipeline.lock = threading.Lock()  # cannot be pickled
    out = list(iter_features(corpus[:3], pipeline, workers=2))
    assert [x.shape for _, x, _ in out] == [(26, 20)] * 3
    assert "cannot be pickled; extracting in one process" in seqkit_log.text


def test_small_jobs_stay_in_process_unless_workers_are_given(corpus, monkeypatch):
    import seqkit.extract as extract

    def no_pool(*a, **k):
        raise AssertionError("a pool was started")

    monkeypatch.setattr(extract, "_pool", no_pool)
    monkeypatch.setenv("SEQKIT_WORKERS", "2")
    assert len(list(iter_features(corpus[:4], small_pipeline()))) == 4  # seconds from done
    with pytest.raises(AssertionError, match="a pool was started"):
        list(iter_features(corpus[:4], small_pipeline(), workers=2))


def test_long_jobs_time_a_few_examples_then_start_workers(corpus, monkeypatch):
    import seqkit.extract as extract

    class Started(Exception):
        pass

    def fake_pool(workers, pipeline):
        raise Started(workers)

    monkeypatch.setattr(extract, "_pool", fake_pool)
    monkeypatch.setattr(extract, "PROBE", 3)
    monkeypatch.setenv("SEQKIT_WORKERS", "2")
    monkeypatch.setattr(extract, "PARALLEL_SECONDS", 1e9)  # the rest is quick: stay here
    assert [i for i, _, _ in iter_features(corpus, small_pipeline())] == list(range(15))
    monkeypatch.setattr(extract, "PARALLEL_SECONDS", 0.0)  # the rest is slow: use workers
    seen = []
    with pytest.raises(Started, match="2"):
        for i, _, _ in iter_features(corpus, small_pipeline()):
            seen.append(i)
    assert seen == [0, 1, 2]  # the timed examples, then the pool for the rest


def test_workers_from_the_environment(monkeypatch):
    monkeypatch.setenv("SEQKIT_WORKERS", "3")
    assert default_workers() == 3
    monkeypatch.setenv("SEQKIT_WORKERS", "zero")
    with pytest.raises(ParameterError, match=r"\$SEQKIT_WORKERS must be a positive integer; "):
        default_workers()
    monkeypatch.delenv("SEQKIT_WORKERS")
    assert default_workers() == len(os.sched_getaffinity(0))


# -- progress ------------------------------------------------------------------------------------


def test_default_progress_is_the_installed_reporters_counter(monkeypatch, tmp_path):
    """The library draws nothing itself, even on a terminal: it reports to the installed
    reporter (the command line's bars: tests/test_cli.py)."""

    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr("sys.stderr", Tty())
    assert default_progress() is None  # nothing installed: nothing drawn, nothing to call
    seen = []

    class Recorder(progress.Reporter):
        def counter(self, label, unit="it"):
            return lambda done, total: seen.append((label, done, total))

    examples = [
        Example(str(write_wav(tmp_path / f"p{i}.wav", seed=i)), "a", "train") for i in (1, 2)
    ]
    with progress.using(Recorder()):
        extract_features(examples, small_pipeline(), progress=default_progress(), workers=1)
    assert seen == [("features", 1, 2), ("features", 2, 2)]
    assert default_progress() is None  # the previous reporter back
    assert sys.stderr.getvalue() == ""


def test_blas_runs_single_threaded_while_extracting(tmp_path):
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def blas_threads():
        return {
            i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"
        }

    seen = []

    class Spy(FeaturePipeline):
        def __call__(self, example):
            seen.append(blas_threads())
            return super().__call__(example)

    examples = [
        Example(str(write_wav(tmp_path / f"b{i}.wav", seed=i)), "a", "train") for i in (1, 2)
    ]
    pipe = Spy(small_pipeline().steps)
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        assert blas_threads() == {2}
        assert len(list(iter_features(examples, pipe, workers=1))) == 2
        assert seen == [{1}, {1}]  # one thread while features were computed
        assert blas_threads() == {2}  # and the caller's setting back afterwards
