"""Quality benchmark: validation loss (nats/char) against wall-clock minutes of training.

Trains the default char-RNN model (2x128 LSTM, char-rnn defaults: Adam 2e-3, batch 50,
seq 50, grad clip 5, decay 0.97 after 10 epochs) on Tiny Shakespeare with a contiguous
90/10 train/val split, evaluating the full validation split every ``--eval-every``
iterations, for ``--minutes`` of wall-clock time. Prints JSON with the curve, the best
validation loss, the first time the curve crosses ``--target`` (1.56) and the bigram
baseline on the same split (add-one smoothed, fitted on the training split only).

``minutes`` in the curve is wall-clock time since training started (validation
included, as in the run's log.jsonl); ``train_minutes`` leaves out the time spent in
validation passes. ``benchmarks/anchors/torch_charlm_quality.py`` is the same job in
PyTorch, for a side-by-side run on the same machine.

The corpus is read from ``--corpus`` (a path), else ``../shared/data/tinyshakespeare/
input.txt`` beside the project, else the ``tinyshakespeare`` catalog entry (cache/download).

    python benchmarks/charlm_quality.py --minutes 6 --out runs/quality
"""
import argparse
import json
import os
import pathlib
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import bigram_baseline  # noqa: E402
from seqdbr.charlm.train import TrainConfig, train  # noqa: E402
from seqdbr.charlm.vocab import Vocabulary  # noqa: E402
from seqdbr.datasets.corpora import load_corpus  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--corpus', default=None)
    p.add_argument('--minutes', type=float, default=6.0)
    p.add_argument('--max-epochs', type=int, default=None,
                   help='also stop after this many epochs (for per-epoch seed studies)')
    p.add_argument('--eval-every', type=int, default=100)
    p.add_argument('--target', type=float, default=1.56)
    p.add_argument('--out', default='runs/quality')
    p.add_argument('--impl', default='nstep', choices=['nstep', 'stepwise'])
    p.add_argument('--seed', type=int, default=123)
    p.add_argument('--forget-bias', type=float, default=None,
                   help="LSTM forget-gate bias at init (default: CharRNN's, 0)")
    args = p.parse_args()

    corpus = args.corpus
    if corpus is None:
        shared = ROOT.parent / 'shared' / 'data' / 'tinyshakespeare' / 'input.txt'
        corpus = str(shared) if shared.is_file() else 'tinyshakespeare'
    text = load_corpus(corpus).text
    vocab = Vocabulary.from_text(text)
    ids = vocab.encode(text)
    n_train = int(len(ids) * 0.9)
    baseline = bigram_baseline(ids[:n_train], ids[n_train:], len(vocab))

    # time every validation pass (benchmark-only instrumentation), so that the curve can
    # also be read against training time alone
    import seqdbr.charlm.train as train_mod
    eval_log = []                       # (seconds spent, cumulative before this call)
    real_eval = train_mod.evaluate_tokens

    def timed_eval(*a, **k):
        t = time.perf_counter()
        try:
            return real_eval(*a, **k)
        finally:
            eval_log.append(time.perf_counter() - t)
    train_mod.evaluate_tokens = timed_eval

    os.makedirs(args.out, exist_ok=True)
    cfg = TrainConfig(corpus=corpus, train_frac=0.9, val_frac=0.1, max_minutes=args.minutes,
                      max_epochs=args.max_epochs,
                      eval_every=args.eval_every, out=args.out, impl=args.impl,
                      seed=args.seed, progress=False,
                      **({} if args.forget_bias is None else {'forget_bias': args.forget_bias}))
    t0 = time.time()
    result = train(cfg, out_stream=sys.stderr)
    wall = time.time() - t0

    curve = []
    with open(result.log, encoding='utf-8') as f:
        for line in f:
            rec = json.loads(line)
            if rec.get('val_loss') is not None:
                # rec['time'] is taken before this validation: subtract the earlier ones
                before = sum(eval_log[:len(curve)])
                curve.append({'iteration': rec['iteration'], 'epoch': round(rec['epoch'], 3),
                              'minutes': round(rec['time'] / 60.0, 3),
                              'train_minutes': round((rec['time'] - before) / 60.0, 3),
                              'val_loss': round(rec['val_loss'], 4),
                              'train_loss': round(rec['train_loss'], 4)})
    best = min(curve, key=lambda r: r['val_loss']) if curve else None
    first_target = next((r for r in curve if r['val_loss'] <= args.target), None)
    first_bigram = next((r for r in curve if r['val_loss'] < baseline), None)
    iters = result.iteration
    out = {
        'benchmark': 'charlm_quality', 'corpus': corpus, 'split': '90/10 contiguous',
        'model': '2x128 LSTM, char-rnn defaults', 'impl': args.impl,
        'budget_minutes': args.minutes, 'max_epochs': args.max_epochs, 'seed': args.seed,
        'forget_bias': cfg.forget_bias,
        'wall_minutes_incl_eval': round(wall / 60, 2),
        'iterations': iters, 'epochs': round(result.epoch, 3),
        'chars_per_s_incl_eval': round(iters * 2500 / wall, 1),
        'eval_minutes': round(sum(eval_log) / 60.0, 2),
        'train_chars_per_s': round(iters * 2500 / (wall - sum(eval_log)), 1),
        'bigram_baseline_nats': round(baseline, 4),
        'first_below_bigram': first_bigram,
        'target_nats': args.target, 'first_at_or_below_target': first_target,
        'best': best, 'curve': curve,
        'loadavg_1m': os.getloadavg()[0] if hasattr(os, 'getloadavg') else None,
    }
    print(json.dumps(out, indent=1))


if __name__ == '__main__':
    main()
