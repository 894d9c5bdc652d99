"""Splitting a corpus into train / validation / test parts for the char-RNN.

The split is *contiguous*: with fractions ``(tf, vf)`` and a corpus of ``N`` characters (or
bytes), the training part is ``text[:floor(N*tf)]``, validation the next ``floor(N*vf)``
characters (all the rest when ``tf + vf == 1``), and the test part whatever remains.
Contiguous parts keep the validation text unseen (no leakage through overlapping windows)
and are what char-rnn does. Corpora whose
catalog entry defines splits (``ptb-char``, ``text8``, ``enwik8``) use those when no
fractions are given.
"""
import dataclasses

from seqdbr.charlm.errors import ConfigError

__all__ = ['DEFAULT_TRAIN_FRAC', 'DEFAULT_VAL_FRAC', 'Split', 'resolve_fractions',
           'split_corpus']

DEFAULT_TRAIN_FRAC = 0.95
DEFAULT_VAL_FRAC = 0.05


@dataclasses.dataclass(frozen=True)
class Split:
    """Three parts of a corpus (str or bytes, like ``corpus.text``).

    Attributes:
        train, val, test: the texts.
        method (str): ``'contiguous'`` or ``'predefined'``.
        fractions (tuple or None): ``(train_frac, val_frac)`` used by a contiguous split.
    """
    train: object
    val: object
    test: object
    method: str
    fractions: tuple

    def part(self, name):
        """``'train'``, ``'val'``, ``'test'`` or ``'all'`` (the three joined in order)."""
        if name == 'all':
            return self.train + self.val + self.test
        if name not in ('train', 'val', 'test'):
            raise ValueError("split must be 'train', 'val', 'test' or 'all', got %r" % (name,))
        return getattr(self, name)


def resolve_fractions(train_frac, val_frac):
    """Fill in defaults and validate the split fractions.

    Args:
        train_frac, val_frac (float or None): None for both means "not given" (returned as
            ``(None, None)``: the corpus's predefined splits, else the defaults 0.95 / 0.05).
            When only one is given, the other defaults to 0.05 (val) or
            ``min(0.95, 1 - val_frac)`` (train).

    Returns:
        tuple ``(train_frac, val_frac)`` of floats, or ``(None, None)``.

    Raises:
        ConfigError: a fraction outside [0, 1], ``train_frac == 0``, or a sum above 1 (the
            message gives both values, their sum and an example that works).
    """
    for flag, v in (('--train-frac', train_frac), ('--val-frac', val_frac)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                              or not 0 <= v <= 1):
            raise ConfigError('%s must be a fraction in [0, 1], got %r' % (flag, v))
    if train_frac is None and val_frac is None:
        return None, None
    vf = DEFAULT_VAL_FRAC if val_frac is None else float(val_frac)
    tf = min(DEFAULT_TRAIN_FRAC, 1.0 - vf) if train_frac is None else float(train_frac)
    if tf <= 0:
        raise ConfigError('--train-frac must be > 0 (nothing would be left to train on), got %r'
                          % (train_frac,))
    if tf + vf > 1 + 1e-9:
        raise ConfigError(
            '--train-frac %g + --val-frac %g = %.6g exceeds 1: the parts are consecutive '
            'slices of the corpus and would overlap. Choose fractions that sum to at most 1, '
            'e.g. --train-frac %g --val-frac %g (whatever remains is the test split)'
            % (tf, vf, tf + vf, round(1 - vf, 6) if vf < 1 else 0.9, vf if vf < 1 else 0.1))
    return tf, vf


def split_corpus(corpus, train_frac=None, val_frac=None):
    """Split a loaded corpus.

    Args:
        corpus (seqdbr.datasets.corpora.Corpus): the text and its predefined splits.
        train_frac, val_frac: see :func:`resolve_fractions`.

    Returns:
        Split.
    """
    tf, vf = resolve_fractions(train_frac, val_frac)
    empty = type(corpus.text)()
    if tf is None and corpus.splits and 'train' in corpus.splits:
        sp = corpus.splits
        val = sp.get('valid', sp.get('val', empty))
        return Split(sp['train'], val, sp.get('test', empty), 'predefined', None)
    if tf is None:
        tf, vf = DEFAULT_TRAIN_FRAC, DEFAULT_VAL_FRAC
    text = corpus.text
    n = len(text)
    n_train = int(n * tf)
    # Fractions that sum to 1 leave no test split (not a stray character or two of rounding).
    n_val = n - n_train if tf + vf >= 1 - 1e-9 else min(int(n * vf), n - n_train)
    return Split(text[:n_train], text[n_train:n_train + n_val], text[n_train + n_val:],
                 'contiguous', (tf, vf))
