"""Callbacks the trainer adds to every epoch: TensorBoard scalars, the learning rate in the
epoch logs, and the model's op graph once.
"""

from __future__ import annotations

from pathlib import Path

import keras


def _learning_rate_logger():
    """A callback putting the optimizer's learning rate into the epoch logs (history.csv)."""

    class LearningRateToLogs(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                lr = self.model.optimizer.learning_rate
                logs["learning_rate"] = float(keras.ops.convert_to_numpy(lr))

    return LearningRateToLogs()


def _graph_writer(log_dir: Path, input_shape):
    """A callback writing the model's op graph to TensorBoard's Graphs tab (TensorFlow backend).

    Keras' own TensorBoard callback writes the conceptual (Keras) graph, and the op graph only
    when it logs per batch; this writes the forward pass's op graph once, at the start.
    """

    class GraphWriter(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            if keras.backend.backend() != "tensorflow":
                return
            import tensorflow as tf  # optional: TensorFlow is one Keras backend of three

            fn = tf.function(lambda x: self.model(x, training=False))
            spec = tf.TensorSpec((None, *input_shape), tf.float32)
            graph = fn.get_concrete_function(spec).graph
            with tf.summary.create_file_writer(str(log_dir / "train")).as_default():
                tf.summary.graph(graph)

    return GraphWriter()


def _epoch_callbacks(run: Path, task, data):
    """Fresh logging callbacks for each epoch's ``fit`` call (TensorBoard, learning rate)."""

    def make(first: bool):
        out = [
            _learning_rate_logger(),
            keras.callbacks.TensorBoard(log_dir=str(run / "logs"), write_graph=first),
            *task.callbacks(run, data),
        ]
        if first:
            out.append(_graph_writer(run / "logs", data.input_shape))
        return out

    return make
