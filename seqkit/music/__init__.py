"""Music: piano rolls from MIDI, scores, audio and the classic benchmark pickles; next-step
models of polyphonic music (``polyphonic``) and of melodies (``melody``); sampling to MIDI,
WAV and piano-roll PNGs.

Modules (imported on first use; nothing here imports Keras):

* ``rolls``      -- the piano-roll format, quantisation, MIDI <-> roll, transposition, chunking
* ``sources``    -- data sources ``pianoroll_pickle``, ``pianoroll_npz``, ``midi_folder``,
  ``music21_corpus``, ``audio_folder``
* ``transcribe`` -- audio -> notes (pYIN melodies, a CQT-based polyphonic roll)
* ``synth``      -- a small additive synthesizer (FluidSynth when installed)
* ``tasks``      -- the ``polyphonic`` and ``melody`` tasks, their metrics and sampling
* ``generate``   -- sampling from a run folder to MIDI, WAV and PNG
"""

from .rolls import HIGHEST, KEYS, LOWEST

__all__ = ["HIGHEST", "KEYS", "LOWEST"]
