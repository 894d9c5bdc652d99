"""PyTorch anchor for ``benchmarks/mlp.py``: MNIST-MLP training throughput.

Run with the anchor venv (this file never imports seqdbr)::

    /opt/venv-torch/bin/python benchmarks/anchors/torch_mlp.py [--steps 20] [--repeats 7]
        [--warmup 10] [--threads 2]

One step = forward of a 784-1000-1000-10 ReLU MLP (3 ``nn.Linear`` + 2 ReLU) on a batch of
100, softmax cross-entropy and accuracy (as seqdbr's ``L.Classifier`` computes both),
backward, and ``torch.optim.Adam`` (default hyperparameters) on random float32 inputs and
int64 labels (4 batches, cycled). samples/s is the median over ``--repeats`` timed runs of
``--steps`` steps after ``--warmup`` untimed steps.

Matrix-multiply limit, measured in the same process: the 9 float32 matmuls of one step
(3 forward, and per layer the weight gradient and the input gradient), exactly as
``benchmarks/mlp.py`` times them. As there, each timed training run is followed by a
timed run of those matmuls, so both see the same machine load: with NumPy
(``matmul_limited_samples_per_s``, ``ratio_to_matmul_limit``, the same OpenBLAS as
seqdbr's NumPy) and, for reference, with torch (``torch_*`` keys, MKL). ``*_median_of_runs``
is the median of the per-run ratios and ``cpu_ratio_to_matmul_limit`` the ratio from
process CPU time. A ``--settle`` pause follows each run so the worker threads of one
library (OpenBLAS for NumPy, OpenMP for torch) stop spinning before the other's run.
Prints one JSON object on stdout.
"""
import argparse
import json
import os
import platform
import statistics
import time

import numpy
import torch

N_IN, N_OUT = 784, 10


def make_problem(units, batch, seed):
    torch.manual_seed(seed)
    nn = torch.nn
    model = nn.Sequential(nn.Linear(N_IN, units), nn.ReLU(), nn.Linear(units, units),
                          nn.ReLU(), nn.Linear(units, N_OUT))
    opt = torch.optim.Adam(model.parameters())
    rng = numpy.random.default_rng(seed)
    data = [(torch.from_numpy(rng.random((batch, N_IN), dtype=numpy.float32)),
             torch.from_numpy(rng.integers(0, N_OUT, batch))) for _ in range(4)]
    return model, opt, data


def step(model, opt, x, t):
    y = model(x)
    loss = torch.nn.functional.cross_entropy(y, t)
    with torch.no_grad():
        (y.argmax(1) == t).float().mean()   # accuracy, as L.Classifier reports it
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss


def mm_operands(units, batch, seed):
    rng = numpy.random.default_rng(seed)
    f = numpy.float32
    return {'x': rng.random((batch, N_IN), dtype=f),
            'W1': rng.standard_normal((units, N_IN), dtype=f),
            'W2': rng.standard_normal((units, units), dtype=f),
            'W3': rng.standard_normal((N_OUT, units), dtype=f),
            'h1': rng.random((batch, units), dtype=f), 'h2': rng.random((batch, units), dtype=f),
            'g3': rng.random((batch, N_OUT), dtype=f), 'g2': rng.random((batch, units), dtype=f),
            'g1': rng.random((batch, units), dtype=f)}


def step_matmuls(o):
    o['x'] @ o['W1'].T
    o['h1'] @ o['W2'].T
    o['h2'] @ o['W3'].T
    o['g3'].T @ o['h2']
    o['g3'] @ o['W3']
    o['g2'].T @ o['h1']
    o['g2'] @ o['W2']
    o['g1'].T @ o['x']
    o['g1'] @ o['W1']


def measure(model, opt, data, np_ops, torch_ops, steps, repeats, warmup, settle):
    """Alternate a timed training run, a timed NumPy matmul run and a timed torch matmul
    run, ``repeats`` times, so all see the same machine load. Returns per-step seconds
    (wall and process CPU) of each run."""
    def mm_np():
        step_matmuls(np_ops)

    def mm_torch():
        with torch.no_grad():
            step_matmuls(torch_ops)

    for i in range(warmup):
        step(model, opt, *data[i % len(data)])
        mm_np()
        mm_torch()
    time.sleep(settle)
    runs = {'train': [], 'numpy': [], 'torch': []}
    for _ in range(repeats):
        for name, fn in (('train', None), ('numpy', mm_np), ('torch', mm_torch)):
            c0, t0 = time.process_time(), time.perf_counter()
            for i in range(steps):
                if fn is None:
                    step(model, opt, *data[i % len(data)])
                else:
                    fn()
            runs[name].append(((time.perf_counter() - t0) / steps,
                               (time.process_time() - c0) / steps))
            if settle:
                time.sleep(settle)   # let OpenBLAS / OpenMP worker threads stop spinning
    return runs


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--units', type=int, default=1000)
    p.add_argument('--batchsize', type=int, default=100)
    p.add_argument('--steps', type=int, default=20, help='steps per timed run')
    p.add_argument('--repeats', type=int, default=7, help='timed runs (median reported)')
    p.add_argument('--warmup', type=int, default=10, help='untimed steps first')
    p.add_argument('--threads', type=int, default=2, help='torch.set_num_threads')
    p.add_argument('--settle', type=float, default=0.1,
                   help='seconds to pause after each run (worker threads idle)')
    p.add_argument('--seed', type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    model, opt, data = make_problem(args.units, args.batchsize, args.seed)
    o = mm_operands(args.units, args.batchsize, args.seed)
    runs = measure(model, opt, data, o, {k: torch.from_numpy(v) for k, v in o.items()},
                   args.steps, args.repeats, args.warmup, args.settle)
    med = statistics.median
    b = args.batchsize
    step_s = med(t for t, _ in runs['train'])
    step_c = med(c for _, c in runs['train'])
    sps = b / step_s
    flops = 2 * b * (N_IN * args.units + args.units * args.units + args.units * N_OUT) * 3
    out = {
        'benchmark': 'mlp', 'framework': 'torch',
        'model': '784-%d-%d-10 ReLU MLP, softmax cross-entropy, Adam' % (args.units,
                                                                          args.units),
        'batchsize': b,
        'steps_per_run': args.steps, 'runs': args.repeats, 'warmup_steps': args.warmup,
        'samples_per_s': round(sps, 1),
        'samples_per_s_runs': [round(b / t, 1) for t, _ in runs['train']],
        'step_ms': round(1000 * step_s, 3),
    }
    for prefix, name in (('', 'numpy'), ('torch_', 'torch')):
        mm = med(t for t, _ in runs[name])
        mc = med(c for _, c in runs[name])
        limit = b / mm
        out.update({
            prefix + 'matmul_ms_per_step': round(1000 * mm, 3),
            prefix + 'matmul_gflops': round(flops / mm / 1e9, 2),
            prefix + 'matmul_limited_samples_per_s': round(limit, 1),
            prefix + 'ratio_to_matmul_limit': round(sps / limit, 3),
            prefix + 'ratio_to_matmul_limit_median_of_runs': round(med(
                m / t for (t, _), (m, _) in zip(runs['train'], runs[name])), 3),
            prefix + 'cpu_ratio_to_matmul_limit': round(mc / step_c, 3)})
    out['overhead_ms_per_step'] = round(1000 * step_s - out['matmul_ms_per_step'], 3)
    out['cpu_ms_per_step'] = round(1000 * step_c, 3)
    out.update({'torch': torch.__version__, 'numpy': numpy.__version__,
                'python': platform.python_version(), 'cpus': os.cpu_count(),
                'threads': args.threads, 'loadavg_1m': round(os.getloadavg()[0], 2)})
    print(json.dumps(out, indent=2))


if __name__ == '__main__':
    main()
