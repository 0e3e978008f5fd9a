#!/usr/bin/env bash
# Set everything up (if needed), check the architecture's import contracts (import-linter,
# pyproject.toml), then run the whole test suite.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit $?
export TF_CPP_MIN_LOG_LEVEL=2
if ! .venv/bin/lint-imports --no-cache; then
    echo "lint-imports: an import breaks the layering in pyproject.toml (README \"For contributors\"); failing." >&2
    exit 1
fi
.venv/bin/python -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
    echo "pytest collected no tests: the suite is missing or deselected; failing." >&2
    exit 1
fi
exit "$rc"
