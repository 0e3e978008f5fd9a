"""How the command line shows library progress (``seqkit.progress``) on stderr.

* stderr a terminal: a bar per counted job (feature extraction, data generation) and one for
  the epochs of a training run, with each finished epoch's line printed above it;
* stderr not a terminal (a log file, CI, a pipe): no bars; one plain line per finished epoch,
  ``epoch 1/2  accuracy 0.2  loss 1.712  (4.0 s, 10 steps)``;
* ``-q``: nothing.

Bars are drawn by tqdm rather than rich: tqdm is small (pure Python, no dependencies of its
own), the progress bar most ML code already uses (Hugging Face, PyTorch tooling), and it
handles streams that are not full terminals (unknown width, no cursor control: a bar is one
line redrawn with a carriage return); rich, though Keras installs it, is a whole terminal
renderer whose live displays are more than a bar and a line per epoch need. tqdm is imported
only when the first bar is drawn, never for ``--help`` or off a terminal.
"""

from __future__ import annotations

import sys

import click

from ..progress import Counter, EpochEnd, Reporter

__all__ = ["CliReporter"]


class CliReporter(Reporter):
    """Renders ``seqkit.progress`` reports on stderr; use as a context manager (bars still
    open at its end -- an interrupted or failed run -- are closed)."""

    def __init__(self, quiet: bool = False, stream=None):
        self.quiet = quiet
        self._stream = stream
        self._bars: list = []
        self._epochs = None  # the training run's epoch bar (terminal only)

    @property
    def stream(self):
        return self._stream if self._stream is not None else sys.stderr

    @property
    def terminal(self) -> bool:
        isatty = getattr(self.stream, "isatty", None)
        return bool(isatty and isatty())

    def _bar(self, **kwargs):
        from tqdm import tqdm  # only when a bar is drawn: ~50 ms, not for --help

        # nrows given: tqdm hides every bar on a terminal that reports 0 rows (some
        # pseudo-terminals do); the width is still read from the terminal.
        bar = tqdm(file=self.stream, mininterval=0.2, nrows=24, **kwargs)
        self._bars.append(bar)
        return bar

    def _close(self, bar) -> None:
        bar.close()
        if bar in self._bars:
            self._bars.remove(bar)

    # counted work

    def counter(self, label: str, unit: str = "it") -> Counter | None:
        if self.quiet or not self.terminal:
            return None
        bar = None

        def count(done: int, total: int) -> None:
            nonlocal bar
            if bar is None:
                bar = self._bar(total=total, desc=label, unit=unit, leave=True)
            if total != bar.total:
                bar.total = total
            bar.update(done - bar.n)
            if done >= total:
                self._close(bar)

        return count

    # training epochs

    def epoch_end(self, end: EpochEnd) -> None:
        if self.quiet:
            return
        if not self.terminal:
            click.echo(end.line(), file=self.stream)
            return
        if self._epochs is None or self._epochs.total != end.epochs:
            if self._epochs is not None:
                self._close(self._epochs)
            self._epochs = self._bar(total=end.epochs, initial=end.epoch - 1, desc="training",
                                     unit="epoch", leave=False)  # fmt: skip
        self._epochs.write(end.line(), file=self.stream)
        self._epochs.update(end.epoch - self._epochs.n)
        if end.final or end.epoch >= end.epochs:
            self._close(self._epochs)
            self._epochs = None

    # diagnostics

    def write(self, line: str) -> None:
        """Write ``line`` to stderr, above any bars being drawn (seqkit's log records come
        this way: a warning during feature extraction does not break the bar)."""
        if self._bars:
            self._bars[-1].write(line, file=self.stream)
        else:
            self.stream.write(line + "\n")
            self.stream.flush()

    def close(self) -> None:
        for bar in list(self._bars):
            self._close(bar)
        self._epochs = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
