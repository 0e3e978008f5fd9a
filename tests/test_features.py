"""Tests of seqkit.features: each step against librosa / soundfile called directly (the oracle).

Audio is written into ``tmp_path`` with soundfile: a 0.5 s 440 Hz sine plus noise at 22.05 kHz.
"""

from __future__ import annotations

import re
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf

from seqkit.errors import DataError, ParameterError
from seqkit.features import (
    MFCC,
    Deltas,
    FeaturePipeline,
    FixLength,
    Load,
    LogMel,
    MelSpectrogram,
    PowerToDb,
)

REPO = Path(__file__).resolve().parent.parent
FILE_SR = 22050


def tone(seconds: float, sr: int, seed: int = 0, freq: float = 440.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sr))) / sr
    y = 0.5 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.normal(size=t.size)
    return y.astype(np.float32)


@pytest.fixture
def wav(tmp_path) -> Path:
    path = tmp_path / "tone.wav"
    sf.write(path, tone(0.5, FILE_SR), FILE_SR, subtype="PCM_16")
    return path


@pytest.fixture
def audio16k() -> np.ndarray:
    return tone(0.5, 16000, seed=1)


# -- load ----------------------------------------------------------------------------------------


def test_load_resamples_to_float32_mono(wav):
    y = Load(sample_rate=16000)(wav)
    assert y.dtype == np.float32
    assert y.ndim == 1
    assert y.shape == (8000,)
    ref = librosa.resample(sf.read(wav)[0], orig_sr=FILE_SR, target_sr=16000)
    assert ref.shape == y.shape
    np.testing.assert_allclose(y, ref, atol=1e-5)


def test_load_without_resampling_equals_soundfile(tmp_path):
    path = tmp_path / "a16k.wav"
    sf.write(path, tone(0.5, 16000), 16000, subtype="PCM_16")
    y = Load(sample_rate=16000)(path)
    np.testing.assert_array_equal(y, sf.read(path, dtype="float32")[0])


def test_load_stereo_is_averaged_to_mono(tmp_path):
    left = tone(0.5, 16000, seed=2, freq=440.0)
    right = tone(0.5, 16000, seed=3, freq=660.0)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    y = Load(sample_rate=16000)(path)
    assert y.shape == (8000,)
    assert not np.allclose(left, right)
    np.testing.assert_allclose(y, (left + right) / 2, atol=1e-6)


def test_load_stereo_resampled(tmp_path):
    stereo = np.stack([tone(0.5, FILE_SR, seed=4), tone(0.5, FILE_SR, seed=5, freq=880.0)], axis=1)
    path = tmp_path / "stereo22k.wav"
    sf.write(path, stereo, FILE_SR, subtype="PCM_16")
    y = Load(sample_rate=16000)(path)
    ref = librosa.resample(sf.read(path)[0].mean(axis=1), orig_sr=FILE_SR, target_sr=16000)
    np.testing.assert_allclose(y, ref, atol=1e-5)


@pytest.mark.parametrize(
    "subtype, tol",
    [("PCM_U8", 1 / 64), ("PCM_16", 1 / 2**14), ("PCM_24", 1 / 2**22), ("FLOAT", 1e-7)],
)
def test_load_bit_depths(tmp_path, subtype, tol):
    y0 = tone(0.5, 16000, seed=6)
    path = tmp_path / f"{subtype}.wav"
    sf.write(path, y0, 16000, subtype=subtype)
    assert sf.info(str(path)).subtype == subtype
    y = Load(sample_rate=16000)(path)
    assert y.dtype == np.float32
    assert y.shape == y0.shape
    np.testing.assert_allclose(y, y0, atol=tol)


def test_load_zero_length_wav(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(DataError, match=re.escape(f"{path}: the file holds no audio samples")):
        Load()(path)


def test_load_random_bytes(tmp_path):
    path = tmp_path / "noise.wav"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8).tobytes())
    with pytest.raises(DataError, match=re.escape(f"{path}: cannot be read as audio")):
        Load()(path)


def test_load_truncated_header(tmp_path, wav):
    path = tmp_path / "truncated.wav"
    path.write_bytes(wav.read_bytes()[:20])
    with pytest.raises(DataError, match=re.escape(f"{path}: cannot be read as audio")):
        Load()(path)


def test_load_missing_file(tmp_path):
    path = tmp_path / "nope.wav"
    with pytest.raises(DataError, match=re.escape(str(path))):
        Load()(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_load_nan_samples(tmp_path, bad):
    y = tone(0.5, 16000)
    y[100] = bad
    path = tmp_path / "nan.wav"
    sf.write(path, y, 16000, subtype="FLOAT")
    with pytest.raises(
        DataError, match=re.escape(f"{path}: the file holds NaN or infinite samples")
    ):
        Load(sample_rate=16000)(path)


@pytest.mark.parametrize("value", [0, -16000, 16000.0, True, "16k"])
def test_load_bad_sample_rate(value):
    with pytest.raises(
        ParameterError,
        match=re.escape(f"`sample_rate` must be a positive integer; received {value!r}."),
    ):
        Load(sample_rate=value)


# -- fix_length ----------------------------------------------------------------------------------


def test_fix_length_pads_with_zeros(audio16k):
    out = FixLength(seconds=1.0)(audio16k, 16000)
    assert out.dtype == np.float32
    assert out.shape == (16000,)
    np.testing.assert_array_equal(out[:8000], audio16k)
    assert not out[8000:].any()


def test_fix_length_crops(audio16k):
    out = FixLength(seconds=0.25)(audio16k, 16000)
    assert out.shape == (4000,)
    np.testing.assert_array_equal(out, audio16k[:4000])


def test_fix_length_samples(audio16k):
    out = FixLength(samples=1234)(audio16k, 16000)
    np.testing.assert_array_equal(out, audio16k[:1234])
    out = FixLength(samples=8001)(audio16k, 16000)
    assert out.shape == (8001,) and out[-1] == 0.0


def test_fix_length_exact_is_unchanged(audio16k):
    np.testing.assert_array_equal(FixLength(seconds=0.5)(audio16k, 16000), audio16k)


@pytest.mark.parametrize(
    "kwargs, name", [({"seconds": 0}, "seconds"), ({"samples": -1}, "samples")]
)
def test_fix_length_bad_params(kwargs, name):
    with pytest.raises(ParameterError, match=rf"`{name}` must be a positive .*; received -?\d"):
        FixLength(**kwargs)


# -- spectrograms --------------------------------------------------------------------------------

MEL_KW = dict(n_fft=400, hop_length=160, n_mels=40, fmin=20.0, fmax=7600.0)


def test_melspectrogram_equals_librosa(audio16k):
    out = MelSpectrogram(**MEL_KW)(audio16k, 16000)
    ref = librosa.feature.melspectrogram(y=audio16k, sr=16000, **MEL_KW).T
    assert out.dtype == np.float32
    assert out.shape == ref.shape == (51, 40)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-8)


def test_melspectrogram_defaults_and_options_equal_librosa(audio16k):
    step = MelSpectrogram(win_length=256, power=1.0, center=False)
    out = step(audio16k, 16000)
    ref = librosa.feature.melspectrogram(
        y=audio16k,
        sr=16000,
        n_fft=512,
        hop_length=160,
        win_length=256,
        n_mels=40,
        power=1.0,
        center=False,
    ).T
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-8)


def test_power_to_db_equals_librosa(audio16k):
    S = MelSpectrogram(**MEL_KW)(audio16k, 16000)
    out = PowerToDb()(S, 16000)
    np.testing.assert_allclose(out, librosa.power_to_db(S), rtol=1e-5, atol=1e-4)
    out = PowerToDb(ref=2.0, amin=1e-6, top_db=None)(S, 16000)
    ref = librosa.power_to_db(S, ref=2.0, amin=1e-6, top_db=None)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-4)
    assert out.shape == S.shape and out.dtype == np.float32


def test_mfcc_from_audio_equals_librosa(audio16k):
    kw = dict(n_mfcc=13, n_mels=40, n_fft=400, hop_length=160, fmin=20.0, fmax=7600.0)
    out = MFCC(**kw, lifter=22)(audio16k, 16000)
    ref = librosa.feature.mfcc(y=audio16k, sr=16000, dct_type=2, norm="ortho", lifter=22, **kw).T
    assert out.shape == ref.shape == (51, 13)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-3)


def test_mfcc_from_log_mel_frames_equals_librosa(audio16k):
    logmel = PowerToDb()(MelSpectrogram(**MEL_KW)(audio16k, 16000), 16000)
    out = MFCC(n_mfcc=13)(logmel, 16000)
    ref = librosa.feature.mfcc(S=logmel.T, n_mfcc=13).T
    assert out.shape == ref.shape == (51, 13)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-4)


def test_mfcc_more_coefficients_than_mels(audio16k):
    logmel = np.zeros((10, 8), dtype=np.float32)
    with pytest.raises(
        ParameterError,
        match=r"`n_mfcc` must be <= the number of input features \(8\); received 13\.",
    ):
        MFCC(n_mfcc=13)(logmel, 16000)


@pytest.mark.parametrize("order, width", [(1, 9), (2, 9), (1, 3), (2, 5)])
def test_deltas_equal_librosa(order, width):
    x = np.random.default_rng(7).normal(size=(30, 6)).astype(np.float32)
    out = Deltas(order=order, width=width)(x, 16000)
    assert out.shape == (30, 6 * (1 + order))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[:, :6], x)
    for o in range(1, order + 1):
        ref = librosa.feature.delta(x.T, order=o, width=width, mode="interp").T
        np.testing.assert_allclose(out[:, 6 * o : 6 * (o + 1)], ref, rtol=1e-5, atol=1e-6)


def test_deltas_too_few_frames():
    with pytest.raises(
        ParameterError, match=r"`width` must be <= the number of frames \(5\); received 9\."
    ):
        Deltas(width=9)(np.zeros((5, 3), dtype=np.float32), 16000)


# -- parameter errors ----------------------------------------------------------------------------


def test_hop_length_above_n_fft():
    with pytest.raises(
        ParameterError, match=re.escape("`hop_length` must be <= `n_fft` (512); received 1024.")
    ):
        MelSpectrogram(n_fft=512, hop_length=1024)


def test_win_length_above_n_fft():
    with pytest.raises(
        ParameterError, match=re.escape("`win_length` must be <= `n_fft` (400); received 512.")
    ):
        MelSpectrogram(n_fft=400, win_length=512)


@pytest.mark.parametrize("step", [MelSpectrogram, MFCC])
def test_n_mels_zero(step):
    with pytest.raises(
        ParameterError, match=re.escape("`n_mels` must be a positive integer; received 0.")
    ):
        step(n_mels=0)


@pytest.mark.parametrize("step", [MelSpectrogram, MFCC])
def test_fmax_above_nyquist_at_call_time(step, audio16k):
    s = step(fmax=10000)  # fine until the sample rate is known
    with pytest.raises(
        ParameterError,
        match=re.escape("`fmax` must be <= half the sample rate (8000 Hz); received 10000."),
    ):
        s(audio16k, 16000)
    assert s(audio16k, 22050).shape[1] > 0  # 10 kHz is below 11.025 kHz


def test_fmax_not_above_fmin():
    with pytest.raises(
        ParameterError, match=r"`fmax` must be > `fmin` \(300\.0\); received 200\.0\."
    ):
        MelSpectrogram(fmin=300, fmax=200)


@pytest.mark.parametrize("width", [4, 8, 1])
def test_deltas_width_even_or_small(width):
    with pytest.raises(
        ParameterError, match=re.escape(f"`width` must be an odd integer >= 3; received {width}.")
    ):
        Deltas(width=width)


def test_deltas_order():
    with pytest.raises(ParameterError, match=re.escape("`order` must be 1 or 2; received 3.")):
        Deltas(order=3)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"dct_type": 4}, "`dct_type` must be 1, 2 or 3; received 4."),
        ({"norm": "l2"}, "`norm` must be 'ortho' or null; received 'l2'."),
        ({"lifter": -1}, "`lifter` must be a number >= 0; received -1."),
        ({"n_mfcc": 0}, "`n_mfcc` must be a positive integer; received 0."),
    ],
)
def test_mfcc_param_errors(kwargs, message):
    with pytest.raises(ParameterError, match=re.escape(message)):
        MFCC(**kwargs)


def test_power_to_db_param_error():
    with pytest.raises(
        ParameterError, match=re.escape("`top_db` must be a positive number; received -80.")
    ):
        PowerToDb(top_db=-80)


# -- pipeline ------------------------------------------------------------------------------------


def test_pipeline_chain_error_mfcc_before_load():
    with pytest.raises(
        ParameterError, match=r"'mfcc' takes audio or frames but receives path from the file name"
    ):
        FeaturePipeline([MFCC(), Load()], ["mfcc", "load"])


def test_pipeline_chain_error_ends_with_audio():
    with pytest.raises(
        ParameterError, match=r"must end in a step that makes frames .*ends with audio"
    ):
        FeaturePipeline([Load(), FixLength()])


def test_pipeline_empty():
    with pytest.raises(ParameterError, match=r"needs at least a `load` step"):
        FeaturePipeline([])


def test_quickstart_pipeline_shape(tmp_path):
    from seqkit.build import make_pipeline
    from seqkit.recipe import load_recipe

    pipeline = make_pipeline(load_recipe(REPO / "recipes" / "quickstart.yaml"))
    path = tmp_path / "one_second.wav"
    sf.write(path, tone(1.0, FILE_SR), FILE_SR, subtype="PCM_16")
    out = pipeline(path)
    assert out.shape == (101, 26)
    assert out.dtype == np.float32
    assert np.all(np.isfinite(out))
    assert pipeline.sample_rate == 16000
    # a shorter clip is padded to the same shape
    short = tmp_path / "short.wav"
    sf.write(short, tone(0.3, FILE_SR), FILE_SR, subtype="PCM_16")
    assert pipeline(short).shape == (101, 26)


def test_pipeline_equals_steps_by_hand(wav):
    steps = [
        Load(16000),
        FixLength(1.0),
        MelSpectrogram(**MEL_KW),
        PowerToDb(),
        MFCC(n_mfcc=13),
        Deltas(order=2),
    ]
    out = FeaturePipeline(steps)(wav)
    y = librosa.resample(sf.read(wav)[0], orig_sr=FILE_SR, target_sr=16000)
    y = librosa.util.fix_length(y, size=16000)
    S = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=16000, **MEL_KW))
    m = librosa.feature.mfcc(S=S, n_mfcc=13)
    ref = np.concatenate(
        [
            m,
            librosa.feature.delta(m, order=1, mode="interp"),
            librosa.feature.delta(m, order=2, mode="interp"),
        ]
    ).T
    assert out.shape == ref.shape == (101, 39)
    np.testing.assert_allclose(out, ref, rtol=1e-3, atol=1e-2)


@pytest.mark.parametrize("res_type", ["soxr_hq", "soxr_lq", "polyphase"])
def test_from_audio_equals_file_path(wav, res_type):
    steps = [
        Load(16000, res_type=res_type),
        FixLength(1.0),
        MelSpectrogram(**MEL_KW),
        PowerToDb(),
        MFCC(),
    ]
    pipeline = FeaturePipeline(steps)
    from_file = pipeline(wav)
    y, sr = sf.read(wav, dtype="float32")
    from_memory = pipeline.from_audio(y, sr)
    assert from_memory.shape == from_file.shape == (101, 13)
    np.testing.assert_allclose(from_memory, from_file, rtol=1e-5, atol=1e-4)


def test_from_audio_at_target_rate_skips_resampling(tmp_path):
    y = tone(1.0, 16000)
    path = tmp_path / "a16k.wav"
    sf.write(path, y, 16000, subtype="FLOAT")
    pipeline = FeaturePipeline([Load(16000), MelSpectrogram(**MEL_KW)])
    np.testing.assert_array_equal(pipeline.from_audio(y, 16000), pipeline(path))


# -- window and hop in milliseconds; log_mel -----------------------------------------------------


@pytest.mark.parametrize(
    "sr, ms_kw, sample_kw",
    [
        (16000, dict(win_ms=25, hop_ms=10), dict(n_fft=512, win_length=400, hop_length=160)),
        (8000, dict(win_ms=25, hop_ms=10), dict(n_fft=256, win_length=200, hop_length=80)),
        (16000, dict(win_ms=40, hop_ms=20), dict(n_fft=1024, win_length=640, hop_length=320)),
        (16000, dict(hop_ms=20), dict(n_fft=512, hop_length=320)),
        (
            16000,
            dict(win_ms=25, hop_ms=10, n_fft=400),
            dict(n_fft=400, win_length=400, hop_length=160),
        ),
    ],
)
def test_melspectrogram_ms_equals_samples(sr, ms_kw, sample_kw):
    y = tone(0.5, sr, seed=8)
    step = MelSpectrogram(n_mels=20, **ms_kw)
    assert step.frame_params(sr) == {
        "n_fft": sample_kw["n_fft"],
        "hop_length": sample_kw["hop_length"],
        "win_length": sample_kw.get("win_length"),
    }
    out = step(y, sr)
    ref = librosa.feature.melspectrogram(y=y, sr=sr, n_mels=20, **sample_kw).T
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-8)


def test_mfcc_ms_equals_librosa(audio16k):
    out = MFCC(n_mfcc=13, win_ms=25, hop_ms=10, fmax=7600.0)(audio16k, 16000)
    ref = librosa.feature.mfcc(
        y=audio16k,
        sr=16000,
        n_mfcc=13,
        n_fft=512,
        win_length=400,
        hop_length=160,
        n_mels=40,
        fmax=7600.0,
    ).T
    assert out.shape == ref.shape == (51, 13)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-3)


def test_log_mel_equals_melspectrogram_then_power_to_db(audio16k):
    out = LogMel(n_mels=32, win_ms=25, hop_ms=10, fmin=20.0, top_db=60.0)(audio16k, 16000)
    S = librosa.feature.melspectrogram(
        y=audio16k, sr=16000, n_fft=512, win_length=400, hop_length=160, n_mels=32, fmin=20.0
    )
    ref = librosa.power_to_db(S, top_db=60.0).T
    assert out.shape == ref.shape == (51, 32)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(win_ms=25, win_length=400), "`win_ms` and `win_length` both set"),
        (dict(hop_ms=10, hop_length=160), "`hop_ms` and `hop_length` both set"),
        (dict(win_ms=10, hop_ms=20), "`hop_ms` must be <= `win_ms` (10); received 20."),
        (dict(win_ms=0), "`win_ms` must be a positive number; received 0."),
        (dict(hop_ms=-5), "`hop_ms` must be a positive number; received -5."),
    ],
)
@pytest.mark.parametrize("step", [MelSpectrogram, MFCC, LogMel])
def test_ms_parameter_errors(step, kwargs, message):
    with pytest.raises(ParameterError, match=re.escape(message)):
        step(**kwargs)


def test_win_ms_above_n_fft_at_call_time(audio16k):
    step = MelSpectrogram(n_fft=256, win_ms=25)  # 400 samples at 16 kHz, 200 at 8 kHz
    assert step(tone(0.5, 8000), 8000).shape == (26, 40)  # hop 160 samples
    with pytest.raises(
        ParameterError,
        match=re.escape("`win_ms` (25 ms = 400 samples at 16000 Hz) must be <= `n_fft` (256)"),
    ):
        step(audio16k, 16000)


def test_recipe_hop_ms_above_n_fft_names_the_step(tmp_path):
    from seqkit.build import check_recipe
    from seqkit.errors import RecipeError
    from seqkit.recipe import load_recipe

    doc = (REPO / "recipes" / "quickstart.yaml").read_text()
    doc = doc.replace(
        "{type: melspectrogram, n_fft: 400, hop_length: 160, n_mels: 40}",
        "{type: melspectrogram, n_fft: 400, hop_ms: 30, n_mels: 40}",
    )
    path = tmp_path / "r.yaml"
    path.write_text(doc)
    with pytest.raises(RecipeError, match=r"features\[2\]\.hop_ms: .*480 samples at 16000 Hz"):
        check_recipe(load_recipe(path), str(path))


# -- Example input: parts of files, gain, generated noise ---------------------------------------


def test_pipeline_reads_an_example_slice_with_gain(tmp_path):
    from seqkit.data import Example

    y = tone(3.0, FILE_SR, seed=9)
    path = tmp_path / "long.wav"
    sf.write(path, y, FILE_SR, subtype="FLOAT")
    ex = Example(str(path), "_silence_", "train", offset=1.25, duration=1.0, gain=0.5)
    out = Load(16000)(ex)
    start = int(round(1.25 * FILE_SR))
    ref = librosa.resample(y[start : start + FILE_SR], orig_sr=FILE_SR, target_sr=16000) * 0.5
    assert out.shape == ref.shape == (16000,)
    np.testing.assert_allclose(out, ref, atol=1e-5)
    pipeline = FeaturePipeline([Load(16000), FixLength(1.0), LogMel(hop_ms=10)])
    assert pipeline(ex).shape == (101, 40)
    assert pipeline(str(path)).shape == (101, 40)  # a plain path still works


def test_example_offset_outside_the_file(tmp_path):
    from seqkit.data import Example

    path = tmp_path / "short.wav"
    sf.write(path, tone(0.5, 16000), 16000)
    ex = Example(str(path), "_silence_", "train", offset=2.0, duration=1.0)
    with pytest.raises(DataError, match=re.escape(f"{path}[offset=2.0 duration=1.0 gain=1.0]")):
        Load(16000)(ex)


@pytest.mark.parametrize("color, slope_db", [("white", 0.0), ("pink", -3.0), ("brown", -6.0)])
def test_generated_noise_example(color, slope_db):
    from seqkit.data import Example

    ex = Example("<noise>", "_silence_", "train", duration=2.0, gain=0.1, noise=color, seed=5)
    a, b = Load(16000)(ex), Load(16000)(ex)
    c = Load(16000)(Example("<noise>", "_silence_", "train", duration=2.0, gain=0.1, noise=color,
                            seed=6))  # fmt: skip
    assert a.shape == (32000,) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert np.sqrt(np.mean(a**2)) == pytest.approx(0.1, rel=1e-3)
    # power per octave band: slope in dB per octave (white 0, pink -3, brown -6)
    power = np.abs(np.fft.rfft(a)) ** 2
    freqs = np.fft.rfftfreq(a.size, 1 / 16000)
    bands = [(f, 2 * f) for f in (250.0, 500.0, 1000.0, 2000.0)]
    db = [10 * np.log10(power[(freqs >= lo) & (freqs < hi)].mean()) for lo, hi in bands]
    assert np.mean(np.diff(db)) == pytest.approx(slope_db, abs=0.6)


def test_generated_noise_needs_a_duration():
    from seqkit.data import Example

    with pytest.raises(DataError, match=r"generated noise needs a duration"):
        Load()(Example("<noise>", "_silence_", "train", noise="pink"))
    with pytest.raises(ParameterError, match=r"`noise` must be one of white, pink, brown"):
        Load()(Example("<noise>", "_silence_", "train", noise="blue", duration=1.0))
