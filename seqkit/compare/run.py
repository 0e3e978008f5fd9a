"""Running a plan, one fresh worker process per run (``run_plan``); see ``seqkit.compare``."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from ..errors import RunError
from .common import Plan
from .plan import _check_out, variant_doc
from .report import write_report

log = logging.getLogger("seqkit")

# -- running -------------------------------------------------------------------------------------


def run_id(layer: str, seed: int, length: int | None) -> str:
    return f"{layer}-s{seed}" + (f"-T{length}" if length else "")


def jobs(plan: Plan) -> list[dict]:
    out = []
    name = plan.recipe_doc.get("name", "run")
    for length in plan.lengths:
        for cand in plan.candidates:
            for seed in plan.seeds:
                rid = run_id(cand.name, seed, length)
                doc = variant_doc(
                    plan.recipe_doc,
                    plan.recurrent,
                    cand.name,
                    cand.units,
                    seed=seed,
                    length=length,
                    name=f"{name}-{rid}"[:64],
                )
                out.append(
                    {
                        "id": rid,
                        "layer": cand.name,
                        "units": cand.units,
                        "seed": seed,
                        "length": length,
                        "recipe": doc,
                        "run_dir": str(plan.out / "runs" / rid),
                        "result": str(plan.out / "runs" / f"{rid}.json"),
                        "log": str(plan.out / "runs" / f"{rid}.log"),
                    }
                )
    return out


def run_plan(plan: Plan, gradients: bool = False, progress=None) -> Path:
    """Train every run of ``plan`` (one worker process each) and write the report; return OUT.

    A run that fails (a non-finite loss, say) is recorded as failed and the others go on; the
    report is rewritten after every run, so an interrupted comparison keeps what it measured.
    """
    say = progress or (lambda msg: None)
    _check_out(plan.out)
    (plan.out / "runs").mkdir(parents=True, exist_ok=True)
    results = []
    todo = jobs(plan)
    started = time.time()
    for n, job in enumerate(todo, 1):
        job["gradients"] = bool(gradients)
        t0 = time.time()
        result = _run_worker(job)
        results.append(result)
        if result["status"] == "completed":
            key = plan.monitor.removeprefix("val_")
            test = result.get("test") or result.get("validation") or {}
            shown = f"test {key} {test.get(key, float('nan')):.4g}"
            if "baseline_ratio" in test:
                shown += f" ({test['baseline_ratio']:.3f} x baseline)"
        else:
            shown = f"FAILED: {result.get('error', '?')}"
        say(f"[{n}/{len(todo)}] {job['id']}: {shown} ({time.time() - t0:.0f} s)")
        write_report(plan, results, elapsed=time.time() - started)
    if results and all(r["status"] != "completed" for r in results):
        raise RunError(
            f"All {len(results)} runs failed; see the logs in '{plan.out / 'runs'}' "
            f"(first: {results[0].get('error', '?')})."
        )
    return plan.out


def _run_worker(job: dict) -> dict:
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with open(job["log"], "w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "seqkit.compare", "--worker"],
            stdin=subprocess.PIPE,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            proc.communicate(json.dumps(job).encode())
        except BaseException:  # Ctrl-C: the worker got it too; give it a moment, then stop it
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            raise
    if proc.returncode == 130:
        raise KeyboardInterrupt
    path = Path(job["result"])
    if path.is_file():
        return json.loads(path.read_text())
    tail = Path(job["log"]).read_text(errors="replace").strip().splitlines()[-3:]
    result = {k: job[k] for k in ("id", "layer", "units", "seed", "length")}
    result |= {"status": "failed", "error": f"worker exit {proc.returncode}: " + " | ".join(tail)}
    path.write_text(json.dumps(result, indent=2) + "\n")
    return result
