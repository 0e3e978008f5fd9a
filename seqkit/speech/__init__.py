"""The speech wing: keyword spotting from audio, end to end.

* ``sources/`` -- data sources (folders, Speech Commands, file-name patterns, manifests,
  generated tones, eSpeak NG speakers);
* ``synth`` -- the eSpeak NG generator behind ``synthetic_speech`` and ``seqkit data synth``;
* ``augment`` -- training-only, seeded augmentations (waveform and spectrogram) and the batch
  maker that applies them;
* ``task`` -- the ``kws`` task (``KeywordSpotting``): data, head, loss, evaluation, TensorBoard;
* ``streaming/`` -- the numpy streaming runtime (features and model frame by frame, detection).

It builds on the shared blocks (``features``, ``layers``, ``data``, ``cache``, ``extract``,
``tasks``, ``runs``) and never imports the music wing, the trainer or the CLI.
"""
