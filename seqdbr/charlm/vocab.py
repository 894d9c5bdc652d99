"""Character (or byte) vocabulary: symbols <-> contiguous integer ids.

Two modes:

``'char'``
    Symbols are Unicode code points, each a 1-character ``str`` (any code point, including
    ``'\\r'``, ``'\\x00'``, astral characters such as emoji, and lone surrogates). Text is
    ``str``.
``'bytes'``
    Symbols are byte values, ``int`` 0..255. Text is ``bytes`` (``bytearray`` and
    ``memoryview`` are accepted too).

Ids are ``numpy.int32``: the widest possible vocabulary has 1,114,112 symbols (every code
point), far below 2**31, and int32 is the label/index dtype the embedding and softmax
cross-entropy functions expect, on CPU and GPU alike.

Encoding and decoding are vectorised (a lookup table indexed by code point), so a 100M
character corpus encodes in about a second.
"""
import numpy

from seqdbr.core import backend

__all__ = ['ID_DTYPE', 'UnknownCharacterError', 'Vocabulary']

#: dtype of the id arrays returned by :meth:`Vocabulary.encode`.
ID_DTYPE = numpy.int32

_MODES = ('char', 'bytes')
_JSON_FORMAT = 'seqdbr.vocabulary'
_JSON_VERSION = 1
_MAX_CODE_POINT = 0x10FFFF
_LISTED = 20  # unknown symbols shown in an error message


def _describe(symbol, mode):
    if mode == 'bytes':
        return '0x%02x' % symbol
    return '%r (U+%04X)' % (symbol, ord(symbol))


def _code_points(text):
    """uint32 array of the code points of ``text`` (lone surrogates included)."""
    return numpy.frombuffer(text.encode('utf-32-le', 'surrogatepass'), dtype='<u4')


class UnknownCharacterError(ValueError):
    """Text to encode contains symbols that are not in the vocabulary.

    Attributes:
        unknown (dict): unknown symbol (1-char str, or int in bytes mode) -> number of
            occurrences, in sorted symbol order.
    """

    def __init__(self, unknown, mode, vocab_size):
        self.unknown = dict(unknown)
        kind = 'bytes' if mode == 'bytes' else 'characters'
        items = ['%s x%d' % (_describe(s, mode), n) for s, n in list(unknown.items())[:_LISTED]]
        more = len(unknown) - _LISTED
        if more > 0:
            items.append('... and %d more' % more)
        super().__init__(
            '%d distinct %s (%d occurrences) are not in the vocabulary of %d symbols: %s. '
            "To proceed, drop them with --unknown skip (encode(..., unknown='skip')), or build "
            'the vocabulary from (train on) a corpus that contains them.'
            % (len(unknown), kind, sum(unknown.values()), vocab_size, ', '.join(items)))


class Vocabulary:
    """A fixed, ordered set of symbols; the id of a symbol is its position.

    Args:
        symbols (iterable): distinct symbols in id order: 1-character strs (``mode='char'``)
            or ints 0..255 (``mode='bytes'``). Must not be empty.
        mode (str or None): ``'char'`` or ``'bytes'``; None infers it from the first symbol.

    Raises:
        ValueError: empty, duplicate or out-of-range symbols, or an unknown mode.
        TypeError: a symbol of the wrong type for the mode.

    Vocabularies are immutable, hashable and compare equal when mode and symbol order agree.
    """

    def __init__(self, symbols, mode=None):
        if isinstance(symbols, (str, bytes, bytearray)):
            raise TypeError('Vocabulary(symbols) takes a sequence of symbols; to build one from '
                            'a text use Vocabulary.from_text(text)')
        symbols = tuple(symbols)
        if not symbols:
            raise ValueError('a Vocabulary needs at least one symbol (the text was empty?)')
        if mode is None:
            mode = 'char' if isinstance(symbols[0], str) else 'bytes'
        if mode not in _MODES:
            raise ValueError("mode must be 'char' or 'bytes', got %r" % (mode,))
        if mode == 'char':
            bad = [s for s in symbols if not (isinstance(s, str) and len(s) == 1)]
            if bad:
                raise TypeError("char-mode symbols must be 1-character strings, got %r"
                                % (bad[0],))
            cps = numpy.array([ord(s) for s in symbols], dtype=numpy.int64)
        else:
            bad = [s for s in symbols
                   if isinstance(s, bool) or not isinstance(s, (int, numpy.integer))]
            if bad:
                raise TypeError('bytes-mode symbols must be ints 0..255, got %r' % (bad[0],))
            cps = numpy.array([int(s) for s in symbols], dtype=numpy.int64)
            if cps.min() < 0 or cps.max() > 255:
                raise ValueError('bytes-mode symbols must be in 0..255, got %d'
                                 % int(cps[(cps < 0) | (cps > 255)][0]))
            symbols = tuple(int(s) for s in symbols)
        uniq, counts = numpy.unique(cps, return_counts=True)
        if len(uniq) != len(cps):
            dup = int(uniq[counts > 1][0])
            raise ValueError('duplicate symbol %s in the vocabulary'
                             % _describe(chr(dup) if mode == 'char' else dup, mode))
        self._mode = mode
        self._symbols = symbols
        self._cps = cps.astype(numpy.uint32)          # id -> code point / byte value
        self._narrow = bool(cps.max() < 256)
        table_size = 256 if mode == 'bytes' else int(cps.max()) + 1
        self._table = numpy.full(table_size, -1, dtype=ID_DTYPE)  # code point -> id or -1
        self._table[cps] = numpy.arange(len(cps), dtype=ID_DTYPE)

    @classmethod
    def from_text(cls, text):
        """The vocabulary of the distinct symbols of ``text``, sorted by code point / byte value.

        Args:
            text (str or bytes-like): a str gives a ``'char'`` vocabulary, bytes (bytearray,
                memoryview) a ``'bytes'`` vocabulary.

        Returns:
            Vocabulary (deterministic: depends only on the set of symbols).

        Raises:
            ValueError: ``text`` is empty. TypeError: not str or bytes-like.
        """
        if isinstance(text, str):
            if not text:
                raise ValueError('cannot build a vocabulary from an empty text')
            present = numpy.flatnonzero(numpy.bincount(_code_points(text)))
            return cls([chr(c) for c in present.tolist()], mode='char')
        if isinstance(text, (bytes, bytearray, memoryview)):
            data = numpy.frombuffer(text, dtype=numpy.uint8)
            if data.size == 0:
                raise ValueError('cannot build a vocabulary from an empty text')
            present = numpy.flatnonzero(numpy.bincount(data, minlength=256))
            return cls(present.tolist(), mode='bytes')
        raise TypeError('from_text needs str (char mode) or bytes (bytes mode), got %s'
                        % type(text).__name__)

    @property
    def mode(self):
        """``'char'`` or ``'bytes'``."""
        return self._mode

    @property
    def symbols(self):
        """Tuple of the symbols in id order (1-char strs, or ints in bytes mode)."""
        return self._symbols

    def __len__(self):
        return len(self._symbols)

    def __contains__(self, symbol):
        if self._mode == 'char':
            if not (isinstance(symbol, str) and len(symbol) == 1):
                return False
            c = ord(symbol)
        else:
            if isinstance(symbol, bool) or not isinstance(symbol, (int, numpy.integer)):
                return False
            c = int(symbol)
        return 0 <= c < len(self._table) and self._table[c] >= 0

    def __eq__(self, other):
        if not isinstance(other, Vocabulary):
            return NotImplemented
        return self._mode == other._mode and self._symbols == other._symbols

    def __hash__(self):
        return hash((self._mode, self._symbols))

    def __repr__(self):
        shown = self._symbols[:40]
        if self._mode == 'char':
            body = repr(''.join(shown))
        else:
            body = repr(bytes(shown))
        return 'Vocabulary(mode=%r, size=%d, symbols=%s%s)' % (
            self._mode, len(self), body, '...' if len(self) > 40 else '')

    def _values(self, text):
        if self._mode == 'char':
            if not isinstance(text, str):
                raise TypeError('this char-mode vocabulary encodes str, got %s%s' % (
                    type(text).__name__, '; decode the bytes to str first (or use a bytes-mode '
                    'vocabulary)' if isinstance(text, (bytes, bytearray, memoryview)) else ''))
            return _code_points(text)
        if not isinstance(text, (bytes, bytearray, memoryview)):
            raise TypeError('this bytes-mode vocabulary encodes bytes, got %s%s' % (
                type(text).__name__, "; encode the str first (e.g. text.encode('utf-8'))"
                if isinstance(text, str) else ''))
        return numpy.frombuffer(text, dtype=numpy.uint8)

    def encode(self, text, unknown='error'):
        """Map a text to ids.

        Args:
            text (str or bytes-like): str for a ``'char'`` vocabulary, bytes for ``'bytes'``.
            unknown (str): ``'error'`` (default) raises on symbols outside the vocabulary;
                ``'skip'`` drops them.

        Returns:
            numpy.ndarray: shape ``(n,)``, dtype int32 (:data:`ID_DTYPE`), ids in
            ``[0, len(self))``; ``n`` is the number of symbols of ``text`` (minus skipped ones).

        Raises:
            UnknownCharacterError: ``unknown='error'`` and the text has unknown symbols (the
                message lists them, sorted, with counts).
            TypeError: ``text`` is of the wrong type for the mode.
            ValueError: ``unknown`` is neither ``'error'`` nor ``'skip'``.
        """
        if unknown not in ('error', 'skip'):
            raise ValueError("unknown must be 'error' or 'skip', got %r" % (unknown,))
        values = self._values(text)
        if values.size == 0:
            return numpy.empty(0, dtype=ID_DTYPE)
        if int(values.max()) < len(self._table):
            ids = self._table[values]
        else:
            inside = values < len(self._table)
            ids = numpy.full(values.shape, -1, dtype=ID_DTYPE)
            ids[inside] = self._table[values[inside]]
        bad = ids < 0
        if not bad.any():
            return ids
        if unknown == 'skip':
            return ids[~bad]
        syms, counts = numpy.unique(values[bad], return_counts=True)
        conv = chr if self._mode == 'char' else int
        raise UnknownCharacterError({conv(int(s)): int(n) for s, n in zip(syms, counts)},
                                    self._mode, len(self))

    def decode(self, ids):
        """Map ids back to text.

        Args:
            ids (array-like of int): 1-D ids (numpy/CuPy array, list or tuple) in
                ``[0, len(self))``.

        Returns:
            str (char mode) or bytes (bytes mode); ``decode(encode(t)) == t``.

        Raises:
            TypeError: non-integer ids. ValueError: ids not 1-D, or out of range (the message
            gives the first bad id).
        """
        if backend.is_device_array(ids):
            ids = backend.to_host(ids)
        arr = numpy.asarray(ids)
        if arr.size == 0:
            return '' if self._mode == 'char' else b''
        if arr.dtype.kind not in 'iu':
            raise TypeError('ids must be integers, got dtype %s' % arr.dtype)
        if arr.ndim != 1:
            raise ValueError('ids must be 1-D, got shape %s; decode one sequence at a time'
                             % (arr.shape,))
        out = (arr < 0) | (arr >= len(self))
        if out.any():
            raise ValueError('id %d at position %d is out of range for a vocabulary of %d '
                             'symbols (valid ids: 0..%d); were these ids made with another '
                             'vocabulary?' % (int(arr[out][0]), int(numpy.flatnonzero(out)[0]),
                                              len(self), len(self) - 1))
        values = self._cps[arr]
        if self._mode == 'bytes':
            return values.astype(numpy.uint8).tobytes()
        if self._narrow:     # every symbol is in U+0000..U+00FF: one byte per character
            return values.astype(numpy.uint8).tobytes().decode('latin-1')
        return values.astype('<u4').tobytes().decode('utf-32-le', 'surrogatepass')

    def to_json(self):
        """JSON-native description (stored in checkpoint metadata).

        Returns:
            dict: ``{'format': 'seqdbr.vocabulary', 'version': 1, 'mode': 'char'|'bytes',
            'symbols': [int, ...]}``. Symbols are stored as code points (char mode) or byte
            values (bytes mode) in id order, so ``'\\r'``, ``'\\x00'``, astral characters and
            lone surrogates survive any JSON writer and file encoding exactly.
        """
        return {'format': _JSON_FORMAT, 'version': _JSON_VERSION, 'mode': self._mode,
                'symbols': [int(c) for c in self._cps]}

    @classmethod
    def from_json(cls, d):
        """Rebuild a vocabulary from :meth:`to_json` output.

        Args:
            d (dict): as returned by :meth:`to_json` (after a JSON round trip).

        Returns:
            Vocabulary equal to the one that wrote ``d``.

        Raises:
            TypeError: ``d`` is not a dict. ValueError: wrong format/version/mode, symbols not
            a list of in-range, distinct integers.
        """
        if isinstance(d, (str, bytes)):
            raise TypeError('from_json takes the dict from to_json(); parse the JSON text '
                            'first (json.loads)')
        if not isinstance(d, dict):
            raise TypeError('from_json takes a dict, got %s' % type(d).__name__)
        if d.get('format') != _JSON_FORMAT:
            raise ValueError('not a seqdbr vocabulary (format %r, expected %r)'
                             % (d.get('format'), _JSON_FORMAT))
        if d.get('version') != _JSON_VERSION:
            raise ValueError('vocabulary version %r is not supported (this seqdbr reads version '
                             '%d); upgrade seqdbr' % (d.get('version'), _JSON_VERSION))
        mode = d.get('mode')
        if mode not in _MODES:
            raise ValueError("vocabulary mode must be 'char' or 'bytes', got %r" % (mode,))
        symbols = d.get('symbols')
        limit = 255 if mode == 'bytes' else _MAX_CODE_POINT
        if (not isinstance(symbols, list)
                or not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= limit
                           for c in symbols)):
            raise ValueError('vocabulary symbols must be a list of integers in 0..%d '
                             '(code points or byte values)' % limit)
        if mode == 'char':
            return cls([chr(c) for c in symbols], mode='char')
        return cls(symbols, mode='bytes')
