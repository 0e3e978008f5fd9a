"""``seqkit serve``: a local web application to try trained models in the browser
(``seqkit.serve``). This module parses options, checks the address, warns and starts uvicorn."""

from __future__ import annotations

import socket

import click

from .common import import_keras
from .options import PATH


def _check_port(host: str, port: int) -> int:
    """The port to listen on (``port``, or a free one for 0); RunError (exit 1) now, with the
    fix, when ``host:port`` cannot be bound (in use, not an address of this machine), rather
    than a log line from inside uvicorn."""
    from ..errors import RunError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise RunError(f"--host {host!r} is not an address here ({exc.strerror}).") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(address)
        except OSError as exc:
            raise RunError(
                f"Cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port "
                "(or stop what uses it)."
            ) from None
        return s.getsockname()[1]


@click.command()
@click.argument("root", metavar="RUNS_OR_RUN", type=PATH)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but a loopback address lets other machines "
              "use the models and upload files; a warning says so.")  # fmt: skip
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free one).")  # fmt: skip
@click.pass_context
def serve(ctx, root, host, port):
    """Try trained models in the browser: a local web application over RUNS_OR_RUN.

    RUNS_OR_RUN: a runs folder (every run folder and export in it is listed, with its recipe
    name, task, date and headline metric), a run folder, or an export (.tflite, .onnx, .keras
    with its .json). A keyword-spotting model listens to the browser's microphone and shows
    its posteriors and detections live, or analyses an uploaded WAV (predictions, posterior
    track, GRU gates); a music run generates samples to play, see and download.

    Only RUNS_OR_RUN is served. Needs the serve extra: pip install "seqkit[serve]".
    """
    from ..errors import ParameterError

    try:
        import uvicorn  # the serve extra: not needed by any other command
    except ImportError:
        raise ParameterError(
            'seqkit serve needs Starlette and uvicorn: pip install "seqkit[serve]" (or -e ".[serve]" '
            "in a checkout; scripts/setup.sh installs it)."
        ) from None
    import_keras(ctx)
    # The app and the model readers: Keras/TensorFlow (~3 s); not for --help.
    from ..serve.app import LOOPBACK_HOSTS, loopback, make_app

    local = loopback(host)
    app = make_app(root, allowed_hosts=LOOPBACK_HOSTS if local else None)
    port = _check_port(host, port)
    if not local:
        click.echo(
            f"seqkit: warning: listening on {host}, not only on this machine (127.0.0.1): anyone "
            "who can reach it can use the models and upload files (bounded in size and length). "
            "There is no login and no encryption.",
            err=True,
        )
    shown = f"[{host}]" if ":" in host else host
    entries = app.state.seqkit.catalog.entries()
    click.echo(
        f"seqkit serve: {len(entries)} run(s) and export(s) under {app.state.seqkit.catalog.root}",
        err=True,
    )
    click.echo(f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else shown}:{port}/")
    click.echo("Ctrl-C stops the server.", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", ws_max_size=2**20,
                lifespan="on")  # fmt: skip
