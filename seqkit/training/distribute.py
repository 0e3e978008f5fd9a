"""Training on several devices or machines with the engines users already trust.

``train.distribute.type`` in a recipe:

* ``none`` (default): one device.
* ``mirrored``: ``tf.distribute.MirroredStrategy`` over the devices of one machine (GPUs; or the
  CPU split into ``logical_cpus`` logical devices -- how the tests run it). TensorFlow backend.
* ``multi_worker``: ``tf.distribute.MultiWorkerMirroredStrategy`` across processes or machines,
  configured by ``TF_CONFIG`` (from the environment, or built by ``seqkit train --workers
  host:port,host:port --worker-index I``). Worker 0 is the chief: only it writes the run folder;
  the others train into a scratch folder (``--run-dir`` to keep it) that is removed at the end.
  The global batch is ``train.batch_size``, split across workers. A worker that dies makes every
  other worker fail with a clear message once collectives have waited ``timeout_seconds``.
  Keras 3.15's ``fit`` does not run under this strategy as shipped (keras-team/keras#20585:
  per-replica batches reach ``_maybe_symbolic_build``, scalar logs are reduced on axis 0); two
  small patches of Keras' TensorFlow trainer are applied for the Keras versions they were
  checked on (``PATCHED_KERAS``), and any other version is refused rather than run unchecked.
* ``data_parallel``: ``keras.distribution.DataParallel`` on the JAX backend (all local devices;
  on CPU set ``XLA_FLAGS=--xla_force_host_platform_device_count=N``). Variables are replicated,
  each batch is split across the devices, so ``train.batch_size`` (the global batch) must be a
  multiple of the device count. Applied as a scope around building and fitting the model (not
  set globally: ``keras.backend.clear_session`` forgets a global distribution).

Only the TensorFlow strategies need TensorFlow's devices configured before TensorFlow starts:
``seqkit train`` does this first thing, so a recipe asking for ``logical_cpus`` must be trained
in a fresh process (the CLI always is).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os

import keras
from keras.src import tree
from keras.src.backend.tensorflow import trainer as tft

from ..errors import RecipeError, RunError

log = logging.getLogger("seqkit")

PATCHED_KERAS = ("3.15",)  # keras minor versions the multi-worker patches were checked on


def _backend() -> str:

    return keras.backend.backend()


def tf_config(workers: list[str], index: int) -> dict:
    """The ``TF_CONFIG`` of worker ``index`` in a cluster of ``workers`` (host:port each)."""
    if not workers or not all(isinstance(w, str) and ":" in w for w in workers):
        raise RunError(f"--workers must be host:port,host:port,...; received {workers!r}.")
    if not 0 <= index < len(workers):
        raise RunError(f"--worker-index must be in 0..{len(workers) - 1}; received {index}.")
    return {"cluster": {"worker": list(workers)}, "task": {"type": "worker", "index": index}}


def worker_index() -> int:
    """This process's worker index from ``TF_CONFIG`` (0 without one: the chief)."""
    try:
        return int(json.loads(os.environ.get("TF_CONFIG", "{}"))["task"]["index"])
    except (KeyError, ValueError, TypeError):
        return 0


_STRATEGIES: dict = {}


def setup(spec):
    """The strategy a recipe's ``train.distribute`` asks for (None for ``none``), made once per
    process: ``seqkit train`` calls this before anything else touches TensorFlow (device
    splitting and collective ops can only be configured then), ``train()`` again later."""
    key = spec.model_dump_json()
    if key not in _STRATEGIES:
        _STRATEGIES[key] = _setup(spec)
    return _STRATEGIES[key]


def _setup(spec):
    kind = spec.type
    if kind == "none":
        return None
    backend = _backend()
    if kind == "data_parallel":
        if backend != "jax":
            raise RecipeError(
                [
                    (
                        "train.distribute.type",
                        f"data_parallel runs on the JAX backend; "
                        f"this is {backend} (set KERAS_BACKEND=jax, or use mirrored)",
                    )
                ]
            )

        # Not set globally: keras.backend.clear_session() (seqkit calls it between models)
        # forgets the global distribution. train() enters `scope` around building the model and
        # `fit_scope` around fitting it.
        distribution = keras.distribution.DataParallel()
        devices = list(distribution.device_mesh.devices.flatten())
        log.info(
            "Distributed training: data_parallel over %d devices (%s).",
            len(devices), ", ".join(str(d) for d in devices),
        )  # fmt: skip
        return distribution
    if backend != "tensorflow":
        raise RecipeError(
            [
                (
                    "train.distribute.type",
                    f"{kind} is a tf.distribute strategy and needs the "
                    f"TensorFlow backend; this is {backend} (use data_parallel on JAX)",
                )
            ]
        )
    import tensorflow as tf  # optional: TensorFlow is one Keras backend of three

    if spec.logical_cpus:
        cpus = tf.config.list_physical_devices("CPU")
        try:
            tf.config.set_logical_device_configuration(
                cpus[0], [tf.config.LogicalDeviceConfiguration()] * spec.logical_cpus
            )
        except RuntimeError as exc:
            raise RunError(
                "train.distribute.logical_cpus must be set before TensorFlow starts; run "
                f"`seqkit train` in a fresh process ({exc})."
            ) from None
    if kind == "mirrored":
        devices = [f"/cpu:{i}" for i in range(spec.logical_cpus)] if spec.logical_cpus else None
        strategy = tf.distribute.MirroredStrategy(devices)
    else:
        if "TF_CONFIG" not in os.environ:
            raise RunError(
                "train.distribute.type multi_worker needs a cluster: pass --workers "
                "host:port,host:port and --worker-index I, or set TF_CONFIG."
            )
        _patch_keras_for_multi_worker()
        options = tf.distribute.experimental.CommunicationOptions(
            timeout_seconds=spec.timeout_seconds
        )
        strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    log.info("Distributed training: %s over %d replicas.", kind, strategy.num_replicas_in_sync)
    return strategy


def scope(strategy):
    """Where models are built (and loaded) for ``strategy``: a ``tf.distribute`` strategy's or a
    ``keras.distribution.Distribution``'s scope; nothing for ``None``."""
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def fit_scope(strategy):
    """Where ``fit`` runs: a Keras distribution (JAX's ``data_parallel``) must be in effect
    while batches are sharded; a ``tf.distribute`` model carries its strategy itself."""
    if hasattr(strategy, "device_mesh"):  # a keras.distribution (no public base class)
        return strategy.scope()
    return contextlib.nullcontext()


def worker_failure(exc: BaseException, spec) -> RunError | None:
    """A clear RunError for a collective that timed out or lost its peer; None otherwise."""
    if spec.type != "multi_worker":
        return None
    try:
        import tensorflow as tf  # optional: TensorFlow is one Keras backend of three
    except ImportError:  # pragma: no cover
        return None
    if isinstance(exc, (tf.errors.DeadlineExceededError, tf.errors.UnavailableError,
                        tf.errors.CancelledError, tf.errors.InternalError,
                        tf.errors.AbortedError)):  # fmt: skip
        return RunError(
            f"Multi-worker training failed: a worker stopped responding or died "
            f"(no answer within train.distribute.timeout_seconds = {spec.timeout_seconds:g} s; "
            f"{type(exc).__name__}). Check every worker's log; restart all workers with "
            "--resume on the chief's run folder."
        )
    return None


_PATCHED = False


def _patch_keras_for_multi_worker() -> None:
    """Work around keras-team/keras#20585 in Keras' TensorFlow trainer (see module docstring)."""
    global _PATCHED
    if _PATCHED:
        return
    import tensorflow as tf  # optional: TensorFlow is one Keras backend of three

    if not keras.__version__.startswith(PATCHED_KERAS):
        raise RunError(
            f"multi_worker training was checked on Keras {', '.join(PATCHED_KERAS)}.x, which "
            f"needs two patches (keras-team/keras#20585); this is Keras {keras.__version__}. "
            "Use mirrored, or the Keras version seqkit was tested with."
        )

    def _first_local(v):
        if isinstance(v, tf.distribute.DistributedValues):
            return tf.distribute.get_strategy().experimental_local_results(v)[0]
        return v

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if self._distribute_strategy is None:
            return
        if iterator is not None:
            for _, _, it in iterator:
                with self.distribute_strategy.scope():
                    data_batch = tree.map_structure(_first_local, next(it))
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    original = tft.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if tft._collective_all_reduce_multi_worker(strategy) and reduction in ("auto", "mean"):

            def _reduce(v):
                local = (
                    strategy.experimental_local_results(v)[0]
                    if isinstance(v, tf.distribute.DistributedValues)
                    else v
                )
                return strategy.reduce("MEAN", v, axis=0 if local.shape.rank else None)

            return tree.map_structure(_reduce, values)
        return original(values, strategy, reduction)

    tft.TensorFlowTrainer._maybe_symbolic_build = _maybe_symbolic_build
    tft.reduce_per_replica = reduce_per_replica
    _PATCHED = True


def data_parallel_devices() -> int:
    """How many devices each batch is split over by the Keras distribution in effect (JAX's
    ``data_parallel`` inside ``fit_scope``); 1 without one."""

    if keras.backend.backend() != "jax":
        return 1
    return _mesh_size(keras.distribution.distribution())


def _mesh_size(distribution) -> int:
    """The number of devices of a Keras distribution's mesh (1 for anything else: None, a
    ``tf.distribute`` strategy)."""
    mesh = getattr(distribution, "device_mesh", None)
    return 1 if mesh is None else int(mesh.devices.size)


def even_rows(arrays, devices: int):
    """``arrays`` (a tuple of equally long arrays) cut to a multiple of ``devices`` rows:
    under ``data_parallel`` every batch, the last one included, must split evenly (JAX
    shards the batch axis; Keras computes the layout once, from the first batch)."""
    n = len(arrays[0])
    keep = n - n % devices
    return arrays if keep == n else tuple(a[:keep] for a in arrays)


def batch_devices(strategy) -> int:
    """How many devices each batch will be split over (``data_parallel``); 1 for anything else."""
    return _mesh_size(strategy)


def check_batch_size(strategy, batch_size: int) -> None:
    """``train.batch_size`` must split evenly over a ``data_parallel`` distribution's devices."""
    n = _mesh_size(strategy)
    if batch_size % n:
        raise RecipeError(
            [
                (
                    "train.batch_size",
                    f"{batch_size} does not split evenly over the {n} devices "
                    f"of data_parallel; use a multiple of {n}",
                )
            ]
        )
