"""Build the model a recipe describes, train it, and leave a self-describing run folder.

A run folder holds::

    recipe.yaml      the resolved recipe (defaults filled in, overrides applied)
    run.json         status (running / completed / failed), times, versions, command
    labels.txt       one label per line, in the order of the model's outputs
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
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from .data import SPLITS, extract_features
from .errors import DataError, RunError
from .features import FeaturePipeline
from .recipe import LAYER_WRAPPER_KEYS, OPTIMIZERS, Recipe, validate_dict
from .registry import FEATURES, LAYERS, SOURCES, TASKS, load_plugin_layers

log = logging.getLogger("seqkit")

RUN_MARKER = "run.json"


# -- run folders ---------------------------------------------------------------------------------


def _timestamp() -> str:
    return _dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def prepare_run_dir(name: str, run_dir=None, runs_root="runs", overwrite=False) -> Path:
    """Create and return the run folder, refusing to replace anything without ``overwrite``."""
    if run_dir is None:
        base = Path(runs_root) / f"{name}-{_timestamp()}"
        path, n = base, 1
        while path.exists():
            n += 1
            path = base.with_name(f"{base.name}-{n}")
    else:
        path = Path(run_dir)
        if path.exists():
            if not overwrite:
                raise RunError(
                    f"Run folder '{path}' already exists; pass --overwrite to replace it, "
                    "or choose another --run-dir."
                )
            is_run = (path / RUN_MARKER).is_file()
            if not path.is_dir() or (any(path.iterdir()) and not is_run):
                raise RunError(
                    f"'{path}' is not a seqkit run folder (it has no {RUN_MARKER}); "
                    "refusing to delete it even with --overwrite. Choose another --run-dir."
                )
            shutil.rmtree(path)
    try:
        path.mkdir(parents=True, exist_ok=False)
    except OSError as exc:
        raise RunError(f"Cannot create run folder '{path}': {exc.strerror or exc}.") from exc
    return path


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


def build_model(recipe: Recipe, input_shape, num_classes: int, train_x=None):
    """Input -> (Normalization fitted on ``train_x``) -> recipe layers -> task head, compiled."""
    import keras

    task = TASKS.get(recipe.task.type)(**recipe.task.params)
    inputs = keras.Input(shape=tuple(input_shape), name="features")
    x = inputs
    if recipe.model.normalize:
        norm = keras.layers.Normalization(axis=-1, name="normalize")
        if train_x is not None:
            norm.adapt(train_x.reshape(-1, train_x.shape[-1]))
        x = norm(x)
    for layer in build_layers(recipe, task.needs_sequences):
        x = layer(x)
    outputs = task.head(x, num_classes)
    model = keras.Model(inputs, outputs, name=recipe.name.replace(".", "_").replace("-", "_"))
    opt = recipe.train.optimizer
    optimizer = getattr(keras.optimizers, OPTIMIZERS[opt.type])(
        learning_rate=opt.learning_rate, clipnorm=opt.clipnorm
    )
    model.compile(optimizer=optimizer, **task.compile_args())
    return model, task


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


def make_pipeline(recipe: Recipe) -> FeaturePipeline:
    steps = [FEATURES.get(s.type)(**s.params) for s in recipe.features]
    return FeaturePipeline(steps, [s.type for s in recipe.features])


def _stack(feats, split) -> np.ndarray:
    shapes = sorted({f.shape for f in feats})
    if len(shapes) > 1:
        frames = sorted({s[0] for s in shapes})
        raise DataError(
            f"Clips of the {split} split give different feature shapes (frames {frames[0]}.."
            f"{frames[-1]}); add a `fix_length` step before the spectrogram in `features`."
        )
    return np.stack(feats).astype(np.float32)


def load_dataset(recipe: Recipe, progress=None):
    """Return ``labels, {split: (x, y, examples)}`` for the recipe's source and pipeline."""
    source = SOURCES.get(recipe.data.source.type)(**recipe.data.source.params)
    examples = source.examples()
    labels = source.label_names()
    pipeline = make_pipeline(recipe)
    index = {name: i for i, name in enumerate(labels)}
    kept, feats = extract_features(examples, pipeline, progress=progress)
    data = {}
    for split in SPLITS:
        pick = [i for i, ex in enumerate(kept) if ex.split == split]
        if not pick:
            continue
        x = _stack([feats[i] for i in pick], split)
        y = np.array([index[kept[i].label] for i in pick], dtype=np.int64)
        data[split] = (x, y, [kept[i] for i in pick])
    for split in ("train", "validation"):
        if split not in data:
            raise DataError(
                f"The {split} split is empty ({len(kept)} usable files in all); add files or "
                "change data.source.validation_percent / test_percent."
            )
    missing = [labels[i] for i in range(len(labels)) if i not in set(data["train"][1].tolist())]
    if missing:
        raise DataError(f"No training examples for label(s): {', '.join(missing)}.")
    return labels, data


# -- training ------------------------------------------------------------------------------------


def train(
    recipe: Recipe,
    run_dir=None,
    runs_root="runs",
    overwrite=False,
    verbose: int = 1,
    recipe_file: str | None = None,
    on_run_dir=None,
) -> Path:
    """Train ``recipe``; return the run folder. Keras' progress goes to stderr."""
    import keras

    run = prepare_run_dir(recipe.name, run_dir, runs_root, overwrite)
    if on_run_dir is not None:
        on_run_dir(run)
    started = time.time()
    info = {
        "status": "running",
        "started": _dt.datetime.now().isoformat(timespec="seconds"),
        "recipe_file": recipe_file,
        "command": sys.argv,
        "versions": versions(),
    }
    _write_json(run / RUN_MARKER, info)
    (run / "recipe.yaml").write_text(recipe.to_yaml())
    try:
        metrics = _train_into(recipe, run, verbose)
    except BaseException as exc:
        info["status"] = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        info["error"] = f"{type(exc).__name__}: {exc}"
        info["finished"] = _dt.datetime.now().isoformat(timespec="seconds")
        _write_json(run / RUN_MARKER, info)
        raise
    metrics["seconds"] = round(time.time() - started, 2)
    _write_json(run / "metrics.json", metrics)
    info["status"] = "completed"
    info["finished"] = _dt.datetime.now().isoformat(timespec="seconds")
    _write_json(run / RUN_MARKER, info)
    keras.backend.clear_session()
    return run


def _train_into(recipe: Recipe, run: Path, verbose: int) -> dict:
    import keras

    keras.utils.set_random_seed(recipe.seed)
    t0 = time.time()
    labels, data = load_dataset(recipe)
    feature_seconds = time.time() - t0
    (run / "labels.txt").write_text("".join(f"{name}\n" for name in labels))
    x_train, y_train, _ = data["train"]
    x_val, y_val, _ = data["validation"]
    model, task = build_model(recipe, x_train.shape[1:], len(labels), x_train)

    cfg = recipe.train
    callbacks = [
        keras.callbacks.ModelCheckpoint(
            str(run / "model.keras"), monitor=task.monitor, mode=task.mode, save_best_only=True
        ),
        keras.callbacks.CSVLogger(str(run / "history.csv")),
        keras.callbacks.TensorBoard(log_dir=str(run / "logs"), write_graph=True),
        _graph_writer(run / "logs", x_train.shape[1:]),
    ]
    if cfg.early_stopping_patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=task.monitor, mode=task.mode, patience=cfg.early_stopping_patience
            )
        )
    if cfg.reduce_lr_patience:
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor=task.monitor, mode=task.mode, patience=cfg.reduce_lr_patience, factor=0.5
            )
        )
    with contextlib.redirect_stdout(sys.stderr):  # results on stdout, progress on stderr
        history = model.fit(
            x_train,
            y_train,
            validation_data=(x_val, y_val),
            epochs=cfg.epochs,
            batch_size=cfg.batch_size,
            shuffle=True,
            callbacks=callbacks,
            verbose=verbose,
        )
    monitored = history.history[task.monitor]
    best_epoch = int(np.argmax(monitored) if task.mode == "max" else np.argmin(monitored)) + 1

    best = load_model(run / "model.keras")
    metrics = {
        "task": recipe.task.type,
        "monitor": task.monitor,
        "best_epoch": best_epoch,
        "epochs_run": len(monitored),
        "params": int(best.count_params()),
        "labels": labels,
        "examples": {split: int(len(data[split][1])) for split in data},
        "feature_seconds": round(feature_seconds, 2),
    }
    for split, (x, y, _) in data.items():
        metrics[split] = task.evaluate(best, x, y, labels)
    return metrics


# -- reading run folders -------------------------------------------------------------------------


def load_model(path):
    """``keras.saving.load_model`` after importing installed plugin layers (so they resolve)."""
    import keras

    import seqkit.layers  # noqa: F401  (registers seqkit's GRU with Keras)

    for failure in load_plugin_layers():
        log.warning("%s", failure)
    return keras.saving.load_model(str(path))


class Run:
    """A finished run folder: its recipe, labels, feature pipeline and best model."""

    def __init__(self, path):
        self.path = Path(path)
        if not (self.path / RUN_MARKER).is_file():
            raise RunError(
                f"'{self.path}' is not a seqkit run folder (no {RUN_MARKER}); "
                "pass the folder `seqkit train` printed."
            )
        for name in ("recipe.yaml", "labels.txt", "model.keras"):
            if not (self.path / name).is_file():
                status = json.loads((self.path / RUN_MARKER).read_text()).get("status", "?")
                raise RunError(f"Run folder '{self.path}' has no {name} (run status: {status}).")
        import yaml

        self.recipe = validate_dict(
            yaml.safe_load((self.path / "recipe.yaml").read_text()),
            file=str(self.path / "recipe.yaml"),
            build_layers=False,
        )
        self.labels = (self.path / "labels.txt").read_text().split()
        self.pipeline = make_pipeline(self.recipe)
        self._model = None

    @property
    def model(self):
        if self._model is None:
            self._model = load_model(self.path / "model.keras")
        return self._model

    @property
    def metrics(self) -> dict:
        path = self.path / "metrics.json"
        return json.loads(path.read_text()) if path.is_file() else {}
