#!/usr/bin/env python
"""Seq2seq with attention on the generated date task: human-written dates -> ISO dates.

Thin front end: the model, the decoders, the training loop and the checkpoint format live in
``seqdbr.examples.seq2seq``, the data generator in ``seqdbr.datasets.dates``. Examples::

    python scripts/seq2seq_dates.py train --out runs/dates          # ~1-2 minutes on 2 cores
    python scripts/seq2seq_dates.py translate runs/dates/model.npz "the 3rd of may 1998" \\
        "Tue 07 Jan 2031" --beam 5

``train`` writes OUT/model.npz (weights, both vocabularies and the model config in one
file, no pickle) after every epoch and prints the held-out exact-match accuracy (greedy and
beam) with sample translations at the end. ``translate`` decodes its arguments.

Exit status: 0 on success; 1 for an unusable input or checkpoint (one ``error:`` line on
stderr); 2 for invalid options.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

import seqdbr  # noqa: E402
from seqdbr.datasets import dates  # noqa: E402
from seqdbr.examples import seq2seq as S  # noqa: E402


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sub = p.add_subparsers(dest='command', required=True)
    t = sub.add_parser('train', help='train on generated dates',
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    t.add_argument('--out', '-o', default='runs/dates', help='output folder')
    t.add_argument('--n-train', type=int, default=20000, help='training examples')
    t.add_argument('--n-val', type=int, default=1000, help='validation examples')
    t.add_argument('--n-test', type=int, default=2000, help='held-out test examples')
    t.add_argument('--epochs', type=int, default=6, help='maximum epochs')
    t.add_argument('--max-minutes', type=float, default=None, help='training time budget')
    t.add_argument('--target', type=float, default=None,
                   help='stop when the validation exact match reaches this fraction')
    t.add_argument('--embed', type=int, default=32, help='embedding width')
    t.add_argument('--hidden', type=int, default=64, help='decoder and encoder-direction width')
    t.add_argument('--layers', type=int, default=1, help='encoder layers')
    t.add_argument('--score', default='general', choices=('general', 'concat'),
                   help='attention score (Luong et al. 2015)')
    t.add_argument('--batch-size', type=int, default=64, help='minibatch size')
    t.add_argument('--lr', type=float, default=3e-3, help="Adam's step size")
    t.add_argument('--beam', type=int, default=5, help='beam width of the final evaluation')
    t.add_argument('--seed', type=int, default=0, help='data, initialisation and shuffling seed')
    r = sub.add_parser('translate', help='decode dates with a trained checkpoint',
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    r.add_argument('checkpoint', help='model.npz written by train')
    r.add_argument('text', nargs='+', help='dates to normalise')
    r.add_argument('--beam', type=int, default=None, help='beam width (default: greedy)')
    r.add_argument('--length-penalty', type=float, default=0.0,
                   help='score / length**alpha ranks the beam (0: raw log-probability)')
    r.add_argument('--max-length', type=int, default=30, help='maximum output symbols')
    return p


def _train(args):
    seqdbr.initializers.set_seed(args.seed)
    data = dates.load_dates(args.n_train, args.n_val, args.n_test, seed=args.seed)
    sv, tv = S.date_vocabs()
    tr, va, te = [S.encode_pairs(data[k], sv, tv) for k in ('train', 'val', 'test')]
    model = S.Seq2seq(len(sv), len(tv), args.embed, args.hidden, args.layers, args.score)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, 'model.npz')
    print('data: %d train / %d val / %d test pairs (held-out dates never seen in training)'
          % (len(tr), len(va), len(te)))
    print('model: %d parameters (embed %d, hidden %d, %d encoder layer(s), %s attention)'
          % (model.count_params(), args.embed, args.hidden, args.layers, args.score))

    def log(rec):
        print('epoch %d  iter %d  loss %.4f  token acc %.4f  val exact %.4f  (%.1f s)'
              % (rec['epoch'], rec['iteration'], rec['loss'], rec['accuracy'],
                 rec['val_exact'], rec['time']), flush=True)
        S.save_checkpoint(path, model, sv, tv, extra={'history': [rec]})

    _, hist = S.train(model, tr, va, batch_size=args.batch_size, lr=args.lr,
                      max_epochs=args.epochs, target_accuracy=args.target, seed=args.seed,
                      max_seconds=None if args.max_minutes is None else 60 * args.max_minutes,
                      log=log)
    S.save_checkpoint(path, model, sv, tv, extra={'history': hist})
    t0 = time.perf_counter()
    greedy = S.exact_match(model, te)
    t1 = time.perf_counter()
    beam = S.exact_match(model, te, beam_width=args.beam)
    t2 = time.perf_counter()
    print('test exact match: greedy %.4f (%.1f s), beam %d %.4f (%.1f s); training %.1f s'
          % (greedy, t1 - t0, args.beam, beam, t2 - t1, hist[-1]['time']))
    for src, _ in data['test'][:6]:
        x = sv.encode(src)
        g = model.greedy([x], 30)[0]
        b = model.beam_search(x, args.beam, 30)
        print('%-28s greedy %s (%.3f)  beam %s (%.3f)' % (src, tv.decode(g.tokens), g.score,
                                                          tv.decode(b.tokens), b.score))
    print('checkpoint: %s' % path)
    return 0


def _translate(args):
    model, sv, tv, _ = S.load_checkpoint(args.checkpoint)
    for text in args.text:
        if not text:
            raise ValueError('an empty input cannot be translated; give at least one character')
        hyp = model.translate([sv.encode(text)], args.beam, args.max_length,
                              args.length_penalty)[0]
        print('%s\t%s\t%.4f%s' % (text, tv.decode(hyp.tokens), hyp.score,
                                  '' if hyp.finished else '\t(unfinished)'))
    return 0


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _train(args) if args.command == 'train' else _translate(args)
    except (ValueError, OSError) as e:
        print('%s: error: %s' % (parser.prog, e), file=sys.stderr, flush=True)
        return 1


if __name__ == '__main__':
    sys.exit(main())
