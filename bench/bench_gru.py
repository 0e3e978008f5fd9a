"""Training-step time of seqkit's GRU against Keras' GRU and LSTM, side by side in one run.

    python bench/bench_gru.py                      # 64 x 98 x 40 -> 128, keyword-spotting shape
    python bench/bench_gru.py --shape 32x128x88x256 --all-steps --rounds 5   # music shape
    python bench/bench_gru.py --variants           # also seqkit's GRU forced through each path
    python bench/bench_gru.py --threads 1          # one thread: the CPU column is the work done

Each model is Input(steps, features) -> recurrent layer(units) -> Dense(12, softmax) (with
``--all-steps`` the layer returns every step and the Dense layer classifies each), compiled
with Adam and trained with ``train_on_batch`` on one fixed random batch. After a warm-up (which
traces the graph), the models take turns, ``--steps`` training steps per turn, for ``--rounds``
rounds, so that load from elsewhere on the machine falls on all of them alike. The figures are
the median wall-clock time per step over all turns, and the median CPU time of the process per
step (all threads; it shows the work done whatever the load). Ratios are seqkit / peer on the
wall-clock medians (below 1 means seqkit is faster).
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

import seqkit.layers  # noqa: E402
from seqkit.layers import GRU  # noqa: E402


def _variant(**switches):
    """seqkit's GRU with some of ``seqkit.layers``' switches set while it is traced."""

    class Variant(GRU):
        def inner_loop(self, *args, **kwargs):
            saved = {name: getattr(seqkit.layers, name) for name in switches}
            for name, value in switches.items():
                setattr(seqkit.layers, name, value)
            try:
                return super().inner_loop(*args, **kwargs)
            finally:
                for name, value in saved.items():
                    setattr(seqkit.layers, name, value)

    return Variant


OURS = "seqkit GRU (reset before)"
VARIANTS = {
    "seqkit GRU, scans (XLA), batch split in 2": lambda u, **k: _variant(
        SEQUENCE_SCAN=True, BATCH_SPLITS=2
    )(u, **k),
    "seqkit GRU, scans (XLA), no batch split": lambda u, **k: _variant(
        SEQUENCE_SCAN=True, BATCH_SPLITS=1
    )(u, **k),
    "seqkit GRU, scans without XLA (no split)": lambda u, **k: _variant(
        SEQUENCE_SCAN=True, TF_XLA=False
    )(u, **k),
    "seqkit GRU, Keras' loop": lambda u, **k: _variant(SEQUENCE_SCAN=False)(u, **k),
}
PEERS = {
    OURS: lambda u, **k: GRU(u, **k),
    "keras GRU reset_after=False": lambda u, **k: keras.layers.GRU(u, reset_after=False, **k),
    "keras GRU reset_after=True": lambda u, **k: keras.layers.GRU(u, reset_after=True, **k),
    "keras LSTM": lambda u, **k: keras.layers.LSTM(u, **k),
    "keras SimpleRNN": lambda u, **k: keras.layers.SimpleRNN(u, **k),
}

# Issue 5's goals at the keyword-spotting and music shapes: at most half the step time of
# Keras' GRU with the same equations, and at most 0.8 of Keras' reset-after (cuDNN-form) GRU.
GOALS = {"keras GRU reset_after=False": 0.5, "keras GRU reset_after=True": 0.8}


def build(make_layer, steps, features, units, classes=12, all_steps=False):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((steps, features)),
            make_layer(units, return_sequences=all_steps),
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
    parser.add_argument("--all-steps", action="store_true", help="every step out (music)")
    parser.add_argument("--variants", action="store_true", help="add seqkit's slower variants")
    parser.add_argument("--only", default="", help="comma-separated subset of peer names")
    parser.add_argument(
        "--threads", type=int, default=0, help="TensorFlow intra- and inter-op threads (0: default)"
    )
    args = parser.parse_args(argv)
    if args.threads and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    batch, steps, features, units = (int(v) for v in args.shape.lower().split("x"))

    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, steps, features)).astype("float32")
    y = rng.integers(0, 12, size=(batch, steps) if args.all_steps else (batch,))
    contenders = dict(PEERS)
    if args.variants:
        contenders = {OURS: PEERS[OURS], **VARIANTS, **PEERS}
    names = [n for n in contenders if not args.only or any(s in n for s in args.only.split(","))]
    models = {}
    for name in names:
        models[name] = build(contenders[name], steps, features, units, all_steps=args.all_steps)
        for _ in range(3):  # trace + warm up
            models[name].train_on_batch(x, y)

    times = {name: [] for name in names}
    cpu = {name: [] for name in names}
    for _ in range(args.rounds):
        for name in names:
            model = models[name]
            for _ in range(args.steps):
                t0, c0 = time.perf_counter(), time.process_time()
                model.train_on_batch(x, y)
                times[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)

    med = {n: statistics.median(t) * 1e3 for n, t in times.items()}
    med_cpu = {n: statistics.median(t) * 1e3 for n, t in cpu.items()}
    print(
        f"# backend={keras.backend.backend()} keras={keras.__version__} "
        f"cpu_count={os.cpu_count()} python={platform.python_version()} "
        f"load={os.getloadavg()[0]:.1f} shape batch={batch} steps={steps} "
        f"features={features} units={units} out={'every step' if args.all_steps else 'last step'}"
        f"{f' threads={args.threads}' if args.threads else ''}"
    )
    print(f"# median per training step over {args.rounds} rounds x {args.steps} steps")
    ours = med.get(OURS)
    print(f"{'layer':44s} {'ms/step':>8s} {'cpu ms':>8s} {'seqkit/peer':>12s}")
    for name in names:
        ratio = f"{ours / med[name]:12.2f}" if ours is not None else ""
        print(f"{name:44s} {med[name]:8.1f} {med_cpu[name]:8.1f} {ratio}")
    for peer, goal in GOALS.items():
        if ours is not None and peer in med:
            ratio = ours / med[peer]
            verdict = "met" if ratio <= goal else "NOT met"
            print(f"# goal: seqkit / {peer} <= {goal:.2f}: {ratio:.2f} ({verdict})")
    return med


if __name__ == "__main__":
    main()
