"""Gradient-flow diagnostics: how much the loss at the end of a sequence reaches each step.

For a trained (or freshly built) seqkit model and a batch of examples, ``state_gradients``
unrolls the model's first recurrent layer step by step under a ``tf.GradientTape``, keeping every
hidden state ``h_t``, and returns ``||d L_i / d h_t||`` -- the total derivative of an example's
own loss with respect to the state carried out of step ``t``, through every later step --
averaged over the examples, for every ``t``. A simple RNN's curve falls geometrically as ``t``
moves away from the end (the vanishing gradient); a GRU's or LSTM's gates keep it flat for
longer.

``h_t`` is the first state a cell passes on (``states[0]``), which for seqkit's GRU, Keras'
GRU, LSTM and SimpleRNN, and cells following Keras' convention, is also the layer's output at
``t``. ``L_i`` is the example's loss as the model was compiled (mean squared error, or the
cross-entropy averaged over steps), so the values are those of one example, independent of the
batch size. The TensorFlow backend is required.

``plot_gradients`` draws such curves (one per layer) on a log scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from .errors import ParameterError

FLOOR = 1e-30  # plots draw smaller norms (float32 underflows to 0 near 1e-45) at this value


@dataclass
class GradientFlow:
    """``norms[t]``: mean over examples of ``||d L_i / d h_t||``; ``loss``: mean ``L_i``;
    ``grads``: the gradients themselves, (time, batch, units), when asked for (``keep``)."""

    norms: np.ndarray
    loss: float
    layer: str
    examples: int
    grads: np.ndarray | None = None


def _recurrent_index(model) -> int:

    for i, layer in enumerate(model.layers):
        if isinstance(layer, keras.layers.Bidirectional):
            raise ParameterError(
                f"Layer '{layer.name}' is bidirectional; gradient flow is defined here for a "
                "one-way recurrent layer (h_t depends only on earlier steps)."
            )
        if isinstance(layer, keras.layers.RNN):
            if layer.go_backwards or layer.stateful:
                what = "go_backwards" if layer.go_backwards else "stateful"
                raise ParameterError(
                    f"Layer '{layer.name}' is {what}; gradient flow needs a forward, "
                    "stateless recurrent layer."
                )
            return i
    raise ParameterError(
        f"Model '{model.name}' has no recurrent layer (keras.layers.RNN); nothing to unroll."
    )


def _per_example_loss(model, y, pred):
    import tensorflow as tf  # optional: TensorFlow is one Keras backend of three

    fn = keras.losses.get(model.loss)
    if fn is None:
        raise ParameterError(f"Model '{model.name}' is not compiled with a loss; compile it first.")
    y = tf.convert_to_tensor(y)
    if y.shape.rank == pred.shape.rank - 1 and pred.shape[-1] == 1:
        y = tf.reshape(y, tf.shape(pred))  # (batch,) targets for a (batch, 1) prediction
    # a Loss object reduces over the batch when called; its ``call`` gives the values per example
    values = fn.call(y, pred) if isinstance(fn, keras.losses.Loss) else fn(y, pred)
    values = tf.cast(values, pred.dtype)
    if values.shape.rank > 1:
        values = tf.reduce_mean(values, axis=list(range(1, values.shape.rank)))
    return values


def _forward(model, x, y, index, watch=None, perturb=None):
    """The model's per-example losses, its first recurrent layer unrolled in Python.

    ``watch``: a GradientTape on which each hidden state is watched; the states are returned.
    ``perturb``: ``{t: array (batch, units)}`` added to ``h_t`` (for finite differences).
    """
    import tensorflow as tf  # optional: TensorFlow is one Keras backend of three

    h = tf.convert_to_tensor(x, dtype=keras.backend.standardize_dtype(model.compute_dtype))
    for layer in model.layers[:index]:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        h = layer(h, training=False)
    rnn = model.layers[index]
    cell = rnn.cell
    batch = h.shape[0]
    sizes = cell.state_size if isinstance(cell.state_size, (list, tuple)) else [cell.state_size]
    states = [tf.zeros((batch, int(s)), dtype=h.dtype) for s in sizes]
    hidden, outputs = [], []
    for t in range(h.shape[1]):
        out, new = cell(h[:, t, :], states if len(states) > 1 else states[0], training=False)
        new = list(new) if isinstance(new, (list, tuple)) else [new]
        if perturb and t in perturb:
            shifted = new[0] + tf.constant(perturb[t], dtype=new[0].dtype)
            out = shifted if out is new[0] else out
            new[0] = shifted
        if watch is not None:
            watch.watch(new[0])
        hidden.append(new[0])
        outputs.append(out)
        states = new
    h = tf.stack(outputs, axis=1) if rnn.return_sequences else outputs[-1]
    for layer in model.layers[index + 1 :]:
        h = layer(h, training=False)
    return _per_example_loss(model, y, h), hidden, h


def state_gradients(model, x, y, check: bool = True, keep: bool = False) -> GradientFlow:
    """``||d L_i / d h_t||`` for every step ``t`` of the first recurrent layer of ``model``.

    ``model`` must be a chain (each layer feeding the next, as ``seqkit.train.build_model``
    builds) compiled with a loss; ``x`` (batch, time, features) and ``y`` a batch of inputs and
    targets. With ``check`` the unrolled forward pass is compared with ``model(x)`` first;
    with ``keep`` the gradients themselves are returned too.
    """

    if keras.backend.backend() != "tensorflow":
        raise ParameterError(
            "Gradient-flow diagnostics need the TensorFlow backend "
            f"(KERAS_BACKEND=tensorflow); this process runs '{keras.backend.backend()}'."
        )
    import tensorflow as tf  # optional: TensorFlow is one Keras backend of three

    x = np.asarray(x, dtype=keras.backend.standardize_dtype(model.compute_dtype))
    if x.ndim != 3:
        raise ParameterError(f"`x` must be (batch, time, features); received shape {x.shape}.")
    index = _recurrent_index(model)
    with tf.GradientTape() as tape:
        losses, hidden, pred = _forward(model, x, y, index, watch=tape)
        total = tf.reduce_sum(losses)
    if check:
        ref = keras.ops.convert_to_numpy(model(x, training=False))
        got = keras.ops.convert_to_numpy(pred)
        if ref.shape != got.shape or not np.allclose(ref, got, rtol=1e-4, atol=1e-5):
            raise ParameterError(
                f"Model '{model.name}' is not a chain of layers that can be unrolled here (the "
                "step-by-step output differs from model(x)); gradient flow needs Input -> "
                "layers -> head, as seqkit builds."
            )
    grads = np.stack([keras.ops.convert_to_numpy(g) for g in tape.gradient(total, hidden)])
    norms = np.linalg.norm(grads.reshape(grads.shape[0], len(x), -1), axis=2)  # (time, batch)
    return GradientFlow(
        norms=norms.mean(axis=1),
        loss=float(keras.ops.convert_to_numpy(losses).mean()),
        layer=model.layers[index].name,
        examples=len(x),
        grads=grads if keep else None,
    )


def plot_gradients(panels: dict, path, title: str = "", columns: int | None = None) -> Path:
    """Draw gradient-norm curves: ``panels`` maps a panel title to ``{label: norms}``.

    Panels fill a grid of ``columns`` (default: all in one row); log-scale y, time step on x.
    """
    import matplotlib  # matplotlib (0.35-0.6 s): only when a figure is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # matplotlib (0.35-0.6 s): only when a figure is drawn

    n = max(1, len(panels))
    cols = max(1, min(columns or n, n))
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    flat = axes.reshape(-1)
    clipped = False
    for ax, (name, curves) in zip(flat, panels.items()):
        for label, norms in curves.items():
            norms = np.asarray(norms, dtype=float)
            clipped |= bool(np.any(norms < FLOOR))
            ax.semilogy(np.arange(1, len(norms) + 1), np.clip(norms, FLOOR, None), label=label)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("time step t")
        ax.set_ylabel("mean ||dL/dh_t||")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    for ax in flat[len(panels) :]:
        ax.axis("off")
    if clipped:
        title = (
            f"{title} ({FLOOR:g} and below, float32 underflow to 0 included, drawn at {FLOOR:g})"
        )
    if title:
        fig.suptitle(title.strip(), fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
