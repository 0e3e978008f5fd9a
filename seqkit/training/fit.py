"""The training loop: one ``model.fit`` call per epoch, with checkpoints that make a run resumable
exactly, and guards that stop a run cleanly.

Why an epoch loop of our own instead of one ``fit(epochs=N)``: exact resumption. Everything
random in an epoch is a function of (recipe seed, epoch): the order of the training examples is
``default_rng([seed, epoch]).permutation(n)`` (or the task's own dataset, told the epoch through
``set_epoch``), and the dropout generators' states are saved with each checkpoint (on torch,
where a layer without a seed draws its dropout from torch's global generator, that generator is
seeded from (seed, epoch) as each epoch starts and its state is saved too). So a run
resumed from any checkpoint -- at the end of an epoch, or after step ``k`` of one -- replays the
same batches in the same order from the same weights and optimizer state, and on CPU ends with
the same weights and metrics as a run that was never interrupted (``tests/test_resume.py``). A
checkpoint inside an epoch also holds the totals the epoch's training metrics have summed so far
(the Keras metrics' variables, the loss tracker's among them); the resumed epoch starts from
them, so its row in history.csv is the uninterrupted run's, bit for bit.
The best-model selection, early stopping and learning-rate reduction live here too (not in
Keras callbacks), so their state is part of the checkpoint.

Checkpoints (``RUN/checkpoint/``): ``ckpt-<epoch>-<step>.keras`` (weights + optimizer state) and
``state.json`` (epoch, step, best value and epoch, patience counters, dropout generator states,
inside an epoch the training metrics' totals, the checkpoint file's SHA-256). Each file is
written to a temporary name and renamed into place, ``state.json`` last, so a kill at any
moment leaves the previous complete checkpoint; a checkpoint whose hash does not match is
reported, never loaded.

Guards: a non-finite training loss stops the run at that step with the epoch and step named,
keeping the last good checkpoint and best model; Ctrl-C (SIGINT) finishes the current step,
saves a checkpoint and raises ``KeyboardInterrupt`` (exit 130); a second Ctrl-C stops at once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import signal
import sys
import time
from pathlib import Path

import numpy as np

from .. import progress as report_progress
from ..errors import RunError
from ..runs import save_model_atomic, sha256, write_json_atomic
from .distribute import data_parallel_devices, even_rows

log = logging.getLogger("seqkit")

CHECKPOINT_DIR = "checkpoint"
STATE = "state.json"


def _seed_generators(model):
    return [v for v in model.non_trainable_variables if "seed_generator_state" in v.path]


def _global_rng_state():
    """The backend's global random state, where Keras draws from it; None elsewhere.

    On torch, a layer made without a seed (dropout, the GRU's dropout masks) draws from torch's
    global generator, not from its SeedGenerator (keras/src/backend/torch/random.py, "unseeded"
    fast path), so a checkpoint must hold that generator's state. TensorFlow and JAX draw
    from the SeedGenerator states only.
    """
    import keras

    if keras.backend.backend() != "torch":
        return None
    import base64

    import torch

    def encode(t):
        return base64.b64encode(t.cpu().numpy().tobytes()).decode("ascii")

    state = {"cpu": encode(torch.get_rng_state())}
    if torch.cuda.is_available():
        state["cuda"] = [encode(t) for t in torch.cuda.get_rng_state_all()]
    return {"torch": state}


def _seed_global_rng(seed: int, epoch: int) -> None:
    """Seed the backend's global generator (torch) from (recipe seed, epoch) as an epoch starts,
    so that the epoch's dropout does not depend on what ran before it in this process."""
    import keras

    if keras.backend.backend() == "torch":
        import torch

        torch.manual_seed(int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0]))


def _set_global_rng_state(state) -> None:
    if not state or "torch" not in state:
        return
    import keras

    if keras.backend.backend() != "torch":
        log.warning("The checkpoint was written on the torch backend; its global random state "
                    "is not restored on %s, so dropout will differ.", keras.backend.backend())  # fmt: skip
        return
    import base64

    import torch

    def decode(text):
        return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)

    torch.set_rng_state(decode(state["torch"]["cpu"]))
    if "cuda" in state["torch"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([decode(t) for t in state["torch"]["cuda"]])


def _metric_totals(model) -> list[dict]:
    """The training metrics' variables (totals and counts) as they stand: what a checkpoint
    inside an epoch must keep so that the resumed epoch's logged metrics count every step."""
    import keras

    return [
        {"path": v.path, "value": np.asarray(keras.ops.convert_to_numpy(v)).tolist()}
        for v in model.metrics_variables
    ]


def _check_metric_totals(saved, where: Path) -> list[dict] | None:
    """``saved`` (state.json's ``metric_totals``) if it is a list of ``{"path", "value"}`` with
    finite numbers; RunError naming the file otherwise. None (an older checkpoint) stays None."""
    if saved is None:
        return None

    def finite(value) -> bool:
        if isinstance(value, list):
            return all(finite(x) for x in value)
        return type(value) in (int, float) and math.isfinite(value)

    if not isinstance(saved, list) or not all(
        isinstance(m, dict) and isinstance(m.get("path"), str) and finite(m.get("value"))
        for m in saved
    ):
        raise RunError(
            f"Checkpoint state '{where}' has a damaged `metric_totals` (expected a list of "
            "{path, value} with finite numbers); it was not loaded. Start a new run."
        )
    return saved


def _build_metrics(model, inputs: dict) -> None:
    """Create the compiled metrics' and loss's variables before ``fit`` starts, so that a
    mid-epoch checkpoint's totals can be restored before the first resumed step (TensorFlow,
    without a distribution strategy, would create them only while tracing that step). One
    training batch goes through the model in inference mode; the seed generators' states are
    put back afterwards (the GRU draws its dropout seeds even then), and the metric states it
    leaves are reset by ``fit`` as the epoch starts."""
    import keras

    if "y" in inputs:  # arrays: the epoch's first remaining example
        x, y, weight = (None if inputs.get(k) is None else
                        keras.tree.map_structure(lambda a: a[:1], inputs[k])
                        for k in ("x", "y", "sample_weight"))  # fmt: skip
    else:  # a task's dataset (a keras.utils.PyDataset): its first remaining batch
        x, y, weight = keras.utils.unpack_x_y_sample_weight(inputs["x"][0])
    generators = [(v, np.array(keras.ops.convert_to_numpy(v))) for v in _seed_generators(model)]
    y_pred = model(x, training=False)
    model.compute_loss(x, y, y_pred, weight, training=False)
    model.compute_metrics(x, y, y_pred, weight)
    for var, state in generators:
        var.assign(state)


def _restore_metric_totals(model, saved, epoch: int, where: Path) -> None:
    """Set the training metrics' variables to a mid-epoch checkpoint's ``saved`` totals (after
    Keras reset them for the epoch, before its first resumed step)."""
    variables = model.metrics_variables
    if saved is None:
        log.warning("The checkpoint in '%s' holds no training-metric totals (an older seqkit "
                    "wrote it): history.csv's row for epoch %d counts only the steps after the "
                    "resume.", where.parent, epoch + 1)  # fmt: skip
        return
    paths = [v.path for v in variables]
    if [m["path"] for m in saved] != paths:
        raise RunError(
            f"Checkpoint state '{where}' holds totals of the metrics "
            f"{[m['path'] for m in saved]}, but the model tracks {paths}; it cannot be resumed. "
            "Start a new run."
        )
    for var, m in zip(variables, saved):
        value = np.asarray(m["value"], dtype=var.dtype)
        if value.shape != tuple(var.shape):
            raise RunError(
                f"Checkpoint state '{where}': metric variable '{var.path}' has shape "
                f"{tuple(value.shape)}, expected {tuple(var.shape)}; it cannot be resumed. "
                "Start a new run."
            )
        var.assign(value)


class Progress:
    """Where training stands; everything a checkpoint needs besides weights and optimizer."""

    def __init__(self, mode: str):
        self.epoch = 0  # epochs completed
        self.step = 0  # steps completed within epoch `epoch` (0: at an epoch boundary)
        self.best = None
        self.best_epoch = 0
        self.mode = mode
        self.wait = 0  # epochs without improvement (early stopping)
        self.lr_wait = 0  # epochs without improvement since the last LR reduction
        self.history = []  # per-epoch logs

    def improved(self, value) -> bool:
        if value is None or not math.isfinite(value):
            return False
        if self.best is None:
            return True
        return value > self.best if self.mode == "max" else value < self.best

    def to_dict(self) -> dict:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    @classmethod
    def from_dict(cls, d: dict) -> Progress:
        p = cls(d["mode"])
        for k, v in d.items():
            setattr(p, k, v)
        return p


class Checkpointer:
    def __init__(self, run: Path):
        self.dir = run / CHECKPOINT_DIR
        self.dir.mkdir(exist_ok=True)

    def save(self, model, progress: Progress) -> None:
        name = f"ckpt-{progress.epoch:04d}-{progress.step:06d}.keras"
        digest = save_model_atomic(model, self.dir / name)
        state = {
            "file": name,
            "sha256": digest,
            "progress": progress.to_dict(),
            "seed_generators": [
                np.asarray(v.numpy() if hasattr(v, "numpy") else v).tolist()
                for v in _seed_generators(model)
            ],
            "global_rng": _global_rng_state(),
        }
        if progress.step:  # inside an epoch: what its metrics have summed so far
            state["metric_totals"] = _metric_totals(model)
        write_json_atomic(self.dir / STATE, state)
        for old in self.dir.glob("ckpt-*.keras"):
            if old.name != name:
                old.unlink(missing_ok=True)

    @staticmethod
    def load(run: Path):
        """``(model, progress)`` from RUN's last checkpoint; RunError if missing or corrupt."""
        from ..runs import load_model

        folder = run / CHECKPOINT_DIR
        try:
            state = json.loads((folder / STATE).read_text())
            path = folder / state["file"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RunError(
                f"Run folder '{run}' has no readable checkpoint ({folder / STATE}: {exc}); "
                "it cannot be resumed. Start a new run."
            ) from None
        if not path.is_file() or sha256(path) != state.get("sha256"):
            raise RunError(
                f"Checkpoint '{path}' is missing or corrupt (its SHA-256 does not match "
                f"{STATE}); it was not loaded. Start a new run."
            )
        model = load_model(path, for_training=True)
        gens = _seed_generators(model)
        for var, value in zip(gens, state.get("seed_generators", [])):
            var.assign(np.asarray(value, dtype=var.dtype))
        progress = Progress.from_dict(state["progress"])
        progress._rng = state.get("global_rng")
        progress._metric_totals = _check_metric_totals(state.get("metric_totals"), folder / STATE)
        return model, progress


class _SigintDeferred:
    """Turn the first Ctrl-C into a flag checked after each training step."""

    def __init__(self):
        self.requested = False
        self._old = None

    def __enter__(self):
        if hasattr(signal, "SIGINT") and _main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:  # second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.requested = True
        log.warning("Interrupt: finishing this step and saving a checkpoint "
                    "(Ctrl-C again to stop at once).")  # fmt: skip

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


class NonFiniteLoss(RunError):
    pass


def _step_callback(model, progress, checkpointer, every, sigint, seed):
    """Counts steps; checkpoints every ``every`` steps; stops on a non-finite loss or Ctrl-C."""
    import keras

    class StepGuard(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.bad = None
            self.interrupted = False

        def on_train_batch_begin(self, batch, logs=None):
            if batch == 0:  # where the checkpoint's global random state belongs
                pending, progress._rng = getattr(progress, "_rng", None), None
                totals, progress._metric_totals = getattr(progress, "_metric_totals", None), None
                if progress.step == 0:
                    _seed_global_rng(seed, progress.epoch)
                else:  # resumed inside an epoch (Keras has just reset the metrics)
                    _set_global_rng_state(pending)
                    _restore_metric_totals(self.model, totals, progress.epoch,
                                           checkpointer.dir / STATE)  # fmt: skip

        def on_train_batch_end(self, batch, logs=None):
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(float(loss)):
                self.bad = (progress.epoch + 1, progress.step + 1, float(loss))
                self.model.stop_training = True
                return
            progress.step += 1
            steps = (self.params or {}).get("steps")
            if steps and batch + 1 >= steps:
                return  # the epoch's last step: the epoch's end writes the checkpoint
            if sigint.requested:
                checkpointer.save(self.model, progress)
                self.interrupted = True
                self.model.stop_training = True
            elif every and progress.step % every == 0:
                checkpointer.save(self.model, progress)

    return StepGuard()


def _even_inputs(inputs: dict, devices: int) -> dict:
    """Under ``data_parallel`` over ``devices``: the epoch's training examples cut to a multiple
    of ``devices`` (at most ``devices - 1`` left out, different ones each epoch: the order is
    shuffled per epoch), so that the last batch splits evenly too (``train.batch_size`` is a
    multiple of ``devices``, checked by ``seqkit.distribute``)."""
    if devices <= 1:
        return inputs
    if "y" not in inputs:  # a task's dataset (augmentation): it must cut its own epochs
        dataset = inputs["x"]
        if not hasattr(dataset, "set_multiple_of"):
            raise RunError(
                f"train.distribute data_parallel splits every batch over {devices} devices, "
                f"but the task's training dataset ({type(dataset).__name__}) has no "
                "set_multiple_of(n) to make its last batch a multiple of that."
            )
        dataset.set_multiple_of(devices)
        return inputs
    keys = [k for k in ("x", "y", "sample_weight") if k in inputs]
    cut = even_rows(tuple(inputs[k] for k in keys), devices)
    return {**inputs, **dict(zip(keys, cut))}


def _even_validation(validation, devices: int):
    """The validation data Keras evaluates each epoch, under ``data_parallel`` cut to a multiple
    of ``devices`` clips (the metrics written at the end use every clip, on one device)."""
    if devices <= 1 or validation is None:
        return validation
    cut = even_rows(tuple(validation), devices)
    if len(cut[0]) < len(validation[0]):
        log.info(
            "data_parallel over %d devices: validating each epoch on %d of %d clips (the final "
            "metrics use all of them).", devices, len(cut[0]), len(validation[0]),
        )  # fmt: skip
    return cut


def fit(model, task, data, cfg, run: Path, callbacks_for_epoch, verbose: int, seed: int,
        progress: Progress | None = None, on_epoch=None):  # fmt: skip
    """Train ``model`` for ``cfg.epochs`` epochs (or from ``progress`` on); return progress.

    ``callbacks_for_epoch(first: bool)`` gives fresh Keras callbacks (logging) for each epoch's
    ``fit`` call. The best model by ``task.monitor`` is saved atomically to RUN/model.keras.
    ``verbose``: report each finished epoch to ``seqkit.progress`` (0: report nothing); this
    function itself writes nothing to stdout or stderr.
    """
    import keras

    progress = progress or Progress(task.mode)
    checkpointer = Checkpointer(run)
    monitor = task.monitor
    n_batches = None
    devices = data_parallel_devices()
    if devices > 1:
        log.info("Training with every batch split over %d devices (data_parallel).", devices)
    validation = _even_validation(task.validation_data(data), devices)
    with _SigintDeferred() as sigint:
        while progress.epoch < cfg.epochs:
            epoch, skip = progress.epoch, progress.step
            inputs = _even_inputs(task.epoch_inputs(data, epoch, cfg.batch_size, seed, skip),
                                  devices)  # fmt: skip
            if skip and getattr(progress, "_metric_totals", None) is not None:
                _build_metrics(model, inputs)  # resumed inside an epoch: restored at its start
            guard = _step_callback(model, progress, checkpointer,
                                   cfg.checkpoint_every_steps, sigint, seed)  # fmt: skip
            t0 = time.time()
            with contextlib.redirect_stdout(sys.stderr):
                hist = model.fit(
                    **inputs,
                    validation_data=validation,
                    initial_epoch=epoch,
                    epochs=epoch + 1,
                    shuffle=False,
                    callbacks=[*callbacks_for_epoch(epoch == 0 and skip == 0), guard],
                    verbose=0,
                )
            if guard.bad is not None:
                e, s, loss = guard.bad
                raise NonFiniteLoss(
                    f"The training loss became {loss} at epoch {e}, step {s}; training stopped. "
                    f"Kept: the best model (epoch {progress.best_epoch}) and the last good "
                    f"checkpoint in '{run / CHECKPOINT_DIR}'. Lower "
                    "train.optimizer.learning_rate or set train.optimizer.clipnorm."
                )
            if guard.interrupted:
                raise KeyboardInterrupt
            logs = {k: float(v[-1]) for k, v in hist.history.items()}
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
            value = logs.get(monitor)
            if value is None:
                raise RunError(
                    f"The task's monitored metric '{monitor}' is not in the epoch logs "
                    f"({', '.join(sorted(logs))})."
                )
            if not math.isfinite(value):
                raise NonFiniteLoss(
                    f"The validation metric {monitor} became {value} at epoch {epoch + 1}; "
                    f"training stopped. Kept: the best model (epoch {progress.best_epoch})."
                )
            n_batches = progress.step
            progress.history.append({"epoch": epoch + 1, **logs})
            if progress.improved(value):
                progress.best, progress.best_epoch, progress.wait, progress.lr_wait = (
                    value, epoch + 1, 0, 0)  # fmt: skip
                save_model_atomic(model, run / "model.keras")
            else:
                progress.wait += 1
                progress.lr_wait += 1
            if cfg.reduce_lr_patience and progress.lr_wait >= cfg.reduce_lr_patience:
                new = logs["learning_rate"] * 0.5
                model.optimizer.learning_rate.assign(new)
                progress.lr_wait = 0
                log.info("Epoch %d: %s did not improve for %d epochs; learning rate -> %.3g",
                         epoch + 1, monitor, cfg.reduce_lr_patience, new)  # fmt: skip
            progress.epoch, progress.step = epoch + 1, 0
            stop = bool(
                cfg.early_stopping_patience and progress.wait >= cfg.early_stopping_patience
            )
            if stop:
                progress.epoch = cfg.epochs  # finished: nothing left to resume
            checkpointer.save(model, progress)
            if on_epoch is not None:
                on_epoch(progress)
            if sigint.requested and not stop and progress.epoch < cfg.epochs:
                raise KeyboardInterrupt  # Ctrl-C in an epoch's last step: stop after its end
            if verbose:  # drawn (or not) by the installed reporter: seqkit.progress
                report_progress.epoch_end(report_progress.EpochEnd(
                    epoch + 1, cfg.epochs, logs, time.time() - t0, n_batches,
                    final=stop or epoch + 1 >= cfg.epochs))  # fmt: skip
            if stop:
                log.info("Early stopping: %s did not improve for %d epochs (best: epoch %d).",
                         monitor, cfg.early_stopping_patience, progress.best_epoch)  # fmt: skip
                break
    return progress
