"""seqkit compare: planning checks, parameter matching, the report, and a tiny real comparison."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from conftest import write_recipe

from seqkit import compare as cmp
from seqkit.cli import cli
from seqkit.errors import ParameterError

PNG = b"\x89PNG\r\n\x1a\n"


def adding_doc(units=14, length=10):
    return {
        "name": "tiny-adding",
        "seed": 0,
        "data": {
            "source": {
                "type": "adding_problem",
                "length": length,
                "train_examples": 100,
                "validation_examples": 30,
                "test_examples": 30,
                "seed": 0,
            }  # fmt: skip
        },
        "model": {"layers": [{"type": "gru", "units": units}]},
        "task": {"type": "sequence_regression"},
        "train": {"epochs": 1, "batch_size": 50},
    }


def invoke(*args):
    return CliRunner().invoke(cli, ["compare", *map(str, args)])


@pytest.fixture
def recipe(tmp_path):
    return write_recipe(tmp_path / "adding.yaml", adding_doc())


# -- bad input, refused before anything is trained -----------------------------------------------


def test_unknown_layer_did_you_mean(recipe, tmp_path):
    result = invoke(recipe, "--layers", "gru,lstn", "--out", tmp_path / "o")
    assert result.exit_code == 2
    assert "Unknown layer 'lstn'. Did you mean 'lstm'? Available layers:" in result.stderr
    assert not (tmp_path / "o").exists()


def test_layer_that_is_not_recurrent(recipe, tmp_path):
    result = invoke(recipe, "--layers", "gru,dense", "--out", tmp_path / "o")
    assert result.exit_code == 2
    assert "Layer 'dense' is not a recurrent layer (a keras.layers.RNN)" in result.stderr
    assert "Recurrent layers: gru, keras_gru, lstm" in result.stderr


def test_layer_that_cannot_be_matched_says_why(tmp_path):
    path = write_recipe(tmp_path / "a.yaml", adding_doc(units=8))  # GRU(8): 273 parameters
    result = invoke(path, "--layers", "gru,lstm", "--out", tmp_path / "o")
    assert result.exit_code == 2
    assert (
        "Layer 'lstm' cannot be parameter-matched within 2% of 273 trainable parameters: "
        "6 units give 223 and 7 give 288" in result.stderr
    )
    assert not (tmp_path / "o").exists()


def test_budget_above_the_limit_needs_yes(recipe, tmp_path):
    result = invoke(recipe, "--layers", "gru,rnn", "--budget-minutes", "0.01", "--out",
                    tmp_path / "o")  # fmt: skip
    assert result.exit_code == 2
    assert "for 2 runs (2 layers x 1 seeds x 1 lengths, 1 epochs of 2 steps;" in result.stderr
    assert "is above the limit of 0.01 min (--budget-minutes). Pass --yes" in result.stderr
    assert not (tmp_path / "o").exists()


def test_lengths_need_a_source_with_a_length(tiny, tmp_path):
    path, _ = tiny  # synthetic_tones: no `length`
    result = invoke(path, "--lengths", "50,100", "--out", tmp_path / "o")
    assert result.exit_code == 2
    assert "data source 'synthetic_tones' has no `length` parameter" in result.stderr


def test_bad_lengths_and_duplicate_layers(recipe, tmp_path):
    result = invoke(recipe, "--lengths", "50,x", "--out", tmp_path / "o")
    assert result.exit_code == 2 and "`--lengths` must be positive integers" in result.stderr
    result = invoke(recipe, "--layers", "gru,rnn,gru", "--out", tmp_path / "o")
    assert result.exit_code == 2 and "`--layers` names gru more than once." in result.stderr


def test_out_is_never_written_over(recipe, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    result = invoke(recipe, "--layers", "gru,rnn", "--out", out)
    assert result.exit_code == 1
    assert f"--out '{out}' already exists and is not empty" in result.stderr
    assert (out / "notes.txt").read_text() == "keep me" and len(list(out.iterdir())) == 1


# -- parameter matching --------------------------------------------------------------------------


def test_solve_units_finds_the_closest_count_or_says_why():
    def squares(layer, units):
        return units[0] ** 2

    assert cmp.solve_units(squares, "x", [10], 10000) == ([100], 10000)
    assert cmp.solve_units(squares, "x", [10], 10150) == ([101], 10201)
    with pytest.raises(ParameterError, match=r"2 units give 2,000 and 3 give 3,000"):
        cmp.solve_units(lambda layer, u: 1000 * u[0], "x", [4], 2500)
    with pytest.raises(ParameterError, match="even 1 unit gives 5,000"):
        cmp.solve_units(lambda layer, u: 5000 * u[0], "x", [4], 1000)
    # two recurrent layers are scaled together: 32/16 -> k/round(k/2)
    got = cmp.solve_units(lambda layer, u: 10 * u[0] + 10 * u[1], "x", [32, 16], 600)
    assert got == ([40, 20], 600)


def test_match_params_within_tolerance_and_match_units(recipe, tmp_path):
    import keras

    plan = cmp.plan_compare(recipe, "gru,lstm,rnn", out=tmp_path / "o", estimate=False)
    got = {c.name: (c.units, c.params) for c in plan.candidates}
    # GRU(14) on 2 inputs + Dense(1): 3 * (14*2 + 14*14 + 14) + 15 = 729
    assert got == {"gru": ([14], 729), "lstm": ([12], 733), "rnn": ([25], 726)}
    for _units, params in got.values():
        assert abs(params - 729) <= 0.02 * 729
    lstm = keras.Sequential([keras.Input((10, 2)), keras.layers.LSTM(12), keras.layers.Dense(1)])
    assert lstm.count_params() == 733  # the count is the model's own
    plan = cmp.plan_compare(recipe, "gru,lstm", match="units", out=tmp_path / "o", estimate=False)
    assert plan.steps_per_epoch == 2 and plan.estimate_seconds == 0
    assert [(c.units, c.params) for c in plan.candidates] == [([14], 729), ([14], 967)]
    assert not (tmp_path / "o").exists()  # planning writes nothing


# -- the report, from given results --------------------------------------------------------------


def _plan(tmp_path, lengths, seeds=(0, 1)):
    return cmp.Plan(
        recipe_doc={"name": "t", "train": {"batch_size": 10}},
        recipe_file="t.yaml",
        task_type="sequence_regression",
        monitor="val_loss",
        mode="min",
        recurrent=[0],
        candidates=[cmp.Candidate("gru", [4], 100), cmp.Candidate("rnn", [8], 99)],
        seeds=list(seeds),
        lengths=list(lengths),
        match="params",
        out=tmp_path,
        epochs=2,
        steps_per_epoch=3,
        step_seconds={},
        estimate_seconds=60.0,
        budget_minutes=30.0,
    )


def _result(layer, seed, length, ratio, seconds=1.0):
    return {
        "id": cmp.run_id(layer, seed, length), "layer": layer, "units": [4], "seed": seed,
        "length": length, "status": "completed", "train_seconds_per_epoch": seconds,
        "train_cpu_seconds_per_epoch": seconds / 2,
        "infer_ms_per_sequence": 0.5, "peak_mb": 10.0,
        "validation": {"loss": ratio / 6}, "test": {"loss": ratio / 6, "baseline_ratio": ratio},
        "learns": ratio < 0.1, "history": {"val_loss": [0.2, ratio / 6]},
        "gradients": {"init": [1e-3, 1.0], "trained": [0.5, 1.0]},
    }  # fmt: skip


def test_report_statistics_and_where_learning_stops(tmp_path):
    plan = _plan(tmp_path, [50, 100, 200])
    results = []
    for length, (g, r) in zip([50, 100, 200], [(0.01, 0.05), (0.02, 0.5), (0.5, 0.9)]):
        for seed in (0, 1):
            results.append(_result("gru", seed, length, g, seconds=1.0 + 2 * seed))
            results.append(_result("rnn", seed, length, r))
    rows = cmp.summarize(plan, results)
    row = rows[0]
    assert (row["length"], row["layer"], row["seeds"]) == (50, "gru", 2)
    assert row["train_s_per_epoch"] == pytest.approx((2.0, 2**0.5))  # mean, sample std of 1, 3
    assert row["grad_first_over_last_init"] == (1e-3, 0.0)
    table = cmp.markdown_table(plan, rows)
    header = table.splitlines()[0]
    for col in ("length", "layer", "units", "params", "train s/epoch", "train CPU s/epoch",
                "infer ms/seq",
                "peak MB", "best val MSE", "test MSE", "test / baseline", "learned",
                "grad h1/hT init"):  # fmt: skip
        assert f" {col} |" in header
    assert "| 50 | gru | 4 | 100 | 2 ± 1.4 | 1 ± 0.71 | 0.5 ± 0 |" in table
    sweep = cmp.sweep_table(plan, rows).splitlines()
    assert sweep[0] == "| layer | T=50 | T=100 | T=200 | stops learning at |"
    assert sweep[2] == "| gru | 0.01 ✓ (2/2) | 0.02 ✓ (2/2) | 0.5 ✗ (0/2) | T=200 |"
    assert sweep[3] == "| rnn | 0.05 ✓ (2/2) | 0.5 ✗ (0/2) | 0.9 ✗ (0/2) | T=100 |"
    paths = cmp.write_report(plan, results, elapsed=12.0)
    for key in ("markdown", "csv", "runs", "curves", "sweep", "sweep_png", "gradients", "json"):
        assert paths[key].is_file(), key
    assert paths["curves"].read_bytes()[:8] == PNG
    with open(paths["csv"]) as f:
        rows_csv = list(csv.DictReader(f))
    assert len(rows_csv) == 6 and float(rows_csv[0]["train_s_per_epoch_std"]) == pytest.approx(
        2**0.5
    )


def test_a_layer_that_learns_everywhere(tmp_path):
    plan = _plan(tmp_path, [50, 100], seeds=(0,))
    results = [_result(n, 0, t, 0.01) for n in ("gru", "rnn") for t in (50, 100)]
    sweep = cmp.sweep_table(plan, cmp.summarize(plan, results)).splitlines()
    assert sweep[2] == "| gru | 0.01 ✓ | 0.01 ✓ | learns up to T=100 |"


# -- a tiny real comparison ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    path = write_recipe(root / "adding.yaml", adding_doc())
    out = root / "out"
    result = invoke(path, "--layers", "gru,rnn", "--gradients", "--out", out,
                    "--set", "train.epochs=2")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    return out, result


def test_compare_writes_every_column_and_file(compared):
    out, result = compared
    md = (out / "compare.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| layer"))
    for col in ("layer", "units", "params", "train s/epoch", "train CPU s/epoch",
                "infer ms/seq", "peak MB",
                "best val MSE", "test MSE", "test / baseline", "learned", "grad h1/hT init",
                "grad h1/hT trained"):  # fmt: skip
        assert f" {col} |" in header
    assert md.strip() in result.stdout
    for name in ("compare.csv", "runs.csv", "compare.json", "gradients.csv"):
        assert (out / name).is_file()
    for name in ("curves.png", "gradients.png"):
        assert (out / name).read_bytes()[:8] == PNG
    with open(out / "compare.csv") as f:
        rows = {r["layer"]: r for r in csv.DictReader(f)}
    assert (rows["gru"]["units"], rows["gru"]["params"]) == ("14", "729")
    assert (rows["rnn"]["units"], rows["rnn"]["params"]) == ("25", "726")
    with open(out / "gradients.csv") as f:
        grads = list(csv.DictReader(f))
    assert len(grads) == 2 * 2 * 10  # layers x (init, trained) x steps
    for layer in ("gru", "rnn"):
        run = out / "runs" / f"{layer}-s0"
        metrics = json.loads((run / "metrics.json").read_text())
        assert float(rows[layer]["test_loss_mean"]) == pytest.approx(metrics["test"]["mse"])
        assert float(rows[layer]["val_loss_mean"]) == pytest.approx(metrics["validation"]["mse"])
        assert json.loads((run / "run.json").read_text())["status"] == "completed"
        assert yaml.safe_load((run / "recipe.yaml").read_text())["model"]["layers"][0]["type"] == (
            layer
        )
        assert float(rows[layer]["train_s_per_epoch_mean"]) > 0
        assert float(rows[layer]["infer_ms_per_seq_mean"]) > 0


def test_same_seed_same_numbers(compared, tmp_path):
    out, _ = compared
    done = json.loads((out / "runs" / "gru-s0.json").read_text())
    job = {
        "id": "again", "layer": "gru", "units": [14], "seed": 0, "length": None,
        "recipe": yaml.safe_load((out / "runs" / "gru-s0" / "recipe.yaml").read_text()),
        "run_dir": str(tmp_path / "run"), "result": str(tmp_path / "r.json"),
        "log": str(tmp_path / "log"), "gradients": True,
    }  # fmt: skip
    again = cmp._run_worker(job)
    assert again["status"] == "completed", again.get("error")
    assert again["test"] == done["test"] and again["validation"] == done["validation"]
    assert again["history"]["val_loss"] == done["history"]["val_loss"]
    np.testing.assert_array_equal(again["gradients"]["init"], done["gradients"]["init"])
    np.testing.assert_array_equal(again["gradients"]["trained"], done["gradients"]["trained"])


def test_a_failing_run_is_recorded_not_raised(tmp_path):
    doc = adding_doc()
    doc["data"]["source"]["length"] = 1  # refused by the source
    job = {"id": "bad", "layer": "gru", "units": [14], "seed": 0, "length": None, "recipe": doc,
           "run_dir": str(tmp_path / "run"), "result": str(tmp_path / "r.json"),
           "log": str(tmp_path / "log")}  # fmt: skip
    result = cmp._run_worker(job)
    assert result["status"] == "failed"
    assert "data.source.length: must be an integer >= 2" in result["error"]
    assert json.loads(Path(job["result"]).read_text()) == result
    assert not (tmp_path / "run").exists()
