"""The on-disk feature cache (seqkit.cache): computed once, reused, memory-mapped, invalidated by
content and settings, checksummed, never inside the data, and the kws task's use of it.

Every test gives the cache its own folder in ``tmp_path`` (``root=`` or ``$SEQKIT_CACHE``).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import tiny_recipe

from seqkit.cache import FORMAT, FeatureCache, FileIndex, pipeline_id
from seqkit.data import Example
from seqkit.errors import DataError
from seqkit.features import FeaturePipeline, FixLength, Load, MelSpectrogram, PowerToDb


def write_wav(path, seconds=0.25, sr=16000, seed=0):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    y = 0.1 * np.random.default_rng(seed).normal(size=int(sr * seconds))
    sf.write(path, y.astype(np.float32), sr, subtype="PCM_16")
    return path


def set_old_mtime(path, seconds_ago=60):
    t = time.time() - seconds_ago
    os.utime(path, (t, t))


class Counting(FeaturePipeline):
    """A pipeline that counts the examples it computes (in this process)."""

    calls = 0

    def __call__(self, example):
        Counting.calls += 1
        return super().__call__(example)


def pipeline(n_mels=20, fix=True):
    steps = [Load(16000)] + ([FixLength(0.25)] if fix else [])
    steps += [MelSpectrogram(n_fft=256, hop_length=128, n_mels=n_mels), PowerToDb()]
    return Counting(steps)


@pytest.fixture
def seqkit_log(caplog):
    logger = logging.getLogger("seqkit")
    logger.addHandler(caplog.handler)
    old = logger.level
    logger.setLevel(logging.INFO)
    yield caplog
    logger.removeHandler(caplog.handler)
    logger.setLevel(old)


@pytest.fixture
def clips(tmp_path):
    paths = [write_wav(tmp_path / "data" / f"c{i}.wav", seed=i) for i in range(5)]
    for p in paths:
        set_old_mtime(p)
    return [Example(str(p), "a", "train") for p in paths]


def cache_for(tmp_path, pipe=None, identity="src"):
    return FeatureCache(pipe or pipeline(), root=tmp_path / "cache", identity=identity, workers=1)


def lists(tmp_path):
    return sorted((tmp_path / "cache").rglob("*.npy"))


def test_features_are_computed_once_then_read_memory_mapped(tmp_path, clips):
    Counting.calls = 0
    kept, rows, skipped = cache_for(tmp_path).extract(clips)
    assert Counting.calls == 5 and kept == clips and skipped == []
    direct = np.stack([pipeline()(ex) for ex in clips])
    x = rows.array()
    assert isinstance(x, np.memmap) and not x.flags.writeable
    np.testing.assert_array_equal(x, direct)
    Counting.calls = 0
    cache = cache_for(tmp_path)  # a later run: a new cache object, same settings
    kept2, rows2, _ = cache.extract(clips)
    assert Counting.calls == 0 and cache.last_hit and kept2 == clips
    np.testing.assert_array_equal(rows2.array(), direct)
    assert len(lists(tmp_path)) == 1
    assert str(tmp_path / "data") not in str(lists(tmp_path)[0])


def test_the_cache_folder_comes_from_seqkit_cache(tmp_path, clips, monkeypatch):
    monkeypatch.setenv("SEQKIT_CACHE", str(tmp_path / "env-cache"))
    cache = FeatureCache(pipeline(), identity="x", workers=1)
    cache.extract(clips)
    assert cache.last_file.is_relative_to(tmp_path / "env-cache" / FORMAT / "features")


def test_a_changed_file_is_recomputed_alone_and_the_old_list_replaced(tmp_path, clips):
    cache_for(tmp_path).extract(clips)
    old_list = lists(tmp_path)
    write_wav(clips[2].path, seed=99)  # new content (and a new mtime)
    Counting.calls = 0
    _, rows, _ = cache_for(tmp_path).extract(clips)
    assert Counting.calls == 1  # the other four rows were copied from the previous list
    np.testing.assert_array_equal(rows[2], pipeline()(clips[2]))
    np.testing.assert_array_equal(rows[0], pipeline()(clips[0]))
    assert len(lists(tmp_path)) == 1 and lists(tmp_path) != old_list


def test_a_touched_file_with_the_same_content_is_not_recomputed(tmp_path, clips):
    cache_for(tmp_path).extract(clips)
    os.utime(clips[1].path)  # new mtime, same bytes: hashed again, same key
    Counting.calls = 0
    cache = cache_for(tmp_path)
    cache.extract(clips)
    assert Counting.calls == 0 and cache.last_hit


def test_a_renamed_copy_reuses_the_rows(tmp_path, clips):
    cache_for(tmp_path).extract(clips)
    copy = tmp_path / "data" / "copy.wav"
    copy.write_bytes(open(clips[0].path, "rb").read())
    Counting.calls = 0
    _, rows, _ = cache_for(tmp_path).extract([*clips, Example(str(copy), "a", "train")])
    assert Counting.calls == 0  # same content: the row is copied
    np.testing.assert_array_equal(rows[5], rows[0])


def test_other_settings_other_folder(tmp_path, clips):
    assert pipeline_id(pipeline()) == pipeline_id(pipeline())
    assert pipeline_id(pipeline()) != pipeline_id(pipeline(n_mels=24))
    cache_for(tmp_path).extract(clips)
    Counting.calls = 0
    _, rows, _ = cache_for(tmp_path, pipeline(n_mels=24)).extract(clips)
    assert Counting.calls == 5 and rows.array().shape == (5, 32, 24)
    assert len({p.parent for p in lists(tmp_path)}) == 2


def test_a_damaged_list_is_detected_and_rebuilt(tmp_path, clips, seqkit_log):
    _, rows, _ = cache_for(tmp_path).extract(clips)
    want = np.array(rows.array())
    path = lists(tmp_path)[0]
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # one flipped byte in the last row
    path.write_bytes(bytes(data))
    Counting.calls = 0
    cache = cache_for(tmp_path)
    _, rows, _ = cache.extract(clips)
    assert "is damaged (data checksum mismatch); it is deleted and rebuilt" in seqkit_log.text
    assert Counting.calls == 5 and not cache.last_hit
    np.testing.assert_array_equal(rows.array(), want)


@pytest.mark.parametrize(
    "damage",
    [
        lambda npy: npy.with_suffix(".json").write_text("{not json"),
        lambda npy: npy.write_bytes(npy.read_bytes()[:-100]),
        lambda npy: npy.write_bytes(npy.read_bytes().replace(b"(5, 32, 20)", b"(4, 40, 20)")),
    ],
    ids=["meta", "truncated", "header"],
)
def test_every_kind_of_damage_is_caught(tmp_path, clips, damage, seqkit_log):
    cache_for(tmp_path).extract(clips)
    damage(lists(tmp_path)[0])
    Counting.calls = 0
    _, rows, _ = cache_for(tmp_path).extract(clips)
    assert Counting.calls == 5 and "is damaged" in seqkit_log.text
    np.testing.assert_array_equal(rows[4], pipeline()(clips[4]))


def test_skipped_files_are_named_again_on_a_cache_hit(tmp_path, clips, seqkit_log):
    bad = tmp_path / "data" / "bad.wav"
    bad.write_bytes(b"not audio")
    set_old_mtime(bad)
    examples = [clips[0], Example(str(bad), "b", "train"), clips[1]]
    kept, rows, skipped = cache_for(tmp_path).extract(examples)
    assert kept == [clips[0], clips[1]] and skipped == [str(bad)] and len(rows) == 2
    seqkit_log.clear()
    cache = cache_for(tmp_path)
    kept, rows, skipped = cache.extract(examples)
    assert cache.last_hit and kept == [clips[0], clips[1]] and skipped == [str(bad)]
    assert f"Skipping {bad}: cannot be read as audio" in seqkit_log.text
    assert "Skipped 1 of 3 files" in seqkit_log.text


def test_clips_of_different_lengths_are_stored_ragged(tmp_path):
    exs = []
    for i, seconds in enumerate((0.2, 0.3, 0.25)):
        p = write_wav(tmp_path / "data" / f"r{i}.wav", seconds=seconds, seed=i)
        exs.append(Example(str(p), "a", "train"))
    _, rows, _ = cache_for(tmp_path, pipeline(fix=False)).extract(exs)
    assert not rows.uniform
    assert [rows[i].shape for i in range(3)] == [(26, 20), (38, 20), (32, 20)]
    np.testing.assert_array_equal(rows[1], pipeline(fix=False)(exs[1]))
    with pytest.raises(ValueError, match="different shapes"):
        rows.array()


def test_rows_pickle_without_their_data(tmp_path, clips):
    _, rows, _ = cache_for(tmp_path).extract(clips)
    part = rows.slice(1, 4)
    blob = pickle.dumps(part)
    assert len(blob) < 1000  # the path and shape, not 3 x 32 x 20 floats
    back = pickle.loads(blob)
    np.testing.assert_array_equal(back.array(), rows.array()[1:4])
    np.testing.assert_array_equal(back[np.array([2, 0])], rows.array()[[3, 1]])


def test_a_cache_inside_the_data_folder_is_refused(tmp_path, clips):
    with pytest.raises(DataError, match=r"is inside the data folder .*never writes into a dataset"):
        FeatureCache(pipeline(), root=tmp_path / "data" / "cache", data_root=tmp_path / "data")
    assert not (tmp_path / "data" / "cache").exists()


def test_an_unusable_cache_folder_falls_back_to_memory(tmp_path, clips, seqkit_log):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder would go")
    cache = FeatureCache(pipeline(), root=blocker, identity="x", workers=1)
    kept, feats, skipped = cache.extract(clips)
    assert isinstance(feats, list) and len(feats) == 5
    assert "Feature cache unavailable" in seqkit_log.text


def test_a_damaged_file_index_is_replaced(tmp_path, clips, seqkit_log):
    db = tmp_path / "index.sqlite"
    db.write_bytes(b"garbage" * 100)
    digests = FileIndex(db).digests([ex.path for ex in clips])
    assert "is damaged" in seqkit_log.text and all(len(d) == 40 for d in digests)
    assert FileIndex(db).digests([ex.path for ex in clips]) == digests


def test_recent_files_are_hashed_every_time(tmp_path):
    fresh = write_wav(tmp_path / "fresh.wav")  # mtime now: within the racy window
    index = FileIndex(tmp_path / "i.sqlite")
    index.digests([str(fresh)])
    import sqlite3

    with sqlite3.connect(tmp_path / "i.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM files").fetchone()[0] == 0
    set_old_mtime(fresh)
    index.digests([str(fresh)])
    with sqlite3.connect(tmp_path / "i.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM files").fetchone()[0] == 1


# -- the kws task --------------------------------------------------------------------------------


def test_kws_splits_are_memory_mapped_and_equal_to_in_memory_features(tmp_path, monkeypatch):
    from seqkit.build import load_data
    from seqkit.recipe import validate_dict
    from seqkit.speech.task import KeywordSpotting

    monkeypatch.setenv("SEQKIT_CACHE", str(tmp_path / "cache"))
    doc = tiny_recipe(tmp_path / "data")
    on = load_data(validate_dict(doc), task=KeywordSpotting())
    doc["data"]["cache"] = False
    before = list((tmp_path / "cache").rglob("*"))
    off = load_data(validate_dict(doc), task=KeywordSpotting())
    assert list((tmp_path / "cache").rglob("*")) == before  # cache: false writes nothing
    assert off.train_input is None and type(on.train_input).__name__ == "TrainBatches"
    for split in ("train", "validation", "test"):
        assert isinstance(on.splits[split].x, np.memmap)
        assert not isinstance(off.splits[split].x, np.memmap)
        np.testing.assert_array_equal(on.splits[split].x, off.splits[split].x)
        np.testing.assert_array_equal(on.splits[split].y, off.splits[split].y)
        assert on.splits[split].items == off.splits[split].items
    assert json.dumps(on.info)  # data.json stays JSON
    assert on.info["feature_cache"].startswith(str(tmp_path / "cache"))
    # The batches of an epoch are the trainer's order for arrays: permutation(seed, epoch).
    on.train_input.set_epoch(3)
    x, y = on.train_input[0]
    order = np.random.default_rng([doc["seed"], 3]).permutation(len(on.splits["train"]))
    np.testing.assert_array_equal(x, off.splits["train"].x[order[:8]])
    np.testing.assert_array_equal(y, off.splits["train"].y[order[:8]])


def test_lists_unused_for_30_days_are_pruned(tmp_path, clips):
    cache_for(tmp_path, identity="old").extract(clips)
    (old,) = lists(tmp_path)
    month_ago = time.time() - 31 * 86400
    os.utime(old.with_suffix(".json"), (month_ago, month_ago))
    cache_for(tmp_path, identity="other source").extract(clips[:2])
    assert old not in lists(tmp_path) and len(lists(tmp_path)) == 1
    cache_for(tmp_path, identity="recent").extract(clips[:3])  # a used list stays
    assert len(lists(tmp_path)) == 2
