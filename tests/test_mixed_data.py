"""Mixed data (issue 14, item 4): a recipe's `data.sources` -- several sources, each with its
label map and the splits it feeds -- as one registered `mixed` source; and the manifest's
optional `speaker` column (item 2)."""

import csv
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml
from click.testing import CliRunner
from conftest import tiny_recipe, write_recipe

from seqkit.build import build, make_source, settings
from seqkit.cli import cli
from seqkit.data import Example, fold_split, speaker_of, which_set
from seqkit.errors import DataError, RecipeError
from seqkit.recipe import load_recipe, validate_dict
from seqkit.registry import SOURCES
from seqkit.speech.sources.tones import synth_clip

CLASSES = ["ai", "ia", "u", "noise"]


def make_real(root, speakers=10, clips=2, classes=CLASSES, seed=7):
    """A folder of 'real recordings' (tone clips of pseudo-speakers, no seqkit marker):
    root/<label>/realNN_nohash_<i>.wav."""
    rng = np.random.default_rng(seed)
    for s in range(speakers):
        f0, scale = rng.uniform(90, 300), rng.uniform(0.85, 1.2)
        for c in classes:
            (Path(root) / c).mkdir(parents=True, exist_ok=True)
            for i in range(clips):
                y = synth_clip(c, rng, 16000, 0.5, f0, scale)
                sf.write(Path(root) / c / f"real{s:02d}_nohash_{i}.wav", y, 16000, subtype="PCM_16")
    return Path(root)


def synth_step(root, **extra):
    return {"type": "synthetic_tones", "root": str(root), "classes": CLASSES, "speakers": 6,
            "clips_per_speaker": 1, "seconds": 0.5, "file_sample_rate": 16000, **extra}  # fmt: skip


def real_step(root, **extra):
    return {"type": "folder", "root": str(root), "validation_percent": 30, "test_percent": 30, **extra}


def mixed_doc(tmp_path, *sources, epochs=1):
    doc = tiny_recipe(tmp_path / "unused", epochs=epochs)
    doc["name"] = "mixed"
    doc["data"] = {"sources": list(sources)}
    return doc


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    return make_real(tmp_path_factory.mktemp("mix") / "real")


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    return tmp_path_factory.mktemp("mixsynth") / "synth"


def examples_of(doc):
    source = make_source(validate_dict(doc, build_layers=False))
    return source, source.examples()


# -- split assignment ------------------------------------------------------------------------------


def test_synthetic_sources_only_train_and_real_ones_feed_their_own_splits(tmp_path, real, synth_root):
    doc = mixed_doc(tmp_path, real_step(real), synth_step(synth_root))
    recipe = validate_dict(doc, build_layers=False)
    assert recipe.data.source.type == "mixed"
    source, examples = examples_of(doc)
    assert source.label_names() == ["ai", "ia", "noise", "u"]
    by = Counter((ex.speaker.split(":")[0], ex.split, ex.keep_split) for ex in examples)
    # the folder's own hash rule on its 10 speakers; all 24 synthetic clips in training
    assert by == {("folder", "train", False): 40, ("folder", "validation", False): 16,
                  ("folder", "test", False): 24, ("synthetic_tones", "train", True): 24}  # fmt: skip
    for ex in examples:
        if ex.speaker.startswith("folder:"):
            assert ex.split == which_set(Path(ex.path).name, 30, 30)
    # the sub-source's own splits: validation and test speakers of the synthetic data exist ...
    own = Counter(ex.split for ex in SOURCES.get("synthetic_tones")(**{
        k: v for k, v in synth_step(synth_root).items() if k != "type"}).examples())  # fmt: skip
    assert set(own) == {"train", "validation", "test"}  # ... and the mix trained on all of them


def test_explicit_splits_keep_listed_splits_and_send_the_rest_to_the_first(tmp_path, real, synth_root):
    doc = mixed_doc(tmp_path, real_step(real, splits=["test"]),
                    synth_step(synth_root, splits=["train", "validation"]))  # fmt: skip
    source, examples = examples_of(doc)
    synth_own = {ex.path: ex.split for ex in SOURCES.get("synthetic_tones")(**{
        k: v for k, v in synth_step(synth_root).items() if k != "type"}).examples()}  # fmt: skip
    for ex in examples:
        if ex.speaker.startswith("folder:"):
            assert ex.split == "test" and ex.keep_split
        else:
            expected = synth_own[ex.path] if synth_own[ex.path] == "validation" else "train"
            assert ex.split == expected and ex.keep_split
    assert Counter(ex.split for ex in examples) == {"test": 80, "train": 20, "validation": 4}


# -- label maps ----------------------------------------------------------------------------------------


def test_label_maps_star_null_and_the_special_labels_first(tmp_path, real, synth_root):
    doc = mixed_doc(
        tmp_path,
        real_step(real, label_map={"noise": "_silence_"}),
        synth_step(synth_root, label_map={"*": "_unknown_", "ai": "ai", "noise": None}),
    )
    source, examples = examples_of(doc)
    assert source.label_names() == ["_silence_", "_unknown_", "ai", "ia", "u"]
    synth = Counter(ex.label for ex in examples if ex.speaker.startswith("synthetic_tones:"))
    assert synth == {"ai": 6, "_unknown_": 12}  # ia and u -> _unknown_, noise left out
    realc = Counter(ex.label for ex in examples if ex.speaker.startswith("folder:"))
    assert realc == {"_silence_": 20, "ai": 20, "ia": 20, "u": 20}


def test_a_label_map_key_the_source_does_not_have_is_refused_with_its_labels(tmp_path, real, synth_root):
    doc = mixed_doc(tmp_path, real_step(real, label_map={"aii": "ai", "*": "x"}),
                    synth_step(synth_root, label_map={"zzz": "ai"}))  # fmt: skip
    source = make_source(validate_dict(doc, build_layers=False))
    with pytest.raises(RecipeError) as err:
        source.examples()
    assert err.value.problems == [
        ("data.sources[0].label_map",
         "'aii' is not a label of this folder source; did you mean 'ai'? Its labels: ai, ia, noise, u."),
        ("data.sources[1].label_map",
         "'zzz' is not a label of this synthetic_tones source. Its labels: ai, ia, u, noise."),
    ]  # fmt: skip
    doc = mixed_doc(tmp_path, real_step(real), synth_step(synth_root, label_map={"*": None}))
    with pytest.raises(RecipeError, match=r"data.sources\[1\].label_map: leaves out every label of "
                       "this source, so it feeds no split"):  # fmt: skip
        make_source(validate_dict(doc, build_layers=False)).examples()


# -- speakers ------------------------------------------------------------------------------------------


def test_two_sources_speakers_never_merge(tmp_path, real):
    twin = tmp_path / "twin"
    shutil.copytree(real, twin)  # the same file names, so the same speaker ids
    doc = mixed_doc(tmp_path, real_step(real), real_step(twin, name="kitchen", splits=["train"]))
    _, examples = examples_of(doc)
    speakers = {speaker_of(ex) for ex in examples}
    assert len(speakers) == 20
    assert {s.split(":")[0] for s in speakers} == {"folder", "kitchen"}
    assert "folder:real03" in speakers and "kitchen:real03" in speakers
    doc = mixed_doc(tmp_path, real_step(real), real_step(twin))  # two of a type: type-<index>
    assert {speaker_of(ex).split(":")[0] for ex in examples_of(doc)[1]} == {"folder-0", "folder-1"}


def test_crossval_folds_deal_real_speakers_and_keep_synthetic_in_training(tmp_path, real, synth_root):
    _, examples = examples_of(mixed_doc(tmp_path, real_step(real), synth_step(synth_root)))
    tested = []
    for fold in range(2):
        out = fold_split(examples, {"k": 2, "fold": fold, "seed": 0})
        synth = [ex for ex in out if ex.speaker.startswith("synthetic_tones:")]
        assert len(synth) == 24 and {ex.split for ex in synth} == {"train"}
        test = {speaker_of(ex) for ex in out if ex.split == "test"}
        assert all(s.startswith("folder:") for s in test) and len(test) == 5
        tested += sorted(test)
    assert sorted(tested) == [f"folder:real{s:02d}" for s in range(10)]


# -- errors --------------------------------------------------------------------------------------------


def test_recipe_errors_are_reported_together_with_did_you_mean(tmp_path, real, synth_root):
    doc = mixed_doc(
        tmp_path,
        {"type": "foldr", "root": str(real)},
        real_step(real, splits=["trian", "test"], label_map=["ai"]),
        {**synth_step(synth_root), "rooot": "x"},
        real_step(real, splits=[]),
    )
    with pytest.raises(RecipeError) as err:
        validate_dict(doc, file="mix.yaml")
    problems = dict(err.value.problems)
    assert problems["data.sources[0].type"].startswith(
        "Unknown data source 'foldr'. Did you mean 'folder'? Available data sources:")
    assert problems["data.sources[1].splits[0]"] == (
        "unknown split 'trian'; did you mean 'train'? Splits: train, validation, test.")
    assert problems["data.sources[1].label_map"].startswith("must be a mapping of source label: label")
    assert problems["data.sources[2].rooot"] == "unknown parameter; did you mean 'root'?"
    assert problems["data.sources[3].splits"] == (
        "is empty, so this source feeds no split; list at least one of train, validation, test, "
        "or remove the source")
    assert len(err.value.problems) == 5
    assert str(err.value).startswith("mix.yaml: data.sources[0].type: Unknown data source 'foldr'.")


def test_validation_and_test_must_be_fed_and_source_or_sources_not_both(tmp_path, real, synth_root):
    with pytest.raises(RecipeError) as err:
        validate_dict(mixed_doc(tmp_path, synth_step(synth_root)), build_layers=False)
    assert err.value.problems == [
        ("data.sources", f"no source feeds the {split} split (synthetic sources only train unless "
         f"their `splits` say so); add a source of real recordings, or list {split} in one "
         "source's `splits`") for split in ("validation", "test")
    ]  # fmt: skip
    doc = mixed_doc(tmp_path, synth_step(synth_root, splits=["train", "validation", "test"]))
    validate_dict(doc, build_layers=False)  # said explicitly: fine
    doc["data"]["source"] = real_step(real)
    with pytest.raises(RecipeError) as err:
        validate_dict(doc, build_layers=False)
    assert err.value.problems == [
        ("data", "give `source` (one data source) or `sources` (several, mixed), not both")]
    doc = mixed_doc(tmp_path, real_step(real))
    doc["data"] = {"cache": True}
    with pytest.raises(RecipeError, match=r"data: `source` is missing: a data source step"):
        validate_dict(doc, build_layers=False)
    doc = mixed_doc(tmp_path, real_step(real), {"type": "mixed", "sources": [real_step(real)]})
    with pytest.raises(RecipeError, match=r"data.sources\[1\].type: a mixed source cannot hold another"):
        validate_dict(doc, build_layers=False)


def test_an_empty_validation_split_at_data_time_names_the_sources(tmp_path, synth_root, caplog):
    few = make_real(tmp_path / "few", speakers=2, clips=1)
    doc = mixed_doc(tmp_path, real_step(few, validation_percent=0, test_percent=50), synth_step(synth_root))
    examples_of(doc)  # a warning (crossval deals the splits again; evaluate --data reads them all)
    assert ("The validation split of the mixed data is empty: data.sources[0] (folder) feeds it but "
            "gave no validation clips") in caplog.text  # fmt: skip
    with pytest.raises(DataError, match="The validation split is empty"):  # training refuses it
        build(validate_dict(doc)).load_data()


def test_a_sub_source_error_names_its_entry(tmp_path, real):
    (tmp_path / "afile").write_text("x")
    doc = mixed_doc(tmp_path, real_step(real), real_step(tmp_path / "afile", splits=["train"]))
    with pytest.raises(DataError, match=r"is a file, not a folder \(data.sources\[1\].root\)"):
        examples_of(doc)


# -- the recipe: round trip, overrides, cache identity -----------------------------------------------


def test_round_trip_overrides_and_a_cache_identity_covering_every_source(tmp_path, real, synth_root):
    doc = mixed_doc(tmp_path, real_step(real), synth_step(synth_root))
    recipe = validate_dict(doc, build_layers=False)
    data = recipe.to_dict()["data"]
    assert "source" not in data and [s["type"] for s in data["sources"]] == ["folder", "synthetic_tones"]
    assert validate_dict(recipe.to_dict(), build_layers=False) == recipe
    plain = validate_dict(tiny_recipe(tmp_path / "d"), build_layers=False).to_dict()["data"]
    assert "sources" not in plain and plain["source"]["type"] == "synthetic_tones"
    path = write_recipe(tmp_path / "mix.yaml", doc)
    changed = load_recipe(path, ["data.sources[1].speakers=7", "data.sources[1].splits=[train, test]",
                                 "data.sources[0].label_map={u: ai}"], build_layers=False)  # fmt: skip
    entries = changed.data.sources
    assert entries[1].params["speakers"] == 7 and entries[1].params["splits"] == ["train", "test"]
    with pytest.raises(RecipeError, match=r"'data.sources\[1\].speakerz' does not exist in the recipe. "
                       "Did you mean 'speakers'"):  # fmt: skip
        load_recipe(path, ["data.sources[1].speakerz=7"], build_layers=False)
    ids = {settings(r).source_identity for r in (recipe, changed,
           load_recipe(path, ["data.sources[0].label_map={u: ai}"], build_layers=False))}  # fmt: skip
    assert len(ids) == 3  # a sub-source's parameter, its splits, its label map: each a new identity


def test_a_mixed_source_is_also_a_plain_step_and_builds_its_sources_once(tmp_path, real, synth_root):
    doc = tiny_recipe(tmp_path / "x")
    doc["data"] = {"source": {"type": "mixed", "sources": [real_step(real), synth_step(synth_root)]}}
    recipe = validate_dict(doc, build_layers=False)
    mix = recipe.checked["data.source"]
    assert [p.name for p in mix.parts] == ["folder", "synthetic_tones"]
    assert make_source(recipe) is mix  # the check's object, taken by build
    doc["data"]["source"]["sources"][0]["rooot"] = "x"
    with pytest.raises(RecipeError, match=r"data.source.sources\[0\].rooot: unknown parameter"):
        validate_dict(doc, build_layers=False)
    with pytest.raises(RecipeError) as err:  # outside a recipe (evaluate --data): its own checks
        SOURCES.get("mixed")(sources=[{"type": "folder", "root": str(real), "splits": ["tst"]}])
    assert err.value.problems[0][0] == "sources[0].splits[0]"


# -- end to end ------------------------------------------------------------------------------------------


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_train_on_a_mixed_recipe_end_to_end(tmp_path, real, synth_root):
    doc = mixed_doc(tmp_path, real_step(real), synth_step(synth_root, label_map={"noise": "_silence_"}), epochs=2)
    path = write_recipe(tmp_path / "mix.yaml", doc)
    assert invoke("validate", path).exit_code == 0
    result = invoke("train", path, "--run-dir", tmp_path / "run")
    assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    data = yaml.safe_load((run / "data.json").read_text())
    assert data["labels"] == ["_silence_", "ai", "ia", "noise", "u"]
    assert data["examples"] == {"train": 64, "validation": 16, "test": 24}  # 40 real + 24 synthetic
    saved = yaml.safe_load((run / "recipe.yaml").read_text())
    assert [s["type"] for s in saved["data"]["sources"]] == ["folder", "synthetic_tones"]
    metrics = yaml.safe_load((run / "metrics.json").read_text())
    assert metrics["test"]["examples"] == 24
    assert all(s.startswith("folder:") for s in metrics["test"]["speakers"]["per_speaker"])


def test_one_crossval_fold_of_a_mixed_recipe(tmp_path, real, synth_root):
    from seqkit.crossval import load_recipe_doc, plan_crossval

    path = write_recipe(tmp_path / "mix.yaml", mixed_doc(tmp_path, real_step(real), synth_step(synth_root)))
    plan = plan_crossval(path, folds="2", out=tmp_path / "cv", yes=True)
    assert plan.speakers == 10  # the real ones: synthetic speakers stay in training
    assert all(s.startswith("folder:") for f in plan.folds for s in f.test_speakers)
    built = build(load_recipe_doc(plan.folds[0].recipe_doc, path))
    data = built.load_data()
    items = {split: data.splits[split].items for split in data.splits}
    assert {speaker_of(ex) for ex in items["test"]} == set(plan.folds[0].test_speakers)
    assert sum(ex.speaker.startswith("synthetic_tones:") for ex in items["train"]) == 24
    assert not any(ex.speaker.startswith("synthetic_tones:") for ex in items["validation"] + items["test"])
    fold_file = write_recipe(tmp_path / "fold-0.yaml", plan.folds[0].recipe_doc)
    result = invoke("train", fold_file, "--run-dir", tmp_path / "fold-0")
    assert result.exit_code == 0, result.output
    metrics = yaml.safe_load((tmp_path / "fold-0" / "metrics.json").read_text())
    assert metrics["test"]["examples"] == len(items["test"]) == 40


# -- manifest speakers (item 2) ----------------------------------------------------------------------


def test_manifest_speaker_column(tmp_path, real):
    rows = [("ai/real00_nohash_0.wav", "ai", "train", "anna"), ("ia/real00_nohash_0.wav", "ia", "train", ""),
            ("ai/real01_nohash_0.wav", "ai", "test", "ben"), ("ia/real01_nohash_1.wav", "ia", "test", "ben")]  # fmt: skip
    path = tmp_path / "list.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["speaker", "path", "label", "split"])
        for p, label, split, spk in rows:
            w.writerow([spk, str(real / p), label, split])
    examples = SOURCES.get("manifest")(path=str(path)).examples()
    assert [ex.speaker for ex in examples] == ["anna", "ben", None, "ben"]  # by label, then row
    # an empty cell: unknown, so the <speaker>_nohash_ name decides
    assert [speaker_of(ex) for ex in examples] == ["anna", "ben", "real00", "ben"]
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([["path", "label", "split"], [str(real / rows[0][0]), "ai", "train"],
                                 [str(real / rows[1][0]), "ia", "train"]])  # fmt: skip
    assert [ex.speaker for ex in SOURCES.get("manifest")(path=str(path)).examples()] == [None, None]


def test_fold_split_keeps_fixed_clips_out_of_the_deal():
    items = [Example(f"w/s{s}_nohash_0.wav", "w", "train") for s in range(4)]
    fixed = [Example(f"w/syn{s}_nohash_0.wav", "w", "train", keep_split=True) for s in range(30)]
    out = fold_split(items + fixed, {"k": 2, "fold": 0})
    assert out[4:] == fixed
    with pytest.raises(DataError, match="4 speakers cannot make 5 folds"):
        fold_split(items + fixed, {"k": 5, "fold": 0})


def test_a_run_folder_inside_any_mixed_source_folder_is_refused(tmp_path, real, synth_root):
    from seqkit.errors import RunError
    from seqkit.runs import refuse_inside_data

    recipe = validate_dict(mixed_doc(tmp_path, real_step(real), synth_step(synth_root)),
                           build_layers=False)  # fmt: skip
    with pytest.raises(RunError, match=r"inside the data folder '.*synth'"):
        refuse_inside_data(Path(synth_root) / "runs" / "r1", recipe)  # the second source's folder
    with pytest.raises(RunError, match=r"inside the data folder '.*real'"):
        refuse_inside_data(Path(real) / "r1", recipe)
    refuse_inside_data(tmp_path / "runs" / "r1", recipe)  # elsewhere: fine


def test_evaluate_data_reads_a_recipe_with_data_sources(tmp_path, real, synth_root):
    from seqkit.evaluate import data_source

    path = write_recipe(tmp_path / "mixed.yaml", mixed_doc(tmp_path, real_step(real),
                                                           synth_step(synth_root)))  # fmt: skip
    kind, source = data_source(str(path))
    assert kind == "mixed"
    assert [p.source.__class__.__name__ for p in source.parts] == ["FolderSource", "SyntheticTones"]
