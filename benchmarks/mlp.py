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
import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import statistics
import sys
import time

import numpy

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

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


def make_matmuls(units, batch, seed):
    """A function running the 9 float32 matmuls of one step back to back, and their flops."""
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
    """Alternate a timed training run and a timed matmul run, ``repeats`` times.

    Interleaving makes both see the same machine load (the ratio stays meaningful on a
    shared, noisy machine). Returns wall-clock and process-CPU seconds per step for each
    run: (step wall, matmul wall, step CPU, matmul CPU).
    """
    for i in range(warmup):
        step(model, opt, *data[i % len(data)])
        matmuls()
    step_times, mm_times, step_cpu, mm_cpu = [], [], [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        for i in range(steps):
            step(model, opt, *data[i % len(data)])
        c1, t1 = time.process_time(), time.perf_counter()
        for _ in range(steps):
            matmuls()
        c2, t2 = time.process_time(), time.perf_counter()
        step_times.append((t1 - t0) / steps)
        mm_times.append((t2 - t1) / steps)
        step_cpu.append((c1 - c0) / steps)
        mm_cpu.append((c2 - c1) / steps)
    return step_times, mm_times, step_cpu, mm_cpu


def profile(model, opt, data, n_steps, top):
    prof = cProfile.Profile()
    prof.enable()
    for i in range(n_steps):
        step(model, opt, *data[i % len(data)])
    prof.disable()
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    stats.sort_stats('tottime').print_stats(top)
    return buf.getvalue()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--units', type=int, default=1000)
    p.add_argument('--batchsize', type=int, default=100)
    p.add_argument('--steps', type=int, default=20, help='steps per timed run')
    p.add_argument('--repeats', type=int, default=7, help='timed runs (median reported)')
    p.add_argument('--warmup', type=int, default=10, help='untimed steps first')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--profile', type=int, default=0, metavar='N',
                   help='also cProfile N steps and print the top functions to stderr')
    p.add_argument('--top', type=int, default=25, help='rows of the profile to print')
    args = p.parse_args(argv)

    model, opt, data = make_problem(args.units, args.batchsize, args.seed)
    matmuls, flops = make_matmuls(args.units, args.batchsize, args.seed)
    step_times, mm_times, step_cpu, mm_cpu = measure(model, opt, data, matmuls, args.steps, args.repeats,
                                   args.warmup)
    b = args.batchsize
    step_s = statistics.median(step_times)
    mm_s = statistics.median(mm_times)
    sps = b / step_s
    limit = b / mm_s
    out = {
        'benchmark': 'mlp',
        'model': '784-%d-%d-10 ReLU MLP, softmax cross-entropy, Adam' % (args.units,
                                                                          args.units),
        'batchsize': b,
        'steps_per_run': args.steps, 'runs': args.repeats, 'warmup_steps': args.warmup,
        'samples_per_s': round(sps, 1),
        'samples_per_s_runs': [round(b / t, 1) for t in step_times],
        'step_ms': round(1000 * step_s, 3),
        'matmul_ms_per_step': round(1000 * mm_s, 3),
        'matmul_gflops': round(flops / mm_s / 1e9, 2),
        'matmul_limited_samples_per_s': round(limit, 1),
        'ratio_to_matmul_limit': round(sps / limit, 3),
        # per-run ratios (train run vs the matmul run right after it): robust to load drift
        'ratio_to_matmul_limit_median_of_runs': round(statistics.median(
            [m / t for t, m in zip(step_times, mm_times)]), 3),
        'overhead_ms_per_step': round(1000 * (step_s - mm_s), 3),
        # process CPU time (all threads): less sensitive to other processes taking cores
        'cpu_ms_per_step': round(1000 * statistics.median(step_cpu), 3),
        'matmul_cpu_ms_per_step': round(1000 * statistics.median(mm_cpu), 3),
        'cpu_ratio_to_matmul_limit': round(statistics.median(mm_cpu) /
                                           statistics.median(step_cpu), 3),
        'seqdbr': seqdbr.__version__, 'numpy': numpy.__version__,
        'python': platform.python_version(), 'cpus': os.cpu_count(),
    }
    print(json.dumps(out, indent=2))
    if args.profile:
        sys.stderr.write(profile(model, opt, data, args.profile, args.top))


if __name__ == '__main__':
    main()
