"""Chainer anchor for ``benchmarks/charlm.py``: the same truncated-BPTT char-LM window.

Run with the anchor venv (this file never imports seqdbr)::

    /opt/venv-chainer/bin/python benchmarks/anchors/chainer_charlm.py [--sizes 128 512]
        [--impl stepwise nstep] [--windows 20] [--warmup 3] [--threads N]

One window = EmbedID(65, H) -> 2-layer LSTM (H -> H -> H) -> Linear(H, 65) -> softmax
cross-entropy (mean over the B*T tokens of the window) -> backward -> Adam(alpha=2e-3),
with batch B=50 parallel streams and T=50 steps, on random tokens (vocab 65), run as
Chainer training does: ``cleargrads``, ``backward``, ``unchain_backward()``, ``update``;
the hidden state is carried from window to window.

Implementations:

* ``stepwise``: one stateful ``L.LSTM`` per layer in a Python loop over the T steps. The
  window is embedded at once and cut with ``F.separate``; by default
  (``--stepwise-loss window``) the T outputs are stacked and one Linear + one
  cross-entropy run over the window; ``--stepwise-loss step`` computes a Linear +
  cross-entropy per step (embedding per step) and averages the T step losses.
* ``nstep``: ``L.NStepLSTM(2, H, H, 0.0)`` on the B sequences of the window (a list of
  ``(T, H)`` Variables from ``F.separate``; Chainer's CPU path runs the recurrence step by
  step). ``hy``/``cy`` are not behind the loss, so they are ``unchain()``-ed too.

chars/s = B*T / (median window time) over ``--windows`` timed windows after ``--warmup``
untimed ones. Each (impl, H) runs in a fresh child process, so ``peak_rss_mb``
(``ru_maxrss``, read after the warm-up windows and before the matmul operands below are
allocated) is that configuration's own peak; ``rss_before_mb`` is the peak before the
first window (interpreter, Chainer, model) and ``peak_rss_mb_end`` the peak at the end.

Matrix-multiply limit, measured in the same child process: the float32 matmuls one window
needs, timed alone back to back -- per layer the input projection ``(B*T, H) x (H, 4H)``,
T recurrent ``(B, H) x (H, 4H)``, and the backward of each (2 matmuls of the same size:
input gradient and weight gradient), plus the output layer ``(B*T, H) x (H, 65)`` forward
and its 2 backward matmuls. Every timed window is followed by one timed run of that set,
so both see the same machine load (with a ``--settle`` pause before and after it, so
worker threads that spin after their work go idle before the next part). The matmuls
run with this venv's NumPy (1.26, its own OpenBLAS build: compare ratios, not absolute
numbers, across venvs): ``matmul_limited_chars_per_s`` = B*T / (median matmul time),
``ratio_to_matmul_limit`` = chars_per_s / that,
``ratio_to_matmul_limit_median_of_runs`` the median of the per-window ratios, and
``cpu_ratio_to_matmul_limit`` the same from process CPU time (all threads). The
``*_fused_gW`` keys time the recurrent weight gradient as one ``(4H, B*T) x (B*T, H)``
matmul instead of T small ones (same flops, fewer calls: a stricter limit).
Prints one JSON object on stdout.
"""
import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import numpy

VOCAB = 65
N_LAYERS = 2
THREAD_VARS = ('OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS', 'MKL_NUM_THREADS')


# -- the matrix-multiply limit --------------------------------------------------------------------
def mm_operands(H, B, T, V, seed):
    rng = numpy.random.default_rng(seed)
    f = numpy.float32

    def r(*shape):
        return rng.standard_normal(shape, dtype=f)
    return {'X': r(B * T, H), 'W_ih': r(4 * H, H), 'W_hh': r(4 * H, H), 'hs': r(T, B, H),
            'G': r(B * T, 4 * H), 'Hp': r(B * T, H), 'W_o': r(V, H), 'gY': r(B * T, V)}


def window_matmuls(o, T, fused_gW):
    X, W_ih, W_hh, hs, G, W_o, gY = (o['X'], o['W_ih'], o['W_hh'], o['hs'], o['G'], o['W_o'],
                                     o['gY'])
    gs = G.reshape(T, -1, G.shape[1])
    for _ in range(N_LAYERS):
        X @ W_ih.T                      # input projection of every step
        for j in range(T):
            hs[j] @ W_hh.T              # recurrence
        G @ W_ih                        # backward: input gradient
        G.T @ X                         # weight gradient of W_ih
        for j in range(T):
            gs[j] @ W_hh                # gradient to h_{t-1}
        if fused_gW:
            G.T @ o['Hp']               # weight gradient of W_hh, one matmul
        else:
            for j in range(T):
                gs[j].T @ hs[j]         # weight gradient of W_hh, per step
    X @ W_o.T                           # output layer
    gY @ W_o
    gY.T @ X


def time_matmuls(o, T, repeats, fused_gW):
    """Median seconds of the window's matmul set over ``repeats`` back-to-back runs."""
    for _ in range(2):
        window_matmuls(o, T, fused_gW)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        window_matmuls(o, T, fused_gW)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def window_flops(H, B, T, V):
    return N_LAYERS * 3 * 2 * (2 * B * T * H * 4 * H) + 3 * 2 * B * T * H * V


def timed(fn, *a):
    """(wall seconds, process CPU seconds of all threads) of one call."""
    c0, t0 = time.process_time(), time.perf_counter()
    fn(*a)
    return time.perf_counter() - t0, time.process_time() - c0


def measure(window, o, B, T, H, V, windows, warmup, settle):
    """Warm-up windows, then ``windows`` timed windows, each followed by one timed run of
    the window's matmul set (per-step and fused recurrent weight gradient), so training
    and matmuls see the same machine load. Peak RSS is read after the warm-up, before the
    matmul operands exist."""
    rss_before = rss_mb()
    for i in range(warmup):
        window(i)
    peak = rss_mb()
    ops = o()
    for _ in range(2):
        window_matmuls(ops, T, False)
        window_matmuls(ops, T, True)
    win, mm, mmf = [], [], []
    last = None
    for i in range(windows):
        c0, t0 = time.process_time(), time.perf_counter()
        last = window(warmup + i)
        win.append((time.perf_counter() - t0, time.process_time() - c0))
        if settle:
            time.sleep(settle)   # let the framework's worker threads go idle
        mm.append(timed(window_matmuls, ops, T, False))
        mmf.append(timed(window_matmuls, ops, T, True))
        if settle:
            time.sleep(settle)   # let BLAS worker threads stop spinning before the window
    med = statistics.median
    w, m, f = med(t for t, _ in win), med(t for t, _ in mm), med(t for t, _ in mmf)
    wc, mc = med(c for _, c in win), med(c for _, c in mm)
    rate, limit, limit_f = B * T / w, B * T / m, B * T / f
    flops = window_flops(H, B, T, V)
    res = {
        'chars_per_s': round(rate, 1),
        'chars_per_s_min': round(B * T / max(t for t, _ in win), 1),
        'chars_per_s_max': round(B * T / min(t for t, _ in win), 1),
        'window_ms': round(1000 * w, 3), 'windows': windows, 'warmup_windows': warmup,
        'last_loss': round(float(last), 4),
        'rss_before_mb': rss_before, 'peak_rss_mb': peak, 'peak_rss_mb_end': rss_mb(),
        'matmul_ms_per_window': round(1000 * m, 3),
        'matmul_gflops': round(flops / m / 1e9, 2),
        'matmul_limited_chars_per_s': round(limit, 1),
        'ratio_to_matmul_limit': round(rate / limit, 3),
        # per-window ratios (window vs the matmul run right after it): robust to load drift
        'ratio_to_matmul_limit_median_of_runs': round(med(
            mt / wt for (wt, _), (mt, _) in zip(win, mm)), 3),
        # process CPU time (all threads): less sensitive to other jobs taking the cores
        'cpu_ms_per_window': round(1000 * wc, 3),
        'matmul_cpu_ms_per_window': round(1000 * mc, 3),
        'cpu_ratio_to_matmul_limit': round(mc / wc, 3),
        'matmul_ms_per_window_fused_gW': round(1000 * f, 3),
        'matmul_limited_chars_per_s_fused_gW': round(limit_f, 1),
        'ratio_to_matmul_limit_fused_gW': round(rate / limit_f, 3),
    }
    return res, ops


def rss_mb():
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


# -- the model ------------------------------------------------------------------------------------
def make_windows(B, T, n, seed):
    """``n`` consecutive windows of B parallel streams over one random token array."""
    rng = numpy.random.default_rng(seed)
    L = n * T
    tokens = rng.integers(0, VOCAB, B * L + 1)
    wins = []
    for w in range(n):
        x = numpy.stack([tokens[b * L + w * T: b * L + w * T + T] for b in range(B)])
        t = numpy.stack([tokens[b * L + w * T + 1: b * L + w * T + T + 1] for b in range(B)])
        wins.append((x, t))
    return wins


def build(impl, H, stepwise_loss):
    import chainer
    import chainer.functions as F
    import chainer.links as L

    class StepwiseLM(chainer.Chain):
        def __init__(self):
            super().__init__()
            with self.init_scope():
                self.embed = L.EmbedID(VOCAB, H)
                self.rnns = chainer.ChainList(*[L.LSTM(H, H) for _ in range(N_LAYERS)])
                self.out = L.Linear(H, VOCAB)

        def step(self, h):
            for link in self.rnns:
                h = link(h)
            return h

        def forward(self, x, t):
            B, T = x.shape
            if stepwise_loss == 'step':
                loss = 0
                for j in range(T):
                    y = self.out(self.step(self.embed(x[:, j])))
                    loss += F.softmax_cross_entropy(y, t[:, j])
                return loss / T
            cols = [self.step(e) for e in F.separate(self.embed(x), axis=1)]
            hs = F.reshape(F.stack(cols, axis=1), (B * T, H))
            return F.softmax_cross_entropy(self.out(hs), t.reshape(B * T))

        def cut_state(self):
            pass     # loss.unchain_backward() cuts h and c behind the carried state

    class NStepLM(chainer.Chain):
        def __init__(self):
            super().__init__()
            with self.init_scope():
                self.embed = L.EmbedID(VOCAB, H)
                self.rnn = L.NStepLSTM(N_LAYERS, H, H, 0.0)
                self.out = L.Linear(H, VOCAB)
            self.hx = self.cx = None

        def forward(self, x, t):
            B, T = x.shape
            xs = list(F.separate(self.embed(x), axis=0))    # B sequences (T, H)
            self.hx, self.cx, ys = self.rnn(self.hx, self.cx, xs)
            hs = F.reshape(F.stack(ys, axis=0), (B * T, H))
            return F.softmax_cross_entropy(self.out(hs), t.reshape(B * T))

        def cut_state(self):
            # hy/cy are not behind the loss: detach them so the next window starts a leaf
            self.hx.unchain()
            self.cx.unchain()

    model = StepwiseLM() if impl == 'stepwise' else NStepLM()
    opt = chainer.optimizers.Adam(alpha=2e-3)
    opt.setup(model)
    return model, opt


def run_child(args, impl, H):
    import chainer
    numpy.random.seed(args.seed)
    B, T = args.batchsize, args.bptt
    model, opt = build(impl, H, args.stepwise_loss)
    wins = [(x.astype(numpy.int32), t.astype(numpy.int32))
            for x, t in make_windows(B, T, 8, args.seed)]

    def window(i):
        x, t = wins[i % len(wins)]
        loss = model(x, t)
        value = float(loss.array)
        model.cleargrads()
        loss.backward()
        loss.unchain_backward()
        model.cut_state()
        opt.update()
        return value

    res = {'impl': impl, 'hidden': H,
           'implementation': 'L.LSTM loop' if impl == 'stepwise' else 'L.NStepLSTM'}
    r, ops = measure(window, lambda: mm_operands(H, B, T, VOCAB, args.seed), B, T, H, VOCAB,
                     args.windows, args.warmup, args.settle)
    res.update(r)
    res['chainer_version'] = chainer.__version__
    return res


def child_argv(args, impl, H):
    return [sys.executable, os.path.abspath(__file__), '--child', impl, str(H),
            '--windows', str(args.windows), '--warmup', str(args.warmup),
            '--batchsize', str(args.batchsize), '--bptt', str(args.bptt),
            '--settle', str(args.settle),
            '--seed', str(args.seed), '--stepwise-loss', args.stepwise_loss]


def thread_env(args):
    env = dict(os.environ)
    if args.threads:
        for k in THREAD_VARS:
            env[k] = str(args.threads)
    return env


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--sizes', type=int, nargs='+', default=[128, 512])
    p.add_argument('--impl', nargs='+', choices=['stepwise', 'nstep'],
                   default=['stepwise', 'nstep'])
    p.add_argument('--windows', type=int, default=20, help='timed windows (median reported)')
    p.add_argument('--warmup', type=int, default=3, help='untimed windows first')
    p.add_argument('--batchsize', type=int, default=50)
    p.add_argument('--bptt', type=int, default=50)
    p.add_argument('--threads', type=int, default=None,
                   help='BLAS threads for the child processes (sets OPENBLAS/OMP/MKL_NUM_'
                        'THREADS; default: inherit the environment)')
    p.add_argument('--settle', type=float, default=0.1,
                   help='seconds to pause around each timed matmul run (worker threads idle)')
    p.add_argument('--stepwise-loss', choices=['window', 'step'], default='window')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--inline', action='store_true',
                   help='run every configuration in this process (peak RSS then accumulates)')
    p.add_argument('--child', nargs=2, metavar=('IMPL', 'H'), help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.child:
        print(json.dumps(run_child(args, args.child[0], int(args.child[1]))))
        return

    import chainer
    results = []
    for H in args.sizes:
        for impl in args.impl:
            if args.inline:
                results.append(run_child(args, impl, H))
                continue
            r = subprocess.run(child_argv(args, impl, H), env=thread_env(args),
                               capture_output=True, text=True)
            sys.stderr.write(r.stderr)
            if r.returncode:
                raise SystemExit('child %s H=%d failed (exit %d)' % (impl, H, r.returncode))
            results.append(json.loads(r.stdout.strip().splitlines()[-1]))
    out = {
        'benchmark': 'charlm', 'framework': 'chainer', 'chainer': chainer.__version__,
        'numpy': numpy.__version__, 'python': platform.python_version(),
        'cpus': os.cpu_count(),
        'blas_threads': {k: thread_env(args).get(k, 'unset') for k in THREAD_VARS},
        'loadavg_1m': round(os.getloadavg()[0], 2),
        'model': 'EmbedID(65,H) -> 2-layer LSTM -> Linear(H,65) -> softmax CE (mean over '
                 'the window) -> backward -> Adam(alpha=2e-3); state carried, '
                 'unchain_backward per window',
        'batchsize': args.batchsize, 'bptt': args.bptt, 'vocab': VOCAB,
        'stepwise_loss': args.stepwise_loss, 'chars_per_window': args.batchsize * args.bptt,
        'results': results,
    }
    print(json.dumps(out, indent=2))


if __name__ == '__main__':
    main()
