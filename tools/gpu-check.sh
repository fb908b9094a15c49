#!/usr/bin/env bash
# The GPU check in one command (issue 25). Run from the repository root on the GPU machine:
#
#   tools/gpu-check.sh [--out DIR] [--dry-run]        (or: make gpu-check)
#
# The GPU machine has CuPy, PyTorch, NumPy and SciPy but no autograd and no network, so this
#   1. installs the wheels carried in tools/wheels/ (autograd, pytest and its dependencies) into
#      DIR/site, each only where the module is missing (GPU_CHECK_FORCE_WHEELS=1: all of them);
#   2. stages this checkout as the package refscore (refscore/ with backends/ as
#      refscore/backends/, the layout of the wheel) into DIR/site, without building anything;
#   3. runs `python -m refscore.apps.bench_gpu`: environment, the GPU tests, `refscore bench
#      --backend cupy --torch`, the bandwidth fractions, MNIST; every file lands in DIR.
# --dry-run runs the same steps on the CPU with the strict stand-in backend and tiny sizes (CI).
# The last line printed is the one-line summary. Exit status: 0 passed, 1 failed, 2 could not run.
# PYTHON picks the interpreter (default python3); the whole check is capped at 8 minutes.
set -euo pipefail

OUT=gpu-output
DRY=()
while [ $# -gt 0 ]; do
    case "$1" in
        --out) OUT="${2:?--out needs a folder}"; shift 2 ;;
        --out=*) OUT="${1#--out=}"; shift ;;
        --dry-run) DRY=(--dry-run); shift ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "gpu-check: unknown argument '$1' (use --out DIR, --dry-run)" >&2; exit 2 ;;
    esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
case "$PY" in */*) PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")" ;; esac  # we cd below
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
SITE="$OUT/site"
mkdir -p "$SITE"

# 1. wheels: module name, wheel name[, py<3.11] (pure Python, licences in tools/wheels/README.md)
old_python() { "$PY" -c 'import sys; sys.exit(sys.version_info >= (3, 11))'; }
while read -r module wheel only; do
    if [ "$only" = "py<3.11" ] && [ "${GPU_CHECK_FORCE_WHEELS:-0}" != 1 ] && ! old_python; then
        continue  # pytest needs these backports only before Python 3.11
    fi
    if [ "${GPU_CHECK_FORCE_WHEELS:-0}" = 1 ] || ! (cd "$OUT" && "$PY" -c "import $module" 2>/dev/null); then
        if "$PY" -m pip --version >/dev/null 2>&1; then
            "$PY" -m pip install --quiet --no-index --no-deps --disable-pip-version-check \
                --find-links "$ROOT/tools/wheels" --target "$SITE" --upgrade "$wheel" \
                || { echo "gpu-check: could not install $wheel from tools/wheels" >&2; exit 2; }
        else  # no pip: a pure-Python wheel is a zip of the installed files
            "$PY" -c "import glob, sys, zipfile; zipfile.ZipFile(glob.glob(sys.argv[1])[0]).extractall(sys.argv[2])" \
                "$ROOT/tools/wheels/$wheel-[0-9]*.whl" "$SITE" \
                || { echo "gpu-check: could not unpack $wheel from tools/wheels" >&2; exit 2; }
        fi
        echo "gpu-check: installed $wheel from tools/wheels"
    fi
done <<'WHEELS'
autograd autograd
pytest pytest
pluggy pluggy
iniconfig iniconfig
packaging packaging
exceptiongroup exceptiongroup py<3.11
tomli tomli py<3.11
WHEELS

# 2. this checkout, laid out as the wheel lays it out
rm -rf "$SITE/refscore"
cp -R "$ROOT/refscore" "$SITE/refscore"
cp -R "$ROOT/backends" "$SITE/refscore/backends"
find "$SITE/refscore" -name __pycache__ -prune -exec rm -rf {} +

# 3. the steps, from the output folder so that ./refscore (without backends/) is not imported
cd "$OUT"
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
status=0
timeout 480 "$PY" -m refscore.apps.bench_gpu --out "$OUT" --repo "$ROOT" "${DRY[@]}" || status=$?
if [ "$status" = 124 ]; then
    echo "gpu-check FAILED: over the 8-minute limit; partial results in $OUT"
fi
exit "$status"
