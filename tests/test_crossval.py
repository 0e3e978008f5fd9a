"""Speaker-grouped cross-validation (issue 14): folds hold out whole speakers; `seqkit crossval`
trains one process per fold, keeps completed folds, and writes the table."""

import csv
import json

import pytest
from click.testing import CliRunner
from conftest import tiny_recipe, write_recipe

from seqkit.cli import cli
from seqkit.data import Example, fold_split, speaker_of
from seqkit.errors import DataError


def examples(speakers=7, clips=3):
    return [Example(f"w/s{s}_nohash_{i}.wav", "w", "train") for s in range(speakers) for i in range(clips)]  # fmt: skip


def test_folds_hold_out_whole_speakers_and_cover_every_speaker_once():
    items = examples()
    tested = []
    for fold in range(3):
        out = fold_split(items, {"k": 3, "fold": fold, "seed": 0})
        by_split = {}
        for ex in out:
            by_split.setdefault(ex.split, set()).add(speaker_of(ex))
        assert set(by_split) == {"train", "validation", "test"}
        assert not (by_split["test"] & by_split["train"]) and not (by_split["test"] & by_split["validation"])
        assert not (by_split["train"] & by_split["validation"])
        tested += sorted(by_split["test"])
    assert sorted(tested) == sorted({f"s{s}" for s in range(7)})  # each speaker tested once
    assert [len(set(t)) for t in (tested,)] == [7]
    assert fold_split(items, {"k": 3, "fold": 1, "seed": 0}) == fold_split(items, {"k": 3, "fold": 1, "seed": 0})
    assert fold_split(items, {"k": 3, "fold": 1, "seed": 0}) != fold_split(items, {"k": 3, "fold": 1, "seed": 5})


def test_folds_refuse_clips_without_speakers_and_too_few_speakers():
    with pytest.raises(DataError, match=r"1 of 22 clips have no speaker \(e.g. 'w/take.wav'\)"):
        fold_split(examples() + [Example("w/take.wav", "w", "train")], {"k": 2, "fold": 0})
    with pytest.raises(DataError, match="7 speakers cannot make 8 folds; use --folds 7 or fewer"):
        fold_split(examples(), {"k": 8, "fold": 0})


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def recipe(tmp_path):
    doc = tiny_recipe(tmp_path / "data", epochs=1)
    return write_recipe(tmp_path / "tiny.yaml", doc)


def test_two_fold_crossval_end_to_end_and_continued(tmp_path, recipe):
    out = tmp_path / "cv"
    result = invoke("crossval", recipe, "--folds", 2, "--out", out, "--yes")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((out / "crossval.csv").open()))
    assert [int(r["fold"]) for r in rows] == [0, 1]
    held = [set(r["speakers"].split()) for r in rows]
    assert not (held[0] & held[1]) and len(held[0] | held[1]) == 10  # tiny_recipe: 10 speakers
    summary = json.loads((out / "crossval.json").read_text())
    accs = [float(r["test_accuracy"]) for r in rows]
    assert summary["test_accuracy_mean"] == pytest.approx(sum(accs) / 2)
    for r in rows:  # each fold's run folder: its test clips are the held-out speakers' only
        metrics = json.loads((out / f"fold-{r['fold']}" / "metrics.json").read_text())
        assert metrics["test"]["accuracy"] == pytest.approx(float(r["test_accuracy"]))
        assert set(metrics["test"]["speakers"]["per_speaker"]) == set(r["speakers"].split())
    assert "| **mean +- std** |" in result.stdout
    again = invoke("crossval", recipe, "--folds", 2, "--out", out, "--yes")
    assert again.exit_code == 0, again.output
    assert again.stderr.count("completed earlier, kept") == 2
    assert json.loads((out / "crossval.json").read_text()) == summary


def test_crossval_refuses_impossible_folds_and_budgets_before_training(tmp_path, recipe):
    result = invoke("crossval", recipe, "--folds", 11, "--out", tmp_path / "a")
    assert result.exit_code == 2
    assert "--folds 11: the data has 10 speakers; use 2 to 10 folds" in result.output
    result = invoke("crossval", recipe, "--folds", "some", "--out", tmp_path / "b")
    assert result.exit_code == 2 and "--folds must be a number or 'all'; received 'some'" in result.output
    result = invoke("crossval", recipe, "--folds", 2, "--out", tmp_path / "c", "--budget-minutes", 0.001)
    assert result.exit_code == 2, result.output
    assert "above --budget-minutes 0.001" in result.output
    assert not (tmp_path / "c" / "fold-0").exists()
