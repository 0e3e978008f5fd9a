"""Batches of variable-length sequences for the music tasks: padded to a multiple of 8,
optionally cut into chunks with warm-up steps (weight 0), shuffled per epoch from the seed,
optionally bucketed by length (``SequenceBatches``, a ``keras.utils.PyDataset``), and
whole-sequence prediction.

**Bucketing** (``bucket=True``; the music tasks' ``bucket`` parameter): without it every batch
is padded to the longest sequence of the split (one shape for the whole run), which on
Nottingham (lengths 40-1788, median 255) makes ~7 of every 8 computed steps padding. With it
each epoch's order is drawn from the seed, then sorted by length (ties in that random order),
cut into batches of ``batch_size`` neighbours, and the batches are shuffled (from the seed
again): each batch is padded only to its own longest window, rounded up to a rung of a ladder
of lengths about 1.25 times apart (``bucket_length``) so that few distinct shapes are
compiled. Every window is still served exactly once per epoch, and since padding has weight
0 the loss and ``nll_per_step`` are unchanged; only which sequences share a batch (and so each step's gradient) differs. Written here rather than with
``tf.data``'s ``bucket_by_sequence_length`` because the batches must stay a backend-neutral,
seeded, resumable ``PyDataset`` (a pure function of seed and epoch, ``skip_batches``).
"""

from __future__ import annotations

import math

import keras
import numpy as np

from .rolls import chunk_spans


def _round_up(n: int, multiple: int = 8) -> int:
    return max(multiple, -(-int(n) // multiple) * multiple)


def bucket_length(n: int) -> int:
    """The padded length of a bucketed batch whose longest window has ``n`` steps: the first
    rung of the ladder 16, 32, 48, 64, 80, 112, 144, 192, 240, 304, 384, ... (each about 1.25
    times the one before, a multiple of 16) that holds ``n``. Each distinct length is traced
    and compiled once (seconds each for the GRU's XLA loops), so the ladder keeps them few --
    15 for Nottingham's 40-1788 steps -- at the price of padding the longest window of a batch
    by less than 40 % (usually far less) beyond 64 steps."""
    length = 16
    while length < n:
        length = max(length + 16, _round_up(length * 1.25, 16))
    return length


class SequenceBatches(keras.utils.PyDataset):
    """Batches ``(x, y, sample_weight)`` of fixed shape ``(batch_size, length, ...)`` from
    variable-length sequences: padding (and warm-up steps) have weight 0, a short last batch
    is filled with all-zero rows. Whole sequences, or ``chunk_spans`` windows when ``chunk``
    is set. With ``shuffle``, the order (and ``augment``, a function ``(rng, target) ->
    target``) is drawn anew for every epoch from ``seed``. With ``bucket``, batches of
    neighbours in length, each padded to its own longest window (the module docstring)."""

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
        bucket=False,
    ):
        super().__init__(workers=1, use_multiprocessing=False)
        self.targets = list(targets)
        self.encode = encode  # target (T, ...) -> (x (T, F), y (T, ...)) float32 / int32
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.augment = augment
        self.seed = int(seed)
        self.bucket = bool(bucket)
        self.epoch, self.skip, self._planned = 0, 0, None
        self.windows = []
        for i, t in enumerate(self.targets):
            if chunk:
                self.windows += [(i, *span) for span in chunk_spans(len(t), chunk, warmup)]
            else:
                self.windows.append((i, 0, 0, len(t)))
        self.sizes = np.array([end - begin for _, begin, _, end in self.windows])
        self.length = _round_up(int(self.sizes.max()))

    def _plan(self):
        """The epoch's order and augmented targets: a pure function of (seed, epoch)."""
        if self._planned == self.epoch:
            return
        rng = np.random.default_rng([self.seed, self.epoch])
        order = np.arange(len(self.windows))
        if self.shuffle:
            rng.shuffle(order)
        if self.bucket:  # neighbours in length share a batch; the batches in a seeded order
            order = order[np.argsort(self.sizes[order], kind="stable")]
            batches = [
                order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)
            ]
            if self.shuffle:
                batches = [batches[i] for i in rng.permutation(len(batches))]
            order = np.concatenate(batches)
            # the short batch (if any) may now sit anywhere: rows are served by batch
            self.batches = batches
        else:
            self.batches = [
                order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)
            ]
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

    def _bucket_length(self, served: int) -> int:
        """The padded length of the ``served``-th batch served this epoch (bucketing). Keras
        fixes a ``PyDataset``'s tensor shapes from its first two batches (a length that differs
        between them becomes ``None``), so when those two would have the same length the first
        is padded one rung further: every later length is then accepted. The extra padding has
        weight 0 (nothing changes but a little compute); a run resumed mid-epoch gets the same
        sequences in each batch (its first batch perhaps padded further)."""
        index = served + self.skip
        length = bucket_length(self.sizes[self.batches[index]].max())
        if served == 0 and len(self) > 1:
            second = bucket_length(self.sizes[self.batches[index + 1]].max())
            if second == length:
                length = bucket_length(length + 1)
        return length

    def __getitem__(self, index):
        self._plan()
        served, index = index, index + self.skip
        rows = self.batches[index]
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
        length = self._bucket_length(served) if self.bucket else self.length
        bx = np.zeros((self.batch_size, length, *x0.shape[1:]), x0.dtype)
        by = np.zeros((self.batch_size, length, *y0.shape[1:]), y0.dtype)
        bw = np.zeros((self.batch_size, length), np.float32)
        for j, (x, y, w) in enumerate(zip(xs, ys, ws)):
            bx[j, : len(x)], by[j, : len(y)], bw[j, : len(w)] = x, y, w
        return bx, by, bw


def predict_sequences(model, inputs, batch_size: int = 64) -> list[np.ndarray]:
    """The model's outputs for each whole input sequence (batched by length, each batch padded
    to its ``bucket_length``, padding cut)."""
    order = np.argsort([len(x) for x in inputs], kind="stable")
    out: list = [None] * len(inputs)
    for b in range(0, len(order), batch_size):
        idx = order[b : b + batch_size]
        length = bucket_length(max(len(inputs[i]) for i in idx))  # few shapes to compile
        x0 = inputs[idx[0]]
        batch = np.zeros((len(idx), length, *x0.shape[1:]), np.float32)
        for j, i in enumerate(idx):
            batch[j, : len(inputs[i])] = inputs[i]
        probs = np.asarray(model.predict_on_batch(batch))
        for j, i in enumerate(idx):
            out[i] = probs[j, : len(inputs[i])]
    return out
