"""``seqkit compare``: a recipe trained once per layer (and seed, and length), as a table.

The work is done by ``seqkit.compare``; this module parses options, prints progress on
stderr and the table on stdout.
"""

from __future__ import annotations

import click

from .common import import_keras, verbosity
from .options import FOLDER, overrides_option, recipe_argument


@click.command()
@recipe_argument()
@click.option(
    "--layers",
    default="gru,lstm,rnn",
    show_default=True,
    help="Comma-separated layer names (registry names, plugin layers included).",
)
@click.option(
    "--seeds",
    default=1,
    show_default=True,
    type=click.IntRange(1, 100),
    help="Runs per layer, with recipe seeds seed, seed+1, ...",
)
@click.option(
    "--match",
    type=click.Choice(["params", "units"]),
    default="params",
    show_default=True,
    help="params: solve each layer's units so its parameter count is within 2 % of the first "
    "layer's; units: keep the recipe's units.",
)
@click.option(
    "--lengths",
    default=None,
    metavar="T1,T2,...",
    help="Also sweep data.source.length (generated sequence sources: adding_problem, "
    "copy_memory) and report where each layer stops learning.",
)
@click.option(
    "--gradients",
    is_flag=True,
    help="Also measure ||dL/dh_t|| against t (at initialisation and trained): gradients.png.",
)
@click.option(
    "--out",
    type=FOLDER,
    default=None,
    help="Folder for the tables, plots and run folders; must not exist or be empty "
    "(default runs/compare-<name>-<time>).",
)
@overrides_option(help="As for train.")
@click.option(
    "--budget-minutes",
    type=float,
    default=30.0,
    show_default=True,
    help="Refuse (before training) a comparison estimated to take longer, unless --yes.",
)
@click.option("--yes", is_flag=True, help="Run even when the estimate is above --budget-minutes.")
@click.pass_context
def compare(ctx, recipe, layers, seeds, match, lengths, gradients, out, overrides,
            budget_minutes, yes):  # fmt: skip
    """Train RECIPE once per layer (and seed, and length) and measure: parameters, training
    time per epoch, inference time per sequence, peak memory, best validation and test metric.

    Writes OUT/compare.md, compare.csv, runs.csv, curves.png (and with --lengths sweep.md,
    sweep.png; with --gradients gradients.png) and one run folder per run in OUT/runs/.
    Unknown or unmatchable layers and an estimated time above --budget-minutes are refused
    before anything is trained (exit 2).
    """
    import_keras(ctx)
    # Plans and trains models: Keras/TensorFlow (~3 s), not loaded for --help.
    from .. import compare as cmp

    verbose = verbosity(ctx)

    def say(msg: str) -> None:
        if verbose >= 0:
            click.echo(f"seqkit: {msg}", err=True)

    plan = cmp.plan_compare(
        recipe,
        layers,
        overrides=overrides,
        seeds=seeds,
        match=match,
        lengths=lengths,
        out=out,
        yes=yes,
        budget_minutes=budget_minutes,
        command=_command(ctx),
        progress=say,
    )
    for c in plan.candidates:
        say(f"{c.name}: {'/'.join(map(str, c.units))} units, {c.params:,} trainable parameters")
    say(
        f"{plan.runs} runs, estimated {cmp.format_seconds(plan.estimate_seconds)}; "
        f"writing {plan.out}"
    )
    cmp.run_plan(plan, gradients=gradients, progress=say)
    click.echo((plan.out / "compare.md").read_text().rstrip())
    click.echo(f"\ncompare folder: {plan.out}")


def _command(ctx) -> str:
    """The command that regenerates this comparison (options at their defaults left out)."""
    import shlex  # not at the top: every seqkit command imports this module

    p = ctx.params
    words = ["seqkit", "compare", p["recipe"], "--layers", p["layers"]]
    for opt, key in (("--seeds", "seeds"), ("--match", "match"), ("--lengths", "lengths")):
        param = next(x for x in ctx.command.params if x.name == key)
        if p[key] is not None and p[key] != param.default:
            words += [opt, str(p[key])]
    if p["gradients"]:
        words.append("--gradients")
    for item in p["overrides"]:
        words += ["--set", item]
    return " ".join(shlex.quote(w) for w in words)
