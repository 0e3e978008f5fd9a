"""The music tasks' Keras loss and metrics: the definitions of ``seqkit.music.metrics`` in the
graph (``StepNLLLoss``, ``NLLPerStep``, ``FrameAccuracy``), registered with Keras'
serialization so that a run's ``model.keras`` reloads (``seqkit.compat.KERAS_OBJECTS`` imports
this module and ``seqkit.music.nade``, whose ``NadeKeys`` layer is registered the same way).
"""

from __future__ import annotations

import keras

from .metrics import EPSILON


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
