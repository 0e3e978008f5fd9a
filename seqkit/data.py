"""Examples and splits: what every data source lists, and the split rule they share.

``Example(path, label, split)`` is one labelled clip (or part of a file, or generated noise); the
feature pipeline turns it into a (time, features) matrix. ``SPLITS`` are the three splits and
``percent`` checks a split percentage. The sources themselves live in the wings
(``seqkit.speech.sources``, ``seqkit.music.sources``, ``seqkit.longrange``).

Split rule (stable as files are added, the rule of Speech Commands' ``which_set``): the file
name with any ``_nohash_...`` suffix removed is hashed with SHA-1; the hash, mod 2**27 - 1,
scaled to [0, 100), puts the file in validation below ``validation_percent``, in test below
``validation_percent + test_percent``, else in train. All clips of one speaker (same prefix
before ``_nohash_``) land in the same split.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError, ParameterError
from .registry import SOURCES

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
    messages): the path alone for a whole file. ``speaker``: who said it, where the source
    knows (a ``filename_pattern``'s ``speaker`` group, a manifest's ``speaker`` column);
    ``speaker_of`` also reads Speech Commands' ``<speaker>_nohash_`` file names.
    ``keep_split``: the recipe fixed this clip's split (a ``mixed`` source's entry that feeds
    only some splits, such as synthetic speech that only trains), so a cross-validation fold
    (``fold_split``) leaves it there instead of dealing its speaker into a fold.
    """

    path: str
    label: str
    split: str
    offset: float | None = None
    duration: float | None = None
    gain: float = 1.0
    noise: str | None = None
    seed: int = 0
    speaker: str | None = None
    keep_split: bool = False

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


def fold_speakers(examples) -> list[str]:
    """The speakers a speaker-grouped cross-validation deals into folds, sorted: those of the
    spoken clips whose split the recipe did not fix (``keep_split``)."""
    return sorted({
        s for ex in examples
        if not getattr(ex, "keep_split", False) and (s := speaker_of(ex)) is not None
    })  # fmt: skip


def speaker_of(example) -> str | None:
    """The speaker of an example: its own ``speaker``, else the part of a Speech Commands-style
    file name before ``_nohash_`` (``3b4f8f24_nohash_0.wav``: ``3b4f8f24``; the layout of
    ``speech_commands``, ``synthetic_speech``, ``synthetic_tones`` and ``folder`` data), else
    None (generated noise, or a name without the marker)."""
    speaker = getattr(example, "speaker", None)
    if speaker:
        return str(speaker)
    if getattr(example, "noise", None) is not None:
        return None
    name = Path(str(getattr(example, "path", example))).name
    return name.split("_nohash_")[0] if "_nohash_" in name else None


def speaker_accuracy(examples, correct, worst: int = 5) -> dict:
    """Accuracy per speaker (``speaker_of``) of examples with a known speaker: ``{"per_speaker":
    {speaker: {"accuracy", "examples"}}, "worst_speakers": [the ``worst`` lowest, ties by
    name], "speakers", "mean", "std", "min"}`` -- empty when no example has a speaker."""
    by: dict[str, list[bool]] = {}
    for ex, ok in zip(examples, correct):
        speaker = speaker_of(ex)
        if speaker is not None:
            by.setdefault(speaker, []).append(bool(ok))
    if not by:
        return {}
    per = {s: {"accuracy": sum(v) / len(v), "examples": len(v)} for s, v in sorted(by.items())}
    acc = np.array([m["accuracy"] for m in per.values()])
    ranked = sorted(per.items(), key=lambda kv: (kv[1]["accuracy"], kv[0]))[:worst]
    return {
        "speakers": len(per),
        "mean": float(acc.mean()),
        "std": float(acc.std()),
        "min": float(acc.min()),
        "worst_speakers": [{"speaker": s, **m} for s, m in ranked],
        "per_speaker": per,
    }


def fold_split(examples, folds: dict) -> list:
    """The examples re-split for one fold of a speaker-grouped cross-validation (``data.folds``:
    ``k``, ``fold``, ``seed``, ``validation_percent``): the speakers, sorted, are shuffled by
    ``seed`` and dealt into ``k`` groups; group ``fold`` is the test split; of the others,
    those the hash rule puts below ``validation_percent`` validate (at least one speaker), the
    rest train. Generated noise (``_silence_``) and clips whose split the recipe fixed
    (``keep_split``: a mixed source's train-only synthetic speech) keep their own split, and
    their speakers are not dealt. DataError when a clip has no speaker or there are fewer
    speakers than folds."""
    k, fold, seed = int(folds["k"]), int(folds["fold"]), int(folds.get("seed", 0))
    spoken = [ex for ex in examples if getattr(ex, "noise", None) is None
              and not getattr(ex, "keep_split", False)]  # fmt: skip
    unknown = [ex for ex in spoken if speaker_of(ex) is None]
    if unknown:
        raise DataError(
            f"{len(unknown)} of {len(spoken)} clips have no speaker (e.g. '{unknown[0].path}'); "
            "a speaker-grouped cross-validation needs a source that knows speakers "
            "(Speech Commands-style <speaker>_nohash_ names, filename_pattern's speaker group)."
        )
    speakers = fold_speakers(spoken)
    if len(speakers) < k:
        raise DataError(f"{len(speakers)} speakers cannot make {k} folds; use --folds {len(speakers)} or fewer.")
    order = [speakers[i] for i in np.random.default_rng(seed).permutation(len(speakers))]
    group = {s: i % k for i, s in enumerate(order)}
    rest = [s for s in order if group[s] != fold]
    validation = {s for s in rest if which_set(s, folds.get("validation_percent", 15.0), 0.0) == "validation"}
    if not validation and len(rest) > 1:
        validation = {rest[0]}
    out = []
    for ex in examples:
        speaker = speaker_of(ex)
        if speaker is None or getattr(ex, "keep_split", False):
            out.append(ex)
            continue
        split = "test" if group[speaker] == fold else "validation" if speaker in validation else "train"
        out.append(dataclasses.replace(ex, split=split))
    return out


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


def percent(name, value) -> float:
    """A percentage parameter (`validation_percent`, `test_percent`): a number in [0, 100)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 100:
        raise ParameterError(f"`{name}` must be a number in [0, 100); received {value!r}.")
    return float(value)


# -- synthetic data ------------------------------------------------------------------------------






# Sources that lived here in seqkit 0.1 (``from seqkit.data import FolderSource``), now in
# ``seqkit.speech.sources``: answered through the registry, so this module imports no wing.
_MOVED_SOURCES = {"FolderSource": "folder", "SyntheticTones": "synthetic_tones"}


def __getattr__(name):
    if name in _MOVED_SOURCES:
        return SOURCES.get(_MOVED_SOURCES[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
