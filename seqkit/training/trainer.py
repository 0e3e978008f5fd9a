"""Train a recipe and leave a self-describing run folder (its format: ``seqkit.runs``).

``train(recipe)`` builds the recipe's components once (``seqkit.build``), reads the data before
any folder exists, builds and fits the model (``seqkit.training.fit``), evaluates the best epoch
and records everything. A run folder holds::

    recipe.yaml      the resolved recipe (defaults filled in, overrides applied)
    run.json         status (running / completed / failed), times, versions, command
    data.json        what the task recorded about the data: labels, counts, skipped files
    labels.txt       (kws) one label per line, in the order of the model's outputs
    model.keras      the best model by validation (the task's monitor), with its normalisation
    metrics.json     train / validation / test metrics of that best model, counts, timing
    history.csv      per-epoch loss, metrics and learning rate
    logs/train, logs/validation   TensorBoard event files (scalars, learning rate, model graph)

Every other command (``explain RUN``, later ``evaluate``, ``predict``, ``stream``, ``export``)
reads only this folder. An existing folder is never replaced without ``overwrite=True``, and a
folder that is not a seqkit run folder is never deleted, even then.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import keras

from ..build import Built, build, build_model
from ..errors import RecipeError, RunError
from ..recipe import Recipe
from ..runs import (
    RUN_MARKER,
    Run,
    _mkdir,
    _now,
    check_recorded,
    data_fingerprint,
    file_records,
    load_model,
    plan_run_dir,
    plugins_used,
    read_run_info,
    read_run_recipe,
    refuse_inside_data,
    save_model_atomic,
    sha256,
    versions,
    write_json_atomic,
)
from . import distribute
from .callbacks import _epoch_callbacks
from .fit import Checkpointer, fit

log = logging.getLogger("seqkit")


def train(
    recipe: Recipe,
    run_dir=None,
    runs_root="runs",
    overwrite=False,
    verbose: int = 1,
    recipe_file: str | None = None,
    on_run_dir=None,
    resume=None,
) -> Path:
    """Train ``recipe``; return the run folder (see ``train_run``)."""
    return train_run(recipe, run_dir, runs_root, overwrite, verbose, recipe_file, on_run_dir,
                     resume).path  # fmt: skip


def train_run(
    recipe: Recipe,
    run_dir=None,
    runs_root="runs",
    overwrite=False,
    verbose: int = 1,
    recipe_file: str | None = None,
    on_run_dir=None,
    resume=None,
) -> Run:
    """Train ``recipe``; return the run folder as a ``Run`` (holding the recipe and task that
    trained it, so that nothing is built again). Progress goes to ``seqkit.progress``.

    The data is read before any folder is created, so a data problem leaves nothing behind.
    With ``overwrite``, the new run is trained in a hidden sibling folder and swapped in only
    when it completes: a failed or interrupted run leaves the previous one as it was.
    With ``resume=RUN``, an interrupted run continues from its last checkpoint
    (``seqkit.training.fit``).
    """
    strategy = distribute.setup(recipe.train.distribute)  # before TensorFlow runs anything
    try:
        distribute.check_batch_size(strategy, recipe.train.batch_size)
    except RecipeError as exc:
        raise RecipeError(exc.problems, file=recipe_file) from None
    built = build(recipe, recipe_file, devices=distribute.batch_devices(strategy))
    if resume is not None:
        path = _resume(built, Path(resume), verbose, on_run_dir, strategy)
        return Run(path, recipe, built.task)
    scratch = None
    if recipe.train.distribute.type == "multi_worker" and distribute.worker_index() != 0:
        # Not the chief: train in step with it, but into a scratch folder unless told where.
        if run_dir is None:
            scratch = Path(tempfile.mkdtemp(prefix="seqkit-worker-"))
            run_dir = scratch / "run"
        on_run_dir = None
    final, replacing = plan_run_dir(recipe.name, run_dir, runs_root, overwrite)
    refuse_inside_data(final, built.recipe, built.parts.source)
    keras.utils.set_random_seed(recipe.seed)
    t0 = time.time()
    task = built.task
    data = built.load_data()
    feature_seconds = time.time() - t0

    run = final.with_name(f".{final.name}.partial-{os.getpid()}") if replacing else final
    _mkdir(run)
    if on_run_dir is not None:
        on_run_dir(final)
    info = {
        "status": "running",
        "started": _now(),
        "recipe_file": recipe_file,
        "command": sys.argv,
        "versions": versions(),
        "data": data_fingerprint(data),
        "timing": {"feature_seconds": round(feature_seconds, 2)},
    }
    write_json_atomic(run / RUN_MARKER, info)
    (run / "recipe.yaml").write_text(recipe.to_yaml())
    try:
        _finish(run, info, recipe, verbose, task, data, started=time.time() - feature_seconds,
                strategy=strategy)  # fmt: skip
    except BaseException:
        if replacing:
            shutil.rmtree(run, ignore_errors=True)
            log.warning("The previous run in '%s' was kept unchanged.", final)
        raise
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    keras.backend.clear_session()
    if replacing:
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.rename(final, old)
        os.rename(run, final)
        shutil.rmtree(old, ignore_errors=True)
    return Run(final, recipe, task) if (final / RUN_MARKER).is_file() else _Scratch(final)


class _Scratch:
    """What a multi_worker helper's run returns: its scratch folder, removed once it is done."""

    def __init__(self, path: Path):
        self.path = path


def _finish(run: Path, info: dict, recipe, verbose, task, data, started, resume=None,
            strategy=None) -> None:  # fmt: skip
    """Train into ``run`` and record the outcome in run.json, whatever it is."""
    try:
        try:
            metrics = _train_into(recipe, run, verbose, task, data, resume, strategy, info)
        except Exception as exc:
            clear = distribute.worker_failure(exc, recipe.train.distribute)
            if clear is None:
                raise
            raise clear from None
    except BaseException as exc:
        interrupted = isinstance(exc, KeyboardInterrupt)
        info["status"] = "interrupted" if interrupted else "failed"
        info["error"] = f"{type(exc).__name__}: {exc}" if not interrupted else "interrupted"
        if interrupted or (run / "checkpoint" / "state.json").is_file():
            info["resume"] = f"seqkit train {info.get('recipe_file') or 'RECIPE'} --resume {run}"
        info["finished"] = _now()
        with contextlib.suppress(OSError):
            write_json_atomic(run / RUN_MARKER, info)
        raise
    info["plugins"] = plugins_used()
    write_json_atomic(run / "metrics.json", metrics)
    # every file seqkit wrote and will read again, checked by Run (seqkit.runs.RECORDED_FILES)
    info["files"] = {**info.get("files", {}), **file_records(run)}
    info["status"] = "completed"
    info.pop("error", None)
    info.pop("resume", None)
    info["finished"] = _now()
    info.setdefault("timing", {})["seconds"] = round(time.time() - started, 2)
    write_json_atomic(run / RUN_MARKER, info)


def _resume(built: Built, run: Path, verbose: int, on_run_dir, strategy=None) -> Path:
    """Continue the interrupted run in ``run`` from its last checkpoint."""
    recipe = built.recipe
    info = read_run_info(run)  # RunError naming run.json, recipe.yaml or a file it records
    saved = read_run_recipe(run)
    check_recorded(run, info)
    if info.get("status") == "completed":
        raise RunError(f"Run '{run}' already completed; nothing to resume.")
    a, b = saved.to_dict(), recipe.to_dict()
    a["train"].pop("epochs"), b["train"].pop("epochs")
    if a != b:
        diff = sorted(_diff_keys(a, b))
        raise RunError(
            f"The recipe differs from the one run '{run}' was started with "
            f"({', '.join(diff[:6])}); only train.epochs may change on --resume."
        )
    keras.utils.set_random_seed(recipe.seed)
    task = built.task
    t0 = time.time()
    data = built.load_data()
    if data_fingerprint(data) != info.get("data"):
        log.warning("The data's file list changed since '%s' was started; resuming anyway.", run)
    with distribute.scope(strategy):
        model, progress = Checkpointer.load(run)
    if on_run_dir is not None:
        on_run_dir(run)
    (run / "recipe.yaml").write_text(recipe.to_yaml())
    info.setdefault("files", {})["recipe.yaml"] = sha256(run / "recipe.yaml")
    info.update(status="running", resumed=[*info.get("resumed", []), _now()])
    info.pop("error", None)
    write_json_atomic(run / RUN_MARKER, info)
    log.info("Resuming '%s' at epoch %d, step %d.", run, progress.epoch + 1, progress.step)
    _finish(run, info, recipe, verbose, task, data, started=t0, resume=(model, progress),
            strategy=strategy)  # fmt: skip
    keras.backend.clear_session()
    return run


def _diff_keys(a, b, prefix=""):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in set(a) | set(b):
            yield from _diff_keys(a.get(k), b.get(k), f"{prefix}{k}.")
    elif a != b:
        yield prefix.rstrip(".")


def _check_disk(run: Path, model) -> None:
    """Fail before training when the run folder cannot hold the model and its checkpoints."""
    need = int(model.count_params()) * 4 * 3 * 3 + 20 * 2**20  # weights + 2 optimizer slots, x3
    try:
        probe = run / ".write-test"
        probe.write_bytes(b"0" * 4096)
        probe.unlink()
        free = shutil.disk_usage(run).free
    except OSError as exc:
        raise RunError(f"Cannot write into run folder '{run}': {exc.strerror or exc}.") from None
    if free < need:
        raise RunError(
            f"Not enough free disk space for run folder '{run}': {free / 2**20:.0f} MiB free, "
            f"about {need / 2**20:.0f} MiB needed for the model and its checkpoints."
        )


def _write_history(run: Path, history: list[dict]) -> None:
    keys = list(dict.fromkeys(k for row in history for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    tmp = run / f".history.csv.tmp-{os.getpid()}"
    tmp.write_text(buf.getvalue())
    os.replace(tmp, run / "history.csv")


def _train_into(recipe: Recipe, run: Path, verbose: int, task, data, resume=None,
                strategy=None, info=None) -> dict:  # fmt: skip
    if resume is None:
        write_json_atomic(run / "data.json", data.info)
        task.write_files(run, data)
        if info is not None:  # recipe.yaml, data.json, the task's files: checked on --resume
            info["files"] = file_records(run)
            write_json_atomic(run / RUN_MARKER, info)
        with distribute.scope(strategy):
            model = build_model(recipe, task, data.input_shape, data.info,
                                data.splits["train"].x)  # fmt: skip
        _check_disk(run, model)
        progress = None
    else:
        model, progress = resume
    with distribute.fit_scope(strategy):
        progress = fit(
            model,
            task,
            data,
            recipe.train,
            run,
            _epoch_callbacks(run, task, data),
            verbose,
            recipe.seed,
            progress,
            on_epoch=lambda p: _write_history(run, p.history),
        )
    if not (run / "model.keras").is_file():  # no epoch improved on nothing: keep the last one
        save_model_atomic(model, run / "model.keras")
    best = load_model(run / "model.keras")
    metrics = {
        "task": recipe.task.type,
        "monitor": task.monitor,
        "best_epoch": progress.best_epoch,
        "epochs_run": len(progress.history),
        "params": int(best.count_params()),
        **{k: v for k, v in data.info.items() if k in ("labels", "examples", "skipped")},
    }
    for split in data.splits:
        metrics[split] = task.evaluate(best, data, split)
    return metrics
