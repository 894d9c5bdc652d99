"""The generic snapshot file: the whole training state in one ``.npz``, never a pickle.

:class:`NpzSnapshotFormat` walks :meth:`Trainer.serialize` with the npz serializer
(:mod:`seqdbr.core.serializers`) and adds one member, ``__snapshot__``: UTF-8 JSON naming
the format, the program and the model's parameters (name, shape, dtype). Loading checks that
member first, so a snapshot of another program (or a plain weights file) is refused, and a
snapshot of another model is refused with the differences listed, before any state changes.
Writes are atomic (temp file, fsync, rename): a crash keeps the previous file.

A program with its own checkpoint layout (the char-RNN one) passes another format object to
the :class:`~seqdbr.training.Trainer`: anything with ``save(trainer, path)`` and
``load(trainer, path)``.
"""
import json
import os

import numpy

from seqdbr.core import serializers
from seqdbr.training.errors import SnapshotError

__all__ = ['NpzSnapshotFormat', 'model_signature', 'META_KEY']

META_KEY = '__snapshot__'
FORMAT = 'seqdbr-training-snapshot'
VERSION = 1
#: Largest ``__snapshot__`` member read (bytes).
MAX_META_BYTES = 1 << 20


def model_signature(model):
    """``{param path: [shape, dtype]}`` of the model's initialized parameters."""
    return {name: [list(p.array.shape), str(p.array.dtype)]
            for name, p in sorted(model.namedparams()) if p.array is not None}


def _describe_diff(mine, theirs, lazy=()):
    parts = []
    for k in sorted(set(mine) | set(theirs)):
        if k in lazy:
            continue
        if k not in theirs:
            parts.append('%s only in this model' % k)
        elif k not in mine:
            parts.append('%s only in the snapshot' % k)
        elif mine[k] != theirs[k]:
            parts.append('%s: snapshot %s %s, this model %s %s'
                         % (k, theirs[k][0], theirs[k][1], mine[k][0], mine[k][1]))
    shown = '; '.join(parts[:8])
    return shown + ('' if len(parts) <= 8 else '; and %d more' % (len(parts) - 8))


def _foreign_format(arrays):
    """The ``format`` named by another seqdbr file's JSON ``meta`` member, if any (a
    char-RNN checkpoint says ``seqdbr.charlm.checkpoint``)."""
    raw = arrays.get('meta')
    if raw is None or raw.size > MAX_META_BYTES:
        return None
    try:
        text = raw.tobytes().decode('utf-8') if raw.dtype == numpy.uint8 else str(raw)
        fmt = json.loads(text).get('format')
    except (UnicodeDecodeError, ValueError, RecursionError, AttributeError):
        return None
    return fmt if isinstance(fmt, str) else None


class NpzSnapshotFormat:
    """Generic snapshots (see the module docstring).

    Args:
        program (str): the program name stored in and required of every snapshot.
        settings (dict or None): ``{name: JSON value}`` the run cannot change on resume
            (e.g. ``{'--batchsize': 100}``); stored, and compared on load with a message
            naming each difference.
    """

    def __init__(self, program='seqdbr', settings=None):
        self.program = program
        self.settings = dict(settings or {})

    def save(self, trainer, path):
        try:
            arrays = serializers.serialize_to_dict(trainer)
        except serializers.SerializationError as e:
            raise SnapshotError('cannot snapshot the training state: %s' % e) from None
        if not getattr(trainer, 'is_root', True):
            return None         # a data-parallel run: rank 0 writes
        meta = {'format': FORMAT, 'version': VERSION, 'program': self.program,
                'settings': self.settings, 'iteration': int(trainer.updater.iteration),
                'model': model_signature(trainer.updater.model)}
        text = json.dumps(meta, sort_keys=True).encode('utf-8')
        arrays[META_KEY] = numpy.frombuffer(text, dtype=numpy.uint8).copy()
        try:
            serializers.save_npz_dict(path, arrays, compression=False)
        except OSError as e:
            raise SnapshotError('could not write the snapshot %s (%s: %s); the previous '
                                'version of that file, if any, is intact. Free disk space or '
                                'fix the folder\'s permissions, then resume'
                                % (path, type(e).__name__, e)) from None
        return path

    def read_meta(self, path, arrays):
        raw = arrays.get(META_KEY)
        if raw is None:
            other = _foreign_format(arrays)
            if other:
                raise SnapshotError('%s is a %s file, not a training snapshot of the program '
                                    '%r; use the program that wrote it'
                                    % (path, other, self.program))
            raise SnapshotError('%s is not a seqdbr training snapshot (it has no %s member): '
                                'it may be a weights file (load it with '
                                'seqdbr.serializers.load_npz) or another program\'s checkpoint'
                                % (path, META_KEY))
        if raw.dtype != numpy.uint8 or raw.ndim != 1 or raw.size > MAX_META_BYTES:
            raise SnapshotError('%s: the %s member is damaged' % (path, META_KEY))
        try:
            meta = json.loads(raw.tobytes().decode('utf-8'))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise SnapshotError('%s: the %s member is not valid JSON; the file is damaged'
                                % (path, META_KEY)) from None
        if not isinstance(meta, dict) or meta.get('format') != FORMAT:
            raise SnapshotError('%s is not a seqdbr training snapshot' % path)
        if meta.get('version') != VERSION:
            raise SnapshotError('%s has snapshot version %r; this seqdbr reads version %d'
                                % (path, meta.get('version'), VERSION))
        return meta

    def check(self, trainer, path, meta):
        if meta.get('program') != self.program:
            raise SnapshotError('%s is a snapshot of the program %r, but this is %r; resume it '
                                'with the program that wrote it' % (path, meta.get('program'),
                                                                    self.program))
        stored = meta.get('settings')
        if not isinstance(stored, dict):
            stored = {}
        diff = ['%s %s but this run has %s %s' % (k, stored.get(k), k, v)
                for k, v in self.settings.items() if stored.get(k) != v]
        if diff:
            raise SnapshotError('%s was made with %s; resume with the same settings (or start '
                                'afresh without resuming)' % (path, '; '.join(diff)))
        theirs = meta.get('model')
        mine = model_signature(trainer.updater.model)
        if not isinstance(theirs, dict):
            raise SnapshotError('%s: the snapshot does not describe its model; the file is '
                                'damaged' % path)
        lazy = {n for n, p in trainer.updater.model.namedparams() if p.array is None}
        unknown = set(theirs) - set(mine) - lazy          # a lazy parameter takes any shape
        missing = set(mine) - set(theirs)
        common = {k: v for k, v in theirs.items() if k in mine}
        if unknown or missing or common != {k: mine[k] for k in common}:
            raise SnapshotError('%s holds another model than this program built (%s); build the '
                                'same model (same sizes and layers) to resume it'
                                % (path, _describe_diff(mine, theirs, lazy)))

    def load(self, trainer, path):
        path = os.fspath(path)
        try:
            arrays = serializers.load_npz_dict(path)
        except FileNotFoundError:
            raise SnapshotError('snapshot %s does not exist' % path) from None
        except (serializers.SerializationError, OSError) as e:
            raise SnapshotError('cannot read snapshot %s: %s' % (path, e)) from None
        meta = self.read_meta(path, arrays)
        self.check(trainer, path, meta)
        del arrays[META_KEY]
        # Extensions may differ between runs (a report added or removed): the state of one
        # this trainer lacks is skipped, and one without stored state starts fresh.
        names = set(trainer.extension_names)
        for key in list(arrays):
            parts = key.split('/')
            if parts[0] in ('extensions', 'triggers') and parts[1] not in names:
                del arrays[key]
        trainer.stored_states = {tuple(k.split('/')[:2]) for k in arrays}
        try:
            serializers.deserialize_from_dict(arrays, trainer, strict=True, name=path)
        except (serializers.SerializationError, KeyError, ValueError, TypeError) as e:
            raise SnapshotError('cannot restore the training state from %s: %s'
                                % (path, e)) from None
