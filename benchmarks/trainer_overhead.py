"""What the training framework costs: the char-RNN program on the Trainer against the
program as it was before (one ~390-line loop), in the same process, runs interleaved.

The old program is read from git (``--baseline-commit``, default the last commit before the
rebuild) into a module of its own, so both train the same 2x128 LSTM on the same corpus
with the same seed, batch 50 x 50. Each run's per-iteration seconds come from its
``log.jsonl`` (``time`` differences, validation iterations left out) is the median over its iterations;
each repeat runs the two programs back to back (alternating which goes first), and the
headline ``overhead_percent`` is the median over repeats of the per-pair ratio. On a noisy
machine that ratio swings by tens of percent either way, so the benchmark also times the
loop's own work directly: per iteration, everything outside ``bptt_update`` (the same
numerical step in both programs), ``loop_ms_outside_update``, and its difference as a share
of an iteration, ``loop_overhead_percent_of_iteration``. Prints JSON.

    python benchmarks/trainer_overhead.py [--iters 80] [--repeats 5]
"""
import importlib.util
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

import common  # noqa: E402

BASELINE = '47babb6'


def load_baseline(commit):
    src = subprocess.run(['git', '-C', ROOT, 'show', '%s:seqdbr/charlm/train.py' % commit],
                         capture_output=True, text=True, check=True).stdout
    path = os.path.join(tempfile.mkdtemp(), 'legacy_train.py')
    with open(path, 'w') as f:
        f.write(src)
    spec = importlib.util.spec_from_file_location('seqdbr.charlm._legacy_train', path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def per_iteration(log_path):
    recs = [json.loads(line) for line in open(log_path)]
    steps = [b['time'] - a['time'] for a, b in zip(recs, recs[1:])
             if b.get('val_loss') is None]
    if len(steps) < 6:
        raise RuntimeError("%s: only %d timed iterations in the log" % (log_path, len(steps)))
    return statistics.median(steps[5:])          # the first steps warm caches up


def one_run(mod, corpus, iters, out, patch):
    """Train; returns (median seconds per iteration, median seconds per iteration spent
    outside ``bptt_update`` -- the loop's own cost: logging, triggers, extensions)."""
    import seqdbr.rnn.bptt as rb
    real, inside = rb.bptt_update, []

    def timed(*a, **k):
        t0 = time.perf_counter()
        try:
            return real(*a, **k)
        finally:
            inside.append(time.perf_counter() - t0)
    setattr(patch, 'bptt_update', timed)
    try:
        cfg = mod.TrainConfig(corpus=corpus, out=out, max_iters=iters, eval_every=10 ** 6,
                              progress=False, seed=1)
        mod.train(cfg, out_stream=io.StringIO())
    finally:
        setattr(patch, 'bptt_update', real)
    recs = [json.loads(line) for line in open(os.path.join(out, 'log.jsonl'))]
    steps = [b['time'] - a['time'] for a, b in zip(recs, recs[1:])]
    outside = [s - u for s, u in zip(steps[5:], inside[6:])]
    return per_iteration(os.path.join(out, 'log.jsonl')), statistics.median(outside)


def main():
    p = common.make_parser(__doc__)
    p.add_argument('--iters', type=int, default=80)
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--corpus', default='pydoc')
    p.add_argument('--baseline-commit', default=BASELINE)
    args = p.parse_args()
    from seqdbr.charlm import train as new
    from seqdbr.training import bptt_updater
    old = load_baseline(args.baseline_commit)
    times = {'trainer': [], 'before': []}
    loop = {'trainer': [], 'before': []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            order = [('before', old, old), ('trainer', new, bptt_updater)]
            for name, mod, patch in (order if r % 2 == 0 else order[::-1]):
                out = os.path.join(tmp, '%s%d' % (name, r))
                step, own = one_run(mod, args.corpus, args.iters, out, patch)
                times[name].append(step)
                loop[name].append(own)
    med = {k: statistics.median(v) for k, v in times.items()}
    ratios = [a / b for a, b in zip(times['trainer'], times['before'])]
    common.emit({'benchmark': 'trainer_overhead', 'model': 'char-RNN 2x128 LSTM, batch 50 x 50',
                 'iterations_per_run': args.iters, 'repeats': args.repeats,
                 'baseline_commit': args.baseline_commit,
                 'ms_per_iteration': {k: round(v * 1e3, 3) for k, v in med.items()},
                 'ms_per_iteration_runs': {k: [round(x * 1e3, 3) for x in v]
                                           for k, v in times.items()},
                 'ratio_trainer_to_before_median_of_pairs': round(statistics.median(ratios), 4),
                 # the pairs ran back to back, so their ratio cancels most of the machine's
                 # drift; the headline is the median of the per-pair ratios
                 'overhead_percent': round((statistics.median(ratios) - 1) * 100, 2),
                 # the loop's own time per iteration (everything but bptt_update), which
                 # machine noise affects far less than whole iterations
                 'loop_ms_outside_update': {k: round(statistics.median(v) * 1e3, 4)
                                            for k, v in loop.items()},
                 'loop_overhead_percent_of_iteration': round(
                     (statistics.median(loop['trainer']) - statistics.median(loop['before']))
                     / med['before'] * 100, 3),
                 'machine': common.machine_info({})})


if __name__ == '__main__':
    main()
