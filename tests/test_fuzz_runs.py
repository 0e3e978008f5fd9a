"""The corruption fuzz test: every file seqkit reads from a run folder or an export, damaged in
turn, and read by the commands that read it.

Damaged: a tiny kws run (trained once per module), the same run marked ``interrupted`` (for
``train --resume``), its keras, float TFLite and streaming TFLite exports with their ``.json``
(ONNX only when tf2onnx is installed), and a tiny polyphonic run (``generate``). Each file is
truncated (1 %, 50 %, 99 %), has a byte flipped (low bit at 10 % and 50 %, high bit at 90 %),
is emptied, deleted, and replaced by the file of the same name from another run
(``tests/data/runs_0_1_0``). Every command that reads the file gets some of these; each
(file, command) pair is run at least once (``cases``). Copies of the run and the exports
without their hash records (as written before seqkit recorded them) get four mutations each,
for the readers' own checks.

Every case must end with exit 1 or 2 and one ``error:`` line naming the damaged file, no
``Traceback``, no signal death, and nothing written outside the run folder (or the export
folder) -- or with exit 0 where the damage is provably irrelevant:

* ``logs/`` (TensorBoard's event files): no command reads them;
* ``checkpoint/`` of a completed run: only ``train --resume`` reads it;
* run.json with a flipped byte that leaves it valid, with the same status and the same file
  records: only informational text changed (a time, a version, the command line); the test
  parses the damaged file and checks this;
* a run or export without records, whose damaged file still reads (a flipped weight, label
  letter or count): nothing can tell it from the original; those cases check only that the
  reader survives (no crash, no traceback, nothing written outside).

The cases run in two driver processes (``drive``: many commands in one interpreter through
``seqkit.cli.main``, catching SystemExit; a crash kills the driver, which the test reports with
the case it was running), plus real ``python -m seqkit`` subprocesses for the cases that reach
native readers (TFLite, Keras' zip and HDF5). The outcome counts are printed (``pytest -s`` or
``-rA``).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_recipe, write_recipe, write_wav

TESTS = Path(__file__).resolve().parent
OLD = TESTS / "data" / "runs_0_1_0"  # "another run": the donor of same-named files

MUTATIONS = (
    "trunc:0.01",
    "trunc:0.5",
    "trunc:0.99",
    "flip1:0.1",
    "flip1:0.5",
    "flip80:0.9",
    "empty",
    "delete",
    "replace",
)

# The commands, as argv with placeholders: {T} the damaged tree (a copy), {A} the export given
# to predict/stream, and the inputs.
COMMANDS = {
    "evaluate": ["evaluate", "{T}"],
    "predict": ["predict", "{T}", "{clip}"],
    "stream": ["stream", "{T}", "{long}"],
    "export": ["export", "{T}", "--format", "keras", "--no-check"],
    "export-tflite": ["export", "{T}", "--format", "tflite", "--no-check"],
    "resume": ["train", "{recipe}", "--resume", "{T}"],
    "generate": [
        "generate",
        "{T}",
        "--out",
        "{out}",
        "--steps",
        "8",
        "--num",
        "1",
        "--synth",
        "additive",
    ],
    "predict-export": ["predict", "{A}", "{clip}"],
    "stream-export": ["stream", "{A}", "{long}"],
}


def mutate(path: Path, mutation: str, donor: Path | None) -> bool:
    """Damage ``path`` as ``mutation`` says; False when it does not apply (no donor, empty)."""
    kind, _, at = mutation.partition(":")
    if kind == "delete":
        path.unlink()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "replace":
        if donor is None or not donor.is_file():
            return False
        shutil.copyfile(donor, path)
    else:
        data = bytearray(path.read_bytes())
        if len(data) < 2:
            return False
        pos = min(int(len(data) * float(at)), len(data) - 1)
        if kind == "trunc":
            del data[max(pos, 1) :]
        else:
            data[pos] ^= 0x01 if kind == "flip1" else 0x80
        path.write_bytes(bytes(data))
    return True


def listing(root: Path, skip=()) -> dict:
    """``{relative path: (size, mtime)}`` of the files under ``root``, ``skip`` left out."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        here = Path(dirpath)
        dirs[:] = [d for d in dirs if here / d not in skip]
        for f in files:
            p = here / f
            if p not in skip:
                st = p.lstat()
                out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


def run_case(world: Path, case: dict, argv_runner) -> dict:
    """Copy the case's tree, damage one file, run the command; the outcome as a dict."""
    home = world / "cases" / str(case["id"])
    tree = home / "tree"
    shutil.copytree(world / "pristine" / case["tree"], tree)
    target = tree / case["file"]
    donor = Path(case["donor"]) if case.get("donor") else None
    if not mutate(target, case["mutation"], donor):
        shutil.rmtree(home)
        return {**case, "skipped": True}
    inputs = world / "inputs"
    fill = {
        "T": tree,
        "A": tree / case.get("artifact", ""),
        "out": home / "out",
        "clip": inputs / "clip.wav",
        "long": inputs / "long.wav",
        "recipe": inputs / "tiny.yaml",
    }
    argv = ["-q", *(a.format(**{k: str(v) for k, v in fill.items()}) for a in case["argv"])]
    outside = [world / "data", world / "pristine", world / "cwd", inputs, home]
    before = {str(p): listing(p, skip={tree, home / "out"}) for p in outside}
    code, stderr, crash = argv_runner(argv, world / "cwd")
    wrote = {str(p): listing(p, skip={tree, home / "out"}) for p in outside}
    out_files = sorted(str(p.relative_to(home)) for p in (home / "out").rglob("*"))
    shutil.rmtree(home)
    return {
        **case,
        "code": code,
        "stderr": stderr,
        "crash": crash,
        "argv": argv,
        "outside_changed": wrote != before,
        "out_files": out_files,
    }


def in_process(argv, cwd):
    """``seqkit.cli.main(argv)`` in this interpreter: (exit code, stderr, uncaught error)."""
    import keras

    from seqkit.cli import main

    err, code, crash = io.StringIO(), None, None
    old = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException as exc:  # noqa: BLE001 -- whatever escapes the CLI is the finding
        crash = f"{type(exc).__name__}: {exc}"
    finally:
        os.chdir(old)
        keras.backend.clear_session()
    return code, err.getvalue(), crash


def in_subprocess(argv, cwd):
    """``python -m seqkit argv``: (exit code, or the negative signal number; stderr; None)."""
    done = subprocess.run(
        [sys.executable, "-m", "seqkit", *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done.returncode, done.stderr, None


def drive(world: str, cases_file: str, results_file: str) -> None:
    """The driver process: run every case of ``cases_file``, one JSON line each in
    ``results_file`` (a "start" line first, so that a crash names its case)."""
    world_path = Path(world)
    with open(results_file, "a") as out:
        for case in json.loads(Path(cases_file).read_text()):
            out.write(json.dumps({"start": case["id"]}) + "\n")
            out.flush()
            t0 = time.time()
            result = run_case(world_path, case, in_process)
            result["seconds"] = round(time.time() - t0, 2)
            out.write(json.dumps(result) + "\n")
            out.flush()


# -- the world: runs and exports, trained and written once --------------------------------------


def _music_recipe(tmp: Path) -> dict:
    from seqkit.music.rolls import Note, notes_to_roll
    from seqkit.music.sources import Piece, write_npz

    rng = np.random.default_rng(0)

    def roll(length):
        notes = [Note(int(rng.integers(50, 70)), t, t + 1) for t in range(length)]
        return notes_to_roll(notes, length=length)[0]

    pieces = [
        Piece(f"p{i}", s, roll(int(rng.integers(12, 24))))
        for i, s in enumerate(["train"] * 6 + ["validation"] * 2 + ["test"] * 2)
    ]
    write_npz(tmp / "rolls.npz", pieces, {"steps_per_quarter": 1})
    return {
        "name": "poly",
        "seed": 1,
        "data": {"source": {"type": "pianoroll_npz", "path": str(tmp / "rolls.npz")}},
        "model": {"layers": [{"type": "gru", "units": 4}]},
        "task": {"type": "polyphonic", "sample_every": 0},
        "train": {"epochs": 1, "batch_size": 4},
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from seqkit.export import export_run
    from seqkit.recipe import validate_dict
    from seqkit.training import train

    world = tmp_path_factory.mktemp("fuzz")
    pristine = world / "pristine"
    doc = tiny_recipe(world / "data", epochs=2)
    (world / "inputs").mkdir()
    write_recipe(world / "inputs" / "tiny.yaml", doc)
    train(validate_dict(doc), run_dir=pristine / "run", verbose=0)
    exports = pristine / "exports"
    formats = [
        ("keras", False, "model.keras"),
        ("tflite", False, "model.tflite"),
        ("tflite", True, "model_stream.tflite"),
    ]
    if __import__("importlib").util.find_spec("tf2onnx") is not None:
        formats.append(("onnx", False, "model.onnx"))
    for fmt, streaming, name in formats:
        export_run(pristine / "run", fmt, streaming=streaming, out=exports / name, check=False)
    shutil.copytree(pristine / "run", pristine / "irun")  # resumable: marked interrupted
    info = json.loads((pristine / "irun" / "run.json").read_text())
    info["status"] = "interrupted"
    (pristine / "irun" / "run.json").write_text(json.dumps(info, indent=2))
    # As written before seqkit recorded hashes: damage can only be found by reading.
    shutil.copytree(pristine / "run", pristine / "orun")
    info = json.loads((pristine / "orun" / "run.json").read_text())
    info.pop("files")
    (pristine / "orun" / "run.json").write_text(json.dumps(info, indent=2))
    shutil.copytree(exports, pristine / "oexports")
    for sidecar in (pristine / "oexports").glob("*.json"):
        meta = json.loads(sidecar.read_text())
        for key in ("sha256", "size", "meta_sha256"):
            meta.pop(key)
        sidecar.write_text(json.dumps(meta, indent=2))
    (world / "music").mkdir()
    train(validate_dict(_music_recipe(world / "music")), run_dir=pristine / "music", verbose=0)
    write_wav(world / "inputs" / "clip.wav", seconds=0.5)
    write_wav(world / "inputs" / "long.wav", seconds=1.5, freq=300.0)
    (world / "cwd").mkdir()
    (world / "cases").mkdir()
    return world, [name for _, _, name in formats]


def tree_files(root: Path, deep: bool) -> list[str]:
    """The files of a run folder to damage: its own files and, when ``deep``, checkpoint/'s
    state.json and newest checkpoint, and one TensorBoard event file."""
    files = sorted(p.name for p in root.iterdir() if p.is_file())
    if deep:
        files += [
            "checkpoint/state.json",
            str(max(root.glob("checkpoint/ckpt-*")).relative_to(root)),
            str(next(root.glob("logs/train/events.out.tfevents*")).relative_to(root)),
        ]
    return files


def matrix(world: Path, export_names) -> list[dict]:
    """The matrix: each file, each mutation, with one reading command per (file, mutation) in
    turn -- so that every command meets every file -- and every command for the half truncation;
    checkpoint/ files with every mutation for ``resume`` (its only reader), logs/ with three.
    ``resume`` reads the copy marked interrupted; ``export`` writes keras, every third tflite."""
    pristine, out = world / "pristine", []
    run_cmds = ["evaluate", "predict", "stream", "export", "resume"]
    for i, file in enumerate(tree_files(pristine / "run", deep=True)):
        for j, mutation in enumerate(MUTATIONS):
            if mutation == "trunc:0.5":
                chosen = run_cmds
            elif file.startswith("checkpoint/"):  # only --resume reads it
                chosen = ["resume"]
            elif file.startswith("logs/"):  # nothing reads it
                chosen = ["resume"] if mutation in ("flip1:0.5", "delete") else []
            else:
                chosen = [run_cmds[(i + j) % len(run_cmds)]]
            for command in chosen:
                if command == "export" and (i + j) % 3 == 0:
                    command = "export-tflite"
                tree = "irun" if command == "resume" else "run"
                out.append(case(tree, file, mutation, command, donor=OLD / "kws_run" / file))
    for file in tree_files(pristine / "music", deep=False):
        for mutation in MUTATIONS:
            out.append(case("music", file, mutation, "generate", donor=OLD / "music_run" / file))
    for name in export_names:
        streaming = "stream" in name
        command = "stream-export" if streaming else "predict-export"
        old = OLD / "exports" / ("kws_stream.tflite" if streaming else "kws.tflite")
        if name.endswith(".keras"):
            old = OLD / "kws_run" / "model.keras"
        for file, donor in ((name, old), (name + ".json", Path(f"{old}.json"))):
            for mutation in MUTATIONS:
                out.append(case("exports", file, mutation, command, artifact=name, donor=donor))
    # Without records (older runs and exports): every reader must still survive the damage.
    unrecorded = ("trunc:0.5", "flip1:0.5", "flip80:0.9", "empty")
    for i, file in enumerate(tree_files(pristine / "orun", deep=False)):
        for j, mutation in enumerate(unrecorded):
            command = ("predict", "evaluate")[(i + j) % 2]
            out.append(case("orun", file, mutation, command))
    for name in export_names:
        command = "stream-export" if "stream" in name else "predict-export"
        for mutation in unrecorded:
            out.append(case("oexports", name, mutation, command, artifact=name))
    for k, one in enumerate(out):
        one["id"] = k
    return out


def case(tree: str, file: str, mutation: str, command: str, donor=None, **more) -> dict:
    """One case: damage ``file`` of a copy of ``tree`` by ``mutation``, then run ``command``."""
    return {"tree": tree, "file": file, "mutation": mutation, "command": command,
            "argv": COMMANDS[command], "donor": str(donor) if donor else None, **more}  # fmt: skip


# The cases that reach native readers, run again as real processes: a crash there is a signal.
NATIVE = [
    ("exports", "model.tflite", "model.tflite", "trunc:0.5", "predict-export"),  # was SIGSEGV
    ("oexports", "model.tflite", "model.tflite", "trunc:0.5", "predict-export"),
    ("oexports", "model_stream.tflite", "model_stream.tflite", "flip80:0.9", "stream-export"),
    ("oexports", "model.keras", "model.keras", "flip80:0.9", "predict-export"),
    ("orun", "model.keras", None, "trunc:0.5", "predict"),
    ("irun", "checkpoint/state.json", None, "trunc:0.5", "resume"),
]


def irrelevant(case: dict, world: Path) -> str | None:
    """Why exit 0 is right for this damage (None: it is not)."""
    file = case["file"]
    if case["tree"] in ("orun", "oexports"):
        return "no records (written before them): damage that leaves a file readable is unseen"
    if file.startswith("logs/"):
        return "logs/: TensorBoard's files, read by no command"
    if file.startswith("checkpoint/") and case["command"] != "resume":
        return "checkpoint/ of a completed run: read only by --resume"
    if file == "run.json" and case["mutation"].startswith("flip"):
        damaged, pristine = world / "damaged-run.json", world / "pristine" / case["tree"] / file
        try:
            got, want = json.loads(damaged.read_bytes()), json.loads(pristine.read_bytes())
        except ValueError:  # not JSON, not UTF-8: damage that matters
            return None
        if isinstance(got, dict):
            if all(got.get(k) == want.get(k) for k in ("status", "files", "recipe_file")):
                return "run.json: an informational value changed (status and records intact)"
    return None


def check(result: dict, world: Path) -> str | None:
    """What is wrong with one outcome (None: nothing)."""
    if result.get("crash"):
        return f"uncaught {result['crash']}"
    code, err = result["code"], result["stderr"]
    if code is None or code < 0:
        return f"died by signal {-code if code else '?'}"
    if "Traceback" in err:
        return "a traceback on stderr"
    if result["outside_changed"]:
        return "wrote outside the run folder"
    if code == 0:
        if result["out_files"] and result["command"] != "generate":
            return "wrote --out files"
        return None if result.get("why_ok") else "exit 0 on damage that matters"
    if result["out_files"]:
        return f"failed (exit {code}) but left files in --out: {result['out_files']}"
    if code not in (1, 2):
        return f"exit {code}"
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    if len(errors) != 1:
        return f"{len(errors)} error lines"
    if Path(result["file"]).name not in err:
        return "the error does not name the damaged file"
    return None


def _damaged_run_json(world: Path, case: dict) -> None:
    """Keep a copy of a flipped run.json, for ``irrelevant`` to compare with the pristine one."""
    path = world / "damaged-run.json"
    shutil.copyfile(world / "pristine" / case["tree"] / "run.json", path)
    mutate(path, case["mutation"], None)


def start_driver(world: Path, cases: list, folder: Path, k: int) -> subprocess.Popen:
    """A driver process for ``cases`` (results in ``folder/results<k>.jsonl``)."""
    (folder / f"cases{k}.json").write_text(json.dumps(cases))
    code = "import sys; sys.path.insert(0, sys.argv[1]); import test_fuzz_runs as t; "
    code += "t.drive(*sys.argv[2:])"
    argv = [
        str(TESTS),
        str(world),
        str(folder / f"cases{k}.json"),
        str(folder / f"results{k}.jsonl"),
    ]
    return subprocess.Popen([sys.executable, "-c", code, *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def test_every_damaged_file_is_reported_never_a_crash(world, tmp_path):
    world, export_names = world
    t0 = time.time()
    cases = matrix(world, export_names)
    halves = [cases[0::2], cases[1::2]]  # two drivers: two cores
    procs = [start_driver(world, half, tmp_path, k) for k, half in enumerate(halves)]
    results, problems = [], []
    for k, proc in enumerate(procs):
        _, stderr = proc.communicate(timeout=900)
        lines = [json.loads(x) for x in (tmp_path / f"results{k}.jsonl").read_text().splitlines()]
        results += [x for x in lines if "start" not in x]
        if proc.returncode != 0:  # a crash: the last "start" line names its case
            last = lines[-1].get("start") if lines else None
            what = next((c for c in halves[k] if c["id"] == last), None)
            problems.append(f"driver {k} died ({proc.returncode}) in {what}\n{stderr[-2000:]}")
    for k, (tree, file, artifact, mutation, command) in enumerate(NATIVE):
        native = case(tree, file, mutation, command, artifact=artifact or "", native=True)
        results.append(run_case(world, {**native, "id": f"native-{k}"}, in_subprocess))
    (tmp_path / "results.json").write_text(json.dumps(results))  # kept for a failure's reader
    outcomes = Counter()
    for result in results:
        if result.get("skipped"):
            outcomes["skipped (no donor file)"] += 1
            continue
        if result["file"] == "run.json" and result["mutation"].startswith("flip"):
            _damaged_run_json(world, result)
        result["why_ok"] = irrelevant(result, world)
        problem = check(result, world)
        key = f"exit {result['code']}" if result.get("code") is not None else "crash"
        if result["code"] == 0:
            key += f" ({result['why_ok'] or 'NOT EXPLAINED'})"
        outcomes[key] += 1
        if problem:
            problems.append(
                f"{result['tree']}/{result['file']} {result['mutation']} {result['command']}: "
                f"{problem}\n    stderr: {result['stderr'].strip()[-400:]}"
            )
    ran = sum(1 for r in results if not r.get("skipped"))
    print(
        f"\nfuzz: {ran} cases ({sum(1 for r in results if r.get('native'))} as real "
        f"processes) in {time.time() - t0:.0f} s"
    )
    for key, n in sorted(outcomes.items()):
        print(f"  {n:4d}  {key}")
    commands = Counter(r["command"] for r in results if not r.get("skipped"))
    print("  by command: " + ", ".join(f"{c} {n}" for c, n in sorted(commands.items())))
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems[:40])
    assert {"evaluate", "predict", "stream", "export", "resume", "generate"} <= set(commands)
