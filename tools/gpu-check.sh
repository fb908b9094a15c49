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
#   3. runs the images command on the GPU, `refscore images mnist --backend cupy` (issue 36), into
#      DIR/mnist (log: DIR/mnist.log; its results.json has the timings), where data/mnist.npz is in
#      the checkout (`make data`, carried) and scikit-learn is installed (the judge); else says why not;
#   4. runs `python -m refscore.apps.bench_gpu`: environment, the GPU tests, `refscore bench
#      --backend cupy --torch`, the bandwidth fractions, MNIST; every file lands in DIR.
# --dry-run skips step 3 and runs step 4 on the CPU with the strict stand-in backend and tiny sizes (CI).
# The last line printed is the one-line summary. Exit status (of step 4): 0 passed, 1 failed, 2 could
# not run. PYTHON picks the interpreter (default python3); step 3 is capped at 4 minutes and step 4 at
# 5.5 minutes, so the whole check fits a 10-minute device call.
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

# 3-4. the steps, from the output folder so that ./refscore (without backends/) is not imported
cd "$OUT"
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
# 3. the images run on the GPU: the one line of issue 36
if [ ${#DRY[@]} -gt 0 ]; then
    echo "gpu-check: images run not part of the dry run (it trains for minutes)"
elif [ ! -f "$ROOT/data/mnist.npz" ]; then
    echo "gpu-check: images run skipped: no data/mnist.npz in the checkout (run make data, then carry data/)"
elif ! "$PY" -c "import sklearn" 2>/dev/null; then
    echo "gpu-check: images run skipped: scikit-learn is not installed (the judge's classifier)"
else
    REFSCORE_DATA="$ROOT/data" timeout 240 "$PY" -m refscore images mnist --backend cupy --out "$OUT/mnist" \
        > "$OUT/mnist.log" 2>&1 && echo "gpu-check: images run done: $(tail -n 1 "$OUT/mnist.log")" \
        || echo "gpu-check: images run failed or over 4 minutes (exit $?): see $OUT/mnist.log"
fi

# 4. the benchmarks and the one-line summary
status=0
timeout 330 "$PY" -m refscore.apps.bench_gpu --out "$OUT" --repo "$ROOT" "${DRY[@]}" || status=$?
if [ "$status" = 124 ]; then
    echo "gpu-check FAILED: over the 5.5-minute limit; partial results in $OUT"
fi
exit "$status"
