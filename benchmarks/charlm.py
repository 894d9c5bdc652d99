"""Char-LM training throughput: one truncated-BPTT window of a 2-layer LSTM language model.

One window = EmbedID(65, H) -> 2-layer LSTM (H -> H -> H) -> Linear(H, 65) -> softmax
cross-entropy (mean over the B*T tokens of the window) -> backward -> Adam(alpha=2e-3),
with batch B=50 parallel streams and T=50 steps (bptt), on random tokens (vocab 65). It
is run exactly as in training, by ``seqdbr.rnn.bptt.bptt_update``: ``cleargrads``,
``backward``, ``unchain_backward()``, ``update``; the hidden state is carried from one
window to the next.

Implementations (``--impl``):

* ``stepwise``: one stateful ``L.LSTM`` per layer, called once per time step in a Python
  loop. The window is embedded at once and cut into steps with ``F.separate``; by default
  (``--stepwise-loss window``) the T outputs are stacked and one Linear + one
  cross-entropy run over the window; ``--stepwise-loss step`` instead computes a Linear +
  cross-entropy per step (``bptt_update(mode='step')``, embedding per step).
* ``nstep``: one ``L.NStepLSTM(2, H, H, 0.0)`` over the window, fed the embedded window as
  one ``(B, T, H)`` array (``--nstep-xs 3d``, the fast form) or as a list of B sequences
  ``(T, H)`` (``--nstep-xs list``, via ``F.separate`` / ``F.stack``).

``--model charrnn`` runs the application's own model instead
(``seqdbr.charlm.model.CharRNN(65, H, 2, impl=...)``, ``bptt_update(mode='window')``).

chars/s = B*T / (median window time) over ``--windows`` timed windows after ``--warmup``
untimed ones. Each (impl, H) runs in a fresh child process, so ``peak_rss_mb``
(``ru_maxrss``, read after the warm-up windows and before the matmul operands below are
allocated) is that configuration's own peak; ``rss_before_mb`` is the peak before the
first window (interpreter, NumPy, model) and ``peak_rss_mb_end`` the peak at the end.

Matrix-multiply limit, measured in the same child process: the float32 matmuls one window
needs, timed alone with NumPy (same BLAS, same threads) back to back -- per layer the
input projection ``(B*T, H) x (H, 4H)``, T recurrent ``(B, H) x (H, 4H)``, and the
backward of each (2 matmuls of the same size: input gradient and weight gradient), plus
the output layer ``(B*T, H) x (H, 65)`` forward and its 2 backward matmuls. Every timed
window is followed by one timed run of that set, so both see the same machine load (with
a ``--settle`` pause before and after it, so worker threads that spin after their work
go idle before the next part).
``matmul_limited_chars_per_s`` = B*T / (median matmul time): the speed of a framework with
zero cost besides those matmuls; ``ratio_to_matmul_limit`` = chars_per_s / that;
``ratio_to_matmul_limit_median_of_runs`` is the median of the per-window ratios and
``cpu_ratio_to_matmul_limit`` the same from process CPU time (all threads), both steadier
on a shared machine. The ``*_fused_gW`` keys time the recurrent weight gradient as one
``(4H, B*T) x (B*T, H)`` matmul instead of T small ones (same flops, fewer calls: a
stricter limit, the one the n-step backward can approach).

Run: ``python benchmarks/charlm.py [--sizes 128 512] [--impl stepwise nstep]
[--windows 20] [--warmup 3] [--threads N] [--profile]``. ``--profile`` also runs cProfile
over ``--profile-windows`` n-step windows (``--profile-impl`` to choose others) and prints
the top ``--top`` functions by their own time to stderr. ``--threads N`` sets
``OPENBLAS_NUM_THREADS``/``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` for the child processes
(default: inherit, i.e. the BLAS uses every core). Prints one JSON object on stdout.
"""
import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import resource
import statistics
import subprocess
import sys
import time

import numpy

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

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
    """The float32 matmuls of one window (both layers, forward and backward)."""
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


def window_flops(H, B, T, V):
    return N_LAYERS * 3 * 2 * (2 * B * T * H * 4 * H) + 3 * 2 * B * T * H * V


def rss_mb():
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


def timed(fn, *a):
    """(wall seconds, process CPU seconds of all threads) of one call."""
    c0, t0 = time.process_time(), time.perf_counter()
    fn(*a)
    return time.perf_counter() - t0, time.process_time() - c0


def measure(window, make_operands, B, T, H, V, windows, warmup, settle):
    """Warm-up windows, then ``windows`` timed windows, each followed by one timed run of
    the window's matmul set (per-step and fused recurrent weight gradient), so training
    and matmuls see the same machine load. Peak RSS is read after the warm-up, before the
    matmul operands exist."""
    rss_before = rss_mb()
    for i in range(warmup):
        window(i)
    peak = rss_mb()
    ops = make_operands()
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
    return {
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


# -- the model ------------------------------------------------------------------------------------
def make_windows(B, T, n, seed):
    """``n`` consecutive windows ``(x, t)`` of B parallel streams over one random token
    array (row b of window w+1 continues row b of window w, as the BPTT batcher does)."""
    rng = numpy.random.default_rng(seed)
    L = n * T
    tokens = rng.integers(0, VOCAB, B * L + 1).astype(numpy.int32)
    wins = []
    for w in range(n):
        x = numpy.stack([tokens[b * L + w * T: b * L + w * T + T] for b in range(B)])
        t = numpy.stack([tokens[b * L + w * T + 1: b * L + w * T + T + 1] for b in range(B)])
        wins.append((x, t))
    return wins


def build(impl, H, stepwise_loss, nstep_xs):
    """Returns (model, bptt mode)."""
    import seqdbr.functions as F
    import seqdbr.links as L
    from seqdbr.core.link import Chain, ChainList

    class StepwiseLM(Chain):
        """Embed -> L.LSTM per layer, one call per step -> Linear."""

        def __init__(self):
            super().__init__()
            with self.init_scope():
                self.embed = L.EmbedID(VOCAB, H)
                self.rnns = ChainList(*[L.LSTM(H, H) for _ in range(N_LAYERS)])
                self.out = L.Linear(H, VOCAB)

        def step(self, h):
            for link in self.rnns:
                h = link(h)
            return h

        def forward(self, x):
            if x.ndim == 1:                       # mode='step': one column, (B, V) logits
                return self.out(self.step(self.embed(x)))
            B, T = x.shape                        # mode='window': (B*T, V) logits
            cols = [self.step(e) for e in F.separate(self.embed(x), axis=1)]
            hs = F.stack(cols, axis=1)            # (B, T, H)
            return self.out(F.reshape(hs, (B * T, H)))

    class NStepLM(Chain):
        """Embed -> L.NStepLSTM over the window -> Linear; carries (hy, cy)."""

        def __init__(self):
            super().__init__()
            with self.init_scope():
                self.embed = L.EmbedID(VOCAB, H)
                self.rnn = L.NStepLSTM(N_LAYERS, H, H, 0.0)
                self.out = L.Linear(H, VOCAB)
            self.hx = self.cx = None

        def forward(self, x):
            B, T = x.shape
            e = self.embed(x)                     # (B, T, H)
            if nstep_xs == 'list':
                hy, cy, ys = self.rnn(self.hx, self.cx, list(F.separate(e, axis=0)))
                ys = F.stack(ys, axis=0)
            else:
                hy, cy, ys = self.rnn(self.hx, self.cx, e)
            # carried as they come: bptt_update's unchain_backward() makes the layer
            # outputs behind them leaves, as in seqdbr.charlm.model.CharRNN
            self.hx, self.cx = hy, cy
            return self.out(F.reshape(ys, (B * T, H)))

    if impl == 'stepwise':
        return StepwiseLM(), stepwise_loss
    return NStepLM(), 'window'


def run_child(args, impl, H):
    from seqdbr import optimizers
    from seqdbr.core import initializers
    from seqdbr.rnn.bptt import bptt_update
    initializers.set_seed(args.seed)
    B, T = args.batchsize, args.bptt
    if args.model == 'charrnn':
        from seqdbr.charlm.model import CharRNN
        model, mode = CharRNN(VOCAB, H, N_LAYERS, 0.0, 'lstm', impl), 'window'
        desc = 'CharRNN(impl=%r)' % impl
    else:
        model, mode = build(impl, H, args.stepwise_loss, args.nstep_xs)
        desc = ('L.LSTM loop' if impl == 'stepwise'
                else 'L.NStepLSTM (xs %s)' % args.nstep_xs)
    opt = optimizers.Adam(alpha=2e-3)
    opt.setup(model)
    wins = make_windows(B, T, 8, args.seed)

    def window(i):
        x, t = wins[i % len(wins)]
        return bptt_update(model, opt, x, t, mode=mode)

    res = {'impl': impl, 'hidden': H, 'implementation': desc, 'bptt_mode': mode}
    res.update(measure(window, lambda: mm_operands(H, B, T, VOCAB, args.seed), B, T, H, VOCAB,
                       args.windows, args.warmup, args.settle))
    if args.profile and impl in args.profile_impl:
        prof = cProfile.Profile()
        prof.enable()
        for i in range(args.profile_windows):
            window(i)
        prof.disable()
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats('tottime').print_stats(args.top)
        sys.stderr.write('=== cProfile: %s H=%d, %d windows, top %d by tottime ===\n%s'
                         % (desc, H, args.profile_windows, args.top, buf.getvalue()))
    return res


def child_argv(args, impl, H):
    argv = [sys.executable, os.path.abspath(__file__), '--child', impl, str(H),
            '--windows', str(args.windows), '--warmup', str(args.warmup),
            '--batchsize', str(args.batchsize), '--bptt', str(args.bptt),
            '--settle', str(args.settle), '--seed', str(args.seed),
            '--stepwise-loss', args.stepwise_loss, '--nstep-xs', args.nstep_xs,
            '--model', args.model, '--profile-windows', str(args.profile_windows),
            '--top', str(args.top), '--profile-impl'] + list(args.profile_impl)
    if args.profile:
        argv.append('--profile')
    return argv


def child_env(args):
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
    p.add_argument('--nstep-xs', choices=['3d', 'list'], default='3d')
    p.add_argument('--model', choices=['links', 'charrnn'], default='links',
                   help="'links': the model above; 'charrnn': seqdbr.charlm.model.CharRNN")
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--profile', action='store_true',
                   help='cProfile a few windows and print the top functions to stderr')
    p.add_argument('--profile-windows', type=int, default=5)
    p.add_argument('--profile-impl', nargs='+', choices=['stepwise', 'nstep'],
                   default=['nstep'])
    p.add_argument('--top', type=int, default=30, help='rows of the profile to print')
    p.add_argument('--inline', action='store_true',
                   help='run every configuration in this process (peak RSS then accumulates)')
    p.add_argument('--child', nargs=2, metavar=('IMPL', 'H'), help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.child:
        print(json.dumps(run_child(args, args.child[0], int(args.child[1]))))
        return

    import seqdbr
    results = []
    for H in args.sizes:
        for impl in args.impl:
            if args.inline:
                results.append(run_child(args, impl, H))
                continue
            r = subprocess.run(child_argv(args, impl, H), env=child_env(args),
                               capture_output=True, text=True)
            sys.stderr.write(r.stderr)
            if r.returncode:
                raise SystemExit('charlm: child %s H=%d failed (exit %d)'
                                 % (impl, H, r.returncode))
            results.append(json.loads(r.stdout.strip().splitlines()[-1]))
    env = child_env(args)
    out = {
        'benchmark': 'charlm', 'framework': 'seqdbr', 'seqdbr': seqdbr.__version__,
        'numpy': numpy.__version__, 'python': platform.python_version(),
        'cpus': os.cpu_count(),
        'blas_threads': {k: env.get(k, 'unset') for k in THREAD_VARS},
        'loadavg_1m': round(os.getloadavg()[0], 2),
        'model': 'EmbedID(65,H) -> 2-layer LSTM -> Linear(H,65) -> softmax CE (mean over the '
                 'window) -> backward -> Adam(alpha=2e-3); state carried, unchain_backward '
                 'per window (bptt_update)',
        'model_source': args.model,
        'batchsize': args.batchsize, 'bptt': args.bptt, 'vocab': VOCAB,
        'stepwise_loss': args.stepwise_loss, 'nstep_xs': args.nstep_xs,
        'chars_per_window': args.batchsize * args.bptt,
        'results': results,
    }
    print(json.dumps(out, indent=2))


if __name__ == '__main__':
    main()
