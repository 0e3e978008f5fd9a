"""Streaming inference: a trained run's features and model, frame by frame, in numpy.

Audio goes in as chunks of any size; every hop of samples makes one feature frame, computed
once (no window recomputed), and one model step that carries the recurrent state. Three parts:

* ``FeatureStream`` -- the recipe's feature steps (``melspectrogram``, ``log_mel``,
  ``power_to_db``, ``mfcc``, ``deltas``) one frame at a time. Window, mel filters, DCT and
  delta coefficients come from librosa itself, so the frames equal librosa's.
* ``ModelStream`` -- the Keras model as numpy steps: ``Normalization``, the GRU (both
  ``reset_after`` forms), ``LSTM``, ``SimpleRNN``, ``Dense``, ``Dropout`` (identity at
  inference), the task head (pooling ``last``: the posterior of every frame from the current
  state; ``mean`` / ``max``: running). Weights are read from the Keras layers. ``copies``
  runs several states side by side on the same features (staggered resets, below).
* ``Streamer`` (features + model + state policy) and ``Detector`` (posterior smoothing,
  threshold, refractory time), used by ``seqkit stream``.

Where a stream necessarily differs from whole-clip extraction (everything else is equal to
librosa and to the Keras model to 1e-5, tested):

* **Clip edges.** librosa's ``center=True`` pads the clip with ``n_fft // 2`` zeros on both
  sides. A stream starts with those zeros too, so its first frames are librosa's; the right
  padding exists only at the end of a recording (``flush()``). ``fix_length`` does not apply
  to a stream: it has no clip.
* **power_to_db's top_db** floors each value at the clip's maximum minus ``top_db``, and the
  clip's maximum lies in the future. A stream floors at the maximum over the last
  ``top_db_frames`` frames (default: the recipe's clip length; the whole stream so far when the
  recipe has no ``fix_length``). Equal to the whole clip whenever the floor does not bind or the
  loudest frame comes before every floored one.
* **deltas** of width ``w`` need ``w // 2`` frames of look-ahead (latency: 40 ms for ``w = 9``
  at a 10 ms hop); the first and last ``w // 2`` frames use librosa's ``interp`` edge fit, at
  the start once ``w`` frames have arrived and at the end on ``flush()``.

Long streams. A keyword model is trained on clips of ``T`` frames that start from a zero state
and is read at the clip's end. ``Streamer`` therefore keeps ``copies`` states, staggered by
``T / copies`` frames, each reset to zero every ``T`` frames; the posterior of a frame comes from
the oldest copy, whose window covers the last ``(1 - 1 / copies) T`` to ``T`` frames. Features
and the layers before the first recurrent one are computed once for all copies.
``copies = 1`` resets one state every ``T`` frames; ``reset_every = None`` carries one state
forever; ``detect`` also zeroes every state after a detection. Measured on the quickstart run
(``bench/bench_detection.py``, ``bench/README.md``): a state carried without resets fires again
and again after a word (1,600 false alarms per hour); one state reset every clip length misses
the words that straddle a reset (recall 0.79); 2, 4 or 8 staggered states reset after each
detection: recall 0.92 at threshold 0.8, 1.00 with no false alarm at 0.9. ``seqkit stream``
runs 4.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError, ParameterError, did_you_mean

log = logging.getLogger("seqkit")

__all__ = [
    "Detection",
    "Detector",
    "FeatureStream",
    "ExportedInferenceModel",
    "ExportedStream",
    "InferenceModel",
    "ModelStream",
    "Streamer",
    "audio_blocks",
    "detect",
    "filler_labels",
    "load_for_inference",
]

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


# -- activations (in place) ----------------------------------------------------------------------


def _softmax(a, out):
    if a.shape[0] == 1:  # scalar operands: several times faster than (1, 1) broadcasting
        a -= a.max()
        np.exp(a, out=a)
        a *= 1.0 / a.sum()
    else:
        a -= a.max(axis=-1, keepdims=True)
        np.exp(a, out=a)
        a /= a.sum(axis=-1, keepdims=True)


def _hard_sigmoid(a, out):  # Keras 3: relu6(x + 3) / 6
    a += 3.0
    np.clip(a, 0.0, 6.0, out=a)
    a /= 6.0


def _activation(name, where: str):
    """An in-place activation ``f(a, out=a)`` (a ufunc where one exists), None for linear."""
    from scipy.special import erf, expit

    table = {
        "linear": None,
        "tanh": np.tanh,
        "sigmoid": expit,
        "relu": lambda a, out: np.maximum(a, 0.0, out=out),
        "relu6": lambda a, out: np.clip(a, 0.0, 6.0, out=out),
        "hard_sigmoid": _hard_sigmoid,
        "softsign": lambda a, out: np.divide(a, 1.0 + np.abs(a), out=out),
        "silu": lambda a, out: np.multiply(a, expit(a), out=out),
        "elu": lambda a, out: np.copyto(out, np.where(a > 0, a, np.expm1(a))),
        "gelu": lambda a, out: np.multiply(a, 0.5 * (1.0 + erf(a / np.sqrt(2.0))), out=out),
        "softmax": _softmax,
    }
    if not isinstance(name, str) or name not in table:
        raise ParameterError(
            f"{where}: activation {name!r} has no streaming version; supported: {', '.join(table)}."
        )
    return table[name]


# -- features ------------------------------------------------------------------------------------


_RFFT_OUT = "out" in inspect.signature(np.fft.rfft).parameters


def _mel_params(mel, sr) -> dict:
    """``librosa.feature.melspectrogram`` keyword arguments of a MelSpectrogram step at ``sr``."""
    fn = mel.mel_kwargs
    kw = fn(sr) if "sr" in inspect.signature(fn).parameters else fn()
    if hasattr(mel, "_check_rate"):
        mel._check_rate(sr)
    return kw


class _Spectral:
    """Audio -> mel power frames, one per ``hop_length`` samples (librosa's STFT framing)."""

    def __init__(self, sr, n_fft, hop_length, win_length, n_mels, fmin, fmax, power, center, dtype):
        import librosa

        window = librosa.filters.get_window("hann", win_length or n_fft, fftbins=True)
        self.window = librosa.util.pad_center(window, size=n_fft).astype(dtype)
        mel = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
        self.n_fft, self.hop, self.power, self.center = n_fft, hop_length, power, center
        self.pad = n_fft // 2 if center else 0
        self.n_out = n_mels
        cdtype = np.complex64 if dtype == np.float32 else np.complex128
        self._w = np.empty(n_fft, dtype)
        self._spec = np.empty(n_fft // 2 + 1, cdtype)
        self._out = np.empty(n_mels, dtype)
        if power == 2.0:  # |X|^2 = re^2 + im^2: square the interleaved pairs, sum by the matrix
            self._pairs = self._spec.view(dtype)
            self._sq = np.empty_like(self._pairs)
            self._mel = np.ascontiguousarray(np.repeat(mel.T, 2, axis=0), dtype=dtype)
        else:
            self._mag = np.empty(n_fft // 2 + 1, dtype)
            self._mel = np.ascontiguousarray(mel.T, dtype=dtype)
        self._buf = np.zeros(n_fft + max(8 * hop_length, 4096), dtype)
        self.reset()

    def reset(self):
        self._start, self._end = 0, self.pad  # center=True: n_fft // 2 zeros first, as librosa
        self._buf[: self.pad] = 0.0

    def frame(self, seg):
        np.multiply(seg, self.window, out=self._w)
        if _RFFT_OUT:
            np.fft.rfft(self._w, out=self._spec)
        else:  # numpy < 2: no out argument
            self._spec[:] = np.fft.rfft(self._w)
        if self.power == 2.0:
            np.multiply(self._pairs, self._pairs, out=self._sq)
            np.dot(self._sq, self._mel, out=self._out)
        else:
            np.abs(self._spec, out=self._mag)
            if self.power != 1.0:
                np.power(self._mag, self.power, out=self._mag)
            np.dot(self._mag, self._mel, out=self._out)
        return self._out

    def feed(self, y, emit):
        """Append samples ``y``; call ``emit(frame)`` for every frame they complete."""
        buf, cap, n_fft, hop = self._buf, self._buf.size, self.n_fft, self.hop
        pos, total = 0, y.shape[0]
        while pos < total:
            if self._end == cap:  # move the unconsumed tail to the front
                keep = self._end - self._start
                buf[:keep] = buf[self._start : self._end]
                self._start, self._end = 0, keep
            n = min(total - pos, cap - self._end)
            buf[self._end : self._end + n] = y[pos : pos + n]
            self._end += n
            pos += n
            while self._end - self._start >= n_fft:
                emit(self.frame(buf[self._start : self._start + n_fft]))
                self._start += hop

    def flush(self, emit):
        """End of stream: the right padding of ``center=True`` (zeros), as librosa."""
        if self.pad:
            self.feed(np.zeros(self.pad, self._buf.dtype), emit)


class _ToDb:
    """``power_to_db``; top_db floors at the maximum of the last ``window`` frames (causal)."""

    def __init__(self, ref, amin, top_db, n, dtype):
        self.amin, self.top_db = amin, top_db
        self.ref_db = 10.0 * math.log10(max(amin, abs(ref)))
        self.n_out = n
        self._out = np.empty(n, dtype)
        self.set_window(None)

    def set_window(self, window):
        """Frames over which the floor's maximum is taken (None: the whole stream so far)."""
        self._ring = np.full(window or 1, -np.inf)
        self._unbounded = window is None
        self.reset()

    def reset(self):
        self._ring[:] = -np.inf
        self._i = 0
        self._max = -np.inf  # the maximum of the ring, kept without a reduction per frame

    def __call__(self, x):
        out = self._out
        np.maximum(x, self.amin, out=out)
        np.log10(out, out=out)
        out *= 10.0
        if self.ref_db:
            out -= self.ref_db
        if self.top_db is not None:
            m = float(out.max())
            if not self._unbounded:
                ring, i = self._ring, self._i
                old = ring[i]
                ring[i] = m
                self._i = (i + 1) % ring.size
                if m < self._max and old == self._max:  # the maximum left the window
                    self._max = float(ring.max())
            if m >= self._max:
                self._max = m
            np.maximum(out, self._max - self.top_db, out=out)
        return out

    def flush(self):
        return []


class _Linear:
    """``frame @ matrix`` (the DCT of ``mfcc``, lifter included)."""

    def __init__(self, matrix, dtype):
        self._m = np.ascontiguousarray(matrix, dtype=dtype)
        self.n_out = self._m.shape[1]
        self._out = np.empty(self.n_out, dtype)

    def reset(self):
        pass

    def __call__(self, x):
        return np.dot(x, self._m, out=self._out)

    def flush(self):
        return []


class _Deltas:
    """``deltas``: the frame ``width // 2`` back, with its deltas (librosa's savgol, ``interp``)."""

    def __init__(self, order, width, n, dtype):
        import librosa

        eye = np.eye(width)
        # coef[o][j, t]: weight of window frame j in the order-o delta of window frame t
        coef = [
            librosa.feature.delta(eye, width=width, order=o, axis=-1, mode="interp")
            for o in range(1, order + 1)
        ]
        # per output position t in the window: (order, width) matrices
        self._coef = [
            np.ascontiguousarray([c[:, t] for c in coef], dtype=dtype) for t in range(width)
        ]
        self.width, self.half, self.order, self.n_in = width, width // 2, order, n
        self.n_out = n * (1 + order)
        self._ring = np.zeros((2 * width, n), dtype)  # each frame stored twice: a window is a slice
        self._out = np.empty((1 + order, n), dtype)
        self._flat = self._out.reshape(-1)
        self.reset()

    def reset(self):
        self._count = 0
        self._pos = 0

    def _window(self):
        return self._ring[self._pos : self._pos + self.width]

    def _make(self, t, copy=False):
        win = self._window()
        self._out[0] = win[t]
        np.dot(self._coef[t], win, out=self._out[1:])
        return self._flat.copy() if copy else self._flat

    def __call__(self, x):
        w = self.width
        i = self._count % w
        self._ring[i] = x
        self._ring[i + w] = x
        self._count += 1
        self._pos = (i + 1) % w  # the window starts at the oldest frame
        if self._count < w:
            return None
        if self._count == w:  # the first half-window of frames: the edge fit, then the centre
            return [self._make(t, copy=True) for t in range(self.half + 1)]
        return self._make(self.half)

    def flush(self):
        if self._count < self.width:  # too short: librosa refuses clips shorter than width
            return []
        return [self._make(t, copy=True) for t in range(self.half + 1, self.width)]


class FeatureStream:
    """A run's feature pipeline, computed incrementally: ``push(audio) -> (frames, features)``.

    ``pipeline`` is a ``seqkit.features.FeaturePipeline`` starting with ``load``; audio must be
    mono at its ``sample_rate``. ``top_db_frames``: the window of power_to_db's floor (default
    the recipe's clip length). ``dtype``: float32 (fastest) or float64.
    """

    def __init__(self, pipeline, top_db_frames="clip", dtype=np.float32):
        from . import features as F

        steps = list(pipeline.steps)
        names = list(getattr(pipeline, "names", [type(s).__name__ for s in steps]))
        if not steps or not isinstance(steps[0], F.Load):
            raise ParameterError(
                "A streaming pipeline must start with a `load` step (it sets the sample rate); "
                f"this one starts with {names[0] if names else 'nothing'!r}."
            )
        self.dtype = np.dtype(dtype).type
        if self.dtype not in (np.float32, np.float64):
            raise ParameterError(f"`dtype` must be float32 or float64; received {dtype!r}.")
        self.sample_rate = sr = steps[0].sample_rate
        fix = [s for s in steps if isinstance(s, F.FixLength)]
        self.clip_samples = fix[0].length(sr) if fix else None
        self._spectral = None
        self._stages = []
        n = None
        log_mel = getattr(F, "LogMel", None)
        for step, name in zip(steps[1:], names[1:]):
            if isinstance(step, F.FixLength):
                continue
            if isinstance(step, F.MelSpectrogram) or (
                log_mel is not None and isinstance(step, log_mel)
            ):
                mel = step.mel if not isinstance(step, F.MelSpectrogram) else step
                n = self._add_spectral(mel, sr, name)
                if not isinstance(step, F.MelSpectrogram):
                    n = self._add_todb(step.db, n)
            elif isinstance(step, F.PowerToDb):
                n = self._add_todb(step, self._need_frames(n, name))
            elif isinstance(step, F.MFCC):
                if n is None:  # from audio: librosa's mfcc(y=...) = mel power -> dB (defaults)
                    n = self._add_spectral(step.mel, sr, name, power=2.0, center=True)
                    n = self._add_todb(F.PowerToDb(), n)
                if n < step.n_mfcc:
                    raise ParameterError(
                        f"`n_mfcc` must be <= the number of input features ({n}); "
                        f"received {step.n_mfcc}."
                    )
                self._stages.append(_Linear(self._dct(step, n), self.dtype))
                n = self._stages[-1].n_out
            elif isinstance(step, F.Deltas):
                n = self._need_frames(n, name)
                self._stages.append(_Deltas(step.order, step.width, n, self.dtype))
                n = self._stages[-1].n_out
            else:
                raise ParameterError(
                    f"Feature step '{name}' has no streaming version; streamable steps: load, "
                    "fix_length, melspectrogram, log_mel, power_to_db, mfcc, deltas."
                )
        if self._spectral is None:
            raise ParameterError(
                "A streaming pipeline needs a step that makes frames (melspectrogram, log_mel "
                "or mfcc)."
            )
        self.num_features = n
        self.hop_length = self._spectral.hop
        self.frame_seconds = self.hop_length / sr
        self.clip_frames = (
            None if self.clip_samples is None else 1 + self.clip_samples // self.hop_length
        )
        window = self.clip_frames if top_db_frames == "clip" else top_db_frames
        for stage in self._stages:
            if isinstance(stage, _ToDb):
                stage.set_window(window)
        self.lookahead_frames = sum(s.half for s in self._stages if isinstance(s, _Deltas))
        self.reset()

    # -- building --
    def _need_frames(self, n, name):
        if n is None:
            raise ParameterError(f"'{name}' needs frames; put a spectrogram step before it.")
        return n

    def _add_spectral(self, mel, sr, name, power=None, center=None):
        if self._spectral is not None:
            raise ParameterError(f"'{name}': a stream takes one spectrogram step.")
        kw = _mel_params(mel, sr)
        self._spectral = _Spectral(
            sr,
            kw["n_fft"],
            kw["hop_length"],
            kw.get("win_length"),
            kw["n_mels"],
            kw.get("fmin", 0.0),
            kw.get("fmax"),
            kw.get("power", 2.0) if power is None else power,
            kw.get("center", True) if center is None else center,
            self.dtype,
        )
        return kw["n_mels"]

    def _add_todb(self, step, n):
        self._stages.append(_ToDb(step.ref, step.amin, step.top_db, n, self.dtype))
        return n

    @staticmethod
    def _dct(step, n):
        import librosa

        eye = np.eye(n, dtype=np.float32)
        m = librosa.feature.mfcc(
            S=eye, n_mfcc=step.n_mfcc, dct_type=step.dct_type, norm=step.norm, lifter=step.lifter
        )
        return np.asarray(m, dtype=np.float64).T  # (n_mels, n_mfcc)

    # -- running --
    def reset(self):
        """Start a new stream (zero padding first, empty windows)."""
        self._spectral.reset()
        for stage in self._stages:
            stage.reset()

    def _run(self, frame, i, sink):
        stages = self._stages
        while i < len(stages):
            out = stages[i](frame)
            if out is None:
                return
            if type(out) is list:
                for f in out:
                    self._run(f, i + 1, sink)
                return
            frame = out
            i += 1
        sink(frame)

    def feed(self, audio, sink):
        """Push ``audio``; call ``sink(frame)`` for each finished frame (a view: use it now)."""
        y = np.asarray(audio, dtype=self.dtype).reshape(-1)
        self._spectral.feed(y, lambda f: self._run(f, 0, sink))

    def finish(self, sink):
        """End of stream: the last frames (right padding, deltas' end edge)."""
        self._spectral.flush(lambda f: self._run(f, 0, sink))
        for i, stage in enumerate(self._stages):
            for f in stage.flush():
                self._run(f, i + 1, sink)

    def _collect(self, fn, audio=None):
        out = []
        sink = lambda f: out.append(f.copy())  # noqa: E731
        fn(sink) if audio is None else fn(audio, sink)
        return np.array(out, dtype=self.dtype).reshape(len(out), self.num_features)

    def push(self, audio) -> np.ndarray:
        """Push samples; return the frames they complete, (k, num_features)."""
        return self._collect(self.feed, audio)

    def flush(self) -> np.ndarray:
        """End of stream: return the remaining frames."""
        return self._collect(self.finish)

    def frame_available_samples(self, i: int) -> int:
        """Samples of the stream needed before frame ``i`` exists (for timestamps)."""
        s = self._spectral
        return (i + self.lookahead_frames) * s.hop + s.n_fft - s.pad

    @property
    def latency_seconds(self) -> float:
        """Audio needed after a frame's centre before that frame is out (window + deltas)."""
        s = self._spectral
        after_centre = s.n_fft - s.pad - (0 if s.center else s.n_fft // 2)
        return (self.lookahead_frames * s.hop + after_centre) / self.sample_rate


# -- model ---------------------------------------------------------------------------------------


class _Normalize:
    def __init__(self, layer, rows, copies, dtype):
        import keras

        mean = keras.ops.convert_to_numpy(layer.mean).reshape(-1)
        var = keras.ops.convert_to_numpy(layer.variance).reshape(-1)
        if getattr(layer, "invert", False) or layer.axis not in ((-1,), (2,), -1, 2):
            raise ParameterError(
                f"Layer '{layer.name}': only Normalization(axis=-1, invert=False) is streamable."
            )
        # (1, n) rows: a 2-D operand broadcasts faster than a 1-D one
        self.mean = mean.reshape(1, -1).astype(dtype)
        den = np.maximum(np.sqrt(var), keras.backend.epsilon())
        self.den = den.reshape(1, -1).astype(dtype)
        self.rows = rows
        self._out = np.empty((rows, mean.size), dtype)

    def __call__(self, x):
        np.subtract(x, self.mean, out=self._out)
        return np.divide(self._out, self.den, out=self._out)


class _Dense:
    def __init__(self, layer, rows, copies, dtype):
        import keras

        w = [keras.ops.convert_to_numpy(v) for v in layer.weights]
        self.w = np.ascontiguousarray(w[0], dtype=dtype)
        self.b = w[1].reshape(1, -1).astype(dtype) if layer.use_bias else None
        self.act = _activation(layer.get_config()["activation"], f"layer '{layer.name}'")
        self.rows = rows
        self._out = np.empty((rows, self.w.shape[1]), dtype)

    def __call__(self, x):
        out = np.dot(x, self.w, out=self._out)
        if self.b is not None:
            out += self.b
        if self.act is not None:
            self.act(out, out=out)
        return out


class _Recurrent:
    """Shared parts of the recurrent steps: weights from the cell, activations, state rows."""

    stateful = True

    def __init__(self, layer, rows, copies, dtype, gates):
        import keras

        if getattr(layer, "go_backwards", False):
            raise ParameterError(
                f"Layer '{layer.name}' reads the sequence backwards (go_backwards: true); "
                "that needs the whole clip, so it is not streamable. Use `seqkit predict`."
            )
        cell = layer.cell
        self.units = u = cell.units
        conv = keras.ops.convert_to_numpy
        self.kernel = conv(cell.kernel).astype(np.float64)
        self.recurrent = conv(cell.recurrent_kernel).astype(np.float64)
        self.bias = conv(cell.bias).astype(np.float64) if cell.use_bias else None
        cfg = layer.get_config()
        where = f"layer '{layer.name}'"
        self.act = _activation(cfg.get("activation", "tanh"), where)
        self.ract = _activation(cfg.get("recurrent_activation", "sigmoid"), where)
        self.rows, self.dtype = copies, dtype
        self._gx = np.empty((rows, gates * u), dtype)
        self.h = np.zeros((copies, u), dtype)

    def reset(self, k=slice(None)):
        self.h[k] = 0.0


class _GRU(_Recurrent):
    """Keras' GRU equations (gate order z, r, h), ``reset_after`` False or True."""

    def __init__(self, layer, rows, copies, dtype):
        super().__init__(layer, rows, copies, dtype, 3)
        u, t = self.units, dtype
        self.reset_after = bool(layer.cell.reset_after)
        self.wx = np.ascontiguousarray(self.kernel, dtype=t)
        b = self.bias
        if self.reset_after:
            self.bx = None if b is None else b[0:1].astype(t)
            self.bh = None if b is None else b[1:2].astype(t)
            self.u_all = np.ascontiguousarray(self.recurrent, dtype=t)
            self._gh = np.empty((copies, 3 * u), t)
            self._zr = np.empty((copies, 2 * u), t)
            self._gh_h = self._gh[:, 2 * u :]
        else:
            self.bx = None if b is None else b.reshape(1, -1).astype(t)
            self.u_zr = np.ascontiguousarray(self.recurrent[:, : 2 * u], dtype=t)
            self.u_h = np.ascontiguousarray(self.recurrent[:, 2 * u :], dtype=t)
            self._zr = np.empty((copies, 2 * u), t)
            self._rh = np.empty((copies, u), t)
        self._z, self._r = self._zr[:, :u], self._zr[:, u:]
        self._gx_zr, self._gx_h = self._gx[:, : 2 * u], self._gx[:, 2 * u :]
        self._hh = np.empty((copies, u), t)

    def __call__(self, x):
        gx, zr, hh, h = self._gx, self._zr, self._hh, self.h
        np.dot(x, self.wx, out=gx)
        if self.bx is not None:
            gx += self.bx
        if self.reset_after:
            gh = np.dot(h, self.u_all, out=self._gh)
            if self.bh is not None:
                gh += self.bh
            np.add(gh[:, : 2 * self.units], self._gx_zr, out=zr)
            self.ract(zr, out=zr)
            np.multiply(self._r, self._gh_h, out=hh)
        else:
            np.dot(h, self.u_zr, out=zr)
            zr += self._gx_zr
            self.ract(zr, out=zr)
            np.multiply(self._r, h, out=self._rh)
            np.dot(self._rh, self.u_h, out=hh)
        hh += self._gx_h
        if self.act is not None:
            self.act(hh, out=hh)
        # h' = z h + (1 - z) hh = hh + z (h - hh)
        np.subtract(h, hh, out=h)
        h *= self._z
        h += hh
        return h


class _LSTM(_Recurrent):
    """Keras' LSTM (gates i, f, c, o; stored here as i, f, o, c so sigmoids run once)."""

    def __init__(self, layer, rows, copies, dtype):
        super().__init__(layer, rows, copies, dtype, 4)
        u, t = self.units, dtype
        order = np.r_[0 : 2 * u, 3 * u : 4 * u, 2 * u : 3 * u]
        self.wx = np.ascontiguousarray(self.kernel[:, order], dtype=t)
        self.wh = np.ascontiguousarray(self.recurrent[:, order], dtype=t)
        self.bx = None if self.bias is None else self.bias[None, order].astype(t)
        self._g = np.empty((copies, 4 * u), t)
        self.c = np.zeros((copies, u), t)
        self._tmp = np.empty((copies, u), t)
        g = self._g
        self._ifo, self._i, self._f, self._o, self._cc = (
            g[:, : 3 * u],
            g[:, :u],
            g[:, u : 2 * u],
            g[:, 2 * u : 3 * u],
            g[:, 3 * u :],
        )

    def reset(self, k=slice(None)):
        self.h[k] = 0.0
        self.c[k] = 0.0

    def __call__(self, x):
        gx, g, c, tmp = self._gx, self._g, self.c, self._tmp
        np.dot(x, self.wx, out=gx)
        if self.bx is not None:
            gx += self.bx
        np.dot(self.h, self.wh, out=g)
        g += gx
        self.ract(self._ifo, out=self._ifo)
        if self.act is not None:
            self.act(self._cc, out=self._cc)
        c *= self._f
        np.multiply(self._i, self._cc, out=tmp)
        c += tmp
        np.copyto(tmp, c)
        if self.act is not None:
            self.act(tmp, out=tmp)
        return np.multiply(self._o, tmp, out=self.h)


class _SimpleRNN(_Recurrent):
    def __init__(self, layer, rows, copies, dtype):
        super().__init__(layer, rows, copies, dtype, 1)
        self.wx = np.ascontiguousarray(self.kernel, dtype=dtype)
        self.wh = np.ascontiguousarray(self.recurrent, dtype=dtype)
        self.bx = None if self.bias is None else self.bias.reshape(1, -1).astype(dtype)
        self._next = np.zeros_like(self.h)

    def __call__(self, x):
        np.dot(x, self.wx, out=self._gx)
        if self.bx is not None:
            self._gx += self.bx
        out = np.dot(self.h, self.wh, out=self._next)
        out += self._gx
        if self.act is not None:
            self.act(out, out=out)
        self._next, self.h = self.h, out
        return out


class _Pool:
    """GlobalAverage/MaxPooling1D as a running mean / maximum since the last reset."""

    stateful = True

    def __init__(self, layer, rows, copies, dtype, kind):
        cfg = layer.get_config()
        if cfg.get("data_format", "channels_last") != "channels_last" or cfg.get("keepdims"):
            raise ParameterError(
                f"Layer '{layer.name}': only channels_last pooling without keepdims is streamable."
            )
        self.kind, self.rows, self.dtype = kind, copies, dtype
        self._n = None

    def _alloc(self, width):
        self._acc = np.zeros((self.rows, width), np.float64 if self.kind == "mean" else self.dtype)
        self._count = np.zeros((self.rows, 1), np.float64)
        self._out = np.empty((self.rows, width), self.dtype)
        self._n = width
        self.reset()

    def reset(self, k=slice(None)):
        if self._n is None:
            return
        self._acc[k] = 0.0 if self.kind == "mean" else -np.inf
        self._count[k] = 0.0

    def __call__(self, x):
        if self._n is None:
            self._alloc(x.shape[-1])
        if self.kind == "mean":
            self._acc += x
            self._count += 1.0
            return np.divide(self._acc, self._count, out=self._out)
        return np.maximum(self._acc, x, out=self._acc)


def _builders():
    import keras

    L = keras.layers
    return [
        (L.Normalization, _Normalize),
        (L.Dense, _Dense),
        (L.GlobalAveragePooling1D, lambda *a: _Pool(*a, kind="mean")),
        (L.GlobalMaxPooling1D, lambda *a: _Pool(*a, kind="max")),
    ]


def _cell_builders():
    import keras

    L = keras.layers
    return [(L.GRUCell, _GRU), (L.LSTMCell, _LSTM), (L.SimpleRNNCell, _SimpleRNN)]


IDENTITY_LAYERS = (
    "Dropout",
    "SpatialDropout1D",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
)


def _layer_chain(model) -> list:
    """The model's layers, checked to form one chain from its input to its output."""
    import keras

    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ParameterError(
            f"Model '{model.name}' has {len(model.inputs)} inputs and {len(model.outputs)} "
            "outputs; a streamable model has one of each."
        )
    layers = [l for l in model.layers if not isinstance(l, keras.layers.InputLayer)]  # noqa: E741
    prev = model.inputs[0]
    for layer in layers:
        try:
            ok = layer.input is prev
        except (AttributeError, ValueError):
            ok = False
        if not ok:
            raise ParameterError(
                f"Model '{model.name}': layer '{layer.name}' does not take the previous layer's "
                "output; only a chain of layers (as a recipe builds) is streamable."
            )
        prev = layer.output
    return layers


class ModelStream:
    """A Keras classifier as numpy steps: ``step(frame) -> (copies, classes)`` posteriors.

    Each call consumes one feature frame and advances every copy's state; ``reset(k)``
    zeroes copy ``k`` (all copies without ``k``). The returned array is a view, valid until
    the next ``step``. ``copies`` states share the layers before the first stateful one.
    """

    def __init__(self, model, copies: int = 1, dtype=np.float32):
        import keras

        if copies < 1:
            raise ParameterError(f"`copies` must be >= 1; received {copies}.")
        dtype = np.dtype(dtype).type
        self.copies, self.dtype = copies, dtype
        self.num_features = int(model.inputs[0].shape[-1])
        self.stages, rows = [], 1
        builders, cells = _builders(), _cell_builders()
        for layer in _layer_chain(model):
            kind = type(layer).__name__
            if kind in IDENTITY_LAYERS:
                continue
            if isinstance(layer, keras.layers.Bidirectional):
                raise ParameterError(
                    f"Layer '{layer.name}' is bidirectional: its backward half reads the clip "
                    "from the end, so it is not streamable. Train without `bidirectional: "
                    "true` to stream, or use `seqkit predict` on whole clips."
                )
            if isinstance(layer, keras.layers.RNN):
                build = next((b for c, b in cells if isinstance(layer.cell, c)), None)
            else:
                build = next((b for c, b in builders if isinstance(layer, c)), None)
            if build is None:
                raise ParameterError(
                    f"Layer '{layer.name}' ({kind}) has no streaming step; streamable: "
                    "Normalization, GRU (seqkit's and Keras'), LSTM, SimpleRNN, Dense, Dropout, "
                    "GlobalAverage/MaxPooling1D."
                )
            stage = build(layer, rows, copies, dtype)
            rows = stage.rows
            self.stages.append(stage)
        self._stateful = [s for s in self.stages if getattr(s, "stateful", False)]
        self.num_outputs = int(model.outputs[0].shape[-1])
        self._in = np.empty((1, self.num_features), dtype)

    def reset(self, k=slice(None)):
        """Zero the state of copy ``k`` (every copy by default)."""
        for stage in self._stateful:
            stage.reset(k)

    def step(self, frame) -> np.ndarray:
        x = self._in
        x[0] = frame
        for stage in self.stages:
            x = stage(x)
        return x if x.shape[0] == self.copies else np.broadcast_to(x, (self.copies, x.shape[1]))

    def run(self, frames) -> np.ndarray:
        """Step through ``frames`` (time, features) from the current state: (time, classes) of
        copy 0."""
        return np.array(
            [self.step(f)[0].copy() for f in np.asarray(frames)], dtype=self.dtype
        ).reshape(-1, self.num_outputs)


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
    import soundfile as sf

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
            import soxr

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


# -- loading a trained model ---------------------------------------------------------------------


class InferenceModel:
    """What ``predict`` and ``stream`` need from a trained model.

    ``labels``, ``pipeline`` (whole-clip features), ``predict(x)`` (clip scores, (n, classes)),
    ``streamer(...)`` (the numpy streaming runtime). Made by ``load_for_inference``.
    """

    def __init__(self, path, labels, pipeline, model, recipe=None):
        self.path, self.labels, self.pipeline = Path(path), list(labels), pipeline
        self.model, self.recipe = model, recipe

    def features(self, source) -> np.ndarray:
        """(time, features) of a file (or example) through the recipe's whole-clip pipeline."""
        return self.pipeline(source)

    def predict(self, x, batch_size: int = 64) -> np.ndarray:
        return np.asarray(
            self.model.predict(np.asarray(x, np.float32), batch_size=batch_size, verbose=0)
        )

    def model_stream(self, copies: int = 1, dtype=np.float32) -> ModelStream:
        return ModelStream(self.model, copies=copies, dtype=dtype)

    def streamer(
        self, copies: int = 1, reset_every="clip", dtype=np.float32, top_db_frames="clip"
    ) -> Streamer:
        features = FeatureStream(self.pipeline, top_db_frames=top_db_frames, dtype=dtype)
        return Streamer(features, self.model_stream(copies, dtype), reset_every=reset_every)


class ExportedStream:
    """``ModelStream``'s interface over a streaming export (``seqkit export --streaming``):
    ``step(frame) -> (copies, classes)``, the states fed back as explicit inputs, one row per
    copy; ``reset(k)`` zeroes copy ``k``'s rows."""

    def __init__(self, exported, copies: int = 1):
        if copies < 1:
            raise ParameterError(f"`copies` must be >= 1; received {copies}.")
        if not exported.streaming:
            raise ParameterError(
                f"'{exported.path}' is a whole-clip export: streaming needs the states as "
                "inputs. Export one with `seqkit export RUN --format tflite --streaming`."
            )
        self.exported, self.copies, self.dtype = exported, copies, np.float32
        shape = exported.meta.get("input", {}).get("shape") or [None, None]
        self.num_features = int(shape[-1])
        self._frames = np.zeros((copies, self.num_features), np.float32)
        self.reset()
        self.num_outputs = int(np.shape(exported.step(self._frames, self._state)[0])[-1])

    def reset(self, k=slice(None)):
        if not isinstance(k, slice) or k != slice(None):
            for v in self._state.values():
                v[k] = 0.0
        else:
            self._state = self.exported.initial_state(self.copies)

    def step(self, frame) -> np.ndarray:
        self._frames[:] = frame
        scores, state = self.exported.step(self._frames, self._state)
        self._state = {n: np.array(v, np.float32) for n, v in state.items()}  # writable
        return np.asarray(scores, np.float32)


class ExportedInferenceModel(InferenceModel):
    """``InferenceModel`` over an exported file: the scores come from the export (TFLite,
    ONNX, SavedModel, ``.keras``), the labels and the feature pipeline from the recipe that
    ``seqkit export`` wrote beside it (``<file>.json``)."""

    def __init__(self, path, labels, pipeline, exported, recipe):
        super().__init__(path, labels, pipeline, None, recipe)
        self.exported = exported

    def predict(self, x, batch_size: int = 64) -> np.ndarray:
        return np.asarray(self.exported.predict(np.asarray(x, np.float32), batch_size=batch_size))

    def model_stream(self, copies: int = 1, dtype=np.float32) -> ExportedStream:
        return ExportedStream(self.exported, copies=copies)


#: Files (and a SavedModel folder) that ``load_for_inference`` opens as exports.
EXPORT_SUFFIXES = (".tflite", ".onnx", ".keras")


def _is_export(path: Path) -> bool:
    if path.is_dir():
        return (path / "saved_model.pb").is_file()
    return path.suffix in EXPORT_SUFFIXES


def _load_exported_for_inference(path: Path) -> ExportedInferenceModel:
    from .errors import RunError
    from .export import load_exported
    from .recipe import validate_dict
    from .tasks import make_pipeline

    sidecar = path.with_name(path.name + ".json")
    if not path.exists():
        raise RunError(
            f"'{path}' does not exist; pass a run folder or a file `seqkit export` wrote."
        )
    if not sidecar.is_file():
        raise RunError(
            f"'{sidecar}' is missing: the labels and the feature pipeline of '{path}' are read "
            "from the .json that `seqkit export` writes beside the export; keep it next to the "
            "file (or export again)."
        )
    exported = load_exported(path)
    meta = exported.meta
    if not isinstance(meta.get("recipe"), dict) or not meta.get("labels"):
        raise RunError(
            f"'{sidecar}' has no recipe or no labels (written by `seqkit export` of a run "
            "folder); export the run again."
        )
    recipe = validate_dict(meta["recipe"], file=f"{sidecar} (key 'recipe')", build_layers=False)
    return ExportedInferenceModel(path, meta["labels"], make_pipeline(recipe), exported, recipe)


def load_for_inference(path) -> InferenceModel:
    """Load a trained model for inference: a run folder (``seqkit train``'s output) or a file
    that ``seqkit export`` wrote from one (``.tflite`` float or int8, ``.onnx``, ``.keras`` or a
    SavedModel folder, with its ``.json`` beside it). Streaming (``streamer``) needs a run
    folder or a ``--streaming`` export.

    The one place that reads what ``predict`` and ``stream`` are given.
    """
    from .train import Run

    path = Path(path)
    if _is_export(path) and not (path.is_dir() and (path / "run.json").is_file()):
        return _load_exported_for_inference(path)
    run = Run(path)
    return InferenceModel(run.path, run.labels, run.pipeline, run.model, run.recipe)
