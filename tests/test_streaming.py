"""The streaming runtime: incremental features equal librosa's, numpy steps equal Keras' layers."""

import keras
import librosa
import numpy as np
import pytest

from seqkit import features as F
from seqkit.errors import ParameterError
from seqkit.layers import GRU
from seqkit.speech.streaming import Detector, FeatureStream, ModelStream, Streamer, filler_labels

SR = 16000


def clip(seconds=1.0, seed=0, sr=SR):
    """A glide with an onset and noise: every mel band and frame has a different value."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    env = np.clip((t - 0.1) * 20, 0, 1) * np.exp(-2 * t)
    y = env * np.sin(2 * np.pi * (300 + 900 * t) * t) + 0.01 * rng.normal(size=t.size)
    return y.astype(np.float32)


def pipeline(*steps, seconds=1.0):
    head = [F.Load(sample_rate=SR)] + ([F.FixLength(seconds=seconds)] if seconds else [])
    return F.FeaturePipeline(head + list(steps))


def stream(fs, y, seed=0):
    """All frames of ``y`` pushed in random chunks (1..700 samples), then flushed."""
    rng = np.random.default_rng(seed)
    out, i = [], 0
    while i < y.size:
        n = int(rng.integers(1, 700))
        out.append(fs.push(y[i : i + n]))
        i += n
    out.append(fs.flush())
    return np.concatenate(out)


def close(a, b, rtol=1e-5):
    """Equal to ``rtol`` of the largest magnitude (float32 features reach a few hundred)."""
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * float(np.abs(b).max()))


# -- features ------------------------------------------------------------------------------------


def test_mel_frames_equal_librosa_uncentered():
    y = clip()
    fs = FeatureStream(pipeline(F.MelSpectrogram(n_fft=512, hop_length=160, center=False)))
    got = stream(fs, y)
    want = librosa.feature.melspectrogram(
        y=y, sr=SR, n_fft=512, hop_length=160, n_mels=40, center=False
    ).T
    assert got.shape == want.shape == (97, 40)
    close(got, want)
    assert fs.latency_seconds == 256 / SR  # half a window after the frame's centre


@pytest.mark.parametrize(
    "kw",
    [
        {"n_fft": 400, "hop_length": 160},
        {"n_fft": 512, "hop_length": 128, "win_length": 400, "power": 1.0},
        {"n_fft": 255, "hop_length": 100, "n_mels": 24, "fmin": 50.0, "fmax": 7000.0},
    ],
)
def test_centered_frames_equal_the_whole_clip_after_flush(kw):
    y = clip(0.7)
    p = pipeline(F.MelSpectrogram(**kw), seconds=None)
    close(stream(FeatureStream(p), y), p.from_audio(y, SR))


def test_frames_do_not_depend_on_chunking():
    y = clip(0.5)
    p = pipeline(F.MelSpectrogram(n_fft=400, hop_length=160), F.PowerToDb())
    one = FeatureStream(p)
    by_sample = np.concatenate([one.push(y[i : i + 1]) for i in range(y.size)] + [one.flush()])
    whole = FeatureStream(p)
    at_once = np.concatenate([whole.push(y), whole.flush()])
    np.testing.assert_array_equal(by_sample, at_once)


def test_power_to_db_without_floor_and_with_a_loud_start_equals_the_clip():
    y = clip()
    y[8000:] *= 1e-6  # quiet end: the 80 dB floor binds, after the loudest frame
    for db in (F.PowerToDb(top_db=None), F.PowerToDb(ref=2.0, top_db=80.0)):
        p = pipeline(F.MelSpectrogram(n_fft=400, hop_length=160), db)
        whole = p.from_audio(y, SR)
        if db.top_db:
            assert (whole == whole.max() - 80).sum() > 100  # the floor does bind
        close(stream(FeatureStream(p), y), whole)


def test_power_to_db_floor_is_causal_over_the_clip_window():
    y = clip(2.0)
    y[:12000] *= 1e-5  # quiet first: the clip's floor comes from the future, a stream's cannot
    p = pipeline(F.MelSpectrogram(n_fft=400, hop_length=160), F.PowerToDb(), seconds=0.5)
    fs = FeatureStream(p)
    assert fs.clip_frames == 51
    got = stream(fs, y)
    db = librosa.power_to_db(
        librosa.feature.melspectrogram(y=y, sr=SR, n_fft=400, hop_length=160, n_mels=40),
        top_db=None,
    ).T
    frame_max = db.max(axis=1)
    want = np.stack(
        [np.maximum(db[t], frame_max[max(0, t - 50) : t + 1].max() - 80) for t in range(len(db))]
    )
    close(got, want)
    assert not np.allclose(got, np.maximum(db, db.max() - 80))  # the clip's floor differs


@pytest.mark.parametrize("source", ["frames", "audio"])
def test_mfcc_equals_librosa(source):
    y = clip()
    if source == "frames":
        steps = [F.MelSpectrogram(n_fft=400, hop_length=160), F.PowerToDb(),
                 F.MFCC(n_mfcc=13, lifter=22.0)]  # fmt: skip
    else:
        steps = [F.MFCC(n_mfcc=20, n_mels=32, n_fft=512, hop_length=128, dct_type=3)]
    p = pipeline(*steps)
    close(stream(FeatureStream(p), y), p.from_audio(y, SR))


@pytest.mark.parametrize("order,width", [(1, 9), (2, 5), (2, 3)])
def test_deltas_equal_librosa_with_edges_and_lookahead(order, width):
    y = clip()
    p = pipeline(
        F.MelSpectrogram(n_fft=400, hop_length=160), F.PowerToDb(), F.MFCC(n_mfcc=13),
        F.Deltas(order=order, width=width),
    )  # fmt: skip
    fs = FeatureStream(p)
    assert fs.lookahead_frames == width // 2
    close(stream(fs, y), p.from_audio(y, SR))
    # frames come out width // 2 frames late: 0.2 s makes 19 centered frames (n_fft // 2 zeros
    # first), so 19 - width // 2 come out
    fs.reset()
    first = fs.push(y[:3200])
    assert first.shape == (19 - width // 2, 13 * (1 + order))


def test_quickstart_pipeline_equals_the_whole_clip():
    y = clip()
    p = pipeline(
        F.MelSpectrogram(n_fft=400, hop_length=160, n_mels=40), F.PowerToDb(),
        F.MFCC(n_mfcc=13), F.Deltas(order=1),
    )  # fmt: skip
    whole = p.from_audio(y, SR)
    assert whole.shape == (101, 26)
    # a frame is out 4 hops (deltas) + half a window (200 samples) after its centre
    assert FeatureStream(p).latency_seconds == pytest.approx(0.0525)
    close(stream(FeatureStream(p), y), whole)
    close(stream(FeatureStream(p, dtype=np.float64), y), whole)


def test_log_mel_with_milliseconds_equals_the_whole_clip():
    y = clip()
    p = pipeline(F.LogMel(n_mels=40, win_ms=25.0, hop_ms=10.0), F.Deltas(order=1, width=5))
    fs = FeatureStream(p)
    assert fs.hop_length == 160 and fs.frame_seconds == 0.01
    close(stream(fs, y), p.from_audio(y, SR))


@pytest.mark.parametrize("power, scale", [(2.0, 1.0), (1.0, 2.0**31)])
def test_pcen_equals_librosa_and_the_stream_carries_its_smoother(power, scale):
    y = clip(seconds=1.5)
    mel = F.MelSpectrogram(n_fft=400, hop_length=160, n_mels=40, power=power)
    pcen = F.PCEN(hop_length=160, time_constant=0.06, scale=scale)
    p = pipeline(mel, pcen, F.Deltas(order=1, width=5), seconds=1.5)
    whole = p.from_audio(y, SR)
    S = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=400, hop_length=160, n_mels=40,
                                       power=power)  # fmt: skip
    oracle = librosa.pcen(S * scale, sr=SR, hop_length=160, time_constant=0.06)
    close(whole[:, :40], oracle.T.astype(np.float32))
    assert whole.shape == (151, 80)
    close(stream(FeatureStream(p), y), whole)
    close(stream(FeatureStream(p, dtype=np.float64), y), whole)
    fs = FeatureStream(p)  # a reset starts the smoother again: a second clip equals the first
    first = stream(fs, y)
    fs.reset()
    close(stream(fs, y, seed=1), first)


def test_cmvn_normalises_each_feature_over_the_clip_and_streams_refuse_it():
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(50, 4)).astype(np.float32)
    out = F.CMVN()(x, SR)
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(out.std(axis=0), 1.0, atol=1e-5)
    np.testing.assert_allclose(F.CMVN(variance=False)(x, SR), x - x.mean(axis=0), atol=1e-5)
    with pytest.raises(ParameterError, match="`variance` must be true or false; received 'no'"):
        F.CMVN(variance="no")
    p = F.FeaturePipeline([F.Load(sample_rate=SR), F.MelSpectrogram(), F.PowerToDb(), F.CMVN()],
                          ["load", "melspectrogram", "power_to_db", "cmvn"])  # fmt: skip
    with pytest.raises(ParameterError, match="'cmvn' normalises each feature by the whole clip"):
        FeatureStream(p)


def test_unstreamable_pipelines_are_refused():
    class Custom(F.FeatureStep):
        def __call__(self, x, sr):
            return x

    p = F.FeaturePipeline([F.Load(), F.MelSpectrogram(), Custom()], ["load", "mel", "custom"])
    with pytest.raises(ParameterError, match="'custom' has no streaming version"):
        FeatureStream(p)
    with pytest.raises(ParameterError, match="float32 or float64"):
        FeatureStream(pipeline(F.MelSpectrogram()), dtype=np.int16)


# -- model ---------------------------------------------------------------------------------------

T, NF, C = 12, 6, 4


def randomize(model, seed=0):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Normalization):
            layer.adapt(rng.normal(2.0, 3.0, size=(16, 4, NF)).astype(np.float32))
        elif layer.weights:
            layer.set_weights([rng.normal(0, 0.5, size=w.shape) for w in layer.get_weights()])
    return model


def build(layers, pooling="last", sequences=False):
    """Input -> Normalization -> layers -> (pool) -> Dense softmax, as a recipe builds it.

    ``sequences``: every recurrent layer returns sequences and there is no pooling, so the
    model gives the posterior of every step (the oracle of the per-step stream)."""
    x = inp = keras.Input((None, NF), name="features")
    x = keras.layers.Normalization(name="normalize")(x)
    made = [make() for make in layers]
    recurrent = [i for i, layer in enumerate(made) if isinstance(layer, keras.layers.RNN)]
    for i, layer in enumerate(made):
        if i in recurrent and (sequences or pooling != "last" or i != recurrent[-1]):
            layer.return_sequences = True
        x = layer(x)
    if pooling != "last" and not sequences:
        pool = keras.layers.GlobalMaxPooling1D if pooling == "max" else (
            keras.layers.GlobalAveragePooling1D)  # fmt: skip
        x = pool(name="pool")(x)
    x = keras.layers.Dropout(0.3, name="head_dropout")(x)
    return keras.Model(inp, keras.layers.Dense(C, activation="softmax", name="scores")(x))


def twin(layers, pooling="last"):
    clip_model = randomize(build(layers, pooling))
    seq_model = build(layers, sequences=True)
    seq_model.set_weights(clip_model.get_weights())
    seq_model.get_layer("normalize").finalize_state()  # mean/variance from the copied weights
    return clip_model, seq_model


LAYERS = {
    "seqkit_gru": [lambda: GRU(8)],
    "seqkit_gru_reset_after": [lambda: GRU(8, reset_after=True)],
    "keras_gru": [lambda: keras.layers.GRU(8)],
    "keras_gru_hard_sigmoid": [lambda: keras.layers.GRU(8, recurrent_activation="hard_sigmoid")],
    "lstm": [lambda: keras.layers.LSTM(8)],
    "rnn": [lambda: keras.layers.SimpleRNN(8, activation="relu")],
    "stack": [
        lambda: keras.layers.Dense(10, activation="tanh"),
        lambda: GRU(8),
        lambda: keras.layers.Dropout(0.5),
        lambda: keras.layers.LSTM(7),
        lambda: keras.layers.Dense(5, activation="sigmoid"),
    ],
}


def frames(seed=1, n=T):
    return np.random.default_rng(seed).normal(2.0, 3.0, size=(n, NF)).astype(np.float32)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_every_step_equals_keras(name):
    clip_model, seq_model = twin(LAYERS[name])
    x = frames()
    per_step = seq_model.predict(x[None], verbose=0)[0]
    last = clip_model.predict(x[None], verbose=0)[0]
    np.testing.assert_allclose(per_step[-1], last, atol=1e-6)  # the oracles agree
    for dtype in (np.float32, np.float64):
        got = ModelStream(clip_model, dtype=dtype).run(x)
        np.testing.assert_allclose(got, per_step, atol=1e-5)
        np.testing.assert_allclose(got[-1], last, atol=1e-5)


@pytest.mark.parametrize("pooling", ["mean", "max"])
def test_running_pooling_equals_keras_on_every_prefix(pooling):
    model = randomize(build([lambda: GRU(8, reset_after=True)], pooling=pooling))
    x = frames()
    got = ModelStream(model).run(x)
    for t in (1, 5, T):
        np.testing.assert_allclose(got[t - 1], model.predict(x[None, :t], verbose=0)[0], atol=1e-5)


def test_copies_run_independent_states():
    model = randomize(build(LAYERS["lstm"], pooling="mean"))
    x = frames(n=20)
    ms = ModelStream(model, copies=3)
    got = []
    for t, f in enumerate(x):
        if t == 5:
            ms.reset(1)
        if t == 9:
            ms.reset(2)
        got.append(ms.step(f).copy())
    got = np.array(got)
    ref = ModelStream(model)
    np.testing.assert_allclose(got[:, 0], ref.run(x), atol=1e-6)
    ref.reset()
    np.testing.assert_allclose(got[5:, 1], ref.run(x[5:]), atol=1e-6)
    ref.reset()
    np.testing.assert_allclose(got[9:, 2], ref.run(x[9:]), atol=1e-6)


def test_streamer_takes_the_oldest_of_staggered_states():
    p = pipeline(F.MelSpectrogram(n_fft=400, hop_length=160, n_mels=NF), F.PowerToDb(),
                 seconds=0.1)  # fmt: skip
    model = randomize(build(LAYERS["keras_gru"]))
    y = clip(0.6)
    feats = stream(FeatureStream(p), y)
    s = Streamer(FeatureStream(p), ModelStream(model, copies=2), reset_every="clip")
    assert s.reset_every == 11  # 0.1 s at hop 160: 11 frames
    got = np.concatenate([s.push(y), s.flush()])
    assert got.shape == (61, C)
    # copy 0 restarts at 11, 22, ...; copy 1 at 6, 17, 28, ...: the oldest spans 6..11 frames
    starts = {0: [0, 11, 22, 33, 44, 55], 1: [0, 6, 17, 28, 39, 50]}
    ref = ModelStream(model)
    for t in range(61):
        begin = min(max(s for s in starts[k] if s <= t) for k in starts)
        ref.reset()
        np.testing.assert_allclose(got[t], ref.run(feats[begin : t + 1])[-1], atol=1e-5)
    carry = Streamer(FeatureStream(p), ModelStream(model), reset_every=None)
    ref.reset()
    np.testing.assert_allclose(
        np.concatenate([carry.push(y), carry.flush()]), ref.run(feats), atol=1e-5
    )
    assert s.time_of(0) == pytest.approx((400 - 200) / SR)


def test_unstreamable_layers_are_refused():
    bi = randomize(build([lambda: keras.layers.Bidirectional(GRU(4))]))
    with pytest.raises(ParameterError, match="bidirectional: its backward half reads the clip"):
        ModelStream(bi)
    back = build([lambda: keras.layers.LSTM(4, go_backwards=True)])
    with pytest.raises(ParameterError, match=r"go_backwards: true.*not streamable"):
        ModelStream(back)
    conv = build([lambda: keras.layers.Conv1D(4, 3, padding="causal"), lambda: GRU(4)])
    with pytest.raises(ParameterError, match=r"\(Conv1D\) has no streaming step"):
        ModelStream(conv)
    odd = build([lambda: GRU(4, activation="exponential")])
    with pytest.raises(ParameterError, match="activation 'exponential' has no streaming version"):
        ModelStream(odd)


# -- detection -----------------------------------------------------------------------------------


def test_filler_labels():
    labels = ["yes", "no", "_silence_", "_unknown_", "noise", "Silence", "e_e", "_"]
    assert filler_labels(labels) == ["_silence_", "_unknown_", "noise", "Silence"]


def test_detector_smooths_thresholds_and_waits_out_the_refractory_time():
    labels = ["yes", "no", "_unknown_"]
    det = Detector(labels, 0.01, threshold=0.6, smooth_ms=30, refractory_ms=50)
    assert (det.smooth, det.refractory) == (3, 5)
    yes, no, unk = np.eye(3)
    posts = [unk] * 3 + [yes, yes, yes, yes] + [no] * 6 + [unk, unk, no, no, no]
    fired = [(t, det.update(p, t)) for t, p in enumerate(posts)]
    fired = [(t, labels[h[0]], round(h[1], 4)) for t, h in fired if h]
    # yes: the mean of (unk, yes, yes) reaches 0.667 at frame 4; "no" reaches 0.667 at frame 8,
    # still inside the refractory time (frames 5-8), and fires at 9 with 1.0; then again at 16.
    assert fired == [(4, "yes", 0.6667), (9, "no", 1.0), (16, "no", 0.6667)]


def test_detector_reports_fillers_only_when_asked_and_checks_labels():
    labels = ["yes", "_unknown_"]
    unk = np.array([0.0, 1.0])
    assert Detector(labels, 0.01, smooth_ms=0).update(unk, 0) is None
    assert Detector(labels, 0.01, smooth_ms=0, report=["_unknown_"]).update(unk, 0) == (1, 1.0)
    with pytest.raises(ParameterError, match="'yess' is not one of.*Did you mean 'yes'"):
        Detector(labels, 0.01, report=["yess"])
    with pytest.raises(ParameterError, match="`threshold` must be in"):
        Detector(labels, 0.01, threshold=1.5)
    with pytest.raises(ParameterError, match="name the ones to report with --labels"):
        Detector(["_silence_", "noise"], 0.01)
