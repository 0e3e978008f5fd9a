#!/usr/bin/env bash
# Create .venv (Python >= 3.11) and install seqkit, its test tools, `seqkit serve`'s extra
# (Starlette, uvicorn; Selenium for its browser tests) and the example plugin.
# Idempotent: a second run only checks what is installed. Override the interpreter with PYTHON=...
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "seqkit needs Python >= 3.11; '$PYTHON' is $("$PYTHON" --version 2>&1). Set PYTHON=python3.12 (or newer)." >&2
    exit 2
fi
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
log=.venv/install.log
# pip's and setuptools' chatter goes to a log file, shown only if the install fails.
if ! { .venv/bin/python -m pip install --upgrade pip \
       && .venv/bin/python -m pip install -e ".[test,serve]" ./plugins/seqkit-example; } >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "seqkit: installing into .venv failed; the full log is $log" >&2
    exit 1
fi
echo "seqkit installed in .venv ($(.venv/bin/python --version))" >&2
