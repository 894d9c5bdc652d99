"""Chainer anchor for ``benchmarks/overhead.py``: per-op framework overhead.

Run with the anchor venv (this file never imports seqdbr)::

    /opt/venv-chainer/bin/python benchmarks/anchors/chainer_overhead.py [--ops 1000]
        [--repeats 15]

The same chain as overhead.py: ``x`` and ``w`` are float32 ``chainer.Variable`` s; the
chain alternates ``h = h + w`` and ``h = h * w`` for ``--ops`` ops; forward and
``backward()`` (``y.grad`` set to ones) are timed apart, in microseconds per op, median
over ``--repeats`` runs, for shapes ``(1,)`` and ``(50, 128)``. ``numpy_forward_us_per_op``
is the raw NumPy cost of the same arithmetic; ``total_over_numpy_forward`` is forward +
backward in units of that raw NumPy op (a machine-speed-normalised figure). Prints one
JSON object on stdout.
"""
import argparse
import json
import os
import platform
import statistics
import time

import chainer
import numpy
from chainer import Variable


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
        chain(a, b, n_ops)
        t4 = time.perf_counter()
        fwd.append((t1 - t0) / n_ops * 1e6)
        bwd.append((t2 - t1) / n_ops * 1e6)
        raw.append((t4 - t3) / n_ops * 1e6)
    f, b_, r = statistics.median(fwd), statistics.median(bwd), statistics.median(raw)
    return {'shape': list(shape), 'forward_us_per_op': round(f, 3),
            'backward_us_per_op': round(b_, 3), 'total_us_per_op': round(f + b_, 3),
            'numpy_forward_us_per_op': round(r, 3),
            'total_over_numpy_forward': round((f + b_) / r, 2)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--ops', type=int, default=1000)
    p.add_argument('--repeats', type=int, default=15)
    args = p.parse_args(argv)
    measure((1,), 100, 2)   # warm-up
    out = {'benchmark': 'overhead', 'framework': 'chainer', 'chainer': chainer.__version__,
           'numpy': numpy.__version__, 'python': platform.python_version(),
           'cpus': os.cpu_count(), 'loadavg_1m': round(os.getloadavg()[0], 2),
           'n_ops': args.ops, 'op': 'alternating Variable*Variable and Variable+Variable',
           'results': [measure(s, args.ops, args.repeats) for s in [(1,), (50, 128)]]}
    print(json.dumps(out, indent=2))


if __name__ == '__main__':
    main()
