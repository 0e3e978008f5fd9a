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

Why one module of ~730 lines: the feature steps and the pipeline that chains them are read
together (each step declares what it accepts and produces); the streaming runtime mirrors them
step by step (``seqkit.speech.streaming.features``).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import librosa
import numpy as np
import soundfile as sf

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


def _example_parts(x):
    """``(path, offset, duration, gain, noise, seed, name)`` of a path or an ``Example``."""
    path = getattr(x, "path", x)
    return (
        path,
        getattr(x, "offset", None),
        getattr(x, "duration", None),
        getattr(x, "gain", 1.0),
        getattr(x, "noise", None),
        getattr(x, "seed", 0),
        getattr(x, "key", None) or str(path),
    )


NOISE_COLORS = ("white", "pink", "brown")


def colored_noise(color: str, n: int, rng) -> np.ndarray:
    """``n`` samples of white, pink (1/f) or brown (1/f^2) noise, float32, RMS 1 (approx.).

    Pink and brown noise are white noise shaped in the frequency domain (power 1/f and 1/f^2
    above 20 Hz at 16 kHz), normalised to unit RMS.
    """
    if color not in NOISE_COLORS:
        raise ParameterError(
            f"`noise` must be one of {', '.join(NOISE_COLORS)}; received {color!r}."
        )
    white = rng.standard_normal(n)
    if color == "white" or n < 2:
        y = white
    else:
        spectrum = np.fft.rfft(white)
        f = np.maximum(np.arange(spectrum.size) / n, 20.0 / 16000.0)
        spectrum = spectrum / (np.sqrt(f) if color == "pink" else f)
        y = np.fft.irfft(spectrum, n=n)
    y = y - y.mean()
    return (y / (np.sqrt(np.mean(y**2)) + 1e-12)).astype(np.float32)


class Load(FeatureStep):
    """Read audio with soundfile, mix to mono, resample to ``sample_rate``.

    Any rate, bit depth (8/16/24/32-bit integer, float) and channel count that libsndfile
    reads (WAV, FLAC, OGG, ...). Resampling uses ``librosa.resample`` (soxr by default).

    Takes a file name or an ``Example`` (``seqkit.data``): an example's ``offset`` and
    ``duration`` (seconds) read only that part of the file (silence clips cut from long
    background-noise recordings), ``gain`` scales the waveform, and ``noise`` (``white``,
    ``pink``, ``brown``) generates ``duration`` seconds of seeded noise instead of reading.

    Bad input raises ``DataError`` naming the file, never more: undecodable or empty files,
    a header with sample rate 0 or 0 channels, NaN or infinite samples, a file longer than
    ``max_seconds``, a WAV file shorter than its header says (truncated). The file is read in blocks, so a header that claims 2**31 frames cannot
    make a huge allocation: memory follows the samples actually there (and ``max_seconds``).
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
    # Sample rates outside this range are treated as a corrupt header.
    MIN_FILE_RATE, MAX_FILE_RATE = 100, 2_000_000

    def __init__(
        self, sample_rate: int = 16000, res_type: str = "soxr_hq", max_seconds: float = 3600.0
    ):
        self.sample_rate = positive_int("sample_rate", sample_rate)
        if res_type not in self.RES_TYPES:
            raise ParameterError(
                f"`res_type` must be one of {', '.join(self.RES_TYPES)}; received {res_type!r}."
            )
        self.res_type = res_type
        self.max_seconds = positive_number("max_seconds", max_seconds)

    def output_rate(self, sr):
        return self.sample_rate

    def __call__(self, x, sr=None):
        path, offset, duration, gain, noise, seed, name = _example_parts(x)
        if noise is not None:
            y = self._noise(noise, duration, seed, name)
        else:
            y = self.read(path, offset, duration, name)
        if gain != 1.0:
            y = y * np.float32(gain)
        return np.ascontiguousarray(y, dtype=np.float32)

    def _noise(self, color, duration, seed, name):
        if duration is None or not 0 < duration <= self.max_seconds:
            raise DataError(
                f"{name}: generated noise needs a duration in (0, {self.max_seconds:g}] s; "
                f"received {duration!r}."
            )
        n = int(round(duration * self.sample_rate))
        return colored_noise(color, n, np.random.default_rng(seed))

    def read(self, path, offset=None, duration=None, name=None):
        """Read ``path`` (or ``duration`` seconds from ``offset``) as mono float32 at
        ``sample_rate``; DataError naming the file for anything that is not usable audio."""

        name = name or str(path)
        try:
            f = sf.SoundFile(str(path))
        except Exception as exc:  # libsndfile raises several types
            raise DataError(f"{name}: cannot be read as audio ({_why(path, exc)}).") from exc
        with f:
            file_sr, channels, frames = f.samplerate, f.channels, f.frames
            if not self.MIN_FILE_RATE <= file_sr <= self.MAX_FILE_RATE:
                raise DataError(
                    f"{name}: the header gives a sample rate of {file_sr} Hz (must be "
                    f"{self.MIN_FILE_RATE}..{self.MAX_FILE_RATE}); the file is corrupt."
                )
            if channels < 1:
                raise DataError(f"{name}: the header gives {channels} channels.")
            start = 0 if offset is None else int(round(offset * file_sr))
            if offset is not None and (start < 0 or start >= max(frames, 1)):
                raise DataError(
                    f"{name}: offset {offset:g} s is outside the file "
                    f"({frames / file_sr:g} s long)."
                )
            if duration is not None and not 0 < duration <= self.max_seconds:
                raise DataError(
                    f"{name}: duration must be in (0, {self.max_seconds:g}] s; "
                    f"received {duration!r}."
                )
            limit = int(np.ceil(self.max_seconds * file_sr))
            wav_claims = _wav_claimed_frames(path)
            if duration is None:  # a header claiming more than max_seconds: refuse, read nothing
                claimed = max(frames, wav_claims)
                if claimed > limit:
                    raise DataError(
                        f"{name}: the header claims {claimed} frames at {file_sr} Hz "
                        f"({claimed / file_sr:.0f} s), more than `max_seconds` "
                        f"({self.max_seconds:g} s); the file is corrupt, or raise max_seconds "
                        "in the load step."
                    )
            truncated = truncated_wav(path, frames, wav_claims)
            if truncated:
                raise DataError(f"{name}: {truncated}.")
            want = limit + 1 if duration is None else int(round(duration * file_sr))
            try:
                if start:
                    f.seek(start)
                y = _read_blocks(f, channels, want)
            except DataError as exc:
                raise DataError(f"{name}: {exc}") from None
            except Exception as exc:
                raise DataError(f"{name}: cannot be decoded ({exc}).") from exc
        if y.size == 0:
            raise DataError(f"{name}: the file holds no audio samples.")
        if y.size > limit:
            raise DataError(
                f"{name}: the file is longer than `max_seconds` ({self.max_seconds:g} s); "
                "raise max_seconds in the load step or cut the file."
            )
        if file_sr != self.sample_rate:

            y = librosa.resample(
                y, orig_sr=file_sr, target_sr=self.sample_rate, res_type=self.res_type
            )
        return y


def _read_blocks(f, channels: int, want: int) -> np.ndarray:
    """Read up to ``want`` frames in blocks, mixed to mono; NaN/inf raise DataError.

    Memory follows what the file holds, not what its header claims.
    """
    block = max(1024, 2**20 // channels)
    parts, got = [], 0
    while got < want:
        n = min(block, want - got)
        data = f.read(n, dtype="float32", always_2d=True)
        if data.shape[0]:
            y = data[:, 0] if channels == 1 else data.mean(axis=1)
            if not np.all(np.isfinite(y)):
                raise DataError("the file holds NaN or infinite samples.")
            parts.append(np.array(y, dtype=np.float32))
            got += data.shape[0]
        if data.shape[0] < n:  # end of the data
            break
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def truncated_wav(path, frames: int, claimed: int | None = None) -> str | None:
    """Why a WAV file is truncated -- its header claims more than the ``frames`` libsndfile
    found (libsndfile counts only those there, and says nothing) -- or None: a complete WAV,
    or another format. ``claimed``: ``_wav_claimed_frames(path)`` when already read."""
    claimed = _wav_claimed_frames(path) if claimed is None else claimed
    if claimed > frames:
        return (
            f"the header claims {claimed} frames but the file holds {frames}; the file is "
            "truncated (copy it again)"
        )
    return None


def _wav_claimed_frames(path) -> int:
    """Frames the ``data`` chunk of a WAV header claims (libsndfile clamps it to the file
    size and does not say); 0 for other formats or when the header cannot be parsed."""

    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 16)
    except OSError:
        return 0
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return 0
    pos, block_align = 12, 0
    while pos + 8 <= len(head):
        chunk, size = head[pos : pos + 4], struct.unpack("<I", head[pos + 4 : pos + 8])[0]
        if chunk == b"fmt " and pos + 22 <= len(head):
            block_align = struct.unpack("<H", head[pos + 20 : pos + 22])[0]
        elif chunk == b"data":
            return size // block_align if block_align else 0
        pos += 8 + size + (size & 1)
    return 0


def _why(path, exc) -> str:
    """libsndfile's reason, made specific for the WAV header faults it reports vaguely."""

    text = str(exc)
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError as err:
        return err.strerror or text
    if len(head) == 0:
        return "the file is empty"
    if head[:4] in (b"RIFF", b"RIFX") and head[8:12] == b"WAVE":
        i = head.find(b"fmt ")
        if i >= 0 and len(head) >= i + 16:
            channels, rate = struct.unpack("<HI", head[i + 10 : i + 16])
            if rate == 0:
                return "the WAV header gives a sample rate of 0"
            if channels == 0:
                return "the WAV header gives 0 channels"
        elif i < 0:
            return f"the WAV header is truncated or has no 'fmt ' chunk; {text}"
    return text


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

        return librosa.util.fix_length(y, size=self.length(sr)).astype(np.float32)


def _ms(name, value):
    return positive_number(name, value, allow_none=True)


class MelSpectrogram(FeatureStep):
    """Mel power spectrogram (``librosa.feature.melspectrogram``), returned as (time, n_mels).

    Window and hop in samples (``win_length``, ``hop_length``) or in milliseconds (``win_ms``,
    ``hop_ms``, turned into samples at the rate the step receives: 25 ms at 16 kHz is 400).
    Defaults: ``hop_length`` 160; ``n_fft`` 512, or with ``win_ms`` the power of two at or
    above the window; the window defaults to ``n_fft``.
    """

    accepts = (AUDIO,)
    produces = FRAMES

    def __init__(
        self,
        n_fft: int | None = None,
        hop_length: int | None = None,
        win_length: int | None = None,
        n_mels: int = 40,
        fmin: float = 0.0,
        fmax: float | None = None,
        power: float = 2.0,
        center: bool = True,
        win_ms: float | None = None,
        hop_ms: float | None = None,
    ):
        self.n_fft = None if n_fft is None else positive_int("n_fft", n_fft)
        self.hop_length = None if hop_length is None else positive_int("hop_length", hop_length)
        self.win_length = None if win_length is None else positive_int("win_length", win_length)
        self.win_ms, self.hop_ms = _ms("win_ms", win_ms), _ms("hop_ms", hop_ms)
        if self.win_ms is not None and self.win_length is not None:
            raise ParameterError(
                f"`win_ms` and `win_length` both set ({self.win_ms:g} ms, {self.win_length} "
                "samples); give the window once, in milliseconds or in samples."
            )
        if self.hop_ms is not None and self.hop_length is not None:
            raise ParameterError(
                f"`hop_ms` and `hop_length` both set ({self.hop_ms:g} ms, {self.hop_length} "
                "samples); give the hop once, in milliseconds or in samples."
            )
        if self.win_ms is not None and self.hop_ms is not None and self.hop_ms > self.win_ms:
            raise ParameterError(
                f"`hop_ms` must be <= `win_ms` ({self.win_ms:g}); received {self.hop_ms:g}."
            )
        if self.win_ms is None:  # sizes known now: resolve and check them here
            if self.n_fft is None:
                self.n_fft = 512
            if self.hop_ms is None and self.hop_length is None:
                self.hop_length = 160
            if self.hop_length is not None and self.hop_length > self.n_fft:
                raise ParameterError(
                    f"`hop_length` must be <= `n_fft` ({self.n_fft}); received {self.hop_length}."
                )
            if self.win_length is not None and self.win_length > self.n_fft:
                raise ParameterError(
                    f"`win_length` must be <= `n_fft` ({self.n_fft}); received {self.win_length}."
                )
        self.n_mels = positive_int("n_mels", n_mels)
        self.fmin = non_negative_number("fmin", fmin)
        self.fmax = positive_number("fmax", fmax, allow_none=True)
        if self.fmax is not None and self.fmax <= self.fmin:
            raise ParameterError(f"`fmax` must be > `fmin` ({self.fmin}); received {self.fmax}.")
        self.power = positive_number("power", power)
        self.center = bool(center)

    def frame_params(self, sr) -> dict:
        """``n_fft``, ``hop_length``, ``win_length`` in samples at rate ``sr``."""
        win, hop, n_fft = self.win_length, self.hop_length, self.n_fft
        if self.win_ms is not None:
            win = max(1, int(round(self.win_ms * sr / 1000)))
            if n_fft is None:
                n_fft = 1 << (win - 1).bit_length()
            elif win > n_fft:
                raise ParameterError(
                    f"`win_ms` ({self.win_ms:g} ms = {win} samples at {sr} Hz) must be <= "
                    f"`n_fft` ({n_fft}); raise n_fft or leave it out."
                )
        if self.hop_ms is not None:
            hop = max(1, int(round(self.hop_ms * sr / 1000)))
            if hop > n_fft:
                raise ParameterError(
                    f"`hop_ms` ({self.hop_ms:g} ms = {hop} samples at {sr} Hz) must be <= "
                    f"`n_fft` ({n_fft})."
                )
        elif hop is None:
            hop = 160
        if hop > n_fft:
            raise ParameterError(f"`hop_length` must be <= `n_fft` ({n_fft}); received {hop}.")
        return {"n_fft": n_fft, "hop_length": hop, "win_length": win}

    def _check_rate(self, sr):
        if self.fmax is not None and self.fmax > sr / 2:
            raise ParameterError(
                f"`fmax` must be <= half the sample rate ({sr / 2:g} Hz); received {self.fmax:g}."
            )

    def mel_kwargs(self, sr=16000):
        """Keyword arguments of ``librosa.feature.melspectrogram`` at rate ``sr``."""
        return dict(
            **self.frame_params(sr),
            n_mels=self.n_mels,
            fmin=self.fmin,
            fmax=self.fmax,
            power=self.power,
            center=self.center,
        )

    def __call__(self, y, sr):

        self._check_rate(sr)
        S = librosa.feature.melspectrogram(y=y, sr=sr, **self.mel_kwargs(sr))
        return np.ascontiguousarray(S.T, dtype=np.float32)


class PowerToDb(FeatureStep):
    """Power to decibels (``librosa.power_to_db``), shape kept (time, features)."""

    def __init__(self, ref: float = 1.0, amin: float = 1e-10, top_db: float | None = 80.0):
        self.ref = positive_number("ref", ref)
        self.amin = positive_number("amin", amin)
        self.top_db = positive_number("top_db", top_db, allow_none=True)

    def __call__(self, S, sr):

        out = librosa.power_to_db(S, ref=self.ref, amin=self.amin, top_db=self.top_db)
        return out.astype(np.float32)


class LogMel(FeatureStep):
    """Log-mel spectrogram in one step: ``melspectrogram`` then ``power_to_db``, (time, n_mels).

    Takes the parameters of both (window and hop in samples or milliseconds).
    """

    accepts = (AUDIO,)
    produces = FRAMES

    def __init__(
        self,
        n_mels: int = 40,
        n_fft: int | None = None,
        hop_length: int | None = None,
        win_length: int | None = None,
        win_ms: float | None = None,
        hop_ms: float | None = None,
        fmin: float = 0.0,
        fmax: float | None = None,
        power: float = 2.0,
        center: bool = True,
        ref: float = 1.0,
        amin: float = 1e-10,
        top_db: float | None = 80.0,
    ):
        self.mel = MelSpectrogram(
            n_fft=n_fft,
            hop_length=hop_length,
            win_length=win_length,
            n_mels=n_mels,
            fmin=fmin,
            fmax=fmax,
            power=power,
            center=center,
            win_ms=win_ms,
            hop_ms=hop_ms,
        )
        self.db = PowerToDb(ref=ref, amin=amin, top_db=top_db)

    def frame_params(self, sr) -> dict:
        return self.mel.frame_params(sr)

    def __call__(self, y, sr):
        return self.db(self.mel(y, sr), sr)


class MFCC(FeatureStep):
    """MFCCs (``librosa.feature.mfcc``), (time, n_mfcc).

    After ``load``/``fix_length`` it computes the log-mel spectrogram itself (``n_mels``,
    ``n_fft``, ``hop_length`` / ``hop_ms``, ``win_length`` / ``win_ms``, ``fmin``, ``fmax``
    apply); after ``melspectrogram`` + ``power_to_db`` or ``log_mel`` it takes that log-mel
    spectrogram as it is (and those parameters are unused).
    """

    accepts = (AUDIO, FRAMES)
    produces = FRAMES

    def __init__(
        self,
        n_mfcc: int = 13,
        n_mels: int = 40,
        n_fft: int | None = None,
        hop_length: int | None = None,
        fmin: float = 0.0,
        fmax: float | None = None,
        dct_type: int = 2,
        norm: str | None = "ortho",
        lifter: float = 0.0,
        win_length: int | None = None,
        win_ms: float | None = None,
        hop_ms: float | None = None,
    ):
        self.n_mfcc = positive_int("n_mfcc", n_mfcc)
        self.mel = MelSpectrogram(
            n_fft=n_fft,
            hop_length=hop_length,
            win_length=win_length,
            n_mels=n_mels,
            fmin=fmin,
            fmax=fmax,
            win_ms=win_ms,
            hop_ms=hop_ms,
        )
        if dct_type not in (1, 2, 3):
            raise ParameterError(f"`dct_type` must be 1, 2 or 3; received {dct_type!r}.")
        if norm not in (None, "ortho"):
            raise ParameterError(f"`norm` must be 'ortho' or null; received {norm!r}.")
        self.dct_type, self.norm = dct_type, norm
        self.lifter = non_negative_number("lifter", lifter)

    def frame_params(self, sr) -> dict:
        return self.mel.frame_params(sr)

    def __call__(self, x, sr):

        kw = dict(n_mfcc=self.n_mfcc, dct_type=self.dct_type, norm=self.norm, lifter=self.lifter)
        if x.ndim == 1:  # audio
            self.mel._check_rate(sr)
            m = self.mel.mel_kwargs(sr)
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


class PCEN(FeatureStep):
    """Per-channel energy normalisation (``librosa.pcen``; Wang et al. 2017, "Trainable
    frontend for robust and far-field keyword spotting"): each mel band divided by a smoothed
    version of itself (an automatic gain control), then compressed -- in place of the log of
    ``power_to_db``. Robust to level and to slowly changing channels (rooms, microphones).

    Takes mel frames (``melspectrogram``), shape kept (time, features). ``hop_length`` must be
    the hop of that spectrogram (samples): with ``time_constant`` (seconds) it sets the
    smoother. ``scale`` multiplies the input first: librosa's defaults assume magnitudes of
    audio scaled to 32-bit integers (``melspectrogram`` with ``power: 1`` and ``scale:
    2147483648``); the default 1.0 leaves the frames as they are. Causal: the streaming runtime
    carries the smoother's state from frame to frame (``seqkit.speech.streaming``).
    """

    def __init__(
        self,
        hop_length: int = 160,
        time_constant: float = 0.4,
        gain: float = 0.98,
        bias: float = 2.0,
        power: float = 0.5,
        eps: float = 1e-6,
        scale: float = 1.0,
    ):
        self.hop_length = positive_int("hop_length", hop_length)
        self.time_constant = positive_number("time_constant", time_constant)
        self.gain = non_negative_number("gain", gain)
        self.bias = non_negative_number("bias", bias)
        self.power = non_negative_number("power", power)
        self.eps = positive_number("eps", eps)
        self.scale = positive_number("scale", scale)

    def pcen_kwargs(self, sr) -> dict:
        """Keyword arguments of ``librosa.pcen`` at audio rate ``sr``."""
        return dict(sr=sr, hop_length=self.hop_length, time_constant=self.time_constant,
                    gain=self.gain, bias=self.bias, power=self.power, eps=self.eps)  # fmt: skip

    def __call__(self, x, sr):
        S = np.asarray(x, dtype=np.float32).T * self.scale  # (features, time): librosa's layout
        out = librosa.pcen(S, axis=-1, **self.pcen_kwargs(sr))
        return np.ascontiguousarray(out.T, dtype=np.float32)


class CMVN(FeatureStep):
    """Per-utterance cepstral mean and variance normalisation: each feature minus its mean over
    the clip's frames, divided by its standard deviation (``variance: false`` keeps the
    variance), shape kept (time, features). Removes a fixed channel (a microphone's colour)
    from each clip. Needs the whole clip, so it has no streaming version: a streaming model
    uses ``pcen`` or the model's own normalisation (``model.normalize``) instead.
    """

    def __init__(self, variance: bool = True, eps: float = 1e-8):
        if not isinstance(variance, bool):
            raise ParameterError(f"`variance` must be true or false; received {variance!r}.")
        self.variance = variance
        self.eps = positive_number("eps", eps)

    def __call__(self, x, sr):
        x = np.asarray(x, dtype=np.float64)
        out = x - x.mean(axis=0)
        if self.variance:
            out /= x.std(axis=0) + self.eps
        return np.ascontiguousarray(out, dtype=np.float32)


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
    """A checked chain of feature steps: ``pipeline(example or path) -> (time, features)``.

    An ``Example`` (``seqkit.data``) goes to ``load`` whole (offset, duration, gain,
    generated noise); a first step of a plugin's own gets the example's ``path``.
    """

    def __init__(self, steps: Sequence[FeatureStep], names: Sequence[str] | None = None):
        self.steps = list(steps)
        self.names = list(names) if names is not None else [type(s).__name__ for s in steps]
        problems = chain_problems(self.steps, self.names)
        if problems:
            raise ParameterError(problems[0][1])

    def __call__(self, example):
        x, sr = example, None
        if not isinstance(self.steps[0], Load) and hasattr(example, "path"):
            x = example.path
        for step in self.steps:
            x = step(x, sr)
            sr = step.output_rate(sr)
        return x

    def from_audio(self, y, sr):
        """Run the steps after ``load`` on a waveform already in memory (resampled if needed)."""
        first = self.steps[0]
        if isinstance(first, Load) and sr != first.sample_rate:

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
