import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if "SEQKIT_CACHE" not in os.environ:  # tests never fill the user's ~/.cache/seqkit
    import tempfile

    os.environ["SEQKIT_CACHE"] = tempfile.mkdtemp(prefix="seqkit-test-cache-")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def assert_same_clips(a: Path, b: Path, lsb: int = 1) -> None:
    """Two generated speech folders hold the same files: every file other than a WAV byte for
    byte, every WAV the same sample rate and length and the same int16 samples to ``lsb``, in at
    most 1 % of the samples. Inside one long-lived test process (a pytest worker that has run
    other test files first), a clip rendered by one forked child and again by another has been
    seen to differ by one least significant bit in a few samples; two fresh processes write
    identical bytes (tests/test_synth.py::test_synthesize_is_identical_in_fresh_processes
    checks that strictly). A different seed, speaker or word changes nearly every sample."""
    import soundfile as sf

    files = {r: sorted(p.relative_to(r).as_posix() for p in r.rglob("*") if p.is_file())
             for r in (a, b)}  # fmt: skip
    assert files[a] == files[b]
    for name in files[a]:
        x, y = a / name, b / name
        if not name.endswith(".wav"):
            assert x.read_bytes() == y.read_bytes(), name
            continue
        (u, sr_u), (v, sr_v) = sf.read(str(x), dtype="int16"), sf.read(str(y), dtype="int16")
        assert sr_u == sr_v and u.shape == v.shape, name
        diff = np.abs(u.astype(np.int32) - v.astype(np.int32))
        assert diff.max() <= lsb and np.count_nonzero(diff) <= 0.01 * diff.size, name


def tiny_recipe(data_root, layer=None, epochs=2, **source):
    """A recipe dict that trains in seconds: 4 synthetic classes, short clips, a small GRU."""
    src = {
        "type": "synthetic_tones",
        "root": str(data_root),
        "classes": ["ai", "ia", "u", "noise"],
        "speakers": 10,
        "clips_per_speaker": 1,
        "seconds": 0.5,
        "file_sample_rate": 16000,
        "validation_percent": 30,
        "test_percent": 20,
    }
    src.update(source)
    return {
        "name": "tiny",
        "seed": 1,
        "data": {"source": src},
        "features": [
            {"type": "load", "sample_rate": 8000},
            {"type": "fix_length", "seconds": 0.5},
            {"type": "melspectrogram", "n_fft": 256, "hop_length": 128, "n_mels": 20},
            {"type": "power_to_db"},
        ],
        "model": {"layers": [layer or {"type": "gru", "units": 8}]},
        "task": {"type": "kws"},
        "train": {"epochs": epochs, "batch_size": 8},
    }


def write_recipe(path, doc):
    path = Path(path)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def write_wav(path, seconds=0.5, sr=16000, freq=440.0, seed=0):
    import soundfile as sf

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    y = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.normal(size=t.size)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), y.astype(np.float32), sr, subtype="PCM_16")
    return Path(path)


@pytest.fixture
def tiny(tmp_path):
    """(recipe path, recipe dict) for a tiny synthetic run inside tmp_path."""
    doc = tiny_recipe(tmp_path / "data")
    return write_recipe(tmp_path / "tiny.yaml", doc), doc


# -- the GRU equations in NumPy -----------------------------------------------------------------
def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def numpy_gru(
    x, kernel, recurrent_kernel, bias, h0=None, reset_after=False, go_backwards=False, mask=None
):
    """The documents' equations (and the reset-after variant) in float64 NumPy.

    Returns dict r, z, hh, h, each (batch, time, units), indexed by input time step. Weights in
    Keras' layout (gate order z, r, h); ``mask`` (batch, time): a masked step keeps the state,
    as Keras does. The oracle of tests/test_gru.py and tests/test_backends.py.
    """
    x = np.asarray(x, dtype="float64")
    units = recurrent_kernel.shape[0]
    k = [kernel[:, i * units : (i + 1) * units].astype("float64") for i in range(3)]
    u = [recurrent_kernel[:, i * units : (i + 1) * units].astype("float64") for i in range(3)]
    if bias is None:
        ib = rb = np.zeros(3 * units)
    elif reset_after:
        ib, rb = bias[0].astype("float64"), bias[1].astype("float64")
    else:
        ib, rb = bias.astype("float64"), np.zeros(3 * units)
    ib = [ib[i * units : (i + 1) * units] for i in range(3)]
    rb = [rb[i * units : (i + 1) * units] for i in range(3)]
    h = np.zeros((x.shape[0], units)) if h0 is None else np.asarray(h0, dtype="float64")
    out = {key: [None] * x.shape[1] for key in ("r", "z", "hh", "h")}
    steps = range(x.shape[1] - 1, -1, -1) if go_backwards else range(x.shape[1])
    for t in steps:
        xt = x[:, t, :]
        z = sigmoid(xt @ k[0] + ib[0] + h @ u[0] + rb[0])
        r = sigmoid(xt @ k[1] + ib[1] + h @ u[1] + rb[1])
        if reset_after:
            hh = np.tanh(xt @ k[2] + ib[2] + r * (h @ u[2] + rb[2]))
        else:
            hh = np.tanh(xt @ k[2] + ib[2] + (r * h) @ u[2])
        new = z * h + (1.0 - z) * hh
        h = new if mask is None else np.where(np.asarray(mask)[:, t][:, None], new, h)
        for key, value in (("r", r), ("z", z), ("hh", hh), ("h", h)):
            out[key][t] = value
    return {key: np.stack(v, axis=1) for key, v in out.items()}
