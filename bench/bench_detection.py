"""Keyword detection on a long recording: precision, recall and false alarms per hour.

    python bench/bench_detection.py runs/quickstart-YYYYmmdd-HHMMSS [--minutes 10] [--seed 0]

Builds a long recording from the test clips of the run's own data source (its test split;
the validation split when there is none), each clip whole, at the run's sample rate, separated
by 1.5-3 s of generated noise (white, RMS log-uniform in 0.003-0.03); passes over the shuffled
clips repeat until ``--minutes``. Then streams it the way ``seqkit stream`` does (0.1 s blocks,
``detect``, smoothing 300 ms, refractory 1 s) under each recurrent-state policy -- one state
carried through, or K staggered states each reset every clip length (``--copies``), each with
and without zeroing the states after a detection -- at each of ``--thresholds``, and scores
the detections.

Matching rule: a keyword clip (a label that is not silence/unknown/noise-like) is an event
from its first to its last sample. A detection is a hit when its label is the event's and its
time (when it fired) lies within [start, end + ``--tolerance``] (default 1 s: the model decides
once the word is over, and smoothing adds half its window); each event takes the first such
detection. Every other detection is a false alarm: a second detection of the same event, a
wrong label during an event (counted also as a substitution), or a detection during noise or a
filler clip. Precision = hits / detections, recall = hits / events, false alarms per hour of
recording. The whole-clip accuracy of the same clips (``seqkit predict``'s way) is printed as
the reference.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402


def test_clips(model):
    """(label, audio) of the run's test split (validation if no test split), loaded whole."""
    from seqkit.registry import SOURCES

    spec = model.recipe.data.source
    examples = SOURCES.get(spec.type)(**spec.params).examples()
    for split in ("test", "validation"):
        chosen = [ex for ex in examples if ex.split == split]
        if chosen:
            break
    load = model.pipeline.steps[0]
    clips = [(ex.label, load(ex)) for ex in chosen]
    fix = [s for s in model.pipeline.steps if type(s).__name__ == "FixLength"]
    whole = [model.pipeline.from_audio(y, load.sample_rate) for _, y in clips]
    probs = model.predict(np.stack(whole)) if fix else None
    acc = None
    if probs is not None:
        acc = float(np.mean([model.labels[p.argmax()] == lab for (lab, _), p in zip(clips, probs)]))
    return split, clips, acc


def recording(clips, sr, minutes, seed, keywords):
    """The long recording and its events ``(label, start_s, end_s)`` (keywords only)."""
    rng = np.random.default_rng(seed)
    parts, events, t = [], [], 0
    while t < minutes * 60 * sr:
        for i in rng.permutation(len(clips)):
            label, y = clips[i]
            gap = int(rng.uniform(1.5, 3.0) * sr)
            rms = np.exp(rng.uniform(np.log(0.003), np.log(0.03)))
            parts.append((rng.normal(size=gap) * rms).astype(np.float32))
            t += gap
            if label in keywords:
                events.append((label, t / sr, (t + y.size) / sr))
            parts.append(y)
            t += y.size
    tail = int(2.0 * sr)
    parts.append((rng.normal(size=tail) * 0.01).astype(np.float32))
    return np.concatenate(parts), events


def score(detections, events, tolerance, hours):
    hits, subs, used = 0, 0, set()
    starts = np.array([e[1] for e in events])
    for d in detections:
        i = int(np.searchsorted(starts, d.time_s, side="right")) - 1
        if i >= 0 and events[i][1] <= d.time_s <= events[i][2] + tolerance:
            if d.label == events[i][0] and i not in used:
                used.add(i)
                hits += 1
            elif d.label != events[i][0]:
                subs += 1
    n = len(detections)
    return {
        "detections": n,
        "precision": hits / n if n else float("nan"),
        "recall": hits / len(events),
        "fa_per_hour": (n - hits) / hours,
        "substitutions": subs,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", help="run folder (seqkit train's output)")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tolerance", type=float, default=1.0)
    ap.add_argument("--thresholds", default="0.7,0.8,0.9")
    ap.add_argument("--copies", default="1,2,4,8", help="staggered states to try")
    args = ap.parse_args(argv)

    from seqkit.speech.streaming import Detector, detect, filler_labels
    from seqkit.inference import load_for_inference

    model = load_for_inference(args.run)
    sr = model.pipeline.sample_rate
    keywords = [lab for lab in model.labels if lab not in filler_labels(model.labels)]
    split, clips, acc = test_clips(model)
    y, events = recording(clips, sr, args.minutes, args.seed, set(keywords))
    hours = y.size / sr / 3600
    print(
        f"run {args.run}: labels {', '.join(model.labels)} (keywords: {', '.join(keywords)})\n"
        f"{len(clips)} {split} clips, whole-clip accuracy {acc if acc is None else f'{acc:.3f}'}; "
        f"recording {y.size / sr / 60:.1f} min with {len(events)} keyword events; "
        f"tolerance {args.tolerance:g} s, smoothing 300 ms, refractory 1000 ms"
    )
    blocks = [y[i : i + sr // 10] for i in range(0, y.size, sr // 10)]

    def one(copies, reset_every, reset_on_detection, threshold):
        s = model.streamer(copies=copies, reset_every=reset_every)
        det = Detector(model.labels, s.features.frame_seconds, threshold=threshold)
        t0 = time.process_time()
        found = list(detect(s, det, blocks, reset_on_detection=reset_on_detection))
        cpu = time.process_time() - t0
        return score(found, events, args.tolerance, hours) | {"x_real_time": y.size / sr / cpu}

    header = (
        f"  {'state policy':36s} {'after detection':16s} {'thr':>4s} {'dets':>5s} {'prec':>6s} "
        f"{'recall':>6s} {'FA/h':>7s} {'subst':>5s} {'xRT':>6s}"
    )
    policies = [("carry one state (never reset)", 1, None)] + [
        (f"{k} staggered states, reset / clip" if k > 1 else "1 state, reset / clip", k, "clip")
        for k in (int(v) for v in args.copies.split(","))
    ]
    for thr in (float(v) for v in args.thresholds.split(",")):
        print(f"\nThreshold {thr:.2f}:")
        print(header)
        for name, copies, reset in policies:
            for on_det in (True, False):
                r = one(copies, reset, on_det, thr)
                print(
                    f"  {name:36s} {'reset states' if on_det else 'keep states':16s} {thr:4.2f} "
                    f"{r['detections']:5d} {r['precision']:6.3f} {r['recall']:6.3f} "
                    f"{r['fa_per_hour']:7.1f} {r['substitutions']:5d} {r['x_real_time']:6.0f}"
                )


if __name__ == "__main__":
    main()
