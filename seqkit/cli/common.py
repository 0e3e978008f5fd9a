"""Helpers every command module uses: the verbosity the group was given, and Keras imported
with TensorFlow's start-up noise kept off stderr. Light: click and the standard library."""

from __future__ import annotations

import os
import sys

import click

__all__ = ["import_keras", "verbosity"]


def verbosity(ctx: click.Context | None) -> int:
    """-1 with ``-q``, 0 by default, ``n`` with ``-v`` given ``n`` times."""
    return (ctx.obj or {}).get("verbose", 0) if ctx is not None else 0


def import_keras(ctx: click.Context | None) -> None:
    """Import Keras (and TensorFlow) with TensorFlow's start-up log lines kept off stderr.

    TensorFlow's C++ start-up lines (absl, oneDNN) ignore TF_CPP_MIN_LOG_LEVEL, so file
    descriptor 2 is pointed at /dev/null for the import alone; ``-v`` shows them.
    """
    if "keras" in sys.modules or verbosity(ctx) > 0:
        import keras  # noqa: F401

        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        import keras  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
