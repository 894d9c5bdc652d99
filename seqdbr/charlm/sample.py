"""Generating text from a trained char-RNN.

Sampling runs under ``no_backprop_mode`` with dropout off. The prime text is fed to the
model exactly once over its whole length (however long), so the state that produces the
first new character has read every prime character once; the output begins with the prime,
unchanged. A prime of up to :data:`PRIME_WINDOW` characters is one window; a longer one is
fed in consecutive windows of that size with the state carried between them (the same
recurrence, so memory stays bounded instead of growing with the prime: a 300,000-character
prime used to need about 1.4 GB for the default model). Then each new character is drawn from
the model's distribution and fed back.

Choosing a character from logits ``z`` (float64 on the host):

* ``temperature == 0`` or ``argmax=True``: ``argmax(z)`` (the first maximum on ties). A
  temperature of exactly 0 is the limit of the tempered distribution, so the two are the
  same rule, and no division by zero ever happens.
* otherwise ``p_i ∝ exp((z_i - max z) / temperature)``, restricted to the ``top_k`` largest
  logits when ``top_k`` is given (ties at the k-th value are all kept), and one index is
  drawn by inverse-CDF sampling with ``rng.random()``, so the same generator state gives the
  same text.

Logits that are NaN or infinite raise :class:`SamplingError`; an index is never made up.
"""
import math
import numbers

import numpy

from seqdbr.charlm.errors import SamplingError
from seqdbr.core import backend
from seqdbr.core.config import no_backprop_mode, using_config

__all__ = ['PRIME_WINDOW', 'check_sampling_options', 'choose', 'encode_prime', 'sample']

#: Longest window in which the prime is fed (longer primes are fed window by window).
PRIME_WINDOW = 4096


def check_sampling_options(temperature, top_k):
    """Validate ``temperature`` (finite, >= 0) and ``top_k`` (None or int >= 1).

    Returns:
        tuple ``(float temperature, top_k)``.

    Raises:
        SamplingError: with the offending value and the accepted range.
    """
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) \
            or not math.isfinite(temperature):
        raise SamplingError('temperature must be a finite number >= 0, got %r' % (temperature,))
    if temperature < 0:
        raise SamplingError('temperature must be >= 0, got %r: use 0 for the most likely '
                            'character (same as --argmax), values below 1 for more '
                            'conservative text and above 1 for more surprising text'
                            % (temperature,))
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral)
                              or top_k < 1):
        raise SamplingError('top_k must be an int >= 1 (or None for no limit), got %r'
                            % (top_k,))
    return float(temperature), (None if top_k is None else int(top_k))


def choose(logits, temperature=1.0, top_k=None, rng=None, argmax=False):
    """Pick one index from a 1-D vector of logits.

    Args:
        logits (array-like): shape ``(V,)``, float (host or device).
        temperature (float): >= 0; 0 means argmax.
        top_k (int or None): sample among the ``top_k`` largest logits only.
        rng (numpy.random.Generator): required unless sampling is deterministic
            (``argmax`` or temperature 0).
        argmax (bool): take the most likely index.

    Returns:
        int in ``[0, V)``.

    Raises:
        SamplingError: non-finite logits (naming how many and where), bad options.
    """
    temperature, top_k = check_sampling_options(temperature, top_k)
    z = numpy.asarray(backend.to_cpu(logits), dtype=numpy.float64)
    if z.ndim != 1 or z.size == 0:
        raise SamplingError('logits must be a non-empty 1-D vector, got shape %s' % (z.shape,))
    finite = numpy.isfinite(z)
    if not finite.all():
        bad = numpy.flatnonzero(~finite)
        raise SamplingError(
            'the model produced %d non-finite logits (NaN or inf; first at index %d of %d); '
            'its weights are corrupt or diverged, so no character can be chosen. Use another '
            'checkpoint (e.g. best.npz) or retrain with a lower --learning-rate'
            % (bad.size, int(bad[0]), z.size))
    if argmax or temperature == 0.0:
        return int(numpy.argmax(z))
    if rng is None:
        raise SamplingError('a numpy.random.Generator (rng) is needed to sample; pass '
                            'rng=numpy.random.default_rng(seed)')
    if top_k is not None and top_k < z.size:
        kth = numpy.partition(z, z.size - top_k)[z.size - top_k]
        z = numpy.where(z >= kth, z, -numpy.inf)
    # (z - max) <= 0, so the division can only produce -inf or 0, never NaN or overflow.
    p = numpy.exp((z - z.max()) / temperature)
    cdf = numpy.cumsum(p)
    u = rng.random() * cdf[-1]
    return int(min(numpy.searchsorted(cdf, u, side='right'), z.size - 1))


def encode_prime(vocab, prime, unknown='error'):
    """Encode the prime text with the model's vocabulary.

    Args:
        vocab (Vocabulary): the checkpoint's vocabulary.
        prime (str or bytes): str for a char vocabulary, bytes for a bytes one (a str is
            UTF-8 encoded for a bytes vocabulary).
        unknown (str): ``'error'`` (default): characters not in the vocabulary raise an
            error listing them; ``'skip'``: they are dropped.

    Returns:
        numpy.ndarray: int32 ids, shape ``(P,)``.

    Raises:
        seqdbr.charlm.vocab.UnknownCharacterError: unknown characters with ``'error'``.
    """
    if vocab.mode == 'bytes' and isinstance(prime, str):
        prime = prime.encode('utf-8')
    return vocab.encode(prime, unknown=unknown)


def _write(out, piece):
    """Write ``piece`` to ``out`` (a text or binary stream, or None) and flush it."""
    if out is None or not piece:
        return
    out.write(piece)
    flush = getattr(out, 'flush', None)
    if flush is not None:
        flush()


def sample(model, vocab, length, prime='', temperature=1.0, top_k=None, argmax=False,
           rng=None, unknown='error', out=None):
    """Generate ``length`` new characters after ``prime``.

    Args:
        model (seqdbr.charlm.model.CharRNN): any device; its carried state is reset first
            and left at the end of the generated text.
        vocab (Vocabulary): the model's vocabulary.
        length (int): number of new characters (>= 0).
        prime (str or bytes): text the output starts with; it warms up the state, fed once
            over its whole length. When empty, generation starts from a newline when the
            vocabulary has one, else from the vocabulary's first symbol (that start symbol is
            not part of the output).
        temperature (float): >= 0; 0 equals ``argmax``.
        top_k (int or None): restrict sampling to the k most likely characters.
        argmax (bool): always take the most likely character.
        rng (numpy.random.Generator or None): the sampling generator; None makes a fresh one
            (unreproducible). Same generator state, same text.
        unknown (str): what to do with prime characters outside the vocabulary:
            ``'error'`` or ``'skip'`` (they are dropped from the fed prime, but the output
            still begins with the prime exactly as given).
        out: a text stream (char vocabularies) or binary stream (bytes vocabularies) to which
            the prime and then every new character are written and flushed as they come.

    Returns:
        str (bytes for a bytes vocabulary): the prime followed by the new characters.

    Raises:
        SamplingError: bad ``length``/``temperature``/``top_k``, or non-finite logits.
        seqdbr.charlm.vocab.UnknownCharacterError: unknown prime characters with
            ``unknown='error'``.
    """
    temperature, top_k = check_sampling_options(temperature, top_k)
    if isinstance(length, bool) or not isinstance(length, numbers.Integral) or length < 0:
        raise SamplingError('length must be an int >= 0, got %r' % (length,))
    if rng is None and not (argmax or temperature == 0.0):
        rng = numpy.random.default_rng()
    ids = encode_prime(vocab, prime, unknown)
    if vocab.mode == 'bytes' and isinstance(prime, str):
        prime = prime.encode('utf-8')
    if ids.size == 0:
        if '\n' in vocab or 10 in vocab:
            start = vocab.encode('\n' if vocab.mode == 'char' else b'\n')
        else:
            start = numpy.zeros(1, dtype=numpy.int32)
        ids = start.astype(numpy.int32)
    xp = model.xp
    pieces = []
    model.reset_state()
    # the model's device is current, so the id arrays sent below land beside its weights
    with no_backprop_mode(), using_config('train', False), backend.using_device(model.device):
        for lo in range(0, ids.size, PRIME_WINDOW):             # every prime id once
            y = model(xp.asarray(ids[None, lo:lo + PRIME_WINDOW]))   # (1, <=W, V)
        logits = y.array[0, -1]
        for i in range(length):
            k = choose(logits, temperature, top_k, rng, argmax)
            if i == 0:
                _write(out, prime)
            piece = vocab.decode(numpy.array([k], dtype=numpy.int32))
            pieces.append(piece)
            _write(out, piece)
            if i + 1 < length:
                y = model(xp.asarray(numpy.array([[k]], dtype=numpy.int32)))
                logits = y.array[0, -1]
        if length == 0:
            _write(out, prime)
    empty = b'' if vocab.mode == 'bytes' else ''
    return prime + empty.join(pieces)
