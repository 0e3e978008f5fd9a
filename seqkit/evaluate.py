"""``seqkit evaluate RUN [--split test] [--json]``: evaluate a run's best model on one split.

Reads the run folder (recipe, model) and the recipe's data (through the feature cache, so a
second look costs seconds), then reports what the task measures -- for ``kws``: accuracy,
per-class precision / recall / F1, the confusion matrix and the misclassified files -- and
records it:

* ``metrics.json``: the split's entry is replaced by the new report (every other key is kept),
  and ``evaluations.<split>`` says when and from which files; its new SHA-256 (and the PNG's)
  is recorded in run.json (``seqkit.runs.write_run_file``), so the run stays checkable;
* ``RUN/confusion-<split>.png``: the confusion matrix. A file of that name that seqkit did not
  write (its PNG ``Software`` text is not seqkit's) is never replaced: the command stops first;
* ``RUN/logs/evaluation``: the same image for TensorBoard, tag ``confusion_matrix/<split>``,
  at the step of the best epoch.

On the same data, the numbers are those ``seqkit train`` wrote for that split.

``evaluate_data`` evaluates a run folder or an export on *other* data (``seqkit evaluate RUN
--data SOURCE``): any registered source, its labels matched to the model's by name (or
``--label-map``), words the model does not know counted as ``_unknown_`` when it has that class
(else refused, listing them); the report goes to a file of its own, ``RUN/evaluations/``.

``evaluate_run`` / ``evaluate_data`` are the library functions (raise ``SeqkitError``);
``seqkit.cli.evaluate`` the command.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
from importlib.metadata import version
from pathlib import Path

import numpy as np

from .data import speaker_accuracy
from .errors import DataError, ParameterError, RunError, SeqkitError
from .inference import load_for_inference, predict_features
from .recipe import MIXED_SOURCE, Step, check_step, construct
from .registry import SOURCES
from .runs import Run, write_json_atomic, write_run_file
from .safe_yaml import parse_yaml, read_yaml
from .speech.sources.common import UNKNOWN_LABEL
from .speech.task import KeywordSpotting, classification_report

log = logging.getLogger("seqkit")

PNG_SOFTWARE = "seqkit"


def _software(path: Path) -> str:
    """The PNG ``Software`` text of ``path`` ('' when it has none or is not a PNG)."""
    try:
        from PIL import Image  # Pillow: only to read a PNG's text chunk

        with Image.open(path) as im:
            return str(getattr(im, "text", {}).get("Software", ""))
    except Exception:
        return ""


def _png_writer(fig):
    """``write(path)``: the figure as a PNG whose ``Software`` text marks it as seqkit's (so a
    later evaluate may replace it, and nothing else; ``_check_png``)."""
    meta = {"Software": f"{PNG_SOFTWARE} {version('seqkit')}"}
    return lambda path: fig.savefig(path, format="png", metadata=meta)


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
        write_run_file(run.path, png.name, _png_writer(fig))
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
    write_run_file(run.path, "metrics.json", json.dumps(metrics, indent=2) + "\n")
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


# -- other data ------------------------------------------------------------------------------------


def parse_label_map(text) -> dict[str, str]:
    """``--label-map``: ``zero=0,one=1`` or a YAML file of ``source label: model label``."""
    if text is None:
        return {}
    path = Path(str(text))
    if path.suffix in (".yaml", ".yml", ".json") or path.is_file():
        doc = read_yaml(path)
        if not isinstance(doc, dict) or not all(isinstance(k, (str, int)) for k in doc):
            raise ParameterError(f"--label-map {path}: expected a mapping of source label: model label.")
        return {str(k): str(v) for k, v in doc.items()}
    out = {}
    for item in str(text).split(","):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ParameterError(
                f"--label-map: expected SOURCE=MODEL pairs separated by commas (zero=0,one=1); "
                f"received {item!r}."
            )
        out[key.strip()] = value.strip()
    return out


def data_source(spec):
    """``--data``: a YAML file holding a source step, or an inline step ``{type: ..., ...}``;
    the source object, built and checked like a recipe's ``data.source``."""
    path = Path(str(spec))
    doc = read_yaml(path) if path.is_file() else parse_yaml(str(spec))
    if isinstance(doc, dict) and isinstance(doc.get("source"), dict):
        doc = doc["source"]  # a recipe-like file: {source: {...}} or a recipe's data section
    if isinstance(doc, dict) and isinstance(doc.get("data"), dict):
        doc = doc["data"]  # a recipe: its data section
    if isinstance(doc, dict) and "type" not in doc:
        if isinstance(doc.get("source"), dict):
            doc = doc["source"]
        elif isinstance(doc.get("sources"), list):  # several sources, mixed (data.sources)
            doc = {"type": MIXED_SOURCE, "sources": doc["sources"]}
    if not isinstance(doc, dict) or not isinstance(doc.get("type"), str):
        raise ParameterError(
            f"--data {spec}: expected a data source step such as "
            "'{type: speech_commands, root: path/to/data}' (or a YAML file holding one)."
        )
    step = Step.model_validate(doc)
    problems = check_step(SOURCES, step, "--data", build=False)
    source, more = construct(SOURCES, step, "--data") if not problems else (None, [])
    problems += more
    if problems:
        raise ParameterError("; ".join(f"{p}: {m}" for p, m in problems))
    return step.type, source


def map_labels(source_labels, model_labels, label_map) -> dict[str, str]:
    """Each source label -> the model label it is scored as: ``label_map`` first, then the
    same name, then ``_unknown_`` when the model has that class; ParameterError naming the
    labels that cannot be matched, or a mapping to a label the model does not have."""
    model = list(model_labels)
    wrong = sorted({v for v in label_map.values() if v not in model})
    if wrong:
        raise ParameterError(
            f"--label-map maps to {', '.join(repr(w) for w in wrong)}, which the model does not "
            f"have; its labels: {', '.join(model)}."
        )
    out, unmatched = {}, []
    for label in source_labels:
        if label in label_map:
            out[label] = label_map[label]
        elif label in model:
            out[label] = label
        elif UNKNOWN_LABEL in model:
            out[label] = UNKNOWN_LABEL
        else:
            unmatched.append(label)
    if unmatched:
        raise ParameterError(
            f"The model has no label for {', '.join(repr(u) for u in sorted(unmatched))} and no "
            f"'{UNKNOWN_LABEL}' class to count them in; map them with --label-map (e.g. "
            f"{sorted(unmatched)[0]}={model[0]}) or leave those words out of --data. The "
            f"model's labels: {', '.join(model)}."
        )
    return out


def evaluate_data(target, spec, label_map=None, name: str | None = None) -> tuple[dict, dict]:
    """Evaluate a trained model (a run folder or an export) on another data source: every
    example of ``spec`` (all its splits), labels matched by name (``map_labels``). The report
    -- accuracy, per-class P/R/F1, the confusion matrix, per speaker, misclassified files --
    goes to a file of its own: ``RUN/evaluations/<name>.json`` (and ``<name>-confusion.png``),
    or beside an export, ``<export>.evaluations/``. Returns ``(report, written)``."""
    model = load_for_inference(target)
    if not model.labels:
        raise RunError(f"'{target}' has no labels (not a keyword-spotting model).")
    source_type, source = data_source(spec)
    examples = source.examples()
    mapping = map_labels(sorted({ex.label for ex in examples}), model.labels, label_map or {})
    feats, kept, skipped = [], [], []
    for ex in examples:
        try:
            feats.append(model.features(ex))
            kept.append(ex)
        except SeqkitError as exc:  # unreadable, too short: skipped and counted, as in training
            log.warning("Skipping %s: %s", ex.key, exc)
            skipped.append({"file": ex.key, "error": str(exc)})
    if not kept:
        raise DataError(f"--data {spec}: none of its {len(examples)} clips could be read.")
    index = {label: i for i, label in enumerate(model.labels)}
    y = np.array([index[mapping[ex.label]] for ex in kept])
    pred = predict_features(model, feats).argmax(axis=1)
    present = sorted(set(y.tolist()) | set(pred.tolist()))
    labels = [model.labels[i] for i in present]
    remap = {i: j for j, i in enumerate(present)}
    report = classification_report(np.array([remap[v] for v in y]), np.array([remap[v] for v in pred]), labels)
    speakers = speaker_accuracy(kept, pred == y)
    if speakers:
        report["speakers"] = speakers
    report["misclassified"] = [
        {"path": str(ex.path), "label": model.labels[t], "predicted": model.labels[g],
         "source_label": ex.label}
        for ex, t, g in zip(kept, y.tolist(), pred.tolist()) if t != g
    ]  # fmt: skip
    report["skipped"] = skipped
    report["data"] = {"source": source_type, "spec": str(spec), "label_map": mapping,
                      "date": _dt.datetime.now().isoformat(timespec="seconds")}  # fmt: skip
    target = Path(target)
    folder = target / "evaluations" if target.is_dir() and (target / "run.json").is_file() else \
        target.with_name(target.name + ".evaluations")  # fmt: skip
    folder.mkdir(exist_ok=True)
    name = name or f"{source_type}-{hashlib.sha1(str(spec).encode()).hexdigest()[:8]}"
    written = {"report": folder / f"{name}.json", "png": folder / f"{name}-confusion.png"}
    _check_png(written["png"])
    fig = KeywordSpotting.confusion_figure(report["confusion_matrix"], labels,
                                           f"{target.name} on {name} ({len(kept)} clips)")  # fmt: skip
    tmp = written["png"].with_name(f".{written['png'].name}.tmp-{os.getpid()}.png")
    _png_writer(fig)(tmp)
    os.replace(tmp, written["png"])
    write_json_atomic(written["report"], report)
    return report, written
