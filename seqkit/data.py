"""Data sources: where the examples of a run come from, with their labels and split.

A source lists ``Example(path, label, split)`` records; the feature pipeline turns each path into
a (time, features) matrix. Built-ins:

* ``folder`` -- one sub-folder per label (``root/yes/a1b2_nohash_0.wav``). Folders whose name
  starts with ``_`` or ``.`` (``_background_noise_``) are not labels.
* ``synthetic_tones`` -- a folder-per-label tree that seqkit generates itself (the quickstart
  data: nothing to download), then read exactly as ``folder`` reads it.

Split rule (stable as files are added, the rule of Speech Commands' ``which_set``): the file
name with any ``_nohash_...`` suffix removed is hashed with SHA-1; the hash, mod 2**27 - 1,
scaled to [0, 100), puts the file in validation below ``validation_percent``, in test below
``validation_percent + test_percent``, else in train. All clips of one speaker (same prefix
before ``_nohash_``) land in the same split.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError, ParameterError, positive_int

log = logging.getLogger("seqkit")

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
MAX_NUM_FILES_PER_CLASS = 2**27 - 1  # as in TensorFlow's speech_commands input_data.py
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Example:
    """One labelled clip of a split: a file, a part of a file, or generated noise.

    ``offset`` / ``duration`` (seconds) select part of a longer file (``_silence_`` clips cut
    from background-noise recordings); ``gain`` scales the waveform after loading; ``noise``
    (``white``, ``pink`` or ``brown``) with ``seed`` and ``duration`` stands for generated
    noise (no file is read; ``path`` then only names it). The feature pipeline takes the
    example whole: ``pipeline(example)``. ``key`` identifies the clip (for caches and
    messages): the path alone for a whole file.
    """

    path: str
    label: str
    split: str
    offset: float | None = None
    duration: float | None = None
    gain: float = 1.0
    noise: str | None = None
    seed: int = 0

    @property
    def key(self) -> str:
        if self.noise is not None:
            return (
                f"<{self.noise} noise seed={self.seed} duration={self.duration!r} "
                f"gain={self.gain!r}>"
            )
        if self.offset is None and self.duration is None and self.gain == 1.0:
            return str(self.path)
        return f"{self.path}[offset={self.offset!r} duration={self.duration!r} gain={self.gain!r}]"


def which_set(filename: str, validation_percent: float, test_percent: float) -> str:
    """Speech Commands' split rule: ``'train'``, ``'validation'`` or ``'test'``."""
    base = Path(filename).name
    hash_name = re.sub(r"_nohash_.*$", "", base)
    digest = hashlib.sha1(hash_name.encode("utf-8")).hexdigest()
    percent = (int(digest, 16) % (MAX_NUM_FILES_PER_CLASS + 1)) * (100.0 / MAX_NUM_FILES_PER_CLASS)
    if percent < validation_percent:
        return "validation"
    if percent < validation_percent + test_percent:
        return "test"
    return "train"


def _percent(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 100:
        raise ParameterError(f"`{name}` must be a number in [0, 100); received {value!r}.")
    return float(value)


class FolderSource:
    """Audio in one sub-folder per label; split by the stable hash rule (module docstring)."""

    def __init__(
        self,
        root: str,
        labels: list[str] | None = None,
        validation_percent: float = 10.0,
        test_percent: float = 10.0,
        extensions: list[str] | None = None,
    ):
        self.root = Path(root).expanduser()
        self.labels = list(labels) if labels is not None else None
        self.validation_percent = _percent("validation_percent", validation_percent)
        self.test_percent = _percent("test_percent", test_percent)
        if self.validation_percent + self.test_percent >= 100:
            raise ParameterError(
                "`validation_percent` + `test_percent` must be < 100; received "
                f"{self.validation_percent:g} + {self.test_percent:g}."
            )
        self.extensions = tuple(
            e.lower() if e.startswith(".") else f".{e.lower()}"
            for e in (extensions or AUDIO_EXTENSIONS)
        )

    def prepare(self) -> None:
        """Make the data available (nothing to do for a plain folder)."""

    def label_names(self) -> list[str]:
        if self.root.exists() and not self.root.is_dir():
            raise DataError(
                f"Data folder '{self.root}' is a file, not a folder (data.source.root)."
            )
        if not self.root.is_dir():
            raise DataError(
                f"Data folder '{self.root}' does not exist (data.source.root); "
                "check the path or create it with one sub-folder per label."
            )
        found = sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir() and not p.name.startswith(("_", ".")) and not (p / "run.json").is_file()
        )
        if self.labels is None:
            if len(found) < 2:
                raise DataError(
                    f"Data folder '{self.root}' needs at least two label sub-folders; "
                    f"found {len(found)} ({', '.join(found) or 'none'})."
                )
            return found
        missing = [name for name in self.labels if name not in found]
        if missing:
            raise DataError(
                f"Label folder(s) {', '.join(missing)} not found in '{self.root}' "
                f"(data.source.labels); found: {', '.join(found) or 'none'}."
            )
        return list(self.labels)

    def examples(self) -> list[Example]:
        self.prepare()
        out = []
        for label in self.label_names():
            folder = self.root / label
            files = sorted(
                p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in self.extensions
            )
            if not files:
                raise DataError(
                    f"Class folder '{folder}' has no audio files ({', '.join(self.extensions)}); "
                    "add recordings or remove the folder."
                )
            for path in files:
                split = which_set(path.name, self.validation_percent, self.test_percent)
                out.append(Example(str(path), label, split))
        return out


# -- synthetic data ------------------------------------------------------------------------------

SYNTH_MARKER = ".seqkit-synthetic.json"
# Vowel formants (F1, F2) in Hz for an average adult voice.
VOWELS = {"a": (750.0, 1250.0), "i": (300.0, 2300.0), "u": (320.0, 850.0), "e": (500.0, 1900.0)}
# Each class is a formant trajectory over the voiced part: (start vowel, end vowel, syllables).
TONE_CLASSES = {
    "ai": ("a", "i", 1),  # a glide, like "eye"
    "ia": ("i", "a", 1),  # the reverse glide
    "u": ("u", "u", 1),  # a steady vowel
    "e_e": ("e", "e", 2),  # two syllables
    "noise": (None, None, 0),  # no voice, only background noise
}


def _voice(f0, formant_tracks, sr, rng):
    """A harmonic, vowel-like sound: pitch track ``f0`` shaped by moving formants."""
    phase = 2 * np.pi * np.cumsum(f0) / sr
    out = np.zeros_like(f0)
    for k in range(1, 30):
        fk = k * f0
        gain = sum(np.exp(-0.5 * ((fk - f) / bw) ** 2) for f, bw in formant_tracks) + 0.01
        gain = np.where(fk < 0.45 * sr, gain, 0.0)
        out += gain * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
    return out / (np.max(np.abs(out)) + 1e-9)


def synth_clip(label, rng, sr, seconds, speaker_f0, speaker_scale=1.0):
    """One clip of class ``label`` (a key of ``TONE_CLASSES``), float32 in [-1, 1].

    The voiced part lasts 35-60 % of the clip at a random onset; the speaker sets the pitch
    and scales the formants (vocal-tract length); noise at 10-30 dB SNR is added.
    """
    start_v, end_v, syllables = TONE_CLASSES[label]
    n = int(round(sr * seconds))
    y = np.zeros(n, dtype=np.float64)
    if syllables:
        m = int(rng.uniform(0.35, 0.6) * seconds * sr)
        start = int(rng.integers(0, n - m))
        u = np.linspace(0.0, 1.0, m)
        f0 = speaker_f0 * rng.uniform(0.92, 1.08) * (1.0 + 0.08 * np.sin(np.pi * u) - 0.05 * u)
        scale = speaker_scale * rng.uniform(0.97, 1.03)
        tracks = []
        for j, bw in ((0, 90.0), (1, 140.0)):
            a, b = VOWELS[start_v][j], VOWELS[end_v][j]
            glide = 1.0 / (1.0 + np.exp(-(u - 0.5) * 12.0))
            tracks.append((scale * (a + (b - a) * glide), bw))
        s = _voice(f0, tracks, sr, rng)
        env = np.sin(np.pi * u) ** 0.5
        if syllables == 2:
            env = env * np.clip(np.abs(u - 0.5) * 12.0 - 0.6, 0.0, 1.0)
        y[start : start + m] = s * env * rng.uniform(0.3, 0.9)
        noise_rms = np.sqrt(np.mean(y**2) / 10 ** (rng.uniform(10.0, 30.0) / 10))
    else:
        noise_rms = rng.uniform(0.003, 0.05)
    y += rng.normal(size=n) * noise_rms
    return np.clip(y, -1.0, 1.0).astype(np.float32)


@contextlib.contextmanager
def generation_lock(root):
    """Hold an exclusive lock while data is generated into ``root``: processes that prepare the
    same folder at once (the workers of a ``multi_worker`` run, two runs started together) take
    turns, and the later ones find the generation complete instead of rewriting it under the
    first. The lock is a file in the temporary folder, ``seqkit-locks/<hash of root's path>``
    (nothing is written beside or into the user's folders; created if absent, never removed:
    removing a lock file others wait on would let two hold it), so it serializes processes of
    one machine. Where ``fcntl`` does not exist (Windows) nothing is locked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    root = Path(root).expanduser()
    key = str(root.resolve())
    if key in _HELD_LOCKS:  # this process holds it already (flock would wait for itself)
        yield
        return
    with open(_lock_path(key), "a") as handle:
        waited = time.monotonic()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("Waiting for another process that is generating '%s'.", root)
            fcntl.flock(handle, fcntl.LOCK_EX)
            log.info("'%s': the other process finished (%.0f s).", root, time.monotonic() - waited)
        _HELD_LOCKS.add(key)
        try:
            yield
        finally:
            _HELD_LOCKS.discard(key)
            fcntl.flock(handle, fcntl.LOCK_UN)


_HELD_LOCKS: set = set()


def _lock_path(key: str) -> Path:
    import tempfile

    folder = Path(tempfile.gettempdir()) / "seqkit-locks"
    folder.mkdir(exist_ok=True)
    return folder / hashlib.sha1(key.encode()).hexdigest()


class SyntheticTones(FolderSource):
    """Spoken-like synthetic classes generated into ``root`` on first use (no download).

    Five classes, vowel-like sounds told apart by their formants as words are: ``ai`` and
    ``ia`` (a glide from one vowel to another and back), ``u`` (a steady vowel), ``e_e`` (two
    syllables) and ``noise`` (no voice). Each of ``speakers`` pseudo-speakers has its own
    pitch and vocal-tract length; files are named
    ``spk<hash>_nohash_<i>.wav`` so a speaker's clips share one split. WAV, 16-bit PCM at
    ``file_sample_rate``; the recipe's ``load`` step resamples.

    seqkit writes only into a folder that does not exist or that it generated itself (it
    carries ``.seqkit-synthetic.json``); any other existing folder is refused, never touched.
    """

    def __init__(
        self,
        root: str = "data/quickstart",
        classes: list[str] | None = None,
        speakers: int = 24,
        clips_per_speaker: int = 2,
        seconds: float = 1.0,
        file_sample_rate: int = 22050,
        seed: int = 0,
        validation_percent: float = 15.0,
        test_percent: float = 15.0,
    ):
        classes = list(classes) if classes is not None else list(TONE_CLASSES)
        unknown = [c for c in classes if c not in TONE_CLASSES]
        if unknown or len(classes) < 2:
            raise ParameterError(
                f"`classes` must be two or more of {', '.join(TONE_CLASSES)}; received {classes!r}."
            )
        super().__init__(root, classes, validation_percent, test_percent, [".wav"])
        positive_int("speakers", speakers)
        positive_int("clips_per_speaker", clips_per_speaker)
        positive_int("file_sample_rate", file_sample_rate)
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, (int, float))
            or not 0.2 <= seconds <= 30
        ):
            raise ParameterError(f"`seconds` must be between 0.2 and 30; received {seconds!r}.")
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
            raise ParameterError(f"`seed` must be an integer in [0, 2**32); received {seed!r}.")
        self.settings = dict(
            classes=classes,
            speakers=speakers,
            clips_per_speaker=clips_per_speaker,
            seconds=float(seconds),
            file_sample_rate=file_sample_rate,
            seed=seed,
        )

    def prepare(self) -> None:
        with generation_lock(self.root):
            self._prepare()

    def _prepare(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise DataError(
                f"Data folder '{self.root}' is a file, not a folder (data.source.root)."
            )
        marker = self.root / SYNTH_MARKER
        if marker.is_file():
            try:
                made = json.loads(marker.read_text())
            except (OSError, ValueError):
                made = {}
            if made.get("settings") == self.settings and made.get("complete", True):
                return
            for rel in made.get("files", []):  # only files seqkit wrote itself
                if isinstance(rel, str) and re.fullmatch(
                    r"[a-z_]+/[0-9a-f]{8}_nohash_\d+\.wav", rel
                ):
                    (self.root / rel).unlink(missing_ok=True)
        elif self.root.exists() and any(self.root.iterdir()):
            raise DataError(
                f"'{self.root}' exists and was not generated by seqkit (no {SYNTH_MARKER}); "
                "synthetic_tones will not write into it. Choose another data.source.root."
            )
        self.generate()

    def generate(self) -> None:
        """Write the clips. The marker, with the full list of planned files, is written first
        (``complete: false``) and completed last, so an interrupted generation is redone, and
        only seqkit's own files are ever removed."""
        import soundfile as sf

        s = self.settings
        speakers = [
            hashlib.sha1(f"{s['seed']}-{spk}".encode()).hexdigest()[:8]
            for spk in range(s["speakers"])
        ]
        files = [
            f"{label}/{speaker}_nohash_{i}.wav"
            for speaker in speakers
            for label in s["classes"]
            for i in range(s["clips_per_speaker"])
        ]
        marker = self.root / SYNTH_MARKER
        self.root.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"settings": s, "files": files, "complete": False}, indent=1))
        rng = np.random.default_rng(s["seed"])
        for speaker in speakers:
            f0, scale = rng.uniform(90.0, 300.0), rng.uniform(0.85, 1.2)
            for label in s["classes"]:
                (self.root / label).mkdir(parents=True, exist_ok=True)
                for i in range(s["clips_per_speaker"]):
                    y = synth_clip(label, rng, s["file_sample_rate"], s["seconds"], f0, scale)
                    path = self.root / f"{label}/{speaker}_nohash_{i}.wav"
                    sf.write(path, y, s["file_sample_rate"], subtype="PCM_16")
        marker.write_text(json.dumps({"settings": s, "files": files, "complete": True}, indent=1))
