"""The keyword-spotting recipes of issue 14 (item 7): recipes/speech_commands_v2.yaml and
recipes/my_words.yaml pass `seqkit validate` (v2 against a generated folder of the release's
layout), and `seqkit export --streaming` refuses a `cmvn` front end before doing any work."""

from pathlib import Path

import yaml
from click.testing import CliRunner
from conftest import REPO, tiny_recipe, write_recipe, write_wav

from seqkit.build import build
from seqkit.cli import cli
from seqkit.recipe import load_recipe

V2 = REPO / "recipes" / "speech_commands_v2.yaml"
MY_WORDS = REPO / "recipes" / "my_words.yaml"
WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def speech_commands_layout(root: Path) -> Path:
    """The v0.02 layout in miniature: word folders, the two list files, _background_noise_/."""
    for k, word in enumerate(WORDS + ("bed", "visual")):
        for s in range(3):
            write_wav(root / word / f"{s:08x}_nohash_0.wav", seconds=1.0, freq=200 + 40 * k, seed=s)
    (root / "validation_list.txt").write_text("yes/00000001_nohash_0.wav\nbed/00000001_nohash_0.wav\n")
    (root / "testing_list.txt").write_text("yes/00000002_nohash_0.wav\nno/00000002_nohash_0.wav\n")
    write_wav(root / "_background_noise_" / "white_noise.wav", seconds=3.0, freq=0.0, seed=9)
    return root


def test_speech_commands_v2_validates_against_the_release_layout(tmp_path):
    root = speech_commands_layout(tmp_path / "sc")
    result = invoke("validate", V2, "--set", f"data.source.root={root}")
    assert result.exit_code == 0, result.output
    assert "valid (speech_commands -> 3 feature steps -> gru, dropout -> kws)" in result.output
    recipe = load_recipe(V2, [f"data.source.root={root}"])
    source = build(recipe).parts.source
    assert source.label_names() == ["_silence_", "_unknown_", *WORDS]
    # the release's own noise feeds the background_noise augmentation (noise: source)
    assert [p.name for p in source.background_noise_files()] == ["white_noise.wav"]
    assert [a.type for a in recipe.data.augment] == [
        "time_shift", "speed", "gain", "background_noise", "spec_augment"]
    assert recipe.data.augment[3].params["noise"] == "source"
    header = V2.read_text()
    assert "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz" in header
    assert "2.3 GB" in header and "seqkit train recipes/speech_commands_v2.yaml" in header


def test_my_words_validates_as_a_mix_of_recordings_and_synthetic_speech(tmp_path):
    result = invoke("validate", MY_WORDS)
    assert result.exit_code == 0, result.output
    assert "valid (mixed -> 3 feature steps -> gru, dropout -> kws)" in result.output
    recipe = load_recipe(MY_WORDS)
    mix = recipe.checked["data.source"]
    assert [(p.type, p.name, p.splits) for p in mix.parts] == [
        ("folder", "my", ("train", "validation", "test")),
        ("synthetic_speech", "synthetic_speech", ("train",)),
    ]
    words = recipe.data.sources[1].params["words"]
    assert words == ["lamp", "music", "stop", "next"]
    assert "seqkit train recipes/my_words.yaml" in MY_WORDS.read_text()


def test_export_streaming_refuses_cmvn_before_any_work(tmp_path):
    doc = tiny_recipe(tmp_path / "data", epochs=1)
    doc["features"].append({"type": "cmvn"})
    path = write_recipe(tmp_path / "cmvn.yaml", doc)
    run = tmp_path / "run"
    assert invoke("train", path, "--run-dir", run).exit_code == 0
    before = sorted(p.name for p in run.iterdir())
    result = invoke("export", run, "--format", "tflite", "--streaming")
    assert result.exit_code == 2
    assert (
        f"--streaming: the feature steps of '{run}' (features[4] (cmvn)) cannot run frame by "
        "frame, so this run cannot be exported for streaming: 'cmvn' normalises each feature by "
        "the whole clip's mean and variance"
    ) in " ".join(result.output.split())
    assert "`pcen`" in result.output
    assert sorted(p.name for p in run.iterdir()) == before  # no export folder, nothing written
    result = invoke("export", run, "--format", "keras")  # a whole-clip export is fine
    assert result.exit_code == 0, result.output
    assert yaml.safe_load((run / "export" / "model.keras.json").read_text())["streaming"] is False
