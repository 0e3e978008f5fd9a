"""`seqkit evaluate RUN --data SOURCE` (issue 14): a run folder or an export on other data, its
labels matched to the model's by name or by --label-map, the report in a file of its own."""

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import tiny_recipe

from seqkit.cli import cli
from seqkit.errors import ParameterError
from seqkit.evaluate import map_labels, parse_label_map
from seqkit.inference import load_for_inference, predict_features
from seqkit.recipe import validate_dict
from seqkit.training import train

RENAMED = {"ai": "A", "ia": "I", "u": "U", "noise": "N"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaldata")
    mp = pytest.MonkeyPatch()
    mp.setenv("SEQKIT_CACHE", str(root / "cache"))
    run = train(validate_dict(tiny_recipe(root / "data", epochs=2)), run_dir=root / "run", verbose=0)
    other = root / "other"  # the same clips, in label folders with other names
    for label, name in RENAMED.items():
        shutil.copytree(root / "data" / label, other / name)
    yield run, root / "data", other
    mp.undo()


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def direct_accuracy(target, data):
    """The oracle: every clip of ``data`` through load_for_inference, scored by folder name."""
    model = load_for_inference(target)
    files = sorted(p for p in data.glob("*/*.wav"))
    probs = predict_features(model, [model.features(f) for f in files])
    truth = [model.labels.index(f.parent.name) for f in files]
    return float(np.mean(probs.argmax(axis=1) == np.array(truth))), len(files)


def test_evaluate_on_other_data_by_name_and_by_label_map(trained):
    run, data, other = trained
    acc, n = direct_accuracy(run, data)
    result = invoke("evaluate", run, "--data", f"{{type: folder, root: {data}}}", "--name", "same")
    assert result.exit_code == 0, result.output
    report = json.loads((run / "evaluations" / "same.json").read_text())
    assert report["examples"] == n and report["accuracy"] == pytest.approx(acc)
    assert (run / "evaluations" / "same-confusion.png").is_file()
    assert f"same: accuracy {acc:.4f} ({n} clips)" in result.stdout
    mapping = ",".join(f"{v}={k}" for k, v in RENAMED.items())
    result = invoke("evaluate", run, "--data", f"{{type: folder, root: {other}}}",
                    "--label-map", mapping, "--name", "renamed")  # fmt: skip
    assert result.exit_code == 0, result.output
    renamed = json.loads((run / "evaluations" / "renamed.json").read_text())
    assert renamed["accuracy"] == pytest.approx(acc) and renamed["examples"] == n
    assert renamed["data"]["label_map"] == {v: k for k, v in RENAMED.items()}
    assert renamed["speakers"]["speakers"] == report["speakers"]["speakers"] == 10


def test_an_export_is_evaluated_on_other_data_too(trained, tmp_path):
    run, data, _ = trained
    export = tmp_path / "m.tflite"
    assert invoke("export", run, "--format", "tflite", "--out", export).exit_code == 0
    acc, n = direct_accuracy(run, data)
    result = invoke("evaluate", export, "--data", f"{{type: folder, root: {data}}}", "--name", "x")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "m.tflite.evaluations" / "x.json").read_text())
    assert report["accuracy"] == pytest.approx(acc) and report["examples"] == n


def test_refused_mappings_and_unknown_words(trained, tmp_path):
    run, _, other = trained
    result = invoke("evaluate", run, "--data", f"{{type: folder, root: {other}}}",
                    "--label-map", "A=zzz")  # fmt: skip
    assert result.exit_code == 2
    assert "--label-map maps to 'zzz', which the model does not have; its labels: ai, ia, u, noise" in result.stderr
    result = invoke("evaluate", run, "--data", f"{{type: folder, root: {other}}}",
                    "--label-map", "A=ai,I=ia,U=u")  # N (noise) is left unmapped  # fmt: skip
    assert result.exit_code == 2
    assert "The model has no label for 'N' and no '_unknown_' class" in result.stderr
    assert not (run / "evaluations" / "folder-").exists()
    result = invoke("evaluate", run, "--data", "{type: no_such_source}")
    assert result.exit_code == 2 and "Unknown data source 'no_such_source'" in result.stderr
    result = invoke("evaluate", run, "--label-map", "A=ai")
    assert result.exit_code == 2 and "--label-map and --name go with --data" in result.output


def test_map_labels_counts_unknown_words_as_unknown():
    labels = ["_silence_", "_unknown_", "yes", "no"]
    assert map_labels(["yes", "cat", "dog"], labels, {}) == {
        "yes": "yes", "cat": "_unknown_", "dog": "_unknown_"}  # fmt: skip
    assert map_labels(["ja"], labels, {"ja": "yes"}) == {"ja": "yes"}
    with pytest.raises(ParameterError, match=r"has no label for 'cat', 'dog' and no '_unknown_'"):
        map_labels(["cat", "dog"], ["yes", "no"], {})
    assert parse_label_map("zero=0, one=1") == {"zero": "0", "one": "1"}
    with pytest.raises(ParameterError, match=r"expected SOURCE=MODEL pairs .* received 'zero'"):
        parse_label_map("zero")
