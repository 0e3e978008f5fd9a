"""Planning a comparison (``plan_compare``): nothing is trained; see ``seqkit.compare``."""

from __future__ import annotations

import copy
import datetime as _dt
import logging
import math
import os
from pathlib import Path

import keras

from ..build import build, build_model, checked_task
from ..errors import ParameterError, RecipeError, RegistryError, RunError
from ..recipe import accepted_params, load_recipe, validate_dict
from ..registry import LAYERS, SOURCES
from ..runs import refuse_inside_data
from ..training.timing import first_batch, time_steps
from .common import (
    DEFAULT_BUDGET_MINUTES,
    MATCH_TOLERANCE,
    MATCHES,
    MAX_UNITS,
    RUN_OVERHEAD_S,
    Candidate,
    Plan,
)

log = logging.getLogger("seqkit")

# -- planning ------------------------------------------------------------------------------------


def parse_list(text: str | list, what: str, kind=str) -> list:
    """``'gru, lstm'`` -> ``['gru', 'lstm']``; ``'50,100'`` with ``kind=int`` -> ``[50, 100]``."""
    items = text if isinstance(text, list) else [s.strip() for s in str(text).split(",")]
    items = [s for s in items if s != ""]
    if not items:
        raise ParameterError(f"`{what}` is empty; give a comma-separated list.")
    if kind is int:
        out = []
        for s in items:
            try:
                value = int(s)
            except (TypeError, ValueError):
                raise ParameterError(
                    f"`{what}` must be positive integers separated by commas; received {s!r}."
                ) from None
            if value < 1:
                raise ParameterError(f"`{what}` must be positive integers; received {value}.")
            out.append(value)
        items = out
    dup = sorted({s for s in items if items.count(s) > 1}, key=str)
    if dup:
        raise ParameterError(f"`{what}` names {', '.join(map(str, dup))} more than once.")
    return items


def _is_recurrent_class(obj) -> bool:

    return isinstance(obj, type) and issubclass(obj, keras.layers.RNN)


def check_layers(names: list[str]) -> list[type]:
    """The classes of ``names``; unknown names (with did-you-mean) and non-recurrent layers are
    reported together as one ParameterError."""
    problems, classes = [], []
    for name in names:
        if name not in LAYERS:
            problems.append(LAYERS.unknown_message(name))
            continue
        cls = LAYERS.get(name)  # a broken plugin raises its RegistryError here
        if not _is_recurrent_class(cls):
            recurrent = [n for n in LAYERS.names() if _is_recurrent_class(_safe_get(n))]
            problems.append(
                f"Layer '{name}' is not a recurrent layer (a keras.layers.RNN); compare swaps "
                f"the recipe's recurrent layers. Recurrent layers: {', '.join(recurrent)}."
            )
        classes.append(cls)
    if problems:
        raise ParameterError("--layers: " + "\n--layers: ".join(problems))
    return classes


def _safe_get(name):
    try:
        return LAYERS.get(name)
    except RegistryError:
        return None


def _accepted(cls) -> list[str]:

    return accepted_params(LAYERS, cls)


def variant_doc(base: dict, recurrent, layer, units, seed=None, length=None, name=None) -> dict:
    """``base`` with its recurrent layers swapped for ``layer`` (units per recurrent layer)."""
    doc = copy.deepcopy(base)
    accepted = _accepted(LAYERS.get(layer))
    for i, u in zip(recurrent, units):
        old = doc["model"]["layers"][i]
        new = {"type": layer}
        new.update({k: v for k, v in old.items() if k != "type" and k in accepted})
        new["units"] = int(u)
        doc["model"]["layers"][i] = new
    if seed is not None:
        doc["seed"] = int(seed)
    if length is not None:
        doc["data"]["source"]["length"] = int(length)
    if name is not None:
        doc["name"] = name
    return doc


def _dropped(base: dict, recurrent, layer) -> list[str]:
    accepted = _accepted(LAYERS.get(layer))
    return sorted(
        {k for i in recurrent for k in base["model"]["layers"][i] if k != "type"} - set(accepted)
    )


def trainable_params(model) -> int:
    return int(sum(math.prod(w.shape) for w in model.trainable_weights))


class _Counter:
    """Trainable parameter counts of recipe variants (models built, never trained)."""

    def __init__(self, base, recurrent, input_shape, info):
        self.base, self.recurrent = base, recurrent
        self.input_shape, self.info = input_shape, info
        self.cache: dict = {}

    def __call__(self, layer: str, units: tuple) -> int:
        key = (layer, tuple(units))
        if key not in self.cache:

            recipe = validate_dict(
                variant_doc(self.base, self.recurrent, layer, units), build_layers=False
            )
            task = checked_task(recipe)
            try:
                model = build_model(recipe, task, self.input_shape, self.info)
                self.cache[key] = trainable_params(model)
            finally:
                keras.backend.clear_session()
        return self.cache[key]


def solve_units(count, layer: str, base_units: list[int], target: int) -> tuple[list[int], int]:
    """Units (the recipe's recurrent layers scaled together) whose parameter count is closest to
    ``target``; ParameterError when none is within ``MATCH_TOLERANCE``, saying why."""

    def scaled(k: int) -> tuple:
        return tuple(max(1, round(u * k / base_units[0])) for u in base_units)

    def params(k: int) -> int:
        return count(layer, scaled(k))

    tol = MATCH_TOLERANCE
    if params(1) > target * (1 + tol):
        raise ParameterError(
            f"Layer '{layer}' cannot be parameter-matched: even 1 unit gives {params(1):,} "
            f"trainable parameters, more than the {target:,} (+{tol:.0%}) of the first layer. "
            "Make the first layer larger, or use --match units."
        )
    hi = 1
    while params(hi) < target:
        if hi >= MAX_UNITS:
            raise ParameterError(
                f"Layer '{layer}' cannot be parameter-matched: {MAX_UNITS} units give only "
                f"{params(hi):,} trainable parameters, fewer than the first layer's {target:,}. "
                "Use --match units."
            )
        hi = min(hi * 2, MAX_UNITS)
    lo = max(1, hi // 2)
    while lo < hi:  # smallest k with params(k) >= target
        mid = (lo + hi) // 2
        if params(mid) >= target:
            hi = mid
        else:
            lo = mid + 1
    best = min({max(1, hi - 1), hi}, key=lambda k: (abs(params(k) - target), k))
    got = params(best)
    if abs(got - target) > tol * target:
        below, above = max(1, hi - 1), hi
        raise ParameterError(
            f"Layer '{layer}' cannot be parameter-matched within {tol:.0%} of {target:,} "
            f"trainable parameters: {below} units give {params(below):,} and {above} give "
            f"{params(above):,} (the count does not change finely enough with units). "
            "Use --match units, or make the first layer larger."
        )
    return list(scaled(best)), got


def _length_param(recipe) -> bool:

    return "length" in accepted_params(SOURCES, SOURCES.get(recipe.data.source.type))


def _check_out(out: Path) -> None:
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise RunError(f"--out '{out}' exists and is not a folder; choose another --out.")
    if out.is_dir() and any(out.iterdir()):
        raise RunError(
            f"--out '{out}' already exists and is not empty; seqkit never writes over existing "
            "files. Choose another --out (or remove that folder yourself)."
        )


def format_seconds(s: float) -> str:
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def plan_compare(
    recipe_file,
    layers,
    overrides=(),
    seeds: int = 1,
    match: str = "params",
    lengths=None,
    out=None,
    yes: bool = False,
    budget_minutes: float = DEFAULT_BUDGET_MINUTES,
    command: str = "",
    progress=None,
    estimate: bool = True,
) -> Plan:
    """Check everything and estimate the budget; train nothing. See the module docstring.

    ``estimate=False`` skips the timed training steps (and so the budget check)."""

    say = progress or (lambda msg: None)
    names = parse_list(layers, "--layers")
    if match not in MATCHES:
        raise ParameterError(f"--match must be one of {', '.join(MATCHES)}; received {match!r}.")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or not 1 <= seeds <= 100:
        raise ParameterError(f"--seeds must be an integer in [1, 100]; received {seeds!r}.")
    if not (isinstance(budget_minutes, (int, float)) and budget_minutes > 0):
        raise ParameterError(f"--budget-minutes must be > 0; received {budget_minutes!r}.")
    recipe = load_recipe(recipe_file, list(overrides))
    check_layers(names)
    length_list = parse_list(lengths, "--lengths", kind=int) if lengths is not None else [None]
    if lengths is not None and not _length_param(recipe):
        sweepable = [n for n in SOURCES.names() if n in ("adding_problem", "copy_memory")]
        raise ParameterError(
            f"--lengths sweeps data.source.length, but data source "
            f"'{recipe.data.source.type}' has no `length` parameter; use a source that "
            f"generates sequences ({', '.join(sweepable)})."
        )
    length_list = sorted(length_list, key=lambda v: -1 if v is None else v)
    out = (
        Path(out)
        if out is not None
        else Path("runs")
        / (f"compare-{recipe.name}-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}")
    )
    _check_out(out)
    refuse_inside_data(out, recipe)

    base = recipe.to_dict()
    recurrent = [
        i for i, s in enumerate(recipe.model.layers) if _is_recurrent_class(LAYERS.get(s.type))
    ]
    if not recurrent:
        raise ParameterError(
            f"{recipe_file}: model.layers has no recurrent layer ({', '.join(s.type for s in recipe.model.layers)}); "
            "compare swaps recurrent layers (gru, lstm, rnn, ...)."
        )
    base_units = [int(base["model"]["layers"][i].get("units", 0)) for i in recurrent]
    for name in names:
        if "units" not in _accepted(LAYERS.get(name)):
            raise ParameterError(
                f"Layer '{name}' has no `units` parameter, so it cannot stand in for the "
                f"recipe's {recipe.model.layers[recurrent[0]].type} layer."
            )
    # every variant must be a valid recipe (a length the source refuses, a layer that refuses
    # a kept parameter) before anything runs
    for length in length_list:
        for name in names:
            doc = variant_doc(base, recurrent, name, base_units, length=length)
            try:
                build(validate_dict(doc, file=str(recipe_file)), str(recipe_file))
            except RecipeError as exc:
                where = f" at length {length}" if length else ""
                raise RecipeError(
                    [(p, f"{m} (with layer '{name}'{where})") for p, m in exc.problems],
                    file=str(recipe_file),
                ) from None

    # data once (at the longest length): input shape for counting, a batch for timing
    longest = length_list[-1]
    probe_recipe = validate_dict(variant_doc(base, recurrent, names[0], base_units, length=longest))
    probe = build(probe_recipe)
    task = probe.task
    say("reading the data once to size the models ...")
    data = probe.load_data()

    counter = _Counter(base, recurrent, data.input_shape, data.info)
    candidates = []
    target = counter(names[0], tuple(base_units))
    for name in names:
        if match == "units" or name == names[0]:
            units, params = list(base_units), counter(name, tuple(base_units))
        else:
            units, params = solve_units(counter, name, base_units, target)
        candidates.append(Candidate(name, units, params, _dropped(base, recurrent, name)))

    # the budget, from one timed training step per layer at the longest length
    val_steps = math.ceil(len(data.splits["validation"]) / recipe.train.batch_size)
    step_seconds, first_seconds = {}, {}
    _, steps = first_batch(task, data, recipe.train.batch_size, recipe.seed)
    for cand in candidates if estimate else []:
        say(f"timing one training step of {cand.name} ({cand.units} units) ...")
        r = validate_dict(variant_doc(base, recurrent, cand.name, cand.units, length=longest))
        t = checked_task(r)
        first_seconds[cand.name], step_seconds[cand.name], _ = time_steps(r, t, data)
    total = 0.0
    for length in length_list:
        scale = (length / longest) if length else 1.0
        for cand in candidates if estimate else []:
            per_epoch = (steps + val_steps / 3) * step_seconds[cand.name] * scale
            total += len(range(seeds)) * (
                recipe.train.epochs * per_epoch + RUN_OVERHEAD_S + 2 * first_seconds[cand.name]
            )
    plan = Plan(
        recipe_doc=base,
        recipe_file=str(recipe_file),
        task_type=recipe.task.type,
        monitor=task.monitor,
        mode=task.mode,
        recurrent=recurrent,
        candidates=candidates,
        seeds=[recipe.seed + i for i in range(seeds)],
        lengths=length_list,
        match=match,
        out=out,
        epochs=recipe.train.epochs,
        steps_per_epoch=steps,
        step_seconds=step_seconds,
        estimate_seconds=total,
        budget_minutes=float(budget_minutes),
        command=command,
        load_average=os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0,
    )
    if total > budget_minutes * 60 and not yes:
        slowest = max(step_seconds, key=step_seconds.get)
        at = f" at length {longest}" if longest else ""
        raise ParameterError(
            f"Estimated time {format_seconds(total)} for {plan.runs} runs "
            f"({len(candidates)} layers x {seeds} seeds x {len(length_list)} lengths, "
            f"{recipe.train.epochs} epochs of {steps} steps; one step of {slowest}{at} took "
            f"{step_seconds[slowest] * 1000:.0f} ms) is above the limit of "
            f"{budget_minutes:g} min (--budget-minutes). Pass --yes to run anyway, or reduce "
            "it: --set train.epochs=N, fewer --seeds, --lengths or --layers."
        )
    return plan
