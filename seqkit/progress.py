"""Progress of long library work, reported without deciding how it looks.

Library code says what it has done; an application decides what (if anything) to draw:

* counted work -- feature extraction, data generation -- through ``counter(label)``, which
  returns a ``(done, total)`` callback, or ``None`` when nobody is watching (the caller then
  skips the calls)::

      count = progress.counter("features")
      for i, item in enumerate(items, 1):
          ...
          if count is not None:
              count(i, len(items))

* each finished training epoch through ``epoch_end(EpochEnd(...))``.

What happens is up to the installed ``Reporter``. The default draws nothing: counters are
``None`` and an epoch's line goes to the ``seqkit.progress`` logger at INFO level (shown only
where an application has configured logging to show it). An application installs its own with
``using(reporter)`` (a context manager) or ``install(reporter)``; the ``seqkit`` command line
installs one that draws progress bars on a terminal and plain lines elsewhere
(``seqkit.cli.render``).

This module imports nothing from seqkit: it sits at the bottom of the package, beside
``seqkit.layers`` and ``seqkit.features``, so any module may report through it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator

__all__ = ["Counter", "EpochEnd", "Reporter", "counter", "current", "epoch_end", "install",
           "using"]  # fmt: skip

log = logging.getLogger("seqkit.progress")

#: ``count(done, total)``: ``done`` of ``total`` items finished (called with ``done == total``
#: once at the end).
Counter = Callable[[int, int], None]


class EpochEnd:
    """One finished training epoch: ``epoch`` (1-based) of ``epochs``, the epoch's ``logs``
    (metric name -> value, in the order Keras gave them, learning rate last), the wall-clock
    ``seconds`` it took and the training ``steps`` it ran; ``final``: no epoch follows
    (the last of ``epochs``, or early stopping). A plain class, not a dataclass: this module
    is imported by every ``seqkit`` command, and a dataclass costs a millisecond to define."""

    __slots__ = ("epoch", "epochs", "logs", "seconds", "steps", "final")

    def __init__(self, epoch: int, epochs: int, logs: dict[str, float] | None = None,
                 seconds: float = 0.0, steps: int | None = None, final: bool = False):  # fmt: skip
        self.epoch, self.epochs, self.logs = epoch, epochs, dict(logs or {})
        self.seconds, self.steps, self.final = seconds, steps, final

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__)
        return f"EpochEnd({fields})"

    def line(self) -> str:
        """The plain one-line form: ``epoch 1/2  accuracy 0.2  loss 1.712  (4.0 s, 10 steps)``."""
        shown = "  ".join(f"{k} {v:.4g}" for k, v in self.logs.items())
        return (
            f"epoch {self.epoch}/{self.epochs}  {shown}  ({self.seconds:.1f} s, {self.steps} steps)"
        )

    def __str__(self) -> str:
        return self.line()


class Reporter:
    """Receives progress from library code. This base class draws nothing: no counters, and
    each epoch's line logged at INFO level to ``seqkit.progress``. Subclasses override
    ``counter`` and ``epoch_end``."""

    def counter(self, label: str, unit: str = "it") -> Counter | None:
        """A ``(done, total)`` callback for counted work called ``label``, or None (nothing
        to report to; the caller skips its calls)."""
        return None

    def epoch_end(self, end: EpochEnd) -> None:
        """One training epoch finished."""
        log.info("%s", end.line())


_reporter: Reporter = Reporter()


def current() -> Reporter:
    """The installed reporter (by default a ``Reporter``, which draws nothing)."""
    return _reporter


def install(reporter: Reporter | None) -> Reporter:
    """Make ``reporter`` (None: the default) the one library code reports to; return the one
    it replaces."""
    global _reporter
    previous, _reporter = _reporter, reporter if reporter is not None else Reporter()
    return previous


@contextlib.contextmanager
def using(reporter: Reporter) -> Iterator[Reporter]:
    """Report to ``reporter`` inside the ``with`` block, then to the previous one again."""
    previous = install(reporter)
    try:
        yield reporter
    finally:
        install(previous)


def counter(label: str, unit: str = "it") -> Counter | None:
    """The installed reporter's ``(done, total)`` callback for work called ``label``
    (``unit``: what is counted, e.g. "file"), or None when it draws nothing."""
    return _reporter.counter(label, unit)


def epoch_end(end: EpochEnd) -> None:
    """Tell the installed reporter that a training epoch finished."""
    _reporter.epoch_end(end)
