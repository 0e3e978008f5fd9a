"""Music tasks: ``polyphonic`` (next-step piano-roll model) and ``melody`` (MelodyRNN-style
events). Both predict **every** step of every sequence: the input at step ``t`` is the target
at ``t - 1`` (a zero vector at ``t = 0``), so the output at ``t`` sees steps ``0 .. t-1``.

**nll_per_step** (``polyphonic``), as in Boulanger-Lewandowski et al. 2012 and Chung et al.
2014: the model gives each of the K keys (88, or the ``pitch_range``) a probability ``p[t, k]``
of sounding at step ``t``; the negative log-likelihood of step ``t`` is

    NLL_t = - sum_k ( v[t, k] log p[t, k] + (1 - v[t, k]) log(1 - p[t, k]) )

(natural log, summed over the keys, ``v`` the true 0/1 roll), and ``nll_per_step`` is the mean
of ``NLL_t`` over **every time step of the split**, each step weighted equally: the sum over
all steps of all sequences divided by the number of steps -- not a mean per sequence, per
batch or per key. Padding steps are excluded. Probabilities are clipped to
``[1e-7, 1 - 1e-7]`` (Keras' epsilon), which bounds one key's cost at 16.1 nats. The first
step of a sequence is predicted from nothing; ``nll_per_step_after_first`` leaves those out
(the convention of code that predicts ``x[1:]`` from ``x[:-1]``, e.g. locuslab/TCN).
Keys outside ``pitch_range`` are modelled as never sounding (their notes are dropped, with a
warning and a count), so they add nothing to the sum. With ``components: M > 1`` (a mixture of
M independent-key distributions per step, see ``Polyphonic``) ``NLL_t = -ln P(v_t | v_<t)``
is that mixture's probability of the whole step, averaged the same way; with M = 1 it is the
sum above.

**frame_accuracy**: Bay et al. 2009, as reported by Boulanger-Lewandowski et al. 2012:
``TP / (TP + FP + FN)``, the counts summed over every step of the split, a key predicted on
when ``p >= threshold`` (task parameter, default 0.5: the most likely value of each key).

``melody``: one event per step from ``2 + (max_note - min_note + 1)`` classes -- 0 *hold*
(no event: the note or silence before continues), 1 *rest* (note off), ``2 + i`` *note on*
of pitch ``min_note + i`` -- as Magenta's MelodyRNN one-hot encoding; a softmax over them;
``nll_per_step`` is the mean over every step of ``-log p(true event)``, ``accuracy`` the share
of steps whose most likely event is the true one. Melodies come from any music source: the
highest sounding note (a part's only note for a one-part score or a pYIN transcription).

Training feeds whole sequences, or with ``chunk_length`` fixed windows of that many scored
steps, each preceded by up to ``chunk_warmup`` earlier steps that warm the state up unscored
(sample weight 0); padding always has weight 0, so the loss (cross-entropy summed over keys,
divided by the number of real steps in the batch) is the batch's NLL per step. Validation
and test always use whole sequences. The monitor ``val_nll_per_step`` is computed in the
graph over the whole validation split with the same definition; ``evaluate`` recomputes it in
numpy (float64) from the model's probabilities.
"""

from __future__ import annotations

import logging
import math

import keras
import numpy as np

from ..errors import DataError, ParameterError, fraction, positive_int
from ..registry import SOURCES
from ..tasks import SPLITS, Split, Task, TaskData, make_source
from .rolls import KEYS, LOWEST, chunk_spans, shifted_inputs, transpose_limits

log = logging.getLogger("seqkit")

EPSILON = 1e-7
HOLD, REST, FIRST_NOTE_EVENT = 0, 1, 2
MUSIC_SOURCES_HINT = "pianoroll_pickle, pianoroll_npz, midi_folder, music21_corpus, audio_folder"


# -- numpy metrics (the reference definitions) ---------------------------------------------------


def step_nll(probs, target) -> np.ndarray:
    """``NLL_t`` for each step: ``-sum_k [v log p + (1 - v) log(1 - p)]``, natural log,
    probabilities clipped to ``[1e-7, 1 - 1e-7]``. ``probs``, ``target``: ``(T, K)``."""
    p = np.clip(np.asarray(probs, dtype=np.float64), EPSILON, 1.0 - EPSILON)
    v = np.asarray(target, dtype=np.float64)
    return -(v * np.log(p) + (1.0 - v) * np.log1p(-p)).sum(axis=-1)


def nll_per_step(probs_list, target_list) -> float:
    """Mean of ``step_nll`` over every step of every sequence, each step weighted equally."""
    per = [step_nll(p, v) for p, v in zip(probs_list, target_list)]
    steps = sum(len(x) for x in per)
    if not steps:
        raise ParameterError("nll_per_step needs at least one time step; received none.")
    return float(sum(x.sum() for x in per) / steps)


def frame_counts(probs, target, threshold: float = 0.5) -> tuple[int, int, int]:
    """``(TP, FP, FN)`` of keys predicted on where ``probs >= threshold``."""
    pred = np.asarray(probs) >= threshold
    v = np.asarray(target).astype(bool)
    return int((pred & v).sum()), int((pred & ~v).sum()), int((~pred & v).sum())


def frame_accuracy(probs_list, target_list, threshold: float = 0.5) -> float:
    """Bay et al.'s frame-level accuracy ``TP / (TP + FP + FN)``, counts over the split."""
    tp = fp = fn = 0
    for p, v in zip(probs_list, target_list):
        a, b, c = frame_counts(p, v, threshold)
        tp, fp, fn = tp + a, fp + b, fn + c
    return tp / (tp + fp + fn) if tp + fp + fn else 1.0


def _log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


def mixture_parts(params, components: int):
    """``(log weights (T, M), key logits (T, M, K))`` from a mixture head's outputs."""
    params = np.asarray(params, dtype=np.float64)
    m = int(components)
    logits = params[..., :m]
    log_w = logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)
    keys = params[..., m:].reshape(*params.shape[:-1], m, -1)
    return log_w, keys


def mixture_step_nll(params, target, components: int) -> np.ndarray:
    """``NLL_t = -log sum_m w_m prod_k p_mk^v (1 - p_mk)^(1 - v)`` for each step of a
    mixture of ``components`` independent-key distributions (natural log)."""
    log_w, keys = mixture_parts(params, components)
    v = np.asarray(target, dtype=np.float64)[..., None, :]
    ll = (v * _log_sigmoid(keys) + (1.0 - v) * _log_sigmoid(-keys)).sum(axis=-1)
    return -np.logaddexp.reduce(log_w + ll, axis=-1)


def mixture_marginals(params, components: int) -> np.ndarray:
    """``P(key k on) = sum_m w_m sigmoid(l_mk)`` per step: ``(T, K)``."""
    log_w, keys = mixture_parts(params, components)
    return (np.exp(log_w)[..., None] / (1.0 + np.exp(-keys))).sum(axis=-2)


def event_nll(probs, events) -> np.ndarray:
    """``-log p(true event)`` per step; ``probs`` ``(T, C)``, ``events`` ``(T,)`` ints."""
    p = np.asarray(probs, dtype=np.float64)
    e = np.asarray(events, dtype=np.int64)
    return -np.log(np.clip(p[np.arange(len(e)), e], EPSILON, 1.0))


# -- Keras loss and metrics (in the graph; the same definitions) --------------------------------


def _bernoulli_step_nll(y_true, y_pred):
    p = keras.ops.clip(keras.ops.cast(y_pred, "float32"), EPSILON, 1.0 - EPSILON)
    v = keras.ops.cast(y_true, "float32")
    return -keras.ops.sum(v * keras.ops.log(p) + (1.0 - v) * keras.ops.log(1.0 - p), axis=-1)


def _mixture_step_nll(y_true, y_pred, components):
    ops = keras.ops
    v = ops.cast(y_true, "float32")
    params = ops.cast(y_pred, "float32")
    k = v.shape[-1]
    m = int(components)
    flat_v = ops.reshape(v, (-1, 1, k))
    flat = ops.reshape(params, (-1, m * (k + 1)))
    log_w = ops.log_softmax(flat[:, :m], axis=-1)
    logits = ops.reshape(flat[:, m:], (-1, m, k))
    ll = ops.sum(flat_v * logits - ops.softplus(logits), axis=-1)  # log Bernoulli, summed
    per = -ops.logsumexp(log_w + ll, axis=-1)
    return ops.reshape(per, ops.shape(v)[:-1])


def _mixture_marginals(y_pred, components, keys):
    ops = keras.ops
    m = int(components)
    params = ops.cast(y_pred, "float32")
    flat = ops.reshape(params, (-1, m * (keys + 1)))
    w = ops.softmax(flat[:, :m], axis=-1)
    p = ops.sigmoid(ops.reshape(flat[:, m:], (-1, m, keys)))
    marg = ops.sum(ops.expand_dims(w, -1) * p, axis=1)
    return ops.reshape(marg, tuple(ops.shape(params)[:-1]) + (keys,))


def _categorical_step_nll(y_true, y_pred):
    p = keras.ops.clip(keras.ops.cast(y_pred, "float32"), EPSILON, 1.0)
    idx = keras.ops.cast(y_true, "int32")
    picked = keras.ops.take_along_axis(p, keras.ops.expand_dims(idx, -1), axis=-1)
    return -keras.ops.log(keras.ops.squeeze(picked, -1))


@keras.saving.register_keras_serializable(package="seqkit")
def _step_nll_fn(kind, components):
    if kind == "categorical":
        return _categorical_step_nll
    if kind == "mixture":
        return lambda y_true, y_pred: _mixture_step_nll(y_true, y_pred, components)
    return _bernoulli_step_nll


@keras.saving.register_keras_serializable(package="seqkit")
class StepNLLLoss(keras.losses.Loss):
    """NLL of each step -- cross-entropy summed over its keys (``bernoulli``), of its event
    (``categorical``), or of a mixture of ``components`` key distributions (``mixture``) --
    averaged over the steps with sample weight (padding excluded)."""

    def __init__(self, kind="bernoulli", components=1, name="step_nll",
                 reduction="mean_with_sample_weight"):  # fmt: skip
        super().__init__(name=name, reduction=reduction)
        self.kind = kind
        self.components = int(components)

    def call(self, y_true, y_pred):
        if self.kind == "bernoulli":  # Keras' own, computed from the sigmoid's logits
            return keras.ops.sum(keras.ops.binary_crossentropy(y_true, y_pred), axis=-1)
        return _step_nll_fn(self.kind, self.components)(y_true, y_pred)

    def get_config(self):
        return {"kind": self.kind, "components": self.components, "name": self.name,
                "reduction": self.reduction}  # fmt: skip


@keras.saving.register_keras_serializable(package="seqkit")
class NLLPerStep(keras.metrics.Metric):
    """``nll_per_step`` over everything seen since the last reset: the sum of every weighted
    step's NLL divided by the sum of the weights (the number of real steps)."""

    def __init__(self, kind="bernoulli", components=1, name="nll_per_step", **kwargs):
        super().__init__(name=name, **kwargs)
        self.kind = kind
        self.components = int(components)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        per = _step_nll_fn(self.kind, self.components)(y_true, y_pred)
        w = (
            keras.ops.ones_like(per)
            if sample_weight is None
            else keras.ops.cast(sample_weight, per.dtype)
        )
        self.total.assign_add(keras.ops.sum(per * w))
        self.count.assign_add(keras.ops.sum(w))

    def result(self):
        return keras.ops.divide_no_nan(self.total, self.count)

    def reset_state(self):
        self.total.assign(0.0)
        self.count.assign(0.0)

    def get_config(self):
        return {"kind": self.kind, "components": self.components, "name": self.name,
                "dtype": self.dtype}  # fmt: skip


@keras.saving.register_keras_serializable(package="seqkit")
class FrameAccuracy(keras.metrics.Metric):
    """``TP / (TP + FP + FN)`` over every weighted step, keys on where ``p >= threshold``."""

    def __init__(self, threshold=0.5, components=1, name="frame_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.threshold = float(threshold)
        self.components = int(components)
        self.tp = self.add_variable(shape=(), initializer="zeros", name="tp")
        self.errors = self.add_variable(shape=(), initializer="zeros", name="errors")

    def update_state(self, y_true, y_pred, sample_weight=None):
        v = keras.ops.cast(y_true, "float32")
        if self.components > 1:
            y_pred = _mixture_marginals(y_pred, self.components, v.shape[-1])
        pred = keras.ops.cast(keras.ops.greater_equal(y_pred, self.threshold), "float32")
        w = (
            1.0
            if sample_weight is None
            else keras.ops.expand_dims(keras.ops.cast(sample_weight, "float32"), -1)
        )
        tp = keras.ops.sum(pred * v * w)
        wrong = keras.ops.sum(keras.ops.abs(pred - v) * w)  # FP + FN
        self.tp.assign_add(tp)
        self.errors.assign_add(wrong)

    def result(self):
        return keras.ops.divide_no_nan(self.tp, self.tp + self.errors)

    def reset_state(self):
        self.tp.assign(0.0)
        self.errors.assign(0.0)

    def get_config(self):
        return {"threshold": self.threshold, "components": self.components, "name": self.name,
                "dtype": self.dtype}  # fmt: skip


# -- batches -------------------------------------------------------------------------------------


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


# -- melody events -------------------------------------------------------------------------------


def top_line(roll, onsets=None) -> tuple[np.ndarray, np.ndarray]:
    """``(pitch index or -1, onset)`` per step: the highest sounding key (the skyline) and
    whether a note starts there (the top key changes, or ``onsets`` marks it)."""
    roll = np.asarray(roll, dtype=bool)
    t = roll.shape[0]
    active = roll.any(axis=1)
    top = np.where(active, roll.shape[1] - 1 - np.argmax(roll[:, ::-1], axis=1), -1)
    onset = np.zeros(t, dtype=bool)
    for i in range(t):
        if top[i] < 0:
            continue
        onset[i] = (
            i == 0
            or top[i] != top[i - 1]
            or (onsets is not None and bool(np.asarray(onsets)[i, top[i]]))
        )
    return top, onset


def melody_events(roll, onsets, min_note: int, max_note: int, lowest: int = LOWEST):
    """``(events, folded)``: the event sequence of a roll's top line; notes outside
    ``min_note .. max_note`` are moved by octaves into it (``folded`` counts them)."""
    top, onset = top_line(roll, onsets)
    events = np.zeros(len(top), dtype=np.int32)
    folded = 0
    for i, k in enumerate(top):
        if k < 0:
            events[i] = REST if i > 0 and top[i - 1] >= 0 else HOLD
            continue
        if not onset[i]:
            events[i] = HOLD
            continue
        pitch = int(k) + lowest
        if not min_note <= pitch <= max_note:
            folded += 1
            while pitch < min_note:
                pitch += 12
            while pitch > max_note:
                pitch -= 12
            if pitch < min_note:  # a range narrower than an octave
                pitch = min_note
        events[i] = FIRST_NOTE_EVENT + pitch - min_note
    return events, folded


def events_to_notes(events, min_note: int):
    """Notes ``(pitch, start, end)`` of an event sequence."""
    from .rolls import Note

    notes, current, start = [], None, 0
    for i, e in enumerate(list(events) + [REST]):
        e = int(e)
        if e == HOLD:
            continue
        if current is not None:
            notes.append(Note(current, start, i))
            current = None
        if e >= FIRST_NOTE_EVENT:
            current, start = min_note + e - FIRST_NOTE_EVENT, i
    return notes


# -- the tasks -----------------------------------------------------------------------------------


class MusicTask(Task):
    """What the two music tasks share: a music source, no feature steps, no normalisation,
    next-step inputs, batches, ``val_nll_per_step`` as the monitor, sampling during training."""

    monitor = "val_nll_per_step"
    mode = "min"
    uses_audio_features = False
    normalize_default = False
    needs_sequences = True
    kind = "bernoulli"

    def _common(self, transpose, chunk_length, chunk_warmup, dropout, sample_every, sample_steps,
                weight_noise=0.0):  # fmt: skip
        if (
            isinstance(transpose, bool)
            or not isinstance(transpose, int)
            or not 0 <= transpose <= 24
        ):
            raise ParameterError(
                f"`transpose` must be an integer 0..24 (semitones up or down); received {transpose!r}."
            )
        self.transpose = transpose
        self.chunk_length = (
            None if chunk_length is None else positive_int("chunk_length", chunk_length)
        )
        if isinstance(chunk_warmup, bool) or not isinstance(chunk_warmup, int) or chunk_warmup < 0:
            raise ParameterError(
                f"`chunk_warmup` must be an integer >= 0; received {chunk_warmup!r}."
            )
        if chunk_warmup and not chunk_length:
            raise ParameterError("`chunk_warmup` needs `chunk_length`; set both or neither.")
        self.chunk_warmup = chunk_warmup
        self.dropout = fraction("dropout", dropout)
        if isinstance(sample_every, bool) or not isinstance(sample_every, int) or sample_every < 0:
            raise ParameterError(
                f"`sample_every` must be an integer >= 0 (epochs; 0 = never); received {sample_every!r}."
            )
        self.sample_every = sample_every
        self.sample_steps = positive_int("sample_steps", sample_steps)
        if (
            not isinstance(weight_noise, (int, float))
            or isinstance(weight_noise, bool)
            or not (0 <= weight_noise < 1)
        ):
            raise ParameterError(
                f"`weight_noise` must be a standard deviation in [0, 1) (Chung et al.: 0.075); "
                f"received {weight_noise!r}."
            )
        self.weight_noise = float(weight_noise)
        self._skip = 0
        self.seed = 0
        self._batch_size = 32

    # recipe checks

    def check_recipe(self, recipe) -> list[tuple[str, str]]:
        problems = []
        name = type(self).__name__.lower()
        if recipe.features:
            problems.append(
                (
                    "features",
                    f"the {name} task reads piano rolls, not audio features; remove `features`",
                )
            )
        source = recipe.data.source.type
        if source in SOURCES and getattr(SOURCES.get(source), "kind", None) != "music":
            problems.append(
                (
                    "data.source.type",
                    f"the {name} task needs a music source ({MUSIC_SOURCES_HINT}); received '{source}'",
                )
            )
        for i, step in enumerate(recipe.model.layers):
            for key in ("bidirectional", "go_backwards"):
                if step.params.get(key):
                    problems.append(
                        (f"model.layers[{i}].{key}", f"a next-step model must not see the future "
                         f"(the {name} task predicts step t from steps before t); remove it")
                    )  # fmt: skip
        if recipe.model.normalize:
            problems.append(
                (
                    "model.normalize",
                    f"the {name} task's inputs are 0/1 (piano rolls, one-hot events); remove it or set false",
                )
            )
        return problems

    def dummy_input_shape(self) -> tuple:
        return (None, self.dummy_info()["inputs"])

    # data

    def _load(self, recipe):
        self.seed = recipe.seed
        source = make_source(recipe)
        if getattr(source, "kind", None) != "music":
            raise DataError(
                f"The {type(self).__name__.lower()} task needs a music source "
                f"({MUSIC_SOURCES_HINT}); received '{recipe.data.source.type}'."
            )
        return source.load(cache=recipe.data.cache)

    def _task_data(self, music, targets: dict, info: dict, recipe) -> TaskData:
        for split in ("train", "validation"):
            if not targets.get(split):
                raise DataError(
                    f"The {split} split is empty ({len(music.pieces)} usable pieces in all); "
                    "add more files or change data.source's validation_percent / test_percent."
                )
        splits = {}
        for split in SPLITS:
            if targets.get(split):
                names, ys = zip(*targets[split])
                xs = [self.encode(y)[0] for y in ys]
                splits[split] = Split(list(xs), list(ys), items=list(names))
        info |= {
            "task": recipe.task.type,
            "source": recipe.data.source.type,
            "time_step": music.time_step,
            "examples": {s: len(splits[s]) for s in splits},
            "steps": {s: int(sum(len(y) for y in splits[s].y)) for s in splits},
            "skipped": music.skipped,
            "notes_dropped": music.notes_dropped,
        }
        longest = max(len(y) for y in splits["train"].y)
        if not self.chunk_length and longest > 2000:
            log.warning(
                "The longest training sequence has %d steps and every batch is padded to it; "
                "set task.chunk_length (e.g. 256) to train on windows.",
                longest,
            )
        return TaskData(splits, (None, info["inputs"]), info)

    def _train_batches(self, data: TaskData, batch_size: int, seed: int) -> SequenceBatches:
        self._batch_size = batch_size
        key = (id(data), batch_size, seed)
        if getattr(self, "_train_key", None) != key:
            self._train_key = key
            self._train_ds = SequenceBatches(
                data.splits["train"].y,
                self.encode,
                batch_size,
                chunk=self.chunk_length,
                warmup=self.chunk_warmup,
                shuffle=True,
                augment=self._augment(data.info) if self.transpose else None,
                seed=seed,
            )
        return self._train_ds

    def epoch_inputs(self, data: TaskData, epoch: int, batch_size: int, seed: int,
                     skip_batches: int = 0) -> dict:  # fmt: skip
        """One epoch of training batches, a pure function of (seed, epoch)."""
        ds = self._train_batches(data, batch_size, seed)
        ds.set_epoch(epoch, skip_batches)
        self._skip = int(skip_batches)
        return {"x": ds}

    def fit_inputs(self, data: TaskData, batch_size: int) -> dict:
        """All epochs in one ``model.fit`` (the dataset moves to the next epoch by itself)."""
        return {"x": self._train_batches(data, batch_size, self.seed)}

    def validation_data(self, data: TaskData):
        key = (id(data), self._batch_size)
        if getattr(self, "_val_key", None) != key:
            self._val_key = key
            self._val_ds = SequenceBatches(
                data.splits["validation"].y, self.encode, self._batch_size
            )
        return self._val_ds

    # model

    def compile_args(self) -> dict:
        return {
            "loss": StepNLLLoss(kind=self.kind),
            "weighted_metrics": self._metrics(),
        }

    def callbacks(self, run_dir, data: TaskData) -> list:
        out = []
        if self.weight_noise:
            out.append(WeightNoise(self, self.weight_noise))
        if self.sample_every:
            out.append(SampleWriter(self, data.info, run_dir / "logs" / "samples",
                                    self.sample_every, self.sample_steps, self.seed))  # fmt: skip
        return out

    def summary(self, metrics: dict) -> list[str]:
        out = []
        for split in ("validation", "test"):
            if split in metrics:
                m = metrics[split]
                extra = (
                    f", frame accuracy {m['frame_accuracy']:.4f}"
                    if "frame_accuracy" in m
                    else f", accuracy {m['accuracy']:.4f}"
                )
                out.append(
                    f"{split} nll_per_step: {m['nll_per_step']:.4f}{extra} ({m['sequences']} "
                    f"sequences, {m['steps']} steps, best epoch {metrics['best_epoch']})"
                )
        entries = [s for s in metrics.get("skipped") or [] if isinstance(s, dict)]
        skipped = [s for s in entries if not s["reason"].startswith("dropped ")]
        if skipped:
            reasons: dict[str, int] = {}
            for s in skipped:
                key = s["reason"].split(" (")[0]
                reasons[key] = reasons.get(key, 0) + 1
            detail = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items()))
            out.append(f"skipped {len(skipped)} input(s): {detail}")
        dropped = [s for s in entries if s["reason"].startswith("dropped ")]
        if dropped:
            notes = sum(int(s["reason"].split()[1]) for s in dropped)
            out.append(
                f"dropped {notes} note(s) outside the piano range {LOWEST}..{LOWEST + KEYS - 1} "
                f"in {len(dropped)} input(s)"
            )
        return out

    # sampling (generate, and the training callback)

    def _temperature(self, temperature) -> float:
        if (
            isinstance(temperature, bool)
            or not isinstance(temperature, (int, float))
            or not temperature > 0
        ):
            raise ParameterError(f"`temperature` must be a number > 0; received {temperature!r}.")
        return float(temperature)


class Polyphonic(MusicTask):
    """Next-step model of polyphonic music: recipe layers -> Dense(K, sigmoid) at every step;
    ``nll_per_step`` and ``frame_accuracy`` as defined in this module's docstring.

    ``pitch_range``: ``[lowest, highest]`` MIDI notes modelled (default the 88 keys);
    ``transpose``: each training sequence moved by a random shift in ``-transpose ..
    transpose`` semitones (kept inside the range) drawn anew every epoch; ``chunk_length`` /
    ``chunk_warmup``: train on windows (see the module docstring); ``dropout`` before the
    output layer; ``weight_noise``: Gaussian noise of that standard deviation added to every
    weight for each training step (Graves 2011; Chung et al. 2014 used 0.075), the gradient
    taken at the noisy weights and applied to the clean ones; ``threshold`` of
    ``frame_accuracy``; ``sample_every`` epochs a generated
    sample of ``sample_steps`` steps goes to TensorBoard (audio and a piano-roll image).

    ``components``: 1 (default) is the benchmark model above, the keys independent given the
    past. ``components: M > 1`` makes each step's distribution a mixture of M such
    independent-key distributions, ``P(v_t) = sum_m w_m prod_k p_mk^v (1 - p_mk)^(1 - v)``
    (one Dense layer gives the M weights and the M x K key probabilities), which can say that
    notes come together in chords; ``nll_per_step`` is then ``-ln P(v_t)`` with the same
    averaging, and ``frame_accuracy`` uses ``P(key on) = sum_m w_m p_mk``. The model's
    output is then the head's raw values (``M`` weight logits, then ``M x K`` key logits).
    """

    def __init__(
        self,
        pitch_range: list[int] | None = None,
        transpose: int = 0,
        chunk_length: int | None = None,
        chunk_warmup: int = 0,
        dropout: float = 0.0,
        threshold: float = 0.5,
        components: int = 1,
        weight_noise: float = 0.0,
        sample_every: int = 10,
        sample_steps: int = 32,
    ):
        self.components = positive_int("components", components)
        self.kind = "mixture" if self.components > 1 else "bernoulli"
        if pitch_range is None:
            self.lowest, self.keys = LOWEST, KEYS
        else:
            ok = (
                isinstance(pitch_range, (list, tuple))
                and len(pitch_range) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) for v in pitch_range)
                and LOWEST <= pitch_range[0] < pitch_range[1] <= LOWEST + KEYS - 1
            )
            if not ok:
                raise ParameterError(
                    f"`pitch_range` must be [lowest, highest] MIDI notes within {LOWEST}..{LOWEST + KEYS - 1}, "
                    f"lowest below highest; received {pitch_range!r}."
                )
            self.lowest, self.keys = pitch_range[0], pitch_range[1] - pitch_range[0] + 1
        if (
            not isinstance(threshold, (int, float))
            or isinstance(threshold, bool)
            or not 0 < threshold < 1
        ):
            raise ParameterError(f"`threshold` must be in (0, 1); received {threshold!r}.")
        self.threshold = float(threshold)
        self._common(transpose, chunk_length, chunk_warmup, dropout, sample_every, sample_steps,
                     weight_noise)  # fmt: skip

    def dummy_info(self) -> dict:
        return {
            "keys": self.keys,
            "lowest_note": self.lowest,
            "inputs": self.keys,
            "components": self.components,
        }

    def encode(self, target):
        y = np.asarray(target, dtype=np.float32)
        return shifted_inputs(y), y

    def _augment(self, info):
        limit = self.transpose

        def move(rng, roll):
            down, up = transpose_limits(roll)
            k = int(rng.integers(max(-limit, down), min(limit, up) + 1))
            if k == 0:
                return roll
            out = np.zeros_like(roll)
            if k > 0:
                out[:, k:] = roll[:, :-k]
            else:
                out[:, :k] = roll[:, -k:]
            return out

        return move

    def load_data(self, recipe, progress=None) -> TaskData:
        music = self._load(recipe)
        lo = self.lowest - LOWEST
        targets: dict[str, list] = {s: [] for s in SPLITS}
        outside = {s: 0 for s in SPLITS}
        for p in music.pieces:
            roll = p.roll
            outside[p.split] += int(roll[:, :lo].sum() + roll[:, lo + self.keys :].sum())
            targets[p.split].append((p.name, roll[:, lo : lo + self.keys].astype(np.float32)))
        for split, n in outside.items():
            if n:
                log.warning(
                    "%d active key-steps of the %s split lie outside pitch_range %d..%d and "
                    "were dropped.", n, split, self.lowest, self.lowest + self.keys - 1
                )  # fmt: skip
        info = self.dummy_info() | {"keysteps_outside_pitch_range": outside}
        return self._task_data(music, targets, info, recipe)

    def head(self, x, info: dict):
        if self.dropout:
            x = keras.layers.Dropout(self.dropout, name="head_dropout")(x)
        m = int(info.get("components", 1))
        if m > 1:
            return keras.layers.Dense(m * (info["keys"] + 1), name="mixture")(x)
        return keras.layers.Dense(info["keys"], activation="sigmoid", name="keys")(x)

    def compile_args(self) -> dict:
        m = self.components
        return {
            "loss": StepNLLLoss(kind=self.kind, components=m),
            "weighted_metrics": [NLLPerStep(self.kind, m), FrameAccuracy(self.threshold, m)],
        }

    def step_nll(self, outputs, target) -> np.ndarray:
        """NLL of each step from the model's outputs (probabilities, or mixture values)."""
        if self.components > 1:
            return mixture_step_nll(outputs, target, self.components)
        return step_nll(outputs, target)

    def key_probabilities(self, outputs) -> np.ndarray:
        """``P(key on)`` per step from the model's outputs."""
        if self.components > 1:
            return mixture_marginals(outputs, self.components)
        return np.asarray(outputs)

    def evaluate(self, model, data: TaskData, split: str, batch_size=64) -> dict:
        s = data.splits[split]
        outputs = predict_sequences(model, s.x, batch_size)
        per = [self.step_nll(o, v) for o, v in zip(outputs, s.y)]
        probs = [self.key_probabilities(o) for o in outputs]
        steps = sum(len(x) for x in per)
        after_first = sum(len(x) - 1 for x in per)
        return {
            "nll_per_step": float(sum(x.sum() for x in per) / steps),
            "nll_per_step_after_first": float(sum(x[1:].sum() for x in per) / after_first)
            if after_first
            else None,
            "frame_accuracy": frame_accuracy(probs, s.y, self.threshold),
            "threshold": self.threshold,
            "sequences": len(per),
            "steps": int(steps),
            "keys": int(data.info["keys"]),
            "components": self.components,
        }

    def sample(self, model, info, steps, num=1, temperature=1.0, seed=0, primer=None):
        """``num`` rolls ``(len(primer) + steps, K)``: the primer, then ``steps`` sampled steps
        (each key on with probability ``sigmoid(logit(p) / temperature)``; with a mixture, a
        component drawn first with weights ``w ** (1 / temperature)``), seeded."""
        t = self._temperature(temperature)
        rng = np.random.default_rng(seed)
        k = int(info["keys"])
        primer = np.zeros((0, k), np.float32) if primer is None else np.asarray(primer, np.float32)
        total = len(primer) + int(steps)
        length = _round_up(total, 16)
        seq = np.zeros((num, length, k), np.float32)
        seq[:, : len(primer)] = primer
        for i in range(len(primer), total):
            x = np.zeros_like(seq)
            x[:, 1:] = seq[:, :-1]
            out = np.asarray(model.predict_on_batch(x))[:, i].astype(np.float64)
            if self.components > 1:
                log_w, logits = mixture_parts(out, self.components)
                w = np.exp((log_w - log_w.max(axis=-1, keepdims=True)) / t)
                w /= w.sum(axis=-1, keepdims=True)
                pick = [rng.choice(self.components, p=w[j]) for j in range(num)]
                logit = logits[np.arange(num), pick]
            else:
                p = np.clip(out, EPSILON, 1 - EPSILON)
                logit = np.log(p) - np.log1p(-p)
            p = 1.0 / (1.0 + np.exp(-logit / t))
            seq[:, i] = rng.random((num, k)) < p
        return [seq[j, :total] > 0 for j in range(num)]

    def to_notes(self, sample, info):
        """Notes ``(pitch, start, end)`` of a sampled roll (a run of steps is one note)."""
        from .rolls import roll_to_notes

        return roll_to_notes(sample, lowest=int(info["lowest_note"]))

    def primer_from_notes(self, notes, info):
        from .rolls import notes_to_roll

        roll, _, outside = notes_to_roll(
            notes, lowest=int(info["lowest_note"]), keys=int(info["keys"])
        )
        return roll.astype(np.float32), outside


class Melody(MusicTask):
    """Monophonic melody model, Magenta MelodyRNN-style: one event per step (hold, rest, or
    note on for each pitch of ``min_note .. max_note``), recipe layers -> Dense(events,
    softmax). Melodies are the top line of the source's rolls; notes outside the range move
    by octaves into it (counted). ``transpose``, ``chunk_length``, ``chunk_warmup``,
    ``dropout``, ``weight_noise``, ``sample_every``, ``sample_steps`` as for ``polyphonic``."""

    kind = "categorical"

    def __init__(
        self,
        min_note: int = 48,
        max_note: int = 84,
        transpose: int = 0,
        chunk_length: int | None = None,
        chunk_warmup: int = 0,
        dropout: float = 0.0,
        weight_noise: float = 0.0,
        sample_every: int = 10,
        sample_steps: int = 64,
    ):
        for name, v in (("min_note", min_note), ("max_note", max_note)):
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 127:
                raise ParameterError(f"`{name}` must be a MIDI note 0..127; received {v!r}.")
        if min_note >= max_note:
            raise ParameterError(f"`min_note` ({min_note}) must be below `max_note` ({max_note}).")
        self.min_note, self.max_note = min_note, max_note
        self.classes = FIRST_NOTE_EVENT + max_note - min_note + 1
        self._common(transpose, chunk_length, chunk_warmup, dropout, sample_every, sample_steps,
                     weight_noise)  # fmt: skip

    def dummy_info(self) -> dict:
        return {
            "min_note": self.min_note,
            "max_note": self.max_note,
            "classes": self.classes,
            "inputs": self.classes,
        }

    def encode(self, events):
        events = np.asarray(events, dtype=np.int32)
        x = np.zeros((len(events), self.classes), np.float32)
        if len(events) > 1:
            x[np.arange(1, len(events)), events[:-1]] = 1.0
        return x, events

    def _augment(self, info):
        limit, lo, hi = self.transpose, self.min_note, self.max_note

        def move(rng, events):
            notes = events[events >= FIRST_NOTE_EVENT] - FIRST_NOTE_EVENT + lo
            if notes.size == 0:
                return events
            down, up = lo - int(notes.min()), hi - int(notes.max())
            k = int(rng.integers(max(-limit, down), min(limit, up) + 1))
            out = events.copy()
            out[events >= FIRST_NOTE_EVENT] += k
            return out

        return move

    def load_data(self, recipe, progress=None) -> TaskData:
        music = self._load(recipe)
        targets: dict[str, list] = {s: [] for s in SPLITS}
        folded = 0
        for p in music.pieces:
            events, n = melody_events(p.roll, p.onsets, self.min_note, self.max_note)
            folded += n
            if (events >= FIRST_NOTE_EVENT).any():
                targets[p.split].append((p.name, events))
        if folded:
            log.warning(
                "%d melody note(s) outside %d..%d were moved by octaves into the range.",
                folded, self.min_note, self.max_note,
            )  # fmt: skip
        info = self.dummy_info() | {"notes_folded": folded}
        return self._task_data(music, targets, info, recipe)

    def head(self, x, info: dict):
        if self.dropout:
            x = keras.layers.Dropout(self.dropout, name="head_dropout")(x)
        return keras.layers.Dense(info["classes"], activation="softmax", name="events")(x)

    def _metrics(self):
        return [NLLPerStep("categorical"), keras.metrics.SparseCategoricalAccuracy(name="accuracy")]

    def evaluate(self, model, data: TaskData, split: str, batch_size=64) -> dict:
        s = data.splits[split]
        probs = predict_sequences(model, s.x, batch_size)
        per = [event_nll(p, e) for p, e in zip(probs, s.y)]
        steps = sum(len(x) for x in per)
        right = sum(int((p.argmax(-1) == e).sum()) for p, e in zip(probs, s.y))
        ons = [(p.argmax(-1), e) for p, e in zip(probs, s.y)]
        on_steps = sum(int((e >= FIRST_NOTE_EVENT).sum()) for _, e in ons)
        on_right = sum(int(((a == e) & (e >= FIRST_NOTE_EVENT)).sum()) for a, e in ons)
        return {
            "nll_per_step": float(sum(x.sum() for x in per) / steps),
            "accuracy": right / steps,
            "note_on_accuracy": on_right / on_steps if on_steps else None,
            "sequences": len(per),
            "steps": int(steps),
            "classes": int(data.info["classes"]),
        }

    def sample(self, model, info, steps, num=1, temperature=1.0, seed=0, primer=None):
        """``num`` event sequences: the primer's events, then ``steps`` sampled events
        (softmax probabilities raised to ``1 / temperature``, renormalised), seeded."""
        t = self._temperature(temperature)
        rng = np.random.default_rng(seed)
        c = int(info["classes"])
        primer = np.zeros(0, np.int32) if primer is None else np.asarray(primer, np.int32)
        total = len(primer) + int(steps)
        length = _round_up(total, 16)
        events = np.zeros((num, total), np.int32)
        events[:, : len(primer)] = primer
        x = np.zeros((num, length, c), np.float32)
        for i in range(1, len(primer) + 1):
            if i < length:
                x[:, i, primer[i - 1]] = 1.0
        for i in range(len(primer), total):
            p = np.asarray(model.predict_on_batch(x))[:, i].astype(np.float64)
            logp = np.log(np.clip(p, 1e-12, 1.0)) / t
            q = np.exp(logp - logp.max(axis=1, keepdims=True))
            q /= q.sum(axis=1, keepdims=True)
            for j in range(num):
                events[j, i] = rng.choice(c, p=q[j])
            if i + 1 < length:
                x[np.arange(num), i + 1, events[:, i]] = 1.0
        return [events[j] for j in range(num)]

    def to_notes(self, sample, info):
        return events_to_notes(sample, int(info["min_note"]))

    def primer_from_notes(self, notes, info):
        from .rolls import notes_to_roll

        roll, onsets, _ = notes_to_roll(notes)
        events, folded = melody_events(roll, onsets, int(info["min_note"]), int(info["max_note"]))
        return events, folded


# -- samples in TensorBoard ----------------------------------------------------------------------


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


_WRITERS: dict = {}  # one TensorBoard writer per folder (the trainer makes callbacks per epoch)


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
        import tensorflow as tf

        from .rolls import notes_to_roll
        from .sources import seconds_per_step
        from .synth import render

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
