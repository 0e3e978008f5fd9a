"""eSpeak NG through ctypes (``Espeak``) and the synthetic speakers (``Speaker``,
``make_speakers``, ``render_clip``) that ``synthetic_speech`` renders keywords with.

``espeakng-loader`` ships ``libespeak-ng`` and its voice data but no Python API; this binds
the C library: ``espeak_Initialize`` in synchronous mode with the package's data path,
``espeak_SetSynthCallback``, ``espeak_SetVoiceByName``, ``espeak_SetParameter``,
``espeak_Synth``. See ``seqkit.speech.sources.synthetic`` for the dataset it makes.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass

import librosa
import numpy as np

from ...errors import DataError, ParameterError
from ...features import colored_noise

SAMPLE_RATE = 16000  # every clip is resampled to this rate
CLIP_SECONDS = 1.0

_CHARS_UTF8 = 1
_RATE, _PITCH, _RANGE = 1, 3, 4

# English voices of eSpeak NG (accents).
VOICES = (
    "en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
    "en-029", "en-us-nyc",
)  # fmt: skip


# Voice variants that sound like people (the robotic and effect variants are left out).
VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5",
    "Alex", "Alicia", "Andrea", "Andy", "Annie", "Denis", "Diogo", "Henrique", "Hugo", "Lee",
    "Mario", "Michael", "Mike", "Nguyen", "Reed", "adam", "anika", "aunty", "belinda",
    "benjamin", "boris", "caleb", "david", "edward", "grandma", "grandpa", "ian", "john",
    "klatt", "klatt2", "klatt3", "klatt4", "linda", "marcelo", "max", "michel", "miguel",
    "norbert", "pablo", "paul", "quincy", "rob", "robert", "sandro", "shelby", "steph",
    "travis", "victor", "whisper", "zac",
)  # fmt: skip


_AUDIO_OUTPUT_SYNCHRONOUS = 2


_POS_CHARACTER = 1


_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


def reset_libc_rand() -> None:
    """Put the C library's ``rand()`` back to the state of a fresh process (``srand(1)``, the
    C standard's initial seed).

    eSpeak NG draws from libc's ``rand()`` as it speaks, and that state belongs to the whole
    process: whatever other libraries called before (TensorFlow, a test session's earlier
    work) changes the next clips, and a forked child inherits it. Measured: 1,000 ``rand()``
    calls before ``synthesize`` changed eSpeak NG clips; with this call before each speaker,
    the files are byte for byte those of a fresh process. Without a C library to reach
    (``ctypes`` cannot open this process), nothing is done.
    """
    try:
        libc = ctypes.CDLL(None)
        libc.srand(ctypes.c_uint(1))
    except (OSError, AttributeError, TypeError):  # pragma: no cover - not on Linux/macOS
        pass


class Espeak:
    """eSpeak NG through ctypes; one engine per process (the library has global state).

    ``Espeak.get()`` returns it; ``synth(text, voice, rate, pitch, pitch_range)`` returns
    ``(int16 samples, sample_rate)``.
    """

    _instance = None

    @classmethod
    def get(cls) -> Espeak:
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    @classmethod
    def unspoken(cls) -> Espeak:
        """This process's engine, replaced by a new one first if it has spoken.

        eSpeak NG keeps state between utterances in C statics (pitch flutter, wave phase)
        that neither a call nor ``espeak_Terminate`` resets, so a process that has spoken
        renders the next clips differently from a fresh one. The new engine is a private
        copy of the library (a second ``dlopen`` of the same file would share the statics),
        initialised and not yet spoken; the copy's file is removed once it is loaded.
        """
        if cls._instance is not None and cls._instance.spoke:
            cls._instance = cls(private_copy=True)
        return cls.get()

    def __init__(self, private_copy: bool = False):
        try:
            import espeakng_loader  # optional: may not be installed
        except ImportError as exc:
            raise DataError(
                "synthetic_speech needs eSpeak NG from the package espeakng-loader: "
                "pip install espeakng-loader"
            ) from exc
        try:
            path = espeakng_loader.get_library_path()
            data = espeakng_loader.get_data_path()
            if private_copy:
                folder = tempfile.mkdtemp(prefix="seqkit-espeak-")
                try:
                    lib = ctypes.CDLL(shutil.copy(path, os.path.join(folder, "libespeak-ng.so")))
                finally:
                    shutil.rmtree(folder, ignore_errors=True)
            else:
                lib = ctypes.CDLL(path)
        except (OSError, RuntimeError) as exc:
            raise DataError(f"Cannot load eSpeak NG from espeakng-loader: {exc}") from exc
        self.spoke = False
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        lib.espeak_Synth.restype = ctypes.c_int
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data.encode(), 0)
        if rate <= 0:
            raise DataError(f"eSpeak NG failed to start with the voice data in '{data}'.")
        self.lib, self.sample_rate = lib, rate
        self._set_seed = getattr(lib, "espeak_ng_SetRandSeed", None)  # espeak-ng >= 1.51
        if self._set_seed is not None:
            self._set_seed.argtypes = [ctypes.c_long]
            self._set_seed.restype = None
        self._chunks: list[np.ndarray] = []
        self._callback = _SYNTH_CALLBACK(self._collect)  # kept alive with the engine
        lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, n, events):
        if wav and n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0

    def synth(self, text: str, voice: str = "en", rate: int = 175, pitch: int = 50,
              pitch_range: int = 50, seed: int | None = None) -> tuple[np.ndarray, int]:  # fmt: skip
        """Speak ``text`` with ``voice`` (``'en-us+f3'``); rate in words per minute (80..450),
        pitch and range 0..100. ``seed`` seeds eSpeak NG's noise generator (breathy and
        whispering variants), which is otherwise seeded differently in every process."""
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ParameterError(f"eSpeak NG has no voice {voice!r}.")
        for param, value in ((_RATE, rate), (_PITCH, pitch), (_RANGE, pitch_range)):
            self.lib.espeak_SetParameter(param, int(value), 0)
        if seed is not None and self._set_seed is not None:
            self._set_seed(int(seed))
        self._chunks = []
        self.spoke = True
        raw = text.encode("utf-8") + b"\0"
        err = self.lib.espeak_Synth(raw, len(raw), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if err != 0:
            raise DataError(f"eSpeak NG could not speak {text!r} (error {err}).")
        y = np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.int16)
        self._chunks = []
        return y, self.sample_rate


@dataclass(frozen=True)
class Speaker:
    id: str
    voice: str
    variant: str
    pitch: int
    pitch_range: int
    rate: int

    @property
    def espeak_voice(self) -> str:
        return f"{self.voice}+{self.variant}"


def make_speakers(n: int, seed: int) -> list[Speaker]:
    """``n`` speakers: distinct voice + variant pairs (while they last), seeded pitch and rate."""
    rng = np.random.default_rng([seed, 0x5EA])
    pairs = [(v, w) for v in VOICES for w in VARIANTS]
    order = rng.permutation(len(pairs))
    out = []
    for i in range(n):
        voice, variant = pairs[order[i % len(pairs)]]
        sid = hashlib.sha1(f"synthetic_speech-{seed}-{i}".encode()).hexdigest()[:8]
        out.append(
            Speaker(
                id=sid,
                voice=voice,
                variant=variant,
                pitch=int(rng.integers(20, 81)),
                pitch_range=int(rng.integers(20, 81)),
                rate=int(rng.integers(120, 211)),
            )
        )
    return out


def _trim(y: np.ndarray, threshold: float = 0.02) -> np.ndarray:
    """Cut leading and trailing near-silence (below ``threshold`` of the peak)."""
    if y.size == 0:
        return y
    loud = np.flatnonzero(np.abs(y) > threshold * np.max(np.abs(y)))
    return y[loud[0] : loud[-1] + 1] if loud.size else y[:0]


def render_clip(engine: Espeak, word: str, speaker: Speaker, rng, snr_db=(5.0, 30.0)) -> np.ndarray:
    """One 1 s, 16 kHz float32 clip of ``speaker`` saying ``word``, with noise and level."""

    rate = int(np.clip(speaker.rate * rng.uniform(0.9, 1.1), 80, 450))
    pitch = int(np.clip(speaker.pitch + rng.integers(-5, 6), 0, 100))
    seed = int(rng.integers(2**31))
    raw, sr = engine.synth(word, speaker.espeak_voice, rate, pitch, speaker.pitch_range, seed)
    return finish_clip(
        raw.astype(np.float32) / 32768.0,
        sr,
        rng,
        snr_db,
        f"eSpeak NG ({speaker.espeak_voice})",
        word,
    )


def finish_clip(y: np.ndarray, sr: float, rng, snr_db, engine: str, word: str) -> np.ndarray:
    """The per-clip treatment every synthetic voice gets (eSpeak NG and the engines of
    ``seqkit.speech.sources.voices``): trim the silence, resample ``y`` from ``sr`` to 16 kHz
    (an ``sr`` other than the engine's own rate shifts pitch and formants together), keep the
    middle second, then a random spectral tilt, position, coloured noise at a random SNR in
    ``snr_db`` and peak level, drawn from ``rng`` in that order."""
    y = _trim(y)
    if y.size == 0:
        raise DataError(f"{engine} produced no sound for {word!r}.")
    y = librosa.resample(y, orig_sr=sr, target_sr=SAMPLE_RATE, res_type="soxr_hq")
    n = int(SAMPLE_RATE * CLIP_SECONDS)
    if y.size > n:  # too long for the clip: keep the middle
        start = (y.size - n) // 2
        y = y[start : start + n]
    tilt = rng.uniform(-0.5, 0.7)  # microphone colour: y[t] - a * y[t-1]
    y = np.concatenate([y[:1], y[1:] - tilt * y[:-1]])
    clip = np.zeros(n, dtype=np.float64)
    start = int(rng.integers(0, n - y.size + 1))
    clip[start : start + y.size] = y
    speech_rms = np.sqrt(np.mean(y**2)) + 1e-12
    color = ("white", "pink", "brown")[int(rng.integers(3))]
    snr = rng.uniform(*snr_db)
    clip += colored_noise(color, n, rng) * speech_rms / 10 ** (snr / 20)
    peak = 10 ** (rng.uniform(-30.0, -3.0) / 20)  # level: peak at -30..-3 dB full scale
    clip *= peak / (np.max(np.abs(clip)) + 1e-12)
    return clip.astype(np.float32)
