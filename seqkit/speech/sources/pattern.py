"""``filename_pattern``: labels, speakers and splits from file names.

A regular expression with named groups over the file names: the ``label`` group (or a ``label``
template such as ``'{digit}'``) gives the label; the split comes from a rule on a group
(``test_if: "index < 5"``, ``Rule``), from held-out speakers (``test_speakers``,
``validation_speakers``) or from the hash rule.
"""

from __future__ import annotations

import logging
import operator
import re
import string
from pathlib import Path

from ...data import Example, percent, which_set
from ...errors import DataError, ParameterError, did_you_mean
from .common import (
    _audio_files,
    _check_labels,
    _check_root,
    _examples_line,
    _extensions,
    _ScannedSource,
    _select_labels,
)

log = logging.getLogger("seqkit")

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
        self.validation_percent = percent("validation_percent", validation_percent)
        self.test_percent = percent("test_percent", test_percent)
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
            speaker = m.groupdict().get("speaker") if m else None
            found.setdefault(label, []).append(
                Example(str(p), label, self._split(m, str(p)), speaker=speaker or None)
            )
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
