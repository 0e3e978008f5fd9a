"""Runs that survive interruption and reproduce exactly (issue 7): checkpoints, --resume after
SIGKILL and Ctrl-C, same seed -> same weights, non-finite loss, corrupt files, full disks."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import tiny_recipe, write_recipe

from seqkit.errors import RunError
from seqkit.recipe import validate_dict
from seqkit.runs import Run
from seqkit.training import train

SEQKIT = [sys.executable, "-m", "seqkit"]


def recipe_doc(tmp_path, epochs=3, **train_cfg):
    doc = tiny_recipe(tmp_path / "data", epochs=epochs, speakers=16)
    # Dropout on the way in and in the recurrence: resumption must restore its random state too.
    doc["model"]["layers"] = [{"type": "gru", "units": 8, "dropout": 0.2}]
    doc["task"] = {"type": "kws", "dropout": 0.3}
    doc["train"].update(batch_size=4, **train_cfg)
    return doc


def weights(run):
    return Run(run).model.get_weights()


def comparable_metrics(run):
    return json.loads((run / "metrics.json").read_text())


def test_same_seed_same_weights_and_metrics(tmp_path):
    doc = recipe_doc(tmp_path, epochs=2)
    a = train(validate_dict(doc), run_dir=tmp_path / "a", verbose=0)
    b = train(validate_dict(doc), run_dir=tmp_path / "b", verbose=0)
    assert (a / "metrics.json").read_text() == (b / "metrics.json").read_text()
    for wa, wb in zip(weights(a), weights(b)):
        np.testing.assert_array_equal(wa, wb)
    info = json.loads((a / "run.json").read_text())
    assert {"seqkit", "keras", "keras_backend", "librosa", "numpy", "python"} <= set(
        info["versions"]
    )
    assert len(info["data"]["train"]["list_sha256"]) == 64
    assert info["data"] == json.loads((b / "run.json").read_text())["data"]


def _wait_for(predicate, proc, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def _state(run):
    try:
        return json.loads((run / "checkpoint" / "state.json").read_text())["progress"]
    except (OSError, ValueError, KeyError):
        return None


def test_sigkill_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path):
    doc = recipe_doc(tmp_path, epochs=3, checkpoint_every_steps=1)
    recipe = write_recipe(tmp_path / "r.yaml", doc)
    ref = train(validate_dict(doc), run_dir=tmp_path / "ref", verbose=0)

    run = tmp_path / "killed"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.Popen([*SEQKIT, "-q", "train", str(recipe), "--run-dir", str(run)], env=env)
    # Kill while the second epoch is under way (a step checkpoint inside epoch 2 exists).
    mid = _wait_for(lambda: (s := _state(run)) is not None and s["epoch"] == 1 and s["step"] >= 2,
                    proc)  # fmt: skip
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert mid, "the run finished or stalled before it could be killed mid-epoch"
    assert json.loads((run / "run.json").read_text())["status"] == "running"  # died unannounced

    done = subprocess.run(
        [*SEQKIT, "-q", "train", str(recipe), "--resume", str(run)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "completed" and len(info["resumed"]) == 1
    assert comparable_metrics(run) == comparable_metrics(ref)
    for wa, wb in zip(weights(run), weights(ref)):
        np.testing.assert_array_equal(wa, wb)
    history = (run / "history.csv").read_text()
    assert len(history.splitlines()) == 1 + 3  # header + one row per epoch, the replayed once
    # The interrupted epoch's row counts every step of it, not only those after the resume.
    assert history == (ref / "history.csv").read_text()


def test_ctrl_c_saves_a_checkpoint_exits_130_and_resumes(tmp_path):
    doc = recipe_doc(tmp_path, epochs=3)
    recipe = write_recipe(tmp_path / "r.yaml", doc)
    ref = train(validate_dict(doc), run_dir=tmp_path / "ref", verbose=0)
    run = tmp_path / "run"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.Popen(
        [*SEQKIT, "train", str(recipe), "--run-dir", str(run)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert _wait_for(lambda: (s := _state(run)) is not None and s["epoch"] >= 1, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "interrupted"
    assert info["resume"].endswith(f"--resume {run}")
    state = _state(run)
    assert state["epoch"] >= 1
    done = subprocess.run(
        [*SEQKIT, "-q", "train", str(recipe), "--resume", str(run)], env=env, capture_output=True
    )
    assert done.returncode == 0, done.stderr
    assert json.loads((run / "run.json").read_text())["status"] == "completed"
    assert comparable_metrics(run)["epochs_run"] == 3
    assert comparable_metrics(run) == comparable_metrics(ref)
    assert (run / "history.csv").read_text() == (ref / "history.csv").read_text()


def _interrupt_after_the_first_step(monkeypatch):
    """As if Ctrl-C came during the run's first step: a checkpoint after step 1 of epoch 1."""
    from seqkit.training import fit

    enter = fit._SigintDeferred.__enter__

    def requested_at_once(self):
        enter(self)
        self.requested = True
        return self

    monkeypatch.setattr(fit._SigintDeferred, "__enter__", requested_at_once)


def test_a_run_resumed_inside_an_epoch_logs_that_epoch_as_if_never_stopped(
    tmp_path, monkeypatch, caplog
):
    doc = recipe_doc(tmp_path, epochs=2)
    ref = train(validate_dict(doc), run_dir=tmp_path / "ref", verbose=0)
    with monkeypatch.context() as patch:
        _interrupt_after_the_first_step(patch)
        with pytest.raises(KeyboardInterrupt):
            train(validate_dict(doc), run_dir=tmp_path / "run", verbose=0)
    state = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())
    assert (state["progress"]["epoch"], state["progress"]["step"]) == (0, 1)
    totals = {m["path"]: m["value"] for m in state["metric_totals"]}
    assert list(totals) == ["loss/total", "loss/count", "accuracy/total", "accuracy/count"]
    assert totals["loss/count"] == totals["accuracy/count"] == 4.0  # one batch of 4 counted

    # A damaged state.json is named, not trusted (each tried on a copy of the run).
    for n, (damage, message) in enumerate([
        ("not a list", r"state.json' has a damaged `metric_totals` \(expected a list"),
        ([{"path": "loss/total", "value": float("nan")}], "damaged `metric_totals`"),
        ([{"path": "loss/total", "value": 1.0}],
         r"holds totals of the metrics \['loss/total'\], but the model tracks \['loss/total', "
         r"'loss/count', 'accuracy/total', 'accuracy/count'\]; it cannot be resumed"),
    ]):  # fmt: skip
        copy = shutil.copytree(tmp_path / "run", tmp_path / f"damaged{n}")
        bad = dict(state, metric_totals=damage)
        (copy / "checkpoint" / "state.json").write_text(json.dumps(bad))
        with pytest.raises(RunError, match=message):
            train(validate_dict(doc), resume=copy, verbose=0)

    # A checkpoint an older seqkit wrote has no totals: it resumes, and says what differs.
    old = shutil.copytree(tmp_path / "run", tmp_path / "old")
    (old / "checkpoint" / "state.json").write_text(
        json.dumps({k: v for k, v in state.items() if k != "metric_totals"})
    )
    with caplog.at_level("WARNING", logger="seqkit"):
        train(validate_dict(doc), resume=old, verbose=0)
    assert (
        f"The checkpoint in '{old / 'checkpoint'}' holds no training-metric totals (an older "
        "seqkit wrote it): history.csv's row for epoch 1 counts only the steps after the resume."
    ) in caplog.messages

    run = train(validate_dict(doc), resume=tmp_path / "run", verbose=0)
    assert (run / "history.csv").read_text() == (ref / "history.csv").read_text()
    assert comparable_metrics(run) == comparable_metrics(ref)


def test_resume_refuses_a_changed_recipe_and_a_completed_run(tmp_path):
    doc = recipe_doc(tmp_path, epochs=1)
    run = train(validate_dict(doc), run_dir=tmp_path / "run", verbose=0)
    with pytest.raises(RunError, match="already completed"):
        train(validate_dict(doc), resume=run, verbose=0)
    info = json.loads((run / "run.json").read_text())
    info["status"] = "interrupted"
    (run / "run.json").write_text(json.dumps(info))
    other = dict(doc, seed=7)
    with pytest.raises(RunError, match=r"differs .*\(seed\); only train.epochs may change"):
        train(validate_dict(other), resume=run, verbose=0)


def test_a_corrupt_checkpoint_is_reported_not_loaded(tmp_path):
    doc = recipe_doc(tmp_path, epochs=1)
    run = train(validate_dict(doc), run_dir=tmp_path / "run", verbose=0)
    info = json.loads((run / "run.json").read_text())
    info["status"] = "interrupted"
    (run / "run.json").write_text(json.dumps(info))
    ckpt = next((run / "checkpoint").glob("ckpt-*.keras"))
    data = bytearray(ckpt.read_bytes())
    data[len(data) // 2] ^= 0xFF
    ckpt.write_bytes(bytes(data))
    with pytest.raises(RunError, match="corrupt"):
        train(validate_dict(doc), resume=run, verbose=0)


def test_a_corrupt_best_model_is_detected(tmp_path):
    run = train(validate_dict(recipe_doc(tmp_path, epochs=1)), run_dir=tmp_path / "r", verbose=0)
    with open(run / "model.keras", "ab") as f:
        f.write(b"garbage")
    with pytest.raises(RunError, match="does not match the SHA-256 recorded in run.json"):
        _ = Run(run).model


def test_non_finite_loss_stops_with_epoch_and_step(tmp_path):
    doc = recipe_doc(tmp_path, epochs=3)
    doc["model"]["normalize"] = False
    doc["model"]["layers"] = [{"type": "dense", "units": 8}]
    doc["task"] = {"type": "kws"}
    doc["train"]["optimizer"] = {"type": "sgd", "learning_rate": 1e30}
    with pytest.raises(RunError, match=r"loss became (nan|inf) at epoch 1, step \d+") as err:
        train(validate_dict(doc), run_dir=tmp_path / "run", verbose=0)
    assert "Lower train.optimizer.learning_rate" in str(err.value)
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["status"] == "failed" and "loss became" in info["error"]
    assert not (tmp_path / "run" / "model.keras").exists()  # nothing half-good left as if done


def test_no_disk_space_fails_before_training(tmp_path, monkeypatch):
    import shutil

    import seqkit.training.trainer

    real = shutil.disk_usage
    monkeypatch.setattr(
        seqkit.training.trainer.shutil, "disk_usage", lambda p: real(p)._replace(free=1024 * 1024)
    )
    with pytest.raises(RunError, match="Not enough free disk space"):
        train(validate_dict(recipe_doc(tmp_path, epochs=1)), run_dir=tmp_path / "run", verbose=0)
    assert not (tmp_path / "run" / "model.keras").exists()
    assert not (tmp_path / "run" / "checkpoint").exists()


def test_unwritable_runs_root_is_a_clear_error(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the runs root should be")
    with pytest.raises(RunError, match="Cannot create run folder"):
        train(validate_dict(recipe_doc(tmp_path, epochs=1)), runs_root=blocker, verbose=0)
    assert blocker.read_text() == "a file where the runs root should be"
