"""What a recipe's values imply in memory, estimated before anything is built or allocated.

``check(recipe, input_shape)`` runs at the start of ``seqkit.build.build`` -- so in
``seqkit validate`` and ``seqkit train`` alike -- and refuses, as a ``RecipeError`` naming the
value's dotted path, a recipe that cannot fit this machine's memory::

    model.layers[0].units: 1000000000000 units need about 43.4 YiB for weights and optimizer
    state (3e+24 parameters); this machine has 23.4 GiB of memory.

The estimate is a lower bound in float32 bytes, from the recipe's values alone:

* layer weights from ``units`` and the input width: a recurrent layer has ``gates x (inputs +
  units + 1) x units`` parameters (GRU 3 gates, LSTM 4, SimpleRNN 1, MGU 2; Keras' GRU one more
  bias row), a dense layer ``(inputs + 1) x units``; doubled by ``bidirectional``; times
  ``2 + slots`` for the gradients and the optimizer's slots (Adam 2, RMSprop 1, SGD 0);
* batch activations: ``batch_size x time steps x width`` of every layer, ``gates + 1`` times
  for a recurrent one (kept for back-propagation through time);
* the ``polyphonic`` task's NADE output (``output: nade``): its weights (``g x (keys +
  nade_units) + keys + nade_units + 2 x keys x nade_units``, ``g`` the last layer's width)
  times the same copies, and ``2 x keys x nade_units`` activations per time step (every key's
  hidden units, before and after the sigmoid: all keys at once), named by ``task.nade_units``;
* the feature steps on one clip (``fix_length``'s, else one second at ``load``'s rate): the
  waveform, the STFT (``n_fft / 2 + 1`` bins, complex64, and its power), the mel filter bank
  (``n_mels x bins``, float32 and librosa's float64 work arrays).

A part alone above the machine's memory is named by the value that makes it large (the value
that, set back to its default, shrinks it most); several parts together above it are named by
the largest. Memory is ``os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')``, or a
cgroup's lower limit, else ``FALLBACK_MEMORY``.
"""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import RecipeError

if TYPE_CHECKING:  # only named in annotations: readers of sizes need not load the schema
    from .recipe import Recipe

__all__ = ["FALLBACK_MEMORY", "Part", "check", "estimate", "human_bytes", "machine_memory"]

FALLBACK_MEMORY = 2**40  # 1 TiB: where the OS does not say, refuse only what no machine holds
FLOAT = 4  # bytes of a float32
GATES = {"gru": 3, "keras_gru": 3, "lstm": 4, "rnn": 1, "mgu": 2}  # recurrent layers
OPTIMIZER_SLOTS = {"adam": 2, "adamw": 2, "nadam": 2, "rmsprop": 1, "adagrad": 1, "sgd": 0}
SPECTRAL_STEPS = ("melspectrogram", "log_mel", "mfcc")
# Where the largest part of a total too large is named.
TOTAL_PATHS = {"features": "features", "weights and optimizer state": "model.layers",
               "activations": "train.batch_size"}  # fmt: skip


@dataclass
class Part:
    """One part of the estimate: its ``bytes``, the dotted ``path`` of the value that makes it
    large and that ``value``, and ``what`` it is (the message's words after the value)."""

    path: str
    value: object
    what: str
    bytes: int
    kind: str  # "features", "weights and optimizer state", "activations"


def machine_memory() -> int:
    """Bytes of memory this process may use: physical memory, or a lower cgroup limit."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not POSIX
        total = 0
    if total <= 0:
        total = FALLBACK_MEMORY
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < total:
            total = int(text)
    return total


def human_bytes(n: float) -> str:
    """``25125584896`` -> ``23.4 GiB``."""
    n = float(min(n, 10**300))
    units = ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")
    power = 0
    while n >= 1024 and power < len(units) - 1:
        n /= 1024
        power += 1
    if power == 0:
        return f"{int(n)} bytes"
    return f"{n:.3g} {units[power]}" if n < 1000 or power == 8 else f"{n:,.0f} {units[power]}"


# -- the parts -----------------------------------------------------------------------------------


def _num(params: dict, key: str, default):
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        return default
    return min(value, 10**30)  # finite, and big enough to be refused


def _clip(features) -> dict:
    """What the feature steps imply for one clip: samples, frames, width, bytes, and the path of
    the value that sets the clip's length. ``features``: ``[(type, params)]``."""
    sr, samples, length_path = 16000, 16000, None
    frames, width, width_path, peak = None, None, None, 0
    for i, (kind, p) in enumerate(features):
        if kind == "load":
            sr = int(_num(p, "sample_rate", 16000))
            samples, length_path = sr, (f"features[{i}].sample_rate", p.get("sample_rate", sr))
        elif kind == "fix_length":
            if "samples" in p:
                samples = int(_num(p, "samples", sr))
                length_path = (f"features[{i}].samples", p["samples"])
            else:
                seconds = _num(p, "seconds", 1.0)
                samples = int(round(seconds * sr))
                if seconds >= sr / 16000:  # else the rate makes the clip long: named as it is
                    length_path = (f"features[{i}].seconds", p.get("seconds", 1.0))
        elif kind in SPECTRAL_STEPS and frames is None:  # on audio
            win_ms, hop_ms = _num(p, "win_ms", None), _num(p, "hop_ms", None)
            if "n_fft" in p or win_ms is None:
                n_fft = int(_num(p, "n_fft", 512))
            else:
                n_fft = 1 << (max(1, int(round(win_ms * sr / 1000))) - 1).bit_length()
            hop = int(hop_ms * sr / 1000) if hop_ms else int(_num(p, "hop_length", 160))
            n_mels = int(_num(p, "n_mels", 40))
            bins = n_fft // 2 + 1
            frames = 1 + samples // max(hop, 1)
            peak = max(
                peak,
                FLOAT * (samples + n_fft)  # the padded waveform
                + 3 * FLOAT * bins * frames  # complex64 STFT and its power
                + (3 * FLOAT * n_mels + 16) * bins  # filter bank, float32 + float64 work arrays
                + FLOAT * n_mels * frames,
            )
            width = int(_num(p, "n_mfcc", 13)) if kind == "mfcc" else n_mels
            key = "n_mfcc" if kind == "mfcc" else "n_mels"
            width_path = (f"features[{i}].{key}", p.get(key, width))
        elif kind == "mfcc" and width is not None:  # on frames
            width = int(_num(p, "n_mfcc", 13))
            width_path = (f"features[{i}].n_mfcc", p.get("n_mfcc", width))
        elif kind == "deltas" and width is not None:
            width *= 1 + int(_num(p, "order", 1))
    peak = max(peak, 3 * FLOAT * samples)  # the waveform: float32, and the dry run's float64
    return {
        "samples": samples, "sr": sr, "frames": frames or 1, "width": width,
        "width_path": width_path, "bytes": peak, "length_path": length_path,
    }  # fmt: skip


def _feature_part(recipe: Recipe) -> tuple[Part | None, dict]:
    features = [(s.type, dict(s.params)) for s in recipe.features]
    clip = _clip(features)
    if not features:
        return None, clip
    # Name the value that, back at its default, shrinks the estimate most.
    best = None
    for i, (_, p) in enumerate(features):
        for key, value in p.items():
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                continue
            smaller = [(t, {k: v for k, v in q.items() if not (j == i and k == key)})
                       for j, (t, q) in enumerate(features)]  # fmt: skip
            gain = clip["bytes"] - _clip(smaller)["bytes"]
            if best is None or gain > best[0]:
                best = (gain, f"features[{i}].{key}", value)
    path, value = (best[1], best[2]) if best and best[0] > 0 else ("features", "the feature steps")
    seconds = clip["samples"] / clip["sr"]
    what = f"needs about {{size}} to compute the features of one {seconds:g} s clip"
    return Part(path, value, what, clip["bytes"], "features"), clip


def _layer_parts(recipe: Recipe, width, width_path, steps, copies: int):
    """Weights and optimizer state of each layer (``copies`` of each weight: itself, its
    gradient and the optimizer's slots); the activations' bytes per example; the widest layer
    output ``(width, (path, value))``; the last layer's width."""
    parts, per_example = [], FLOAT * steps * (width or 0)
    width = width or 1
    widest = (width, width_path)
    for i, step in enumerate(recipe.model.layers):
        p = step.params
        units = p.get("units")
        if isinstance(units, bool) or not isinstance(units, numbers.Integral) or units <= 0:
            continue  # dropout, or a plugin layer without units: width unchanged
        units = int(units)
        gates = GATES.get(step.type)
        if gates is None:  # dense, or a plugin layer with units: a lower bound
            params, kept = (width + 1) * units, 1
        else:
            bias = 2 if p.get("reset_after", step.type == "keras_gru") else 1
            params, kept = gates * (width + units + bias) * units, gates + 1
        directions = 2 if p.get("bidirectional") else 1
        params *= directions
        if width > units and width_path is not None:
            path, value, what = width_path[0], width_path[1], f"inputs to model.layers[{i}] need"
        else:
            path, value, what = f"model.layers[{i}].units", units, "units need"
        shown = float(min(params, 10**300))
        what += f" about {{size}} for weights and optimizer state ({shown:.3g} parameters)"
        bytes_ = params * FLOAT * copies
        parts.append(Part(path, value, what, bytes_, "weights and optimizer state"))
        width = units * directions
        width_path = (f"model.layers[{i}].units", units)
        widest = max(widest, (width, width_path), key=lambda w: w[0])
        per_example += FLOAT * steps * width * kept
    return parts, per_example, widest, width


def _nade_part(recipe: Recipe, width: int, steps: int, copies: int):
    """The NADE output's weights as a Part, and its activations' bytes per example (module
    docstring); ``(None, 0)`` for any other task or output."""
    task = recipe.checked.get("task")
    if not getattr(task, "nade", False):
        return None, 0
    keys, units = task.keys, task.nade_units
    params = width * (keys + units) + keys + units + 2 * keys * units
    what = (f"NADE units need about {{size}} for weights and optimizer state "
            f"({float(params):.3g} parameters)")  # fmt: skip
    part = Part("task.nade_units", units, what, params * FLOAT * copies,
                "weights and optimizer state")  # fmt: skip
    return part, FLOAT * steps * 2 * keys * units


def estimate(recipe: Recipe, input_shape: tuple | None = None) -> list[Part]:
    """The parts of what ``recipe`` needs in memory (module docstring). ``input_shape``: one
    example's ``(time steps, width)`` for tasks without feature steps (their
    ``dummy_input_shape()``); audio tasks' follow from their feature steps."""
    features, clip = _feature_part(recipe)
    parts = [features] if features is not None else []
    if recipe.features:
        steps, width, width_path = clip["frames"], clip["width"], clip["width_path"]
    else:
        shape = tuple(input_shape or ())
        steps = shape[0] if len(shape) > 1 and isinstance(shape[0], int) else 1
        width = shape[-1] if shape and isinstance(shape[-1], int) else None
        width_path = None
    copies = 2 + OPTIMIZER_SLOTS.get(recipe.train.optimizer.type, 2)
    layers, per_example, widest, last = _layer_parts(recipe, width, width_path, steps, copies)
    parts += layers
    nade, nade_bytes = _nade_part(recipe, last, steps, copies)
    if nade is not None:
        parts.append(nade)
        per_example += nade_bytes
    batch = recipe.train.batch_size
    # The activations are named by the factor largest against its usual size: the batch (32),
    # the clip (1,000 time steps) or a layer (1,024 wide).
    factors = [(batch / 32, ("train.batch_size", batch))]
    if recipe.features and clip["length_path"] is not None:
        factors.append((steps / 1000, clip["length_path"]))
    if widest[1] is not None:
        factors.append((widest[0] / 1024, widest[1]))
    path, value = max(factors, key=lambda f: f[0])[1]
    what = f"needs about {{size}} of activations per batch ({batch} x {steps} time steps)"
    parts.append(Part(path, value, what, batch * per_example, "activations"))
    return parts


def check(recipe: Recipe, input_shape: tuple | None = None, memory: int | None = None) -> None:
    """Refuse (RecipeError, dotted paths) a recipe whose estimate exceeds ``memory`` (default:
    ``machine_memory()``); see the module docstring."""
    memory = machine_memory() if memory is None else memory
    parts = estimate(recipe, input_shape)
    have = f"this machine has {human_bytes(memory)} of memory"
    problems = {}  # one line per value: the first part it makes too large
    for p in parts:
        if p.bytes > memory and p.path not in problems:
            problems[p.path] = f"{p.value} {p.what.format(size=human_bytes(p.bytes))}; {have}."
    problems = list(problems.items())
    total = sum(p.bytes for p in parts)
    if not problems and total > memory:
        largest = max(parts, key=lambda p: p.bytes).kind
        shares = ", ".join(
            f"{kind} {human_bytes(sum(p.bytes for p in parts if p.kind == kind))}"
            for kind in ("features", "weights and optimizer state", "activations")
            if any(p.kind == kind for p in parts)
        )
        problems = [
            (TOTAL_PATHS[largest],
             f"the recipe needs about {human_bytes(total)} in all ({shares}); {have}.")
        ]  # fmt: skip
    if problems:
        raise RecipeError(problems)
