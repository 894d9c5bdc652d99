"""Char-LSTM training window on one GPU: seqdbr's n-step LSTM against PyTorch nn.LSTM (cuDNN).

One window = the char-LM training step of ``scripts/train_charrnn.py``: a (B, T) batch of
ids through a 2-layer LSTM language model (embedding H, vocabulary 65), mean cross-entropy,
backward, gradient clipping at 5, Adam. seqdbr runs ``CharRNN(impl='nstep')`` through
``seqdbr.rnn.bptt.bptt_update`` (its one host transfer per window included); PyTorch runs
``nn.Embedding -> nn.LSTM(num_layers=2) -> nn.Linear`` with cuDNN, ``clip_grad_norm_`` and
``Adam``, calling ``loss.item()`` once per window as a logging loop would. Each
configuration: ``--warmup`` untimed windows, then ``--windows`` timed ones between two
device synchronisations; reported: ms per window (median of ``--repeats`` rounds) and
characters per second. PyTorch is optional (its rows say "skipped" without a CUDA torch).

Prints one JSON object. Without CuPy or a GPU it prints ``{"skipped": reason}`` and exits 0.
Run: python benchmarks/gpu_charlm.py [--sizes 128 512 1024] [--batches 64 128]
"""
import argparse
import json
import statistics
import time

import numpy

V = 65


def _seqdbr_runner(H, B, T, seed, cpu=False):
    import seqdbr.optimizers as O
    from seqdbr.charlm.model import CharRNN
    from seqdbr.core.initializers import set_seed
    from seqdbr.core.optimizer_hooks import GradientClipping
    from seqdbr.rnn.bptt import bptt_update
    set_seed(seed)
    model = CharRNN(V, H, 2, impl='nstep').to_device('cpu' if cpu else 'gpu')
    opt = O.Adam(alpha=2e-3)
    opt.setup(model)
    opt.add_hook(GradientClipping(5.0))
    rng = numpy.random.default_rng(seed)
    x = model.xp.asarray(rng.integers(0, V, (B, T)).astype(numpy.int32))
    t = model.xp.asarray(rng.integers(0, V, (B, T)).astype(numpy.int32))

    def window():
        return bptt_update(model, opt, x, t)
    return window, (lambda: None) if cpu else model.xp.cuda.Device().synchronize


def _torch_runner(H, B, T, seed, cpu=False):
    import torch
    torch.manual_seed(seed)
    dev = torch.device('cpu' if cpu else 'cuda')

    class LM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(V, H)
            self.rnn = torch.nn.LSTM(H, H, num_layers=2, batch_first=True)
            self.out = torch.nn.Linear(H, V)

        def forward(self, x, state):
            y, state = self.rnn(self.embed(x), state)
            return self.out(y), state

    model = LM().to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    rng = numpy.random.default_rng(seed)
    x = torch.as_tensor(rng.integers(0, V, (B, T)), device=dev)
    t = torch.as_tensor(rng.integers(0, V, (B, T)), device=dev)
    state = [None]

    def window():
        opt.zero_grad(set_to_none=True)
        y, st = model(x, state[0])
        loss = torch.nn.functional.cross_entropy(y.reshape(B * T, V), t.reshape(B * T))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        state[0] = tuple(s.detach() for s in st)
        return loss.item()
    return window, (lambda: None) if cpu else torch.cuda.synchronize


def _time(make, H, B, T, args):
    window, sync = make(H, B, T, args.seed, args.cpu)
    for _ in range(args.warmup):
        window()
    sync()
    rounds = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        for _ in range(args.windows):
            loss = window()
        sync()
        rounds.append((time.perf_counter() - t0) / args.windows)
    ms = statistics.median(rounds) * 1e3
    return {'ms_per_window': round(ms, 3), 'chars_per_s': round(B * T / (ms / 1e3)),
            'last_loss': round(float(loss), 4)}


def _torch_cuda(cpu):
    try:
        import torch
    except ImportError:
        return None, 'torch is not installed'
    if not cpu and not torch.cuda.is_available():
        return None, 'torch %s has no CUDA device' % torch.__version__
    return torch, None


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--sizes', type=int, nargs='+', default=[128, 512, 1024])
    p.add_argument('--batches', type=int, nargs='+', default=[64, 128])
    p.add_argument('--bptt', type=int, default=50)
    p.add_argument('--windows', type=int, default=10)
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--cpu', action='store_true',
                   help='run both sides on the CPU (a check of this script, not a benchmark)')
    args = p.parse_args()
    from seqdbr.core import backend
    if not args.cpu and not backend.is_gpu_available():
        print(json.dumps({'benchmark': 'gpu_charlm', 'skipped': 'no CuPy or no CUDA GPU'}))
        return
    torch, why_not = _torch_cuda(args.cpu)
    if args.cpu:
        gpu, cupy_version = 'none (--cpu)', None
    else:
        import cupy
        gpu = cupy.cuda.runtime.getDeviceProperties(0)['name'].decode()
        cupy_version = cupy.__version__
    out = {'benchmark': 'gpu_charlm', 'gpu': gpu, 'cupy': cupy_version,
           'torch': None if torch is None else torch.__version__, 'bptt': args.bptt,
           'layers': 2, 'vocab': V, 'windows': args.windows, 'repeats': args.repeats,
           'results': []}
    for H in args.sizes:
        for B in args.batches:
            row = {'H': H, 'B': B, 'seqdbr': _time(_seqdbr_runner, H, B, args.bptt, args)}
            if torch is None:
                row['torch'] = {'skipped': why_not}
            else:
                row['torch'] = _time(_torch_runner, H, B, args.bptt, args)
                row['seqdbr_over_torch_time'] = round(row['seqdbr']['ms_per_window']
                                                      / row['torch']['ms_per_window'], 2)
            out['results'].append(row)
            print(json.dumps(row), flush=True, file=__import__('sys').stderr)
    print(json.dumps(out))


if __name__ == '__main__':
    main()
