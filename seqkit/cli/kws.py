"""``seqkit predict`` and ``seqkit stream``: a trained keyword model on files and on a stream.

The work is done by ``seqkit.inference`` (``predict_files``, ``detect_in_file``); this module
parses options and prints. Heavy imports (Keras, librosa) happen inside the commands.
"""

from __future__ import annotations

import logging
import sys

import click

from ..errors import DataError
from .common import import_keras
from .options import EXISTING_FILE, PATH, CommaList, json_option, model_argument

log = logging.getLogger("seqkit")


@click.command()
@model_argument()
@click.argument("files", metavar="FILE...", nargs=-1, required=True, type=PATH)
@click.option(
    "--top-k",
    default=3,
    show_default=True,
    type=click.IntRange(min=1),
    help="How many labels to show per file (at most the number of labels).",
)
@json_option()
@click.pass_context
def predict(ctx, run_dir, files, top_k, as_json):
    """Top-k labels with probabilities for each audio FILE, by the model in RUN.

    RUN: a run folder, or a model `seqkit export` wrote from one (.tflite float or int8,
    .onnx, .keras, a SavedModel folder; its .json must lie beside it). Each file goes whole
    through the recipe's feature pipeline (load, fix_length, ...) and the model. A file that
    cannot be read is skipped with a warning and the others are predicted; the command then
    exits 1, saying how many were skipped. In the plain output, a file name with control
    characters (a newline, a tab) is printed quoted and escaped, as Python writes it.
    """
    import_keras(ctx)
    # The model and the feature pipeline: Keras/TensorFlow (~3 s), librosa; not for --help.
    from ..inference import load_for_inference, predict_files

    doc = predict_files(load_for_inference(run_dir), files, top_k=top_k)
    for r in doc["predictions"]:
        for t in r["top"]:
            t["probability"] = round(t["probability"], 6)
    if as_json:
        import json  # not at the top: every seqkit command imports this module

        click.echo(json.dumps(doc, indent=2))
    else:
        for r in doc["predictions"]:
            tops = ", ".join(f"{t['label']} {t['probability']:.4f}" for t in r["top"])
            click.echo(f"{_one_line(r['file'])}: {tops}")
    if doc["skipped"]:
        raise DataError(
            f"{len(doc['skipped'])} of {len(files)} files could not be read (see the warnings "
            f"above); the predictions of the other {len(doc['predictions'])} are on stdout."
        )


def _one_line(name: str) -> str:
    """``name`` as is if every character prints; else quoted with its control characters (and
    undecodable bytes) escaped, as Python's repr writes them, so one file is one line."""
    return name if name.isprintable() else repr(name)


@click.command()
@model_argument()
@click.argument("audio", metavar="LONG.wav", type=EXISTING_FILE)
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
    type=CommaList("label", "--labels yes,no"),
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
@json_option("One JSON document on stdout at the end.")
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
    import_keras(ctx)
    # The model and the streaming runtime: Keras/TensorFlow (~3 s), librosa; not for --help.
    from ..inference import detect_in_file, load_for_inference

    found = detect_in_file(
        load_for_inference(run_dir),
        audio,
        threshold=threshold,
        smooth_ms=smooth_ms,
        refractory_ms=refractory_ms,
        labels=labels,
        copies=copies,
        carry_state=carry_state,
    )
    for d in found:
        if not as_json:
            click.echo(f"{d.time_s:.3f} {d.label} {d.score:.4f}")
            sys.stdout.flush()
    if as_json:
        import json  # not at the top: every seqkit command imports this module

        click.echo(json.dumps(found.report(), indent=2))
    log.info("%d detection(s) in %.1f s of audio.", len(found.detections), found.seconds)
