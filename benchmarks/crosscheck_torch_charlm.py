"""Cross-check: seqdbr's char-LM training step against PyTorch's, step by step, in float64.

Run with the PyTorch venv's interpreter (it imports both torch and seqdbr from this
checkout)::

    /opt/venv-torch/bin/python benchmarks/crosscheck_torch_charlm.py [--steps 30]

A PyTorch model (``nn.Embedding(V, 128)`` -> ``nn.LSTM(128, 128, 2)`` -> ``nn.Linear``) is
built with PyTorch's initialisation, converted to float64, and its weights are copied
into seqdbr's ``CharRNN`` (n-step; its single LSTM bias ``b = b_ih + b_hh``). Both then
train on the same Tiny Shakespeare windows (batch 50, bptt 50, state carried), with
Adam(2e-3) and global-norm clipping at 5 on each side. Two conventions are mapped so
that the two runs are the same mathematical procedure:

* PyTorch's LSTM has two bias vectors with identical gradients, each moved by Adam, so
  their sum moves twice as far: seqdbr's single bias gets ``alpha = 4e-3``;
* PyTorch adds ``eps`` to ``sqrt(v_hat)``, seqdbr (like Chainer and Kingma & Ba's
  "epsilon hat") to ``sqrt(v)``: seqdbr's eps is set to ``1e-8 * sqrt(1 - beta2**t)`` at
  step ``t`` (``--no-torch-eps`` keeps 1e-8), which makes the two updates identical.

Prints JSON: the loss of each step on both sides, the largest difference, and the largest
parameter difference at the end. Measured 2026-11-29 (``results/crosscheck_torch_charlm.json``):
over 30 steps every loss agrees to 8.9e-16 and every weight and bias to 2.8e-15 with the
eps mapping; without it the first update already moves the next loss by 1.6e-4 and the losses
drift apart by up to 3.8e-3 (the eps placement matters while ``v`` is small).

``--dtype float32 --steps 1203`` runs both sides in float32 as training does, for three
epochs (the carried state is reset at each epoch start, as in both trainers). Rounding then
separates the two runs slowly, so the output adds the mean loss of each block of 100 steps.
Measured 2026-11-29 (``results/crosscheck_torch_charlm_float32.json``, seed 0): the block means
agree to 4e-5 over the first 1,100 steps and to 1.5e-4 over the next 100; the largest
single-step difference is 2.2e-3. So seqdbr's float32 arithmetic (including the polynomial
``exp`` of the compiled cells) trains the model as PyTorch's does.
"""
import argparse
import json
import os
import pathlib
import sys

import numpy

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--steps', type=int, default=30)
    p.add_argument('--corpus', default=str(ROOT.parent / 'shared' / 'data' / 'tinyshakespeare'
                                           / 'input.txt'))
    p.add_argument('--no-torch-eps', dest='torch_eps', action='store_false')
    p.add_argument('--dtype', choices=['float64', 'float32'], default='float64',
                   help='float32 runs both sides as in training (they then drift apart by '
                        'rounding; compare the mean losses over --steps)')
    p.add_argument('--seed', type=int, default=0)
    args = p.parse_args()

    import torch
    from seqdbr import optimizers as O
    from seqdbr.charlm.model import CharRNN
    from seqdbr.core import optimizer_hooks
    from seqdbr.rnn.bptt import bptt_update

    torch.manual_seed(args.seed)
    dt = numpy.dtype(args.dtype)
    with open(args.corpus, encoding='utf-8') as f:
        text = f.read()
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    V, B, T, H = len(chars), 50, 50, 128
    ids = numpy.array([index[c] for c in text], dtype=numpy.int64)
    L = (len(ids) - 1) // B
    X = ids[:B * L].reshape(B, L)
    Y = ids[1:B * L + 1].reshape(B, L)
    nn = torch.nn

    class TorchLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(V, H)
            self.rnn = nn.LSTM(H, H, 2, batch_first=True)
            self.out = nn.Linear(H, V)

        def forward(self, x, state):
            y, state = self.rnn(self.embed(x), state)
            return self.out(y), state

    tm = TorchLM().double() if args.dtype == 'float64' else TorchLM()
    model = CharRNN(V, H, 2)
    for _, param in model.namedparams():
        param.array = param.array.astype(dt)
    w = {'embed/W': tm.embed.weight, 'out/W': tm.out.weight, 'out/b': tm.out.bias}
    arrays = {k: v.detach().numpy().copy() for k, v in w.items()}
    for l in range(2):
        arrays['rnn/%d/W_ih' % l] = getattr(tm.rnn, 'weight_ih_l%d' % l).detach().numpy().copy()
        arrays['rnn/%d/W_hh' % l] = getattr(tm.rnn, 'weight_hh_l%d' % l).detach().numpy().copy()
        arrays['rnn/%d/b' % l] = (getattr(tm.rnn, 'bias_ih_l%d' % l)
                                  + getattr(tm.rnn, 'bias_hh_l%d' % l)).detach().numpy().copy()
    model.load_canonical(arrays)
    opt = O.Adam(alpha=2e-3)
    opt.setup(model)
    opt.add_hook(optimizer_hooks.GradientClipping(5.0))
    for layer in model.rnn:
        layer.b.update_rule.hyperparam.alpha = 4e-3     # two PyTorch biases move together
    topt = torch.optim.Adam(tm.parameters(), lr=2e-3)

    state = None
    losses = []
    wpe = L // T
    for k in range(args.steps):
        if k % wpe == 0:
            state = None
            model.reset_state()
        kk = k % wpe
        x, t = X[:, kk * T:(kk + 1) * T], Y[:, kk * T:(kk + 1) * T]
        y, state = tm(torch.from_numpy(x), state)
        loss = nn.functional.cross_entropy(y.reshape(-1, V), torch.from_numpy(t).reshape(-1))
        topt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(tm.parameters(), 5.0)
        topt.step()
        state = tuple(s.detach() for s in state)
        opt.hyperparam.eps = 1e-8 * (numpy.sqrt(1 - 0.999 ** (k + 1)) if args.torch_eps else 1)
        ours = bptt_update(model, opt, x.astype(numpy.int32), t.astype(numpy.int32),
                           mode='window')
        losses.append((loss.item(), ours))
    final = model.canonical_arrays()
    theirs = {'embed/W': tm.embed.weight, 'out/W': tm.out.weight, 'out/b': tm.out.bias}
    theirs = {k: v.detach().numpy() for k, v in theirs.items()}
    for l in range(2):
        theirs['rnn/%d/W_hh' % l] = getattr(tm.rnn, 'weight_hh_l%d' % l).detach().numpy()
        theirs['rnn/%d/W_ih' % l] = getattr(tm.rnn, 'weight_ih_l%d' % l).detach().numpy()
        theirs['rnn/%d/b' % l] = (getattr(tm.rnn, 'bias_ih_l%d' % l)
                                  + getattr(tm.rnn, 'bias_hh_l%d' % l)).detach().numpy()
    print(json.dumps({
        'benchmark': 'crosscheck_torch_charlm', 'torch': torch.__version__,
        'steps': args.steps, 'torch_eps_mapping': args.torch_eps, 'dtype': args.dtype,
        'seed': args.seed,
        'mean_loss_torch_seqdbr_by_100_steps': [
            [round(float(numpy.mean([a for a, _ in losses[i:i + 100]])), 5),
             round(float(numpy.mean([b for _, b in losses[i:i + 100]])), 5)]
            for i in range(0, len(losses), 100)],
        'max_abs_loss_diff': max(abs(a - b) for a, b in losses),
        'max_abs_param_diff': max(float(numpy.abs(final[k] - theirs[k]).max())
                                  for k in theirs),
        'params_compared': sorted(theirs),
        'losses_torch_seqdbr': [[round(a, 12), round(b, 12)] for a, b in losses],
        'loadavg_1m': os.getloadavg()[0],
    }, indent=1))


if __name__ == '__main__':
    main()
