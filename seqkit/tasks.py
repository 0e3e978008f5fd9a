"""Tasks: the head on top of the recipe's layers, the loss, the metrics, the evaluation.

``kws`` -- keyword spotting, a clip classifier: softmax over the labels, sparse categorical
cross-entropy, accuracy; the best model is the one with the highest validation accuracy.
"""

from __future__ import annotations

import numpy as np

from .errors import ParameterError, fraction

POOLINGS = ("last", "mean", "max")


class KeywordSpotting:
    """Clip classifier: recurrent layers -> (pooling) -> dropout -> Dense(labels, softmax).

    ``pooling``: ``last`` takes the last recurrent layer's final state (that layer is built with
    ``return_sequences=False``); ``mean`` / ``max`` pool its outputs over time.
    """

    monitor = "val_accuracy"
    mode = "max"

    def __init__(self, pooling: str = "last", dropout: float = 0.0):
        if pooling not in POOLINGS:
            raise ParameterError(
                f"`pooling` must be one of {', '.join(POOLINGS)}; received {pooling!r}."
            )
        self.pooling = pooling
        self.dropout = fraction("dropout", dropout)

    @property
    def needs_sequences(self) -> bool:
        """Whether the last recurrent layer must return its whole output sequence."""
        return self.pooling != "last"

    def head(self, x, num_classes: int):
        import keras

        if len(x.shape) == 3:
            pool = (
                keras.layers.GlobalMaxPooling1D
                if self.pooling == "max"
                else (keras.layers.GlobalAveragePooling1D)
            )
            x = pool(name="pool")(x)
        if self.dropout:
            x = keras.layers.Dropout(self.dropout, name="head_dropout")(x)
        return keras.layers.Dense(num_classes, activation="softmax", name="scores")(x)

    def compile_args(self) -> dict:
        return {"loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]}

    def evaluate(self, model, x, y, labels, batch_size=256) -> dict:
        """Loss, accuracy, per-class precision/recall/F1 and the confusion matrix."""
        import keras

        probs = model.predict(x, batch_size=batch_size, verbose=0)
        pred = probs.argmax(axis=1)
        y = np.asarray(y)
        loss = float(
            keras.ops.convert_to_numpy(
                keras.losses.sparse_categorical_crossentropy(y, probs)
            ).mean()
        )
        return classification_report(y, pred, labels) | {"loss": loss}


def classification_report(y_true, y_pred, labels) -> dict:
    n = len(labels)
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true), np.asarray(y_pred)), 1)
    per_class = {}
    for i, name in enumerate(labels):
        tp = int(cm[i, i])
        precision = tp / cm[:, i].sum() if cm[:, i].sum() else 0.0
        recall = tp / cm[i, :].sum() if cm[i, :].sum() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {
            "precision": round(float(precision), 6),
            "recall": round(float(recall), 6),
            "f1": round(float(f1), 6),
            "support": int(cm[i, :].sum()),
        }
    accuracy = float(np.trace(cm) / cm.sum()) if cm.sum() else 0.0
    return {
        "accuracy": accuracy,
        "examples": int(cm.sum()),
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
    }
