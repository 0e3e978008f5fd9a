"""``seqkit data``: make datasets. ``seqkit data synth`` writes keywords spoken by eSpeak NG in
the Speech Commands layout (see ``seqkit.speech.sources.synthetic``)."""

from __future__ import annotations

from pathlib import Path

import click

from .common import verbosity
from .options import FOLDER, CommaList


def _snr(value: str) -> list[float]:
    try:
        low, high = (float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(
            f"must be LOW,HIGH in dB, e.g. 5,30; received {value!r}", param_hint="--snr-db"
        ) from None
    return [low, high]


def _engines(value: str | None) -> dict[str, float] | None:
    """``espeak=0.6,flite=0.4`` -> ``{'espeak': 0.6, 'flite': 0.4}`` (checked by the generator)."""
    if value is None:
        return None
    out = {}
    for part in value.split(","):
        name, _, share = part.partition("=")
        try:
            out[name.strip()] = float(share)
        except ValueError:
            raise click.BadParameter(
                f"must be ENGINE=SHARE,... e.g. espeak=0.6,flite=0.2,festival=0.1,piper=0.1; "
                f"received {value!r}",
                param_hint="--engines",
            ) from None
    return out


def _duration(seconds: float) -> str:
    """``90`` -> ``1.5 min``; seconds, minutes, hours, days or years."""
    for unit, size in (("years", 365.25 * 86400), ("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            value = seconds / size
            return f"{value:.2g} {unit}" if value < 10 else f"{value:,.0f} {unit}"
    return f"{max(seconds, 1):.0f} s"


@click.group(name="data")
def data():
    """Make datasets (seqkit data synth)."""


@data.command()
@click.option(
    "--words",
    required=True,
    type=CommaList("word", "--words yes,no"),
    help="Comma-separated keywords, e.g. yes,no,up,down.",
)
@click.option(
    "--out",
    required=True,
    type=FOLDER,
    help="Folder to write: new, empty, or one seqkit generated before (never any other).",
)
@click.option(
    "--unknown-words",
    default=None,
    type=CommaList(allow_empty=True),
    help="Comma-separated other words for _unknown_ (default: the 20 auxiliary words of "
    "Speech Commands v0.01; '' for none).",
)
@click.option("--speakers", default=200, show_default=True, type=int, help="Synthetic speakers.")
@click.option(
    "--clips-per-speaker", default=3, show_default=True, type=int, help="Takes of each keyword."
)
@click.option(
    "--unknown-per-speaker",
    default=5,
    show_default=True,
    type=int,
    help="Unknown words each speaker says once (drawn from --unknown-words).",
)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--validation-percent", default=15.0, show_default=True, type=float, help="Of the speakers."
)
@click.option(
    "--test-percent", default=15.0, show_default=True, type=float, help="Of the speakers."
)
@click.option(
    "--snr-db", default="5,30", show_default=True, help="Noise: SNR range LOW,HIGH in dB."
)
@click.option(
    "--engines",
    default=None,
    help="Voice engines and their shares of the speakers, e.g. "
    "espeak=0.6,flite=0.2,festival=0.1,piper=0.1 (default: eSpeak NG alone; the others need "
    "Debian's flite / festival and pip install 'seqkit[voices]').",
)
@click.option("--workers", default=None, type=int, help="Processes (default: up to 2).")
@click.option(
    "--yes",
    is_flag=True,
    help="Generate more than 5,000 speakers (the estimate is printed first either way).",
)
@click.pass_context
def synth(
    ctx,
    words,
    out,
    unknown_words,
    speakers,
    clips_per_speaker,
    unknown_per_speaker,
    seed,
    validation_percent,
    test_percent,
    snr_db,
    engines,
    workers,
    yes,
):
    """Write keywords spoken by eSpeak NG (and, with --engines, Flite, Festival and Piper
    voices) to OUT in the Speech Commands layout.

    One folder per word (<speaker>_nohash_<i>.wav, 1 s, 16 kHz, 16-bit), speaker-disjoint
    validation_list.txt and testing_list.txt, and _background_noise_/; read it with the
    speech_commands data source. Run again with the same settings, it changes nothing.
    The size and time it will take are printed first; more than 5,000 speakers need --yes.
    """
    from ..errors import ParameterError
    from ..resources import human_bytes

    # The generator: numpy, librosa and eSpeak NG (~0.2 s), not loaded for --help.
    from ..speech.sources import synthetic as gen

    if workers is not None and workers < 1:
        raise ParameterError(f"`--workers` must be a positive integer; received {workers}.")
    settings = gen.synth_settings(
        words=words,
        unknown_words=unknown_words,
        speakers=speakers,
        clips_per_speaker=clips_per_speaker,
        unknown_per_speaker=unknown_per_speaker,
        seed=seed,
        validation_percent=validation_percent,
        test_percent=test_percent,
        snr_db=_snr(snr_db),
        engines=_engines(engines),
    )
    plan = gen.estimate(out, settings, workers)
    per = gen.clips_per_speaker(settings)
    if verbosity(ctx) >= 0:
        n = plan["workers"]
        click.echo(
            f"estimate: {plan['clips']:,} clips ({speakers:,} speakers x {per}), about "
            f"{human_bytes(plan['bytes'])} on disk, about {_duration(plan['seconds'])} with "
            f"{n} process{'es' if n > 1 else ''}",
            err=True,
        )
    if speakers > gen.MAX_SPEAKERS and not yes:
        raise ParameterError(
            f"`--speakers` must be <= {gen.MAX_SPEAKERS:,} without --yes (MAX_SPEAKERS); "
            f"received {speakers}."
        )
    if plan["clips"] > gen.MAX_CLIPS:
        raise ParameterError(
            f"`--speakers` x clips per speaker must give <= {gen.MAX_CLIPS:,} clips (MAX_CLIPS); "
            f"received {speakers} x {per} = {plan['clips']:,}."
        )
    # A folder seqkit generated before: its old files make room, so synthesize checks later.
    fresh = not (Path(out) / gen.SYNTH_MARKER).exists()
    if fresh and plan["free"] is not None and plan["bytes"] > plan["free"]:
        raise ParameterError(
            f"`--speakers` {speakers} needs about {human_bytes(plan['bytes'])} on disk; {out} has "
            f"{human_bytes(plan['free'])} free."
        )
    summary = gen.synthesize(out, workers=workers, **gen.synth_args(settings))
    if summary is None:
        click.echo(f"{out}: already holds this data (same settings); nothing written.")
        return
    unknown = list(gen.AUXILIARY_WORDS) if unknown_words is None else unknown_words
    spk = summary["speakers"]
    click.echo(
        f"wrote {summary['clips']} clips to {out} in {summary['seconds']:.1f} s "
        f"({summary['workers']} process{'es' if summary['workers'] > 1 else ''})"
    )
    click.echo(f"  words: {', '.join(words)}")
    if settings.get("engines"):
        click.echo("  engines: " + ", ".join(f"{k} {v:g}" for k, v in settings["engines"].items()))
    click.echo(f"  unknown words: {', '.join(unknown) or 'none'}")
    click.echo(
        f"  speakers: {spk['train']} train, {spk['validation']} validation, {spk['test']} test "
        "(speaker-disjoint: validation_list.txt, testing_list.txt)"
    )
    click.echo(
        f"  background noise: {summary['background_noise']} recordings in _background_noise_/"
    )
    extra = "" if unknown and unknown_per_speaker else ", unknown_percent: 0"
    click.echo(
        f"  use it: data: {{source: {{type: speech_commands, root: {out}, "
        f"words: [{', '.join(repr(w) for w in words)}]{extra}}}}}"
    )
