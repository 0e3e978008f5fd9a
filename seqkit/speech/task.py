"""The ``kws`` task (``KeywordSpotting``): keyword spotting as clip classification.

Recurrent layers -> (pooling) -> dropout -> softmax over the labels; sparse categorical
cross-entropy and accuracy; the best model is the one with the highest validation accuracy.
Data: the source's examples through the feature pipeline (and the on-disk feature cache),
augmented per batch when ``data.augment`` asks; evaluation: accuracy, per-class precision /
recall / F1, the confusion matrix and the misclassified files (``classification_report``);
TensorBoard: the validation confusion matrix and clips every epoch. Where the source knows
speakers (``seqkit.data.speaker_of``), each split's report has ``speakers``: accuracy per
speaker, the worst five, mean, spread and minimum -- and TensorBoard shows the validation
speakers' accuracy as a histogram (``speaker_accuracy``) with its minimum and mean.
"""

from __future__ import annotations

import logging
from pathlib import Path

import keras
import numpy as np

from .. import progress as report
from ..cache import FeatureCache, check_outside
from ..data import SPLITS, fold_split, speaker_accuracy
from ..errors import DataError, ParameterError, fraction
from ..errors import DataError as _DataError
from ..extract import default_workers, extract_features
from ..features import Load
from ..tasks import POOLINGS, Outline, Parts, Settings, Split, Task, TaskData, _stack
from .augment import AUDIO, BatchMaker, WaveformLoader, build_augmentations, train_batches

log = logging.getLogger("seqkit")

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

    def check(self, outline: Outline, source) -> list[tuple[str, str]]:
        if not outline.features:
            return [("features", "the kws task needs feature steps (load, ..., mfcc); none given")]
        return []

    def dummy_info(self) -> dict:
        return {"labels": ["a", "b"]}

    # data

    def load_data(self, parts: Parts, settings: Settings, progress=None) -> TaskData:
        """Source examples -> the feature pipeline -> ``(N, frames, features)`` per split.

        With ``data.cache`` (the default) the features come from the on-disk feature cache
        (``seqkit.cache``), computed on all cores the first time, and each split's ``x`` is a
        read-only memory-mapped array; the training split is streamed to ``fit`` in batches
        (``train_input``), never loaded whole. With ``data.cache: false`` they are computed
        (on all cores) and held in memory. ``data.augment`` makes ``train_input`` a
        ``TrainBatches`` of augmented batches (``seqkit.augment``).
        """

        source = parts.source
        examples = source.examples()
        if settings.folds:  # one fold of `seqkit crossval`: the splits by speaker groups
            examples = fold_split(examples, settings.folds)
        labels = source.label_names()
        pipeline = self._pipeline = parts.pipeline
        self._devices = settings.devices
        index = {name: i for i, name in enumerate(labels)}
        rank = {name: i for i, name in enumerate(SPLITS)}
        # Split by split (a stable sort): each split is one block of the cached array.
        examples = sorted(examples, key=lambda ex: rank.get(ex.split, len(SPLITS)))
        progress = progress if progress is not None else report.counter("features", unit="clip")
        data_root = getattr(source, "data_root", None) or getattr(source, "root", None)
        cached = None
        if settings.cache:

            cache = FeatureCache(pipeline, identity=settings.source_identity, data_root=data_root)
            for root in list(getattr(source, "data_roots", ()))[1:]:  # a mixed source's others
                check_outside(cache.root, root)
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
        if parts.augment or "train" in blocks:
            train_input = self._train_batches(parts, settings, splits["train"],
                                              blocks.get("train"), data_root)  # fmt: skip
        return TaskData(splits, splits["train"].x.shape[1:], info, train_input=train_input)

    def _train_batches(self, parts: Parts, settings: Settings, train, rows, data_root):
        """A ``TrainBatches`` over the training split: memory-mapped ``rows`` (or the split's
        array), augmented by ``data.augment``. Waveform augmentations start from the audio
        after ``load``, itself cached on disk when ``data.cache`` is on (else read per clip)."""

        pipeline = parts.pipeline
        augs = build_augmentations(parts.augment, source=parts.source, pipeline=pipeline)
        audio = None
        waveform = any(a.kind == AUDIO for a in augs)
        if waveform and settings.cache:

            cache = FeatureCache(WaveformLoader(pipeline), data_root=data_root,
                                 identity=settings.source_identity + ":train-audio")  # fmt: skip
            kept, audio, _ = cache.extract(train.items, progress=report.counter("audio", unit="clip"))
            if len(kept) != len(train.items):  # a file changed in between: read clips as needed
                audio = None
        maker = BatchMaker(
            rows if rows is not None else train.x,
            train.y,
            settings.batch_size,
            seed=settings.seed,
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
        speakers = speaker_accuracy(s.items, pred == y) if s.items else {}
        if speakers:
            report["speakers"] = speakers
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

        out = [
            keras.ops.convert_to_numpy(model(np.asarray(x[i : i + batch_size]), training=False))
            for i in range(0, len(x), batch_size)
        ]
        return np.concatenate(out) if out else np.zeros((0, model.output_shape[-1]), np.float32)

    @staticmethod
    def confusion_figure(cm, labels, title: str = ""):
        """A matplotlib ``Figure`` of a confusion matrix: rows true, columns predicted, shaded
        by the fraction of the true class, with the counts written in (up to 30 labels)."""
        from matplotlib.figure import Figure  # matplotlib (0.35-0.6 s): only when a figure is drawn

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
        from matplotlib.backends.backend_agg import (
            FigureCanvasAgg,  # matplotlib (0.35-0.6 s): only when a figure is drawn
        )

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

        try:
            import tensorflow as tf  # optional: TensorFlow is one Keras backend of three
        except ImportError:
            log.info("TensorFlow is not installed: no confusion matrix or audio in TensorBoard.")
            return []
        state = getattr(self, "_media", None)
        if state is None or state["run"] != str(run_dir):
            state = {"run": str(run_dir), "writer": None, "clips": self._media_clips(data)}
            self._media = state
        task, val, labels = self, data.splits["validation"], data.info["labels"]
        devices = getattr(self, "_devices", 1)  # data_parallel: set by load_data

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
                    or devices > 1
                )
                probs = (task.forward if distributed else task.predict)(self.model, val.x)
                pred = probs.argmax(axis=1)
                cm = classification_report(val.y, pred, labels)["confusion_matrix"]
                fig = task.confusion_figure(cm, labels, f"validation, epoch {epoch + 1}")
                pixels = task.figure_pixels(fig)
                speakers = speaker_accuracy(val.items, pred == np.asarray(val.y)) if val.items else {}
                with state["writer"].as_default():
                    tf.summary.image("confusion_matrix", pixels[None], step=epoch)
                    if speakers:  # the spread of accuracy over the validation speakers
                        acc = [m["accuracy"] for m in speakers["per_speaker"].values()]
                        tf.summary.histogram("speaker_accuracy", acc, step=epoch)
                        tf.summary.scalar("speaker_accuracy/min", speakers["min"], step=epoch)
                        tf.summary.scalar("speaker_accuracy/mean", speakers["mean"], step=epoch)
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
