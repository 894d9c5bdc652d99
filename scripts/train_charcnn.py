#!/usr/bin/env python
"""Train a character-CNN sentence classifier (Kim 2014 on characters).

Thin front end: the logic lives in ``seqdbr.examples.charcnn``; see its docstring.
Examples::

    python scripts/train_charcnn.py --data-dir ../shared/data           # language ID en/es/ja
    python scripts/train_charcnn.py --task synthetic --epochs 8         # no files needed
    python scripts/train_charcnn.py --data-dir ../shared/data --min-len 8 --max-len 24

Prints one line per epoch (train loss and accuracy, test accuracy) and the final test
accuracy; with --out, also writes the trained model (``model.npz``) and ``log.json``.

Exit status: 0 on success; 1 when the corpora cannot be read (one ``error:`` line on
stderr); 2 for invalid options.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

from seqdbr.examples import charcnn  # noqa: E402


def build_parser():
    d = charcnn.CharCNNConfig()
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('--task', choices=('lang', 'synthetic'), default='lang',
                   help='lang: English/Spanish/Japanese lines from --data-dir; synthetic: '
                        'find which of three planted 3-letter motifs a string holds')
    p.add_argument('--data-dir', default=os.path.join('..', 'shared', 'data'),
                   help='folder holding tinyshakespeare/, quijote-es/ and neko-ja/')
    p.add_argument('--per-class', type=int, default=2000, help='training lines per class')
    p.add_argument('--test-per-class', type=int, default=500, help='test lines per class')
    p.add_argument('--min-len', type=int, default=20, help='shortest line kept (characters)')
    p.add_argument('--max-len', type=int, default=80, help='lines are cut to this length')
    p.add_argument('--epochs', type=int, default=d.epochs)
    p.add_argument('--batchsize', type=int, default=d.batchsize)
    p.add_argument('--embed', type=int, default=d.n_embed, help='character embedding width')
    p.add_argument('--filters', type=int, default=d.n_filters, help='filters per width')
    p.add_argument('--widths', default=','.join(map(str, d.widths)),
                   help='comma-separated filter widths')
    p.add_argument('--dropout', type=float, default=d.dropout)
    p.add_argument('--alpha', type=float, default=d.alpha, help="Adam's step size")
    p.add_argument('--seed', type=int, default=d.seed)
    p.add_argument('--out', default=None, help='write model.npz and log.json here')
    return p


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        widths = tuple(int(w) for w in args.widths.split(','))
    except ValueError:
        parser.error('--widths must be comma-separated integers, got %r' % args.widths)
    for name in ('per_class', 'test_per_class', 'min_len', 'max_len', 'epochs', 'batchsize',
                 'embed', 'filters'):
        if getattr(args, name) < 1:
            parser.error('--%s must be a positive integer' % name.replace('_', '-'))
    if min(widths) < 1 or not 0 <= args.dropout < 1 or args.min_len > args.max_len:
        parser.error('need widths >= 1, 0 <= dropout < 1 and --min-len <= --max-len')
    try:
        if args.task == 'lang':
            train_set, test_set = charcnn.load_language_lines(
                args.data_dir, args.per_class, args.test_per_class, args.min_len,
                args.max_len, args.seed)
        else:
            train_set, test_set = charcnn.synthetic_task(
                3 * args.per_class, 3 * args.test_per_class, max(args.min_len, 3), args.max_len,
                args.seed)
    except (OSError, ValueError) as e:
        print('%s: error: %s' % (parser.prog, e), file=sys.stderr)
        return 1
    config = charcnn.CharCNNConfig(epochs=args.epochs, batchsize=args.batchsize,
                                   n_embed=args.embed, n_filters=args.filters, widths=widths,
                                   dropout=args.dropout, alpha=args.alpha, seed=args.seed)
    print('task %s: %d train / %d test lines, classes %s; filters %d x widths %s'
          % (args.task, len(train_set), len(test_set), ', '.join(train_set.classes),
             args.filters, widths), flush=True)
    run = charcnn.train(config, train_set, test_set)
    print('final test accuracy %.4f' % run['log'][-1]['test_accuracy'])
    if args.out:
        from seqdbr.core import serializers
        os.makedirs(args.out, exist_ok=True)
        serializers.save_npz(os.path.join(args.out, 'model.npz'), run['model'])
        with open(os.path.join(args.out, 'log.json'), 'w') as f:
            json.dump({'vocab': ''.join(sorted(run['vocab'], key=run['vocab'].get)),
                       'classes': list(train_set.classes), 'log': run['log']}, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
