"""``seqkit list`` (what is registered, and where from) and ``seqkit explain`` (the worked
example; a run's GRU gates over a clip)."""

from __future__ import annotations

import os

import click

from .common import import_keras
from .options import EXISTING_FILE, FILE, overwrite_option, run_dir_argument

KINDS = ("layers", "features", "sources", "tasks", "augmentations")


@click.command(name="list")
@click.argument("kind", required=False, type=click.Choice(KINDS))
@click.pass_context
def list_(ctx, kind):
    """List registered layers, feature steps, data sources and tasks, and where each comes from.

    Plugins are imported to be checked: one that cannot be used is marked BROKEN, and why is
    said on stderr. SEQKIT_DISABLE_PLUGINS=1 lists the built-ins only.
    """
    from ..registry import DISABLE_PLUGINS_ENV, REGISTRIES, plugins_disabled

    kinds = [kind] if kind else KINDS
    if plugins_disabled():
        click.echo(f"seqkit: {DISABLE_PLUGINS_ENV} is set: built-ins only", err=True)
    elif any(REGISTRIES[k].entry(n).is_plugin for k in kinds for n in REGISTRIES[k].names()):
        import_keras(ctx)  # plugins usually import Keras: keep TensorFlow's start-up noise away
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


@click.command()
@run_dir_argument(required=False)
@click.argument("audio", required=False, type=EXISTING_FILE)
@click.option(
    "--out",
    type=FILE,
    help="PNG to write (default: RUN_DIR/gates-<label folder>-<file>.png).",
)
@overwrite_option("Replace an existing --out file.")
@click.option("--layer", default=None, help="Name of the GRU layer to draw (default: the first).")
@click.pass_context
def explain(ctx, run_dir, audio, out, overwrite, layer):
    """Without arguments: the documents' worked example, step by step.

    With RUN_DIR AUDIO: draw the gate activations (r, z, h~, h) of the run's GRU over the
    clip's time frames to a PNG.
    """
    import_keras(ctx)
    # The worked example and the gate plots: Keras/TensorFlow (~3 s), not loaded for --help.
    from .. import explain as ex

    if run_dir is None:
        click.echo(ex.worked_example_text())
        return
    if audio is None:
        raise click.UsageError("give both RUN_DIR and AUDIO, or neither.")
    if out and os.path.exists(out) and not overwrite:
        raise click.UsageError(f"'{out}' exists; pass --overwrite to replace it.")
    path = ex.plot_gates(run_dir, audio, out=out, layer_name=layer)
    click.echo(f"gate activations: {path}")
