"""The ``seqkit serve`` web application: an ASGI app (Starlette) over one runs folder.

Routes (every API answer is JSON; an error is ``{"error": message}`` with a 4xx status):

* ``GET /`` -- the runs list (``static/index.html``); ``GET /run?id=ID`` -- one run's page.
* ``GET /static/...`` -- the page's scripts and styles, from the installed package only.
* ``GET /api/runs`` -- every run and export under the root: id, recipe name, task, date,
  headline metric.
* ``GET /api/run?id=ID`` -- one entry opened for serving (the model is loaded once per process).
* ``WS /ws/stream?id=ID`` -- live keyword spotting (``seqkit.serve.streams``: the wire format).
* ``POST /api/analyse?id=ID[&threshold=..&smooth_ms=..&refractory_ms=..]`` -- the request body
  is a WAV file: predictions, posterior track, detections, GRU gates.
* ``POST /api/generate?id=ID&steps=..&temperature=..&seed=..`` -- the body is an optional primer
  MIDI file: a music sample; ``GET /api/samples/N/sample-1.{wav,mid,png}`` its files.

Safety: only entries the catalog lists are opened (ids are looked up, never joined to a path);
request bodies are read in chunks and refused past their limit (413); a request whose ``Host``
is not one of ``allowed_hosts`` (DNS rebinding) is refused, and so is a WebSocket or POST whose
``Origin`` is another site's. Model calls run in worker threads, off the event loop, so one
stream's computation never blocks another's messages.

Uploads are read as the raw request body (``fetch(url, {body: file})``), not as a multipart
form: one file per request needs no form parser, and a raw body is bounded while it is read.
"""

from __future__ import annotations

import ipaddress
import itertools
import logging
import shutil
import statistics
import tempfile
import time
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from ..errors import ParameterError, SeqkitError
from .catalog import Catalog
from .jobs import (
    MAX_PRIMER_BYTES,
    MAX_UPLOAD_BYTES,
    MAX_UPLOAD_SECONDS,
    UploadError,
    analyse_wav,
    check_generate_params,
    generate_sample,
)
from .models import Models
from .streams import FrameError, KwsStream, parse_frame, parse_settings, parse_text

log = logging.getLogger("seqkit")

STATIC = Path(__file__).parent / "static"
#: Live streams at once; more are refused with a message.
MAX_STREAMS = 64
#: Generated samples kept for download (older ones are deleted from the scratch folder).
MAX_SAMPLES = 32
#: Host names a server bound to the loopback interface answers to.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")
#: Files of a generated sample the page may fetch.
SAMPLE_FILES = {"sample-1.wav": "audio/wav", "sample-1.mid": "audio/midi",
                "sample-1.png": "image/png"}  # fmt: skip
#: WebSocket close codes: 1003 unsupported data, 1007 invalid payload, 1008 policy, 1011 error.
CLOSE_BAD_DATA, CLOSE_POLICY, CLOSE_ERROR = 1007, 1008, 1011


def _error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _host_of(value: str) -> str:
    """``host`` of ``host:port`` (IPv6 in brackets kept), lower case."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[: value.find("]") + 1] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class State:
    """What one app holds: the catalog, the models, the scratch folder, the live streams and
    the latency figures (``/api/stats``)."""

    def __init__(self, root, allowed_hosts=None):
        self.catalog = Catalog(root)
        self.models = Models()
        self.allowed_hosts = None if allowed_hosts is None else {h.lower() for h in allowed_hosts}
        self.scratch: Path | None = None
        self.samples: dict[int, Path] = {}
        self.counter = itertools.count(1)
        self.streams = 0
        self.server_ms: list[float] = []

    def open_scratch(self) -> Path:
        if self.scratch is None:
            self.scratch = Path(tempfile.mkdtemp(prefix="seqkit-serve-"))
        return self.scratch

    def close(self):
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None

    def record(self, ms: float):
        self.server_ms.append(ms)
        if len(self.server_ms) > 10000:
            del self.server_ms[:5000]


def _state(request) -> State:
    return request.app.state.seqkit


def _check_request(conn, state: State, need_origin: bool) -> str | None:
    """Why ``conn`` (a request or a WebSocket) is refused, or None: an Origin of another site
    (a page elsewhere that the user has open must not use the models or upload). The Host is
    checked before, by ``_Guard``."""
    host = conn.headers.get("host", "")
    origin = conn.headers.get("origin")
    if need_origin and origin is not None:
        netloc = urlsplit(origin).netloc.lower()
        if netloc != host.lower():
            return f"origin {origin!r} is not this server's ({host!r})"
    return None


def _entry(state: State, entry_id):
    try:
        return state.catalog.get(entry_id)
    except KeyError:
        return None


def _not_found(entry_id) -> JSONResponse:
    shown = entry_id if isinstance(entry_id, str) and len(entry_id) < 200 else "(that id)"
    return _error(
        f"no run or export {shown!r} is served here; see /api/runs for the list.", status=404
    )


async def _read_body(request: Request, limit: int, what: str) -> bytes:
    """The request body, read in chunks and refused (413) as soon as it passes ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise UploadError(
            f"{what} is {int(declared):,} bytes; the limit is {limit:,} bytes.", status=413
        )
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise UploadError(f"{what} is larger than the limit of {limit:,} bytes.", status=413)
        chunks.append(chunk)
    return b"".join(chunks)


# -- pages and API ---------------------------------------------------------------------------------


async def index(request: Request):
    return FileResponse(STATIC / "index.html", media_type="text/html")


async def run_page(request: Request):
    if not request.query_params.get("id"):
        return RedirectResponse("/")
    return FileResponse(STATIC / "run.html", media_type="text/html")


async def api_runs(request: Request):
    state = _state(request)
    entries = await run_in_threadpool(state.catalog.entries)
    return JSONResponse(
        {
            "root": state.catalog.root.name,
            "runs": [e.summary() for e in entries.values()],
            "limits": {
                "upload_bytes": MAX_UPLOAD_BYTES,
                "upload_seconds": MAX_UPLOAD_SECONDS,
                "primer_bytes": MAX_PRIMER_BYTES,
            },
        }
    )


async def _loaded(request: Request):
    state = _state(request)
    entry_id = request.query_params.get("id")
    entry = await run_in_threadpool(_entry, state, entry_id)
    if entry is None:
        return None, _not_found(entry_id)
    try:
        return await run_in_threadpool(state.models.get, entry), None
    except SeqkitError as exc:
        return None, _error(str(exc), status=422)


async def api_run(request: Request):
    loaded, err = await _loaded(request)
    if err is not None:
        return err
    doc = loaded.describe()
    doc["limits"] = {"upload_bytes": MAX_UPLOAD_BYTES, "upload_seconds": MAX_UPLOAD_SECONDS,
                     "primer_bytes": MAX_PRIMER_BYTES}  # fmt: skip
    return JSONResponse(doc)


async def api_stats(request: Request):
    ms = list(_state(request).server_ms)
    if not ms:
        return JSONResponse({"frames": 0})
    ms.sort()
    return JSONResponse({"frames": len(ms), "server_ms_median": statistics.median(ms),
                         "server_ms_p95": ms[min(len(ms) - 1, int(0.95 * len(ms)))]})  # fmt: skip


async def _posted_to(request: Request, kind: str, wrong: str):
    """A POST that runs a model: the request checks (Host, Origin), then the model of the
    ``id`` asked for, which must be a ``kind`` model (else ``wrong``, a message with ``{id}``).
    Returns ``(state, loaded, None)`` or ``(state, None, error response)``."""
    state = _state(request)
    why = _check_request(request, state, need_origin=True)
    if why:
        return state, None, _error(why, 403)
    loaded, err = await _loaded(request)
    if err is not None:
        return state, None, err
    if loaded.kind != kind:
        return state, None, _error(wrong.format(id=loaded.entry.id))
    return state, loaded, None


async def api_analyse(request: Request):
    state, loaded, err = await _posted_to(
        request, "kws", "'{id}' is a music run; upload a WAV to a keyword model."
    )
    if err is not None:
        return err
    name = Path(request.query_params.get("name", "upload.wav")).name[:200] or "upload.wav"
    try:
        settings = parse_settings(
            {
                k: v
                for k, v in request.query_params.items()
                if k in ("threshold", "smooth_ms", "refractory_ms")
            }  # fmt: skip
        )
        body = await _read_body(request, MAX_UPLOAD_BYTES, f"the upload {name!r}")
        if not body:
            raise UploadError(f"the upload {name!r} is empty; send a WAV file as the body.")
        folder = Path(tempfile.mkdtemp(prefix="upload-", dir=state.open_scratch()))
        try:
            path = folder / "upload.wav"
            path.write_bytes(body)
            doc = await run_in_threadpool(analyse_wav, loaded, path, name, settings)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    except UploadError as exc:
        return _error(str(exc), exc.status)
    except SeqkitError as exc:
        return _error(f"{name}: {exc}")
    return JSONResponse(doc)


async def api_generate(request: Request):
    state, loaded, err = await _posted_to(
        request, "music", "'{id}' is not a music run; generate needs one."
    )
    if err is not None:
        return err
    q = request.query_params
    try:
        steps, temperature, seed = check_generate_params(
            q.get("steps", 64), q.get("temperature", 1.0), q.get("seed", 0)
        )
        body = await _read_body(request, MAX_PRIMER_BYTES, "the primer MIDI file")
        n = next(state.counter)
        folder = state.open_scratch() / f"gen-{n}"
        primer = None
        if body:
            folder.mkdir()
            primer = folder / "primer.mid"
            primer.write_bytes(body)
        report = await run_in_threadpool(
            generate_sample, loaded, folder / "out", steps, temperature, seed, primer
        )
    except UploadError as exc:
        return _error(str(exc), exc.status)
    except SeqkitError as exc:
        return _error(str(exc))
    state.samples[n] = folder / "out"
    for old in sorted(state.samples)[:-MAX_SAMPLES]:
        shutil.rmtree(state.samples.pop(old).parent, ignore_errors=True)
    base = f"/api/samples/{n}"
    return JSONResponse(
        {
            "sample": n,
            "wav": f"{base}/sample-1.wav",
            "mid": f"{base}/sample-1.mid",
            "png": f"{base}/sample-1.png",
            "renderer": report.get("renderer"),
            "steps": steps,
            "primer_steps": report.get("primer_steps", 0),
            "temperature": temperature,
            "seed": seed,
            "seconds_per_step": report.get("seconds_per_step"),
        }
    )


async def api_sample(request: Request):
    state = _state(request)
    n = request.path_params["n"]
    name = request.path_params["name"]
    folder = state.samples.get(n)
    if folder is None or name not in SAMPLE_FILES or not (folder / name).is_file():
        return _error(f"no generated file {n}/{name} here.", status=404)
    headers = None
    if name.endswith(".mid"):  # a download; the WAV and the PNG are shown in the page
        headers = {"Content-Disposition": f'attachment; filename="seqkit-{n}-{name}"'}
    return FileResponse(folder / name, media_type=SAMPLE_FILES[name], headers=headers)


# -- the live stream ---------------------------------------------------------------------------


async def _close_with(ws: WebSocket, message: str, code: int):
    if ws.client_state == WebSocketState.CONNECTED:
        try:
            await ws.send_json({"type": "error", "message": message})
            await ws.close(code=code, reason=message[:120])
        except (RuntimeError, WebSocketDisconnect, OSError):  # the page went away first
            pass


async def ws_stream(ws: WebSocket):
    state: State = ws.app.state.seqkit
    why = _check_request(ws, state, need_origin=True)
    if why:
        await ws.close(code=CLOSE_POLICY, reason=why[:120])
        return
    await ws.accept()
    entry_id = ws.query_params.get("id")
    entry = await run_in_threadpool(_entry, state, entry_id)
    if entry is None:
        await _close_with(ws, f"no run or export {entry_id!r} is served here.", CLOSE_POLICY)
        return
    if state.streams >= MAX_STREAMS:
        await _close_with(ws, f"{MAX_STREAMS} streams are open; try again later.", CLOSE_POLICY)
        return
    state.streams += 1
    try:
        try:
            loaded = await run_in_threadpool(state.models.get, entry)
            if loaded.kind != "kws":
                raise ParameterError(f"'{entry.id}' is not a keyword model; nothing to stream.")
            settings = {k: v for k, v in ws.query_params.items()
                        if k in ("threshold", "smooth_ms", "refractory_ms")}  # fmt: skip
            stream = await run_in_threadpool(KwsStream, loaded, settings)
        except SeqkitError as exc:
            await _close_with(ws, str(exc), CLOSE_POLICY)
            return
        await ws.send_json(stream.ready_message())
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            start = time.perf_counter()
            try:
                if message.get("bytes") is not None:
                    frame_id, samples = parse_frame(message["bytes"])
                    reply = await run_in_threadpool(stream.process, frame_id, samples)
                    ms = (time.perf_counter() - start) * 1000.0
                    reply["server_ms"] = round(ms, 3)
                    state.record(ms)
                elif message.get("text") is not None:
                    reply = stream.configure(parse_text(message["text"]))
                else:
                    raise FrameError("an empty message; send audio frames or settings.")
            except FrameError as exc:
                await _close_with(ws, f"stream closed: {exc}", CLOSE_BAD_DATA)
                return
            except SeqkitError as exc:
                await _close_with(ws, f"stream closed: {exc}", CLOSE_BAD_DATA)
                return
            await ws.send_json(reply)
    except WebSocketDisconnect:
        return
    except Exception as exc:  # a bug: this stream ends with a message, the server goes on
        log.exception("stream of %s failed", entry_id)
        await _close_with(ws, f"stream closed: unexpected {type(exc).__name__}: {exc}",
                          CLOSE_ERROR)  # fmt: skip
    finally:
        state.streams -= 1


# -- the app ---------------------------------------------------------------------------------------


class _Guard:
    """ASGI middleware: refuse any HTTP request or WebSocket whose Host is not served here."""

    def __init__(self, app, state: State):
        self.app, self.state = app, state

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket") and self.state.allowed_hosts is not None:
            host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
            if _host_of(host) not in self.state.allowed_hosts:
                if scope["type"] == "http":
                    response = _error(f"host {host!r} is not served here.", 400)
                    await response(scope, receive, send)
                else:
                    await send({"type": "websocket.close", "code": CLOSE_POLICY})
                return
        await self.app(scope, receive, send)


def make_app(root, allowed_hosts=None) -> Starlette:
    """The web app over ``root`` (a runs folder, a run folder or an export). ``allowed_hosts``:
    the Host names it answers to (None: any; ``seqkit serve`` passes the loopback names when
    bound to 127.0.0.1). RunError when ``root`` holds nothing servable."""
    state = State(root, allowed_hosts)

    @asynccontextmanager
    async def lifespan(app):
        try:
            yield
        finally:
            state.close()

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/run", run_page),
            Route("/api/runs", api_runs),
            Route("/api/run", api_run),
            Route("/api/stats", api_stats),
            Route("/api/analyse", api_analyse, methods=["POST"]),
            Route("/api/generate", api_generate, methods=["POST"]),
            Route("/api/samples/{n:int}/{name:str}", api_sample),
            WebSocketRoute("/ws/stream", ws_stream),
            Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
        ],
        lifespan=lifespan,
    )
    app.state.seqkit = state
    app.add_middleware(_Guard, state=state)
    return app


def loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (only this machine can connect)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


__all__ = ["LOOPBACK_HOSTS", "MAX_STREAMS", "State", "loopback", "make_app"]
