"""Speaker-grouped cross-validation (``seqkit crossval RECIPE --by speaker --folds K``).

What a user with a small real dataset needs to know: will the model work for the *next*
person? Each fold holds out whole speakers: the recipe's speakers (``seqkit.data.speaker_of``:
Speech Commands' ``<speaker>_nohash_`` names, ``filename_pattern``'s speaker group, synthetic
speakers; with a ``mixed`` source, those of the sources that feed all three splits, while
train-only synthetic speakers stay in training) are shuffled by ``--seed`` and dealt into K
groups (``--folds all``: one speaker per fold, leave-one-speaker-out); fold i tests on group
i, validates on a few of the other speakers and trains on the rest (``data.folds`` in the recipe, ``seqkit.data.fold_split``).

* **Plan first**: the speakers are counted and one training step is timed on the recipe's
  data before anything trains; an estimate above ``--budget-minutes`` is refused unless told.
* **One process per fold** (``python -m seqkit train``), each in its own run folder
  ``OUT/fold-<i>``: a completed fold is kept, an interrupted one resumed
  (``--resume``), so running the same command again continues where it stopped.
* **The table**: per fold its held-out speakers, test accuracy and clips; the mean and
  standard deviation over folds; written as ``crossval.md``, ``crossval.csv`` and
  ``crossval.json`` in OUT.
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .build import build, make_source
from .data import fold_speakers, fold_split, speaker_of
from .errors import ParameterError, RunError
from .recipe import Recipe, load_recipe, validate_dict
from .runs import RUN_MARKER, read_run_info, refuse_inside_data
from .training.timing import time_steps

REPORT_FILES = ("crossval.md", "crossval.csv", "crossval.json", "recipe.yaml")


@dataclass
class Fold:
    index: int
    test_speakers: list[str]
    run_dir: Path
    recipe_doc: dict


@dataclass
class CrossvalPlan:
    recipe_file: str
    out: Path
    k: int
    speakers: int
    folds: list[Fold] = field(default_factory=list)
    estimate_seconds: float = 0.0
    overrides: list[str] = field(default_factory=list)


def _check_out(out: Path) -> None:
    """OUT is new, empty, or a crossval folder of ours (continued)."""
    if not out.exists():
        return
    if not out.is_dir():
        raise RunError(f"'{out}' exists and is not a folder; choose another --out.")
    ours = set(REPORT_FILES) | {p.name for p in out.glob("fold-*")}
    foreign = sorted(p.name for p in out.iterdir() if p.name not in ours)
    if foreign:
        raise RunError(
            f"'{out}' holds files seqkit crossval did not write ({', '.join(foreign[:5])}); "
            "choose another --out (an earlier crossval folder is continued, nothing else)."
        )


def plan_crossval(recipe_file, folds="5", by: str = "speaker", out=None, overrides=(),
                  seed: int = 0, budget_minutes: float = 60.0, yes: bool = False,
                  progress=None) -> CrossvalPlan:  # fmt: skip
    """Check the recipe, count its speakers, time one training step, and plan the folds;
    ParameterError for a fold count or a budget that does not fit (nothing is trained)."""
    say = progress or (lambda msg: None)
    if by != "speaker":
        raise ParameterError(f"--by must be 'speaker'; received {by!r}.")
    recipe = load_recipe(recipe_file, list(overrides), build_layers=False)
    if recipe.data.folds is not None:
        raise ParameterError(
            f"{recipe_file}: data.folds is set already; crossval writes it per fold. Remove it."
        )
    examples = make_source(recipe).examples()
    # the speakers dealt into folds: a mixed source's clips whose split the recipe fixed
    # (train-only synthetic speech) stay where they are (seqkit.data.fold_split)
    speakers = fold_speakers(examples)
    if folds == "all":
        k = len(speakers)
    else:
        try:
            k = int(folds)
        except ValueError:
            raise ParameterError(f"--folds must be a number or 'all'; received {folds!r}.") from None
    if k < 2 or k > len(speakers):
        raise ParameterError(
            f"--folds {folds}: the data has {len(speakers)} speakers; use 2 to {len(speakers)} "
            "folds (or 'all': one speaker per fold)."
        )
    name = recipe.name
    out = Path(out) if out else Path("runs") / f"crossval-{name}-{_dt.datetime.now():%Y%m%d-%H%M%S}"
    _check_out(out)
    refuse_inside_data(out, recipe)
    base = recipe.to_dict()
    plan = CrossvalPlan(str(recipe_file), out, k, len(speakers), overrides=list(overrides))
    for i in range(k):
        spec = {"by": "speaker", "k": k, "fold": i, "seed": seed}
        doc = json.loads(json.dumps(base))
        doc["data"]["folds"] = spec
        doc["name"] = f"{name}-fold{i}"[:64]
        held = sorted({speaker_of(ex) for ex in fold_split(examples, spec)
                       if ex.split == "test" and speaker_of(ex) is not None
                       and not ex.keep_split})  # fmt: skip
        plan.folds.append(Fold(i, held, out / f"fold-{i}", doc))
    # one training step, timed on fold 0's data (its features are then cached for every fold)
    say(f"{len(speakers)} speakers, {k} folds; timing one training step ...")
    probe = build(load_recipe_doc(plan.folds[0].recipe_doc, recipe_file))
    data = probe.load_data()
    _, step, steps = time_steps(probe.recipe, probe.task, data)
    per_fold = recipe.train.epochs * steps * step * 1.15 + 20.0  # + validation, start-up
    plan.estimate_seconds = k * per_fold
    if plan.estimate_seconds > budget_minutes * 60 and not yes:
        raise ParameterError(
            f"The cross-validation is estimated at {plan.estimate_seconds / 60:.1f} minutes "
            f"({k} folds x {recipe.train.epochs} epochs x {steps} steps x {step * 1000:.0f} ms); "
            f"above --budget-minutes {budget_minutes:g}. Use fewer --folds, fewer epochs "
            "(--set train.epochs=N), or pass --yes."
        )
    return plan


def load_recipe_doc(doc: dict, file) -> Recipe:
    """A fold's recipe (a dict) validated as if read from ``file``."""
    return validate_dict(doc, file=str(file), build_layers=False)


def _status(run_dir: Path) -> str:
    try:
        return read_run_info(run_dir).get("status", "?")
    except (OSError, ValueError, RunError):  # none yet, or damaged: trained again
        return "missing"


def run_crossval(plan: CrossvalPlan, progress=None) -> dict:
    """Train every fold not completed yet (one process each), then write the report."""
    say = progress or (lambda msg: None)
    plan.out.mkdir(parents=True, exist_ok=True)
    for fold in plan.folds:
        recipe_path = plan.out / f"fold-{fold.index}.recipe.yaml"
        status = _status(fold.run_dir)
        if status == "completed":
            say(f"fold {fold.index + 1}/{plan.k}: completed earlier, kept")
            continue
        recipe_path.write_text(yaml.safe_dump(fold.recipe_doc, sort_keys=False))
        cmd = [sys.executable, "-m", "seqkit", "-q", "train", str(recipe_path)]
        if (fold.run_dir / RUN_MARKER).is_file() and (fold.run_dir / "checkpoint").is_dir():
            cmd += ["--resume", str(fold.run_dir)]
            say(f"fold {fold.index + 1}/{plan.k}: resuming {fold.run_dir}")
        else:
            cmd += ["--run-dir", str(fold.run_dir), "--overwrite"]
            say(f"fold {fold.index + 1}/{plan.k}: training, test speakers "
                f"{', '.join(fold.test_speakers[:6])}{' ...' if len(fold.test_speakers) > 6 else ''}")  # fmt: skip
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
            raise RunError(
                f"fold {fold.index} failed (exit {done.returncode}): {tail} -- its run folder is "
                f"{fold.run_dir}; run the same command again to continue."
            )
    return write_report(plan)


def write_report(plan: CrossvalPlan) -> dict:
    rows = []
    for fold in plan.folds:
        metrics = json.loads((fold.run_dir / "metrics.json").read_text())
        test = metrics.get("test", {})
        rows.append({
            "fold": fold.index,
            "test_speakers": len(fold.test_speakers),
            "test_clips": test.get("examples"),
            "test_accuracy": test.get("accuracy"),
            "validation_accuracy": metrics.get("validation", {}).get("accuracy"),
            "best_epoch": metrics.get("best_epoch"),
            "speakers": " ".join(fold.test_speakers),
            "run_dir": str(fold.run_dir),
        })  # fmt: skip
    accs = [r["test_accuracy"] for r in rows if r["test_accuracy"] is not None]
    summary = {
        "recipe": plan.recipe_file,
        "by": "speaker",
        "folds": plan.k,
        "speakers": plan.speakers,
        "test_accuracy_mean": statistics.mean(accs) if accs else None,
        "test_accuracy_std": statistics.pstdev(accs) if len(accs) > 1 else 0.0,
        "rows": rows,
    }
    lines = [
        f"# Speaker-grouped cross-validation: {plan.recipe_file}",
        "",
        f"{plan.k} folds over {plan.speakers} speakers; each fold's test speakers are never "
        "heard in its training.",
        "",
        "| fold | test speakers | test clips | test accuracy | validation accuracy | best epoch |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        acc = "" if r["test_accuracy"] is None else f"{r['test_accuracy']:.4f}"
        val = "" if r["validation_accuracy"] is None else f"{r['validation_accuracy']:.4f}"
        lines.append(f"| {r['fold']} | {r['test_speakers']} | {r['test_clips']} | {acc} | {val} "
                     f"| {r['best_epoch']} |")  # fmt: skip
    if accs:
        lines.append(f"| **mean +- std** | | | **{summary['test_accuracy_mean']:.4f} +- "
                     f"{summary['test_accuracy_std']:.4f}** | | |")  # fmt: skip
    (plan.out / "crossval.md").write_text("\n".join(lines) + "\n")
    with open(plan.out / "crossval.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    (plan.out / "crossval.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
