"""Sampling speed in PyTorch: microseconds per generated character, one character at a time
(the anchor of ``benchmarks/sampling.py``).

``nn.Embedding(65, H) -> nn.LSTM/nn.GRU(H, H, 2) -> nn.Linear(H, 65)``, random weights,
under ``torch.no_grad()``: per character one model step (batch 1, one time step), softmax,
``torch.multinomial`` (seeded), and the id back to a Python int, as a char-rnn sampling
loop does.

    /opt/venv-torch/bin/python benchmarks/anchors/torch_sampling.py [--threads 2]
"""
import os
import sys
import time

import numpy

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

from common import add_sampling_args, emit, machine_info, make_parser  # noqa: E402


def main():
    p = make_parser(__doc__)
    add_sampling_args(p)
    p.add_argument('--threads', type=int, default=2)
    args = p.parse_args()

    import torch
    torch.set_num_threads(args.threads)
    nn = torch.nn
    V, H = 65, args.hidden

    class LM(nn.Module):
        def __init__(self, cell):
            super().__init__()
            self.embed = nn.Embedding(V, H)
            self.rnn = cell(H, H, 2, batch_first=True)
            self.out = nn.Linear(H, V)

        def forward(self, x, state):
            y, state = self.rnn(self.embed(x), state)
            return self.out(y), state

    def generate(model, n, seed):
        g = torch.Generator().manual_seed(seed)
        k, state, chars = 0, None, []
        with torch.no_grad():
            for _ in range(n):
                y, state = model(torch.tensor([[k]]), state)
                probs = torch.softmax(y[0, -1], dim=0)
                k = int(torch.multinomial(probs, 1, generator=g))
                chars.append(k)
        return chars

    configs = []
    for name, cell in (('lstm', nn.LSTM), ('gru', nn.GRU)):
        torch.manual_seed(0)
        configs.append((name, cell.__name__, LM(cell).eval(), []))
    for r in range(args.repeats + 1):                # round robin, round 0 untimed
        for name, cname, m, runs in configs:
            t = time.perf_counter()
            generate(m, args.length, r)
            if r:
                runs.append((time.perf_counter() - t) / args.length * 1e6)
    results = [{'model': name, 'impl': 'nn.%s' % cname,
                'us_per_char': round(float(numpy.median(runs)), 1),
                'us_per_char_runs': [round(x, 1) for x in runs]}
               for name, cname, _, runs in configs]
    out = {'benchmark': 'sampling', 'framework': 'torch'}
    out.update(machine_info({'torch': torch.__version__}, threads=args.threads))
    out.update({'hidden': H, 'layers': 2, 'vocab': V, 'length': args.length,
                'results': results})
    emit(out)


if __name__ == '__main__':
    main()
