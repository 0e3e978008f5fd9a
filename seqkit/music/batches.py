"""Batches of variable-length sequences for the music tasks: padded to a multiple of 8,
optionally cut into chunks with warm-up steps (weight 0), shuffled per epoch from the seed
(``SequenceBatches``, a ``keras.utils.PyDataset``), and whole-sequence prediction.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from .rolls import chunk_spans


def _round_up(n: int, multiple: int = 8) -> int:
    return max(multiple, -(-int(n) // multiple) * multiple)


class SequenceBatches(keras.utils.PyDataset):
    """Batches ``(x, y, sample_weight)`` of fixed shape ``(batch_size, length, ...)`` from
    variable-length sequences: padding (and warm-up steps) have weight 0, a short last batch
    is filled with all-zero rows. Whole sequences, or ``chunk_spans`` windows when ``chunk``
    is set. With ``shuffle``, the order (and ``augment``, a function ``(rng, target) ->
    target``) is drawn anew for every epoch from ``seed``."""

    def __init__(
        self,
        targets,
        encode,
        batch_size,
        chunk=None,
        warmup=0,
        shuffle=False,
        augment=None,
        seed=0,
    ):
        super().__init__(workers=1, use_multiprocessing=False)
        self.targets = list(targets)
        self.encode = encode  # target (T, ...) -> (x (T, F), y (T, ...)) float32 / int32
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.augment = augment
        self.seed = int(seed)
        self.epoch, self.skip, self._planned = 0, 0, None
        self.windows = []
        for i, t in enumerate(self.targets):
            if chunk:
                self.windows += [(i, *span) for span in chunk_spans(len(t), chunk, warmup)]
            else:
                self.windows.append((i, 0, 0, len(t)))
        self.length = _round_up(max(end - begin for _, begin, _, end in self.windows))

    def _plan(self):
        """The epoch's order and augmented targets: a pure function of (seed, epoch)."""
        if self._planned == self.epoch:
            return
        rng = np.random.default_rng([self.seed, self.epoch])
        order = np.arange(len(self.windows))
        if self.shuffle:
            rng.shuffle(order)
        self.order = order
        self.current = (
            [self.augment(rng, t) for t in self.targets] if self.augment else self.targets
        )
        self._planned = self.epoch

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        """Serve epoch ``epoch`` (0-based), without its first ``skip_batches`` batches (a run
        resumed mid-epoch replays the rest exactly)."""
        self.epoch, self.skip, self.managed = int(epoch), int(skip_batches), True

    def on_epoch_end(self):
        # Keras calls this at times of its own (also before the first epoch): once the trainer
        # sets the epoch, only it does.
        if not getattr(self, "managed", False):
            self.epoch, self.skip = self.epoch + 1, 0

    def __len__(self):
        return math.ceil(len(self.windows) / self.batch_size) - self.skip

    def __getitem__(self, index):
        self._plan()
        index += self.skip
        rows = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        xs, ys, ws = [], [], []
        for r in rows:
            i, begin, first, end = self.windows[r]
            x, y = self.encode(self.current[i])
            xs.append(x[begin:end])
            ys.append(y[begin:end])
            w = np.zeros(end - begin, np.float32)
            w[first - begin :] = 1.0
            ws.append(w)
        x0, y0 = xs[0], ys[0]
        bx = np.zeros((self.batch_size, self.length, *x0.shape[1:]), x0.dtype)
        by = np.zeros((self.batch_size, self.length, *y0.shape[1:]), y0.dtype)
        bw = np.zeros((self.batch_size, self.length), np.float32)
        for j, (x, y, w) in enumerate(zip(xs, ys, ws)):
            bx[j, : len(x)], by[j, : len(y)], bw[j, : len(w)] = x, y, w
        return bx, by, bw


def predict_sequences(model, inputs, batch_size: int = 64) -> list[np.ndarray]:
    """The model's outputs for each whole input sequence (batched by length, padding cut)."""
    order = np.argsort([len(x) for x in inputs], kind="stable")
    out: list = [None] * len(inputs)
    for b in range(0, len(order), batch_size):
        idx = order[b : b + batch_size]
        length = _round_up(max(len(inputs[i]) for i in idx), 16)
        x0 = inputs[idx[0]]
        batch = np.zeros((len(idx), length, *x0.shape[1:]), np.float32)
        for j, i in enumerate(idx):
            batch[j, : len(inputs[i])] = inputs[i]
        probs = np.asarray(model.predict_on_batch(batch))
        for j, i in enumerate(idx):
            out[i] = probs[j, : len(inputs[i])]
    return out
