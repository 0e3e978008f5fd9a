"""The models an export converts: an inference copy of the trained model, and the
single-step (streaming) model built from its layers."""

from __future__ import annotations

import keras
import numpy as np

from ..errors import ParameterError

FRAME_INPUT = "frame"
NEXT = "next_"


def _keras():

    return keras


def _layer_chain(model):
    """The model's layers after its input, checked to form one chain (as ``build_model`` does)."""
    keras = _keras()
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ParameterError(
            f"Model '{model.name}' has {len(model.inputs)} inputs and {len(model.outputs)} "
            "outputs; export handles the one-input, one-output models `seqkit train` builds."
        )
    return [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]


def _standardize_stats(layer):
    """``(mean, variance)`` of a Normalization layer, flat, float32."""
    mean = np.asarray(_keras().ops.convert_to_numpy(layer.mean), dtype=np.float32).reshape(-1)
    var = np.asarray(_keras().ops.convert_to_numpy(layer.variance), dtype=np.float32).reshape(-1)
    return mean, var


def _copy_weights(src_layers, dst_layers) -> None:
    for src, dst in zip(src_layers, dst_layers):
        if getattr(dst, "_seqkit_fixed", False) or not src.weights:
            continue
        dst.set_weights(src.get_weights())
        if hasattr(dst, "finalize_state"):  # Normalization keeps mean/variance beside its weights
            dst.finalize_state()


def _keras_loop(layer, unroll: bool):
    """``layer`` (a recurrent layer) as ``keras.layers.RNN`` over a copy of its own cell.

    Converters see Keras' own time loop (or its unrolled steps), whatever the layer does inside
    its ``call`` for speed (seqkit's GRU runs an XLA-compiled scan, which neither the TFLite
    converter nor tf2onnx can read). The cell computes the same equations, with the same
    weights in the same order."""
    keras = _keras()
    cell = layer.cell.__class__.from_config(layer.cell.get_config())
    return keras.layers.RNN(
        cell,
        return_sequences=layer.return_sequences,
        go_backwards=layer.go_backwards,
        unroll=unroll or layer.unroll,
        name=layer.name,
    )


def inference_copy(
    model, batch_size=None, unroll=False, onnx=False, named_output=True, keras_loops=True
):
    """A copy of ``model`` for conversion: no optimizer, an optional fixed batch size, recurrent
    layers as Keras' own loop over their cells (``keras_loops``; unrolled with ``unroll``),
    Normalization rebuilt with variables (``onnx``), and a dict output named after the last
    layer (``scores``), so exported signatures carry names."""
    keras = _keras()
    _layer_chain(model)

    def clone(layer):
        if onnx and isinstance(layer, keras.layers.Normalization):
            mean, var = _standardize_stats(layer)
            return _standardize_layer(mean, var, layer.name)
        if keras_loops and isinstance(layer, keras.layers.RNN):
            return _keras_loop(layer, unroll)
        if keras_loops and isinstance(layer, keras.layers.Bidirectional):
            return keras.layers.Bidirectional(
                _keras_loop(layer.forward_layer, unroll),
                backward_layer=_keras_loop(layer.backward_layer, unroll),
                merge_mode=layer.merge_mode,
                name=layer.name,
            )
        return layer.__class__.from_config(layer.get_config())

    shape = tuple(model.inputs[0].shape[1:])
    inp = keras.Input(shape, batch_size=batch_size, name=model.inputs[0].name)
    copy = keras.models.clone_model(model, input_tensors=inp, clone_function=clone)
    _copy_weights(model.layers, copy.layers)
    out = {model.layers[-1].name: copy.outputs[0]} if named_output else copy.outputs[0]
    return keras.Model(copy.inputs[0], out, name=model.name)  # uncompiled: no optimizer state


def _standardize_layer(mean, var, name):
    """``(x - mean) / max(sqrt(var), eps)`` (Keras' Normalization) with variables, not
    captured constants, so that tf2onnx keeps them inside the graph."""
    keras = _keras()

    class Standardize(keras.layers.Layer):
        _seqkit_fixed = True

        def build(self, input_shape):
            scale = 1.0 / np.maximum(np.sqrt(var), keras.config.epsilon())
            self.shift = self.add_weight(
                shape=mean.shape, initializer=keras.initializers.Constant(mean), trainable=False
            )
            self.scale = self.add_weight(
                shape=mean.shape, initializer=keras.initializers.Constant(scale), trainable=False
            )

        def call(self, x):
            return (x - self.shift) * self.scale

    return Standardize(name=name)


def _not_streamable(layer, why: str, fix: str = "") -> ParameterError:
    return ParameterError(
        f"Layer '{layer.name}' ({type(layer).__name__}) {why}, so the model cannot be "
        f"exported with --streaming; {fix}export it without --streaming (whole clip in, "
        "scores out)."
    )


def streaming_model(model):
    """The single-step model of ``model``: ``[frame, *states] -> {output, next_<state>...}``.

    Built from the trained layers themselves (they share weights): a recurrent layer becomes
    one call of its cell, Normalization / Dense / Dropout / Activation act on the frame.
    Raises ParameterError for layers that need the whole clip (Bidirectional, go_backwards,
    pooling over time) or that it does not know.
    """
    keras = _keras()
    layers = _layer_chain(model)
    per_frame = (
        keras.layers.Dense,
        keras.layers.Dropout,
        keras.layers.Activation,
        keras.layers.LayerNormalization,
    )
    frame = keras.Input((model.inputs[0].shape[-1],), name=FRAME_INPUT)
    inputs, outputs, x = [frame], {}, frame
    for layer in layers:
        if isinstance(layer, keras.layers.Bidirectional):
            raise _not_streamable(layer, "reads the clip backwards as well as forwards")
        if isinstance(layer, keras.layers.RNN):
            if layer.go_backwards:
                raise _not_streamable(layer, "reads the clip backwards (go_backwards)")
            sizes = layer.cell.state_size
            sizes = list(sizes) if isinstance(sizes, (list, tuple)) else [sizes]
            if not all(isinstance(s, int) for s in sizes):
                raise _not_streamable(layer, f"has nested states {sizes}")
            states = [
                keras.Input((size,), name=f"{layer.name}_state{k}") for k, size in enumerate(sizes)
            ]
            x, new = layer.cell(x, states)
            new = list(new) if isinstance(new, (list, tuple)) else [new]
            inputs += states
            for state, value in zip(states, new):
                outputs[NEXT + state.name] = value
        elif isinstance(layer, keras.layers.Normalization):
            mean, var = _standardize_stats(layer)
            x = keras.layers.Normalization(axis=-1, mean=mean, variance=var, name=layer.name)(x)
        elif isinstance(layer, per_frame):
            x = layer(x)
        elif isinstance(
            layer, (keras.layers.GlobalAveragePooling1D, keras.layers.GlobalMaxPooling1D)
        ):
            raise _not_streamable(
                layer,
                "pools over the whole clip (task pooling mean or max, or a head on a layer "
                "that returns sequences)",
                "retrain with `task: {type: kws, pooling: last}`, or ",
            )
        else:
            raise _not_streamable(layer, "is not a layer seqkit knows how to run frame by frame")
    name = layers[-1].name
    return keras.Model(inputs, {name: x, **outputs}, name=f"{model.name}_stream")


def _onnx_streaming_copy(m):
    keras = _keras()

    def clone(layer):
        if isinstance(layer, keras.layers.Normalization):
            mean, var = _standardize_stats(layer)
            return _standardize_layer(mean, var, layer.name)
        return layer.__class__.from_config(layer.get_config())

    copy = keras.models.clone_model(m, clone_function=clone)
    _copy_weights(m.layers, copy.layers)
    return copy


def probe_inputs(model, n: int = 4, seed: int = 0) -> np.ndarray:
    """Random clips shaped like the model's input, spread as its Normalization expects."""
    keras = _keras()
    shape = tuple(model.inputs[0].shape[1:])
    mean, std = 0.0, 1.0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Normalization):
            m, v = _standardize_stats(layer)
            mean, std = m, np.sqrt(np.maximum(v, 1e-12))
            break
    rng = np.random.default_rng(seed)
    return (mean + std * rng.normal(size=(n, *shape))).astype(np.float32)
