"""Training throughput of the MNIST MLP (784-1000-1000-10, ReLU, Adam, batch 100).

One step = forward (3 Linear + 2 ReLU + softmax cross-entropy + accuracy, through
``L.Classifier``), backward, and the Adam update of all 6 parameters, on random float32
inputs and int32 labels (so no data loading is timed). After warm-up steps, ``--repeats``
timed runs of ``--steps`` steps each; samples/s is the median over the runs. Each training
run is followed by a timed run of the matmuls below, so both see the same machine load.

The same process also measures the machine's own float32 matrix-multiply throughput on the
exact matmuls of one step, timed alone with NumPy (same BLAS, same threads):

* forward:  x(100,784)@W1.T, h1(100,1000)@W2.T, h2(100,1000)@W3.T
* backward: per layer gW = gy.T @ x and gx = gy @ W (6 matmuls; the first layer's gx is
  not needed in training but is included, as in the reference figure)

``matmul_limited_samples_per_s`` = batch / (time of those 9 matmuls): the speed of a
framework with zero overhead besides matrix multiplies. ``ratio_to_matmul_limit`` =
samples_per_s / matmul_limited_samples_per_s. The ``cpu_*`` figures use process CPU time
(all threads) instead of wall-clock time; on a machine shared with other jobs they move
less than the wall-clock ones.

Run: ``python benchmarks/mlp.py [--steps 20] [--repeats 7] [--warmup 10] [--profile N]``.
``--profile N`` also runs cProfile over N steps and prints the top functions (by total
time in the function itself) to stderr. Prints one JSON object on stdout.
"""
import os
import sys

import numpy

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH_DIR)
sys.path.insert(0, os.path.join(BENCH_DIR, os.pardir))

import common  # noqa: E402
import seqdbr  # noqa: E402
import seqdbr.links as L  # noqa: E402
from seqdbr import optimizers  # noqa: E402
from seqdbr.core import initializers  # noqa: E402
from seqdbr.examples.mnist import MLP  # noqa: E402

N_IN, N_OUT = 784, 10


def make_problem(units, batch, seed):
    initializers.set_seed(seed)
    model = L.Classifier(MLP(units, N_OUT, N_IN))
    opt = optimizers.Adam()
    opt.setup(model)
    rng = numpy.random.default_rng(seed)
    # a few distinct batches, cycled, so nothing is cached on one input
    data = [(rng.random((batch, N_IN), dtype=numpy.float32),
             rng.integers(0, N_OUT, batch).astype(numpy.int32)) for _ in range(4)]
    return model, opt, data


def step(model, opt, x, t):
    loss = model(x, t)
    model.cleargrads()
    loss.backward()
    opt.update()
    return loss


def main(argv=None):
    p = common.make_parser(__doc__)
    common.add_mlp_args(p)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--profile', type=int, default=0, metavar='N',
                   help='also cProfile N steps and print the top functions to stderr')
    p.add_argument('--top', type=int, default=25, help='rows of the profile to print')
    args = p.parse_args(argv)

    b = args.batchsize
    model, opt, data = make_problem(args.units, b, args.seed)
    matmuls = common.mlp_matmuls(common.mlp_mm_operands(args.units, b, args.seed))

    def train(i):
        step(model, opt, *data[i % len(data)])

    # training runs alternate with matmul runs, so both see the same machine load
    runs = common.alternate_runs([('train', train), ('matmul', lambda i: matmuls())],
                                 args.steps, args.repeats, args.warmup)
    out = common.mlp_header(args)
    out.update(common.mlp_figures(b, common.mlp_flops(args.units, b), runs['train'],
                                  runs['matmul']))
    out.update(common.machine_info({'seqdbr': seqdbr.__version__}, loadavg=False))
    common.emit(out)
    if args.profile:
        sys.stderr.write(common.profile_text(train, args.profile, args.top))


if __name__ == '__main__':
    main()
