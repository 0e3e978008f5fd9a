"""Music: piano rolls from MIDI, scores, audio and the classic benchmark pickles; next-step
models of polyphonic music (``polyphonic``) and of melodies (``melody``); sampling to MIDI,
WAV and piano-roll PNGs.

Modules (imported on first use; nothing here imports Keras):

* ``rolls``      -- the piano-roll format, quantisation, MIDI <-> roll, transposition, chunking,
  melody events (hold / rest / note on)
* ``sources``    -- data sources ``pianoroll_pickle``, ``pianoroll_npz``, ``midi_folder`` and
  what every music source shares (``Piece``, ``MusicData``, splits, skipped files)
* ``scores``     -- ``music21_corpus`` (the scores music21 ships, cached as rolls)
* ``recordings`` -- ``audio_folder`` (recordings transcribed to rolls or melodies)
* ``transcribe`` -- audio -> notes (pYIN melodies, a CQT-based polyphonic roll)
* ``metrics``    -- NLL per step, frame accuracy, mixtures: the reference definitions (NumPy)
* ``losses``     -- the same definitions as a Keras loss and metrics (in the graph)
* ``nade``       -- the NADE output of ``polyphonic`` (RNN-NADE): layer, reference, sampler
* ``batches``    -- padded, chunked, bucketed, seeded batches of sequences (a
  ``keras.utils.PyDataset``)
* ``task``       -- the ``polyphonic`` task and what both music tasks share (``MusicTask``)
* ``melody``     -- the ``melody`` task (MelodyRNN-style events)
* ``callbacks``  -- weight noise, TensorBoard samples (piano rolls, audio)
* ``synth``      -- a small additive synthesizer (FluidSynth when installed)
* ``generate``   -- sampling from a run folder to MIDI, WAV and PNG

It never imports the speech wing, the trainer or the CLI (pyproject.toml's import contracts).
"""

from .rolls import HIGHEST, KEYS, LOWEST

__all__ = ["HIGHEST", "KEYS", "LOWEST"]
