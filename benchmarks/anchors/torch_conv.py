"""PyTorch anchor for ``benchmarks/conv.py``: forward + backward of single convolutions.

Run with the anchor venv (this file never imports seqdbr); ``benchmarks/conv.py --torch
PYTHON`` runs it between its own timed rounds::

    /work/wt/_torchvenv/bin/python benchmarks/anchors/torch_conv.py \
        --shapes '[{"name": "x", "x": [100, 32, 12, 12], "w": [64, 32, 5, 5], "pad": 0,
                    "stride": 1, "grad_x": true}]' [--steps 10] [--repeats 5] [--threads 1]

One step = ``y = conv(x, W, b)`` (``torch.nn.functional.conv2d``, or ``conv1d`` for 3-d
shapes), ``y.backward(gy)`` with the gradients of W and b (and of x when ``grad_x``), on
random float32 arrays; gradients are reset (set to None) before each step. Prints one JSON
object: per shape the median seconds per step over ``--repeats`` runs of ``--steps``.

``--serve``: after warming every shape up, print ``ready`` and then answer each line
``NAME`` read from stdin with the seconds per step of one run of ``--steps`` steps of that
shape (``conv.py`` interleaves these runs with its own, one shape at a time).
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import common  # noqa: E402


def make_model_step(shape, seed):
    """One training step of the MNIST CNN (as seqdbr.examples.mnist.CNN(128)) with Adam."""
    torch.manual_seed(seed)
    nn = torch.nn
    model = nn.Sequential(nn.Unflatten(1, (1, 28, 28)), nn.Conv2d(1, 32, 5), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Conv2d(32, 64, 5), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(1024, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = torch.optim.Adam(model.parameters())
    rng = numpy.random.default_rng(seed)
    x = torch.from_numpy(rng.random((shape['batch'], 784), dtype=numpy.float32))
    t = torch.from_numpy(rng.integers(0, 10, shape['batch']))

    def step():
        y = model(x)
        loss = torch.nn.functional.cross_entropy(y, t)
        with torch.no_grad():
            (y.argmax(1) == t).float().mean()   # accuracy, as L.Classifier reports it
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def make_step(shape, seed):
    if 'model' in shape:
        return make_model_step(shape, seed)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape['x'], generator=g, requires_grad=bool(shape['grad_x']))
    W = (torch.rand(shape['w'], generator=g) * 0.1).requires_grad_()
    b = torch.zeros(shape['w'][0], requires_grad=True)
    conv = torch.nn.functional.conv2d if len(shape['x']) == 4 else torch.nn.functional.conv1d
    with torch.no_grad():
        gy = torch.rand_like(conv(x, W, b, stride=shape['stride'], padding=shape['pad']))

    def step():
        for t in (x, W, b):
            t.grad = None
        y = conv(x, W, b, stride=shape['stride'], padding=shape['pad'])
        y.backward(gy)
    return step


def run(step, steps):
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t0) / steps


def serve(shapes, args):
    steps = {s['name']: make_step(s, k) for k, s in enumerate(shapes)}
    for step in steps.values():
        for _ in range(args.warmup):
            step()
    print(json.dumps({'ready': True, 'torch': torch.__version__,
                      'threads': torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        print(run(steps[line.strip()], args.steps), flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--shapes', required=True, help='JSON list of shapes (see conv.py)')
    p.add_argument('--steps', type=int, default=10)
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--serve', action='store_true', help='answer NAME lines on stdin')
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    shapes = json.loads(args.shapes)
    if args.serve:
        return serve(shapes, args)
    out = {'framework': 'torch', 'machine': common.machine_info(
        {'torch': torch.__version__}, threads=args.threads), 'seconds_per_step': {}}
    for k, shape in enumerate(shapes):
        step = make_step(shape, k)
        for _ in range(args.warmup):
            step()
        runs = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step()
            runs.append((time.perf_counter() - t0) / args.steps)
        out['seconds_per_step'][shape['name']] = statistics.median(runs)
    common.emit(out)


if __name__ == '__main__':
    numpy.random.seed(0)
    main()
