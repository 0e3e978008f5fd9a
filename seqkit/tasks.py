"""The task protocol: what a recipe learns, and how the trainer talks to it.

A task reads its data from the components ``seqkit.build`` made from the recipe, puts the head
on the recipe's layers, names the loss and metrics, and evaluates the best model. The trainer
(``seqkit.training``) is task-agnostic; it talks to a task through this protocol (``Task``):

* ``check(outline, source)`` -> problems ``(dotted path, message)`` of a recipe's shape with
  this task (``Outline``: which source, feature steps and layers) and its built data source;
  called once, by ``seqkit.build``, before anything else is asked of the task;
* ``load_data(parts, settings, progress=None)`` -> ``TaskData``: arrays per split (``train``
  and ``validation`` required, ``test`` optional), the per-example input shape, ``info``
  (JSON-able facts saved as ``data.json`` in the run folder: labels, counts, skipped files) and
  the training input. ``parts`` (``Parts``) holds the recipe's built components -- the data
  source, the feature pipeline, the augmentations -- and ``settings`` (``Settings``) the few
  recipe values a task may use (seed, batch size, cache, devices); a task never sees the recipe;
* ``head(x, info)`` -> the output tensor on top of the recipe's layers;
* ``compile_args()`` -> loss and metrics for ``model.compile``;
* ``epoch_inputs(data, epoch, batch_size, seed, skip_batches)`` -> keyword arguments for one
  epoch's ``model.fit`` (arrays in a seeded per-epoch order, or a ``keras.utils.PyDataset`` for
  augmented or on-disk data, told the epoch through ``set_epoch``) -- deterministic, so that a
  resumed run replays the same batches;
* ``evaluate(model, data, split)`` -> a JSON-able dict written into ``metrics.json``;
* ``callbacks(run_dir, data)`` -> extra Keras callbacks (e.g. TensorBoard images, audio);
* ``write_files(run_dir, data)`` -> task files in the run folder (``labels.txt`` for ``kws``);
* ``summary(metrics)`` -> the lines ``seqkit train`` prints;
* ``monitor`` / ``mode``: the validation metric that picks the best model.

Built-in tasks: ``kws`` (``seqkit.speech.task``), ``polyphonic`` and ``melody``
(``seqkit.music``), ``sequence_regression`` / ``sequence_classification``
(``seqkit.longrange``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import DataError
from .features import FeaturePipeline
from .registry import FEATURES, SOURCES, TASKS

log = logging.getLogger("seqkit")

SPLITS = ("train", "validation", "test")
POOLINGS = ("last", "mean", "max")


@dataclass
class Split:
    """One split: inputs ``x`` (N, T, F), targets ``y``, optional ``sample_weight``, and the
    examples (source records) behind each row, for reports such as misclassified files."""

    x: Any
    y: Any
    sample_weight: Any = None
    items: list = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class Outline:
    """The shape of a recipe, as much of it as a task may check (``Task.check``): registry
    names and parameters, no objects. Made by ``seqkit.build``."""

    source: str  # data.source.type
    features: tuple[str, ...] = ()  # the feature steps' types, in order
    layers: tuple[tuple[str, dict], ...] = ()  # (type, params) of each of model.layers
    normalize: bool | None = None  # model.normalize as written (None: the task's default)


@dataclass(frozen=True)
class Settings:
    """The recipe values a task may use besides its components. Made by ``seqkit.build``."""

    seed: int = 0
    batch_size: int = 32
    cache: bool = True  # data.cache: features (and decoded audio) through the on-disk cache
    devices: int = 1  # devices each batch is split over (data_parallel); batches divide by it
    source: str = ""  # the data source's registry name (data.json, messages)
    source_identity: str = ""  # the source's settings as one id (cache lists replace their own)
    task: str = ""  # the task's registry name (for data.json and messages)
    folds: dict | None = None  # data.folds: one fold of a speaker-grouped cross-validation


@dataclass
class Parts:
    """The recipe's built components a task reads its data with. Made once by ``seqkit.build``.

    ``source``: the data source; ``pipeline``: the feature steps as one ``FeaturePipeline``
    (``None`` when the recipe has none); ``augment``: the ``data.augment`` steps as ``(name,
    object)`` pairs, built but not yet bound to the source and sample rate (the task binds them).
    """

    source: Any
    pipeline: Any = None
    augment: list = field(default_factory=list)


@dataclass
class TaskData:
    splits: dict[str, Split]
    input_shape: tuple
    info: dict = field(default_factory=dict)
    train_input: Any = None  # a PyDataset replacing splits["train"] for fitting, if any


class Task:
    """Base class of tasks; see the module docstring for the protocol."""

    monitor = "val_loss"
    mode = "min"
    uses_audio_features = False  # whether the recipe's `features` steps apply
    normalize_default = False  # model.normalize when the recipe leaves it unset
    needs_sequences = True  # whether the last recurrent layer returns its whole sequence

    def check(self, outline: Outline, source) -> list[tuple[str, str]]:
        """Problems ``(dotted path, message)`` of a recipe of this shape with this data source
        object; none by default."""
        return []

    def dummy_info(self) -> dict:
        """``info`` standing in for real data when a recipe is checked without data."""
        return {}

    def dummy_input_shape(self) -> tuple:
        raise NotImplementedError

    def load_data(self, parts: Parts, settings: Settings, progress=None) -> TaskData:
        raise NotImplementedError  # pragma: no cover - abstract

    def head(self, x, info: dict):  # pragma: no cover - abstract
        raise NotImplementedError

    def compile_args(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def epoch_inputs(self, data: TaskData, epoch: int, batch_size: int, seed: int,
                     skip_batches: int = 0) -> dict:  # fmt: skip
        """``model.fit`` keyword arguments for one epoch, a pure function of (seed, epoch).

        Arrays: the training split in the order ``default_rng([seed, epoch]).permutation(n)``,
        without the first ``skip_batches`` batches (a run resumed mid-epoch). A task dataset
        (``data.train_input``, a ``keras.utils.PyDataset``) is told ``set_epoch(epoch,
        skip_batches)`` and must then be deterministic too.
        """
        if data.train_input is not None:
            data.train_input.set_epoch(epoch, skip_batches)
            return {"x": data.train_input}
        train = data.splits["train"]
        order = np.random.default_rng([seed, epoch]).permutation(len(train))
        order = order[skip_batches * batch_size :]
        out = {"x": np.take(train.x, order, axis=0), "y": np.take(train.y, order, axis=0),
               "batch_size": batch_size}  # fmt: skip
        if train.sample_weight is not None:
            out["sample_weight"] = np.take(train.sample_weight, order, axis=0)
        return out

    def validation_data(self, data: TaskData):
        val = data.splits["validation"]
        if val.sample_weight is not None:
            return (val.x, val.y, val.sample_weight)
        return (val.x, val.y)

    def callbacks(self, run_dir, data: TaskData) -> list:
        return []

    def write_files(self, run_dir, data: TaskData) -> None:
        pass

    def evaluate(self, model, data: TaskData, split: str) -> dict:  # pragma: no cover
        raise NotImplementedError

    def summary(self, metrics: dict) -> list[str]:
        out = []
        for split in ("validation", "test"):
            if split in metrics and self.monitor.removeprefix("val_") in metrics[split]:
                key = self.monitor.removeprefix("val_")
                out.append(f"{split} {key}: {metrics[split][key]:.4f}")
        return out


# -- audio feature pipeline ----------------------------------------------------------------------


def make_pipeline(recipe):
    """The recipe's ``features`` steps as one ``FeaturePipeline`` (path or Example -> array)."""

    steps = [FEATURES.get(s.type)(**s.params) for s in recipe.features]
    return FeaturePipeline(steps, [s.type for s in recipe.features])


def _stack(feats, split) -> np.ndarray:
    shapes = sorted({f.shape for f in feats})
    if len(shapes) > 1:
        frames = sorted({s[0] for s in shapes})
        raise DataError(
            f"Clips of the {split} split give different feature shapes (frames {frames[0]}.."
            f"{frames[-1]}); add a `fix_length` step before the spectrogram in `features`."
        )
    return np.stack(feats).astype(np.float32)


def make_source(recipe):
    return SOURCES.get(recipe.data.source.type)(**recipe.data.source.params)


# -- keyword spotting ----------------------------------------------------------------------------




def __getattr__(name):  # seqkit 0.1's ``from seqkit.tasks import KeywordSpotting``
    if name == "KeywordSpotting":
        return TASKS.get("kws")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
