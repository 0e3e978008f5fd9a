#!/usr/bin/env bash
# The backend matrix: the GRU tests and one short recipe end to end on Keras' JAX and torch
# backends (CPU). TensorFlow, the default backend, is covered by the main suite (scripts/test.sh).
#
#   bash scripts/test_backends.sh              # jax and torch
#   bash scripts/test_backends.sh torch        # one of them
#
# Installs what the backends need into .venv (set up by scripts/setup.sh if needed), or into
# the virtual environment named by SEQKIT_BACKENDS_VENV (created if missing):
#   jax    JAX_SPEC (default "jax"): jax + jaxlib, about 90 MB of wheels, CPU.
#   torch  TORCH_SPEC (default "torch==2.13.0") with PIP_TORCH_ARGS. Where pip finds the CPU
#          build of that release (on this project's machines it lies in pip's find-links), that
#          is a 192 MB wheel. From PyPI alone, any torch for Linux x86_64 is a CUDA build that
#          pulls about 3 GB of nvidia-* wheels; on a machine that reaches PyTorch's own index,
#          PIP_TORCH_ARGS="--index-url https://download.pytorch.org/whl/cpu" gets the CPU build.
# Extra arguments after the backend names go to pytest. pytest's exit code 5 (no tests ran)
# counts as a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=2

backends=()
while [ $# -gt 0 ]; do
    case "$1" in
        jax | torch) backends+=("$1"); shift ;;
        *) break ;;
    esac
done
[ ${#backends[@]} -gt 0 ] || backends=(jax torch)

if [ -n "${SEQKIT_BACKENDS_VENV:-}" ]; then
    venv="$SEQKIT_BACKENDS_VENV"
    if [ ! -x "$venv/bin/python" ]; then
        "${PYTHON:-python3}" -m venv "$venv" || exit 1
    fi
    venv=$(cd "$venv" && pwd)
    # (from /: in the repository, `import seqkit` finds the source folder, installed or not)
    if ! (cd / && "$venv/bin/python" -c 'import seqkit, seqkit_example, pytest') 2>/dev/null; then
        { "$venv/bin/python" -m pip install --upgrade pip \
            && "$venv/bin/python" -m pip install -e ".[test]" ./plugins/seqkit-example; } \
            >"$venv/install-seqkit.log" 2>&1 \
            || { tail -n 40 "$venv/install-seqkit.log" >&2; exit 1; }
    fi
else
    bash scripts/setup.sh || exit $?
    venv=$PWD/.venv
fi
py="$venv/bin/python"

install() {  # install BACKEND unless it imports already
    local name=$1 spec args log="$venv/install-$1.log"
    if (cd / && "$py" -c "import $name") 2>/dev/null; then
        return 0
    fi
    if [ "$name" = jax ]; then
        spec="${JAX_SPEC:-jax}"
        args=""
    else
        spec="${TORCH_SPEC:-torch==2.13.0}"
        args="${PIP_TORCH_ARGS:-}"
    fi
    echo "test_backends: installing $spec into $venv" >&2
    local t0=$SECONDS
    # shellcheck disable=SC2086  # PIP_TORCH_ARGS is a list of pip options
    if ! "$py" -m pip install $args "$spec" >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "test_backends: installing $spec failed; the full log is $log" >&2
        return 1
    fi
    echo "test_backends: $spec installed in $((SECONDS - t0)) s" >&2
}

status=0
for backend in "${backends[@]}"; do
    if ! install "$backend"; then
        status=1
        continue
    fi
    version=$("$py" -c "import $backend; print($backend.__version__)")
    echo "== KERAS_BACKEND=$backend ($backend $version)" >&2
    t0=$SECONDS
    KERAS_BACKEND=$backend "$py" -m pytest -q -p no:cacheprovider \
        tests/test_backends.py tests/test_gru.py "$@"
    rc=$?
    echo "== KERAS_BACKEND=$backend: pytest exit code $rc in $((SECONDS - t0)) s" >&2
    if [ "$rc" -eq 5 ]; then
        echo "test_backends: pytest collected no tests on $backend; failing." >&2
        rc=1
    fi
    [ "$rc" -eq 0 ] || status=1
done
exit "$status"
