#!/usr/bin/env bash
# One-command GPU verification of seqdbr (under 8 minutes on one GPU). From the repository
# root of a fresh clone on a machine with an NVIDIA driver:
#
#     python3 -m pip install -e '.[gpu,test]' && bash benchmarks/gpu_check.sh
#
# (CUDA 13 driver: '.[gpu-cuda13,test]'.) Optional: PyTorch with CUDA for the comparison rows.
# Steps, each with its own time limit:
#   1. environment: CuPy, CUDA runtime/driver, GPUs, NVRTC, PyTorch            (seconds)
#   2. the whole test suite with SEQDBR_TEST_DEVICE=gpu, gpu-marked tests included
#      (float16 cells and n-step layers, GPU-vs-CPU checks, the two-GPU test when two
#      GPUs are present)                                                         (<= 240 s)
#   3. char-LSTM window: seqdbr n-step vs PyTorch nn.LSTM/cuDNN, H 128/512/1024 x B 64/128
#      (benchmarks/gpu_charlm.py)                                               (<= 100 s)
#   4. 2 minutes of char-RNN training on Tiny Shakespeare (scripts/train_charrnn.py
#      --device gpu), with its validation loss                                  (<= 160 s)
# Output: gpu_check_out/ (logs, suite.xml, bench.json, train/), then one JSON object
# (gpu_check_out/summary.json) and a short summary on stdout. Exit status 0 when every step
# that ran passed.
#
# Without a GPU the GPU steps are reported as skipped. `--cpu-dry-run` instead runs every
# step on the CPU in miniature (a check of this script: a few test files, a tiny benchmark,
# 12 seconds of training), which is how it was checked on the development machine.
#
# Environment: PYTHON (default python3), GPU_CHECK_OUT (default gpu_check_out),
# SEQDBR_CORPUS (Tiny Shakespeare's input.txt; default ../shared/data/tinyshakespeare/
# input.txt if present, else the `tinyshakespeare` catalog entry, downloaded once into
# $SEQDBR_DATA; offline, put the file there or point SEQDBR_CORPUS at it).
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${GPU_CHECK_OUT:-gpu_check_out}
DRY=0
[ "${1:-}" = "--cpu-dry-run" ] && DRY=1
rm -rf "$OUT"
mkdir -p "$OUT"
T0=$(date +%s)

# 1. environment -----------------------------------------------------------------------------
"$PY" - > "$OUT/env.json" 2> "$OUT/env.err" <<'EOF'
import json
from seqdbr.core import backend
env = {'gpu_count': backend.gpu_device_count(), 'gpus': [], 'cupy': None}
cp = backend.cupy_or_none()
if cp is not None:
    env['cupy'] = cp.__version__
    try:
        env['cuda_runtime'] = cp.cuda.runtime.runtimeGetVersion()
        env['cuda_driver'] = cp.cuda.runtime.driverGetVersion()
    except Exception as e:
        env['cuda_error'] = str(e)
    for i in range(env['gpu_count']):
        p = cp.cuda.runtime.getDeviceProperties(i)
        env['gpus'].append('%s (%.0f GiB)' % (p['name'].decode(), p['totalGlobalMem'] / 2**30))
    try:
        from cupy.cuda import nvrtc
        env['nvrtc'] = '%d.%d' % nvrtc.getVersion()
    except Exception as e:
        env['nvrtc'] = 'unusable: %s' % e
try:
    import torch
    env['torch'] = torch.__version__
    env['torch_cuda'] = torch.cuda.is_available()
except ImportError:
    env['torch'] = None
print(json.dumps(env))
EOF
GPUS=$("$PY" -c "import json; print(json.load(open('$OUT/env.json'))['gpu_count'])" 2>/dev/null || echo 0)
echo "gpu_check: $(cat "$OUT/env.json" 2>/dev/null || echo 'environment probe failed (see env.err)')" >&2

status() {   # status NAME RC: 'passed', 'failed (rc N)', 'timed out'
    if [ "$2" -eq 0 ]; then echo passed; elif [ "$2" -eq 124 ]; then echo "timed out"; else echo "failed (rc $2)"; fi
}

# 2. the test suite on the GPU --------------------------------------------------------------------
if [ "$GPUS" -gt 0 ]; then
    SEQDBR_TEST_DEVICE=gpu timeout 240 "$PY" -m pytest -q -p no:cacheprovider -rs \
        --junitxml="$OUT/suite.xml" > "$OUT/suite.log" 2>&1
    SUITE=$(status suite $?)
elif [ $DRY -eq 1 ]; then
    SEQDBR_TEST_DEVICE=cpu timeout 240 "$PY" -m pytest -q -p no:cacheprovider -rs \
        --junitxml="$OUT/suite.xml" tests/rnn/test_float16.py tests/core/test_device_placement.py \
        tests/rnn/test_bptt_syncs.py tests/core/test_cuda_kernels.py > "$OUT/suite.log" 2>&1
    SUITE="$(status suite $?) (dry run: 4 files on the CPU)"
else
    SUITE="skipped: no GPU"
fi
echo "gpu_check: suite $SUITE ($(( $(date +%s) - T0 )) s)" >&2

# 3. char-LSTM window benchmark -----------------------------------------------------------------
if [ "$GPUS" -gt 0 ]; then
    timeout 100 "$PY" benchmarks/gpu_charlm.py > "$OUT/bench.json" 2> "$OUT/bench.log"
    BENCH=$(status bench $?)
elif [ $DRY -eq 1 ]; then
    timeout 100 "$PY" benchmarks/gpu_charlm.py --cpu --sizes 16 --batches 4 --windows 2 \
        --repeats 1 --warmup 1 > "$OUT/bench.json" 2> "$OUT/bench.log"
    BENCH="$(status bench $?) (dry run: H=16, B=4 on the CPU)"
else
    BENCH="skipped: no GPU"
fi
echo "gpu_check: benchmark $BENCH ($(( $(date +%s) - T0 )) s)" >&2

# 4. two minutes of char-RNN training on Tiny Shakespeare ------------------------------------------
CORPUS=${SEQDBR_CORPUS:-}
if [ -z "$CORPUS" ]; then
    if [ -f ../shared/data/tinyshakespeare/input.txt ]; then
        CORPUS=../shared/data/tinyshakespeare/input.txt
    else
        CORPUS=tinyshakespeare
    fi
fi
if [ "$CORPUS" = tinyshakespeare ] && { [ "$GPUS" -gt 0 ] || [ $DRY -eq 1 ]; }; then
    # cached, or downloaded once (30 s at most); offline: the built-in pydoc corpus instead
    if ! timeout 30 "$PY" -c "from seqdbr.datasets.corpora import load_corpus; \
            load_corpus('tinyshakespeare')" > "$OUT/corpus.log" 2>&1; then
        echo "gpu_check: Tiny Shakespeare is not available here (offline? see corpus.log);" \
             "training on the built-in pydoc corpus instead (set SEQDBR_CORPUS)" >&2
        CORPUS=pydoc
    fi
fi
if [ "$GPUS" -gt 0 ]; then
    TRAIN_ARGS=(--device gpu --max-minutes 2 --eval-every 250)
elif [ $DRY -eq 1 ]; then
    TRAIN_ARGS=(--device cpu --max-minutes 0.2 --eval-every 20 --rnn-size 32)
fi
if [ "$GPUS" -gt 0 ] || [ $DRY -eq 1 ]; then
    timeout 160 "$PY" scripts/train_charrnn.py --corpus "$CORPUS" --train-frac 0.9 \
        --val-frac 0.1 --out "$OUT/train" --no-progress "${TRAIN_ARGS[@]}" \
        > "$OUT/train.log" 2>&1
    TRAIN=$(status train $?)
    [ $DRY -eq 1 ] && [ "$GPUS" -eq 0 ] && TRAIN="$TRAIN (dry run: 12 s, 2x32 model, on the CPU)"
else
    TRAIN="skipped: no GPU"
fi
echo "gpu_check: training $TRAIN ($(( $(date +%s) - T0 )) s)" >&2

# summary -------------------------------------------------------------------------------------------
"$PY" - "$OUT" "$SUITE" "$BENCH" "$TRAIN" "$CORPUS" "$(( $(date +%s) - T0 ))" <<'EOF'
import json
import os
import sys
import xml.etree.ElementTree as ET

out, suite, bench, train, corpus, seconds = sys.argv[1:]


def load(name):
    try:
        with open(os.path.join(out, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


summary = {'seconds': int(seconds), 'env': load('env.json'),
           'suite': {'status': suite}, 'benchmark': {'status': bench},
           'training': {'status': train, 'corpus': corpus}}
try:
    root = ET.parse(os.path.join(out, 'suite.xml')).getroot()
    ts = root if root.tag == 'testsuite' else root.find('testsuite')
    n = {k: int(ts.get(k, 0)) for k in ('tests', 'failures', 'errors', 'skipped')}
    n['passed'] = n['tests'] - n['failures'] - n['errors'] - n['skipped']
    failed = [c.get('classname', '') + '::' + c.get('name', '') for c in ts.iter('testcase')
              if c.find('failure') is not None or c.find('error') is not None]
    two = [c for c in ts.iter('testcase') if 'gpu1_while_gpu0' in c.get('name', '')]
    summary['suite'].update(n, failed=failed[:30])
    if two:
        c = two[0]
        summary['suite']['two_gpu_test'] = (
            'failed' if c.find('failure') is not None or c.find('error') is not None
            else 'skipped: %s' % c.find('skipped').get('message', '')
            if c.find('skipped') is not None else 'passed')
except (OSError, ET.ParseError, AttributeError):
    pass
b = load('bench.json')
if b:
    summary['benchmark'].update(b)
log = os.path.join(out, 'train', 'log.jsonl')
if os.path.exists(log):
    rows = [json.loads(line) for line in open(log) if line.strip()]
    vals = [r for r in rows if r.get('val_loss') is not None]
    if rows:
        summary['training'].update(iterations=rows[-1]['iteration'],
                                   seconds=round(rows[-1]['time'], 1),
                                   epochs=round(rows[-1]['epoch'], 3))
    if vals:
        best = min(vals, key=lambda r: r['val_loss'])
        summary['training'].update(last_val_loss=round(vals[-1]['val_loss'], 4),
                                   best_val_loss=round(best['val_loss'], 4),
                                   best_val_bpc=round(best['val_bpc'], 4))
with open(os.path.join(out, 'summary.json'), 'w') as f:
    json.dump(summary, f, indent=1)
print(json.dumps(summary))
print()
print('seqdbr GPU check (%s s)' % seconds)
env = summary['env'] or {}
print('  GPUs      : %s' % (', '.join(env.get('gpus', [])) or 'none'))
print('  CuPy      : %s, NVRTC %s, torch %s' % (env.get('cupy'), env.get('nvrtc'),
                                                 env.get('torch')))
s = summary['suite']
print('  suite     : %s%s' % (s['status'], '' if 'tests' not in s else
                               ' - %d passed, %d failed, %d errors, %d skipped'
                               % (s['passed'], s['failures'], s['errors'], s['skipped'])))
if s.get('two_gpu_test'):
    print('  two GPUs  : %s' % s['two_gpu_test'])
for name in s.get('failed', [])[:10]:
    print('      FAILED %s' % name)
print('  benchmark : %s' % summary['benchmark']['status'])
for r in summary['benchmark'].get('results', []):
    t = r.get('torch', {})
    print('      H=%-5d B=%-4d seqdbr %8.2f ms/window   torch %s'
          % (r['H'], r['B'], r['seqdbr']['ms_per_window'],
             '%8.2f ms (seqdbr/torch %.2fx)' % (t['ms_per_window'], r['seqdbr_over_torch_time'])
             if 'ms_per_window' in t else t.get('skipped', '?')))
tr = summary['training']
print('  training  : %s%s' % (tr['status'], '' if 'best_val_loss' not in tr else
                               ' - %s iterations in %s s, validation loss %.4f nats/char '
                               '(best %.4f, %.3f bits/char)'
                               % (tr['iterations'], tr['seconds'], tr['last_val_loss'],
                                  tr['best_val_loss'], tr['best_val_bpc'])))
ok = all(not v['status'].startswith(('failed', 'timed')) for v in
         (summary['suite'], summary['benchmark'], summary['training']))
sys.exit(0 if ok else 1)
EOF
