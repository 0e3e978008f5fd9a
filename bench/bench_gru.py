"""Training-step time of seqkit's GRU against Keras' GRU and LSTM, side by side in one run.

    python bench/bench_gru.py                      # 64 x 98 x 40 -> 128, keyword-spotting shape
    python bench/bench_gru.py --shape 32x128x88x256 --rounds 5

Each model is Input(steps, features) -> recurrent layer(units) -> Dense(12, softmax), compiled
with Adam and trained with ``train_on_batch`` on one fixed random batch. After a warm-up (which
traces the graph), the models take turns, ``--steps`` training steps per turn, for ``--rounds``
rounds, so that load from elsewhere on the machine falls on all of them alike. The figure is the
median per-step time over all turns; ratios are seqkit / peer (below 1 means seqkit is faster).
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

PEERS = {
    "seqkit GRU (reset before)": lambda u: GRU(u),
    "keras GRU reset_after=False": lambda u: keras.layers.GRU(u, reset_after=False),
    "keras GRU reset_after=True": lambda u: keras.layers.GRU(u, reset_after=True),
    "keras LSTM": lambda u: keras.layers.LSTM(u),
    "keras SimpleRNN": lambda u: keras.layers.SimpleRNN(u),
}

# The foundation issue's goals: at least 1.5x faster than Keras' GRU with the same equations,
# and no slower than Keras' reset-after (cuDNN-form) GRU.
GOALS = {"keras GRU reset_after=False": 1 / 1.5, "keras GRU reset_after=True": 1.0}


def build(make_layer, steps, features, units, classes=12):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((steps, features)),
            make_layer(units),
            keras.layers.Dense(classes, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", default="64x98x40x128", help="batch x steps x features x units")
    parser.add_argument("--steps", type=int, default=10, help="training steps per turn")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", default="", help="comma-separated subset of peer names")
    args = parser.parse_args(argv)
    batch, steps, features, units = (int(v) for v in args.shape.lower().split("x"))

    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, steps, features)).astype("float32")
    y = rng.integers(0, 12, size=(batch,))
    names = [n for n in PEERS if not args.only or any(s in n for s in args.only.split(","))]
    models = {}
    for name in names:
        models[name] = build(PEERS[name], steps, features, units)
        for _ in range(3):  # trace + warm up
            models[name].train_on_batch(x, y)

    times = {name: [] for name in names}
    for _ in range(args.rounds):
        for name in names:
            model = models[name]
            for _ in range(args.steps):
                t0 = time.perf_counter()
                model.train_on_batch(x, y)
                times[name].append(time.perf_counter() - t0)

    med = {n: statistics.median(t) * 1e3 for n, t in times.items()}
    print(
        f"# backend={keras.backend.backend()} keras={keras.__version__} "
        f"cpu_count={os.cpu_count()} python={platform.python_version()} "
        f"shape batch={batch} steps={steps} features={features} units={units}"
    )
    print(f"# median ms per training step over {args.rounds} rounds x {args.steps} steps")
    ours = med.get("seqkit GRU (reset before)")
    print(f"{'layer':32s} {'ms/step':>9s} {'seqkit/peer':>12s}")
    for name in names:
        ratio = f"{ours / med[name]:12.2f}" if ours is not None else ""
        print(f"{name:32s} {med[name]:9.1f} {ratio}")
    for peer, goal in GOALS.items():
        if ours is not None and peer in med:
            ratio = ours / med[peer]
            verdict = "met" if ratio <= goal else "NOT met"
            print(f"# goal: seqkit / {peer} <= {goal:.3f}: {ratio:.2f} ({verdict})")
    return med


if __name__ == "__main__":
    main()
