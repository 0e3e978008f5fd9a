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
    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED:
            return None
        return ModuleSpec(fullname, _Loader())


def install() -> None:
    """Answer the old module paths (idempotent)."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())  # before path finders: stale 0.1 files never win
