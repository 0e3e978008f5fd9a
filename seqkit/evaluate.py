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
from importlib.metadata import version
from pathlib import Path

from .errors import ParameterError, RunError
from .runs import Run

PNG_SOFTWARE = "seqkit"


def _software(path: Path) -> str:
    """The PNG ``Software`` text of ``path`` ('' when it has none or is not a PNG)."""
    try:
        from PIL import Image  # Pillow: only to read a PNG's text chunk

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

    run = Run(run_dir)
    png = png_path(run.path, split)
    task = run.task
    if hasattr(task, "confusion_figure"):
        _check_png(png)  # before any work: never end a long evaluation by refusing to write
    data = run.load_data()
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
        import tensorflow as tf  # optional: TensorFlow is one Keras backend of three
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


