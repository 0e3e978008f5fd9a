#!/usr/bin/env bash
# Set everything up, then train recipes/quickstart.yaml (synthetic audio: no download).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/seqkit train recipes/quickstart.yaml "$@"
