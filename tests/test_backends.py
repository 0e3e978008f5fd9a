"""The backend matrix (issue 6, "Three backends"): seqkit on whatever ``KERAS_BACKEND`` is set.

Run it once per backend (``scripts/test_backends.sh`` does, for jax and torch)::

    KERAS_BACKEND=jax   pytest -q tests/test_backends.py tests/test_gru.py
    KERAS_BACKEND=torch pytest -q tests/test_backends.py tests/test_gru.py
    pytest -q tests/test_backends.py                     # tensorflow, the default

The backend is decided when this module is imported (Keras reads ``KERAS_BACKEND`` once); if
that backend's package is not installed, every test here is skipped with the reason.

What is checked, and against what:

* the GRU layer's outputs and one training step's gradients against arrays computed on the
  TensorFlow backend by Keras' own ``keras.layers.GRU`` (the golden arrays below; regenerate
  with ``KERAS_BACKEND=tensorflow python tests/test_backends.py``), to 1e-5; the golden outputs
  are also checked against a float64 NumPy transcription of the equations;
* a model with seqkit's GRU saved as ``.keras`` and loaded again, here and (on JAX and torch)
  in a fresh process on the TensorFlow backend, which ``seqkit export`` needs;
* one short keyword-spotting recipe end to end: ``seqkit train`` in a process killed by
  SIGKILL during epoch 2, ``seqkit train --resume``, which must end with exactly the weights
  and metrics of an uninterrupted run on the same backend; the run folder's files and its
  TensorBoard scalars (read back from the event files, equal to ``history.csv``); and
  ``seqkit evaluate RUN``, which must give the numbers training wrote;
* a tiny polyphonic music run and ``seqkit generate`` (same seed, same files), with independent
  keys and with the NADE output; the NADE layer against its float64 key-by-key reference.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import importlib.util  # noqa: E402
import json  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

BACKEND = os.environ.get("KERAS_BACKEND", "tensorflow")
PACKAGE = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
if BACKEND not in PACKAGE:
    pytest.skip(
        f"KERAS_BACKEND={BACKEND!r}: seqkit is tested on {', '.join(PACKAGE)}",
        allow_module_level=True,
    )
if importlib.util.find_spec(PACKAGE[BACKEND]) is None:
    pytest.skip(
        f"KERAS_BACKEND={BACKEND} but the '{PACKAGE[BACKEND]}' package is not installed "
        "(bash scripts/test_backends.sh installs it)",
        allow_module_level=True,
    )

import keras  # noqa: E402
from conftest import numpy_gru, tiny_recipe, write_recipe  # noqa: E402

import seqkit  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ATOL = 1e-5

# --------------------------------------------------------------------------------------------
# Inputs and weights of the golden arrays: a seeded NumPy generator (PCG64, the same numbers
# on every platform), drawn in this order.
# --------------------------------------------------------------------------------------------
B, T, F, U = 2, 5, 3, 3


def golden_inputs():
    rng = np.random.default_rng(20261128)
    x = rng.normal(0, 1, (B, T, F)).astype("float32")
    kernel = rng.normal(0, 0.5, (F, 3 * U)).astype("float32")
    recurrent = rng.normal(0, 0.5, (U, 3 * U)).astype("float32")
    bias = rng.normal(0, 0.3, (3 * U,)).astype("float32")
    bias_after = rng.normal(0, 0.3, (2, 3 * U)).astype("float32")
    target = rng.normal(0, 1, (B, T, U)).astype("float32")
    return x, kernel, recurrent, bias, bias_after, target


MASK = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], bool)  # the 2nd sequence is 3 steps long

# name: (reset_after, go_backwards, masked)
OUTPUT_CASES = {
    "reset_before": (False, False, False),
    "reset_after_backwards": (True, True, False),
    "reset_before_masked": (False, False, True),
}
GRADIENT_CASES = {"reset_before_masked": (False, False, True), "reset_after": (True, False, False)}

# Produced on 2026-11-28 with `KERAS_BACKEND=tensorflow python tests/test_backends.py`
# (TensorFlow 2.21 CPU, Keras 3.15.1): keras.layers.GRU(3, return_sequences=True,
# reset_after=...) on golden_inputs(). Outputs (batch, time, units), rounded to 7 decimals.
# fmt: off
GOLDEN_OUTPUTS = {
    "reset_before": [
        [
            [-0.2155028, -0.1055916, -0.045732],
            [-0.2868681, -0.0609858, -0.1367011],
            [-0.4540624, -0.2010148, -0.1841734],
            [-0.8211192, -0.1372928, -0.2042464],
            [-0.6040843, -0.358748, 0.7173442],
        ],
        [
            [0.164446, -0.208637, 0.292287],
            [0.3246278, -0.3464374, 0.5367215],
            [-0.5753492, -0.0965458, 0.4628386],
            [-0.1188926, -0.3324411, 0.7088379],
            [-0.17305, -0.2843665, 0.4447389],
        ],
    ],
    "reset_after_backwards": [
        [
            [0.4656603, -0.2678444, 0.7952753],
            [-0.9460893, -0.1023294, 0.7594137],
            [-0.8420604, -0.2038845, 0.4949365],
            [-0.5757285, 0.0962965, 0.1929352],
            [-0.5099975, 0.0329207, 0.0567476],
        ],
        [
            [0.1359181, 0.0130246, 0.030558],
            [0.6693556, -0.3121266, 0.7426113],
            [-0.8043499, 0.1563892, 0.6339791],
            [-0.3121051, -0.0761613, 0.6620225],
            [0.1595164, -0.1386441, 0.5619664],
        ],
    ],
    "reset_before_masked": [
        [
            [-0.2155028, -0.1055916, -0.045732],
            [-0.2868681, -0.0609858, -0.1367011],
            [-0.4540624, -0.2010148, -0.1841734],
            [-0.8211192, -0.1372928, -0.2042464],
            [-0.6040843, -0.358748, 0.7173442],
        ],
        [
            [0.164446, -0.208637, 0.292287],
            [0.3246278, -0.3464374, 0.5367215],
            [-0.5753492, -0.0965458, 0.4628386],
            [-0.5753492, -0.0965458, 0.4628386],
            [-0.5753492, -0.0965458, 0.4628386],
        ],
    ],
}
# fmt: on


# The gradients of mean((GRU(x) - target)^2) in kernel, recurrent_kernel and bias, taken on the
# TensorFlow backend the way training takes them: one train_on_batch with SGD(learning_rate=1),
# gradient = weights before - weights after. Rounded to 7 decimals.
# fmt: off
GOLDEN_GRADIENTS = {
    "reset_before_masked": {
        "kernel": [
            [-0.0855253, 0.0251148, 0.0256971, -0.0007471, -0.0021273, 0.0002468, -0.0289068,
             -0.0413964, 0.0114075],
            [0.0234614, -0.0136626, -0.0096349, -0.0010089, 0.0003934, -0.0003752, 0.0249575,
             -0.0219159, 0.0050754],
            [-0.0747956, 0.0483345, 0.0072347, 9.04e-05, -0.0013934, 0.000261, -0.0292786,
             -0.0106689, -0.0631396],
        ],
        "recurrent_kernel": [
            [0.0027713, 0.016387, -0.0062889, 0.0025782, 0.0007429, 0.0003195, 0.0034869, 0.0281913,
             -0.0042987],
            [0.0106774, 0.0006946, 0.0013887, 0.0004659, 0.0007557, -0.0003225, 0.0065196,
             0.0057361, -0.0040137],
            [-0.0057721, 0.0053222, -0.0055393, 0.0009496, -0.0002108, 0.0005214, -0.0033171,
             0.0130073, 0.0052803],
        ],
        "bias": [-0.0437191, -0.0242559, -0.0057191, -0.004712, -0.0045409, 0.0010231, -0.0971141,
         -0.1652801, 0.1294198],
    },
    "reset_after": {
        "kernel": [
            [0.0222872, -0.0069389, 0.0303963, -0.0009039, 0.0035356, 0.0001341, -0.0272173,
             -0.0412704, -0.0552748],
            [-0.0611953, 0.030914, -0.0097637, 0.000241, -0.0015132, 0.0003872, 0.0224152,
             0.0100996, 0.1123319],
            [-0.0216298, 0.0209902, 0.0223672, 7.71e-05, 0.0017916, -0.0024526, -0.0450367,
             -0.0133222, -0.0487607],
        ],
        "recurrent_kernel": [
            [0.0320724, -0.0161093, -0.0014851, 0.000575, -0.0018776, 0.0002914, 0.0091905,
             0.0402671, -0.0328194],
            [-0.0047947, 0.0010478, -0.0038881, -0.0007444, -5.42e-05, -0.0002259, 0.0063956,
             -0.0002175, -0.0008804],
            [-0.0155533, 0.0028614, 0.0083814, 0.0018984, -0.0023478, 0.0005803, -0.0028466,
             0.0272432, 0.0558236],
        ],
        "bias": [
            [-0.0390518, 0.0067948, 0.0103242, 0.0032828, -7.73e-05, 0.0048255, -0.0851721,
             -0.0490847, 0.2280895],
            [-0.0390518, 0.0067947, 0.0103242, 0.0032828, -7.73e-05, 0.0048255, -0.0469666,
             -0.0197892, 0.1416521],
        ],
    },
}
# fmt: on


def _gru(cls, reset_after, go_backwards):
    x, kernel, recurrent, bias, bias_after, _ = golden_inputs()
    layer = cls(U, return_sequences=True, reset_after=reset_after, go_backwards=go_backwards)
    layer.build((B, T, F))
    layer.set_weights([kernel, recurrent, bias_after if reset_after else bias])
    return layer


def _outputs(cls, reset_after, go_backwards, masked):
    x = golden_inputs()[0]
    layer = _gru(cls, reset_after, go_backwards)
    out = layer(x, mask=MASK if masked else None)
    return keras.ops.convert_to_numpy(out)


def _gradients(cls, reset_after, go_backwards, masked):
    x, *_, target = golden_inputs()
    if masked:  # padded steps are zeros, and a Masking layer turns them into the mask
        x = np.where(MASK[:, :, None], x, 0.0).astype("float32")
    layer = _gru(cls, reset_after, go_backwards)
    inputs = keras.Input((T, F))
    hidden = keras.layers.Masking(0.0)(inputs) if masked else inputs
    model = keras.Model(inputs, layer(hidden))
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0), loss="mse")
    before = [np.array(w) for w in layer.get_weights()]
    model.train_on_batch(x, target)
    names = ("kernel", "recurrent_kernel", "bias")
    return {n: b - a for n, b, a in zip(names, before, layer.get_weights())}


def _numpy_gru(reset_after, go_backwards, masked):
    """The equations in float64 (reset gate before the recurrent product, or after it);
    a masked step keeps the state and repeats the last output, as Keras does."""
    x, kernel, recurrent, bias, bias_after, _ = golden_inputs()
    h = numpy_gru(
        x, kernel, recurrent, bias_after if reset_after else bias, reset_after=reset_after,
        go_backwards=go_backwards, mask=MASK if masked else None,
    )["h"]  # fmt: skip
    return h[:, ::-1] if go_backwards else h  # outputs in the order the layer produces them


# --------------------------------------------------------------------------------------------
# the backend
# --------------------------------------------------------------------------------------------
def test_keras_runs_on_the_requested_backend():
    from seqkit.runs import versions

    assert keras.backend.backend() == BACKEND
    assert versions()["keras_backend"] == BACKEND


# --------------------------------------------------------------------------------------------
# the GRU layer against the TensorFlow backend's numbers
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", list(OUTPUT_CASES))
def test_golden_outputs_are_the_equations(case):
    np.testing.assert_allclose(_numpy_gru(*OUTPUT_CASES[case]), GOLDEN_OUTPUTS[case], atol=2e-7)


@pytest.mark.parametrize("case", list(OUTPUT_CASES))
def test_gru_outputs_match_tensorflow(case):
    out = _outputs(seqkit.GRU, *OUTPUT_CASES[case])
    np.testing.assert_allclose(out, np.array(GOLDEN_OUTPUTS[case]), rtol=0, atol=ATOL)


@pytest.mark.parametrize("case", list(GRADIENT_CASES))
def test_gru_training_step_gradients_match_tensorflow(case):
    grads = _gradients(seqkit.GRU, *GRADIENT_CASES[case])
    for name, want in GOLDEN_GRADIENTS[case].items():
        np.testing.assert_allclose(grads[name], np.array(want), rtol=0, atol=ATOL, err_msg=name)


LOAD_SCRIPT = """
import json, sys
import numpy as np
from seqkit.runs import load_model
import keras
m = load_model(sys.argv[1])
np.save(sys.argv[3], m.predict(np.load(sys.argv[2]), verbose=0))
print(json.dumps({"backend": keras.backend.backend(), "layer": type(m.layers[1]).__module__}))
"""


def test_model_saves_and_loads(tmp_path):
    from seqkit.runs import load_model

    x = golden_inputs()[0]
    inputs = keras.Input((T, F))
    hidden = _gru(seqkit.GRU, False, False)(inputs)
    dense = keras.layers.Dense(2, name="out")
    model = keras.Model(inputs, dense(hidden))
    dense.set_weights([np.linspace(-1, 1, U * 2).reshape(U, 2).astype("float32"),
                       np.array([0.1, -0.2], "float32")])  # fmt: skip
    expected = model.predict(x, verbose=0)
    np.testing.assert_allclose(
        expected[..., 0], np.array(GOLDEN_OUTPUTS["reset_before"]) @ np.linspace(-1, 1, 6)[::2]
        + 0.1, atol=ATOL,
    )  # fmt: skip
    path = tmp_path / "m.keras"
    model.save(path)
    again = load_model(path)
    assert isinstance(again.layers[1], seqkit.GRU)
    np.testing.assert_array_equal(again.predict(x, verbose=0), expected)
    if BACKEND == "tensorflow":
        return
    # A run trained here must be usable where TensorFlow is needed (seqkit export): load it
    # in a fresh process on the TensorFlow backend.
    np.save(tmp_path / "x.npy", x)
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, str(path), str(tmp_path / "x.npy"),
         str(tmp_path / "y.npy")],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info == {"backend": "tensorflow", "layer": "seqkit.layers"}
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, rtol=0, atol=1e-6)


# --------------------------------------------------------------------------------------------
# one short recipe end to end: train (killed, resumed), run folder, TensorBoard, evaluate
# --------------------------------------------------------------------------------------------
EPOCHS = 2


def _cli(*args):
    from click.testing import CliRunner

    from seqkit.cli import cli

    return CliRunner().invoke(cli, [str(a) for a in args])


def _state(run):
    try:
        return json.loads((run / "checkpoint" / "state.json").read_text())["progress"]
    except (OSError, ValueError, KeyError):
        return None


@pytest.fixture(scope="module")
def kws(tmp_path_factory):
    """Two runs of one tiny recipe: ``ref`` trained uninterrupted (in this process), ``resumed``
    by ``seqkit train`` in a process killed with SIGKILL during epoch 2, then ``--resume``."""
    from seqkit.recipe import validate_dict
    from seqkit.training import train

    root = tmp_path_factory.mktemp("kws")
    mp = pytest.MonkeyPatch()
    mp.setenv("SEQKIT_CACHE", str(root / "cache"))
    doc = tiny_recipe(root / "data", epochs=EPOCHS, speakers=16)
    # Dropout on the way in and in the head: resumption must restore the random state too.
    doc["model"]["layers"] = [{"type": "gru", "units": 8, "dropout": 0.2}]
    doc["task"] = {"type": "kws", "dropout": 0.3}
    doc["train"].update(batch_size=4, checkpoint_every_steps=1)
    recipe = write_recipe(root / "r.yaml", doc)

    resumed = root / "resumed"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND=BACKEND)
    proc = subprocess.Popen(
        [sys.executable, "-m", "seqkit", "-q", "train", str(recipe), "--run-dir", str(resumed)],
        env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline, mid = time.time() + 600, False
    while time.time() < deadline and proc.poll() is None:
        s = _state(resumed)
        if s is not None and s["epoch"] == 1 and s["step"] >= 2:
            mid = True
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert mid, f"the run ended or stalled before it could be killed in epoch 2: {err[-2000:]}"
    killed_state = _state(resumed)
    done = subprocess.run(
        [sys.executable, "-m", "seqkit", "-q", "train", str(recipe), "--resume", str(resumed)],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]

    ref = train(validate_dict(doc), run_dir=root / "ref", verbose=0)
    yield {"ref": ref, "resumed": resumed, "killed_state": killed_state}
    mp.undo()


def test_recipe_run_folder_is_complete(kws):
    ref = kws["ref"]
    for name in ("run.json", "recipe.yaml", "data.json", "labels.txt", "model.keras",
                 "metrics.json", "history.csv"):  # fmt: skip
        assert (ref / name).is_file(), name
    info = json.loads((ref / "run.json").read_text())
    assert info["status"] == "completed"
    assert info["versions"]["keras_backend"] == BACKEND
    assert (ref / "labels.txt").read_text().split() == ["ai", "ia", "u", "noise"]
    metrics = json.loads((ref / "metrics.json").read_text())
    assert metrics["epochs_run"] == EPOCHS and metrics["task"] == "kws"
    for split in ("train", "validation", "test"):
        m = metrics[split]
        assert 0.0 <= m["accuracy"] <= 1.0 and np.isfinite(m["loss"])
        assert np.array(m["confusion_matrix"]).sum() == m["examples"] == metrics["examples"][split]
    rows = (ref / "history.csv").read_text().splitlines()
    assert rows[0].split(",")[:1] == ["epoch"] and len(rows) == 1 + EPOCHS


def _scalars(logdir):
    """{tag: [(step, value)]} of the scalar summaries in one TensorBoard log folder."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util.tensor_util import make_ndarray

    ea = EventAccumulator(str(logdir), size_guidance={"tensors": 0, "scalars": 0})
    ea.Reload()
    out = {}
    for tag in ea.Tags()["tensors"]:
        values = [(e.step, make_ndarray(e.tensor_proto)) for e in ea.Tensors(tag)]
        if all(v.ndim == 0 and v.dtype.kind == "f" for _, v in values):
            out[tag] = [(s, float(v)) for s, v in values]
    return out


def test_tensorboard_scalars_equal_the_history(kws):
    import csv

    ref = kws["ref"]
    history = list(csv.DictReader((ref / "history.csv").open()))
    train, val = _scalars(ref / "logs" / "train"), _scalars(ref / "logs" / "validation")
    expected = [
        (train, "epoch_loss", "loss"),
        (train, "epoch_accuracy", "accuracy"),
        (train, "epoch_learning_rate", "learning_rate"),
        (val, "epoch_loss", "val_loss"),
        (val, "epoch_accuracy", "val_accuracy"),
    ]
    for logs, tag, column in expected:
        assert [s for s, _ in logs[tag]] == list(range(EPOCHS)), tag
        np.testing.assert_allclose([v for _, v in logs[tag]],
                                   [float(row[column]) for row in history], rtol=1e-6,
                                   err_msg=tag)  # fmt: skip
    media = ref / "logs" / "validation_media"
    assert list(media.glob("events.out.tfevents.*")), "no confusion matrix / clips written"


def test_a_run_trained_here_exports_on_tensorflow(kws, tmp_path):
    """`seqkit export` needs TensorFlow: a run trained on JAX or torch (its model.keras names
    that backend's optimizer class) is opened on TensorFlow in a fresh process, without its
    optimizer, and exported; the export's check against the Keras model passes. The process
    cannot import this backend's package, as on a machine that has only TensorFlow."""
    block = tmp_path / "block"
    block.mkdir()
    if BACKEND != "tensorflow":  # (on TensorFlow: a plain export in a fresh process)
        (block / f"{PACKAGE[BACKEND]}.py").write_text(
            "raise ModuleNotFoundError('not on this machine')\n"
        )
    path = os.pathsep.join([str(block), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=path)
    out = tmp_path / "m.tflite"
    proc = subprocess.run(
        [sys.executable, "-m", "seqkit", "export", str(kws["ref"]), "--format", "tflite",
         "--streaming", "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    diff = float(proc.stdout.split("max |export - keras| ")[1].split()[0])
    assert diff <= 1e-5 and out.is_file()


def test_evaluate_gives_the_training_numbers(kws, tmp_path):
    import shutil

    ref = tmp_path / "run"  # a copy: evaluate adds to metrics.json
    shutil.copytree(kws["ref"], ref)
    trained = json.loads((ref / "metrics.json").read_text())["test"]
    result = _cli("evaluate", ref, "--split", "test", "--json")
    assert result.exit_code == 0, (result.output, result.exception)
    report = json.loads(result.output)
    report = report.get("test", report)
    assert report["accuracy"] == trained["accuracy"]
    assert report["confusion_matrix"] == trained["confusion_matrix"]
    assert report["loss"] == pytest.approx(trained["loss"], rel=1e-5)


def _train_batches_lose_their_epoch() -> bool:
    """Whether seqkit.augment.TrainBatches forgets set_epoch(epoch, skip) when Keras' fit calls
    on_epoch_end before its first epoch (EpochIterator.reset, Keras 3.15): a resumed epoch then
    trains on the next epoch's order from its first batch."""
    from seqkit.speech.augment import BatchMaker, train_batches

    batches = train_batches(BatchMaker(np.zeros((8, 1, 1)), np.zeros(8), 2))
    batches.set_epoch(1, 2)
    batches.on_epoch_end()
    return (batches.epoch, batches.skip) != (1, 2)


def test_resume_after_sigkill_equals_an_uninterrupted_run(kws):
    import csv

    from seqkit.runs import Run

    # Keras' fit calls on_epoch_end before its first epoch; the trainer's epoch must survive.
    assert not _train_batches_lose_their_epoch()

    ref, resumed = kws["ref"], kws["resumed"]
    assert kws["killed_state"]["epoch"] == 1 and kws["killed_state"]["step"] >= 2
    info = json.loads((resumed / "run.json").read_text())
    assert info["status"] == "completed" and len(info["resumed"]) == 1
    assert (resumed / "metrics.json").read_text() == (ref / "metrics.json").read_text()
    for a, b in zip(Run(resumed).model.get_weights(), Run(ref).model.get_weights()):
        np.testing.assert_array_equal(a, b)
    # The resumed epoch's row too: the checkpoint keeps the epoch's metric totals (issue 15).
    resumed_rows, ref_rows = (
        list(csv.DictReader((run / "history.csv").open())) for run in (resumed, ref)
    )
    assert resumed_rows == ref_rows and len(ref_rows) == EPOCHS


# --------------------------------------------------------------------------------------------
# JAX: train.distribute data_parallel (keras.distribution.DataParallel) on 2 CPU devices
# --------------------------------------------------------------------------------------------
@pytest.mark.skipif(BACKEND != "jax", reason="data_parallel is keras.distribution on JAX")
def test_data_parallel_on_two_devices_trains_as_one_device_does(tmp_path):
    """The same recipe with and without ``data_parallel`` (the same global batch), each in a
    fresh process whose CPU is split into 2 JAX devices: the variables are replicated, every
    batch is split in two, and the curves and weights equal the one-device run's (the sums
    over the halves differ from the sum over the batch only by float rounding). The training
    split, 28 clips in batches of 6, ends with a batch of 4; the validation split (24) splits
    evenly. A global batch that does not split evenly is refused before anything runs."""
    import csv

    from seqkit.runs import Run

    doc = tiny_recipe(tmp_path / "data", epochs=2, speakers=16)
    doc["train"]["batch_size"] = 6
    one = write_recipe(tmp_path / "one.yaml", doc)
    doc["train"]["distribute"] = {"type": "data_parallel"}
    two = write_recipe(tmp_path / "two.yaml", doc)
    doc["train"]["batch_size"] = 5
    odd = write_recipe(tmp_path / "odd.yaml", doc)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="jax",
               XLA_FLAGS="--xla_force_host_platform_device_count=2",
               SEQKIT_CACHE=str(tmp_path / "cache"))  # fmt: skip

    def run(recipe, name):
        cmd = [sys.executable, "-m", "seqkit", "-v", "train", str(recipe), "--run-dir",
               str(tmp_path / name)]  # fmt: skip
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)

    res = run(one, "one")
    assert res.returncode == 0, res.stderr[-3000:]
    res = run(two, "two")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "data_parallel over 2 devices (cpu:0, cpu:1)" in res.stderr
    # the distribution is in effect while fit runs (keras.backend.clear_session forgets a
    # global one: it once did, silently, and this run trained on one device)
    assert "every batch split over 2 devices" in res.stderr
    rows = [list(csv.DictReader((tmp_path / n / "history.csv").open())) for n in ("one", "two")]
    assert len(rows[0]) == len(rows[1]) == 2
    for a, b in zip(*rows):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert float(a[key]) == pytest.approx(float(b[key]), abs=1e-5), key
    for a, b in zip(Run(tmp_path / "one").model.get_weights(),
                    Run(tmp_path / "two").model.get_weights()):  # fmt: skip
        np.testing.assert_allclose(a, b, atol=1e-5)
    res = run(odd, "odd")
    assert res.returncode == 2
    assert "train.batch_size: 5 does not split evenly over the 2 devices of data_parallel" in (
        res.stderr
    )
    assert not (tmp_path / "odd").exists()


# --------------------------------------------------------------------------------------------
# music: a tiny polyphonic run and seqkit generate
# --------------------------------------------------------------------------------------------
def test_nade_layer_equals_the_key_by_key_reference():
    """The NADE output's one masked product for all keys, on this backend, against the float64
    key-by-key loop of ``seqkit.music.nade``."""
    from seqkit.music.nade import NadeKeys, nade_conditionals, nade_weights

    rng = np.random.default_rng(5)
    states = rng.normal(size=(2, 7, 6)).astype("float32")
    roll = (rng.random((2, 7, 10)) < 0.3).astype("float32")
    layer = NadeKeys(keys=10, units=5)
    p = np.asarray(keras.ops.convert_to_numpy(layer([states, roll])))
    assert p.shape == (2, 7, 10)
    weights = nade_weights(layer)
    for b in range(2):
        np.testing.assert_allclose(p[b], nade_conditionals(weights, states[b], roll[b]), atol=1e-5)


@pytest.mark.parametrize("output", ["independent", "nade"])
def test_music_train_and_generate(tmp_path, output):
    import pretty_midi

    from seqkit.music.rolls import Note, notes_to_roll
    from seqkit.music.sources import Piece, write_npz
    from seqkit.recipe import validate_dict
    from seqkit.training import train

    def chord_walk(rng, length):
        notes, t, root = [], 0, 60
        while t < length:
            d = int(rng.integers(1, 4))
            notes += [Note(root + iv, t, min(t + d, length)) for iv in (0, 4, 7)]
            root = int(np.clip(root + rng.choice([-5, -2, 2, 5]), 50, 70))
            t += d
        return notes_to_roll(notes, length=length)[0]

    rng = np.random.default_rng(0)
    pieces = [Piece(f"p{i}", split, chord_walk(rng, 16))
              for i, split in enumerate(["train"] * 6 + ["validation"] * 2 + ["test"] * 2)]  # fmt: skip
    write_npz(tmp_path / "rolls.npz", pieces, {"steps_per_quarter": 1})
    recipe = validate_dict({
        "name": "poly", "seed": 1,
        "data": {"source": {"type": "pianoroll_npz", "path": str(tmp_path / "rolls.npz")}},
        "model": {"layers": [{"type": "gru", "units": 8}]},
        "task": {"type": "polyphonic", "output": output}
        | ({"nade_units": 6} if output == "nade" else {}),
        "train": {"epochs": 2, "batch_size": 4},
    })  # fmt: skip
    run = train(recipe, run_dir=tmp_path / "run", verbose=0)
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "completed" and info["versions"]["keras_backend"] == BACKEND
    metrics = json.loads((run / "metrics.json").read_text())
    assert np.isfinite(metrics["test"]["nll_per_step"])

    outs = []
    for name in ("a", "b"):
        result = _cli("generate", run, "--out", tmp_path / name, "--steps", 8, "--num", 1,
                      "--seed", 3)  # fmt: skip
        assert result.exit_code == 0, (result.output, result.exception)
        outs.append(tmp_path / name)
    for ext in (".mid", ".wav", ".png"):
        a, b = (o / f"sample-1{ext}" for o in outs)
        assert a.read_bytes() == b.read_bytes(), ext
    midi = pretty_midi.PrettyMIDI(str(outs[0] / "sample-1.mid"))
    assert 0 < midi.get_end_time() <= 8 * 0.5 + 1e-6  # 8 quarter-note steps at 120 bpm


# --------------------------------------------------------------------------------------------
# regenerate the golden arrays (on the TensorFlow backend)
# --------------------------------------------------------------------------------------------
def _literal(a, indent: int) -> str:
    """``a`` as a Python list literal, one row of numbers per line (wrapped at 100 columns)."""
    import textwrap

    a = np.round(np.asarray(a, dtype="float64"), 7)
    pad = " " * indent
    if a.ndim == 1:
        body = ", ".join(repr(float(v)) for v in a)
        return textwrap.fill(f"[{body}]", 100, initial_indent=pad, subsequent_indent=pad + " ")
    inner = ",\n".join(_literal(row, indent + 4) for row in a)
    return f"{pad}[\n{inner},\n{pad}]"


if __name__ == "__main__":
    assert keras.backend.backend() == "tensorflow", "run with KERAS_BACKEND=tensorflow"
    lines = ["GOLDEN_OUTPUTS = {"]
    for case, args in OUTPUT_CASES.items():
        out = _outputs(keras.layers.GRU, *args)
        diff = np.abs(_outputs(seqkit.GRU, *args) - out).max()
        print(f"# {case}: seqkit.GRU - keras.layers.GRU on TensorFlow: {diff:.2g}")
        lines.append(f'    "{case}": ' + _literal(out, 4).lstrip() + ",")
    lines += ["}", "GOLDEN_GRADIENTS = {"]
    for case, args in GRADIENT_CASES.items():
        grads, mine = _gradients(keras.layers.GRU, *args), _gradients(seqkit.GRU, *args)
        lines.append(f'    "{case}": {{')
        for name, g in grads.items():
            diff = np.abs(mine[name] - g).max()
            print(f"# {case} {name}: seqkit.GRU - keras.layers.GRU on TensorFlow: {diff:.2g}")
            lines.append(f'        "{name}": ' + _literal(g, 8).lstrip() + ",")
        lines.append("    },")
    print("\n".join([*lines, "}"]))
