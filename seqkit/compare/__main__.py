"""``python -m seqkit.compare --worker`` < job.json: one run of ``seqkit compare``.

A process entry point, like the CLI: the one place in ``seqkit.compare`` that prints (the
failure, for the parent's log) and sets an exit code. The work is ``worker.worker``.
"""

import json
import logging
import sys
from pathlib import Path

from ..errors import SeqkitError
from .worker import worker


def main() -> int:
    job = json.loads(sys.stdin.read())
    logging.basicConfig(level=logging.WARNING, format="seqkit: %(levelname)s: %(message)s")
    try:
        result = worker(job)
    except KeyboardInterrupt:
        return 130
    except SeqkitError as exc:
        result = {k: job[k] for k in ("id", "layer", "units", "seed", "length")}
        result |= {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
        print(f"seqkit: error: {exc}", file=sys.stderr)
    Path(job["result"]).write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["status"] == "completed" else 1


if sys.argv[1:] != ["--worker"]:
    sys.exit("usage: python -m seqkit.compare --worker < JOB.json (used by seqkit compare)")
sys.exit(main())
