"""``seqkit export RUN --format ...``: the run's model as .keras, SavedModel, TFLite or ONNX."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile

import click

from .common import import_keras, verbosity
from .options import PATH, LazyChoice, overwrite_option, run_dir_argument


def _formats():
    # seqkit.export pulls in numpy (~0.2 s): read its formats only when the option is used.
    from ..export import FORMATS

    return FORMATS


@contextlib.contextmanager
def _converter_output_hidden(verbose: int):
    """Point file descriptor 2 at a temporary file while TensorFlow's converters run.

    The TFLite converter and tf2onnx write C++ log lines straight to fd 2, whatever
    TF_CPP_MIN_LOG_LEVEL says. seqkit's own lines among them are written again afterwards;
    ``-v`` shows everything.
    """
    if verbose > 0:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode("utf-8", "replace").splitlines():
                if line.startswith("seqkit:"):
                    click.echo(line, err=True)


def _check_line(check: dict) -> str:
    if "accuracy" in check:
        return (
            f"check: {check['split']} accuracy {check['accuracy']:.4f} "
            f"(Keras model {check['keras_accuracy']:.4f}, {check['clips']} clips; "
            f"same top label on {check['argmax_agreement']:.1%}; "
            f"max |export - keras| {check['max_abs_diff']:.2g})"
        )
    where = (
        f"the {check['split']} split ({check['clips']} clips)"
        if "split" in check
        else f"{check['clips']} random clips spread like the training features"
    )
    return f"check: max |export - keras| {check['max_abs_diff']:.2g} on {where}"


@click.command()
@run_dir_argument()
@click.option(
    "--format",
    "fmt",
    required=True,
    type=LazyChoice(_formats),
    help="keras (.keras file), saved_model (TensorFlow serving), tflite (float), tflite_int8 "
    "(post-training int8, calibrated on the training split), onnx (needs seqkit[onnx]).",
)
@click.option(
    "--streaming",
    is_flag=True,
    help="One feature frame and the recurrent states in; scores and the new states out.",
)
@click.option(
    "--out",
    type=PATH,
    help="Where to write (default: RUN_DIR/export/model[_stream][_int8].<ext>, "
    "or saved_model[_stream]/).",
)
@overwrite_option("Replace an existing export at that path.")
@click.option(
    "--no-check", is_flag=True, help="Do not compare the export's outputs with the Keras model."
)
@click.pass_context
def export(ctx, run_dir, fmt, streaming, out, overwrite, no_check):
    """Export the model of RUN_DIR; print its path, size and how it compares with Keras.

    Whole clip (features in, scores out) by default; --streaming exports the single-step
    model with explicit state inputs and outputs (google-research kws_streaming's
    external-state mode). A `.json` beside the export records labels, recipe and states.
    """
    import_keras(ctx)
    # The exporters: Keras/TensorFlow (~3 s), not loaded for --help.
    from ..export import export_run

    with _converter_output_hidden(verbosity(ctx)):
        result = export_run(
            run_dir, fmt, streaming=streaming, out=out, overwrite=overwrite, check=not no_check
        )
    for note in result.notes:
        click.echo(f"seqkit: warning: {note}", err=True)
    kind = "streaming" if result.streaming else "whole clip"
    click.echo(f"export: {result.path} ({result.size:,} bytes; {fmt}, {kind})")
    if result.quantization:
        click.echo(f"quantization: {result.quantization}")
    if result.check:
        click.echo(_check_line(result.check))
