"""librosa feature steps and the pipeline that chains them.

Each step is a small class: its constructor takes the recipe's parameters (checked, with
messages that name the parameter and the value) and ``__call__(x, sr)`` maps numpy to numpy.
Three kinds of value flow through a pipeline:

* ``path``   -- an audio file name (only ``load`` accepts it);
* ``audio``  -- a mono float32 waveform, shape (samples,);
* ``frames`` -- a feature matrix, shape (time, features): every step that makes frames returns
  time first, the layout a Keras recurrent layer reads.

The pipeline checks that each step accepts what the step before it produces, so a recipe with
``mfcc`` before ``load`` fails at validation, not an hour into training.

Compatible with librosa 0.11 and 1.0: keyword arguments only, soundfile for reading (no
audioread), nothing that 1.0 removed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import DataError, ParameterError, non_negative_number, positive_int, positive_number

PATH, AUDIO, FRAMES = "path", "audio", "frames"


class FeatureStep:
    """Base class: ``accepts`` (kinds taken), ``produces`` (kind given), ``__call__``."""

    accepts: tuple[str, ...] = (FRAMES,)
    produces: str = FRAMES

    def __call__(self, x, sr):  # pragma: no cover - abstract
        raise NotImplementedError

    def output_rate(self, sr):
        """Sample rate after this step (only ``load`` changes it)."""
        return sr


class Load(FeatureStep):
    """Read an audio file with soundfile, mix to mono, resample to ``sample_rate``.

    Any rate, bit depth (8/16/24/32-bit integer, float) and channel count that libsndfile
    reads (WAV, FLAC, OGG, ...). Resampling uses ``librosa.resample`` (soxr).
    """

    accepts = (PATH,)
    produces = AUDIO

    # Resamplers that librosa's own dependencies provide (soxr, scipy): no optional packages.
    RES_TYPES = (
        "soxr_vhq",
        "soxr_hq",
        "soxr_mq",
        "soxr_lq",
        "soxr_qq",
        "polyphase",
        "fft",
        "scipy",
    )

    def __init__(self, sample_rate: int = 16000, res_type: str = "soxr_hq"):
        self.sample_rate = positive_int("sample_rate", sample_rate)
        if res_type not in self.RES_TYPES:
            raise ParameterError(
                f"`res_type` must be one of {', '.join(self.RES_TYPES)}; received {res_type!r}."
            )
        self.res_type = res_type

    def output_rate(self, sr):
        return self.sample_rate

    def __call__(self, path, sr=None):
        import soundfile as sf

        try:
            data, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
        except Exception as exc:  # libsndfile raises several types
            raise DataError(f"{path}: cannot be read as audio ({exc}).") from exc
        if data.shape[0] == 0 or data.shape[1] == 0:
            raise DataError(f"{path}: the file holds no audio samples.")
        y = data.mean(axis=1)
        if not np.all(np.isfinite(y)):
            raise DataError(f"{path}: the file holds NaN or infinite samples.")
        if file_sr != self.sample_rate:
            import librosa

            y = librosa.resample(
                y, orig_sr=file_sr, target_sr=self.sample_rate, res_type=self.res_type
            )
        return np.ascontiguousarray(y, dtype=np.float32)


class FixLength(FeatureStep):
    """Pad with zeros or crop the waveform to ``seconds`` (or ``samples``) exactly."""

    accepts = (AUDIO,)
    produces = AUDIO

    def __init__(self, seconds: float | None = 1.0, samples: int | None = None):
        if samples is not None:
            self.samples = positive_int("samples", samples)
            self.seconds = None
        else:
            self.seconds = positive_number("seconds", seconds)
            self.samples = None

    def length(self, sr):
        return self.samples if self.samples is not None else int(round(self.seconds * sr))

    def __call__(self, y, sr):
        import librosa

        return librosa.util.fix_length(y, size=self.length(sr)).astype(np.float32)


class MelSpectrogram(FeatureStep):
    """Mel power spectrogram (``librosa.feature.melspectrogram``), returned as (time, n_mels)."""

    accepts = (AUDIO,)
    produces = FRAMES

    def __init__(
        self,
        n_fft: int = 512,
        hop_length: int = 160,
        win_length: int | None = None,
        n_mels: int = 40,
        fmin: float = 0.0,
        fmax: float | None = None,
        power: float = 2.0,
        center: bool = True,
    ):
        self.n_fft = positive_int("n_fft", n_fft)
        self.hop_length = positive_int("hop_length", hop_length)
        self.win_length = None if win_length is None else positive_int("win_length", win_length)
        self.n_mels = positive_int("n_mels", n_mels)
        if self.hop_length > self.n_fft:
            raise ParameterError(
                f"`hop_length` must be <= `n_fft` ({self.n_fft}); received {self.hop_length}."
            )
        if self.win_length is not None and self.win_length > self.n_fft:
            raise ParameterError(
                f"`win_length` must be <= `n_fft` ({self.n_fft}); received {self.win_length}."
            )
        self.fmin = non_negative_number("fmin", fmin)
        self.fmax = positive_number("fmax", fmax, allow_none=True)
        if self.fmax is not None and self.fmax <= self.fmin:
            raise ParameterError(f"`fmax` must be > `fmin` ({self.fmin}); received {self.fmax}.")
        self.power = positive_number("power", power)
        self.center = bool(center)

    def _check_rate(self, sr):
        if self.fmax is not None and self.fmax > sr / 2:
            raise ParameterError(
                f"`fmax` must be <= half the sample rate ({sr / 2:g} Hz); received {self.fmax:g}."
            )

    def mel_kwargs(self):
        return dict(
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            n_mels=self.n_mels,
            fmin=self.fmin,
            fmax=self.fmax,
            power=self.power,
            center=self.center,
        )

    def __call__(self, y, sr):
        import librosa

        self._check_rate(sr)
        S = librosa.feature.melspectrogram(y=y, sr=sr, **self.mel_kwargs())
        return np.ascontiguousarray(S.T, dtype=np.float32)


class PowerToDb(FeatureStep):
    """Power to decibels (``librosa.power_to_db``), shape kept (time, features)."""

    def __init__(self, ref: float = 1.0, amin: float = 1e-10, top_db: float | None = 80.0):
        self.ref = positive_number("ref", ref)
        self.amin = positive_number("amin", amin)
        self.top_db = positive_number("top_db", top_db, allow_none=True)

    def __call__(self, S, sr):
        import librosa

        out = librosa.power_to_db(S, ref=self.ref, amin=self.amin, top_db=self.top_db)
        return out.astype(np.float32)


class MFCC(FeatureStep):
    """MFCCs (``librosa.feature.mfcc``), (time, n_mfcc).

    After ``load``/``fix_length`` it computes the log-mel spectrogram itself (``n_mels``,
    ``n_fft``, ``hop_length``, ``fmin``, ``fmax`` apply); after ``melspectrogram`` +
    ``power_to_db`` it takes that log-mel spectrogram as it is (and those parameters are unused).
    """

    accepts = (AUDIO, FRAMES)
    produces = FRAMES

    def __init__(
        self,
        n_mfcc: int = 13,
        n_mels: int = 40,
        n_fft: int = 512,
        hop_length: int = 160,
        fmin: float = 0.0,
        fmax: float | None = None,
        dct_type: int = 2,
        norm: str | None = "ortho",
        lifter: float = 0.0,
    ):
        self.n_mfcc = positive_int("n_mfcc", n_mfcc)
        self.mel = MelSpectrogram(
            n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, fmin=fmin, fmax=fmax
        )
        if dct_type not in (1, 2, 3):
            raise ParameterError(f"`dct_type` must be 1, 2 or 3; received {dct_type!r}.")
        if norm not in (None, "ortho"):
            raise ParameterError(f"`norm` must be 'ortho' or null; received {norm!r}.")
        self.dct_type, self.norm = dct_type, norm
        self.lifter = non_negative_number("lifter", lifter)

    def __call__(self, x, sr):
        import librosa

        kw = dict(n_mfcc=self.n_mfcc, dct_type=self.dct_type, norm=self.norm, lifter=self.lifter)
        if x.ndim == 1:  # audio
            self.mel._check_rate(sr)
            m = self.mel.mel_kwargs()
            del m["power"], m["center"]
            out = librosa.feature.mfcc(y=x, sr=sr, **kw, **m)
        else:  # (time, n_mels) log-mel frames
            if x.shape[1] < self.n_mfcc:
                raise ParameterError(
                    f"`n_mfcc` must be <= the number of input features ({x.shape[1]}); "
                    f"received {self.n_mfcc}."
                )
            out = librosa.feature.mfcc(S=np.ascontiguousarray(x.T), **kw)
        return np.ascontiguousarray(out.T, dtype=np.float32)


class Deltas(FeatureStep):
    """Append delta features (``librosa.feature.delta``): (time, F) -> (time, F * (1 + order)).

    ``order: 2`` appends deltas and delta-deltas. ``width`` is the odd window length in frames.
    """

    def __init__(self, order: int = 1, width: int = 9):
        self.order = positive_int("order", order)
        if self.order > 2:
            raise ParameterError(f"`order` must be 1 or 2; received {order!r}.")
        self.width = positive_int("width", width)
        if self.width < 3 or self.width % 2 == 0:
            raise ParameterError(f"`width` must be an odd integer >= 3; received {width!r}.")

    def __call__(self, x, sr):
        import librosa

        if x.shape[0] < self.width:
            raise ParameterError(
                f"`width` must be <= the number of frames ({x.shape[0]}); received "
                f"{self.width}. Use a smaller width or longer clips."
            )
        parts = [x] + [
            librosa.feature.delta(x.T, order=o, width=self.width, mode="interp").T
            for o in range(1, self.order + 1)
        ]
        return np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=np.float32)


def chain_problems(steps: Sequence[FeatureStep], names: Sequence[str]) -> list[tuple[int, str]]:
    """Return ``(index, message)`` for each step that cannot take what the step before gives."""
    problems = []
    kind = PATH
    if not steps:
        return [(0, "the pipeline needs at least a `load` step.")]
    for i, (step, name) in enumerate(zip(steps, names)):
        if kind not in step.accepts:
            before = f"step {i - 1} ({names[i - 1]})" if i else "the file name"
            problems.append(
                (
                    i,
                    f"'{name}' takes {' or '.join(step.accepts)} but receives {kind} from {before}.",
                )
            )
        kind = step.produces
    if kind != FRAMES and not problems:
        problems.append(
            (
                len(steps) - 1,
                "the pipeline must end in a step that makes frames (time, features), "
                f"e.g. melspectrogram or mfcc; it ends with {kind}.",
            )
        )
    return problems


class FeaturePipeline:
    """A checked chain of feature steps: ``pipeline(path) -> (time, features)`` float32."""

    def __init__(self, steps: Sequence[FeatureStep], names: Sequence[str] | None = None):
        self.steps = list(steps)
        self.names = list(names) if names is not None else [type(s).__name__ for s in steps]
        problems = chain_problems(self.steps, self.names)
        if problems:
            raise ParameterError(problems[0][1])

    def __call__(self, path):
        x, sr = path, None
        for step in self.steps:
            x = step(x, sr)
            sr = step.output_rate(sr)
        return x

    def from_audio(self, y, sr):
        """Run the steps after ``load`` on a waveform already in memory (resampled if needed)."""
        first = self.steps[0]
        if isinstance(first, Load) and sr != first.sample_rate:
            import librosa

            y = librosa.resample(
                np.asarray(y, dtype=np.float32),
                orig_sr=sr,
                target_sr=first.sample_rate,
                res_type=first.res_type,
            )
            sr = first.sample_rate
        x = np.asarray(y, dtype=np.float32)
        for step in self.steps[1:] if isinstance(first, Load) else self.steps:
            x = step(x, sr)
            sr = step.output_rate(sr)
        return x

    @property
    def sample_rate(self):
        first = self.steps[0]
        return first.sample_rate if isinstance(first, Load) else None
