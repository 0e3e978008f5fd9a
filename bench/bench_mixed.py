"""Mixed data vs either source alone, on held-out real speakers (issue 14, item 4).

The real clips are ``../shared/data/speech_commands_sample`` (Speech Commands v0.01, 300 clips,
41 speakers; the 12-class task: ten keywords, ``_unknown_``, ``_silence_``). Their speakers are
dealt into K speaker-grouped folds (``seqkit crossval``'s own rule, ``seqkit.data.fold_split``);
every model is scored on each fold's held-out real speakers, on the same clips:

* **real only** -- ``seqkit crossval`` of a ``speech_commands`` recipe: each fold trains on the
  other folds' real speakers (about 125 training clips);
* **synthetic only** -- one ``seqkit train`` on ``synthetic_speech`` of the same words (eSpeak NG,
  ``--speakers`` voices), validated on synthetic speakers; it hears no real speaker at all, so one
  model serves every fold;
* **mixed** -- ``seqkit crossval`` of a recipe with ``data.sources``: the real source (folded) and
  the same synthetic speech (train only, the mixed source's default for a synthetic source); the
  validation split is real speakers only.

Printed (and written to ``OUT/bench_mixed.md`` / ``.json``): per fold, 12-class accuracy and
keyword recall (share of the fold's keyword clips labelled with their keyword) of each model,
then the mean +- std over folds. Every model has the same features and layers (``kws_synthetic``:
40 log-mel bands, GRU 128, dropout 0.3), no augmentation (what is compared is the data).

    flock /tmp/seqkit-train.lock python bench/bench_mixed.py [--folds 3] [--speakers 100]
        [--epochs 25] [--out runs/bench_mixed] [--real DIR]

Measured 2026-12-02 (bench/README.md): mixed 0.639, synthetic only 0.537, real only 0.125
12-class accuracy on held-out real speakers (3 folds, 100 synthetic speakers, 25 epochs).

Running it again keeps completed runs (``crossval`` continues; the synthetic run is kept when its
folder holds a completed run).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from seqkit.build import make_source  # noqa: E402
from seqkit.data import fold_split  # noqa: E402
from seqkit.inference import load_for_inference, predict_features  # noqa: E402
from seqkit.recipe import validate_dict  # noqa: E402

STANDARD_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
DEFAULT_REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "speech_commands_sample"


def recipe(name: str, data: dict, epochs: int) -> dict:
    return {
        "name": name,
        "seed": 0,
        "data": data,
        "features": [
            {"type": "load", "sample_rate": 16000},
            {"type": "fix_length", "seconds": 1.0},
            {"type": "log_mel", "n_mels": 40, "win_ms": 30, "hop_ms": 20},
        ],
        "model": {"layers": [{"type": "gru", "units": 128}, {"type": "dropout", "rate": 0.3}]},
        "task": {"type": "kws"},
        "train": {"epochs": epochs, "batch_size": 64, "reduce_lr_patience": 5,
                  "optimizer": {"type": "adam", "learning_rate": 0.003}},  # fmt: skip
    }


def run(cmd: list[str]) -> float:
    t0 = time.time()
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    done = subprocess.run(cmd)
    if done.returncode != 0:
        raise SystemExit(f"failed (exit {done.returncode}): {' '.join(cmd)}")
    return time.time() - t0


def completed(run_dir: Path) -> bool:
    try:
        return json.loads((run_dir / "run.json").read_text()).get("status") == "completed"
    except (OSError, ValueError):
        return False


def score(model, examples) -> dict:
    """12-class accuracy and keyword recall of ``model`` on ``examples`` (labels by name)."""
    feats = [model.features(ex) for ex in examples]
    pred = predict_features(model, feats).argmax(axis=1)
    guess = [model.labels[i] for i in pred]
    truth = [ex.label for ex in examples]
    right = [t == g for t, g in zip(truth, guess)]
    kw = [r for r, t in zip(right, truth) if t in STANDARD_WORDS]
    return {"accuracy": sum(right) / len(right), "keyword_recall": sum(kw) / len(kw) if kw else None,
            "clips": len(right), "keyword_clips": len(kw)}  # fmt: skip


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--real", type=Path, default=DEFAULT_REAL)
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--speakers", type=int, default=100, help="synthetic speakers")
    ap.add_argument("--epochs", type=int, default=25)
    ap.add_argument("--out", type=Path, default=Path("runs/bench_mixed"))
    ap.add_argument("--synth-root", type=Path, default=None,
                    help="where the synthetic clips are generated (default OUT/../bench_mixed_synth)")  # fmt: skip
    args = ap.parse_args(argv)
    if not args.real.is_dir():
        print(f"no real data at {args.real}; skipped", file=sys.stderr)
        return 0
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    synth_root = args.synth_root or out.parent / f"{out.name}_synth"
    real_src = {"type": "speech_commands", "root": str(args.real)}
    synth_src = {"type": "synthetic_speech", "root": str(synth_root), "speakers": args.speakers, "seed": 0}
    docs = {
        "real": recipe("bench_mixed_real", {"source": real_src}, args.epochs),
        "synthetic": recipe("bench_mixed_synth", {"source": synth_src}, args.epochs),
        "mixed": recipe("bench_mixed_mixed", {"sources": [real_src, synth_src]}, args.epochs),
    }
    files = {}
    for key, doc in docs.items():
        files[key] = out / f"{key}.yaml"
        files[key].write_text(yaml.safe_dump(doc, sort_keys=False))
    seqkit = [sys.executable, "-m", "seqkit"]
    seconds = {}
    load = os.getloadavg()
    if not completed(out / "synthetic"):
        seconds["synthetic"] = run(seqkit + ["train", str(files["synthetic"]), "--run-dir",
                                             str(out / "synthetic"), "--overwrite"])  # fmt: skip
    for key in ("real", "mixed"):
        seconds[key] = run(seqkit + ["crossval", str(files[key]), "--by", "speaker", "--folds",
                                     str(args.folds), "--out", str(out / f"cv-{key}"), "--yes"])  # fmt: skip
    # each fold's held-out real clips: the real recipe's examples, dealt as crossval deals them
    examples = make_source(validate_dict(docs["real"], build_layers=False)).examples()
    synthetic = load_for_inference(out / "synthetic")
    rows = []
    for fold in range(args.folds):
        spec = {"by": "speaker", "k": args.folds, "fold": fold, "seed": 0}
        test = [ex for ex in fold_split(examples, spec) if ex.split == "test"]
        row = {"fold": fold, "speakers": len({ex.path.split("/")[-1].split("_nohash_")[0]
                                             for ex in test if ex.noise is None})}  # fmt: skip
        for key in ("real", "mixed"):
            run_dir = out / f"cv-{key}" / f"fold-{fold}"
            row[key] = score(load_for_inference(run_dir), test)
            reported = json.loads((run_dir / "metrics.json").read_text())["test"]["accuracy"]
            row[key]["run_test_accuracy"] = reported  # the run's own figure, on the same clips
            if abs(reported - row[key]["accuracy"]) > 1e-6:
                print(f"warning: fold {fold} {key}: scored {row[key]['accuracy']:.4f}, the run's "
                      f"metrics.json says {reported:.4f}", file=sys.stderr)  # fmt: skip
        row["synthetic"] = score(synthetic, test)
        rows.append(row)
    keys = ("real", "synthetic", "mixed")
    names = {"real": "real only", "synthetic": "synthetic only", "mixed": "real + synthetic (mixed)"}
    lines = [
        f"Held-out real speakers of {args.real.name} ({args.folds} speaker-grouped folds), "
        f"{args.speakers} synthetic speakers, {args.epochs} epochs; 12-class accuracy / keyword recall.",
        "",
        "| fold | test speakers | test clips | " + " | ".join(names[k] for k in keys) + " |",
        "|---|---|---|" + "---|" * len(keys),
    ]
    for r in rows:
        cells = [f"{r[k]['accuracy']:.3f} / {r[k]['keyword_recall']:.3f}" for k in keys]
        lines.append(f"| {r['fold']} | {r['speakers']} | {r['real']['clips']} | " + " | ".join(cells) + " |")
    mean = {}
    for k in keys:
        acc = [r[k]["accuracy"] for r in rows]
        rec = [r[k]["keyword_recall"] for r in rows]
        mean[k] = {"accuracy": statistics.mean(acc), "accuracy_std": statistics.pstdev(acc),
                   "keyword_recall": statistics.mean(rec), "keyword_recall_std": statistics.pstdev(rec)}  # fmt: skip
    lines.append("| **mean +- std** | | | " + " | ".join(
        f"**{mean[k]['accuracy']:.3f} +- {mean[k]['accuracy_std']:.3f}** / "
        f"{mean[k]['keyword_recall']:.3f} +- {mean[k]['keyword_recall_std']:.3f}" for k in keys) + " |")  # fmt: skip
    lines.append("")
    lines.append(f"wall clock: {', '.join(f'{k} {v / 60:.1f} min' for k, v in seconds.items())}; "
                 f"load average at the start {load[0]:.1f}")  # fmt: skip
    text = "\n".join(lines)
    print(text)
    (out / "bench_mixed.md").write_text(text + "\n")
    (out / "bench_mixed.json").write_text(json.dumps(
        {"rows": rows, "mean": mean, "seconds": seconds, "load_start": load, "args": {
            k: str(v) for k, v in vars(args).items()}}, indent=2) + "\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
