"""Word-level corpora: tokenization with ``<eos>``, a word vocabulary with a size limit and
``<unk>``, and the Penn Treebank (PTB) language-modelling benchmark.

The PTB files (Mikolov's ``simple-examples``, as used by Zaremba et al. 2014, "Recurrent
Neural Network Regularization") hold one sentence per line, words separated by spaces,
numbers written ``N`` and rare words already ``<unk>``. The standard reading, used here for
any text:

* every line is split on whitespace and followed by the token ``<eos>`` (a line without
  words gives ``<eos>`` alone; a final line without a trailing newline is a line too);
* the vocabulary is built from the training words only: the ``limit`` most frequent
  words (ties broken by first occurrence), always including ``<eos>`` and ``<unk>``; any
  other word maps to ``<unk>``. On PTB's training split the full vocabulary has exactly
  10,000 entries (9,999 words with ``<unk>``, plus ``<eos>``), 929,589 tokens.

Ids are ``numpy.int32`` (the label dtype of ``F.softmax_cross_entropy`` and
``F.embed_id``). Files are read as strict UTF-8 (``.gz`` files are gunzipped); anything else
raises :class:`seqdbr.datasets.corpora.CorpusError` with the byte offset and the fix.
"""
import collections
import pathlib

import numpy

from seqdbr.datasets import corpora

__all__ = ['EOS', 'UNK', 'ID_DTYPE', 'WordVocabulary', 'tokenize', 'read_words', 'WordCorpus',
           'load_words', 'load_ptb']

EOS = '<eos>'
UNK = '<unk>'
#: dtype of the id arrays.
ID_DTYPE = numpy.int32

_JSON_FORMAT = 'seqdbr.word_vocabulary'
_JSON_VERSION = 1


def tokenize(text, label='text'):
    """Words of ``text`` with ``<eos>`` after every line.

    Args:
        text (str): any text; lines are separated by ``'\\n'`` (a ``'\\r\\n'`` ending is
            whitespace, so CRLF files read the same).
        label (str): names the source in the error message.

    Returns:
        list of str.

    Raises:
        TypeError: ``text`` is not a str (bytes must be decoded first).
        ValueError: the text has no words at all (only whitespace).
    """
    if not isinstance(text, str):
        raise TypeError('tokenize: text must be a str, got %s; decode bytes first (e.g. '
                        'data.decode("utf-8"))' % type(text).__name__)
    lines = text.split('\n')
    if lines and lines[-1] == '':
        lines.pop()                      # the newline ends the last line; no extra line
    words = []
    n_words = 0
    for line in lines:
        w = line.split()
        n_words += len(w)
        words.extend(w)
        words.append(EOS)
    if not n_words:
        raise ValueError('%s has no words (%d characters, only whitespace); a word-level model '
                         'needs a corpus with words' % (label, len(text)))
    return words


def read_words(path):
    """``tokenize`` of a UTF-8 text file (``.gz`` gunzipped).

    Raises:
        seqdbr.datasets.corpora.CorpusError: missing file, invalid UTF-8 (message gives the
            byte offset and how to re-encode), empty file.
        ValueError: a file without words.
    """
    path = pathlib.Path(path)
    raw = corpora._read_content(path)
    text = corpora._to_text(raw, 'utf-8', str(path))
    return tokenize(text, str(path))


class WordVocabulary:
    """Words <-> contiguous int32 ids; id ``unk_id`` stands for every unknown word.

    Args:
        words (sequence of str): the vocabulary in id order, no duplicates; it must contain
            ``'<unk>'`` and ``'<eos>'``.

    Raises:
        ValueError: duplicates, an empty word, or ``<unk>``/``<eos>`` missing (the message
            says how to add them).
        TypeError: a word that is not a str.
    """

    def __init__(self, words):
        words = list(words)
        for w in words:
            if not isinstance(w, str):
                raise TypeError('WordVocabulary: words must be str, got %r' % (w,))
            if not w or w.split() != [w]:
                raise ValueError('WordVocabulary: %r is not a word (empty or with whitespace)'
                                 % (w,))
        index = {w: i for i, w in enumerate(words)}
        if len(index) != len(words):
            dup = [w for w, n in collections.Counter(words).items() if n > 1]
            raise ValueError('WordVocabulary: duplicate words %s' % dup[:10])
        missing = [s for s in (UNK, EOS) if s not in index]
        if missing:
            raise ValueError('WordVocabulary: the vocabulary lacks %s; a word-level model needs '
                             '%r for out-of-vocabulary words and %r for line ends. Add them, '
                             'or build it with WordVocabulary.from_words(...)'
                             % (' and '.join(missing), UNK, EOS))
        self._words = tuple(words)
        self._index = index
        self.unk_id = index[UNK]
        self.eos_id = index[EOS]

    @classmethod
    def from_words(cls, words, limit=None):
        """Vocabulary of the ``limit`` most frequent of ``words`` (a token list, e.g. from
        :func:`tokenize`), ``<unk>`` and ``<eos>`` included.

        Order: ``<unk>``, ``<eos>``, then the other words by decreasing count (ties: first
        occurrence first). With ``limit`` the vocabulary has at most ``limit`` entries
        counting ``<unk>`` and ``<eos>``.

        Raises:
            ValueError: ``limit`` < 2 (there must be room for ``<unk>`` and ``<eos>``), or
                no words.
            TypeError: ``limit`` not an int or None.
        """
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, (int, numpy.integer)):
                raise TypeError('WordVocabulary: limit must be an int or None, got %r'
                                % (limit,))
            if limit < 2:
                raise ValueError('WordVocabulary: limit must be >= 2 (the vocabulary always '
                                 'holds %r and %r), got %d' % (UNK, EOS, limit))
        counts = collections.Counter(words)
        if not sum(n for w, n in counts.items() if w != EOS):
            raise ValueError('WordVocabulary: no words to build a vocabulary from')
        counts.pop(UNK, None)
        counts.pop(EOS, None)
        # Counter.most_common keeps first-occurrence order among equal counts
        ranked = [w for w, _ in counts.most_common()]
        if limit is not None:
            ranked = ranked[:limit - 2]
        return cls([UNK, EOS] + ranked)

    @property
    def words(self):
        """The words in id order (tuple)."""
        return self._words

    def __len__(self):
        return len(self._words)

    def __contains__(self, word):
        return word in self._index

    def __eq__(self, other):
        return isinstance(other, WordVocabulary) and self._words == other._words

    def __hash__(self):
        return hash(self._words)

    def __repr__(self):
        return 'WordVocabulary(%d words: %s)' % (len(self), ' '.join(self._words[:8]) +
                                                  (' ...' if len(self) > 8 else ''))

    def encode(self, words):
        """int32 ids of ``words`` (a list of str); unknown words get ``unk_id``."""
        get, unk = self._index.get, self.unk_id
        return numpy.fromiter((get(w, unk) for w in words), dtype=ID_DTYPE, count=len(words))

    def decode(self, ids):
        """The words of integer ``ids`` (list of str).

        Raises:
            IndexError: an id outside ``[0, len(self))``.
        """
        ids = numpy.asarray(ids).ravel()
        if ids.size and (ids.min() < 0 or ids.max() >= len(self)):
            raise IndexError('WordVocabulary.decode: ids must lie in [0, %d), got %d .. %d'
                             % (len(self), ids.min(), ids.max()))
        return [self._words[i] for i in ids.tolist()]

    def to_json(self):
        """A JSON-ready dict (for self-contained checkpoints)."""
        return {'format': _JSON_FORMAT, 'version': _JSON_VERSION, 'words': list(self._words)}

    @classmethod
    def from_json(cls, d):
        """Inverse of :meth:`to_json`.

        Raises:
            ValueError: not a word-vocabulary dict, or an unknown version.
        """
        if not isinstance(d, dict) or d.get('format') != _JSON_FORMAT:
            raise ValueError('not a seqdbr word vocabulary (format %r)' %
                             (d.get('format') if isinstance(d, dict) else type(d).__name__,))
        if d.get('version') != _JSON_VERSION:
            raise ValueError('word vocabulary version %r is not supported (expected %d)'
                             % (d.get('version'), _JSON_VERSION))
        return cls(d['words'])


class WordCorpus:
    """A word-level corpus as id arrays.

    Attributes:
        vocab (WordVocabulary): built from the training split (or given).
        train, valid, test (numpy.ndarray or None): int32 ids with ``<eos>`` after each
            line (None for a split that was not given).
        source (str): where it came from.
    """

    def __init__(self, vocab, train, valid, test, source):
        self.vocab = vocab
        self.train = train
        self.valid = valid
        self.test = test
        self.source = source

    def __repr__(self):
        sizes = ', '.join('%s=%s' % (k, None if getattr(self, k) is None else
                                     len(getattr(self, k))) for k in ('train', 'valid', 'test'))
        return 'WordCorpus(%d-word vocabulary, %s, source=%r)' % (len(self.vocab), sizes,
                                                                 self.source)


def _build(texts, vocab, limit, source):
    """texts: split -> (text, label) or None."""
    words = {k: None if v is None else tokenize(*v) for k, v in texts.items()}
    if vocab is None:
        vocab = WordVocabulary.from_words(words['train'], limit)
    elif not isinstance(vocab, WordVocabulary):
        raise TypeError('vocab must be a WordVocabulary or None, got %s' % type(vocab).__name__)
    ids = {k: None if w is None else vocab.encode(w) for k, w in words.items()}
    return WordCorpus(vocab, ids['train'], ids['valid'], ids['test'], source)


def load_words(train, valid=None, test=None, limit=None, vocab=None):
    """A word-level corpus from text files (any tokenized UTF-8 text, ``.gz`` gunzipped).

    Args:
        train, valid, test (str or os.PathLike): file paths (valid/test optional).
        limit (int or None): vocabulary size limit (>= 2), counting ``<unk>`` and ``<eos>``;
            None keeps every training word.
        vocab (WordVocabulary or None): use this vocabulary instead of building one (e.g.
            the one stored in a checkpoint); ``limit`` is then ignored.

    Returns:
        WordCorpus.

    Raises:
        seqdbr.datasets.corpora.CorpusError: a missing, empty or non-UTF-8 file.
        ValueError: a file without words, ``limit`` < 2, a given vocabulary without
            ``<unk>``/``<eos>``.
    """
    texts = {}
    for k, p in (('train', train), ('valid', valid), ('test', test)):
        if p is None:
            texts[k] = None
            continue
        raw = corpora._read_content(pathlib.Path(p))
        texts[k] = (corpora._to_text(raw, 'utf-8', str(p)), str(p))
    return _build(texts, vocab, limit, str(train))


def load_ptb(data_dir=None, limit=None, vocab=None, allow_download=True):
    """The PTB word-level benchmark (catalog corpus ``'ptb'``): train, valid and test ids.

    Args:
        data_dir (str, os.PathLike or None): folder with ``ptb.train.txt``, ``ptb.valid.txt``,
            ``ptb.test.txt`` (each may be gzipped, ``<name>.gz``); default: the catalog cache
            (``$SEQDBR_DATA/corpora/ptb``), downloaded when missing. Every file is checked
            against the catalog's sha256.
        limit (int or None): vocabulary size limit (the full one has 10,000 words).
        vocab (WordVocabulary or None): a given vocabulary (e.g. from a checkpoint).
        allow_download (bool): False raises a CorpusError saying where to put the files.

    Returns:
        WordCorpus with 929,589 / 73,760 / 82,430 ids and a 10,000-word vocabulary.

    Raises:
        seqdbr.datasets.corpora.CorpusError: missing (offline) or corrupt files, wrong encoding.
        ValueError: ``limit`` < 2, or a given vocabulary without ``<unk>``/``<eos>``.
    """
    c = corpora.load_corpus('ptb', data_dir=data_dir, allow_download=allow_download)
    texts = {k: (c.splits[k], 'ptb.%s.txt' % k) for k in ('train', 'valid', 'test')}
    return _build(texts, vocab, limit, c.source)
