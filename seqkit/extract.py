"""Feature extraction over a data source's examples, on all cores: skip what cannot be read,
say so, count it.

``iter_features`` is the engine: it runs a ``FeaturePipeline`` over examples and yields
``(index, features, warning)`` in the examples' order, either in this process or in a pool of
worker processes (``concurrent.futures`` with the ``forkserver`` start method where the
platform has it, else ``spawn``: a process that has started TensorFlow's threads is never
forked). The pipeline is pickled once per worker; examples go in chunks, and only a bounded
number of chunks are in flight, so memory does not grow with the dataset. A file that a step
rejects (``DataError``, ``ParameterError``) is a warning naming the file, never a failure.

``extract_features`` keeps the features in memory (``data.cache: false``);
``seqkit.cache.FeatureCache`` streams them to disk instead.

Workers: all cores this process may use (``os.sched_getaffinity``), or ``SEQKIT_WORKERS``.
Small jobs run in-process: the first examples are timed, and workers start only when the
rest would take over ``PARALLEL_SECONDS`` in one process (starting a pool costs seconds).
Progress: a ``progress(done, total)`` callback, by default the installed reporter's
(``seqkit.progress``; this module draws nothing itself).
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import logging
import multiprocessing as mp
import os
import pickle
import sys
import time
from concurrent.futures.process import BrokenProcessPool

from .errors import DataError, ParameterError
from .progress import counter as progress_counter

log = logging.getLogger("seqkit")

WORKERS_ENV = "SEQKIT_WORKERS"
PROBE = 24  # examples timed in this process before deciding on worker processes
PARALLEL_SECONDS = 10.0  # start workers when the rest would take longer than this here


def default_workers() -> int:
    """Cores this process may use, or ``$SEQKIT_WORKERS`` (a positive integer)."""
    env = os.environ.get(WORKERS_ENV, "").strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            n = 0
        if n < 1:
            raise ParameterError(
                f"${WORKERS_ENV} must be a positive integer; received {env!r}. "
                f"Unset it to use all cores."
            )
        return n
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def limit_blas_threads():
    """Limit numpy's BLAS to one thread in this process; returns the limiter (its
    ``restore_original_limits()`` undoes it) or ``None`` without threadpoolctl.

    Feature steps multiply small matrices (a mel filter bank by a spectrogram); a
    multi-threaded BLAS gains nothing at that size, and on busy cores its threads spin: on the
    2-core machine here one clip's mel spectrogram took 26-45 ms instead of 1.7 ms.
    """
    try:
        from threadpoolctl import threadpool_limits  # optional: comes with scikit-learn
    except ImportError:  # pragma: no cover - threadpoolctl comes with librosa's scikit-learn
        return None
    return threadpool_limits(limits=1, user_api="blas")


def example_name(ex) -> str:
    """What a message calls an example: its key (path, or path with offset/gain) or path."""
    return str(getattr(ex, "key", None) or getattr(ex, "path", ex))


def run_one(pipeline, ex):
    """``(features, None)`` or ``(None, warning)`` for one example."""
    try:
        return pipeline(ex), None
    except DataError as exc:
        return None, f"Skipping {exc}"
    except ParameterError as exc:  # a step that cannot handle this clip (too short, say)
        return None, f"Skipping {example_name(ex)}: {exc}"


# -- worker processes ----------------------------------------------------------------------------

_PIPELINE = None


def _init_worker(pipeline) -> None:
    global _PIPELINE
    _PIPELINE = pipeline
    limit_blas_threads()


def _work(chunk):
    return [(i, *run_one(_PIPELINE, ex)) for i, ex in chunk]


def _pool(workers: int, pipeline):
    methods = mp.get_all_start_methods()
    if "forkserver" in methods:
        ctx = mp.get_context("forkserver")
        # Workers fork from a server that imported these once (librosa's modules load lazily,
        # on first use: seconds per worker otherwise); in effect when the server first starts.
        ctx.set_forkserver_preload(_preload(pipeline))
    else:
        ctx = mp.get_context("spawn")
    return cf.ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(pipeline,)
    )


# What feature steps import (librosa loads its submodules lazily, on first use).
PRELOAD = ["numpy", "soundfile", "soxr", "numba", "scipy.signal", "scipy.fft", "librosa.core.audio",
           "librosa.core.spectrum", "librosa.core.convert", "librosa.feature.spectral",
           "librosa.feature.utils", "librosa.filters", "librosa.util.utils"]  # fmt: skip
PRELOAD_PACKAGES = ("numpy", "scipy", "numba", "llvmlite", "soxr", "soundfile", "librosa")


def _preload(pipeline) -> list[str]:
    """Modules for the forkserver to import: ``PRELOAD``, the pipeline's step modules, and the
    public modules of those packages this process has loaded (running the steps loads them)."""
    loaded = sorted(
        m
        for m in list(sys.modules)
        if m.split(".")[0] in PRELOAD_PACKAGES and not any(p.startswith("_") for p in m.split("."))
    )
    steps = sorted({type(s).__module__ for s in getattr(pipeline, "steps", [])})
    return list(dict.fromkeys([*PRELOAD, *loaded, *steps, "seqkit.extract"]))


def _picklable(obj) -> bool:
    try:
        pickle.dumps(obj)
        return True
    except Exception:
        return False


def iter_features(examples, pipeline, workers=None, progress=None):
    """Yield ``(index, features or None, warning or None)`` for each example, in order.

    ``workers``: processes to use (default ``default_workers()``); 1 runs in this process.
    Without an explicit ``workers``, the first ``PROBE`` examples are computed here and timed,
    and worker processes start only when the rest would take longer than
    ``PARALLEL_SECONDS`` here (a pool costs a second or more of start-up per worker). A
    pipeline that cannot be pickled (a plugin step holding a lock, say) runs here.
    ``progress(done, total)`` is called after each example.
    """
    examples = list(examples)
    total = len(examples)
    explicit = workers is not None
    workers = default_workers() if workers is None else int(workers)
    parallel = workers > 1 and total > 1
    if parallel and not _picklable(pipeline):
        log.info("The feature pipeline cannot be pickled; extracting in one process.")
        parallel = False
    done = 0
    limiter = limit_blas_threads()
    try:
        if parallel and not explicit:
            busy = 0.0
            for i in range(min(PROBE, total)):
                t = time.perf_counter()
                feats, warning = run_one(pipeline, examples[i])
                busy += time.perf_counter() - t
                done = i + 1
                yield i, feats, warning
                if progress is not None:
                    progress(done, total)
            parallel = busy / max(done, 1) * (total - done) > PARALLEL_SECONDS
        if not parallel:
            for i in range(done, total):
                feats, warning = run_one(pipeline, examples[i])
                yield i, feats, warning
                if progress is not None:
                    progress(i + 1, total)
            return
    finally:
        if limiter is not None:
            limiter.restore_original_limits()
    if done < total:
        yield from _in_workers(examples, done, pipeline, workers, progress)


def _in_workers(examples, start, pipeline, workers, progress):
    total = len(examples)
    indexed = list(enumerate(examples))[start:]
    chunk = max(1, min(64, len(indexed) // (workers * 8) or 1))
    chunks = [indexed[s : s + chunk] for s in range(0, len(indexed), chunk)]
    done = start
    try:
        with _pool(workers, pipeline) as pool:
            pending = collections.deque()
            todo = iter(chunks)
            try:
                for c in todo:  # keep a bounded number of chunks in flight
                    pending.append(pool.submit(_work, c))
                    if len(pending) >= 4 * workers:
                        break
                while pending:
                    results = pending.popleft().result()
                    nxt = next(todo, None)
                    if nxt is not None:
                        pending.append(pool.submit(_work, nxt))
                    for i, feats, warning in results:
                        yield i, feats, warning
                        done += 1
                        if progress is not None:
                            progress(done, total)
            except BaseException:
                for f in pending:
                    f.cancel()
                raise
    except BrokenProcessPool as exc:  # a worker died (killed, or cannot start here)
        log.warning(
            "Feature extraction workers stopped (%s); continuing in one process.", exc or "died"
        )
        limiter = limit_blas_threads()
        try:
            for i, ex in enumerate(examples[done:], start=done):
                feats, warning = run_one(pipeline, ex)
                yield i, feats, warning
                if progress is not None:
                    progress(i + 1, total)
        finally:
            if limiter is not None:
                limiter.restore_original_limits()


def extract_features(examples, pipeline, progress=None, workers=None):
    """Run ``pipeline`` over ``examples`` (in parallel, see ``iter_features``); skip unreadable
    files with a warning naming each.

    Returns ``(kept_examples, features, skipped_paths)`` with features a list of (time, F)
    arrays held in memory. Raises DataError when nothing usable is left.
    """
    examples = list(examples)
    kept, feats, skipped = [], [], []
    for i, x, warning in iter_features(examples, pipeline, workers=workers, progress=progress):
        if warning is None:
            kept.append(examples[i])
            feats.append(x)
        else:
            skipped.append(str(getattr(examples[i], "path", examples[i])))
            log.warning("%s", warning)
    report_skipped(len(skipped), len(examples))
    return kept, feats, skipped


def report_skipped(n_skipped: int, n_total: int) -> None:
    """The summary warning for skipped files; DataError when nothing is left."""
    if n_skipped:
        log.warning("Skipped %d of %d files that could not be read.", n_skipped, n_total)
    if n_total and n_skipped == n_total:
        raise DataError(
            f"No usable audio: all {n_total} files were skipped (see the warnings above)."
        )
    if not n_total:
        raise DataError("No usable audio: the data source listed no files.")


# -- progress ------------------------------------------------------------------------------------


def default_progress(label: str = "features"):
    """The installed reporter's ``(done, total)`` counter for ``label`` (``seqkit.progress``),
    or None when it draws nothing (the default; the ``seqkit`` command line installs one that
    draws a bar on a terminal, none with ``-q``). Kept for callers of seqkit 0.1; new code
    calls ``seqkit.progress.counter``."""
    return progress_counter(label, unit="example")
