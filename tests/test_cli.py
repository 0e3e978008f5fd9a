"""The command line: exit codes, messages on stderr, results on stdout, nothing lost."""

import io
import json
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import REPO, tiny_recipe, write_recipe, write_wav

from seqkit.cli import cli


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def folder_recipe(tmp_path, root):
    doc = tiny_recipe(root)
    doc["data"]["source"] = {
        "type": "folder",
        "root": str(root),
        "validation_percent": 30,
        "test_percent": 0,
    }
    return write_recipe(tmp_path / "folder.yaml", doc)


def make_tree(root, labels=("yes", "no"), per_label=6):
    for li, label in enumerate(labels):
        for i in range(per_label):
            write_wav(root / label / f"spk{i}_nohash_0.wav", freq=300 + 400 * li, seed=i)


def test_validate_ok_prints_a_summary(tiny):
    path, _ = tiny
    result = invoke("validate", path)
    assert result.exit_code == 0, result.output
    assert "valid (synthetic_tones -> 4 feature steps -> gru -> kws)" in result.stdout


def test_unknown_layer_exits_2_with_did_you_mean(tiny, tmp_path):
    _, doc = tiny
    doc["model"]["layers"] = [{"type": "gruu", "units": 8}]
    result = invoke("train", write_recipe(tmp_path / "bad.yaml", doc))
    assert result.exit_code == 2
    assert "bad.yaml: model.layers[0].type: Unknown layer 'gruu'. Did you mean 'gru'?" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists()


def test_negative_units_exits_2(tiny, tmp_path):
    _, doc = tiny
    doc["model"]["layers"] = [{"type": "gru", "units": -4}]
    result = invoke("validate", write_recipe(tmp_path / "neg.yaml", doc))
    assert result.exit_code == 2
    assert "neg.yaml: model.layers[0].units: must be a positive integer; received -4" in (
        result.stderr
    )


def test_recipe_that_is_not_yaml_exits_2(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("model: {layers: [\n  - type: gru\n")
    result = invoke("train", path)
    assert result.exit_code == 2
    assert "broken.yaml: not valid YAML: line" in result.stderr


def test_missing_recipe_and_unknown_override(tiny, tmp_path):
    result = invoke("validate", tmp_path / "nope.yaml")
    assert result.exit_code == 2 and "nope.yaml: recipe file not found" in result.stderr
    path, _ = tiny
    result = invoke("validate", path, "--set", "train.epochz=3")
    assert result.exit_code == 2
    assert (
        "--set train.epochz: 'train.epochz' does not exist in the recipe. Did you mean 'epochs'?"
        in (result.stderr)
    )


def test_missing_data_folder_exits_1(tmp_path):
    result = invoke(
        "train", folder_recipe(tmp_path, tmp_path / "absent"), "--runs-root", tmp_path / "runs"
    )
    assert result.exit_code == 1
    assert f"Data folder '{tmp_path / 'absent'}' does not exist" in result.stderr
    assert not (tmp_path / "runs").exists()  # the data is read before any folder is made


def test_empty_class_folder_exits_1(tmp_path):
    root = tmp_path / "data"
    make_tree(root)
    (root / "maybe").mkdir()
    result = invoke("train", folder_recipe(tmp_path, root), "--runs-root", tmp_path / "runs")
    assert result.exit_code == 1
    assert f"Class folder '{root / 'maybe'}' has no audio files" in result.stderr


def test_unreadable_and_empty_wavs_are_skipped_with_a_count(tmp_path):
    root = tmp_path / "data"
    make_tree(root)
    (root / "yes" / "junk_nohash_0.wav").write_bytes(b"not a wav file at all")
    write_wav(root / "no" / "empty_nohash_0.wav", seconds=0.0)
    result = invoke("train", folder_recipe(tmp_path, root), "--run-dir", tmp_path / "run")
    assert result.exit_code == 0, result.stderr
    assert "junk_nohash_0.wav: cannot be read as audio" in result.stderr
    assert "empty_nohash_0.wav: the file holds no audio samples" in result.stderr
    assert "Skipped 2 of 14 files that could not be read." in result.stderr
    assert result.stdout.strip().endswith(f"run folder: {tmp_path / 'run'}")


def test_nothing_readable_fails(tmp_path):
    root = tmp_path / "data"
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        (root / label / "x_nohash_0.wav").write_bytes(b"RIFF")
    result = invoke("train", folder_recipe(tmp_path, root), "--runs-root", tmp_path / "runs")
    assert result.exit_code == 1
    assert "No usable audio: all 2 files were skipped" in result.stderr


def test_existing_run_folder_is_never_overwritten_without_flag(tiny, tmp_path):
    path, _ = tiny
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    result = invoke("train", path, "--run-dir", mine)
    assert result.exit_code == 1
    assert f"Run folder '{mine}' already exists; pass --overwrite" in result.stderr
    # Not a run folder: refused even with --overwrite, and untouched.
    result = invoke("train", path, "--run-dir", mine, "--overwrite")
    assert result.exit_code == 1
    assert "is not a seqkit run folder" in result.stderr
    assert (mine / "notes.txt").read_text() == "keep me"


def test_overwrite_replaces_a_previous_run(tiny, tmp_path):
    path, _ = tiny
    run = tmp_path / "run"
    first = invoke("train", path, "--run-dir", run, "--set", "train.epochs=1")
    assert first.exit_code == 0, first.stderr
    second = invoke("train", path, "--run-dir", run, "--overwrite", "--set", "train.epochs=1")
    assert second.exit_code == 0, second.stderr
    assert json.loads((run / "run.json").read_text())["status"] == "completed"
    assert "validation accuracy:" in second.stdout


def test_list_shows_names_and_sources():
    result = invoke("list", "layers")
    assert result.exit_code == 0
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert {"gru", "keras_gru", "lstm", "rnn"} <= set(lines)
    assert "seqkit (built-in)" in lines["gru"] and "seqkit.layers:GRU" in lines["gru"]
    try:
        import seqkit_example  # noqa: F401
    except ImportError:
        return
    assert "seqkit-example 0.1.0" in lines["mgu"]


def test_explain_prints_the_worked_example_and_the_slips():
    result = invoke("explain")
    assert result.exit_code == 0
    out = result.stdout
    assert (
        "h1 = z1 * h0 + (1 - z1) * h~1 = [0.0000, 0.0000] + [0.1680, 0.2357] = [0.1680, 0.2357]"
        in out
    )
    assert "h~3 = tanh(...)" in out and "[0.4504, 0.5229]" in out
    assert "update gate z: printed [0.655, 0.71], the equations give [0.6365, 0.6479]" in out
    assert "state h: printed [0.155, 0.191], the equations give [0.1680, 0.2357]" in out
    assert "gives h3 = [0.4504, 0.5229]" in out


def test_explain_needs_both_arguments(tmp_path):
    result = invoke("explain", tmp_path)
    assert result.exit_code == 2 and "give both RUN_DIR and AUDIO" in result.stderr


def test_explain_on_a_folder_that_is_not_a_run(tmp_path):
    wav = write_wav(tmp_path / "a.wav")
    result = invoke("explain", tmp_path, wav)
    assert result.exit_code == 1
    assert f"'{tmp_path}' is not a seqkit run folder (no run.json)" in result.stderr


def test_console_script_help_lists_exit_codes_and_keeps_stderr_clean():
    result = subprocess.run(
        [sys.executable, "-m", "seqkit", "--help"], capture_output=True, text=True, cwd=REPO
    )
    assert result.returncode == 0
    assert "Exit codes: 0 ok, 1 run failed, 2 usage error or invalid recipe, 130" in " ".join(
        result.stdout.split()
    )
    result = subprocess.run(
        [sys.executable, "-m", "seqkit", "validate", "recipes/quickstart.yaml"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # TensorFlow's start-up lines are kept out


@pytest.mark.parametrize("args", [["train"], ["list", "gadgets"], ["--bogus"]])
def test_usage_errors_exit_2(args):
    assert invoke(*args).exit_code == 2


# -- nothing a user owns is lost ---------------------------------------------------------------


def _good_run(tiny, run):
    path, _ = tiny
    result = invoke("-q", "train", path, "--run-dir", run, "--set", "train.epochs=1")
    assert result.exit_code == 0, result.stderr
    return path


def test_overwrite_refuses_a_run_folder_holding_user_files(tiny, tmp_path):
    run = tmp_path / "run"
    path = _good_run(tiny, run)
    (run / "notes.txt").write_text("mine")
    result = invoke("train", path, "--run-dir", run, "--overwrite")
    assert result.exit_code == 1
    assert "holds files seqkit did not write (notes.txt); refusing to replace it" in result.stderr
    assert (run / "notes.txt").read_text() == "mine" and (run / "model.keras").is_file()


def test_overwrite_refuses_a_run_json_seqkit_did_not_write(tiny, tmp_path):
    path, _ = tiny
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "run.json").write_text("{}")
    result = invoke("train", path, "--run-dir", folder, "--overwrite")
    assert result.exit_code == 1 and "is not a seqkit run folder" in result.stderr
    assert (folder / "run.json").read_text() == "{}"


def test_overwrite_refuses_a_symlink(tiny, tmp_path):
    path, _ = tiny
    (tmp_path / "target").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "target")
    result = invoke("train", path, "--run-dir", tmp_path / "link", "--overwrite")
    assert result.exit_code == 1 and "is a symbolic link; refusing to replace it" in result.stderr


def test_a_failed_overwrite_keeps_the_previous_run(tiny, tmp_path, monkeypatch):
    import importlib

    import seqkit.errors

    # The module (seqkit.training's attribute `train` is the function of that name).
    train_module = importlib.import_module("seqkit.training.trainer")
    run = tmp_path / "run"
    path = _good_run(tiny, run)
    before = (run / "model.keras").read_bytes()

    def boom(*args, **kwargs):
        raise seqkit.errors.DataError("simulated failure in the middle of training")

    monkeypatch.setattr(train_module, "_train_into", boom)
    result = invoke("train", path, "--run-dir", run, "--overwrite")
    assert result.exit_code == 1 and "simulated failure" in result.stderr
    assert "The previous run in" in result.stderr
    assert (run / "model.keras").read_bytes() == before
    assert json.loads((run / "run.json").read_text())["status"] == "completed"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "run", "tiny.yaml"]


def test_run_folder_inside_the_data_folder_is_refused(tiny, tmp_path):
    path, doc = tiny
    result = invoke("train", path, "--runs-root", tmp_path / "data")
    assert result.exit_code == 1
    assert "would be inside the data folder" in result.stderr
    assert not list((tmp_path / "data").glob("tiny-*"))


def test_quiet_prints_only_results(tiny, tmp_path):
    path, _ = tiny
    result = invoke("-q", "train", path, "--run-dir", tmp_path / "run", "--set", "train.epochs=1")
    assert result.exit_code == 0
    assert result.stderr == ""
    assert result.stdout.splitlines()[-1] == f"run folder: {tmp_path / 'run'}"


def test_explain_protects_an_existing_out_file_and_needs_the_audio(tiny, tmp_path):
    run = tmp_path / "run"
    _good_run(tiny, run)
    wav = next((tmp_path / "data" / "ai").glob("*.wav"))
    mine = tmp_path / "mine.png"
    mine.write_bytes(b"mine")
    result = invoke("explain", run, wav, "--out", mine)
    assert result.exit_code == 2 and "exists; pass --overwrite" in result.stderr
    assert mine.read_bytes() == b"mine"
    result = invoke("explain", run, tmp_path / "missing.wav")
    assert result.exit_code == 2 and "does not exist" in result.stderr
    result = invoke("explain", run, wav)
    assert result.exit_code == 0
    assert (run / f"gates-ai-{wav.stem}.png").is_file()


def test_validate_catches_what_only_the_whole_model_or_the_audio_shows(tiny, tmp_path):
    _, doc = tiny
    cases = {
        'model.layers: The name "x" is used 2 times': {
            "model": {
                "layers": [
                    {"type": "gru", "units": 4, "name": "x"},
                    {"type": "gru", "units": 4, "name": "x"},
                ]
            }
        },
        "model.layers[0]: returns several tensors (return_state: true?)": {
            "model": {"layers": [{"type": "gru", "units": 4, "return_state": True}]}
        },
        "features[2].fmax: must be <= half the sample rate (4000 Hz); received 6000": {
            "features": doc["features"][:2]
            + [{"type": "melspectrogram", "n_fft": 256, "hop_length": 128, "fmax": 6000}]
        },
    }
    for i, (message, change) in enumerate(cases.items()):
        bad = {**doc, **change}
        result = invoke("validate", write_recipe(tmp_path / f"bad{i}.yaml", bad))
        assert result.exit_code == 2, (message, result.output)
        assert message in result.stderr, result.stderr


def test_labels_with_spaces_survive_the_run_folder(tmp_path):
    from seqkit.runs import Run

    root = tmp_path / "data"
    make_tree(root, labels=("turn on", "turn off"))
    result = invoke("-q", "train", folder_recipe(tmp_path, root), "--run-dir", tmp_path / "run")
    assert result.exit_code == 0, result.stderr
    assert Run(tmp_path / "run").labels == ["turn off", "turn on"]


# -- progress on stderr, shared options -----------------------------------------------------------


EPOCH_LINE = re.compile(r"epoch (\d+)/(\d+)(  \w+ -?[\d.]+(e[-+]\d+)?)+  \(\d+\.\d s, \d+ steps\)")


def test_train_off_a_terminal_prints_one_plain_line_per_epoch(tiny, tmp_path):
    path, _ = tiny
    result = invoke("train", path, "--run-dir", tmp_path / "run")  # CliRunner: not a terminal
    assert result.exit_code == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("epoch ")]
    assert len(lines) == 2, result.stderr
    for i, line in enumerate(lines, 1):
        match = EPOCH_LINE.fullmatch(line)
        assert match and match.group(1, 2) == (str(i), "2"), line
        assert "  accuracy " in line and "  loss " in line and "  learning_rate " in line
    assert "\r" not in result.stderr  # no bars off a terminal
    assert result.stderr.splitlines()[0] == f"seqkit: run folder: {tmp_path / 'run'}"


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_is_drawn_as_bars_on_a_terminal_as_lines_off_it_and_not_with_q():
    from seqkit.cli.render import CliReporter
    from seqkit.progress import EpochEnd

    end = EpochEnd(1, 2, {"accuracy": 0.2, "loss": 1.7123456}, 4.04, 10)
    assert end.line() == "epoch 1/2  accuracy 0.2  loss 1.712  (4.0 s, 10 steps)"
    out = _Tty()
    with CliReporter(stream=out) as reporter:
        count = reporter.counter("features", "example")
        for i in range(1, 5):
            count(i, 4)
        reporter.epoch_end(end)
        reporter.epoch_end(EpochEnd(2, 2, end.logs, 1.0, 10, final=True))
    text = out.getvalue()
    assert "\rfeatures: 100%" in text and "4/4" in text  # redrawn in place, then left
    assert end.line() + "\n" in text and "\repoch 2/2  " in text
    assert "training:" in text  # the epochs' bar
    plain = io.StringIO()
    reporter = CliReporter(stream=plain)
    assert reporter.counter("features") is None  # no bars off a terminal
    reporter.epoch_end(end)
    assert plain.getvalue() == end.line() + "\n"  # the plain line, as it was before bars
    quiet = _Tty()
    reporter = CliReporter(quiet=True, stream=quiet)
    assert reporter.counter("features") is None
    reporter.epoch_end(end)
    assert quiet.getvalue() == ""


def test_set_is_one_shared_option_of_train_validate_and_compare(tiny, tmp_path, monkeypatch):
    from seqkit.cli import cli as group

    path, _ = tiny
    monkeypatch.chdir(tmp_path)  # where runs/ would go
    want = "--set train.epochz: 'train.epochz' does not exist in the recipe. Did you mean 'epochs'?"
    for command in ("train", "validate", "compare"):
        result = invoke(command, path, "--set", "train.epochz=3")
        assert result.exit_code == 2 and want in result.stderr, (command, result.stderr)
        option = next(p for p in group.commands[command].params if p.name == "overrides")
        assert option.opts == ["--set"] and option.multiple and option.metavar == "KEY=VALUE"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.yaml"]  # nothing made
