"""Where keyword-spotting audio comes from: one module per registered data source.

* ``folder`` -- ``FolderSource`` (``folder``): one sub-folder per label.
* ``tones`` -- ``SyntheticTones`` (``synthetic_tones``): the quickstart's generated tones.
* ``speech_commands`` -- ``SpeechCommands`` (``speech_commands``): Google's Speech Commands
  layout, its list files and SHA-1 split rule, ``_silence_`` / ``_unknown_``.
* ``pattern`` -- ``FilenamePattern`` (``filename_pattern``): labels and speakers from file names.
* ``manifest`` -- ``Manifest`` (``manifest``): a CSV of path, label, split.
* ``synthetic`` -- ``SyntheticSpeech`` (``synthetic_speech``): eSpeak NG speakers
  generated on first use (the generator is here too: ``seqkit data synth``);
* ``espeak`` -- the eSpeak NG engine (ctypes) and its speakers;
* ``voices`` -- the other voice engines of ``synthetic_speech`` (Flite, Festival, Piper);
* ``common`` -- what they share: label checks, the scanned-once base, generation locks.

Each source lists ``seqkit.data.Example`` records; the registry imports a module when its name
is first used, so this package imports none of them itself.
"""
