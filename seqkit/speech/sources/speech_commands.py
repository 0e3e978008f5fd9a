"""``speech_commands``: the layout of Google Speech Commands v0.01 / v0.02.

A folder per word, ``validation_list.txt`` and ``testing_list.txt``, ``_background_noise_/``.
The lists, when present, decide the split; otherwise the dataset's own hash rule does
(``seqkit.data.which_set``). ``words: [...]`` (default the standard ten) gives the 12-class
task of TensorFlow's ``speech_commands`` example: labels ``_silence_``, ``_unknown_``, then the
words; ``_unknown_`` is sampled from the other words, ``unknown_percent`` of each split's
keyword clips, and ``_silence_`` clips (``silence_percent``) are cut at random from the
background-noise recordings, or generated noise when there are none. ``words: all`` gives one
class per word folder.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import soundfile as sf

from ...data import SPLITS, Example, percent, which_set
from ...errors import DataError, ParameterError, non_negative_number
from ...features import truncated_wav
from .common import (
    BACKGROUND_NOISE_DIR,
    GENERATED_NOISE_DB,
    LIST_FILES,
    SILENCE_LABEL,
    STANDARD_WORDS,
    UNKNOWN_LABEL,
    _audio_files,
    _check_labels,
    _check_root,
    _examples_line,
    _extensions,
    _ScannedSource,
    _seed,
)

log = logging.getLogger("seqkit")

class SpeechCommands(_ScannedSource):
    """Google Speech Commands (v0.01 / v0.02 layout); see the module docstring.

    ``words``: the keywords (default the standard ten: yes, no, up, down, left, right, on,
    off, stop, go) -- labels ``_silence_``, ``_unknown_``, then the words in that order --
    or ``'all'`` for one class per word folder (sorted). ``unknown_percent`` and
    ``silence_percent`` are percentages of each split's keyword clips, as in TensorFlow's
    ``input_data.py`` (0 drops the class; ``silence_percent`` defaults to 10 with a word list,
    0 with ``all``). ``silence_seconds`` is the length of a silence clip. ``validation_percent``
    / ``test_percent`` apply only when the list files are absent.
    """

    def __init__(
        self,
        root: str,
        words: list[str] | str | None = None,
        unknown_percent: float = 10.0,
        silence_percent: float | None = None,
        validation_percent: float = 10.0,
        test_percent: float = 10.0,
        silence_seconds: float = 1.0,
        seed: int = 0,
        extensions: list[str] | None = None,
    ):
        self.root = Path(root).expanduser()
        if words is None:
            self.words = list(STANDARD_WORDS)
        elif words == "all":
            self.words = None
        elif isinstance(words, str):
            raise ParameterError(
                f"`words` must be a list of word folder names or 'all'; received {words!r}."
            )
        else:
            self.words = _check_labels(words, "words")
            bad = [w for w in self.words if w.startswith(("_", ".")) or "/" in w]
            if bad:
                raise ParameterError(
                    f"`words` must name word folders (not starting with '_' or '.'); "
                    f"received {', '.join(map(repr, bad))}."
                )
        self.unknown_percent = non_negative_number("unknown_percent", unknown_percent)
        if silence_percent is None:
            silence_percent = 10.0 if self.words is not None else 0.0
        self.silence_percent = non_negative_number("silence_percent", silence_percent)
        if self.words is None:
            self.unknown_percent = 0.0  # every word is a class: nothing is unknown
        self.validation_percent = percent("validation_percent", validation_percent)
        self.test_percent = percent("test_percent", test_percent)
        if self.validation_percent + self.test_percent >= 100:
            raise ParameterError(
                "`validation_percent` + `test_percent` must be < 100; received "
                f"{self.validation_percent:g} + {self.test_percent:g}."
            )
        if (
            isinstance(silence_seconds, bool)
            or not isinstance(silence_seconds, (int, float))
            or not 0 < silence_seconds <= 60
        ):
            raise ParameterError(
                f"`silence_seconds` must be a number in (0, 60]; received {silence_seconds!r}."
            )
        self.silence_seconds = float(silence_seconds)
        self.seed = _seed(seed)
        self.extensions = _extensions(extensions)

    @property
    def data_root(self) -> Path:
        return self.root

    # -- reading ---------------------------------------------------------------------------------

    def _word_folders(self) -> dict[str, list[Path]]:
        _check_root(self.root)
        folders = {}
        for p in sorted(self.root.iterdir()):
            if not p.is_dir() or p.name.startswith(("_", ".")) or (p / "run.json").is_file():
                continue
            files = _audio_files(p, self.extensions)
            if not files:
                if self.words is not None and p.name in self.words:
                    raise DataError(
                        f"Word folder '{p}' has no audio files ({', '.join(self.extensions)}), "
                        f"so the class '{p.name}' would have no examples; add recordings or "
                        "remove the word from data.source.words."
                    )
                log.warning("Word folder '%s' has no audio files; skipped.", p)
                continue
            folders[p.name] = files
        return folders

    def _read_lists(self, existing: set[str]) -> dict[str, set[str]] | None:
        present = {s: self.root / name for s, name in LIST_FILES.items()}
        found = [s for s, p in present.items() if p.is_file()]
        if not found:
            return None
        if len(found) == 1:
            other = LIST_FILES["test" if found[0] == "validation" else "validation"]
            log.warning(
                "'%s' has %s but no %s; both are needed, so the split follows the hash rule "
                "(validation_percent, test_percent) instead.",
                self.root,
                LIST_FILES[found[0]],
                other,
            )
            return None
        lists = {}
        for split, path in present.items():
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise DataError(f"{path}: cannot be read as a list of files ({exc}).") from exc
            names = {
                line.strip().replace("\\", "/").removeprefix("./")
                for line in text.splitlines()
                if line.strip()
            }
            missing = sorted(n for n in names if n not in existing)
            if missing:
                log.warning(
                    "%s names %d file(s) that do not exist in '%s' (e.g. %s); they are ignored.",
                    path,
                    len(missing),
                    self.root,
                    _examples_line(missing),
                )
            lists[split] = names & existing
        both = sorted(lists["validation"] & lists["test"])
        if both:
            log.warning(
                "%d file(s) are in both %s and %s (e.g. %s); they are used for test.",
                len(both),
                LIST_FILES["validation"],
                LIST_FILES["test"],
                _examples_line(both),
            )
            lists["validation"] -= lists["test"]
        return lists

    def background_noise_files(self) -> list[Path]:
        """The usable recordings in ``_background_noise_/`` (unreadable ones: a warning each)."""
        return [p for p, _ in self._noise_files()]

    def _noise_files(self) -> list[tuple[Path, float]]:

        folder = self.root / BACKGROUND_NOISE_DIR
        if not folder.is_dir():
            return []
        out = []
        for p in _audio_files(folder, self.extensions):
            try:
                info = sf.info(str(p))
                seconds = info.frames / info.samplerate if info.samplerate > 0 else 0.0
            except Exception as exc:
                log.warning("Skipping background noise %s: cannot be read as audio (%s).", p, exc)
                continue
            truncated = truncated_wav(p, info.frames)
            if truncated:
                log.warning("Skipping background noise %s: %s.", p, truncated)
                continue
            if seconds < self.silence_seconds:
                log.warning(
                    "Skipping background noise %s: %.2f s is shorter than silence_seconds (%g).",
                    p,
                    seconds,
                    self.silence_seconds,
                )
                continue
            out.append((p, seconds))
        return out

    def _read(self):
        self.prepare()
        folders = self._word_folders()
        if self.words is not None:
            missing = [w for w in self.words if w not in folders]
            if missing:
                raise DataError(
                    f"Word folder(s) {', '.join(missing)} not found in '{self.root}' "
                    f"(data.source.words); found: {', '.join(folders) or 'none'}."
                )
        elif len(folders) < 2:
            raise DataError(
                f"'{self.root}' needs at least two word folders with audio; found "
                f"{len(folders)} ({', '.join(folders) or 'none'})."
            )
        rel = {p: p.relative_to(self.root).as_posix() for files in folders.values() for p in files}
        lists = self._read_lists(set(rel.values()))

        def split_of(path: Path) -> str:
            r = rel[path]
            if lists is None:
                return which_set(r, self.validation_percent, self.test_percent)
            return (
                "validation"
                if r in lists["validation"]
                else ("test" if r in lists["test"] else "train")
            )

        keywords = self.words if self.words is not None else list(folders)
        others = [w for w in folders if w not in keywords]
        if self.unknown_percent > 0 and not others:
            raise DataError(
                f"'{self.root}' has no word folders besides the {len(keywords)} chosen words, "
                f"so {UNKNOWN_LABEL} would have no examples; add other words or set "
                "data.source.unknown_percent: 0."
            )
        examples: list[Example] = []
        unknown_pool: dict[str, list[Example]] = {s: [] for s in SPLITS}
        for word, files in folders.items():
            for p in files:
                split = split_of(p)
                if word in keywords:
                    examples.append(Example(str(p), word, split))
                elif self.unknown_percent > 0:
                    unknown_pool[split].append(Example(str(p), UNKNOWN_LABEL, split))
        counts = {s: sum(ex.split == s for ex in examples) for s in SPLITS}
        noise = self._noise_files() if self.silence_percent > 0 else []
        if self.silence_percent > 0 and not noise:
            log.info(
                "No usable recordings in '%s'; %s clips are generated noise.",
                self.root / BACKGROUND_NOISE_DIR,
                SILENCE_LABEL,
            )
        for i, split in enumerate(SPLITS):
            rng = np.random.default_rng([self.seed, i])
            pool = unknown_pool[split]
            n_unknown = math.ceil(counts[split] * self.unknown_percent / 100)
            if n_unknown:
                order = rng.permutation(len(pool))
                examples.extend(pool[j] for j in sorted(order[:n_unknown]))
                if n_unknown > len(pool):
                    log.info(
                        "The %s split has %d other-word clips for %d %s examples; all are used.",
                        split,
                        len(pool),
                        n_unknown,
                        UNKNOWN_LABEL,
                    )
            n_silence = math.ceil(counts[split] * self.silence_percent / 100)
            examples.extend(self._silence(split, n_silence, noise, rng))
        labels = list(keywords)
        if self.unknown_percent > 0:
            labels.insert(0, UNKNOWN_LABEL)
        if self.silence_percent > 0:
            labels.insert(0, SILENCE_LABEL)
        return labels, examples

    def _silence(self, split, n, noise, rng) -> list[Example]:
        out = []
        d = self.silence_seconds
        for k in range(n):
            if noise:
                path, seconds = noise[int(rng.integers(len(noise)))]
                offset = float(rng.uniform(0.0, seconds - d))
                gain = float(rng.uniform(0.0, 1.0))
                out.append(Example(str(path), SILENCE_LABEL, split, round(offset, 6), d, gain))
            else:
                color = ("white", "pink", "brown")[int(rng.integers(3))]
                gain = float(10 ** (rng.uniform(*GENERATED_NOISE_DB) / 20))
                out.append(
                    Example(
                        f"<generated {color} noise #{k} ({split})>",
                        SILENCE_LABEL,
                        split,
                        duration=d,
                        gain=gain,
                        noise=color,
                        seed=int(rng.integers(2**31)),
                    )
                )
        return out
