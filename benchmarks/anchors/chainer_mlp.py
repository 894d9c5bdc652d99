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
import argparse
import json
import os
import platform
import statistics
import time

import chainer
import chainer.functions as F
import chainer.links as L
import numpy

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


def step(model, opt, x, t):
    loss = model(x, t)
    model.cleargrads()
    loss.backward()
    opt.update()
    return loss


def make_matmuls(units, batch, seed):
    rng = numpy.random.default_rng(seed)
    f = numpy.float32
    x = rng.random((batch, N_IN), dtype=f)
    W1 = rng.standard_normal((units, N_IN), dtype=f)
    W2 = rng.standard_normal((units, units), dtype=f)
    W3 = rng.standard_normal((N_OUT, units), dtype=f)
    h1 = rng.random((batch, units), dtype=f)
    h2 = rng.random((batch, units), dtype=f)
    g3 = rng.random((batch, N_OUT), dtype=f)
    g2 = rng.random((batch, units), dtype=f)
    g1 = rng.random((batch, units), dtype=f)

    def once():
        x @ W1.T           # forward
        h1 @ W2.T
        h2 @ W3.T
        g3.T @ h2          # backward layer 3: gW, gx
        g3 @ W3
        g2.T @ h1          # layer 2
        g2 @ W2
        g1.T @ x           # layer 1
        g1 @ W1

    flops = 2 * batch * (N_IN * units + units * units + units * N_OUT) * 3
    return once, flops


def measure(model, opt, data, matmuls, steps, repeats, warmup):
    for i in range(warmup):
        step(model, opt, *data[i % len(data)])
        matmuls()
    st, mt, sc, mc = [], [], [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        for i in range(steps):
            step(model, opt, *data[i % len(data)])
        c1, t1 = time.process_time(), time.perf_counter()
        for _ in range(steps):
            matmuls()
        c2, t2 = time.process_time(), time.perf_counter()
        st.append((t1 - t0) / steps)
        mt.append((t2 - t1) / steps)
        sc.append((c1 - c0) / steps)
        mc.append((c2 - c1) / steps)
    return st, mt, sc, mc


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--units', type=int, default=1000)
    p.add_argument('--batchsize', type=int, default=100)
    p.add_argument('--steps', type=int, default=20, help='steps per timed run')
    p.add_argument('--repeats', type=int, default=7, help='timed runs (median reported)')
    p.add_argument('--warmup', type=int, default=10, help='untimed steps first')
    p.add_argument('--seed', type=int, default=0)
    args = p.parse_args(argv)

    model, opt, data = make_problem(args.units, args.batchsize, args.seed)
    matmuls, flops = make_matmuls(args.units, args.batchsize, args.seed)
    st, mt, sc, mc = measure(model, opt, data, matmuls, args.steps, args.repeats, args.warmup)
    b = args.batchsize
    med = statistics.median
    step_s, mm_s = med(st), med(mt)
    sps, limit = b / step_s, b / mm_s
    out = {
        'benchmark': 'mlp', 'framework': 'chainer',
        'model': '784-%d-%d-10 ReLU MLP, softmax cross-entropy, Adam' % (args.units,
                                                                          args.units),
        'batchsize': b,
        'steps_per_run': args.steps, 'runs': args.repeats, 'warmup_steps': args.warmup,
        'samples_per_s': round(sps, 1),
        'samples_per_s_runs': [round(b / t, 1) for t in st],
        'step_ms': round(1000 * step_s, 3),
        'matmul_ms_per_step': round(1000 * mm_s, 3),
        'matmul_gflops': round(flops / mm_s / 1e9, 2),
        'matmul_limited_samples_per_s': round(limit, 1),
        'ratio_to_matmul_limit': round(sps / limit, 3),
        'ratio_to_matmul_limit_median_of_runs': round(med([m / t for t, m in zip(st, mt)]), 3),
        'overhead_ms_per_step': round(1000 * (step_s - mm_s), 3),
        'cpu_ms_per_step': round(1000 * med(sc), 3),
        'matmul_cpu_ms_per_step': round(1000 * med(mc), 3),
        'cpu_ratio_to_matmul_limit': round(med(mc) / med(sc), 3),
        'chainer': chainer.__version__, 'numpy': numpy.__version__,
        'python': platform.python_version(), 'cpus': os.cpu_count(),
        'loadavg_1m': round(os.getloadavg()[0], 2),
    }
    print(json.dumps(out, indent=2))


if __name__ == '__main__':
    main()
