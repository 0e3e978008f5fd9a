#!/usr/bin/env bash
# Create .venv (Python >= 3.11) and install seqkit, its test tools, `seqkit serve`'s extra
# (Starlette, uvicorn; Selenium for its browser tests), the `voices` extra (Piper) with Debian's
# Flite and Festival voices (when root), the `embedding` extra (the speech embedding's model
# files; Linux x86_64) and the example plugin.
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
       && .venv/bin/python -m pip install -e ".[test,serve,voices,embedding]" ./plugins/seqkit-example; } >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "seqkit: installing into .venv failed; the full log is $log" >&2
    exit 1
fi
# synthetic_speech's other voice engines (seqkit.speech.sources.voices): Debian's Flite and
# Festival with two voices. Installed when root with apt-get; otherwise the line is printed
# (their tests skip, saying so) and setup goes on.
voices_apt="flite festival festvox-us-slt-hts festvox-kallpc16k"
if ! command -v flite >/dev/null || ! command -v festival >/dev/null \
   || [ ! -d /usr/share/festival/voices/us/cmu_us_slt_arctic_hts ] \
   || [ ! -d /usr/share/festival/voices/english/kal_diphone ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        if ! { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $voices_apt; } >>"$log" 2>&1; then
            echo "seqkit: warning: could not install $voices_apt (see $log); their tests will skip" >&2
        fi
    else
        echo "seqkit: for the Flite and Festival voices run: sudo apt-get install $voices_apt" >&2
    fi
fi
echo "seqkit installed in .venv ($(.venv/bin/python --version))" >&2
