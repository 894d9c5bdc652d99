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

chars/s, peak RSS (one fresh child process per (impl, H)) and the matrix-multiply limit
(the float32 matmuls of one window, timed after every timed window) are measured exactly
as in ``benchmarks/charlm.py``, by ``common.measure_charlm_windows``, with the same keys
(``rss_before_mb`` includes the interpreter, Chainer and the model). The matmuls run
with this venv's NumPy (1.26, its own OpenBLAS build: compare ratios, not absolute
numbers, across venvs). Prints one JSON object on stdout.
"""
import os
import sys

import numpy

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import common  # noqa: E402

VOCAB = 65
N_LAYERS = 2


# -- the model ------------------------------------------------------------------------------------
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
    wins = common.make_token_windows(B, T, 8, args.seed, VOCAB, numpy.int32)

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
    res.update(common.measure_charlm_windows(
        window, lambda: common.charlm_mm_operands(H, B, T, VOCAB, args.seed), B, T, H, VOCAB,
        args.windows, args.warmup, args.settle)[0])
    res['chainer_version'] = chainer.__version__
    return res


def main(argv=None):
    p = common.make_parser(__doc__)
    common.add_charlm_args(p)
    common.add_charlm_loop_args(p)
    p.add_argument('--seed', type=int, default=0)
    common.add_child_args(p)
    args = p.parse_args(argv)
    if common.serve_child(args, run_child):
        return

    import chainer
    env = common.thread_env(args.threads)
    results = common.run_configs(args, run_child, __file__, env=env)
    out = common.charlm_output(
        args, 'chainer', {'chainer': chainer.__version__},
        'EmbedID(65,H) -> 2-layer LSTM -> Linear(H,65) -> softmax CE (mean over the window) '
        '-> backward -> Adam(alpha=2e-3); state carried, unchain_backward per window',
        results, VOCAB, blas_env=env)
    common.emit(out)


if __name__ == '__main__':
    main()
