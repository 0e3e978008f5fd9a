"""Training-only augmentation (seqkit.speech.augment): each augmentation's effect measured, parameter
checks, seeded batches (same seed, same batches), and a recipe that trains with all of them."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import soundfile as sf
from conftest import tiny_recipe

from seqkit.errors import ParameterError, RecipeError
from seqkit.recipe import Step, validate_dict
from seqkit.speech.augment import (
    BackgroundNoise,
    BatchMaker,
    Gain,
    SpecAugment,
    Speed,
    TimeShift,
    build_augmentations,
    train_batches,
)

SR = 16000


def rng(seed=0):
    return np.random.default_rng(seed)


def snr_db(clean, mixed):
    noise = mixed.astype(np.float64) - clean
    return 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean(noise**2))


# -- each augmentation's effect ------------------------------------------------------------------


def test_time_shift_moves_the_onset_by_the_drawn_number_of_samples():
    x = np.zeros(SR, np.float32)
    x[4000:4100] = 1.0  # onset at sample 4000
    aug = TimeShift(max_ms=100)
    shifts = []
    for seed in range(20):
        settings = aug.draw(rng(seed), x, SR)
        shift = settings["shift"]
        assert -1600 <= shift <= 1600  # 100 ms at 16 kHz
        y = aug.apply(x, SR, **settings)
        assert len(y) == len(x)
        assert np.flatnonzero(y)[0] == 4000 + shift
        assert y.sum() == 100.0  # nothing lost: the burst stays inside the clip
        shifts.append(shift)
    assert min(shifts) < 0 < max(shifts)
    # __call__ draws from the same stream: same generator state, same result
    np.testing.assert_array_equal(aug(x, SR, rng(7)), aug.apply(x, SR, **aug.draw(rng(7), x, SR)))
    np.testing.assert_array_equal(aug.apply(x, SR, shift=-4050)[:50], np.ones(50))


def test_gain_scales_by_the_drawn_decibels():
    x = rng().normal(size=SR).astype(np.float32) * 0.1
    aug = Gain(db=[-6, 6])
    np.testing.assert_allclose(aug.apply(x, SR, db=6.0) / x, 10 ** (6 / 20), rtol=1e-6)
    np.testing.assert_allclose(aug.apply(x, SR, db=-20.0) / x, 0.1, rtol=1e-6)
    for seed in range(10):
        db = aug.draw(rng(seed), x, SR)["db"]
        assert -6 <= db <= 6
        y = aug(x, SR, rng(seed))
        assert 20 * np.log10(np.abs(y).max() / np.abs(x).max()) == pytest.approx(db, abs=1e-4)


def test_background_noise_is_mixed_at_the_drawn_snr():
    t = np.arange(SR) / SR
    x = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    aug = BackgroundNoise(snr_db=[5, 20], p=1.0, noise="pink")
    for seed in range(8):
        settings = aug.draw(rng(seed), x, SR)
        assert 5 <= settings["snr_db"] <= 20
        y = aug.apply(x, SR, **settings)
        assert snr_db(x, y) == pytest.approx(settings["snr_db"], abs=1e-3)
    fixed = BackgroundNoise(snr_db=[10, 10], p=1.0, noise="white")
    assert snr_db(x, fixed(x, SR, rng(3))) == pytest.approx(10.0, abs=1e-3)


def test_background_noise_probability_and_silence():
    x = rng().normal(size=SR).astype(np.float32) * 0.1
    never = BackgroundNoise(p=0.0, noise="white")
    np.testing.assert_array_equal(never(x, SR, rng(1)), x)
    some = BackgroundNoise(p=0.5, noise="white")
    changed = sum(not np.array_equal(some(x, SR, rng(s)), x) for s in range(200))
    assert 70 <= changed <= 130  # about half
    silent = np.zeros(SR, np.float32)  # no signal power: left as it is
    np.testing.assert_array_equal(BackgroundNoise(p=1.0)(silent, SR, rng(0)), silent)


class NoisySource:
    def __init__(self, files):
        self.files = files

    def background_noise_files(self):
        return self.files


def test_background_noise_takes_stretches_of_the_source_recordings(tmp_path):
    noise = (0.05 * rng(5).normal(size=3 * SR)).astype(np.float32)
    path = tmp_path / "_background_noise_" / "hum.wav"
    path.parent.mkdir()
    sf.write(path, noise, SR, subtype="FLOAT")
    aug = BackgroundNoise(snr_db=[0, 0], p=1.0)  # noise: auto
    aug.bind(source=NoisySource([path]), sample_rate=SR)
    assert aug.recordings == 1
    x = (0.2 * rng(6).normal(size=SR)).astype(np.float32)
    settings = aug.draw(rng(2), x, SR)
    added = aug.apply(x, SR, **settings) - x
    start = int(np.argmin([np.abs(noise[s : s + 50] - settings["noise"][:50]).sum()
                           for s in range(2 * SR)]))  # fmt: skip
    np.testing.assert_array_equal(settings["noise"], noise[start : start + SR])
    scale = added / settings["noise"]
    np.testing.assert_allclose(scale, scale[0], rtol=1e-3)  # the stretch, scaled once
    assert snr_db(x, x + added) == pytest.approx(0.0, abs=1e-3)


def test_background_noise_from_the_source_needs_recordings():
    aug = BackgroundNoise(noise="source")
    with pytest.raises(ParameterError, match=r"`noise: source` needs background-noise recordings"):
        aug.bind(source=NoisySource([]), sample_rate=SR)
    auto = BackgroundNoise(noise="auto")
    auto.bind(source=NoisySource([]), sample_rate=SR)  # falls back to generated noise
    assert auto.recordings == 0 and auto.draw(rng(), np.ones(100), SR)["noise"].shape == (100,)


def test_speed_changes_length_and_pitch():
    t = np.arange(SR) / SR
    x = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    aug = Speed(factor=[0.8, 1.25])
    y = aug.apply(x, SR, factor=1.25)
    assert abs(len(y) - SR / 1.25) <= 1
    peak = np.argmax(np.abs(np.fft.rfft(y * np.hanning(len(y))))) * SR / len(y)
    assert peak == pytest.approx(550.0, abs=2.0)  # 440 Hz played 1.25 x faster
    slow = aug.apply(x, SR, factor=0.8)
    assert abs(len(slow) - SR / 0.8) <= 1
    for seed in range(5):
        assert 0.8 <= aug.draw(rng(seed), x, SR)["factor"] <= 1.25


def test_spec_augment_masks_the_drawn_bands():
    x = rng().normal(size=(98, 40)).astype(np.float32) + 5.0
    aug = SpecAugment(freq_masks=2, freq_width=8, time_masks=2, time_width=10, value=0.0)
    for seed in range(10):
        settings = aug.draw(rng(seed), x)
        y = aug.apply(x, **settings)
        want = np.zeros_like(x, dtype=bool)
        for start, width in settings["freq"]:
            assert 0 <= width <= 8 and start + width <= 40
            want[:, start : start + width] = True
        for start, width in settings["time"]:
            assert 0 <= width <= 10 and start + width <= 98
            want[start : start + width, :] = True
        np.testing.assert_array_equal(y == 0.0, want)  # exactly the masked cells are zero
        np.testing.assert_array_equal(y[~want], x[~want])
    mean = SpecAugment(freq_masks=1, freq_width=5, time_masks=0, value="mean")
    y = mean.apply(x, freq=[(3, 5)])
    np.testing.assert_allclose(y[:, 3:8], x.mean(), rtol=1e-6)
    assert np.array_equal(y[:, :3], x[:, :3]) and np.array_equal(y[:, 8:], x[:, 8:])


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: Gain(db=[6, -6]), r"`db` must be \[low, high\] with low <= high"),
        (lambda: Gain(db=[1]), r"`db` must be a list of two numbers \[low, high\]"),
        (lambda: Speed(factor=[0.1, 1.0]), r"`factor` must lie in \[0.5, 2\]"),
        (lambda: BackgroundNoise(p=1.5), r"`p` must be a probability in \[0, 1\]; received 1.5"),
        (lambda: BackgroundNoise(noise="grey"), r"`noise` must be one of auto, source, white"),
        (lambda: TimeShift(max_ms=-1), r"`max_ms` must be a number >= 0; received -1"),
        (lambda: SpecAugment(time_width=-2), r"`time_width` must be an integer >= 0"),
        (lambda: SpecAugment(value="zero"), r"`value` must be 'mean' or a number"),
    ],
)
def test_parameter_checks(make, message):
    with pytest.raises(ParameterError, match=message):
        make()


def test_recipe_problems_name_the_augment_step(tmp_path):
    doc = tiny_recipe(tmp_path / "data")
    doc["data"]["augment"] = [
        {"type": "gain", "db": [1]},
        {"type": "time_shift", "max_msec": 10},
        {"type": "spec_augmnt"},
    ]
    with pytest.raises(RecipeError) as err:
        validate_dict(doc)
    text = str(err.value)
    assert "data.augment[0].db: must be a list of two numbers [low, high]; received [1]." in text
    assert "data.augment[1].max_msec: unknown parameter; did you mean 'max_ms'?" in text
    assert "data.augment[2].type: Unknown augmentation 'spec_augmnt'." in text


def test_waveform_augmentations_need_load_and_speed_needs_fix_length():
    from seqkit.features import FeaturePipeline, Load, MelSpectrogram, PowerToDb

    no_fix = FeaturePipeline([Load(SR), MelSpectrogram(n_fft=256, hop_length=128), PowerToDb()])
    with pytest.raises(
        ParameterError, match=r"data.augment\[0\] \(speed\) changes the clip length"
    ):
        build_augmentations([Step(type="speed")], pipeline=no_fix)
    build_augmentations([Step(type="gain"), Step(type="spec_augment")], pipeline=no_fix)


# -- seeded batches ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    from seqkit.data import Example

    root = tmp_path_factory.mktemp("clips")
    items = []
    for i in range(10):
        y = (0.2 * np.sin(2 * np.pi * (200 + 50 * i) * np.arange(SR // 4) / SR)).astype(np.float32)
        path = root / f"c{i}.wav"
        sf.write(path, y, SR, subtype="FLOAT")
        items.append(Example(str(path), "a", "train"))
    return items


def maker(clips, seed=0, steps=None, audio=None):
    from seqkit.features import FeaturePipeline, FixLength, Load, MelSpectrogram, PowerToDb

    pipe = FeaturePipeline(
        [
            Load(SR),
            FixLength(0.25),
            MelSpectrogram(n_fft=256, hop_length=128, n_mels=16),
            PowerToDb(),
        ]  # fmt: skip
    )
    feats = np.stack([pipe(ex) for ex in clips])
    steps = steps if steps is not None else [
        Step(type="time_shift", max_ms=30), Step(type="gain"), Step(type="speed"),
        Step(type="background_noise", p=1.0), Step(type="spec_augment", time_width=4),
    ]  # fmt: skip
    augs = build_augmentations(steps, pipeline=pipe)
    labels = np.arange(len(clips))
    return BatchMaker(feats, labels, 4, seed=seed, augmentations=augs, pipeline=pipe,
                      audio=audio, items=clips), feats  # fmt: skip


def test_same_seed_same_batches_other_seed_or_epoch_other_batches(clips):
    a, feats = maker(clips, seed=3)
    b, _ = maker(clips, seed=3)
    for epoch in (0, 1):
        for i in range(len(a)):
            xa, ya = a.batch(epoch, i)
            xb, yb = b.batch(epoch, i)
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)
    assert len(a) == 3 and a.batch(0, 2)[0].shape == (2, 32, 16)  # 10 clips: 4 + 4 + 2
    x0, y0 = a.batch(0, 0)
    # The trainer's order for arrays: permutation(seed, epoch), consecutive batches.
    np.testing.assert_array_equal(y0, np.random.default_rng([3, 0]).permutation(10)[:4])
    assert not np.allclose(x0, feats[y0])  # augmented
    assert not np.array_equal(a.batch(1, 0)[1], y0) or not np.allclose(a.batch(1, 0)[0], x0)
    c, _ = maker(clips, seed=4)
    assert not np.array_equal(c.batch(0, 0)[1], y0) or not np.allclose(c.batch(0, 0)[0], x0)


def test_a_batch_is_the_same_whatever_the_order_of_requests(clips):
    a, _ = maker(clips, seed=1)
    b, _ = maker(clips, seed=1)
    later = b.batch(2, 1)  # b is asked for a later batch, of a later epoch, first
    b.batch(0, 2)
    for epoch, i in ((0, 0), (2, 1), (0, 2)):
        np.testing.assert_array_equal(a.batch(epoch, i)[0], b.batch(epoch, i)[0])
    np.testing.assert_array_equal(a.batch(2, 1)[0], later[0])


def test_cached_audio_rows_give_the_same_batches_as_loading(clips):
    from seqkit.features import Load

    audio = [Load(SR)(ex) for ex in clips]
    a, _ = maker(clips, seed=2)
    b, _ = maker(clips, seed=2, audio=audio)
    np.testing.assert_array_equal(a.batch(0, 1)[0], b.batch(0, 1)[0])


def test_no_augmentation_gives_the_rows(clips):
    a, feats = maker(clips, seed=5, steps=[])
    x, y = a.batch(0, 1)
    np.testing.assert_array_equal(x, feats[y])


def test_train_batches_follow_set_epoch_and_skip_and_survive_pickling(clips):
    m, _ = maker(clips, seed=6)
    ds = train_batches(m)
    assert type(ds).__module__ == "seqkit.speech.augment" and type(ds).__name__ == "TrainBatches"
    ds.set_epoch(1, skip_batches=1)
    assert len(ds) == 2
    np.testing.assert_array_equal(ds[0][0], m.batch(1, 1)[0])
    back = pickle.loads(pickle.dumps(ds))  # what a spawned or forkserver worker receives
    np.testing.assert_array_equal(back[1][0], m.batch(1, 2)[0])
    ds.on_epoch_end()  # Keras calls it at times of its own: the trainer's setting stands
    assert (ds.epoch, ds.skip, len(ds)) == (1, 1, 2)
    plain = train_batches(m)  # without the trainer, plain fit(epochs=N): the epoch advances
    plain.on_epoch_end()
    assert (plain.epoch, plain.skip, len(plain)) == (1, 0, 3)
    np.testing.assert_array_equal(plain[0][0], m.batch(1, 0)[0])


def test_a_recipe_trains_with_every_augmentation(tmp_path, monkeypatch):
    import json

    from seqkit.training import train

    monkeypatch.setenv("SEQKIT_CACHE", str(tmp_path / "cache"))
    doc = tiny_recipe(tmp_path / "data", epochs=1)
    doc["data"]["augment"] = [
        {"type": "time_shift", "max_ms": 50},
        {"type": "gain", "db": [-3, 3]},
        {"type": "speed", "factor": [0.9, 1.1]},
        {"type": "background_noise", "snr_db": [10, 20]},
        {"type": "spec_augment", "freq_width": 4, "time_width": 4},
    ]
    path = train(validate_dict(doc), run_dir=tmp_path / "run", verbose=0)
    metrics = json.loads((path / "metrics.json").read_text())
    assert metrics["epochs_run"] == 1 and metrics["examples"]["train"] == 24
    # The waveforms of the training split were cached next to the features.
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 2
