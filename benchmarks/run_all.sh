#!/usr/bin/env bash
# Run the seqdbr benchmarks and, where the anchor venvs exist, the PyTorch and Chainer
# anchors; write one JSON file per benchmark to benchmarks/results/ (stderr, e.g. the
# charlm profile, to a .log file beside it).
#
#   benchmarks/run_all.sh            # full runs (several minutes on 2 cores)
#   benchmarks/run_all.sh --quick    # few windows/repeats: checks that everything runs
#
# Environment: PYTHON (seqdbr's interpreter, default python), TORCH_PY
# (default /opt/venv-torch/bin/python), CHAINER_PY (default /opt/venv-chainer/bin/python),
# THREADS (if set: BLAS/torch threads for every benchmark), OUT (default
# benchmarks/results). A missing or broken anchor venv is skipped with a notice; the exit
# status is non-zero if any benchmark that was run failed.
set -u
cd "$(dirname "$0")/.."

PY=${PYTHON:-python}
TORCH_PY=${TORCH_PY:-/opt/venv-torch/bin/python}
CHAINER_PY=${CHAINER_PY:-/opt/venv-chainer/bin/python}
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"

CHARLM=(--windows 20 --warmup 3)
MLP=()
OVERHEAD=()
SAMPLING=()
CONV=()
if [ "${1:-}" = "--quick" ]; then
    CHARLM=(--windows 3 --warmup 2)
    MLP=(--steps 5 --repeats 3 --warmup 3)
    OVERHEAD=(--repeats 3)
    SAMPLING=(--length 100 --repeats 2)
    CONV=(--steps 2 --repeats 2 --warmup 1)
fi
THREAD_ARGS=()
if [ -n "${THREADS:-}" ]; then
    export OPENBLAS_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
    THREAD_ARGS=(--threads "$THREADS")
fi

failed=0
run() {  # run NAME CMD...: stdout -> OUT/NAME.json, stderr -> OUT/NAME.log
    local name=$1
    shift
    echo "== $name: $*" >&2
    if "$@" >"$OUT/$name.json.tmp" 2>"$OUT/$name.log"; then
        mv "$OUT/$name.json.tmp" "$OUT/$name.json"
    else
        echo "!! $name failed (see $OUT/$name.log)" >&2
        rm -f "$OUT/$name.json.tmp"
        failed=1
    fi
}

venv_ok() {  # venv_ok PYTHON MODULE
    [ -x "$1" ] && "$1" -c "import $2" >/dev/null 2>&1
}

run seqdbr_overhead "$PY" benchmarks/overhead.py "${OVERHEAD[@]}"
run seqdbr_mlp "$PY" benchmarks/mlp.py "${MLP[@]}"
run seqdbr_charlm "$PY" benchmarks/charlm.py "${CHARLM[@]}" "${THREAD_ARGS[@]}" --profile
run seqdbr_sampling "$PY" benchmarks/sampling.py "${SAMPLING[@]}"

if venv_ok "$TORCH_PY" torch; then
    run torch_overhead "$TORCH_PY" benchmarks/anchors/torch_overhead.py "${OVERHEAD[@]}" \
        "${THREAD_ARGS[@]}"
    run torch_mlp "$TORCH_PY" benchmarks/anchors/torch_mlp.py "${MLP[@]}" "${THREAD_ARGS[@]}"
    run torch_charlm "$TORCH_PY" benchmarks/anchors/torch_charlm.py "${CHARLM[@]}" \
        "${THREAD_ARGS[@]}"
    run torch_sampling "$TORCH_PY" benchmarks/anchors/torch_sampling.py "${SAMPLING[@]}" \
        "${THREAD_ARGS[@]}"
    # seqdbr and the torch anchor interleaved in one run (conv.py drives the anchor)
    run conv "$PY" benchmarks/conv.py "${CONV[@]}" --torch "$TORCH_PY" "${THREAD_ARGS[@]}"
else
    echo "-- skipping the PyTorch anchors: $TORCH_PY cannot import torch" >&2
fi

if venv_ok "$CHAINER_PY" chainer; then
    run chainer_overhead "$CHAINER_PY" benchmarks/anchors/chainer_overhead.py "${OVERHEAD[@]}"
    run chainer_mlp "$CHAINER_PY" benchmarks/anchors/chainer_mlp.py "${MLP[@]}"
    run chainer_charlm "$CHAINER_PY" benchmarks/anchors/chainer_charlm.py "${CHARLM[@]}" \
        "${THREAD_ARGS[@]}"
else
    echo "-- skipping the Chainer anchors: $CHAINER_PY cannot import chainer" >&2
fi

echo "results in $OUT/" >&2
exit $failed
