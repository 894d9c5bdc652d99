"""Generating sentences from a trained word-level LM.

Sampling runs under ``no_backprop_mode`` with dropout off, one stream. The prime words
(default: none, i.e. the state after ``<eos>``: the start of a sentence) are fed once; then
each new word is drawn from the model's distribution and fed back. ``<eos>`` ends a sentence
(a line of the output).

Choosing a word from logits ``z`` (float64 on the host):

* ``temperature == 0``: ``argmax(z)`` (the first maximum on ties), the limit of the tempered
  distribution;
* otherwise ``p_i ∝ exp((z_i - max z) / temperature)`` restricted to the ``top_k`` largest
  logits when ``top_k`` is given (ties at the k-th value kept), drawn by inverse-CDF sampling
  with ``rng.random()`` (so the same seed gives the same text).
* ``allow_unk=False`` never draws ``<unk>`` (its probability is set to 0 before top-k).
"""
import math
import numbers

import numpy

from seqdbr.core import backend
from seqdbr.core.config import no_backprop_mode, using_config
from seqdbr.wordlm.errors import SamplingError

__all__ = ['check_sampling_options', 'choose', 'sample_sentences']


def check_sampling_options(temperature, top_k, num_sentences, max_words):
    """Validate the options; returns ``(temperature, top_k)``.

    Raises:
        SamplingError: naming the value and the accepted range.
    """
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) \
            or not math.isfinite(temperature) or temperature < 0:
        raise SamplingError('temperature must be a finite number >= 0 (0 = the most likely '
                            'word, < 1 more conservative, > 1 more surprising), got %r'
                            % (temperature,))
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral)
                              or top_k < 1):
        raise SamplingError('top_k must be an int >= 1 (or None for no limit), got %r'
                            % (top_k,))
    for name, v in (('num_sentences', num_sentences), ('max_words', max_words)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise SamplingError('%s must be an int >= 1, got %r' % (name, v))
    return float(temperature), (None if top_k is None else int(top_k))


def choose(z, temperature, top_k, rng, banned=None):
    """One index drawn from logits ``z`` (1-D) as described in the module docstring.

    Raises:
        SamplingError: NaN or infinite logits.
    """
    z = numpy.asarray(z, dtype=numpy.float64).copy()
    if not numpy.isfinite(z).all():
        raise SamplingError('the model produced NaN or infinite logits; the checkpoint is '
                            'broken or diverged')
    if banned is not None:
        z[banned] = -numpy.inf
    if temperature == 0:
        return int(numpy.argmax(z))
    if top_k is not None and top_k < z.size:
        kth = numpy.partition(z, z.size - top_k)[z.size - top_k]
        z[z < kth] = -numpy.inf
    p = numpy.exp((z - z.max()) / temperature)
    c = numpy.cumsum(p)
    i = int(numpy.searchsorted(c, rng.random() * c[-1], side='right'))
    return min(i, z.size - 1)


def sample_sentences(model, vocab, num_sentences=5, temperature=1.0, top_k=None, prime=(),
                     max_words=100, seed=0, allow_unk=True):
    """Sentences from ``model``.

    Args:
        model (WordLM): on any device; its carried state is reset before and after.
        vocab (WordVocabulary): the model's vocabulary.
        num_sentences (int): sentences to generate (>= 1).
        temperature (float), top_k (int or None): see the module docstring.
        prime (sequence of str): words that start the first sentence (each must be in the
            vocabulary).
        max_words (int): a sentence that reaches this many words without ``<eos>`` is cut.
        seed (int): the sampling generator's seed.
        allow_unk (bool): False never draws ``<unk>``.

    Returns:
        list of str: one sentence per item (words joined by spaces, prime included).

    Raises:
        SamplingError: bad options, a prime word outside the vocabulary, non-finite logits.
    """
    temperature, top_k = check_sampling_options(temperature, top_k, num_sentences, max_words)
    prime = list(prime)
    unknown = [w for w in prime if w not in vocab]
    if unknown:
        raise SamplingError('prime words not in the vocabulary: %s (the model knows %d words; '
                            'out-of-vocabulary words are %r)'
                            % (' '.join(unknown[:10]), len(vocab), '<unk>'))
    rng = numpy.random.default_rng(seed)
    xp = model.xp
    banned = None if allow_unk else vocab.unk_id
    out, words = [], list(prime)
    model.reset_state()
    try:
        with no_backprop_mode(), using_config('train', False):
            feed = [vocab.eos_id] + vocab.encode(prime).tolist()
            y = model(xp.asarray(numpy.array([feed], dtype=numpy.int32)))
            while len(out) < num_sentences:
                z = backend.to_host(y.array[0, -1])
                i = choose(z, temperature, top_k, rng, banned)
                if i == vocab.eos_id or len(words) >= max_words:
                    out.append(' '.join(words))
                    words = []
                    if i != vocab.eos_id:      # cut: start the next sentence afresh
                        i = vocab.eos_id
                else:
                    words.append(vocab.words[i])
                y = model(xp.asarray(numpy.array([[i]], dtype=numpy.int32)))
    finally:
        model.reset_state()
    return out
