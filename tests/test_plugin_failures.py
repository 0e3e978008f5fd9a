"""Hostile and broken plugins: each is reported with its distribution; the rest keeps working.

A plugin that raises on import (even ``SystemExit``), whose entry point names something of the
wrong kind, that registers a name already taken, or that declares one name twice, is reported
by name and distribution when used and marked BROKEN by ``seqkit list``; built-ins and healthy
plugins are unaffected. ``SEQKIT_DISABLE_PLUGINS=1`` runs with built-ins only. Entry points are
faked with the helpers of ``test_registry`` (nothing is installed).
"""
# ruff: noqa: F811 -- the fixtures imported from test_registry are redefined as arguments

from __future__ import annotations

import copy
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner
from test_registry import (  # noqa: F401 -- fixtures, reused
    FakeDist,
    FakeEntryPoint,
    entry_points,
    plugin_modules,
    seqkit_log,
)

import seqkit.recipe
import seqkit.registry
from seqkit.cli import cli
from seqkit.errors import RecipeError, RegistryError
from seqkit.recipe import validate_dict
from seqkit.registry import (
    BUILTIN,
    LAYERS,
    Registry,
    component_class,
    keras_layer_class,
    load_plugin_layers,
    plugins_disabled,
)

LAYER_GROUP = "seqkit.layers"
FEATURE_GROUP = "seqkit.features"

GOOD_LAYER = """\
import keras

class Good(keras.layers.Layer):
    def call(self, x):
        return x
"""
RAISES = """\
import pathlib
pathlib.Path(__file__).with_suffix(".imported").touch()
raise RuntimeError("boom from the plugin")
"""
EXITS = "import sys\nsys.exit('plugin says bye')\n"
WRONG_KINDS = """\
import keras

def make_layer(units=8):
    return keras.layers.Dense(units)

class NotALayer:
    pass

INSTANCE = keras.layers.Dense(3)
NUMBER = 3
"""


def ep(name, value, dist, group=LAYER_GROUP, version="1.0"):
    return FakeEntryPoint(name, value, group=group, dist=FakeDist(dist, version))


def layers_registry():
    return Registry("layer", LAYER_GROUP, {"gru": "seqkit.layers:GRU"}, check=keras_layer_class)


def features_registry():
    return Registry(
        "feature step", FEATURE_GROUP, {"load": "seqkit.features:Load"}, check=component_class
    )


def test_the_global_registries_check_what_they_hold():
    assert seqkit.registry.LAYERS.check is keras_layer_class
    for name in ("features", "sources", "tasks"):
        assert seqkit.registry.REGISTRIES[name].check is component_class


# -- a plugin that raises on import ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "error"),
    [(RAISES, "RuntimeError: boom from the plugin"), (EXITS, "SystemExit: plugin says bye")],
    ids=["raises", "sys.exit"],
)
def test_a_plugin_that_fails_on_import_is_named_and_isolated(
    entry_points, plugin_modules, source, error
):
    plugin_modules("pf_fails", source)
    plugin_modules("pf_good", GOOD_LAYER)
    entry_points(
        ep("bad", "pf_fails:Layer", "bad-plugin", version="0.3"),
        ep("good", "pf_good:Good", "good-plugin"),
    )
    reg = layers_registry()
    with pytest.raises(RegistryError) as err:
        reg.get("bad")
    assert str(err.value) == (
        f"Could not load plugin layer 'bad' (pf_fails:Layer) from bad-plugin 0.3: {error}. "
        "Reinstall or fix that package, or remove it from the recipe."
    )
    import seqkit.layers

    assert reg.get("gru") is seqkit.layers.GRU
    assert reg.get("good") is sys.modules["pf_good"].Good


# -- an entry point that names the wrong kind of thing ---------------------------------------------


@pytest.mark.parametrize(
    ("attr", "what"),
    [
        ("make_layer", "the function pf_kinds.make_layer"),
        ("NotALayer", "the class pf_kinds.NotALayer"),
        ("INSTANCE", "Dense <Dense name=dense"),
        ("NUMBER", "int 3"),
    ],
)
def test_a_layer_entry_point_must_name_a_keras_layer_class(
    entry_points, plugin_modules, attr, what
):
    plugin_modules("pf_kinds", WRONG_KINDS)
    plugin_modules("pf_good", GOOD_LAYER)
    entry_points(
        ep("odd", f"pf_kinds:{attr}", "odd-plugin"), ep("good", "pf_good:Good", "good-plugin")
    )
    reg = layers_registry()
    with pytest.raises(RegistryError) as err:
        reg.get("odd")
    message = str(err.value)
    assert message.startswith(
        f"Could not load plugin layer 'odd' (pf_kinds:{attr}) from odd-plugin 1.0: TypeError: "
        f"pf_kinds:{attr} is not a Keras Layer class; it is {what}"
    )
    assert reg.get("good").__name__ == "Good"  # the rest keeps working
    with pytest.raises(RegistryError, match="odd-plugin 1.0"):  # and the failure is remembered
        reg.get("odd")


def test_a_module_is_not_a_layer_either(entry_points, plugin_modules):
    plugin_modules("pf_module", "X = 1\n")
    entry_points(ep("mod", "pf_module", "mod-plugin"))
    with pytest.raises(
        RegistryError, match=r"pf_module is not a Keras Layer class; it is the module pf_module"
    ):
        layers_registry().get("mod")


def test_feature_source_task_entry_points_must_name_a_class(entry_points, plugin_modules):
    plugin_modules(
        "pf_feat", "def step(x=1):\n    return x\n\nclass Step:\n    pass\n\nVALUE = 'x'\n"
    )
    entry_points(
        ep("fn", "pf_feat:step", "feat-plugin", group=FEATURE_GROUP),
        ep("value", "pf_feat:VALUE", "feat-plugin", group=FEATURE_GROUP),
        ep("cls", "pf_feat:Step", "feat-plugin", group=FEATURE_GROUP),
    )
    reg = features_registry()
    with pytest.raises(
        RegistryError,
        match=r"feat-plugin 1\.0: TypeError: pf_feat:step is not a class \(seqkit calls it with "
        r"the recipe's parameters\); it is the function pf_feat\.step",
    ):
        reg.get("fn")
    with pytest.raises(RegistryError, match=r"pf_feat:VALUE is not a class.*it is str 'x'"):
        reg.get("value")
    assert reg.get("cls") is sys.modules["pf_feat"].Step


def test_registering_a_wrong_kind_in_code_is_refused():
    reg = layers_registry()
    with pytest.raises(
        RegistryError, match=r"Cannot register layer 'fn': .*helper is not a Keras Layer class"
    ):

        @reg.register("fn")
        def helper():
            pass

    assert "fn" not in reg.names()


# -- a plugin that registers a name twice ----------------------------------------------------------

HIJACK = """\
import keras
from seqkit.registry import LAYERS

class Evil(keras.layers.Layer):
    pass

LAYERS.register("gru", Evil, override=True)
"""
REGISTERS_ITS_OWN = """\
import keras
from seqkit.registry import LAYERS

@LAYERS.register("own")
class Own(keras.layers.Layer):
    pass

@LAYERS.register("own_extra")
class Extra(keras.layers.Layer):
    pass
"""


def test_a_plugin_cannot_take_a_registered_name_even_with_override(
    entry_points, plugin_modules, monkeypatch
):
    import seqkit.layers

    plugin_modules("pf_hijack", HIJACK)
    entry_points(ep("evil", "pf_hijack:Evil", "evil-plugin", version="6.6.6"))
    reg = layers_registry()
    monkeypatch.setattr(seqkit.registry, "LAYERS", reg)
    with pytest.raises(RegistryError) as err:
        reg.get("evil")
    assert (
        "RegistryError: plugin evil-plugin 6.6.6 registers layer 'gru' while it is imported, but "
        "that name is already registered (from seqkit (built-in)); a plugin may not replace "
        "another component" in str(err.value)
    )
    assert str(err.value).startswith(
        "Could not load plugin layer 'evil' (pf_hijack:Evil) from evil-plugin 6.6.6"
    )
    assert reg.get("gru") is seqkit.layers.GRU


def test_a_plugin_may_register_its_own_names(entry_points, plugin_modules, monkeypatch):
    plugin_modules("pf_own", REGISTERS_ITS_OWN)
    entry_points(ep("own", "pf_own:Own", "own-plugin"))
    reg = layers_registry()
    monkeypatch.setattr(seqkit.registry, "LAYERS", reg)
    own = reg.get("own")  # its decorator registers the name its entry point declares: fine
    assert own is sys.modules["pf_own"].Own
    extra = reg.entry("own_extra")  # a new name it registers is attributed to its distribution
    assert extra.obj is sys.modules["pf_own"].Extra
    assert extra.source == "own-plugin 1.0" and extra.is_plugin


def test_one_distribution_declaring_a_name_twice(entry_points, plugin_modules):
    plugin_modules("pf_twice", GOOD_LAYER)
    entry_points(
        ep("same", "pf_twice:Good", "twice-plugin"),
        ep("same", "pf_twice:Good", "twice-plugin"),  # listed twice, one target: harmless
        ep("split", "pf_twice:Good", "twice-plugin"),
        ep("split", "pf_twice:Other", "twice-plugin"),
    )
    reg = layers_registry()
    assert reg.get("same").__name__ == "Good"
    with pytest.raises(
        RegistryError,
        match=r"twice-plugin 1\.0 declares the name twice \(pf_twice:Good and pf_twice:Other\)",
    ):
        reg.get("split")


# -- recipes and the model loader ------------------------------------------------------------------

RECIPE = {
    "data": {"source": {"type": "folder", "root": "data/words"}},
    "features": [{"type": "load", "sample_rate": 16000}, {"type": "fix_length", "seconds": 1.0},
                 {"type": "melspectrogram", "n_fft": 512, "hop_length": 160, "n_mels": 40}],
    "model": {"layers": [{"type": "gru", "units": 8}]},
    "task": {"type": "kws"},
}  # fmt: skip
CRASHES_IN_INIT = """\
import keras

class Crashy(keras.layers.Layer):
    def __init__(self, units=8, **kwargs):
        super().__init__(**kwargs)
        raise RuntimeError("plugin bug in __init__")
"""


def test_a_recipe_using_a_broken_plugin_names_it_and_others_validate(
    entry_points, plugin_modules, monkeypatch
):
    plugin_modules("pf_recipe_bad", RAISES)
    plugin_modules("pf_recipe_crashy", CRASHES_IN_INIT)
    entry_points(
        ep("bad", "pf_recipe_bad:Layer", "bad-plugin"),
        ep("crashy", "pf_recipe_crashy:Crashy", "crashy-plugin"),
    )
    reg = layers_registry()
    monkeypatch.setattr(seqkit.recipe, "LAYERS", reg)
    assert validate_dict(copy.deepcopy(RECIPE)).model.layers[0].type == "gru"
    doc = copy.deepcopy(RECIPE)
    doc["model"]["layers"] = [
        {"type": "bad", "units": 8},
        {"type": "crashy"},
        {"type": "gru", "unitz": 1},
    ]
    with pytest.raises(RecipeError) as err:
        validate_dict(doc, file="r.yaml")
    problems = dict(err.value.problems)
    assert (
        "from bad-plugin 1.0: RuntimeError: boom from the plugin"
        in problems["model.layers[0].type"]
    )
    assert problems["model.layers[1]"] == (
        "plugin layer 'crashy' from crashy-plugin 1.0 failed: RuntimeError: plugin bug in __init__"
    )
    assert "did you mean 'units'?" in problems["model.layers[2].unitz"]  # checking went on


def test_load_plugin_layers_reports_a_non_layer(entry_points, plugin_modules, monkeypatch):
    plugin_modules("pf_lpl", WRONG_KINDS)
    plugin_modules("pf_good", GOOD_LAYER)
    entry_points(
        ep("fn", "pf_lpl:make_layer", "fn-plugin"), ep("good", "pf_good:Good", "good-plugin")
    )
    reg = layers_registry()
    monkeypatch.setattr(seqkit.registry, "LAYERS", reg)
    failures = load_plugin_layers()
    assert len(failures) == 1
    assert "fn-plugin 1.0" in failures[0] and "is not a Keras Layer class" in failures[0]
    assert reg.entry("good").obj is sys.modules["pf_good"].Good


# -- seqkit list -----------------------------------------------------------------------------------


@pytest.fixture
def cli_registries(monkeypatch):
    """Fresh registries for the CLI: ``seqkit list`` reads ``seqkit.registry.REGISTRIES``."""
    regs = {
        "layers": layers_registry(),
        "features": features_registry(),
        "sources": Registry("data source", "seqkit.sources", {}, check=component_class),
        "tasks": Registry(
            "task", "seqkit.tasks", {"kws": "seqkit.tasks:KeywordSpotting"}, check=component_class
        ),
    }
    regs = {kind: regs.get(kind, Registry(kind, f"seqkit.{kind}", {})) for kind in seqkit.cli.KINDS}
    monkeypatch.setattr(seqkit.registry, "REGISTRIES", regs)
    return regs


def _rows(stdout: str) -> dict[str, str]:
    return {line.split()[0]: line for line in stdout.splitlines() if line.startswith("  ")}


def test_list_shows_healthy_plugins_and_marks_broken_ones(
    entry_points, plugin_modules, cli_registries
):
    plugin_modules("pf_list_bad", RAISES)
    plugin_modules("pf_list_kinds", WRONG_KINDS)
    plugin_modules("pf_list_good", GOOD_LAYER)
    entry_points(
        ep("bad", "pf_list_bad:Layer", "bad-plugin", version="0.3"),
        ep("fn", "pf_list_kinds:make_layer", "fn-plugin"),
        ep("good", "pf_list_good:Good", "good-plugin", version="2.0"),
        ep("stepfn", "pf_list_kinds:make_layer", "fn-plugin", group=FEATURE_GROUP),
    )
    result = CliRunner().invoke(cli, ["list"])
    assert result.exit_code == 0, result.output
    rows = _rows(result.stdout)
    assert rows["good"].split() == ["good", "good-plugin", "2.0", "pf_list_good:Good"]
    assert rows["gru"].split() == ["gru", "seqkit", "(built-in)", "seqkit.layers:GRU"]
    assert rows["kws"].split()[-1] == "seqkit.tasks:KeywordSpotting"
    for name in ("bad", "fn", "stepfn"):
        assert rows[name].endswith("BROKEN (see stderr)"), rows[name]
    assert "BROKEN" not in rows["good"] + rows["gru"] + rows["load"]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("seqkit: warning:")]
    assert len(warnings) == 3
    assert "from bad-plugin 0.3: RuntimeError: boom from the plugin" in warnings[0]
    assert (
        "from fn-plugin 1.0: TypeError: pf_list_kinds:make_layer is not a Keras Layer"
        in warnings[1]
    )
    assert "feature step 'stepfn'" in warnings[2] and "is not a class" in warnings[2]


# -- SEQKIT_DISABLE_PLUGINS ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "disabled"),
    [
        ("1", True),
        ("true", True),
        ("yes", True),
        ("0", False),
        ("", False),
        ("off", False),
        (None, False),
    ],
)
def test_disable_plugins_values(monkeypatch, value, disabled):
    if value is None:
        monkeypatch.delenv("SEQKIT_DISABLE_PLUGINS", raising=False)
    else:
        monkeypatch.setenv("SEQKIT_DISABLE_PLUGINS", value)
    assert plugins_disabled() is disabled


def test_disabled_plugins_are_neither_listed_nor_imported(
    entry_points, plugin_modules, monkeypatch, cli_registries
):
    path = plugin_modules("pf_disabled", RAISES)
    entry_points(ep("plug", "pf_disabled:Layer", "some-plugin"))
    monkeypatch.setenv("SEQKIT_DISABLE_PLUGINS", "1")
    reg = layers_registry()
    assert reg.names() == ["gru"]
    with pytest.raises(RegistryError, match=r"^Unknown layer 'plug'\. Available layers: gru\.$"):
        reg.get("plug")
    result = CliRunner().invoke(cli, ["list", "layers"])
    assert result.exit_code == 0
    assert list(_rows(result.stdout)) == ["gru"]
    assert "SEQKIT_DISABLE_PLUGINS is set: built-ins only" in result.stderr
    assert not path.with_suffix(".imported").exists() and "pf_disabled" not in sys.modules


def test_plugins_are_back_when_not_disabled(entry_points, plugin_modules, monkeypatch):
    plugin_modules("pf_enabled", GOOD_LAYER)
    entry_points(ep("plug", "pf_enabled:Good", "some-plugin"))
    monkeypatch.setenv("SEQKIT_DISABLE_PLUGINS", "0")
    assert layers_registry().names() == ["gru", "plug"]


def test_installed_plugins_are_hidden_in_a_fresh_process():
    """End to end, with whatever is installed (the example plugin): built-in layers only."""
    code = "from seqkit.registry import LAYERS; print(','.join(LAYERS.names()))"
    env = {**os.environ, "SEQKIT_DISABLE_PLUGINS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    builtins = [row["name"] for row in LAYERS.describe() if row["source"] == BUILTIN]
    assert out.stdout.strip().split(",") == builtins


# -- loading a model imports plugin layers only when the model needs one --------------------------

SAVED_LAYER = """\
import keras

@keras.saving.register_keras_serializable(package="pf_saved")
class Scale(keras.layers.Layer):
    def call(self, x):
        return 2.0 * x
"""


def test_a_model_of_builtin_layers_loads_without_importing_plugins(
    entry_points, plugin_modules, monkeypatch, seqkit_log, tmp_path
):
    import keras

    from seqkit.runs import load_model

    broken = plugin_modules("pf_broken_on_load", RAISES)
    entry_points(ep("crashy", "pf_broken_on_load:Thing", "crashy-plugin"))
    monkeypatch.setattr(seqkit.registry, "LAYERS", layers_registry())
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.save(tmp_path / "builtin.keras")
    assert load_model(tmp_path / "builtin.keras").count_params() == 8
    assert seqkit_log.records == []  # no warning about a plugin the model does not use
    assert not broken.with_suffix(".imported").exists()  # not even imported


def test_a_model_that_needs_a_plugin_layer_imports_them_and_warns_then(
    entry_points, plugin_modules, monkeypatch, seqkit_log, tmp_path
):
    import keras

    from seqkit.runs import load_model

    plugin_modules("pf_saved", SAVED_LAYER)
    broken = plugin_modules("pf_broken_on_load", RAISES)
    entry_points(
        ep("scale", "pf_saved:Scale", "scale-plugin"),
        ep("crashy", "pf_broken_on_load:Thing", "crashy-plugin"),
    )
    monkeypatch.setattr(seqkit.registry, "LAYERS", layers_registry())
    from pf_saved import Scale

    keras.Sequential([keras.Input((3,)), Scale()]).save(tmp_path / "plugin.keras")
    # as in a fresh process: Keras knows no class "pf_saved>Scale" until the plugin is imported
    monkeypatch.delitem(keras.saving.get_custom_objects(), "pf_saved>Scale")
    monkeypatch.delitem(sys.modules, "pf_saved")
    model = load_model(tmp_path / "plugin.keras")
    assert type(model.layers[0]).__module__ == "pf_saved"
    assert float(model(keras.ops.ones((1, 3)))[0, 0]) == 2.0
    assert broken.with_suffix(".imported").exists()
    assert [r.getMessage() for r in seqkit_log.records] == [
        "Could not load plugin layer 'crashy' (pf_broken_on_load:Thing) from crashy-plugin 1.0: "
        "RuntimeError: boom from the plugin. Reinstall or fix that package, or remove it from "
        "the recipe."
    ]
