"""Cross-check: seqdbr's word-LM training step (PTB "small" settings) against the PyTorch
anchor's (``anchors/torch_wordlm.py``), window by window, in float64.

Run with the PyTorch venv's interpreter (it imports torch, the anchor and seqdbr from this
checkout)::

    /work/wt/_torchvenv/bin/python benchmarks/crosscheck_torch_wordlm.py \\
        [--data-dir ../shared/data/ptb] [--windows 30]

seqdbr's ``WordLM`` is built (``U(-0.1, 0.1)`` init) and its weights are copied into the
anchor's model (``nn.Embedding`` -> ``nn.LSTM`` -> ``nn.Linear``). Both then take SGD steps
on the same PTB windows (batch 20, bptt 20, state carried): seqdbr through
``BPTTUpdater``'s ``bptt_update`` with the program's optimizer (lr ``1 * T`` on the mean
loss, clip ``5 / T``), PyTorch as the anchor does (loss summed over the steps, clip 5, lr 1).
Three pairings:

* ``one_bias``: seqdbr with one bias per layer; PyTorch with ``bias_hh`` zero and frozen;
* ``bias_pair``: both with two biases (``b`` = ``bias_ih``, ``b_hh`` = ``bias_hh``);
* ``one_vs_pair``: seqdbr's one bias against PyTorch's standard two.

Prints JSON: per pairing the losses of a few windows on both sides, the largest loss
difference, and the largest ``W_hh`` difference after the last window. The first two agree
to float64 rounding amplified by the chaotic dynamics; the third parts after the first
update, because the bias pair moves the bias twice as far (each gets the same gradient).
"""
import argparse
import json
import os
import sys

import numpy
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, os.pardir))
sys.path.insert(0, os.path.join(HERE, 'anchors'))

import torch_wordlm as TW  # noqa: E402
from seqdbr import optimizers as O  # noqa: E402
from seqdbr.datasets import ptb  # noqa: E402
from seqdbr.rnn.bptt import ParallelSequentialBatcher, bptt_update  # noqa: E402
from seqdbr.wordlm.model import WordLM  # noqa: E402

T, B, H = 20, 20, 200


def _pair_models(V, seqdbr_pair, torch_frozen_hh):
    m = WordLM(V, H, 2, 0.0, 0.1, bias_pair=seqdbr_pair)
    for _, p in m.namedparams():
        p.array = p.array.astype(numpy.float64)
    tm = TW.Model(V, H, 2, 0.0, 0.1).double()
    P = {k: torch.from_numpy(p.array) for k, p in m.namedparams()}
    with torch.no_grad():
        tm.embed.weight.copy_(P['/embed/W'])
        tm.out.weight.copy_(P['/out/W'])
        tm.out.bias.copy_(P['/out_b'])
        for l in range(2):
            getattr(tm.lstm, 'weight_ih_l%d' % l).copy_(P['/rnn/%d/W_ih' % l])
            getattr(tm.lstm, 'weight_hh_l%d' % l).copy_(P['/rnn/%d/W_hh' % l])
            getattr(tm.lstm, 'bias_ih_l%d' % l).copy_(P['/rnn/%d/b' % l])
            hh = getattr(tm.lstm, 'bias_hh_l%d' % l)
            hh.copy_(P['/rnn/%d/b_hh' % l] if seqdbr_pair else torch.zeros_like(hh))
            if torch_frozen_hh:
                hh.requires_grad_(False)
    return m, tm


def run(ids, V, windows, seqdbr_pair, torch_frozen_hh):
    m, tm = _pair_models(V, seqdbr_pair, torch_frozen_hh)
    opt = O.SGD(lr=1.0 * T)
    opt.setup(m)
    opt.add_hook(O.hooks.GradientClipping(5.0 / T))
    batcher = ParallelSequentialBatcher(ids, B, T)
    tx, tt, _ = TW.streams(torch.from_numpy(ids.astype(numpy.int64)), B)
    params = [p for p in tm.parameters() if p.requires_grad]
    state, rows, worst = None, [], 0.0
    for i in range(windows):
        x, t = batcher.next_window()
        xs, ts = tx[:, i * T:(i + 1) * T], tt[:, i * T:(i + 1) * T]
        assert numpy.array_equal(x, xs.numpy()) and numpy.array_equal(t, ts.numpy())
        ls = float(bptt_update(m, opt, x, t))
        if state is not None:
            state = tuple(v.detach() for v in state)
        y, state = tm(xs, state)
        loss = torch.nn.functional.cross_entropy(y.reshape(-1, V), ts.reshape(-1))
        tm.zero_grad()
        (loss * T).backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        with torch.no_grad():
            for p in params:
                p.add_(p.grad, alpha=-1.0)
        lt = float(loss.detach())
        worst = max(worst, abs(ls - lt))
        if i < 3 or i == windows - 1:
            rows.append({'window': i, 'seqdbr': ls, 'torch': lt})
    P = dict(m.namedparams())
    dw = max(float(numpy.abs(P['/rnn/%d/W_hh' % l].array - getattr(
        tm.lstm, 'weight_hh_l%d' % l).detach().numpy()).max()) for l in range(2))
    return {'losses': rows, 'max_loss_diff': worst, 'max_W_hh_diff_at_end': dw}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--data-dir', default=os.path.join(HERE, os.pardir, os.pardir, 'shared',
                                                       'data', 'ptb'))
    ap.add_argument('--windows', type=int, default=30)
    a = ap.parse_args()
    corpus = ptb.load_ptb(a.data_dir, allow_download=False)
    ids, V = numpy.asarray(corpus.train), len(corpus.vocab)
    out = {'benchmark': 'crosscheck_torch_wordlm', 'windows': a.windows, 'dtype': 'float64',
           'torch': torch.__version__}
    for name, pair, frozen in (('one_bias', False, True), ('bias_pair', True, False),
                               ('one_vs_pair', False, False)):
        out[name] = run(ids, V, a.windows, pair, frozen)
    print(json.dumps(out, indent=1))


if __name__ == '__main__':
    main()
