"""One live microphone stream: audio frames in, posteriors and detections out.

The wire format (what ``static/run.js`` sends and reads):

* **Audio** -- binary WebSocket messages, each one frame of the page's audio: a 4-byte
  little-endian unsigned frame id, then float32 little-endian samples, 16 kHz mono
  (``SAMPLE_RATE``), 1 to ``MAX_FRAME_SAMPLES`` of them, finite and within
  ``[-MAX_ABS_SAMPLE, MAX_ABS_SAMPLE]``. The page sends 40 ms frames.
* **Settings** -- text messages, a JSON object ``{"type": "settings", "threshold",
  "smooth_ms", "refractory_ms"}`` (the meaning of ``seqkit stream``'s options), at most
  ``MAX_TEXT_BYTES``.
* **Replies** -- text JSON: ``{"type": "ready", ...}`` first (labels, rates, settings), then per
  audio frame ``{"type": "result", "id", "frame", "posteriors", "detections", "server_ms"}``
  (``id`` echoed, so the page measures the round trip), and ``{"type": "settings", ...}`` after a
  change. Anything malformed gets ``{"type": "error", "message"}`` and the stream is closed;
  the server and the other streams go on.

The runtime is seqkit's: ``Streamer`` (features computed incrementally, 4 staggered states each
reset every clip length, as ``seqkit stream`` runs it) and ``Detector`` (smoothing, threshold,
refractory time). ``seqkit.speech.streaming.detect`` does the same per frame but yields only the
detections; a live plot needs every posterior, so ``KwsStream.process`` runs detect's loop body
(update the detector; on a detection, restart the states) and keeps the posteriors too.
"""

from __future__ import annotations

import json
import math

import numpy as np
import soxr

from ..errors import ParameterError
from ..speech.streaming import Detection, Detector
from .models import Loaded

#: What the page sends: 16 kHz mono float32.
SAMPLE_RATE = 16000
#: Samples in one audio message at most (1 s); the page sends 640 (40 ms).
MAX_FRAME_SAMPLES = 16000
#: Largest magnitude accepted for a sample (float audio is nominally in [-1, 1]).
MAX_ABS_SAMPLE = 8.0
#: A settings message is at most this long.
MAX_TEXT_BYTES = 4096
#: Default detection settings: ``seqkit stream``'s.
DEFAULTS = {"threshold": 0.8, "smooth_ms": 300.0, "refractory_ms": 1000.0}
#: Upper bounds of the settings a page may choose (ms): one minute.
MAX_SETTING_MS = 60000.0
#: Staggered recurrent states, as ``seqkit stream`` runs (``--copies``).
COPIES = 4


class FrameError(ParameterError):
    """A message that breaks the wire format; the stream is closed with its text."""


def parse_settings(doc, current=None) -> dict:
    """Checked settings from a parsed settings message (or query parameters): threshold in
    [0, 1], smooth_ms and refractory_ms in [0, 60000]; missing keys keep ``current``."""
    out = dict(current or DEFAULTS)
    if not isinstance(doc, dict):
        raise FrameError(
            f"a settings message must be a JSON object; received {type(doc).__name__}."
        )
    for key, value in doc.items():
        if key == "type":
            continue
        if key not in DEFAULTS:
            raise FrameError(f"unknown setting {key!r}; the settings are {', '.join(DEFAULTS)}.")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise FrameError(f"`{key}` must be a number; received {value!r}.") from None
        if isinstance(value, bool) or not math.isfinite(number):
            raise FrameError(f"`{key}` must be a finite number; received {value!r}.")
        high = 1.0 if key == "threshold" else MAX_SETTING_MS
        if not 0.0 <= number <= high:
            raise FrameError(f"`{key}` must be in [0, {high:g}]; received {value!r}.")
        out[key] = number
    return out


def parse_text(text: str) -> dict:
    if len(text.encode("utf-8", "replace")) > MAX_TEXT_BYTES:
        raise FrameError(f"a text message must be at most {MAX_TEXT_BYTES} bytes.")
    try:
        doc = json.loads(text)
    except ValueError:
        raise FrameError("a text message must be JSON (a settings object).") from None
    if not isinstance(doc, dict) or doc.get("type") != "settings":
        raise FrameError('a text message must be {"type": "settings", ...}.')
    return doc


def parse_frame(data: bytes) -> tuple[int, np.ndarray]:
    """``(frame id, samples)`` of a binary audio message; FrameError naming what is wrong."""
    if not isinstance(data, (bytes, bytearray)):
        raise FrameError("an audio frame must be a binary message.")
    n = len(data)
    if n < 8:
        raise FrameError(
            f"an audio frame is a 4-byte id and at least one float32 sample; received {n} bytes."
        )
    if (n - 4) % 4:
        raise FrameError(
            f"an audio frame's samples are float32 (4 bytes each) after a 4-byte id; received "
            f"{n} bytes, not 4 + a multiple of 4."
        )
    count = (n - 4) // 4
    if count > MAX_FRAME_SAMPLES:
        raise FrameError(
            f"an audio frame holds at most {MAX_FRAME_SAMPLES} samples (1 s at {SAMPLE_RATE} Hz); "
            f"received {count}."
        )
    frame_id = int.from_bytes(data[:4], "little")
    samples = np.frombuffer(data, dtype="<f4", offset=4).astype(np.float32)
    if not np.all(np.isfinite(samples)):
        raise FrameError(f"audio frame {frame_id} holds NaN or infinite samples.")
    peak = float(np.max(np.abs(samples)))
    if peak > MAX_ABS_SAMPLE:
        raise FrameError(
            f"audio frame {frame_id} holds a sample of magnitude {peak:g}; float audio must lie "
            f"within [-{MAX_ABS_SAMPLE:g}, {MAX_ABS_SAMPLE:g}] (nominally [-1, 1])."
        )
    return frame_id, samples


class KwsStream:
    """A live stream over a loaded keyword model: ``process(frame_id, samples)`` -> the result
    message (without ``server_ms``, which the caller measures around it)."""

    def __init__(self, loaded: Loaded, settings=None):
        if loaded.stream_problem:
            raise ParameterError(loaded.stream_problem)
        self.loaded = loaded
        model = loaded.model
        with loaded.lock:  # reads the shared model's weights (and an export's states)
            self.streamer = model.streamer(copies=COPIES)
        features = self.streamer.features
        self.labels = list(model.labels)
        self.frame_seconds = float(features.frame_seconds)
        rate = int(features.sample_rate)
        self.resampler = (
            None if rate == SAMPLE_RATE
            else soxr.ResampleStream(SAMPLE_RATE, rate, 1, dtype="float32", quality="HQ")
        )  # fmt: skip
        self.settings = dict(DEFAULTS)
        self.configure(settings or {})
        self.samples = 0

    def configure(self, doc) -> dict:
        """New threshold / smoothing / refractory time (a new ``Detector``: smoothing starts
        over); returns the settings in force."""
        settings = parse_settings(doc, self.settings)
        self.detector = Detector(self.labels, self.frame_seconds, **settings)
        self.settings = settings
        return self.settings_message()

    def settings_message(self) -> dict:
        d = self.detector
        return {
            "type": "settings",
            **self.settings,
            "smooth_frames": d.smooth,
            "refractory_frames": d.refractory,
        }

    def ready_message(self) -> dict:
        d = self.detector
        return {
            "type": "ready",
            "labels": self.labels,
            "keywords": [self.labels[i] for i in d.report],
            "sample_rate": SAMPLE_RATE,
            "model_sample_rate": int(self.streamer.features.sample_rate),
            "frame_seconds": self.frame_seconds,
            "copies": self.streamer.copies,
            "max_frame_samples": MAX_FRAME_SAMPLES,
            **{k: v for k, v in self.settings_message().items() if k != "type"},
        }

    def process(self, frame_id: int, samples: np.ndarray) -> dict:
        """Feed one audio frame (16 kHz); the posteriors of the model frames it completed and
        the detections that fired."""
        self.samples += samples.size
        y = samples
        if self.resampler is not None:
            y = self.resampler.resample_chunk(np.ascontiguousarray(samples), last=False)
        streamer, detector = self.streamer, self.detector
        first = streamer.frames
        posteriors, found = [], []

        def on_posterior(t, p):
            posteriors.append(p.copy())
            hit = detector.update(p, t)
            if hit is not None:
                found.append(
                    Detection(
                        round(streamer.time_of(t), 3), detector.labels[hit[0]], round(hit[1], 4), t
                    )  # fmt: skip
                )
                streamer.restart()  # as detect(reset_on_detection=True): a clean next word

        if y.size:
            with self.loaded.guard():
                streamer.feed(y, on_posterior)
        post = np.asarray(posteriors, np.float32).reshape(len(posteriors), len(self.labels))
        return {
            "type": "result",
            "id": frame_id,
            "frame": first,
            "audio_s": round(self.samples / SAMPLE_RATE, 4),
            "posteriors": np.round(post, 4).tolist(),
            "detections": [
                {"time_s": d.time_s, "label": d.label, "score": d.score, "frame": d.frame}
                for d in found
            ],
        }
