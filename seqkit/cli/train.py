"""``seqkit train`` (a recipe into a run folder) and ``seqkit validate`` (check a recipe)."""

from __future__ import annotations

import os

import click

from .common import import_keras, verbosity
from .options import EXISTING_FOLDER, FOLDER, overrides_option, overwrite_option, recipe_argument


@click.command()
@recipe_argument()
@overrides_option()
@click.option("--run-dir", type=FOLDER, help="Run folder to create.")
@click.option(
    "--runs-root",
    default="runs",
    show_default=True,
    type=FOLDER,
    help="Where run folders go when --run-dir is not given.",
)
@overwrite_option("Replace an existing run folder given by --run-dir.")
@click.option(
    "--resume",
    type=EXISTING_FOLDER,
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
        import json

        # seqkit.training: Keras/TensorFlow (~3 s), needed from here on anyway.
        from ..training.distribute import tf_config

        cfg = tf_config([w.strip() for w in workers.split(",")], worker_index)
        os.environ["TF_CONFIG"] = json.dumps(cfg)
    if resume and (run_dir or overwrite):
        raise click.UsageError("--resume continues a run in place; drop --run-dir/--overwrite.")
    import_keras(ctx)
    # The recipe schema (pydantic, ~0.2 s) and the trainer (Keras/TensorFlow, ~3 s): not
    # loaded for --help.
    from ..recipe import load_recipe
    from ..training.distribute import setup
    from ..training.trainer import train_run

    # Devices and collectives must be set up before anything touches TensorFlow: the recipe
    # is read (once) without building its layers, which seqkit.build then builds and checks.
    r = load_recipe(recipe, list(overrides), build_layers=False)
    setup(r.train.distribute)
    quiet = verbosity(ctx) < 0
    done = train_run(
        r,
        run_dir=run_dir,
        runs_root=runs_root,
        overwrite=overwrite,
        verbose=0 if quiet else 1,  # epochs reported to seqkit.progress, drawn by the group
        recipe_file=recipe,
        resume=resume,
        on_run_dir=None if quiet else (lambda p: click.echo(f"seqkit: run folder: {p}", err=True)),
    )
    if not (done.path / "run.json").is_file():  # a multi-worker helper's scratch run, removed
        click.echo("worker finished (the chief writes the run folder)")
        return
    for line in done.task.summary(done.metrics):
        click.echo(line)
    click.echo(f"run folder: {done.path}")


@click.command()
@recipe_argument()
@overrides_option(help="As for train.")
@click.pass_context
def validate(ctx, recipe, overrides):
    """Check RECIPE (schema, names, parameters, values) without training."""
    import_keras(ctx)
    # Full validation builds the layers: Keras/TensorFlow (~3 s), not loaded for --help.
    from ..build import check_recipe
    from ..recipe import load_recipe

    r = load_recipe(recipe, list(overrides))
    check_recipe(r, recipe)
    layers = ", ".join(s.type for s in r.model.layers)
    click.echo(
        f"{recipe}: valid ({r.data.source.type} -> {len(r.features)} feature steps -> "
        f"{layers} -> {r.task.type})"
    )
