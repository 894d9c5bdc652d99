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
import os
import sys

import numpy

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH_DIR)
sys.path.insert(0, os.path.join(BENCH_DIR, os.pardir))

import common  # noqa: E402

VOCAB = 65
N_LAYERS = 2


# -- the model ------------------------------------------------------------------------------------
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
    wins = common.make_token_windows(B, T, 8, args.seed, VOCAB, numpy.int32)

    def window(i):
        x, t = wins[i % len(wins)]
        return bptt_update(model, opt, x, t, mode=mode)

    res = {'impl': impl, 'hidden': H, 'implementation': desc, 'bptt_mode': mode}
    res.update(common.measure_charlm_windows(
        window, lambda: common.charlm_mm_operands(H, B, T, VOCAB, args.seed), B, T, H, VOCAB,
        args.windows, args.warmup, args.settle)[0])
    if args.profile and impl in args.profile_impl:
        text = common.profile_text(window, args.profile_windows, args.top)
        sys.stderr.write('=== cProfile: %s H=%d, %d windows, top %d by tottime ===\n%s'
                         % (desc, H, args.profile_windows, args.top, text))
    return res


def main(argv=None):
    p = common.make_parser(__doc__)
    common.add_charlm_args(p)
    common.add_charlm_loop_args(p)
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
    common.add_child_args(p)
    args = p.parse_args(argv)
    if common.serve_child(args, run_child):
        return

    import seqdbr
    env = common.thread_env(args.threads)
    extra = ['--nstep-xs', args.nstep_xs, '--model', args.model,
             '--profile-windows', str(args.profile_windows), '--top', str(args.top),
             '--profile-impl'] + list(args.profile_impl) + (['--profile'] if args.profile else [])
    results = common.run_configs(args, run_child, __file__, extra, env, label='charlm: child')
    out = common.charlm_output(
        args, 'seqdbr', {'seqdbr': seqdbr.__version__},
        'EmbedID(65,H) -> 2-layer LSTM -> Linear(H,65) -> softmax CE (mean over the window) '
        '-> backward -> Adam(alpha=2e-3); state carried, unchain_backward per window '
        '(bptt_update)',
        results, VOCAB, blas_env=env, model_source=args.model, nstep_xs=args.nstep_xs)
    common.emit(out)


if __name__ == '__main__':
    main()
