"""``seqkit explain``: the documents' worked example step by step, and gate plots of a trained GRU."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from .errors import RunError
from .layers import GRU
from .runs import Run, write_run_file
from .worked_example import WORKED_EXAMPLE, inputs, keras_weights, matrices

# What the documents print for step 1, where it differs from their own equations.
DOCUMENT_PRINTS = {"z": [0.655, 0.710], "hh": [0.45, 0.66], "h": [0.155, 0.191]}
GATE_NAMES = {"r": "reset gate r", "z": "update gate z", "hh": "candidate h~", "h": "state h"}


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def _fmt(v):
    return "[" + ", ".join(f"{x:.4f}" for x in np.ravel(v)) + "]"


def _sum_line(W, U, b, x, h, label):
    """Per unit: 'W x = a*b + ... = s; U h = ...; + b = pre' for one gate."""
    lines = []
    for i in range(W.shape[0]):
        wx = " + ".join(f"{w:.1f}*{xv:.4g}" for w, xv in zip(W[i], x))
        uh = " + ".join(f"{u:.1f}*{hv:.4f}" for u, hv in zip(U[i], h))
        pre = W[i] @ x + U[i] @ h + b[i]
        lines.append(
            f"    {label}[{i}]: W.x = {wx} = {W[i] @ x:.4f};  U.h = {uh} = {U[i] @ h:.4f};"
            f"  + b = {b[i]:.2f}  ->  pre-activation {pre:.4f}"
        )
    return lines


def worked_example_steps():
    """The example computed in float64 with numpy: a list of dicts (x, h_prev, r, z, hh, h)."""
    ex = WORKED_EXAMPLE
    m = matrices()
    h = np.asarray(ex["h0"], dtype=np.float64)
    steps = []
    for x in np.asarray(ex["inputs"], dtype=np.float64):
        r = _sigmoid(m["W_r"] @ x + m["U_r"] @ h + m["b_r"])
        z = _sigmoid(m["W_z"] @ x + m["U_z"] @ h + m["b_z"])
        hh = np.tanh(m["W_h"] @ x + m["U_h"] @ (r * h) + m["b_h"])
        new_h = z * h + (1 - z) * hh
        steps.append({"x": x, "h_prev": h, "r": r, "z": z, "hh": hh, "h": new_h})
        h = new_h
    return steps


def worked_example_text(check_layer: bool = True) -> str:
    ex = WORKED_EXAMPLE
    m = matrices()
    out = [
        f'The documents\' worked example: "{ex["sentence"]}", hidden size {ex["units"]}, h0 = 0.',
        "Equations (reset gate before the recurrent product):",
        "  r = s(W_r x + U_r h + b_r);  z = s(W_z x + U_z h + b_z)",
        "  h~ = tanh(W_h x + U_h (r * h) + b_h);  h' = z * h + (1 - z) * h~",
        "",
    ]
    steps = worked_example_steps()
    for t, (token, s) in enumerate(zip(ex["tokens"], steps), start=1):
        out.append(f'Step {t}: x{t} = {_fmt(s["x"])} ("{token}"), h{t - 1} = {_fmt(s["h_prev"])}')
        out += _sum_line(m["W_r"], m["U_r"], m["b_r"], s["x"], s["h_prev"], "r")
        out.append(f"  r{t} = sigmoid(...) = {_fmt(s['r'])}")
        out += _sum_line(m["W_z"], m["U_z"], m["b_z"], s["x"], s["h_prev"], "z")
        out.append(f"  z{t} = sigmoid(...) = {_fmt(s['z'])}")
        out.append(f"  r{t} * h{t - 1} = {_fmt(s['r'] * s['h_prev'])}")
        out += _sum_line(m["W_h"], m["U_h"], m["b_h"], s["x"], s["r"] * s["h_prev"], "h~")
        out.append(f"  h~{t} = tanh(...) = {_fmt(s['hh'])}")
        out.append(
            f"  h{t} = z{t} * h{t - 1} + (1 - z{t}) * h~{t} = {_fmt(s['z'] * s['h_prev'])} + "
            f"{_fmt((1 - s['z']) * s['hh'])} = {_fmt(s['h'])}"
        )
        out.append("")
    out.append("Where the documents' printed numbers differ from their equations (step 1):")
    first = steps[0]
    for key, printed in DOCUMENT_PRINTS.items():
        diff = np.max(np.abs(np.asarray(printed) - first[key]))
        if diff > 5e-3:
            out.append(
                f"  {GATE_NAMES[key]}: printed {printed}, the equations give {_fmt(first[key])} "
                f"(off by up to {diff:.3f}) -- an arithmetic slip in the text."
            )
    if check_layer:
        out.append("")
        out.append(_layer_check(steps))
    return "\n".join(out)


def _layer_check(steps) -> str:

    layer = GRU(WORKED_EXAMPLE["units"], return_sequences=True)
    layer.build((1, 3, 3))
    layer.set_weights(keras_weights())
    got = np.asarray(layer(inputs()))[0]
    want = np.stack([s["h"] for s in steps])
    return (
        f"seqkit.layers.GRU with these weights (Keras layout, gate order z, r, h) gives "
        f"h3 = {_fmt(got[-1])}; largest difference from the numpy steps above over all "
        f"steps: {np.max(np.abs(got - want)):.1e}."
    )


# -- gate plots of a trained model ---------------------------------------------------------------


def find_gru(model, layer_name=None):
    """Return the first seqkit GRU in ``model`` (or the one named), unwrapping Bidirectional."""

    for layer in model.layers:
        inner = layer.forward_layer if isinstance(layer, keras.layers.Bidirectional) else layer
        if isinstance(inner, GRU) and (layer_name in (None, layer.name, inner.name)):
            return layer, inner
    names = ", ".join(layer.name for layer in model.layers)
    what = f"named '{layer_name}'" if layer_name else "(seqkit's `gru`)"
    raise RunError(f"The model has no GRU layer {what}; its layers: {names}.")


def gate_activations_for(run, audio_path, layer_name=None):
    """Features of ``audio_path``, the GRU's gate activations over them, and the scores."""

    x = run.pipeline(audio_path)[None]
    model = run.model
    outer, gru = find_gru(model, layer_name)
    feed = keras.Model(model.inputs, outer.input)
    gru_in = np.asarray(feed.predict(x, verbose=0))
    gates = gru.gate_activations(gru_in)
    scores = np.asarray(model.predict(x, verbose=0))[0]
    return x[0], gates, scores, gru.name


def plot_gates(run_dir, audio, out=None, layer_name=None) -> Path:
    import matplotlib  # matplotlib (0.35-0.6 s): only when a figure is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # matplotlib (0.35-0.6 s): only when a figure is drawn

    run = Run(run_dir)
    feats, gates, scores, name = gate_activations_for(run, audio, layer_name)
    # Speech Commands reuses clip names across labels: the folder name keeps them apart.
    out = Path(out) if out else run.path / f"gates-{Path(audio).parent.name}-{Path(audio).stem}.png"
    top = int(np.argmax(scores))
    fig, axes = plt.subplots(5, 1, figsize=(10, 12), sharex=True)
    im = axes[0].imshow(feats.T, aspect="auto", origin="lower", cmap="magma")
    fig.colorbar(im, ax=axes[0], pad=0.01)
    axes[0].set_ylabel("feature")
    axes[0].set_title(
        f"{Path(audio).name}: predicted '{run.labels[top]}' ({scores[top]:.2f}); layer {name}"
    )
    for ax, key in zip(axes[1:], ("r", "z", "hh", "h")):
        vmin = -1.0 if key in ("hh", "h") else 0.0
        im = ax.imshow(
            gates[key][0].T,
            aspect="auto",
            origin="lower",
            vmin=vmin,
            vmax=1.0,
            cmap="coolwarm" if vmin < 0 else "viridis",
        )
        ax.set_ylabel(f"{GATE_NAMES[key]}\nunit")
        fig.colorbar(im, ax=ax, pad=0.01)
    axes[-1].set_xlabel("frame")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.resolve().parent == run.path.resolve():  # a picture of the run: recorded in run.json
        write_run_file(run.path, out.name, lambda p: fig.savefig(p, dpi=80, format="png"))
    else:
        fig.savefig(out, dpi=80)
    plt.close(fig)
    return out
