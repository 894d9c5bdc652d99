"""Command-line front ends: ``seqdbr-train-wordlm``, ``seqdbr-sample-wordlm``,
``seqdbr-eval-wordlm`` (also ``scripts/{train,sample,eval}_wordlm.py``).

A user error (bad flag value, unreadable corpus, foreign checkpoint) prints ``error: ...``
with the fix and exits with status 2; no traceback.
"""
import argparse
import sys

from seqdbr.datasets.corpora import CorpusError
from seqdbr.training import SnapshotError, TrainingDiverged
from seqdbr.wordlm.errors import WordLMError

__all__ = ['train_main', 'sample_main', 'eval_main', 'build_train_parser']


def _fail(prog, e):
    print('%s: error: %s' % (prog, e), file=sys.stderr)
    return 2


def build_train_parser():
    from seqdbr.wordlm.train import OPTIMIZERS, PRESETS, TrainConfig
    d = TrainConfig()
    ap = argparse.ArgumentParser(
        prog='seqdbr-train-wordlm',
        description='Train a word-level LSTM language model (Zaremba et al. 2014) with '
                    'truncated BPTT; prints the valid/test perplexity at the end.')
    ap.add_argument('--preset', choices=sorted(PRESETS),
                    help="Zaremba et al. 2014 configuration (default values: 'small')")
    g = ap.add_argument_group('data')
    g.add_argument('--data', choices=['ptb'], help='the PTB benchmark (catalog corpus)')
    g.add_argument('--data-dir', help='folder holding ptb.{train,valid,test}.txt[.gz]')
    g.add_argument('--train', dest='train_file', help='tokenized UTF-8 training text')
    g.add_argument('--valid', dest='valid_file', help='validation text (with --train)')
    g.add_argument('--test', dest='test_file', help='test text (with --train)')
    g.add_argument('--vocab-limit', type=int, help='keep the N most frequent words (>= 2, '
                   'counting <unk> and <eos>)')
    g = ap.add_argument_group('model')
    g.add_argument('--rnn-size', type=int)
    g.add_argument('--num-layers', type=int)
    g.add_argument('--dropout', type=float)
    g.add_argument('--init-scale', type=float, help='weights start U(-s, s)')
    g.add_argument('--tied', action='store_true', help='tie input and output embeddings '
                   '(Press & Wolf 2017)')
    g.add_argument('--bias-pair', action=argparse.BooleanOptionalAction, default=None,
                   help="two biases per LSTM layer as Zaremba's code and PyTorch's nn.LSTM "
                        '(default: on); --no-bias-pair keeps one, as Chainer and TensorFlow')
    g = ap.add_argument_group('optimization (lr and clip in Zaremba\'s units: loss summed '
                              'over the window\'s steps, mean over the batch)')
    g.add_argument('--optimizer', choices=OPTIMIZERS, default=d.optimizer)
    g.add_argument('--learning-rate', '--lr', type=float)
    g.add_argument('--lr-decay', type=float, help='rate multiplier per epoch, in (0, 1]')
    g.add_argument('--lr-decay-after', type=int, help='decay from the epoch after this one')
    g.add_argument('--grad-clip', type=float, help='global gradient norm limit (0 = off)')
    g.add_argument('--batch-size', type=int)
    g.add_argument('--bptt', type=int, help='BPTT window (steps)')
    g.add_argument('--max-epochs', type=int)
    g.add_argument('--max-iters', type=int)
    g.add_argument('--max-minutes', type=float)
    g = ap.add_argument_group('run')
    g.add_argument('--eval-batch-size', type=int, default=d.eval_batch_size,
                   help='streams for the final valid/test scoring (default 1)')
    g.add_argument('--out', default=d.out)
    g.add_argument('--seed', type=int, default=d.seed)
    g.add_argument('--device', default=d.device)
    g.add_argument('--resume', help='continue the run of this checkpoint exactly')
    g.add_argument('--no-progress', dest='progress', action='store_false')
    return ap


def train_main(argv=None):
    from seqdbr.wordlm.train import TrainConfig, train
    args = build_train_parser().parse_args(argv)
    cfg = TrainConfig(**vars(args))
    try:
        res = train(cfg)
    except (WordLMError, CorpusError, SnapshotError, TrainingDiverged, ValueError) as e:
        return _fail('seqdbr-train-wordlm', e)
    return 0 if res.status != 'interrupted' else 130


def build_sample_parser():
    ap = argparse.ArgumentParser(prog='seqdbr-sample-wordlm',
                                 description='Generate sentences from a word-LM checkpoint.')
    ap.add_argument('checkpoint', help='best.npz or latest.npz of seqdbr-train-wordlm')
    ap.add_argument('-n', '--num-sentences', type=int, default=5)
    ap.add_argument('--temperature', type=float, default=1.0,
                    help='0 = most likely word; < 1 conservative; > 1 surprising')
    ap.add_argument('--top-k', type=int, help='draw from the k most likely words only')
    ap.add_argument('--prime', default='', help='words that start the first sentence')
    ap.add_argument('--max-words', type=int, default=100)
    ap.add_argument('--no-unk', dest='allow_unk', action='store_false',
                    help='never generate <unk>')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--device', default='cpu')
    return ap


def sample_main(argv=None):
    from seqdbr.wordlm.checkpoint import load_checkpoint
    from seqdbr.wordlm.sample import sample_sentences
    a = build_sample_parser().parse_args(argv)
    try:
        ck = load_checkpoint(a.checkpoint)
        model = ck.build_model()
        if a.device != 'cpu':
            model.to_device(a.device)
        lines = sample_sentences(model, ck.vocab, a.num_sentences, a.temperature, a.top_k,
                                 a.prime.split(), a.max_words, a.seed, a.allow_unk)
    except WordLMError as e:
        return _fail('seqdbr-sample-wordlm', e)
    for line in lines:
        print(line)
    return 0


def build_eval_parser():
    ap = argparse.ArgumentParser(prog='seqdbr-eval-wordlm',
                                 description='Perplexity of a word-LM checkpoint on PTB '
                                             '(valid, test) or on tokenized text files.')
    ap.add_argument('checkpoint')
    ap.add_argument('files', nargs='*', help='text files to score (instead of --data ptb)')
    ap.add_argument('--data', choices=['ptb'])
    ap.add_argument('--data-dir', help='folder holding ptb.{train,valid,test}.txt[.gz]')
    ap.add_argument('--batch-size', type=int, default=1,
                    help='parallel streams (default 1: each word scored after all before it)')
    ap.add_argument('--bptt', type=int, default=100)
    ap.add_argument('--device', default='cpu')
    return ap


def eval_main(argv=None):
    from seqdbr.wordlm.checkpoint import load_checkpoint
    from seqdbr.wordlm.evaluate import evaluate_checkpoint
    a = build_eval_parser().parse_args(argv)
    try:
        ck = load_checkpoint(a.checkpoint)
        res = evaluate_checkpoint(ck, a.data, a.data_dir, a.files, a.batch_size, a.bptt,
                                  a.device)
    except (WordLMError, CorpusError, ValueError) as e:
        return _fail('seqdbr-eval-wordlm', e)
    print('checkpoint %s (iteration %d, %d-word vocabulary)'
          % (a.checkpoint, ck.iteration, len(ck.vocab)))
    for name, r in res.items():
        print('%s: perplexity %.2f (%.4f nats/word, %d words scored)'
              % (name, r.perplexity, r.loss, r.num_tokens))
    return 0
