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
import numbers
import os
import zipfile
import zlib

import numpy

from seqdbr.core import backend
from seqdbr.core.atomic import atomic_write
from seqdbr.core.variable import Variable

__all__ = ['SerializationError', 'LoadError', 'Serializer', 'Deserializer',
           'DictionarySerializer', 'DictionaryDeserializer', 'NpzDeserializer',
           'serialize_to_dict', 'deserialize_from_dict', 'save_npz', 'load_npz',
           'save_npz_dict', 'load_npz_dict']

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
        must match exactly; dtype cast with 'same_kind' rules, to the device of
        ``value``), returns ``value``. value None: returns the stored array (host NumPy),
        or None when the key is absent. value a Python/NumPy scalar: returns the stored
        value converted to ``type(value)``. A missing key returns ``value`` unchanged and
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
            if not numpy.can_cast(stored.dtype, target.dtype, casting='same_kind'):
                st.mismatched.append((full, 'stored dtype %s cannot be cast to %s'
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
            if want is bool and stored.dtype.kind not in 'biu':
                st.mismatched.append((full, 'stored dtype %s, expected a bool' % stored.dtype))
                return value
            if issubclass(want, (str, numpy.str_)) != (stored.dtype.kind == 'U'):
                st.mismatched.append((full, 'stored dtype %s, expected a %s'
                                      % (stored.dtype, want.__name__)))
                return value
            if want is not bool and issubclass(want, numbers.Integral) \
                    and stored.dtype.kind == 'f':
                st.mismatched.append((full, 'stored a float (%s), expected an int'
                                      % stored.dtype))
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


def load_npz_dict(path):
    """Read every array of an ``.npz`` file into a dict (eagerly, ``allow_pickle=False``).

    Raises:
        FileNotFoundError: no such file.
        SerializationError: the file is not a complete npz archive (truncated, corrupt, a
            plain .npy) or holds an object array; the message names the file.
    """
    path = os.fspath(path)
    try:
        npz = numpy.load(path, allow_pickle=False)
        if not isinstance(npz, numpy.lib.npyio.NpzFile):
            raise SerializationError('%s holds a single .npy array, not an .npz archive'
                                     % path)
        with npz:
            out = {}
            for k in npz.files:
                try:
                    out[k] = npz[k]
                except ValueError as e:
                    if 'pickle' in str(e).lower():
                        raise SerializationError(
                            '%s: entry %r is an object (pickled) array; seqdbr never loads '
                            'pickles (re-save it with numeric or str arrays)'
                            % (path, k)) from None
                    raise
            return out
    except (FileNotFoundError, IsADirectoryError, PermissionError, SerializationError):
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, TypeError,
            zlib.error) as e:
        if 'pickle' in str(e).lower():  # numpy's message would suggest unsafe loading
            detail = 'neither an npz archive nor an npy array (seqdbr never loads pickles)'
        else:
            detail = '%s: %s' % (type(e).__name__, e)
        raise SerializationError('%s is not a readable .npz archive (truncated or corrupt?): '
                                 '%s' % (path, detail)) from None


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
