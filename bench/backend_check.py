"""Backend check for seqkit.layers.GRU on a non-TensorFlow Keras backend (CPU).

Usage, from the repository root, in an environment with keras, numpy and the backend (no
TensorFlow needed; seqkit's GRU needs only keras and numpy):
    KERAS_BACKEND=jax   PYTHONPATH=. python bench/backend_check.py
    KERAS_BACKEND=torch PYTHONPATH=. python bench/backend_check.py
It checks the GRU against a numpy implementation of the equations and against
keras.layers.GRU (outputs, masks, Bidirectional, training, stateful, .keras round trip,
gate_activations) and, last, times training steps against keras.layers.GRU side by side.
Check 8 trains seqkit's GRU and keras.layers.GRU side by side (gradients through masks,
go_backwards, stacked layers; eager and compiled). Check 9 compares outputs and trained weights
with those the TensorFlow backend wrote to bench/gru_tf_reference.npz (to 1e-4); on TensorFlow,
--write-reference rewrites that file.
Exit code 1 if any check fails.
Options: --no-speed (skip check 7), --only N[,M] (run only these checks),
         --speed-compile (check 7 with jit_compile=True; on torch this means torch.compile).
Every check is isolated: an exception is reported (with traceback) and the next check runs.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback

import keras
import numpy as np
from keras import ops

import seqkit
import seqkit.layers as skl

TOL = 1e-5
RESULTS = []  # (check, name, ok, detail)


def rec(check, name, ok, detail=""):
    RESULTS.append((check, name, bool(ok), detail))
    print(f"[{'PASS' if ok else 'FAIL'}] {check}: {name} {detail}", flush=True)


def maxdiff(a, b):
    a = np.asarray(
        ops.convert_to_numpy(a) if not isinstance(a, np.ndarray) else a, dtype=np.float64
    )
    b = np.asarray(
        ops.convert_to_numpy(b) if not isinstance(b, np.ndarray) else b, dtype=np.float64
    )
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a - b)))


def sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_gru(
    x,
    kernel,
    rkernel,
    bias,
    reset_after,
    h0=None,
    mask=None,
    go_backwards=False,
    zero_output_for_mask=False,
):
    """Numpy GRU oracle in float64 with Keras' packed layout and Keras' RNN semantics.

    Returns (outputs (B,T,U) in processing order, final state (B,U)).
    """
    x = x.astype(np.float64)
    B, T, _ = x.shape
    u = rkernel.shape[0]
    K = kernel.astype(np.float64)
    U = rkernel.astype(np.float64)
    Kz, Kr, Kh = K[:, :u], K[:, u : 2 * u], K[:, 2 * u :]
    Uz, Ur, Uh = U[:, :u], U[:, u : 2 * u], U[:, 2 * u :]
    bias = np.asarray(bias, dtype=np.float64)
    if reset_after:
        b0, b1 = bias[0], bias[1]
    else:
        b0, b1 = bias, np.zeros_like(bias)
    h = np.zeros((B, u)) if h0 is None else h0.astype(np.float64)
    prev_out = np.zeros((B, u))
    order = range(T - 1, -1, -1) if go_backwards else range(T)
    outs = []
    for t in order:
        xt = x[:, t, :]
        z = sig(xt @ Kz + h @ Uz + b0[:u] + b1[:u])
        r = sig(xt @ Kr + h @ Ur + b0[u : 2 * u] + b1[u : 2 * u])
        if reset_after:
            hh = np.tanh(xt @ Kh + b0[2 * u :] + r * (h @ Uh + b1[2 * u :]))
        else:
            hh = np.tanh(xt @ Kh + (r * h) @ Uh + b0[2 * u :])
        hn = z * h + (1 - z) * hh
        if mask is not None:
            m = mask[:, t][:, None].astype(bool)
            out = np.where(m, hn, 0.0 if zero_output_for_mask else prev_out)
            h = np.where(m, hn, h)
        else:
            out = hn
            h = hn
        prev_out = out
        outs.append(out)
    return np.stack(outs, axis=1), h


def rand_weights(rng, in_dim, units, reset_after, scale=0.5):
    k = rng.normal(size=(in_dim, 3 * units)).astype("float32") * scale
    rk = rng.normal(size=(units, 3 * units)).astype("float32") * scale
    b = rng.normal(size=((2, 3 * units) if reset_after else (3 * units,))).astype("float32") * scale
    return [k, rk, b]


def run_check(num, fn):
    if ONLY and num not in ONLY:
        return
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        rec(num, f"{fn.__name__} raised", False, f"{type(e).__name__}: {e}")
        traceback.print_exc()


# ---------------------------------------------------------------------------------------------
B, T, F, UNITS = 4, 7, 5, 6


def check1():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(B, T, F)).astype("float32")
    h0 = rng.normal(size=(B, UNITS)).astype("float32")
    lengths = np.array([7, 5, 3, 1])
    mask = np.arange(T)[None, :] < lengths[:, None]
    for reset_after in (False, True):
        w = rand_weights(rng, F, UNITS, reset_after)
        for variant in (
            "plain",
            "go_backwards",
            "mask",
            "initial_state",
            "mask+go_backwards",
            "mask+initial_state",
        ):
            gb = "go_backwards" in variant
            use_mask = "mask" in variant
            use_h0 = "initial_state" in variant
            kw = dict(
                return_sequences=True, return_state=True, go_backwards=gb, reset_after=reset_after
            )
            sk = skl.GRU(UNITS, **kw)
            ke = keras.layers.GRU(UNITS, **kw)
            outs = {}
            for tag, layer in (("seqkit", sk), ("keras", ke)):
                layer.build((B, T, F))
                layer.set_weights(w)
                call_kw = {}
                if use_mask:
                    call_kw["mask"] = ops.convert_to_tensor(mask)
                if use_h0:
                    call_kw["initial_state"] = [ops.convert_to_tensor(h0)]
                seq, st = layer(ops.convert_to_tensor(x), **call_kw)
                outs[tag] = (ops.convert_to_numpy(seq), ops.convert_to_numpy(st))
            ref_seq, ref_st = np_gru(
                x,
                *w,
                reset_after=reset_after,
                h0=h0 if use_h0 else None,
                mask=mask if use_mask else None,
                go_backwards=gb,
            )
            d_np = max(maxdiff(outs["seqkit"][0], ref_seq), maxdiff(outs["seqkit"][1], ref_st))
            d_ke = max(
                maxdiff(outs["seqkit"][0], outs["keras"][0]),
                maxdiff(outs["seqkit"][1], outs["keras"][1]),
            )
            d_ke_np = max(maxdiff(outs["keras"][0], ref_seq), maxdiff(outs["keras"][1], ref_st))
            rec(
                1,
                f"reset_after={reset_after} {variant}",
                d_np < TOL and d_ke < TOL,
                f"vs numpy={d_np:.2e} vs keras.GRU={d_ke:.2e} (keras vs numpy={d_ke_np:.2e})",
            )


def check2():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(B, T, F)).astype("float32")
    lengths = np.array([7, 5, 3, 1])
    mask = np.arange(T)[None, :] < lengths[:, None]
    for merge in ("concat", "sum"):
        for use_mask in (False, True):
            bs = keras.layers.Bidirectional(skl.GRU(UNITS, return_sequences=True), merge_mode=merge)
            bk = keras.layers.Bidirectional(
                keras.layers.GRU(UNITS, return_sequences=True, reset_after=False), merge_mode=merge
            )
            bs.build((B, T, F))
            bk.build((B, T, F))
            w = rand_weights(rng, F, UNITS, False) + rand_weights(rng, F, UNITS, False)
            bs.set_weights(w)
            bk.set_weights(w)
            kw = {"mask": ops.convert_to_tensor(mask)} if use_mask else {}
            ys = ops.convert_to_numpy(bs(ops.convert_to_tensor(x), **kw))
            yk = ops.convert_to_numpy(bk(ops.convert_to_tensor(x), **kw))
            # numpy: forward + reversed backward outputs
            fw, _ = np_gru(
                x,
                *w[:3],
                reset_after=False,
                mask=mask if use_mask else None,
                zero_output_for_mask=True,
            )
            bw, _ = np_gru(
                x,
                *w[3:],
                reset_after=False,
                mask=mask if use_mask else None,
                go_backwards=True,
                zero_output_for_mask=True,
            )
            bw = bw[:, ::-1]
            ref = np.concatenate([fw, bw], -1) if merge == "concat" else fw + bw
            d = maxdiff(ys, yk)
            dn = maxdiff(ys, ref)
            rec(
                2,
                f"Bidirectional merge={merge} mask={use_mask}",
                d < TOL and dn < TOL,
                f"vs keras Bidirectional={d:.2e} vs numpy={dn:.2e} shape={ys.shape}",
            )
    # In a model, trainable, with fit (1 epoch)
    inp = keras.Input((20, 8))
    y = keras.layers.Bidirectional(skl.GRU(8))(inp)
    y = keras.layers.Dense(3, activation="softmax")(y)
    m = keras.Model(inp, y)
    m.compile("adam", "sparse_categorical_crossentropy")
    xr = rng.normal(size=(32, 20, 8)).astype("float32")
    yr = rng.integers(0, 3, size=(32,))
    h = m.fit(xr, yr, epochs=2, batch_size=16, verbose=0)
    rec(
        2,
        "Bidirectional(seqkit GRU) in a model fits",
        np.isfinite(h.history["loss"]).all(),
        f"loss={[f'{v:.4f}' for v in h.history['loss']]}",
    )


def make_model(layer_fn):
    inp = keras.Input((20, 8))
    y = layer_fn()(inp)
    y = keras.layers.Dense(3, activation="softmax")(y)
    return keras.Model(inp, y)


def check3():
    rng = np.random.default_rng(2)
    xr = rng.normal(size=(128, 20, 8)).astype("float32")
    # learnable target: sign pattern of input mean
    yr = (np.digitize(xr[:, :, 0].mean(1), [-0.1, 0.1])).astype("int32")
    configs = [
        ("default fit", dict(), {}),
        ("dropout=0.2 recurrent_dropout=0.2", dict(dropout=0.2, recurrent_dropout=0.2), {}),
        ("reset_after=True", dict(reset_after=True), {}),
        ("jit_compile=True", dict(), {"jit_compile": True}),
        (
            "dropout + jit_compile=True",
            dict(dropout=0.2, recurrent_dropout=0.2),
            {"jit_compile": True},
        ),
        ("run_eagerly=True", dict(), {"run_eagerly": True}),
    ]
    for name, lkw, ckw in configs:
        keras.utils.set_random_seed(0)
        m = make_model(lambda lkw=lkw: skl.GRU(16, **lkw))
        m.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", **ckw)
        h = m.fit(xr, yr, epochs=3, batch_size=32, verbose=0)
        loss = h.history["loss"]
        jc = getattr(m, "jit_compile", None)
        ok = np.isfinite(loss).all() and loss[-1] < loss[0]
        rec(
            3,
            f"fit 3 epochs: {name}",
            ok,
            f"loss={[f'{v:.4f}' for v in loss]} model.jit_compile={jc} run_eagerly={m.run_eagerly}",
        )
    # compiled train step == eager train step (same start weights, same batch, no dropout)
    for reset_after in (False, True):
        upd = {}
        for tag, ckw in (("eager", {"run_eagerly": True}), ("compiled", {"jit_compile": True})):
            keras.utils.set_random_seed(0)
            m = make_model(lambda ra=reset_after: skl.GRU(16, reset_after=ra))
            m.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", **ckw)
            losses = [float(np.asarray(m.train_on_batch(xr[:32], yr[:32]))) for _ in range(3)]
            upd[tag] = ([w.copy() for w in m.get_weights()], losses)
        dw = max(maxdiff(a, b) for a, b in zip(upd["eager"][0], upd["compiled"][0]))
        dl = max(abs(a - b) for a, b in zip(upd["eager"][1], upd["compiled"][1]))
        rec(
            3,
            f"compiled (jit_compile=True) vs eager train_on_batch x3, reset_after={reset_after}",
            dw < 1e-4 and dl < 1e-4,
            f"weights max diff={dw:.2e} loss max diff={dl:.2e}",
        )
    # weights actually change & gradient reaches all three weights
    keras.utils.set_random_seed(0)
    m = make_model(lambda: skl.GRU(16, dropout=0.2, recurrent_dropout=0.2))
    m.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    before = [w.copy() for w in m.layers[1].get_weights()]
    m.train_on_batch(xr[:32], yr[:32])
    after = m.layers[1].get_weights()
    changes = [float(np.max(np.abs(a - b))) for a, b in zip(after, before)]
    rec(
        3,
        "train_on_batch updates kernel, recurrent_kernel, bias",
        all(c > 0 for c in changes),
        f"max change={[f'{c:.2e}' for c in changes]}",
    )
    # dropout in inference mode is a no-op; in training mode it changes the output
    layer = m.layers[1]
    xt = ops.convert_to_tensor(xr[:4])
    a = ops.convert_to_numpy(layer(xt, training=False))
    b = ops.convert_to_numpy(layer(xt, training=False))
    c = ops.convert_to_numpy(layer(xt, training=True))
    rec(
        3,
        "dropout: inference deterministic, training differs",
        maxdiff(a, b) == 0 and maxdiff(a, c) > 0,
        f"infer-infer={maxdiff(a, b):.1e} infer-train={maxdiff(a, c):.2e}",
    )


def check4():
    rng = np.random.default_rng(3)
    for reset_after in (False, True):
        x = rng.normal(size=(B, T, F)).astype("float32")
        w = rand_weights(rng, F, UNITS, reset_after)
        full = skl.GRU(UNITS, return_sequences=True, reset_after=reset_after)
        full.build((B, T, F))
        full.set_weights(w)
        ref = ops.convert_to_numpy(full(ops.convert_to_tensor(x)))
        res = {}
        for tag, mk in (("seqkit", skl.GRU), ("keras", keras.layers.GRU)):
            inp = keras.Input(batch_shape=(B, 1, F))
            sf = mk(UNITS, return_sequences=True, stateful=True, reset_after=reset_after)
            m = keras.Model(inp, sf(inp))
            sf.set_weights(w)
            # step by step through model __call__ (eager)
            sf.reset_state()
            steps = np.concatenate(
                [ops.convert_to_numpy(m(ops.convert_to_tensor(x[:, t : t + 1]))) for t in range(T)],
                axis=1,
            )
            d_call = maxdiff(steps, ref)
            # chunks 3 + 4 through the layer itself
            sf.reset_state()
            c1 = ops.convert_to_numpy(sf(ops.convert_to_tensor(x[:, :3])))
            c2 = ops.convert_to_numpy(sf(ops.convert_to_tensor(x[:, 3:])))
            d_chunk = maxdiff(np.concatenate([c1, c2], 1), ref)
            # reset_state really resets
            sf.reset_state()
            d_reset = maxdiff(ops.convert_to_numpy(sf(ops.convert_to_tensor(x[:, :1]))), ref[:, :1])
            # step by step through model.predict (compiled predict function)
            sf.reset_state()
            pred = np.concatenate([m.predict(x[:, t : t + 1], verbose=0) for t in range(T)], axis=1)
            d_pred = maxdiff(pred, ref)
            res[tag] = (d_call, d_chunk, d_reset, d_pred)
        d_call, d_chunk, d_reset, d_pred = res["seqkit"]
        kd_pred = res["keras"][3]
        rec(
            4,
            f"stateful reset_after={reset_after} step-by-step model(x_t) / chunks / reset",
            max(d_call, d_chunk, d_reset) < TOL,
            f"model(x_t) steps={d_call:.2e} chunks 3+4={d_chunk:.2e} after reset={d_reset:.2e}",
        )
        # predict(): seqkit must behave as keras.layers.GRU does on this backend
        same = (d_pred < TOL) == (kd_pred < TOL)
        rec(
            4,
            f"stateful reset_after={reset_after} step-by-step model.predict",
            same,
            f"seqkit={d_pred:.2e} keras.layers.GRU={kd_pred:.2e}"
            + (
                ""
                if d_pred < TOL
                else "  [predict does not carry state on this backend; "
                "keras.layers.GRU behaves the same -> Keras upstream, not seqkit]"
                if kd_pred >= TOL
                else "  [seqkit differs from keras.layers.GRU]"
            ),
        )
    # stateful training (fit with shuffle=False): runs, and is the state carried across batches?
    for reset_after in (False, True):
        info = {}
        for tag, mk in (("seqkit", skl.GRU), ("keras", keras.layers.GRU)):
            try:
                inp = keras.Input(batch_shape=(8, 5, F))
                lay = mk(UNITS, stateful=True, reset_after=reset_after)
                m = keras.Model(inp, keras.layers.Dense(1)(lay(inp)))
                m.compile("adam", "mse")
                h = m.fit(
                    rng.normal(size=(32, 5, F)).astype("float32"),
                    rng.normal(size=(32, 1)),
                    batch_size=8,
                    epochs=2,
                    shuffle=False,
                    verbose=0,
                )
                st = float(np.max(np.abs(ops.convert_to_numpy(lay.states[0]))))
                info[tag] = (
                    True,
                    f"loss={[f'{v:.4f}' for v in h.history['loss']]} max|state| after fit={st:.3f}",
                )
            except Exception as e:  # noqa: BLE001
                info[tag] = (False, f"{type(e).__name__}: {str(e)[:100]}")
        rec(
            4,
            f"stateful model fits reset_after={reset_after}",
            info["seqkit"][0],
            f"seqkit: {info['seqkit'][1]} | keras.layers.GRU: {info['keras'][1]}",
        )


def check5():
    rng = np.random.default_rng(4)
    xr = rng.normal(size=(16, 20, 8)).astype("float32")
    for name, fn in (
        ("GRU(16)", lambda: skl.GRU(16)),
        (
            "GRU(16, reset_after=True, dropout=0.2, recurrent_dropout=0.1, go_backwards=True)",
            lambda: skl.GRU(
                16, reset_after=True, dropout=0.2, recurrent_dropout=0.1, go_backwards=True
            ),
        ),
        ("Bidirectional(GRU(16))", lambda: keras.layers.Bidirectional(skl.GRU(16))),
        ("RNN(seqkit GRUCell(16))", lambda: keras.layers.RNN(skl.GRUCell(16))),
    ):
        m = make_model(fn)
        m.compile("adam", "sparse_categorical_crossentropy")
        m.fit(xr, rng.integers(0, 3, size=(16,)), epochs=1, verbose=0)
        p1 = m.predict(xr, verbose=0)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "m.keras")
            m.save(path)
            m2 = keras.saving.load_model(path)
        p2 = m2.predict(xr, verbose=0)
        inner = m2.layers[1]
        cls = type(
            inner.forward_layer
            if hasattr(inner, "forward_layer")
            else getattr(inner, "cell", inner)
            if isinstance(inner, keras.layers.RNN) and not isinstance(inner, skl.GRU)
            else inner
        )
        d = maxdiff(p1, p2)
        rec(
            5,
            f"save/load {name}",
            d == 0.0,
            f"pred max diff={d:.2e} restored={cls.__module__}.{cls.__name__}",
        )
    # weights interchangeable with keras.layers.GRU
    sk = skl.GRU(16)
    ke = keras.layers.GRU(16, reset_after=False)
    sk.build((2, 20, 8))
    ke.build((2, 20, 8))
    rec(
        5,
        "weight shapes == keras GRU(reset_after=False)",
        [w.shape for w in sk.get_weights()] == [w.shape for w in ke.get_weights()],
        str([tuple(w.shape) for w in sk.get_weights()]),
    )


def check6():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(B, T, F)).astype("float32")
    h0 = rng.normal(size=(B, UNITS)).astype("float32")
    for reset_after in (False, True):
        for gb in (False, True):
            w = rand_weights(rng, F, UNITS, reset_after)
            layer = skl.GRU(UNITS, return_sequences=True, reset_after=reset_after, go_backwards=gb)
            layer.build((B, T, F))
            layer.set_weights(w)
            g = layer.gate_activations(x)
            seq = ops.convert_to_numpy(layer(ops.convert_to_tensor(x)))
            # layer returns processing order for go_backwards; gate_activations is input order
            seq_in_order = seq[:, ::-1] if gb else seq
            d = maxdiff(g["h"], seq_in_order)
            ref, _ = np_gru(x, *w, reset_after=reset_after, go_backwards=gb)
            ref = ref[:, ::-1] if gb else ref
            dn = maxdiff(g["h"], ref)
            shapes = {k: v.shape for k, v in g.items()}
            ok = d < TOL and dn < TOL and all(s == (B, T, UNITS) for s in shapes.values())
            # gate ranges
            ok = ok and (g["r"].min() >= 0) and (g["r"].max() <= 1) and (g["z"].min() >= 0)
            rec(
                6,
                f"gate_activations reset_after={reset_after} go_backwards={gb}",
                ok,
                f"h vs layer={d:.2e} h vs numpy={dn:.2e} keys={sorted(g)}",
            )
            # with initial_state
            g2 = layer.gate_activations(x, initial_state=h0)
            seq2 = ops.convert_to_numpy(
                layer(ops.convert_to_tensor(x), initial_state=[ops.convert_to_tensor(h0)])
            )
            seq2 = seq2[:, ::-1] if gb else seq2
            d2 = maxdiff(g2["h"], seq2)
            rec(
                6,
                f"gate_activations(initial_state) reset_after={reset_after} go_backwards={gb}",
                d2 < TOL,
                f"h vs layer={d2:.2e}",
            )
    # gate_activations on an unbuilt layer
    layer = skl.GRU(UNITS)
    g = layer.gate_activations(x)
    rec(6, "gate_activations on unbuilt layer", g["h"].shape == (B, T, UNITS), str(g["h"].shape))


def check7():
    rng = np.random.default_rng(6)
    Bs, Ts, Fs, Us = 64, 98, 40, 128
    xr = rng.normal(size=(Bs, Ts, Fs)).astype("float32")
    yr = rng.integers(0, 3, size=(Bs,))
    contenders = {
        "seqkit GRU": lambda: skl.GRU(Us),
        "keras GRU(reset_after=False)": lambda: keras.layers.GRU(Us, reset_after=False),
        "keras GRU(reset_after=True)": lambda: keras.layers.GRU(Us, reset_after=True),
    }
    models = {}
    for name, fn in contenders.items():
        inp = keras.Input((Ts, Fs))
        m = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(fn()(inp)))
        m.compile(
            "adam",
            "sparse_categorical_crossentropy",
            **({"jit_compile": True} if SPEED_COMPILE else {}),
        )
        for _ in range(3 if SPEED_COMPILE else 2):  # warm-up (compilation)
            m.train_on_batch(xr, yr)
        models[name] = m
    times = {k: [] for k in models}
    for _ in range(3):
        for name, m in models.items():
            for _ in range(5):
                t0 = time.perf_counter()
                m.train_on_batch(xr, yr)
                times[name].append((time.perf_counter() - t0) * 1e3)
    med = {k: float(np.median(v)) for k, v in times.items()}
    base = med["seqkit GRU"]
    for k, v in med.items():
        rec(
            7,
            f"speed {k}",
            True,
            f"median {v:.1f} ms/step  ratio to seqkit={v / base:.2f}  "
            f"(min {min(times[k]):.1f}, max {max(times[k]):.1f})",
        )
    m = models["seqkit GRU"]
    print(f"    (train step compiled: jit_compile={m.jit_compile} run_eagerly={m.run_eagerly})")


def _model_pair(reset_after, steps=7, features=5):
    """Masking -> GRU(6, sequences) -> GRU(4, go_backwards) -> Dense(2), seqkit's and Keras'."""
    models = []
    for make in (skl.GRU, keras.layers.GRU):
        keras.utils.set_random_seed(0)
        inp = keras.Input((steps, features))
        y = keras.layers.Masking(0.0)(inp)
        y = make(6, reset_after=reset_after, return_sequences=True)(y)
        y = make(4, reset_after=reset_after, go_backwards=True)(y)
        models.append(keras.Model(inp, keras.layers.Dense(2)(y)))
    models[1].set_weights(models[0].get_weights())
    return models


def _padded_batch(seed=20):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(8, 7, 5)).astype("float32")
    x[2, 4:] = 0.0  # right padding
    x[3, :3] = 0.0  # left padding
    return x, rng.normal(size=(8, 2)).astype("float32")


def _train(model, x, y, **compile_kw):
    # SGD: Adam's first steps would magnify float32 rounding in near-zero gradients.
    model.compile(keras.optimizers.SGD(0.5), "mse", **compile_kw)
    losses = [float(np.asarray(model.train_on_batch(x, y))) for _ in range(3)]
    return model.get_weights(), losses


def check8():
    x, y = _padded_batch()
    for reset_after in (False, True):
        for tag, ckw in (("eager", {"run_eagerly": True}), ("compiled", {"jit_compile": True})):
            ours, theirs = _model_pair(reset_after)
            w_ours, l_ours = _train(ours, x, y, **ckw)
            w_theirs, l_theirs = _train(theirs, x, y, **ckw)
            dw = max(maxdiff(a, b) for a, b in zip(w_ours, w_theirs))
            moved = max(
                maxdiff(a, b) for a, b in zip(w_ours, _model_pair(reset_after)[0].get_weights())
            )
            rec(
                8,
                f"3 SGD steps == keras.layers.GRU, reset_after={reset_after}, {tag}",
                dw < 1e-5 and moved > 1e-2 and l_ours[-1] < l_ours[0],
                f"weights max diff={dw:.2e} (weights moved {moved:.2f}) "
                f"loss={[f'{v:.5f}' for v in l_ours]} keras={[f'{v:.5f}' for v in l_theirs]}",
            )


REFERENCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gru_tf_reference.npz")


def _reference_values():
    """Outputs (with masks, go_backwards, initial state) and weights after 3 SGD steps."""
    rng = np.random.default_rng(30)
    x = rng.normal(size=(B, T, F)).astype("float32")
    h0 = rng.normal(size=(B, UNITS)).astype("float32")
    mask = np.arange(T)[None, :] < np.array([7, 5, 3, 1])[:, None]
    out = {}
    for reset_after in (False, True):
        w = rand_weights(rng, F, UNITS, reset_after)
        for gb in (False, True):
            layer = skl.GRU(
                UNITS, return_sequences=True, return_state=True, go_backwards=gb,
                reset_after=reset_after,
            )  # fmt: skip
            layer.build((B, T, F))
            layer.set_weights(w)
            seq, st = layer(
                ops.convert_to_tensor(x),
                mask=ops.convert_to_tensor(mask),
                initial_state=[ops.convert_to_tensor(h0)],
            )
            key = f"ra{int(reset_after)}_gb{int(gb)}"
            out[f"{key}_seq"] = ops.convert_to_numpy(seq)
            out[f"{key}_state"] = ops.convert_to_numpy(st)
        xt, yt = _padded_batch(31)
        model = _model_pair(reset_after)[0]
        # Initial weights from numpy: each backend's own random initialisers differ.
        model.set_weights(
            [rng.normal(0.0, 0.4, wt.shape).astype("float32") for wt in model.get_weights()]
        )
        weights, losses = _train(model, xt, yt)
        for i, wt in enumerate(weights):
            out[f"ra{int(reset_after)}_trained_{i}"] = wt
        out[f"ra{int(reset_after)}_losses"] = np.array(losses)
    return out


def check9():
    values = _reference_values()
    if WRITE_REFERENCE:
        if keras.backend.backend() != "tensorflow":
            rec(9, "--write-reference needs the TensorFlow backend", False)
            return
        np.savez_compressed(REFERENCE, **values)
        rec(9, f"reference written to {REFERENCE}", True, f"{len(values)} arrays")
        return
    if not os.path.exists(REFERENCE):
        rec(9, f"reference file {REFERENCE} missing", False)
        return
    ref = np.load(REFERENCE)
    worst = {}
    for key, value in values.items():
        group = "outputs" if key.endswith(("_seq", "_state")) else "training"
        worst[group] = max(worst.get(group, 0.0), maxdiff(value, ref[key]))
    ok = set(ref.files) == set(values) and all(v < 1e-4 for v in worst.values())
    detail = " ".join(f"{k} max diff={v:.2e}" for k, v in worst.items())
    rec(9, f"same as the TensorFlow backend ({len(values)} arrays, tolerance 1e-4)", ok, detail)


if __name__ == "__main__":
    ONLY = set()
    if "--only" in sys.argv:
        ONLY = {int(v) for v in sys.argv[sys.argv.index("--only") + 1].split(",")}
    SPEED_COMPILE = "--speed-compile" in sys.argv  # check 7 with jit_compile=True
    WRITE_REFERENCE = "--write-reference" in sys.argv
    if "--no-speed" in sys.argv:
        ONLY = (ONLY or {1, 2, 3, 4, 5, 6, 7, 8, 9}) - {7}
    vers = {
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "numpy": np.__version__,
        "python": sys.version.split()[0],
    }
    if keras.backend.backend() == "jax":
        import jax
        import jaxlib

        vers.update(jax=jax.__version__, jaxlib=jaxlib.__version__, jax_devices=str(jax.devices()))
    if keras.backend.backend() == "torch":
        import torch

        vers.update(torch=torch.__version__, torch_threads=torch.get_num_threads())
    vers["seqkit"] = f"{seqkit.__version__} from {os.path.dirname(skl.__file__)}"
    print("VERSIONS", vers, flush=True)
    keras.utils.set_random_seed(0)
    for num, fn in (
        (1, check1),
        (2, check2),
        (3, check3),
        (4, check4),
        (5, check5),
        (6, check6),
        (8, check8),
        (9, check9),
        (7, check7),
    ):
        run_check(num, fn)
    n_fail = sum(not r[2] for r in RESULTS)
    print(f"SUMMARY backend={keras.backend.backend()} checks={len(RESULTS)} failed={n_fail}")
    for c, name, ok, detail in RESULTS:
        if not ok:
            print(f"  FAILED {c}: {name} {detail}")
    sys.exit(1 if n_fail else 0)
