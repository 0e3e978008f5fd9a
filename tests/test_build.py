"""seqkit.build: a recipe's components built and checked once.

The feature-chain checks (moved here from test_recipe.py with their assertions: how the steps
fit together is the build's check, not the recipe schema's), and a construction count during
`seqkit train` so that resolving a recipe more than once cannot come back unnoticed.
"""

import collections
import functools

import pytest
from click.testing import CliRunner
from conftest import tiny_recipe, write_recipe
from test_recipe import minimal, problem, problem_paths, write

from seqkit.build import build
from seqkit.cli import cli
from seqkit.errors import RecipeError
from seqkit.features import PowerToDb
from seqkit.layers import GRU
from seqkit.recipe import load_recipe
from seqkit.registry import FEATURES, LAYERS, SOURCES, TASKS
from seqkit.speech.sources.tones import SyntheticTones
from seqkit.speech.task import KeywordSpotting


def test_feature_chain_error_mfcc_before_load(tmp_path):
    doc = minimal()
    doc["features"] = [{"type": "mfcc"}, {"type": "load"}]
    with pytest.raises(
        RecipeError,
        match=r"features\[0\]: 'mfcc' takes audio or frames but receives path from the file name\.",
    ) as ei:
        build(load_recipe(write(tmp_path, doc)))
    assert problem_paths(ei.value)[0] == "features[0]"
    assert (
        problem(ei.value, "features[1]")
        == "'load' takes path but receives frames from step 0 (mfcc)."
    )


def test_feature_chain_must_end_in_frames(tmp_path):
    doc = minimal()
    doc["features"] = [{"type": "load"}, {"type": "fix_length"}]
    with pytest.raises(
        RecipeError, match=r"must end in a step that makes frames.*ends with audio"
    ) as ei:
        build(load_recipe(write(tmp_path, doc)))
    assert problem_paths(ei.value) == ["features[1]"]


# -- each component built once ---------------------------------------------------------------------

BUILT = collections.Counter()


def counting(base, key):
    """A subclass of ``base`` whose constructor counts its calls in ``BUILT[key]`` (with the
    base's signature, so the recipe checks its parameters as usual)."""

    @functools.wraps(base.__init__)
    def __init__(self, *args, **kwargs):
        BUILT[key] += 1
        base.__init__(self, *args, **kwargs)

    return type(f"Counting{base.__name__}", (base,), {"__init__": __init__})


CountingPowerToDb = counting(PowerToDb, "feature step")
CountingTones = counting(SyntheticTones, "source")
CountingKWS = counting(KeywordSpotting, "task")


class CountingGRU(GRU):
    def __init__(self, units, **kwargs):  # Keras records a layer's own arguments: no *args
        BUILT["layer"] += 1
        super().__init__(units, **kwargs)

    @classmethod
    def from_config(cls, config):  # a saved model read back (the best epoch), not the recipe
        BUILT["layer from a saved model"] += 1
        return super().from_config(config)


@pytest.fixture
def counting_components():
    names = [(FEATURES, "counting_power_to_db", CountingPowerToDb),
             (LAYERS, "counting_gru", CountingGRU),
             (SOURCES, "counting_tones", CountingTones),
             (TASKS, "counting_kws", CountingKWS)]  # fmt: skip
    for registry, name, cls in names:
        registry.register(name, cls)
    BUILT.clear()
    yield BUILT
    for registry, name, _ in names:
        registry.unregister(name)


def test_seqkit_train_builds_each_component_once(tmp_path, counting_components):
    doc = tiny_recipe(tmp_path / "data", layer={"type": "counting_gru", "units": 8}, epochs=1)
    doc["data"]["source"]["type"] = "counting_tones"
    doc["features"][-1] = {"type": "counting_power_to_db"}
    doc["task"] = {"type": "counting_kws"}
    recipe = write_recipe(tmp_path / "count.yaml", doc)
    result = CliRunner().invoke(cli, ["train", str(recipe), "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    from_saved = counting_components.pop("layer from a saved model", 0)
    assert from_saved >= 1  # the best model is read back for the final metrics
    layers_from_recipe = counting_components["layer"] - from_saved
    assert counting_components["feature step"] == 1
    assert counting_components["source"] == 1
    assert counting_components["task"] == 1
    assert layers_from_recipe == 2  # once for the recipe check and dry run, once for training


def test_a_second_build_of_one_recipe_builds_fresh_components(tmp_path, counting_components):
    doc = tiny_recipe(tmp_path / "data", layer={"type": "counting_gru", "units": 8})
    doc["data"]["source"]["type"] = "counting_tones"
    doc["features"][-1] = {"type": "counting_power_to_db"}
    doc["task"] = {"type": "counting_kws"}
    recipe = load_recipe(write_recipe(tmp_path / "count.yaml", doc))
    assert dict(counting_components) == {"feature step": 1, "layer": 1, "source": 1, "task": 1}
    first = build(recipe)
    assert dict(counting_components) == {"feature step": 1, "layer": 1, "source": 1, "task": 1}
    second = build(recipe)  # two trainings of one recipe object never share a task or a source
    assert second.task is not first.task and second.parts.source is not first.parts.source
    assert dict(counting_components) == {"feature step": 2, "layer": 2, "source": 2, "task": 2}
