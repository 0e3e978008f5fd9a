"""Build the model a recipe describes, train it, and leave a self-describing run folder.

A run folder holds::

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
import datetime as _dt
import json
import logging
import os
import platform
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from .errors import ParameterError, RecipeError, RunError
from .features import FixLength, Load
from .recipe import (
    LAYER_WRAPPER_KEYS,
    OPTIMIZERS,
    Recipe,
    param_message,
    signature_params,
    validate_dict,
)
from .registry import LAYERS, TASKS, load_plugin_layers
from .tasks import make_pipeline

log = logging.getLogger("seqkit")

RUN_MARKER = "run.json"


# -- run folders ---------------------------------------------------------------------------------


def _timestamp() -> str:
    return _dt.datetime.now().strftime("%Y%m%d-%H%M%S")


# What seqkit itself writes into a run folder; --overwrite replaces only folders holding these.
RUN_FILES = ("run.json", "recipe.yaml", "labels.txt", "data.json", "model.keras",
             "metrics.json", "history.csv", "logs", "checkpoint", "export")  # fmt: skip
# ... and the pictures other commands write into it (explain, evaluate).
RUN_PICTURES = ("gates-", "confusion-")


def _check_replaceable(path: Path) -> None:
    """Raise unless ``path`` is a seqkit run folder holding only what seqkit wrote."""
    if path.is_symlink() or not path.is_dir():
        kind = "a symbolic link" if path.is_symlink() else "not a folder"
        raise RunError(f"'{path}' is {kind}; refusing to replace it. Choose another --run-dir.")
    try:
        info = json.loads((path / RUN_MARKER).read_text())
        is_run = isinstance(info, dict) and "seqkit" in info.get("versions", {})
    except (OSError, ValueError):
        is_run = False
    if not is_run:
        raise RunError(
            f"'{path}' is not a seqkit run folder (no {RUN_MARKER} written by seqkit); "
            "refusing to delete it even with --overwrite. Choose another --run-dir."
        )
    foreign = sorted(
        p.name
        for p in path.iterdir()
        if p.name not in RUN_FILES and not (p.name.startswith(RUN_PICTURES) and p.suffix == ".png")
    )
    if foreign:
        raise RunError(
            f"Run folder '{path}' holds files seqkit did not write ({', '.join(foreign[:5])}); "
            "refusing to replace it. Move them out, or choose another --run-dir."
        )


def plan_run_dir(name: str, run_dir=None, runs_root="runs", overwrite=False):
    """Return ``(path, replacing)`` for a new run, checking it may be used; changes nothing."""
    if run_dir is None:
        base = Path(runs_root) / f"{name}-{_timestamp()}"
        path, n = base, 1
        while path.exists() or path.is_symlink():
            n += 1
            path = base.with_name(f"{base.name}-{n}")
        return path, False
    path = Path(run_dir)
    if not (path.exists() or path.is_symlink()):
        return path, False
    if not overwrite:
        raise RunError(
            f"Run folder '{path}' already exists; pass --overwrite to replace it, "
            "or choose another --run-dir."
        )
    _check_replaceable(path)
    return path, True


def _mkdir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=False)
    except OSError as exc:
        raise RunError(f"Cannot create run folder '{path}': {exc.strerror or exc}.") from exc


def versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for dist in (
        "seqkit",
        "keras",
        "tensorflow",
        "tensorflow-cpu",
        "librosa",
        "numpy",
        "soundfile",
    ):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    import keras

    out["keras_backend"] = keras.backend.backend()
    return out


def plugins_used() -> dict:
    """``{kind/name: "distribution version"}`` of every plugin component imported so far."""
    from .registry import REGISTRIES

    used = {}
    for kind, reg in REGISTRIES.items():
        for name in reg.names():
            entry = reg.entry(name)
            if entry.is_plugin and entry.obj is not None:
                used[f"{kind}/{name}"] = entry.source
    return used


def _write_json(path: Path, data) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


# -- model ---------------------------------------------------------------------------------------


def _is_recurrent(obj) -> bool:
    import keras

    return isinstance(obj, type) and issubclass(obj, keras.layers.RNN)


def build_layers(recipe: Recipe, needs_sequences: bool):
    """Instantiate the recipe's layers, setting ``return_sequences`` where the user did not.

    A recurrent layer returns sequences when another recurrent layer follows it, or when it is
    the last one and the task pools over time; an explicit ``return_sequences`` always wins.
    """
    import keras

    classes = [LAYERS.get(step.type) for step in recipe.model.layers]
    recurrent = [i for i, cls in enumerate(classes) if _is_recurrent(cls)]
    layers = []
    for i, (step, cls) in enumerate(zip(recipe.model.layers, classes)):
        params = {k: v for k, v in step.params.items() if k not in LAYER_WRAPPER_KEYS}
        if i in recurrent and "return_sequences" not in params:
            later = [j for j in recurrent if j > i]
            params["return_sequences"] = bool(later) or (i == recurrent[-1] and needs_sequences)
        layer = cls(**params)
        if step.params.get("bidirectional"):
            layer = keras.layers.Bidirectional(layer, name=f"bidirectional_{i}")
        layers.append(layer)
    return layers


def make_task(recipe: Recipe):
    return TASKS.get(recipe.task.type)(**recipe.task.params)


def _normalize(recipe: Recipe, task) -> bool:
    n = recipe.model.normalize
    return task.normalize_default if n is None else n


def build_model(recipe: Recipe, task, input_shape, info: dict, train_x=None):
    """Input -> (Normalization fitted on ``train_x``) -> recipe layers -> task head, compiled.

    ``train.precision`` sets Keras' dtype policy first (``mixed_bfloat16`` / ``mixed_float16``
    compute in 16 bits with float32 variables; the head's outputs are cast back to float32 so
    losses are computed in float32).
    """
    import keras

    keras.mixed_precision.set_dtype_policy(recipe.train.precision)
    inputs = keras.Input(shape=tuple(input_shape), name="features")
    x = inputs
    if _normalize(recipe, task):
        norm = keras.layers.Normalization(axis=-1, name="normalize")
        if train_x is not None:
            norm.adapt(np.asarray(train_x).reshape(-1, train_x.shape[-1]))
        x = norm(x)
    for i, layer in enumerate(build_layers(recipe, task.needs_sequences)):
        try:
            x = layer(x)
        except (ValueError, TypeError) as exc:
            before = f" after model.layers[{i - 1}]" if i else ""
            raise RecipeError(
                [(f"model.layers[{i}]", f"cannot take the output{before}: {_first_line(exc)}")]
            ) from None
        if isinstance(x, (list, tuple)):
            raise RecipeError(
                [
                    (
                        f"model.layers[{i}]",
                        "returns several tensors (return_state: true?); "
                        "a recipe layer must return one",
                    )
                ]
            )
    outputs = task.head(x, info)
    if recipe.train.precision != "float32":
        outputs = keras.layers.Activation("linear", dtype="float32", name="float32_out")(outputs)
    try:
        model = keras.Model(inputs, outputs, name=recipe.name.replace(".", "_").replace("-", "_"))
    except ValueError as exc:
        raise RecipeError([("model.layers", _first_line(exc))]) from None
    opt = recipe.train.optimizer
    optimizer = getattr(keras.optimizers, OPTIMIZERS[opt.type])(
        learning_rate=opt.learning_rate, clipnorm=opt.clipnorm
    )
    model.compile(optimizer=optimizer, **task.compile_args())
    return model


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def check_recipe(recipe: Recipe, file: str | None = None) -> None:
    """Dry-run a recipe: features on a synthetic clip, then the model; raise RecipeError.

    Catches what the per-step checks cannot see: a feature step that fails on the audio the
    steps before it produce (``fmax`` above the resampled Nyquist, ``deltas`` wider than the
    clip), and layers that do not fit together (``return_state``, duplicate names, a layer
    that cannot take the previous one's output).
    """
    import keras

    task = make_task(recipe)
    problems = task.check_recipe(recipe)
    if problems:
        raise RecipeError(problems, file=file)
    if task.uses_audio_features:
        steps = make_pipeline(recipe).steps
        if not isinstance(steps[0], Load):  # a plugin's own reader: no synthetic clip to feed it
            return
        sr = steps[0].sample_rate
        length = next((s.length(sr) for s in steps if isinstance(s, FixLength)), sr)
        x = np.random.default_rng(0).normal(scale=0.1, size=length).astype(np.float32)
        for i, step in enumerate(steps[1:], start=1):
            try:
                x = step(x, sr)
            except (ParameterError, ValueError) as exc:
                suffix, text = param_message(exc, signature_params(type(step))[0])
                raise RecipeError(
                    [
                        (
                            f"features[{i}]{suffix}",
                            f"{text.rstrip('.')} (on a {length / sr:g} s clip at {sr} Hz).",
                        )
                    ],
                    file=file,
                ) from None
            sr = step.output_rate(sr)
        shape = x.shape
    else:
        shape = task.dummy_input_shape()
    try:
        build_model(recipe, task, shape, task.dummy_info())
    except RecipeError as exc:
        raise RecipeError(exc.problems, file=file) from None
    finally:
        keras.backend.clear_session()
        keras.mixed_precision.set_dtype_policy("float32")


def _learning_rate_logger():
    """A callback putting the optimizer's learning rate into the epoch logs (history.csv)."""
    import keras

    class LearningRateToLogs(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                lr = self.model.optimizer.learning_rate
                logs["learning_rate"] = float(keras.ops.convert_to_numpy(lr))

    return LearningRateToLogs()


def _graph_writer(log_dir: Path, input_shape):
    """A callback writing the model's op graph to TensorBoard's Graphs tab (TensorFlow backend).

    Keras' own TensorBoard callback writes the conceptual (Keras) graph, and the op graph only
    when it logs per batch; this writes the forward pass's op graph once, at the start.
    """
    import keras

    class GraphWriter(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            if keras.backend.backend() != "tensorflow":
                return
            import tensorflow as tf

            fn = tf.function(lambda x: self.model(x, training=False))
            spec = tf.TensorSpec((None, *input_shape), tf.float32)
            graph = fn.get_concrete_function(spec).graph
            with tf.summary.create_file_writer(str(log_dir / "train")).as_default():
                tf.summary.graph(graph)

    return GraphWriter()


# -- data ----------------------------------------------------------------------------------------


def load_data(recipe: Recipe, progress=None):
    """The recipe's task's data (``TaskData``): arrays per split, input shape, info."""
    return make_task(recipe).load_data(recipe, progress=progress)


# -- training ------------------------------------------------------------------------------------


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
    """Train ``recipe``; return the run folder. Progress goes to stderr.

    The data is read before any folder is created, so a data problem leaves nothing behind.
    With ``overwrite``, the new run is trained in a hidden sibling folder and swapped in only
    when it completes: a failed or interrupted run leaves the previous one as it was.
    With ``resume=RUN``, an interrupted run continues from its last checkpoint (``seqkit.fit``).
    """
    import keras

    from . import distribute

    strategy = distribute.setup(recipe.train.distribute)  # before TensorFlow runs anything
    try:
        distribute.check_batch_size(strategy, recipe.train.batch_size)
    except RecipeError as exc:
        raise RecipeError(exc.problems, file=recipe_file) from None
    check_recipe(recipe, recipe_file)
    if resume is not None:
        return _resume(recipe, Path(resume), verbose, on_run_dir, strategy)
    scratch = None
    if recipe.train.distribute.type == "multi_worker" and distribute.worker_index() != 0:
        # Not the chief: train in step with it, but into a scratch folder unless told where.
        if run_dir is None:
            import tempfile

            scratch = Path(tempfile.mkdtemp(prefix="seqkit-worker-"))
            run_dir = scratch / "run"
        on_run_dir = None
    final, replacing = plan_run_dir(recipe.name, run_dir, runs_root, overwrite)
    _refuse_inside_data(final, recipe)
    keras.utils.set_random_seed(recipe.seed)
    t0 = time.time()
    task = make_task(recipe)
    data = task.load_data(recipe)
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
    _write_json(run / RUN_MARKER, info)
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
    return final


def _now() -> str:
    return _dt.datetime.now().isoformat(timespec="seconds")


def _finish(run: Path, info: dict, recipe, verbose, task, data, started, resume=None,
            strategy=None) -> None:  # fmt: skip
    """Train into ``run`` and record the outcome in run.json, whatever it is."""
    from .distribute import worker_failure

    try:
        try:
            metrics = _train_into(recipe, run, verbose, task, data, resume, strategy)
        except Exception as exc:
            clear = worker_failure(exc, recipe.train.distribute)
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
            _write_json(run / RUN_MARKER, info)
        raise
    info["files"] = {"model.keras": metrics.pop("_model_sha256")}
    info["plugins"] = plugins_used()
    _write_json(run / "metrics.json", metrics)
    info["status"] = "completed"
    info.pop("error", None)
    info.pop("resume", None)
    info["finished"] = _now()
    info.setdefault("timing", {})["seconds"] = round(time.time() - started, 2)
    _write_json(run / RUN_MARKER, info)


def data_fingerprint(data) -> dict:
    """SHA-256 of the list of examples used (path, label, split; not the contents), per split."""
    import hashlib

    out = {}
    for split, s in data.splits.items():
        lines = sorted(
            "\t".join(str(getattr(it, f, "")) for f in ("path", "label", "split"))
            if not isinstance(it, str)
            else it
            for it in s.items
        )
        out[split] = {
            "examples": len(s),
            "list_sha256": hashlib.sha256("\n".join(lines).encode()).hexdigest(),
        }
    return out


def _resume(recipe: Recipe, run: Path, verbose: int, on_run_dir, strategy=None) -> Path:
    """Continue the interrupted run in ``run`` from its last checkpoint."""
    import keras
    import yaml

    from .fit import Checkpointer

    try:
        info = json.loads((run / RUN_MARKER).read_text())
        saved = validate_dict(yaml.safe_load((run / "recipe.yaml").read_text()),
                              file=str(run / "recipe.yaml"), build_layers=False)  # fmt: skip
    except (OSError, ValueError) as exc:
        raise RunError(f"'{run}' is not a resumable seqkit run folder ({exc}).") from None
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
    task = make_task(recipe)
    t0 = time.time()
    data = task.load_data(recipe)
    if data_fingerprint(data) != info.get("data"):
        log.warning("The data's file list changed since '%s' was started; resuming anyway.", run)
    from .distribute import scope

    with scope(strategy):
        model, progress = Checkpointer.load(run)
    if on_run_dir is not None:
        on_run_dir(run)
    (run / "recipe.yaml").write_text(recipe.to_yaml())
    info.update(status="running", resumed=[*info.get("resumed", []), _now()])
    info.pop("error", None)
    _write_json(run / RUN_MARKER, info)
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


def _refuse_inside_data(run: Path, recipe: Recipe) -> None:
    """No run folder inside the source's data folder (its ``data_root``, else its ``root``)."""
    from .tasks import make_source

    try:
        root = getattr(make_source(recipe), "data_root", None)
    except Exception:  # the source's own checks run again, with their message, when data loads
        root = None
    if root is None:
        root = recipe.data.source.params.get("root")
    if not isinstance(root, (str, Path)):
        return
    run_abs, root_abs = run.resolve(), Path(root).expanduser().resolve()
    if run_abs == root_abs or root_abs in run_abs.parents:
        raise RunError(
            f"Run folder '{run}' would be inside the data folder '{root}' "
            "(data.source); seqkit never writes into a dataset. Choose another "
            "--run-dir or --runs-root."
        )


def _epoch_callbacks(run: Path, task, data):
    """Fresh logging callbacks for each epoch's ``fit`` call (TensorBoard, learning rate)."""
    import keras

    def make(first: bool):
        out = [
            _learning_rate_logger(),
            keras.callbacks.TensorBoard(log_dir=str(run / "logs"), write_graph=first),
            *task.callbacks(run, data),
        ]
        if first:
            out.append(_graph_writer(run / "logs", data.input_shape))
        return out

    return make


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
    import csv
    import io

    keys = list(dict.fromkeys(k for row in history for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    tmp = run / f".history.csv.tmp-{os.getpid()}"
    tmp.write_text(buf.getvalue())
    os.replace(tmp, run / "history.csv")


def _train_into(recipe: Recipe, run: Path, verbose: int, task, data, resume=None,
                strategy=None) -> dict:  # fmt: skip
    from .distribute import fit_scope, scope
    from .fit import fit, save_model_atomic, sha256

    if resume is None:
        _write_json(run / "data.json", data.info)
        task.write_files(run, data)
        with scope(strategy):
            model = build_model(recipe, task, data.input_shape, data.info,
                                data.splits["train"].x)  # fmt: skip
        _check_disk(run, model)
        progress = None
    else:
        model, progress = resume
    with fit_scope(strategy):
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
    metrics["_model_sha256"] = sha256(run / "model.keras")
    return metrics


# -- reading run folders -------------------------------------------------------------------------


def load_model(path, for_training: bool = False):
    """``keras.saving.load_model`` after importing installed plugin layers (so they resolve).

    A model saved with its optimizer on another Keras backend (a run trained with
    ``KERAS_BACKEND=torch``, opened on TensorFlow to export it) names that backend's optimizer
    class, which cannot be imported here: for inference (``for_training=False``) the model is
    then loaded without compiling it (weights and layers are backend-independent; evaluate,
    predict, stream and export need no optimizer); to continue training it, RunError says to
    use the backend it was trained on.
    """
    import keras

    import seqkit.layers  # noqa: F401  (registers seqkit's GRU with Keras)
    import seqkit.music.tasks  # noqa: F401  (the music tasks' loss and metrics in model.keras)

    for failure in load_plugin_layers():
        log.warning("%s", failure)
    try:
        return keras.saving.load_model(str(path))
    except (TypeError, ImportError) as exc:  # Keras wraps a missing module in a TypeError
        other = re.search(r"keras\.src\.backend\.(\w+)\.", str(exc))
        if other is None or other.group(1) == keras.backend.backend():
            raise
        if for_training:
            raise RunError(
                f"'{path}' was saved while training on the {other.group(1)} backend, and its "
                f"optimizer state cannot be restored on {keras.backend.backend()}; continue it "
                f"with KERAS_BACKEND={other.group(1)}."
            ) from None
    log.info("'%s' was trained on another Keras backend; loaded without its optimizer.", path)
    return keras.saving.load_model(str(path), compile=False)


class Run:
    """A finished run folder: its recipe, task, data facts, feature pipeline and best model."""

    def __init__(self, path):
        self.path = Path(path)
        if not (self.path / RUN_MARKER).is_file():
            raise RunError(
                f"'{self.path}' is not a seqkit run folder (no {RUN_MARKER}); "
                "pass the folder `seqkit train` printed."
            )
        for name in ("recipe.yaml", "model.keras"):
            if not (self.path / name).is_file():
                status = self.info.get("status", "?")
                raise RunError(f"Run folder '{self.path}' has no {name} (run status: {status}).")
        import yaml

        self.recipe = validate_dict(
            yaml.safe_load((self.path / "recipe.yaml").read_text()),
            file=str(self.path / "recipe.yaml"),
            build_layers=False,
        )
        labels = self.path / "labels.txt"
        self.labels = labels.read_text().splitlines() if labels.is_file() else []
        self._model = None

    @property
    def info(self) -> dict:
        """run.json: status, times, versions."""
        try:
            return json.loads((self.path / RUN_MARKER).read_text())
        except (OSError, ValueError):
            return {}

    @property
    def data_info(self) -> dict:
        """data.json: what the task recorded about the data (labels, counts, skipped files)."""
        path = self.path / "data.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    @property
    def task(self):
        return make_task(self.recipe)

    @property
    def pipeline(self):
        return make_pipeline(self.recipe)

    @property
    def model(self):
        """The best model; its SHA-256 is checked against run.json first (a corrupt or replaced
        file is reported, never used)."""
        if self._model is None:
            path = self.path / "model.keras"
            want = self.info.get("files", {}).get("model.keras")
            if want is not None:
                from .fit import sha256

                if sha256(path) != want:
                    raise RunError(
                        f"'{path}' does not match the SHA-256 recorded in run.json when the run "
                        "finished: the file is corrupt or was replaced. Retrain, or restore it."
                    )
            self._model = load_model(path)
        return self._model

    @property
    def metrics(self) -> dict:
        path = self.path / "metrics.json"
        return json.loads(path.read_text()) if path.is_file() else {}
