#!/usr/bin/env bash
# Set everything up, then train recipes/kws_synthetic.yaml: 12-class keyword spotting on speech
# that eSpeak NG (shipped in a wheel) synthesises on first use -- no download. Arguments go to
# `seqkit train` (e.g. --set train.epochs=5).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
exec .venv/bin/seqkit train recipes/kws_synthetic.yaml "$@"
