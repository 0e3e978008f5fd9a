"""``seqkit evaluate`` (same numbers as training, PNG, TensorBoard image, metrics.json merged,
foreign files kept) and the kws task's TensorBoard media during training (confusion matrix
image and validation clips with their predicted label, read back from the event files)."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import tiny_recipe

from seqkit.build import load_data
from seqkit.cli import cli
from seqkit.recipe import validate_dict
from seqkit.training import train

EPOCHS = 2


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    mp = pytest.MonkeyPatch()
    mp.setenv("SEQKIT_CACHE", str(root / "cache"))
    recipe = validate_dict(tiny_recipe(root / "data", epochs=EPOCHS))
    path = train(recipe, run_dir=root / "run", verbose=0)
    yield path, recipe
    mp.undo()


@pytest.fixture
def run(trained, tmp_path, monkeypatch):
    """A private copy of the trained run (tests change its files)."""
    path, recipe = trained
    monkeypatch.setenv("SEQKIT_CACHE", str(path.parent / "cache"))
    copy = tmp_path / "run"
    shutil.copytree(path, copy)
    return copy, recipe


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def events(logdir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(logdir), size_guidance={"tensors": 0, "images": 0, "audio": 0})
    ea.Reload()
    return ea


def tensor_values(ea, tag):
    from tensorboard.util.tensor_util import make_ndarray

    return [(e.step, make_ndarray(e.tensor_proto)) for e in ea.Tensors(tag)]


def png_size(blob: bytes):
    from PIL import Image

    with Image.open(io.BytesIO(blob)) as im:
        return im.size


# -- seqkit evaluate -----------------------------------------------------------------------------


@pytest.mark.parametrize("split", ["test", "validation"])
def test_evaluate_reproduces_the_training_numbers(run, split):
    path, _ = run
    before = json.loads((path / "metrics.json").read_text())
    result = invoke("evaluate", path, "--split", split, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    trained = before[split]
    for key in ("accuracy", "examples", "per_class", "confusion_matrix", "misclassified"):
        assert report[key] == trained[key], key
    assert report["loss"] == pytest.approx(trained["loss"], rel=1e-6)
    after = json.loads((path / "metrics.json").read_text())
    assert after[split] == report
    for key in before:  # everything else is kept
        if key != split:
            assert after[key] == before[key], key
    assert after["evaluations"][split]["png"] == f"confusion-{split}.png"


def test_evaluate_prints_a_report_and_writes_png_and_tensorboard(run):
    path, recipe = run
    result = invoke("evaluate", path)
    assert result.exit_code == 0, result.output
    metrics = json.loads((path / "metrics.json").read_text())
    test = metrics["test"]
    out = result.stdout
    assert out.startswith(f"test: accuracy {test['accuracy']:.4f} ({test['examples']} clips)")
    assert "label     precision  recall     f1  support" in out
    assert "confusion matrix (rows: true label, columns: predicted):" in out
    assert f"misclassified: {len(test['misclassified'])} of {test['examples']}" in out
    for m in test["misclassified"]:
        assert m["path"] in out
    png = path / "confusion-test.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    with Image.open(png) as im:
        assert im.text["Software"].startswith("seqkit ")
        assert im.size[0] > 300 and im.size[1] > 300
    ea = events(path / "logs" / "evaluation")
    (step, value), = tensor_values(ea, "confusion_matrix/test")  # fmt: skip
    assert step == metrics["best_epoch"]
    width, height = (int(v) for v in value[:2])
    assert png_size(value[2]) == (width, height)
    # A second evaluation replaces seqkit's own PNG.
    assert invoke("evaluate", path).exit_code == 0


def test_evaluate_never_replaces_a_file_seqkit_did_not_write(run):
    path, _ = run
    foreign = path / "confusion-test.png"
    foreign.write_bytes(b"my own figure")
    before = (path / "metrics.json").read_text()
    result = invoke("evaluate", path)
    assert result.exit_code == 1
    assert f"'{foreign}' exists and was not written by seqkit; it is not replaced." in (
        result.stderr
    )
    assert foreign.read_bytes() == b"my own figure"
    assert (path / "metrics.json").read_text() == before


def test_evaluate_usage_errors(run, tmp_path):
    path, _ = run
    result = invoke("evaluate", path, "--split", "dev")
    assert result.exit_code == 2
    assert (
        "--split 'dev': the run's data has no such split; available: train, validation, test"
        in (result.stderr)
    )
    result = invoke("evaluate", tmp_path / "nowhere")
    assert result.exit_code == 1 and "is not a seqkit run folder" in result.stderr


# -- TensorBoard media during training -----------------------------------------------------------


def test_training_writes_the_confusion_matrix_and_clips_each_epoch(trained):
    path, recipe = trained
    ea = events(path / "logs" / "validation_media")
    tags = set(ea.Tags()["tensors"])
    assert "confusion_matrix" in tags
    images = tensor_values(ea, "confusion_matrix")
    assert [s for s, _ in images] == list(range(EPOCHS))
    for _, value in images:
        assert png_size(value[2]) == (int(value[0]), int(value[1]))
    labels = (path / "labels.txt").read_text().split()
    val = load_data(recipe).splits["validation"]
    clips = sorted(t for t in tags if t.startswith("clip_") and t.endswith("/prediction"))
    assert len(clips) == min(4, len(set(val.y.tolist())))
    for k, tag in enumerate(clips):
        texts = tensor_values(ea, tag)
        assert [s for s, _ in texts] == list(range(EPOCHS))
        text = texts[-1][1].item().decode()
        assert text.split("**")[1] in labels and "true " in text
        (step, audio), *_ = tensor_values(ea, f"clip_{k}")
        import soundfile as sf

        wave, sr = sf.read(io.BytesIO(audio[0][0]))
        assert sr == 8000 and len(wave) == 4000  # the load step's output: 0.5 s at 8 kHz


def test_the_media_callback_labels_clips_with_the_models_predictions(tmp_path, monkeypatch):
    """Calling the callback directly: the predicted label it writes is the model's."""
    import keras

    from seqkit.build import build_model, load_data
    from seqkit.speech.task import KeywordSpotting

    monkeypatch.setenv("SEQKIT_CACHE", str(tmp_path / "cache"))
    recipe = validate_dict(tiny_recipe(tmp_path / "data"))
    task = KeywordSpotting()
    data = load_data(recipe, task=task)
    keras.utils.set_random_seed(0)
    model = build_model(recipe, task, data.input_shape, data.info, data.splits["train"].x)
    (callback,) = task.callbacks(tmp_path / "run", data)
    callback.set_model(model)
    callback.on_epoch_end(4)
    val, labels = data.splits["validation"], data.info["labels"]
    probs = model.predict(val.x, verbose=0)
    ea = events(tmp_path / "run" / "logs" / "validation_media")
    for k, (row, _, _, name) in enumerate(task._media_clips(data)):
        (step, text), = tensor_values(ea, f"clip_{k}/prediction")  # fmt: skip
        want = labels[int(np.argmax(probs[row]))]
        assert step == 4
        assert text.item().decode().startswith(f"predicted **{want}** ({probs[row].max():.2f})")
        assert name in text.item().decode()


# -- a damaged run folder: reported, never trusted (integrity records) ---------------------------

RECORDED = ["data.json", "history.csv", "labels.txt", "metrics.json", "model.keras", "recipe.yaml"]


def sha(path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def forget_records(path):
    """Make ``path`` look like a run written before seqkit recorded its files' hashes."""
    info = json.loads((path / "run.json").read_text())
    info.pop("files")
    (path / "run.json").write_text(json.dumps(info))


def one_error_line(result, message: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.stderr == f"error: {message}\n"


def test_run_json_records_every_file_and_evaluate_keeps_the_record_true(run):
    from seqkit.runs import Run

    path, _ = run
    files = json.loads((path / "run.json").read_text())["files"]
    assert sorted(files) == RECORDED
    assert all(files[name] == sha(path / name) for name in RECORDED)
    assert invoke("evaluate", path).exit_code == 0  # rewrites metrics.json, writes a PNG
    files = json.loads((path / "run.json").read_text())["files"]
    assert sorted(files) == sorted([*RECORDED, "confusion-test.png"])
    assert files["metrics.json"] == sha(path / "metrics.json")
    assert files["confusion-test.png"] == sha(path / "confusion-test.png")
    assert Run(path).metrics["evaluations"]["test"]["png"] == "confusion-test.png"
    assert invoke("evaluate", path, "--split", "validation").exit_code == 0  # not damaged
    (path / "metrics.json").write_text("{}\n")  # edited by hand: the record says so
    result = invoke("evaluate", path)
    one_error_line(
        result,
        f"'{path / 'metrics.json'}' does not match the SHA-256 recorded in run.json: the file "
        "is corrupt or was replaced. Restore it, or train the run again.",
    )


def test_a_run_json_cut_short_is_a_damaged_run_not_a_skipped_check(run):
    path, _ = run
    (path / "run.json").write_text('{"status": ')
    one_error_line(
        invoke("evaluate", path),
        f"Run folder '{path}' is damaged: its run.json is not valid JSON (Expecting value: line "
        "1 column 12 (char 11)). Restore it, or train the run again.",
    )


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda info: [info], "holds list, not an object"),
        (lambda info: {k: v for k, v in info.items() if k != "status"}, "has no 'status'"),
        (
            lambda info: info | {"status": "done"},
            "has status 'done', not one of running, completed, failed, interrupted",
        ),
        (lambda info: info | {"versions": "3"}, "has a str at 'versions'"),
        (
            lambda info: info | {"files": {"model.keras": "abc"}},
            "records no SHA-256 for 'model.keras' under 'files'",
        ),
    ],
    ids=["list", "no-status", "bad-status", "bad-versions", "bad-hash"],
)
def test_a_run_json_without_the_keys_seqkit_writes_is_a_damaged_run(run, change, problem):
    path, _ = run
    info = json.loads((path / "run.json").read_text())
    (path / "run.json").write_text(json.dumps(change(info)))
    one_error_line(
        invoke("evaluate", path),
        f"Run folder '{path}' is damaged: its run.json {problem}. Restore it, or train the run "
        "again.",
    )


def test_a_truncated_model_is_named_not_called_missing(run):
    path, _ = run
    model = path / "model.keras"
    original = model.read_bytes()
    model.write_bytes(original[:3000])
    one_error_line(
        invoke("evaluate", path),
        f"'{model}' does not match the SHA-256 recorded in run.json: the file is corrupt or was "
        "replaced. Restore it, or train the run again.",
    )
    forget_records(path)  # an older run: no hash to compare, so the file itself is looked at
    one_error_line(
        invoke("evaluate", path),
        f"'{model}' is not a .keras file (not a zip archive): it is damaged or truncated. "
        "Restore it, or write it again.",
    )
    damaged = bytearray(original)  # a whole zip, but its weights fail their CRC-32
    damaged[len(damaged) // 2] ^= 0x01
    model.write_bytes(bytes(damaged))
    result = invoke("evaluate", path)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"error: '{model}' could not be loaded (BadZipFile: Bad CRC")
    assert result.stderr.endswith(
        "it is damaged, or needs a plugin that is not installed. Restore it, or train the run "
        "again.\n"
    )
    assert result.stderr.count("\n") == 1 and "this is a bug" not in result.stderr


def test_a_recipe_with_a_python_tag_inside_a_run_is_refused(run):
    import subprocess
    import sys

    path, _ = run
    recipe = path / "recipe.yaml"
    recipe.write_text(recipe.read_text() + "evil: !!python/object/apply:os.system ['true']\n")
    one_error_line(
        invoke("evaluate", path),
        f"'{recipe}' does not match the SHA-256 recorded in run.json: the file is corrupt or "
        "was replaced. Restore it, or train the run again.",
    )
    forget_records(path)  # no hash to compare: the recipe reader refuses the tag itself
    done = subprocess.run(
        [sys.executable, "-m", "seqkit", "evaluate", str(path)], capture_output=True, text=True
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith(
        f"error: Run folder '{path}' is damaged: its recipe.yaml is not a valid recipe ("
    )
    assert "python/object/apply" in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_a_run_without_records_still_evaluates(run):
    path, _ = run
    forget_records(path)
    result = invoke("evaluate", path)
    assert result.exit_code == 0, result.output
    files = json.loads((path / "run.json").read_text())["files"]  # what evaluate rewrote
    assert sorted(files) == ["confusion-test.png", "metrics.json"]
    assert files["metrics.json"] == sha(path / "metrics.json")
