"""``seqkit compare``: one recipe trained once per layer (and seed, and sequence length), measured.

What the documents claim in a table -- a simple RNN cannot handle long sequences, the LSTM is
slower and heavier, the GRU is faster with fewer parameters and performs well -- becomes a
measurement on the user's own recipe:

1. **Plan** (``plan_compare``; nothing is trained). Every recurrent layer of the recipe is
   swapped for each layer named (registry names: ``gru``, ``lstm``, ``rnn``, ``keras_gru``,
   plugin layers), keeping the parameters the new layer takes (``units``, ``dropout``, ...).
   ``match='units'`` keeps the recipe's units; ``match='params'`` solves each layer's units so
   its trainable parameter count is within ``MATCH_TOLERANCE`` (2 %) of the first layer's (all
   recurrent layers of a recipe scaled together). Unknown layers (did-you-mean), layers that
   are not recurrent, layers that cannot be matched (and why), a ``--lengths`` sweep over a
   source without ``length``, and an existing ``--out`` are refused here. Then one training
   step per layer is timed at the longest length, and the whole budget estimated from it
   (epochs x steps per epoch x runs, plus start-up); above ``budget_minutes`` the plan is
   refused unless ``yes``.
2. **Run** (``run_plan``). Each (length, layer, seed) is trained by ``seqkit.train.train`` in a
   fresh worker process (``python -m seqkit.compare --worker``), so that timings and memory are
   not coloured by earlier runs, into ``OUT/runs/<id>/`` -- an ordinary run folder. The worker
   measures the training time of each epoch (first batch to last, validation excluded), the
   peak resident memory during training above the process's memory when training starts
   (sampled every 5 ms), the inference time per sequence (the best model on a batch of 64
   test sequences, median of 10 calls) and, with ``gradients``, the gradient flow
   (``seqkit.gradflow``) of the model at initialisation and of the best model.
3. **Report** (``write_report``): ``compare.md`` / ``compare.csv`` (one row per layer and
   length: parameters, training seconds per epoch, inference ms per sequence, peak memory, best
   validation metric, test metric, each the mean +- the standard deviation over seeds),
   ``runs.csv`` (one row per run), ``curves.png`` (validation curves), and with several lengths
   ``sweep.md`` / ``sweep.csv`` / ``sweep.png`` (at which length each layer stops learning),
   with gradients ``gradients.png`` / ``gradients.csv``. ``compare.json`` holds everything.

Seeds: seed ``i`` trains with recipe seed ``recipe.seed + i`` (weights, batch order); the data
(a generated source's own ``seed``) stays the same, so runs differ only by initialisation.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import datetime as _dt
import json
import logging
import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .errors import ParameterError, RecipeError, RegistryError, RunError, SeqkitError
from .registry import LAYERS, SOURCES

log = logging.getLogger("seqkit")

MATCH_TOLERANCE = 0.02
MAX_UNITS = 8192
DEFAULT_BUDGET_MINUTES = 30.0
INFERENCE_BATCH = 64
GRADIENT_EXAMPLES = 32
# Process start, imports, graph tracing and evaluation of one run, beyond its training steps:
# measured ~10-20 s per run on the 2-core development machine; the estimate takes 20 s.
RUN_OVERHEAD_S = 20.0
MATCHES = ("params", "units")


@dataclass
class Candidate:
    """One layer to compare: its registry name, units per recurrent layer, trainable params."""

    name: str
    units: list[int]
    params: int
    dropped: list[str] = field(default_factory=list)


@dataclass
class Plan:
    recipe_doc: dict  # the resolved recipe (overrides applied)
    recipe_file: str | None
    task_type: str
    monitor: str
    mode: str
    recurrent: list[int]  # indices of the recipe's recurrent layers
    candidates: list[Candidate]
    seeds: list[int]
    lengths: list[int | None]
    match: str
    out: Path
    epochs: int
    steps_per_epoch: int
    step_seconds: dict[str, float]  # per layer, at the longest length
    estimate_seconds: float
    budget_minutes: float
    command: str = ""
    load_average: float = 0.0

    @property
    def runs(self) -> int:
        return len(self.candidates) * len(self.seeds) * len(self.lengths)


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
    import keras

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
    from .recipe import accepted_params

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
            import keras

            from .recipe import validate_dict
            from .train import build_model, make_task

            recipe = validate_dict(
                variant_doc(self.base, self.recurrent, layer, units), build_layers=False
            )
            task = make_task(recipe)
            task.check_recipe(recipe)
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
    from .recipe import accepted_params

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


def _first_batch(task, data, batch_size: int, seed: int) -> tuple[tuple, int]:
    """One training batch ``(x, y[, sample_weight])`` as the trainer would feed it, and the
    number of batches in an epoch -- from arrays or from the task's own dataset."""
    make = getattr(task, "epoch_inputs", None)
    if make is not None:
        inputs = make(data, 0, batch_size, seed)
    else:  # an older task protocol
        inputs = task.fit_inputs(data, batch_size)
    if "y" not in inputs:  # a keras.utils.PyDataset
        ds = inputs["x"]
        return tuple(ds[0]), len(ds)
    b = min(batch_size, len(inputs["y"]))
    batch = (inputs["x"][:b], inputs["y"][:b])
    if inputs.get("sample_weight") is not None:
        batch += (inputs["sample_weight"][:b],)
    return batch, math.ceil(len(inputs["y"]) / batch_size)


def _time_steps(recipe, task, data, reps: int = 3) -> tuple[float, float, int]:
    """(first call, median of ``reps`` later calls) of one training step in seconds, and the
    number of steps in an epoch."""
    import keras

    from .train import build_model

    keras.utils.set_random_seed(recipe.seed)
    train_x = data.splits["train"].x
    model = build_model(recipe, task, data.input_shape, data.info,
                        train_x if isinstance(train_x, np.ndarray) else None)  # fmt: skip
    batch, steps = _first_batch(task, data, recipe.train.batch_size, recipe.seed)
    try:
        t0 = time.perf_counter()
        model.train_on_batch(*batch)
        first = time.perf_counter() - t0
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            model.train_on_batch(*batch)
            times.append(time.perf_counter() - t0)
    finally:
        keras.backend.clear_session()
    return first, statistics.median(times), steps


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
    from .recipe import load_recipe, validate_dict
    from .train import _refuse_inside_data, check_recipe, make_task

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
    _refuse_inside_data(out, recipe)

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
                check_recipe(validate_dict(doc, file=str(recipe_file)), str(recipe_file))
            except RecipeError as exc:
                where = f" at length {length}" if length else ""
                raise RecipeError(
                    [(p, f"{m} (with layer '{name}'{where})") for p, m in exc.problems],
                    file=str(recipe_file),
                ) from None

    # data once (at the longest length): input shape for counting, a batch for timing
    longest = length_list[-1]
    probe_recipe = validate_dict(variant_doc(base, recurrent, names[0], base_units, length=longest))
    task = make_task(probe_recipe)
    task.check_recipe(probe_recipe)
    say("reading the data once to size the models ...")
    data = task.load_data(probe_recipe)

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
    _, steps = _first_batch(task, data, recipe.train.batch_size, recipe.seed)
    for cand in candidates if estimate else []:
        say(f"timing one training step of {cand.name} ({cand.units} units) ...")
        r = validate_dict(variant_doc(base, recurrent, cand.name, cand.units, length=longest))
        t = make_task(r)
        t.check_recipe(r)
        first_seconds[cand.name], step_seconds[cand.name], _ = _time_steps(r, t, data)
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


# -- running -------------------------------------------------------------------------------------


def run_id(layer: str, seed: int, length: int | None) -> str:
    return f"{layer}-s{seed}" + (f"-T{length}" if length else "")


def jobs(plan: Plan) -> list[dict]:
    out = []
    name = plan.recipe_doc.get("name", "run")
    for length in plan.lengths:
        for cand in plan.candidates:
            for seed in plan.seeds:
                rid = run_id(cand.name, seed, length)
                doc = variant_doc(
                    plan.recipe_doc,
                    plan.recurrent,
                    cand.name,
                    cand.units,
                    seed=seed,
                    length=length,
                    name=f"{name}-{rid}"[:64],
                )
                out.append(
                    {
                        "id": rid,
                        "layer": cand.name,
                        "units": cand.units,
                        "seed": seed,
                        "length": length,
                        "recipe": doc,
                        "run_dir": str(plan.out / "runs" / rid),
                        "result": str(plan.out / "runs" / f"{rid}.json"),
                        "log": str(plan.out / "runs" / f"{rid}.log"),
                    }
                )
    return out


def run_plan(plan: Plan, gradients: bool = False, progress=None) -> Path:
    """Train every run of ``plan`` (one worker process each) and write the report; return OUT.

    A run that fails (a non-finite loss, say) is recorded as failed and the others go on; the
    report is rewritten after every run, so an interrupted comparison keeps what it measured.
    """
    say = progress or (lambda msg: None)
    _check_out(plan.out)
    (plan.out / "runs").mkdir(parents=True, exist_ok=True)
    results = []
    todo = jobs(plan)
    started = time.time()
    for n, job in enumerate(todo, 1):
        job["gradients"] = bool(gradients)
        t0 = time.time()
        result = _run_worker(job)
        results.append(result)
        if result["status"] == "completed":
            key = plan.monitor.removeprefix("val_")
            test = result.get("test") or result.get("validation") or {}
            shown = f"test {key} {test.get(key, float('nan')):.4g}"
            if "baseline_ratio" in test:
                shown += f" ({test['baseline_ratio']:.3f} x baseline)"
        else:
            shown = f"FAILED: {result.get('error', '?')}"
        say(f"[{n}/{len(todo)}] {job['id']}: {shown} ({time.time() - t0:.0f} s)")
        write_report(plan, results, elapsed=time.time() - started)
    if results and all(r["status"] != "completed" for r in results):
        raise RunError(
            f"All {len(results)} runs failed; see the logs in '{plan.out / 'runs'}' "
            f"(first: {results[0].get('error', '?')})."
        )
    return plan.out


def _run_worker(job: dict) -> dict:
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with open(job["log"], "w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "seqkit.compare", "--worker"],
            stdin=subprocess.PIPE,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            proc.communicate(json.dumps(job).encode())
        except BaseException:  # Ctrl-C: the worker got it too; give it a moment, then stop it
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            raise
    if proc.returncode == 130:
        raise KeyboardInterrupt
    path = Path(job["result"])
    if path.is_file():
        return json.loads(path.read_text())
    tail = Path(job["log"]).read_text(errors="replace").strip().splitlines()[-3:]
    result = {k: job[k] for k in ("id", "layer", "units", "seed", "length")}
    result |= {"status": "failed", "error": f"worker exit {proc.returncode}: " + " | ".join(tail)}
    path.write_text(json.dumps(result, indent=2) + "\n")
    return result


# -- the worker (a fresh process per run) --------------------------------------------------------


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):  # not Linux: fall back to the peak so far
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class _MemorySampler:
    """Peak RSS (sampled every 5 ms on a thread) above the RSS at ``start``."""

    def __init__(self):
        import threading

        self.base = None
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self):
        if self.base is None:
            self.base = self.peak = _rss_bytes()
            self._thread.start()

    def _loop(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss_bytes())

    def stop(self) -> float:
        """Megabytes above the start."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if self.base is None:
            return 0.0
        self.peak = max(self.peak, _rss_bytes())
        return (self.peak - self.base) / 2**20


def _probe_callback(memory, gradient_batch, state):
    import keras

    class Probe(keras.callbacks.Callback):
        """Per epoch: first batch start -> last batch end; memory; gradients at the start."""

        def on_train_begin(self, logs=None):
            if gradient_batch is not None and "init" not in state["gradients"]:
                from .gradflow import state_gradients

                state["gradients"]["init"] = []
                try:
                    flow = state_gradients(self.model, *gradient_batch)
                    state["gradients"]["init"] = flow.norms.tolist()
                except Exception as exc:  # a measurement, not the run
                    state["notes"].append(f"gradients: {type(exc).__name__}: {exc}")
            memory.start()

        def on_epoch_begin(self, epoch, logs=None):
            self._t0, self._c0 = time.perf_counter(), time.process_time()
            self._last = None

        def on_train_batch_end(self, batch, logs=None):
            self._last, self._clast = time.perf_counter(), time.process_time()

        def on_epoch_end(self, epoch, logs=None):
            if self._last is not None:
                state["epoch_seconds"].append(self._last - self._t0)
                state["epoch_cpu_seconds"].append(self._clast - self._c0)

    return Probe()


def _instrument(task_type: str, callback) -> None:
    """In this worker process only: the recipe's task, with ``callback`` among its callbacks.

    The trainer asks its task for extra callbacks every epoch; re-registering the task's name
    with a subclass adds the probe without touching the trainer or the recipe (the run folder
    records the task as usual).
    """
    from .registry import TASKS

    cls = TASKS.get(task_type)

    class Instrumented(cls):
        def callbacks(self, run_dir, data):
            return [*super().callbacks(run_dir, data), callback]

    Instrumented.__name__ = cls.__name__
    Instrumented.__qualname__ = cls.__qualname__
    Instrumented.__module__ = cls.__module__
    TASKS.register(task_type, Instrumented, override=True)


def _scalars(d: dict) -> dict:
    return {
        k: v
        for k, v in d.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    }


def _median_epoch(seconds: list[float]) -> float | None:
    if not seconds:
        return None
    later = seconds[1:] if len(seconds) > 1 else seconds  # the first epoch traces the graph
    return float(statistics.median(later))


def _history(run_dir: Path) -> dict:
    path = run_dir / "history.csv"
    if not path.is_file():
        return {}
    with open(path) as f:
        rows = list(csv.DictReader(f))
    keys = [k for k in (rows[0] if rows else {}) if k != "epoch"]
    out = {}
    for k in keys:
        with contextlib.suppress(ValueError, TypeError):
            out[k] = [float(r[k]) for r in rows]
    return out


def _stack_batch(split, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``n`` examples of a split as arrays; sequences of different lengths (music) are
    cut to the shortest of them."""
    xs, ys = split.x[:n], split.y[:n]
    if isinstance(xs, np.ndarray):
        return xs, np.asarray(ys)
    steps = min(len(x) for x in xs)
    x = np.stack([np.asarray(v[:steps]) for v in xs]).astype(np.float32)
    y = np.stack([np.asarray(v[:steps]) for v in ys])
    return x, y


def _time_inference(model, split) -> dict:
    """The best model on up to ``INFERENCE_BATCH`` sequences: ms per sequence, wall and CPU."""
    x, _ = _stack_batch(split, INFERENCE_BATCH)
    for _ in range(2):
        model.predict_on_batch(x)
    times, cpu = [], []
    for _ in range(10):
        t0, c0 = time.perf_counter(), time.process_time()
        model.predict_on_batch(x)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {
        "infer_ms_per_sequence": 1000 * statistics.median(times) / len(x),
        "infer_cpu_ms_per_sequence": 1000 * statistics.median(cpu) / len(x),
        "inference_batch": len(x),
        "inference_steps": int(x.shape[1]),
    }


def worker(job: dict) -> dict:
    """Train one run of a comparison and measure it; return (and write) its result."""
    import resource

    import keras

    from .recipe import validate_dict
    from .train import Run, make_task, train

    recipe = validate_dict(job["recipe"])
    result = {k: job[k] for k in ("id", "layer", "units", "seed", "length")}
    wall = time.time()
    task = make_task(recipe)
    task.check_recipe(recipe)
    data = task.load_data(recipe)
    split = "test" if "test" in data.splits else "validation"
    probe_split = data.splits[split]
    gradient_batch = None
    if job.get("gradients"):
        gradient_batch = _stack_batch(probe_split, GRADIENT_EXAMPLES)
    state = {"epoch_seconds": [], "epoch_cpu_seconds": [], "gradients": {}, "notes": []}
    memory = _MemorySampler()
    _instrument(recipe.task.type, _probe_callback(memory, gradient_batch, state))
    try:
        path = train(recipe, run_dir=job["run_dir"], verbose=0)
    finally:
        peak_mb = memory.stop()
    run = Run(path)
    metrics = run.metrics
    model = run.model
    notes = []
    timing = {}
    try:
        timing = _time_inference(model, probe_split)
    except Exception as exc:  # a measurement, not the run: note it and go on
        notes.append(f"inference timing: {type(exc).__name__}: {exc}")
    if gradient_batch is not None:
        from .gradflow import state_gradients

        try:
            state["gradients"]["trained"] = state_gradients(model, *gradient_batch).norms.tolist()
        except Exception as exc:
            notes.append(f"gradients: {type(exc).__name__}: {exc}")
    result |= {
        "status": "completed",
        "run_dir": str(path),
        "params": trainable_params(model),
        "epochs_run": metrics.get("epochs_run"),
        "best_epoch": metrics.get("best_epoch"),
        "epoch_seconds": [round(s, 4) for s in state["epoch_seconds"]],
        "train_seconds_per_epoch": _median_epoch(state["epoch_seconds"]),
        "train_cpu_seconds_per_epoch": _median_epoch(state["epoch_cpu_seconds"]),
        **timing,
        "peak_mb": peak_mb,
        "process_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "validation": _scalars(metrics.get("validation", {})),
        "test": _scalars(metrics.get("test", {})),
        "history": _history(path),
        "gradients": state["gradients"],
        "wall_seconds": time.time() - wall,
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "notes": notes + state["notes"],
    }
    learns = getattr(task, "learns", None)
    if learns is not None and "test" in metrics:
        result["learns"] = bool(learns(metrics["test"]))
    keras.backend.clear_session()
    return result


def _worker_main() -> int:
    job = json.loads(sys.stdin.read())
    logging.basicConfig(level=logging.WARNING, format="seqkit: %(levelname)s: %(message)s")
    try:
        result = worker(job)
    except KeyboardInterrupt:
        return 130
    except SeqkitError as exc:
        result = {k: job[k] for k in ("id", "layer", "units", "seed", "length")}
        result |= {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
        print(f"seqkit: error: {exc}", file=sys.stderr)
    Path(job["result"]).write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["status"] == "completed" else 1


# -- the report ----------------------------------------------------------------------------------


def _stats(values) -> tuple[float, float] | None:
    values = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not values:
        return None
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else 0.0)


def _fmt(stat, digits=4, n=1) -> str:
    if stat is None:
        return "-"
    mean, sd = stat
    text = f"{mean:.{digits}g}"
    return f"{text} ± {sd:.2g}" if n > 1 else text


def summarize(plan: Plan, results: list[dict]) -> list[dict]:
    """One row per (length, layer): means and standard deviations over the completed seeds."""
    key = plan.monitor.removeprefix("val_")
    rows = []
    for length in plan.lengths:
        for cand in plan.candidates:
            runs = [r for r in results if r["layer"] == cand.name and r["length"] == length]
            if not runs:
                continue
            ok = [r for r in runs if r["status"] == "completed"]
            row = {
                "length": length,
                "layer": cand.name,
                "units": "/".join(map(str, cand.units)),
                "params": cand.params,
                "seeds": len(ok),
                "failed": len(runs) - len(ok),
                "train_s_per_epoch": _stats(r.get("train_seconds_per_epoch") for r in ok),
                "train_cpu_s_per_epoch": _stats(r.get("train_cpu_seconds_per_epoch") for r in ok),
                "infer_ms_per_seq": _stats(r.get("infer_ms_per_sequence") for r in ok),
                "peak_mb": _stats(r.get("peak_mb") for r in ok),
                f"val_{key}": _stats(r["validation"].get(key) for r in ok),
                f"test_{key}": _stats(r["test"].get(key) for r in ok),
            }
            if any("baseline_ratio" in r.get("test", {}) for r in ok):
                row["test_baseline_ratio"] = _stats(r["test"].get("baseline_ratio") for r in ok)
            if any("learns" in r for r in ok):
                learned = sum(bool(r.get("learns")) for r in ok)
                row["learned"] = f"{learned}/{len(runs)}"
                row["learns"] = learned * 2 > len(runs)
            grads = [r["gradients"] for r in ok if r.get("gradients")]
            for phase in ("init", "trained"):
                ratios = [
                    g[phase][0] / g[phase][-1] for g in grads if g.get(phase) and g[phase][-1] > 0
                ]
                if ratios:
                    row[f"grad_first_over_last_{phase}"] = _stats(ratios)
            rows.append(row)
    return rows


def _metric_label(plan: Plan) -> str:
    key = plan.monitor.removeprefix("val_")
    return "MSE" if plan.task_type == "sequence_regression" and key == "loss" else key


def markdown_table(plan: Plan, rows: list[dict]) -> str:
    key = plan.monitor.removeprefix("val_")
    label = _metric_label(plan)
    n = len(plan.seeds)
    sweep = any(r["length"] for r in rows)
    cols = (["length"] if sweep else []) + [
        "layer",
        "units",
        "params",
        "train s/epoch",
        "train CPU s/epoch",
        "infer ms/seq",
        "peak MB",
        f"best val {label}",
        f"test {label}",
    ]
    extra_ratio = any("test_baseline_ratio" in r for r in rows)
    if extra_ratio:
        cols.append("test / baseline")
    if any("learned" in r for r in rows):
        cols.append("learned")
    if any("grad_first_over_last_init" in r for r in rows):
        cols += ["grad h1/hT init", "grad h1/hT trained"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = ([str(r["length"])] if sweep else []) + [
            r["layer"] + (f" ({r['failed']} failed)" if r["failed"] else ""),
            r["units"],
            f"{r['params']:,}",
            _fmt(r["train_s_per_epoch"], 3, n),
            _fmt(r.get("train_cpu_s_per_epoch"), 3, n),
            _fmt(r["infer_ms_per_seq"], 3, n),
            _fmt(r["peak_mb"], 3, n),
            _fmt(r[f"val_{key}"], 4, n),
            _fmt(r[f"test_{key}"], 4, n),
        ]
        if extra_ratio:
            cells.append(_fmt(r.get("test_baseline_ratio"), 3, n))
        if "learned" in cols:
            cells.append(r.get("learned", "-"))
        if "grad h1/hT init" in cols:
            cells += [
                _fmt(r.get("grad_first_over_last_init"), 2, 1),
                _fmt(r.get("grad_first_over_last_trained"), 2, 1),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def sweep_table(plan: Plan, rows: list[dict]) -> str | None:
    """Layers x lengths: the test metric (or its ratio to the baseline), and where learning
    stops."""
    lengths = [length for length in plan.lengths if length]
    if len(lengths) < 2:
        return None
    key = plan.monitor.removeprefix("val_")
    ratio = any("test_baseline_ratio" in r for r in rows)
    learn = any("learns" in r for r in rows)
    cols = (
        ["layer"] + [f"T={length}" for length in lengths] + (["stops learning at"] if learn else [])
    )
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for cand in plan.candidates:
        cells, stop = [cand.name], None
        for length in lengths:
            r = next((r for r in rows if r["layer"] == cand.name and r["length"] == length), None)
            if r is None:
                cells.append("")
                continue
            stat = r.get("test_baseline_ratio") if ratio else r.get(f"test_{key}")
            text = _fmt(stat, 3, 1)
            if learn:
                text += " ✓" if r.get("learns") else " ✗"
                text += f" ({r['learned']})" if len(plan.seeds) > 1 else ""
                if not r.get("learns") and stop is None:
                    stop = length
            cells.append(text)
        if learn:
            done = all(
                any(r["layer"] == cand.name and r["length"] == length for r in rows)
                for length in lengths
            )
            cells.append(
                f"T={stop}" if stop else (f"learns up to T={lengths[-1]}" if done else "...")
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _csv(path: Path, rows: list[dict]) -> None:
    flat = []
    for r in rows:
        d = {}
        for k, v in r.items():
            if isinstance(v, tuple):
                d[f"{k}_mean"], d[f"{k}_std"] = v
            else:
                d[k] = v
        flat.append(d)
    keys = list(dict.fromkeys(k for d in flat for k in d))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(flat)


def _plot_curves(plan: Plan, results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = plan.lengths
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, length in zip(axes[0], panels):
        for cand in plan.candidates:
            curves = [
                r["history"].get(plan.monitor)
                for r in results
                if r["status"] == "completed" and r["layer"] == cand.name and r["length"] == length
            ]
            curves = [c for c in curves if c]
            if not curves:
                continue
            n = min(len(c) for c in curves)
            arr = np.array([c[:n] for c in curves])
            epochs = np.arange(1, n + 1)
            (line,) = ax.plot(epochs, arr.mean(0), label=cand.name, marker="o", markersize=3)
            if len(arr) > 1:
                ax.fill_between(epochs, arr.min(0), arr.max(0), alpha=0.2, color=line.get_color())
        if plan.mode == "min":
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(f"T={length}" if length else plan.recipe_doc.get("name", ""), fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel(plan.monitor)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_sweep(plan: Plan, rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ratio = any("test_baseline_ratio" in r for r in rows)
    key = "test_baseline_ratio" if ratio else f"test_{plan.monitor.removeprefix('val_')}"
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for cand in plan.candidates:
        pts = [(r["length"], r[key]) for r in rows if r["layer"] == cand.name and r.get(key)]
        if pts:
            xs = [p[0] for p in pts]
            ax.errorbar(xs, [p[1][0] for p in pts], yerr=[p[1][1] for p in pts], marker="o",
                        capsize=3, label=cand.name)  # fmt: skip
    if ratio:
        from .longrange import LEARN_RATIO

        ax.axhline(LEARN_RATIO, color="grey", linestyle="--", linewidth=1, label="learns below")
        ax.set_yscale("log")
        ax.set_ylabel("test loss / baseline")
    else:
        ax.set_ylabel(key)
    ax.set_xscale("log")
    ax.set_xlabel("sequence length T")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _gradient_outputs(plan: Plan, results: list[dict], out: Path) -> bool:
    from .gradflow import plot_gradients

    panels, lines = {}, []
    seed = plan.seeds[0]
    for phase in ("init", "trained"):
        for length in plan.lengths:
            curves = {}
            for r in results:
                if r["status"] != "completed" or r["seed"] != seed or r["length"] != length:
                    continue
                norms = r.get("gradients", {}).get(phase)
                if norms:
                    curves[r["layer"]] = norms
                    lines += [(length, r["layer"], phase, t + 1, v) for t, v in enumerate(norms)]
            if curves:
                where = f"T={length}, " if length else ""
                panels[f"{where}{'at initialisation' if phase == 'init' else 'trained'}"] = curves
    if not panels:
        return False
    plot_gradients(panels, out / "gradients.png", columns=max(1, len(plan.lengths)),
                   title=f"||dL/dh_t||, seed {seed}, {GRADIENT_EXAMPLES} test sequences")  # fmt: skip
    with open(out / "gradients.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["length", "layer", "phase", "t", "mean_grad_norm"])
        w.writerows(lines)
    return True


def _steps_note(results: list[dict]) -> str:
    steps = sorted({r["inference_steps"] for r in results if r.get("inference_steps")})
    if not steps:
        return ""
    return f" sequences of {steps[0]}" + (f"-{steps[-1]}" if len(steps) > 1 else "") + " steps"


def write_report(plan: Plan, results: list[dict], elapsed: float | None = None) -> dict:
    """Write compare.md/.csv, runs.csv, curves.png (and sweep.*, gradients.*); return paths."""
    import platform

    out = plan.out
    rows = summarize(plan, results)
    paths = {"markdown": out / "compare.md", "csv": out / "compare.csv", "runs": out / "runs.csv"}
    _csv(paths["csv"], rows)
    _csv(
        paths["runs"],
        [
            {
                k: (json.dumps(v) if isinstance(v, (list, dict)) else v)
                for k, v in r.items()
                if k not in ("history", "gradients", "epoch_seconds")
            }
            | {f"val_{k}": v for k, v in r.get("validation", {}).items()}
            | {f"test_{k}": v for k, v in r.get("test", {}).items()}
            for r in results
        ],
    )
    if any(r["status"] == "completed" for r in results):
        paths["curves"] = out / "curves.png"
        _plot_curves(plan, results, paths["curves"])
    label = _metric_label(plan)
    n = len(plan.seeds)
    text = [
        f"# seqkit compare: {plan.recipe_doc.get('name')}",
        "",
        f"Command: `{plan.command}`" if plan.command else f"Recipe: `{plan.recipe_file}`",
        "",
        f"Task `{plan.task_type}`, {plan.epochs} epochs of {plan.steps_per_epoch} steps, "
        f"batch {plan.recipe_doc['train']['batch_size']}; layers matched by "
        f"**{plan.match}**; seeds {', '.join(map(str, plan.seeds))}"
        + (" (mean ± standard deviation over seeds)" if n > 1 else "")
        + ".",
        "",
        markdown_table(plan, rows),
        "",
        "Columns: trainable parameters; training seconds per epoch (first batch to last, "
        "validation excluded, median over the epochs after the first), wall-clock and CPU "
        "time of the process (all threads; steadier than wall-clock on a shared machine); "
        "inference ms per "
        f"sequence (the best model on a batch of {INFERENCE_BATCH}{_steps_note(results)}, "
        "median of 10 calls); peak "
        "MB: resident memory of the training process above its level when training started; "
        f"best val {label}: the best model's (by `{plan.monitor}`); test {label}: the same "
        "model on the test split.",
    ]
    dropped = [f"{c.name} drops {', '.join(c.dropped)}" for c in plan.candidates if c.dropped]
    if dropped:
        text += ["", "Recipe parameters a layer does not take: " + "; ".join(dropped) + "."]
    sweep = sweep_table(plan, rows)
    if sweep:
        from .longrange import LEARN_RATIO

        paths["sweep"] = out / "sweep.md"
        text += ["", "## Sweep over sequence length", "", sweep, ""]
        if any("learns" in r for r in rows):
            text.append(
                f"Cells: test loss / the memoryless baseline (mean over seeds); ✓ learns: a "
                f"test loss below {LEARN_RATIO:g} x the baseline (for the adding problem: "
                "MSE < 0.0167), in more than half of the seeds (count in brackets)."
            )
        paths["sweep"].write_text(sweep + "\n")
        _csv(
            out / "sweep.csv",
            [
                {k: r.get(k) for k in ("length", "layer", "units", "params", "learned", "learns")}
                | {"test_baseline_ratio": r.get("test_baseline_ratio")}
                for r in rows
            ],
        )
        paths["sweep_png"] = out / "sweep.png"
        _plot_sweep(plan, rows, paths["sweep_png"])
    if _gradient_outputs(plan, results, out):
        paths["gradients"] = out / "gradients.png"
        text += [
            "",
            "Gradient flow (`gradients.png`, `gradients.csv`): mean ||dL/dh_t|| over "
            f"{GRADIENT_EXAMPLES} test sequences; `grad h1/hT` is its value at the first step "
            "over its value at the last step (1 = no decay; 1e-6 = vanished; 0 = below float32's "
            "range).",
        ]
    import keras

    text += [
        "",
        f"Machine: {os.cpu_count()} CPU cores (load average {plan.load_average:.1f} when the "
        "comparison started: other processes share them, so times are indicative), "
        f"Python {platform.python_version()}, Keras "
        f"{keras.__version__} ({keras.backend.backend()}); "
        f"{_dt.datetime.now().strftime('%Y-%m-%d')}"
        + f"; estimated {format_seconds(plan.estimate_seconds)} before training"
        + (f", took {format_seconds(elapsed)}" if elapsed is not None else "")
        + ".",
    ]
    paths["markdown"].write_text("\n".join(text) + "\n")
    record = {
        "plan": {k: v for k, v in asdict(plan).items() if k != "out"} | {"out": str(plan.out)},
        "rows": rows,
        "runs": results,
    }
    (out / "compare.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    paths["json"] = out / "compare.json"
    return paths


if __name__ == "__main__":  # the worker: ``python -m seqkit.compare --worker`` < job.json
    if sys.argv[1:] != ["--worker"]:
        sys.exit("usage: python -m seqkit.compare --worker < JOB.json (used by seqkit compare)")
    sys.exit(_worker_main())
