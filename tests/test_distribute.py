"""Distributed training (issue 6): MirroredStrategy on 2 logical CPUs, MultiWorkerMirroredStrategy
with 2 worker processes on 127.0.0.1, a dead worker failing the run within the timeout.

Device splitting and collectives must be configured before TensorFlow starts, so each
distributed run is a fresh `seqkit train` process."""

import csv
import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import tiny_recipe, write_recipe

from seqkit.errors import RecipeError, RunError
from seqkit.recipe import validate_dict
from seqkit.runs import Run
from seqkit.training import train
from seqkit.training.distribute import tf_config

SEQKIT = [sys.executable, "-m", "seqkit", "-q", "train"]
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
# Same global batch, no dropout: replicas average per-replica gradients, which equals the
# single-device batch gradient up to float32 summation order.
LOSS_TOLERANCE = 1e-4


def doc_for(tmp_path, distribute=None, epochs=2):
    doc = tiny_recipe(tmp_path / "data", epochs=epochs, speakers=16)
    doc["train"]["batch_size"] = 8  # 28 training clips: the last batch of each epoch is uneven
    if distribute:
        doc["train"]["distribute"] = distribute
    return doc


def history(run):
    with open(run / "history.csv") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("single")
    return train(validate_dict(doc_for(tmp)), run_dir=tmp / "run", verbose=0)


def test_mirrored_on_two_logical_cpus_matches_one_device(tmp_path, single):
    recipe = write_recipe(
        tmp_path / "m.yaml", doc_for(tmp_path, {"type": "mirrored", "logical_cpus": 2})
    )
    done = subprocess.run([*SEQKIT, str(recipe), "--run-dir", str(tmp_path / "run")], env=ENV,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    got, want = history(tmp_path / "run"), history(single)
    for g, w in zip(got, want, strict=True):
        assert g["loss"] == pytest.approx(w["loss"], abs=LOSS_TOLERANCE)
        assert g["val_loss"] == pytest.approx(w["val_loss"], abs=LOSS_TOLERANCE)


def _workers(tmp_path, doc, names=("w0", "w1")):
    from seqkit.tasks import make_source

    # Generate the synthetic data first: two workers generating one folder at once would race.
    make_source(validate_dict(doc)).prepare()
    recipe = write_recipe(tmp_path / "mw.yaml", doc)
    ports = free_ports(2)
    workers = ",".join(f"127.0.0.1:{p}" for p in ports)
    return [
        subprocess.Popen(
            [
                *SEQKIT,
                str(recipe),
                "--run-dir",
                str(tmp_path / name),
                "--workers",
                workers,
                "--worker-index",
                str(i),
            ],  # fmt: skip
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, name in enumerate(names)
    ]


def test_two_workers_finish_with_the_same_weights_and_the_single_run_curve(tmp_path, single):
    procs = _workers(tmp_path, doc_for(tmp_path, {"type": "multi_worker", "timeout_seconds": 60}))
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err
    w0, w1 = Run(tmp_path / "w0").model.get_weights(), Run(tmp_path / "w1").model.get_weights()
    for a, b in zip(w0, w1, strict=True):
        np.testing.assert_array_equal(a, b)
    for g, w in zip(history(tmp_path / "w0"), history(single), strict=True):
        assert g["loss"] == pytest.approx(w["loss"], abs=LOSS_TOLERANCE)
        assert g["val_loss"] == pytest.approx(w["val_loss"], abs=LOSS_TOLERANCE)


def test_a_dead_worker_fails_the_run_with_a_clear_message(tmp_path):
    doc = doc_for(tmp_path, {"type": "multi_worker", "timeout_seconds": 10}, epochs=200)
    chief, worker = _workers(tmp_path, doc)
    state = tmp_path / "w1" / "checkpoint" / "state.json"
    deadline = time.time() + 600
    while not state.exists() and time.time() < deadline and worker.poll() is None:
        time.sleep(0.2)
    if not state.exists():
        for p in (chief, worker):
            p.kill()
        pytest.fail(f"the workers never started training: {worker.communicate()[1][-2000:]}")
    worker.kill()
    worker.communicate()
    killed_at = time.time()
    _, err = chief.communicate(timeout=300)
    assert chief.returncode == 1
    assert "a worker stopped responding or died" in err
    assert "timeout_seconds = 10 s" in err
    assert time.time() - killed_at < 120  # the timeout, plus start-up slack; never a hang
    assert json.loads((tmp_path / "w0" / "run.json").read_text())["status"] == "failed"


def test_cluster_and_backend_errors():
    assert tf_config(["a:1", "b:2"], 1)["task"] == {"type": "worker", "index": 1}
    with pytest.raises(RunError, match="--worker-index must be in 0..1; received 2"):
        tf_config(["a:1", "b:2"], 2)
    with pytest.raises(RunError, match="host:port"):
        tf_config(["nohost"], 0)
    from seqkit.recipe import DistributeSpec
    from seqkit.training.distribute import setup

    with pytest.raises(RecipeError, match="data_parallel runs on the JAX backend"):
        setup(DistributeSpec(type="data_parallel"))


def test_data_parallel_epochs_and_validation_are_cut_to_whole_device_batches():
    """Under data_parallel over d devices every batch must split evenly: the epoch's (already
    shuffled) examples and the validation clips are cut to a multiple of d; a task dataset is
    told to cut its own epochs (TrainBatches via BatchMaker.multiple_of)."""
    from seqkit.speech.augment import BatchMaker, train_batches
    from seqkit.training.fit import _even_inputs, _even_validation

    x, y, w = np.arange(29.0)[:, None], np.arange(29), np.ones(29)
    inputs = {"x": x, "y": y, "sample_weight": w, "batch_size": 6}
    assert _even_inputs(inputs, 1) is inputs
    cut = _even_inputs(inputs, 2)
    assert (
        cut["batch_size"] == 6 and len(cut["x"]) == len(cut["y"]) == len(cut["sample_weight"]) == 28
    )
    np.testing.assert_array_equal(cut["y"], np.arange(28))
    assert len(_even_inputs(inputs, 4)["x"]) == 28 and len(_even_inputs(inputs, 3)["y"]) == 27
    val = _even_validation((x[:7], y[:7]), 2)
    assert [len(v) for v in val] == [6, 6] and _even_validation(None, 2) is None

    maker = BatchMaker(x, y, 6, seed=3)
    data = train_batches(maker)
    data.set_epoch(1)
    full = np.concatenate([data[b][1] for b in range(len(data))])
    assert len(data) == 5 and sorted(full) == list(range(29))
    _even_inputs({"x": data}, 2)
    batches = [data[b][1] for b in range(len(data))]
    assert len(data) == 5 and [len(b) for b in batches] == [6, 6, 6, 6, 4]
    # the same shuffled order, its last example left out this epoch
    np.testing.assert_array_equal(np.concatenate(batches), full[:28])
    with pytest.raises(RunError, match="has no set_multiple_of"):
        _even_inputs({"x": object()}, 2)
