"""A keyword model trained elsewhere (e.g. on synthetic speech), tested on real people's voices.

The real-voice test set is ``../shared/data/speech_commands_sample``: 300 clips of Google Speech
Commands v0.01 (30 words x 10 clips, 41 speakers). The ten standard keywords are their own
classes; the other 20 words are ``_unknown_`` -- the 12-class task of TensorFlow's
``speech_commands`` example (``_silence_`` has no clips here). Printed:

* **keyword recall**: the share of the 100 keyword clips labelled with their keyword;
* **12-class accuracy** over all 300 clips (an other word counts as right when labelled
  ``_unknown_``);
* per speaker (the ``<speaker>_nohash_`` prefix): mean and spread of accuracy, the worst five;
* the most frequent confusions.

    python bench/bench_real_voices.py RUN_OR_EXPORT [--data DIR] [--json]

Everything runs through seqkit's own inference path (``seqkit.inference.predict_files``, what
``seqkit predict`` runs), so the figures are those a user gets from ``seqkit predict``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from seqkit.inference import load_for_inference, predict_files  # noqa: E402

STANDARD_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "speech_commands_sample"


def true_label(word: str, labels: list[str]) -> str:
    return word if word in labels else "_unknown_"


def measure(run, data: Path) -> dict:
    model = load_for_inference(run)
    files = sorted(p for p in data.glob("*/*.wav"))
    if not files:
        raise SystemExit(f"no clips under {data}")
    result = predict_files(model, files, top_k=1)
    rows = []
    for pred in result["predictions"]:
        path = Path(pred["file"])
        word, speaker = path.parent.name, path.name.split("_nohash_")[0]
        rows.append((word, speaker, true_label(word, model.labels), pred["top"][0]["label"]))
    keywords = [r for r in rows if r[0] in STANDARD_WORDS]
    per_speaker = collections.defaultdict(list)
    for _word, speaker, truth, guess in rows:
        per_speaker[speaker].append(truth == guess)
    speaker_acc = {s: sum(v) / len(v) for s, v in per_speaker.items()}
    confusions = collections.Counter((t, g) for _, _, t, g in rows if t != g)
    return {
        "run": str(run),
        "data": str(data),
        "clips": len(rows),
        "skipped": len(result["skipped"]),
        "keyword_clips": len(keywords),
        "keyword_recall": sum(t == g for _, _, t, g in keywords) / max(len(keywords), 1),
        "accuracy_12_class": sum(t == g for _, _, t, g in rows) / len(rows),
        "unknown_correct": (
            sum(t == g for w, _, t, g in rows if w not in STANDARD_WORDS)
            / max(sum(w not in STANDARD_WORDS for w, *_ in rows), 1)
        ),
        "speakers": len(speaker_acc),
        "speaker_accuracy_mean": statistics.mean(speaker_acc.values()),
        "speaker_accuracy_stdev": statistics.pstdev(speaker_acc.values()),
        "worst_speakers": sorted(speaker_acc.items(), key=lambda kv: (kv[1], kv[0]))[:5],
        "top_confusions": [f"{t} -> {g}: {n}" for (t, g), n in confusions.most_common(8)],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a kws run folder or an export (.tflite/.onnx/.keras)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"{args.data} is not there (the shared real-voice sample)", file=sys.stderr)
        return 2
    out = measure(args.run, args.data)
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"real voices: {out['clips']} clips of {out['speakers']} speakers ({out['data']})")
    print(f"keyword recall       {out['keyword_recall']:.3f}  ({out['keyword_clips']} keyword clips)")
    print(f"12-class accuracy    {out['accuracy_12_class']:.3f}")
    print(f"_unknown_ correct    {out['unknown_correct']:.3f}")
    print(f"per speaker          mean {out['speaker_accuracy_mean']:.3f}, "
          f"sd {out['speaker_accuracy_stdev']:.3f}")  # fmt: skip
    worst = ", ".join(f"{s} {a:.2f}" for s, a in out["worst_speakers"])
    print(f"worst speakers       {worst}")
    print("top confusions       " + "; ".join(out["top_confusions"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
