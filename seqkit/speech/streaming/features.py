"""Features one frame at a time: the recipe's feature steps as ``FeatureStream``
(see ``seqkit.streaming``)."""

from __future__ import annotations

import inspect
import logging
import math

import librosa
import numpy as np

from ... import features as F
from ...errors import ParameterError
from ..embedding import SpeechEmbedding

log = logging.getLogger("seqkit")


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


class _PCEN:
    """``pcen``: librosa's own ``pcen`` on each frame, the smoother's state (``zi``) carried
    from frame to frame, so that a stream equals the whole clip (librosa starts the smoother
    from the same fixed state in both)."""

    def __init__(self, step, sr, n, dtype):
        self.kwargs, self.scale, self.n_out, self.dtype = step.pcen_kwargs(sr), step.scale, n, dtype
        self.reset()

    def reset(self):
        self._zi = None

    def __call__(self, x):
        S = np.asarray(x, dtype=np.float32)[:, None] * self.scale
        out, self._zi = librosa.pcen(S, axis=-1, zi=self._zi, return_zf=True, **self.kwargs)
        return out[:, 0].astype(self.dtype)

    def flush(self):
        return []


class FeatureStream:
    """A run's feature pipeline, computed incrementally: ``push(audio) -> (frames, features)``.

    ``pipeline`` is a ``seqkit.features.FeaturePipeline`` starting with ``load``; audio must be
    mono at its ``sample_rate``. ``top_db_frames``: the window of power_to_db's floor (default
    the recipe's clip length). ``dtype``: float32 (fastest) or float64.
    """

    def __init__(self, pipeline, top_db_frames="clip", dtype=np.float32):

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
            elif isinstance(step, F.PCEN):
                n = self._need_frames(n, name)
                self._stages.append(_PCEN(step, sr, n, self.dtype))
            elif isinstance(step, F.CMVN):
                raise ParameterError(
                    f"'{name}' normalises each feature by the whole clip's mean and variance, "
                    "which a stream does not know yet; for a streaming model use `pcen` (causal) "
                    "or the model's own normalisation (model.normalize) instead."
                )
            elif isinstance(step, SpeechEmbedding):
                raise ParameterError(
                    f"'{name}' (Google's speech embedding) has no streaming version: its mel "
                    "model floors every value at 80 dB below the loudest of the whole clip, "
                    "which a stream does not know yet; for streaming train a log-mel recipe "
                    "(recipes/kws_synthetic_logmel.yaml)."
                )
            else:
                raise ParameterError(
                    f"Feature step '{name}' has no streaming version; streamable steps: load, "
                    "fix_length, melspectrogram, log_mel, power_to_db, pcen, mfcc, deltas."
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
