"""Chainer anchor for ``benchmarks/mlp.py``: MNIST-MLP training throughput.

Run with the anchor venv (this file never imports seqdbr)::

    /opt/venv-chainer/bin/python benchmarks/anchors/chainer_mlp.py [--steps 20]
        [--repeats 7] [--warmup 10]

One step = ``L.Classifier`` over a 784-1000-1000-10 ReLU MLP (3 ``L.Linear`` + 2 ReLU,
softmax cross-entropy and accuracy) on a batch of 100, ``cleargrads``, backward and
``chainer.optimizers.Adam`` (default hyperparameters), on random float32 inputs and int32
labels (4 batches, cycled). As in ``benchmarks/mlp.py``, each timed run of ``--steps``
steps is followed by a timed run of the 9 float32 matmuls of one step (3 forward, and per
layer the weight gradient and the input gradient) with NumPy, so both see the same
machine load; samples/s and the matmul time are medians over ``--repeats`` runs.
``matmul_limited_samples_per_s`` = batch / (matmul time per step),
``ratio_to_matmul_limit`` = samples_per_s / that, ``ratio_to_matmul_limit_median_of_runs``
the median of the per-run ratios, ``cpu_ratio_to_matmul_limit`` the same from process CPU
time. Prints one JSON object on stdout.
"""
import os
import sys

import chainer
import chainer.functions as F
import chainer.links as L
import numpy

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import common  # noqa: E402

N_IN, N_OUT = 784, 10


class MLP(chainer.Chain):
    def __init__(self, units):
        super().__init__()
        with self.init_scope():
            self.l1 = L.Linear(N_IN, units)
            self.l2 = L.Linear(units, units)
            self.l3 = L.Linear(units, N_OUT)

    def forward(self, x):
        return self.l3(F.relu(self.l2(F.relu(self.l1(x)))))


def make_problem(units, batch, seed):
    numpy.random.seed(seed)
    model = L.Classifier(MLP(units))
    opt = chainer.optimizers.Adam()
    opt.setup(model)
    rng = numpy.random.default_rng(seed)
    data = [(rng.random((batch, N_IN), dtype=numpy.float32),
             rng.integers(0, N_OUT, batch).astype(numpy.int32)) for _ in range(4)]
    return model, opt, data


def main(argv=None):
    p = common.make_parser(__doc__)
    common.add_mlp_args(p)
    p.add_argument('--seed', type=int, default=0)
    args = p.parse_args(argv)

    b = args.batchsize
    model, opt, data = make_problem(args.units, b, args.seed)
    matmuls = common.mlp_matmuls(common.mlp_mm_operands(args.units, b, args.seed))

    def train(i):
        x, t = data[i % len(data)]
        loss = model(x, t)
        model.cleargrads()
        loss.backward()
        opt.update()

    runs = common.alternate_runs([('train', train), ('matmul', lambda i: matmuls())],
                                 args.steps, args.repeats, args.warmup)
    out = common.mlp_header(args, 'chainer')
    out.update(common.mlp_figures(b, common.mlp_flops(args.units, b), runs['train'],
                                  runs['matmul']))
    out.update(common.machine_info({'chainer': chainer.__version__}))
    common.emit(out)


if __name__ == '__main__':
    main()
