"""Timing a recipe's training step before training it (estimates for ``seqkit compare`` and
``seqkit crossval``): one batch as the trainer would feed it, and the seconds of a step."""

from __future__ import annotations

import math
import statistics
import time

import keras
import numpy as np

from ..build import build_model


def first_batch(task, data, batch_size: int, seed: int) -> tuple[tuple, int]:
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



def time_steps(recipe, task, data, reps: int = 3) -> tuple[float, float, int]:
    """(first call, median of ``reps`` later calls) of one training step in seconds, and the
    number of steps in an epoch."""

    keras.utils.set_random_seed(recipe.seed)
    train_x = data.splits["train"].x
    model = build_model(recipe, task, data.input_shape, data.info,
                        train_x if isinstance(train_x, np.ndarray) else None)  # fmt: skip
    batch, steps = first_batch(task, data, recipe.train.batch_size, recipe.seed)
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
