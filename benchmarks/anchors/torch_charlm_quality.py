"""PyTorch anchor for ``benchmarks/charlm_quality.py``: val loss against wall-clock minutes.

Run with the anchor venv (this file never imports seqdbr)::

    /opt/venv-torch/bin/python benchmarks/anchors/torch_charlm_quality.py --minutes 6

The same job as the seqdbr quality run, written the way a PyTorch user would:
Embedding(V, 128) -> ``nn.LSTM(128, 128, num_layers=2, batch_first=True)`` ->
Linear(128, V), PyTorch's default initialisation, Adam(lr=2e-3), global-norm gradient
clipping at 5, lr x 0.97 per epoch after 10 epochs, batch 50 parallel streams, windows of
50 characters, the hidden state carried between windows (detached) and reset at each epoch
start. Tiny Shakespeare is split 90/10 contiguously (the first ``int(0.9 N)`` characters
train); the whole validation split is scored every ``--eval-every`` iterations from a fresh
state, in the same 50-stream layout, under ``torch.no_grad()``.

``minutes`` in the curve is wall-clock time since training started, evaluation included
(as in the seqdbr run's log); ``train_minutes`` excludes the time spent evaluating.
Prints one JSON object on stdout.
"""
import argparse
import json
import math
import os
import pathlib
import time

import sys

import numpy

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common import bigram_baseline  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--corpus', default=str(ROOT.parent / 'shared' / 'data' / 'tinyshakespeare'
                                           / 'input.txt'))
    p.add_argument('--minutes', type=float, default=6.0)
    p.add_argument('--max-epochs', type=float, default=None,
                   help='also stop after this many epochs (for per-epoch seed studies)')
    p.add_argument('--eval-every', type=int, default=100)
    p.add_argument('--target', type=float, default=1.56)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--seed', type=int, default=123)
    args = p.parse_args()

    import torch
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    nn = torch.nn

    with open(args.corpus, encoding='utf-8') as f:
        text = f.read()
    chars = sorted(set(text))
    V = len(chars)
    index = {c: i for i, c in enumerate(chars)}
    ids = numpy.array([index[c] for c in text], dtype=numpy.int64)
    n_train = int(len(ids) * 0.9)
    train_ids, val_ids = ids[:n_train], ids[n_train:]
    baseline = bigram_baseline(train_ids, val_ids, V)

    B, T, H = 50, 50, 128

    def streams(a):
        L = (len(a) - 1) // B
        x = torch.from_numpy(a[:B * L].reshape(B, L).copy())
        t = torch.from_numpy(a[1:B * L + 1].reshape(B, L).copy())
        return x, t, L

    class CharLSTM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(V, H)
            self.rnn = nn.LSTM(H, H, num_layers=2, batch_first=True)
            self.out = nn.Linear(H, V)

        def forward(self, x, state):
            y, state = self.rnn(self.embed(x), state)
            return self.out(y), state

    model = CharLSTM()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    ce = nn.functional.cross_entropy
    tx, tt, L = streams(train_ids)
    vx, vt, VL = streams(val_ids)
    wpe = L // T

    def evaluate():
        # full val pass in the same 50-stream layout, fresh state (the tail beyond B*VL,
        # fewer than 50 characters, is left out: it moves the mean by < 1e-4)
        total, n, state = 0.0, 0, None
        with torch.no_grad():
            for lo in range(0, VL, T):
                hi = min(lo + T, VL)
                y, state = model(vx[:, lo:hi], state)
                total += float(ce(y.reshape(-1, V), vt[:, lo:hi].reshape(-1), reduction='sum'))
                n += B * (hi - lo)
        return total / n

    curve = []
    it = 0
    eval_s = 0.0
    state = None
    t0 = time.perf_counter()
    budget = args.minutes * 60.0
    while True:
        k = it % wpe
        epoch = it // wpe
        if k == 0:
            state = None
            lr = 2e-3 * 0.97 ** max(0, epoch - 9)      # decays once 10 epochs are done
            for g in opt.param_groups:
                g['lr'] = lr
        x = tx[:, k * T:(k + 1) * T]
        t = tt[:, k * T:(k + 1) * T]
        y, state = model(x, state)
        loss = ce(y.reshape(-1, V), t.reshape(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        state = tuple(s.detach() for s in state)
        it += 1
        now = time.perf_counter()
        done = now - t0 >= budget or (args.max_epochs is not None
                                      and it >= args.max_epochs * wpe)
        if it % args.eval_every == 0 or done:
            train_s = now - t0 - eval_s
            e0 = time.perf_counter()
            val = evaluate()
            eval_s += time.perf_counter() - e0
            curve.append({'iteration': it, 'epoch': round(it / wpe, 3),
                          'minutes': round((now - t0) / 60.0, 3),
                          'train_minutes': round(train_s / 60.0, 3),
                          'val_loss': round(val, 4), 'train_loss': round(loss.item(), 4)})
        if done:
            break
    wall = time.perf_counter() - t0
    best = min(curve, key=lambda r: r['val_loss'])
    first = next((r for r in curve if r['val_loss'] <= args.target), None)
    print(json.dumps({
        'benchmark': 'charlm_quality', 'framework': 'torch %s' % torch.__version__,
        'corpus': args.corpus, 'split': '90/10 contiguous',
        'model': '2x128 nn.LSTM, char-rnn defaults', 'threads': args.threads,
        'budget_minutes': args.minutes, 'max_epochs': args.max_epochs, 'seed': args.seed,
        'wall_minutes_incl_eval': round(wall / 60, 2),
        'eval_minutes': round(eval_s / 60, 2), 'iterations': it,
        'epochs': round(it / wpe, 3),
        'train_chars_per_s': round(it * B * T / (wall - eval_s), 1),
        'bigram_baseline_nats': round(baseline, 4), 'target_nats': args.target,
        'first_at_or_below_target': first, 'best': best, 'curve': curve,
        'loadavg_1m': os.getloadavg()[0],
    }, indent=1))


if __name__ == '__main__':
    main()
