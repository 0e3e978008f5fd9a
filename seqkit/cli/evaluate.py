"""``seqkit evaluate``: a run's best model on a split, as a report (the work is
``seqkit.evaluate.evaluate_run``; this module formats its report)."""

from __future__ import annotations

import click

from .common import import_keras
from .options import json_option, model_argument


def _table(report: dict) -> list[str]:
    lines = []
    per_class = report.get("per_class") or {}
    if per_class:
        width = max(8, *(len(n) for n in per_class))
        lines.append(f"{'label':<{width}}  precision  recall     f1  support")
        for name, m in per_class.items():
            lines.append(
                f"{name:<{width}}  {m['precision']:9.4f}  {m['recall']:6.4f}  {m['f1']:5.4f}  "
                f"{m['support']:7d}"
            )
    cm = report.get("confusion_matrix")
    if cm and per_class:
        names = list(per_class)
        cell = max(5, *(len(str(v)) for row in cm for v in row))
        width = max(8, *(len(n) for n in names))
        lines.append("")
        lines.append("confusion matrix (rows: true label, columns: predicted):")
        lines.append(" " * width + "  " + " ".join(f"{n[:cell]:>{cell}}" for n in names))
        for name, row in zip(names, cm):
            lines.append(f"{name:<{width}}  " + " ".join(f"{v:>{cell}d}" for v in row))
    speakers = report.get("speakers")
    if speakers:
        lines.append("")
        lines.append(
            f"per speaker ({speakers['speakers']} speakers): accuracy mean {speakers['mean']:.4f}, "
            f"std {speakers['std']:.4f}, min {speakers['min']:.4f}"
        )
        worst = ", ".join(
            f"{w['speaker']} {w['accuracy']:.4f} ({w['examples']})" for w in speakers["worst_speakers"]
        )
        lines.append(f"worst speakers (accuracy, clips): {worst}")
    return lines


@click.command()
@model_argument()
@click.option(
    "--split", default="test", show_default=True, help="Split to evaluate: train, validation, test."
)
@click.option(
    "--data",
    metavar="SOURCE",
    default=None,
    help="Evaluate on other data: a YAML file holding a data source, or one inline, e.g. "
    "'{type: speech_commands, root: path/to/words}'. The report goes to RUN/evaluations/.",
)
@click.option(
    "--label-map",
    metavar="MAP",
    default=None,
    help="With --data: source labels -> model labels, 'zero=0,one=1' or a YAML file of them.",
)
@click.option("--name", default=None, help="With --data: the report's name (default from the source).")
@json_option("Print the report as JSON on stdout.")
@click.option(
    "--show",
    default=20,
    show_default=True,
    type=click.IntRange(min=-1),
    help="Misclassified files to list (-1: all).",
)
@click.pass_context
def evaluate(ctx, run_dir, split, data, label_map, name, as_json, show):
    """Evaluate a run's best model on a split; update metrics.json, write
    RUN/confusion-SPLIT.png and a TensorBoard image (RUN/logs/evaluation).

    With --data, evaluate a run folder or an export on other data instead (labels matched by
    name, --label-map, words the model does not know counted as _unknown_ when it has that
    class); the report (accuracy, per-class P/R/F1, per speaker, confusion PNG, misclassified
    files) goes to RUN/evaluations/NAME.json, or beside an export in EXPORT.evaluations/.
    """
    import_keras(ctx)
    # Reads the run's model: Keras/TensorFlow (~3 s), not loaded for --help.
    from ..evaluate import evaluate_data, evaluate_run, parse_label_map

    if data is None and (label_map or name):
        raise click.UsageError("--label-map and --name go with --data.")
    if data is not None:
        report, written = evaluate_data(run_dir, data, parse_label_map(label_map), name)
        split = written["report"].stem
    else:
        report, written = evaluate_run(run_dir, split)
    if as_json:
        import json  # not at the top: every seqkit command imports this module

        click.echo(json.dumps(report, indent=2))
        return
    if "accuracy" in report:
        head = f"{split}: accuracy {report['accuracy']:.4f}"
        if "examples" in report:
            head += f" ({report['examples']} clips)"
        if "loss" in report:
            head += f", loss {report['loss']:.4f}"
        click.echo(head)
    else:
        for key, value in report.items():
            if isinstance(value, (int, float, str)):
                click.echo(f"{split} {key}: {value}")
    for line in _table(report):
        click.echo(line)
    wrong = report.get("misclassified")
    if wrong is not None:
        total = report.get("examples", "?")
        click.echo("")
        click.echo(f"misclassified: {len(wrong)} of {total}")
        for m in wrong if show < 0 else wrong[:show]:
            click.echo(
                f"  {m['path']}  true {m['label']}, predicted {m['predicted']}"
                + (f" ({m['score']:.2f})" if "score" in m else "")
            )
        if 0 <= show < len(wrong):
            click.echo(
                f"  ... {len(wrong) - show} more (--show -1 lists all; also in metrics.json)"
            )
    click.echo("")
    if "png" in written:
        click.echo(f"confusion matrix: {written['png']}")
    if "tensorboard" in written:
        click.echo(f"tensorboard: {written['tensorboard']}")
    if "metrics" in written:
        click.echo(f"metrics: {written['metrics']}")
    if "report" in written:
        click.echo(f"report: {written['report']}")
