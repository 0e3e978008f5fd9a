"""Training speed of the polyphonic task's batches, bucketed by length against padded to the
longest sequence (the default), side by side in one run, on JSB Chorales and Nottingham.

    python bench/bench_music_batches.py                    # Chung setting: GRU 46, batch 8
    python bench/bench_music_batches.py --units 384 --output nade --rounds 1

For each dataset (the Boulanger-Lewandowski pickles in ../shared/data) one model --
Input(None, 88) -> seqkit GRU(units) -> the polyphonic head (independent sigmoids, or the NADE
with ``--output nade``) -- is compiled with RMSProp and the task's loss, and trained with
``model.fit`` on the task's own ``SequenceBatches`` of the training split, once padded to the
longest sequence and once with ``bucket=True``. Each mode first runs one warm-up epoch (its
tracing and XLA compilation for each batch shape: reported as "first epoch"), then the modes
take turns, one epoch per turn, for ``--rounds`` rounds, so that load from elsewhere falls on
both alike. Figures: the median epoch time, real (unpadded) training steps per second, and the
padded steps computed per real step. Ratios: bucketed / padded epoch time, and each mode's time
per real step on Nottingham / on JSB (the issue's "a Nottingham epoch costs a small multiple
of JSB's per time step").
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from seqkit.layers import GRU  # noqa: E402
from seqkit.music.batches import SequenceBatches  # noqa: E402
from seqkit.music.task import Polyphonic  # noqa: E402

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")
SETS = {
    "jsb": os.path.join(DATA, "jsb_chorales", "JSB Chorales.pickle"),
    "nottingham": os.path.join(DATA, "nottingham", "Nottingham.pickle"),
}


def rolls(path):
    with open(path, "rb") as f:  # the shared data set (trusted); seqkit reads user pickles safely
        data = pickle.load(f)
    out = []
    for seq in data["train"]:
        roll = np.zeros((len(seq), 88), np.float32)
        for t, notes in enumerate(seq):
            roll[t, [n - 21 for n in notes]] = 1.0
        out.append(roll)
    return out


def build(task, units, nade_units):
    inputs = keras.Input((None, 88), name="features")
    x = GRU(units, return_sequences=True)(inputs)
    if task.nade:
        outputs = task.head(x, {"keys": 88}, inputs)
    else:
        outputs = task.head(x, {"keys": 88, "components": 1})
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.RMSprop(0.002, clipnorm=1.0), **task.compile_args())
    return model


def epoch(model, ds, number):
    ds.set_epoch(number)
    t0 = time.perf_counter()
    model.fit(ds, epochs=1, verbose=0)
    return time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--units", type=int, default=46)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--output", choices=("independent", "nade"), default="independent")
    ap.add_argument("--nade-units", type=int, default=150)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--sets", default="jsb,nottingham")
    args = ap.parse_args(argv)
    keras.utils.set_random_seed(0)
    print(f"load {os.getloadavg()[0]:.2f}; keras {keras.__version__} ({keras.backend.backend()}); "
          f"GRU {args.units}, output {args.output}, batch {args.batch_size}")  # fmt: skip
    per_step = {}
    for name in args.sets.split(","):
        ys = rolls(SETS[name])
        real = sum(len(y) for y in ys)
        task = Polyphonic(output=args.output, nade_units=args.nade_units)
        model = build(task, args.units, args.nade_units)
        modes = {
            "padded": SequenceBatches(ys, task.encode, args.batch_size, shuffle=True, seed=0),
            "bucketed": SequenceBatches(
                ys, task.encode, args.batch_size, shuffle=True, seed=0, bucket=True
            ),
        }
        first, times, padded = {}, {m: [] for m in modes}, {}
        for mode, ds in modes.items():
            first[mode] = epoch(model, ds, 0)
            padded[mode] = sum(ds[i][0].shape[1] * args.batch_size for i in range(len(ds))) / real
        for r in range(args.rounds):
            for mode, ds in modes.items():
                times[mode].append(epoch(model, ds, r + 1))
        print(f"\n{name}: {len(ys)} training sequences, {real} steps")
        print(f"  {'mode':<10} {'first epoch s':>14} {'epoch s':>9} {'steps/s':>9} "
              f"{'computed/real':>14}")  # fmt: skip
        for mode in modes:
            med = statistics.median(times[mode])
            per_step[(name, mode)] = med / real
            print(f"  {mode:<10} {first[mode]:>14.1f} {med:>9.2f} {real / med:>9.0f} "
                  f"{padded[mode]:>14.2f}")  # fmt: skip
        ratio = statistics.median(times["bucketed"]) / statistics.median(times["padded"])
        print(f"  bucketed / padded epoch time: {ratio:.2f}")
    if ("jsb", "padded") in per_step and ("nottingham", "padded") in per_step:
        print()
        for mode in ("padded", "bucketed"):
            r = per_step[("nottingham", mode)] / per_step[("jsb", mode)]
            print(f"time per real step, Nottingham / JSB, {mode}: {r:.2f}")
    print(f"load at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
