"""The augmentations that bring synthetic voices closer to people (issue 14, item 5):
vtlp, reverb, band_pass, telephone, clipping. Each is measured on a golden signal, seeded
(same seed, same output; other seed, other output), shape-preserving, training-only
(validation and test features are those of a recipe without augmentation), and its bad
parameters get exact messages."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import tiny_recipe

from seqkit.errors import ParameterError
from seqkit.features import CMVN, MFCC, Deltas, FeaturePipeline, FixLength, Load, LogMel
from seqkit.recipe import Step, validate_dict
from seqkit.speech.augment import (
    VTLP,
    BandPass,
    BatchMaker,
    Clipping,
    Reverb,
    Telephone,
    build_augmentations,
)
from seqkit.speech.augment.voices import make_rir_bank, vtlp_warp

SR = 16000


def rng(seed=0):
    return np.random.default_rng(seed)


def sine(freq, seconds=1.0, sr=SR, amp=0.3):
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(seconds * sr)) / sr)).astype(np.float32)


def power_db(x):
    return 10 * np.log10(np.mean(np.asarray(x, np.float64) ** 2))


def kws_pipeline(*extra):
    """The kws_synthetic recipe's features: 40 log-mel bands, 30 ms window, 20 ms hop."""
    steps = [Load(SR), FixLength(1.0), LogMel(n_mels=40, win_ms=30, hop_ms=20), *extra]
    names = ["load", "fix_length", "log_mel"] + [type(s).__name__.lower() for s in extra]
    return FeaturePipeline(steps, names)


# -- vtlp ----------------------------------------------------------------------------------------


def test_vtlp_warp_is_jaitly_and_hintons_piecewise_line():
    # Below the knee (4800 Hz * min(a, 1) / a) f -> a f; Nyquist stays; continuous at the knee.
    assert vtlp_warp(1000.0, 1.1, 4800, 8000) == pytest.approx(1100.0)
    assert vtlp_warp(1000.0, 0.9, 4800, 8000) == pytest.approx(900.0)
    assert vtlp_warp(8000.0, 1.1, 4800, 8000) == pytest.approx(8000.0)
    assert vtlp_warp(8000.0, 0.9, 4800, 8000) == pytest.approx(8000.0)
    knee = 4800 / 1.1
    assert vtlp_warp(knee + 1e-6, 1.1, 4800, 8000) == pytest.approx(1.1 * knee, abs=1e-3)
    f = np.linspace(0, 8000, 101)
    assert np.all(np.diff(vtlp_warp(f, 1.1, 4800, 8000)) > 0)  # monotone: invertible


def test_vtlp_moves_a_sines_peak_band_by_the_factor():
    pipe = kws_pipeline()
    feats = pipe.from_audio(sine(1000.0), SR)
    aug = VTLP(factor=[0.9, 1.1])
    aug.bind_pipeline(pipe)
    centres = aug._centres
    assert feats.shape == (51, 40)
    before = int(feats.mean(0).argmax())
    assert centres[before] == pytest.approx(1031.4, abs=0.1)  # the band of the 1 kHz sine
    # Factor 1 is the identity, exactly.
    np.testing.assert_array_equal(aug.apply(feats, alpha=1.0), feats)
    for alpha, band, hz in ((1.1, 14, 1112.7), (0.9, 11, 882.8)):
        out = aug.apply(feats, alpha=alpha)
        assert out.shape == feats.shape and out.dtype == np.float32
        peak = int(out.mean(0).argmax())
        assert (peak, round(centres[peak], 1)) == (band, hz)  # ~ alpha x 1 kHz, the nearest band
    # Within a band the warp is a linear interpolation: a column of ones stays ones.
    ones = np.ones((5, 40), np.float32)
    np.testing.assert_allclose(aug.apply(ones, alpha=1.07), ones, atol=1e-6)


def test_vtlp_is_seeded_and_draws_in_its_range():
    pipe = kws_pipeline()
    feats = pipe.from_audio(sine(700.0) + sine(2500.0, amp=0.1), SR)
    aug = VTLP(factor=[0.9, 1.1])
    aug.bind_pipeline(pipe)
    a, b, c = aug(feats, None, rng(1)), aug(feats, None, rng(1)), aug(feats, None, rng(2))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    alphas = [aug.draw(rng(s), feats)["alpha"] for s in range(50)]
    assert 0.9 <= min(alphas) < 0.95 and 1.05 < max(alphas) <= 1.1


def test_vtlp_needs_mel_bands():
    VTLP().bind_pipeline(kws_pipeline(CMVN()))  # a band-wise step after the filterbank is fine
    with pytest.raises(ParameterError) as err:
        VTLP().bind_pipeline(kws_pipeline(Deltas()), where="data.augment[0] (vtlp)")
    assert str(err.value) == (
        "data.augment[0] (vtlp) warps the frequency axis of mel features, and 'deltas' after "
        "'log_mel' does not keep the mel bands as columns; only power_to_db, pcen and cmvn may "
        "follow the filterbank."
    )
    mfcc = FeaturePipeline([Load(SR), MFCC()], ["load", "mfcc"])
    with pytest.raises(ParameterError) as err:
        build_augmentations([Step(type="vtlp")], pipeline=mfcc)
    assert str(err.value) == (
        "data.augment[0] (vtlp) warps the frequency axis of mel features: `features` needs a "
        "`load` step and one `log_mel` or `melspectrogram` step; this pipeline is load -> mfcc."
    )
    with pytest.raises(ParameterError, match=r"^`factor` must lie in \[0.5, 2\]; received"):
        VTLP(factor=[0.3, 1.0])
    with pytest.raises(ParameterError, match=r"^`boundary_hz` must be a number > 0; received 0."):
        VTLP(boundary_hz=0)


# -- reverb --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reverb():
    aug = Reverb(rt60=[0.3, 0.5], room_m=[4, 6], rirs=3, seed=5, p=1.0)
    aug.bind(sample_rate=SR)
    return aug


def test_reverb_adds_a_decaying_tail_and_keeps_the_level(reverb):
    x = np.zeros(SR, np.float32)
    x[2000:2080] = np.hanning(80)  # a click at 125 ms
    y = reverb.apply(x, SR, rir=0)
    assert y.shape == x.shape and y.dtype == np.float32
    assert power_db(y) == pytest.approx(power_db(x), abs=1e-3)  # scaled to the dry RMS
    assert np.abs(y[:1990]).max() < 1e-3 * np.abs(y).max()  # nothing before the direct path
    assert abs(int(np.argmax(np.abs(y))) - 2040) < 200  # the direct path near the click
    # A tail: 50 ms windows after the click, decaying (a line fitted to their levels falls
    # 60 dB in 0.2-1.2 s: -0.088 dB/ms here), still there 300 ms on; the dry click has none.
    tail = [power_db(y[2080 + i * 800 : 2080 + (i + 1) * 800]) for i in range(6)]
    slope = np.polyfit(np.arange(6) * 50.0, tail, 1)[0]  # dB per ms
    assert -0.3 < slope < -0.05
    assert min(tail) > power_db(x) - 60 and not x[2080:].any()


def test_reverb_bank_is_seeded_and_has_its_reverberation_times():
    import pyroomacoustics as pra

    a, ta = make_rir_bank(2, SR, rt60=(0.3, 0.5), room_m=(4, 6), seed=5)
    b, tb = make_rir_bank(2, SR, rt60=(0.3, 0.5), room_m=(4, 6), seed=5)
    c, _ = make_rir_bank(2, SR, rt60=(0.3, 0.5), room_m=(4, 6), seed=6)
    assert ta == tb and all(0.3 <= t <= 0.5 for t in ta)
    for h, g in zip(a, b):
        np.testing.assert_array_equal(h, g)
    assert len(a[0]) != len(c[0]) or not np.allclose(a[0], c[0])
    assert all(h[0] == 1.0 and np.abs(h).max() == 1.0 for h in a)  # starts at the direct path
    for h, t60 in zip(a, ta):  # measured (Schroeder) within 40 % of the asked RT60
        assert pra.experimental.measure_rt60(h, fs=SR) == pytest.approx(t60, rel=0.4)


def test_reverb_picks_from_the_stream(reverb):
    x = sine(300.0) * np.hanning(SR).astype(np.float32)
    picks = {reverb.draw(rng(s), x, SR)["rir"] for s in range(30)}
    assert picks == {0, 1, 2}
    np.testing.assert_array_equal(reverb(x, SR, rng(3)), reverb(x, SR, rng(3)))
    half = Reverb(rirs=1, rt60=[0.3, 0.3], room_m=[4, 5], p=0.5)
    half.bind(sample_rate=SR)
    kept = sum(half(x, SR, rng(s)) is x for s in range(200))
    assert 80 < kept < 120  # p = 0.5


def test_reverb_parameters():
    with pytest.raises(ParameterError, match=r"^`rt60` must lie in \[0.05, 3\] s; received"):
        Reverb(rt60=[0.01, 0.5])
    with pytest.raises(ParameterError, match=r"^`rirs` must be an integer >= 1; received 0."):
        Reverb(rirs=0)
    with pytest.raises(ParameterError, match=r"^`seed` must be an integer >= 0; received -1."):
        Reverb(seed=-1)
    with pytest.raises(ParameterError) as err:
        make_rir_bank(1, SR, rt60=(0.05, 0.05), room_m=(40, 50))
    assert str(err.value) == (
        "reverb: no room of 40-50 m has an RT60 of 0.05-0.05 s (Sabine's formula); raise "
        "`rt60` or lower `room_m`."
    )


# -- band_pass, telephone, clipping --------------------------------------------------------------


def test_band_pass_keeps_the_band_and_cuts_outside_it():
    aug = BandPass(low_hz=[300, 300], high_hz=[3400, 3400], p=1.0)
    settings = aug.draw(rng(), None, SR)
    assert settings == {"low_hz": 300.0, "high_hz": 3400.0}
    cut = slice(1600, None)  # after the filter's onset
    for hz, low, high in ((1000.0, -0.5, 0.5), (6000.0, -200, -30), (60.0, -200, -30)):
        x = sine(hz)
        y = aug.apply(x, SR, **settings)
        assert y.shape == x.shape and y.dtype == np.float32
        assert low < power_db(y[cut]) - power_db(x[cut]) < high, hz
    drawn = BandPass()
    a, b = drawn(sine(500.0), SR, rng(4)), drawn(sine(500.0), SR, rng(4))
    np.testing.assert_array_equal(a, b)
    lows = [drawn.draw(rng(s), None, SR)["low_hz"] for s in range(30)]
    assert 50 <= min(lows) and max(lows) <= 400 and len(set(lows)) > 15
    assert all(low % 10 == 0 for low in lows)  # on a 10 Hz grid
    # A high cut at or above Nyquist is no low-pass: a 7.5 kHz sine goes through.
    wide = BandPass(low_hz=[0, 0], high_hz=[8000, 8000], p=1.0)
    np.testing.assert_array_equal(wide.apply(sine(7500.0), SR, 0.0, 8000.0), sine(7500.0))


def test_band_pass_parameters():
    with pytest.raises(ParameterError) as err:
        BandPass(low_hz=[100, 4000], high_hz=[3000, 5000])
    assert str(err.value) == (
        "`low_hz` must lie below `high_hz`; received low_hz [100, 4000], high_hz [3000, 5000]."
    )
    with pytest.raises(ParameterError, match=r"^`order` must be <= 16; received 40."):
        BandPass(order=40)
    with pytest.raises(ParameterError) as err:
        BandPass(low_hz=[100, 5000], high_hz=[6000, 9000]).bind(sample_rate=8000)
    assert str(err.value) == (
        "`low_hz` must be below half the sample rate (4000 Hz); received [100.0, 5000.0]."
    )


def test_telephone_is_an_8_khz_band_limited_mu_law_line():
    aug = Telephone(p=1.0)
    cut = slice(1600, -1600)
    for hz, low, high in ((1000.0, -1.0, 1.0), (5000.0, -300, -40), (7000.0, -300, -40)):
        x = sine(hz)
        y = aug(x, SR, rng())
        assert y.shape == x.shape and y.dtype == np.float32
        assert low < power_db(y[cut]) - power_db(x[cut]) < high, hz
    # mu-law: 8-bit quantisation noise, about 38 dB below a sine at this level.
    x = sine(1000.0)
    plain = Telephone(mu_law=False, p=1.0)(x, SR, rng())
    coded = aug(x, SR, rng())
    assert 30 < power_db(plain[cut]) - power_db((coded - plain)[cut]) < 45
    assert aug(x, SR, rng(1)) is not x and Telephone(p=0.0)(x, SR, rng(1)) is x


def test_telephone_parameters():
    with pytest.raises(ParameterError) as err:
        Telephone(high_hz=4500)
    assert str(err.value) == (
        "`low_hz` < `high_hz` < 4000 Hz (half of the telephone's 8 kHz) is needed; received "
        "low_hz 300.0, high_hz 4500."
    )
    with pytest.raises(ParameterError, match=r"^`mu_law` must be true or false; received 'yes'."):
        Telephone(mu_law="yes")


def test_clipping_clips_the_drawn_share_of_samples():
    x = sine(440.0)
    aug = Clipping(percent=[10, 10], p=1.0)
    y = aug(x, SR, rng())
    assert y.shape == x.shape
    level = np.abs(y).max()
    assert level == pytest.approx(np.percentile(np.abs(x), 90), rel=1e-6)
    assert np.mean(np.abs(y) >= level) == pytest.approx(0.10, abs=0.01)
    np.testing.assert_array_equal(y[np.abs(x) < level], x[np.abs(x) < level])
    np.testing.assert_array_equal(Clipping(percent=[0, 0], p=1.0)(x, SR, rng()), x)
    drawn = Clipping(p=1.0)
    np.testing.assert_array_equal(drawn(x, SR, rng(5)), drawn(x, SR, rng(5)))
    assert not np.array_equal(drawn(x, SR, rng(5)), drawn(x, SR, rng(6)))
    with pytest.raises(ParameterError, match=r"^`percent` must lie in \[0, 100\] %; received"):
        Clipping(percent=[0, 120])


# -- in batches and in a recipe ------------------------------------------------------------------

ALL = [
    {"type": "reverb", "rt60": [0.2, 0.4], "room_m": [3, 5], "rirs": 2, "p": 0.7},
    {"type": "band_pass", "p": 0.7},
    {"type": "telephone", "p": 0.5},
    {"type": "clipping", "p": 0.5},
    {"type": "vtlp", "factor": [0.9, 1.1]},
]


def test_batches_are_seeded_and_keep_their_shape(tmp_path):
    import soundfile as sf

    from seqkit.data import Example

    items = []
    for i in range(6):
        path = tmp_path / f"c{i}.wav"
        sf.write(path, sine(300.0 + 150 * i, 0.5) * np.hanning(SR // 2), SR, subtype="FLOAT")
        items.append(Example(str(path), "a", "train"))
    pipe = kws_pipeline()
    feats = np.stack([pipe(ex) for ex in items])

    def batches(seed):
        augs = build_augmentations([Step(**s) for s in ALL], pipeline=pipe)
        m = BatchMaker(feats, np.arange(6), 3, seed=seed, augmentations=augs, pipeline=pipe,
                       items=items)  # fmt: skip
        return [m.batch(e, b)[0] for e in (0, 1) for b in (0, 1)]

    a, b, c = batches(3), batches(3), batches(4)
    for xa, xb in zip(a, b):
        assert xa.shape == (3, 51, 40)
        np.testing.assert_array_equal(xa, xb)
    assert not any(np.allclose(xa, xc) for xa, xc in zip(a, c))


def test_augmentations_touch_the_training_split_only(tmp_path, monkeypatch):
    from seqkit.build import load_data

    monkeypatch.setenv("SEQKIT_CACHE", str(tmp_path / "cache"))
    plain = tiny_recipe(tmp_path / "data", epochs=1)
    augmented = tiny_recipe(tmp_path / "data", epochs=1)
    augmented["data"]["augment"] = ALL
    a = load_data(validate_dict(plain))
    b = load_data(validate_dict(augmented))
    for split in ("train", "validation", "test"):
        np.testing.assert_array_equal(np.asarray(a.splits[split].x), np.asarray(b.splits[split].x))
    batches = b.train_input
    batches.set_epoch(0)
    x, y = batches[0]
    rows = np.asarray(b.splits["train"].x)
    order = np.random.default_rng([1, 0]).permutation(len(rows))[: len(y)]
    assert x.shape == rows[order].shape
    assert not np.allclose(x, rows[order])  # the training batches are augmented
