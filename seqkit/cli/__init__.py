"""The ``seqkit`` command line: the only place that prints results or exits.

Exit codes: 0 ok; 1 the run failed (data, run folder); 2 usage error or invalid recipe;
130 interrupted (Ctrl-C). Results go to stdout; progress, warnings and errors to stderr.

The group (``cli``), its ``-v``/``-q``, logging, progress rendering and error handling live
here; the commands live in one module per family and are added below: ``train`` (train,
validate), ``info`` (list, explain), ``evaluate``, ``kws`` (predict, stream), ``music``
(generate, music), ``data``, ``export``, ``compare``, ``serve``. Options they share are
declared once in ``options``. Command modules import only click and light modules at their top; whatever
pulls in Keras/TensorFlow (seconds) is imported inside the command that needs it, so
``seqkit --help`` and ``seqkit list`` start fast.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys

import click

from ..errors import SeqkitError
from ..progress import using as reporting_to
from . import compare, crossval, data, evaluate, export, info, kws, music, serve, train
from .common import import_keras, verbosity
from .info import KINDS
from .render import CliReporter

__all__ = ["EPILOG", "KINDS", "SeqkitGroup", "cli", "import_keras", "main", "verbosity"]

EPILOG = (
    "Exit codes: 0 ok, 1 run failed, 2 usage error or invalid recipe, 130 interrupted. "
    "Results go to stdout; progress and diagnostics to stderr."
)


class _Formatter(logging.Formatter):
    def format(self, record):
        return f"seqkit: {record.levelname.lower()}: {record.getMessage()}"


class _ReporterHandler(logging.Handler):
    """seqkit's log records on stderr, written above any progress bar being drawn."""

    def __init__(self, reporter: CliReporter):
        super().__init__()
        self.reporter = reporter
        self.setFormatter(_Formatter())

    def emit(self, record):
        try:
            self.reporter.write(self.format(record))
        except Exception:
            self.handleError(record)


@contextlib.contextmanager
def _logging_to(reporter: CliReporter, verbosity: int):
    """The ``seqkit`` logger's records to stderr (``-q``: errors only; ``-v``: info too) for
    the command's duration; the logger's previous set-up afterwards."""
    logger = logging.getLogger("seqkit")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    logger.handlers.clear()
    logger.addHandler(_ReporterHandler(reporter))
    logger.setLevel(
        logging.ERROR if verbosity < 0 else logging.INFO if verbosity > 0 else logging.WARNING
    )
    logger.propagate = False
    try:
        yield logger
    finally:
        logger.handlers[:] = saved[0]
        logger.setLevel(saved[1])
        logger.propagate = saved[2]


def _fail(exc: SeqkitError) -> None:
    click.echo(f"error: {exc}" if "\n" not in str(exc) else f"error:\n{exc}", err=True)
    sys.exit(exc.exit_code)


class SeqkitGroup(click.Group):
    """Turns SeqkitError into one message + exit code, Ctrl-C into 130, anything else into 1."""

    def invoke(self, ctx):
        try:
            try:
                return super().invoke(ctx)
            finally:
                ctx.close()  # progress bars closed, logging restored: before any message below
        except SeqkitError as exc:
            _fail(exc)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort, SystemExit):
            raise
        except Exception as exc:  # a bug, not a user error: say so, keep the traceback on -v
            if verbosity(ctx) > 0:
                raise
            click.echo(
                f"error: unexpected {type(exc).__name__}: {exc}\n"
                "(this is a bug in seqkit or a plugin; rerun with -v for the traceback)",
                err=True,
            )
            sys.exit(1)


@click.group(
    cls=SeqkitGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.option("-v", "--verbose", count=True, help="More diagnostics (repeatable).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr; no progress bars.")
@click.version_option(package_name="seqkit", prog_name="seqkit")
@click.pass_context
def cli(ctx, verbose, quiet):
    """seqkit: sequence models for speech and music on Keras 3."""
    ctx.obj = {"verbose": -1 if quiet else verbose}
    reporter = ctx.with_resource(CliReporter(quiet=quiet))
    ctx.with_resource(reporting_to(reporter))  # library progress (seqkit.progress) drawn here
    ctx.with_resource(_logging_to(reporter, ctx.obj["verbose"]))


for command in (
    train.train,
    train.validate,
    info.list_,
    info.explain,
    evaluate.evaluate,
    kws.predict,
    kws.stream,
    data.data,
    music.generate,
    music.music,
    compare.compare,
    crossval.crossval,
    export.export,
    serve.serve,
):
    cli.add_command(command)
del command


def main(argv=None):
    """Console entry point (``seqkit``)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cli.main(args=argv, prog_name="seqkit")
