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
names. The schema is pydantic with unknown keys forbidden; every ``{type: NAME, ...}`` step's
parameters are checked against the component's signature, then the component is built once so
that its own checks (``units`` > 0, ``hop_length`` <= ``n_fft``) run at validation time. All
problems are reported together, each as ``FILE: dotted.path: message``.
"""

from __future__ import annotations

import inspect
import re
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import RecipeError, RegistryError, SeqkitError, did_you_mean
from .registry import FEATURES, LAYERS, SOURCES, TASKS

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


class DataSpec(Strict):
    source: Step


class ModelSpec(Strict):
    layers: list[Step] = Field(min_length=1)
    normalize: bool = Field(
        True, description="Per-feature normalisation fitted on the training split (in the model)."
    )


class OptimizerSpec(Strict):
    type: str = "adam"
    learning_rate: float = Field(1e-3, gt=0)
    clipnorm: float | None = Field(None, gt=0)


class TrainSpec(Strict):
    epochs: int = Field(10, ge=1, le=100_000)
    batch_size: int = Field(32, ge=1, le=1_000_000)
    optimizer: OptimizerSpec = OptimizerSpec()
    early_stopping_patience: int | None = Field(None, ge=1)
    reduce_lr_patience: int | None = Field(None, ge=1)


class Recipe(Strict):
    name: str = Field("run", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    description: str = ""
    seed: int = Field(0, ge=0, le=2**31 - 1)
    data: DataSpec
    features: list[Step] = Field(min_length=1)
    model: ModelSpec
    task: Step
    train: TrainSpec = TrainSpec()

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)


# -- dotted paths --------------------------------------------------------------------------------


def format_path(loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


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
        elif kind == "model_type" or kind.endswith("_type") and isinstance(e.get("input"), dict):
            problems.append(
                (path, f"{e['msg'][0].lower()}{e['msg'][1:]}; received {e.get('input')!r}")
            )
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
    import keras

    return issubclass(obj, keras.layers.Layer)


def accepted_params(registry, obj) -> list[str]:
    names, _ = signature_params(obj)
    if registry is LAYERS and _is_keras_layer(obj):
        names = names + [k for k in KERAS_LAYER_KWARGS if k not in names]
        names += list(LAYER_WRAPPER_KEYS)
    return names


def _message_for(exc: BaseException, params: dict) -> tuple[str, str]:
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


def check_step(registry, step: Step, path: str, build: bool = True) -> list[tuple[str, str]]:
    """Problems of one ``{type: ...}`` step: unknown name, unknown parameters, bad values."""
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
                problems.append((f"{path}.{key}", f"unknown parameter{hint}"))
    if problems or not build:
        return problems
    kwargs = {k: v for k, v in params.items() if k not in LAYER_WRAPPER_KEYS}
    try:
        obj(**kwargs)
    except (ValueError, TypeError, KeyError, SeqkitError) as exc:
        suffix, text = _message_for(exc, kwargs)
        problems.append((f"{path}{suffix}", text))
    return problems


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


def check_components(doc: dict, build_layers: bool = True) -> list[tuple[str, str]]:
    """Problems of every ``{type: ...}`` step of a recipe dict, valid against the schema or not.

    Working on the raw dict lets schema problems and component problems be reported together.
    """
    problems = []
    source = _as_step(_get(doc, "data", "source"))
    if source is not None:
        problems += check_step(SOURCES, source, "data.source")
    raw_features = doc.get("features") if isinstance(doc.get("features"), list) else []
    features = [_as_step(raw) for raw in raw_features]
    for i, step in enumerate(features):
        if step is not None:
            problems += check_step(FEATURES, step, f"features[{i}]")
    if features and all(features) and not any(p.startswith("features") for p, _ in problems):
        from .features import chain_problems

        steps = [FEATURES.get(s.type)(**s.params) for s in features]
        problems += [
            (f"features[{i}]", m) for i, m in chain_problems(steps, [s.type for s in features])
        ]
    raw_layers = _get(doc, "model", "layers")
    for i, raw in enumerate(raw_layers if isinstance(raw_layers, list) else []):
        step = _as_step(raw)
        if step is None:
            continue
        problems += check_step(LAYERS, step, f"model.layers[{i}]", build=build_layers)
        if "bidirectional" in step.params and not isinstance(step.params["bidirectional"], bool):
            problems.append(
                (
                    f"model.layers[{i}].bidirectional",
                    f"must be true or false; received {step.params['bidirectional']!r}",
                )
            )
    task = _as_step(doc.get("task"))
    if task is not None:
        problems += check_step(TASKS, task, "task")
    opt = _get(doc, "train", "optimizer", "type")
    if isinstance(opt, str) and opt not in OPTIMIZERS:
        problems.append(
            (
                "train.optimizer.type",
                f"unknown optimizer '{opt}'.{did_you_mean(opt, OPTIMIZERS)} "
                f"Available: {', '.join(OPTIMIZERS)}.",
            )
        )
    return problems


# -- loading -------------------------------------------------------------------------------------


def read_yaml(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise RecipeError([("", "recipe file not found")], file=str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError([("", f"cannot be read ({exc})")], file=str(path)) from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RecipeError([("", f"not valid YAML: {where}{problem}")], file=str(path)) from exc


def _set_path(doc: dict, path: str, value: Any) -> str | None:
    """Apply one override; return an error message or None."""
    try:
        parts = parse_path(path)
    except ValueError:
        return "not a dotted key path (e.g. train.epochs or model.layers[0].units)"
    node: Any = doc
    for i, part in enumerate(parts[:-1]):
        here = format_path(parts[: i + 1])
        if isinstance(part, int):
            if not isinstance(node, list) or not -len(node) <= part < len(node):
                return f"'{here}' does not exist in the recipe"
            node = node[part]
        else:
            if not isinstance(node, dict) or part not in node:
                keys = list(node) if isinstance(node, dict) else []
                return f"'{here}' does not exist in the recipe.{did_you_mean(part, keys)}"
            node = node[part]
    last = parts[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or not -len(node) <= last < len(node):
            return f"'{path}' does not exist in the recipe"
        node[last] = value
        return None
    if not isinstance(node, dict):
        return f"'{path}' does not exist in the recipe"
    if last not in node:
        allowed = list(node)
        registry = _registry_for(parts)
        if registry is not None and "type" in node and node["type"] in registry:
            allowed += accepted_params(registry, registry.get(node["type"]))
        if last not in allowed:
            return f"'{path}' does not exist in the recipe.{did_you_mean(last, allowed)}"
    node[last] = value
    return None


def _registry_for(parts) -> Any:
    head = [p for p in parts if isinstance(p, str)]
    if head[:2] == ["data", "source"]:
        return SOURCES
    if head[:1] == ["features"]:
        return FEATURES
    if head[:2] == ["model", "layers"]:
        return LAYERS
    if head[:1] == ["task"]:
        return TASKS
    return None


def parse_overrides(items: list[str]) -> list[tuple[str, Any]]:
    out = []
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise RecipeError([("--set", f"expected KEY=VALUE; received {item!r}")])
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
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
    recipe, problems = None, []
    try:
        recipe = Recipe.model_validate(doc)
    except ValidationError as exc:
        problems = _pydantic_problems(exc)
    seen = {path for path, _ in problems}
    problems += [p for p in check_components(doc, build_layers) if p[0] not in seen]
    if problems:
        raise RecipeError(problems, file=file)
    return recipe


def load_recipe(
    path: str | Path, overrides: list[str] | None = None, build_layers: bool = True
) -> Recipe:
    """Read, validate and return a recipe, with ``--set KEY=VALUE`` overrides applied.

    Raises RecipeError listing every problem found, each with the file and dotted path.
    """
    file = str(path)
    doc = read_yaml(path)
    recipe = validate_dict(doc, file, build_layers=build_layers and not overrides)
    if overrides:
        resolved = recipe.to_dict()
        problems = []
        for key, value in parse_overrides(overrides):
            msg = _set_path(resolved, key, value)
            if msg:
                problems.append((f"--set {key}", msg))
        if problems:
            raise RecipeError(problems, file=file)
        recipe = validate_dict(resolved, file, build_layers=build_layers)
    return recipe
