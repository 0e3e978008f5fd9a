"""The Minimal Gated Unit (Zhou, Wu, Zhang and Zhou 2016, arXiv:1603.09420) as a Keras 3 layer.

The MGU is a GRU with a single gate: the forget gate ``f`` plays the part of both the GRU's
reset gate (inside the candidate) and its update gate (in the interpolation)::

    f  = sigmoid(W_f x + U_f h + b_f)
    h~ = tanh(W_h x + U_h (f * h) + b_h)
    h' = (1 - f) * h + f * h~

Weights are packed the Keras way, gate order ``f, h``: ``kernel`` (input_dim, 2 * units),
``recurrent_kernel`` (units, 2 * units), ``bias`` (2 * units,). Two thirds of a GRU's
parameters for the same ``units``.

Like ``seqkit.layers.GRU``, ``MGU`` slices the packed variables into per-gate tensors once per
call, outside the time loop. Only public ``keras`` / ``keras.ops`` APIs are used, so the layer
runs on the TensorFlow, JAX and torch backends. There is no ``dropout`` /
``recurrent_dropout`` (put a ``Dropout`` layer before or after the MGU instead).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

__all__ = ["MGU", "MGUCell"]


def _check_units(units):
    if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units <= 0:
        raise ValueError(f"`units` must be a positive integer; received {units!r}.")
    return int(units)


@keras.saving.register_keras_serializable(package="seqkit_example")
class MGUCell(keras.layers.Layer):
    """One step of the Minimal Gated Unit; usable alone as ``keras.layers.RNN(MGUCell(n))``."""

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        units = _check_units(units)
        super().__init__(**kwargs)
        self.units = units
        self.activation = keras.activations.get(activation)
        self.recurrent_activation = keras.activations.get(recurrent_activation)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = keras.regularizers.get(recurrent_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.recurrent_constraint = keras.constraints.get(recurrent_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.state_size = units
        self.output_size = units
        self._prepared = None

    def build(self, input_shape):
        input_dim = input_shape[-1]
        self.kernel = self.add_weight(
            shape=(input_dim, 2 * self.units),
            name="kernel",
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, 2 * self.units),
            name="recurrent_kernel",
            initializer=self.recurrent_initializer,
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                shape=(2 * self.units,),
                name="bias",
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        else:
            self.bias = None
        self.built = True

    # -- weights, split per gate -------------------------------------------------------------
    def split_weights(self):
        """Return the per-gate tensors ``(kf, kh, uf, uh, bf, bh)`` (biases ``None`` if unused)."""
        u = self.units
        k, rk = self.kernel, self.recurrent_kernel
        kf, kh = k[:, :u], k[:, u:]
        uf, uh = rk[:, :u], rk[:, u:]
        bf = bh = None
        if self.use_bias:
            bf, bh = self.bias[:u], self.bias[u:]
        return kf, kh, uf, uh, bf, bh

    def _weights_for_step(self):
        return self._prepared if self._prepared is not None else self.split_weights()

    # -- the step ------------------------------------------------------------------------------
    def step(self, inputs, h_tm1, weights):
        """Compute one step; return ``(h, f, hh)``. ``weights`` as from ``split_weights``."""
        kf, kh, uf, uh, bf, bh = weights
        pre_f = ops.matmul(inputs, kf) + ops.matmul(h_tm1, uf)
        pre_h = ops.matmul(inputs, kh)
        if bf is not None:
            pre_f = pre_f + bf
            pre_h = pre_h + bh
        f = self.recurrent_activation(pre_f)
        hh = self.activation(pre_h + ops.matmul(f * h_tm1, uh))
        h = (1.0 - f) * h_tm1 + f * hh
        return h, f, hh

    def call(self, inputs, states):
        nested = isinstance(states, (list, tuple))
        h_tm1 = states[0] if nested else states
        h, _, _ = self.step(inputs, h_tm1, self._weights_for_step())
        return h, ([h] if nested else h)

    def get_initial_state(self, batch_size=None):
        return [ops.zeros((batch_size, self.state_size), dtype=self.compute_dtype)]

    def get_config(self):
        config = {
            "units": self.units,
            "activation": keras.activations.serialize(self.activation),
            "recurrent_activation": keras.activations.serialize(self.recurrent_activation),
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": keras.initializers.serialize(self.recurrent_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "recurrent_regularizer": keras.regularizers.serialize(self.recurrent_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
            "recurrent_constraint": keras.constraints.serialize(self.recurrent_constraint),
            "bias_constraint": keras.constraints.serialize(self.bias_constraint),
        }
        return {**super().get_config(), **config}


@keras.saving.register_keras_serializable(package="seqkit_example")
class MGU(keras.layers.RNN):
    """The Minimal Gated Unit over a whole sequence; recipe name ``mgu``.

    Supports masking, ``return_sequences``, ``return_state``, ``go_backwards``, ``stateful``,
    ``unroll``, ``initial_state`` and ``keras.layers.Bidirectional``.
    """

    _CELL_ARGS = (
        "activation", "recurrent_activation", "use_bias", "kernel_initializer",
        "recurrent_initializer", "bias_initializer", "kernel_regularizer",
        "recurrent_regularizer", "bias_regularizer", "kernel_constraint",
        "recurrent_constraint", "bias_constraint",
    )  # fmt: skip

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        **kwargs,
    ):
        cell = MGUCell(
            units,
            activation=activation,
            recurrent_activation=recurrent_activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
            name="mgu_cell",
        )
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            activity_regularizer=activity_regularizer,
            **kwargs,
        )
        self.input_spec = keras.layers.InputSpec(ndim=3)

    def inner_loop(self, sequences, initial_state, mask, training=False):
        # Slice the packed variables once, outside the time loop; the loop reads the slices.
        self.cell._prepared = self.cell.split_weights()
        try:
            return super().inner_loop(sequences, initial_state, mask, training=training)
        finally:
            self.cell._prepared = None

    def call(self, sequences, initial_state=None, mask=None, training=False):
        return super().call(sequences, mask=mask, training=training, initial_state=initial_state)

    @property
    def units(self):
        return self.cell.units

    def get_config(self):
        config = super().get_config()
        cell_config = self.cell.get_config()
        del config["cell"]
        config["units"] = self.cell.units
        for name in self._CELL_ARGS:
            config[name] = cell_config[name]
        config["activity_regularizer"] = keras.regularizers.serialize(self.activity_regularizer)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)
