"""``seqkit crossval``: a recipe cross-validated over speaker-disjoint folds, as a table.

The work is done by ``seqkit.crossval``; this module parses options, prints the plan and
progress on stderr and the table on stdout.
"""

from __future__ import annotations

import click

from .common import import_keras, verbosity
from .options import FOLDER, overrides_option, recipe_argument


@click.command()
@recipe_argument()
@click.option("--by", type=click.Choice(["speaker"]), default="speaker", show_default=True,
              help="What each fold holds out whole.")  # fmt: skip
@click.option("--folds", default="5", show_default=True, metavar="K|all",
              help="Number of folds, or 'all' for one speaker per fold (leave-one-speaker-out).")  # fmt: skip
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0),
              help="Shuffles the speakers before they are dealt into folds.")  # fmt: skip
@click.option(
    "--out",
    type=FOLDER,
    default=None,
    help="Folder for the table and one run folder per fold (default "
    "runs/crossval-<name>-<time>); an earlier crossval folder is continued.",
)
@overrides_option(help="As for train.")
@click.option("--budget-minutes", type=float, default=60.0, show_default=True,
              help="Refuse (before training) a cross-validation estimated to take longer, unless --yes.")  # fmt: skip
@click.option("--yes", is_flag=True, help="Run even when the estimate is above --budget-minutes.")
@click.pass_context
def crossval(ctx, recipe, by, folds, seed, out, overrides, budget_minutes, yes):
    """Cross-validate RECIPE with whole speakers held out: will it work for the next person?

    Trains one run per fold (a process each; OUT/fold-<i>) and writes OUT/crossval.md,
    crossval.csv and crossval.json: test accuracy per fold and its mean +- std. Running the same
    command again keeps completed folds and resumes an interrupted one. A fold count the data
    cannot make, or an estimate above --budget-minutes, is refused before anything trains.
    """
    import_keras(ctx)
    # Times a training step before planning: Keras/TensorFlow (~3 s), not loaded for --help.
    from .. import crossval as cv

    quiet = verbosity(ctx) < 0

    def say(msg: str) -> None:
        if not quiet:
            click.echo(f"seqkit: {msg}", err=True)

    plan = cv.plan_crossval(recipe, folds=folds, by=by, out=out, overrides=overrides, seed=seed,
                            budget_minutes=budget_minutes, yes=yes, progress=say)  # fmt: skip
    say(f"{plan.k} folds, estimated {plan.estimate_seconds / 60:.1f} minutes; writing {plan.out}")
    cv.run_crossval(plan, progress=say)
    click.echo((plan.out / "crossval.md").read_text().rstrip())
    click.echo(f"\ncrossval folder: {plan.out}")
