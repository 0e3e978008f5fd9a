"""Registries of named components: layers, feature steps, data sources and tasks.

Every name a recipe uses is looked up here. Built-ins and third-party plugins register the same
way, so a plugin layer is as first-class as the GRU:

* built-ins are listed below as ``"module:attr"`` references and imported on first use;
* plugins declare entry points in their ``pyproject.toml``::

      [project.entry-points."seqkit.layers"]
      mgu = "seqkit_example.layers:MGU"

  Entry points are listed once per process and imported only when their name is used, so a
  broken plugin cannot break ``seqkit list`` or a recipe that does not use it.

Policies:

* registering a name twice in code raises ``RegistryError`` unless ``override=True``;
* an entry point that shadows a built-in (or an earlier plugin) is ignored, with a warning
  naming its distribution; two plugins claiming one name make it unusable (neither wins by
  install order), and so does one distribution declaring it twice with different targets;
* a plugin whose import fails in any way (an exception, even ``SystemExit``) becomes a
  ``RegistryError`` naming the plugin, its distribution and the original exception, raised
  when (and only when) that name is used -- every other name keeps working;
* what an entry point names must be of the registry's kind: a Keras ``Layer`` subclass for
  layers, a class for feature steps, sources, tasks and augmentations (``Registry.check``);
  anything else (a function, a module, an instance) is reported like a failed import;
* a plugin that, while being imported, registers a name already taken (a built-in, another
  plugin's) is refused -- ``override=True`` included -- and reported with its distribution;
  names it registers that are still free are attributed to its distribution;
* ``describe(load_plugins=True)`` (what ``seqkit list`` shows) imports each plugin and reports
  the problem of each broken one; built-ins are never imported to be listed;
* ``SEQKIT_DISABLE_PLUGINS=1`` (any value but empty, ``0``, ``false``, ``no``, ``off``) skips
  entry points altogether: seqkit runs with its built-ins only, and imports no plugin;
* an unknown name gives ``Unknown layer 'gruu'. Did you mean 'gru'? Available layers: ...``.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import RegistryError, did_you_mean

log = logging.getLogger("seqkit")

BUILTIN = "seqkit (built-in)"
DISABLE_PLUGINS_ENV = "SEQKIT_DISABLE_PLUGINS"

# (registry, entry) of the plugins being imported now, innermost last: what they register is
# theirs, and they may not take a name that is already registered.
_IMPORTING: list[tuple[Registry, Entry]] = []


def plugins_disabled() -> bool:
    """True when ``SEQKIT_DISABLE_PLUGINS`` asks for built-ins only."""
    value = os.environ.get(DISABLE_PLUGINS_ENV, "").strip().lower()
    return value not in ("", "0", "false", "no", "off")


def _what(obj: Any) -> str:
    """A short description of an object for messages: ``the function m.make``, ``an int (3)``."""
    if isinstance(obj, type):
        return f"the class {obj.__module__}.{obj.__qualname__}"
    if callable(obj) and hasattr(obj, "__qualname__"):
        return f"the function {getattr(obj, '__module__', '?')}.{obj.__qualname__}"
    if type(obj).__name__ == "module":
        return f"the module {obj.__name__}"
    try:
        text = repr(obj)
    except Exception:
        text = "?"
    text = text if len(text) <= 40 else text[:37] + "..."
    return f"{type(obj).__name__} {text}"


def keras_layer_class(obj: Any) -> str | None:
    """``Registry.check`` of layers: None for a Keras Layer subclass, else what is wrong."""
    import keras  # Keras (~3 s with its backend): not for the commands that never build a model

    if isinstance(obj, type) and issubclass(obj, keras.layers.Layer):
        return None
    return f"is not a Keras Layer class; it is {_what(obj)}"


def component_class(obj: Any) -> str | None:
    """``Registry.check`` of feature steps, sources, tasks: None for a class, else what is wrong."""
    if isinstance(obj, type):
        return None
    return f"is not a class (seqkit calls it with the recipe's parameters); it is {_what(obj)}"


@dataclass
class Entry:
    """One registered name: where it comes from and, once imported, the object."""

    name: str
    ref: str  # "module:attr", or the object's qualified name for objects registered in code
    source: str  # "seqkit (built-in)", "my-plugin 0.1.0", or the registering module
    obj: Any = None
    error: BaseException | None = field(default=None, repr=False)
    is_plugin: bool = False

    def load(self, kind: str, check: Callable[[Any], str | None] | None = None) -> Any:
        if self.obj is not None:
            return self.obj
        if self.error is None:
            module_name, _, attr = self.ref.partition(":")
            try:
                obj = importlib.import_module(module_name)
                for part in attr.split(".") if attr else []:
                    obj = getattr(obj, part)
                problem = check(obj) if check is not None else None
                if problem:
                    raise TypeError(f"{self.ref} {problem}")
                if kind == "layer":
                    _make_serializable(obj, self.source)
            except (Exception, SystemExit) as exc:  # a plugin may fail in any way; isolate it
                self.error = exc
            else:
                self.obj = obj
                return obj
        what = f"{kind} '{self.name}' ({self.ref}) from {self.source}"
        if self.is_plugin:
            what = f"plugin {what}"
            hint = "Reinstall or fix that package, or remove it from the recipe."
        else:  # a built-in: seqkit's own install is broken (a missing dependency, say)
            hint = "Reinstall seqkit."
        raise RegistryError(
            f"Could not load {what}: {type(self.error).__name__}: {self.error}. {hint}"
        ) from self.error


def _make_serializable(obj: Any, package: str) -> None:
    """Register a Keras layer class with Keras' serialization, unless it already is.

    Layers that decorate themselves with ``keras.saving.register_keras_serializable`` keep their
    own name; others are registered under their distribution's (or module's) name, so a saved
    ``.keras`` model that uses them reloads once the registry has imported them.
    """
    import keras  # Keras (~3 s with its backend): not for the commands that never build a model

    if not (isinstance(obj, type) and issubclass(obj, keras.layers.Layer)):
        return
    if obj.__module__.startswith("keras."):
        return
    if keras.saving.get_registered_object(keras.saving.get_registered_name(obj)) is obj:
        return
    package = package.split(" ")[0].replace("-", "_")
    keras.saving.register_keras_serializable(package=package)(obj)


class Registry:
    """Names -> components of one kind, with entry-point discovery and did-you-mean errors."""

    def __init__(
        self,
        kind: str,
        group: str,
        builtins: dict[str, str] | None = None,
        check: Callable[[Any], str | None] | None = None,
    ):
        self.kind = kind
        self.group = group
        # What every entry must be: None if ``obj`` is acceptable, else what is wrong with it.
        self.check = check
        self._entries: dict[str, Entry] = {}
        self._entry_points_loaded = False
        for name, ref in (builtins or {}).items():
            self._entries[name] = Entry(name, ref, BUILTIN)

    # -- registration --------------------------------------------------------------------------
    def register(self, name: str, obj: Any = None, *, override: bool = False):
        """Register ``obj`` under ``name``; usable as ``@REGISTRY.register("name")``."""
        if obj is None:
            return lambda o: self.register(name, o, override=override) or o
        self._discover()  # a plugin's name is taken whether or not the entry points were listed
        existing = self._entries.get(name)
        ref = f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', repr(obj))}"
        importing = _IMPORTING[-1][1] if _IMPORTING and _IMPORTING[-1][1].is_plugin else None
        if importing is not None and existing is importing:
            return obj  # a plugin registering the name its own entry point declares
        if existing is not None and existing.is_plugin and existing.ref == ref:
            existing.obj = existing.obj if existing.obj is not None else obj
            return obj  # the object an entry point names, registered by its own module
        if importing is not None and existing is not None:
            raise RegistryError(
                f"plugin {importing.source} registers {self.kind} '{name}' while it is "
                f"imported, but that name is already registered (from {existing.source}); a "
                "plugin may not replace another component -- rename it in that package."
            )
        if existing is not None and not override:
            raise RegistryError(
                f"{self.kind.capitalize()} '{name}' is already registered (from "
                f"{existing.source}); pass override=True to replace it."
            )
        problem = self.check(obj) if self.check is not None else None
        if problem:
            raise RegistryError(f"Cannot register {self.kind} '{name}': {ref} {problem}.")
        source = importing.source if importing is not None else getattr(obj, "__module__", "code")
        if self.kind == "layer":
            _make_serializable(obj, source)
        self._entries[name] = Entry(name, ref, source, obj=obj, is_plugin=importing is not None)
        return obj

    def unregister(self, name: str) -> None:
        self._discover()  # else a later discovery would bring an unregistered plugin back
        self._entries.pop(name, None)

    def _discover(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        if plugins_disabled():
            log.info("%s is set: %s plugins are not loaded.", DISABLE_PLUGINS_ENV, self.kind)
            return
        try:
            import importlib.metadata  # 30-35 ms: only when a name is looked up, not at start-up

            eps = importlib.metadata.entry_points(group=self.group)
        except Exception as exc:  # broken metadata must not break the toolkit
            log.warning("Could not list entry points of group %s: %s", self.group, exc)
            return
        for ep in sorted(eps, key=lambda e: (e.name, e.value)):
            dist = getattr(ep, "dist", None)
            source = f"{dist.name} {dist.version}" if dist is not None else ep.value
            if dist is not None and dist.name.lower() == "seqkit":
                continue  # seqkit's own built-ins are listed in code
            existing = self._entries.get(ep.name)
            if existing is not None and existing.is_plugin and existing.source == source:
                if existing.ref != ep.value:  # one distribution, two targets for one name
                    existing.error = RegistryError(
                        f"{source} declares the name twice ({existing.ref} and {ep.value}); "
                        "fix that package's entry points"
                    )
                    existing.obj = None
                continue
            if existing is not None and existing.is_plugin:
                # Two plugins claim one name: neither wins by install order; using it fails.
                existing.error = RegistryError(
                    f"the name is claimed by two plugins, {existing.source} and {source}; "
                    "uninstall one of them"
                )
                existing.obj = None
                existing.source = f"{existing.source} + {source}"
                continue
            if existing is not None:
                log.warning(
                    "Ignoring %s '%s' from %s: the name is already taken by %s.",
                    self.kind,
                    ep.name,
                    source,
                    existing.source,
                )
                continue
            self._entries[ep.name] = Entry(ep.name, ep.value, source, is_plugin=True)

    # -- lookup --------------------------------------------------------------------------------
    def get(self, name: str) -> Any:
        """Return the component registered as ``name`` (importing it on first use)."""
        self._discover()
        entry = self._entries.get(name)
        if entry is None:
            raise RegistryError(self.unknown_message(name))
        return self._load(entry)

    def _load(self, entry: Entry) -> Any:
        _IMPORTING.append((self, entry))
        try:
            return entry.load(self.kind, self.check)
        finally:
            _IMPORTING.pop()

    def entry(self, name: str) -> Entry:
        self._discover()
        if name not in self._entries:
            raise RegistryError(self.unknown_message(name))
        return self._entries[name]

    def __contains__(self, name: str) -> bool:
        self._discover()
        return name in self._entries

    def names(self) -> list[str]:
        self._discover()
        return sorted(self._entries)

    def describe(self, load_plugins: bool = False) -> list[dict[str, str | None]]:
        """One dict per name: ``name``, ``source``, ``ref`` -- nothing is imported.

        With ``load_plugins``, each plugin is imported (and checked) and every row gets
        ``problem``: None, or why the plugin cannot be used. Built-ins are not imported.
        """
        self._discover()
        rows: list[dict[str, str | None]] = []
        for e in sorted(self._entries.values(), key=lambda e: e.name):
            row: dict[str, str | None] = {"name": e.name, "source": e.source, "ref": e.ref}
            if load_plugins:
                row["problem"] = None
                if e.is_plugin:
                    try:
                        self._load(e)
                    except RegistryError as exc:
                        row["problem"] = str(exc)
            rows.append(row)
        return rows

    def unknown_message(self, name: str) -> str:
        available = ", ".join(
            f"{n} ({e.source})" if e.is_plugin else n for n, e in sorted(self._entries.items())
        )
        shown = f"'{name}'" if str(name).isprintable() else repr(name)  # one line, always
        return (
            f"Unknown {self.kind} {shown}.{did_you_mean(name, self._entries)} "
            f"Available {self.kind}s: {available}."
        )


LAYERS = Registry(
    "layer",
    "seqkit.layers",
    {
        "gru": "seqkit.layers:GRU",
        "keras_gru": "keras.layers:GRU",
        "lstm": "keras.layers:LSTM",
        "rnn": "keras.layers:SimpleRNN",
        "dense": "keras.layers:Dense",
        "dropout": "keras.layers:Dropout",
    },
    check=keras_layer_class,
)
FEATURES = Registry(
    "feature step",
    "seqkit.features",
    {
        "load": "seqkit.features:Load",
        "fix_length": "seqkit.features:FixLength",
        "melspectrogram": "seqkit.features:MelSpectrogram",
        "power_to_db": "seqkit.features:PowerToDb",
        "mfcc": "seqkit.features:MFCC",
        "deltas": "seqkit.features:Deltas",
        "log_mel": "seqkit.features:LogMel",
        "pcen": "seqkit.features:PCEN",
        "cmvn": "seqkit.features:CMVN",
        "speech_embedding": "seqkit.speech.embedding:SpeechEmbedding",
    },
    check=component_class,
)
SOURCES = Registry(
    "data source",
    "seqkit.sources",
    {
        "folder": "seqkit.speech.sources.folder:FolderSource",
        "synthetic_tones": "seqkit.speech.sources.tones:SyntheticTones",
        "speech_commands": "seqkit.speech.sources.speech_commands:SpeechCommands",
        "filename_pattern": "seqkit.speech.sources.pattern:FilenamePattern",
        "manifest": "seqkit.speech.sources.manifest:Manifest",
        "synthetic_speech": "seqkit.speech.sources.synthetic:SyntheticSpeech",
        "mixed": "seqkit.speech.sources.mixed:MixedSource",
        "pianoroll_pickle": "seqkit.music.sources:PianoRollPickle",
        "pianoroll_npz": "seqkit.music.sources:PianoRollNpz",
        "midi_folder": "seqkit.music.sources:MidiFolder",
        "music21_corpus": "seqkit.music.scores:Music21Corpus",
        "audio_folder": "seqkit.music.recordings:AudioFolder",
        "adding_problem": "seqkit.longrange:AddingProblem",
        "copy_memory": "seqkit.longrange:CopyMemory",
    },
    check=component_class,
)
TASKS = Registry(
    "task",
    "seqkit.tasks",
    {
        "kws": "seqkit.speech.task:KeywordSpotting",
        "polyphonic": "seqkit.music.task:Polyphonic",
        "melody": "seqkit.music.melody:Melody",
        "sequence_regression": "seqkit.longrange:SequenceRegression",
        "sequence_classification": "seqkit.longrange:SequenceClassification",
    },
    check=component_class,
)

AUGMENTATIONS = Registry(
    "augmentation",
    "seqkit.augmentations",
    {
        "time_shift": "seqkit.speech.augment:TimeShift",
        "background_noise": "seqkit.speech.augment:BackgroundNoise",
        "gain": "seqkit.speech.augment:Gain",
        "speed": "seqkit.speech.augment:Speed",
        "spec_augment": "seqkit.speech.augment:SpecAugment",
        "vtlp": "seqkit.speech.augment.voices:VTLP",
        "reverb": "seqkit.speech.augment.voices:Reverb",
        "band_pass": "seqkit.speech.augment.voices:BandPass",
        "telephone": "seqkit.speech.augment.voices:Telephone",
        "clipping": "seqkit.speech.augment.voices:Clipping",
    },
    check=component_class,
)

REGISTRIES = {
    "layers": LAYERS,
    "features": FEATURES,
    "sources": SOURCES,
    "tasks": TASKS,
    "augmentations": AUGMENTATIONS,
}


def load_plugin_layers() -> list[str]:
    """Import every plugin layer so that Keras can deserialize them; return failures.

    Called before ``keras.saving.load_model`` so that a ``.keras`` file that uses a plugin
    layer reloads in a fresh process whenever the plugin is installed.
    """
    failures = []
    for name in LAYERS.names():
        entry = LAYERS.entry(name)
        if entry.is_plugin:
            try:
                LAYERS.get(name)
            except RegistryError as exc:
                failures.append(str(exc))
    return failures
