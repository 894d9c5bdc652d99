"""Per-op framework overhead: a chain of N elementwise ops, forward and backward timed apart.

Prints JSON: microseconds per op (median over repeats) for shape (1,) and (50, 128),
plus the raw NumPy cost of the same arithmetic for reference (so the ratio shows what
the framework adds). Run: python benchmarks/overhead.py [--ops 1000] [--repeats 15]
"""
import argparse
import json
import statistics
import time

import numpy

import seqdbr
from seqdbr import Variable


def chain(x, w, n_ops):
    h = x
    for i in range(n_ops):
        if i % 2:
            h = h * w
        else:
            h = h + w
    return h


def measure(shape, n_ops, repeats):
    x = Variable(numpy.full(shape, 0.5, numpy.float32))
    w = Variable(numpy.full(shape, 1.0001, numpy.float32))
    fwd, bwd, raw = [], [], []
    for _ in range(repeats):
        x.cleargrad()
        w.cleargrad()
        t0 = time.perf_counter()
        y = chain(x, w, n_ops)
        t1 = time.perf_counter()
        y.grad = numpy.ones(shape, numpy.float32)
        y.backward()
        t2 = time.perf_counter()
        del y
        a, b = x.array, w.array
        t3 = time.perf_counter()
        h = a
        for i in range(n_ops):
            h = h * b if i % 2 else h + b
        t4 = time.perf_counter()
        fwd.append((t1 - t0) / n_ops * 1e6)
        bwd.append((t2 - t1) / n_ops * 1e6)
        raw.append((t4 - t3) / n_ops * 1e6)
    f, b, r = statistics.median(fwd), statistics.median(bwd), statistics.median(raw)
    return {'shape': list(shape), 'forward_us_per_op': round(f, 3),
            'backward_us_per_op': round(b, 3), 'total_us_per_op': round(f + b, 3),
            'numpy_forward_us_per_op': round(r, 3)}


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--ops', type=int, default=1000)
    p.add_argument('--repeats', type=int, default=15)
    args = p.parse_args()
    out = {'benchmark': 'overhead', 'seqdbr': seqdbr.__version__, 'numpy': numpy.__version__,
           'n_ops': args.ops, 'op': 'alternating Variable*Variable and Variable+Variable',
           'results': [measure(s, args.ops, args.repeats) for s in [(1,), (50, 128)]]}
    print(json.dumps(out, indent=2))


if __name__ == '__main__':
    main()
