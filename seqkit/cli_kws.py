"""``seqkit predict`` and ``seqkit stream``: a trained keyword model on files and on a stream.

Imported only when one of these commands runs (``seqkit.cli.LAZY_COMMANDS``); the heavy
imports (Keras, librosa) happen inside the commands.
"""

from __future__ import annotations

import json
import logging
import sys

import click

from .cli import _import_keras
from .errors import DataError, ParameterError, SeqkitError

log = logging.getLogger("seqkit")


@click.command()
@click.argument("run_dir", metavar="RUN|EXPORT", type=click.Path())
@click.argument("files", metavar="FILE...", nargs=-1, required=True, type=click.Path())
@click.option(
    "--top-k",
    default=3,
    show_default=True,
    type=click.IntRange(min=1),
    help="How many labels to show per file (at most the number of labels).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.pass_context
def predict(ctx, run_dir, files, top_k, as_json):
    """Top-k labels with probabilities for each audio FILE, by the model in RUN.

    RUN: a run folder, or a model `seqkit export` wrote from one (.tflite float or int8,
    .onnx, .keras, a SavedModel folder; its .json must lie beside it). Each file goes whole
    through the recipe's feature pipeline (load, fix_length, ...) and the model. A file that cannot be read is skipped with a warning; the command fails
    (exit 1) only when none can be read.
    """
    _import_keras(ctx)
    import numpy as np

    from .streaming import load_for_inference

    model = load_for_inference(run_dir)
    feats, names, skipped = [], [], []
    for name in files:
        try:
            feats.append(model.features(name))
            names.append(name)
        except SeqkitError as exc:  # DataError (unreadable), ParameterError (too short, ...)
            text = str(exc)
            log.warning("Skipping %s", text if name in text else f"{name}: {text}")
            skipped.append({"file": name, "error": text})
    if not names:
        raise DataError(
            f"None of the {len(files)} file(s) could be read (see the warnings above); "
            "nothing to predict."
        )
    probs = np.zeros((len(names), len(model.labels)), np.float32)
    shapes = {}
    for i, f in enumerate(feats):  # clips of one shape go through the model together
        shapes.setdefault(f.shape, []).append(i)
    for idx in shapes.values():
        probs[idx] = model.predict(np.stack([feats[i] for i in idx]))
    k = min(top_k, len(model.labels))
    results = []
    for name, p in zip(names, probs):
        order = np.argsort(-p, kind="stable")[:k]
        results.append(
            {
                "file": name,
                "top": [
                    {"label": model.labels[j], "probability": round(float(p[j]), 6)} for j in order
                ],
            }
        )
    if as_json:
        click.echo(
            json.dumps(
                {"run": str(model.path), "predictions": results, "skipped": skipped}, indent=2
            )
        )
        return
    for r in results:
        tops = ", ".join(f"{t['label']} {t['probability']:.4f}" for t in r["top"])
        click.echo(f"{r['file']}: {tops}")
    if skipped:
        log.warning("Skipped %d of %d files that could not be read.", len(skipped), len(files))


def _label_list(value):
    if value is None:
        return None
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise click.BadParameter("give at least one label, e.g. --labels yes,no")
    return names


@click.command()
@click.argument("run_dir", metavar="RUN|EXPORT", type=click.Path())
@click.argument("audio", metavar="LONG.wav", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--threshold",
    default=0.8,
    show_default=True,
    type=click.FloatRange(0.0, 1.0),
    help="Smoothed posterior at which a detection fires.",
)
@click.option(
    "--smooth-ms",
    default=300.0,
    show_default=True,
    type=click.FloatRange(min=0.0),
    help="Moving average of the posteriors over this window.",
)
@click.option(
    "--refractory-ms",
    default=1000.0,
    show_default=True,
    type=click.FloatRange(min=0.0),
    help="No detection within this time after one.",
)
@click.option(
    "--labels",
    "labels",
    default=None,
    callback=lambda c, p, v: _label_list(v),
    help="Comma-separated labels to report (default: every label except "
    "silence/unknown/noise-like ones, which are reported only when named here).",
)
@click.option(
    "--copies",
    default=4,
    show_default=True,
    type=click.IntRange(min=1),
    help="Staggered recurrent states (each reset every clip length); 1 = one state "
    "reset every clip length.",
)
@click.option(
    "--carry-state",
    is_flag=True,
    help="Carry one recurrent state through the whole recording, never reset "
    "(for models trained on long sequences).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout at the end.")
@click.pass_context
def stream(
    ctx, run_dir, audio, threshold, smooth_ms, refractory_ms, labels, copies, carry_state, as_json
):
    """Detect keywords in a long recording, frame by frame, with the model in RUN.

    RUN: a run folder (numpy runtime), or a streaming export of one (`seqkit export RUN
    --format tflite --streaming`, also tflite_int8 / onnx / saved_model; its .json beside it),
    whose states are fed back frame by frame.

    Features are computed incrementally and the recurrent state is carried from frame to
    frame (no window recomputed). Posteriors are smoothed over --smooth-ms; a
    detection fires when a reported label reaches --threshold, then nothing fires for
    --refractory-ms. Each detection prints as `time_s label score`; time_s is when it fires
    (the audio it needed had arrived).

    State: the model was trained on clips that start from a zero state, so by default
    --copies states run staggered by a fraction of the clip length, each reset every clip
    length, and every state is reset after a detection (bench/README.md: what this gains).
    """
    _import_keras(ctx)
    from .streaming import Detector, audio_blocks, detect, load_for_inference

    model = load_for_inference(run_dir)
    try:
        streamer = model.streamer(
            copies=1 if carry_state else copies, reset_every=None if carry_state else "clip"
        )
    except ParameterError as exc:
        text = str(exc)
        raise ParameterError(text if str(model.path) in text else f"{model.path}: {text}") from None
    if streamer.reset_every is None and not carry_state:
        log.warning(
            "The recipe has no fix_length step, so there is no clip length to reset "
            "the state at; carrying one state through the recording."
        )
    detector = Detector(
        model.labels,
        streamer.features.frame_seconds,
        threshold=threshold,
        smooth_ms=smooth_ms,
        refractory_ms=refractory_ms,
        report=labels,
    )
    load = model.pipeline.steps[0]
    blocks = audio_blocks(
        audio, streamer.features.sample_rate, getattr(load, "res_type", "soxr_hq")
    )
    found = []
    for d in detect(streamer, detector, blocks, reset_on_detection=not carry_state):
        found.append(d)
        if not as_json:
            click.echo(f"{d.time_s:.3f} {d.label} {d.score:.4f}")
            sys.stdout.flush()
    seconds = streamer.frames * streamer.features.frame_seconds
    if as_json:
        click.echo(
            json.dumps(
                {
                    "run": str(model.path),
                    "audio": audio,
                    "seconds": round(seconds, 3),
                    "frames": streamer.frames,
                    "settings": {
                        "threshold": threshold,
                        "smooth_ms": smooth_ms,
                        "refractory_ms": refractory_ms,
                        "labels": [detector.labels[i] for i in detector.report],
                        "copies": streamer.copies,
                        "reset_every_frames": streamer.reset_every,
                        "latency_s": round(streamer.features.latency_seconds, 4),
                    },
                    "detections": [
                        {"time_s": d.time_s, "label": d.label, "score": d.score} for d in found
                    ],
                },
                indent=2,
            )
        )
    log.info("%d detection(s) in %.1f s of audio.", len(found), seconds)
