"""``seqkit evaluate RUN [--split test] [--json]``: evaluate a run's best model on one split.

Reads the run folder (recipe, model) and the recipe's data (through the feature cache, so a
second look costs seconds), then reports what the task measures -- for ``kws``: accuracy,
per-class precision / recall / F1, the confusion matrix and the misclassified files -- and
records it:

* ``metrics.json``: the split's entry is replaced by the new report (every other key is kept),
  and ``evaluations.<split>`` says when and from which files;
* ``RUN/confusion-<split>.png``: the confusion matrix. A file of that name that seqkit did not
  write (its PNG ``Software`` text is not seqkit's) is never replaced: the command stops first;
* ``RUN/logs/evaluation``: the same image for TensorBoard, tag ``confusion_matrix/<split>``,
  at the step of the best epoch.

On the same data, the numbers are those ``seqkit train`` wrote for that split.

``evaluate_run`` is the library function (raises ``SeqkitError``); ``evaluate`` the command.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path

import click

from .errors import ParameterError, RunError

PNG_SOFTWARE = "seqkit"


def _software(path: Path) -> str:
    """The PNG ``Software`` text of ``path`` ('' when it has none or is not a PNG)."""
    try:
        from PIL import Image

        with Image.open(path) as im:
            return str(getattr(im, "text", {}).get("Software", ""))
    except Exception:
        return ""


def png_path(run_dir, split: str) -> Path:
    return Path(run_dir) / f"confusion-{split}.png"


def _check_png(path: Path) -> None:
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise RunError(f"'{path}' is not a regular file; seqkit will not replace it. Move it away.")
    if path.exists() and not _software(path).startswith(PNG_SOFTWARE):
        raise RunError(
            f"'{path}' exists and was not written by seqkit; it is not replaced. Move or rename "
            "it, then run seqkit evaluate again."
        )


def _write_json(path: Path, data) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def evaluate_run(run_dir, split: str = "test") -> tuple[dict, dict]:
    """Evaluate RUN's best model on ``split``; write metrics.json, the PNG and the TensorBoard
    image. Returns ``(report, written)``, ``written`` naming the files (``metrics``, ``png``,
    ``tensorboard``)."""
    from importlib.metadata import version

    from .train import Run

    run = Run(run_dir)
    png = png_path(run.path, split)
    task = run.task
    if hasattr(task, "confusion_figure"):
        _check_png(png)  # before any work: never end a long evaluation by refusing to write
    data = task.load_data(run.recipe)
    if split not in data.splits:
        raise ParameterError(
            f"--split {split!r}: the run's data has no such split; available: "
            f"{', '.join(data.splits)}."
        )
    report = task.evaluate(run.model, data, split)
    metrics = run.metrics
    written = {"metrics": run.path / "metrics.json"}
    labels = data.info.get("labels")
    if "confusion_matrix" in report and labels and hasattr(task, "confusion_figure"):
        title = f"{run.path.name}: {split} ({report.get('examples', '?')} clips)"
        fig = task.confusion_figure(report["confusion_matrix"], labels, title)
        tmp = png.with_name(f".{png.name}.tmp-{os.getpid()}.png")
        fig.savefig(tmp, format="png", metadata={"Software": f"{PNG_SOFTWARE} {version('seqkit')}"})
        os.replace(tmp, png)
        written["png"] = png
        logdir = _tensorboard_image(run.path, split, task.figure_pixels(fig),
                                    step=int(metrics.get("best_epoch", 0)))  # fmt: skip
        if logdir is not None:
            written["tensorboard"] = logdir
    metrics[split] = report
    metrics.setdefault("evaluations", {})[split] = {
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "png": png.name if "png" in written else None,
        "feature_cache": data.info.get("feature_cache"),
    }
    _write_json(run.path / "metrics.json", metrics)
    return report, written


def _tensorboard_image(run_path: Path, split: str, pixels, step: int):
    try:
        import tensorflow as tf
    except ImportError:
        return None
    logdir = run_path / "logs" / "evaluation"
    writer = tf.summary.create_file_writer(str(logdir))
    with writer.as_default():
        tf.summary.image(f"confusion_matrix/{split}", pixels[None], step=step)
    writer.flush()
    writer.close()
    return logdir


# -- the command ---------------------------------------------------------------------------------


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
    return lines


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option(
    "--split", default="test", show_default=True, help="Split to evaluate: train, validation, test."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@click.option(
    "--show",
    default=20,
    show_default=True,
    type=click.IntRange(min=-1),
    help="Misclassified files to list (-1: all).",
)
@click.pass_context
def evaluate(ctx, run_dir, split, as_json, show):
    """Evaluate RUN_DIR's best model on a split; update metrics.json, write
    RUN_DIR/confusion-SPLIT.png and a TensorBoard image (RUN_DIR/logs/evaluation)."""
    from .cli import _import_keras

    _import_keras(ctx)
    report, written = evaluate_run(run_dir, split)
    if as_json:
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
                f"  {m['path']}  true {m['label']}, predicted {m['predicted']} ({m['score']:.2f})"
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
    click.echo(f"metrics: {written['metrics']}")
