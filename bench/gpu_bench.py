"""GPU training-step benchmark of seqkit's GRU, for a session lent the H200 machine.

One prepared command (JAX backend; the GPU machine has JAX, PyTorch and CUDA but no TensorFlow,
no Keras and no internet). Here, once, from the repository root::

    echo /.whl/ >> .git/info/exclude
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \\
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \\
        --platform manylinux2014_x86_64 -d .whl keras==3.15.1 namex==0.1.0 optree==0.20.0

then, through the device tool, with ``carry: [".whl"]`` and ``timeout_s`` 600::

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \\
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:. || exit;
    PYTHONUNBUFFERED=1 KERAS_BACKEND=jax python3 bench/gpu_bench.py --out $OUT/gpu_bench.json

and here, to prove the script on CPU JAX with tiny shapes (a minute)::

    KERAS_BACKEND=jax PYTHONPATH=. python bench/gpu_bench.py --smoke

What it measures, at the issue's three shapes (batch x steps x features x units; 64x98x40x128
keyword spotting, last step out; 32x128x88x256 music, every step out; 256x200x80x512 large,
last step out): median milliseconds per training step (Adam, float32 unless said) of

* seqkit GRU (Keras, JAX backend: its scans; also unrolled 4 steps, and through Keras' loop);
* a hand-written JAX GRU of the same equations: one input GEMM, ``lax.scan``, ``jax.grad``;
* ``torch.nn.GRU`` (cuDNN; reset-after form);
* ``keras.layers.GRU`` reset_after=False and reset_after=True on the JAX backend;
* seqkit GRU and Keras' reset-after GRU under ``mixed_bfloat16``.

Every Keras model trains through one jitted stateless step (``stateless_call`` +
``jax.value_and_grad`` + ``optimizer.stateless_apply``), the JAX GRU through a jitted step, torch
through its usual loop; contenders take turns, ``--steps`` steps per turn for ``--rounds``
rounds, each turn timed as a whole after a device sync. Matmuls use each framework's default
precision (TF32 allowed on the GPU by both JAX and cuDNN).

Correctness: seqkit GRU's outputs and gradients on the GPU against the same computation on the
CPU (``jax.devices("cpu")``) at every shape, float32 with highest matmul precision, to 1e-4; and
a second process on the torch backend (``KERAS_BACKEND=torch``, on the GPU when torch sees one)
compares seqkit GRU with the TensorFlow reference ``bench/gru_tf_reference.npz`` (as
``bench/backend_check.py`` check 9 does) and times seqkit GRU and Keras' GRU on that backend
(``train_on_batch``, eager).

Goals (issue 5): seqkit <= 1.1 x the hand-written JAX scan and <= 1.5 x cuDNN at every shape.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

SHAPES = {
    "kws": (64, 98, 40, 128, "last"),
    "music": (32, 128, 88, 256, "all"),
    "large": (256, 200, 80, 512, "last"),
}
SMOKE_SHAPES = {
    "kws": (4, 9, 5, 8, "last"),
    "music": (3, 7, 6, 10, "all"),
    "large": (8, 12, 7, 16, "last"),
}
CLASSES = 12


def _data(batch, steps, features, out, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, steps, features)).astype("float32")
    if out == "last":
        y = rng.integers(0, CLASSES, size=(batch,)).astype("int32")
    else:  # next-step prediction of a piano roll: binary targets at every step
        y = (rng.random((batch, steps, features)) < 0.1).astype("float32")
    return x, y


# ---------------------------------------------------------------------------------------------
# Keras contenders (JAX backend): one jitted stateless training step
# ---------------------------------------------------------------------------------------------
def keras_model(make_layer, steps, features, units, out):
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((steps, features))
    h = make_layer(units, return_sequences=(out == "all"))(inputs)
    if out == "last":
        head = keras.layers.Dense(CLASSES, activation="softmax", dtype="float32")
    else:
        head = keras.layers.Dense(features, activation="sigmoid", dtype="float32")
    return keras.Model(inputs, head(h))


def keras_step(model, out):
    """A jitted ``step(state, x, y) -> (loss, state)`` and its initial state."""
    import jax
    import keras

    loss_fn = (
        keras.losses.SparseCategoricalCrossentropy()
        if out == "last"
        else keras.losses.BinaryCrossentropy()
    )
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(model.trainable_variables)

    def compute_loss(trainable, non_trainable, x, y):
        y_pred, non_trainable = model.stateless_call(trainable, non_trainable, x, training=True)
        return loss_fn(y, y_pred), non_trainable

    grad_fn = jax.value_and_grad(compute_loss, has_aux=True)

    @jax.jit
    def step(state, x, y):
        trainable, non_trainable, opt_vars = state
        (loss, non_trainable), grads = grad_fn(trainable, non_trainable, x, y)
        trainable, opt_vars = optimizer.stateless_apply(opt_vars, grads, trainable)
        return loss, (trainable, non_trainable, opt_vars)

    state = (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in optimizer.variables],
    )
    return step, state


def jax_runner(step, state, x, y):
    """A closure running ``n`` steps and waiting for the device."""
    import jax

    box = [state]
    xd, yd = jax.device_put(x), jax.device_put(y)

    def run(n):
        loss = None
        for _ in range(n):
            loss, box[0] = step(box[0], xd, yd)
        jax.block_until_ready(loss)
        return float(loss)

    return run


# ---------------------------------------------------------------------------------------------
# the hand-written JAX GRU: one input GEMM + lax.scan, reset gate before the product
# ---------------------------------------------------------------------------------------------
def jax_scan_runner(x, y, units, out):
    import jax
    import jax.numpy as jnp
    import numpy as np

    batch, steps, features = x.shape
    rng = np.random.default_rng(0)
    n_out = CLASSES if out == "last" else features

    def init(*shape):
        return jnp.asarray(rng.normal(0.0, 1.0 / np.sqrt(shape[0]), shape).astype("float32"))

    params = {
        "w": init(features, 3 * units),
        "u": init(units, 3 * units),
        "b": jnp.zeros((3 * units,), "float32"),
        "wd": init(units, n_out),
        "bd": jnp.zeros((n_out,), "float32"),
    }

    def gru(p, xs):
        proj = jnp.einsum("btf,fg->tbg", xs, p["w"]) + p["b"]  # one GEMM for all steps
        u_zr, u_h = p["u"][:, : 2 * units], p["u"][:, 2 * units :]

        def cell(h, p_t):
            zr = jax.nn.sigmoid(p_t[:, : 2 * units] + h @ u_zr)
            z, r = zr[:, :units], zr[:, units:]
            hh = jnp.tanh(p_t[:, 2 * units :] + (r * h) @ u_h)
            h = z * h + (1.0 - z) * hh
            return h, h

        h0 = jnp.zeros((xs.shape[0], units), xs.dtype)
        last, hs = jax.lax.scan(cell, h0, proj)
        return last if out == "last" else jnp.swapaxes(hs, 0, 1)

    def loss_fn(p, xs, ys):
        logits = gru(p, xs) @ p["wd"] + p["bd"]
        if out == "last":
            logp = jax.nn.log_softmax(logits)
            return -jnp.mean(jnp.take_along_axis(logp, ys[:, None], axis=1))
        return jnp.mean(jnp.maximum(logits, 0) - logits * ys + jnp.log1p(jnp.exp(-jnp.abs(logits))))

    @jax.jit
    def step(state, xs, ys):
        p, m, v, t = state
        loss, g = jax.value_and_grad(loss_fn)(p, xs, ys)
        t = t + 1
        m = jax.tree.map(lambda a, b: 0.9 * a + 0.1 * b, m, g)
        v = jax.tree.map(lambda a, b: 0.999 * a + 0.001 * b * b, v, g)
        lr = 1e-3 * jnp.sqrt(1 - 0.999**t) / (1 - 0.9**t)
        p = jax.tree.map(lambda a, b, c: a - lr * b / (jnp.sqrt(c) + 1e-7), p, m, v)
        return loss, (p, m, v, t)

    zeros = jax.tree.map(jnp.zeros_like, params)
    return jax_runner(step, (params, zeros, zeros, jnp.zeros((), "float32")), x, y)


# ---------------------------------------------------------------------------------------------
# torch.nn.GRU (cuDNN on the GPU)
# ---------------------------------------------------------------------------------------------
def torch_runner(x, y, units, out):
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    features = x.shape[2]
    gru = torch.nn.GRU(features, units, batch_first=True).to(device)
    head = torch.nn.Linear(units, CLASSES if out == "last" else features).to(device)
    params = list(gru.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    xt = torch.from_numpy(x).to(device)
    yt = torch.from_numpy(y).to(device)
    yt = yt.long() if out == "last" else yt

    def run(n):
        loss = None
        for _ in range(n):
            opt.zero_grad(set_to_none=True)
            hs, last = gru(xt)
            if out == "last":
                loss = torch.nn.functional.cross_entropy(head(last[0]), yt)
            else:
                loss = torch.nn.functional.binary_cross_entropy_with_logits(head(hs), yt)
            loss.backward()
            opt.step()
        return loss.item()  # waits for the device

    return run


# ---------------------------------------------------------------------------------------------
# correctness: the GPU against the CPU, same weights, same inputs
# ---------------------------------------------------------------------------------------------
def check_against_cpu(batch, steps, features, units, out):
    import jax
    import keras
    import numpy as np

    from seqkit.layers import GRU

    x, _ = _data(batch, steps, features, out, seed=1)
    layer = GRU(units, return_sequences=True, return_state=True)
    layer.build(x.shape)
    rng = np.random.default_rng(2)
    layer.set_weights(
        [rng.normal(0.0, 0.3, w.shape).astype("float32") for w in layer.get_weights()]
    )
    proj = rng.normal(size=(batch, steps, units)).astype("float32")

    fixed = [np.asarray(v) for v in layer.non_trainable_variables]  # the dropout seed

    def f(weights, xs):
        (seq, state), _ = layer.stateless_call(weights, fixed, xs)
        return keras.ops.sum(seq * proj) + keras.ops.sum(state**2), seq

    grad = jax.jit(jax.value_and_grad(f, argnums=(0, 1), has_aux=True))
    results = {}
    weights = [np.asarray(w) for w in layer.trainable_weights]
    for name in ("default", "cpu"):
        device = jax.devices()[0] if name == "default" else jax.devices("cpu")[0]
        with jax.default_matmul_precision("float32"), jax.default_device(device):
            (loss, seq), (dw, dx) = grad(
                [jax.device_put(w, device) for w in weights], jax.device_put(x, device)
            )
            results[name] = [np.asarray(seq)] + [np.asarray(g) for g in dw] + [np.asarray(dx)]
    out_diff = float(np.abs(results["default"][0] - results["cpu"][0]).max())
    grad_diff = max(
        float(np.abs(a - b).max() / max(1.0, np.abs(b).max()))
        for a, b in zip(results["default"][1:], results["cpu"][1:])
    )
    return out_diff, grad_diff, str(jax.devices()[0])


# ---------------------------------------------------------------------------------------------
# the torch backend, in its own process
# ---------------------------------------------------------------------------------------------
def torch_backend_part(batch, steps, features, units, rounds, steps_per_turn):
    """Runs with KERAS_BACKEND=torch: correctness against the TensorFlow reference, then the
    training-step time of seqkit GRU and Keras' GRU on that backend (train_on_batch, eager)."""
    import backend_check
    import keras
    import numpy as np
    import torch

    from seqkit.layers import GRU

    values = backend_check._reference_values()
    ref = np.load(backend_check.REFERENCE)
    worst = max(float(np.abs(np.asarray(values[k]) - ref[k]).max()) for k in ref.files)
    x, y = _data(batch, steps, features, "last")
    contenders = {
        "seqkit GRU, torch backend": lambda u, **k: GRU(u, **k),
        "keras GRU reset_after=False, torch backend": lambda u, **k: keras.layers.GRU(
            u, reset_after=False, **k
        ),
        "keras GRU reset_after=True, torch backend": lambda u, **k: keras.layers.GRU(
            u, reset_after=True, **k
        ),
    }
    models = {}
    for name, make in contenders.items():
        model = keras_model(make, steps, features, units, "last")
        model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
        for _ in range(2):
            model.train_on_batch(x, y)
        models[name] = model
    times = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            t0 = time.perf_counter()
            for _ in range(steps_per_turn):
                model.train_on_batch(x, y)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            times[name].append((time.perf_counter() - t0) * 1e3 / steps_per_turn)
    return {
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "max_diff_vs_tensorflow_reference": worst,
        "ms_per_step": {name: statistics.median(t) for name, t in times.items()},
    }


# ---------------------------------------------------------------------------------------------
def time_contenders(runners, rounds, steps_per_turn):
    for run in runners.values():
        run(3)  # compile / warm up
    times = {name: [] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            t0 = time.perf_counter()
            run(steps_per_turn)
            times[name].append((time.perf_counter() - t0) * 1e3 / steps_per_turn)
    return {name: statistics.median(t) for name, t in times.items()}


def bench_shape(label, shape, args):
    import keras

    import seqkit.layers as skl

    batch, steps, features, units, out = shape
    x, y = _data(batch, steps, features, out)

    def keras_runner(make, policy="float32", **switches):
        """``switches``: ``seqkit.layers`` settings (SCAN_UNROLL, SEQUENCE_SCAN) while tracing."""
        keras.mixed_precision.set_dtype_policy(policy)
        saved = {name: getattr(skl, name) for name in switches}
        for name, value in switches.items():
            setattr(skl, name, value)
        try:
            model = keras_model(make, steps, features, units, out)
            step, state = keras_step(model, out)
            run = jax_runner(step, state, x, y)
            run(1)  # trace under this policy and these settings
        finally:
            keras.mixed_precision.set_dtype_policy("float32")
            for name, value in saved.items():
                setattr(skl, name, value)
        return run

    runners = {
        "seqkit GRU": keras_runner(skl.GRU),
        "seqkit GRU, scan unroll 4": keras_runner(skl.GRU, SCAN_UNROLL=4),
        "seqkit GRU, Keras' loop": keras_runner(skl.GRU, SEQUENCE_SCAN=False),
        "hand-written JAX scan": jax_scan_runner(x, y, units, out),
        "keras GRU reset_after=False": keras_runner(
            lambda u, **k: keras.layers.GRU(u, reset_after=False, **k)
        ),
        "keras GRU reset_after=True": keras_runner(
            lambda u, **k: keras.layers.GRU(u, reset_after=True, **k)
        ),
        "seqkit GRU, mixed_bfloat16": keras_runner(skl.GRU, "mixed_bfloat16"),
        "keras GRU reset_after=True, mixed_bfloat16": keras_runner(
            lambda u, **k: keras.layers.GRU(u, reset_after=True, **k), "mixed_bfloat16"
        ),
    }
    try:
        runners["torch.nn.GRU (cuDNN)"] = torch_runner(x, y, units, out)
    except ImportError as err:
        print(f"# torch.nn.GRU skipped: {err}", flush=True)
    med = time_contenders(runners, args.rounds, args.steps)
    out_diff, grad_diff, device = check_against_cpu(batch, steps, features, units, out)
    return {
        "shape": f"{batch}x{steps}x{features}x{units}",
        "out": out,
        "ms_per_step": med,
        "max_output_diff_vs_cpu": out_diff,
        "max_relative_gradient_diff_vs_cpu": grad_diff,
        "device": device,
    }


def report(label, res):
    med = res["ms_per_step"]
    ours = med["seqkit GRU"]
    steps_out = "last step" if res["out"] == "last" else "every step"
    print(f"\n## {label}: {res['shape']} ({steps_out} out), device {res['device']}")
    print("| contender | ms / step | seqkit / contender |")
    print("|---|---|---|")
    for name, ms in med.items():
        print(f"| {name} | {ms:.2f} | {ours / ms:.2f} |")
    ok = res["max_output_diff_vs_cpu"] < 1e-4 and res["max_relative_gradient_diff_vs_cpu"] < 1e-4
    print(
        f"correctness vs CPU: outputs {res['max_output_diff_vs_cpu']:.1e}, gradients "
        f"{res['max_relative_gradient_diff_vs_cpu']:.1e} (relative) -> {'ok' if ok else 'FAILED'}"
    )
    goals = []
    if "hand-written JAX scan" in med:
        goals.append(("hand-written JAX scan", 1.1))
    if "torch.nn.GRU (cuDNN)" in med:
        goals.append(("torch.nn.GRU (cuDNN)", 1.5))
    for peer, goal in goals:
        ratio = ours / med[peer]
        print(
            f"goal: seqkit / {peer} <= {goal}: {ratio:.2f} ({'met' if ratio <= goal else 'NOT met'})"
        )
    return ok


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny shapes, few steps (CPU)")
    parser.add_argument("--shapes", default="kws,music,large")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None, help="steps per turn")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument("--no-torch-backend", action="store_true")
    parser.add_argument("--torch-backend-part", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (2 if args.smoke else 7)
    args.steps = args.steps or (2 if args.smoke else 10)
    shapes = SMOKE_SHAPES if args.smoke else SHAPES

    if args.torch_backend_part:
        b, t, f, u, _ = shapes["kws"]
        print(json.dumps(torch_backend_part(b, t, f, u, args.rounds, args.steps)))
        return 0

    import jax
    import keras

    if keras.backend.backend() != "jax":
        sys.exit("run with KERAS_BACKEND=jax")
    print(
        f"# jax {jax.__version__} devices {jax.devices()} keras {keras.__version__} "
        f"python {platform.python_version()} date {time.strftime('%Y-%m-%d')}",
        flush=True,
    )
    results, ok = {}, True
    for label in args.shapes.split(","):
        results[label] = bench_shape(label, shapes[label], args)
        ok = report(label, results[label]) and ok

    if not args.no_torch_backend:
        env = dict(os.environ, KERAS_BACKEND="torch")
        cmd = [sys.executable, os.path.abspath(__file__), "--torch-backend-part"]
        cmd += ["--smoke"] if args.smoke else []
        cmd += ["--rounds", str(max(2, args.rounds // 2)), "--steps", str(max(2, args.steps // 2))]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode == 0:
            part = json.loads(proc.stdout.strip().splitlines()[-1])
            results["torch_backend"] = part
            b, t, f, u, _ = shapes["kws"]
            print(f"\n## torch backend, {b}x{t}x{f}x{u} (last step out), device {part['device']}")
            print("| contender | ms / step (train_on_batch, eager) |")
            print("|---|---|")
            for name, ms in part["ms_per_step"].items():
                print(f"| {name} | {ms:.1f} |")
            diff = part["max_diff_vs_tensorflow_reference"]
            good = diff < 1e-4
            ok = ok and good
            print(
                f"same as the TensorFlow reference: max diff {diff:.1e} -> {'ok' if good else 'FAILED'}"
            )
        else:
            print(f"# torch backend part failed:\n{proc.stderr[-3000:]}")
            ok = False
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(results, fh, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
