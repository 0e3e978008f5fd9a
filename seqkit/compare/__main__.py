"""``python -m seqkit.compare --worker`` < job.json: one run of ``seqkit compare``."""

import sys

from .worker import _worker_main

if sys.argv[1:] != ["--worker"]:
    sys.exit("usage: python -m seqkit.compare --worker < JOB.json (used by seqkit compare)")
sys.exit(_worker_main())
