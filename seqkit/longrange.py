"""Long-range memory tasks of the RNN literature, with data that seqkit generates itself.

Sources (``data.source.type``) -- each generates its three splits from ``seed`` alone, each split
from its own random stream, so changing one split's size leaves the others as they were:

* ``adding_problem`` -- Hochreiter & Schmidhuber (1997), in the form of Le, Jaitly & Hinton
  (2015): an input of ``length`` steps and two channels, a value drawn uniformly from [0, 1]
  and a marker channel that is 0 except at two steps, one in the first half of the sequence and
  one in the second half. The target is the sum of the two marked values. Predicting the
  constant 1 (the sum's mean) gives an MSE of Var(U1 + U2) = 2/12 = 0.167; a model that does
  better must carry the first marked value across at least half the sequence.
* ``copy_memory`` -- the copy task of Arjovsky, Shah & Bengio (2016): ``copy_length`` symbols
  drawn from ``symbols`` letters, then ``length - 1`` blanks, a delimiter, and ``copy_length``
  more blanks during which the model must output the symbols in order. Inputs are one-hot
  (``symbols + 2`` channels: blank, the letters, the delimiter), ``length + 2 * copy_length``
  steps; targets are one class per step (0 blank, 1..``symbols`` the letters). The best
  memoryless model predicts blanks exactly and guesses the letters: a cross-entropy of
  ``copy_length * ln(symbols) / (length + 2 * copy_length)`` per step.

Tasks (``task.type``):

* ``sequence_regression`` -- the last recurrent layer's final state -> Dense(1), mean squared
  error; the best model has the lowest validation loss. ``metrics.json`` has, per split,
  ``mse`` (= ``loss``), ``mae``, ``baseline_mse`` (the MSE of predicting the training targets'
  mean) and ``baseline_ratio`` = mse / baseline_mse.
* ``sequence_classification`` -- one class per sequence (final state -> softmax) or, for
  sources whose targets are per step (``copy_memory``), one class per step (the whole output
  sequence -> softmax at every step); sparse cross-entropy. Per split: ``loss``, ``accuracy``,
  ``scored_accuracy`` (accuracy over the steps that need memory: the copied symbols),
  ``baseline_loss`` (the best memoryless model's loss) and ``baseline_ratio``.

"Learns" (``Task.learns``): a test loss below 10 % of the memoryless baseline
(``LEARN_RATIO``). For the adding problem that is an MSE below 0.0167.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import ParameterError, RecipeError
from .registry import SOURCES
from .tasks import SPLITS, Outline, Parts, Settings, Split, Task, TaskData

LEARN_RATIO = 0.1
_SPLIT_STREAM = {"train": 0, "validation": 1, "test": 2}


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ParameterError(f"`seed` must be an integer in [0, 2**32); received {seed!r}.")
    return seed


def _check_count(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ParameterError(f"`{name}` must be an integer >= {minimum}; received {value!r}.")
    return int(value)


class SequenceSource:
    """Base of generated sequence sources: sizes, seeding and the ``arrays`` protocol.

    A subclass sets ``kind`` (``"regression"`` or ``"classification"``), ``targets_per_step``,
    ``input_shape`` and implements ``_generate(rng, n) -> (x, y)``.
    """

    kind = "regression"
    targets_per_step = False

    def __init__(self, train_examples, validation_examples, test_examples, seed):
        self.sizes = {
            "train": _check_count("train_examples", train_examples),
            "validation": _check_count("validation_examples", validation_examples),
            "test": _check_count("test_examples", test_examples, minimum=0),
        }
        self.seed = _check_seed(seed)

    @property
    def input_shape(self) -> tuple:  # pragma: no cover - abstract
        raise NotImplementedError

    def info(self) -> dict:
        return {"source": type(self).__name__, "input_shape": list(self.input_shape)}

    def arrays(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` of one split, the same for the same parameters on any machine."""
        rng = np.random.default_rng([self.seed, _SPLIT_STREAM[split]])
        return self._generate(rng, self.sizes[split])

    def _generate(self, rng, n):  # pragma: no cover - abstract
        raise NotImplementedError


class AddingProblem(SequenceSource):
    """The adding problem (see the module docstring): ``(length, 2)`` inputs, a sum to predict.

    ``length`` >= 2 steps; ``train_examples`` / ``validation_examples`` / ``test_examples``
    sequences per split; ``seed`` of the generator.
    """

    kind = "regression"

    def __init__(
        self,
        length: int = 100,
        train_examples: int = 10000,
        validation_examples: int = 1000,
        test_examples: int = 1000,
        seed: int = 0,
    ):
        self.length = _check_count("length", length, minimum=2)
        super().__init__(train_examples, validation_examples, test_examples, seed)

    @property
    def input_shape(self) -> tuple:
        return (self.length, 2)

    def info(self) -> dict:
        return super().info() | {"length": self.length, "constant_baseline_mse": 1 / 6}

    def _generate(self, rng, n):
        t, half = self.length, self.length // 2
        values = rng.uniform(0.0, 1.0, size=(n, t)).astype(np.float32)
        first = rng.integers(0, half, size=n)
        second = rng.integers(half, t, size=n)
        markers = np.zeros((n, t), dtype=np.float32)
        rows = np.arange(n)
        markers[rows, first] = 1.0
        markers[rows, second] = 1.0
        y = (values[rows, first] + values[rows, second]).astype(np.float32)
        return np.stack([values, markers], axis=-1), y


class CopyMemory(SequenceSource):
    """The copy-memory task (see the module docstring): one-hot inputs, a class per step.

    ``length`` is the delay between the last symbol shown and the first one asked for (the
    sequence has ``length + 2 * copy_length`` steps); ``symbols`` the alphabet size (>= 2).
    """

    kind = "classification"
    targets_per_step = True

    def __init__(
        self,
        length: int = 100,
        copy_length: int = 10,
        symbols: int = 8,
        train_examples: int = 10000,
        validation_examples: int = 1000,
        test_examples: int = 1000,
        seed: int = 0,
    ):
        self.length = _check_count("length", length, minimum=1)
        self.copy_length = _check_count("copy_length", copy_length)
        self.symbols = _check_count("symbols", symbols, minimum=2)
        super().__init__(train_examples, validation_examples, test_examples, seed)

    @property
    def steps(self) -> int:
        return self.length + 2 * self.copy_length

    @property
    def input_shape(self) -> tuple:
        return (self.steps, self.symbols + 2)

    @property
    def classes(self) -> int:
        return self.symbols + 1  # blank + the letters

    def baseline_loss(self) -> float:
        return self.copy_length * math.log(self.symbols) / self.steps

    def info(self) -> dict:
        return super().info() | {
            "length": self.length,
            "classes": self.classes,
            "scored_steps": self.copy_length,  # the last steps: the copied symbols
            "baseline_loss": self.baseline_loss(),
        }

    def _generate(self, rng, n):
        k, s = self.copy_length, self.steps
        letters = rng.integers(1, self.symbols + 1, size=(n, k))
        tokens = np.zeros((n, s), dtype=np.int64)
        tokens[:, :k] = letters
        tokens[:, self.length + k - 1] = self.symbols + 1  # the delimiter
        x = np.eye(self.symbols + 2, dtype=np.float32)[tokens]
        y = np.zeros((n, s), dtype=np.int64)
        y[:, -k:] = letters
        return x, y


# -- tasks ---------------------------------------------------------------------------------------


class _SequenceTask(Task):
    """Shared by the two tasks: the generated source, its arrays, the no-features check."""

    uses_audio_features = False
    normalize_default = False
    source_kind = "regression"
    learn_rule = f"test loss < {LEARN_RATIO:g} x the memoryless baseline"

    def __init__(self):
        self._source = None

    def _use_source(self, source):
        self._source = source
        return source

    def check(self, outline: Outline, source) -> list[tuple[str, str]]:
        problems = []
        name = type(self).__name__
        task_name = f"sequence_{self.source_kind}"
        if outline.features:
            problems.append(
                (
                    "features",
                    f"the {task_name} task reads generated sequences, not audio; "
                    "remove the `features` steps",
                )
            )
        cls = type(source)
        kind = getattr(cls, "kind", None)
        if not callable(getattr(cls, "arrays", None)) or kind != self.source_kind:
            fitting = [
                n
                for n in SOURCES.names()
                if n in ("adding_problem", "copy_memory")
                and getattr(SOURCES.get(n), "kind", None) == self.source_kind
            ]
            problems.append(
                (
                    "data.source.type",
                    f"the {task_name} task ({name}) needs a generated {self.source_kind} "
                    f"sequence source such as {', '.join(fitting)}; received "
                    f"'{outline.source}'",
                )
            )
            return problems
        self._use_source(source)
        return problems

    def dummy_input_shape(self) -> tuple:
        if self._source is None:
            return (10, 2)
        return tuple(self._source.input_shape)

    def load_data(self, parts: Parts, settings: Settings, progress=None) -> TaskData:
        source = self._use_source(parts.source)
        splits = {}
        for split in SPLITS:
            if source.sizes[split] == 0:
                continue
            x, y = source.arrays(split)
            splits[split] = Split(x, y)
        info = source.info() | {"examples": {s: len(v) for s, v in splits.items()}}
        return TaskData(splits, tuple(source.input_shape), info)

    def learns(self, split_metrics: dict) -> bool:
        """Whether a split's metrics pass the learn rule (loss < 10 % of the baseline)."""
        return split_metrics["baseline_ratio"] < LEARN_RATIO


class SequenceRegression(_SequenceTask):
    """The final state -> Dense(1); mean squared error (see the module docstring)."""

    monitor = "val_loss"
    mode = "min"
    needs_sequences = False
    source_kind = "regression"

    def head(self, x, info: dict):
        import keras  # Keras (~3 s with its backend): not for the commands that never build a model

        if len(x.shape) != 2:

            raise RecipeError(
                [
                    (
                        "model.layers",
                        "the last layer returns a sequence; sequence_regression reads the "
                        "final state (remove `return_sequences: true` from the last layer)",
                    )
                ]
            )
        return keras.layers.Dense(1, name="prediction")(x)

    def compile_args(self) -> dict:
        return {"loss": "mse", "metrics": ["mae"]}

    def evaluate(self, model, data: TaskData, split: str, batch_size: int = 256) -> dict:
        s = data.splits[split]
        pred = model.predict(s.x, batch_size=batch_size, verbose=0).reshape(-1)
        y = np.asarray(s.y, dtype=np.float64).reshape(-1)
        err = pred.astype(np.float64) - y
        mse = float(np.mean(err**2))
        mean = float(np.mean(data.splits["train"].y))
        baseline = float(np.mean((y - mean) ** 2))
        return {
            "loss": mse,
            "mse": mse,
            "mae": float(np.mean(np.abs(err))),
            "baseline_mse": baseline,
            "baseline_ratio": mse / baseline if baseline > 0 else float("inf"),
            "examples": int(len(y)),
        }

    def summary(self, metrics: dict) -> list[str]:
        out = []
        for split in ("validation", "test"):
            if split in metrics:
                m = metrics[split]
                out.append(
                    f"{split} MSE: {m['mse']:.5f} ({m['baseline_ratio']:.3f} x the baseline "
                    f"{m['baseline_mse']:.4f}; best epoch {metrics['best_epoch']})"
                )
        return out


class SequenceClassification(_SequenceTask):
    """A class per sequence, or per step for per-step sources (see the module docstring)."""

    monitor = "val_loss"
    mode = "min"
    source_kind = "classification"

    def __init__(self):
        super().__init__()
        self.per_step = False

    @property
    def needs_sequences(self) -> bool:
        return self.per_step

    def _use_source(self, source):
        self.per_step = bool(getattr(source, "targets_per_step", False))
        return super()._use_source(source)

    def dummy_info(self) -> dict:
        if self._source is None:
            return {"classes": 2}
        return self._source.info()

    def head(self, x, info: dict):
        import keras  # Keras (~3 s with its backend): not for the commands that never build a model

        if len(x.shape) != (3 if self.per_step else 2):

            want = "a sequence" if self.per_step else "its final state"
            raise RecipeError(
                [
                    (
                        "model.layers",
                        f"sequence_classification needs the last layer to return {want} for "
                        "this source; remove an explicit `return_sequences` from it",
                    )
                ]
            )
        return keras.layers.Dense(int(info["classes"]), activation="softmax", name="scores")(x)

    def compile_args(self) -> dict:
        return {"loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]}

    def evaluate(self, model, data: TaskData, split: str, batch_size: int = 256) -> dict:
        s = data.splits[split]
        probs = model.predict(s.x, batch_size=batch_size, verbose=0).astype(np.float64)
        y = np.asarray(s.y)
        picked = np.take_along_axis(probs, y[..., None], axis=-1)[..., 0]
        nll = -np.log(np.clip(picked, 1e-12, None))
        pred = probs.argmax(-1)
        out = {"loss": float(nll.mean()), "accuracy": float(np.mean(pred == y))}
        scored = int(data.info.get("scored_steps", 0))
        if self.per_step and scored:
            out["scored_accuracy"] = float(np.mean(pred[:, -scored:] == y[:, -scored:]))
        baseline = data.info.get("baseline_loss")
        if baseline is None:  # one class per sequence: predict the training class frequencies
            train_y = np.asarray(data.splits["train"].y).reshape(-1)
            freq = np.bincount(train_y, minlength=probs.shape[-1])
            freq = np.clip(freq / freq.sum(), 1e-12, None)
            baseline = float(-np.log(freq[y]).mean())
        out["baseline_loss"] = float(baseline)
        out["baseline_ratio"] = out["loss"] / baseline if baseline > 0 else float("inf")
        out["examples"] = int(len(y))
        return out

    def summary(self, metrics: dict) -> list[str]:
        out = []
        for split in ("validation", "test"):
            if split in metrics:
                m = metrics[split]
                acc = m.get("scored_accuracy", m["accuracy"])
                out.append(
                    f"{split} loss: {m['loss']:.4f} ({m['baseline_ratio']:.3f} x the baseline "
                    f"{m['baseline_loss']:.4f}), accuracy {acc:.4f}; best epoch "
                    f"{metrics['best_epoch']}"
                )
        return out
