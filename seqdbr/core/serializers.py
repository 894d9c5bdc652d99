"""Saving and loading object state as ``.npz`` archives (no pickles, atomic writes).

Objects with state implement ``serialize(self, s)`` (docs/design.md):

    def serialize(self, s):
        self.epoch = s('epoch', self.epoch)      # Python scalar: returns the (loaded) value
        s('W', self.W)                           # ndarray: loaded in place
        self.child.serialize(s['child'])         # nested namespace 'child/...'

The same method drives both directions:

* :class:`DictionarySerializer` (saving) records ``s(key, value)`` into a dict of NumPy
  arrays keyed ``'child/key'`` and returns ``value``. Device arrays are copied to the host;
  Python scalars become 0-d arrays (``str`` a 0-d unicode array); object arrays are
  refused. ``None`` is not stored: None round-trips as an absent key.
* :class:`DictionaryDeserializer` (loading) answers ``s(key, value)`` from such a dict:
  an ndarray ``value`` is overwritten in place (exact shape match, no broadcasting) and
  returned; ``None`` gets the stored array (or None when the key is absent); a Python
  scalar gets the stored value converted to ``type(value)``.

Strict loading collects every problem -- keys the object asked for that the file lacks,
keys in the file that nobody asked for, shape and dtype mismatches -- and raises one
:class:`LoadError` listing them all when the walk is over (``finish()``). Non-strict
loading skips missing and unexpected keys but still refuses shape/dtype mismatches.

Files: :func:`save_npz` writes through :func:`seqdbr.core.atomic.atomic_write` (temp file
in the same directory, fsync, rename), so a crash never leaves a half-written file and
the previous file survives. :func:`load_npz` reads with ``allow_pickle=False`` and turns
a truncated or corrupt file into a :class:`SerializationError` naming the file.

One file can hold several objects (a checkpoint with model, optimizer and metadata): use
:func:`serialize_to_dict` with a ``prefix`` for each, merge the dicts, write them with
:func:`save_npz_dict`; read with :func:`load_npz_dict` and :func:`deserialize_from_dict`
with ``path_prefix``.
"""
import collections
import math
import numbers
import os
import struct
import zipfile
import zlib

import numpy

from seqdbr.core import backend
from seqdbr.core.atomic import atomic_write
from seqdbr.core.variable import Variable

__all__ = ['SerializationError', 'LoadError', 'Serializer', 'Deserializer',
           'DictionarySerializer', 'DictionaryDeserializer', 'NpzDeserializer',
           'serialize_to_dict', 'deserialize_from_dict', 'save_npz', 'load_npz',
           'save_npz_dict', 'load_npz_dict', 'read_npz_index', 'NpzReader', 'NpyMemberInfo']

# Keyword names of numpy.savez that a top-level key would collide with.
_RESERVED_KEYS = frozenset(('file', 'allow_pickle'))


class SerializationError(ValueError):
    """A file or value cannot be (de)serialized: corrupt/truncated archive, object array,
    unsupported value type."""


class LoadError(SerializationError, KeyError):
    """Strict loading found problems; ``missing``, ``unexpected`` and ``mismatched`` list
    them (mismatched: ``(key, message)`` pairs). A KeyError too (the contract's type for a
    missing key) and a ValueError (shape mismatch)."""

    def __init__(self, message, missing=(), unexpected=(), mismatched=()):
        super().__init__(message)
        self.message = message
        self.missing = list(missing)
        self.unexpected = list(unexpected)
        self.mismatched = list(mismatched)

    def __str__(self):  # KeyError would repr() the message
        return self.message


def _is_array(x):
    return backend.is_array(x)


def _join(path, key):
    if not isinstance(key, str) or not key or key.startswith('/') or key.endswith('/'):
        raise ValueError('serializer keys must be non-empty strings without leading or '
                         'trailing "/", got %r' % (key,))
    return path + key


def _normalize_prefix(prefix):
    if prefix is None:
        return ''
    if not isinstance(prefix, str):
        raise TypeError('path_prefix must be a str, got %s' % type(prefix).__name__)
    prefix = prefix.strip('/')
    return prefix + '/' if prefix else ''


class Serializer:
    """Base of saving serializers: ``s(key, value)`` and ``s[name]`` (a sub-namespace)."""


class Deserializer:
    """Base of loading serializers: ``s(key, value)`` and ``s[name]`` (a sub-namespace)."""


class DictionarySerializer(Serializer):
    """Records state into ``target``, a dict ``{'a/b/key': numpy.ndarray}``.

    Args:
        target (dict or None): where to record (a new dict by default); shared by all
            sub-namespaces.
        path (str): key prefix of this namespace (``''`` or ending with ``'/'``).

    Call ``s(key, value)``:
        value: numpy/cupy ndarray (copied to a host array), Variable (its array), Python
            ``bool``/``int``/``float``/``str`` or NumPy scalar (stored as a 0-d array),
            or None (nothing stored). Returns ``value`` unchanged.

    Raises:
        SerializationError: object dtype, or an unsupported type (e.g. a list).
        ValueError: a key written twice, or a malformed key.
    """

    def __init__(self, target=None, path=''):
        self.target = {} if target is None else target
        self.path = path

    def __getitem__(self, name):
        return DictionarySerializer(self.target, _join(self.path, name) + '/')

    def __call__(self, key, value):
        full = _join(self.path, key)
        if value is None:
            return None
        if full in self.target:
            raise ValueError('serializer key %r was written twice; every value needs its own '
                             'key' % full)
        v = value.array if isinstance(value, Variable) else value
        if v is None:
            return value
        if _is_array(v):
            arr = numpy.array(backend.to_cpu(v), copy=True)
        elif isinstance(v, str):
            arr = numpy.asarray(v, dtype=numpy.str_)
        elif isinstance(v, (bool, numbers.Number, numpy.generic)):
            arr = numpy.asarray(v)
        else:
            raise SerializationError('cannot serialize %r: a %s is not an array or a Python '
                                     'scalar; convert it (numpy.asarray) or split it into '
                                     'several keys' % (full, type(value).__name__))
        if arr.dtype.kind == 'O':
            raise SerializationError('cannot serialize %r: object arrays need pickle, which '
                                     'seqdbr never writes; use a numeric or str dtype' % full)
        self.target[full] = arr
        return value


class _LoadState:
    __slots__ = ('source', 'strict', 'used', 'missing', 'mismatched', 'name')

    def __init__(self, source, strict, name):
        self.source = source
        self.strict = strict
        self.name = name
        self.used = set()
        self.missing = []
        self.mismatched = []


class DictionaryDeserializer(Deserializer):
    """Loads state from ``source``, a mapping ``{'a/b/key': numpy.ndarray}``.

    Args:
        source (Mapping): the stored arrays (e.g. from :func:`load_npz_dict`).
        path (str): key prefix of this namespace (``''`` or ending with ``'/'``).
        strict (bool): collect missing and unexpected keys as errors (default True).
        name (str or None): what to call the source in error messages (a file name).

    Call ``s(key, value)``:
        value ndarray (numpy or cupy) or Variable: stored array copied in place (shape
        and dtype must match exactly, byte order aside; no silent casts), to the device of
        ``value``), returns ``value``. value None: returns the stored array (host NumPy),
        or None when the key is absent. value a Python/NumPy scalar: returns the stored
        value converted to ``type(value)``; the stored dtype's kind must fit that type
        exactly (bool <- bool, int <- signed/unsigned integer, float <- float, complex <-
        complex, str <- str), so an int32 ``beta1``, a boolean float or a complex ``t`` is a
        mismatch, never a silent conversion. A missing key returns ``value`` unchanged and
        is recorded; so are mismatches. Call :meth:`finish` after the walk (the
        module-level helpers do) to raise :class:`LoadError` for the collected problems.
    """

    def __init__(self, source, path='', strict=True, name=None, _state=None):
        self.path = path
        self._state = _state if _state is not None else _LoadState(source, strict, name)

    @property
    def source(self):
        return self._state.source

    @property
    def strict(self):
        return self._state.strict

    def __getitem__(self, name):
        return DictionaryDeserializer(None, _join(self.path, name) + '/', _state=self._state)

    def __call__(self, key, value):
        st = self._state
        full = _join(self.path, key)
        src = st.source
        if full not in src:
            if value is not None:
                st.missing.append(full)
            return value
        st.used.add(full)
        stored = src[full]
        if value is None:
            return stored
        target = value.array if isinstance(value, Variable) else value
        if _is_array(target):
            if stored.shape != target.shape:
                st.mismatched.append((full, 'stored shape %s, expected %s'
                                      % (stored.shape, target.shape)))
                return value
            if not _same_dtype(stored.dtype, target.dtype):
                st.mismatched.append((full, 'stored dtype %s, expected %s (dtypes must match '
                                      'exactly; convert the file if the change is intended)'
                                      % (stored.dtype, target.dtype)))
                return value
            if type(target) is numpy.ndarray:
                target[...] = stored
            else:
                xp = backend.get_array_module(target)
                with backend.using_device(target):
                    target[...] = xp.asarray(stored, dtype=target.dtype)
            return value
        if isinstance(target, (bool, numbers.Number, str, numpy.generic)):
            if stored.ndim != 0 and stored.size != 1:
                st.mismatched.append((full, 'stored array of shape %s, expected a scalar'
                                      % (stored.shape,)))
                return value
            want = type(target)
            item = stored.reshape(()).item()
            kinds = _scalar_kinds(want)
            if stored.dtype.kind not in kinds:
                st.mismatched.append((full, 'stored a %s value, expected %s (the stored dtype '
                                      'must match the kind of the value exactly)'
                                      % (stored.dtype, _KIND_NAMES[kinds])))
                return value
            return want(item)
        raise SerializationError('cannot load %r into a %s: pass an array (filled in place), a '
                                 'Python scalar or None' % (full, type(value).__name__))

    def finish(self, path_prefix=''):
        """Raise :class:`LoadError` listing every problem of the walk so far.

        Unexpected keys (stored under ``path_prefix`` but never asked for) count only when
        strict; shape/dtype mismatches always.
        """
        st = self._state
        unexpected = []
        if st.strict:
            unexpected = sorted(k for k in st.source
                                if k.startswith(path_prefix) and k not in st.used)
        missing = st.missing if st.strict else []
        if not (missing or unexpected or st.mismatched):
            return
        where = ' from %s' % st.name if st.name else ''
        lines = ['could not load the state%s:' % where]
        if missing:
            lines.append('  missing keys (the object has them, the file does not): '
                         + ', '.join(missing))
        if unexpected:
            lines.append('  unexpected keys (in the file, not asked for by the object): '
                         + ', '.join(unexpected))
        for k, msg in st.mismatched:
            lines.append('  %s: %s' % (k, msg))
        if missing and not st.used and st.source:
            tops = sorted({k.split('/', 1)[0] for k in st.source})
            lines.append('  nothing matched%s; the file\'s top-level names are: %s'
                         % (' under path_prefix %r' % path_prefix if path_prefix else '',
                            ', '.join(tops[:20]) + (' ...' if len(tops) > 20 else '')))
        if missing or unexpected:
            lines.append('  (check the model architecture and path_prefix, or pass '
                         'strict=False to skip missing/unexpected keys)')
        raise LoadError('\n'.join(lines), missing, unexpected, st.mismatched)


NpzDeserializer = DictionaryDeserializer

_KIND_NAMES = {'b': 'a bool', 'iu': 'an int', 'f': 'a float', 'c': 'a complex number',
               'U': 'a str'}


def _scalar_kinds(want):
    """The dtype kinds a stored value may have to load into a scalar of type ``want``."""
    if issubclass(want, (bool, numpy.bool_)):
        return 'b'
    if issubclass(want, (str, numpy.str_)):
        return 'U'
    if issubclass(want, numbers.Integral):
        return 'iu'
    if issubclass(want, numbers.Complex) and not issubclass(want, numbers.Real):
        return 'c'
    return 'f'


def _same_dtype(a, b):
    """Equal dtypes, byte order aside (a big-endian file loads into native arrays)."""
    return a == b or (a.kind == b.kind and a.itemsize == b.itemsize
                      and a.newbyteorder('=') == b.newbyteorder('='))


def serialize_to_dict(obj, prefix=''):
    """``obj.serialize`` into a new dict of host NumPy arrays keyed ``prefix + 'a/b'``.

    Args:
        obj: anything with ``serialize(s)`` (Link, Optimizer, ...).
        prefix (str): namespace, e.g. ``'model'`` gives keys ``'model/l1/W'``.
    """
    s = DictionarySerializer()
    p = _normalize_prefix(prefix)
    obj.serialize(s[p[:-1]] if p else s)
    return s.target


def deserialize_from_dict(d, obj, path_prefix='', strict=True, name=None):
    """Load ``obj`` from a dict as made by :func:`serialize_to_dict`.

    Args:
        d (Mapping): stored arrays.
        obj: anything with ``serialize(s)``.
        path_prefix (str): namespace of ``obj`` inside ``d`` (``'model'`` or ``'model/'``);
            only keys under it count as unexpected.
        strict (bool): see :class:`DictionaryDeserializer`.
        name (str or None): source name for error messages.

    Raises:
        LoadError: missing/unexpected keys (strict) or shape/dtype mismatches.
    """
    p = _normalize_prefix(path_prefix)
    root = DictionaryDeserializer(d, strict=strict, name=name)
    obj.serialize(root[p[:-1]] if p else root)
    root.finish(p)
    return obj


def save_npz_dict(path, arrays, compression=True):
    """Atomically write ``arrays`` (dict str -> ndarray) as an ``.npz`` file.

    Raises:
        SerializationError: an object array, a non-array value, or a reserved top-level key
            (``file``, ``allow_pickle``).
        FileNotFoundError: the directory does not exist.
    """
    clean = {}
    for k, v in arrays.items():
        if not isinstance(k, str) or not k:
            raise SerializationError('npz keys must be non-empty strings, got %r' % (k,))
        if k in _RESERVED_KEYS:
            raise SerializationError('the top-level key %r is reserved by numpy.savez; put it '
                                     'under a namespace (e.g. "meta/%s")' % (k, k))
        if not _is_array(v):
            raise SerializationError('value of %r must be an ndarray, got %s'
                                     % (k, type(v).__name__))
        v = backend.to_cpu(v)
        if v.dtype.kind == 'O':
            raise SerializationError('cannot save %r: object arrays need pickle, which seqdbr '
                                     'never writes' % k)
        clean[k] = v
    with atomic_write(path, 'wb') as f:
        if compression:
            numpy.savez_compressed(f, allow_pickle=False, **clean)
        else:
            numpy.savez(f, allow_pickle=False, **clean)


#: Most members an archive may have (a model has hundreds; a crafted file millions).
MAX_NPZ_MEMBERS = 100000
#: Longest ``.npy`` header read (NumPy's own safety limit).
MAX_NPY_HEADER = 10000
#: Floor of the default decompressed-size budget of :func:`load_npz_dict` (bytes).
DEFAULT_MAX_BYTES_FLOOR = 1 << 30
#: The default budget is also at least this multiple of the file's size on disk.
DEFAULT_MAX_EXPANSION = 50
_NPY_MAGIC = b'\x93NUMPY'
_ALLOWED_KINDS = frozenset('biufcUS')
_METHODS = {zipfile.ZIP_STORED: 'stored', zipfile.ZIP_DEFLATED: 'deflated'}


class NpyMemberInfo(collections.namedtuple(
        'NpyMemberInfo', 'key shape dtype fortran_order nbytes compress_type compressed_size')):
    """What the headers of one ``.npz`` member declare, read without decompressing its data.

    Attributes:
        key (str): the array's name (the member name without ``.npy``).
        shape (tuple of int), dtype (numpy.dtype), fortran_order (bool): from the ``.npy``
            header.
        nbytes (int): ``prod(shape) * itemsize``, the data size the header declares (the zip
            entry's uncompressed size must equal the header plus exactly this).
        compress_type (int): ``zipfile.ZIP_STORED`` or ``zipfile.ZIP_DEFLATED``.
        compressed_size (int): bytes the member occupies in the file.
    """


class _Counting:
    """Read-through wrapper counting the bytes consumed (to locate the end of a header)."""

    def __init__(self, f):
        self.f = f
        self.n = 0

    def read(self, size=-1):
        data = self.f.read(size)
        self.n += len(data)
        return data


class _Recording:
    """Read-through wrapper keeping the bytes read (the ``.npy`` header)."""

    def __init__(self, f):
        self.f = f
        self.data = bytearray()

    def read(self, size=-1):
        data = self.f.read(size)
        self.data += data
        return data


def _damaged(path, detail):
    return SerializationError('%s is not a readable .npz archive (truncated or corrupt?): %s'
                              % (path, detail))


class NpzReader:
    """Reads an ``.npz`` archive as untrusted input: headers first, data only on request.

    Everything is checked before any data is decompressed: the zip structure, one
    ``<key>.npy`` member per key (no duplicates, no other members), compression ``stored`` or
    ``deflated`` only (no encryption), each ``.npy`` header (versions 1 and 2, at most
    :data:`MAX_NPY_HEADER` bytes, a plain numeric, bool or string dtype: never an object
    dtype, so never a pickle), and that the zip entry's uncompressed size is exactly the header
    plus ``prod(shape) * itemsize`` -- so a member claiming shape ``(10**12,)`` or holding
    more data than its header declares is refused without allocating anything, and reading
    a member never produces more bytes than its header declares (a zip bomb is bounded by
    ``max_bytes``).

    Use as a context manager::

        with NpzReader(path) as r:
            r.index                 # {key: NpyMemberInfo}
            a = r.read('W')         # one array (checks its header again, then its CRC)

    Args:
        path (str or os.PathLike): the file.
        max_bytes (int or None): budget of decompressed bytes for all :meth:`read` calls
            together (None: ``max(1 GiB, 50 x the file size)``).

    Raises:
        FileNotFoundError, IsADirectoryError, PermissionError: as ``open`` raises them.
        SerializationError: anything wrong with the file's content; the message names the file
            (and the member).
    """

    def __init__(self, path, max_bytes=None):
        self.path = os.fspath(path)
        size = os.path.getsize(self.path) if os.path.isfile(self.path) else 0
        if max_bytes is None:
            max_bytes = max(DEFAULT_MAX_BYTES_FLOOR, DEFAULT_MAX_EXPANSION * size)
        self.max_bytes = max_bytes
        self._used = 0
        self._zip = None
        self._header_bytes = {}
        with open(self.path, 'rb') as f:       # FileNotFoundError etc. as themselves
            head = f.read(len(_NPY_MAGIC))
        if head == _NPY_MAGIC:
            raise SerializationError('%s holds a single .npy array, not an .npz archive'
                                     % self.path)
        try:
            self._zip = zipfile.ZipFile(self.path)
            self.index = self._read_index()
        except SerializationError:
            self.close()
            raise
        except _READ_ERRORS as e:
            self.close()
            raise _damaged(self.path, '%s: %s' % (type(e).__name__, e)) from None

    def close(self):
        if self._zip is not None:
            self._zip.close()
            self._zip = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _member_error(self, name, msg):
        what = ('entry %r' % name[:-4]) if name.endswith('.npy') and len(name) > 4 else \
            ('member %r' % name)
        return SerializationError('%s: %s %s; the file is corrupt or was not written by '
                                  'seqdbr' % (self.path, what, msg))

    def _read_index(self):
        infos = self._zip.infolist()
        if len(infos) > MAX_NPZ_MEMBERS:
            raise SerializationError('%s has %d members, more than the %d an .npz written by '
                                     'seqdbr can have; refusing it'
                                     % (self.path, len(infos), MAX_NPZ_MEMBERS))
        index = {}
        for zi in infos:
            name = zi.filename
            if not name.endswith('.npy') or len(name) == 4:
                raise self._member_error(name, 'is not an .npy array (an .npz holds only '
                                               '<name>.npy members)')
            key = name[:-4]
            if key in index:
                raise self._member_error(name, 'appears twice')
            try:
                index[key] = self._header(zi)
            except SerializationError:
                raise
            except _READ_ERRORS as e:
                raise self._member_error(name, 'cannot be read (%s: %s)'
                                         % (type(e).__name__, e)) from None
        return index

    def _header(self, zi):
        name = zi.filename
        if zi.flag_bits & 0x1:
            raise self._member_error(name, 'is encrypted')
        if zi.compress_type not in _METHODS:
            raise self._member_error(name, 'uses zip compression method %d; only stored (0) '
                                           'and deflated (8) are read' % zi.compress_type)
        with self._zip.open(zi) as raw:
            f = _Counting(_Recording(raw))
            version = numpy.lib.format.read_magic(f)
            if version not in ((1, 0), (2, 0)):
                raise self._member_error(name, 'has .npy format version %d.%d; versions 1.0 '
                                               'and 2.0 are read' % version)
            read = (numpy.lib.format.read_array_header_1_0 if version == (1, 0) else
                    numpy.lib.format.read_array_header_2_0)
            try:
                shape, fortran, dtype = read(f, max_header_size=MAX_NPY_HEADER)
            except Exception as e:       # noqa: BLE001 -- NumPy parses the header text with
                # ast/tokenize, whose errors on hostile text are of many types
                # (SyntaxError, tokenize.TokenError, ValueError, MemoryError, ...).
                raise self._member_error(name, 'has an unreadable .npy header (%s: %s)'
                                         % (type(e).__name__, e)) from None
        if dtype.hasobject:
            raise self._member_error(name, 'is an object (pickled) array; seqdbr never loads '
                                           'pickles (re-save it with numeric or str arrays)')
        if dtype.kind not in _ALLOWED_KINDS or dtype.fields is not None or dtype.subdtype:
            raise self._member_error(name, 'has dtype %s; only bool, integer, float, complex '
                                           'and string arrays are read' % (dtype,))
        if any(d < 0 for d in shape):
            raise self._member_error(name, 'declares the negative shape %s' % (shape,))
        nbytes = math.prod(shape) * dtype.itemsize
        if zi.file_size != f.n + nbytes:
            raise self._member_error(
                name, 'declares shape %s of %s (%d data bytes) but the archive entry holds %d '
                      'data bytes' % (shape, dtype, nbytes, zi.file_size - f.n))
        self._header_bytes[name] = bytes(f.f.data)
        return NpyMemberInfo(name[:-4], tuple(shape), dtype, bool(fortran), nbytes,
                             zi.compress_type, zi.compress_size)

    def read(self, key):
        """The array stored under ``key`` (host NumPy, its own memory).

        Raises:
            KeyError: no such key.
            SerializationError: damaged member (CRC, truncation, header changed since the
                index was read), or the ``max_bytes`` budget would be exceeded.
        """
        info = self.index[key]
        if self._used + info.nbytes > self.max_bytes:
            raise SerializationError(
                '%s: entry %r declares %d bytes (%s %s); with the %d bytes read before that '
                'exceeds the budget of %d bytes for this file (max_bytes). If you trust the '
                'file, pass a larger max_bytes' % (self.path, key, info.nbytes,
                                                   info.shape, info.dtype, self._used,
                                                   self.max_bytes))
        self._used += info.nbytes
        try:
            return self._read_member(key, info)
        except SerializationError:
            raise
        except MemoryError:
            raise SerializationError('%s: entry %r needs %d bytes, more memory than is free'
                                     % (self.path, key, info.nbytes)) from None
        except _READ_ERRORS as e:
            raise _damaged(self.path, 'entry %r: %s: %s' % (key, type(e).__name__, e)) \
                from None

    def _read_member(self, key, info):
        zi = self._zip.getinfo(key + '.npy')
        with self._zip.open(zi) as raw:
            # The header must be the very bytes parsed when the index was read.
            header = self._header_bytes[zi.filename]
            if raw.read(len(header)) != header:
                raise self._member_error(zi.filename, 'changed while it was read')
            flat = numpy.empty(math.prod(info.shape), dtype=info.dtype)
            view = memoryview(flat.view(numpy.uint8).reshape(-1)) if info.nbytes else None
            got = 0
            while got < info.nbytes:
                n = raw.readinto(view[got:got + (1 << 24)])
                if not n:
                    raise self._member_error(zi.filename, 'is truncated (%d of %d data bytes)'
                                             % (got, info.nbytes))
                got += n
            if raw.read(1):                   # also makes zipfile check the CRC
                raise self._member_error(zi.filename, 'holds more data than it declares')
        if info.fortran_order:
            return flat.reshape(info.shape[::-1]).transpose()
        return flat.reshape(info.shape)


# Everything reading a damaged archive can raise (besides SerializationError).
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError, KeyError,
                TypeError, struct.error, NotImplementedError, RuntimeError, RecursionError,
                OverflowError, MemoryError, SyntaxError, IndexError, UnicodeDecodeError)


def read_npz_index(path):
    """``{key: NpyMemberInfo}`` of an ``.npz`` file, from its headers only (nothing is
    decompressed beyond each ``.npy`` header). See :class:`NpzReader` for the checks.

    Raises:
        FileNotFoundError: no such file.
        SerializationError: not a well-formed npz archive (names the file and member).
    """
    with NpzReader(path) as r:
        return dict(r.index)


def load_npz_dict(path, keys=None, max_bytes=None):
    """Read the arrays of an ``.npz`` file into a dict, as untrusted input (no pickles).

    Args:
        path (str or os.PathLike): the file.
        keys (iterable of str or None): read only these (None: all).
        max_bytes (int or None): budget of decompressed bytes (see :class:`NpzReader`).

    Raises:
        FileNotFoundError: no such file.
        SerializationError: the file is not a complete, well-formed npz archive (truncated,
            corrupt, a plain .npy, an unknown or pickled member, a member whose data size
            differs from its header, a compression method other than stored/deflated), a
            requested key is absent, or the decompressed data would exceed ``max_bytes``.
            The message names the file. Never MemoryError or NotImplementedError.
    """
    path = os.fspath(path)
    try:
        with NpzReader(path, max_bytes=max_bytes) as r:
            wanted = list(r.index) if keys is None else list(keys)
            missing = [k for k in wanted if k not in r.index]
            if missing:
                raise SerializationError('%s has no entry %s' % (path, ', '.join(
                    repr(k) for k in missing)))
            return {k: r.read(k) for k in wanted}
    except (FileNotFoundError, IsADirectoryError, PermissionError, SerializationError):
        raise
    except _READ_ERRORS as e:
        raise _damaged(path, '%s: %s' % (type(e).__name__, e)) from None


def save_npz(path, obj, compression=True):
    """Save ``obj``'s state (``obj.serialize``) to ``path`` atomically.

    Keys are the serializer paths (``'l1/W'``); arrays are copied to the host first.

    Args:
        path (str or PathLike): destination (its directory must exist).
        obj: anything with ``serialize(s)``.
        compression (bool): zip-deflate the arrays (``numpy.savez_compressed``).

    Raises:
        SerializationError: a value that cannot be stored without pickle.
    """
    save_npz_dict(path, serialize_to_dict(obj), compression)


def load_npz(path, obj, path_prefix='', strict=True):
    """Load ``obj``'s state from an ``.npz`` file written by :func:`save_npz`.

    Arrays go to the device of the target arrays; uninitialized (lazy) parameters get the
    stored shape.

    Args:
        path (str or PathLike): the file.
        obj: anything with ``serialize(s)``.
        path_prefix (str): namespace of ``obj`` inside the file (e.g. ``'model'``).
        strict (bool): report missing and unexpected keys (default True).

    Raises:
        FileNotFoundError: no such file.
        SerializationError: truncated/corrupt file or object array (names the file).
        LoadError: missing/unexpected keys, shape or dtype mismatches (all listed at once).
    """
    path = os.fspath(path)
    return deserialize_from_dict(load_npz_dict(path), obj, path_prefix, strict, name=path)
