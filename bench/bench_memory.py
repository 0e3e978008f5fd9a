"""Memory at dataset scale (issue 5, goal 7): does a corpus the size of Speech Commands v2 train
with the process's peak resident memory under 4 GB?

    python bench/bench_memory.py                     # 105,829 clips, as Speech Commands v2
    python bench/bench_memory.py --clips 20000       # a fraction (figures say so)

1. Generates the corpus once into ``--root`` (default ``/tmp/seqkit-memcorpus``; reused when
   complete): one-second 16 kHz 16-bit WAVs, 12 labels (11 tone patterns and noise), in
   folders per label with Speech Commands file names (``<speaker>_nohash_<n>.wav``), so the
   ``folder`` source splits them 80/10/10 by speaker.
2. In a child process, ``seqkit.training.trainer`` on a small recipe (load -> 1 s -> 40 log-mel
   bands, 25 ms / 10 ms: 101 x 40 per clip; a 32-unit GRU; batch 256; ``--epochs`` 2) with
   the on-disk feature cache in a fresh folder. Reported: peak resident memory of the
   training process (``ru_maxrss``, which counts the memory-mapped cache pages it touched)
   and the peak of its anonymous memory (sampled from /proc every 0.25 s: what it allocated
   itself), the extraction workers' peak, the time to read the data (cold cache: hashing +
   parallel extraction + writing), each epoch's time (training, validation, checkpoint,
   callbacks), the final evaluation, and the cache's size on disk.
3. In another child process, ``load_data`` again: the warm cache's time and memory.

Goal: peak resident memory of the training process < 4 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
SPEECH_COMMANDS_V2 = 105_829
SR = 16000
LABELS = [f"tone{i}" for i in range(11)] + ["noise"]
MARKER = ".bench-memory.json"


# -- corpus --------------------------------------------------------------------------------------


def _clip(i: int):
    import numpy as np

    rng = np.random.default_rng(i)
    label = LABELS[i % len(LABELS)]
    y = rng.normal(scale=rng.uniform(0.002, 0.02), size=SR)
    if label != "noise":
        k = LABELS.index(label)
        n = int(rng.uniform(0.3, 0.7) * SR)
        start = int(rng.integers(0, SR - n))
        t = np.arange(n) / SR
        f0 = 200.0 * 2 ** (k / 4)  # a rising or falling glide per label
        f = f0 * (1 + (0.3 if k % 2 else -0.2) * t / t[-1])
        tone = np.sin(2 * np.pi * np.cumsum(f) / SR) * np.hanning(n) * rng.uniform(0.2, 0.6)
        y[start : start + n] += tone
    return label, np.clip(y, -1, 1)


def _write(chunk):
    import soundfile as sf

    root, ids = chunk
    for i in ids:
        label, y = _clip(i)
        speaker = f"{(i // 60) * 2654435761 % 2**32:08x}"  # ~60 clips per speaker
        sf.write(f"{root}/{label}/{speaker}_nohash_{i}.wav", y, SR, subtype="PCM_16")
    return len(ids)


def make_corpus(root: Path, clips: int) -> float:
    marker = root / MARKER
    if marker.is_file() and json.loads(marker.read_text()).get("clips") == clips:
        print(f"corpus: {clips:,} clips already in {root}", flush=True)
        return 0.0
    if root.exists():
        if not marker.is_file():
            sys.exit(f"{root} exists and was not made by this benchmark; choose another --root")
        shutil.rmtree(root)
    for label in LABELS:
        (root / label).mkdir(parents=True)
    from concurrent.futures import ProcessPoolExecutor

    t = time.time()
    chunks = [(str(root), range(s, min(s + 2000, clips))) for s in range(0, clips, 2000)]
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        done = 0
        for n in pool.map(_write, chunks):
            done += n
            print(f"\rcorpus: {done:,}/{clips:,}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    marker.write_text(json.dumps({"clips": clips}))
    return time.time() - t


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# -- child: train and measure --------------------------------------------------------------------


class Sampler(threading.Thread):
    """Peak anonymous and file-backed resident memory of this process, from /proc."""

    def __init__(self, every=0.25):
        super().__init__(daemon=True)
        self.every, self.peak_anon, self.peak_file, self.running = every, 0, 0, True

    def run(self):
        while self.running:
            try:
                text = Path("/proc/self/status").read_text()
            except OSError:
                return
            vals = {
                line.split(":")[0]: int(line.split()[1]) * 1024
                for line in text.splitlines()
                if line.startswith(("RssAnon", "RssFile", "RssShmem"))
            }
            self.peak_anon = max(self.peak_anon, vals.get("RssAnon", 0))
            self.peak_file = max(self.peak_file, vals.get("RssFile", 0) + vals.get("RssShmem", 0))
            time.sleep(self.every)


def child(recipe_json: str, run_dir: str, only_load: bool) -> None:
    sampler = Sampler()
    sampler.start()
    from seqkit.recipe import validate_dict
    from seqkit.speech.task import KeywordSpotting

    recipe = validate_dict(json.loads(recipe_json))
    marks = {"epochs": []}
    load, inputs, evaluate = (
        KeywordSpotting.load_data,
        KeywordSpotting.epoch_inputs,
        KeywordSpotting.evaluate,
    )

    def timed_load(self, *a, **k):
        t = time.time()
        out = load(self, *a, **k)
        marks["load_data"] = time.time() - t
        return out

    def timed_inputs(self, data, epoch, *a, **k):
        marks["epochs"].append(time.time())
        return inputs(self, data, epoch, *a, **k)

    def timed_evaluate(self, *a, **k):
        marks.setdefault("evaluate_start", time.time())
        return evaluate(self, *a, **k)

    KeywordSpotting.load_data, KeywordSpotting.epoch_inputs = timed_load, timed_inputs
    KeywordSpotting.evaluate = timed_evaluate
    t0 = time.time()
    if only_load:
        KeywordSpotting().load_data(recipe)
    else:
        from seqkit.training.trainer import train

        train(recipe, run_dir=run_dir, verbose=0)
    total = time.time() - t0
    sampler.running = False
    ends = marks["epochs"][1:] + [marks.get("evaluate_start", time.time())]
    out = {
        "total_s": total,
        "load_data_s": marks.get("load_data"),
        "epoch_s": [b - a for a, b in zip(marks["epochs"], ends)],
        "evaluate_s": (t0 + total - marks["evaluate_start"]) if "evaluate_start" in marks else None,
        "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "children_maxrss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
        "peak_anon": sampler.peak_anon,
        "peak_file": sampler.peak_file,
    }
    print("RESULT " + json.dumps(out), flush=True)


def run_child(recipe: dict, run_dir: Path, cache: Path, only_load=False) -> dict:
    env = dict(os.environ, SEQKIT_CACHE=str(cache))
    cmd = [sys.executable, __file__, "--child", json.dumps(recipe), str(run_dir)]
    if only_load:
        cmd.append("--only-load")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    sys.exit(f"the training child failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")


def gb(n) -> str:
    return f"{n / 2**30:.2f} GB"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=SPEECH_COMMANDS_V2)
    ap.add_argument("--root", default="/tmp/seqkit-memcorpus", help="corpus folder (generated)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--units", type=int, default=32)
    ap.add_argument("--keep", action="store_true", help="keep the corpus afterwards")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--only-load", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(*args.child, only_load=args.only_load)

    import platform

    root = Path(args.root)
    print(f"# bench_memory: {args.clips:,} one-second clips "
          f"({args.clips / SPEECH_COMMANDS_V2:.1%} of Speech Commands v2)")  # fmt: skip
    print(f"{os.cpu_count()} CPU cores, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f} at start")  # fmt: skip
    gen = make_corpus(root, args.clips)
    wav_bytes = du(root)
    recipe = {
        "name": "memory",
        "seed": 0,
        "data": {"source": {"type": "folder", "root": str(root), "labels": LABELS}},
        "features": [
            {"type": "load", "sample_rate": SR},
            {"type": "fix_length", "seconds": 1.0},
            {"type": "log_mel", "n_mels": 40, "win_ms": 25, "hop_ms": 10},
        ],
        "model": {"layers": [{"type": "gru", "units": args.units}]},
        "task": {"type": "kws"},
        "train": {"epochs": args.epochs, "batch_size": args.batch_size},
    }
    work = Path(tempfile.mkdtemp(prefix="seqkit-bench-memory-"))
    try:
        cache = work / "cache"
        first = run_child(recipe, work / "run", cache)
        cache_bytes = du(cache)
        second = run_child(recipe, work / "run2", cache, only_load=True)
        metrics = json.loads((work / "run" / "metrics.json").read_text())
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    scale = SPEECH_COMMANDS_V2 / args.clips
    print(f"\ncorpus: {wav_bytes / 2**30:.2f} GB of 16-bit WAV "
          f"({args.clips * SR * 4 / 2**30:.2f} GB as float32)"
          + (f", generated in {gen:.0f} s" if gen else ""))  # fmt: skip
    print(f"examples: {metrics['examples']}; test accuracy {metrics['test']['accuracy']:.3f}")
    print("\n| measure | value |" + (" full size, extrapolated |" if scale > 1.01 else ""))
    print("|---|---|" + ("---|" if scale > 1.01 else ""))

    def row(name, value, full=None):
        extra = f" {full} |" if scale > 1.01 else ""
        print(f"| {name} | {value} |{extra}")

    row("peak resident memory, training process (ru_maxrss)", gb(first["maxrss"]), "see below")
    row("  of which its own (anonymous) memory, peak", gb(first["peak_anon"]),
        "see below")  # fmt: skip
    row("  memory-mapped / file pages resident, peak", gb(first["peak_file"]), "see below")
    row("peak resident memory, one extraction worker", gb(first["children_maxrss"]), "same")
    row("feature cache on disk", gb(cache_bytes), gb(cache_bytes * scale))
    row("load_data, cold cache (hash + extract + write)", f"{first['load_data_s']:.0f} s",
        f"{first['load_data_s'] * scale:.0f} s")  # fmt: skip
    for i, s in enumerate(first["epoch_s"], 1):
        row(f"epoch {i} (train + validate + checkpoint)", f"{s:.0f} s", f"{s * scale:.0f} s")
    row("final evaluation (all splits)", f"{first['evaluate_s']:.0f} s",
        f"{first['evaluate_s'] * scale:.0f} s")  # fmt: skip
    row("load_data, warm cache (separate process)", f"{second['load_data_s']:.1f} s",
        f"{second['load_data_s'] * scale:.1f} s")  # fmt: skip
    row("peak resident memory, warm load_data process", gb(second["maxrss"]), "see below")
    peak = first["maxrss"]
    if scale > 1.01:
        # What grows with the corpus: the training split's mapped features (file pages) and
        # one temporary of its size in the normalisation statistics (np.var), both linear.
        feats = cache_bytes * 0.8
        est = peak + (scale - 1) * 2 * feats
        print(f"\nFull size, extrapolated (peak + 2 x the extra training features, "
              f"{gb((scale - 1) * feats)} each): about {gb(est)}.")  # fmt: skip
        peak = est
    print(f"\nGoal: peak resident memory of the training process < 4 GB: {gb(peak)} -> "
          f"{'met' if peak < 4 * 2**30 else 'NOT met'}")  # fmt: skip
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
