"""A Keras classifier as numpy steps: ``ModelStream`` (see ``seqkit.streaming``)."""

from __future__ import annotations

import keras
import numpy as np

from ...errors import ParameterError

# -- activations (in place) ----------------------------------------------------------------------


def _softmax(a, out):
    if a.shape[0] == 1:  # scalar operands: several times faster than (1, 1) broadcasting
        a -= a.max()
        np.exp(a, out=a)
        a *= 1.0 / a.sum()
    else:
        a -= a.max(axis=-1, keepdims=True)
        np.exp(a, out=a)
        a /= a.sum(axis=-1, keepdims=True)


def _hard_sigmoid(a, out):  # Keras 3: relu6(x + 3) / 6
    a += 3.0
    np.clip(a, 0.0, 6.0, out=a)
    a /= 6.0


def _activation(name, where: str):
    """An in-place activation ``f(a, out=a)`` (a ufunc where one exists), None for linear."""
    from scipy.special import erf, expit  # scipy.signal (1 s): only on this path

    table = {
        "linear": None,
        "tanh": np.tanh,
        "sigmoid": expit,
        "relu": lambda a, out: np.maximum(a, 0.0, out=out),
        "relu6": lambda a, out: np.clip(a, 0.0, 6.0, out=out),
        "hard_sigmoid": _hard_sigmoid,
        "softsign": lambda a, out: np.divide(a, 1.0 + np.abs(a), out=out),
        "silu": lambda a, out: np.multiply(a, expit(a), out=out),
        "elu": lambda a, out: np.copyto(out, np.where(a > 0, a, np.expm1(a))),
        "gelu": lambda a, out: np.multiply(a, 0.5 * (1.0 + erf(a / np.sqrt(2.0))), out=out),
        "softmax": _softmax,
    }
    if not isinstance(name, str) or name not in table:
        raise ParameterError(
            f"{where}: activation {name!r} has no streaming version; supported: {', '.join(table)}."
        )
    return table[name]


# -- model ---------------------------------------------------------------------------------------


class _Normalize:
    def __init__(self, layer, rows, copies, dtype):

        mean = keras.ops.convert_to_numpy(layer.mean).reshape(-1)
        var = keras.ops.convert_to_numpy(layer.variance).reshape(-1)
        if getattr(layer, "invert", False) or layer.axis not in ((-1,), (2,), -1, 2):
            raise ParameterError(
                f"Layer '{layer.name}': only Normalization(axis=-1, invert=False) is streamable."
            )
        # (1, n) rows: a 2-D operand broadcasts faster than a 1-D one
        self.mean = mean.reshape(1, -1).astype(dtype)
        den = np.maximum(np.sqrt(var), keras.backend.epsilon())
        self.den = den.reshape(1, -1).astype(dtype)
        self.rows = rows
        self._out = np.empty((rows, mean.size), dtype)

    def __call__(self, x):
        np.subtract(x, self.mean, out=self._out)
        return np.divide(self._out, self.den, out=self._out)


class _Dense:
    def __init__(self, layer, rows, copies, dtype):

        w = [keras.ops.convert_to_numpy(v) for v in layer.weights]
        self.w = np.ascontiguousarray(w[0], dtype=dtype)
        self.b = w[1].reshape(1, -1).astype(dtype) if layer.use_bias else None
        self.act = _activation(layer.get_config()["activation"], f"layer '{layer.name}'")
        self.rows = rows
        self._out = np.empty((rows, self.w.shape[1]), dtype)

    def __call__(self, x):
        out = np.dot(x, self.w, out=self._out)
        if self.b is not None:
            out += self.b
        if self.act is not None:
            self.act(out, out=out)
        return out


class _Recurrent:
    """Shared parts of the recurrent steps: weights from the cell, activations, state rows."""

    stateful = True

    def __init__(self, layer, rows, copies, dtype, gates):

        if getattr(layer, "go_backwards", False):
            raise ParameterError(
                f"Layer '{layer.name}' reads the sequence backwards (go_backwards: true); "
                "that needs the whole clip, so it is not streamable. Use `seqkit predict`."
            )
        cell = layer.cell
        self.units = u = cell.units
        conv = keras.ops.convert_to_numpy
        self.kernel = conv(cell.kernel).astype(np.float64)
        self.recurrent = conv(cell.recurrent_kernel).astype(np.float64)
        self.bias = conv(cell.bias).astype(np.float64) if cell.use_bias else None
        cfg = layer.get_config()
        where = f"layer '{layer.name}'"
        self.act = _activation(cfg.get("activation", "tanh"), where)
        self.ract = _activation(cfg.get("recurrent_activation", "sigmoid"), where)
        self.rows, self.dtype = copies, dtype
        self._gx = np.empty((rows, gates * u), dtype)
        self.h = np.zeros((copies, u), dtype)

    def reset(self, k=slice(None)):
        self.h[k] = 0.0


class _GRU(_Recurrent):
    """Keras' GRU equations (gate order z, r, h), ``reset_after`` False or True."""

    def __init__(self, layer, rows, copies, dtype):
        super().__init__(layer, rows, copies, dtype, 3)
        u, t = self.units, dtype
        self.reset_after = bool(layer.cell.reset_after)
        self.wx = np.ascontiguousarray(self.kernel, dtype=t)
        b = self.bias
        if self.reset_after:
            self.bx = None if b is None else b[0:1].astype(t)
            self.bh = None if b is None else b[1:2].astype(t)
            self.u_all = np.ascontiguousarray(self.recurrent, dtype=t)
            self._gh = np.empty((copies, 3 * u), t)
            self._zr = np.empty((copies, 2 * u), t)
            self._gh_h = self._gh[:, 2 * u :]
        else:
            self.bx = None if b is None else b.reshape(1, -1).astype(t)
            self.u_zr = np.ascontiguousarray(self.recurrent[:, : 2 * u], dtype=t)
            self.u_h = np.ascontiguousarray(self.recurrent[:, 2 * u :], dtype=t)
            self._zr = np.empty((copies, 2 * u), t)
            self._rh = np.empty((copies, u), t)
        self._z, self._r = self._zr[:, :u], self._zr[:, u:]
        self._gx_zr, self._gx_h = self._gx[:, : 2 * u], self._gx[:, 2 * u :]
        self._hh = np.empty((copies, u), t)

    def __call__(self, x):
        gx, zr, hh, h = self._gx, self._zr, self._hh, self.h
        np.dot(x, self.wx, out=gx)
        if self.bx is not None:
            gx += self.bx
        if self.reset_after:
            gh = np.dot(h, self.u_all, out=self._gh)
            if self.bh is not None:
                gh += self.bh
            np.add(gh[:, : 2 * self.units], self._gx_zr, out=zr)
            self.ract(zr, out=zr)
            np.multiply(self._r, self._gh_h, out=hh)
        else:
            np.dot(h, self.u_zr, out=zr)
            zr += self._gx_zr
            self.ract(zr, out=zr)
            np.multiply(self._r, h, out=self._rh)
            np.dot(self._rh, self.u_h, out=hh)
        hh += self._gx_h
        if self.act is not None:
            self.act(hh, out=hh)
        # h' = z h + (1 - z) hh = hh + z (h - hh)
        np.subtract(h, hh, out=h)
        h *= self._z
        h += hh
        return h


class _LSTM(_Recurrent):
    """Keras' LSTM (gates i, f, c, o; stored here as i, f, o, c so sigmoids run once)."""

    def __init__(self, layer, rows, copies, dtype):
        super().__init__(layer, rows, copies, dtype, 4)
        u, t = self.units, dtype
        order = np.r_[0 : 2 * u, 3 * u : 4 * u, 2 * u : 3 * u]
        self.wx = np.ascontiguousarray(self.kernel[:, order], dtype=t)
        self.wh = np.ascontiguousarray(self.recurrent[:, order], dtype=t)
        self.bx = None if self.bias is None else self.bias[None, order].astype(t)
        self._g = np.empty((copies, 4 * u), t)
        self.c = np.zeros((copies, u), t)
        self._tmp = np.empty((copies, u), t)
        g = self._g
        self._ifo, self._i, self._f, self._o, self._cc = (
            g[:, : 3 * u],
            g[:, :u],
            g[:, u : 2 * u],
            g[:, 2 * u : 3 * u],
            g[:, 3 * u :],
        )

    def reset(self, k=slice(None)):
        self.h[k] = 0.0
        self.c[k] = 0.0

    def __call__(self, x):
        gx, g, c, tmp = self._gx, self._g, self.c, self._tmp
        np.dot(x, self.wx, out=gx)
        if self.bx is not None:
            gx += self.bx
        np.dot(self.h, self.wh, out=g)
        g += gx
        self.ract(self._ifo, out=self._ifo)
        if self.act is not None:
            self.act(self._cc, out=self._cc)
        c *= self._f
        np.multiply(self._i, self._cc, out=tmp)
        c += tmp
        np.copyto(tmp, c)
        if self.act is not None:
            self.act(tmp, out=tmp)
        return np.multiply(self._o, tmp, out=self.h)


class _SimpleRNN(_Recurrent):
    def __init__(self, layer, rows, copies, dtype):
        super().__init__(layer, rows, copies, dtype, 1)
        self.wx = np.ascontiguousarray(self.kernel, dtype=dtype)
        self.wh = np.ascontiguousarray(self.recurrent, dtype=dtype)
        self.bx = None if self.bias is None else self.bias.reshape(1, -1).astype(dtype)
        self._next = np.zeros_like(self.h)

    def __call__(self, x):
        np.dot(x, self.wx, out=self._gx)
        if self.bx is not None:
            self._gx += self.bx
        out = np.dot(self.h, self.wh, out=self._next)
        out += self._gx
        if self.act is not None:
            self.act(out, out=out)
        self._next, self.h = self.h, out
        return out


class _Pool:
    """GlobalAverage/MaxPooling1D as a running mean / maximum since the last reset."""

    stateful = True

    def __init__(self, layer, rows, copies, dtype, kind):
        cfg = layer.get_config()
        if cfg.get("data_format", "channels_last") != "channels_last" or cfg.get("keepdims"):
            raise ParameterError(
                f"Layer '{layer.name}': only channels_last pooling without keepdims is streamable."
            )
        self.kind, self.rows, self.dtype = kind, copies, dtype
        self._n = None

    def _alloc(self, width):
        self._acc = np.zeros((self.rows, width), np.float64 if self.kind == "mean" else self.dtype)
        self._count = np.zeros((self.rows, 1), np.float64)
        self._out = np.empty((self.rows, width), self.dtype)
        self._n = width
        self.reset()

    def reset(self, k=slice(None)):
        if self._n is None:
            return
        self._acc[k] = 0.0 if self.kind == "mean" else -np.inf
        self._count[k] = 0.0

    def __call__(self, x):
        if self._n is None:
            self._alloc(x.shape[-1])
        if self.kind == "mean":
            self._acc += x
            self._count += 1.0
            return np.divide(self._acc, self._count, out=self._out)
        return np.maximum(self._acc, x, out=self._acc)


def _builders():

    L = keras.layers
    return [
        (L.Normalization, _Normalize),
        (L.Dense, _Dense),
        (L.GlobalAveragePooling1D, lambda *a: _Pool(*a, kind="mean")),
        (L.GlobalMaxPooling1D, lambda *a: _Pool(*a, kind="max")),
    ]


def _cell_builders():

    L = keras.layers
    return [(L.GRUCell, _GRU), (L.LSTMCell, _LSTM), (L.SimpleRNNCell, _SimpleRNN)]


IDENTITY_LAYERS = (
    "Dropout",
    "SpatialDropout1D",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
)


def _layer_chain(model) -> list:
    """The model's layers, checked to form one chain from its input to its output."""

    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ParameterError(
            f"Model '{model.name}' has {len(model.inputs)} inputs and {len(model.outputs)} "
            "outputs; a streamable model has one of each."
        )
    layers = [l for l in model.layers if not isinstance(l, keras.layers.InputLayer)]  # noqa: E741
    prev = model.inputs[0]
    for layer in layers:
        try:
            ok = layer.input is prev
        except (AttributeError, ValueError):
            ok = False
        if not ok:
            raise ParameterError(
                f"Model '{model.name}': layer '{layer.name}' does not take the previous layer's "
                "output; only a chain of layers (as a recipe builds) is streamable."
            )
        prev = layer.output
    return layers


class ModelStream:
    """A Keras classifier as numpy steps: ``step(frame) -> (copies, classes)`` posteriors.

    Each call consumes one feature frame and advances every copy's state; ``reset(k)``
    zeroes copy ``k`` (all copies without ``k``). The returned array is a view, valid until
    the next ``step``. ``copies`` states share the layers before the first stateful one.
    """

    def __init__(self, model, copies: int = 1, dtype=np.float32):

        if copies < 1:
            raise ParameterError(f"`copies` must be >= 1; received {copies}.")
        dtype = np.dtype(dtype).type
        self.copies, self.dtype = copies, dtype
        self.num_features = int(model.inputs[0].shape[-1])
        self.stages, rows = [], 1
        builders, cells = _builders(), _cell_builders()
        for layer in _layer_chain(model):
            kind = type(layer).__name__
            if kind in IDENTITY_LAYERS:
                continue
            if isinstance(layer, keras.layers.Bidirectional):
                raise ParameterError(
                    f"Layer '{layer.name}' is bidirectional: its backward half reads the clip "
                    "from the end, so it is not streamable. Train without `bidirectional: "
                    "true` to stream, or use `seqkit predict` on whole clips."
                )
            if isinstance(layer, keras.layers.RNN):
                build = next((b for c, b in cells if isinstance(layer.cell, c)), None)
            else:
                build = next((b for c, b in builders if isinstance(layer, c)), None)
            if build is None:
                raise ParameterError(
                    f"Layer '{layer.name}' ({kind}) has no streaming step; streamable: "
                    "Normalization, GRU (seqkit's and Keras'), LSTM, SimpleRNN, Dense, Dropout, "
                    "GlobalAverage/MaxPooling1D."
                )
            stage = build(layer, rows, copies, dtype)
            rows = stage.rows
            self.stages.append(stage)
        self._stateful = [s for s in self.stages if getattr(s, "stateful", False)]
        self.num_outputs = int(model.outputs[0].shape[-1])
        self._in = np.empty((1, self.num_features), dtype)

    def reset(self, k=slice(None)):
        """Zero the state of copy ``k`` (every copy by default)."""
        for stage in self._stateful:
            stage.reset(k)

    def step(self, frame) -> np.ndarray:
        x = self._in
        x[0] = frame
        for stage in self.stages:
            x = stage(x)
        return x if x.shape[0] == self.copies else np.broadcast_to(x, (self.copies, x.shape[1]))

    def run(self, frames) -> np.ndarray:
        """Step through ``frames`` (time, features) from the current state: (time, classes) of
        copy 0."""
        return np.array(
            [self.step(f)[0].copy() for f in np.asarray(frames)], dtype=self.dtype
        ).reshape(-1, self.num_outputs)
