"""The music tasks' measures in NumPy (float64), the reference definitions: NLL per step,
frame accuracy, mixtures of independent-key distributions, event NLL. ``seqkit.music.task``'s
docstring defines them; ``seqkit.music.losses`` computes the same in the graph.
"""

from __future__ import annotations

import numpy as np

from ..errors import ParameterError

EPSILON = 1e-7


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
