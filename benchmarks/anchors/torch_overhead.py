"""PyTorch anchor for ``benchmarks/overhead.py``: per-op framework overhead.

Run with the anchor venv (this file never imports seqdbr)::

    /opt/venv-torch/bin/python benchmarks/anchors/torch_overhead.py [--ops 1000] [--repeats 15]

The same chain as overhead.py: ``x`` and ``w`` are float32 tensors with
``requires_grad=True``; the chain alternates ``h = h + w`` and ``h = h * w`` for ``--ops``
ops; forward and ``backward`` (seeded with ones) are timed apart, in microseconds per
op, median over ``--repeats`` runs, for shapes ``(1,)`` and ``(50, 128)``.
``numpy_forward_us_per_op`` is the raw NumPy cost of the same arithmetic and
``torch_nograd_forward_us_per_op`` the same chain under ``torch.no_grad()``, so the
difference shows what autograd adds; ``total_over_numpy_forward`` is forward + backward
in units of that raw NumPy op (a machine-speed-normalised figure). Prints one JSON object on stdout.
"""
import argparse
import json
import os
import platform
import statistics
import time

import numpy
import torch


def chain(x, w, n_ops):
    h = x
    for i in range(n_ops):
        if i % 2:
            h = h * w
        else:
            h = h + w
    return h


def measure(shape, n_ops, repeats):
    x = torch.full(shape, 0.5, dtype=torch.float32, requires_grad=True)
    w = torch.full(shape, 1.0001, dtype=torch.float32, requires_grad=True)
    seed = torch.ones(shape, dtype=torch.float32)
    a = numpy.full(shape, 0.5, numpy.float32)
    b = numpy.full(shape, 1.0001, numpy.float32)
    fwd, bwd, raw, nograd = [], [], [], []
    for _ in range(repeats):
        x.grad = None
        w.grad = None
        t0 = time.perf_counter()
        y = chain(x, w, n_ops)
        t1 = time.perf_counter()
        y.backward(seed)
        t2 = time.perf_counter()
        del y
        t3 = time.perf_counter()
        chain(a, b, n_ops)
        t4 = time.perf_counter()
        with torch.no_grad():
            t5 = time.perf_counter()
            chain(x, w, n_ops)
            t6 = time.perf_counter()
        fwd.append((t1 - t0) / n_ops * 1e6)
        bwd.append((t2 - t1) / n_ops * 1e6)
        raw.append((t4 - t3) / n_ops * 1e6)
        nograd.append((t6 - t5) / n_ops * 1e6)
    f, b_ = statistics.median(fwd), statistics.median(bwd)
    return {'shape': list(shape), 'forward_us_per_op': round(f, 3),
            'backward_us_per_op': round(b_, 3), 'total_us_per_op': round(f + b_, 3),
            'numpy_forward_us_per_op': round(statistics.median(raw), 3),
            'torch_nograd_forward_us_per_op': round(statistics.median(nograd), 3),
            # machine-independent-ish: framework cost in units of one raw NumPy op
            'total_over_numpy_forward': round((f + b_) / statistics.median(raw), 2)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--ops', type=int, default=1000)
    p.add_argument('--repeats', type=int, default=15)
    p.add_argument('--threads', type=int, default=2, help='torch.set_num_threads')
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    # warm-up: first autograd calls allocate the engine's thread state
    measure((1,), 100, 2)
    out = {'benchmark': 'overhead', 'framework': 'torch', 'torch': torch.__version__,
           'numpy': numpy.__version__, 'python': platform.python_version(),
           'cpus': os.cpu_count(), 'threads': args.threads,
           'loadavg_1m': round(os.getloadavg()[0], 2),
           'n_ops': args.ops, 'op': 'alternating tensor*tensor and tensor+tensor '
                                    '(both requires_grad)',
           'results': [measure(s, args.ops, args.repeats) for s in [(1,), (50, 128)]]}
    print(json.dumps(out, indent=2))


if __name__ == '__main__':
    main()
