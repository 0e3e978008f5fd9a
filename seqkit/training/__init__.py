"""Training: a built recipe -> a trained run folder.

* ``train`` -- ``train(recipe, ...)``: plans the run folder, loads the data, builds the model,
  fits it, evaluates the best epoch and records everything (``seqkit.runs`` defines the files);
  ``--resume`` and ``--overwrite`` semantics;
* ``fit`` -- the epoch loop: seeded order, checkpoints, Ctrl-C and NaN handling, resumption;
* ``distribute`` -- ``mirrored`` / ``multi_worker`` / ``data_parallel`` set-up and scopes;
* ``callbacks`` -- TensorBoard, learning rate and graph callbacks.

Readers of a run import ``seqkit.runs``, never this package.
"""

from .trainer import train

__all__ = ["train"]
