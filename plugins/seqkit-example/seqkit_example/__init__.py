"""seqkit-example: an example third-party seqkit plugin that adds the ``mgu`` layer.

seqkit finds the layer through the ``seqkit.layers`` entry point declared in this package's
``pyproject.toml``; nothing here needs to be imported by hand. For direct use::

    from seqkit_example import MGU, MGUCell
"""

from __future__ import annotations

from .layers import MGU, MGUCell

__version__ = "0.1.0"

__all__ = ["MGU", "MGUCell", "__version__"]
