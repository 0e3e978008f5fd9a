"""Keyword-spotting data sources: Speech Commands, labels from file names, CSV manifests.

Each source lists ``Example`` records (``seqkit.data``) and its label names; the feature
pipeline reads them. None of them ever writes into, or deletes from, the dataset folder.

* ``speech_commands`` -- the layout of Google Speech Commands v0.01 / v0.02: a folder per
  word, ``validation_list.txt`` and ``testing_list.txt``, ``_background_noise_/``. The lists,
  when present, decide the split; otherwise the dataset's own hash rule does
  (``seqkit.data.which_set``). ``words: [...]`` (default the standard ten) gives the 12-class
  task of TensorFlow's ``speech_commands`` example: labels ``_silence_``, ``_unknown_``, then
  the words; ``_unknown_`` is sampled from the other words, ``unknown_percent`` of each
  split's keyword clips, and ``_silence_`` clips (``silence_percent``) are cut at random from
  the background-noise recordings, or generated noise when there are none. ``words: all``
  gives one class per word folder.
* ``filename_pattern`` -- a regular expression with named groups over the file names: the
  ``label`` group (or a ``label`` template such as ``'{digit}'``) gives the label; the split
  comes from a rule on a group (``test_if: "index < 5"``), from held-out speakers
  (``test_speakers``, ``validation_speakers``) or from the hash rule.
* ``manifest`` -- a CSV file with the header ``path,label,split``; paths are relative to the
  CSV's folder.

Everything is deterministic given ``seed``: files are sorted, random choices seeded.
"""

from __future__ import annotations

import csv
import logging
import math
import operator
import re
import string
from pathlib import Path

import numpy as np

from .data import AUDIO_EXTENSIONS, SPLITS, Example, _percent, which_set
from .errors import DataError, ParameterError, did_you_mean, non_negative_number

log = logging.getLogger("seqkit")

SILENCE_LABEL = "_silence_"
UNKNOWN_LABEL = "_unknown_"
BACKGROUND_NOISE_DIR = "_background_noise_"
STANDARD_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
LIST_FILES = {"validation": "validation_list.txt", "test": "testing_list.txt"}
# Level of generated silence: RMS from -80 to -20 dB full scale (noise files: gain 0..1, as TF).
GENERATED_NOISE_DB = (-80.0, -20.0)


# -- shared helpers ------------------------------------------------------------------------------


def _extensions(extensions) -> tuple[str, ...]:
    if extensions is not None and (
        not isinstance(extensions, (list, tuple))
        or not extensions
        or not all(isinstance(e, str) and e.strip(".") for e in extensions)
    ):
        raise ParameterError(
            f"`extensions` must be a list of file suffixes such as ['.wav']; "
            f"received {extensions!r}."
        )
    return tuple(
        e.lower() if e.startswith(".") else f".{e.lower()}"
        for e in (extensions or AUDIO_EXTENSIONS)
    )


def _seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ParameterError(f"`seed` must be an integer in [0, 2**32); received {seed!r}.")
    return seed


def _check_root(root: Path, key: str = "data.source.root") -> None:
    if root.exists() and not root.is_dir():
        raise DataError(f"Data folder '{root}' is a file, not a folder ({key}).")
    if not root.is_dir():
        raise DataError(f"Data folder '{root}' does not exist ({key}); check the path.")


def _audio_files(folder: Path, extensions) -> list[Path]:
    """Audio files under ``folder`` (recursively, hidden folders skipped), sorted."""
    out = []
    for p in folder.rglob("*"):
        rel = p.relative_to(folder).parts
        if any(part.startswith(".") for part in rel[:-1]):
            continue
        if p.suffix.lower() in extensions and p.is_file():
            out.append(p)
    return sorted(out)


def _check_labels(labels, what="labels") -> list[str] | None:
    if labels is None:
        return None
    if (
        not isinstance(labels, (list, tuple))
        or not labels
        or not all(isinstance(x, str) and x for x in labels)
    ):
        raise ParameterError(
            f"`{what}` must be a non-empty list of names; received {labels!r} (quote yes/no/"
            "on/off in YAML: 'yes')."
        )
    dup = sorted({x for x in labels if list(labels).count(x) > 1})
    if dup:
        raise ParameterError(f"`{what}` names {', '.join(dup)} more than once.")
    return list(labels)


def _examples_line(paths, n=3) -> str:
    return ", ".join(str(p) for p in paths[:n]) + (", ..." if len(paths) > n else "")


def _select_labels(found: dict[str, list], labels, where: str) -> list[str]:
    """Label order: ``labels`` as given (each must have examples), else sorted found labels."""
    if labels is None:
        names = sorted(found)
        if len(names) < 2:
            raise DataError(
                f"{where} gives {len(names)} label(s) ({', '.join(names) or 'none'}); "
                "a classifier needs at least two."
            )
        return names
    missing = [x for x in labels if not found.get(x)]
    if missing:
        raise DataError(
            f"Label(s) {', '.join(missing)} have no files in {where} (data.source.labels); "
            f"found: {', '.join(sorted(found)) or 'none'}."
        )
    return list(labels)


# -- Speech Commands -----------------------------------------------------------------------------


class _ScannedSource:
    """A dataset on disk read once per source object: ``_read()`` returns ``(labels,
    examples)``; ``label_names`` and ``examples`` serve copies of that one scan."""

    _cache = None

    def prepare(self) -> None:
        """Nothing to do for a dataset on disk."""

    def _scan(self):
        if self._cache is None:
            self._cache = self._read()
        return self._cache

    def label_names(self) -> list[str]:
        return list(self._scan()[0])

    def examples(self) -> list[Example]:
        self.prepare()
        return list(self._scan()[1])


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
        self.validation_percent = _percent("validation_percent", validation_percent)
        self.test_percent = _percent("test_percent", test_percent)
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
        import soundfile as sf

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


# -- labels from file names ----------------------------------------------------------------------

_RULE = re.compile(r"^\s*([A-Za-z_]\w*)\s*(<=|>=|==|!=|<|>)\s*(.+?)\s*$")
_OPS = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


def _number(text):
    try:
        return int(text)
    except ValueError:
        return float(text)


class Rule:
    """``GROUP OP VALUE`` (``index < 5``, ``take == '3'``): compares one group of a file name.

    A number VALUE compares numerically (the group's text must be a number); a quoted or other
    VALUE compares as text. Parsed here, never evaluated as Python.
    """

    def __init__(self, text: str, key: str, groups):
        m = _RULE.match(text) if isinstance(text, str) else None
        if m is None:
            raise ParameterError(
                f"`{key}` must look like 'GROUP OP VALUE' (OP one of <, <=, >, >=, ==, !=), "
                f"e.g. 'index < 5'; received {text!r}."
            )
        self.text, self.key = text, key
        self.group, op, value = m.groups()
        if self.group not in groups:
            raise ParameterError(
                f"`{key}` uses the group '{self.group}', which `pattern` does not define;"
                f"{did_you_mean(self.group, groups)} groups: {', '.join(groups) or 'none'}."
            )
        self.op = _OPS[op]
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            self.value, self.numeric = value[1:-1], False
        else:
            try:
                self.value, self.numeric = _number(value), True
            except ValueError:
                self.value, self.numeric = value, False

    def __call__(self, match, name: str) -> bool:
        text = match.group(self.group)
        if text is None:
            return False
        if self.numeric:
            try:
                left = _number(text)
            except ValueError:
                raise DataError(
                    f"{name}: `{self.key}` ({self.text}) compares the group '{self.group}' "
                    f"with a number, but the file name gives {text!r}."
                ) from None
            return self.op(left, self.value)
        return self.op(text, self.value)


class FilenamePattern(_ScannedSource):
    """Labels and split from a regular expression over file names (see the module docstring).

    ``pattern`` is matched against each audio file's path relative to ``root`` (``a/b.wav``),
    and, failing that, against its name alone (``re.fullmatch``). Named groups: ``label``
    (unless ``label`` gives a template such as ``'{speaker}-{word}'``), ``speaker`` (for the
    held-out speaker rules and for the hash split), any others for ``test_if`` /
    ``validation_if`` rules.

    Split, in order: ``test_if`` or ``test_speakers`` -> test; ``validation_if`` or
    ``validation_speakers`` -> validation; the rest is train, except that without a
    validation rule the hash rule (``which_set`` on the speaker group, else the file name)
    takes ``validation_percent`` for validation -- and, without a test rule, ``test_percent``
    for test. Files that do not match are counted and reported once.
    """

    def __init__(
        self,
        root: str,
        pattern: str,
        label: str | None = None,
        labels: list[str] | None = None,
        test_if: str | None = None,
        validation_if: str | None = None,
        test_speakers: list[str] | None = None,
        validation_speakers: list[str] | None = None,
        validation_percent: float = 10.0,
        test_percent: float = 10.0,
        extensions: list[str] | None = None,
    ):
        self.root = Path(root).expanduser()
        if not isinstance(pattern, str) or not pattern:
            raise ParameterError(f"`pattern` must be a regular expression; received {pattern!r}.")
        try:
            self.regex = re.compile(pattern)
        except re.error as exc:
            raise ParameterError(
                f"`pattern` is not a valid regular expression ({exc}); received {pattern!r}."
            ) from None
        self.pattern = pattern
        groups = list(self.regex.groupindex)
        if label is None:
            if "label" not in groups:
                raise ParameterError(
                    "`pattern` needs a named group 'label', as in (?P<label>[a-z]+), or give "
                    f"`label` as a template such as '{{speaker}}'; its groups: "
                    f"{', '.join(groups) or 'none'}."
                )
            self.label_fields = ["label"]
        else:
            if not isinstance(label, str) or not label:
                raise ParameterError(
                    f"`label` must be a template such as '{{digit}}'; received {label!r}."
                )
            try:
                fields = [f for _, f, _, _ in string.Formatter().parse(label) if f is not None]
            except ValueError as exc:
                raise ParameterError(
                    f"`label` is not a valid template ({exc}); received {label!r}."
                ) from None
            unknown = [f for f in fields if f not in groups]
            if not fields or unknown:
                raise ParameterError(
                    "`label` must name groups of `pattern` in braces, e.g. "
                    f"'{{{(groups or ['label'])[0]}}}'; received {label!r} (groups: "
                    f"{', '.join(groups) or 'none'})."
                )
            self.label_fields = fields
        self.label_template = label
        self.labels = _check_labels(labels)
        self.test_rule = Rule(test_if, "test_if", groups) if test_if is not None else None
        self.validation_rule = (
            Rule(validation_if, "validation_if", groups) if validation_if is not None else None
        )
        self.test_speakers = _check_labels(test_speakers, "test_speakers")
        self.validation_speakers = _check_labels(validation_speakers, "validation_speakers")
        for key, rule, speakers in (
            ("test", self.test_rule, self.test_speakers),
            ("validation", self.validation_rule, self.validation_speakers),
        ):
            if rule is not None and speakers is not None:
                raise ParameterError(
                    f"Give `{key}_if` or `{key}_speakers`, not both; received {rule.text!r} "
                    f"and {speakers!r}."
                )
        if (self.test_speakers or self.validation_speakers) and "speaker" not in groups:
            raise ParameterError(
                "`test_speakers` / `validation_speakers` need a named group 'speaker' in "
                f"`pattern`, as in (?P<speaker>[a-z]+); its groups: {', '.join(groups)}."
            )
        both = set(self.test_speakers or ()) & set(self.validation_speakers or ())
        if both:
            raise ParameterError(
                f"Speaker(s) {', '.join(sorted(both))} are in both `test_speakers` and "
                "`validation_speakers`; a held-out speaker belongs to one split."
            )
        self.validation_percent = _percent("validation_percent", validation_percent)
        self.test_percent = _percent("test_percent", test_percent)
        if self.validation_percent + self.test_percent >= 100:
            raise ParameterError(
                "`validation_percent` + `test_percent` must be < 100; received "
                f"{self.validation_percent:g} + {self.test_percent:g}."
            )
        self.extensions = _extensions(extensions)

    @property
    def data_root(self) -> Path:
        return self.root

    def _label(self, m) -> str | None:
        values = {f: m.group(f) for f in self.label_fields}
        if any(v is None or v == "" for v in values.values()):
            return None
        if self.label_template is None:
            return values["label"]
        return self.label_template.format(**values)

    def _split(self, m, name: str) -> str:
        speaker = m.group("speaker") if "speaker" in self.regex.groupindex else None
        if (self.test_rule and self.test_rule(m, name)) or (
            self.test_speakers and speaker in self.test_speakers
        ):
            return "test"
        if (self.validation_rule and self.validation_rule(m, name)) or (
            self.validation_speakers and speaker in self.validation_speakers
        ):
            return "validation"
        if self.validation_rule or self.validation_speakers:
            return "train"
        test_percent = 0.0 if (self.test_rule or self.test_speakers) else self.test_percent
        key = speaker if speaker else Path(name).name
        return which_set(key, self.validation_percent, test_percent)

    def _read(self):
        _check_root(self.root)
        found: dict[str, list[Example]] = {}
        unmatched = []
        for p in _audio_files(self.root, self.extensions):
            rel = p.relative_to(self.root).as_posix()
            m = self.regex.fullmatch(rel) or self.regex.fullmatch(p.name)
            label = self._label(m) if m else None
            if label is None:
                unmatched.append(rel)
                continue
            found.setdefault(label, []).append(Example(str(p), label, self._split(m, str(p))))
        if unmatched:
            log.warning(
                "%d of %d audio files under '%s' do not match data.source.pattern (e.g. %s); "
                "they are ignored.",
                len(unmatched),
                len(unmatched) + sum(map(len, found.values())),
                self.root,
                _examples_line(unmatched),
            )
        labels = _select_labels(found, self.labels, f"'{self.root}' with pattern {self.pattern!r}")
        examples = [ex for name in labels for ex in found[name]]
        return labels, examples


# -- CSV manifest --------------------------------------------------------------------------------

MANIFEST_COLUMNS = ("path", "label", "split")


class Manifest(_ScannedSource):
    """Examples listed in a CSV file with the header ``path,label,split`` (other columns are
    ignored). Paths are relative to the CSV file's folder; ``split`` is ``train``,
    ``validation`` or ``test``. Malformed rows are reported together with their line numbers;
    rows naming a file that does not exist are skipped with one warning. ``labels`` selects
    and orders the labels (default: sorted).
    """

    MAX_PROBLEMS = 10

    def __init__(self, path: str, labels: list[str] | None = None):
        if not isinstance(path, str) or not path:
            raise ParameterError(f"`path` must be the CSV file's path; received {path!r}.")
        self.path = Path(path).expanduser()
        self.labels = _check_labels(labels)

    @property
    def data_root(self) -> Path:
        return self.path.parent

    def _rows(self):
        if not self.path.is_file():
            what = "is a folder, not a CSV file" if self.path.is_dir() else "does not exist"
            raise DataError(f"Manifest '{self.path}' {what} (data.source.path).")
        try:
            text = self.path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(
                f"Manifest '{self.path}' cannot be read as UTF-8 text ({exc})."
            ) from exc
        reader = csv.reader(text.splitlines())
        try:
            header = next(reader, None)
        except csv.Error as exc:
            raise DataError(f"{self.path}:1: not a CSV header ({exc}).") from exc
        header = [h.strip().lower() for h in header or []]
        missing = [c for c in MANIFEST_COLUMNS if c not in header]
        if missing:
            raise DataError(
                f"{self.path}:1: the header must name the columns path,label,split; "
                f"missing {', '.join(missing)} (header: {','.join(header) or 'empty'})."
            )
        index = {c: header.index(c) for c in MANIFEST_COLUMNS}
        rows, problems = [], []
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                problems.append(f"line {reader.line_num}: {exc}")
                continue
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                problems.append(f"line {line}: {len(row)} fields, the header has {len(header)}")
                continue
            path, label, split = (row[index[c]].strip() for c in MANIFEST_COLUMNS)
            if not path:
                problems.append(f"line {line}: empty path")
            elif not label:
                problems.append(f"line {line}: empty label")
            elif split not in SPLITS:
                problems.append(
                    f"line {line}: split must be train, validation or test; received "
                    f"{split!r}.{did_you_mean(split, SPLITS)}"
                )
            else:
                rows.append((line, path, label, split))
        if problems:
            more = len(problems) - self.MAX_PROBLEMS
            shown = problems[: self.MAX_PROBLEMS] + ([f"... and {more} more"] if more > 0 else [])
            raise DataError(
                f"Manifest '{self.path}' has {len(problems)} bad row(s); fix them:\n  "
                + "\n  ".join(shown)
            )
        if not rows:
            raise DataError(f"Manifest '{self.path}' lists no files (only a header).")
        return rows

    def _read(self):
        found: dict[str, list[Example]] = {}
        absent = []
        for line, rel, label, split in self._rows():
            p = self.data_root / rel
            if not p.is_file():
                absent.append(f"line {line}: {rel}")
                continue
            found.setdefault(label, []).append(Example(str(p), label, split))
        if absent:
            log.warning(
                "%s names %d file(s) that do not exist (%s); they are skipped.",
                self.path,
                len(absent),
                _examples_line(absent),
            )
        labels = _select_labels(found, self.labels, f"manifest '{self.path}'")
        examples = [ex for name in labels for ex in found[name]]
        return labels, examples
