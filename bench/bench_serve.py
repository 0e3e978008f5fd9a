"""`seqkit serve`'s frame latency on loopback, side by side with `seqkit stream`'s runtime offline.

    python bench/bench_serve.py RUN                       # 500 frames of 40 ms, one stream
    python bench/bench_serve.py RUN --streams 20 --frames 200   # 20 streams at once

RUN: a keyword-spotting run folder (or a streaming export). The audio is the run's own kind of
input: `--wav FILE` (16 kHz mono; looped), else 1 s of a 440 Hz tone between quiet noise.

Three figures per 40 ms frame (640 samples at 16 kHz), median and 95th percentile:

1. **offline** (the peer): what `seqkit stream` does per block of audio, in this process, no
   network: the run's ``Streamer`` (4 staggered copies) fed the block, each posterior through
   the ``Detector`` (``seqkit.speech.streaming.detect``'s loop).
2. **server side**: measured by the server for each WebSocket message, from its arrival to the
   reply being ready (frame parsed, ``KwsStream.process`` in a worker thread: the same runtime,
   plus the resampler and the JSON-ready posteriors), as the page shows it (``server_ms``).
3. **end to end**: measured by the client, from sending a frame to receiving its reply
   (`seqkit serve RUN` started as its own process, `websockets` clients in this one on
   127.0.0.1, one frame in flight per stream; with `--realtime`, one frame every 40 ms per
   stream, the streams' phases spread over the 40 ms).

Ratios are against the offline figure. Wall-clock times on a shared machine: note the load.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

FRAME = 640  # 40 ms at 16 kHz, as the page sends


def pct(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def audio_for(args, n_samples: int) -> np.ndarray:
    if args.wav:
        import soundfile as sf

        y, sr = sf.read(args.wav, dtype="float32", always_2d=True)
        if sr != 16000:
            sys.exit(f"--wav must be 16 kHz (the page's rate); {args.wav} is {sr} Hz.")
        y = y.mean(axis=1)
    else:
        rng = np.random.default_rng(0)
        t = np.arange(16000) / 16000
        y = np.concatenate([0.001 * rng.standard_normal(16000), 0.3 * np.sin(2 * np.pi * 440 * t),
                            0.001 * rng.standard_normal(16000)]).astype(np.float32)  # fmt: skip
    return np.resize(y, n_samples).astype(np.float32)


def offline(model, audio: np.ndarray) -> list[float]:
    """ms per block: `seqkit stream`'s runtime (Streamer + Detector), no network."""
    from seqkit.speech.streaming import Detector

    streamer = model.streamer(copies=4)
    det = Detector(model.labels, streamer.features.frame_seconds)

    def on_posterior(t, p):
        if det.update(p, t) is not None:
            streamer.restart()

    rate = streamer.features.sample_rate
    if rate != 16000:
        import soxr

        audio = soxr.resample(audio, 16000, rate)
    step = int(round(FRAME * rate / 16000))
    out = []
    for i in range(0, audio.size - step + 1, step):
        block = audio[i : i + step]
        t0 = time.perf_counter()
        streamer.feed(block, on_posterior)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_seconds(pid: int):
    """User + system CPU seconds of process ``pid`` (Linux /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def served(run, audio: np.ndarray, streams: int, frames: int, realtime: bool):
    """(server ms, end-to-end ms) of every frame: `seqkit serve RUN` in its own process, the
    clients in this one (threads; at real-time pace, staggered over one frame's 40 ms, as
    independent pages would be)."""
    import subprocess

    from websockets.sync.client import connect

    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from seqkit.cli import main; main()",
            "-q",
            "serve",
            str(run),
            "--port",
            str(port),
        ],  # fmt: skip
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    sys.exit("seqkit serve did not start")
                time.sleep(0.2)
        import urllib.request

        urllib.request.urlopen(f"http://127.0.0.1:{port}/api/run?id=.", timeout=120).read()
        server_ms, e2e_ms, errors = [], [], []  # the model is loaded now: not timed below

        def client(k):
            try:
                with connect(f"ws://127.0.0.1:{port}/ws/stream?id=.", open_timeout=120) as ws:
                    json.loads(ws.recv(timeout=120))
                    start = time.perf_counter() + 0.04 * k / streams
                    for i in range(frames):
                        chunk = np.asarray(audio[i * FRAME : (i + 1) * FRAME], "<f4")
                        if realtime:  # the page's pace: one frame every 40 ms
                            time.sleep(max(0.0, start + i * 0.04 - time.perf_counter()))
                        t0 = time.perf_counter()
                        ws.send(np.uint32(i).astype("<u4").tobytes() + chunk.tobytes())
                        reply = json.loads(ws.recv(timeout=120))
                        e2e_ms.append((time.perf_counter() - t0) * 1000)
                        server_ms.append(reply["server_ms"])
            except Exception as exc:
                errors.append(f"stream {k}: {exc}")

        threads = [threading.Thread(target=client, args=(k,)) for k in range(streams)]
        cpu0 = _cpu_seconds(proc.pid)
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        cpu1 = _cpu_seconds(proc.pid)
        if cpu0 is not None and cpu1 is not None and server_ms:
            print(f"server process CPU per frame: {(cpu1 - cpu0) / len(server_ms) * 1000:.3f} ms "
                  f"({len(server_ms)} frames)")  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    if errors:
        sys.exit("\n".join(errors))
    return server_ms, e2e_ms


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", help="a keyword-spotting run folder or streaming export")
    p.add_argument("--frames", type=int, default=500, help="40 ms frames per stream")
    p.add_argument("--streams", type=int, default=1, help="simultaneous WebSocket streams")
    p.add_argument("--wav", help="16 kHz audio to send (looped)")
    p.add_argument("--realtime", action="store_true", help="send at 25 frames/s, as the page")
    args = p.parse_args()

    from seqkit.inference import load_for_inference

    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    audio = audio_for(args, args.frames * FRAME)
    model = load_for_inference(args.run)
    offline(model, audio[: 50 * FRAME])  # warm-up
    off = offline(model, audio)
    srv, e2e = served(args.run, audio, args.streams, args.frames, args.realtime)
    load = os.getloadavg()[0]
    base = statistics.median(off)
    print(f"{args.run}: {args.frames} frames of 40 ms x {args.streams} stream(s)"
          f"{' at real-time pace' if args.realtime else ', one frame in flight per stream'}")  # fmt: skip
    print(f"{'per 40 ms frame':44s} {'median ms':>10s} {'p95 ms':>9s} {'x offline':>10s}")
    for name, values in (("offline: seqkit stream's runtime (peer)", off),
                         ("server side: serve, message in -> reply ready", srv),
                         ("end to end: loopback client, send -> reply", e2e)):  # fmt: skip
        med = statistics.median(values)
        print(f"{name:44s} {med:10.3f} {pct(values, 0.95):9.3f} {med / base:10.1f}")
    print(f"load average after: {load:.2f}")


if __name__ == "__main__":
    main()
