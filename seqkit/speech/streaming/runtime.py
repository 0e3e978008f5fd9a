"""Features + model + state policy (``Streamer``) and detection (``Detector``, ``detect``,
``audio_blocks``); see ``seqkit.streaming``."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr

from ...errors import DataError, ParameterError, did_you_mean
from .features import FeatureStream
from .model import ModelStream

# Labels never reported as detections unless asked for (Speech Commands' _silence_/_unknown_,
# noise classes).
FILLER_WORDS = {"silence", "unknown", "noise", "background", "background_noise", "other", "filler"}


def filler_labels(labels: Iterable[str]) -> list[str]:
    """The labels that are not keywords: ``_name_`` labels and silence/unknown/noise-like ones."""
    return [
        name
        for name in labels
        if (len(name) > 1 and name.startswith("_") and name.endswith("_"))
        or name.strip("_").lower() in FILLER_WORDS
    ]


# -- features + model + state policy -------------------------------------------------------------


class Streamer:
    """Audio in, posteriors out: ``push(audio) -> (frames, classes)``, one row per frame.

    ``reset_every`` (frames; default the clip length the model was trained on) and ``copies``
    set the state policy (module docstring); ``reset_every=None`` carries one state forever.
    """

    def __init__(self, features: FeatureStream, model: ModelStream, reset_every="clip"):
        if features.num_features != model.num_features:
            raise ParameterError(
                f"The features have {features.num_features} values per frame but the model "
                f"takes {model.num_features}."
            )
        self.features, self.model = features, model
        if reset_every == "clip":
            reset_every = features.clip_frames
        if reset_every is not None and reset_every < 1:
            raise ParameterError(f"`reset_every` must be >= 1 frame; received {reset_every}.")
        self.reset_every = reset_every
        self.copies = model.copies
        self.num_outputs = model.num_outputs
        self.reset()

    def reset(self):
        """A new stream: features and every state from zero."""
        self.features.reset()
        self.frames = 0
        self.restart()

    def restart(self):
        """Zero every state now (after a detection) and restart the staggered schedule."""
        self.model.reset()
        T, K = self.reset_every, self.copies
        self._age = [0] * K
        if T is None:
            self._next = [math.inf] * K
        else:
            self._next = [self.frames + (round(k * T / K) if k else T) for k in range(K)]

    def _step(self, frame, on_posterior):
        t = self.frames
        if t >= min(self._next):
            for k in range(self.copies):
                if self._next[k] <= t:
                    self.model.reset(k)
                    self._age[k] = 0
                    self._next[k] += self.reset_every
        probs = self.model.step(frame)
        age = self._age
        for k in range(self.copies):
            age[k] += 1
        oldest = age.index(max(age)) if self.copies > 1 else 0
        self.frames += 1
        on_posterior(t, probs[oldest])

    def feed(self, audio, on_posterior):
        """Push ``audio``; call ``on_posterior(frame_index, posterior)`` for every frame it
        completes (``posterior`` is a view: copy it to keep it). The callback may call
        ``restart()``; the next frame then starts from zero states."""
        self.features.feed(audio, lambda f: self._step(f, on_posterior))

    def finish(self, on_posterior):
        """End of stream: the last frames, as ``feed``."""
        self.features.finish(lambda f: self._step(f, on_posterior))

    def _collect(self, fn, *args):
        out = []
        fn(*args, lambda t, p: out.append(p.copy()))
        return np.array(out, dtype=self.model.dtype).reshape(len(out), self.num_outputs)

    def push(self, audio) -> np.ndarray:
        """Posteriors of the frames that ``audio`` completes, (frames, classes)."""
        return self._collect(self.feed, audio)

    def flush(self) -> np.ndarray:
        """End of stream: posteriors of the last frames."""
        return self._collect(self.finish)

    def time_of(self, frame: int) -> float:
        """Seconds of audio that had arrived when frame ``frame``'s posterior came out."""
        return self.features.frame_available_samples(frame) / self.features.sample_rate


# -- detection -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Detection:
    """One detection: when it fired (seconds into the stream), the label, the smoothed score."""

    time_s: float
    label: str
    score: float
    frame: int


class Detector:
    """Moving-average smoothing, a threshold and a refractory time over per-frame posteriors.

    A detection fires at the first frame whose smoothed posterior of a reported label reaches
    ``threshold``, unless a detection fired less than ``refractory_ms`` before. ``report``:
    the labels that may fire (default every label except silence/unknown/noise-like ones).
    """

    def __init__(
        self,
        labels,
        frame_seconds,
        threshold=0.8,
        smooth_ms=300.0,
        refractory_ms=1000.0,
        report=None,
    ):
        self.labels = list(labels)
        if not 0.0 <= threshold <= 1.0:
            raise ParameterError(f"`threshold` must be in [0, 1]; received {threshold}.")
        for key, value in (("smooth_ms", smooth_ms), ("refractory_ms", refractory_ms)):
            if not value >= 0:
                raise ParameterError(f"`{key}` must be >= 0 ms; received {value}.")
        if report is None:
            fillers = set(filler_labels(self.labels))
            report = [name for name in self.labels if name not in fillers]
        for name in report:
            if name not in self.labels:
                raise ParameterError(
                    f"Label {name!r} is not one of the model's labels "
                    f"({', '.join(self.labels)}).{did_you_mean(name, self.labels)}"
                )
        if not report:
            raise ParameterError(
                "No label to report: every label of the model is silence/unknown/noise-like; "
                "name the ones to report with --labels."
            )
        self.report = [self.labels.index(name) for name in report]
        self.threshold = float(threshold)
        self.smooth = max(1, int(round(smooth_ms / 1000.0 / frame_seconds)))
        self.refractory = int(round(refractory_ms / 1000.0 / frame_seconds))
        self._ring = np.zeros((self.smooth, len(self.labels)))
        self.reset()

    def reset(self):
        self._ring[:] = 0.0
        self._n = 0
        self._last = None

    def smoothed(self, posterior) -> np.ndarray:
        """Add one frame's posterior; return the mean of the last ``smooth`` frames."""
        self._ring[self._n % self.smooth] = posterior
        self._n += 1
        return self._ring[: min(self._n, self.smooth)].mean(axis=0)

    def update(self, posterior, frame: int) -> tuple[int, float] | None:
        """One frame; return ``(label index, smoothed score)`` when a detection fires."""
        avg = self.smoothed(posterior)
        if self._last is not None and frame - self._last < self.refractory:
            return None
        scores = avg[self.report]
        best = int(np.argmax(scores))
        if scores[best] >= self.threshold:
            self._last = frame
            return self.report[best], float(scores[best])
        return None


def detect(
    streamer: Streamer, detector: Detector, blocks: Iterable, reset_on_detection=True
) -> Iterator[Detection]:
    """Stream ``blocks`` of audio through ``streamer``; yield detections as they fire.

    ``reset_on_detection`` zeroes the states right after each detection, so the model starts
    the next word from a clean state, as in training.
    """
    streamer.reset()
    detector.reset()
    found = []

    def on_posterior(t, p):
        hit = detector.update(p, t)
        if hit is not None:
            found.append(
                Detection(
                    round(streamer.time_of(t), 3), detector.labels[hit[0]], round(hit[1], 4), t
                )
            )
            if reset_on_detection:
                streamer.restart()

    for block in blocks:
        streamer.feed(block, on_posterior)
        yield from found
        found.clear()
    streamer.finish(on_posterior)
    yield from found


def audio_blocks(path, sample_rate: int, res_type: str = "soxr_hq", block_seconds=0.1):
    """Yield mono float32 blocks of ``path`` at ``sample_rate``, read (and resampled) block by
    block, so a recording of any length streams in constant memory."""

    try:
        f = sf.SoundFile(str(path))
    except Exception as exc:
        raise DataError(f"{path}: cannot be read as audio ({exc}).") from exc
    with f:
        rate, channels = f.samplerate, f.channels
        if not 100 <= rate <= 2_000_000 or channels < 1:
            raise DataError(
                f"{path}: the header gives {rate} Hz and {channels} channels; the file is corrupt."
            )
        resampler = None
        if rate != sample_rate:

            quality = {
                "soxr_vhq": "VHQ",
                "soxr_hq": "HQ",
                "soxr_mq": "MQ",
                "soxr_lq": "LQ",
                "soxr_qq": "QQ",
            }.get(res_type, "HQ")
            resampler = soxr.ResampleStream(rate, sample_rate, 1, dtype="float32", quality=quality)
        n = max(1, int(round(block_seconds * rate)))
        offset = 0
        while True:
            try:
                data = f.read(n, dtype="float32", always_2d=True)
            except Exception as exc:
                raise DataError(
                    f"{path}: cannot be decoded at {offset / rate:.2f} s ({exc})."
                ) from exc
            last = data.shape[0] < n
            y = data[:, 0] if channels == 1 else data.mean(axis=1)
            if not np.all(np.isfinite(y)):
                raise DataError(f"{path}: NaN or infinite samples near {offset / rate:.2f} s.")
            offset += y.size
            if resampler is not None:
                y = resampler.resample_chunk(np.ascontiguousarray(y), last=last)
            if y.size:
                yield np.ascontiguousarray(y, dtype=np.float32)
            if last:
                break
    if offset == 0:
        raise DataError(f"{path}: the file holds no audio samples.")
