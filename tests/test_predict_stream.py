"""`seqkit predict` and `seqkit stream` on a trained run; streaming equals whole-clip inference."""

import json

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from conftest import tiny_recipe

from seqkit.cli import cli
from seqkit.errors import RunError
from seqkit.inference import detect_in_file, load_for_inference
from seqkit.recipe import validate_dict
from seqkit.speech.streaming import Detector, audio_blocks, detect
from seqkit.training import train


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny run whose features use every streamable step: mel, dB, MFCC, deltas."""
    root = tmp_path_factory.mktemp("run")
    doc = tiny_recipe(root / "data", epochs=2)
    doc["features"] += [{"type": "mfcc", "n_mfcc": 10}, {"type": "deltas", "width": 5}]
    path = train(validate_dict(doc), run_dir=root / "run", verbose=0)
    return path, root / "data"


def clips(data, label, n=2):
    return sorted((data / label).glob("*.wav"))[:n]


def test_streaming_equals_whole_clip_inference(run):
    path, data = run
    model = load_for_inference(path)
    load, fix = model.pipeline.steps[:2]
    for file in clips(data, "ai") + clips(data, "u"):
        whole = model.predict(model.features(file)[None])[0]
        y = fix(load(file), load.sample_rate)  # the audio the whole clip sees
        for copies in (1, 4):
            s = model.streamer(copies=copies)
            post = np.concatenate([s.push(y), s.flush()])
            assert post.shape == (32, 4)  # 0.5 s at hop 128 / 8 kHz
            np.testing.assert_allclose(post[-1], whole, atol=1e-5)


def test_predict_prints_top_k_and_json(run):
    path, data = run
    files = clips(data, "ai", 1) + clips(data, "noise", 1)
    model = load_for_inference(path)
    probs = model.predict(np.stack([model.features(f) for f in files]))
    result = invoke("predict", path, *files, "--top-k", 2)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    for line, file, p in zip(lines, files, probs):
        best = np.argsort(-p)[:2]
        want = ", ".join(f"{model.labels[j]} {p[j]:.4f}" for j in best)
        assert line == f"{file}: {want}"
    result = invoke("predict", path, *files, "--json", "--top-k", 9)
    doc = json.loads(result.stdout)
    assert [r["file"] for r in doc["predictions"]] == [str(f) for f in files]
    for r, p in zip(doc["predictions"], probs):
        assert len(r["top"]) == 4  # top-k is at most the number of labels
        assert [t["label"] for t in r["top"]] == [model.labels[j] for j in np.argsort(-p)]
        np.testing.assert_allclose(
            [t["probability"] for t in r["top"]], np.sort(p)[::-1], atol=1e-6
        )
    assert doc["skipped"] == []


def test_predict_skips_unreadable_files_and_fails_when_none_is_left(run, tmp_path):
    path, data = run
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    good = clips(data, "u", 1)[0]
    result = invoke("predict", path, bad, good, "--json")
    assert result.exit_code == 1  # the good file is still predicted, but not every file
    assert f"Skipping {bad}: cannot be read as audio" in result.stderr
    doc = json.loads(result.stdout)
    assert [r["file"] for r in doc["predictions"]] == [str(good)]
    assert doc["skipped"][0]["file"] == str(bad)
    result = invoke("predict", path, bad, tmp_path / "missing.wav")
    assert result.exit_code == 1
    assert "None of the 2 file(s) could be read" in result.stderr
    assert result.stdout == ""
    result = invoke("predict", tmp_path, good)
    assert result.exit_code == 1 and "is not a seqkit run folder" in result.stderr
    with pytest.raises(RunError):
        load_for_inference(tmp_path)


def test_predict_files_returns_what_predict_prints(run, tmp_path):
    """The library does the work and returns data; `seqkit predict` only formats it."""
    from seqkit.inference import predict_files

    path, data = run
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    files = clips(data, "ia", 1) + [bad] + clips(data, "u", 1)
    model = load_for_inference(path)
    doc = predict_files(model, files, top_k=2)
    assert doc["run"] == str(path)
    assert [r["file"] for r in doc["predictions"]] == [str(files[0]), str(files[2])]
    assert [s["file"] for s in doc["skipped"]] == [str(bad)]
    probs = model.predict(np.stack([model.features(f) for f in (files[0], files[2])]))
    for r, p in zip(doc["predictions"], probs):
        assert [t["label"] for t in r["top"]] == [model.labels[j] for j in np.argsort(-p)[:2]]
    cli = json.loads(invoke("predict", path, *files, "--top-k", 2, "--json").stdout)
    for r, c in zip(doc["predictions"], cli["predictions"]):
        assert [round(t["probability"], 6) for t in r["top"]] == [
            t["probability"] for t in c["top"]
        ]


@pytest.fixture(scope="module")
def long_wav(run, tmp_path_factory):
    """3.5 s at 16 kHz (the run resamples to 8 kHz): noise, clips, noise."""
    _, data = run
    rng = np.random.default_rng(0)
    parts = []
    for file in clips(data, "ai", 1) + clips(data, "ia", 1) + clips(data, "u", 1):
        parts += [rng.normal(scale=0.01, size=10000), sf.read(str(file))[0]]
    parts.append(rng.normal(scale=0.01, size=8000))
    path = tmp_path_factory.mktemp("long") / "long.wav"
    sf.write(str(path), np.concatenate(parts).astype(np.float32), 16000)
    return path


def test_stream_prints_what_the_library_detects(run, long_wav):
    path, _ = run
    model = load_for_inference(path)
    result = invoke("stream", path, long_wav, "--threshold", 0.0, "--refractory-ms", 500, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    # threshold 0: a detection at the first frame and then as soon as each refractory time
    # (31 frames of 16 ms) is over; never the filler label 'noise'
    s = model.streamer(copies=4)
    det = Detector(model.labels, 0.016, threshold=0.0, refractory_ms=500)
    want = list(detect(s, det, audio_blocks(long_wav, 8000)))
    assert [d.frame for d in want] == list(range(0, s.frames, 31))
    got = [(d["time_s"], d["label"], d["score"]) for d in doc["detections"]]
    assert got == [(d.time_s, d.label, d.score) for d in want]
    assert want[0].time_s == pytest.approx(s.time_of(0)) and "noise" not in {d[1] for d in got}
    assert doc["settings"]["labels"] == ["ai", "ia", "u"] and doc["frames"] == s.frames
    assert doc["settings"]["copies"] == 4 and doc["settings"]["reset_every_frames"] == 32
    text = invoke("stream", path, long_wav, "--threshold", 0.0, "--refractory-ms", 500)
    assert text.stdout.splitlines() == [f"{t:.3f} {lab} {sc:.4f}" for t, lab, sc in got]
    found = detect_in_file(model, long_wav, threshold=0.0, refractory_ms=500)
    assert [(d.time_s, d.label, d.score) for d in found] == got  # the library, as data
    assert found.report() == doc


def test_stream_reports_fillers_only_when_named_and_checks_labels(run, long_wav):
    path, _ = run
    result = invoke("stream", path, long_wav, "--threshold", 0.0, "--labels", "noise", "--json")
    assert {d["label"] for d in json.loads(result.stdout)["detections"]} == {"noise"}
    result = invoke("stream", path, long_wav, "--labels", "ai,uu")
    assert result.exit_code == 2
    assert "Label 'uu' is not one of the model's labels (ai, ia, u, noise). Did you mean 'u'?" in (
        result.stderr
    )
    result = invoke("stream", path, long_wav, "--carry-state", "--json", "--threshold", 1.0)
    doc = json.loads(result.stdout)
    assert doc["settings"]["copies"] == 1 and doc["settings"]["reset_every_frames"] is None
    assert doc["detections"] == []


# -- an exported model in place of the run folder ------------------------------------------------


@pytest.fixture(scope="module")
def exports(run, tmp_path_factory):
    """The run exported as float TFLite, whole clip and streaming, outside the run folder."""
    from seqkit.export import export_run

    path, _ = run
    out = tmp_path_factory.mktemp("exports")
    whole = export_run(path, "tflite", out=out / "kws.tflite").path
    stream = export_run(path, "tflite", streaming=True, out=out / "kws_stream.tflite").path
    return whole, stream


def test_predict_takes_an_exported_tflite_and_agrees_with_the_run(run, exports):
    path, data = run
    files = clips(data, "ai", 2) + clips(data, "u", 1) + clips(data, "noise", 1)
    want = json.loads(invoke("predict", path, *files, "--json", "--top-k", 4).stdout)
    for export in exports:
        result = invoke("predict", export, *files, "--json", "--top-k", 4)
        assert result.exit_code == 0, result.output
        doc = json.loads(result.stdout)
        assert doc["run"] == str(export)
        for got, ref in zip(doc["predictions"], want["predictions"]):
            assert got["file"] == ref["file"]
            assert [t["label"] for t in got["top"]] == [t["label"] for t in ref["top"]]
            np.testing.assert_allclose(
                [t["probability"] for t in got["top"]],
                [t["probability"] for t in ref["top"]],
                atol=1e-5,
            )


def test_stream_takes_a_streaming_tflite_and_finds_what_the_run_finds(run, exports, long_wav):
    path, _ = run
    model = load_for_inference(exports[1])
    assert model.labels == ["ai", "ia", "u", "noise"]
    ref = load_for_inference(path)
    # frame by frame, 4 staggered states in one batch: the run's numpy runtime to 1e-5
    y = np.concatenate([b for b in audio_blocks(long_wav, 8000)])
    got, want = model.streamer(copies=4), ref.streamer(copies=4)
    a = np.concatenate([got.push(y), got.flush()])
    b = np.concatenate([want.push(y), want.flush()])
    assert a.shape == b.shape == (want.frames, 4) and want.frames > 200
    np.testing.assert_allclose(a, b, atol=1e-5)
    args = [long_wav, "--threshold", 0.0, "--refractory-ms", 500, "--json"]
    doc = json.loads(invoke("stream", exports[1], *args).stdout)
    ref_doc = json.loads(invoke("stream", path, *args).stdout)
    assert doc["frames"] == ref_doc["frames"] and doc["settings"] == ref_doc["settings"]
    assert len(doc["detections"]) == len(ref_doc["detections"]) > 0
    for d, r in zip(doc["detections"], ref_doc["detections"]):
        assert (d["time_s"], d["label"]) == (r["time_s"], r["label"])
        assert d["score"] == pytest.approx(r["score"], abs=1e-4)


def test_exports_that_cannot_serve_say_why(run, exports, long_wav, tmp_path):
    import shutil

    whole, stream = exports
    result = invoke("stream", whole, long_wav)
    assert result.exit_code == 2
    assert f"'{whole}' is a whole-clip export" in result.stderr
    assert "seqkit export RUN --format tflite --streaming" in result.stderr
    lone = tmp_path / "lone.tflite"
    shutil.copy(stream, lone)  # without its .json: no labels, no feature pipeline
    result = invoke("predict", lone, long_wav)
    assert result.exit_code == 1
    assert f"'{lone}.json' is missing" in result.stderr
    result = invoke("stream", tmp_path / "nothing.tflite", long_wav)
    assert result.exit_code == 1 and "does not exist" in result.stderr


def test_predict_exits_1_and_says_how_many_files_it_skipped(run, tmp_path):
    """Predictions of the readable files are printed; the exit code says some were not."""
    path, data = run
    good = clips(data, "ai", 2)
    bad = [tmp_path / "bad.wav", tmp_path / "missing.wav"]
    bad[0].write_text("not audio")
    files = [good[0], *bad, good[1]]
    for fmt in ([], ["--json"]):
        result = invoke("predict", path, *files, *fmt)
        assert result.exit_code == 1, result.output
        assert result.stderr.splitlines()[-1] == (
            "error: 2 of 4 files could not be read (see the warnings above); "
            "the predictions of the other 2 are on stdout."
        )
        printed = (
            [r["file"] for r in json.loads(result.stdout)["predictions"]]
            if fmt
            else [line.rsplit(": ", 1)[0] for line in result.stdout.splitlines()]
        )
        assert printed == [str(good[0]), str(good[1])]


def test_predict_plain_output_escapes_control_characters_in_file_names(run, tmp_path):
    path, data = run
    source = clips(data, "u", 1)[0]
    odd = tmp_path / "two\nlines\t\x1b[31m.wav"
    odd.write_bytes(source.read_bytes())
    plain = tmp_path / "ünïcode name.wav"
    plain.write_bytes(source.read_bytes())
    result = invoke("predict", path, odd, plain, "--top-k", 1)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 2  # one line per file, whatever its name
    label = lines[1].rsplit(": ", 1)[1]
    assert lines == [f"{str(odd)!r}: {label}", f"{plain}: {label}"]  # printable names stay as is
    assert "\n" not in lines[0] and "\x1b" not in lines[0] and "\\n" in lines[0]
    doc = json.loads(invoke("predict", path, odd, "--json").stdout)  # JSON: the exact name
    assert doc["predictions"][0]["file"] == str(odd)
    broken = tmp_path / "broken\nname.wav"
    broken.write_text("not audio")
    result = invoke("predict", path, broken, plain)
    assert result.exit_code == 1
    warnings = [line for line in result.stderr.splitlines() if line.startswith("seqkit: warn")]
    assert warnings == [f"seqkit: warning: Skipping {str(broken)!r}: cannot be read as audio "
                        f"(Error opening {str(broken)!r}: Format not recognised.)."]  # fmt: skip


# -- labels that do not match the model: a damaged run or export, named -------------------------


def test_missing_or_empty_labels_are_a_damaged_run_not_a_shape_error(run, tmp_path):
    import shutil

    path, data = run
    copy = tmp_path / "run"
    shutil.copytree(path, copy)
    info = json.loads((copy / "run.json").read_text())
    info.pop("files")  # as a run written before seqkit recorded hashes: labels are counted
    (copy / "run.json").write_text(json.dumps(info))
    clip = clips(data, "ai", 1)[0]
    labels = copy / "labels.txt"
    labels.write_text("")
    result = invoke("predict", copy, clip)
    assert result.exit_code == 1, result.output
    assert result.stderr == (
        f"error: '{labels}' holds 0 label(s), but the model has 4 outputs: the run folder is "
        "damaged. Restore labels.txt, or train the run again.\n"
    )
    labels.unlink()
    result = invoke("stream", copy, clip)
    assert result.exit_code == 1, result.output
    assert result.stderr == (
        f"error: Run folder '{copy}' is damaged: its labels.txt is missing (the model has 4 "
        "outputs). Restore it, or train the run again.\n"
    )
    with pytest.raises(RunError, match="its labels.txt is missing"):
        load_for_inference(copy)


def test_an_exports_labels_must_match_its_outputs(exports, tmp_path):
    import shutil

    whole, _ = exports
    copy = tmp_path / "kws.tflite"
    shutil.copy(whole, copy)
    meta = json.loads(whole.with_name(whole.name + ".json").read_text())
    sidecar = tmp_path / "kws.tflite.json"
    sidecar.write_text(json.dumps(meta | {"labels": ["ai", "ia", "u"]}))
    with pytest.raises(RunError) as err:  # the .json records a hash of its own contents
        load_for_inference(copy)
    assert str(err.value) == (
        f"'{sidecar}' does not match the SHA-256 it records of its own contents: damaged or "
        "edited; export again."
    )
    meta.pop("meta_sha256")  # as in a .json written before seqkit recorded one
    sidecar.write_text(json.dumps(meta | {"labels": ["ai", "ia", "u"]}))
    with pytest.raises(RunError) as err:
        load_for_inference(copy)
    assert str(err.value) == (
        f"'{sidecar}' lists 3 label(s), but '{copy}' has 4 outputs: damaged or replaced; "
        "export again."
    )
    sidecar.write_text(json.dumps(meta | {"labels": ["ai", "", "u", "noise"]}))
    with pytest.raises(RunError) as err:
        load_for_inference(copy)
    assert str(err.value) == (
        f"'{sidecar}' has `labels` that are not distinct non-empty strings: damaged or edited; "
        "export again."
    )
