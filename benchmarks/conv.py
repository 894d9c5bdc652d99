"""Forward + backward speed of single convolutions against PyTorch and the GEMM limit.

Shapes (float32): the two convolutions of the MNIST CNN (``seqdbr.examples.mnist.CNN``,
batch 100) and one ``Convolution1D`` of the char-CNN (``seqdbr.examples.charcnn``: batch
64, 32-wide embeddings, 64 filters of width 3, lines of 80 characters, wide padding 2):

* ``mnist_conv1``: x (100, 1, 28, 28), W (32, 1, 5, 5); no input gradient (data);
* ``mnist_conv2``: x (100, 32, 12, 12), W (64, 32, 5, 5); with the input gradient;
* ``charcnn_conv1d``: x (64, 32, 80), W (64, 32, 3), pad 2; with the input gradient;
* ``mnist_cnn_train_step``: a whole training step of the MNIST CNN, batch 100 (forward
  through both conv+ReLU+pool blocks and both linear layers, softmax cross-entropy and
  accuracy, backward, Adam), on random data; its GEMM limit adds the linear layers'
  products to those of both convolutions.

One step = ``y = F.convolution_2d(x, W, b)`` (or ``convolution_1d``), ``y.backward()``
with a fixed random upstream gradient, giving ``gW``, ``gb`` and (when marked) ``gx``. The
input ``x`` is an ordinary C-ordered array (as data is); the upstream gradient has the
output's memory layout (batch innermost), as it has inside a network.

GEMM limit: the matrix products of one step timed alone with NumPy (same BLAS, same
threads, same operand shapes): ``W2 @ col`` (forward), ``gy2 @ col.T`` (``gW``) and
``W2.T @ gy2`` (``gcol``, only with the input gradient). ``ratio_to_gemm_limit`` = GEMM
time / step time: the share of a step spent in the products that any im2col
implementation must do.

PyTorch: with ``--torch PYTHON`` (a venv with torch 2.13), ``benchmarks/anchors/
torch_conv.py`` times the same steps (``torch.nn.functional.conv2d``/``conv1d``, oneDNN)
in a child process; for every shape, runs of seqdbr, of the GEMMs alone and of torch
alternate (``--repeats`` times), so all see the same machine load.
``throughput_ratio_vs_torch`` = torch seconds / seqdbr seconds per step (> 1: seqdbr is
faster), the median of the per-repeat ratios.

Threads: set ``OPENBLAS_NUM_THREADS`` (and ``--threads`` for torch, default: the same
value, or 1) before running; on the shared 2-core machine 1 thread gives the steadiest
figures. Run::

    OPENBLAS_NUM_THREADS=1 python benchmarks/conv.py --torch /work/wt/_torchvenv/bin/python

Prints one JSON object on stdout.
"""
import json
import os
import subprocess
import sys
import time

import numpy

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH_DIR)
sys.path.insert(0, os.path.join(BENCH_DIR, os.pardir))

import common  # noqa: E402
import seqdbr  # noqa: E402
import seqdbr.functions as F  # noqa: E402
from seqdbr import Variable  # noqa: E402

SHAPES = [
    {'name': 'mnist_conv1', 'x': [100, 1, 28, 28], 'w': [32, 1, 5, 5], 'pad': 0, 'stride': 1,
     'grad_x': False},
    {'name': 'mnist_conv2', 'x': [100, 32, 12, 12], 'w': [64, 32, 5, 5], 'pad': 0,
     'stride': 1, 'grad_x': True},
    {'name': 'charcnn_conv1d', 'x': [64, 32, 80], 'w': [64, 32, 3], 'pad': 2, 'stride': 1,
     'grad_x': True},
    {'name': 'mnist_cnn_train_step', 'model': 'mnist_cnn', 'batch': 100},
]


def out_len(n, k, s, p):
    return (n + 2 * p - k) // s + 1


def make_model_step(shape, seed):
    """One training step of the MNIST CNN (``L.Classifier(CNN(128))``, Adam) on random data."""
    from seqdbr import optimizers
    import seqdbr.links as L
    from seqdbr.examples.mnist import CNN
    rng = numpy.random.default_rng(seed)
    model = L.Classifier(CNN(128))
    opt = optimizers.Adam().setup(model)
    x = rng.random((shape['batch'], 784), dtype=numpy.float32)
    t = rng.integers(0, 10, shape['batch']).astype(numpy.int32)

    def step():
        loss = model(x, t)
        model.cleargrads()
        loss.backward()
        opt.update()
    return step


def make_step(shape, seed):
    if 'model' in shape:
        return make_model_step(shape, seed)
    rng = numpy.random.default_rng(seed)
    x = Variable(rng.random(shape['x'], dtype=numpy.float32), requires_grad=shape['grad_x'])
    W = Variable(rng.random(shape['w'], dtype=numpy.float32) * 0.1)
    b = Variable(numpy.zeros(shape['w'][0], numpy.float32))
    conv = F.convolution_2d if len(shape['x']) == 4 else F.convolution_1d
    y = conv(x, W, b, shape['stride'], shape['pad'])
    # the upstream gradient in the output's memory layout, as in a network (there it comes
    # from the next layer's backward, which keeps the layout; see docs/design.md)
    gy = numpy.empty_like(y.array)
    gy[...] = rng.random(y.shape, dtype=numpy.float32)

    def step():
        for v in (x, W, b):
            v.cleargrad()
        y = conv(x, W, b, shape['stride'], shape['pad'])
        y.grad = gy
        y.backward()
    return step


def make_model_gemms(shape, seed):
    """The products of a CNN step: both convolutions' and those of the two linear layers
    (forward, ``gW`` and ``gx``; 1024 = 64 * 4 * 4 features, 128 hidden units)."""
    rng = numpy.random.default_rng(seed)
    conv = [make_gemms(s, seed) for s in SHAPES[:2]]
    B = shape['batch']
    mats = []
    for n_in, n_out in ((1024, 128), (128, 10)):
        mats.append((rng.random((B, n_in), dtype=numpy.float32),
                     rng.random((n_out, n_in), dtype=numpy.float32),
                     rng.random((B, n_out), dtype=numpy.float32)))

    def gemms():
        for g, _ in conv:
            g()
        for x, W, gy in mats:
            x @ W.T
            gy.T @ x
            gy @ W
    flops = sum(f for _, f in conv) + sum(6 * x.shape[0] * x.shape[1] * W.shape[0]
                                          for x, W, _ in mats)
    return gemms, flops


def make_gemms(shape, seed):
    """The products of one step on random operands of the right shapes and layouts."""
    if 'model' in shape:
        return make_model_gemms(shape, seed)
    rng = numpy.random.default_rng(seed)
    O, C = shape['w'][:2]
    ks = shape['w'][2:]
    K = C * int(numpy.prod(ks))
    N = shape['x'][0]
    for n, k in zip(shape['x'][2:], ks):
        N *= out_len(n, k, shape['stride'], shape['pad'])
    W2 = rng.random((O, K), dtype=numpy.float32)
    col = rng.random((K, N), dtype=numpy.float32)
    gy2 = rng.random((O, N), dtype=numpy.float32)

    def gemms():
        W2 @ col
        gy2 @ col.T
        if shape['grad_x']:
            W2.T @ gy2
    flops = 2 * O * K * N * (3 if shape['grad_x'] else 2)
    return gemms, flops


def time_runs(fn, steps, repeats, warmup):
    for _ in range(warmup):
        fn()
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        runs.append((time.perf_counter() - t0) / steps)
    return common.median(runs)


class TorchChild:
    """The anchor in ``--serve`` mode: one timed run of a shape per request."""

    def __init__(self, python, steps, warmup, threads):
        self.proc = subprocess.Popen(
            [python, os.path.join(BENCH_DIR, 'anchors', 'torch_conv.py'), '--serve',
             '--shapes', json.dumps(SHAPES), '--steps', str(steps), '--warmup', str(warmup),
             '--threads', str(threads)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True)
        self.info = json.loads(self.proc.stdout.readline())

    def run(self, name):
        self.proc.stdin.write(name + '\n')
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline())

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def _batch(shape):
    return shape['batch'] if 'model' in shape else shape['x'][0]


def main(argv=None):
    p = common.make_parser(__doc__)
    p.add_argument('--steps', type=int, default=10)
    p.add_argument('--repeats', type=int, default=9,
                   help='interleaved runs of each (seqdbr, GEMMs, torch); medians reported')
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--torch', default=None, help='python of a venv with torch (optional)')
    p.add_argument('--threads', type=int,
                   default=int(os.environ.get('OPENBLAS_NUM_THREADS', '1') or 1),
                   help="torch's threads (default: $OPENBLAS_NUM_THREADS or 1)")
    args = p.parse_args(argv)
    steps = {s['name']: make_step(s, k) for k, s in enumerate(SHAPES)}
    gemms = {s['name']: make_gemms(s, k) for k, s in enumerate(SHAPES)}
    child = TorchChild(args.torch, args.steps, args.warmup, args.threads) if args.torch else None
    for name in steps:
        for _ in range(args.warmup):
            steps[name]()
            gemms[name][0]()
    # Interleaved: per repeat and shape one run each of seqdbr, the GEMMs and torch.
    runs = []
    for _ in range(args.repeats):
        r = {'seqdbr': {}, 'gemm': {}, 'torch': {}}
        for name in steps:
            r['seqdbr'][name] = time_runs(steps[name], args.steps, 1, 0)
            r['gemm'][name] = time_runs(gemms[name][0], args.steps, 1, 0)
            if child:
                r['torch'][name] = child.run(name)
        runs.append(r)
    torch_machine = None
    if child:
        child.close()
        torch_machine = child.info
    rounds = runs
    results = {}
    for s in SHAPES:
        name = s['name']
        sq = [r['seqdbr'][name] for r in rounds]
        gm = [r['gemm'][name] for r in rounds]
        res = {k: s[k] for k in ('x', 'w', 'pad', 'grad_x', 'model', 'batch') if k in s}
        res.update({'seqdbr_ms_per_step': round(1e3 * common.median(sq), 3),
               'gemm_ms_per_step': round(1e3 * common.median(gm), 3),
               'gemm_gflops_per_s': round(gemms[name][1] / common.median(gm) / 1e9, 2),
               'ratio_to_gemm_limit': round(common.median([g / q for g, q in zip(gm, sq)]), 3),
               'seqdbr_samples_per_s': round(_batch(s) / common.median(sq), 1)})
        if args.torch:
            tq = [r['torch'][name] for r in rounds]
            res['torch_ms_per_step'] = round(1e3 * common.median(tq), 3)
            res['torch_samples_per_s'] = round(_batch(s) / common.median(tq), 1)
            res['throughput_ratio_vs_torch'] = round(
                common.median([t / q for t, q in zip(tq, sq)]), 3)
        results[name] = res
    out = {'benchmark': 'conv', 'machine': common.machine_info(
        {'seqdbr': seqdbr.__version__}, blas_env=os.environ), 'torch_machine': torch_machine,
        'steps': args.steps, 'repeats': args.repeats,
        'results': results}
    common.emit(out)


if __name__ == '__main__':
    main()
