"""Augmentations that bring synthetic voices closer to people's recordings (issue 14, item 5):
speaker variability (``vtlp``), rooms (``reverb``) and microphones / channels (``band_pass``,
``telephone``, ``clipping``).

Each is a training-only step of ``data.augment``, seeded like the others: every random choice
is drawn from the batch's stream (``BatchMaker``: ``default_rng([seed, epoch, batch])``), and
``reverb``'s bank of room impulse responses from its own ``seed``, so a run's batches are a
function of (recipe seed, epoch, batch index) alone. All keep the clip's shape.

Libraries: room impulse responses come from ``pyroomacoustics`` (image-source shoebox rooms
with the absorption ``inverse_sabine`` gives for a reverberation time), filters from
``scipy.signal`` (Butterworth, second-order sections), resampling from ``soxr`` through
librosa and the G.711 mu-law codec from ``librosa.mu_compress`` / ``mu_expand``.
``audiomentations`` (``BandPassFilter``, ``ClippingDistortion``, ``ApplyImpulseResponse``...)
is not used: its releases pin ``librosa < 0.12`` and ``soxr < 1``, which would hold seqkit
back from librosa 1.0 on Python 3.12+; it draws from numpy's global generator (a batch's
result would depend on what ran before in the process, not on (seed, epoch, batch)); and the
steps here are each a few lines over the same scipy calls (``bench/bench_augment_voices.py``
times them side by side with audiomentations' when it is installed).
"""

from __future__ import annotations

import functools
import logging
import time

import librosa
import numpy as np

from ...errors import ParameterError
from ...features import CMVN, PCEN, LogMel, MelSpectrogram, PowerToDb
from ._base import FEATURES, Augmentation, _p, _range

log = logging.getLogger("seqkit")


def _positive_int(name, value, high=None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ParameterError(f"`{name}` must be an integer >= 1; received {value!r}.")
    if high is not None and value > high:
        raise ParameterError(f"`{name}` must be <= {high}; received {value!r}.")
    return value


def _rms(x) -> float:
    return float(np.sqrt(np.mean(np.asarray(x, dtype=np.float64) ** 2)))


# -- speaker variability -------------------------------------------------------------------------


def vtlp_warp(f, alpha: float, boundary_hz: float, nyquist: float):
    """Jaitly & Hinton's (2013) piecewise-linear frequency warp: ``f -> alpha * f`` up to
    ``boundary_hz * min(alpha, 1) / alpha``, then the straight line that maps the Nyquist
    frequency to itself (so nothing is pushed out of the band or leaves it empty)."""
    f = np.asarray(f, dtype=np.float64)
    knee = boundary_hz * min(alpha, 1.0) / alpha
    upper = nyquist - (nyquist - boundary_hz * min(alpha, 1.0)) / (nyquist - knee) * (nyquist - f)
    return np.where(f <= knee, alpha * f, upper)


_BANDWISE = (PowerToDb, PCEN, CMVN)  # steps after the mel filterbank that keep its bands


class VTLP(Augmentation):
    """Vocal-tract-length perturbation (Jaitly & Hinton, ICML 2013 workshop): the mel
    features' frequency axis warped by a factor drawn uniformly in ``factor`` ([low, high],
    e.g. [0.9, 1.1]): what a speaker with a vocal tract ``1 / factor`` as long would give.

    A feature step, as in the paper (which warps the filterbank): band ``i`` of the output
    (centre frequency ``c_i``) takes the features at the frequency ``vtlp_warp`` sends to
    ``c_i``, linearly interpolated between the two nearest bands' centres, with
    ``boundary_hz`` (4800 Hz, the paper's) the knee of the warp. The features must be mel
    bands: a ``log_mel`` or ``melspectrogram`` step followed only by steps that keep the
    bands (``power_to_db``, ``pcen``, ``cmvn``); the filterbank's settings are read from
    the recipe's own step. It costs a (n_mels x n_mels) matrix product per clip and keeps
    the cached features (no waveform work), unlike a waveform pitch shift. A factor of 1 is
    the identity; above 1 features move up in frequency (a shorter vocal tract).
    """

    kind = FEATURES

    def __init__(
        self, factor: list[float] = (0.9, 1.1), boundary_hz: float = 4800.0, p: float = 1.0
    ):
        self.factor = _range("factor", factor, 0.5, 2.0)
        if (
            isinstance(boundary_hz, bool)
            or not isinstance(boundary_hz, (int, float))
            or not boundary_hz > 0
        ):
            raise ParameterError(f"`boundary_hz` must be a number > 0; received {boundary_hz!r}.")
        self.boundary_hz = float(boundary_hz)
        self.p = _p(p)
        self._centres = None  # the mel bands' centre frequencies, from bind_pipeline
        self._nyquist = None

    def bind_pipeline(self, pipeline, where: str = "vtlp") -> None:
        """Read the mel filterbank (rate, bands, fmin, fmax) from the feature pipeline."""
        steps, names = list(pipeline.steps), list(pipeline.names)
        mel_at = [i for i, s in enumerate(steps) if isinstance(s, (LogMel, MelSpectrogram))]
        if len(mel_at) != 1 or pipeline.sample_rate is None:
            raise ParameterError(
                f"{where} warps the frequency axis of mel features: `features` needs a `load` "
                "step and one `log_mel` or `melspectrogram` step; this pipeline is "
                f"{' -> '.join(names)}."
            )
        after = [(n, s) for n, s in zip(names[mel_at[0] + 1 :], steps[mel_at[0] + 1 :])]
        bad = [n for n, s in after if not isinstance(s, _BANDWISE)]
        if bad:
            raise ParameterError(
                f"{where} warps the frequency axis of mel features, and '{bad[0]}' after "
                f"'{names[mel_at[0]]}' does not keep the mel bands as columns; only "
                "power_to_db, pcen and cmvn may follow the filterbank."
            )
        mel = steps[mel_at[0]]
        mel = mel.mel if isinstance(mel, LogMel) else mel
        sr = pipeline.sample_rate
        fmax = mel.fmax if mel.fmax is not None else sr / 2.0
        self._nyquist = sr / 2.0
        self._centres = librosa.mel_frequencies(mel.n_mels + 2, fmin=mel.fmin, fmax=fmax)[1:-1]

    def bind_bands(self, centres_hz, sample_rate: int) -> None:
        """Set the bands directly (their centre frequencies), without a pipeline."""
        self._centres = np.asarray(centres_hz, dtype=np.float64)
        self._nyquist = sample_rate / 2.0

    def matrix(self, alpha: float) -> np.ndarray:
        """The (n_mels, n_mels) interpolation matrix ``M`` of factor ``alpha``:
        warped = features @ M.T."""
        if self._centres is None:
            raise ParameterError("vtlp is not bound to a feature pipeline (bind_pipeline).")
        c = self._centres
        grid = np.linspace(0.0, self._nyquist, 2049)
        # The source frequency of each output band: the inverse of the (monotone) warp.
        source = np.interp(c, vtlp_warp(grid, alpha, self.boundary_hz, self._nyquist), grid)
        pos = np.interp(source, c, np.arange(len(c), dtype=np.float64))  # clamped at the ends
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, len(c) - 1)
        w = pos - lo
        m = np.zeros((len(c), len(c)))
        rows = np.arange(len(c))
        np.add.at(m, (rows, lo), 1.0 - w)
        np.add.at(m, (rows, hi), w)
        return m

    def draw(self, rng, x, sr=None) -> dict:
        return {"alpha": float(rng.uniform(*self.factor))}

    def apply(self, x, sr=None, alpha: float = 1.0):
        x = np.asarray(x, dtype=np.float32)
        if alpha == 1.0:
            return x
        if x.ndim != 2 or x.shape[1] != len(self._centres):
            raise ParameterError(
                f"vtlp expects (time, {len(self._centres)}) mel features; received shape {x.shape}."
            )
        return np.ascontiguousarray(x @ self.matrix(alpha).T.astype(np.float32))


# -- rooms ---------------------------------------------------------------------------------------


class Reverb(Augmentation):
    """Reverberation: the clip convolved (``scipy.signal.fftconvolve``) with one of a bank of
    ``rirs`` room impulse responses, picked from the batch's stream, with probability ``p``.

    The bank is made once per run, before training, by ``pyroomacoustics``: ``rirs`` shoebox
    rooms drawn from ``default_rng(seed)`` -- floor ``room_m`` ([low, high] metres per side),
    height 2.4-3.5 m, a reverberation time (RT60) uniform in ``rt60`` seconds turned into wall
    absorption and image-source order by Sabine's formula (``pyroomacoustics.inverse_sabine``),
    source and microphone anywhere at least 0.5 m from the walls. A room the formula cannot
    make (an RT60 too short for its size) is drawn again. Each response starts at its direct
    path (the clip is not delayed) and is cut to the clip's length; the reverberant clip is
    scaled to the dry clip's RMS level, so reverb changes the sound, not the level.
    """

    def __init__(
        self,
        rt60: list[float] = (0.2, 0.8),
        room_m: list[float] = (3.0, 10.0),
        rirs: int = 32,
        seed: int = 0,
        p: float = 0.5,
    ):
        self.rt60 = _range("rt60", rt60, 0.05, 3.0, " s")
        self.room_m = _range("room_m", room_m, 1.5, 50.0, " m")
        self.rirs = _positive_int("rirs", rirs, 10000)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ParameterError(f"`seed` must be an integer >= 0; received {seed!r}.")
        self.seed = seed
        self.p = _p(p)
        self.bank: list[np.ndarray] = []
        self.bank_rt60: list[float] = []
        self._bank_rate = None

    def bind(self, source=None, sample_rate=None) -> None:
        rate = int(sample_rate or 16000)
        if self.bank and self._bank_rate == rate:
            return
        self.bank, self.bank_rt60 = make_rir_bank(
            self.rirs, rate, rt60=self.rt60, room_m=self.room_m, seed=self.seed
        )
        self._bank_rate = rate

    def draw(self, rng, x, sr) -> dict:
        if not self.bank:
            self.bind(sample_rate=sr)
        return {"rir": int(rng.integers(len(self.bank)))}

    def apply(self, x, sr, rir: int):
        from scipy.signal import fftconvolve

        x = np.asarray(x, dtype=np.float32)
        n = len(x)
        h = self.bank[rir][:n]
        y = fftconvolve(x.astype(np.float64), h)[:n]
        dry, wet = _rms(x), _rms(y)
        if dry <= 1e-12 or wet <= 1e-12:
            return x
        return (y * (dry / wet)).astype(np.float32)


def make_rir_bank(count: int, sample_rate: int, rt60=(0.2, 0.8), room_m=(3.0, 10.0), seed=0):
    """``count`` room impulse responses (each starting at its direct path, peak 1) and their
    RT60s, from shoebox rooms drawn from ``default_rng(seed)`` (see ``Reverb``)."""
    import pyroomacoustics as pra

    rng = np.random.default_rng([seed, 1402])
    bank, times = [], []
    started = time.perf_counter()
    for _ in range(count):
        for _attempt in range(100):
            dims = [float(rng.uniform(*room_m)), float(rng.uniform(*room_m)),
                    float(rng.uniform(2.4, 3.5))]  # fmt: skip
            t60 = float(rng.uniform(*rt60))
            try:
                absorption, order = pra.inverse_sabine(t60, dims)
            except ValueError:  # too short an RT60 for this room: draw another room
                continue
            break
        else:
            raise ParameterError(
                f"reverb: no room of {room_m[0]:g}-{room_m[1]:g} m has an RT60 of "
                f"{rt60[0]:g}-{rt60[1]:g} s (Sabine's formula); raise `rt60` or lower `room_m`."
            )
        room = pra.ShoeBox(dims, fs=sample_rate, materials=pra.Material(absorption),
                           max_order=int(order))  # fmt: skip
        room.add_source([float(rng.uniform(0.5, d - 0.5)) for d in dims])
        room.add_microphone([float(rng.uniform(0.5, d - 0.5)) for d in dims])
        room.compute_rir()
        h = np.asarray(room.rir[0][0], dtype=np.float64)
        start = int(np.argmax(np.abs(h)))
        h = h[start:] / np.abs(h[start])
        bank.append(h.astype(np.float32))
        times.append(t60)
    log.info("reverb: %d room impulse responses made in %.1f s", count,
             time.perf_counter() - started)  # fmt: skip
    return bank, times


# -- microphones and channels --------------------------------------------------------------------


@functools.lru_cache(maxsize=2048)
def _butter(kind: str, hz: float, sr: float, order: int):
    from scipy.signal import butter

    return butter(order, hz, btype=kind, fs=sr, output="sos")


def _sos(low_hz: float, high_hz: float, sr: float, order: int):
    """A high-pass at ``low_hz`` (none at 0) then a low-pass at ``high_hz`` (none at or above
    Nyquist), Butterworth of ``order`` each, as second-order sections. Designing a filter
    (``scipy.signal.butter``) costs ~2 ms, 5x the filtering of a 1 s clip, so the designs
    are cached per cut frequency, which callers round to 10 Hz."""
    parts = []
    if low_hz > 0:
        parts.append(_butter("highpass", float(low_hz), float(sr), order))
    if high_hz < sr / 2.0:
        parts.append(_butter("lowpass", float(high_hz), float(sr), order))
    return np.vstack(parts) if parts else None


class BandPass(Augmentation):
    """A microphone's or channel's band limits: Butterworth high-pass and low-pass filters
    (``order`` each, second-order sections, ``scipy.signal.sosfilt``: causal, like a real
    channel) with the low cut drawn uniformly in ``low_hz`` and the high cut in ``high_hz``,
    both rounded to 10 Hz (the filter designs are cached). A low cut of 0 is no high-pass; a
    high cut at or above half the sample rate is no low-pass."""

    def __init__(
        self,
        low_hz: list[float] = (50.0, 400.0),
        high_hz: list[float] = (3000.0, 8000.0),
        order: int = 4,
        p: float = 0.5,
    ):
        self.low_hz = _range("low_hz", low_hz, 0.0, None, " Hz")
        self.high_hz = _range("high_hz", high_hz, 1.0, None, " Hz")
        if self.low_hz[1] >= self.high_hz[0]:
            raise ParameterError(
                f"`low_hz` must lie below `high_hz`; received low_hz {list(low_hz)!r}, "
                f"high_hz {list(high_hz)!r}."
            )
        self.order = _positive_int("order", order, 16)
        self.p = _p(p)

    def bind(self, source=None, sample_rate=None) -> None:
        if sample_rate and self.low_hz[1] >= sample_rate / 2:
            raise ParameterError(
                f"`low_hz` must be below half the sample rate ({sample_rate / 2:g} Hz); "
                f"received {list(self.low_hz)!r}."
            )

    def draw(self, rng, x, sr) -> dict:
        return {"low_hz": round(float(rng.uniform(*self.low_hz)), -1),
                "high_hz": round(float(rng.uniform(*self.high_hz)), -1)}  # fmt: skip

    def apply(self, x, sr, low_hz: float, high_hz: float):
        from scipy.signal import sosfilt

        sos = _sos(low_hz, high_hz, sr, self.order)
        x = np.asarray(x, dtype=np.float32)
        return x if sos is None else sosfilt(sos, x).astype(np.float32)


class Telephone(Augmentation):
    """A telephone line: the clip resampled to 8 kHz (``soxr``), band-limited to
    ``low_hz``-``high_hz`` (300-3400 Hz, the narrowband telephone channel; Butterworth order
    6), coded with G.711 mu-law (8 bits, mu = 255; ``mu_law: false`` to skip), and resampled
    back to the pipeline's rate, with probability ``p``. No random settings beyond ``p``."""

    RATE = 8000

    def __init__(
        self, low_hz: float = 300.0, high_hz: float = 3400.0, mu_law: bool = True, p: float = 0.3
    ):
        for name, v in (("low_hz", low_hz), ("high_hz", high_hz)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise ParameterError(f"`{name}` must be a number >= 0; received {v!r}.")
        if not low_hz < high_hz < self.RATE / 2:
            raise ParameterError(
                f"`low_hz` < `high_hz` < 4000 Hz (half of the telephone's 8 kHz) is needed; "
                f"received low_hz {low_hz!r}, high_hz {high_hz!r}."
            )
        if not isinstance(mu_law, bool):
            raise ParameterError(f"`mu_law` must be true or false; received {mu_law!r}.")
        self.low_hz, self.high_hz, self.mu_law = float(low_hz), float(high_hz), mu_law
        self.p = _p(p)
        self._sos = _sos(self.low_hz, self.high_hz, self.RATE, 6)

    def draw(self, rng, x, sr) -> dict:
        return {}

    def apply(self, x, sr, **_):
        from scipy.signal import sosfilt

        x = np.asarray(x, dtype=np.float32)
        n = len(x)
        y = librosa.resample(x, orig_sr=sr, target_sr=self.RATE, res_type="soxr_hq")
        y = sosfilt(self._sos, y)
        if self.mu_law:
            y = librosa.mu_expand(librosa.mu_compress(np.clip(y, -1.0, 1.0), mu=255), mu=255)
        y = librosa.resample(np.asarray(y, np.float32), orig_sr=self.RATE, target_sr=sr,
                             res_type="soxr_hq")  # fmt: skip
        return np.ascontiguousarray(librosa.util.fix_length(y, size=n), dtype=np.float32)


class Clipping(Augmentation):
    """An overdriven microphone or converter: the waveform clipped at the amplitude that
    ``percent`` per cent of its samples exceed (drawn uniformly in ``percent``, [low, high]),
    as audiomentations' ``ClippingDistortion`` defines it."""

    def __init__(self, percent: list[float] = (0.0, 20.0), p: float = 0.3):
        self.percent = _range("percent", percent, 0.0, 100.0, " %")
        self.p = _p(p)

    def draw(self, rng, x, sr) -> dict:
        return {"percent": float(rng.uniform(*self.percent))}

    def apply(self, x, sr, percent: float):
        x = np.asarray(x, dtype=np.float32)
        if percent <= 0 or not len(x):
            return x
        level = np.float32(np.percentile(np.abs(x), 100.0 - percent))
        return np.clip(x, -level, level).astype(np.float32)


__all__ = ["VTLP", "BandPass", "Clipping", "Reverb", "Telephone", "make_rir_bank", "vtlp_warp"]
