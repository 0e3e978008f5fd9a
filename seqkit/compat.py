"""Module paths of seqkit 0.1 that moved in 0.2, kept importable for plugins and scripts.

seqkit 0.2 reorganised the package (``seqkit.runs``, ``seqkit.build``, ``seqkit.training``,
``seqkit.speech``, the music modules; README "For contributors"). Code written against 0.1
imports the old paths -- ``from seqkit.train import train, Run``, ``from seqkit.sources import
SpeechCommands``, ``import seqkit.music.tasks`` -- and keeps working: importing ``seqkit``
installs a finder that answers each old name with

* the new module itself, where a module moved whole (``seqkit.augment`` is
  ``seqkit.speech.augment``: the same module object, so patching it patches the real one);
* a thin module that looks each attribute up in the new modules, in order, where an old module
  was split (``seqkit.train``: ``seqkit.training.trainer``, ``seqkit.runs``, ``seqkit.build``,
  ``seqkit.training.callbacks``).

The table is data, not imports: nothing here is imported until an old path is used, and the
import contracts (pyproject.toml) see no edge from this module.

The same finder makes models that seqkit saved load after a plain ``import seqkit``
(``keras.models.load_model("RUN/model.keras")``): they name seqkit's Keras objects
(``seqkit>GRU``, ``seqkit>StepNLLLoss``, ...), which Keras finds only once the modules in
``KERAS_OBJECTS`` have registered them. Importing ``seqkit`` does not import Keras (it costs
seconds), so those modules are imported as soon as Keras is: at once when it already is, else
right after ``keras`` finishes its own import (its loader is wrapped for that one import, and
given back to the module afterwards). Once only.
"""

from __future__ import annotations

import importlib
import sys
import types
from importlib.machinery import ModuleSpec  # (importlib.abc / .util: 10 ms more at start-up)

#: old module -> the modules that now hold its names, searched in order.
MOVED: dict[str, tuple[str, ...]] = {
    "seqkit.train": ("seqkit.training.trainer", "seqkit.runs", "seqkit.build",
                     "seqkit.training.callbacks"),  # fmt: skip
    "seqkit.fit": ("seqkit.training.fit", "seqkit.runs"),
    "seqkit.distribute": ("seqkit.training.distribute",),
    "seqkit.augment": ("seqkit.speech.augment",),
    "seqkit.synth": ("seqkit.speech.sources.synthetic", "seqkit.speech.sources.espeak"),
    "seqkit.sources": (
        "seqkit.speech.sources.common",
        "seqkit.speech.sources.speech_commands",
        "seqkit.speech.sources.pattern",
        "seqkit.speech.sources.manifest",
    ),
    "seqkit.streaming": ("seqkit.speech.streaming", "seqkit.inference"),
    "seqkit.streaming.features": ("seqkit.speech.streaming.features",),
    "seqkit.streaming.model": ("seqkit.speech.streaming.model",),
    "seqkit.streaming.runtime": ("seqkit.speech.streaming.runtime",),
    "seqkit.streaming.load": ("seqkit.inference",),
    "seqkit.music.tasks": (
        "seqkit.music.task",
        "seqkit.music.melody",
        "seqkit.music.metrics",
        "seqkit.music.losses",
        "seqkit.music.batches",
        "seqkit.music.callbacks",
        "seqkit.music.rolls",
    ),
}


#: modules that register seqkit's Keras objects (layers, losses, metrics) under the names saved
#: models use; imported as soon as Keras is. Each is listed itself rather than imported by
#: another: a module of this list imported first imports Keras, whose hook then imports the
#: others while that one is half initialised (a ``from`` import of it would fail there).
KERAS_OBJECTS = ("seqkit.layers", "seqkit.music.losses", "seqkit.music.nade")

_keras_objects_registered = False


def register_keras_objects() -> None:
    """Import the modules of ``KERAS_OBJECTS`` (their decorators register the objects with
    Keras), once. Runs when Keras is imported, so it must not break that import: a failure is
    logged, and the models that need the objects then fail to load, naming the missing class."""
    global _keras_objects_registered
    if _keras_objects_registered:
        return
    _keras_objects_registered = True
    for name in KERAS_OBJECTS:
        try:
            importlib.import_module(name)
        except Exception as exc:  # a broken install or plugin: Keras itself must still import
            import logging  # only here: `import seqkit` stays light

            logging.getLogger("seqkit").warning(
                "seqkit's Keras objects in %s could not be registered (%s: %s); saved models "
                "that use them will not load.", name, type(exc).__name__, exc,
            )  # fmt: skip


class _AfterKeras:
    """The loader of the module ``keras``, wrapped: Keras' own loader creates and runs the
    module, then seqkit's Keras objects are registered; everything else is the loader's own."""

    def __init__(self, loader):
        self._loader = loader

    def __getattr__(self, name):  # get_resource_reader, is_package, get_code, ...
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        module.__loader__ = self._loader  # Keras keeps the loader it would have had
        if getattr(module, "__spec__", None) is not None:
            module.__spec__.loader = self._loader
        register_keras_objects()


class _SplitModule(types.ModuleType):
    """An old module that was split: attributes come from the new modules, in order."""

    def __init__(self, name: str, targets: tuple[str, ...]):
        super().__init__(name, f"Moved in seqkit 0.2 to {', '.join(targets)}.")
        self.__targets = targets
        self.__path__ = []  # a package, so that its old submodules resolve through the finder

    def __getattr__(self, attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        for target in self.__targets:
            module = importlib.import_module(target)
            if hasattr(module, attr):
                return getattr(module, attr)
        raise AttributeError(
            f"module {self.__name__!r} (moved to {', '.join(self.__targets)}) has no attribute "
            f"{attr!r}"
        )

    def __dir__(self):
        names = set()
        for target in self.__targets:
            names |= set(dir(importlib.import_module(target)))
        return sorted(names)


class _Loader:  # the loader protocol: create_module, exec_module
    def create_module(self, spec):
        targets = MOVED[spec.name]
        if len(targets) == 1:
            module = importlib.import_module(targets[0])
            self._own_spec = module.__spec__  # importlib sets the alias's spec on it; undone below
            return module
        return _SplitModule(spec.name, targets)

    def exec_module(self, module):
        # Already complete: the new modules ran their own code. A module that moved whole keeps
        # its own name and spec (pickling, reloading and tracebacks name the new path).
        own = getattr(self, "_own_spec", None)
        if own is not None:
            module.__spec__ = own


class _Finder:  # the meta path finder protocol: find_spec
    _finding_keras = False

    def find_spec(self, fullname, path=None, target=None):
        if fullname == "keras" and not _keras_objects_registered:
            return self._keras_spec(path, target)
        if fullname not in MOVED:
            return None
        return ModuleSpec(fullname, _Loader())

    def _keras_spec(self, path, target):
        """The spec the other finders give ``keras``, its loader wrapped by ``_AfterKeras``."""
        if _Finder._finding_keras:
            return None
        _Finder._finding_keras = True
        try:
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec("keras", path, target)
                if spec is not None:
                    break
            else:
                return None
        finally:
            _Finder._finding_keras = False
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _AfterKeras(spec.loader)
        return spec


def install() -> None:
    """Answer the old module paths, and register seqkit's Keras objects once Keras is imported
    (idempotent)."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())  # before path finders: stale 0.1 files never win
    keras = sys.modules.get("keras")
    if keras is not None and not getattr(getattr(keras, "__spec__", None), "_initializing", False):
        register_keras_objects()  # Keras came first: register now
