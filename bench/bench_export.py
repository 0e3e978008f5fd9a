"""Size and latency per frame of a run's exports, against the Keras model, side by side in one run.

    python bench/bench_export.py RUN                 # a run folder, e.g. from recipes/quickstart.yaml
    python bench/bench_export.py RUN --rounds 7 --seconds 2

Exports are written to a temporary folder (never into RUN): the whole-clip and streaming
TFLite models, float and int8 (calibrated on RUN's training split), and the streaming
``.keras`` model. Batch 1, one thread per interpreter, on this machine's CPU:

* streaming models: the time of one step (one feature frame in, scores and states out), with
  the state fed back; TFLite through the signature runner that ``load_exported`` uses, and
  through ``set_tensor`` / ``invoke`` / ``get_tensor`` alone (what an app on a device pays);
  Keras through ``model.predict``, a direct (eager) call of the model, and a ``tf.function``
  of that call;
* whole-clip models: the time of one clip, divided by its frames for the per-frame column.

The variants take turns, each running frames (or clips) for ``--seconds`` per turn, for
``--rounds`` rounds; the figure is the median over turns. Ratios are variant / Keras
``predict`` on one frame (below 1 means faster).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402

from seqkit.export import export_model, load_exported, streaming_model, training_splits
from seqkit.export.load import _interpreter  # noqa: E402
from seqkit.runs import Run  # noqa: E402


def _raw_tflite_step(path: Path, frame0: np.ndarray):
    """A step function on the bare interpreter: set_tensor / invoke / get_tensor."""
    exported = load_exported(path)  # names -> tensor indices, from its signature runner
    runner = exported.interpreter.get_signature_runner()
    ins = runner.get_input_details()
    outs = runner.get_output_details()
    interp = _interpreter(str(path))  # the same file: the same indices
    interp.allocate_tensors()
    frame_idx = ins["frame"]["index"]
    state_pairs = [(ins[n]["index"], outs["next_" + n]["index"]) for n in exported.state_names]
    score_idx = outs[exported.output_name]["index"]
    for n in exported.state_names:
        interp.set_tensor(ins[n]["index"], np.zeros(ins[n]["shape"], np.float32))

    def step(frame):
        interp.set_tensor(frame_idx, frame)
        interp.invoke()
        for i, o in state_pairs:  # feed the new state back
            interp.set_tensor(i, interp.get_tensor(o))
        return interp.get_tensor(score_idx)

    step(frame0)
    return step


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", help="a run folder (seqkit train's output)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.0, help="time per turn")
    args = parser.parse_args(argv)

    import keras

    warnings.simplefilter("ignore")
    run = Run(args.run)
    model = run.model
    splits = training_splits(run.recipe)
    train_x = splits["train"][0]
    clip = train_x[:1]
    steps = clip.shape[1]
    frames = clip[0, :, :][:, None, :].astype(np.float32)  # (T, 1, F)
    tmp = Path(tempfile.mkdtemp(prefix="bench_export_"))

    files, sizes = {}, {"model.keras (the run's, with optimizer state)": None}
    sizes["model.keras (the run's, with optimizer state)"] = (
        (run.path / "model.keras").stat().st_size
    )
    for label, fmt, streaming in [
        ("keras whole clip", "keras", False),
        ("keras streaming", "keras", True),
        ("tflite float whole clip", "tflite", False),
        ("tflite int8 whole clip", "tflite_int8", False),
        ("tflite float streaming", "tflite", True),
        ("tflite int8 streaming", "tflite_int8", True),
    ]:
        path = tmp / f"{label.replace(' ', '_')}{'.keras' if fmt == 'keras' else '.tflite'}"
        result = export_model(model, fmt, path, streaming, calibration=train_x)
        files[label], sizes[label] = path, result.size
        if result.notes:
            print(f"{label}: {' '.join(result.notes)}", file=sys.stderr)

    step_model = streaming_model(model)
    state_names = [t.name for t in step_model.inputs[1:]]

    def keras_step(call):  # one frame, the state fed back
        box = {
            "t": 0,
            "state": [np.zeros((1, t.shape[-1]), np.float32) for t in step_model.inputs[1:]],
        }

        def unit():
            out = call([frames[box["t"] % steps], *box["state"]])
            box["state"] = [np.asarray(out["next_" + n]) for n in state_names]
            box["t"] += 1

        return unit

    def tflite_step(path):  # one frame through load_exported's step()
        exported, box = load_exported(path), {"t": 0, "state": None}

        def unit():
            _, box["state"] = exported.step(frames[box["t"] % steps], box["state"])
            box["t"] += 1

        return unit

    def tflite_invoke(path):  # one frame through the bare interpreter
        step, box = _raw_tflite_step(path, frames[0]), {"t": 0}

        def unit():
            step(frames[box["t"] % steps])
            box["t"] += 1

        return unit

    import tensorflow as tf

    traced = tf.function(lambda xs: step_model(xs, training=False), reduce_retracing=True)
    whole_float = load_exported(files["tflite float whole clip"])
    whole_int8 = load_exported(files["tflite int8 whole clip"])
    variants = {  # name: (one unit of work, frames per unit)
        "keras streaming, predict": (keras_step(lambda x: step_model.predict(x, verbose=0)), 1),
        "keras streaming, call": (keras_step(lambda x: step_model(x, training=False)), 1),
        "keras streaming, tf.function": (keras_step(traced), 1),
        "tflite float streaming, step()": (tflite_step(files["tflite float streaming"]), 1),
        "tflite int8 streaming, step()": (tflite_step(files["tflite int8 streaming"]), 1),
        "tflite float streaming, invoke": (tflite_invoke(files["tflite float streaming"]), 1),
        "tflite int8 streaming, invoke": (tflite_invoke(files["tflite int8 streaming"]), 1),
        "keras whole clip, predict": (lambda: model.predict(clip, verbose=0), steps),
        "keras whole clip, call": (lambda: model(clip, training=False), steps),
        "tflite float whole clip, predict()": (lambda: whole_float.predict(clip), steps),
        "tflite int8 whole clip, predict()": (lambda: whole_int8.predict(clip), steps),
    }
    for unit, _ in variants.values():  # warm-up: tracing, compilation, interpreter allocation
        for _ in range(3):
            unit()
    times = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, (unit, per) in variants.items():
            done, t0 = 0, time.perf_counter()
            while True:
                unit()
                done += per
                elapsed = time.perf_counter() - t0
                if elapsed >= args.seconds:
                    break
            times[name].append(elapsed / done)

    print(
        f"# {platform.python_version()}, keras {keras.__version__}, "
        f"{keras.backend.backend()}, {os.cpu_count()} CPUs; run {run.path.name}: "
        f"{steps} frames x {clip.shape[2]} features per clip, {model.count_params():,} parameters"
    )
    print("\n| file | bytes |\n|---|---|")
    for label, size in sizes.items():
        print(f"| {label} | {size:,} |")
    ref = statistics.median(times["keras streaming, predict"])
    print(
        f"\n| variant | us / frame | ms / clip ({steps} frames) | / keras predict on one frame |"
        "\n|---|---|---|---|"
    )
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"| {name} | {med * 1e6:.1f} | {med * steps * 1e3:.2f} | {med / ref:.3g} |")


if __name__ == "__main__":
    main()
