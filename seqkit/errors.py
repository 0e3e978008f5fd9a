"""The exceptions seqkit raises, and the did-you-mean helper every message uses.

Library code raises these and never prints or exits; ``seqkit.cli`` turns them into one
readable line on stderr and an exit code (2 for usage and recipe errors, 1 for a run that
failed).
"""

from __future__ import annotations

import difflib
import numbers
from collections.abc import Iterable


class SeqkitError(Exception):
    """Base class of every error seqkit raises on purpose."""

    exit_code = 1


class ParameterError(SeqkitError, ValueError):
    """A parameter has a value outside what it accepts (names the parameter and the value)."""

    exit_code = 2


class RecipeError(SeqkitError, ValueError):
    """A recipe is invalid. ``problems`` holds ``(dotted_path, message)`` pairs, all of them.

    ``str(err)`` gives one line per problem, each ``FILE: path: message``.
    """

    exit_code = 2

    def __init__(self, problems, file: str | None = None):
        if isinstance(problems, str):
            problems = [("", problems)]
        self.problems = [(str(p), str(m)) for p, m in problems]
        self.file = file
        super().__init__(self._render())

    @property
    def path(self) -> str:
        """Dotted path of the first problem (``model.layers[0].units``)."""
        return self.problems[0][0] if self.problems else ""

    def _render(self) -> str:
        prefix = f"{self.file}: " if self.file else ""
        return "\n".join(f"{prefix}{p}: {m}" if p else f"{prefix}{m}" for p, m in self.problems)


class RegistryError(SeqkitError, LookupError):
    """An unknown component name, a duplicate registration or a plugin that failed to load."""

    exit_code = 2


class DataError(SeqkitError):
    """The data a run was asked to use cannot be used (missing folder, nothing readable)."""

    exit_code = 1


class RunError(SeqkitError):
    """A run folder problem: it exists already, it is not a run folder, it lacks a file."""

    exit_code = 1


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return `` Did you mean 'x'?`` for the closest choice, or an empty string."""
    matches = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" Did you mean '{matches[0]}'?" if matches else ""


# -- value checks shared by components (each message names the parameter and the value) ---------


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ParameterError(f"`{name}` must be a positive integer; received {value!r}.")
    return int(value)


def positive_number(name: str, value, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if not _is_real(value) or not value > 0:
        raise ParameterError(f"`{name}` must be a positive number; received {value!r}.")
    return float(value)


def non_negative_number(name: str, value) -> float:
    if not _is_real(value) or value < 0:
        raise ParameterError(f"`{name}` must be a number >= 0; received {value!r}.")
    return float(value)


def fraction(name: str, value) -> float:
    """A rate such as dropout: a number in [0, 1)."""
    if not _is_real(value) or not 0 <= value < 1:
        raise ParameterError(f"`{name}` must be in [0, 1); received {value!r}.")
    return float(value)
