"""Sampling from a trained music run: MIDI files, a WAV rendering of each, a piano-roll PNG.

``generate(RUN, OUT, steps=64, temperature=1.0, primer=None, seed=0, num=4)`` writes, for
``i = 1 .. num``, ``OUT/sample-<i>.mid``, ``OUT/sample-<i>.wav`` and ``OUT/sample-<i>.png``,
plus ``OUT/generate.json`` (the settings, the renderer used, the files). The same run, seed
and settings give the same files: sampling draws from ``numpy.random.default_rng(seed)`` and
the model runs in inference mode.

An existing, non-empty ``OUT`` is refused unless ``overwrite``; even then only the files
generate writes are replaced, everything else in ``OUT`` is left alone.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

from ..errors import ParameterError, RunError, positive_int
from ..runs import Run
from .rolls import notes_to_midi, notes_to_roll
from .sources import read_midi, seconds_per_step
from .synth import render_midi, write_wav

log = logging.getLogger("seqkit")

SYNTHS = ("auto", "additive", "fluidsynth")


def output_names(num: int) -> list[str]:
    names = ["generate.json"]
    for i in range(1, num + 1):
        names += [f"sample-{i}.mid", f"sample-{i}.wav", f"sample-{i}.png"]
    return names


def _check_out(out: Path, num: int, overwrite: bool) -> None:
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise RunError(f"--out '{out}' exists and is not a folder; choose another --out.")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise RunError(
                f"--out '{out}' exists and is not empty; pass --overwrite to replace the files "
                "generate writes there (sample-N.mid/.wav/.png, generate.json), or choose "
                "another --out."
            )
        for name in output_names(num):
            target = out / name
            if target.is_symlink() or (target.exists() and not target.is_file()):
                raise RunError(
                    f"'{target}' is not a plain file; refusing to replace it. Move it away or "
                    "choose another --out."
                )


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def plot_roll(roll, path, lowest: int, title: str = "", primer_steps: int = 0) -> None:
    """A piano-roll PNG: time steps left to right, MIDI notes bottom to top."""
    import matplotlib  # matplotlib (0.35-0.6 s): only when a figure is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # matplotlib (0.35-0.6 s): only when a figure is drawn

    roll = np.asarray(roll, dtype=bool)
    used = np.flatnonzero(roll.any(axis=0))
    lo, hi = (int(used[0]) - 2, int(used[-1]) + 3) if used.size else (0, roll.shape[1])
    lo, hi = max(lo, 0), min(hi, roll.shape[1])
    fig, ax = plt.subplots(figsize=(max(6.0, roll.shape[0] / 12), 4), dpi=100)
    ax.imshow(
        roll[:, lo:hi].T,
        origin="lower",
        aspect="auto",
        cmap="Greys",
        interpolation="nearest",
        extent=(0, roll.shape[0], lowest + lo - 0.5, lowest + hi - 0.5),
    )
    if primer_steps:
        ax.axvspan(0, primer_steps, color="tab:blue", alpha=0.12, label="primer")
        ax.legend(loc="upper right")
    ax.set_xlabel("time step")
    ax.set_ylabel("MIDI note")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(str(path), format="png", metadata={"Software": None})
    plt.close(fig)


def generate(
    run_dir,
    out,
    steps: int = 64,
    temperature: float = 1.0,
    primer=None,
    seed: int = 0,
    num: int = 4,
    overwrite: bool = False,
    tempo: float = 120.0,
    sample_rate: int = 22050,
    synth: str = "auto",
) -> dict:
    """Sample ``num`` continuations from the run in ``run_dir`` into ``out``; return the
    description written to ``generate.json``."""

    steps = positive_int("steps", steps)
    num = positive_int("num", num)
    sample_rate = positive_int("sample_rate", sample_rate)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ParameterError(f"`seed` must be an integer >= 0; received {seed!r}.")
    if not isinstance(tempo, (int, float)) or not tempo > 0:
        raise ParameterError(f"`tempo` must be a positive number (bpm); received {tempo!r}.")
    if synth not in SYNTHS:
        raise ParameterError(f"`synth` must be one of {', '.join(SYNTHS)}; received {synth!r}.")
    run = Run(run_dir)
    task = run.task
    if not hasattr(task, "sample"):
        raise RunError(
            f"Run '{run.path}' is a {run.recipe.task.type} run; generate needs a polyphonic or "
            "melody run."
        )
    out = Path(out)
    _check_out(out, num, overwrite)
    info = run.data_info
    time_step = info.get("time_step") or {"steps_per_quarter": 4}
    sps = seconds_per_step(time_step, tempo)
    primer_events = None
    primer_steps = 0
    if primer is not None:
        primer = Path(primer)
        if not primer.is_file():
            raise ParameterError(f"Primer '{primer}' not found; give a MIDI file.")
        try:
            notes, _ = read_midi(primer, time_step)
        except Exception as exc:  # DataError from a damaged file
            raise ParameterError(f"Primer '{primer}': {exc}.") from None
        if not notes:
            raise ParameterError(f"Primer '{primer}' has no (non-drum) notes.")
        primer_events, dropped = task.primer_from_notes(notes, info)
        if dropped:
            log.warning("Primer %s: %d note(s) outside the model's range dropped.", primer, dropped)
        primer_steps = len(primer_events)
    samples = task.sample(run.model, info, steps, num, temperature, seed, primer_events)

    use_fs = {"auto": None, "additive": False, "fluidsynth": True}[synth]
    out.mkdir(parents=True, exist_ok=True)
    files, renderer = [], None
    spq = int(time_step.get("steps_per_quarter", 4))
    for i, sample in enumerate(samples, start=1):
        notes = task.to_notes(sample, info)
        pm = notes_to_midi(notes, sps, steps_per_quarter=spq, name=f"seqkit sample {i}")
        mid, wav, png = (out / f"sample-{i}{ext}" for ext in (".mid", ".wav", ".png"))
        _atomic(mid, lambda p, pm=pm: pm.write(str(p)))
        audio, renderer = render_midi(pm, sample_rate, use_fluidsynth=use_fs)
        _atomic(wav, lambda p, a=audio: write_wav(p, a, sample_rate))
        roll, _, _ = notes_to_roll(notes, length=primer_steps + steps)
        title = f"{run.path.name}: sample {i} (seed {seed}, temperature {temperature:g})"
        _atomic(png, lambda p, r=roll, t=title: plot_roll(r, p, 21, t, primer_steps))
        files += [str(mid), str(wav), str(png)]
    report = {
        "run": str(run.path),
        "task": run.recipe.task.type,
        "steps": steps,
        "primer": str(primer) if primer is not None else None,
        "primer_steps": primer_steps,
        "temperature": temperature,
        "seed": seed,
        "num": num,
        "seconds_per_step": sps,
        "sample_rate": sample_rate,
        "renderer": renderer,
        "files": files,
    }
    _atomic(
        out / "generate.json",
        lambda p: p.write_text(json.dumps(report, indent=2) + "\n"),
    )
    return report
