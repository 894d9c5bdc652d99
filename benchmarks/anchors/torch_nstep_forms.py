"""PyTorch anchor of ``benchmarks/nstep_forms.py`` (a worker it starts; never imports seqdbr).

The same window: Embedding(V, H) -> ``nn.LSTM(H, H, num_layers=2)`` -> Linear(H, V) ->
cross-entropy (mean) -> backward -> Adam(lr=2e-3), state carried and detached per window.
Forms: ``padded`` (``batch_first`` ``(B, T, H)`` input) and ``packed`` (the variable-length
batch of ``nstep_forms.varlen_lengths`` through ``pack_sequence(enforce_sorted=False)``;
the loss reads the packed outputs against the targets packed the same way).

    /work/wt/_torchvenv/bin/python benchmarks/anchors/torch_nstep_forms.py --worker padded 128
"""
import argparse
import os
import sys

BENCH_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, BENCH_DIR)

import common  # noqa: E402
import interleave  # noqa: E402

N_LAYERS = 2


def varlen_lengths(B, T):
    """Same as ``nstep_forms.varlen_lengths`` (kept here: anchors do not import seqdbr code)."""
    return [T - (b * (T // 2)) // max(B - 1, 1) for b in range(B)]


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--worker', nargs=2, metavar=('FORM', 'H'), required=True)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--batchsize', type=int, default=50)
    p.add_argument('--bptt', type=int, default=50)
    p.add_argument('--vocab', type=int, default=65)
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--seed', type=int, default=0)
    args = p.parse_args()
    import torch
    from torch import nn
    from torch.nn.utils.rnn import pack_sequence
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    form, H = args.worker[0], int(args.worker[1])
    V, B, T = args.vocab, args.batchsize, args.bptt
    embed, rnn, out = nn.Embedding(V, H), nn.LSTM(H, H, num_layers=N_LAYERS, batch_first=True), \
        nn.Linear(H, V)
    params = list(embed.parameters()) + list(rnn.parameters()) + list(out.parameters())
    opt = torch.optim.Adam(params, lr=2e-3)
    wins = [(torch.from_numpy(x).long(), torch.from_numpy(t).long())
            for x, t in common.make_token_windows(B, T, 8, args.seed, V)]
    lens = varlen_lengths(B, T)
    state = [None]

    def window(i):
        x, t = wins[i % len(wins)]
        if form == 'padded':
            ys, (hy, cy) = rnn(embed(x), state[0])
            y, target = ys.reshape(B * T, H), t.reshape(B * T)
        else:
            packed = pack_sequence([embed(x[b, :n]) for b, n in enumerate(lens)],
                                   enforce_sorted=False)
            ys, (hy, cy) = rnn(packed, state[0])
            y = ys.data
            target = pack_sequence([t[b, :n] for b, n in enumerate(lens)],
                                   enforce_sorted=False).data
        state[0] = (hy.detach(), cy.detach())
        loss = nn.functional.cross_entropy(out(y), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    interleave.serve(window, args.warmup)


if __name__ == '__main__':
    main()
