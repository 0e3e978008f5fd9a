"""The GRU of the documents, as a Keras 3 layer, and the built-in layers of the registry.

The documents' GRU applies the reset gate *before* the recurrent product::

    r  = sigmoid(W_r x + U_r h + b_r)
    z  = sigmoid(W_z x + U_z h + b_z)
    h~ = tanh(W_h x + U_h (r * h) + b_h)
    h' = z * h + (1 - z) * h~

This is Keras' ``GRU(reset_after=False)`` (arXiv:1406.1078v3, the form Chung et al. 2014 use);
``reset_after=True`` gives the cuDNN form ``h~ = tanh(W_h x + b_h + r * (U_h h + b'_h))``.

Weights are stored exactly as Keras stores them -- ``kernel`` (input_dim, 3 * units),
``recurrent_kernel`` (units, 3 * units), ``bias`` (3 * units,) or (2, 3 * units) with
``reset_after=True``; gate order z, r, h -- so ``get_weights`` / ``set_weights`` swap both ways
with ``keras.layers.GRU`` and ``.keras`` files hold the familiar layout.

Speed: Keras' cell slices the packed ``recurrent_kernel`` variable inside every time step; on
a CPU the gradient of those slices costs as much as the step itself. ``seqkit.layers.GRU``
slices the packed variables into per-gate tensors *once per call*, outside the time loop, and
the loop body only reads those tensors. ``bench/bench_gru.py`` measures the result against
``keras.layers.GRU`` and ``keras.layers.LSTM``.

Only public ``keras`` / ``keras.ops`` APIs are used, so the layer runs on the TensorFlow, JAX
and torch backends.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from .errors import fraction, positive_int

__all__ = ["GRU", "GRUCell"]


@keras.saving.register_keras_serializable(package="seqkit")
class GRUCell(keras.layers.GRUCell):
    """One step of the documents' GRU (reset gate before the recurrent product by default).

    Accepts every argument of ``keras.layers.GRUCell`` (same weights, same initialisers, same
    dropout semantics); the only different default is ``reset_after=False``.

    Used inside ``seqkit.layers.GRU`` the per-gate weight slices are prepared once per
    sequence; used alone (``keras.layers.RNN(GRUCell(n))``) it slices at every step, which is
    correct but slower.
    """

    def __init__(self, units, reset_after=False, **kwargs):
        positive_int("units", units)  # ParameterError is a ValueError
        for name in ("dropout", "recurrent_dropout"):
            fraction(name, kwargs.get(name, 0.0))
        kwargs.pop("implementation", None)
        super().__init__(units, reset_after=reset_after, **kwargs)
        # One dropout mask per gate, as Keras' implementation=1 does, when dropout is used.
        self.implementation = 1
        self.dropout_mask_count = 3
        self._prepared = None

    # -- weights, split per gate -------------------------------------------------------------
    def split_weights(self):
        """Return the per-gate tensors ``(kz, kr, kh, uz, ur, uh, bz, br, bh, rbz, rbr, rbh)``.

        Biases are ``None`` without ``use_bias``; the recurrent biases ``rb*`` exist only with
        ``reset_after=True``.
        """
        u = self.units
        k, rk = self.kernel, self.recurrent_kernel
        kz, kr, kh = k[:, :u], k[:, u : 2 * u], k[:, 2 * u :]
        uz, ur, uh = rk[:, :u], rk[:, u : 2 * u], rk[:, 2 * u :]
        bz = br = bh = rbz = rbr = rbh = None
        if self.use_bias:
            b = self.bias
            if self.reset_after:
                ib, rb = b[0], b[1]
                rbz, rbr, rbh = rb[:u], rb[u : 2 * u], rb[2 * u :]
            else:
                ib = b
            bz, br, bh = ib[:u], ib[u : 2 * u], ib[2 * u :]
        return kz, kr, kh, uz, ur, uh, bz, br, bh, rbz, rbr, rbh

    def _weights_for_step(self):
        prepared = self._prepared
        if prepared is not None:
            return prepared
        return self.split_weights()

    # -- the step ------------------------------------------------------------------------------
    def step(self, inputs, h_tm1, weights, training=False):
        """Compute one step; return ``(h, r, z, hh)``. ``weights`` as from ``split_weights``."""
        kz, kr, kh, uz, ur, uh, bz, br, bh, rbz, rbr, rbh = weights
        x_z = x_r = x_h = inputs
        if training and 0.0 < self.dropout < 1.0:
            mz, mr, mh = self.get_dropout_mask(inputs)
            x_z, x_r, x_h = inputs * mz, inputs * mr, inputs * mh
        h_z = h_r = h_h = h_tm1
        if training and 0.0 < self.recurrent_dropout < 1.0:
            mz, mr, mh = self.get_recurrent_dropout_mask(h_tm1)
            h_z, h_r, h_h = h_tm1 * mz, h_tm1 * mr, h_tm1 * mh

        pre_z = ops.matmul(x_z, kz) + ops.matmul(h_z, uz)
        pre_r = ops.matmul(x_r, kr) + ops.matmul(h_r, ur)
        pre_h = ops.matmul(x_h, kh)
        if bz is not None:
            pre_z = pre_z + bz
            pre_r = pre_r + br
            pre_h = pre_h + bh
        if rbz is not None:
            pre_z = pre_z + rbz
            pre_r = pre_r + rbr
        z = self.recurrent_activation(pre_z)
        r = self.recurrent_activation(pre_r)
        if self.reset_after:
            rec_h = ops.matmul(h_h, uh)
            if rbh is not None:
                rec_h = rec_h + rbh
            hh = self.activation(pre_h + r * rec_h)
        else:
            hh = self.activation(pre_h + ops.matmul(r * h_h, uh))
        h = z * h_tm1 + (1.0 - z) * hh
        return h, r, z, hh

    def call(self, inputs, states, training=False):
        nested = isinstance(states, (list, tuple))
        h_tm1 = states[0] if nested else states
        h, _, _, _ = self.step(inputs, h_tm1, self._weights_for_step(), training=training)
        return h, ([h] if nested else h)

    def get_config(self):
        config = super().get_config()
        config.pop("implementation", None)
        return config


@keras.saving.register_keras_serializable(package="seqkit")
class GRU(keras.layers.RNN):
    """The documents' GRU over a whole sequence (``reset_after=False`` by default).

    Takes the arguments of ``keras.layers.GRU`` (except ``use_cudnn``: the reset-before GRU has
    no cuDNN kernel) and supports masking, ``return_sequences``, ``return_state``,
    ``go_backwards``, ``stateful``, ``unroll``, ``initial_state``, ``dropout`` /
    ``recurrent_dropout`` and ``keras.layers.Bidirectional``.

    ``gate_activations(x)`` returns r, z, h~ and h for every time step, for inspection.
    """

    _CELL_ARGS = (
        "activation", "recurrent_activation", "use_bias", "kernel_initializer",
        "recurrent_initializer", "bias_initializer", "kernel_regularizer",
        "recurrent_regularizer", "bias_regularizer", "kernel_constraint",
        "recurrent_constraint", "bias_constraint", "dropout", "recurrent_dropout", "seed",
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
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        reset_after=False,
        **kwargs,
    ):
        kwargs.pop("use_cudnn", None)
        kwargs.pop("implementation", None)
        cell = GRUCell(
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
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            reset_after=reset_after,
            seed=seed,
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
            name="gru_cell",
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

    def gate_activations(self, inputs, initial_state=None):
        """Run the layer step by step and return a dict of numpy arrays for inspection.

        Keys ``r``, ``z``, ``hh`` (the candidate h~) and ``h``, each (batch, time, units), in
        time order of the input (``go_backwards`` is honoured). Inference mode: no dropout.
        """
        x = ops.convert_to_tensor(inputs, dtype=self.cell.compute_dtype)
        if not self.built:
            self.build(tuple(x.shape))
        if initial_state is None:
            h = ops.zeros((x.shape[0], self.cell.units), dtype=x.dtype)
        else:
            h = ops.convert_to_tensor(initial_state, dtype=x.dtype)
        weights = self.cell.split_weights()
        steps = range(x.shape[1] - 1, -1, -1) if self.go_backwards else range(x.shape[1])
        out = {k: [None] * x.shape[1] for k in ("r", "z", "hh", "h")}
        for t in steps:
            h, r, z, hh = self.cell.step(x[:, t, :], h, weights, training=False)
            for key, value in zip(("h", "r", "z", "hh"), (h, r, z, hh)):
                out[key][t] = ops.convert_to_numpy(value)
        return {k: np.stack(v, axis=1) for k, v in out.items()}

    @property
    def units(self):
        return self.cell.units

    @property
    def reset_after(self):
        return self.cell.reset_after

    def get_config(self):
        config = super().get_config()
        cell_config = self.cell.get_config()
        del config["cell"]
        config["units"] = self.cell.units
        config["reset_after"] = self.cell.reset_after
        for name in self._CELL_ARGS:
            config[name] = cell_config[name]
        config["activity_regularizer"] = keras.regularizers.serialize(self.activity_regularizer)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)
