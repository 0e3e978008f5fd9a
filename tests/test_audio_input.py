"""Robust audio input: every source reads any rate, bit depth, channel count and length, and
turns each kind of bad file into a DataError that names it, without a huge allocation; the
dataset folder is never written to.

Files are made in ``tmp_path``: good ones with soundfile, bad ones byte by byte.
"""

from __future__ import annotations

import hashlib
import logging
import struct
import tracemalloc
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf

from seqkit.data import Example
from seqkit.errors import DataError
from seqkit.extract import extract_features
from seqkit.features import FeaturePipeline, FixLength, Load, LogMel
from seqkit.speech.sources.folder import FolderSource
from seqkit.speech.sources.manifest import Manifest
from seqkit.speech.sources.pattern import FilenamePattern
from seqkit.speech.sources.speech_commands import SpeechCommands


def tree_digest(root: Path) -> str:
    """SHA-256 over every path under ``root`` (folders too) and every file's bytes."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(p.relative_to(root).as_posix().encode() + (b"/" if p.is_dir() else b""))
        if p.is_file():
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def signal(seconds, sr, channels, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sr))) / sr
    cols = [0.4 * np.sin(2 * np.pi * (300 + 200 * c) * t) + 0.02 * rng.normal(size=t.size)
            for c in range(channels)]  # fmt: skip
    return np.stack(cols, axis=1).astype(np.float32)


# (name, sample rate, subtype, channels, seconds, format)
FORMATS = [
    ("u8_8k_mono", 8000, "PCM_U8", 1, 0.6, "WAV"),
    ("s16_11k_stereo", 11025, "PCM_16", 2, 1.3, "WAV"),
    ("s24_22k_mono", 22050, "PCM_24", 1, 0.9, "WAV"),
    ("s32_44k_stereo", 44100, "PCM_32", 2, 1.0, "WAV"),
    ("f32_48k_mono", 48000, "FLOAT", 1, 2.0, "WAV"),
    ("f64_32k_6ch", 32000, "DOUBLE", 6, 0.25, "WAV"),
    ("flac_96k_stereo", 96000, "PCM_16", 2, 0.5, "FLAC"),
    ("s16_16k_mono", 16000, "PCM_16", 1, 1.0, "WAV"),
]


def write_format(path: Path, sr, subtype, channels, seconds, fmt, seed=0) -> np.ndarray:
    y = signal(seconds, sr, channels, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, y, sr, subtype=subtype, format=fmt)
    return y


@pytest.mark.parametrize("name, sr, subtype, channels, seconds, fmt", FORMATS)
def test_load_any_format_equals_soundfile_then_librosa(tmp_path, name, sr, subtype, channels,
                                                       seconds, fmt):  # fmt: skip
    path = tmp_path / f"{name}.{fmt.lower()}"
    write_format(path, sr, subtype, channels, seconds, fmt)
    y = Load(16000)(path)
    data, file_sr = sf.read(path, dtype="float32", always_2d=True)
    ref = data.mean(axis=1)
    if file_sr != 16000:
        ref = librosa.resample(ref, orig_sr=file_sr, target_sr=16000)
    assert y.dtype == np.float32 and y.ndim == 1
    assert y.shape == ref.shape
    assert abs(y.size - seconds * 16000) <= 1
    np.testing.assert_allclose(y, ref, atol=1e-5)
    out = FeaturePipeline([Load(16000), FixLength(1.0), LogMel(hop_ms=10)])(str(path))
    assert out.shape == (101, 40) and np.all(np.isfinite(out))


def _mixed_tree(root: Path) -> dict[str, list[str]]:
    """Two words, each in every format: Speech Commands names, lists, a manifest."""
    files = {}
    for w, word in enumerate(("yes", "no")):
        for i, (name, sr, subtype, ch, sec, fmt) in enumerate(FORMATS):
            rel = f"{word}/{i:08x}_nohash_{name}.{fmt.lower()}"
            write_format(root / rel, sr, subtype, ch, sec, fmt, seed=10 * w + i)
            files.setdefault(word, []).append(rel)
    return files


@pytest.mark.parametrize("kind", ["folder", "speech_commands", "filename_pattern", "manifest"])
def test_every_source_reads_every_format(tmp_path, kind):
    root = tmp_path / "data"
    files = _mixed_tree(root)
    if kind == "manifest":
        rows = ["path,label,split"] + [
            f"{rel},{w},train" for w, rels in files.items() for rel in rels
        ]
        (root / "list.csv").write_text("\n".join(rows) + "\n")
    before = tree_digest(root)
    exts = [".wav", ".flac"]
    source = {
        "folder": lambda: FolderSource(str(root), extensions=exts),
        "speech_commands": lambda: SpeechCommands(
            str(root), words=["yes", "no"], unknown_percent=0, silence_percent=50, extensions=exts
        ),  # fmt: skip
        "filename_pattern": lambda: FilenamePattern(
            str(root), r"(?P<label>[a-z]+)/(?P<speaker>[0-9a-f]{8})_nohash_.*"
        ),
        "manifest": lambda: Manifest(str(root / "list.csv")),
    }[kind]()
    examples = source.examples()
    words = [e for e in examples if e.label in ("yes", "no")]
    assert len(words) == 2 * len(FORMATS)
    pipeline = FeaturePipeline([Load(16000), FixLength(1.0), LogMel(hop_ms=10)])
    kept, feats, skipped = extract_features(examples, pipeline, workers=1)
    assert skipped == []
    assert len(kept) == len(examples)
    assert {f.shape for f in feats} == {(101, 40)}
    assert tree_digest(root) == before


# -- bad input -----------------------------------------------------------------------------------


def wav_bytes(sr=16000, channels=1, bits=16, data=b"\x00\x01" * 100, data_size=None, fmt=1):
    block = channels * bits // 8
    fmt_chunk = struct.pack("<HHIIHH", fmt, channels, sr, (sr * block) % 2**32, block % 2**16, bits)
    size = len(data) if data_size is None else data_size
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt_chunk + b"data" + struct.pack("<I", size)
    return b"RIFF" + struct.pack("<I", min(len(body) + size, 2**32 - 1)) + body + data


def flac_claiming(path: Path, frames: int) -> None:
    """A valid short FLAC whose STREAMINFO claims ``frames`` samples."""
    sf.write(path, signal(0.1, 16000, 1, 0)[:, 0], 16000, format="FLAC", subtype="PCM_16")
    raw = bytearray(path.read_bytes())
    assert raw[:4] == b"fLaC"
    field = int.from_bytes(raw[18:26], "big")
    raw[18:26] = ((field & ~((1 << 36) - 1)) | frames).to_bytes(8, "big")
    path.write_bytes(bytes(raw))


def _float_wav(value) -> bytes:
    return wav_bytes(bits=32, fmt=3, data=np.array([0.1, value, 0.2] * 50, "<f4").tobytes())


BAD = {
    "empty.wav": (lambda p: p.write_bytes(b""), "cannot be read as audio (the file is empty)"),
    "random.wav": (
        lambda p: p.write_bytes(np.random.default_rng(1).bytes(4000)),
        "cannot be read as audio",
    ),
    "truncated.wav": (lambda p: p.write_bytes(wav_bytes()[:30]), "cannot be read as audio"),
    "rate0.wav": (lambda p: p.write_bytes(wav_bytes(sr=0)), "a sample rate of 0"),
    "rate1.wav": (lambda p: p.write_bytes(wav_bytes(sr=1)), "sample rate of 1 Hz"),
    "channels0.wav": (lambda p: p.write_bytes(wav_bytes(channels=0)), "gives 0 channels"),
    "channels65535.wav": (
        lambda p: p.write_bytes(wav_bytes(channels=65535, data=b"\x00" * 4000)),
        "cannot be read as audio",
    ),
    "nan.wav": (lambda p: p.write_bytes(_float_wav(np.nan)), "holds NaN or infinite samples"),
    "inf.wav": (lambda p: p.write_bytes(_float_wav(-np.inf)), "holds NaN or infinite samples"),
    "claims_2_31_frames.wav": (
        lambda p: p.write_bytes(wav_bytes(bits=8, data=b"\x80" * 100, data_size=2**31)),
        "the header claims 2147483648 frames at 16000 Hz",
    ),
    "claims_2_31_frames.flac": (
        lambda p: flac_claiming(p, 2**31),
        "the header claims 2147483648 frames at 16000 Hz",
    ),
    "mp3_in_wav.wav": (  # a codec libsndfile does not decode: undecodable
        lambda p: p.write_bytes(wav_bytes(fmt=0x55)),
        "cannot be read as audio",
    ),
    "no_samples.wav": (lambda p: p.write_bytes(wav_bytes(data=b"")), "holds no audio samples"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_file_raises_data_error_naming_it(tmp_path, name):
    make, fragment = BAD[name]
    path = tmp_path / name
    make(path)
    tracemalloc.start()
    try:
        with pytest.raises(DataError) as ei:
            Load(16000)(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(ei.value).startswith(f"{path}: ")
    assert fragment in str(ei.value)
    assert peak < 64 * 2**20  # no allocation from what a header claims


def test_max_seconds(tmp_path):
    path = tmp_path / "three_seconds.wav"
    sf.write(path, signal(3.0, 8000, 1, 0), 8000)
    assert Load(16000, max_seconds=3.5)(path).shape == (48000,)
    with pytest.raises(DataError, match=r"claims 24000 frames at 8000 Hz \(3 s\), more than "
                                        r"`max_seconds` \(2 s\)"):  # fmt: skip
        Load(16000, max_seconds=2.0)(path)
    # a part of a long file is read whatever its length
    ex = Example(str(path), "x", "train", offset=2.0, duration=1.0)
    assert Load(16000, max_seconds=2.0)(ex).shape == (16000,)


def test_extraction_skips_each_bad_file_with_a_count(tmp_path, caplog):
    root = tmp_path / "words"
    (root / "yes").mkdir(parents=True)
    (root / "no").mkdir()
    for i in range(3):
        sf.write(root / "yes" / f"good{i}_nohash_0.wav", signal(0.5, 16000, 1, i), 16000)
        sf.write(root / "no" / f"good{i}_nohash_0.wav", signal(0.5, 22050, 2, 10 + i), 22050)
    for name, (make, _) in BAD.items():
        make(root / ("yes" if len(name) % 2 else "no") / name)
    before = tree_digest(root)
    logger = logging.getLogger("seqkit")
    logger.addHandler(caplog.handler)
    try:
        source = FolderSource(str(root), extensions=[".wav", ".flac"])
        examples = source.examples()
        kept, feats, skipped = extract_features(
            examples, FeaturePipeline([Load(16000), FixLength(0.5), LogMel(hop_ms=10)]), workers=1
        )
    finally:
        logger.removeHandler(caplog.handler)
    assert sorted(Path(e.path).name for e in kept) == sorted(
        [f"good{i}_nohash_0.wav" for i in range(3)] * 2
    )
    assert {f.shape for f in feats} == {(51, 40)}
    text = caplog.text
    for name in BAD:
        assert name in text, name
    assert f"Skipped {len(BAD)} of {len(BAD) + 6} files that could not be read." in text
    assert tree_digest(root) == before


def test_nothing_usable_fails_clearly(tmp_path):
    for name, (make, _) in list(BAD.items())[:4]:
        make(tmp_path / name)
    examples = [Example(str(tmp_path / n), "a", "train") for n in list(BAD)[:4]]
    with pytest.raises(DataError, match=r"No usable audio: all 4 files were skipped"):
        extract_features(examples, FeaturePipeline([Load(16000), LogMel()]), workers=1)
