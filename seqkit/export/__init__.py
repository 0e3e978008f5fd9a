"""Export a trained model for serving and for devices: ``.keras``, SavedModel, TFLite (float
and int8) and ONNX, whole-clip or streaming.

Two shapes of model:

* **whole clip** -- the Keras model as trained: ``features`` (N, T, F) in, ``scores`` out.
* **streaming** -- one feature frame in, the recurrent states in, the scores and the new states
  out, with every state an explicit input and output (google-research kws_streaming's
  external-state mode). It is built from the trained model's own layers: each recurrent layer
  is replaced by one call of its cell (seqkit's GRU cell with either ``reset_after``, Keras'
  GRU, LSTM and SimpleRNN cells, or a plugin's cell); normalisation, dense and dropout layers
  act on the frame. Fed the frames of a clip one by one, starting from zero states, its last
  scores are the whole-clip scores. Inputs: ``frame`` (N, F) and ``<layer>_state<k>``
  (N, size); outputs: the model's output (``scores``) and ``next_<layer>_state<k>``.

What works on TensorFlow 2.21 (measured; ``/work/shared/REFERENCES.md`` section 7 and
``bench/bench_export.py``):

* SavedModel, TFLite and ONNX get the recurrent layers as ``keras.layers.RNN`` over their own
  cells (same equations, same weights): converters read Keras' time loop, not whatever a
  layer's ``call`` does for training speed (seqkit's GRU runs an XLA-compiled scan). The
  ``.keras`` export keeps the layers as trained.
* TFLite cannot convert a Keras RNN with an unknown batch size (its TensorList needs a static
  element shape), so the whole-clip float ``.tflite`` is converted with batch size 1 (a
  ``WHILE`` loop; any number of clips is run one at a time).
* The int8 calibrator crashes the process on any ``WHILE`` model (tensorflow#75140), so the
  whole-clip int8 model is converted from an unrolled copy (``unroll=True``), which gives
  full integer kernels but repeats per-step tensors: it is larger than the float one. The
  streaming model has no loop and quantises to a fraction of the float size: it is the one to
  put on a device.
* int8 models keep float32 inputs and outputs (quantise/dequantise inside), so the state fed
  back between calls is float. Calibration data: clips of the run's training split (whole
  clip), or frames and states from Keras rollouts of those clips (streaming).
* ONNX goes through Keras' own exporter and ``tf2onnx`` (``pip install 'seqkit[onnx]'``);
  ``onnxruntime`` runs it. tf2onnx turns captured constants into graph inputs, so the
  normalisation is rebuilt with variables for it.

Every export gets a ``<name>.json`` beside it: format, streaming, quantisation, input name and
shape, states (name and size), and the run's labels, resolved recipe and folder, so that a
``.tflite`` can be used without its run folder; and the export's SHA-256 and size (a SavedModel
folder: over its files) and a SHA-256 of the ``.json``'s own contents. ``load_exported(path)``
checks those before any runtime opens the file (a damaged ``.tflite`` would kill the process
inside TFLite), checks the labels against the model's outputs, and gives ``predict(x)`` and,
for streaming exports, ``step(frame, state)``. An export whose ``.json`` has no hash (written
before seqkit recorded one) is checked by reading it: a ``.tflite`` is parsed as a FlatBuffer
and its indices checked before TFLite gets its bytes.

Layout: ``models`` (inference copy, streaming model), ``tflite`` (conversion, int8),
``write`` (files, checks, run folders), ``load`` (``Exported``).
"""

from __future__ import annotations

from .load import Exported, load_exported
from .models import FRAME_INPUT, NEXT, inference_copy, probe_inputs, streaming_model
from .tflite import DYNAMIC_RANGE, FULL_INT8, to_tflite
from .write import (
    FORMATS,
    ExportResult,
    check_export,
    default_name,
    export_model,
    export_run,
    training_splits,
)

__all__ = [
    "DYNAMIC_RANGE",
    "FORMATS",
    "FRAME_INPUT",
    "FULL_INT8",
    "NEXT",
    "ExportResult",
    "Exported",
    "check_export",
    "default_name",
    "export_model",
    "export_run",
    "inference_copy",
    "load_exported",
    "probe_inputs",
    "streaming_model",
    "to_tflite",
    "training_splits",
]
