"""What the page's buttons ask for, as plain functions (blocking; the app runs them in a thread):
an uploaded WAV analysed by a keyword model, and a music sample generated.

Both reuse the commands' own code: ``seqkit.inference`` (``predict_files``, ``detect_in_file``,
the ``Streamer``) and ``seqkit.explain.gate_activations_for`` for a WAV, ``seqkit.music.generate``
for music. Uploaded files are written into the server's own scratch folder, never next to a run.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import soundfile as sf

from ..errors import DataError, ParameterError
from ..explain import gate_activations_for
from ..inference import detect_in_file, predict_files
from ..music.generate import generate
from ..speech.streaming import audio_blocks
from .models import Loaded
from .streams import COPIES, parse_settings

#: An uploaded WAV: at most this many bytes (HTTP 413 beyond) ...
MAX_UPLOAD_BYTES = 8 * 2**20
#: ... and this many seconds of audio (HTTP 400 beyond).
MAX_UPLOAD_SECONDS = 30.0
#: A primer MIDI file: at most this many bytes.
MAX_PRIMER_BYTES = 512 * 2**10
#: Generation bounds: steps after the primer, temperature, seed.
MAX_STEPS = 1024
MAX_TEMPERATURE = 5.0
MAX_SEED = 2**31 - 1
#: Gate values are sent rounded to this many decimals.
GATE_DECIMALS = 3


class UploadError(ParameterError):
    """An uploaded file the server refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def _named(text: str, path: Path, name: str) -> str:
    """``text`` with the server's scratch path of an upload replaced by the name the user gave
    it (a message shows the user's file, never the server's folders)."""
    return text.replace(f"'{path}'", repr(name)).replace(str(path), name)


def check_wav(path: Path, name: str = "upload") -> float:
    """Seconds of audio in the uploaded file ``path``; UploadError when it is not audio
    soundfile reads, is empty, or is longer than ``MAX_UPLOAD_SECONDS``."""
    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises its own LibsndfileError, RuntimeError, ...
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UploadError(
            f"{name}: cannot be read as audio ({_named(reason, path, name)}); upload a WAV file."
        ) from None
    if not 100 <= info.samplerate <= 384000 or info.channels < 1 or info.frames < 1:
        raise UploadError(
            f"{name}: the header gives {info.frames} frames at {info.samplerate} Hz in "
            f"{info.channels} channel(s); nothing to analyse."
        )
    seconds = info.frames / info.samplerate
    if seconds > MAX_UPLOAD_SECONDS:
        raise UploadError(
            f"{name}: {seconds:.1f} s of audio; uploads are limited to {MAX_UPLOAD_SECONDS:g} s "
            "(stream longer recordings with `seqkit stream RUN FILE`)."
        )
    return seconds


def analyse_wav(loaded: Loaded, path: Path, name: str = "upload", settings=None) -> dict:
    """An uploaded WAV through a keyword model: the whole-clip prediction (``seqkit predict``),
    the streamed posterior track and detections (``seqkit stream``, with ``settings``), and the
    gates r and z of each seqkit GRU layer over the clip (``seqkit explain RUN AUDIO``).
    UploadError (400) for a file that cannot be analysed, naming it as the user did."""
    try:
        return _analyse(loaded, path, name, settings)
    except UploadError:
        raise
    except (DataError, ParameterError) as exc:  # a feature step refusing the clip, ...
        raise UploadError(f"{name}: {_named(str(exc).splitlines()[0], path, name)}") from None


def _analyse(loaded: Loaded, path: Path, name: str, settings) -> dict:
    seconds = check_wav(path, name)
    settings = parse_settings(settings or {})
    model = loaded.model
    with loaded.lock:  # Keras' predict and an export's interpreter: one caller at a time
        try:
            doc = predict_files(model, [path], top_k=len(model.labels))
        except DataError as exc:
            raise UploadError(f"{name}: {_named(str(exc).splitlines()[0], path, name)}") from None
        if not doc["predictions"]:
            reason = doc["skipped"][0]["error"] if doc["skipped"] else "unreadable"
            raise UploadError(f"{name}: {_named(reason, path, name)}")
        top = doc["predictions"][0]["top"]
        out = {
            "file": name,
            "seconds": round(seconds, 3),
            "labels": list(model.labels),
            "top": [{"label": t["label"], "probability": round(t["probability"], 6)} for t in top],
            "settings": settings,
        }
        if loaded.stream_problem:
            out["stream_problem"] = loaded.stream_problem
        else:
            streamer = model.streamer(copies=COPIES)
            rate = int(streamer.features.sample_rate)
            res_type = getattr(model.pipeline.steps[0], "res_type", "soxr_hq")
            try:
                post = [streamer.push(b) for b in audio_blocks(path, rate, res_type)]
            except DataError as exc:
                raise UploadError(
                    f"{name}: {_named(str(exc).splitlines()[0], path, name)}"
                ) from None
            post.append(streamer.flush())
            track = np.concatenate(post) if post else np.zeros((0, len(model.labels)))
            found = detect_in_file(model, path, **settings)
            out.update(
                frame_seconds=float(streamer.features.frame_seconds),
                posteriors=np.round(track, 4).tolist(),
                detections=[
                    {"time_s": d.time_s, "label": d.label, "score": d.score} for d in found
                ],
            )
        gates = []
        for layer in loaded.gate_layers:
            _, acts, _, gru_name = gate_activations_for(model, path, layer_name=layer)
            gates.append(
                {
                    "layer": layer,
                    "gru": gru_name,
                    # (time, units) of the first (only) clip, rounded for the wire
                    **{
                        k: np.round(np.asarray(acts[k])[0], GATE_DECIMALS).tolist()
                        for k in ("r", "z")
                    },  # fmt: skip
                }
            )
    out["gates"] = gates
    out["gate_problem"] = loaded.gate_problem
    return out


def check_generate_params(steps, temperature, seed) -> tuple[int, float, int]:
    """Checked ``(steps, temperature, seed)`` from query strings; ParameterError naming the
    value."""
    try:
        steps_i = int(steps)
    except (TypeError, ValueError):
        raise ParameterError(f"`steps` must be an integer; received {steps!r}.") from None
    if not 1 <= steps_i <= MAX_STEPS:
        raise ParameterError(f"`steps` must be in [1, {MAX_STEPS}]; received {steps_i}.")
    try:
        temp = float(temperature)
    except (TypeError, ValueError):
        raise ParameterError(f"`temperature` must be a number; received {temperature!r}.") from None
    if not (math.isfinite(temp) and 0.0 < temp <= MAX_TEMPERATURE):
        raise ParameterError(
            f"`temperature` must be in (0, {MAX_TEMPERATURE:g}]; received {temperature!r}."
        )
    try:
        seed_i = int(seed)
    except (TypeError, ValueError):
        raise ParameterError(f"`seed` must be an integer; received {seed!r}.") from None
    if not 0 <= seed_i <= MAX_SEED:
        raise ParameterError(f"`seed` must be in [0, {MAX_SEED}]; received {seed_i}.")
    return steps_i, temp, seed_i


def generate_sample(loaded: Loaded, out: Path, steps: int, temperature: float, seed: int,
                    primer: Path | None = None) -> dict:  # fmt: skip
    """One sample of a music run into the new folder ``out`` (``sample-1.mid``, ``.wav``,
    ``.png``), as ``seqkit generate RUN --num 1`` writes it; returns generate's report.

    ``generate`` opens the run folder again (checking its integrity records) on each call; the
    model it loads is the run's small sampling model, a fraction of a generation's time.
    """
    with loaded.lock:  # one generation per model at a time
        try:
            return generate(loaded.entry.path, out, steps=steps, temperature=temperature,
                            primer=primer, seed=seed, num=1)  # fmt: skip
        except ParameterError as exc:
            text = str(exc)
            if primer is not None:
                text = text.replace(str(primer), "the primer MIDI")
            raise ParameterError(text) from None
