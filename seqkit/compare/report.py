"""The report: tables, CSV, plots, JSON (``write_report``); see ``seqkit.compare``."""

from __future__ import annotations

import csv
import datetime as _dt
import json
import logging
import math
import os
import platform
import statistics
from dataclasses import asdict
from pathlib import Path

import keras
import numpy as np

from ..gradflow import plot_gradients
from ..longrange import LEARN_RATIO
from .common import GRADIENT_EXAMPLES, INFERENCE_BATCH, Plan
from .plan import format_seconds

log = logging.getLogger("seqkit")

# -- the report ----------------------------------------------------------------------------------


def _stats(values) -> tuple[float, float] | None:
    values = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not values:
        return None
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else 0.0)


def _fmt(stat, digits=4, n=1) -> str:
    if stat is None:
        return "-"
    mean, sd = stat
    text = f"{mean:.{digits}g}"
    return f"{text} ± {sd:.2g}" if n > 1 else text


def summarize(plan: Plan, results: list[dict]) -> list[dict]:
    """One row per (length, layer): means and standard deviations over the completed seeds."""
    key = plan.monitor.removeprefix("val_")
    rows = []
    for length in plan.lengths:
        for cand in plan.candidates:
            runs = [r for r in results if r["layer"] == cand.name and r["length"] == length]
            if not runs:
                continue
            ok = [r for r in runs if r["status"] == "completed"]
            row = {
                "length": length,
                "layer": cand.name,
                "units": "/".join(map(str, cand.units)),
                "params": cand.params,
                "seeds": len(ok),
                "failed": len(runs) - len(ok),
                "train_s_per_epoch": _stats(r.get("train_seconds_per_epoch") for r in ok),
                "train_cpu_s_per_epoch": _stats(r.get("train_cpu_seconds_per_epoch") for r in ok),
                "infer_ms_per_seq": _stats(r.get("infer_ms_per_sequence") for r in ok),
                "peak_mb": _stats(r.get("peak_mb") for r in ok),
                f"val_{key}": _stats(r["validation"].get(key) for r in ok),
                f"test_{key}": _stats(r["test"].get(key) for r in ok),
            }
            if any("baseline_ratio" in r.get("test", {}) for r in ok):
                row["test_baseline_ratio"] = _stats(r["test"].get("baseline_ratio") for r in ok)
            if any("learns" in r for r in ok):
                learned = sum(bool(r.get("learns")) for r in ok)
                row["learned"] = f"{learned}/{len(runs)}"
                row["learns"] = learned * 2 > len(runs)
            grads = [r["gradients"] for r in ok if r.get("gradients")]
            for phase in ("init", "trained"):
                ratios = [
                    g[phase][0] / g[phase][-1] for g in grads if g.get(phase) and g[phase][-1] > 0
                ]
                if ratios:
                    row[f"grad_first_over_last_{phase}"] = _stats(ratios)
            rows.append(row)
    return rows


def _metric_label(plan: Plan) -> str:
    key = plan.monitor.removeprefix("val_")
    return "MSE" if plan.task_type == "sequence_regression" and key == "loss" else key


def markdown_table(plan: Plan, rows: list[dict]) -> str:
    key = plan.monitor.removeprefix("val_")
    label = _metric_label(plan)
    n = len(plan.seeds)
    sweep = any(r["length"] for r in rows)
    cols = (["length"] if sweep else []) + [
        "layer",
        "units",
        "params",
        "train s/epoch",
        "train CPU s/epoch",
        "infer ms/seq",
        "peak MB",
        f"best val {label}",
        f"test {label}",
    ]
    extra_ratio = any("test_baseline_ratio" in r for r in rows)
    if extra_ratio:
        cols.append("test / baseline")
    if any("learned" in r for r in rows):
        cols.append("learned")
    if any("grad_first_over_last_init" in r for r in rows):
        cols += ["grad h1/hT init", "grad h1/hT trained"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = ([str(r["length"])] if sweep else []) + [
            r["layer"] + (f" ({r['failed']} failed)" if r["failed"] else ""),
            r["units"],
            f"{r['params']:,}",
            _fmt(r["train_s_per_epoch"], 3, n),
            _fmt(r.get("train_cpu_s_per_epoch"), 3, n),
            _fmt(r["infer_ms_per_seq"], 3, n),
            _fmt(r["peak_mb"], 3, n),
            _fmt(r[f"val_{key}"], 4, n),
            _fmt(r[f"test_{key}"], 4, n),
        ]
        if extra_ratio:
            cells.append(_fmt(r.get("test_baseline_ratio"), 3, n))
        if "learned" in cols:
            cells.append(r.get("learned", "-"))
        if "grad h1/hT init" in cols:
            cells += [
                _fmt(r.get("grad_first_over_last_init"), 2, 1),
                _fmt(r.get("grad_first_over_last_trained"), 2, 1),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def sweep_table(plan: Plan, rows: list[dict]) -> str | None:
    """Layers x lengths: the test metric (or its ratio to the baseline), and where learning
    stops."""
    lengths = [length for length in plan.lengths if length]
    if len(lengths) < 2:
        return None
    key = plan.monitor.removeprefix("val_")
    ratio = any("test_baseline_ratio" in r for r in rows)
    learn = any("learns" in r for r in rows)
    cols = (
        ["layer"] + [f"T={length}" for length in lengths] + (["stops learning at"] if learn else [])
    )
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for cand in plan.candidates:
        cells, stop = [cand.name], None
        for length in lengths:
            r = next((r for r in rows if r["layer"] == cand.name and r["length"] == length), None)
            if r is None:
                cells.append("")
                continue
            stat = r.get("test_baseline_ratio") if ratio else r.get(f"test_{key}")
            text = _fmt(stat, 3, 1)
            if learn:
                text += " ✓" if r.get("learns") else " ✗"
                text += f" ({r['learned']})" if len(plan.seeds) > 1 else ""
                if not r.get("learns") and stop is None:
                    stop = length
            cells.append(text)
        if learn:
            done = all(
                any(r["layer"] == cand.name and r["length"] == length for r in rows)
                for length in lengths
            )
            cells.append(
                f"T={stop}" if stop else (f"learns up to T={lengths[-1]}" if done else "...")
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _csv(path: Path, rows: list[dict]) -> None:
    flat = []
    for r in rows:
        d = {}
        for k, v in r.items():
            if isinstance(v, tuple):
                d[f"{k}_mean"], d[f"{k}_std"] = v
            else:
                d[k] = v
        flat.append(d)
    keys = list(dict.fromkeys(k for d in flat for k in d))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(flat)


def _plot_curves(plan: Plan, results: list[dict], path: Path) -> None:
    import matplotlib  # matplotlib (0.35-0.6 s): only when a figure is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # matplotlib (0.35-0.6 s): only when a figure is drawn

    panels = plan.lengths
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, length in zip(axes[0], panels):
        for cand in plan.candidates:
            curves = [
                r["history"].get(plan.monitor)
                for r in results
                if r["status"] == "completed" and r["layer"] == cand.name and r["length"] == length
            ]
            curves = [c for c in curves if c]
            if not curves:
                continue
            n = min(len(c) for c in curves)
            arr = np.array([c[:n] for c in curves])
            epochs = np.arange(1, n + 1)
            (line,) = ax.plot(epochs, arr.mean(0), label=cand.name, marker="o", markersize=3)
            if len(arr) > 1:
                ax.fill_between(epochs, arr.min(0), arr.max(0), alpha=0.2, color=line.get_color())
        if plan.mode == "min":
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(f"T={length}" if length else plan.recipe_doc.get("name", ""), fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel(plan.monitor)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_sweep(plan: Plan, rows: list[dict], path: Path) -> None:
    import matplotlib  # matplotlib (0.35-0.6 s): only when a figure is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # matplotlib (0.35-0.6 s): only when a figure is drawn

    ratio = any("test_baseline_ratio" in r for r in rows)
    key = "test_baseline_ratio" if ratio else f"test_{plan.monitor.removeprefix('val_')}"
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for cand in plan.candidates:
        pts = [(r["length"], r[key]) for r in rows if r["layer"] == cand.name and r.get(key)]
        if pts:
            xs = [p[0] for p in pts]
            ax.errorbar(xs, [p[1][0] for p in pts], yerr=[p[1][1] for p in pts], marker="o",
                        capsize=3, label=cand.name)  # fmt: skip
    if ratio:

        ax.axhline(LEARN_RATIO, color="grey", linestyle="--", linewidth=1, label="learns below")
        ax.set_yscale("log")
        ax.set_ylabel("test loss / baseline")
    else:
        ax.set_ylabel(key)
    ax.set_xscale("log")
    ax.set_xlabel("sequence length T")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _gradient_outputs(plan: Plan, results: list[dict], out: Path) -> bool:

    panels, lines = {}, []
    seed = plan.seeds[0]
    for phase in ("init", "trained"):
        for length in plan.lengths:
            curves = {}
            for r in results:
                if r["status"] != "completed" or r["seed"] != seed or r["length"] != length:
                    continue
                norms = r.get("gradients", {}).get(phase)
                if norms:
                    curves[r["layer"]] = norms
                    lines += [(length, r["layer"], phase, t + 1, v) for t, v in enumerate(norms)]
            if curves:
                where = f"T={length}, " if length else ""
                panels[f"{where}{'at initialisation' if phase == 'init' else 'trained'}"] = curves
    if not panels:
        return False
    plot_gradients(panels, out / "gradients.png", columns=max(1, len(plan.lengths)),
                   title=f"||dL/dh_t||, seed {seed}, {GRADIENT_EXAMPLES} test sequences")  # fmt: skip
    with open(out / "gradients.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["length", "layer", "phase", "t", "mean_grad_norm"])
        w.writerows(lines)
    return True


def _steps_note(results: list[dict]) -> str:
    steps = sorted({r["inference_steps"] for r in results if r.get("inference_steps")})
    if not steps:
        return ""
    return f" sequences of {steps[0]}" + (f"-{steps[-1]}" if len(steps) > 1 else "") + " steps"


def write_report(plan: Plan, results: list[dict], elapsed: float | None = None) -> dict:
    """Write compare.md/.csv, runs.csv, curves.png (and sweep.*, gradients.*); return paths."""

    out = plan.out
    rows = summarize(plan, results)
    paths = {"markdown": out / "compare.md", "csv": out / "compare.csv", "runs": out / "runs.csv"}
    _csv(paths["csv"], rows)
    _csv(
        paths["runs"],
        [
            {
                k: (json.dumps(v) if isinstance(v, (list, dict)) else v)
                for k, v in r.items()
                if k not in ("history", "gradients", "epoch_seconds")
            }
            | {f"val_{k}": v for k, v in r.get("validation", {}).items()}
            | {f"test_{k}": v for k, v in r.get("test", {}).items()}
            for r in results
        ],
    )
    if any(r["status"] == "completed" for r in results):
        paths["curves"] = out / "curves.png"
        _plot_curves(plan, results, paths["curves"])
    label = _metric_label(plan)
    n = len(plan.seeds)
    text = [
        f"# seqkit compare: {plan.recipe_doc.get('name')}",
        "",
        f"Command: `{plan.command}`" if plan.command else f"Recipe: `{plan.recipe_file}`",
        "",
        f"Task `{plan.task_type}`, {plan.epochs} epochs of {plan.steps_per_epoch} steps, "
        f"batch {plan.recipe_doc['train']['batch_size']}; layers matched by "
        f"**{plan.match}**; seeds {', '.join(map(str, plan.seeds))}"
        + (" (mean ± standard deviation over seeds)" if n > 1 else "")
        + ".",
        "",
        markdown_table(plan, rows),
        "",
        "Columns: trainable parameters; training seconds per epoch (first batch to last, "
        "validation excluded, median over the epochs after the first), wall-clock and CPU "
        "time of the process (all threads; steadier than wall-clock on a shared machine); "
        "inference ms per "
        f"sequence (the best model on a batch of {INFERENCE_BATCH}{_steps_note(results)}, "
        "median of 10 calls); peak "
        "MB: resident memory of the training process above its level when training started; "
        f"best val {label}: the best model's (by `{plan.monitor}`); test {label}: the same "
        "model on the test split.",
    ]
    dropped = [f"{c.name} drops {', '.join(c.dropped)}" for c in plan.candidates if c.dropped]
    if dropped:
        text += ["", "Recipe parameters a layer does not take: " + "; ".join(dropped) + "."]
    sweep = sweep_table(plan, rows)
    if sweep:

        paths["sweep"] = out / "sweep.md"
        text += ["", "## Sweep over sequence length", "", sweep, ""]
        if any("learns" in r for r in rows):
            text.append(
                f"Cells: test loss / the memoryless baseline (mean over seeds); ✓ learns: a "
                f"test loss below {LEARN_RATIO:g} x the baseline (for the adding problem: "
                "MSE < 0.0167), in more than half of the seeds (count in brackets)."
            )
        paths["sweep"].write_text(sweep + "\n")
        _csv(
            out / "sweep.csv",
            [
                {k: r.get(k) for k in ("length", "layer", "units", "params", "learned", "learns")}
                | {"test_baseline_ratio": r.get("test_baseline_ratio")}
                for r in rows
            ],
        )
        paths["sweep_png"] = out / "sweep.png"
        _plot_sweep(plan, rows, paths["sweep_png"])
    if _gradient_outputs(plan, results, out):
        paths["gradients"] = out / "gradients.png"
        text += [
            "",
            "Gradient flow (`gradients.png`, `gradients.csv`): mean ||dL/dh_t|| over "
            f"{GRADIENT_EXAMPLES} test sequences; `grad h1/hT` is its value at the first step "
            "over its value at the last step (1 = no decay; 1e-6 = vanished; 0 = below float32's "
            "range).",
        ]

    text += [
        "",
        f"Machine: {os.cpu_count()} CPU cores (load average {plan.load_average:.1f} when the "
        "comparison started: other processes share them, so times are indicative), "
        f"Python {platform.python_version()}, Keras "
        f"{keras.__version__} ({keras.backend.backend()}); "
        f"{_dt.datetime.now().strftime('%Y-%m-%d')}"
        + f"; estimated {format_seconds(plan.estimate_seconds)} before training"
        + (f", took {format_seconds(elapsed)}" if elapsed is not None else "")
        + ".",
    ]
    paths["markdown"].write_text("\n".join(text) + "\n")
    record = {
        "plan": {k: v for k, v in asdict(plan).items() if k != "out"} | {"out": str(plan.out)},
        "rows": rows,
        "runs": results,
    }
    (out / "compare.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    paths["json"] = out / "compare.json"
    return paths
