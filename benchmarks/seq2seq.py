"""Seq2seq training and greedy decoding speed: target tokens per second, seqdbr against the
PyTorch anchor (``benchmarks/anchors/torch_seq2seq.py``), same model shape and batches.

The model is ``seqdbr.examples.seq2seq.Seq2seq`` (bidirectional n-step LSTM encoder,
input-feeding stepwise LSTM decoder with Luong 'general' attention); one training iteration
is forward, backward, global-norm clipping at 5 and an Adam update on a batch of generated
date pairs (variable-length sources, 11 target symbols each, ``<eos>`` included). Greedy
decoding runs one batch of 256 sources (at most 30 steps, until every row has emitted
``<eos>``; rows are computed whether alive or not, so its rate counts ``steps x 256`` rows). Each measurement is a fresh process; seqdbr and
PyTorch processes alternate for ``--rounds`` rounds and the medians and the median of the
per-round ratios are printed as one JSON object.

    python3 benchmarks/seq2seq.py --torch-python /work/wt/_torchvenv/bin/python --rounds 5
"""
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, os.pardir))

from common import emit, machine_info, median  # noqa: E402

KEYS = ('train_tokens_per_s', 'train_iter_ms', 'greedy_tokens_per_s')


def child(args):
    import numpy
    import seqdbr
    from seqdbr.core.optimizer_hooks import GradientClipping
    from seqdbr.datasets import dates
    from seqdbr.examples import seq2seq as S
    seqdbr.initializers.set_seed(args.seed)
    n = args.warmup + args.iters
    pairs = dates.load_dates(n * args.batch_size, 0, 0, seed=args.seed)['train']
    sv, tv = S.date_vocabs()
    ex = S.encode_pairs(pairs, sv, tv)
    data = [ex[i:i + args.batch_size] for i in range(0, len(ex), args.batch_size)]
    model = S.Seq2seq(len(sv), len(tv), args.embed, args.hidden)
    opt = seqdbr.optimizers.Adam(alpha=3e-3).setup(model)
    opt.add_hook(GradientClipping(5.0))

    def step(batch):
        xs, ys = S.convert_batch(batch)
        loss, _ = model.loss(xs, ys)
        model.cleargrads()
        loss.backward()
        opt.update()
        return sum(len(y) + 1 for y in ys)

    for b in data[:args.warmup]:
        step(b)
    t0 = time.perf_counter()
    tokens = sum(step(b) for b in data[args.warmup:])
    train_s = time.perf_counter() - t0
    src = [x for b in data for x, _ in b][:args.decode_batch]
    model.greedy(src, 30)
    t0 = time.perf_counter()
    hyps = model.greedy(src, 30)
    dec_s = time.perf_counter() - t0
    steps = max(len(h.tokens) + h.finished for h in hyps)   # decoder steps run
    dec_tokens = steps * len(src)                             # rows computed, alive or not
    print(json.dumps({'framework': 'seqdbr', 'threads': os.environ.get('OMP_NUM_THREADS'),
                      'train_tokens_per_s': tokens / train_s,
                      'train_iter_ms': 1000 * train_s / args.iters,
                      'greedy_tokens_per_s': dec_tokens / dec_s,
                      'embed': args.embed, 'hidden': args.hidden,
                      'batch_size': args.batch_size, 'numpy': numpy.__version__}))


def run(cmd, env):
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    import argparse
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--embed', type=int, default=32)
    p.add_argument('--hidden', type=int, default=64)
    p.add_argument('--batch-size', type=int, default=64)
    p.add_argument('--iters', type=int, default=40)
    p.add_argument('--warmup', type=int, default=5)
    p.add_argument('--decode-batch', type=int, default=256)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--rounds', type=int, default=5)
    p.add_argument('--torch-python', default=None, help='python of a venv with torch')
    p.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads),
               OPENBLAS_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    common = ['--embed', str(args.embed), '--hidden', str(args.hidden), '--batch-size',
              str(args.batch_size), '--iters', str(args.iters), '--warmup', str(args.warmup),
              '--decode-batch', str(args.decode_batch), '--seed', str(args.seed)]
    runs = {'seqdbr': [], 'torch': []}
    for _ in range(args.rounds):
        runs['seqdbr'].append(run([sys.executable, os.path.abspath(__file__), '--child'] +
                                  common, env))
        if args.torch_python:
            runs['torch'].append(run([args.torch_python, os.path.join(
                HERE, 'anchors', 'torch_seq2seq.py'), '--threads', str(args.threads)] + common,
                env))
    out = {'benchmark': 'seq2seq', 'machine': machine_info({}, env, args.threads),
           'config': vars(args)}
    for name, rs in runs.items():
        if rs:
            out[name] = {k: round(median([r[k] for r in rs]), 2) for k in KEYS}
            out[name]['runs'] = [{k: round(r[k], 2) for k in KEYS} for r in rs]
    if runs['torch']:
        out['seqdbr_over_torch_median_of_round_ratios'] = {
            k: round(median([a[k] / b[k] for a, b in zip(runs['seqdbr'], runs['torch'])]), 3)
            for k in KEYS}
    emit(out)


if __name__ == '__main__':
    sys.exit(main())
