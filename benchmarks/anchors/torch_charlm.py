"""PyTorch anchor for ``benchmarks/charlm.py``: the same truncated-BPTT char-LM window.

Run with the anchor venv (this file never imports seqdbr)::

    /opt/venv-torch/bin/python benchmarks/anchors/torch_charlm.py [--sizes 128 512]
        [--impl stepwise nstep] [--windows 20] [--warmup 3] [--threads 2]

One window = Embedding(65, H) -> 2-layer LSTM (H -> H -> H) -> Linear(H, 65) -> softmax
cross-entropy (mean over the B*T tokens of the window) -> backward -> Adam(lr=2e-3), with
batch B=50 parallel streams and T=50 steps, on random tokens (vocab 65). The hidden state
is carried from window to window and detached after each update (truncated BPTT, the
PyTorch spelling of ``unchain_backward``).

Implementations:

* ``stepwise``: ``nn.LSTMCell`` per layer in a Python loop over the T steps. The window
  is embedded at once and cut with ``unbind(1)``; by default (``--stepwise-loss window``)
  the T outputs are stacked and one Linear + one cross-entropy run over the window;
  ``--stepwise-loss step`` computes a Linear + cross-entropy per step (embedding per
  step) and averages the T step losses.
* ``nstep``: fused ``nn.LSTM(H, H, num_layers=2, batch_first=True)`` over the window.

chars/s, peak RSS (one fresh child process per (impl, H)) and the matrix-multiply limit
(the float32 matmuls of one window, timed after every timed window) are measured exactly
as in ``benchmarks/charlm.py``, by ``common.measure_charlm_windows``, with the same keys
(``rss_before_mb`` includes the interpreter, torch and the model). The matmuls run
with NumPy (the same OpenBLAS as seqdbr's NumPy, so the ratios compare across
frameworks); ``torch_*`` keys give the limit with torch matmuls (MKL), timed after the
loop (``--mm-repeats`` runs), for reference. Prints one JSON object on stdout.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import common  # noqa: E402

VOCAB = 65
N_LAYERS = 2


# -- the model ------------------------------------------------------------------------------------
def build(torch, impl, H, B, T, stepwise_loss):
    nn = torch.nn
    Fn = torch.nn.functional

    class StepwiseLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(VOCAB, H)
            self.cells = nn.ModuleList([nn.LSTMCell(H, H) for _ in range(N_LAYERS)])
            self.out = nn.Linear(H, VOCAB)
            self.state = None

        def step(self, h, state):
            new = []
            for cell, hc in zip(self.cells, state):
                hc = cell(h, hc)
                h = hc[0]
                new.append(hc)
            return h, new

        def forward(self, x, t):
            if self.state is None:
                z = torch.zeros(B, H)
                self.state = [(z, z)] * N_LAYERS
            state = self.state
            if stepwise_loss == 'step':
                loss = 0
                for j in range(T):
                    h, state = self.step(self.embed(x[:, j]), state)
                    loss = loss + Fn.cross_entropy(self.out(h), t[:, j])
                loss = loss / T
            else:
                cols = []
                for e in self.embed(x).unbind(1):      # (B, H) per step
                    h, state = self.step(e, state)
                    cols.append(h)
                y = self.out(torch.stack(cols, 1).reshape(B * T, H))
                loss = Fn.cross_entropy(y, t.reshape(B * T))
            self.state = [(h.detach(), c.detach()) for h, c in state]
            return loss

    class NStepLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(VOCAB, H)
            self.rnn = nn.LSTM(H, H, num_layers=N_LAYERS, batch_first=True)
            self.out = nn.Linear(H, VOCAB)
            self.state = None

        def forward(self, x, t):
            ys, (hy, cy) = self.rnn(self.embed(x), self.state)
            self.state = (hy.detach(), cy.detach())
            y = self.out(ys.reshape(B * T, H))
            return Fn.cross_entropy(y, t.reshape(B * T))

    model = StepwiseLM() if impl == 'stepwise' else NStepLM()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    return model, opt


def run_child(args, impl, H):
    import torch
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    B, T = args.batchsize, args.bptt
    model, opt = build(torch, impl, H, B, T, args.stepwise_loss)
    wins = [(torch.from_numpy(x), torch.from_numpy(t))
            for x, t in common.make_token_windows(B, T, 8, args.seed, VOCAB)]

    def window(i):
        x, t = wins[i % len(wins)]
        loss = model(x, t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    res = {'impl': impl, 'hidden': H,
           'implementation': ('nn.LSTMCell loop' if impl == 'stepwise' else 'nn.LSTM (fused)')}
    r, ops = common.measure_charlm_windows(
        window, lambda: common.charlm_mm_operands(H, B, T, VOCAB, args.seed), B, T, H, VOCAB,
        args.windows, args.warmup, args.settle)
    res.update(r)
    # reference only: the same matmul set with torch (MKL), timed after the loop
    with torch.no_grad():
        ot = {k: torch.from_numpy(v) for k, v in ops.items()}
        for suffix, fused in (('', False), ('_fused_gW', True)):
            t = common.time_matmuls(common.charlm_window_matmuls, args.mm_repeats, ot, T, fused)
            res['torch_matmul_limited_chars_per_s' + suffix] = round(B * T / t, 1)
            res['torch_ratio_to_matmul_limit' + suffix] = round(
                res['chars_per_s'] * t / (B * T), 3)
    return res


def main(argv=None):
    p = common.make_parser(__doc__)
    common.add_charlm_args(p, threads_default=2,
                           threads_help='torch.set_num_threads, and OMP/MKL/OPENBLAS_NUM_'
                                        'THREADS for the child processes when not already set')
    p.add_argument('--mm-repeats', type=int, default=5,
                   help='repetitions of the torch matmul set timed after the loop')
    common.add_charlm_loop_args(p)
    p.add_argument('--seed', type=int, default=0)
    common.add_child_args(p)
    args = p.parse_args(argv)
    if common.serve_child(args, run_child):
        return

    import torch
    results = common.run_configs(
        args, run_child, __file__,
        ['--threads', str(args.threads), '--mm-repeats', str(args.mm_repeats)],
        common.thread_env(args.threads, keep_set=True))
    out = common.charlm_output(
        args, 'torch', {'torch': torch.__version__},
        'Embedding(65,H) -> 2-layer LSTM -> Linear(H,65) -> softmax CE (mean over the window) '
        '-> backward -> Adam(lr=2e-3); state carried, detached per window',
        results, VOCAB, threads=args.threads)
    common.emit(out)


if __name__ == '__main__':
    main()
