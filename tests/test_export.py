"""seqkit export: every format's outputs against the Keras model's on the same inputs.

Oracles: the Keras model itself (whole clip), and for streaming exports the whole-clip scores
after all frames were fed one by one. Float exports: max abs difference <= 1e-5.
"""

import hashlib
import json
import subprocess
import sys

import keras
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import tiny_recipe

import seqkit.layers as sl
from seqkit.cli import cli
from seqkit.errors import ParameterError, RunError
from seqkit.export import export_model, load_exported, streaming_model

T, F, CLASSES = 12, 6, 3
TOL = 1e-5


def make_model(*layers, normalize=True, seed=0):
    """Input "features" -> Normalization -> layers -> Dense "scores" (as build_model makes),
    with random weights (biases included) so every term of every equation counts."""
    rng = np.random.default_rng(seed)
    inp = keras.Input((T, F), name="features")
    x = inp
    if normalize:
        norm = keras.layers.Normalization(axis=-1, name="normalize")
        norm.adapt(rng.normal(2.0, 3.0, size=(200, F)).astype("float32"))
        x = norm(x)
    for layer in layers:
        x = layer(x)
    model = keras.Model(inp, keras.layers.Dense(CLASSES, activation="softmax", name="scores")(x))
    for layer in model.layers:
        if layer.name != "normalize" and layer.weights:
            layer.set_weights(
                [rng.normal(0, 0.5, w.shape).astype("float32") for w in layer.weights]
            )
    return model


def clips(n=5, seed=1):
    return np.random.default_rng(seed).normal(2.0, 3.0, size=(n, T, F)).astype("float32")


def keras_scores(model, x):
    return np.asarray(model(x, training=False))


MODELS = {
    "gru_reset_before": lambda: (sl.GRU(5),),
    "gru_reset_after": lambda: (sl.GRU(5, reset_after=True),),
    "keras_gru": lambda: (keras.layers.GRU(5),),
    "lstm": lambda: (keras.layers.LSTM(5),),
    "simple_rnn": lambda: (keras.layers.SimpleRNN(5),),
    "stacked": lambda: (
        sl.GRU(7, return_sequences=True),
        keras.layers.Dense(4, activation="relu"),
        keras.layers.Dropout(0.5),
        keras.layers.LSTM(5),
    ),
}


# -- the streaming model itself ------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_streaming_model_frame_by_frame_equals_the_whole_clip(kind):
    model = make_model(*MODELS[kind]())
    step = streaming_model(model)
    assert [t.name for t in step.inputs][0] == "frame"
    x = clips()
    states = [np.zeros((len(x), t.shape[-1]), "float32") for t in step.inputs[1:]]
    for t in range(T):
        out = step([x[:, t], *states], training=False)
        states = [np.asarray(out["next_" + i.name]) for i in step.inputs[1:]]
    want = keras_scores(model, x)
    assert np.abs(np.asarray(out["scores"]) - want).max() <= TOL
    assert np.abs(want).max() > 0.1  # not a degenerate model


def test_a_plugin_cell_streams_and_converts_too(tmp_path):
    mgu = pytest.importorskip("seqkit_example.layers")
    model = make_model(mgu.MGU(5))
    x = clips()
    for streaming in (False, True):
        path = tmp_path / f"m{int(streaming)}.tflite"
        diff, _ = export_and_compare(model, "tflite", path, streaming, x)
        assert diff <= TOL


def test_streaming_states_are_named_per_layer_and_sized():
    model = make_model(sl.GRU(7, return_sequences=True, name="g"), keras.layers.LSTM(5, name="l"))
    step = streaming_model(model)
    assert {t.name: t.shape[-1] for t in step.inputs} == {
        "frame": F,
        "g_state0": 7,
        "l_state0": 5,
        "l_state1": 5,
    }
    assert set(step.output) == {"scores", "next_g_state0", "next_l_state0", "next_l_state1"}


@pytest.mark.parametrize(
    "layers, match",
    [
        (lambda: (keras.layers.Bidirectional(sl.GRU(4)),), "backwards as well as forwards"),
        (lambda: (sl.GRU(4, go_backwards=True),), "go_backwards"),
        (
            lambda: (sl.GRU(4, return_sequences=True), keras.layers.GlobalAveragePooling1D()),
            "pooling: last",
        ),
        (lambda: (keras.layers.Conv1D(4, 3),), "frame by frame"),
    ],
)
def test_streaming_refuses_layers_that_need_the_whole_clip(layers, match):
    with pytest.raises(ParameterError, match=match):
        streaming_model(make_model(*layers()))


# -- formats -------------------------------------------------------------------------------------


def export_and_compare(model, fmt, path, streaming, x):
    result = export_model(model, fmt, path, streaming=streaming)
    assert result.path == path and result.size > 0
    exported = load_exported(path)
    assert exported.streaming == streaming
    got = exported.predict(x)
    return np.abs(got - keras_scores(model, x)).max(), exported


@pytest.mark.parametrize("kind", ["gru_reset_before", "gru_reset_after", "lstm", "simple_rnn"])
@pytest.mark.parametrize("streaming", [False, True], ids=["clip", "stream"])
def test_tflite_float_matches_keras(kind, streaming, tmp_path):
    model = make_model(*MODELS[kind]())
    diff, _ = export_and_compare(model, "tflite", tmp_path / "m.tflite", streaming, clips())
    assert diff <= TOL


def test_tflite_step_carries_the_states_of_the_keras_streaming_model(tmp_path):
    model = make_model(*MODELS["stacked"]())
    export_model(model, "tflite", tmp_path / "s.tflite", streaming=True)
    exported = load_exported(tmp_path / "s.tflite")
    step = streaming_model(model)
    assert sorted(exported.state_names) == sorted(t.name for t in step.inputs[1:])
    assert len(exported.state_names) == 3  # GRU h, LSTM h and c
    x = clips(2)
    state, ref = None, [np.zeros((2, t.shape[-1]), "float32") for t in step.inputs[1:]]
    for t in range(T):
        scores, state = exported.step(x[:, t], state)
        out = step([x[:, t], *ref], training=False)
        ref = [np.asarray(out["next_" + i.name]) for i in step.inputs[1:]]
        for i, want in zip(step.inputs[1:], ref):
            assert np.abs(state[i.name] - want).max() <= TOL
    assert np.abs(scores - keras_scores(model, x)).max() <= TOL
    one, _ = exported.step(x[0, 0])  # a single frame (F,) gives a single score vector
    assert one.shape == (CLASSES,)


@pytest.mark.parametrize("streaming", [False, True], ids=["clip", "stream"])
def test_saved_model_matches_keras(streaming, tmp_path):
    model = make_model(*MODELS["stacked"]())
    diff, _ = export_and_compare(model, "saved_model", tmp_path / "sm", streaming, clips())
    assert diff <= TOL
    assert (tmp_path / "sm" / "saved_model.pb").is_file()


def test_keras_exports_reload_in_a_fresh_process(tmp_path):
    model = make_model(*MODELS["stacked"]())
    for name, streaming in (("m.keras", False), ("s.keras", True)):
        export_model(model, "keras", tmp_path / name, streaming=streaming)
    x = clips()
    np.save(tmp_path / "x.npy", x)
    script = (
        "import sys, numpy as np\n"
        "from seqkit.export import load_exported\n"
        "x = np.load(sys.argv[1])\n"
        "for name in ('m', 's'):\n"
        "    m = load_exported(f'{sys.argv[2]}/{name}.keras')\n"
        "    np.save(f'{sys.argv[2]}/{name}.npy', m.predict(x))\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "x.npy"), str(tmp_path)], check=True
    )
    for name in ("m", "s"):
        assert np.abs(np.load(tmp_path / f"{name}.npy") - keras_scores(model, x)).max() <= TOL


@pytest.mark.parametrize("streaming", [False, True], ids=["clip", "stream"])
def test_onnx_matches_keras(streaming, tmp_path):
    pytest.importorskip("tf2onnx")
    pytest.importorskip("onnxruntime")
    model = make_model(*MODELS["gru_reset_before"]())
    diff, _ = export_and_compare(model, "onnx", tmp_path / "m.onnx", streaming, clips())
    assert diff <= TOL


def test_onnx_without_its_converter_says_how_to_install(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "tf2onnx" else real(name, *a)
    )
    with pytest.raises(ParameterError, match=r"pip install 'seqkit\[onnx\]'"):
        export_model(make_model(sl.GRU(3)), "onnx", tmp_path / "m.onnx")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("streaming", [False, True], ids=["clip", "stream"])
def test_int8_falls_back_to_dynamic_range_when_full_int8_is_refused(
    streaming, tmp_path, monkeypatch
):
    from seqkit.export import DYNAMIC_RANGE, FULL_INT8

    model = make_model(*MODELS["gru_reset_before"]())
    x = clips(40)
    path = tmp_path / "m.tflite"
    result = export_model(model, "tflite_int8", path, streaming=streaming, calibration=x)
    assert result.quantization == FULL_INT8 and not result.notes
    full = np.abs(load_exported(path).predict(x) - keras_scores(model, x)).max()

    import seqkit.export.tflite

    convert = seqkit.export.tflite._convert

    def refuse_full_int8(keras_model, quantize=None, representative=None):
        if quantize == "int8":
            raise RuntimeError("error: 'tfl.fake' op is neither a custom op nor a flex op")
        return convert(keras_model, quantize, representative)

    monkeypatch.setattr(seqkit.export.tflite, "_convert", refuse_full_int8)
    result = export_model(model, "tflite_int8", path, streaming, calibration=x, overwrite=True)
    assert result.quantization == DYNAMIC_RANGE
    assert result.notes == [
        "full int8 quantisation is not possible for this model (error: 'tfl.fake' op is "
        "neither a custom op nor a flex op); wrote dynamic-range quantisation instead "
        "(int8 weights, float32 activations)."
    ]
    dynamic = np.abs(load_exported(path).predict(x) - keras_scores(model, x)).max()
    assert 0 < dynamic < 0.05 and 0 < full < 0.2  # quantised, and close to the float model


# -- files: never replaced without --overwrite ---------------------------------------------------


def test_existing_files_are_kept_without_overwrite(tmp_path):
    model = make_model(sl.GRU(3))
    path = tmp_path / "m.tflite"
    path.write_bytes(b"mine")
    with pytest.raises(RunError, match="exists; pass --overwrite"):
        export_model(model, "tflite", path)
    assert path.read_bytes() == b"mine"
    export_model(model, "tflite", path, overwrite=True)
    assert path.read_bytes() != b"mine" and load_exported(path).predict(clips(1)).shape == (1, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tflite", "m.tflite.json"]


def test_overwrite_never_replaces_a_folder_that_is_not_a_saved_model(tmp_path):
    model = make_model(sl.GRU(3))
    folder = tmp_path / "sm"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(RunError, match="not a SavedModel folder"):
        export_model(model, "saved_model", folder, overwrite=True)
    assert (folder / "notes.txt").read_text() == "mine"


def test_wrong_suffix_unknown_format_and_step_on_a_whole_clip_export(tmp_path):
    model = make_model(sl.GRU(3))
    with pytest.raises(ParameterError, match=r"must end in '\.tflite'"):
        export_model(model, "tflite", tmp_path / "m.keras")
    with pytest.raises(ParameterError, match="Did you mean 'tflite'"):
        export_model(model, "tflit", tmp_path / "m.tflite")
    export_model(model, "tflite", tmp_path / "m.tflite")
    with pytest.raises(ParameterError, match="needs one made with --streaming"):
        load_exported(tmp_path / "m.tflite").step(np.zeros(F, "float32"))
    (tmp_path / "bad.tflite").write_bytes(b"not a flatbuffer")
    with pytest.raises(RunError, match=r"'.*bad\.tflite' is damaged \(it has no TFL3 FlatBuf"):
        load_exported(tmp_path / "bad.tflite")
    assert not list(tmp_path.glob(".*partial*"))


# -- a trained run, through the command line ----------------------------------------------------


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from seqkit.recipe import validate_dict
    from seqkit.training import train

    root = tmp_path_factory.mktemp("export-run")
    recipe = validate_dict(tiny_recipe(root / "data", epochs=3))
    return train(recipe, run_dir=root / "run", verbose=0)


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_cli_writes_into_the_run_folder_and_refuses_to_overwrite(run):
    res = invoke("export", run, "--format", "tflite", "--streaming")
    assert res.exit_code == 0, res.output
    path = run / "export" / "model_stream.tflite"
    assert f"export: {path} ({path.stat().st_size:,} bytes; tflite, streaming)" in res.stdout
    diff = float(res.stdout.split("max |export - keras| ")[1].split()[0])
    assert diff <= TOL
    meta = json.loads((run / "export" / "model_stream.tflite.json").read_text())
    assert meta["labels"] == ["ai", "ia", "u", "noise"] and meta["streaming"] is True
    assert load_exported(path).labels == meta["labels"]
    before = path.read_bytes()
    res = invoke("export", run, "--format", "tflite", "--streaming")
    assert res.exit_code == 1 and "pass --overwrite" in res.stderr
    assert path.read_bytes() == before


def test_cli_int8_is_calibrated_on_the_training_split_and_reports_test_accuracy(run):
    from seqkit.build import load_data
    from seqkit.runs import Run

    for streaming in (True, False):
        args = ["export", run, "--format", "tflite_int8"] + (["--streaming"] if streaming else [])
        res = invoke(*args)
        assert res.exit_code == 0, res.output
        assert "quantization: full int8" in res.stdout
        name = "model_stream_int8.tflite" if streaming else "model_int8.tflite"
        exported = load_exported(run / "export" / name)
        # the integer kernels are there
        details = exported.interpreter.get_tensor_details()
        assert sum(d["dtype"] == np.int8 for d in details) >= 4
        # the reported accuracy is the export's on the test split, near the Keras model's
        test = load_data(Run(run).recipe).splits["test"]
        acc = float(np.mean(exported.predict(test.x).argmax(1) == test.y))
        keras_acc = float(np.mean(Run(run).model.predict(test.x, verbose=0).argmax(1) == test.y))
        assert f"check: test accuracy {acc:.4f} (Keras model {keras_acc:.4f}" in res.stdout
        assert abs(acc - keras_acc) <= 0.25


def test_cli_streaming_a_bidirectional_model_is_a_usage_error(run, tmp_path):
    import shutil

    bidi = tmp_path / "bidi"
    shutil.copytree(run, bidi, ignore=shutil.ignore_patterns("export"))
    x = keras.Input((32, 20), name="features")
    h = keras.layers.Bidirectional(sl.GRU(4))(x)
    keras.Model(x, keras.layers.Dense(4, activation="softmax", name="scores")(h)).save(
        bidi / "model.keras"
    )
    info = json.loads((bidi / "run.json").read_text())  # the run records its model's hash
    info["files"]["model.keras"] = hashlib.sha256((bidi / "model.keras").read_bytes()).hexdigest()
    (bidi / "run.json").write_text(json.dumps(info))
    res = invoke("export", bidi, "--format", "tflite", "--streaming")
    assert res.exit_code == 2, res.output
    assert "'bidirectional' (Bidirectional) reads the clip backwards" in res.stderr
    assert "cannot be exported with --streaming" in res.stderr
    assert not (bidi / "export").exists()
    res = invoke("export", bidi, "--format", "tflite")  # the whole clip works
    assert res.exit_code == 0, res.output


# -- damaged exports: checked before TFLite (C++, unchecked) or any runtime reads them ------------

OLD_EXPORTS = __import__("pathlib").Path(__file__).parent / "data" / "runs_0_1_0" / "exports"


def seqkit_subprocess(*args):
    """``python -m seqkit ARGS``: a file that crashes the interpreter must not crash pytest."""
    return subprocess.run(
        [sys.executable, "-m", "seqkit", *map(str, args)], capture_output=True, text=True
    )


def test_the_json_beside_an_export_records_its_sha256_and_size(tmp_path):
    export_model(make_model(sl.GRU(5)), "tflite", tmp_path / "m.tflite")
    meta = json.loads((tmp_path / "m.tflite.json").read_text())
    data = (tmp_path / "m.tflite").read_bytes()
    assert meta["sha256"] == hashlib.sha256(data).hexdigest() and meta["size"] == len(data)
    export_model(make_model(sl.GRU(5)), "saved_model", tmp_path / "sm")
    meta = json.loads((tmp_path / "sm.json").read_text())
    files = sorted(p for p in (tmp_path / "sm").rglob("*") if p.is_file())
    assert meta["size"] == sum(p.stat().st_size for p in files)
    lines = sorted(
        f"{p.relative_to(tmp_path / 'sm').as_posix()}\t{hashlib.sha256(p.read_bytes()).hexdigest()}"
        for p in files
    )
    assert meta["sha256"] == hashlib.sha256("\n".join(lines).encode()).hexdigest()
    variables = next((tmp_path / "sm" / "variables").glob("variables.data*"))
    data = bytearray(variables.read_bytes())
    data[-1] ^= 0xFF
    variables.write_bytes(bytes(data))
    with pytest.raises(RunError) as err:
        load_exported(tmp_path / "sm")
    assert str(err.value) == (
        f"'{tmp_path / 'sm'}' does not match the SHA-256 recorded in its .json "
        f"('{tmp_path / 'sm.json'}'): damaged or replaced; export it again with `seqkit export`."
    )


@pytest.mark.parametrize("keep", ["half", 1000])
def test_a_truncated_tflite_is_refused_not_a_segfault(run, tmp_path, keep):
    from conftest import write_wav

    from seqkit.export import export_run

    path = export_run(run, "tflite", out=tmp_path / "h.tflite", check=False).path
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 if keep == "half" else keep])
    done = seqkit_subprocess("predict", path, write_wav(tmp_path / "clip.wav"))
    assert done.returncode == 1, (done.returncode, done.stderr)  # was -11: SIGSEGV
    assert done.stderr == (
        f"error: '{path}' does not match the SHA-256 recorded in its .json ('{path}.json'): "
        "damaged or replaced; export it again with `seqkit export`.\n"
    )


def test_an_export_written_before_hashes_is_checked_as_a_tflite_flatbuffer(tmp_path):
    """tests/data/runs_0_1_0 exports have no hash in their .json: a truncated one is found by
    parsing its FlatBuffer, a foreign file by its identifier, before TFLite opens either."""
    from conftest import write_wav

    from seqkit.export.load import _tflite_problem

    for name in ("kws.tflite", "kws.tflite.json"):
        (tmp_path / name).write_bytes((OLD_EXPORTS / name).read_bytes())
    path = tmp_path / "kws.tflite"
    data = path.read_bytes()
    assert "sha256" not in json.loads((tmp_path / "kws.tflite.json").read_text())
    path.write_bytes(data[: len(data) // 2])
    done = seqkit_subprocess("predict", path, write_wav(tmp_path / "clip.wav"))
    assert done.returncode == 1, (done.returncode, done.stderr)
    assert done.stderr == (
        f"error: '{path}' is damaged (its FlatBuffer is truncated or damaged: it does not "
        "parse); export it again with `seqkit export`.\n"
    )
    path.write_bytes(data[:4] + b"NOPE" + data[8:])
    with pytest.raises(RunError) as err:
        load_exported(path)
    assert str(err.value) == (
        f"'{path}' is damaged (it has no TFL3 FlatBuffer identifier: not a TFLite model); "
        "export it again with `seqkit export`."
    )
    # In-bounds but inconsistent indices, which no FlatBuffer verifier looks at.
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    def repacked(change):
        model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
        change(model)
        builder = flatbuffers.Builder(0)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())

    assert _tflite_problem(repacked(lambda m: None)) is None
    tensor = lambda m: m.subgraphs[0].tensors[0]  # noqa: E731
    cases = {
        "a tensor's buffer index is out of range": lambda m: setattr(tensor(m), "buffer", 999),
        "a tensor has an impossible shape": lambda m: setattr(tensor(m), "shape", [2**20, 2**9]),
        "an operator's code index is out of range": lambda m: setattr(
            m.subgraphs[0].operators[0], "opcodeIndex", 99
        ),
        "an operator's tensor index is out of range": lambda m: setattr(
            m.subgraphs[0].operators[0], "inputs", [10**6]
        ),
        "a subgraph's input or output is not one of its tensors": lambda m: setattr(
            m.subgraphs[0], "outputs", [10**6]
        ),
        "a signature names a subgraph that does not exist": lambda m: setattr(
            m.signatureDefs[0], "subgraphIndex", 7
        ),
    }
    for problem, change in cases.items():
        assert _tflite_problem(repacked(change)) == problem


def test_an_export_into_the_run_folder_is_recorded_in_run_json(run):
    from seqkit.runs import Run

    res = invoke("export", run, "--format", "keras", "--no-check")
    assert res.exit_code == 0, res.output
    files = json.loads((run / "run.json").read_text())["files"]
    for name in ("export/model.keras", "export/model.keras.json"):
        assert files[name] == hashlib.sha256((run / name).read_bytes()).hexdigest()
    assert Run(run).model is not None  # the run's own records still hold
