"""Streaming inference speed: seqkit's numpy runtime against Keras, side by side in one run.

    taskset -c 0 python bench/bench_streaming.py                 # one core, as the goals say
    taskset -c 0 python bench/bench_streaming.py --run runs/quickstart-...   # also that run

1. One recurrent step, batch 1, 40 inputs -> 128 units (the documents' GRU, reset before the
   recurrent product, and the reset-after form): seqkit's numpy step against the Keras cell
   called eagerly and inside a ``tf.function``.
2. One 10 ms frame, features + model, for a keyword-spotting-sized model (16 kHz, 25 ms window,
   10 ms hop, 40 mel bands; GRU 128 -> 12 labels) with log-mel features and with MFCC +
   deltas, and for ``--run`` if given: 160 samples pushed per call, as a live stream does.
   The peer is what streaming replaces, recomputing the last second every hop: the recipe's
   whole-clip features (librosa) and the model on 101 frames (Keras, inside ``tf.function``).

Each contender runs ``--rounds`` rounds of ``--calls`` calls, taking turns; the figure is
the median over rounds of the mean CPU time per call (the process's CPU time, so that other
processes on a shared machine do not count; wall-clock time is printed next to it). Goals (issue 5): GRU step <= 20 us, a whole
frame <= 100 us (100x real time) on one core.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

WALL = {}


def timed(contenders: dict, rounds: int, calls) -> dict:
    """``{name: fn}`` -> ``{name: median CPU microseconds per call}``, taking turns.

    CPU time of the process (``time.process_time``), so that other processes on a shared
    machine do not count; the median wall-clock time goes to ``WALL`` for comparison.
    """
    per = {name: [] for name in contenders}
    wall = {name: [] for name in contenders}
    for fn in contenders.values():  # warm-up (tracing, caches)
        for _ in range(5):
            fn()
    for _ in range(rounds):
        for name, fn in contenders.items():
            n = calls(name) if callable(calls) else calls
            w0, t0 = time.perf_counter(), time.process_time()
            for _ in range(n):
                fn()
            per[name].append((time.process_time() - t0) / n * 1e6)
            wall[name].append((time.perf_counter() - w0) / n * 1e6)
    WALL.update({name: statistics.median(v) for name, v in wall.items()})
    return {name: statistics.median(v) for name, v in per.items()}


def show(title, results, ref):
    print(f"\n{title}")
    print(f"  {'':46s} {'CPU us':>9s} {'wall us':>9s} {'seqkit / this':>14s}")
    for name, us in results.items():
        print(f"  {name:46s} {us:9.1f} {WALL[name]:9.1f} {results[ref] / us:14.3f}")


def gru_step(rounds, calls):
    return {
        form: _gru_step(reset_after, form, rounds, calls)
        for reset_after, form in ((False, "reset before (documents)"), (True, "reset_after"))
    }


def _gru_step(reset_after, form, rounds, calls):
    import keras
    import tensorflow as tf

    from seqkit.layers import GRU
    from seqkit.speech.streaming import ModelStream

    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 40)).astype(np.float32)
    model = keras.Sequential([keras.Input((None, 40)), GRU(128, reset_after=reset_after)])
    model.set_weights([rng.normal(0, 0.2, w.shape) for w in model.get_weights()])
    step = ModelStream(model).stages[0]
    cell = model.layers[0].cell
    h = tf.constant(rng.normal(size=(1, 128)).astype(np.float32))
    xt = tf.constant(x)
    graph = tf.function(lambda a, b: cell(a, [b])[0])
    contenders = {
        f"seqkit numpy step, {form}": lambda: step(x),
        "keras cell, eager": lambda: cell(xt, [h]),
        "keras cell, tf.function": lambda: graph(xt, h),
    }
    res = timed(contenders, rounds, lambda n: calls if "numpy" in n else max(50, calls // 20))
    show(f"GRU step, batch 1, 40 -> 128, {form}", res, next(iter(res)))
    return res


def kws_model(n_features, units=128, labels=12):
    import keras

    from seqkit.layers import GRU

    rng = np.random.default_rng(1)
    inp = keras.Input((101, n_features), name="features")
    norm = keras.layers.Normalization(name="normalize")
    norm.adapt(rng.normal(-30, 10, size=(32, 101, n_features)).astype(np.float32))
    x = GRU(units, name="gru")(norm(inp))
    model = keras.Model(inp, keras.layers.Dense(labels, activation="softmax", name="scores")(x))
    for layer in model.layers[2:]:
        layer.set_weights([rng.normal(0, 0.2, w.shape) for w in layer.get_weights()])
    return model


def frame_cost(name, pipeline, model, rounds, calls, copies=(1, 4)):
    """Per 10 ms frame: streaming (features + model) vs recomputing the last second."""
    import tensorflow as tf

    from seqkit.speech.streaming import FeatureStream, ModelStream, Streamer

    sr = pipeline.sample_rate
    y = np.random.default_rng(2).normal(scale=0.1, size=sr * 30).astype(np.float32)
    streams = {k: Streamer(FeatureStream(pipeline), ModelStream(model, copies=k)) for k in copies}
    features = FeatureStream(pipeline)
    model_only = ModelStream(model)
    hop = features.hop_length
    frame = np.zeros(model_only.num_features, np.float32)
    pos = {"i": 0}

    def chunk():
        i = pos["i"] = (pos["i"] + hop) % (y.size - hop)
        return y[i : i + hop]

    sink = lambda *a: None  # noqa: E731
    window = y[:sr]
    graph = tf.function(lambda a: model(a, training=False))
    clip = pipeline.from_audio(window, sr)[None]

    def recompute():
        graph(pipeline.from_audio(window, sr)[None])

    contenders = {
        "seqkit stream, 1 state (features + model)": lambda: streams[1].feed(chunk(), sink)
    }
    for k in copies[1:]:
        contenders[f"seqkit stream, {k} staggered states"] = lambda s=streams[k]: s.feed(
            chunk(), sink
        )
    contenders["seqkit features only"] = lambda: features.feed(chunk(), sink)
    contenders["seqkit model only"] = lambda: model_only.step(frame)
    contenders["keras model on 1 s (tf.function)"] = lambda: graph(clip)
    contenders["recompute 1 s: librosa + keras (tf.function)"] = recompute
    res = timed(contenders, rounds, lambda n: calls if "seqkit" in n else max(5, calls // 200))
    show(f"One {1000 * hop / sr:g} ms frame: {name}", res, next(iter(res)))
    for label, us in res.items():
        if label.startswith("seqkit stream"):
            print(f"  {label}: {hop / sr * 1e6 / us:,.0f}x real time (CPU)")
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", help="also time this run folder's pipeline and model")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--calls", type=int, default=2000)
    args = ap.parse_args(argv)

    import keras

    from seqkit import features as F

    print(f"keras {keras.__version__}, numpy {np.__version__}, one process; pin it with taskset")
    steps = gru_step(args.rounds, args.calls)
    sr = 16000
    load = [F.Load(sample_rate=sr), F.FixLength(seconds=1.0)]
    mel = F.MelSpectrogram(n_fft=512, win_length=400, hop_length=160, n_mels=40)
    log_mel = F.FeaturePipeline(load + [mel, F.PowerToDb()])
    mfcc = F.FeaturePipeline(load + [mel, F.PowerToDb(), F.MFCC(n_mfcc=13), F.Deltas(order=2)])
    frames = {
        "log-mel 40 -> GRU 128 -> 12": frame_cost(
            "log-mel 40 -> GRU 128 -> 12", log_mel, kws_model(40), args.rounds, args.calls
        ),
        "MFCC 13 + deltas, delta-deltas -> GRU 128 -> 12": frame_cost(
            "MFCC 13 + deltas, delta-deltas (39) -> GRU 128 -> 12",
            mfcc,
            kws_model(39),
            args.rounds,
            args.calls,
        ),
    }
    if args.run:
        from seqkit.inference import load_for_inference

        run = load_for_inference(args.run)
        frames[args.run] = frame_cost(
            f"run {args.run}", run.pipeline, run.model, args.rounds, args.calls
        )

    print("\nGoals (issue 5, one core):")
    worst_step = max(next(iter(r.values())) for r in steps.values())
    print(
        f"  GRU 128 step <= 20 us: {worst_step:.1f} us -> {'met' if worst_step <= 20 else 'NOT met'}"
    )
    for name, r in frames.items():
        us = r["seqkit stream, 1 state (features + model)"]
        print(f"  frame <= 100 us ({name}): {us:.1f} us -> {'met' if us <= 100 else 'NOT met'}")


if __name__ == "__main__":
    main()
