"""``speech_embedding``: a frozen speech embedding learned from real people, as a feature step.

Google's speech embedding (Lin et al. 2020, "Training Keyword Spotters with Limited and
Synthesized Speech Data"), in the two TFLite files openWakeWord uses (Apache-2.0): a mel
spectrogram (10 ms hop, 32 bands, 60-3800 Hz) and a small convolutional network
that maps every 76 mel frames (775 ms) to 96 values, every 8 frames (80 ms). The network was
trained on a large corpus of real speech, so a classifier on top of it, trained on synthetic
voices only, carries over to people far better than one on log-mel bands: on the 300 real
Speech Commands clips of ``../shared/data`` (README, Keyword spotting) keyword recall and
12-class accuracy rise from 0.73 / 0.75 (log-mel, the best augmentations) to the figures of
``recipes/kws_synthetic.yaml``'s header. This is openWakeWord's design (embedding + small
classifier, trained on 100 % synthetic speech) with seqkit's GRU as the classifier.

Output: ``(windows, 96)`` frames, one per 80 ms. The clip is padded with ``pad_seconds`` of
zeros on both sides first, so that a one-second clip gives 16 windows (the whole word is seen
by several of them; openWakeWord's classifiers read 16 too); a clip shorter than one window
after padding is refused (``ParameterError``, which ``seqkit predict`` reports and skips).

The model files come from the ``pyopen-wakeword`` wheel (``pip install 'seqkit[embedding]'``;
Linux x86_64; ``scripts/setup.sh`` installs it), or from ``models: FOLDER`` holding
``melspectrogram.tflite`` and ``embedding_model.tflite`` (openWakeWord's release files, for
other platforms). Nothing is downloaded. They run on the TFLite interpreter of
``ai_edge_litert`` where installed, else TensorFlow's ``tf.lite.Interpreter`` (TensorFlow is a
seqkit dependency), one thread per process: feature extraction runs one process per core
(``seqkit.extract``). The files' SHA-1 is part of the step's settings, so the feature cache
(``seqkit.cache``) never mixes two versions of the model.

Written here rather than taken from ``pyopen-wakeword``'s runtime: that one streams 80 ms
chunks through a C library of its own and keeps a ring buffer per stream; seqkit needs whole
clips in batches, picklable for worker processes. Whole clips only: the mel model computes
``10 log10(max(S, 1e-10))`` and floors it at 80 dB below the loudest value of everything it
is given (checked: frame-by-frame values floored at the clip's maximum - 80 equal its output
to 1e-5), so a frame's value depends on the loudest moment of the whole clip, later ones
included -- and the 0.5 s of zero padding is always floored. A stream cannot know that yet: a
causal floor gives other values exactly where training saw the floor, so the streaming runtime
refuses this step (``seqkit.speech.streaming.features``) and ``seqkit stream``, ``serve``'s
live microphone and ``export --streaming`` need a log-mel recipe
(``recipes/kws_synthetic_logmel.yaml``). A causal variant trained as it streams is future
work.
"""

from __future__ import annotations

import hashlib
import importlib.util
import warnings
from pathlib import Path

import numpy as np

from ..errors import DataError, ParameterError, non_negative_number, positive_int
from ..features import AUDIO, FRAMES, FeatureStep

SAMPLE_RATE = 16000
MEL_FILE, EMBEDDING_FILE = "melspectrogram.tflite", "embedding_model.tflite"
WINDOW, STRIDE, HOP, FRAME, N_MELS, WIDTH = 76, 8, 160, 512, 32, 96
#: The fewest samples that make one embedding: 76 mel frames (the mel model frames 512
#: samples, hop 160: floor((n - 512) / 160) + 1 frames of n samples).
MIN_SAMPLES = FRAME + (WINDOW - 1) * HOP
INSTALL = "pip install 'seqkit[embedding]' (the pyopen-wakeword wheel, Linux x86_64)"


def default_models() -> Path | None:
    """The ``models`` folder of the installed ``pyopen_wakeword`` package, or None."""
    spec = importlib.util.find_spec("pyopen_wakeword")  # finds it without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def _interpreter(path: Path, threads: int):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            import tensorflow as tf
        except ImportError as exc:
            raise DataError(
                "speech_embedding needs a TFLite interpreter: pip install ai-edge-litert "
                "(or tensorflow)."
            ) from exc
        Interpreter = tf.lite.Interpreter
    with warnings.catch_warnings():  # tf.lite.Interpreter warns that it is deprecated
        warnings.simplefilter("ignore")
        try:
            return Interpreter(model_path=str(path), num_threads=threads)
        except (ValueError, RuntimeError) as exc:
            raise DataError(f"Cannot load the TFLite model '{path}': {exc}") from None


class _Runner:
    """One TFLite model whose first input is resized to each call's shape."""

    def __init__(self, path: Path, threads: int):
        self.interp = _interpreter(path, threads)
        self.input = self.interp.get_input_details()[0]["index"]
        self.output = self.interp.get_output_details()[0]["index"]
        self.shape = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.shape != x.shape:
            self.interp.resize_tensor_input(self.input, x.shape)
            self.interp.allocate_tensors()
            self.shape = x.shape
        self.interp.set_tensor(self.input, x)
        self.interp.invoke()
        return np.array(self.interp.get_tensor(self.output))


class SpeechEmbedding(FeatureStep):
    """Google's speech embedding (module docstring): 16 kHz audio -> (windows, 96) frames,
    one per 80 ms. ``pad_seconds`` of zeros on each side first (0.5: a one-second clip gives
    16 windows); ``models``: a folder with the two TFLite files (default: the pyopen-wakeword
    package's); ``threads``: interpreter threads (1: extraction already runs one process per
    core)."""

    accepts = (AUDIO,)
    produces = FRAMES

    def __init__(self, pad_seconds: float = 0.5, models: str | None = None, threads: int = 1):
        self.pad_seconds = non_negative_number("pad_seconds", pad_seconds)
        self.threads = positive_int("threads", threads)
        if models is not None and not isinstance(models, str):
            raise ParameterError(f"`models` must be a folder name; received {models!r}.")
        folder = Path(models).expanduser() if models else default_models()
        if folder is None:
            raise ParameterError(
                f"speech_embedding needs its model files: {INSTALL}, or `models: FOLDER` with "
                f"openWakeWord's {MEL_FILE} and {EMBEDDING_FILE}."
            )
        missing = [n for n in (MEL_FILE, EMBEDDING_FILE) if not (folder / n).is_file()]
        if missing:
            raise ParameterError(
                f"`models`: '{folder}' has no {' or '.join(missing)}; it must hold openWakeWord's "
                f"{MEL_FILE} and {EMBEDDING_FILE}" + ("." if models else f" ({INSTALL}).")
            )
        # Public settings (the feature cache's pipeline id): ``models`` as the recipe gives it
        # and the files' digest -- not where an environment installed them, so that another
        # venv with the same files reuses the cached features.
        self.models, self._folder = models, str(folder)
        digest = hashlib.sha1()
        for name in (MEL_FILE, EMBEDDING_FILE):
            try:
                digest.update((folder / name).read_bytes())
            except OSError as exc:
                raise DataError(f"Cannot read '{folder / name}': {exc.strerror or exc}") from None
        self.model_sha1 = digest.hexdigest()
        self._runners = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_runners"] = None  # interpreters are not picklable: each process loads its own
        return state

    def _models(self):
        if self._runners is None:
            folder = Path(self._folder)
            self._runners = (_Runner(folder / MEL_FILE, self.threads),
                             _Runner(folder / EMBEDDING_FILE, self.threads))  # fmt: skip
        return self._runners

    def mel_frames(self, y: np.ndarray) -> np.ndarray:
        """(frames, 32) of the mel model, scaled as the embedding expects (x / 10 + 2)."""
        mel, _ = self._models()
        x = (np.asarray(y, np.float32) * 32767.0)[None, :]  # the model reads int16 magnitudes
        return mel(x).reshape(-1, N_MELS) / 10.0 + 2.0

    def __call__(self, y, sr):
        if sr != SAMPLE_RATE:
            raise ParameterError(
                f"speech_embedding needs 16 kHz audio; received {sr} Hz. Put `load` with "
                "`sample_rate: 16000` before it."
            )
        pad = np.zeros(int(round(self.pad_seconds * SAMPLE_RATE)), np.float32)
        y = np.concatenate([pad, np.asarray(y, np.float32), pad])
        if y.size < MIN_SAMPLES:
            raise ParameterError(
                f"speech_embedding needs at least {MIN_SAMPLES} samples "
                f"({MIN_SAMPLES / SAMPLE_RATE:.3f} s) with its padding; received {y.size}. Use "
                "longer clips or a larger `pad_seconds`."
            )
        m = self.mel_frames(y)
        starts = range(0, m.shape[0] - WINDOW + 1, STRIDE)
        windows = np.stack([m[s : s + WINDOW] for s in starts])[..., None].astype(np.float32)
        _, embed = self._models()
        out = embed(np.ascontiguousarray(windows)).reshape(len(starts), WIDTH)
        return np.ascontiguousarray(out, dtype=np.float32)
