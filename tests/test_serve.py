"""`seqkit serve` over HTTP and WebSocket (Starlette's TestClient, and a real uvicorn server for
the load test): the runs list, live streams equal to `seqkit stream`'s runtime, uploads equal to
predict / stream / explain, music generation equal to `seqkit generate`, and the safety rules
(path traversal, bounded uploads, malformed frames closing only their stream, host and origin
checks, 20 simultaneous streams)."""

from __future__ import annotations

import json
import threading
import time
import warnings

import numpy as np
import pytest
import soundfile as sf
from test_serve_fixtures import clips, kws_setup, live_server, music_run

with warnings.catch_warnings():  # Starlette 1.x prefers httpx2 for its TestClient; httpx works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect  # noqa: E402

from seqkit.cli import cli  # noqa: E402
from seqkit.inference import detect_in_file, load_for_inference, predict_files  # noqa: E402
from seqkit.serve.app import make_app  # noqa: E402
from seqkit.serve.streams import SAMPLE_RATE  # noqa: E402


@pytest.fixture(scope="session")
def served(tmp_path_factory):
    """The runs folder: runs/kws (keyword run), runs/kws/export/*.tflite (a streaming export),
    runs/music (a polyphonic run)."""
    setup = kws_setup(tmp_path_factory)
    music_run(tmp_path_factory, setup["root"])
    from seqkit.export import export_run

    export = setup["run"] / "export" / "kws_stream.tflite"
    if not export.exists():
        export_run(setup["run"], "tflite", streaming=True, out=export)
    return {**setup, "export": export, "clips": clips(tmp_path_factory)}


@pytest.fixture(scope="session")
def client(served):
    with TestClient(make_app(served["root"])) as c:
        yield c


def frames_of(audio: np.ndarray, size: int = 640):
    """The page's messages: a little-endian uint32 id, then float32 samples."""
    for i, start in enumerate(range(0, audio.size, size)):
        chunk = np.asarray(audio[start : start + size], "<f4")
        yield np.uint32(i).astype("<u4").tobytes() + chunk.tobytes()


def stream_over(ws, audio):
    ready = ws.receive_json()
    assert ready["type"] == "ready"
    results = []
    for message in frames_of(audio):
        ws.send_bytes(message)
        results.append(ws.receive_json())
    return ready, results


# -- the runs list -----------------------------------------------------------------------------


def test_runs_list_names_each_run_and_export_with_its_headline_metric(client, served):
    doc = client.get("/api/runs").json()
    runs = {r["id"]: r for r in doc["runs"]}
    assert set(runs) == {"kws", "kws/export/kws_stream.tflite", "music"}
    kws_metrics = json.loads((served["run"] / "metrics.json").read_text())
    assert runs["kws"]["name"] == "tiny_speech" and runs["kws"]["task"] == "kws"
    assert runs["kws"]["metric"] == {"name": "accuracy", "split": "test",
                                     "value": kws_metrics["test"]["accuracy"]}  # fmt: skip
    started = json.loads((served["run"] / "run.json").read_text())["started"]
    assert runs["kws"]["date"] == started and runs["kws"]["status"] == "completed"
    music_metrics = json.loads((served["root"] / "music" / "metrics.json").read_text())
    assert runs["music"]["task"] == "polyphonic"
    assert runs["music"]["metric"]["name"] == "nll_per_step"
    assert runs["music"]["metric"]["value"] == music_metrics["test"]["nll_per_step"]
    export = runs["kws/export/kws_stream.tflite"]
    assert export["kind"] == "export" and export["streaming"] is True
    assert export["format"] == "tflite" and export["name"] == "tiny_speech"


def test_pages_and_scripts_are_served_by_seqkit_itself(client):
    for path, kind in (("/", "text/html"), ("/run?id=kws", "text/html"),
                       ("/static/run.js", "javascript"), ("/static/worklet.js", "javascript"),
                       ("/static/style.css", "text/css")):  # fmt: skip
        r = client.get(path)
        assert r.status_code == 200 and kind in r.headers["content-type"], path
    for page in ("/", "/run?id=kws"):  # nothing from another site
        html = client.get(page).text
        assert "http://" not in html and "https://" not in html and "//cdn" not in html


def test_run_details_of_a_kws_run_and_of_an_export(client):
    doc = client.get("/api/run", params={"id": "kws"}).json()
    assert doc["labels"] == ["_silence_", "_unknown_", "yes", "no"]
    assert doc["keywords"] == ["yes", "no"] and doc["streaming"] is True
    assert doc["gate_layers"] == ["gru"] and doc["frame_seconds"] == 0.02
    doc = client.get("/api/run", params={"id": "kws/export/kws_stream.tflite"}).json()
    assert doc["streaming"] is True and doc["gates"] is False
    assert "export" in doc["gate_problem"]


# -- live streams ------------------------------------------------------------------------------


def test_live_stream_gives_the_runtimes_posteriors_and_detections(client, served):
    """The posteriors pushed back are seqkit's Streamer's (4 staggered copies); the detections
    are those `seqkit stream` (detect_in_file) finds in the same audio."""
    audio, sr = sf.read(str(served["clips"]["keyword"]), dtype="float32")
    assert sr == SAMPLE_RATE
    model = load_for_inference(served["run"])
    with client.websocket_connect("/ws/stream?id=kws&threshold=1.0") as ws:  # 1.0: no restarts
        ready, results = stream_over(ws, audio)
    assert ready["keywords"] == ["yes", "no"] and ready["smooth_frames"] == 15  # 300 ms / 20 ms
    got = np.concatenate([np.asarray(r["posteriors"]).reshape(-1, 4) for r in results])
    want = model.streamer(copies=4).push(audio)
    # 3.5 s = 56000 samples, hop 320, n_fft 512 after 256 zeros (center): 1 + 55744 // 320
    assert got.shape == want.shape == (175, 4)
    np.testing.assert_allclose(got, want, atol=6e-5)  # sent rounded to 4 decimals
    assert [r["id"] for r in results] == list(range(len(results)))
    assert all(r["server_ms"] >= 0 for r in results)

    threshold = served["clips"]["threshold"]
    with client.websocket_connect(f"/ws/stream?id=kws&threshold={threshold}") as ws:
        _, results = stream_over(ws, audio)
    live = [(d["time_s"], d["label"], d["score"]) for r in results for d in r["detections"]]
    offline = detect_in_file(model, served["clips"]["keyword"], threshold=threshold)
    assert live == [(d.time_s, d.label, d.score) for d in offline] and live[0][1] == "yes"


def test_settings_messages_change_the_detector(client):
    with client.websocket_connect("/ws/stream?id=kws") as ws:
        ws.receive_json()
        ws.send_text(json.dumps({"type": "settings", "threshold": 0.5, "smooth_ms": 100,
                                 "refractory_ms": 400}))  # fmt: skip
        doc = ws.receive_json()
    assert doc == {"type": "settings", "threshold": 0.5, "smooth_ms": 100.0,
                   "refractory_ms": 400.0, "smooth_frames": 5, "refractory_frames": 20}  # fmt: skip


def test_an_export_streams_like_its_run(client, served):
    audio, _ = sf.read(str(served["clips"]["keyword"]), dtype="float32")
    posts = {}
    for entry in ("kws", "kws/export/kws_stream.tflite"):
        with client.websocket_connect(f"/ws/stream?id={entry}&threshold=1.0") as ws:
            _, results = stream_over(ws, audio[:16000])
        posts[entry] = np.concatenate([np.asarray(r["posteriors"]).reshape(-1, 4) for r in results])
    np.testing.assert_allclose(posts["kws"], posts["kws/export/kws_stream.tflite"], atol=2e-4)


def _header(i=0):
    return np.uint32(i).astype("<u4").tobytes()


@pytest.mark.parametrize(
    "send, message",
    [
        (("text", "not json"), "must be JSON"),
        (("text", json.dumps({"type": "hello"})), '{"type": "settings"'),
        (
            ("text", json.dumps({"type": "settings", "threshold": 2})),
            "`threshold` must be in [0, 1]",
        ),
        (("text", json.dumps({"type": "settings", "gain": 1})), "unknown setting 'gain'"),
        (("text", json.dumps({"type": "settings", "smooth_ms": "NaN"})), "finite number"),
        (("text", "x" * 5000), "at most 4096 bytes"),
        (("bytes", b"\x00\x01\x02"), "received 3 bytes"),
        (("bytes", _header() + b"\x00" * 6), "received 10 bytes, not 4 + a multiple of 4"),
        (("bytes", _header(7) + np.array([0.1, np.nan], "<f4").tobytes()), "frame 7 holds NaN"),
        (("bytes", _header(3) + np.array([0.1, np.inf], "<f4").tobytes()), "NaN or infinite"),
        (("bytes", _header() + np.zeros(16001, "<f4").tobytes()), "at most 16000 samples"),
        (("bytes", _header() + np.array([0.0, 100.0], "<f4").tobytes()), "magnitude 100"),
    ],
)
def test_a_malformed_message_closes_only_its_stream_with_a_message(client, send, message):
    with client.websocket_connect("/ws/stream?id=kws") as other:  # a stream beside it
        other.receive_json()
        with client.websocket_connect("/ws/stream?id=kws") as ws:
            ws.receive_json()
            kind, payload = send
            ws.send_text(payload) if kind == "text" else ws.send_bytes(payload)
            doc = ws.receive_json()
            assert doc["type"] == "error" and message in doc["message"], doc
            assert doc["message"].startswith("stream closed: ")
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_json()
            assert closed.value.code == 1007
        other.send_bytes(_header(5) + np.zeros(640, "<f4").tobytes())  # the other one goes on
        assert other.receive_json()["id"] == 5
    assert client.get("/api/runs").status_code == 200  # and so does the server


def test_streaming_a_music_run_or_an_unknown_id_is_refused_with_a_message(client):
    for entry, message in (("music", "not a keyword model"), ("../kws", "no run or export")):
        with client.websocket_connect(f"/ws/stream?id={entry}") as ws:
            doc = ws.receive_json()
            assert doc["type"] == "error" and message in doc["message"]


# -- safety: only the runs folder ---------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/api/run?id=../kws",
        "/api/run?id=..%2Fkws",
        "/api/run?id=%2Fetc%2Fpasswd",
        "/api/run?id=/etc/passwd",
        "/api/run?id=kws/../../..",
        "/api/run?id=kws%2F..%2F..%2Fsynth",
        "/api/run?id=%2e%2e",
        "/api/run?id=",
        "/api/run",
    ],
)
def test_an_id_outside_the_catalog_is_refused(client, url):
    r = client.get(url)
    assert r.status_code == 404 and "no run or export" in r.json()["error"]


@pytest.mark.parametrize(
    "url",
    [
        "/static/../../pyproject.toml",
        "/static/..%2F..%2F..%2Fpyproject.toml",
        "/static/%2e%2e/%2e%2e/%2e%2e/pyproject.toml",
        "/static/%2e%2e%2f%2e%2e%2fcatalog.py",
        "/static//etc/passwd",
        "/static/%2Fetc%2Fpasswd",
        "/api/samples/1/..%2F..%2Fetc%2Fpasswd",
        "/api/samples/1/%2e%2e",
        "/../../etc/passwd",
    ],
)
def test_path_traversal_in_static_and_sample_urls_is_refused(client, url):
    r = client.get(url)
    assert r.status_code in (400, 404), (url, r.status_code)
    assert "root:" not in r.text and "[project]" not in r.text and "class Catalog" not in r.text


def test_a_link_out_of_the_runs_folder_is_not_served(served, tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    (root / "inside").symlink_to(served["run"], target_is_directory=True)
    with TestClient(make_app(root)) as c:
        assert c.get("/api/runs").json()["runs"] == []
        assert c.get("/api/run", params={"id": "inside"}).status_code == 404


def test_a_damaged_run_is_listed_with_its_problem_and_refused_clearly(tmp_path):
    run = tmp_path / "runs" / "broken"
    run.mkdir(parents=True)
    (run / "run.json").write_text("{not json")
    with TestClient(make_app(tmp_path / "runs")) as c:
        (entry,) = c.get("/api/runs").json()["runs"]
        assert entry["id"] == "broken" and "is damaged" in entry["problem"]
        r = c.get("/api/run", params={"id": "broken"})
        assert r.status_code == 422 and "run.json is not valid JSON" in r.json()["error"]


def test_another_host_or_origin_is_refused(served):
    with TestClient(make_app(served["root"], allowed_hosts=["127.0.0.1"]),
                    base_url="http://127.0.0.1:8000") as c:  # fmt: skip
        assert c.get("/api/runs").status_code == 200
        r = c.get("/api/runs", headers={"host": "evil.example:8000"})  # DNS rebinding
        assert r.status_code == 400 and "not served here" in r.json()["error"]
        r = c.post("/api/analyse?id=kws", content=b"RIFF",
                   headers={"origin": "http://evil.example"})  # fmt: skip
        assert r.status_code == 403 and "origin" in r.json()["error"]
        with pytest.raises(WebSocketDisconnect) as closed:
            with c.websocket_connect("/ws/stream?id=kws",
                                     headers={"origin": "http://evil.example"}) as ws:  # fmt: skip
                ws.receive_json()
        assert closed.value.code == 1008


# -- uploads ---------------------------------------------------------------------------------------


def test_an_uploaded_wav_gives_predictions_track_detections_and_gates(client, served):
    from seqkit.explain import gate_activations_for

    wav, threshold = served["clips"]["keyword"], served["clips"]["threshold"]
    r = client.post(f"/api/analyse?id=kws&name=my%20clip.wav&threshold={threshold}",
                    content=wav.read_bytes())  # fmt: skip
    assert r.status_code == 200, r.text
    doc = r.json()
    model = load_for_inference(served["run"])
    want = predict_files(model, [wav], top_k=4)["predictions"][0]["top"]
    assert [t["label"] for t in doc["top"]] == [t["label"] for t in want]
    np.testing.assert_allclose([t["probability"] for t in doc["top"]],
                               [t["probability"] for t in want], atol=1e-6)  # fmt: skip
    offline = detect_in_file(model, wav, threshold=threshold)
    assert doc["detections"] == [{"time_s": d.time_s, "label": d.label, "score": d.score}
                                 for d in offline]  # fmt: skip
    s = model.streamer(copies=4)
    audio, _ = sf.read(str(wav), dtype="float32")
    np.testing.assert_allclose(doc["posteriors"], np.concatenate([s.push(audio), s.flush()]),
                               atol=6e-5)  # fmt: skip
    (layer,) = doc["gates"]
    _, gates, _, _ = gate_activations_for(model, wav, layer_name="gru")
    for key in ("r", "z"):
        got = np.asarray(layer[key])
        assert got.shape == (51, 24)  # 1 s (fix_length) at a 20 ms hop, centred frames; 24 units
        np.testing.assert_allclose(got, gates[key][0], atol=6e-4)
    assert doc["file"] == "my clip.wav" and doc["seconds"] == 3.5


def test_an_upload_of_an_export_has_predictions_but_no_gates(client, served):
    wav = served["clips"]["keyword"]
    r = client.post("/api/analyse?id=kws/export/kws_stream.tflite", content=wav.read_bytes())
    doc = r.json()
    assert r.status_code == 200 and doc["gates"] == [] and "export" in doc["gate_problem"]
    assert doc["top"][0]["label"] == "yes"


def test_uploads_are_bounded_in_bytes_and_seconds(client, tmp_path, monkeypatch):
    import seqkit.serve.app as app_module

    long = tmp_path / "long.wav"
    sf.write(str(long), np.zeros(8000 * 31, np.float32), 8000, subtype="PCM_16")
    r = client.post("/api/analyse?id=kws&name=long.wav", content=long.read_bytes())
    assert r.status_code == 400
    assert r.json()["error"] == ("long.wav: 31.0 s of audio; uploads are limited to 30 s (stream "
                                 "longer recordings with `seqkit stream RUN FILE`).")  # fmt: skip
    monkeypatch.setattr(app_module, "MAX_UPLOAD_BYTES", 1000)
    r = client.post("/api/analyse?id=kws&name=big.wav", content=b"\x00" * 1001)
    assert r.status_code == 413
    assert r.json()["error"] == "the upload 'big.wav' is 1,001 bytes; the limit is 1,000 bytes."

    def chunks():  # no Content-Length: counted while read
        for _ in range(5):
            yield b"\x00" * 400

    r = client.post("/api/analyse?id=kws&name=big.wav", content=chunks())
    assert r.status_code == 413 and "larger than the limit of 1,000 bytes" in r.json()["error"]


@pytest.mark.parametrize(
    "body, message",
    [
        (b"", "is empty"),
        (b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(range(200)), "cannot be read as audio"),
        (np.random.default_rng(0).bytes(3000), "cannot be read as audio"),
    ],
)
def test_a_bad_upload_gets_a_clear_message(client, body, message):
    r = client.post("/api/analyse?id=kws&name=bad.wav", content=body)
    assert r.status_code == 400 and message in r.json()["error"]
    assert "/tmp" not in r.json()["error"] and "Traceback" not in r.text


def test_bad_settings_on_an_upload_are_named(client, served):
    r = client.post("/api/analyse?id=kws&threshold=-1",
                    content=served["clips"]["keyword"].read_bytes())  # fmt: skip
    assert r.status_code == 400 and "`threshold` must be in [0, 1]" in r.json()["error"]


# -- music -------------------------------------------------------------------------------------


def test_generate_gives_generates_files_playable_and_downloadable(client, served, tmp_path):
    from seqkit.music.generate import generate

    r = client.post("/api/generate?id=music&steps=16&temperature=0.9&seed=3", content=b"")
    assert r.status_code == 200, r.text
    doc = r.json()
    want = generate(
        served["root"] / "music", tmp_path / "ref", steps=16, temperature=0.9, seed=3, num=1
    )  # fmt: skip  -- `seqkit generate`, the oracle
    for kind in ("mid", "wav", "png"):
        got = client.get(doc[kind])
        assert got.status_code == 200
        assert got.content == (tmp_path / "ref" / f"sample-1.{kind}").read_bytes(), kind
    audio = client.get(doc["wav"])
    assert audio.headers["content-type"] == "audio/wav"
    info = sf.info(str(tmp_path / "ref" / "sample-1.wav"))
    assert info.duration > 0 and doc["seconds_per_step"] == want["seconds_per_step"]
    assert "attachment" in client.get(doc["mid"]).headers["content-disposition"]


def test_generate_with_a_primer_and_bad_values(client, served, tmp_path):
    import pretty_midi

    pm = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(0)
    for i, pitch in enumerate((60, 64, 67, 72)):
        piano.notes.append(pretty_midi.Note(90, pitch, i * 0.5, i * 0.5 + 0.5))
    pm.instruments.append(piano)
    pm.write(str(tmp_path / "primer.mid"))
    r = client.post("/api/generate?id=music&steps=8&seed=1",
                    content=(tmp_path / "primer.mid").read_bytes())  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["primer_steps"] > 0
    for query, message in (
        ("steps=0", "`steps` must be in [1, 1024]"),
        ("steps=abc", "`steps` must be an integer"),
        ("temperature=nan", "`temperature` must be in (0, 5]"),
        ("seed=-1", "`seed` must be in [0,"),
    ):
        r = client.post(f"/api/generate?id=music&{query}", content=b"")
        assert r.status_code == 400 and message in r.json()["error"], query
    r = client.post("/api/generate?id=music&steps=4", content=b"MThd not midi at all")
    assert r.status_code == 400 and "the primer MIDI" in r.json()["error"]
    assert str(tmp_path) not in r.json()["error"] and "seqkit-serve-" not in r.json()["error"]
    r = client.post("/api/generate?id=kws", content=b"")
    assert r.status_code == 400 and "not a music run" in r.json()["error"]


# -- load: 20 streams at once on a real server --------------------------------------------------


def test_twenty_simultaneous_streams_all_get_their_results(served):
    """20 WebSocket clients on loopback, each sending 50 frames of 40 ms (2 s of audio) as
    fast as its replies come: every stream completes with 50 replies and 100 posteriors within
    a generous deadline (a bound on starvation, not a speed test)."""
    from websockets.sync.client import connect

    server = live_server(served["root"])
    audio, _ = sf.read(str(served["clips"]["keyword"]), dtype="float32")
    audio = np.resize(audio, 50 * 640)
    done, errors = {}, []

    def client(k):
        try:
            with connect(f"ws://127.0.0.1:{server.port}/ws/stream?id=kws", open_timeout=60,
                         origin=f"http://127.0.0.1:{server.port}") as ws:  # fmt: skip
                assert json.loads(ws.recv(timeout=60))["type"] == "ready"
                replies = posts = 0
                for message in frames_of(audio):
                    ws.send(message)
                    reply = json.loads(ws.recv(timeout=60))
                    assert reply["type"] == "result", reply
                    replies += 1
                    posts += len(reply["posteriors"])
                done[k] = (replies, posts)
        except Exception as exc:  # reported below with the stream's number
            errors.append(f"stream {k}: {type(exc).__name__}: {exc}")

    start = time.monotonic()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(1.0, 120 - (time.monotonic() - start)))
    assert not errors, errors
    assert sorted(done) == list(range(20))
    assert all(v == (50, 100) for v in done.values()), done  # 2 s at a 20 ms hop, per stream


# -- the command -------------------------------------------------------------------------------


def test_cli_binds_loopback_by_default_and_warns_otherwise(served, monkeypatch):
    from click.testing import CliRunner

    calls = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: calls.append(kw))
    result = CliRunner().invoke(cli, ["serve", str(served["root"]), "--port", "0"])
    assert result.exit_code == 0, result.output
    assert calls[-1]["host"] == "127.0.0.1" and "warning" not in result.stderr
    assert result.stdout.startswith("http://127.0.0.1:")
    result = CliRunner().invoke(cli, ["serve", str(served["root"]), "--host", "0.0.0.0",
                                      "--port", "0"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert calls[-1]["host"] == "0.0.0.0"
    assert "warning: listening on 0.0.0.0, not only on this machine" in result.stderr


def test_cli_refuses_a_missing_folder_and_a_busy_port(served, tmp_path, monkeypatch):
    import socket

    from click.testing import CliRunner

    monkeypatch.setattr("uvicorn.run", lambda app, **kw: None)
    result = CliRunner().invoke(cli, ["serve", str(tmp_path / "nothing")])
    assert result.exit_code == 1
    assert "does not exist; pass a runs folder, a run folder or an export" in result.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(cli, ["serve", str(served["root"]), "--port", str(port)])
    assert result.exit_code == 1 and f"Cannot listen on 127.0.0.1:{port}" in result.stderr


def test_streams_beyond_the_limit_are_refused_and_scratch_files_go_with_the_server(
    served, monkeypatch
):
    import seqkit.serve.app as app_module

    monkeypatch.setattr(app_module, "MAX_STREAMS", 1)
    app = make_app(served["root"])
    with TestClient(app) as c:
        with c.websocket_connect("/ws/stream?id=kws") as first:
            assert first.receive_json()["type"] == "ready"
            with c.websocket_connect("/ws/stream?id=kws") as second:
                doc = second.receive_json()
                assert doc == {"type": "error", "message": "1 streams are open; try again later."}
        with c.websocket_connect("/ws/stream?id=kws") as again:  # the first one has ended
            assert again.receive_json()["type"] == "ready"
        r = c.post("/api/analyse?id=kws", content=served["clips"]["unknown"].read_bytes())
        assert r.status_code == 200
        scratch = app.state.seqkit.scratch
        assert scratch.is_dir() and list(scratch.iterdir()) == []  # the upload, removed
    assert not scratch.exists()  # the server's folder, removed when it stops
