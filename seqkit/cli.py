"""The ``seqkit`` command line: the only place that prints results or exits.

Exit codes: 0 ok; 1 the run failed (data, run folder); 2 usage error or invalid recipe;
130 interrupted (Ctrl-C). Results go to stdout; progress, warnings and errors to stderr.
"""

from __future__ import annotations

import logging
import os
import sys

import click

from .errors import SeqkitError

EPILOG = (
    "Exit codes: 0 ok, 1 run failed, 2 usage error or invalid recipe, 130 interrupted. "
    "Results go to stdout; progress and diagnostics to stderr."
)
KINDS = ("layers", "features", "sources", "tasks", "augmentations")
# Commands defined in their own modules, imported only when used (or listed by --help):
# name -> "module:attribute" of a click command or group.
LAZY_COMMANDS = {
    "evaluate": "seqkit.cli_evaluate:evaluate",
    "predict": "seqkit.cli_kws:predict",
    "stream": "seqkit.cli_kws:stream",
    "data": "seqkit.cli_data:data",
    "generate": "seqkit.cli_music:generate",
    "music": "seqkit.cli_music:music",
    "compare": "seqkit.cli_compare:compare",
    "export": "seqkit.cli_export:export",
}


class _Formatter(logging.Formatter):
    def format(self, record):
        return f"seqkit: {record.levelname.lower()}: {record.getMessage()}"


def _setup_logging(verbosity: int) -> None:
    logger = logging.getLogger("seqkit")
    logger.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    logger.addHandler(handler)
    logger.setLevel(
        logging.ERROR if verbosity < 0 else logging.INFO if verbosity > 0 else logging.WARNING
    )
    logger.propagate = False


def _fail(exc: SeqkitError) -> None:
    click.echo(f"error: {exc}" if "\n" not in str(exc) else f"error:\n{exc}", err=True)
    sys.exit(exc.exit_code)


class SeqkitGroup(click.Group):
    """Turns SeqkitError into one message + exit code, Ctrl-C into 130, anything else into 1.

    Commands in ``LAZY_COMMANDS`` live in their own modules and are imported on first use.
    """

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(LAZY_COMMANDS))

    def get_command(self, ctx, name):
        if name in self.commands or name not in LAZY_COMMANDS:
            return super().get_command(ctx, name)
        import importlib

        module, attr = LAZY_COMMANDS[name].split(":")
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # the command's module exists but one of its imports fails
                raise
            return None
        return getattr(mod, attr)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SeqkitError as exc:
            _fail(exc)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort, SystemExit):
            raise
        except Exception as exc:  # a bug, not a user error: say so, keep the traceback on -v
            if ctx.obj and ctx.obj.get("verbose", 0) > 0:
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
    _setup_logging(ctx.obj["verbose"])


@cli.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a recipe value, e.g. --set train.epochs=3 (the key must exist).",
)
@click.option("--run-dir", type=click.Path(file_okay=False), help="Run folder to create.")
@click.option(
    "--runs-root",
    default="runs",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where run folders go when --run-dir is not given.",
)
@click.option(
    "--overwrite", is_flag=True, help="Replace an existing run folder given by --run-dir."
)
@click.option(
    "--resume",
    type=click.Path(file_okay=False, exists=True),
    help="Continue the interrupted run in this folder from its last checkpoint.",
)
@click.option(
    "--workers",
    metavar="HOST:PORT,...",
    help="multi_worker training: every worker's address, the chief (index 0) first.",
)
@click.option(
    "--worker-index", type=int, help="multi_worker training: this process's index in --workers."
)
@click.pass_context
def train(ctx, recipe, overrides, run_dir, runs_root, overwrite, resume, workers, worker_index):
    """Train RECIPE; print the run folder."""
    if (workers is None) != (worker_index is None):
        raise click.UsageError("--workers and --worker-index go together.")
    if workers is not None:
        import json as _json

        from .distribute import tf_config

        cfg = tf_config([w.strip() for w in workers.split(",")], worker_index)
        os.environ["TF_CONFIG"] = _json.dumps(cfg)
    if resume and (run_dir or overwrite):
        raise click.UsageError("--resume continues a run in place; drop --run-dir/--overwrite.")
    _import_keras(ctx)
    from .distribute import setup
    from .recipe import load_recipe
    from .train import train as run_training

    # Devices and collectives must be set up before anything touches TensorFlow, including
    # the layers that full validation builds: read the recipe without them first.
    setup(load_recipe(recipe, list(overrides), build_layers=False).train.distribute)
    r = load_recipe(recipe, list(overrides))
    verbose = ctx.obj["verbose"]
    path = run_training(
        r,
        run_dir=run_dir,
        runs_root=runs_root,
        overwrite=overwrite,
        verbose=0 if verbose < 0 else (1 if sys.stderr.isatty() else 2),
        recipe_file=recipe,
        resume=resume,
        on_run_dir=None
        if verbose < 0
        else (lambda p: click.echo(f"seqkit: run folder: {p}", err=True)),
    )
    from .train import Run

    if not (path / "run.json").is_file():  # a multi-worker helper's scratch run, now removed
        click.echo("worker finished (the chief writes the run folder)")
        return
    done = Run(path)
    for line in done.task.summary(done.metrics):
        click.echo(line)
    click.echo(f"run folder: {path}")


@cli.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="As for train.")
@click.pass_context
def validate(ctx, recipe, overrides):
    """Check RECIPE (schema, names, parameters, values) without training."""
    _import_keras(ctx)
    from .recipe import load_recipe
    from .train import check_recipe

    r = load_recipe(recipe, list(overrides))
    check_recipe(r, recipe)
    layers = ", ".join(s.type for s in r.model.layers)
    click.echo(
        f"{recipe}: valid ({r.data.source.type} -> {len(r.features)} feature steps -> "
        f"{layers} -> {r.task.type})"
    )


@cli.command(name="list")
@click.argument("kind", required=False, type=click.Choice(KINDS))
@click.pass_context
def list_(ctx, kind):
    """List registered layers, feature steps, data sources and tasks, and where each comes from.

    Plugins are imported to be checked: one that cannot be used is marked BROKEN, and why is
    said on stderr. SEQKIT_DISABLE_PLUGINS=1 lists the built-ins only.
    """
    from .registry import DISABLE_PLUGINS_ENV, REGISTRIES, plugins_disabled

    kinds = [kind] if kind else KINDS
    if plugins_disabled():
        click.echo(f"seqkit: {DISABLE_PLUGINS_ENV} is set: built-ins only", err=True)
    elif any(REGISTRIES[k].entry(n).is_plugin for k in kinds for n in REGISTRIES[k].names()):
        _import_keras(ctx)  # plugins usually import Keras: keep TensorFlow's start-up noise away
    broken = []
    for name in kinds:
        click.echo(f"{name}:")
        for row in REGISTRIES[name].describe(load_plugins=True):
            mark = "  BROKEN (see stderr)" if row["problem"] else ""
            click.echo(f"  {row['name']:18s} {row['source']:28s} {row['ref']}{mark}")
            if row["problem"]:
                broken.append(row["problem"])
    for problem in broken:
        click.echo(f"seqkit: warning: {problem}", err=True)


@cli.command()
@click.argument("run_dir", required=False, type=click.Path(file_okay=False))
@click.argument("audio", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    help="PNG to write (default: RUN_DIR/gates-<label folder>-<file>.png).",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing --out file.")
@click.option("--layer", default=None, help="Name of the GRU layer to draw (default: the first).")
@click.pass_context
def explain(ctx, run_dir, audio, out, layer, overwrite):
    """Without arguments: the documents' worked example, step by step.

    With RUN_DIR AUDIO: draw the gate activations (r, z, h~, h) of the run's GRU over the
    clip's time frames to a PNG.
    """
    _import_keras(ctx)
    from . import explain as ex

    if run_dir is None:
        click.echo(ex.worked_example_text())
        return
    if audio is None:
        raise click.UsageError("give both RUN_DIR and AUDIO, or neither.")
    if out and os.path.exists(out) and not overwrite:
        raise click.UsageError(f"'{out}' exists; pass --overwrite to replace it.")
    path = ex.plot_gates(run_dir, audio, out=out, layer_name=layer)
    click.echo(f"gate activations: {path}")


def _import_keras(ctx) -> None:
    """Import Keras (and TensorFlow) with TensorFlow's start-up log lines kept off stderr.

    TensorFlow's C++ start-up lines (absl, oneDNN) ignore TF_CPP_MIN_LOG_LEVEL, so file
    descriptor 2 is pointed at /dev/null for the import alone; ``-v`` shows them.
    """
    if "keras" in sys.modules or (ctx.obj and ctx.obj.get("verbose", 0) > 0):
        import keras  # noqa: F401

        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        import keras  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def main(argv=None):
    """Console entry point (``seqkit``)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cli.main(args=argv, prog_name="seqkit")
