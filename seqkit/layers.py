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

Speed: the layer does not step a cell through ``keras.layers.RNN``'s loop. It projects the
inputs of all time steps at once (one GEMM, ``x @ kernel``), runs only the recurrence in a scan (per step ``h @ U_zr`` for both gates in
one product, then ``(r * h) @ U_h``), and has its own gradient (``keras.ops.custom_gradient``):
a reverse scan that carries only ``dL/dh``, with the weight gradients
``dU = sum_t h_{t-1}^T dpre_t`` and ``dW`` computed after the loop as single GEMMs over all
time steps. On TensorFlow the two scans are ``tf.while_loop`` loops compiled with XLA inside a
traced function (eagerly they run uncompiled), and on a CPU the batch is split into one part
per core, each part its own compiled loop, which TensorFlow runs on the cores at once (the rows
of a GRU never mix; ``BATCH_SPLITS``); on JAX and torch they are ``keras.ops.scan``.
``bench/bench_gru.py`` measures the result against ``keras.layers.GRU``; ``bench/README.md``
records what was tried and lost. With ``recurrent_dropout`` in training, ``unroll=True``, or
activations other than tanh and sigmoid (the scans' gradient is written for those), the layer
steps its cell through Keras' loop instead, with the packed weights sliced per gate once per
call, outside the loop (same numbers).

Mixed precision (``keras.mixed_precision.set_dtype_policy("mixed_bfloat16")`` or
``"mixed_float16"``): the recurrence -- gate pre-activations, sigmoid and tanh, and the state
carried from step to step -- runs in float32 (the variable dtype; the cell's dtype policy is
float32), with the weights as the policy casts them (rounded to the compute dtype, as in every
Keras layer). On the scans' path the input projection runs in the compute dtype; in Keras'
loop it runs in float32 too. Outputs are returned in the compute dtype. (Keras' own GRU
carries its state in the compute dtype.)

Only public ``keras`` / ``keras.ops`` APIs are used (and, on the TensorFlow backend only,
TensorFlow's own public loop and XLA API), so the layer runs on the TensorFlow, JAX and torch
backends.

Why one module of ~650 lines: the GRU's cell, layer, compiled scans and batch splitting are
one layer; each path must compute the same equations, and they are read and tested together.
"""

from __future__ import annotations

import functools
import os

import keras
import numpy as np
from keras import ops

from .errors import fraction, positive_int

__all__ = ["GRU", "GRUCell"]


# --------------------------------------------------------------------------------------------
# The recurrence over a whole sequence, with its own gradient
# --------------------------------------------------------------------------------------------
# Tensors are time-major inside: p (T, B, 3u) is the input projection with its biases, h0 (B, u)
# the initial state, uzr (u, 2u) and uh (u, u) the recurrent kernel's z|r and h parts, rb (3u,)
# the recurrent bias of the reset-after form (None selects the reset-before form), m (T, B, 1)
# the mask as 0.0 / 1.0 (None: no mask). All of them in the recurrence dtype (float32 under a
# mixed policy).

#: Compile the TensorFlow scans with XLA when they run inside a traced function (``model.fit``,
#: ``predict``, ``tf.function``). ``False`` runs them as plain graph loops.
TF_XLA = True
#: Which path runs a sequence: ``True`` or ``None`` (default) the scans below (one input GEMM,
#: own gradient, on TensorFlow's CPU over parts of the batch at once: ``BATCH_SPLITS``);
#: ``False`` the cell stepped through ``keras.layers.RNN``'s loop with autodiff (always used
#: for ``unroll``, recurrent dropout and other activations). Until the batch split, Keras'
#: loop was TensorFlow's CPU default: it kept two idle cores busier than one recurrence could
#: (``bench/README.md``).
SEQUENCE_SCAN = None
#: ``unroll`` of ``keras.ops.scan`` on JAX and torch (steps per loop iteration).
SCAN_UNROLL = 1
#: On TensorFlow (traced, XLA): run the recurrence as this many independent recurrences over
#: parts of the batch, each its own compiled loop, which TensorFlow's executor runs on
#: different cores at once (the rows of a GRU never mix). ``None`` (default): on a CPU, one
#: part per core the process may use (at most TensorFlow's inter-op threads, when set) and
#: at most ``batch // MIN_SPLIT_ROWS`` parts (``MAX_DYNAMIC_SPLITS`` for a batch whose size
#: is known only when it runs); on a GPU, one. 1: never.
BATCH_SPLITS = None
MIN_SPLIT_ROWS = 16
MAX_DYNAMIC_SPLITS = 4


def _tf_scan(step, carry, xs, reverse, ys_dims):
    """``keras.ops.scan`` for TensorFlow: a ``tf.while_loop`` that writes its outputs to
    TensorArrays and indexes its inputs (Keras' TF scan re-reads and re-writes its carry through
    TensorArrays at every step and requires outputs shaped like the carry)."""
    import tensorflow as tf  # optional: TensorFlow is one Keras backend of three

    n = xs[0].shape[0]
    if n is None:
        n = tf.shape(xs[0])[0]
    batch = carry.shape[0]
    tas = [
        tf.TensorArray(carry.dtype, size=n, element_shape=tf.TensorShape([batch, d]))
        for d in ys_dims
    ]

    def body(i, c, *tas):
        c, ys = step(c, [x[i] for x in xs])
        return (i - 1 if reverse else i + 1, c, *[ta.write(i, y) for ta, y in zip(tas, ys)])

    out = tf.while_loop(
        (lambda i, *_: i >= 0) if reverse else (lambda i, *_: i < n),
        body,
        ((n - 1) if reverse else 0, carry, *tas),
        parallel_iterations=1,
        maximum_iterations=n,
    )
    return out[1], [ta.stack() for ta in out[2:]]


def _scan(step, carry, xs, reverse, ys_dims):
    """Run ``step(carry, [x_t, ...]) -> (carry, [y_t, ...])`` over axis 0 of ``xs``.

    Returns the last carry and the stacked outputs, ``ys[t]`` belonging to ``xs[t]`` also when
    ``reverse`` (which runs from the last step to the first). ``ys_dims``: last dimension of
    each ``y`` (each is ``(batch, dim)``).
    """
    if keras.backend.backend() == "tensorflow":
        return _tf_scan(step, carry, xs, reverse, ys_dims)
    carry, ys = ops.scan(
        lambda c, x: step(c, list(x)), carry, tuple(xs), reverse=reverse, unroll=SCAN_UNROLL
    )
    return carry, list(ys)


def _forward(p, h0, uzr, uh, rb, m):
    """The recurrence. Returns ``[H, ZR, HH]`` (+ ``HR``, ``U_h h + rb_h``, for reset-after),
    each (T, B, .): the states after each step, the gates z|r, the candidate h~."""
    units = h0.shape[-1]
    reset_after = rb is not None
    u_all = ops.concatenate([uzr, uh], axis=-1) if reset_after else None
    sigmoid = ops.sigmoid
    if keras.backend.backend() == "tensorflow":
        # XLA's CPU tanh is faster than its logistic (11 % of the forward loop at 64x98x128);
        # the same function to 1.5e-7.
        def sigmoid(v):
            return 0.5 + 0.5 * ops.tanh(0.5 * v)

    def step(h, xt):
        p_t = xt[0]
        if reset_after:
            a = ops.matmul(h, u_all) + rb
            zr = sigmoid(p_t[:, : 2 * units] + a[:, : 2 * units])
            hr = a[:, 2 * units :]
            hh = ops.tanh(p_t[:, 2 * units :] + zr[:, units:] * hr)
        else:
            zr = sigmoid(p_t[:, : 2 * units] + ops.matmul(h, uzr))
            hh = ops.tanh(p_t[:, 2 * units :] + ops.matmul(zr[:, units:] * h, uh))
        h_new = hh + zr[:, :units] * (h - hh)  # = z * h + (1 - z) * hh
        if m is not None:
            h_new = ops.where(xt[1], h_new, h)  # a masked step keeps the state
        ys = (h_new, zr, hh, hr) if reset_after else (h_new, zr, hh)
        return h_new, ys

    xs = [p] if m is None else [p, m > 0.5]
    dims = [units, 2 * units, units] + ([units] if reset_after else [])
    return _scan(step, h0, xs, False, dims)[1]


def _backward(dH, ys, Hp, uzr, uh, m):
    """The reverse loop: ``(dh0, d_a, d_ph)``, the gradient reaching the initial state and the
    gradients of the pre-activations, ``d_a`` of z|r (reset-before) or of ``h @ U + rb``
    (reset-after, (T, B, 3u)), ``d_ph`` of h~'s. ``Hp`` (T, B, u): the state each step started
    from. The weight gradients, GEMMs over all steps, are ``_weight_gradients``' work.
    """
    units = Hp.shape[-1]
    ZR, HH = ys[1], ys[2]
    reset_after = len(ys) == 4
    xs = [dH, ZR, HH, Hp] + ([ys[3]] if reset_after else []) + ([m > 0.5] if m is not None else [])
    if reset_after:
        u_t = ops.transpose(ops.concatenate([uzr, uh], axis=-1))
    else:
        uzr_t, uh_t = ops.transpose(uzr), ops.transpose(uh)

    def step(g, xt):
        g = g + xt[0]
        if m is not None:  # a masked step passed its state through unchanged
            g_pass = ops.where(xt[-1], 0.0, g)
            g = ops.where(xt[-1], g, 0.0)
        zr, hh, hp = xt[1], xt[2], xt[3]
        z, r = zr[:, :units], zr[:, units:]
        d_ph = g * (1.0 - z) * (1.0 - hh * hh)  # d pre-activation of h~
        if reset_after:  # pre_r enters through r * hr, hr = U_h h + rb_h
            d_zr = ops.concatenate([g * (hp - hh), d_ph * xt[4]], axis=-1) * zr * (1.0 - zr)
            d_pre = ops.concatenate([d_zr, d_ph * r], axis=-1)  # d (h @ U + rb)
            g_prev = g * z + ops.matmul(d_pre, u_t)
            ys = (d_pre, d_ph)
        else:  # pre_r enters through (r * h) @ U_h
            d_rh = ops.matmul(d_ph, uh_t)
            d_zr = ops.concatenate([g * (hp - hh), d_rh * hp], axis=-1) * zr * (1.0 - zr)
            g_prev = g * z + d_rh * r + ops.matmul(d_zr, uzr_t)
            ys = (d_zr, d_ph)
        if m is not None:
            g_prev = g_prev + g_pass
        return g_prev, ys

    dims = [3 * units if reset_after else 2 * units, units]
    dh0, (d_a, d_ph) = _scan(step, ops.zeros_like(Hp[0]), xs, True, dims)
    return dh0, d_a, d_ph


def _weight_gradients(d_a, d_ph, ZR, Hp, reset_after):
    """``(dp, duzr, duh, drb)`` from the reverse loop's pre-activation gradients: each weight
    gradient is one GEMM over all time steps and the batch (outside XLA on TensorFlow, whose
    own GEMM is faster here)."""
    units = Hp.shape[-1]

    def tb_matmul(a, b):  # sum over time and batch of a_t^T b_t
        return ops.matmul(
            ops.transpose(ops.reshape(a, (-1, a.shape[-1]))), ops.reshape(b, (-1, b.shape[-1]))
        )

    dp = ops.concatenate([d_a[..., : 2 * units], d_ph], axis=-1)
    if reset_after:
        du = tb_matmul(Hp, d_a)
        drb = ops.sum(ops.reshape(d_a, (-1, 3 * units)), axis=0)
        return dp, du[:, : 2 * units], du[:, 2 * units :], drb
    return dp, tb_matmul(Hp, d_a), tb_matmul(ZR[..., units:] * Hp, d_ph), None


_TF_COMPILED = {}


@functools.cache
def _tf_sees_gpu() -> bool:
    """Whether TensorFlow sees a GPU (asked once)."""
    import tensorflow as tf  # optional: TensorFlow is one Keras backend of three

    return bool(tf.config.list_physical_devices("GPU"))


def use_sequence_scan():
    """Whether ``GRU`` runs its sequences through the scans (see ``SEQUENCE_SCAN``)."""
    return SEQUENCE_SCAN is None or bool(SEQUENCE_SCAN)


def _compiled(fn):
    """``fn`` as an XLA-compiled ``tf.function`` when tracing on TensorFlow, else ``fn``."""
    if not TF_XLA or keras.backend.backend() != "tensorflow":
        return fn
    import tensorflow as tf  # optional: TensorFlow is one Keras backend of three

    if tf.executing_eagerly():  # a compilation per new shape would cost more than it saves
        return fn
    if fn not in _TF_COMPILED:
        _TF_COMPILED[fn] = tf.function(fn, jit_compile=True, autograph=False)
    return _TF_COMPILED[fn]


def _batch_parts(p) -> list:
    """Row slices of the batch of ``p`` (T, B, .) for ``BATCH_SPLITS`` independent recurrences
    (one slice: no split). Only on TensorFlow, inside a traced function compiled with XLA:
    there each part is its own compiled loop and the executor runs them at once; JAX compiles
    the whole step into one program and torch runs eagerly, so a split would only add work."""
    if keras.backend.backend() != "tensorflow" or not TF_XLA:
        return [slice(None)]
    import tensorflow as tf  # optional: TensorFlow is one Keras backend of three

    if tf.executing_eagerly():
        return [slice(None)]
    batch, k = p.shape[1], BATCH_SPLITS
    if k is None:
        if _tf_sees_gpu():
            k = 1
        else:
            cores = _cpu_count()
            inter_op = tf.config.threading.get_inter_op_parallelism_threads()
            cores = min(cores, inter_op) if inter_op > 0 else cores  # the parts run at once
            k = min(cores, MAX_DYNAMIC_SPLITS if batch is None else batch // MIN_SPLIT_ROWS)
    k = max(1, int(k) if batch is None else min(int(k), batch))
    if k == 1:
        return [slice(None)]
    if batch is None:  # bounds computed when the step runs
        batch = tf.shape(p)[1]
        edges = [0] + [(i * batch) // k for i in range(1, k)] + [None]
    else:
        edges = [0] + [(i * batch) // k for i in range(1, k)] + [batch]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def gru_sequence(p, h0, uzr, uh, rb=None, m=None):
    """All the states ``H`` (T, B, u) of the GRU over ``p``; differentiable in every argument
    but ``m`` (whose gradient is zero). Time-major; see the comment above for the arguments."""
    reset_after = rb is not None
    args = [p, h0, uzr, uh] + ([rb] if reset_after else []) + ([m] if m is not None else [])
    forward, backward = _compiled(_forward), _compiled(_backward)
    parts = _batch_parts(p)

    def cat(xs, axis):
        return xs[0] if len(xs) == 1 else ops.concatenate(xs, axis=axis)

    @ops.custom_gradient
    def run(*args):
        # stop_gradient: an eager GradientTape must not record the inside of the scan.
        args = [ops.stop_gradient(a) for a in args]
        p, h0, uzr, uh = args[:4]
        rb_ = args[4] if reset_after else None
        m_ = args[-1] if m is not None else None
        # Independent recurrences over parts of the batch (see BATCH_SPLITS); one by default
        # except on TensorFlow's CPU.
        ys_parts = [
            forward(p[:, s], h0[s], uzr, uh, rb_, None if m_ is None else m_[:, s]) for s in parts
        ]
        H = cat([ys[0] for ys in ys_parts], axis=1)

        def grad(*upstream_args, upstream=None):
            # TensorFlow and JAX pass the upstream gradient positionally, torch by keyword.
            if upstream is None:
                (upstream,) = upstream_args
            dh0, dp, dw = [], [], []  # per part; the weight gradients are summed
            for s, ys in zip(parts, ys_parts):
                Hp = ops.concatenate([h0[s][None], ys[0][:-1]], axis=0)  # starting states
                mask = None if m_ is None else m_[:, s]
                dh0_s, d_a, d_ph = backward(upstream[:, s], ys, Hp, uzr, uh, mask)
                dp_s, duzr, duh, drb = _weight_gradients(d_a, d_ph, ys[1], Hp, reset_after)
                dh0.append(dh0_s)
                dp.append(dp_s)
                dw.append([duzr, duh] + ([drb] if reset_after else []))
            dw = [sum(w[1:], w[0]) for w in zip(*dw)]
            grads = [cat(dp, axis=1), cat(dh0, axis=0)] + dw
            return tuple(grads + ([ops.zeros_like(m_)] if m_ is not None else []))

        return H, grad

    return run(*args)


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

    Under a mixed dtype policy the cell (the recurrence) uses the policy's variable dtype,
    float32, and the layer its compute dtype; see the module docstring.
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
        cell_dtype = kwargs.get("dtype")
        policy = keras.dtype_policies.get(cell_dtype) if cell_dtype is not None else None
        policy = policy or keras.config.dtype_policy()
        if policy.compute_dtype != policy.variable_dtype:  # mixed: the recurrence in float32
            cell_dtype = policy.variable_dtype
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
            dtype=cell_dtype,
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
        cell = self.cell
        dtype = cell.compute_dtype  # the recurrence dtype (float32 under a mixed policy)
        if (
            not use_sequence_scan()
            or self.unroll
            or (training and cell.recurrent_dropout > 0.0)
            or cell.activation not in (keras.activations.tanh, ops.tanh)
            or cell.recurrent_activation not in (keras.activations.sigmoid, ops.sigmoid)
        ):
            # Keras' loop over the cell, with the packed variables sliced once, outside it.
            cell._prepared = tuple(
                None if w is None else ops.cast(w, dtype) for w in cell.split_weights()
            )
            try:
                return super().inner_loop(sequences, initial_state, mask, training=training)
            finally:
                cell._prepared = None

        units = cell.units
        h0 = initial_state[0] if isinstance(initial_state, (list, tuple)) else initial_state
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        x = ops.transpose(sequences, (1, 0, 2))  # time-major
        if self.go_backwards:
            x = ops.flip(x, axis=0)
        kernel = cell.kernel
        if training and 0.0 < cell.dropout < 1.0:
            # One mask per gate, the same at every step (as Keras' GRU, implementation=1).
            masks = cell.get_dropout_mask(sequences[:, 0, :])
            p = ops.concatenate(
                [
                    ops.matmul(x * ops.cast(mk, x.dtype), kernel[:, i * units : (i + 1) * units])
                    for i, mk in enumerate(masks)
                ],
                axis=-1,
            )
        else:
            steps, features = x.shape[0], x.shape[2]
            p = ops.matmul(ops.reshape(x, (-1, features)), kernel)  # one GEMM for all steps
            p = ops.reshape(p, (-1 if steps is None else steps, ops.shape(x)[1], 3 * units))
        p = ops.cast(p, dtype)
        rb = None
        if cell.use_bias:
            bias = ops.cast(cell.bias, dtype)
            p = p + (bias[0] if cell.reset_after else bias)
            rb = bias[1] if cell.reset_after else None
        elif cell.reset_after:
            rb = ops.zeros((3 * units,), dtype=dtype)
        m = None
        if mask is not None:
            m = ops.cast(ops.transpose(ops.cast(mask, "bool"), (1, 0)), dtype)[:, :, None]
            if self.go_backwards:
                m = ops.flip(m, axis=0)
        rk = ops.cast(cell.recurrent_kernel, dtype)
        h0 = ops.cast(h0, dtype)
        if self.stateful:  # the state variable is assigned in place after this call (torch)
            h0 = ops.copy(h0)
        states = gru_sequence(p, h0, rk[:, : 2 * units], rk[:, 2 * units :], rb, m)

        # Keras' masking semantics: a masked step outputs the previous step's output, which is
        # zero before the first unmasked step (or zero at every masked step with
        # zero_output_for_mask, as in Bidirectional); the state is carried either way.
        outputs = states
        if m is not None:
            keep = m if self.zero_output_for_mask else ops.cumsum(m, axis=0)
            outputs = ops.where(keep > 0.5, states, ops.zeros_like(states))
        last_output = outputs[-1]
        if self.return_sequences:
            outputs = ops.transpose(outputs, (1, 0, 2))
        else:
            outputs = last_output[:, None, :]
        return last_output, outputs, [states[-1]]

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
