"""Streaming inference: a trained run's features and model, frame by frame, in numpy.

Audio goes in as chunks of any size; every hop of samples makes one feature frame, computed
once (no window recomputed), and one model step that carries the recurrent state. Three parts:

* ``FeatureStream`` -- the recipe's feature steps (``melspectrogram``, ``log_mel``,
  ``power_to_db``, ``mfcc``, ``deltas``) one frame at a time. Window, mel filters, DCT and
  delta coefficients come from librosa itself, so the frames equal librosa's.
* ``ModelStream`` -- the Keras model as numpy steps: ``Normalization``, the GRU (both
  ``reset_after`` forms), ``LSTM``, ``SimpleRNN``, ``Dense``, ``Dropout`` (identity at
  inference), the task head (pooling ``last``: the posterior of every frame from the current
  state; ``mean`` / ``max``: running). Weights are read from the Keras layers. ``copies``
  runs several states side by side on the same features (staggered resets, below).
* ``Streamer`` (features + model + state policy) and ``Detector`` (posterior smoothing,
  threshold, refractory time), used by ``seqkit stream``.

Where a stream necessarily differs from whole-clip extraction (everything else is equal to
librosa and to the Keras model to 1e-5, tested):

* **Clip edges.** librosa's ``center=True`` pads the clip with ``n_fft // 2`` zeros on both
  sides. A stream starts with those zeros too, so its first frames are librosa's; the right
  padding exists only at the end of a recording (``flush()``). ``fix_length`` does not apply
  to a stream: it has no clip.
* **power_to_db's top_db** floors each value at the clip's maximum minus ``top_db``, and the
  clip's maximum lies in the future. A stream floors at the maximum over the last
  ``top_db_frames`` frames (default: the recipe's clip length; the whole stream so far when the
  recipe has no ``fix_length``). Equal to the whole clip whenever the floor does not bind or the
  loudest frame comes before every floored one.
* **deltas** of width ``w`` need ``w // 2`` frames of look-ahead (latency: 40 ms for ``w = 9``
  at a 10 ms hop); the first and last ``w // 2`` frames use librosa's ``interp`` edge fit, at
  the start once ``w`` frames have arrived and at the end on ``flush()``.

Long streams. A keyword model is trained on clips of ``T`` frames that start from a zero state
and is read at the clip's end. ``Streamer`` therefore keeps ``copies`` states, staggered by
``T / copies`` frames, each reset to zero every ``T`` frames; the posterior of a frame comes from
the oldest copy, whose window covers the last ``(1 - 1 / copies) T`` to ``T`` frames. Features
and the layers before the first recurrent one are computed once for all copies.
``copies = 1`` resets one state every ``T`` frames; ``reset_every = None`` carries one state
forever; ``detect`` also zeroes every state after a detection. Measured on the quickstart run
(``bench/bench_detection.py``, ``bench/README.md``): a state carried without resets fires again
and again after a word (1,600 false alarms per hour); one state reset every clip length misses
the words that straddle a reset (recall 0.79); 2, 4 or 8 staggered states reset after each
detection: recall 0.92 at threshold 0.8, 1.00 with no false alarm at 0.9. ``seqkit stream``
runs 4.

The code lives in three modules: ``features`` (``FeatureStream``), ``model`` (``ModelStream``)
and ``runtime`` (``Streamer``, ``Detector``, ``detect``, ``audio_blocks``); everything is
importable from here. Opening a run folder or an export for streaming is ``seqkit.inference``
(``load_for_inference``), one floor up: it reads runs and exports, which this wing does not.
"""

from .features import FeatureStream
from .model import IDENTITY_LAYERS, ModelStream
from .runtime import (
    FILLER_WORDS,
    Detection,
    Detector,
    Streamer,
    audio_blocks,
    detect,
    filler_labels,
)

__all__ = [
    "FILLER_WORDS",
    "IDENTITY_LAYERS",
    "Detection",
    "Detector",
    "FeatureStream",
    "ModelStream",
    "Streamer",
    "audio_blocks",
    "detect",
    "filler_labels",
]
