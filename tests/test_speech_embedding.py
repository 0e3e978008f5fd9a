"""speech_embedding (seqkit/speech/embedding.py): Google's speech embedding as a feature step.

Checked: golden values of the model on a seeded clip (written here), the 80 ms grid (a clip
shifted by 1280 samples gives the same rows shifted by one, exactly), batching (each window
alone gives the batched row), pickling for worker processes, the refusals (rate, length,
model folder, parameters), a recipe that trains and predicts with it end to end, and the
streaming runtime's and `export --streaming`'s refusal naming the streaming recipe.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from seqkit.errors import ParameterError
from seqkit.speech import embedding as E

pytestmark = pytest.mark.skipif(
    E.default_models() is None,
    reason="speech_embedding's model files come with the embedding extra: "
    "pip install -e '.[embedding]' (Linux x86_64)",
)


def clip(seconds=1.0, seed=0):
    """A windowed 440 Hz tone in seeded noise."""
    n = int(seconds * 16000)
    t = np.arange(n) / 16000
    rng = np.random.default_rng(seed)
    y = 0.3 * np.sin(2 * np.pi * 440 * t) * np.hanning(n) + 0.01 * rng.standard_normal(n)
    return y.astype(np.float32)


def test_golden_values_of_a_one_second_clip():
    out = E.SpeechEmbedding()(clip(), 16000)
    assert out.shape == (16, 96) and out.dtype == np.float32  # 1 s + 2 x 0.5 s of zeros
    np.testing.assert_allclose(out[0, :6], [-21.0437, 26.9066, 17.0175, -7.4134, 8.3114, 17.1745],
                               rtol=1e-4, atol=2e-3)  # fmt: skip
    np.testing.assert_allclose(out[8, :6], [-17.6565, 26.0066, 9.7743, 10.1101, 20.751, 17.7588],
                               rtol=1e-4, atol=2e-3)  # fmt: skip
    np.testing.assert_allclose([out.mean(), np.abs(out).max()], [1.5027, 66.3934], atol=2e-3)


def test_frames_are_on_an_80_ms_grid_and_windows_batch_exactly():
    step = E.SpeechEmbedding(pad_seconds=0)
    y = np.concatenate([clip(seed=1), clip(seed=2)])
    whole = step(y, 16000)
    # floor((32000 - 512) / 160) + 1 = 197 mel frames; windows of 76 every 8: 16
    assert whole.shape == (16, 96)
    np.testing.assert_allclose(step(y[1280:], 16000), whole[1:], atol=1e-5)
    mels = step.mel_frames(y)
    assert mels.shape == (197, 32)
    _, embed = step._models()
    for k in (0, 7, 15):
        alone = embed(np.ascontiguousarray(mels[None, 8 * k : 8 * k + 76, :, None]))
        np.testing.assert_allclose(alone.reshape(96), whole[k], rtol=1e-5, atol=1e-4)


def test_padding_sets_the_number_of_frames():
    y = clip()
    assert E.SpeechEmbedding(pad_seconds=0)(y, 16000).shape == (3, 96)  # 97 frames: 3 windows
    assert E.SpeechEmbedding(pad_seconds=1.0)(y, 16000).shape == (28, 96)


def test_a_pickled_step_loads_its_own_models_and_gives_the_same_frames():
    step = E.SpeechEmbedding()
    first = step(clip(seed=3), 16000)
    copy = pickle.loads(pickle.dumps(step))
    assert copy._runners is None and copy.model_sha1 == step.model_sha1
    np.testing.assert_array_equal(copy(clip(seed=3), 16000), first)



def test_the_cache_id_names_the_model_files_by_content_not_by_place():
    from seqkit.cache import _state

    settings = _state(E.SpeechEmbedding())["settings"]
    assert settings == {"pad_seconds": 0.5, "threads": 1, "models": None,
                        "model_sha1": E.SpeechEmbedding().model_sha1}  # fmt: skip
    assert len(settings["model_sha1"]) == 40


def test_refusals_name_the_value():
    step = E.SpeechEmbedding()
    with pytest.raises(ParameterError, match="16 kHz audio; received 8000 Hz"):
        step(clip(), 8000)
    with pytest.raises(ParameterError, match="at least 12512 samples"):
        E.SpeechEmbedding(pad_seconds=0)(clip(0.5), 16000)
    with pytest.raises(ParameterError, match="pad_seconds"):
        E.SpeechEmbedding(pad_seconds=-1)
    with pytest.raises(ParameterError, match="threads"):
        E.SpeechEmbedding(threads=0)


def test_an_unreadable_model_file_is_refused_naming_it(tmp_path):
    import os

    from seqkit.errors import DataError

    for name in (E.MEL_FILE, E.EMBEDDING_FILE):
        (tmp_path / name).write_bytes((E.default_models() / name).read_bytes())
    os.chmod(tmp_path / E.MEL_FILE, 0)
    if os.access(tmp_path / E.MEL_FILE, os.R_OK):  # root reads anything
        (tmp_path / E.MEL_FILE).unlink()
        (tmp_path / E.MEL_FILE).mkdir()  # a folder where the file should be: read fails too
    with pytest.raises((DataError, ParameterError), match="melspectrogram.tflite"):
        E.SpeechEmbedding(models=str(tmp_path))


def test_a_models_folder_without_the_files_is_refused(tmp_path):
    with pytest.raises(ParameterError, match=f"'{tmp_path}' has no melspectrogram.tflite or "
                       "embedding_model.tflite"):  # fmt: skip
        E.SpeechEmbedding(models=str(tmp_path))
    (tmp_path / E.MEL_FILE).write_bytes((E.default_models() / E.MEL_FILE).read_bytes())
    with pytest.raises(ParameterError, match="has no embedding_model.tflite"):
        E.SpeechEmbedding(models=str(tmp_path))
    (tmp_path / E.EMBEDDING_FILE).write_bytes(b"not a model")
    step = E.SpeechEmbedding(models=str(tmp_path))  # the digest differs: another cache id
    assert step.model_sha1 != E.SpeechEmbedding().model_sha1
    from seqkit.errors import DataError

    with pytest.raises(DataError, match="Cannot load the TFLite model"):
        step(clip(), 16000)


def test_a_recipe_trains_predicts_and_refuses_streaming(tmp_path):
    from conftest import tiny_recipe

    from seqkit.export import export_run
    from seqkit.inference import load_for_inference, predict_files
    from seqkit.recipe import validate_dict
    from seqkit.speech.streaming.features import FeatureStream
    from seqkit.training import train

    doc = tiny_recipe(tmp_path / "data", epochs=2)
    doc["features"] = [
        {"type": "load", "sample_rate": 16000},
        {"type": "fix_length", "seconds": 1.0},
        {"type": "speech_embedding"},
    ]
    run = train(validate_dict(doc), run_dir=tmp_path / "run", verbose=0)
    model = load_for_inference(run)
    assert model.model.input_shape[1:] == (16, 96)
    wav = sorted((tmp_path / "data").rglob("*.wav"))[0]
    doc = predict_files(model, [wav], top_k=2)
    assert len(doc["predictions"]) == 1 and doc["skipped"] == []
    with pytest.raises(ParameterError, match="no streaming version.*80 dB.*kws_synthetic_logmel"):
        FeatureStream(model.pipeline)
    with pytest.raises(ParameterError, match="--streaming: the feature steps"):
        export_run(run, "tflite", streaming=True, out=tmp_path / "m.tflite")


def test_the_mel_model_floors_at_80_db_below_the_whole_clips_loudest_value():
    """Why the step does not stream: 10 log10(max(S, 1e-10)), floored at the maximum of the
    whole input - 80 dB (frame-by-frame values with that floor equal the whole clip's)."""
    step = E.SpeechEmbedding(pad_seconds=0)
    y = np.concatenate([np.zeros(8000, np.float32), clip(seed=4), np.zeros(8000, np.float32)])
    whole = (step.mel_frames(y) - 2.0) * 10.0
    alone = np.concatenate([(step.mel_frames(y[160 * i : 160 * i + 512]) - 2.0) * 10.0
                            for i in range(whole.shape[0])])  # fmt: skip
    assert whole.max() - whole.min() == pytest.approx(80.0, abs=1e-3)
    assert alone.min() == pytest.approx(-100.0, abs=1e-3)  # digital zeros alone: 1e-10
    np.testing.assert_allclose(np.maximum(alone, alone.max() - 80.0), whole, atol=1e-4)
