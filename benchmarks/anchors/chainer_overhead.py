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
import os
import sys

import chainer
from chainer import Variable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import common  # noqa: E402


def measure(shape, n_ops, repeats):
    return common.measure_variable_chain(Variable, shape, n_ops, repeats, ratio=True)


def main(argv=None):
    p = common.make_parser(__doc__)
    common.add_overhead_args(p)
    args = p.parse_args(argv)
    measure((1,), 100, 2)   # warm-up
    out = {'benchmark': 'overhead', 'framework': 'chainer'}
    out.update(common.machine_info({'chainer': chainer.__version__}))
    out.update({'n_ops': args.ops,
                'op': 'alternating Variable*Variable and Variable+Variable',
                'results': [measure(s, args.ops, args.repeats) for s in [(1,), (50, 128)]]})
    common.emit(out)


if __name__ == '__main__':
    main()
