"""seqkit's waveform augmentations next to audiomentations' (the maintained library issue 14
names), CPU milliseconds per 1-second clip at 16 kHz, side by side, and the ratio.

    python bench/bench_augment_voices.py [--clips 200]

audiomentations is not a seqkit dependency (README "Keyword spotting" says why); install it
in the virtual environment to run its column (``pip install audiomentations``), else only
seqkit's column is printed. Each step is run with probability 1 on the same clips; the time is
``time.process_time`` (CPU of this process), so the figures do not depend on other jobs as
much as the wall clock would. The steps are matched as closely as the two APIs allow:

* ``band_pass`` (Butterworth order 4, cuts drawn per clip) vs ``BandPassFilter`` (its own
  centre/bandwidth draw, order 4);
* ``clipping`` vs ``ClippingDistortion`` (the same percentile rule);
* ``gain`` vs ``Gain``, ``time_shift`` vs ``Shift`` (seqkit's hand-written steps);
* ``reverb`` (a bank of room impulse responses in memory) vs ``ApplyImpulseResponse`` (the
  same responses as .wav files, which it loads and caches);
* ``vtlp`` (on the 40 log-mel features) vs ``PitchShift`` (a waveform pitch shift, the other
  way to change a voice's formants) -- different operations, the cost of each way.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from seqkit.features import FeaturePipeline, FixLength, Load, LogMel  # noqa: E402
from seqkit.speech.augment import (  # noqa: E402
    VTLP,
    BandPass,
    Clipping,
    Gain,
    Reverb,
    TimeShift,
)

SR = 16000


def cpu_ms(fn, clips) -> float:
    fn(clips[0])  # warm-up (imports, JIT)
    start = time.process_time()
    for x in clips:
        fn(x)
    return (time.process_time() - start) / len(clips) * 1e3


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=200)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    clips = [
        (0.2 * np.sin(2 * np.pi * rng.uniform(100, 3000) * t) * np.hanning(SR)
         + 0.01 * rng.standard_normal(SR)).astype(np.float32)
        for _ in range(args.clips)
    ]  # fmt: skip
    pipe = FeaturePipeline([Load(SR), FixLength(1.0), LogMel(n_mels=40, win_ms=30, hop_ms=20)],
                           ["load", "fix_length", "log_mel"])  # fmt: skip
    feats = [pipe.from_audio(x, SR) for x in clips]
    reverb = Reverb(rt60=[0.2, 0.8], rirs=8, p=1.0)
    reverb.bind(sample_rate=SR)
    vtlp = VTLP()
    vtlp.bind_pipeline(pipe)
    ours = {
        "band_pass": lambda x: BandPass(p=1.0)(x, SR, rng),
        "clipping": lambda x: Clipping(p=1.0)(x, SR, rng),
        "gain": lambda x: Gain()(x, SR, rng),
        "time_shift": lambda x: TimeShift()(x, SR, rng),
        "reverb": lambda x: reverb(x, SR, rng),
    }
    rows = {name: [cpu_ms(fn, clips)] for name, fn in ours.items()}
    # band_pass caches its filter designs (10 Hz grid, 537 at most with the defaults): what
    # it costs once training has drawn them, the second time over the same draws.
    state = np.random.default_rng(1)
    draws = [BandPass().draw(state, None, SR) for _ in clips]
    band = BandPass(p=1.0)
    for x, d in zip(clips, draws):
        band.apply(x, SR, **d)
    by_clip = {id(x): d for x, d in zip(clips, draws)}
    rows["band_pass, designs cached"] = [
        cpu_ms(lambda x: band.apply(x, SR, **by_clip[id(x)]), clips)
    ]
    feats_iter = iter(feats * 2)
    rows["vtlp"] = [cpu_ms(lambda _x: vtlp(next(feats_iter), None, rng), clips)]
    rows["(features: load.. log_mel)"] = [cpu_ms(lambda x: pipe.from_audio(x, SR), clips)]
    try:
        import audiomentations as am
    except ImportError:
        am = None
    if am is not None:
        with tempfile.TemporaryDirectory() as tmp:
            import soundfile as sf

            for i, h in enumerate(reverb.bank):
                sf.write(Path(tmp) / f"rir{i}.wav", h[:SR], SR, subtype="FLOAT")
            theirs = {
                "band_pass": am.BandPassFilter(min_rolloff=24, max_rolloff=24, p=1.0),
                "clipping": am.ClippingDistortion(p=1.0),
                "gain": am.Gain(p=1.0),
                "time_shift": am.Shift(p=1.0),
                "reverb": am.ApplyImpulseResponse(tmp, p=1.0),
                "vtlp": am.PitchShift(min_semitones=-2, max_semitones=2, p=1.0),
            }
            for name, aug in theirs.items():
                rows[name].append(cpu_ms(lambda x, aug=aug: aug(samples=x, sample_rate=SR),
                                         clips[: max(20, args.clips // 10)]
                                         if name == "vtlp" else clips))  # fmt: skip
        version = am.__version__
    else:
        version = "not installed"
    load = os.getloadavg()[0]
    print(f"CPU ms per 1 s clip, {args.clips} clips; load average {load:.1f}; "
          f"audiomentations {version}")  # fmt: skip
    print(f"{'step':28s} {'seqkit':>8s} {'audiomentations':>16s} {'ratio':>7s}")
    for name, vals in rows.items():
        theirs = f"{vals[1]:16.3f}" if len(vals) > 1 else f"{'-':>16s}"
        ratio = f"{vals[1] / vals[0]:7.1f}" if len(vals) > 1 else f"{'-':>7s}"
        print(f"{name:28s} {vals[0]:8.3f} {theirs} {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
