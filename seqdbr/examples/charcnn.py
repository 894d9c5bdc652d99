"""Character-CNN sentence classifier: the logic behind ``scripts/train_charcnn.py``.

Model (Kim 2014, "Convolutional Neural Networks for Sentence Classification", on
characters as in Zhang et al. 2015): character embeddings, one ``Convolution1D`` per filter
width (wide convolutions: ``pad = width - 1``, so a line shorter than the filter still has
outputs), ReLU, max-over-time pooling that ignores the padding of variable-length lines
(``F.global_max_pooling_1d`` with lengths), the pooled features concatenated, dropout and
one linear layer to the class logits.

Tasks:

* ``'lang'``: which language a line of text is in, among English (``tinyshakespeare``),
  Spanish (``quijote-es``, the Project Gutenberg header and licence removed) and Japanese
  (``neko-ja``), read from a data folder (``../shared/data`` in the development
  workplace). Lines are stripped; those with at least ``min_len`` characters are kept,
  cut to ``max_len``, and ``per_class`` are drawn per language (train) plus
  ``test_per_class`` others (test), without overlap.
* ``'synthetic'``: no files needed (tests). Random strings over an 8-letter alphabet in
  which exactly one of three 3-letter motifs is planted at a random place; the class is
  the motif. A bag-of-characters model cannot solve it (every class has the same letter
  distribution); a width-3 filter with max-over-time pooling can.

The training loop is :func:`train`, a small function (Adam, shuffled minibatches, test
accuracy after every epoch); it is meant to move onto ``seqdbr.training``'s Trainer.
"""
import dataclasses
import os

import numpy

import seqdbr
import seqdbr.functions as F
import seqdbr.links as L
from seqdbr import optimizers
from seqdbr.core.config import using_config
from seqdbr.datasets import SerialIterator
from seqdbr.training import StandardUpdater, Trainer
from seqdbr.training import extensions as E

__all__ = ['CharCNN', 'TextDataset', 'CharCNNConfig', 'LANGUAGES', 'load_language_lines',
           'synthetic_task', 'build_vocab', 'encode', 'train', 'evaluate']

# class name -> (relative path, start marker or None, end marker or None)
LANGUAGES = {
    'en': ('tinyshakespeare/input.txt', None, None),
    'es': ('quijote-es/pg2000.txt', '*** START OF THE PROJECT GUTENBERG',
           '*** END OF THE PROJECT GUTENBERG'),
    'ja': ('neko-ja/neko.txt', None, None),
}
UNK = 1      # id of characters outside the vocabulary; 0 is never used; -1 pads


class CharCNN(L.Chain):
    """Embeddings -> Convolution1D per width -> ReLU -> max over time -> concat -> Linear.

    Args:
        n_vocab (int): number of character ids (ids lie in ``[0, n_vocab)``; -1 pads).
        n_classes (int): number of classes.
        n_embed (int): embedding width.
        n_filters (int): filters per width.
        widths (sequence of int): filter widths (e.g. (2, 3, 4)).
        dropout (float): dropout ratio on the pooled features (training only).

    Call:
        ``(ids, lengths)``: int32 ``(B, T)`` ids padded with -1 after each line's length,
        and int ``(B,)`` lengths in ``[1, T]`` -> logits float32 ``(B, n_classes)``.
    """

    def __init__(self, n_vocab, n_classes, n_embed=32, n_filters=64, widths=(2, 3, 4),
                 dropout=0.3):
        super().__init__()
        self.widths = tuple(int(w) for w in widths)
        self.dropout = float(dropout)
        with self.init_scope():
            self.embed = L.EmbedID(n_vocab, n_embed, ignore_label=-1)
            self.convs = L.ChainList(*[L.Convolution1D(n_embed, n_filters, w, pad=w - 1)
                                       for w in self.widths])
            self.out = L.Linear(n_filters * len(self.widths), n_classes)

    def forward(self, ids, lengths):
        e = F.transpose(self.embed(ids), (0, 2, 1))           # (B, E, T)
        feats = []
        for w, conv in zip(self.widths, self.convs):
            h = F.relu(conv(e))                                # (B, F, T + w - 1)
            feats.append(F.global_max_pooling_1d(h, lengths=lengths + (w - 1)))
        h = F.concat(feats, axis=1)
        if self.dropout:
            h = F.dropout(h, self.dropout)
        return self.out(h)


@dataclasses.dataclass
class TextDataset:
    """Lines of text and their int labels, with the class names."""
    lines: list
    labels: numpy.ndarray
    classes: tuple

    def __len__(self):
        return len(self.lines)


def _read_lines(path, start, end):
    with open(path, encoding='utf-8-sig') as f:
        text = f.read()
    if start is not None:
        i = text.find(start)
        j = text.find(end)
        if i < 0 or j < 0:
            raise ValueError('%s: the markers %r ... %r were not found; is this the Project '
                             'Gutenberg file?' % (path, start, end))
        text = text[text.index('\n', i) + 1:j]
    return [ln.strip() for ln in text.splitlines()]


def load_language_lines(data_dir, per_class=2000, test_per_class=500, min_len=20,
                        max_len=80, seed=0):
    """The language-identification task from the corpora in ``data_dir``.

    Returns:
        (train, test): two :class:`TextDataset` with classes ``('en', 'es', 'ja')``.

    Raises:
        FileNotFoundError: a corpus file is missing (the message names it).
        ValueError: a corpus has fewer than ``per_class + test_per_class`` usable lines.
    """
    rng = numpy.random.default_rng(seed)
    parts = {'train': ([], []), 'test': ([], [])}
    classes = tuple(LANGUAGES)
    for label, name in enumerate(classes):
        rel, start, end = LANGUAGES[name]
        path = os.path.join(data_dir, rel)
        if not os.path.exists(path):
            raise FileNotFoundError('the %s corpus %s is missing; pass the folder that holds '
                                    '%s' % (name, path, ', '.join(v[0] for v in
                                                                  LANGUAGES.values())))
        lines = sorted({ln[:max_len] for ln in _read_lines(path, start, end)
                        if len(ln) >= min_len})
        need = per_class + test_per_class
        if len(lines) < need:
            raise ValueError('%s: only %d distinct lines of >= %d characters, %d needed'
                             % (path, len(lines), min_len, need))
        pick = rng.permutation(len(lines))[:need]
        for split, sel in (('train', pick[:per_class]), ('test', pick[per_class:])):
            parts[split][0].extend(lines[i] for i in sel)
            parts[split][1].extend([label] * len(sel))
    return tuple(TextDataset(p[0], numpy.array(p[1], numpy.int32), classes)
                 for p in (parts['train'], parts['test']))


MOTIFS = ('abc', 'cab', 'bca')
_ALPHABET = 'abcdefgh'


def synthetic_task(n_train=600, n_test=300, min_len=8, max_len=24, seed=0):
    """The motif task (module docstring): (train, test) :class:`TextDataset`."""
    rng = numpy.random.default_rng(seed)

    def make(n):
        lines, labels = [], []
        while len(lines) < n:
            label = len(lines) % len(MOTIFS)
            T = int(rng.integers(min_len, max_len + 1))
            s = ''.join(rng.choice(list(_ALPHABET), T))
            p = int(rng.integers(0, T - 2))
            s = s[:p] + MOTIFS[label] + s[p + 3:]
            if sum(m in s for m in MOTIFS) == 1:     # exactly one motif present
                lines.append(s)
                labels.append(label)
        return TextDataset(lines, numpy.array(labels, numpy.int32), MOTIFS)
    return make(n_train), make(n_test)


def build_vocab(lines, min_count=1):
    """``{char: id}`` for characters seen ``min_count`` times, ids from 2 (0 unused, 1 UNK)."""
    counts = {}
    for ln in lines:
        for ch in ln:
            counts[ch] = counts.get(ch, 0) + 1
    chars = sorted(ch for ch, n in counts.items() if n >= min_count)
    return {ch: i + 2 for i, ch in enumerate(chars)}


def encode(lines, vocab):
    """(ids int32 ``(B, T)`` padded with -1, lengths int32 ``(B,)``); unknown chars -> UNK."""
    lengths = numpy.array([len(ln) for ln in lines], numpy.int32)
    T = int(lengths.max()) if len(lines) else 1
    ids = numpy.full((len(lines), T), -1, numpy.int32)
    for b, ln in enumerate(lines):
        ids[b, :len(ln)] = [vocab.get(ch, UNK) for ch in ln]
    return ids, lengths


@dataclasses.dataclass
class CharCNNConfig:
    """Settings of :func:`train` (the script's options)."""
    epochs: int = 5
    batchsize: int = 64
    n_embed: int = 32
    n_filters: int = 64
    widths: tuple = (2, 3, 4)
    dropout: float = 0.3
    alpha: float = 0.002
    seed: int = 0
    verbose: bool = True


def evaluate(model, data, vocab, batchsize=256):
    """Accuracy of ``model`` on ``data`` (test mode, no graph)."""
    correct = 0
    with using_config('train', False), using_config('enable_backprop', False):
        for i in range(0, len(data), batchsize):
            ids, lengths = encode(data.lines[i:i + batchsize], vocab)
            y = model(ids, lengths).array
            correct += int((y.argmax(axis=1) == data.labels[i:i + batchsize]).sum())
    return correct / max(len(data), 1)


def _examples(data, vocab):
    """``data`` as a list of ``(ids row, label)`` examples for the iterator (the converter
    pads each batch to its longest line)."""
    ids, lengths = encode(data.lines, vocab)
    return [(ids[i, :max(int(lengths[i]), 1)], int(lengths[i]), int(data.labels[i]))
            for i in range(len(data))]


def _convert(batch, device=None):
    """Pad a batch of ``(ids, length, label)`` with -1 to its longest row, as :func:`encode`
    does: ``(ids (B, T), lengths (B,), labels (B,))``, int32."""
    ids = numpy.full((len(batch), max(len(x) for x, _, _ in batch)), -1, numpy.int32)
    for i, (x, _, _) in enumerate(batch):
        ids[i, :len(x)] = x
    return (ids, numpy.array([n for _, n, _ in batch], dtype=numpy.int32),
            numpy.array([t for _, _, t in batch], dtype=numpy.int32))



def _loss_fn(model):
    def loss_fn(ids, lengths, t):
        y = model(ids, lengths)
        return F.softmax_cross_entropy(y, t), {'accuracy': F.accuracy(y, t)}
    return loss_fn


#: Observation -> log field.
LOG_FIELDS = {'loss': 'train_loss', 'accuracy': 'train_accuracy',
              'test/accuracy': 'test_accuracy'}


def train(config, train_set, test_set):
    """Train a :class:`CharCNN` on ``train_set`` with the :class:`~seqdbr.training.Trainer`
    (a ``StandardUpdater`` over shuffled minibatches, Adam); test accuracy after every epoch.

    Returns:
        dict: ``model``, ``vocab``, ``log`` (one dict per epoch: ``iteration``, ``epoch``,
        ``train_loss``, ``train_accuracy`` (example-weighted means over the epoch),
        ``test_accuracy``, ``time``).
    """
    seqdbr.seed(config.seed)
    vocab = build_vocab(train_set.lines)
    model = CharCNN(len(vocab) + 2, len(train_set.classes), config.n_embed, config.n_filters,
                    config.widths, config.dropout)
    opt = optimizers.Adam(alpha=config.alpha).setup(model)
    it = SerialIterator(_examples(train_set, vocab), config.batchsize, seed=config.seed)
    trainer = Trainer(StandardUpdater(it, opt, _loss_fn(model), converter=_convert),
                      stop_trigger=(config.epochs, 'epoch'), out=None, program='charcnn')
    trainer.extend(E.Evaluator(_examples(test_set, vocab), _loss_fn(model), batch_size=256,
                               converter=_convert, prefix='test/'), trigger=(1, 'epoch'))
    log = trainer.extend(E.LogReport(LOG_FIELDS, trigger=(1, 'epoch'), filename=None))
    if config.verbose:
        trainer.extend(E.PrintReport(['loss', 'accuracy', 'test/accuracy']))
    trainer.run()
    return {'model': model, 'vocab': vocab, 'log': log.log}
