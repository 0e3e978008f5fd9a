"""The documents' worked GRU example ("AI is amazing"), shared by tests and ``seqkit explain``.

Three tokens, each a 3-dimensional input vector, run through a GRU of hidden size 2 from
``h0 = 0``. The matrices are written as the documents write them, in math convention
(``W`` is (units, inputs) and the gates compute ``W x + U h + b``); ``keras_weights()`` turns
them into the layout ``keras.layers.GRU`` and ``seqkit.layers.GRU`` store: ``kernel``
(inputs, 3 * units), ``recurrent_kernel`` (units, 3 * units) and ``bias`` (3 * units,), gate
order z, r, h, for ``reset_after=False``.

``expected`` holds the documents' figures, rounded to 4 decimals.
"""

from __future__ import annotations

import numpy as np

__all__ = ["WORKED_EXAMPLE", "inputs", "keras_weights", "matrices"]

WORKED_EXAMPLE = {
    "sentence": "AI is amazing",
    "tokens": ["AI", "is", "amazing"],
    "units": 2,
    "inputs": [
        [0.5, 0.1, 0.4],  # x1  "AI"
        [0.2, 0.7, 0.3],  # x2  "is"
        [0.6, 0.9, 0.5],  # x3  "amazing"
    ],
    "h0": [0.0, 0.0],
    # Reset gate.
    "W_r": [[0.2, 0.5, 0.1], [0.3, 0.7, 0.2]],
    "U_r": [[0.6, 0.4], [0.8, 0.9]],
    "b_r": [0.1, 0.2],
    # Update gate.
    "W_z": [[0.4, 0.3, 0.7], [0.5, 0.2, 0.6]],
    "U_z": [[0.9, 0.5], [0.3, 0.8]],
    "b_z": [0.05, 0.1],
    # Candidate state.
    "W_h": [[0.3, 0.7, 0.2], [0.6, 0.5, 0.4]],
    "U_h": [[0.4, 0.6], [0.5, 0.7]],
    "b_h": [0.2, 0.3],
    "expected": {
        "step1": {
            "r": [0.5720, 0.6225],
            "z": [0.6365, 0.6479],
            "hh": [0.4621, 0.6696],
            "h": [0.1680, 0.2357],
        },
        "h": [
            [0.1680, 0.2357],
            [0.3447, 0.4125],
            [0.4504, 0.5229],
        ],
    },
}


def inputs() -> np.ndarray:
    """The three input vectors as a float32 batch of one sequence, shape (1, 3, 3)."""
    return np.asarray([WORKED_EXAMPLE["inputs"]], dtype="float32")


def matrices(dtype="float64") -> dict[str, np.ndarray]:
    """The example's W_*, U_* and b_* arrays in math convention, by name."""
    ex = WORKED_EXAMPLE
    return {k: np.asarray(v, dtype=dtype) for k, v in ex.items() if k[:2] in ("W_", "U_", "b_")}


def keras_weights() -> list[np.ndarray]:
    """``[kernel, recurrent_kernel, bias]`` in Keras layout (gate order z, r, h), float32."""
    w = matrices("float32")
    kernel = np.concatenate([w["W_z"].T, w["W_r"].T, w["W_h"].T], axis=1)
    recurrent_kernel = np.concatenate([w["U_z"].T, w["U_r"].T, w["U_h"].T], axis=1)
    bias = np.concatenate([w["b_z"], w["b_r"], w["b_h"]])
    return [kernel, recurrent_kernel, bias]
