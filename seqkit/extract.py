"""Feature extraction over a data source's examples: skip what cannot be read, say so, count it."""

from __future__ import annotations

import logging

from .errors import DataError, ParameterError

log = logging.getLogger("seqkit")


def _call(pipeline, ex):
    # A pipeline takes an Example (offset/duration for clips cut from longer files) or a path.
    import inspect

    from .features import FeaturePipeline

    if isinstance(pipeline, FeaturePipeline) and "Example" not in inspect.getsource(
        FeaturePipeline.__call__
    ):  # TODO(lead): remove once FeaturePipeline takes Examples
        return pipeline(ex.path)
    return pipeline(ex)


def extract_features(examples, pipeline, progress=None):
    """Run ``pipeline`` over ``examples``; skip unreadable files with a warning naming each.

    Returns ``(kept_examples, features, skipped_paths)`` with features a list of (time, F)
    arrays. Raises DataError when nothing usable is left.
    """
    kept, feats, skipped = [], [], []
    for i, ex in enumerate(examples):
        try:
            feats.append(_call(pipeline, ex))
            kept.append(ex)
        except DataError as exc:
            skipped.append(str(ex.path))
            log.warning("Skipping %s", exc)
        except ParameterError as exc:  # a step that cannot handle this clip (too short, say)
            skipped.append(str(ex.path))
            log.warning("Skipping %s: %s", ex.path, exc)
        if progress is not None:
            progress(i + 1, len(examples))
    if skipped:
        log.warning("Skipped %d of %d files that could not be read.", len(skipped), len(examples))
    if not kept:
        raise DataError(
            f"No usable audio: all {len(examples)} files were skipped (see the warnings above)."
        )
    return kept, feats, skipped
