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
