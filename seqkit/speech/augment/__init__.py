"""Training-only data augmentation (``data.augment`` in a recipe), seeded, and the batches that
feed ``model.fit``.

Waveform augmentations act on the audio after the pipeline's ``load`` step, before the other
feature steps: ``time_shift``, ``background_noise``, ``gain``, ``speed``, and (``voices``,
synthetic voices closer to people) ``reverb``, ``band_pass``, ``telephone``, ``clipping``.
Feature augmentations act on the finished (time, features) matrix: ``spec_augment``, ``vtlp``. Waveform augmentations run
first, in the order the recipe gives them, then feature augmentations, in theirs.

Each augmentation draws its random settings for one clip (``draw(rng, x, sr)``) and applies
them (``apply(x, sr, **settings)``); ``aug(x, sr, rng)`` does both, with probability ``p``.
``TrainBatches`` gives every batch of every epoch its own random stream, seeded by
``(recipe seed, epoch, batch index)``, so the batches of a seed are the same whatever the
number of workers or the order Keras asks for them (and a resumed run gets the same ones).

Validation and test data are never augmented; the model's normalisation is fitted on the
unaugmented training features.
"""

from __future__ import annotations

import logging
import os

import keras
import librosa
import numpy as np

from ...errors import DataError, ParameterError, non_negative_number
from ...extract import limit_blas_threads
from ...features import FixLength, Load, colored_noise
from ...registry import AUGMENTATIONS
from ._base import AUDIO, FEATURES, Augmentation, _int, _p, _range

log = logging.getLogger("seqkit")

NOISE_CHOICES = ("auto", "source", "white", "pink", "brown")


class TimeShift(Augmentation):
    """Shift the waveform by up to ``max_ms`` milliseconds either way, filling with zeros
    (the clip keeps its length; what is shifted out is lost)."""

    def __init__(self, max_ms: float = 100.0, p: float = 1.0):
        self.max_ms = non_negative_number("max_ms", max_ms)
        self.p = _p(p)

    def draw(self, rng, x, sr) -> dict:
        m = int(round(self.max_ms * sr / 1000))
        return {"shift": int(rng.integers(-m, m + 1))}

    def apply(self, x, sr, shift: int):
        out = np.zeros_like(x)
        if shift > 0:
            out[shift:] = x[: len(x) - shift] if shift < len(x) else 0
        elif shift < 0:
            out[:shift] = x[-shift:] if -shift < len(x) else 0
        else:
            out[:] = x
        return out


class Gain(Augmentation):
    """Scale the waveform by a gain drawn uniformly in ``db`` ([low, high] decibels)."""

    def __init__(self, db: list[float] = (-6.0, 6.0), p: float = 1.0):
        self.db = _range("db", db, -60.0, 60.0, " dB")
        self.p = _p(p)

    def draw(self, rng, x, sr) -> dict:
        return {"db": float(rng.uniform(*self.db))}

    def apply(self, x, sr, db: float):
        return (x * np.float32(10.0 ** (db / 20.0))).astype(np.float32)


class Speed(Augmentation):
    """Speed perturbation: play the clip ``factor`` times faster (drawn uniformly in
    ``factor`` [low, high]), by resampling: the length becomes ``len / factor`` and every
    frequency is multiplied by ``factor``, as in Ko et al. (Interspeech 2015).

    The recipe needs a ``fix_length`` step so that clips keep one length.
    """

    def __init__(self, factor: list[float] = (0.9, 1.1), p: float = 1.0):
        self.factor = _range("factor", factor, 0.5, 2.0)
        self.p = _p(p)

    def draw(self, rng, x, sr) -> dict:
        return {"factor": float(rng.uniform(*self.factor))}

    def apply(self, x, sr, factor: float):
        if factor == 1.0:
            return x

        # Read the samples as if recorded at sr * factor, play them back at sr.
        y = librosa.resample(
            np.asarray(x, dtype=np.float32), orig_sr=sr * factor, target_sr=sr, res_type="soxr_hq"
        )
        return np.ascontiguousarray(y, dtype=np.float32)


class BackgroundNoise(Augmentation):
    """Mix in noise at a signal-to-noise ratio drawn uniformly in ``snr_db`` ([low, high]
    decibels), with probability ``p``. SNR is the ratio of the clip's mean power to the added
    noise's mean power over the whole clip; silent clips are left as they are.

    ``noise``: ``auto`` (the source's background-noise recordings, e.g. Speech Commands'
    ``_background_noise_/``, when it has any, else generated white, pink or brown noise),
    ``source`` (the recordings; an error when there are none), or one colour: ``white``,
    ``pink``, ``brown``. A random stretch of a random recording is used for each clip.
    """

    def __init__(self, snr_db: list[float] = (5.0, 20.0), p: float = 0.8, noise: str = "auto"):
        self.snr_db = _range("snr_db", snr_db, -30.0, 100.0, " dB")
        self.p = _p(p)
        if noise not in NOISE_CHOICES:
            raise ParameterError(
                f"`noise` must be one of {', '.join(NOISE_CHOICES)}; received {noise!r}."
            )
        self.noise = noise
        self._clips: list[np.ndarray] = []

    def bind(self, source=None, sample_rate=None) -> None:
        self._clips = []
        if self.noise not in ("auto", "source"):
            return
        files = []
        if source is not None and hasattr(source, "background_noise_files"):
            files = list(source.background_noise_files())
        if files:

            load = Load(sample_rate=sample_rate or 16000)
            for f in files:
                try:
                    y = load(str(f))
                except DataError as exc:
                    log.warning("background_noise: skipping %s", exc)
                    continue
                if y.size and np.mean(y.astype(np.float64) ** 2) > 0:
                    self._clips.append(y)
        if self.noise == "source" and not self._clips:
            name = type(source).__name__ if source is not None else "the data source"
            raise ParameterError(
                f"`noise: source` needs background-noise recordings, and {name} has none "
                "(e.g. a _background_noise_/ folder of a speech_commands source); use "
                "`noise: auto` to fall back to generated noise."
            )

    @property
    def recordings(self) -> int:
        return len(self._clips)

    def draw(self, rng, x, sr) -> dict:
        n = len(x)
        snr = float(rng.uniform(*self.snr_db))
        if self._clips:
            clip = self._clips[int(rng.integers(len(self._clips)))]
            if len(clip) >= n:
                start = int(rng.integers(0, len(clip) - n + 1))
                noise = clip[start : start + n]
            else:
                noise = np.resize(clip, n)  # a short recording repeats
        else:

            color = (
                self.noise
                if self.noise in ("white", "pink", "brown")
                else ("white", "pink", "brown")[int(rng.integers(3))]
            )
            noise = colored_noise(color, n, rng)
        return {"snr_db": snr, "noise": noise}

    def apply(self, x, sr, snr_db: float, noise):
        x = np.asarray(x, dtype=np.float32)
        ps = float(np.mean(x.astype(np.float64) ** 2))
        pn = float(np.mean(np.asarray(noise, dtype=np.float64) ** 2))
        if ps <= 1e-12 or pn <= 1e-12:
            return x
        scale = np.sqrt(ps / (pn * 10.0 ** (snr_db / 10.0)))
        return (x + scale * np.asarray(noise, dtype=np.float32)).astype(np.float32)


class SpecAugment(Augmentation):
    """SpecAugment's masks (Park et al., Interspeech 2019) on the (time, features) matrix:
    ``freq_masks`` bands of 0..``freq_width`` adjacent feature columns and ``time_masks``
    stretches of 0..``time_width`` frames, each width and position drawn uniformly, set to
    ``value``: ``mean`` (the clip's mean, so a mask carries no energy cue) or a number.

    Bands are adjacent columns of the feature matrix: frequency bands for log-mel features;
    after ``deltas``, a band covers columns of the stacked matrix.
    """

    kind = FEATURES

    def __init__(
        self,
        freq_masks: int = 2,
        freq_width: int = 8,
        time_masks: int = 2,
        time_width: int = 10,
        value: float | str = "mean",
        p: float = 1.0,
    ):
        self.freq_masks = _int("freq_masks", freq_masks)
        self.freq_width = _int("freq_width", freq_width)
        self.time_masks = _int("time_masks", time_masks)
        self.time_width = _int("time_width", time_width)
        if value != "mean" and (
            isinstance(value, (bool, str)) or not isinstance(value, (int, float))
        ):
            raise ParameterError(f"`value` must be 'mean' or a number; received {value!r}.")
        self.value = value
        self.p = _p(p)

    def draw(self, rng, x, sr=None) -> dict:
        frames, feats = x.shape[0], x.shape[1]

        def masks(count, width, size):
            if not count:
                return []
            widths = rng.integers(0, min(width, size) + 1, size=count)
            starts = (rng.random(count) * (size - widths + 1)).astype(np.int64)
            return [(int(s), int(w)) for s, w in zip(starts, widths)]

        return {
            "freq": masks(self.freq_masks, self.freq_width, feats),
            "time": masks(self.time_masks, self.time_width, frames),
        }

    def apply(self, x, sr=None, freq=(), time=()):
        out = np.array(x, dtype=np.float32, copy=True)
        fill = np.float32(out.mean() if self.value == "mean" else self.value)
        for start, width in freq:
            out[:, start : start + width] = fill
        for start, width in time:
            out[start : start + width, :] = fill
        return out


# -- batches -------------------------------------------------------------------------------------


def build_augmentations(steps, source=None, pipeline=None) -> list[Augmentation]:
    """The recipe's ``data.augment`` steps bound to the source and sample rate: ``(name,
    augmentation)`` pairs as ``seqkit.build`` makes them, or recipe steps (``{type, ...}``),
    built here.

    Raises ParameterError when a waveform augmentation cannot run with the pipeline (no
    ``load`` first step, or ``speed`` without a ``fix_length`` step), or a step that reads the
    pipeline (``bind_pipeline``: ``vtlp`` needs mel bands) cannot use it.
    """

    augs = []
    for i, step in enumerate(steps):
        if isinstance(step, tuple):
            name, aug = step
        else:
            name, aug = step.type, AUGMENTATIONS.get(step.type)(**step.params)
        if aug.kind == AUDIO and pipeline is not None:
            if not isinstance(pipeline.steps[0], Load):
                raise ParameterError(
                    f"data.augment[{i}] ({name}) changes the waveform, which needs a `load` "
                    "first feature step; this pipeline starts with "
                    f"'{pipeline.names[0]}'. Use feature augmentations (spec_augment) only."
                )
            if isinstance(aug, Speed) and not any(isinstance(s, FixLength) for s in pipeline.steps):
                raise ParameterError(
                    f"data.augment[{i}] (speed) changes the clip length; add a `fix_length` "
                    "step after `load` in `features` so that every clip keeps one length."
                )
        if hasattr(aug, "bind_pipeline"):
            if pipeline is None:
                raise ParameterError(f"data.augment[{i}] ({name}) needs the feature pipeline.")
            aug.bind_pipeline(pipeline, where=f"data.augment[{i}] ({name})")
        rate = pipeline.sample_rate if pipeline is not None else None
        aug.bind(source=source, sample_rate=rate)
        augs.append(aug)
    return augs


class BatchMaker:
    """Batch ``b`` of epoch ``e`` as numpy arrays, the same for a given seed on any worker:
    the clips ``default_rng([seed, e]).permutation(n)[b * batch_size:][:batch_size]``,
    augmented from the stream ``default_rng([seed, e, b])``.

    ``features``: rows of unaugmented features (an array or ``seqkit.cache.Rows``);
    ``labels``: targets; ``augmentations``: built ``Augmentation`` objects; ``pipeline``:
    the feature pipeline (for waveform augmentations); ``audio``: the waveforms after the
    pipeline's ``load`` step, as rows (``Rows``, a list of arrays) or ``None`` to load each
    clip from ``items`` when it is needed.
    """

    def __init__(
        self,
        features,
        labels,
        batch_size: int,
        seed: int = 0,
        augmentations=(),
        pipeline=None,
        audio=None,
        items=None,
    ):
        self.features, self.labels = features, np.asarray(labels)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.audio_augs = [a for a in augmentations if a.kind == AUDIO]
        self.feature_augs = [a for a in augmentations if a.kind == FEATURES]
        self.pipeline, self.audio, self.items = pipeline, audio, items
        if self.audio_augs and audio is None and items is None:
            raise ValueError("waveform augmentations need `audio` rows or `items` to load")
        self.multiple_of = 1  # epochs cut to a multiple of this many examples (data_parallel)
        self._order_epoch, self._order = None, None
        self._fallbacks = 0
        self._owner, self._limited = os.getpid(), None

    def __len__(self) -> int:
        n = len(self.labels)
        return -(-(n - n % self.multiple_of) // self.batch_size)

    def order(self, epoch: int) -> np.ndarray:
        if self._order_epoch != epoch:
            rng = np.random.default_rng([self.seed, epoch])
            order = rng.permutation(len(self.labels))
            self._order = order[: len(order) - len(order) % self.multiple_of]
            self._order_epoch = epoch
        return self._order

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_order_epoch"], state["_order"] = None, None
        return state

    def batch(self, epoch: int, b: int):
        rows = self.order(epoch)[b * self.batch_size : (b + 1) * self.batch_size]
        y = self.labels[rows]
        if not (self.audio_augs or self.feature_augs):
            return np.asarray(self.features[rows], dtype=np.float32), y
        if self.audio_augs and self._limited != os.getpid() and os.getpid() != self._owner:

            limit_blas_threads()  # in a worker process: see seqkit.extract.limit_blas_threads
            self._limited = os.getpid()
        rng = np.random.default_rng([self.seed, epoch, b])
        return np.stack([self.example(int(j), rng) for j in rows]), y

    def example(self, j: int, rng) -> np.ndarray:
        """The augmented features of clip ``j``, drawing from ``rng``."""
        base = None
        if self.audio_augs:
            wave = self._audio(j)
            sr = self.pipeline.sample_rate
            for aug in self.audio_augs:
                wave = aug(wave, sr, rng)

            try:
                x = np.asarray(self.pipeline.from_audio(wave, sr), dtype=np.float32)
            except (ParameterError, DataError) as exc:
                x = None
                why = str(exc)
            base = np.asarray(self.features[j], dtype=np.float32)
            if x is None or x.shape != base.shape:
                self._fallbacks += 1
                if self._fallbacks == 1:
                    what = why if x is None else f"shape {x.shape} instead of {base.shape}"
                    log.warning(
                        "An augmented clip could not be made (%s); its unaugmented features are "
                        "used (said once).",
                        what,
                    )
                x = base
        else:
            x = np.array(self.features[j], dtype=np.float32, copy=True)
        for aug in self.feature_augs:
            x = aug(x, None, rng)
        return x

    def _audio(self, j: int) -> np.ndarray:
        if self.audio is not None:
            return np.array(self.audio[j], dtype=np.float32, copy=True)
        return np.asarray(self.pipeline.steps[0](self.items[j]), dtype=np.float32)


_TRAIN_BATCHES = None


def _train_batches_class():
    """``TrainBatches``, a ``keras.utils.PyDataset`` (built on first use: importing this
    module must not import Keras)."""
    global _TRAIN_BATCHES
    if _TRAIN_BATCHES is not None:
        return _TRAIN_BATCHES

    class TrainBatches(keras.utils.PyDataset):
        """The training split as shuffled (and augmented) batches: epoch ``e`` takes the
        examples in the order ``default_rng([seed, e]).permutation(n)`` (the trainer's order
        for arrays), with one random stream per batch (``BatchMaker``). The trainer calls
        ``set_epoch(epoch, skip_batches)`` before each epoch (a resumed run skips the batches
        it has done). Without the trainer (plain ``fit(epochs=N)``), ``on_epoch_end``
        advances the epoch; once ``set_epoch`` has been called it does nothing, because Keras
        calls it at times of its own (also before the first epoch), which would move a
        resumed run off its batches."""

        def __init__(self, maker: BatchMaker, workers=1, use_multiprocessing=False, epoch=0):
            super().__init__(
                workers=workers, use_multiprocessing=use_multiprocessing, max_queue_size=8
            )
            self.maker, self.epoch, self.skip = maker, epoch, 0
            self.managed = False

        def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
            self.epoch, self.skip, self.managed = int(epoch), int(skip_batches), True

        def set_multiple_of(self, n: int) -> None:
            """Cut each epoch to a multiple of ``n`` examples (the trainer, under
            ``data_parallel`` over ``n`` devices: every batch must split evenly)."""
            if self.maker.multiple_of != int(n):
                self.maker.multiple_of = int(n)
                self.maker._order_epoch = None

        def __len__(self):
            return max(0, len(self.maker) - self.skip)

        def __getitem__(self, b):
            return self.maker.batch(self.epoch, int(b) + self.skip)

        def on_epoch_end(self):
            if not self.managed:
                self.epoch, self.skip = self.epoch + 1, 0

    TrainBatches.__module__ = __name__
    TrainBatches.__qualname__ = "TrainBatches"
    _TRAIN_BATCHES = TrainBatches
    return TrainBatches


def __getattr__(name):  # PEP 562: ``seqkit.augment.TrainBatches`` (for pickling workers)
    if name == "TrainBatches":
        return _train_batches_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def train_batches(maker: BatchMaker, workers: int = 1, use_multiprocessing: bool = False):
    """A ``TrainBatches`` (``keras.utils.PyDataset``) over ``maker``."""
    return _train_batches_class()(maker, workers=workers, use_multiprocessing=use_multiprocessing)


from .voices import VTLP, BandPass, Clipping, Reverb, Telephone  # noqa: E402

__all__ = [
    "VTLP",
    "Augmentation",
    "BackgroundNoise",
    "BandPass",
    "BatchMaker",
    "Clipping",
    "Gain",
    "Reverb",
    "SpecAugment",
    "Speed",
    "Telephone",
    "TimeShift",
    "build_augmentations",
    "train_batches",
]


class WaveformLoader:
    """A pipeline's ``load`` step alone, as a pipeline (example -> waveform): what the feature
    cache stores for waveform augmentations to start from."""

    def __init__(self, pipeline):
        self.steps, self.names = [pipeline.steps[0]], [pipeline.names[0]]

    def __call__(self, example):
        return self.steps[0](example)
