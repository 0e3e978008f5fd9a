"""End to end: a recipe trains, and its run folder holds everything the other commands read."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import yaml
from conftest import tiny_recipe

from seqkit.build import build_layers, load_data
from seqkit.recipe import validate_dict
from seqkit.runs import Run
from seqkit.training import train

EPOCHS = 2


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    recipe = validate_dict(tiny_recipe(root / "data", epochs=EPOCHS))
    path = train(recipe, run_dir=root / "run", verbose=0)
    return path, recipe


def test_run_folder_holds_every_file(run):
    path, _ = run
    names = {p.name for p in path.iterdir()}
    assert {
        "run.json",
        "recipe.yaml",
        "labels.txt",
        "model.keras",
        "metrics.json",
        "history.csv",
        "logs",
    } <= names
    info = json.loads((path / "run.json").read_text())
    assert info["status"] == "completed"
    assert {"python", "keras", "librosa", "numpy", "keras_backend"} <= set(info["versions"])
    assert (path / "labels.txt").read_text().split() == ["ai", "ia", "u", "noise"]


def test_resolved_recipe_has_defaults_and_revalidates(run):
    path, recipe = run
    doc = yaml.safe_load((path / "recipe.yaml").read_text())
    assert doc["train"]["optimizer"] == {"type": "adam", "learning_rate": 0.001, "clipnorm": None}
    assert doc["model"]["normalize"] is None  # the task's default: on for kws
    assert validate_dict(doc) == recipe


def test_metrics_match_the_saved_best_model(run):
    path, recipe = run
    metrics = json.loads((path / "metrics.json").read_text())
    assert metrics["epochs_run"] == EPOCHS and 1 <= metrics["best_epoch"] <= EPOCHS
    assert sum(metrics["examples"].values()) == 40
    data = load_data(recipe)
    model = Run(path).model
    for split in ("validation", "test"):
        x, y = data.splits[split].x, data.splits[split].y
        acc = float(np.mean(model.predict(x, verbose=0).argmax(1) == y))
        assert metrics[split]["accuracy"] == pytest.approx(acc)
        assert metrics[split]["examples"] == len(y)
        assert np.array(metrics[split]["confusion_matrix"]).sum() == len(y)
    with open(path / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == EPOCHS and "val_accuracy" in rows[0]
    assert float(rows[0]["learning_rate"]) == pytest.approx(1e-3)
    best = max(float(r["val_accuracy"]) for r in rows)
    assert metrics["validation"]["accuracy"] == pytest.approx(best, abs=1e-6)


def test_tensorboard_events_have_scalars_learning_rate_and_graph(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    path, _ = run
    tb = {}
    for split in ("train", "validation"):
        ea = EventAccumulator(str(path / "logs" / split), size_guidance={"tensors": 0})
        ea.Reload()
        tb[split] = ea
    train_tags = tb["train"].Tags()
    assert {"epoch_loss", "epoch_accuracy", "epoch_learning_rate", "keras"} <= set(
        train_tags["tensors"]
    )
    assert train_tags["graph"] is True
    assert {"epoch_loss", "epoch_accuracy"} <= set(tb["validation"].Tags()["tensors"])
    from tensorboard.util.tensor_util import make_ndarray

    lr = [float(make_ndarray(e.tensor_proto)) for e in tb["train"].Tensors("epoch_learning_rate")]
    assert len(lr) == EPOCHS and lr[0] == pytest.approx(1e-3)
    assert len(tb["validation"].Tensors("epoch_loss")) == EPOCHS


def test_saved_model_predicts_the_same_in_a_fresh_process(run, tmp_path):
    path, recipe = run
    x = load_data(recipe).splits["validation"].x
    np.save(tmp_path / "x.npy", x)
    want = Run(path).model.predict(x, verbose=0)
    script = (
        "import sys, numpy as np\n"
        "from seqkit.runs import Run\n"
        "x = np.load(sys.argv[2])\n"
        "np.save(sys.argv[3], Run(sys.argv[1]).model.predict(x, verbose=0))\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, str(path), str(tmp_path / "x.npy"), str(tmp_path / "p.npy")],
        check=True,
    )
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), want, rtol=0, atol=1e-6)


def test_explain_draws_gates_that_match_the_layer(run, tmp_path):
    import keras

    from seqkit.explain import find_gru, gate_activations_for, plot_gates

    path, recipe = run
    r = Run(path)
    audio = load_data(recipe).splits["validation"].items[0].path
    feats, gates, scores, _ = gate_activations_for(r, audio)
    assert gates["h"].shape == (1, feats.shape[0], 8)
    for key in ("r", "z"):
        assert 0.0 <= gates[key].min() and gates[key].max() <= 1.0
    # The last state of the step-by-step gates is what the model's GRU layer outputs.
    _, gru = find_gru(r.model)
    h_last = keras.Model(r.model.inputs, gru.output).predict(feats[None], verbose=0)
    np.testing.assert_allclose(gates["h"][0, -1], h_last[0], atol=1e-5)
    np.testing.assert_allclose(scores.sum(), 1.0, atol=1e-5)
    png = plot_gates(path, audio, out=tmp_path / "g.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_pipeline_learns(tmp_path):
    doc = tiny_recipe(tmp_path / "data", layer={"type": "gru", "units": 16}, epochs=25, speakers=16)
    doc["train"]["optimizer"] = {"type": "adam", "learning_rate": 0.01}
    path = train(validate_dict(doc), run_dir=tmp_path / "run", verbose=0)
    metrics = json.loads((path / "metrics.json").read_text())
    # 4 classes: chance is 0.25.
    assert metrics["validation"]["accuracy"] >= 0.8, metrics["validation"]


def test_return_sequences_and_bidirectional_are_set_by_the_builder(tmp_path):
    import keras

    doc = tiny_recipe(tmp_path / "data")
    doc["model"]["layers"] = [
        {"type": "gru", "units": 4, "bidirectional": True},
        {"type": "lstm", "units": 4},
        {"type": "dense", "units": 3},
    ]
    layers = build_layers(validate_dict(doc), needs_sequences=False)
    assert isinstance(layers[0], keras.layers.Bidirectional)
    assert layers[0].forward_layer.return_sequences is True
    assert layers[1].return_sequences is False
    doc["task"] = {"type": "kws", "pooling": "mean"}
    layers = build_layers(validate_dict(doc), needs_sequences=True)
    assert layers[1].return_sequences is True


def test_plugin_layer_recipe_trains_and_reloads_in_a_fresh_process(tmp_path):
    pytest.importorskip("seqkit_example")
    doc = tiny_recipe(tmp_path / "data", layer={"type": "mgu", "units": 6}, epochs=1)
    path = train(validate_dict(doc), run_dir=tmp_path / "run", verbose=0)
    script = (
        "import sys\n"
        "from seqkit.runs import Run\n"
        "m = Run(sys.argv[1]).model\n"
        "print(type(m.layers[2]).__module__, m.layers[2].cell.units)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(path)], check=True, capture_output=True, text=True
    ).stdout
    assert out.split() == ["seqkit_example.layers", "6"]


def test_no_run_folder_inside_a_manifest_dataset(tmp_path):
    """The data folder of any source (here a manifest's folder) is never written into."""
    from conftest import write_wav

    from seqkit.errors import RunError

    data = tmp_path / "corpus"
    rows = ["path,label,split"]
    for i in range(4):
        for label, freq in (("low", 300.0), ("high", 2000.0)):
            write_wav(data / f"{label}{i}.wav", freq=freq, seed=i)
            rows.append(f"{label}{i}.wav,{label},{('train', 'train', 'validation', 'test')[i]}")
    (data / "list.csv").write_text("\n".join(rows) + "\n")
    doc = tiny_recipe(tmp_path / "unused")
    doc["data"]["source"] = {"type": "manifest", "path": str(data / "list.csv")}
    before = sorted(p.name for p in data.iterdir())
    with pytest.raises(RunError, match="would be inside the data folder"):
        train(validate_dict(doc), run_dir=data / "runs" / "r", verbose=0)
    assert sorted(p.name for p in data.iterdir()) == before
