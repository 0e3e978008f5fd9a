#!/usr/bin/env bash
# Create .venv (Python >= 3.11) and install seqkit, its test tools and the example plugin.
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
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test]" ./plugins/seqkit-example
echo "seqkit installed in .venv ($(.venv/bin/python --version))" >&2
