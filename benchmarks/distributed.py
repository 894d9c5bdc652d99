"""Data-parallel char-LM training speed: 1 process x 2 BLAS threads against 2 MPI processes.

One window = CharRNN(65, H=128, 2 LSTM layers, n-step) on a global batch of B=50 streams x
T=50 steps of random tokens (vocab 65), Adam(alpha=2e-3) with gradient clipping 5, run as
in training by ``seqdbr.rnn.bptt.bptt_update``; the state is carried between windows.

Configurations, run interleaved (one round = each configuration once, ``--rounds`` rounds;
each run times ``--windows`` windows after ``--warmup``; we report the median over the
rounds of each run's median window time):

* ``a``: seqdbr, 1 process, OPENBLAS/OMP threads = 2, plain Adam;
* ``b``: seqdbr, ``mpiexec -n 2``, 1 thread each, 25 streams per rank, multi-node Adam
  (one packed float32 Allreduce of every gradient per window). Two Allreduce times and
  their shares of the window: ``in_step`` (what ``allreduce_grad`` took inside the timed
  windows: pack, MPI_Allreduce, unpack, *including the wait for the slower rank*), and
  ``bare`` (the same call, ranks started together by a barrier, after the timed windows);
* ``ref_1proc_1thread``: seqdbr, 1 process, 1 thread (what (a)'s second thread adds);
* ``torch``: ``benchmarks/anchors/torch_ddp_charlm.py``, same window in PyTorch
  (``nn.LSTM``), 1 process x 2 threads;
* ``torch_ddp``: the same under ``DistributedDataParallel`` (gloo on loopback), 2
  processes x 1 thread, 25 streams each.

Run: ``python benchmarks/distributed.py [--rounds 5] [--windows 20] [--warmup 3]
[--torch-python /work/wt/_torchvenv/bin/python]``; prints one JSON object. ``--worker``
is the timed child (run alone, or under mpiexec).
"""
import json
import os
import statistics
import subprocess
import sys
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(BENCH_DIR, os.pardir)
sys.path.insert(0, BENCH_DIR)

import common  # noqa: E402

B, T, H, VOCAB = 50, 50, 128, 65


def worker(windows, warmup):
    sys.path.insert(0, ROOT)
    import numpy
    from seqdbr import distributed as D
    from seqdbr import optimizers as O
    from seqdbr.charlm.model import CharRNN
    from seqdbr.core import seeding
    from seqdbr.rnn.bptt import bptt_update
    size, rank = D.launcher_world()
    comm = D.create_communicator() if size > 1 else None
    seeding.seed(0)
    model = CharRNN(VOCAB, rnn_size=H, num_layers=2, dropout=0.0, impl='nstep')
    opt = O.Adam(alpha=2e-3)
    opt.setup(model)
    opt.add_hook(O.hooks.GradientClipping(5.0))
    if comm is not None:
        opt = D.create_multi_node_optimizer(opt, comm)
        comm.bcast_data(model)
    lo, hi = (0, B) if comm is None else (rank * B // size, (rank + 1) * B // size)
    wins = common.make_token_windows(B, T, windows + warmup, 0, VOCAB, numpy.int32)
    times, reduce_t = [], []
    for i, (x, t) in enumerate(wins):
        if comm is not None:
            comm.barrier()                 # every window starts together
        r0 = comm.reduce_seconds if comm is not None else 0.0
        t0 = time.perf_counter()
        bptt_update(model, opt, x[lo:hi], t[lo:hi])
        dt = time.perf_counter() - t0
        if i >= warmup:
            times.append(dt)
            reduce_t.append((comm.reduce_seconds - r0) if comm is not None else 0.0)
    bare = small = 0.0
    if comm is not None:                   # the job's window time is the slowest rank's
        times = [max(v) for v in zip(*comm.allgather_obj(times))]
        ts = []
        for _ in range(10):                # the Allreduce alone, ranks started together
            comm.barrier()
            r0 = comm.reduce_seconds
            comm.allreduce_grad(model)
            ts.append(comm.reduce_seconds - r0)
        bare = statistics.median(ts)
        ts = []
        for _ in range(20):                # the Trainer's per-iteration agreement (5 float64)
            comm.barrier()
            t0 = time.perf_counter()
            comm.allreduce_array(numpy.zeros(5))
            ts.append(time.perf_counter() - t0)
        small = statistics.median(ts)
    if rank == 0:
        med = statistics.median(times)
        print(json.dumps({'window_s': med, 'chars_per_s': B * T / med,
                          'allreduce_s': statistics.median(reduce_t),
                          'allreduce_bare_s': bare, 'agree_allreduce_s': small,
                          'allreduce_bytes': 0 if comm is None else comm.reduce_bytes,
                          'processes': size}), flush=True)


FAILED_RUNS = []


def _run(cmd, threads, tries=2):
    env = common.thread_env(threads)
    env['PYTHONPATH'] = ROOT
    for _ in range(tries):
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        lines = p.stdout.strip().splitlines()
        if p.returncode == 0 or (lines and lines[-1].startswith('{')):
            if p.returncode != 0:    # timed, but the teardown failed: keep it, say so
                FAILED_RUNS.append({'cmd': cmd[-6:], 'teardown_rc': p.returncode})
            return json.loads(lines[-1])
        FAILED_RUNS.append({'cmd': cmd[-6:], 'rc': p.returncode, 'stderr': p.stderr[-300:]})
    raise RuntimeError('%s failed: %s' % (' '.join(cmd), p.stderr[-2000:]))


def main():
    p = common.make_parser(__doc__)
    p.add_argument('--worker', action='store_true')
    p.add_argument('--rounds', type=int, default=5)
    p.add_argument('--windows', type=int, default=20)
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--torch-python', default='/work/wt/_torchvenv/bin/python')
    p.add_argument('--mpiexec', default=os.path.join(os.path.dirname(sys.executable),
                                                     'mpiexec'))
    a = p.parse_args()
    if a.worker:
        return worker(a.windows, a.warmup)
    me = [sys.executable, os.path.abspath(__file__), '--worker', '--windows', str(a.windows),
          '--warmup', str(a.warmup)]
    anchor = [a.torch_python, os.path.join(BENCH_DIR, 'anchors', 'torch_ddp_charlm.py'),
              '--windows', str(a.windows), '--warmup', str(a.warmup)]
    configs = {'a_1proc_2threads': (me, 2), 'b_mpiexec_2x1': ([a.mpiexec, '-n', '2'] + me, 1),
               'ref_1proc_1thread': (me, 1)}
    if os.path.exists(a.torch_python):
        configs['torch_1proc_2threads'] = (anchor + ['--nproc', '1', '--threads', '2'], 2)
        configs['torch_ddp_gloo_2x1'] = (anchor + ['--nproc', '2', '--threads', '1'], 1)
    runs = {k: [] for k in configs}
    loads = []
    for _ in range(a.rounds):
        for k, (cmd, threads) in configs.items():
            runs[k].append(_run(cmd, threads))
            loads.append(common.loadavg_1m())
    out = {'window': {'B': B, 'T': T, 'H': H, 'layers': 2, 'vocab': VOCAB},
           'rounds': a.rounds, 'windows_per_run': a.windows, 'loadavg_1m_during': loads}
    for k, rs in runs.items():
        w = statistics.median(r['window_s'] for r in rs)
        out[k] = {'window_ms_median': round(w * 1e3, 2), 'chars_per_s': round(B * T / w),
                  'window_ms_runs': [round(r['window_s'] * 1e3, 2) for r in rs]}
        if k == 'b_mpiexec_2x1':
            ar = statistics.median(r['allreduce_s'] for r in rs)
            bare = statistics.median(r['allreduce_bare_s'] for r in rs)
            out[k].update({'allreduce_in_step_ms_per_window': round(ar * 1e3, 3),
                           'allreduce_in_step_share': round(ar / w, 4),
                           'allreduce_bare_ms': round(bare * 1e3, 3),
                           'allreduce_bare_share': round(bare / w, 4),
                           'trainer_agreement_allreduce_ms': round(statistics.median(
                               r['agree_allreduce_s'] for r in rs) * 1e3, 4),
                           'allreduce_bytes_per_window': rs[0]['allreduce_bytes']})
        if k == 'torch_ddp_gloo_2x1':
            out[k]['ddp_allreduce_ms_per_window'] = round(
                statistics.median(r['allreduce_s'] for r in rs) * 1e3, 3)
    a_w = out['a_1proc_2threads']['window_ms_median']
    b_w = out['b_mpiexec_2x1']['window_ms_median']
    out['speedup_b_over_a'] = round(a_w / b_w, 3)
    per_round = [ra['window_s'] / rb['window_s']
                 for ra, rb in zip(runs['a_1proc_2threads'], runs['b_mpiexec_2x1'])]
    out['speedup_b_over_a_per_round'] = [round(v, 3) for v in per_round]
    out['speedup_b_over_a_median_of_rounds'] = round(statistics.median(per_round), 3)
    if 'torch_ddp_gloo_2x1' in runs:
        per_round = [rt['window_s'] / rb['window_s']
                     for rt, rb in zip(runs['torch_ddp_gloo_2x1'], runs['b_mpiexec_2x1'])]
        out['speed_b_over_torch_ddp_per_round'] = [round(v, 3) for v in per_round]
        out['speed_b_over_torch_ddp_median_of_rounds'] = round(statistics.median(per_round), 3)
    if 'torch_ddp_gloo_2x1' in out:
        out['speed_b_over_torch_ddp'] = round(
            out['torch_ddp_gloo_2x1']['window_ms_median'] / b_w, 3)
        out['speed_b_over_torch_1proc'] = round(
            out['torch_1proc_2threads']['window_ms_median'] / b_w, 3)
    out['failed_runs'] = FAILED_RUNS
    out['machine'] = common.machine_info({})
    common.emit(out)


if __name__ == '__main__':
    main()
