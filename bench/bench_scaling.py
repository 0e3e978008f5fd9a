"""How the GRU's training time grows as sequence length, units and batch double.

    python bench/bench_scaling.py                       # all three axes, seqkit and Keras' GRU
    python bench/bench_scaling.py --axes steps --rounds 5
    python bench/bench_scaling.py --no-peer             # seqkit's GRU only (half the time)

Around a base shape (batch 64, 100 steps, 40 features, 128 units) one axis at a time doubles:
steps 50..800, units 32..512, batch 16..256. Each point is a model Input -> GRU -> Dense(12,
softmax) trained with Adam and ``train_on_batch`` on one random batch; seqkit's GRU and the named
peer, ``keras.layers.GRU(reset_after=False)`` (same equations), take turns at every point
(``--steps`` steps per turn, ``--rounds`` rounds). Two medians per step: wall-clock time, and
the CPU time of the process (all threads), which is the work done and stays put when other
jobs load the machine; growth factors and the epoch time use the CPU time, so on a busy
machine they stay meaningful (on an idle one, wall-clock time is CPU time divided by however
well the work spreads over the cores). The table gives, per point: CPU and wall ms per step,
CPU seconds per epoch of ``--epoch`` sequences (step time x epoch / batch), the growth factor
from the previous point (2.00 = linear in the doubled quantity), and seqkit / peer (CPU). For
sequence length, the CPU cost per step of the sequence (ms / steps) shows where the growth
departs from linear.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from seqkit.layers import GRU  # noqa: E402

BASE = {"batch": 64, "steps": 100, "features": 40, "units": 128}
AXES = {
    "steps": [50, 100, 200, 400, 800],
    "units": [32, 64, 128, 256, 512],
    "batch": [16, 32, 64, 128, 256],
}
CONTENDERS = {
    "seqkit": lambda u: GRU(u),
    "keras": lambda u: keras.layers.GRU(u, reset_after=False),
}


def step_times(shape, names, rounds, steps_per_turn):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(shape["batch"], shape["steps"], shape["features"])).astype("float32")
    y = rng.integers(0, 12, size=(shape["batch"],))
    models = {}
    for name in names:
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [
                keras.Input((shape["steps"], shape["features"])),
                CONTENDERS[name](shape["units"]),
                keras.layers.Dense(12, activation="softmax"),
            ]
        )
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        for _ in range(2):  # trace + warm up
            model.train_on_batch(x, y)
        models[name] = model
    wall = {name: [] for name in names}
    cpu = {name: [] for name in names}
    for _ in range(rounds):
        for name, model in models.items():
            for _ in range(steps_per_turn):
                t0, c0 = time.perf_counter(), time.process_time()
                model.train_on_batch(x, y)
                wall[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
    keras.backend.clear_session()
    return {
        name: (statistics.median(cpu[name]) * 1e3, statistics.median(wall[name]) * 1e3)
        for name in names
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--axes", default="steps,units,batch")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5, help="training steps per turn")
    parser.add_argument("--epoch", type=int, default=10000, help="sequences per epoch")
    parser.add_argument("--no-peer", action="store_true", help="time seqkit's GRU only")
    args = parser.parse_args(argv)
    names = ["seqkit"] if args.no_peer else ["seqkit", "keras"]

    print(
        f"# backend={keras.backend.backend()} keras={keras.__version__} "
        f"cpu_count={os.cpu_count()} python={platform.python_version()} "
        f"load={os.getloadavg()[0]:.1f} base={BASE} epoch={args.epoch} sequences"
    )
    print(f"# medians per training step, {args.rounds} rounds x {args.steps} steps per point")
    for axis in args.axes.split(","):
        print(f"\n## {axis} doubles (others at the base shape)")
        header = f"| {axis} | seqkit CPU ms/step | wall | CPU s/epoch | growth |"
        if axis == "steps":
            header += " CPU ms per sequence step |"
        if not args.no_peer:
            header += " keras CPU ms/step | wall | growth | seqkit / keras (CPU) |"
        print(header)
        print("|" + "---|" * (header.count("|") - 1))
        previous = None
        for value in AXES[axis]:
            shape = dict(BASE, **{axis: value})
            med = step_times(shape, names, args.rounds, args.steps)
            ours, ours_wall = med["seqkit"]
            row = f"| {value} | {ours:.1f} | {ours_wall:.1f} | "
            row += f"{ours * args.epoch / shape['batch'] / 1e3:.2f} | "
            row += f"{ours / previous['seqkit'][0]:.2f} | " if previous else "- | "
            if axis == "steps":
                row += f"{ours / value:.3f} | "
            if not args.no_peer:
                theirs, theirs_wall = med["keras"]
                row += f"{theirs:.1f} | {theirs_wall:.1f} | "
                row += f"{theirs / previous['keras'][0]:.2f} | " if previous else "- | "
                row += f"{ours / theirs:.2f} |"
            print(row.rstrip(), flush=True)
            previous = med
    return 0


if __name__ == "__main__":
    sys.exit(main())
