"""A recipe -> its components, built and checked once.

``seqkit.recipe`` validates a recipe's schema and each component's parameters, building every
component once on the way (``Recipe.checked``). This module assembles those objects into what
the trainer and every reader of a run use, and checks how they fit together:

* ``build(recipe)`` -> ``Built``: the task, ``Parts`` (data source, feature pipeline,
  augmentations), ``Settings`` and ``Outline`` (the ``seqkit.tasks`` protocol), after
  ``task.check(outline)``, the resource estimate (``seqkit.resources``: what the recipe's
  values need in memory, refused above this machine's), the feature chain, and a dry run -- the features on a synthetic clip,
  then the model -- that finds what the per-step checks cannot see (``fmax`` above the
  resampled Nyquist, ``deltas`` wider than the clip, layers that do not fit together).
  Problems are ``RecipeError`` with dotted paths, as the recipe's own.
* ``build_model(recipe, task, input_shape, info, train_x)`` -> the compiled Keras model: Input
  -> (Normalization) -> the recipe's layers -> the task's head.

Each component is built once per process: a component the recipe check built is taken from
``recipe.checked`` (and taken only once: a second ``build`` of the same recipe object builds
fresh ones, so two trainings never share a task or a source); a layer is built at most twice,
once for the dry run (the recipe check's own object when it made one) and once for the model
that trains. ``tests/test_build.py`` counts constructions during ``seqkit train``.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from .cache import source_identity
from .errors import ParameterError, RecipeError
from .features import FeaturePipeline, FixLength, Load, chain_problems
from .recipe import (
    OPTIMIZERS,
    Recipe,
    construct,
    param_message,
    signature_params,
)
from .registry import AUGMENTATIONS, FEATURES, LAYERS, SOURCES, TASKS
from .resources import check as check_resources
from .tasks import Outline, Parts, Settings, Task, TaskData


@dataclass
class Built:
    """A recipe's components, built and checked (``build``)."""

    recipe: Recipe
    task: Task
    parts: Parts
    settings: Settings
    outline: Outline
    input_shape: tuple | None = None  # one example's features, as the dry run found it

    def load_data(self, progress=None) -> TaskData:
        """The task's data: arrays per split, input shape, info (``seqkit.tasks``)."""
        return self.task.load_data(self.parts, self.settings, progress=progress)


# -- components ----------------------------------------------------------------------------------


def _component(recipe: Recipe, path: str, registry, step):
    """The object the recipe check built for ``path`` (taken once), else a new one."""
    obj = recipe.checked.pop(path, None)
    if obj is not None:
        return obj
    obj, problems = construct(registry, step, path)
    if problems:
        raise RecipeError(problems)
    return obj


def make_task(recipe: Recipe) -> Task:
    """The recipe's task object."""
    return _component(recipe, "task", TASKS, recipe.task)


def make_source(recipe: Recipe):
    """The recipe's data source object."""
    return _component(recipe, "data.source", SOURCES, recipe.data.source)


def make_pipeline(recipe: Recipe) -> FeaturePipeline | None:
    """The recipe's ``features`` steps as one ``FeaturePipeline`` (None without steps); a chain
    that does not fit (``mfcc`` before ``load``, no step that makes frames) is a RecipeError."""
    if not recipe.features:
        return None
    steps = [
        _component(recipe, f"features[{i}]", FEATURES, s) for i, s in enumerate(recipe.features)
    ]
    names = [s.type for s in recipe.features]
    problems = chain_problems(steps, names)
    if problems:
        raise RecipeError([(f"features[{i}]", m) for i, m in problems])
    return FeaturePipeline(steps, names)


def make_augmentations(recipe: Recipe) -> list[tuple[str, object]]:
    """The recipe's ``data.augment`` steps as ``(name, object)``, built (the task binds them)."""
    return [
        (s.type, _component(recipe, f"data.augment[{i}]", AUGMENTATIONS, s))
        for i, s in enumerate(recipe.data.augment)
    ]


def outline(recipe: Recipe) -> Outline:
    return Outline(
        source=recipe.data.source.type,
        features=tuple(s.type for s in recipe.features),
        layers=tuple((s.type, s.params) for s in recipe.model.layers),
        normalize=recipe.model.normalize,
    )


def settings(recipe: Recipe, devices: int = 1) -> Settings:
    return Settings(
        seed=recipe.seed,
        batch_size=recipe.train.batch_size,
        cache=recipe.data.cache,
        devices=devices,
        source=recipe.data.source.type,
        source_identity=source_identity(recipe.data.source.type, recipe.data.source.params),
        task=recipe.task.type,
        folds=recipe.data.folds.model_dump() if recipe.data.folds is not None else None,
    )


def parts(recipe: Recipe) -> Parts:
    return Parts(make_source(recipe), make_pipeline(recipe), make_augmentations(recipe))


# -- the model -----------------------------------------------------------------------------------


def _is_recurrent(obj) -> bool:
    return isinstance(obj, type) and issubclass(obj, keras.layers.RNN)


def _return_sequences(recipe: Recipe, needs_sequences: bool) -> dict[int, bool]:
    """``return_sequences`` of each recurrent layer the user left it unset on: True when another
    recurrent layer follows, or when it is the last one and the task pools over time."""
    classes = [LAYERS.get(step.type) for step in recipe.model.layers]
    recurrent = [i for i, cls in enumerate(classes) if _is_recurrent(cls)]
    return {
        i: any(j > i for j in recurrent) or (i == recurrent[-1] and needs_sequences)
        for i in recurrent
        if "return_sequences" not in recipe.model.layers[i].params
    }


def build_layers(recipe: Recipe, needs_sequences: bool, checked: bool = False):
    """The recipe's layers, ``return_sequences`` set where the user did not set it (an explicit
    value always wins); ``bidirectional: true`` wraps a layer in ``keras.layers.Bidirectional``.

    With ``checked``, the objects the recipe check built are used where there are any (their
    ``return_sequences`` set before their first call): the dry run. Else every layer is new.
    Parameters a layer refuses are a RecipeError naming the parameter.
    """
    layers, problems = [], []
    sequences = _return_sequences(recipe, needs_sequences)
    for i, step in enumerate(recipe.model.layers):
        path = f"model.layers[{i}]"
        extra = {"return_sequences": sequences[i]} if i in sequences else {}
        layer = recipe.checked.pop(path, None) if checked else None
        if layer is not None:
            for key, value in extra.items():
                setattr(layer, key, value)
        else:
            layer, more = construct(LAYERS, step, path, extra=extra)
            problems += more
            if layer is None:
                continue
        if step.params.get("bidirectional"):
            layer = keras.layers.Bidirectional(layer, name=f"bidirectional_{i}")
        layers.append(layer)
    if problems:
        raise RecipeError(problems)
    return layers


def _normalize(recipe: Recipe, task) -> bool:
    n = recipe.model.normalize
    return task.normalize_default if n is None else n


def build_model(recipe: Recipe, task, input_shape, info: dict, train_x=None, layers=None):
    """Input -> (Normalization fitted on ``train_x``) -> recipe layers -> task head, compiled.

    ``train.precision`` sets Keras' dtype policy first (``mixed_bfloat16`` / ``mixed_float16``
    compute in 16 bits with float32 variables; the head's outputs are cast back to float32 so
    losses are computed in float32). ``layers``: the layer objects to use (default: new ones).
    """
    keras.mixed_precision.set_dtype_policy(recipe.train.precision)
    inputs = keras.Input(shape=tuple(input_shape), name="features")
    x = inputs
    if _normalize(recipe, task):
        norm = keras.layers.Normalization(axis=-1, name="normalize")
        if train_x is not None:
            norm.adapt(np.asarray(train_x).reshape(-1, train_x.shape[-1]))
        x = norm(x)
    if layers is None:
        layers = build_layers(recipe, task.needs_sequences)
    for i, layer in enumerate(layers):
        try:
            x = layer(x)
        except (ValueError, TypeError) as exc:
            before = f" after model.layers[{i - 1}]" if i else ""
            raise RecipeError(
                [(f"model.layers[{i}]", f"cannot take the output{before}: {_first_line(exc)}")]
            ) from None
        if isinstance(x, (list, tuple)):
            raise RecipeError(
                [
                    (
                        f"model.layers[{i}]",
                        "returns several tensors (return_state: true?); "
                        "a recipe layer must return one",
                    )
                ]
            )
    # A head that conditions on the step's own target (the polyphonic task's NADE output, given
    # the true lower keys while training) also takes the model's input.
    if getattr(task, "head_takes_inputs", False):
        outputs = task.head(x, info, inputs)
    else:
        outputs = task.head(x, info)
    if recipe.train.precision != "float32":
        outputs = keras.layers.Activation("linear", dtype="float32", name="float32_out")(outputs)
    try:
        model = keras.Model(inputs, outputs, name=recipe.name.replace(".", "_").replace("-", "_"))
    except ValueError as exc:
        raise RecipeError([("model.layers", _first_line(exc))]) from None
    opt = recipe.train.optimizer
    optimizer = getattr(keras.optimizers, OPTIMIZERS[opt.type])(
        learning_rate=opt.learning_rate, clipnorm=opt.clipnorm
    )
    model.compile(optimizer=optimizer, **task.compile_args())
    return model


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


# -- build and check -----------------------------------------------------------------------------


def _feature_shape(pipeline: FeaturePipeline) -> tuple | None:
    """The features of a synthetic clip (the dry run of the pipeline); None when the first step
    is a plugin's own reader (no synthetic clip to feed it)."""
    steps = pipeline.steps
    if not isinstance(steps[0], Load):
        return None
    sr = steps[0].sample_rate
    length = next((s.length(sr) for s in steps if isinstance(s, FixLength)), sr)
    x = np.random.default_rng(0).normal(scale=0.1, size=length).astype(np.float32)
    for i, step in enumerate(steps[1:], start=1):
        try:
            x = step(x, sr)
        except (ParameterError, ValueError) as exc:
            suffix, text = param_message(exc, signature_params(type(step))[0])
            raise RecipeError(
                [
                    (
                        f"features[{i}]{suffix}",
                        f"{text.rstrip('.')} (on a {length / sr:g} s clip at {sr} Hz).",
                    )
                ]
            ) from None
        sr = step.output_rate(sr)
    return x.shape


def checked_task(recipe: Recipe, source=None) -> Task:
    """The recipe's task, after ``task.check`` of the recipe's outline and data source (the
    recipe's source object when ``source`` is not given); RecipeError on a problem."""
    task = make_task(recipe)
    problems = task.check(outline(recipe), source if source is not None else make_source(recipe))
    if problems:
        raise RecipeError(problems)
    return task


def build(recipe: Recipe, file: str | None = None, devices: int = 1) -> Built:
    """Build the recipe's components once and check that they fit together (module docstring);
    raise RecipeError (naming ``file``) with every problem's dotted path."""
    try:
        source = make_source(recipe)
        task = checked_task(recipe, source)
        # What the recipe's values need in memory, before the dry run allocates any of it.
        check_resources(recipe, None if task.uses_audio_features else task.dummy_input_shape())
        shape = outline(recipe)
        pieces = Parts(source, make_pipeline(recipe), make_augmentations(recipe))
        built = Built(recipe, task, pieces, settings(recipe, devices), shape)
        if task.uses_audio_features:
            built.input_shape = _feature_shape(built.parts.pipeline)
            if built.input_shape is None:  # a plugin's own reader: nothing to dry-run the model on
                return built
        else:
            built.input_shape = task.dummy_input_shape()
        try:
            layers = build_layers(recipe, task.needs_sequences, checked=True)
            build_model(recipe, task, built.input_shape, task.dummy_info(), layers=layers)
        finally:
            keras.backend.clear_session()
            keras.mixed_precision.set_dtype_policy("float32")
    except RecipeError as exc:
        raise RecipeError(exc.problems, file=file) from None
    return built


def check_recipe(recipe: Recipe, file: str | None = None) -> Built:
    """``build`` under the name seqkit 0.1 gave the dry run."""
    return build(recipe, file)


def load_data(recipe: Recipe, progress=None, task: Task | None = None) -> TaskData:
    """The recipe's data (``TaskData``): arrays per split, input shape, info. ``task``: the
    recipe's task object when the caller holds it already."""
    task = task if task is not None else make_task(recipe)
    return task.load_data(parts(recipe), settings(recipe), progress=progress)
