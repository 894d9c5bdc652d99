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
import os
import sys

import numpy
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import common  # noqa: E402

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


def main(argv=None):
    p = common.make_parser(__doc__)
    common.add_mlp_args(p)
    p.add_argument('--threads', type=int, default=2, help='torch.set_num_threads')
    p.add_argument('--settle', type=float, default=0.1,
                   help='seconds to pause after each run (worker threads idle)')
    p.add_argument('--seed', type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    b = args.batchsize
    model, opt, data = make_problem(args.units, b, args.seed)
    o = common.mlp_mm_operands(args.units, b, args.seed)
    mm_np = common.mlp_matmuls(o)
    mm_t = common.mlp_matmuls({k: torch.from_numpy(v) for k, v in o.items()})

    def mm_torch(i):
        with torch.no_grad():
            mm_t()

    # a training run, a NumPy matmul run and a torch matmul run, alternated
    runs = common.alternate_runs(
        [('train', lambda i: step(model, opt, *data[i % len(data)])),
         ('numpy', lambda i: mm_np()), ('torch', mm_torch)],
        args.steps, args.repeats, args.warmup, args.settle)
    flops = common.mlp_flops(args.units, b)
    step_c = common.median(c for _, c in runs['train'])
    out = common.mlp_header(args, 'torch')
    out.update(common.mlp_train_figures(b, runs['train']))
    for prefix, name in (('', 'numpy'), ('torch_', 'torch')):
        out.update(common.mlp_matmul_figures(b, flops, runs['train'], runs[name], prefix))
        out[prefix + 'cpu_ratio_to_matmul_limit'] = round(
            common.median(c for _, c in runs[name]) / step_c, 3)
    out['overhead_ms_per_step'] = round(1000 * common.median(t for t, _ in runs['train'])
                                        - out['matmul_ms_per_step'], 3)
    out['cpu_ms_per_step'] = round(1000 * step_c, 3)
    out.update(common.machine_info({'torch': torch.__version__}, threads=args.threads))
    common.emit(out)


if __name__ == '__main__':
    main()
