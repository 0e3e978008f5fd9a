"""``mixed``: several data sources in one recipe, each with its own label map and splits.

A recipe lists them under ``data.sources`` (``seqkit.recipe`` turns that list into one
``{type: mixed, sources: [...]}`` step, so the task, the feature cache, ``crossval``,
``evaluate`` and run folders see one ordinary source)::

    data:
      sources:
        - {type: folder, root: my_recordings}                  # real: train, validation, test
        - {type: synthetic_speech, root: data/my_words_synth, words: [yes, no]}   # train only
        - {type: folder, root: other_speech, label_map: {"*": _unknown_}, splits: [train]}

Each entry is a data source step (``type`` and that source's parameters) plus three keys of the
mix itself (``MIX_KEYS``):

* ``splits``: the splits the source feeds, of ``train``, ``validation``, ``test``. Default: a
  synthetic source (a class with ``synthetic = True``: ``synthetic_speech``,
  ``synthetic_tones``; or a folder that seqkit generated, marked ``.seqkit-synthetic.json``,
  such as ``seqkit data synth`` output read by ``folder`` / ``speech_commands``) only trains;
  any other source feeds all three by its own split rule. A clip whose own split is listed
  keeps it; any other clip goes to the first listed split in the order train, validation,
  test (``splits: [train]`` puts all of a source in training).
* ``label_map``: ``{source label: label}``; ``"*"`` stands for every label the map does not
  name, except ``_silence_`` and ``_unknown_`` (which keep their names unless named); a label
  mapped to ``null`` is left out. A key the source does not have is an error listing its
  labels (checked when the data is read: the labels of a folder or a generated source are
  known only then).
* ``name``: the prefix of the source's speakers (default: its type, or ``type-<index>`` when
  two entries without a name share a type). Speakers are ``name:speaker``, so two sources' speakers never
  merge in per-speaker reports or cross-validation folds.

Labels: the union after mapping, ``_silence_`` and ``_unknown_`` first (the order of
``speech_commands``), then the others sorted (the order of ``folder``). Examples of a source
that feeds only some splits carry ``keep_split``: a speaker-grouped cross-validation
(``seqkit.data.fold_split``) deals the other sources' speakers into folds and leaves these
where their ``splits`` put them -- synthetic speakers stay in training.

Why a source of its own, not a list handled by the task: every reader of a recipe (the
trainer, the cache identity, ``crossval``, ``evaluate``) already knows one source; one more
registered source keeps them free of special cases.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from ...data import SPLITS, speaker_of
from ...errors import DataError, RecipeError, RegistryError, SeqkitError, did_you_mean
from ...registry import SOURCES
from .common import SILENCE_LABEL, SYNTH_MARKER, UNKNOWN_LABEL, _ScannedSource

log = logging.getLogger("seqkit")

MIXED = "mixed"  # the registry name
MIX_KEYS = ("splits", "label_map", "name")  # an entry's keys that belong to the mix
ANY_LABEL = "*"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass
class Part:
    """One entry of a mix: its source object and how it is mixed in."""

    type: str
    source: object
    splits: tuple[str, ...]
    label_map: dict = field(default_factory=dict)
    name: str = ""
    path: str = ""  # dotted path of the entry in the recipe, for messages

    @property
    def keeps_splits(self) -> bool:
        """Whether cross-validation folds leave this source's clips in their splits."""
        return set(self.splits) != set(SPLITS)


def is_synthetic(cls, params: dict) -> bool:
    """A source class marked ``synthetic = True``, or a source whose ``root`` seqkit generated
    (it holds ``.seqkit-synthetic.json``)."""
    if getattr(cls, "synthetic", False):
        return True
    root = params.get("root")
    return isinstance(root, str) and bool(root) and (Path(root).expanduser() / SYNTH_MARKER).is_file()


def _plain_source(step: dict, path: str):
    """Build one entry's source from the registry (used outside a recipe check, e.g. ``seqkit
    evaluate --data``; a recipe's check builds entries with its own parameter checks)."""
    params = {k: v for k, v in step.items() if k != "type"}
    try:
        cls = SOURCES.get(step["type"])
    except RegistryError as exc:
        return None, [(f"{path}.type", str(exc))]
    try:
        return cls(**params), []
    except (TypeError, ValueError, KeyError, SeqkitError) as exc:
        return None, [(path, str(exc).strip())]


def _hint(name, choices) -> str:
    """``; did you mean 'x'?`` (or ``.`` without a close match), to go before the list."""
    hint = did_you_mean(name, choices).strip()
    return f"; {hint[0].lower()}{hint[1:]}" if hint else "."


def _bool_hint(value) -> str:
    return " (YAML reads unquoted yes/no/on/off as booleans; quote it: 'yes')" if isinstance(value, bool) else ""


def _splits(raw, where: str):
    if raw is None:
        return None, []
    if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
        return None, [(f"{where}.splits", f"must be a list of split names ({', '.join(SPLITS)}); received {raw!r}")]
    problems = []
    for i, name in enumerate(raw):
        if name not in SPLITS:
            hint = _hint(name, SPLITS)
            problems.append((f"{where}.splits[{i}]", f"unknown split {name!r}{hint} Splits: {', '.join(SPLITS)}."))
    dup = sorted({s for s in raw if raw.count(s) > 1})
    if dup:
        problems.append((f"{where}.splits", f"names {', '.join(dup)} more than once"))
    if not raw:
        problems.append((f"{where}.splits", "is empty, so this source feeds no split; list at least one of "
                         f"{', '.join(SPLITS)}, or remove the source"))  # fmt: skip
    ordered = tuple(s for s in SPLITS if s in raw)
    return (ordered if not problems else None), problems


def _label_map(raw, where: str):
    if raw is None:
        return {}, []
    if not isinstance(raw, dict):
        return {}, [(f"{where}.label_map", "must be a mapping of source label: label (or null to leave it "
                     f"out), e.g. {{zero: '0', '*': _unknown_}}; received {raw!r}")]  # fmt: skip
    out, problems = {}, []
    for key, value in raw.items():
        if isinstance(key, bool) or not isinstance(key, (str, int)) or key == "":
            problems.append((f"{where}.label_map", f"keys must be label names; received {key!r}{_bool_hint(key)}"))
            continue
        if value is not None and (isinstance(value, bool) or not isinstance(value, (str, int)) or value == ""):
            problems.append((f"{where}.label_map", f"{key!r} must map to a label name or null; "
                             f"received {value!r}{_bool_hint(value)}"))  # fmt: skip
            continue
        out[str(key)] = None if value is None else str(value)
    return out, problems


def plan(sources, path: str, build_source=_plain_source) -> tuple[list[Part] | None, list]:
    """The entries of a mix, built and checked: ``(parts, [])`` or ``(None, problems)``, every
    problem ``(dotted path, message)`` found, each source checked by ``build_source(step,
    path) -> (object | None, problems)``."""
    if not isinstance(sources, list) or not sources:
        return None, [(path, "must be a list of data sources, e.g. [{type: folder, root: my_recordings}, "
                       f"{{type: synthetic_speech, root: data/synth}}]; received {sources!r}")]  # fmt: skip
    parts, problems, names = [], [], {}
    types = [raw.get("type") for raw in sources if isinstance(raw, dict) and "name" not in raw]
    for i, raw in enumerate(sources):
        where = f"{path}[{i}]"
        if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
            problems.append((where, "must be a data source step such as {type: folder, root: my_recordings}; "
                             f"received {raw!r}"))  # fmt: skip
            continue
        kind = raw["type"]
        if kind == MIXED:
            problems.append((f"{where}.type", "a mixed source cannot hold another; list its sources here"))
            continue
        step = {k: v for k, v in raw.items() if k not in MIX_KEYS}
        source, more = build_source(step, where)
        problems += more
        splits, more = _splits(raw.get("splits"), where)
        problems += more
        label_map, more = _label_map(raw.get("label_map"), where)
        problems += more
        name = raw.get("name", kind if types.count(kind) == 1 else f"{kind}-{i}")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            problems.append((f"{where}.name", "must be a short name (letters, digits, _ . -) for the "
                             f"source's speakers; received {name!r}"))  # fmt: skip
        elif name in names:
            problems.append((f"{where}.name", f"{name!r} is the name of {names[name]} too; each "
                             "source needs its own"))  # fmt: skip
        else:
            names[name] = where
        if splits is None and "splits" not in raw:
            cls = SOURCES.get(kind) if kind in SOURCES else None
            splits = ("train",) if cls is not None and is_synthetic(cls, step) else SPLITS
        parts.append(Part(kind, source, splits or (), label_map, str(name), where))
    for split in ("validation", "test"):
        if parts and not any(split in p.splits for p in parts):
            problems.append((path, f"no source feeds the {split} split (synthetic sources only train "
                             "unless their `splits` say so); add a source of real recordings, or "
                             f"list {split} in one source's `splits`"))  # fmt: skip
    return (parts if not problems else None), problems


class MixedSource(_ScannedSource):
    """Several data sources as one (module docstring): ``sources`` is a list of source steps,
    each with optional ``splits``, ``label_map`` and ``name``."""

    MIX_KEYS = MIX_KEYS

    def __init__(self, sources: list):
        parts, problems = plan(sources, "sources")
        if problems:
            raise RecipeError(problems)
        self._setup(parts)

    @classmethod
    def checked(cls, sources, path: str, build_source) -> tuple[MixedSource | None, list]:
        """A mix whose sources ``build_source`` builds and checks (``seqkit.recipe``'s own
        parameter checks, with did-you-mean), problems named under ``path``."""
        parts, problems = plan(sources, path, build_source)
        if problems:
            return None, problems
        obj = cls.__new__(cls)
        obj._setup(parts)
        return obj, []

    def _setup(self, parts: list[Part]) -> None:
        self.parts = parts

    @property
    def data_roots(self) -> list[Path]:
        """Every source's data folder (none of them may hold a run folder or the cache)."""
        out = []
        for p in self.parts:
            root = getattr(p.source, "data_root", None) or getattr(p.source, "root", None)
            if isinstance(root, (str, Path)):
                out.append(Path(root))
        return out

    @property
    def data_root(self) -> Path | None:
        """The first source's data folder (what a one-folder check looks at; ``data_roots``
        lists them all)."""
        roots = self.data_roots
        return roots[0] if roots else None

    def background_noise_files(self) -> list[Path]:
        """The background-noise recordings of every source that has some, in source order."""
        out = []
        for p in self.parts:
            if hasattr(p.source, "background_noise_files"):
                out += [f for f in p.source.background_noise_files() if f not in out]
        return out

    def _mapping(self, part: Part, labels: list[str]) -> dict[str, str | None]:
        m = part.label_map
        out = {}
        for label in labels:
            if label in m:
                out[label] = m[label]
            elif ANY_LABEL in m and label not in (SILENCE_LABEL, UNKNOWN_LABEL):
                out[label] = m[ANY_LABEL]
            else:
                out[label] = label
        return out

    @staticmethod
    def _call(part: Part, method: str):
        """``part.source.<method>()``; an error's ``data.source.KEY`` said as the entry's own
        path (``data.sources[1].root``)."""
        try:
            if method == "label_names" and hasattr(part.source, "prepare"):
                part.source.prepare()  # a generated source makes its folder first
            return getattr(part.source, method)()
        except SeqkitError as exc:
            text = str(exc)
            if "data.source." not in text and "data.source)" not in text:
                raise
            text = text.replace("data.source.", f"{part.path}.").replace("data.source)", f"{part.path})")
            raise type(exc)(text) from exc

    def _read(self):
        problems, mapped = [], []
        for part in self.parts:
            labels = self._call(part, "label_names")
            for key in part.label_map:
                if key != ANY_LABEL and key not in labels:
                    hint = _hint(key, labels)
                    problems.append((f"{part.path}.label_map", f"{key!r} is not a label of this "
                                     f"{part.type} source{hint} Its labels: {', '.join(labels)}."))  # fmt: skip
            mapping = self._mapping(part, labels)
            if labels and all(v is None for v in mapping.values()):
                problems.append((f"{part.path}.label_map", "leaves out every label of this source, so it "
                                 "feeds no split; map at least one label to a name"))  # fmt: skip
            mapped.append(mapping)
        if problems:
            raise RecipeError(problems)
        examples, counts = [], []
        for part, mapping in zip(self.parts, mapped):
            count = dict.fromkeys(SPLITS, 0)
            for ex in self._call(part, "examples"):
                label = mapping.get(ex.label, ex.label)
                if label is None:
                    continue
                split = ex.split if ex.split in part.splits else part.splits[0]
                speaker = speaker_of(ex)
                examples.append(dataclasses.replace(
                    ex, label=label, split=split, keep_split=part.keeps_splits,
                    speaker=f"{part.name}:{speaker}" if speaker is not None else None,
                ))  # fmt: skip
                count[split] += 1
            counts.append(count)
            if not any(count.values()):
                raise DataError(f"{part.path} ({part.type}) gives no clips, so it feeds no split; "
                                "check its folder or remove it.")  # fmt: skip
        for split in ("validation", "test"):
            # A warning, not an error: a cross-validation deals the splits again, `evaluate
            # --data` reads every split, and training refuses an empty validation split itself.
            if not any(c[split] for c in counts):
                feeding = [f"{p.path} ({p.type})" for p in self.parts if split in p.splits]
                log.warning(
                    "The %s split of the mixed data is empty: %s feed%s it but gave no %s clips; "
                    "change their validation_percent / test_percent, or list the split in another "
                    "source's `splits`.", split, ", ".join(feeding),
                    "s" if len(feeding) == 1 else "", split,
                )  # fmt: skip
        for part, count in zip(self.parts, counts):
            log.info("%s (%s): %s", part.path, part.type,
                     ", ".join(f"{count[s]} {s}" for s in SPLITS if count[s]))  # fmt: skip
        found = {ex.label for ex in examples}
        special = [x for x in (SILENCE_LABEL, UNKNOWN_LABEL) if x in found]
        labels = special + sorted(found - set(special))
        return labels, examples
