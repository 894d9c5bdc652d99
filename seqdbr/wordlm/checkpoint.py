"""Word-LM checkpoints: generic training snapshots with the vocabulary inside.

A checkpoint is a :class:`seqdbr.training.NpzSnapshotFormat` snapshot of program
``seqdbr-wordlm`` (so exact resume, the settings check and the model-shape check come from
the framework). The :class:`WordLMMeta` extension adds one member to it,
``extensions/WordLMMeta/meta``: UTF-8 JSON with the model configuration, the training
options and the vocabulary (``WordVocabulary.to_json``). That makes the file
self-contained: :func:`load_checkpoint` rebuilds the model from it alone, for sampling and
evaluation, without the corpus.

Why the generic snapshot and not a format of its own (as the char-RNN has): the word LM
needs nothing the framework's snapshot lacks except the vocabulary, and an extension's state
is the framework's own place for extra data; a second format would duplicate the atomic
writes, the program/settings/model checks and the resume logic.
"""
import json

import numpy

from seqdbr.core import serializers
from seqdbr.core.serializers import Deserializer
from seqdbr.datasets.ptb import WordVocabulary
from seqdbr.training import NpzSnapshotFormat, SnapshotError
from seqdbr.training.extension import Extension
from seqdbr.wordlm.errors import CheckpointError

__all__ = ['WordLMMeta', 'Checkpoint', 'load_checkpoint', 'read_train_config',
           'snapshot_format', 'META_MEMBER', 'PROGRAM']

PROGRAM = 'seqdbr-wordlm'
META_MEMBER = 'extensions/WordLMMeta/meta'
MODEL_PREFIX = 'model/'
_FORMAT = 'seqdbr.wordlm.meta'
_VERSION = 1


def snapshot_format(settings=None):
    """The :class:`NpzSnapshotFormat` of the word-LM program."""
    return NpzSnapshotFormat(PROGRAM, settings)


class WordLMMeta(Extension):
    """Trainer extension that stores the vocabulary and configurations in every snapshot
    (it does nothing during training). On resume it checks that the run's vocabulary is the
    snapshot's.

    Args:
        vocab (WordVocabulary), model_config (dict), train_config (dict): JSON-native.
    """
    trigger = (1, 'epoch')
    name = 'WordLMMeta'

    def __init__(self, vocab, model_config, train_config):
        self.vocab = vocab
        self.model_config = dict(model_config)
        self.train_config = dict(train_config)

    def __call__(self, trainer):
        pass

    def to_json(self):
        return {'format': _FORMAT, 'version': _VERSION, 'model': self.model_config,
                'train': self.train_config, 'vocab': self.vocab.to_json()}

    def serialize(self, s):
        if not isinstance(s, Deserializer):
            text = json.dumps(self.to_json()).encode('utf-8')
            s('meta', numpy.frombuffer(text, dtype=numpy.uint8).copy())
            return
        raw = s('meta', None)
        meta = _parse_meta(raw, 'the snapshot')
        vocab = WordVocabulary.from_json(meta['vocab'])
        if vocab != self.vocab:
            raise ValueError('the snapshot was trained with another vocabulary (%d words, '
                             'this run has %d); resume with the same corpus and --vocab-limit'
                             % (len(vocab), len(self.vocab)))


def _parse_meta(raw, name):
    if raw is None:
        raise CheckpointError('%s holds no word-LM meta data (%s); it was not written by '
                              'seqdbr-train-wordlm' % (name, META_MEMBER))
    raw = numpy.asarray(raw)
    if raw.dtype != numpy.uint8 or raw.ndim != 1:
        raise CheckpointError('%s: the member %s is damaged' % (name, META_MEMBER))
    try:
        meta = json.loads(raw.tobytes().decode('utf-8'))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise CheckpointError('%s: the member %s is not valid JSON; the file is damaged'
                              % (name, META_MEMBER)) from None
    if not isinstance(meta, dict) or meta.get('format') != _FORMAT:
        raise CheckpointError('%s: %s is not word-LM meta data' % (name, META_MEMBER))
    if meta.get('version') != _VERSION:
        raise CheckpointError('%s has word-LM meta version %r; this seqdbr reads version %d'
                              % (name, meta.get('version'), _VERSION))
    for k in ('model', 'train', 'vocab'):
        if not isinstance(meta.get(k), dict):
            raise CheckpointError('%s: the meta data lacks %r; the file is damaged' % (name, k))
    return meta


class Checkpoint:
    """A loaded word-LM checkpoint.

    Attributes:
        path (str); vocab (WordVocabulary); model_config, train_config (dict);
        iteration (int); weights (dict: parameter path without ``/`` -> host array).
    """

    def __init__(self, path, vocab, model_config, train_config, iteration, weights):
        self.path, self.vocab = path, vocab
        self.model_config, self.train_config = model_config, train_config
        self.iteration, self.weights = iteration, weights

    def build_model(self):
        """A :class:`seqdbr.wordlm.model.WordLM` with the stored configuration and weights.

        Raises:
            CheckpointError: the stored weights do not fit the configuration, or are not
                finite.
        """
        from seqdbr.wordlm.model import WordLM
        try:
            model = WordLM(**self.model_config)
        except (TypeError, ValueError) as e:
            raise CheckpointError('%s: the stored model configuration is unusable (%s)'
                                  % (self.path, e)) from None
        params = model.weights()
        missing = sorted(set(params) - set(self.weights))
        extra = sorted(set(self.weights) - set(params))
        wrong = ['%s %s (expected %s)' % (k, self.weights[k].shape, p.array.shape)
                 for k, p in params.items()
                 if k in self.weights and self.weights[k].shape != p.array.shape]
        if missing or extra or wrong:
            raise CheckpointError('%s: the weights do not fit the stored model (missing %s; '
                                  'unexpected %s; wrong shape %s); the file is damaged'
                                  % (self.path, missing or '-', extra or '-', wrong or '-'))
        for k, p in params.items():
            a = self.weights[k]
            if not numpy.isfinite(a).all():
                raise CheckpointError('%s: the weight %s holds NaN or inf' % (self.path, k))
            p.array[...] = a
        return model


def load_checkpoint(path):
    """Read a word-LM checkpoint (``latest.npz``/``best.npz`` of ``seqdbr-train-wordlm``).

    Raises:
        CheckpointError: a missing, unreadable or foreign file, or damaged meta data.
    """
    try:
        arrays = serializers.load_npz_dict(path)
    except FileNotFoundError:
        raise CheckpointError('checkpoint %s does not exist' % path) from None
    except (serializers.SerializationError, OSError) as e:
        raise CheckpointError('cannot read checkpoint %s: %s' % (path, e)) from None
    fmt = snapshot_format()
    try:
        snap = fmt.read_meta(path, arrays)
    except SnapshotError as e:
        raise CheckpointError(str(e)) from None
    if snap.get('program') != PROGRAM:
        raise CheckpointError('%s is a snapshot of the program %r, not a word-LM checkpoint '
                              '(%s)' % (path, snap.get('program'), PROGRAM))
    meta = _parse_meta(arrays.get(META_MEMBER), path)
    try:
        vocab = WordVocabulary.from_json(meta['vocab'])
    except (ValueError, TypeError, KeyError) as e:
        raise CheckpointError('%s: the stored vocabulary is damaged (%s)' % (path, e)) from None
    weights = {k[len(MODEL_PREFIX):]: v for k, v in arrays.items()
               if k.startswith(MODEL_PREFIX)}
    return Checkpoint(path, vocab, meta['model'], meta['train'], int(snap.get('iteration', 0)),
                      weights)


def read_train_config(path):
    """The training options stored in a checkpoint (for ``--resume``)."""
    return dict(load_checkpoint(path).train_config)
