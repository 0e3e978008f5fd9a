"""``seqkit generate`` (sample a music run to MIDI, WAV and PNG) and the ``seqkit music`` group
(``convert-pickle``). Results on stdout, diagnostics on stderr; errors are seqkit exceptions
that ``seqkit.cli`` turns into one message and an exit code."""

from __future__ import annotations

import click

from .common import import_keras
from .options import FILE, PATH, overwrite_option, run_dir_argument


@click.command()
@run_dir_argument()
@click.option("--out", required=True, type=PATH, help="Folder for the samples.")
@click.option("--steps", default=64, show_default=True, type=click.IntRange(min=1),
              help="Time steps to sample after the primer.")  # fmt: skip
@click.option("--temperature", default=1.0, show_default=True, type=float,
              help="Below 1: safer, more repetitive; above 1: more random.")  # fmt: skip
@click.option("--primer", type=FILE,
              help="A MIDI file whose notes start every sample.")  # fmt: skip
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0),
              help="Same seed, same output.")  # fmt: skip
@click.option("--num", default=4, show_default=True, type=click.IntRange(1, 1000),
              help="Number of samples.")  # fmt: skip
@click.option("--tempo", default=120.0, show_default=True, type=float,
              help="Quarter notes per minute, for runs whose step is a note value.")  # fmt: skip
@click.option("--sample-rate", default=22050, show_default=True, type=click.IntRange(min=1000),
              help="Sample rate of the WAV files.")  # fmt: skip
@click.option("--synth", default="auto", show_default=True,
              type=click.Choice(["auto", "additive", "fluidsynth"]),
              help="auto: FluidSynth when pyfluidsynth is installed, else the additive synth.")  # fmt: skip
@overwrite_option("Replace the files generate writes in an existing --out (nothing else).")
@click.pass_context
def generate(ctx, run_dir, out, steps, temperature, primer, seed, num, tempo, sample_rate,
             synth, overwrite):  # fmt: skip
    """Sample NUM continuations from the music run RUN_DIR into --out: sample-N.mid,
    sample-N.wav (rendered) and sample-N.png (piano roll), and generate.json."""
    import_keras(ctx)
    # Samples the run's model: Keras/TensorFlow (~3 s), not loaded for --help.
    from ..music.generate import generate as run_generate

    report = run_generate(
        run_dir, out, steps=steps, temperature=temperature, primer=primer, seed=seed, num=num,
        overwrite=overwrite, tempo=tempo, sample_rate=sample_rate, synth=synth,
    )  # fmt: skip
    for path in report["files"]:
        click.echo(path)
    click.echo(f"renderer: {report['renderer']}", err=True)


@click.group()
def music():
    """Music data tools."""


@music.command(name="convert-pickle")
@click.argument("pickle_file", metavar="IN.pickle", type=FILE)
@click.argument("npz_file", metavar="OUT.npz", type=FILE)
@click.option("--steps-per-quarter", default=1, show_default=True, type=click.IntRange(min=1),
              help="Steps per quarter note in the pickle (1 for JSB Chorales, 2 for the "
              "other Boulanger-Lewandowski sets).")  # fmt: skip
@overwrite_option("Replace an existing OUT.npz.")
def convert_pickle(pickle_file, npz_file, steps_per_quarter, overwrite):
    """Convert a Boulanger-Lewandowski piano-roll pickle into an .npz (source pianoroll_npz).

    The pickle is read with an unpickler that refuses any Python object reference, so no
    code in it can run; the .npz holds only arrays and is loaded without pickle.
    """
    from pathlib import Path

    from ..errors import RunError

    # The music sources: numpy and the MIDI libraries (~0.3 s), not loaded for --help.
    from ..music.sources import PianoRollPickle, write_npz

    out = Path(npz_file)
    if out.suffix != ".npz":
        raise click.UsageError(f"OUT must end in .npz (numpy adds it otherwise); received '{out}'.")
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise RunError(f"'{out}' exists; pass --overwrite to replace it, or choose another name.")
    if out.is_symlink() or (out.exists() and not out.is_file()):
        raise RunError(f"'{out}' is not a plain file; refusing to replace it.")
    data = PianoRollPickle(str(pickle_file), steps_per_quarter=steps_per_quarter).load()
    write_npz(out, data.pieces, data.time_step)
    counts = " / ".join(f"{len(data.split(s))} {s}" for s in ("train", "validation", "test"))
    click.echo(f"wrote {out}: {counts} sequences, {sum(len(p) for p in data.pieces)} steps")
