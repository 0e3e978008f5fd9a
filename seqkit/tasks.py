"""Tasks: what a recipe learns. A task reads the recipe's data, puts the head on the recipe's
layers, names the loss and metrics, and evaluates the best model.

The trainer (``seqkit.train``) is task-agnostic; it talks to a task through this protocol
(``Task`` below):

* ``load_data(recipe)`` -> ``TaskData``: arrays per split (``train`` and ``validation``
  required, ``test`` optional), the per-example input shape, ``info`` (JSON-able facts saved as
  ``data.json`` in the run folder: labels, counts, skipped files) and the training input;
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

Built-in tasks: ``kws`` (here), ``polyphonic`` and ``melody`` (``seqkit.music.tasks``),
``sequence_regression`` / ``sequence_classification`` (``seqkit.longrange``).

``kws`` -- keyword spotting, a clip classifier: softmax over the labels, sparse categorical
cross-entropy, accuracy; the best model is the one with the highest validation accuracy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import DataError, ParameterError, fraction
from .registry import FEATURES, SOURCES

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

    def check_recipe(self, recipe) -> list[tuple[str, str]]:
        """Problems ``(dotted path, message)`` of a recipe with this task; none by default."""
        return []

    def dummy_info(self) -> dict:
        """``info`` standing in for real data when a recipe is checked without data."""
        return {}

    def dummy_input_shape(self) -> tuple:
        raise NotImplementedError

    def load_data(self, recipe, progress=None) -> TaskData:  # pragma: no cover - abstract
        raise NotImplementedError

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
    from .features import FeaturePipeline

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


class KeywordSpotting(Task):
    """Clip classifier: recurrent layers -> (pooling) -> dropout -> Dense(labels, softmax).

    ``pooling``: ``last`` takes the last recurrent layer's final state (that layer is built with
    ``return_sequences=False``); ``mean`` / ``max`` pool its outputs over time.
    """

    monitor = "val_accuracy"
    mode = "max"
    uses_audio_features = True
    normalize_default = True

    def __init__(self, pooling: str = "last", dropout: float = 0.0):
        if pooling not in POOLINGS:
            raise ParameterError(
                f"`pooling` must be one of {', '.join(POOLINGS)}; received {pooling!r}."
            )
        self.pooling = pooling
        self.dropout = fraction("dropout", dropout)

    @property
    def needs_sequences(self) -> bool:
        """Whether the last recurrent layer must return its whole output sequence."""
        return self.pooling != "last"

    def check_recipe(self, recipe) -> list[tuple[str, str]]:
        if not recipe.features:
            return [("features", "the kws task needs feature steps (load, ..., mfcc); none given")]
        return []

    def dummy_info(self) -> dict:
        return {"labels": ["a", "b"]}

    # data

    def load_data(self, recipe, progress=None) -> TaskData:
        """Source examples -> the feature pipeline -> ``(N, frames, features)`` per split.

        With ``data.cache`` (the default) the features come from the on-disk feature cache
        (``seqkit.cache``), computed on all cores the first time, and each split's ``x`` is a
        read-only memory-mapped array; the training split is streamed to ``fit`` in batches
        (``train_input``), never loaded whole. With ``data.cache: false`` they are computed
        (on all cores) and held in memory. ``data.augment`` makes ``train_input`` a
        ``TrainBatches`` of augmented batches (``seqkit.augment``).
        """
        from .extract import default_progress, extract_features

        source = make_source(recipe)
        examples = source.examples()
        labels = source.label_names()
        pipeline = self._pipeline = make_pipeline(recipe)
        index = {name: i for i, name in enumerate(labels)}
        rank = {name: i for i, name in enumerate(SPLITS)}
        # Split by split (a stable sort): each split is one block of the cached array.
        examples = sorted(examples, key=lambda ex: rank.get(ex.split, len(SPLITS)))
        progress = progress if progress is not None else default_progress("features")
        data_root = getattr(source, "data_root", None) or getattr(source, "root", None)
        cached = None
        if recipe.data.cache:
            from .cache import FeatureCache, source_identity

            cache = FeatureCache(pipeline, identity=source_identity(recipe), data_root=data_root)
            kept, rows, skipped = cache.extract(examples, progress=progress)
            cached = str(cache.last_file) if not isinstance(rows, list) else None
        else:
            kept, rows, skipped = extract_features(examples, pipeline, progress=progress)
        splits, blocks = {}, {}
        for split in SPLITS:
            pick = [i for i, ex in enumerate(kept) if ex.split == split]
            if not pick:
                continue
            first, last = pick[0], pick[-1] + 1
            if not isinstance(rows, list) and rows.uniform and last - first == len(pick):
                blocks[split] = rows.slice(first, last)  # memory-mapped, no copy
                x = blocks[split].array()
            else:
                feats = rows if isinstance(rows, list) else rows.tolist()
                x = _stack([feats[i] for i in pick], split)
            y = np.array([index[kept[i].label] for i in pick], dtype=np.int64)
            splits[split] = Split(x, y, items=[kept[i] for i in pick])
        for split in ("train", "validation"):
            if split not in splits:
                raise DataError(
                    f"The {split} split is empty ({len(kept)} usable files in all); add files or "
                    "change the source's validation/test settings."
                )
        present = set(splits["train"].y.tolist())
        missing = [labels[i] for i in range(len(labels)) if i not in present]
        if missing:
            raise DataError(f"No training examples for label(s): {', '.join(missing)}.")
        info = {
            "labels": labels,
            "examples": {s: len(splits[s]) for s in splits},
            "skipped": skipped,
            "feature_cache": cached,
        }
        train_input = None
        if recipe.data.augment or "train" in blocks:
            train_input = self._train_batches(recipe, source, pipeline, splits["train"],
                                              blocks.get("train"), data_root)  # fmt: skip
        return TaskData(splits, splits["train"].x.shape[1:], info, train_input=train_input)

    def _train_batches(self, recipe, source, pipeline, train, rows, data_root):
        """A ``TrainBatches`` over the training split: memory-mapped ``rows`` (or the split's
        array), augmented by ``data.augment``. Waveform augmentations start from the audio
        after ``load``, itself cached on disk when ``data.cache`` is on (else read per clip)."""
        from .augment import AUDIO, BatchMaker, WaveformLoader, build_augmentations, train_batches
        from .extract import default_progress, default_workers

        augs = build_augmentations(recipe.data.augment, source=source, pipeline=pipeline)
        audio = None
        waveform = any(a.kind == AUDIO for a in augs)
        if waveform and recipe.data.cache:
            from .cache import FeatureCache, source_identity

            cache = FeatureCache(WaveformLoader(pipeline), data_root=data_root,
                                 identity=source_identity(recipe) + ":train-audio")  # fmt: skip
            kept, audio, _ = cache.extract(train.items, progress=default_progress("audio"))
            if len(kept) != len(train.items):  # a file changed in between: read clips as needed
                audio = None
        maker = BatchMaker(
            rows if rows is not None else train.x,
            train.y,
            recipe.train.batch_size,
            seed=recipe.seed,
            augmentations=augs,
            pipeline=pipeline,
            audio=audio,
            items=train.items,
        )
        # Waveform augmentation recomputes features per clip: worth worker processes.
        workers = default_workers() if waveform else 1
        return train_batches(maker, workers=workers, use_multiprocessing=waveform and workers > 1)

    # model

    def head(self, x, info: dict):
        import keras

        if len(x.shape) == 3:
            pool = (
                keras.layers.GlobalMaxPooling1D
                if self.pooling == "max"
                else (keras.layers.GlobalAveragePooling1D)
            )
            x = pool(name="pool")(x)
        if self.dropout:
            x = keras.layers.Dropout(self.dropout, name="head_dropout")(x)
        return keras.layers.Dense(len(info["labels"]), activation="softmax", name="scores")(x)

    def compile_args(self) -> dict:
        return {"loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]}

    def write_files(self, run_dir, data: TaskData) -> None:
        (run_dir / "labels.txt").write_text("".join(f"{n}\n" for n in data.info["labels"]))

    # evaluation

    def evaluate(self, model, data: TaskData, split: str, batch_size=256) -> dict:
        """Loss, accuracy, per-class precision/recall/F1, the confusion matrix and the
        misclassified files of ``split``. Predicts in chunks, so a memory-mapped split is never
        copied into memory whole."""
        import keras

        s = data.splits[split]
        labels = data.info["labels"]
        probs = self.predict(model, s.x, batch_size)
        pred = probs.argmax(axis=1)
        y = np.asarray(s.y)
        loss = float(
            keras.ops.convert_to_numpy(
                keras.losses.sparse_categorical_crossentropy(y, probs)
            ).mean()
        )
        report = classification_report(y, pred, labels) | {"loss": loss}
        report["misclassified"] = (
            [
                {
                    "path": str(getattr(s.items[i], "path", s.items[i])),
                    "label": labels[int(y[i])],
                    "predicted": labels[int(pred[i])],
                    "score": round(float(probs[i, pred[i]]), 4),
                }
                for i in np.flatnonzero(pred != y)
            ]
            if s.items
            else []
        )
        return report

    @staticmethod
    def predict(model, x, batch_size=256, chunk=32 * 256) -> np.ndarray:
        """``model.predict`` over ``x`` in chunks of ``chunk`` rows (a multiple of
        ``batch_size``, so the batches and the numbers are those of one call)."""
        out = [
            model.predict(np.asarray(x[i : i + chunk]), batch_size=batch_size, verbose=0)
            for i in range(0, len(x), chunk)
        ]
        return np.concatenate(out) if out else np.zeros((0, model.output_shape[-1]), np.float32)

    @staticmethod
    def forward(model, x, batch_size=256) -> np.ndarray:
        """The model called directly, batch by batch: no ``predict`` machinery, so it runs the
        same on every worker of a distributed run (``predict`` under
        MultiWorkerMirroredStrategy shards the rows across workers)."""
        import keras

        out = [
            keras.ops.convert_to_numpy(model(np.asarray(x[i : i + batch_size]), training=False))
            for i in range(0, len(x), batch_size)
        ]
        return np.concatenate(out) if out else np.zeros((0, model.output_shape[-1]), np.float32)

    @staticmethod
    def confusion_figure(cm, labels, title: str = ""):
        """A matplotlib ``Figure`` of a confusion matrix: rows true, columns predicted, shaded
        by the fraction of the true class, with the counts written in (up to 30 labels)."""
        from matplotlib.figure import Figure

        cm = np.asarray(cm)
        n = len(labels)
        frac = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        side = float(min(3.0 + 0.45 * n, 18.0))
        fig = Figure(figsize=(side + 1.2, side), dpi=100)
        ax = fig.add_subplot()
        im = ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0)
        ax.set_xticks(range(n), labels, rotation=90 if n > 6 else 0)
        ax.set_yticks(range(n), labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        if title:
            ax.set_title(title)
        if n <= 30:
            for i in range(n):
                for j in range(n):
                    if cm[i, j]:
                        color = "white" if frac[i, j] > 0.5 else "black"
                        ax.text(j, i, str(cm[i, j]), ha="center", va="center", color=color,
                                fontsize=8)  # fmt: skip
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true label")
        fig.tight_layout()
        return fig

    @staticmethod
    def figure_pixels(fig) -> np.ndarray:
        """The figure rendered to an RGBA ``uint8`` array (height, width, 4)."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        return np.array(canvas.buffer_rgba(), dtype=np.uint8)

    # TensorBoard

    MEDIA_LOGS = "validation_media"  # RUN/logs/<this>: confusion matrix and audio per epoch
    MEDIA_CLIPS = 4

    def callbacks(self, run_dir, data: TaskData) -> list:
        """A callback writing, after each epoch, the validation split's confusion matrix (an
        image) and a few validation clips (audio, with the predicted label as text) to
        ``RUN/logs/validation_media`` for TensorBoard. Needs TensorFlow (for its summary
        writer); without it there is nothing to add. The trainer asks for fresh callbacks each
        epoch: the clips and the writer are made once per run folder."""
        from pathlib import Path

        import keras

        from .distribute import data_parallel_devices

        try:
            import tensorflow as tf
        except ImportError:
            log.info("TensorFlow is not installed: no confusion matrix or audio in TensorBoard.")
            return []
        state = getattr(self, "_media", None)
        if state is None or state["run"] != str(run_dir):
            state = {"run": str(run_dir), "writer": None, "clips": self._media_clips(data)}
            self._media = state
        task, val, labels = self, data.splits["validation"], data.info["labels"]

        class ValidationMedia(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if state["writer"] is None:
                    logdir = Path(run_dir) / "logs" / KeywordSpotting.MEDIA_LOGS
                    state["writer"] = tf.summary.create_file_writer(str(logdir))
                # predict is ~3.5x cheaper; under a tf.distribute strategy it shards the rows
                # across workers, and under data_parallel it needs batches that split evenly
                # over the devices, so call the model directly there.
                distributed = (
                    getattr(self.model, "_distribute_strategy", None) is not None
                    or data_parallel_devices() > 1
                )
                probs = (task.forward if distributed else task.predict)(self.model, val.x)
                pred = probs.argmax(axis=1)
                cm = classification_report(val.y, pred, labels)["confusion_matrix"]
                fig = task.confusion_figure(cm, labels, f"validation, epoch {epoch + 1}")
                pixels = task.figure_pixels(fig)
                with state["writer"].as_default():
                    tf.summary.image("confusion_matrix", pixels[None], step=epoch)
                    for k, (i, wave, sr, name) in enumerate(state["clips"]):
                        true, guess = labels[int(val.y[i])], labels[int(pred[i])]
                        tf.summary.audio(f"clip_{k}", wave[None, :, None], sample_rate=sr,
                                         step=epoch, encoding="wav",
                                         description=f"{name} (true label: {true})")  # fmt: skip
                        tf.summary.text(
                            f"clip_{k}/prediction",
                            f"predicted **{guess}** ({probs[i, pred[i]]:.2f}), true {true}: "
                            f"{'right' if guess == true else 'wrong'} -- {name}",
                            step=epoch,
                        )
                state["writer"].flush()

        return [ValidationMedia()]

    def _media_clips(self, data: TaskData) -> list:
        """Up to ``MEDIA_CLIPS`` validation clips, one per label in label order: ``(row,
        waveform in [-1, 1], sample rate, name)``; none when the pipeline has no ``load``."""
        from .errors import DataError as _DataError
        from .features import Load

        val = data.splits["validation"]
        pipeline = getattr(self, "_pipeline", None)  # set by load_data
        first = pipeline.steps[0] if pipeline is not None else None
        if not isinstance(first, Load) or not val.items:
            return []
        rows, seen = [], set()
        for i, label in enumerate(np.asarray(val.y).tolist()):
            if label not in seen:
                seen.add(label)
                rows.append(i)
            if len(rows) == self.MEDIA_CLIPS:
                break
        clips = []
        for i in rows:
            item = val.items[i]
            try:
                wave = np.clip(first(item), -1.0, 1.0)[: first.sample_rate * 10]
            except _DataError:
                continue
            name = str(getattr(item, "key", None) or getattr(item, "path", item))
            clips.append((i, wave.astype(np.float32), first.sample_rate, name))
        return clips

    def summary(self, metrics: dict) -> list[str]:
        out = []
        for split in ("validation", "test"):
            if split in metrics:
                m = metrics[split]
                out.append(
                    f"{split} accuracy: {m['accuracy']:.4f} "
                    f"({m['examples']} clips, best epoch {metrics['best_epoch']})"
                )
        return out


def classification_report(y_true, y_pred, labels) -> dict:
    n = len(labels)
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true), np.asarray(y_pred)), 1)
    per_class = {}
    for i, name in enumerate(labels):
        tp = int(cm[i, i])
        precision = tp / cm[:, i].sum() if cm[:, i].sum() else 0.0
        recall = tp / cm[i, :].sum() if cm[i, :].sum() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {
            "precision": round(float(precision), 6),
            "recall": round(float(recall), 6),
            "f1": round(float(f1), 6),
            "support": int(cm[i, :].sum()),
        }
    accuracy = float(np.trace(cm) / cm.sum()) if cm.sum() else 0.0
    return {
        "accuracy": accuracy,
        "examples": int(cm.sum()),
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
    }
