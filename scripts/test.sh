#!/usr/bin/env bash
# Set everything up (if needed), then run the whole test suite.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit $?
export TF_CPP_MIN_LOG_LEVEL=2
.venv/bin/python -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
    echo "pytest collected no tests: the suite is missing or deselected; failing." >&2
    exit 1
fi
exit "$rc"
