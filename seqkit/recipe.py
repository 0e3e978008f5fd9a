"""Recipes: YAML files that name a data source, feature steps, layers, a task and training settings.

    name: quickstart
    seed: 0
    data:
      source: {type: synthetic_tones, root: data/quickstart}
    features:
      - {type: load, sample_rate: 16000}
      - {type: fix_length, seconds: 1.0}
      - {type: mfcc, n_mfcc: 13}
    model:
      layers:
        - {type: gru, units: 64}
    task: {type: kws}
    train: {epochs: 10, batch_size: 32, optimizer: {type: adam, learning_rate: 0.001}}

Loading is ``yaml.safe_load`` only: no Python tags, no import paths -- components are registry
names; files over 1 MB, alias bombs and deep nesting are refused in bounded time and memory
(``read_yaml``, ``_UniqueKeyLoader``). The schema is pydantic with unknown keys forbidden; every
``{type: NAME, ...}`` step's parameters are checked against the component's signature, then the
component is built once so that its own checks (``units`` > 0, ``hop_length`` <= ``n_fft``) run
at validation time. All problems are reported together, each as ``FILE: dotted.path: message``.
``data.sources`` (several sources mixed into one) is checked entry by entry, as
``data.sources[i]``, and kept as one registered ``mixed`` source in ``data.source``
(``seqkit.speech.sources.mixed``), so nothing after this module needs to know about it.

The components built while checking are kept with the validated recipe (``Recipe.checked``,
keyed by dotted path), so that ``seqkit.build`` assembles them instead of building them again:
a recipe is resolved once. How the pieces fit together -- the feature chain, the layers on the
task's input, a dry run on a synthetic clip -- is ``seqkit.build``'s check, not this module's:
this one knows the schema and the registries, nothing above them.

Why one module of ~700 lines: the schema, the per-component checks and ``--set`` overrides are
one validation story with one set of dotted paths and messages (YAML reading is
``seqkit.safe_yaml``).
"""

from __future__ import annotations

import functools
import inspect
import re
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .errors import RecipeError, RegistryError, SeqkitError, did_you_mean
from .registry import AUGMENTATIONS, FEATURES, LAYERS, SOURCES, TASKS
from .safe_yaml import Refused, parse_yaml, read_yaml, yaml_problem

# The registered source that mixes several (``data.sources``; seqkit.speech.sources.mixed).
MIXED_SOURCE = "mixed"
# Keys of a layer step that seqkit's model builder handles itself (not passed to the layer).
LAYER_WRAPPER_KEYS = ("bidirectional",)
# Keyword arguments every Keras layer takes through **kwargs.
KERAS_LAYER_KWARGS = ("name", "dtype", "trainable")
OPTIMIZERS = {
    "adam": "Adam",
    "adamw": "AdamW",
    "rmsprop": "RMSprop",
    "sgd": "SGD",
    "nadam": "Nadam",
    "adagrad": "Adagrad",
}


class Step(BaseModel):
    """``{type: NAME, **params}``: one registry component with its parameters."""

    model_config = ConfigDict(extra="allow")
    type: str

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FoldSpec(Strict):
    """One fold of a speaker-grouped cross-validation (``seqkit crossval``): the speakers are
    shuffled by ``seed`` and dealt into ``k`` groups; group ``fold`` is the test split, and of
    the other speakers ``validation_percent`` (by the hash rule on the speaker) validate."""

    by: Literal["speaker"] = "speaker"
    k: int = Field(ge=2, le=100_000)
    fold: int = Field(ge=0)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    validation_percent: float = Field(15.0, ge=0, lt=100)

    @model_validator(mode="after")
    def _fold_below_k(self):
        if self.fold >= self.k:
            raise ValueError(f"fold must be below k ({self.k}); received {self.fold}")
        return self


class DataSpec(Strict):
    """``source``: one data source step; or ``sources``: several, mixed (each with optional
    ``splits``, ``label_map`` and ``name``; ``seqkit.speech.sources.mixed``), which validation
    turns into one ``{type: mixed, sources: [...]}`` step in ``source`` so that every reader of
    a recipe sees one source. ``to_dict`` writes back what the file had (``sources``)."""

    source: Step | None = None
    sources: list[Step] | None = Field(
        None,
        description="Several data sources mixed into one (the `mixed` source), each with "
        "optional `splits` (default: synthetic sources train only), `label_map` and `name`.",
    )
    augment: list[Step] = Field(
        default_factory=list,
        description="Training-only augmentations (kws), applied in order, seeded by `seed`.",
    )
    cache: bool = Field(
        True, description="Reuse unaugmented features computed earlier (on-disk cache)."
    )
    folds: FoldSpec | None = Field(
        None, description="Replace the source's splits by one fold of a speaker-grouped "
        "cross-validation (written by `seqkit crossval`)."
    )

    @model_validator(mode="after")
    def _one_source(self):
        if self.source is not None and self.sources is not None:
            raise PydanticCustomError(
                "recipe", "give `source` (one data source) or `sources` (several, mixed), not both"
            )
        if self.sources is not None:
            self.source = Step(type=MIXED_SOURCE, sources=[s.model_dump() for s in self.sources])
        if self.source is None:
            raise PydanticCustomError(
                "recipe",
                "`source` is missing: a data source step such as {type: folder, root: "
                "my_recordings} (or `sources`: a list of them to mix)",
            )
        return self


class ModelSpec(Strict):
    layers: list[Step] = Field(min_length=1)
    normalize: bool | None = Field(
        None,
        description="Per-feature normalisation fitted on the training split (in the model); "
        "unset: the task's default (on for kws, off for piano rolls).",
    )


class OptimizerSpec(Strict):
    type: str = "adam"
    learning_rate: float = Field(1e-3, gt=0, allow_inf_nan=False)
    clipnorm: float | None = Field(None, gt=0, allow_inf_nan=False)


class DistributeSpec(Strict):
    """How training is spread over devices or machines (``seqkit.distribute``)."""

    type: Literal["none", "mirrored", "multi_worker", "data_parallel"] = "none"
    logical_cpus: int | None = Field(
        None, ge=1, le=64, description="Split the CPU into N logical devices (mirrored on CPU)."
    )
    timeout_seconds: float = Field(
        120.0, gt=0, allow_inf_nan=False, description="multi_worker: a worker silent this long fails the run."
    )


class TrainSpec(Strict):
    epochs: int = Field(10, ge=1, le=100_000)
    batch_size: int = Field(32, ge=1, le=1_000_000)
    optimizer: OptimizerSpec = OptimizerSpec()
    early_stopping_patience: int | None = Field(None, ge=1)
    reduce_lr_patience: int | None = Field(None, ge=1)
    precision: Literal["float32", "mixed_bfloat16", "mixed_float16"] = "float32"
    checkpoint_every_steps: int | None = Field(
        None, ge=1, description="Also checkpoint every N training steps (always: every epoch)."
    )
    distribute: DistributeSpec = DistributeSpec()


class Recipe(Strict):
    name: str = Field("run", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    description: str = ""
    seed: int = Field(0, ge=0, le=2**31 - 1)
    data: DataSpec
    features: list[Step] = Field(default_factory=list)
    model: ModelSpec
    task: Step
    train: TrainSpec = TrainSpec()
    # The components built while validating, by dotted path ("data.source", "features[0]",
    # "model.layers[1]", ...): ``seqkit.build`` takes them instead of building them again.
    _checked: dict[str, Any] = PrivateAttr(default_factory=dict)

    @property
    def checked(self) -> dict[str, Any]:
        return self._checked

    def __eq__(self, other) -> bool:  # the recipe's values, not the objects built to check them
        if not isinstance(other, Recipe):
            return NotImplemented
        return self.model_dump() == other.model_dump()

    def to_dict(self) -> dict:
        out = self.model_dump(mode="json")
        data = out.get("data", {})
        if data.get("sources") is not None:  # data.source is the mix made from them
            data.pop("source", None)
        else:
            data.pop("sources", None)
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)


# -- dotted paths --------------------------------------------------------------------------------


def format_path(loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else key_part(part, first=not out)
    return out


_PLAIN_KEY = re.compile(r"[^\s.\[\]'\"]+")


def key_part(key, first: bool = False) -> str:
    """``.key`` in a dotted path; ``['']``, ``['a.b']`` or ``[None]`` for keys that need quoting."""
    if isinstance(key, str) and _PLAIN_KEY.fullmatch(key) and key.isprintable():
        return key if first else f".{key}"
    return f"[{key!r}]"


_PATH_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def parse_path(path: str) -> list[str | int]:
    parts: list[str | int] = []
    pos = 0
    for m in _PATH_TOKEN.finditer(path):
        if path[pos : m.start()] not in ("", "."):
            raise ValueError(path)
        parts.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
        pos = m.end()
    if not parts or pos != len(path):
        raise ValueError(path)
    return parts


def _model_at(loc) -> type[BaseModel] | None:
    """The pydantic model class found by walking ``loc`` from ``Recipe`` (None if not a model)."""
    cls: Any = Recipe
    for part in loc:
        if isinstance(part, int):
            continue
        if (
            not (isinstance(cls, type) and issubclass(cls, BaseModel))
            or part not in cls.model_fields
        ):
            return None
        cls = cls.model_fields[part].annotation
        while typing.get_origin(cls) in (list, typing.Union, type(int | None)):
            cls = next(a for a in typing.get_args(cls) if a is not type(None))
    return cls if isinstance(cls, type) and issubclass(cls, BaseModel) else None


def _pydantic_problems(err: ValidationError) -> list[tuple[str, str]]:
    problems = []
    for e in err.errors():
        loc, kind = e["loc"], e["type"]
        path = format_path(loc)
        if kind == "extra_forbidden":
            parent = _model_at(loc[:-1])
            fields = list(parent.model_fields) if parent else []
            hint = did_you_mean(loc[-1], fields).strip()
            hint = (
                f"; {hint[0].lower()}{hint[1:]}" if hint else f"; known keys: {', '.join(fields)}"
            )
            problems.append((path, f"unknown key{hint}"))
        elif kind == "missing":
            problems.append((path, "required key is missing"))
        elif kind == "recipe":  # a model's own check (PydanticCustomError), said as is
            problems.append((path, e["msg"]))
        elif kind == "model_type":
            model = _model_at(loc)
            keys = ", ".join(model.model_fields) if model and model is not Step else "type, ..."
            problems.append((path, f"must be a mapping ({keys}); received {e.get('input')!r}"))
        else:
            msg = e["msg"]
            msg = msg[0].lower() + msg[1:]
            problems.append((path, f"{msg}; received {e.get('input')!r}"))
    return problems


# -- component checks ----------------------------------------------------------------------------


def signature_params(obj) -> tuple[list[str], bool]:
    """Names an object's constructor accepts, and whether it also takes ``**kwargs``."""
    target = obj.__init__ if isinstance(obj, type) else obj
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return [], True
    names, var_kw = [], False
    for p in sig.parameters.values():
        if p.name == "self" or p.kind == p.VAR_POSITIONAL:
            continue
        if p.kind == p.VAR_KEYWORD:
            var_kw = True
            continue
        names.append(p.name)
    return names, var_kw


def _is_keras_layer(obj) -> bool:
    if not isinstance(obj, type):
        return False
    import keras  # Keras (~3 s with its backend): not for the commands that never build a model

    return issubclass(obj, keras.layers.Layer)


def accepted_params(registry, obj) -> list[str]:
    names, _ = signature_params(obj)
    if registry is LAYERS and _is_keras_layer(obj):
        names = names + [k for k in KERAS_LAYER_KWARGS if k not in names]
        names += list(LAYER_WRAPPER_KEYS)
    return names


def param_message(exc: BaseException, params) -> tuple[str, str]:
    """Split a component's error into (parameter suffix for the path, message)."""
    text = str(exc).strip()
    # The parameter a message starts with is the one it is about ("`hop_length` must be <=
    # `n_fft` ..." is about hop_length), whatever other parameters it mentions.
    for name in params:
        if text.startswith(f"`{name}` "):
            return f".{name}", text[len(name) + 3 :]
    for name in params:
        for pattern in (f"`{name}` ", f"argument `{name}`", f"'{name}'"):
            if pattern in text:
                return f".{name}", text
    return "", text


# Types of the Keras layer arguments a recipe commonly sets (Keras' classes carry no annotations).
KERAS_PARAM_TYPES = {
    "units": int, "filters": int, "kernel_size": int, "rate": float, "dropout": float,
    "recurrent_dropout": float, "return_sequences": bool, "return_state": bool,
    "go_backwards": bool, "stateful": bool, "unroll": bool, "use_bias": bool,
    "reset_after": bool, "activation": str | None, "recurrent_activation": str | None,
    "name": str, "trainable": bool, "seed": int | None, "bidirectional": bool,
}  # fmt: skip


def param_types(registry, obj) -> dict[str, Any]:
    """Annotated parameter types of a component (Keras layers: ``KERAS_PARAM_TYPES``)."""
    if registry is LAYERS and _is_keras_layer(obj):
        names = accepted_params(registry, obj)
        return {n: t for n, t in KERAS_PARAM_TYPES.items() if n in names}
    target = obj.__init__ if isinstance(obj, type) else obj
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # unresolvable annotations in a plugin: skip type checks
        return {}
    hints.pop("return", None)
    return hints


@functools.lru_cache(maxsize=256)
def _adapter(annotation):

    return TypeAdapter(annotation)


def _type_name(annotation) -> str:
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    args = typing.get_args(annotation)
    if annotation in names:
        return names[annotation]
    if typing.get_origin(annotation) is list and args:
        return f"a list of {_type_name(args[0]).removeprefix('a ').removeprefix('an ')}s"
    if args:
        parts = [("null" if a is type(None) else _type_name(a)) for a in args]
        return " or ".join(parts)
    return getattr(annotation, "__name__", str(annotation))


def _type_problems(registry, obj, params, path) -> list[tuple[str, str]]:
    problems = []
    types = param_types(registry, obj)
    for key, value in params.items():
        ann = types.get(key)
        if ann is None or ann is Any:
            continue
        try:
            _adapter(ann).validate_python(value, strict=True)
        except ValidationError as exc:
            loc = exc.errors()[0]["loc"]
            where = path + key_part(key) + "".join(f"[{i}]" for i in loc if isinstance(i, int))
            bad = value
            for i in loc:
                if isinstance(i, int) and isinstance(bad, list) and i < len(bad):
                    bad = bad[i]
            msg = f"must be {_type_name(ann)}; received {value!r}"
            if isinstance(bad, bool) and ann is not bool:
                msg += (
                    " (YAML reads unquoted yes/no/on/off/true/false as booleans; quote it: 'yes')"
                )
            problems.append((where, msg))
        except Exception:  # an annotation pydantic cannot check (a plugin's own class)
            continue
    return problems


def check_step(
    registry, step: Step, path: str, build: bool = True, checked: dict | None = None
) -> list[tuple[str, str]]:
    """Problems of one ``{type: ...}`` step: unknown name, unknown parameters, bad values.

    With ``build``, the component is built with its parameters (its own checks run); when that
    succeeds and ``checked`` is given, the object is kept there under ``path``.
    """
    try:
        obj = registry.get(step.type)
    except RegistryError as exc:
        return [(f"{path}.type", str(exc))]
    params = step.params
    accepted = accepted_params(registry, obj)
    _, var_kw = signature_params(obj)
    problems = []
    if not (var_kw and not _is_keras_layer(obj)):
        for key in params:
            if key not in accepted:
                hint = did_you_mean(key, accepted).strip()
                hint = (
                    f"; {hint[0].lower()}{hint[1:]}"
                    if hint
                    else (f"; {registry.kind} '{step.type}' takes: {', '.join(accepted)}")
                )
                problems.append((path + key_part(key), f"unknown parameter{hint}"))
    problems += _type_problems(registry, obj, params, path)
    if registry is SOURCES and step.type == MIXED_SOURCE and not problems:
        return _check_mixed(params.get("sources"), f"{path}.sources", path, build, checked)
    if problems or not build:
        return problems
    built, more = construct(registry, step, path, obj)
    if built is not None and checked is not None:
        checked[path] = built
    return more


def _check_mixed(raw, sources_path: str, path: str, build: bool = True,
                 checked: dict | None = None) -> list[tuple[str, str]]:  # fmt: skip
    """Problems of a mix of sources (``data.sources``, or ``{type: mixed, sources: [...]}``):
    each entry checked as a ``data.source`` step is, at ``sources_path[i]``, then the mix's
    own keys (splits, label_map, name) and whether validation and test are fed. The mix built
    from the checked sources is kept in ``checked`` under ``path``."""
    try:
        cls = SOURCES.get(MIXED_SOURCE)
    except RegistryError as exc:
        return [(path, str(exc))]
    local: dict = {}

    def build_source(raw_step: dict, where: str):
        step = _as_step(raw_step)
        if step is None:
            return None, [(where, f"must be a data source step {{type: NAME, ...}}; received {raw_step!r}")]
        more = check_step(SOURCES, step, where, build=build, checked=local)
        return local.pop(where, None), more

    built, problems = cls.checked(raw, sources_path, build_source)
    if built is not None and build and checked is not None:
        checked[path] = built
    return problems


def construct(
    registry, step: Step, path: str, cls=None, extra: dict | None = None
) -> tuple[Any, list[tuple[str, str]]]:
    """``(object, [])`` built from a step's parameters (and ``extra`` ones), or ``(None,
    problems)`` when its own checks refuse them (the message names the parameter:
    ``model.layers[0].units: ...``)."""
    obj = cls if cls is not None else registry.get(step.type)
    problems: list[tuple[str, str]] = []
    kwargs = {k: v for k, v in step.params.items() if k not in LAYER_WRAPPER_KEYS}
    kwargs.update(extra or {})
    try:
        return obj(**kwargs), problems
    except RecipeError as exc:  # a component that checks parts of its own (a mixed source)
        problems += [(f"{path}.{p}" if p else path, m) for p, m in exc.problems]
    except (ValueError, TypeError, KeyError, SeqkitError) as exc:
        suffix, text = param_message(exc, kwargs)
        problems.append((f"{path}{suffix}", text))
    except Exception as exc:  # a plugin's own bug: name the plugin, keep checking the rest
        entry = registry.entry(step.type)
        if not entry.is_plugin:
            raise
        problems.append(
            (
                path,
                f"plugin {registry.kind} '{step.type}' from {entry.source} failed: "
                f"{type(exc).__name__}: {exc}",
            )
        )
    return None, problems


def _as_step(raw) -> Step | None:
    if isinstance(raw, dict) and isinstance(raw.get("type"), str):
        try:
            return Step.model_validate(raw)
        except ValidationError:
            return None
    return None


def _get(doc, *keys):
    for key in keys:
        doc = doc.get(key) if isinstance(doc, dict) else None
    return doc


def check_components(
    doc: dict, build_layers: bool = True, checked: dict | None = None
) -> list[tuple[str, str]]:
    """Problems of every ``{type: ...}`` step of a recipe dict, valid against the schema or not;
    the components built on the way are kept in ``checked`` (by dotted path).

    Working on the raw dict lets schema problems and component problems be reported together.
    """
    problems = []
    source = _as_step(_get(doc, "data", "source"))
    mixed = _get(doc, "data", "sources")
    if source is not None:
        problems += check_step(SOURCES, source, "data.source", checked=checked)
    elif mixed is not None:
        problems += _check_mixed(mixed, "data.sources", "data.source", checked=checked)
    raw_features = doc.get("features") if isinstance(doc.get("features"), list) else []
    for i, raw in enumerate(raw_features):
        step = _as_step(raw)
        if step is not None:
            problems += check_step(FEATURES, step, f"features[{i}]", checked=checked)
    raw_augment = _get(doc, "data", "augment")
    for i, raw in enumerate(raw_augment if isinstance(raw_augment, list) else []):
        step = _as_step(raw)
        if step is not None:
            problems += check_step(AUGMENTATIONS, step, f"data.augment[{i}]", checked=checked)
    raw_layers = _get(doc, "model", "layers")
    for i, raw in enumerate(raw_layers if isinstance(raw_layers, list) else []):
        step = _as_step(raw)
        if step is None:
            continue
        problems += check_step(
            LAYERS, step, f"model.layers[{i}]", build=build_layers, checked=checked
        )
    task = _as_step(doc.get("task"))
    if task is not None:
        problems += check_step(TASKS, task, "task", checked=checked)
        if (
            task.type in TASKS
            and getattr(TASKS.get(task.type), "uses_audio_features", False)
            and "features" not in doc
        ):
            problems.append(
                ("features", f"missing: the {task.type} task needs feature steps (load, ..., mfcc)")
            )
    opt = _get(doc, "train", "optimizer", "type")
    if isinstance(opt, str) and opt not in OPTIMIZERS:
        problems.append(
            (
                "train.optimizer.type",
                f"unknown optimizer {opt!r}.{did_you_mean(opt, OPTIMIZERS)} "
                f"Available: {', '.join(OPTIMIZERS)}.",
            )
        )
    return problems


# -- loading -------------------------------------------------------------------------------------


def _schema_leaves(cls=None, prefix="") -> list[str]:
    """Dotted paths of every setting the schema knows (``train.optimizer.learning_rate``)."""
    cls = cls or Recipe
    out = []
    for name, field in cls.model_fields.items():
        ann = field.annotation
        path = f"{prefix}{name}"
        if isinstance(ann, type) and issubclass(ann, BaseModel) and ann is not Step:
            out += _schema_leaves(ann, path + ".")
        else:
            out.append(path)
    return out


def _allowed_keys(node: dict, parts) -> list[str]:
    allowed = list(node)
    model = _model_at(parts)
    if model is not None and model is not Step:
        allowed += [k for k in model.model_fields if k not in allowed]
    registry = _registry_for(parts)
    if [p for p in parts if isinstance(p, str)][:2] == ["data", "sources"]:
        allowed += [k for k in getattr(SOURCES.get(MIXED_SOURCE), "MIX_KEYS", ()) if k not in allowed]
    if registry is not None and isinstance(node.get("type"), str) and node["type"] in registry:
        try:
            allowed += accepted_params(registry, registry.get(node["type"]))
        except RegistryError:  # a broken plugin: validation reports it at its `type`
            pass
    return allowed


def _set_path(doc: dict, path: str, value: Any) -> str | None:
    """Apply one override to a raw recipe dict; return an error message or None.

    A key may be set when the recipe has it, when the schema has it (a default not written in
    the file), or when it is a parameter of that step's component.
    """
    try:
        parts = parse_path(path)
    except ValueError:
        return "not a dotted key path (e.g. train.epochs or model.layers[0].units)"
    node: Any = doc
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        here = format_path(parts[: i + 1])
        if isinstance(node, list) and isinstance(part, str) and part.isdigit():
            part = parts[i] = int(part)  # model.layers.0.units means model.layers[0].units
        if isinstance(part, int):
            if not isinstance(node, list) or not -len(node) <= part < len(node):
                size = f" (it has {len(node)} entries)" if isinstance(node, list) else ""
                return f"'{here}' does not exist in the recipe{size}"
            if last:
                node[part] = value
                return None
            node = node[part]
            continue
        if not isinstance(node, dict):
            return f"'{here}' does not exist in the recipe"
        allowed = _allowed_keys(node, parts[:i])
        if part not in allowed:
            hint = did_you_mean(part, allowed)
            if not hint:
                leaves = [p for p in _schema_leaves() if p.split(".")[-1] == part]
                hint = f" Did you mean '{leaves[0]}'?" if leaves else ""
            return f"'{here}' does not exist in the recipe.{hint}"
        if last:
            node[part] = value
            return None
        if part not in node:
            node[part] = {}
        node = node[part]
    return None


def _registry_for(parts) -> Any:
    head = [p for p in parts if isinstance(p, str)]
    if head[:2] in (["data", "source"], ["data", "sources"]):
        return SOURCES
    if head[:2] == ["data", "augment"]:
        return AUGMENTATIONS
    if head[:1] == ["features"]:
        return FEATURES
    if head[:2] == ["model", "layers"]:
        return LAYERS
    if head[:1] == ["task"]:
        return TASKS
    return None


def set_label(key: str) -> str:
    """``--set KEY`` as a problem's path (quoted when the key holds a newline or the like)."""
    return f"--set {key}" if key.isprintable() else f"--set {key!r}"


def parse_overrides(items: list[str], file: str | None = None) -> list[tuple[str, Any]]:
    """``KEY=VALUE`` strings -> (key, value read as YAML; text where it is not YAML)."""
    out = []
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise RecipeError([("--set", f"expected KEY=VALUE; received {item!r}")], file=file)
        try:
            value = parse_yaml(raw) if raw.strip() else ""
        except Refused as exc:  # a tag, a bomb: refused, not taken as text
            raise RecipeError([(set_label(key.strip()), yaml_problem(exc))], file=file) from exc
        except yaml.YAMLError:
            value = raw
        out.append((key.strip(), value))
    return out


def validate_dict(doc: Any, file: str | None = None, build_layers: bool = True) -> Recipe:
    if not isinstance(doc, dict):
        kind = "empty" if doc is None else f"a {type(doc).__name__}"
        raise RecipeError(
            [
                (
                    "",
                    f"a recipe must be a YAML mapping (data, features, model, task, train); it is {kind}",
                )
            ],
            file=file,
        )
    recipe, problems, checked = None, [], {}
    try:
        recipe = Recipe.model_validate(doc)
    except ValidationError as exc:
        problems = _pydantic_problems(exc)
    seen = {path for path, _ in problems}
    problems += [p for p in check_components(doc, build_layers, checked) if p[0] not in seen]
    if problems:
        raise RecipeError(problems, file=file)
    recipe._checked.update(checked)
    return recipe


def load_recipe(
    path: str | Path, overrides: list[str] | None = None, build_layers: bool = True
) -> Recipe:
    """Read, validate and return a recipe, with ``--set KEY=VALUE`` overrides applied.

    Overrides are applied to the file's document before validation (so one can fix a value
    the file gets wrong). Raises RecipeError listing every problem found, each with the file
    and dotted path; a problem in a value given by ``--set`` says so.
    """
    file = str(path)
    doc = read_yaml(path)
    applied = []
    if overrides:
        if not isinstance(doc, dict):
            validate_dict(doc, file, build_layers=False)
        problems = []
        for key, value in parse_overrides(overrides, file):
            msg = _set_path(doc, key, value)
            if msg:
                problems.append((set_label(key), msg))
            else:
                applied.append(key)
        if problems:
            raise RecipeError(problems, file=file)
    try:
        return validate_dict(doc, file, build_layers=build_layers)
    except RecipeError as exc:
        if not applied:
            raise
        marked = []
        for p, m in exc.problems:
            key = next((k for k in applied if _covers(k, p)), None)
            marked.append((p, f"{m} (value from --set {key})" if key else m))
        raise RecipeError(marked, file=file) from None


def _covers(key: str, path: str) -> bool:
    key = re.sub(r"\.(\d+)(?=\.|$)", r"[\1]", key)
    return path == key or path.startswith((key + ".", key + "["))
