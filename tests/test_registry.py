"""Tests of seqkit.registry.Registry: built-ins, plugins (entry points), errors and laziness.

Each test builds its own ``Registry`` and fakes ``importlib.metadata.entry_points`` so that
what is installed in the environment does not matter; the global registries are only read.
"""

from __future__ import annotations

import importlib.metadata
import logging
import sys
from dataclasses import dataclass

import pytest

import seqkit.registry
from seqkit.errors import RegistryError
from seqkit.registry import BUILTIN, LAYERS, Registry

GROUP = "seqkit.test_layers"
BUILTINS = {
    "gru": "seqkit.layers:GRU",
    "keras_gru": "keras.layers:GRU",
    "dense": "keras.layers:Dense",
}


@dataclass
class FakeDist:
    name: str
    version: str


@dataclass
class FakeEntryPoint:
    """What the registry reads of an ``importlib.metadata.EntryPoint``, with a distribution."""

    name: str
    value: str
    group: str = GROUP
    dist: FakeDist | None = None


@pytest.fixture
def entry_points(monkeypatch):
    """Install fake entry points: ``entry_points(ep, ...)``; returns the list."""
    installed: list = []

    def fake(group=None, **_):
        return [ep for ep in installed if group is None or ep.group == group]

    monkeypatch.setattr(importlib.metadata, "entry_points", fake)

    def add(*eps):
        installed.extend(eps)
        return installed

    return add


@pytest.fixture
def seqkit_log(caplog):
    """Capture the ``seqkit`` logger's warnings even if something turned off its propagation."""
    logger = logging.getLogger("seqkit")
    old_propagate = logger.propagate
    logger.propagate = False  # records reach caplog once, through the handler added here
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.WARNING, logger="seqkit")
    yield caplog
    logger.removeHandler(caplog.handler)
    logger.propagate = old_propagate


@pytest.fixture
def plugin_modules(tmp_path, monkeypatch):
    """Write modules into tmp_path (on sys.path); forget them from sys.modules afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    written = []

    def write(name, source):
        (tmp_path / f"{name}.py").write_text(source)
        written.append(name)
        return tmp_path / f"{name}.py"

    yield write
    for name in written:
        sys.modules.pop(name, None)


def _fresh(builtins=BUILTINS):
    return Registry("layer", GROUP, dict(builtins))


# -- built-ins -------------------------------------------------------------------------------------
def test_builtin_lookup(entry_points):
    import seqkit.layers

    reg = _fresh()
    assert reg.get("gru") is seqkit.layers.GRU
    assert reg.entry("gru").source == BUILTIN
    assert not reg.entry("gru").is_plugin
    assert "gru" in reg and "nope" not in reg


def test_global_layers_registry_read_only():
    import keras

    import seqkit.layers

    assert LAYERS.get("gru") is seqkit.layers.GRU
    assert LAYERS.get("lstm") is keras.layers.LSTM
    assert {"gru", "keras_gru", "lstm", "rnn", "dense", "dropout"} <= set(LAYERS.names())


# -- unknown names ---------------------------------------------------------------------------------
def test_unknown_name_suggests_the_closest(entry_points):
    reg = _fresh()
    with pytest.raises(RegistryError, match=r"^Unknown layer 'gruu'\. Did you mean 'gru'\?") as err:
        reg.get("gruu")
    assert "Available layers: dense, gru, keras_gru." in str(err.value)
    with pytest.raises(RegistryError, match=r"Unknown layer 'gruu'\. Did you mean 'gru'\?"):
        reg.entry("gruu")


def test_unknown_name_without_close_match(entry_points):
    with pytest.raises(RegistryError) as err:
        _fresh().get("transformer")
    assert "Did you mean" not in str(err.value)
    assert str(err.value).startswith("Unknown layer 'transformer'. Available layers:")


def test_unknown_name_lists_plugins_with_their_source(entry_points):
    entry_points(FakeEntryPoint("mgu", "somewhere:MGU", dist=FakeDist("seqkit-example", "0.1.0")))
    expected = r"Did you mean 'mgu'\?.*mgu \(seqkit-example 0\.1\.0\)"
    with pytest.raises(RegistryError, match=expected):
        _fresh().get("mug")


# -- registration in code --------------------------------------------------------------------------
def test_register_twice_raises_unless_override(entry_points):
    reg = _fresh()

    def first():
        pass

    def second():
        pass

    assert reg.register("thing", first) is first
    assert reg.get("thing") is first
    with pytest.raises(RegistryError, match=r"Layer 'thing' is already registered.*override=True"):
        reg.register("thing", second)
    assert reg.get("thing") is first
    reg.register("thing", second, override=True)
    assert reg.get("thing") is second


def test_register_over_a_builtin_raises(entry_points):
    reg = _fresh()
    expected = r"'gru' is already registered \(from seqkit \(built-in\)\)"
    with pytest.raises(RegistryError, match=expected):
        reg.register("gru", object())


def test_register_as_decorator_and_unregister(entry_points):
    reg = _fresh()

    @reg.register("deco")
    def deco():
        pass

    assert deco is not None and reg.get("deco") is deco
    reg.unregister("deco")
    assert "deco" not in reg.names()


def test_register_over_an_installed_plugin_raises(entry_points):
    # Whether or not the entry points were listed yet, a plugin's name is taken.
    entry_points(FakeEntryPoint("mgu", "somewhere:MGU", dist=FakeDist("seqkit-example", "0.1.0")))
    reg = _fresh()
    expected = r"'mgu' is already registered \(from seqkit-example 0\.1\.0\)"
    with pytest.raises(RegistryError, match=expected):
        reg.register("mgu", object())
    reg.register("mgu", "mine", override=True)
    assert reg.get("mgu") == "mine"


# -- plugins (entry points) ------------------------------------------------------------------------
def test_plugin_is_found_and_loaded_lazily(entry_points, plugin_modules):
    plugin_modules("fake_plugin_ok", "class Thing:\n    pass\n")
    entry_points(FakeEntryPoint("thing", "fake_plugin_ok:Thing", dist=FakeDist("ok-plugin", "2.0")))
    reg = _fresh()
    assert "thing" in reg.names()
    assert "fake_plugin_ok" not in sys.modules
    entry = reg.entry("thing")
    assert entry.is_plugin and entry.source == "ok-plugin 2.0" and entry.obj is None
    thing = reg.get("thing")
    assert thing is sys.modules["fake_plugin_ok"].Thing
    assert reg.get("thing") is thing


def test_entry_point_shadowing_a_builtin_is_ignored_with_warning(entry_points, seqkit_log):
    import seqkit.layers

    entry_points(FakeEntryPoint("gru", "evil_plugin:GRU", dist=FakeDist("evil-plugin", "6.6.6")))
    reg = _fresh()
    assert reg.get("gru") is seqkit.layers.GRU
    assert reg.entry("gru").source == BUILTIN
    warnings = [r.getMessage() for r in seqkit_log.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "evil-plugin 6.6.6" in warnings[0]
    assert "'gru'" in warnings[0] and BUILTIN in warnings[0]


def test_real_entry_point_object_without_distribution(entry_points, seqkit_log):
    # importlib.metadata.EntryPoint built by hand has dist None: its value names the source.
    ep = importlib.metadata.EntryPoint(name="dense", value="other_plugin:Dense", group=GROUP)
    entry_points(ep)
    reg = _fresh()
    assert reg.entry("dense").source == BUILTIN
    assert any("other_plugin:Dense" in r.getMessage() for r in seqkit_log.records)


def test_two_plugins_claiming_one_name_are_ambiguous(entry_points, plugin_modules):
    plugin_modules("a_plugin", "MGU = 'a'\n")
    plugin_modules("b_plugin", "MGU = 'b'\n")
    entry_points(
        FakeEntryPoint("mgu", "b_plugin:MGU", dist=FakeDist("b-plugin", "1.0")),
        FakeEntryPoint("mgu", "a_plugin:MGU", dist=FakeDist("a-plugin", "1.0")),
        FakeEntryPoint("other", "a_plugin:MGU", dist=FakeDist("a-plugin", "1.0")),
    )
    reg = _fresh()
    # Neither wins by install or sort order: using the name fails and names both.
    with pytest.raises(
        RegistryError, match=r"claimed by two plugins, a-plugin 1.0 and b-plugin 1.0"
    ):
        reg.get("mgu")
    assert reg.entry("mgu").source == "a-plugin 1.0 + b-plugin 1.0"
    assert reg.get("other") == "a"  # the rest of the registry is unaffected


def test_seqkit_own_entry_points_are_skipped(entry_points, seqkit_log):
    entry_points(FakeEntryPoint("gru", "seqkit.layers:GRU", dist=FakeDist("seqkit", "0.1.0")))
    reg = _fresh()
    assert reg.entry("gru").source == BUILTIN
    assert not seqkit_log.records


def test_broken_metadata_does_not_break_the_registry(monkeypatch, seqkit_log):
    def broken(**_):
        raise RuntimeError("metadata on fire")

    monkeypatch.setattr(importlib.metadata, "entry_points", broken)
    reg = _fresh()
    assert reg.names() == ["dense", "gru", "keras_gru"]
    assert any("metadata on fire" in r.getMessage() for r in seqkit_log.records)


BROKEN_MODULE = """\
import pathlib
pathlib.Path(__file__).with_suffix(".imported").touch()
raise RuntimeError("boom from the plugin")
"""


def test_broken_plugin_fails_only_when_used(entry_points, plugin_modules):
    path = plugin_modules("fake_plugin_broken", BROKEN_MODULE)
    plugin_modules("fake_plugin_fine", "class Fine:\n    pass\n")
    entry_points(
        FakeEntryPoint("broken", "fake_plugin_broken:Layer", dist=FakeDist("broken-plugin", "0.3")),
        FakeEntryPoint("fine", "fake_plugin_fine:Fine", dist=FakeDist("fine-plugin", "1.0")),
    )
    reg = _fresh()
    assert reg.names() == ["broken", "dense", "fine", "gru", "keras_gru"]
    assert {d["name"]: d["source"] for d in reg.describe()}["broken"] == "broken-plugin 0.3"
    assert reg.get("fine").__name__ == "Fine"
    assert not path.with_suffix(".imported").exists()

    for _ in range(2):  # the failure is remembered, and raised again on the next use
        with pytest.raises(RegistryError) as err:
            reg.get("broken")
        message = str(err.value)
        assert "plugin layer 'broken'" in message
        assert "fake_plugin_broken:Layer" in message
        assert "broken-plugin 0.3" in message
        assert "RuntimeError: boom from the plugin" in message
        assert isinstance(err.value.__cause__, RuntimeError)
    assert path.with_suffix(".imported").exists()

    # Everything else still works.
    import seqkit.layers

    assert reg.get("gru") is seqkit.layers.GRU
    assert reg.get("fine").__name__ == "Fine"
    assert len(reg.describe()) == 5


def test_missing_attribute_in_plugin(entry_points, plugin_modules):
    plugin_modules("fake_plugin_noattr", "X = 1\n")
    dist = FakeDist("na-plugin", "1")
    entry_points(FakeEntryPoint("na", "fake_plugin_noattr:Missing", dist=dist))
    with pytest.raises(RegistryError, match=r"na-plugin 1.*AttributeError"):
        _fresh().get("na")


def test_broken_builtin_is_not_called_a_plugin(entry_points):
    reg = _fresh({"gone": "seqkit_no_such_module_xyz:Thing"})
    with pytest.raises(RegistryError) as err:
        reg.get("gone")
    message = str(err.value)
    assert "layer 'gone'" in message and "plugin" not in message
    assert "ModuleNotFoundError" in message and BUILTIN in message


def test_describe_imports_nothing(entry_points, plugin_modules):
    path = plugin_modules("fake_plugin_describe", BROKEN_MODULE)
    builtin_path = plugin_modules("fake_builtin_describe", BROKEN_MODULE)
    entry_points(
        FakeEntryPoint("p", "fake_plugin_describe:P", dist=FakeDist("p-plugin", "1.0")),
    )
    reg = _fresh({"b": "fake_builtin_describe:B"})
    rows = reg.describe()
    assert rows == [
        {"name": "b", "source": BUILTIN, "ref": "fake_builtin_describe:B"},
        {"name": "p", "source": "p-plugin 1.0", "ref": "fake_plugin_describe:P"},
    ]
    assert reg.names() == ["b", "p"] and "p" in reg and reg.entry("p").obj is None
    assert not path.with_suffix(".imported").exists()
    assert not builtin_path.with_suffix(".imported").exists()
    assert "fake_plugin_describe" not in sys.modules
    assert "fake_builtin_describe" not in sys.modules


# -- Keras serialization of plugin layers ----------------------------------------------------------
def test_undecorated_plugin_layer_is_registered_with_keras(entry_points, plugin_modules):
    import keras

    plugin_modules(
        "fake_plugin_layer",
        "import keras\n\nclass PlainPluginLayer(keras.layers.Layer):\n"
        "    def call(self, x):\n        return x\n",
    )
    dist = FakeDist("my-plugin", "0.1")
    entry_points(FakeEntryPoint("plain", "fake_plugin_layer:PlainPluginLayer", dist=dist))
    cls = _fresh().get("plain")
    assert keras.saving.get_registered_name(cls) == "my_plugin>PlainPluginLayer"
    assert keras.saving.get_registered_object("my_plugin>PlainPluginLayer") is cls


def test_load_plugin_layers_reports_failures(entry_points, plugin_modules, monkeypatch):
    plugin_modules("fake_plugin_lpl", BROKEN_MODULE)
    plugin_modules("fake_plugin_lpl_ok", "class Ok:\n    pass\n")
    entry_points(
        FakeEntryPoint("bad", "fake_plugin_lpl:Bad", dist=FakeDist("bad-plugin", "1.0")),
        FakeEntryPoint("ok", "fake_plugin_lpl_ok:Ok", dist=FakeDist("ok-plugin", "1.0")),
    )
    reg = _fresh({"gone": "seqkit_no_such_module_xyz:Thing"})  # built-ins are not imported
    monkeypatch.setattr(seqkit.registry, "LAYERS", reg)
    failures = seqkit.registry.load_plugin_layers()
    assert len(failures) == 1 and "bad-plugin 1.0" in failures[0]
    assert reg.entry("ok").obj is sys.modules["fake_plugin_lpl_ok"].Ok
    assert reg.entry("gone").obj is None and reg.entry("gone").error is None
