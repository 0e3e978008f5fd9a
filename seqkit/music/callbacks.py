"""Callbacks of the music tasks: weight noise (Chung et al. 2014) and samples in TensorBoard
(a piano roll image and its rendering every epoch).
"""

from __future__ import annotations

import keras
import numpy as np

from .rolls import notes_to_roll
from .sources import seconds_per_step
from .synth import render

_WRITERS: dict = {}  # one TensorBoard writer per folder (the trainer makes callbacks per epoch)


def roll_image(roll, scale: int = 4) -> np.ndarray:
    """An RGB ``uint8`` picture of a roll: time left to right, pitch bottom to top."""
    roll = np.asarray(roll, dtype=bool)
    img = np.where(roll.T[::-1, :, None], np.array([30, 60, 160], np.uint8), np.uint8(245))
    img = np.broadcast_to(img, (*roll.T.shape, 3)).astype(np.uint8)
    return np.repeat(np.repeat(img, scale, axis=0), scale, axis=1)


class WeightNoise(keras.callbacks.Callback):
    """Weight noise: before each training step every trainable weight gets Gaussian noise
    (standard deviation ``std``), after it the same noise is taken away again -- so the
    gradient is computed at the noisy weights and the optimizer's update lands on the clean
    ones. The noise of step ``b`` of epoch ``e`` is drawn from ``default_rng([seed, e, b])``,
    so a resumed run draws the same noise."""

    def __init__(self, task, std: float):
        super().__init__()
        self.task, self.std = task, float(std)
        self.epoch, self.noise = 0, None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        rng = np.random.default_rng([self.task.seed, self.epoch, batch + self.task._skip, 17])
        self.noise = []
        for v in self.model.trainable_variables:
            n = rng.normal(0.0, self.std, tuple(v.shape)).astype(v.dtype)
            v.assign_add(n)
            self.noise.append(n)

    def on_train_batch_end(self, batch, logs=None):
        if self.noise is not None:
            for v, n in zip(self.model.trainable_variables, self.noise):
                v.assign_sub(n)
            self.noise = None


class SampleWriter(keras.callbacks.Callback):
    """Every ``every`` epochs: a sample of ``steps`` steps (seeded, temperature 1) to
    TensorBoard under ``logs/samples``, as audio (additive synth, 16 kHz) and as a piano-roll
    image. TensorFlow backend only (it writes with ``tf.summary``)."""

    SAMPLE_RATE = 16000

    def __init__(self, task, info, log_dir, every, steps, seed):
        super().__init__()
        self.task, self.info, self.log_dir = task, info, log_dir
        self.every, self.steps, self.seed = every, steps, seed

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every or keras.backend.backend() != "tensorflow":
            return
        import tensorflow as tf  # optional: TensorFlow is one Keras backend of three

        sample = self.task.sample(self.model, self.info, self.steps, 1, 1.0, self.seed)[0]
        notes = self.task.to_notes(sample, self.info)
        sps = seconds_per_step(self.info["time_step"])
        audio = render(
            [(n.pitch, n.start * sps, n.end * sps) for n in notes],
            self.SAMPLE_RATE,
            seconds=self.steps * sps + 0.1,
        )
        roll, _, _ = notes_to_roll(notes, length=self.steps)
        writer = _WRITERS.get(str(self.log_dir))
        if writer is None:
            writer = _WRITERS[str(self.log_dir)] = tf.summary.create_file_writer(str(self.log_dir))
        with writer.as_default():
            tf.summary.audio("sample", audio[None, :, None], self.SAMPLE_RATE, step=epoch + 1)
            tf.summary.image("sample_piano_roll", roll_image(roll)[None], step=epoch + 1)
        writer.flush()
