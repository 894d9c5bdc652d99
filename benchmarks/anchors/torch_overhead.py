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
import os
import sys

import numpy
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import common  # noqa: E402


def measure(shape, n_ops, repeats):
    x = torch.full(shape, 0.5, dtype=torch.float32, requires_grad=True)
    w = torch.full(shape, 1.0001, dtype=torch.float32, requires_grad=True)
    seed = torch.ones(shape, dtype=torch.float32)
    a = numpy.full(shape, 0.5, numpy.float32)
    b = numpy.full(shape, 1.0001, numpy.float32)

    def clear():
        x.grad = None
        w.grad = None

    fwd, bwd, raw, nograd = common.time_chain(x, w, a, b, n_ops, repeats, clear,
                                              lambda y: y.backward(seed), torch.no_grad)
    return common.overhead_figures(
        shape, fwd, bwd, raw, ratio=True,
        extra={'torch_nograd_forward_us_per_op': round(common.median(nograd), 3)})


def main(argv=None):
    p = common.make_parser(__doc__)
    common.add_overhead_args(p)
    p.add_argument('--threads', type=int, default=2, help='torch.set_num_threads')
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    # warm-up: first autograd calls allocate the engine's thread state
    measure((1,), 100, 2)
    out = {'benchmark': 'overhead', 'framework': 'torch'}
    out.update(common.machine_info({'torch': torch.__version__}, threads=args.threads))
    out.update({'n_ops': args.ops, 'op': 'alternating tensor*tensor and tensor+tensor '
                                         '(both requires_grad)',
                'results': [measure(s, args.ops, args.repeats) for s in [(1,), (50, 128)]]})
    common.emit(out)


if __name__ == '__main__':
    main()
