"""Does the input pipeline starve training? And how fast is feature extraction? (issue 5, goal 5)

    python bench/bench_data.py                                  # recipes/kws_synthetic.yaml
    python bench/bench_data.py --recipe recipes/quickstart.yaml --epochs 3

Part 1, extraction throughput, in seconds of audio per second per core, side by side in one
run (the methods take turns, ``--rounds`` times, on the same ``--clips`` clips of the recipe's
data, in this process: one core). Per CPU second (``time.process_time``, plus the CPU time of
worker processes) as well as per wall second: on a shared machine the wall clock measures the
neighbours too, the CPU time measures the work:

* seqkit: the recipe's feature pipeline (``FeaturePipeline``: soundfile read, resample, fix
  length, the recipe's librosa steps, checks);
* peer: plain ``librosa.feature.mfcc(y=..., sr=...)`` on ``soundfile.read`` audio, at the
  recipe's rate, window, hop and mel bands (13 coefficients), as a user would write it;
* peer: plain ``librosa.feature.melspectrogram`` + ``librosa.power_to_db`` (the log-mel the
  kws recipes actually use).

Then all cores: seqkit's extraction in this process and in worker processes (``iter_features``,
pool start included), and the feature cache (build, then read back).

Part 2, the fraction of each epoch spent waiting for data. For each configuration the trainer's
own input for epoch ``e`` (``task.epoch_inputs``: the cached, memory-mapped features streamed by
``TrainBatches``, or in-memory arrays with ``data.cache: false``, or augmented batches) is timed
in ``model.fit`` for one epoch, and right after it the same model trains the same number of
steps on a dataset whose batches are ready in memory (a ``PyDataset`` returning one fixed
batch: the same Keras input machinery, no data work). The difference is the time training
waited for data: ``wait = 1 - t_ready / t_real`` (epoch 1 alone; later epochs from the
fastest of each, the two runs taking turns at going first). Validation is left out of both. Goal: < 5 %
after the first epoch. Also reported: the time to read the data (``load_data``) with a cold
and a warm feature cache, and the time of the kws task's TensorBoard media callback per epoch.

On a machine whose cores are busy, that difference is noisy. So the work is also measured in
CPU seconds of this process (all threads), which the neighbours do not change: each epoch's
CPU, real and ready (the extra is what the data path costs in CPU, in this process; worker
processes of augmented batches are not in it), and one epoch's batches made in this process
without training (``data work alone``). ``data / (data + training)`` is the share of the epoch's CPU that goes
to data: the fraction of the epoch spent on data when every core is busy and nothing overlaps
(with a free core, prefetching hides it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
DEFAULT_RECIPES = ("recipes/kws_synthetic.yaml", "recipes/quickstart.yaml")


def pick_recipe(path):
    from seqkit.recipe import load_recipe

    candidates = [path] if path else [str(REPO / p) for p in DEFAULT_RECIPES]
    for c in candidates:
        if Path(c).is_file():
            return c, load_recipe(c)
    sys.exit(f"no recipe found among {', '.join(candidates)}")


def spread(items, n):
    """``n`` items spread over the whole list (all labels, all splits)."""
    if len(items) <= n:
        return list(items)
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def audio_seconds(examples) -> float:
    import soundfile as sf

    total = 0.0
    for ex in examples:
        if getattr(ex, "noise", None) is not None or getattr(ex, "duration", None):
            total += float(ex.duration)
        else:
            info = sf.info(str(ex.path))
            total += info.frames / info.samplerate
    return total


def mel_settings(pipeline):
    """Sample rate, n_fft, hop, win, n_mels of the pipeline's spectrogram step."""
    from seqkit.features import FixLength, Load

    sr = pipeline.steps[0].sample_rate if isinstance(pipeline.steps[0], Load) else 16000
    length = next((s.length(sr) for s in pipeline.steps if isinstance(s, FixLength)), None)
    for step in pipeline.steps:
        mel = getattr(step, "mel", step)
        if hasattr(mel, "frame_params") and hasattr(mel, "n_mels"):
            fp = mel.frame_params(sr)
            return sr, length, fp, mel.n_mels
    return sr, length, {"n_fft": 512, "hop_length": 160, "win_length": 512}, 40


def plain_librosa(examples, sr, length, fp, n_mels, kind):
    import librosa
    import numpy as np
    import soundfile as sf

    out = 0
    for ex in examples:
        y, file_sr = sf.read(str(ex.path), dtype="float32", always_2d=True)
        y = y.mean(axis=1)
        if file_sr != sr:
            y = librosa.resample(y, orig_sr=file_sr, target_sr=sr)
        if length is not None:
            y = librosa.util.fix_length(y, size=length)
        kw = dict(n_fft=fp["n_fft"], hop_length=fp["hop_length"], win_length=fp["win_length"])
        if kind == "mfcc":
            m = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=13, n_mels=n_mels, **kw)
        else:
            m = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr, n_mels=n_mels, **kw))
        out += int(np.asarray(m).size)
    return out


def part1(recipe, clips, rounds):
    from seqkit.cache import FeatureCache
    from seqkit.extract import default_workers, iter_features
    from seqkit.tasks import make_pipeline, make_source

    source = make_source(recipe)
    examples = [ex for ex in source.examples() if getattr(ex, "noise", None) is None]
    sample = spread(examples, clips)
    seconds = audio_seconds(sample)
    pipeline = make_pipeline(recipe)
    sr, length, fp, n_mels = mel_settings(pipeline)
    runs = {
        "seqkit pipeline": lambda: [pipeline(ex) for ex in sample],
        "librosa.feature.mfcc": lambda: plain_librosa(sample, sr, length, fp, n_mels, "mfcc"),
        "librosa melspectrogram + power_to_db": lambda: plain_librosa(
            sample, sr, length, fp, n_mels, "logmel"
        ),
    }
    pipeline(sample[0])  # warm-up: imports, numba, filter banks
    plain_librosa(sample[:2], sr, length, fp, n_mels, "mfcc")
    plain_librosa(sample[:2], sr, length, fp, n_mels, "logmel")
    from seqkit.extract import limit_blas_threads

    default_blas = "librosa.feature.mfcc, numpy's default BLAS threads"
    walls = {k: [] for k in [*runs, default_blas]}
    cpus = {k: [] for k in walls}
    for _ in range(rounds):
        limiter = limit_blas_threads()  # as seqkit's extraction runs; the same for every method
        for name, fn in runs.items():
            wall, cpu = timed(fn)
            walls[name].append(wall)
            cpus[name].append(cpu)
        if limiter is not None:
            limiter.restore_original_limits()
        wall, cpu = timed(runs["librosa.feature.mfcc"])
        walls[default_blas].append(wall)
        cpus[default_blas].append(cpu)
    print(f"\n## Extraction in one process: {len(sample)} clips, {seconds:.1f} s of audio, "
          f"{rounds} rounds (median); numpy's BLAS on one thread unless said\n")  # fmt: skip
    print("| method | audio s per CPU s | seqkit / peer | audio s per wall s | seqkit / peer |")
    print("|---|---|---|---|---|")
    ours_cpu = seconds / statistics.median(cpus["seqkit pipeline"])
    ours = seconds / statistics.median(walls["seqkit pipeline"])
    for name in walls:
        c = seconds / statistics.median(cpus[name])
        w = seconds / statistics.median(walls[name])
        print(f"| {name} | {c:,.0f} | {ours_cpu / c:.2f} | {w:,.0f} | {ours / w:.2f} |")

    workers = default_workers()
    many = spread(examples, max(len(sample), min(len(examples), 8 * len(sample))))
    many_seconds = audio_seconds(many)
    rows_out = []
    limiter = limit_blas_threads()
    rows_out.append(("in this process (one core)",
                     *timed(lambda: list(iter_features(many, pipeline, workers=1)))))  # fmt: skip
    if limiter is not None:
        limiter.restore_original_limits()
    rows_out.append((f"{workers} worker processes (pool start included)",
                     *timed(lambda: list(iter_features(many, pipeline, workers=workers)))))  # fmt: skip
    root = Path(tempfile.mkdtemp(prefix="seqkit-bench-cache-"))
    try:
        cache = FeatureCache(pipeline, root=root, identity="bench", workers=workers)
        rows_out.append(("feature cache, first build (hash, extract, write)",
                         *timed(lambda: cache.extract(many))))  # fmt: skip

        def hit():
            _, rows, _ = FeatureCache(pipeline, root=root, identity="bench").extract(many)
            rows.array().sum()  # read every byte back

        rows_out.append(("feature cache, hit (hash check, verify, read all)", *timed(hit)))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"\n## All {workers} cores: {len(many)} clips, {many_seconds:.1f} s of audio\n")
    print("| what | wall s | CPU s (all processes) | audio s per wall s | audio s per CPU s |")
    print("|---|---|---|---|---|")
    for name, wall, cpu in rows_out:
        print(f"| {name} | {wall:.2f} | {cpu:.2f} | {many_seconds / wall:,.0f} | "
              f"{many_seconds / cpu:,.0f} |")  # fmt: skip
    return ours


def _forkserver_cpu() -> float:
    """CPU seconds of multiprocessing's fork server and of the workers it has reaped (worker
    pools are its children, not ours)."""
    from multiprocessing import forkserver

    pid = getattr(getattr(forkserver, "_forkserver", None), "_forkserver_pid", None)
    if not pid:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    return (utime + stime + cutime + cstime) / os.sysconf("SC_CLK_TCK")


def timed(fn) -> tuple[float, float]:
    """``(wall seconds, CPU seconds)`` of ``fn()``: this process's CPU time (all threads) plus
    that of worker processes ended meanwhile (ours and the fork server's children)."""
    import resource

    def cpu():
        own = time.process_time()
        ch = resource.getrusage(resource.RUSAGE_CHILDREN)
        return own + ch.ru_utime + ch.ru_stime + _forkserver_cpu()

    c, t = cpu(), time.perf_counter()
    fn()
    return time.perf_counter() - t, cpu() - c


def data_work(task, data, bs, seed, epochs=2) -> float:
    """CPU seconds this process takes to make one epoch's batches, without training (median of
    ``epochs`` epochs after the first): the cached rows gathered (and augmented), or the
    arrays reordered and sliced. Numpy's BLAS on one thread, as in seqkit's workers."""
    import numpy as np

    from seqkit.extract import limit_blas_threads

    limiter = limit_blas_threads()
    times = []
    try:
        for e in range(1, epochs + 1):
            t = time.process_time()  # one thread: its CPU time is the work, whatever the load
            inputs = task.epoch_inputs(data, e, bs, seed)
            x = inputs["x"]
            if isinstance(x, np.ndarray):  # arrays: the batches Keras slices from them
                for i in range(0, len(x), bs):
                    np.array(x[i : i + bs]), np.array(inputs["y"][i : i + bs])
            else:
                for i in range(len(x)):
                    x[i]
            times.append(time.process_time() - t)
    finally:
        if limiter is not None:
            limiter.restore_original_limits()
    return statistics.median(times)


def part2(recipe, epochs, cache_dir):
    import keras
    import numpy as np

    from seqkit.recipe import validate_dict
    from seqkit.build import build_model, make_task

    os.environ["SEQKIT_CACHE"] = str(cache_dir)
    keras.utils.set_random_seed(recipe.seed)
    task = make_task(recipe)
    t = time.perf_counter()
    data = task.load_data(recipe)
    cold = time.perf_counter() - t
    t = time.perf_counter()
    data = task.load_data(recipe)
    warm = time.perf_counter() - t
    n_train = len(data.splits["train"])
    print(f"\n## Reading the data ({sum(data.info['examples'].values())} clips, "
          f"{n_train} for training)\n")  # fmt: skip
    print(f"- load_data with a cold feature cache (extraction on all cores): {cold:.1f} s")
    print(f"- load_data with a warm cache (hash check, checksum, memory map): {warm:.2f} s")

    model = build_model(recipe, task, data.input_shape, data.info, data.splits["train"].x)
    bs = recipe.train.batch_size
    x0 = np.ascontiguousarray(data.splits["train"].x[:bs], dtype=np.float32)
    y0 = np.asarray(data.splits["train"].y[:bs])

    last = n_train - (n_train - 1) // bs * bs  # size of an epoch's last batch

    class Ready(keras.utils.PyDataset):
        """``n`` batches ready in memory, the last one as short as an epoch's last batch."""

        def __init__(self, n):
            super().__init__()
            self.n = n

        def __len__(self):
            return self.n

        def __getitem__(self, i):
            return (x0[:last], y0[:last]) if i == self.n - 1 else (x0, y0)

    steps = -(-n_train // bs)
    model.fit(Ready(3), epochs=1, verbose=0)  # trace the train step (full and last batch)

    cpu_of = {"ready": [], "real": []}

    def fit(make_inputs, e):
        t, c = time.perf_counter(), time.process_time()
        inputs = make_inputs()  # the trainer's per-epoch input (arrays: reordered here)
        model.fit(**inputs, initial_epoch=e, epochs=e + 1, shuffle=False, verbose=0)
        cpu_of["ready" if isinstance(inputs["x"], Ready) else "real"].append(
            time.process_time() - c
        )
        return time.perf_counter() - t

    configs = [  # (name, data.cache, data.augment)
        ("data.cache: true (memory-mapped, streamed)", True, []),
        ("data.cache: false (arrays in memory)", False, []),
        ("cache + spec_augment", True, [{"type": "spec_augment"}]),
        (
            "cache + time_shift, gain, background_noise, speed",
            True,
            [
                {"type": "time_shift", "max_ms": 100},
                {"type": "gain", "db": [-6, 6]},
                {"type": "background_noise", "snr_db": [5, 20]},
                {"type": "speed", "factor": [0.9, 1.1]},
            ],
        ),
    ]
    print(f"\n## Waiting for data: {steps} steps of {bs} per epoch (later epochs: mean time; "
          "wait from the fastest of each)\n")  # fmt: skip
    print("| input | epoch 1: s (wait) | later epochs: s (wait) | ready batches: s | "
          "later epochs, CPU s: real / ready (extra) | data work alone: CPU s | "
          "data / (data + training), CPU |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    results, bounds = {}, {}
    for name, cache, augment in configs:
        doc = recipe.to_dict()
        doc["data"]["cache"], doc["data"]["augment"] = cache, augment
        r = validate_dict(doc)
        task_r = make_task(r)
        d = task_r.load_data(r)
        work = data_work(task_r, d, bs, r.seed, epochs=2)
        real, ready = [], []
        for e in range(epochs):  # alternate which goes first, so that drift cancels
            real_inputs = lambda: task_r.epoch_inputs(d, e, bs, r.seed)  # noqa: E731, B023
            if e % 2 == 0:
                real.append(fit(real_inputs, e))
                ready.append(fit(lambda: {"x": Ready(steps)}, e))
            else:
                ready.append(fit(lambda: {"x": Ready(steps)}, e))
                real.append(fit(real_inputs, e))
        first = 1 - ready[0] / real[0]
        # later epochs: the fastest of each (the least disturbed by other processes)
        later = 1 - min(ready[1:]) / min(real[1:]) if epochs > 1 else float("nan")
        cpu_ready = statistics.median(cpu_of["ready"][-epochs + 1 :] or cpu_of["ready"])
        cpu_real = statistics.median(cpu_of["real"][-epochs + 1 :] or cpu_of["real"])
        results[name], bounds[name] = later, work / (work + cpu_ready)
        print(f"| {name} | {real[0]:.2f} ({first:+.1%}) | "
              f"{statistics.mean(real[1:] or real):.2f} ({later:+.1%}) | "
              f"{statistics.mean(ready):.2f} | {cpu_real:.2f} / {cpu_ready:.2f} "
              f"({1 - cpu_ready / cpu_real:+.1%}) | {work:.2f} | {bounds[name]:.1%} |")  # fmt: skip
        d.train_input = None  # release its worker pool and maps

    run_dir = Path(tempfile.mkdtemp(prefix="seqkit-bench-run-"))
    for callback in task.callbacks(run_dir, data):
        callback.set_model(model)
        t = time.perf_counter()
        callback.on_epoch_end(0)
        media = time.perf_counter() - t
        t = time.perf_counter()
        callback.on_epoch_end(1)
        media2 = time.perf_counter() - t
        print(f"\nTensorBoard media callback (confusion matrix over "
              f"{len(data.splits['validation'])} validation clips, {len(task._media['clips'])} "
              f"clips of audio): {media:.2f} s the first epoch, {media2:.2f} s later.")  # fmt: skip
    shutil.rmtree(run_dir, ignore_errors=True)
    name = configs[0][0]
    goal, bound = results[name], bounds[name]
    print(f"\nGoal: waiting < 5 % of each epoch after the first (cached features): wall clock "
          f"{goal:+.1%} ({'met' if goal < 0.05 else 'NOT met'}); data share of the CPU "
          f"{bound:.1%} ({'met' if bound < 0.05 else 'NOT met'})")  # fmt: skip


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipe", help="KWS recipe (default: kws_synthetic, else quickstart)")
    ap.add_argument("--clips", type=int, default=300, help="clips for the one-core comparison")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--skip", choices=("extraction", "epochs"), help="leave one part out")
    args = ap.parse_args()
    path, recipe = pick_recipe(args.recipe)
    os.chdir(REPO)  # recipe paths are relative to the repository
    import platform

    print(f"# bench_data: {path}")
    print(f"{os.cpu_count()} CPU cores, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f} at start")  # fmt: skip
    if args.skip != "extraction":
        part1(recipe, args.clips, args.rounds)
    if args.skip != "epochs":
        cache_dir = Path(tempfile.mkdtemp(prefix="seqkit-bench-cache-"))
        try:
            part2(recipe, args.epochs, cache_dir)
        finally:
            shutil.rmtree(cache_dir, ignore_errors=True)
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
