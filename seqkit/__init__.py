"""seqkit: sequence models for speech and music on Keras 3.

Public API (importing ``seqkit`` is cheap; Keras is imported when a layer is first used)::

    from seqkit import GRU, GRUCell            # the documents' GRU
    from seqkit import LAYERS, FEATURES, SOURCES, TASKS
    from seqkit import load_recipe
    from seqkit.training import train       # train a recipe
    from seqkit.runs import Run              # read a run folder

Module paths of seqkit 0.1 that moved (``seqkit.train``, ``seqkit.sources``, ...) still import,
and models seqkit saved load with ``keras.models.load_model`` after ``import seqkit`` (its
Keras objects are registered as soon as Keras is imported): see ``seqkit.compat``.
"""

from __future__ import annotations

from . import compat
from .errors import DataError, ParameterError, RecipeError, RegistryError, RunError, SeqkitError
from .registry import FEATURES, LAYERS, SOURCES, TASKS

__version__ = "0.1.0"

__all__ = [
    "FEATURES",
    "GRU",
    "GRUCell",
    "LAYERS",
    "SOURCES",
    "TASKS",
    "DataError",
    "ParameterError",
    "RecipeError",
    "RegistryError",
    "RunError",
    "SeqkitError",
    "__version__",
    "load_recipe",
]


def __getattr__(name):  # lazy: keep `import seqkit` and `seqkit list` free of TensorFlow
    if name in ("GRU", "GRUCell"):
        from . import layers

        return getattr(layers, name)
    if name == "load_recipe":
        from .recipe import load_recipe

        return load_recipe
    raise AttributeError(f"module 'seqkit' has no attribute {name!r}")


# Last: with Keras already imported, this imports seqkit's Keras objects, which need the package
# complete.
compat.install()
