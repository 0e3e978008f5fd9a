"""Tests of seqkit.recipe: loading YAML recipes, validating them, ``--set`` overrides.

Every error test checks the message a user reads (``FILE: dotted.path: message``) and the
``problems`` list of ``(path, message)`` pairs. Recipes are written into ``tmp_path``.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from seqkit.errors import RecipeError
from seqkit.recipe import Recipe, load_recipe, validate_dict

RECIPES_DIR = Path(__file__).resolve().parent.parent / "recipes"

MINIMAL = {
    "data": {"source": {"type": "folder", "root": "data/words"}},
    "features": [
        {"type": "load", "sample_rate": 16000},
        {"type": "fix_length", "seconds": 1.0},
        {"type": "melspectrogram", "n_fft": 512, "hop_length": 160, "n_mels": 40},
        {"type": "power_to_db"},
    ],
    "model": {"layers": [{"type": "gru", "units": 16}]},
    "task": {"type": "kws"},
}


def minimal() -> dict:
    return copy.deepcopy(MINIMAL)


def write(tmp_path: Path, doc, name: str = "recipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False))
    return path


def problem_paths(err: RecipeError) -> list[str]:
    return [p for p, _ in err.problems]


def problem(err: RecipeError, path: str) -> str:
    """The message of the problem at ``path`` (fails if there is none)."""
    found = [m for p, m in err.problems if p == path]
    assert found, f"no problem at {path!r}; problems: {err.problems}"
    return found[0]


# -- valid recipes ---------------------------------------------------------------------------------


def test_minimal_recipe_loads_with_defaults(tmp_path):
    recipe = load_recipe(write(tmp_path, minimal()))
    assert isinstance(recipe, Recipe)
    assert recipe.name == "run"
    assert recipe.seed == 0
    assert recipe.description == ""
    assert recipe.train.epochs == 10
    assert recipe.train.batch_size == 32
    assert recipe.train.optimizer.type == "adam"
    assert recipe.train.optimizer.learning_rate == pytest.approx(1e-3)
    assert recipe.train.optimizer.clipnorm is None
    assert recipe.train.early_stopping_patience is None
    assert recipe.model.normalize is None
    assert recipe.model.layers[0].type == "gru"
    assert recipe.model.layers[0].params == {"units": 16}
    assert [s.type for s in recipe.features] == [
        "load",
        "fix_length",
        "melspectrogram",
        "power_to_db",
    ]
    assert recipe.data.source.params == {"root": "data/words"}


def test_validate_dict_returns_recipe():
    recipe = validate_dict(minimal())
    assert recipe.task.type == "kws"


@pytest.mark.parametrize("path", sorted(RECIPES_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_recipes_validate(path):
    recipe = load_recipe(path)
    assert recipe.model.layers
    # Audio tasks need their feature steps; piano-roll and generated tasks have none.
    from seqkit.registry import TASKS

    assert bool(recipe.features) == TASKS.get(recipe.task.type).uses_audio_features


def test_shipped_recipes_exist():
    assert (RECIPES_DIR / "quickstart.yaml").is_file()


def test_to_yaml_round_trip(tmp_path):
    doc = minimal()
    doc["name"] = "round-trip"
    doc["train"] = {
        "epochs": 4,
        "optimizer": {"type": "sgd", "learning_rate": 0.01, "clipnorm": 1.0},
    }
    doc["model"]["layers"] = [
        {"type": "gru", "units": 8, "bidirectional": True},
        {"type": "dense", "units": 4},
    ]
    recipe = load_recipe(write(tmp_path, doc))
    dumped = write(tmp_path, recipe.to_yaml(), "dumped.yaml")
    again = load_recipe(dumped)
    assert again == recipe
    assert again.to_dict() == recipe.to_dict()
    assert again.model.layers[0].params == {"units": 8, "bidirectional": True}


def test_quickstart_round_trip(tmp_path):
    recipe = load_recipe(RECIPES_DIR / "quickstart.yaml")
    again = load_recipe(write(tmp_path, recipe.to_yaml()))
    assert again == recipe


# -- unknown keys and names --------------------------------------------------------------------------


def test_unknown_top_level_key_did_you_mean(tmp_path):
    doc = minimal()
    doc["featurs"] = doc.pop("features")
    with pytest.raises(RecipeError, match=r"featurs: unknown key; did you mean 'features'\?") as ei:
        load_recipe(write(tmp_path, doc))
    err = ei.value
    assert "featurs" in problem_paths(err)
    assert problem(err, "featurs") == "unknown key; did you mean 'features'?"
    # and the real key is reported missing
    assert problem(err, "features").startswith("missing")


def test_unknown_layer_parameter_exact_text(tmp_path):
    doc = minimal()
    doc["model"]["layers"][0] = {"type": "gru", "unitz": 16}
    path = write(tmp_path, doc)
    with pytest.raises(RecipeError) as ei:
        load_recipe(path)
    err = ei.value
    assert str(err) == f"{path}: model.layers[0].unitz: unknown parameter; did you mean 'units'?"
    assert err.problems == [("model.layers[0].unitz", "unknown parameter; did you mean 'units'?")]
    assert err.path == "model.layers[0].unitz"
    assert err.file == str(path)


def test_unknown_layer_type_did_you_mean(tmp_path):
    doc = minimal()
    doc["model"]["layers"][0]["type"] = "gruu"
    with pytest.raises(RecipeError, match=r"Unknown layer 'gruu'\. Did you mean 'gru'\?") as ei:
        load_recipe(write(tmp_path, doc))
    assert problem_paths(ei.value) == ["model.layers[0].type"]
    assert "Available layers:" in problem(ei.value, "model.layers[0].type")


def test_unknown_feature_step_type(tmp_path):
    doc = minimal()
    doc["features"][2]["type"] = "melspectrogramm"
    with pytest.raises(RecipeError, match=r"Did you mean 'melspectrogram'\?") as ei:
        load_recipe(write(tmp_path, doc))
    assert "features[2].type" in problem_paths(ei.value)


def test_unknown_optimizer_did_you_mean(tmp_path):
    doc = minimal()
    doc["train"] = {"optimizer": {"type": "adamm"}}
    with pytest.raises(
        RecipeError, match=r"unknown optimizer 'adamm'\. Did you mean 'adam'\?"
    ) as ei:
        load_recipe(write(tmp_path, doc))
    assert problem_paths(ei.value) == ["train.optimizer.type"]
    assert "Available: adam, adamw" in problem(ei.value, "train.optimizer.type")


def test_unknown_nested_key_did_you_mean(tmp_path):
    doc = minimal()
    doc["train"] = {"epochz": 3}
    with pytest.raises(
        RecipeError, match=r"train\.epochz: unknown key; did you mean 'epochs'\?"
    ) as ei:
        load_recipe(write(tmp_path, doc))
    assert problem_paths(ei.value) == ["train.epochz"]


# -- bad values ----------------------------------------------------------------------------------


def test_negative_units(tmp_path):
    doc = minimal()
    doc["model"]["layers"][0]["units"] = -3
    path = write(tmp_path, doc)
    with pytest.raises(RecipeError, match=r"model\.layers\[0\]\.units: .*-3") as ei:
        load_recipe(path)
    err = ei.value
    assert problem_paths(err) == ["model.layers[0].units"]
    assert "-3" in problem(err, "model.layers[0].units")
    assert str(err).startswith(f"{path}: model.layers[0].units: ")


def test_hop_length_above_n_fft_points_at_hop_length(tmp_path):
    doc = minimal()
    doc["features"][2] = {"type": "melspectrogram", "n_fft": 512, "hop_length": 1024}
    with pytest.raises(
        RecipeError,
        match=r"features\[2\]\.hop_length: .*must be <= `n_fft` \(512\); received 1024\.",
    ) as ei:
        load_recipe(write(tmp_path, doc))
    # the path names the parameter the message is about, not the other one it mentions
    assert problem_paths(ei.value) == ["features[2].hop_length"]
    assert problem(ei.value, "features[2].hop_length").endswith(
        "must be <= `n_fft` (512); received 1024."
    )


def test_hop_length_above_default_n_fft(tmp_path):
    doc = minimal()
    doc["features"][2] = {"type": "melspectrogram", "hop_length": 1024}
    with pytest.raises(RecipeError, match=r"must be <= `n_fft` \(512\); received 1024\.") as ei:
        load_recipe(write(tmp_path, doc))
    assert problem_paths(ei.value) == ["features[2].hop_length"]


def test_feature_n_mels_zero(tmp_path):
    doc = minimal()
    doc["features"][2]["n_mels"] = 0
    with pytest.raises(RecipeError, match=r"must be a positive integer; received 0\.") as ei:
        load_recipe(write(tmp_path, doc))
    assert problem_paths(ei.value) == ["features[2].n_mels"]


def test_pydantic_bound_error(tmp_path):
    doc = minimal()
    doc["train"] = {"epochs": 0}
    with pytest.raises(
        RecipeError, match=r"train\.epochs: input should be greater than or equal to 1; received 0"
    ) as ei:
        load_recipe(write(tmp_path, doc))
    assert problem_paths(ei.value) == ["train.epochs"]


def test_several_component_problems_reported_together(tmp_path):
    doc = minimal()
    doc["model"]["layers"][0]["units"] = -3
    doc["features"][2]["hop_length"] = 1024
    doc["task"] = {"type": "kws", "pooling": "avg"}
    doc["train"] = {"optimizer": {"type": "adamm"}}
    path = write(tmp_path, doc, "several.yaml")
    with pytest.raises(RecipeError) as ei:
        load_recipe(path)
    err = ei.value
    assert len(err.problems) >= 3
    assert set(problem_paths(err)) >= {
        "features[2].hop_length",
        "model.layers[0].units",
        "task.pooling",
        "train.optimizer.type",
    }
    lines = str(err).splitlines()
    assert len(lines) == len(err.problems)
    assert all(line.startswith(f"{path}: ") for line in lines)
    assert all("several.yaml" in line for line in lines)


def test_several_schema_problems_reported_together(tmp_path):
    doc = minimal()
    doc["train"] = {"epochs": 0, "batch_size": -1, "epochz": 3}
    doc["seed"] = -5
    path = write(tmp_path, doc, "schema.yaml")
    with pytest.raises(RecipeError) as ei:
        load_recipe(path)
    err = ei.value
    assert len(err.problems) >= 3
    assert set(problem_paths(err)) >= {"train.epochs", "train.batch_size", "train.epochz", "seed"}
    assert all(line.startswith(f"{path}: ") for line in str(err).splitlines())


# -- the file itself -------------------------------------------------------------------------------


def test_file_not_found(tmp_path):
    path = tmp_path / "missing.yaml"
    with pytest.raises(RecipeError, match=re.escape(f"{path}: recipe file not found")):
        load_recipe(path)


def test_not_yaml_names_line(tmp_path):
    path = write(tmp_path, "a: [1, 2\n", "broken.yaml")
    with pytest.raises(RecipeError, match=r"not valid YAML: line \d+, column \d+") as ei:
        load_recipe(path)
    assert str(ei.value).startswith(f"{path}: ")


def test_not_yaml_error_line_number(tmp_path):
    text = "name: x\nseed: 0\nfeatures: [{type: load}\nmodel: {}\n"
    path = write(tmp_path, text, "broken2.yaml")
    with pytest.raises(RecipeError, match=r"not valid YAML: line [34],"):
        load_recipe(path)


def test_top_level_list(tmp_path):
    path = write(tmp_path, "- a\n- b\n")
    with pytest.raises(RecipeError, match=r"a recipe must be a YAML mapping .*; it is a list"):
        load_recipe(path)


def test_empty_file(tmp_path):
    path = write(tmp_path, "")
    with pytest.raises(RecipeError, match=r"a recipe must be a YAML mapping .*; it is empty") as ei:
        load_recipe(path)
    assert str(ei.value).startswith(f"{path}: ")


def test_validate_dict_rejects_non_mapping():
    with pytest.raises(RecipeError, match=r"it is a str"):
        validate_dict("features")


def test_python_tags_are_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    text = f'!!python/object/apply:os.system ["touch {marker}"]\n'
    path = write(tmp_path, text, "evil.yaml")
    with pytest.raises(RecipeError, match=r"not valid YAML: .*could not determine a constructor"):
        load_recipe(path)
    assert not marker.exists()


def test_python_tag_inside_a_value_is_refused(tmp_path):
    marker = tmp_path / "pwned2"
    doc = yaml.safe_dump(minimal(), sort_keys=False)
    doc += f'description: !!python/object/apply:os.system ["touch {marker}"]\n'
    with pytest.raises(RecipeError, match=r"python/object/apply"):
        load_recipe(write(tmp_path, doc))
    assert not marker.exists()


# -- --set overrides -----------------------------------------------------------------------------


@pytest.fixture
def recipe_file(tmp_path):
    return write(tmp_path, minimal())


def test_override_epochs_parsed_as_int(recipe_file):
    recipe = load_recipe(recipe_file, overrides=["train.epochs=3"])
    assert recipe.train.epochs == 3
    assert isinstance(recipe.train.epochs, int)


def test_override_layer_units(recipe_file):
    recipe = load_recipe(recipe_file, overrides=["model.layers[0].units=32"])
    assert recipe.model.layers[0].params["units"] == 32


def test_override_new_step_parameter_accepted_by_component(recipe_file):
    recipe = load_recipe(recipe_file, overrides=["model.layers[0].dropout=0.1"])
    assert recipe.model.layers[0].params == {"units": 16, "dropout": 0.1}


def test_override_several_and_nested(recipe_file):
    recipe = load_recipe(
        recipe_file,
        overrides=["train.optimizer.learning_rate=0.01", "features[2].n_mels=20", "name=tuned"],
    )
    assert recipe.train.optimizer.learning_rate == pytest.approx(0.01)
    assert recipe.features[2].params["n_mels"] == 20
    assert recipe.name == "tuned"


def test_override_unknown_key_did_you_mean(recipe_file):
    with pytest.raises(
        RecipeError,
        match=r"--set train\.epochz: 'train\.epochz' does not exist in the recipe\. Did you mean 'epochs'\?",
    ) as ei:
        load_recipe(recipe_file, overrides=["train.epochz=3"])
    assert problem_paths(ei.value) == ["--set train.epochz"]


def test_override_unknown_step_parameter(recipe_file):
    with pytest.raises(RecipeError, match=r"Did you mean 'units'\?") as ei:
        load_recipe(recipe_file, overrides=["model.layers[0].unitz=3"])
    assert problem_paths(ei.value) == ["--set model.layers[0].unitz"]


def test_override_bad_value_is_validated(recipe_file):
    with pytest.raises(RecipeError, match=r"model\.layers\[0\]\.units: .*-1") as ei:
        load_recipe(recipe_file, overrides=["model.layers[0].units=-1"])
    assert problem_paths(ei.value) == ["model.layers[0].units"]


def test_override_index_out_of_range(recipe_file):
    with pytest.raises(RecipeError, match=r"'model\.layers\[5\]' does not exist"):
        load_recipe(recipe_file, overrides=["model.layers[5].units=3"])


def test_override_without_equals(recipe_file):
    with pytest.raises(RecipeError, match=r"expected KEY=VALUE; received 'train\.epochs'"):
        load_recipe(recipe_file, overrides=["train.epochs"])


def test_schema_and_component_problems_are_reported_together(tmp_path):
    doc = {
        "data": {"source": {"type": "synthetic_tones", "root": str(tmp_path / "d")}},
        "features": [
            {"type": "load"},
            {"type": "melspectrogram", "n_fft": 512, "hop_length": 1024},
        ],
        "model": {"layers": [{"type": "gru", "unitz": 4}]},
        "task": {"type": "kws"},
        "train": {"epochz": 3, "batch_size": 0},
    }
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert [p for p, _ in info.value.problems] == [
        "train.batch_size",
        "train.epochz",
        "features[1].hop_length",
        "model.layers[0].unitz",
    ]
    assert "model.layers[0].unitz: unknown parameter; did you mean 'units'?" in str(info.value)


# -- parameter types, duplicate keys, overrides on the file's document ----------------------------


def test_parameter_types_are_checked_with_the_parameter_named(tmp_path):
    doc = minimal()
    doc["data"]["source"] = {"type": "folder", "root": 3, "labels": [True, "no"]}
    doc["model"]["layers"] = [
        {"type": "lstm", "units": "64"},
        {"type": "gru", "dropout": "0.1", "units": 4},
    ]
    with pytest.raises(RecipeError) as info:
        load_recipe(write(tmp_path, doc))
    assert problem(info.value, "data.source.root") == "must be a string; received 3"
    assert problem(info.value, "data.source.labels[0]").startswith(
        "must be a list of strings or null; received [True, 'no'] (YAML reads unquoted "
        "yes/no/on/off/true/false as booleans; quote it: 'yes')"
    )
    assert problem(info.value, "model.layers[0].units") == "must be an integer; received '64'"
    assert problem(info.value, "model.layers[1].dropout") == "must be a number; received '0.1'"


def test_unquoted_yes_no_labels_get_the_quoting_hint(tmp_path):
    text = (
        "data: {source: {type: folder, root: d, labels: [yes, no]}}\n"
        "features: [{type: load}, {type: melspectrogram}]\n"
        "model: {layers: [{type: gru, units: 4}]}\ntask: {type: kws}\n"
    )
    with pytest.raises(RecipeError, match=r"quote it: 'yes'"):
        load_recipe(write(tmp_path, text))


def test_resampler_choices_are_checked(tmp_path):
    doc = minimal()
    doc["features"][0]["res_type"] = "bogus"
    with pytest.raises(RecipeError) as info:
        load_recipe(write(tmp_path, doc))
    assert problem(info.value, "features[0].res_type").startswith(
        "must be one of soxr_vhq, soxr_hq"
    )


def test_a_key_given_twice_is_refused(tmp_path):
    text = "name: a\ntrain: {epochs: 3, batch_size: 8}\ntrain: {epochs: 2}\n"
    with pytest.raises(RecipeError, match=r"line 3, column 1: key 'train' appears twice .*line 2"):
        load_recipe(write(tmp_path, text))


def test_override_can_fix_a_bad_value_in_the_file(tmp_path):
    doc = minimal()
    doc["train"] = {"epochs": 0}
    path = write(tmp_path, doc)
    with pytest.raises(
        RecipeError, match=r"train\.epochs: input should be greater than or equal to 1"
    ):
        load_recipe(path)
    assert load_recipe(path, overrides=["train.epochs=3"]).train.epochs == 3


def test_override_of_a_schema_default_not_in_the_file(tmp_path):
    recipe = load_recipe(
        write(tmp_path, minimal()), overrides=["train.optimizer.learning_rate=0.01"]
    )
    assert recipe.train.optimizer.learning_rate == 0.01


def test_override_problems_say_they_come_from_set(tmp_path):
    path = write(tmp_path, minimal())
    with pytest.raises(RecipeError) as info:
        load_recipe(path, overrides=["train=5"])
    assert problem(info.value, "train") == (
        "must be a mapping (epochs, batch_size, optimizer, early_stopping_patience, "
        "reduce_lr_patience, precision, checkpoint_every_steps, distribute); received 5 "
        "(value from --set train)"
    )


def test_override_hints(tmp_path):
    path = write(tmp_path, minimal())
    with pytest.raises(RecipeError) as info:
        load_recipe(path, overrides=["epochs=3"])
    assert problem(info.value, "--set epochs") == (
        "'epochs' does not exist in the recipe. Did you mean 'train.epochs'?"
    )
    assert load_recipe(path, overrides=["model.layers.0.units=8"]).model.layers[0].params == {
        "units": 8
    }


def test_a_bad_bidirectional_flag_is_reported_once(tmp_path):
    doc = minimal()
    doc["model"]["layers"] = [{"type": "gru", "units": 4, "bidirectional": "yes"}]
    with pytest.raises(RecipeError) as info:
        load_recipe(write(tmp_path, doc))
    assert info.value.problems == [
        ("model.layers[0].bidirectional", "must be true or false; received 'yes'")
    ]


# -- the resource estimate (seqkit.resources; called by build, so by validate and train) --------


def _validate_cli(tmp_path, doc, monkeypatch, memory=16 * 2**30, command="validate"):
    from click.testing import CliRunner

    from seqkit import resources
    from seqkit.cli import cli

    monkeypatch.setattr(resources, "machine_memory", lambda: memory)
    path = write(tmp_path, doc)
    runs = ["--runs-root", str(tmp_path / "runs")] if command == "train" else []
    args = [command, str(path), *runs]
    return path, CliRunner().invoke(cli, args)


def test_units_no_machine_holds_is_a_recipe_error_before_anything_is_allocated(
    tmp_path, monkeypatch
):
    doc = minimal()
    doc["model"]["layers"] = [{"type": "gru", "units": 1_000_000_000_000}]
    path, result = _validate_cli(tmp_path, doc, monkeypatch)
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        f"error: {path}: model.layers[0].units: 1000000000000 units need about 39.7 YiB for "
        "weights and optimizer state (3e+24 parameters); this machine has 16 GiB of memory.\n"
    )


def test_n_fft_no_machine_holds_is_a_recipe_error(tmp_path, monkeypatch):
    doc = minimal()
    doc["features"][2]["n_fft"] = 100_000_000
    path, result = _validate_cli(tmp_path, doc, monkeypatch)
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        f"error: {path}: features[2].n_fft: 100000000 needs about 79.9 GiB to compute the "
        "features of one 1 s clip; this machine has 16 GiB of memory.\n"
    )


def test_train_refuses_before_reading_data_or_making_a_run(tmp_path, monkeypatch):
    doc = minimal()
    doc["data"]["source"]["root"] = str(tmp_path / "absent")  # never read
    doc["model"]["layers"] = [{"type": "lstm", "units": 10_000_000}]
    path, result = _validate_cli(tmp_path, doc, monkeypatch, command="train")
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        f"error: {path}: model.layers[0].units: 10000000 units need about 5.68 PiB for weights "
        "and optimizer state (4e+14 parameters); this machine has 16 GiB of memory.\n"
    )
    assert not (tmp_path / "runs").exists()


def test_checking_a_recipe_with_huge_values_allocates_nothing(tmp_path):
    """The recipe check builds each component (a GRU of 10**12 units, an n_fft of 10**8):
    their constructors only check values; weights and buffers come at build / call time."""
    import tracemalloc

    doc = minimal()
    doc["features"][2]["n_fft"] = 100_000_000
    doc["model"]["layers"] = [
        {"type": t, "units": 1_000_000_000_000} for t in ("gru", "keras_gru", "lstm", "dense")
    ]
    validate_dict(minimal())  # imports done
    tracemalloc.start()
    try:
        recipe = validate_dict(doc)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20
    assert sorted(recipe.checked) == [
        "data.source", "features[0]", "features[1]", "features[2]", "features[3]",
        "model.layers[0]", "model.layers[1]", "model.layers[2]", "model.layers[3]", "task",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "layer",
    [
        {"type": "gru", "units": 24},
        {"type": "keras_gru", "units": 24},
        {"type": "lstm", "units": 24},
        {"type": "rnn", "units": 24},
        {"type": "dense", "units": 24},
        {"type": "gru", "units": 24, "bidirectional": True},
        {"type": "keras_gru", "units": 24, "reset_after": False},
    ],
)
def test_estimated_weights_are_the_models_parameter_count(layer):
    import keras

    from seqkit.build import build_layers
    from seqkit.resources import estimate

    doc = minimal()
    doc["model"]["layers"] = [layer, {"type": "gru", "units": 8}]
    recipe = validate_dict(doc)
    parts = [p for p in estimate(recipe) if p.kind == "weights and optimizer state"]
    x = keras.Input((None, 40))
    counts = []
    for lay in build_layers(recipe, needs_sequences=False):
        x = lay(x)
        counts.append(lay.count_params())
    assert [p.bytes // (4 * 4) for p in parts] == counts  # float32; weights, gradients, 2 slots


def test_a_recipe_that_fits_only_in_parts_is_refused_as_a_whole(tmp_path, monkeypatch):
    from seqkit.resources import check, estimate

    recipe = validate_dict(minimal())
    parts = {p.kind: p.bytes for p in estimate(recipe)}
    # features: 4 (16000 + 512) + 12 x 257 bins x 101 frames + (12 x 40 + 16) x 257 + 4 x 40 x 101;
    # weights: 3 x (40 + 16 + 1) x 16 x 4 bytes x 4; activations: 32 x 4 x 101 x (40 + 16 x 4)
    assert parts == {"features": 521164, "weights and optimizer state": 43776,
                     "activations": 1344512}  # fmt: skip
    check(recipe, memory=sum(parts.values()))
    with pytest.raises(RecipeError) as err:
        check(recipe, memory=sum(parts.values()) - 1)
    assert err.value.problems == [
        (
            "train.batch_size",
            "the recipe needs about 1.82 MiB in all (features 509 KiB, weights and optimizer "
            "state 42.8 KiB, activations 1.28 MiB); this machine has 1.82 MiB of memory.",
        )
    ]
    with pytest.raises(RecipeError, match=r"^train.batch_size: 32 needs about 1.28 MiB of "
                       r"activations per batch \(32 x 101 time steps\); this machine has 1 MiB"):
        check(recipe, memory=2**20)  # fmt: skip


def test_machine_memory_is_the_physical_memory_or_less():
    import os

    from seqkit.resources import machine_memory

    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert 0 < machine_memory() <= physical
