"""``seqkit serve``: try a trained model in the browser.

A local web application over a runs folder, a run folder or an export: keyword spotting live
from the browser's microphone (posteriors and detections pushed back over a WebSocket), an
uploaded WAV's predictions, posterior track and GRU gates, and music generation (play, piano
roll, MIDI and WAV downloads). Modules:

* ``catalog`` -- the run folders and exports under the root, by id (nothing else is opened);
* ``models`` -- each model opened once per process and shared;
* ``streams`` -- one live stream: the wire format, seqkit's ``Streamer`` and ``Detector``;
* ``jobs`` -- an uploaded WAV analysed, a music sample generated;
* ``app`` -- the Starlette application (routes, limits, origin and host checks);
* ``static/`` -- the page: plain HTML, CSS and JavaScript, served by seqkit (no build step,
  nothing fetched from elsewhere).

Needs the ``serve`` extra (``pip install "seqkit[serve]"``: Starlette, uvicorn).
"""

from .app import make_app

__all__ = ["make_app"]
