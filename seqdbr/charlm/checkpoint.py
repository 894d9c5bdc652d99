"""Self-contained char-RNN checkpoints: one ``.npz`` file, no pickles.

Layout of the archive (every entry a plain NumPy array; read with ``allow_pickle=False``):

``meta``
    uint8 array: UTF-8 JSON text (ASCII-escaped) with the metadata below.
``params/<name>``
    float arrays of the model, on the host, under the model's *canonical* names
    (:meth:`seqdbr.charlm.model.CharRNN.canonical_params`): ``embed/W`` ``(V, H)``,
    ``rnn/<l>/W_ih`` ``(G*H, H)``, ``rnn/<l>/W_hh`` ``(G*H, H)``, the biases
    ``rnn/<l>/b_ih`` and ``rnn/<l>/b_hh`` ``(G*H,)`` (or one ``rnn/<l>/b`` for a single-bias
    LSTM layer), ``out/W`` ``(V, H)``, ``out/b`` ``(V,)`` (PyTorch's weight layout, G = 4
    for LSTM, 3 for GRU). A model of either ``impl`` loads them (biases are converted when
    the layouts differ), so a model trained with the n-step layers is sampled with the
    stepwise ones and back.
``optimizer/<key>``
    the optimizer's ``serialize`` output (step counts, hyperparameters, per-parameter state
    such as Adam's ``m``/``v``), each parameter's entries under its canonical name.
``state/h``, ``state/c``
    the hidden (and LSTM cell) state carried between training windows, ``(layers, B, H)``
    float arrays; absent when no state is carried.

Metadata (JSON object): ``format`` (``'seqdbr.charlm.checkpoint'``), ``format_version``
(int, :data:`FORMAT_VERSION`), ``seqdbr_version``, ``created`` (UTC ISO time), ``model``
(the :class:`CharRNN` constructor arguments), ``vocab`` (``Vocabulary.to_json()``),
``digests`` (entry name -> SHA-256 of its dtype, shape and bytes; checked on load, optional so
that older files still load), and the
sections the trainer adds: ``train`` (training configuration), ``corpus`` (name, source,
sha256, encoding, split sizes), ``progress`` (iteration, epoch, elapsed seconds, initial and
best losses), ``rng`` (NumPy bit-generator states), ``batcher`` (the cursor), ``history``
(train and validation loss curves).

Writes go through :func:`seqdbr.core.atomic.atomic_write` (temp file, fsync, rename): a
process killed mid-save leaves the previous checkpoint intact.
"""
import datetime
import json
import math
import os

import numpy

from seqdbr.charlm import checkpoint_meta
from seqdbr.charlm.checkpoint_meta import validate_training_meta
from seqdbr.charlm.errors import CheckpointError
from seqdbr.charlm.vocab import Vocabulary
from seqdbr.core import backend, serializers

__all__ = ['FORMAT', 'FORMAT_VERSION', 'Checkpoint', 'save_checkpoint', 'load_checkpoint',
           'validate_training_meta']

#: Value of ``meta['format']``.
FORMAT = 'seqdbr.charlm.checkpoint'
#: The newest checkpoint format this code writes and reads.
FORMAT_VERSION = 1
#: The LSTM forget-gate bias at init of checkpoints whose model config has no
#: ``forget_bias`` (written before the option existed, when ``CharRNN`` used 1).
LEGACY_FORGET_BIAS = 1.0

_META_KEY = 'meta'
_PARAMS = 'params/'
_OPT = 'optimizer/'
_STATE = 'state/'


def _seqdbr_version():
    import seqdbr
    return getattr(seqdbr, '__version__', 'unknown')


def _rename(arrays, mapping):
    """Rewrite keys ``<old>/<rest>`` to ``<new>/<rest>`` for ``mapping = {old: new}``
    (longest matching prefix wins; other keys are kept)."""
    prefixes = sorted(mapping, key=len, reverse=True)
    out = {}
    for key, value in arrays.items():
        new = key
        for p in prefixes:
            if key.startswith(p + '/'):
                new = mapping[p] + key[len(p):]
                break
        out[new] = value
    return out


def save_checkpoint(path, model, vocab, optimizer=None, meta=None, carried_state=True):
    """Write a checkpoint atomically.

    Args:
        path (str or os.PathLike): destination ``.npz`` (its directory must exist).
        model (seqdbr.charlm.model.CharRNN): parameters are copied to the host.
        vocab (Vocabulary): stored inside, so sampling needs only this file.
        optimizer: a set-up optimizer whose state is stored too (None: weights only).
        meta (dict or None): extra JSON-native sections (``train``, ``corpus``, ``progress``,
            ``rng``, ``batcher``, ``history``, ...). The keys ``format``,
            ``format_version``, ``seqdbr_version``, ``created``, ``model`` and ``vocab`` are
            filled in here.
        carried_state (bool): store the model's carried hidden state (``state/...``).

    Returns:
        str: the path written.

    Raises:
        TypeError: ``meta`` is not JSON-serializable.
        FileNotFoundError: the directory does not exist.
    """
    path = os.fspath(path)
    info = dict(meta or {})
    info.update({
        'format': FORMAT,
        'format_version': FORMAT_VERSION,
        'seqdbr_version': _seqdbr_version(),
        'created': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'model': model.config(),
        'vocab': vocab.to_json(),
    })
    arrays = {}
    for name, a in model.canonical_arrays().items():
        arrays[_PARAMS + name] = backend.to_cpu(a)
    if optimizer is not None:
        to_canonical = {path: name for name, path in model.param_path_map().items()}
        state = _rename(serializers.serialize_to_dict(optimizer), to_canonical)
        for k, v in state.items():
            arrays[_OPT + k] = v
    if carried_state:
        state = model.get_state()
        if state is not None:
            for k, v in state.items():
                arrays[_STATE + k] = backend.to_cpu(v)
    info['digests'] = {k: checkpoint_meta.array_digest(v) for k, v in arrays.items()}
    try:
        text = json.dumps(info, allow_nan=True, ensure_ascii=True, sort_keys=True)
    except (TypeError, ValueError) as e:
        raise TypeError('checkpoint metadata must be JSON-serializable: %s' % e) from None
    arrays[_META_KEY] = numpy.frombuffer(text.encode('utf-8'), dtype=numpy.uint8).copy()
    serializers.save_npz_dict(path, arrays, compression=False)
    return path


class Checkpoint:
    """A loaded checkpoint (all arrays on the host).

    Attributes:
        path (str): the file it was read from.
        meta (dict): the JSON metadata.
        params (dict): canonical parameter name -> ``numpy.ndarray``.
        optimizer_state (dict): optimizer key -> array (canonical parameter paths); empty
            for weights-only checkpoints.
        state (dict): carried state name (``'h'``, ``'c'``) -> ``(layers, B, H)`` array;
            empty when none was stored.
    """

    def __init__(self, path, meta, params, optimizer_state, state):
        self.path = path
        self.meta = meta
        self.params = params
        self.optimizer_state = optimizer_state
        self.state = state
        self._vocab = None

    def __repr__(self):
        return ('Checkpoint(%r, model=%r, iteration=%r, vocab_size=%d)'
                % (self.path, self.model_config, self.iteration, len(self.vocab)))

    def _error(self, msg):
        return CheckpointError('checkpoint %s: %s' % (self.path, msg))

    @property
    def model_config(self):
        """dict: the ``CharRNN`` constructor arguments. Checkpoints written before
        ``forget_bias`` existed get :data:`LEGACY_FORGET_BIAS`, the value they were trained
        with."""
        cfg = dict(self.meta['model'])
        cfg.setdefault('forget_bias', LEGACY_FORGET_BIAS)
        return cfg

    @property
    def vocab(self):
        """The :class:`Vocabulary` stored in the checkpoint."""
        if self._vocab is None:
            try:
                vocab = Vocabulary.from_json(self.meta['vocab'])
            except (TypeError, ValueError) as e:
                raise self._error('the stored vocabulary is invalid (%s); the file is corrupt'
                                  % e) from None
            d = self.meta['vocab']
            if d.get('mode') == 'char' and any(0xD800 <= c <= 0xDFFF for c in d['symbols']):
                # Text read as UTF-8 never holds surrogates; sampling could not write them.
                raise self._error('the stored vocabulary holds surrogate code points '
                                  '(U+D800..U+DFFF), which no UTF-8 text contains; the file is '
                                  'corrupt or was edited')
            self._vocab = vocab
        return self._vocab

    def _progress_int(self, key):
        prog = self.meta.get('progress')
        v = prog.get(key) if isinstance(prog, dict) else None
        return v if isinstance(v, int) and not isinstance(v, bool) else 0

    @property
    def iteration(self):
        """Training iterations done when it was saved (0 when unknown)."""
        return self._progress_int('iteration')

    @property
    def epoch(self):
        """Completed epochs when it was saved (0 when unknown)."""
        return self._progress_int('epoch')

    def check_finite(self, training_state=False):
        """Raise :class:`CheckpointError` if any weight is NaN or infinite.

        Args:
            training_state (bool): also check the float arrays of the optimizer state and
                the carried hidden state (what a resumed run reads). A NaN there would
                otherwise surface only as a "diverged" run a few steps later.

        The message names the file and every affected array with its count of non-finite
        entries.
        """
        def scan(arrays, prefix=''):
            out = []
            for name, a in arrays.items():
                if a.dtype.kind not in 'fc':
                    continue
                n = int(a.size - numpy.count_nonzero(numpy.isfinite(a)))
                if n:
                    out.append('%s%s (%d of %d entries)' % (prefix, name, n, a.size))
            return out

        bad = scan(self.params)
        if bad:
            raise self._error(
                'non-finite (NaN or inf) weights in %s. These weights cannot produce text; '
                'the run that wrote them diverged or the file was altered. Use an earlier '
                'checkpoint (e.g. best.npz) or train again with a lower --learning-rate.'
                % ', '.join(bad))
        if training_state:
            bad = scan(self.optimizer_state, 'optimizer/') + scan(self.state, 'state/')
            if bad:
                raise self._error(
                    'non-finite (NaN or inf) training state in %s; the file was altered or '
                    'damaged, so the run cannot continue exactly. Resume from another '
                    'checkpoint of the run (best.npz or latest.npz), or start a new run '
                    'from these weights with --init-from.' % ', '.join(bad))

    def check_consistent(self):
        """Check that the stored model configuration, vocabulary and weights agree.

        Run by :func:`load_checkpoint` before anything is built from the file, so a damaged
        or hand-edited file fails with a message naming it instead of building a model of a
        nonsensical size, or producing ids that the vocabulary cannot decode.

        Raises:
            CheckpointError: naming the disagreeing sizes.
        """
        cfg = self.meta['model']
        V, H = cfg.get('vocab_size'), cfg.get('rnn_size')
        n = len(self.vocab)
        if isinstance(V, int) and not isinstance(V, bool) and V != n:
            raise self._error('the model has vocab_size %d but the stored vocabulary has %d '
                              'symbols; the file is corrupt' % (V, n))
        for name, want in (('embed/W', (V, H)), ('out/W', (V, H)), ('out/b', (V,))):
            a = self.params.get(name)
            if a is not None and tuple(a.shape) != want:
                raise self._error(
                    'parameter %s has shape %s but the stored model configuration '
                    '(vocab_size=%r, rnn_size=%r) implies %s; the file is corrupt'
                    % (name, tuple(a.shape), V, H, want))

    def build_model(self, impl=None, device=None):
        """A ``CharRNN`` with this checkpoint's architecture and weights.

        Args:
            impl (str or None): ``'nstep'`` or ``'stepwise'``; None keeps the stored one.
                The weights are the same for both (canonical names).
            device: ``'cpu'`` (default), ``'gpu'``, ``'gpu:N'``.

        Returns:
            CharRNN with an empty carried state.

        Raises:
            CheckpointError: the stored configuration is invalid, or parameters are missing
                or have other shapes than the configuration implies.
        """
        from seqdbr.charlm.model import CharRNN
        cfg = self.model_config
        if impl is not None:
            cfg['impl'] = impl
        try:
            model = CharRNN(**cfg)
        except (TypeError, ValueError) as e:
            raise self._error('the stored model configuration %r is invalid (%s)'
                              % (self.meta.get('model'), e)) from None
        self.load_params_into(model)
        if device is not None:
            model.to_device(device)
        return model

    def load_params_into(self, model):
        """Copy the stored weights into ``model`` (same architecture, any ``impl``) in place.

        Raises:
            CheckpointError: missing, unexpected or mis-shaped parameters (all listed).
        """
        try:
            model.load_canonical(self.params)
        except ValueError as e:
            raise self._error('%s; the file is corrupt or was not written by the char-RNN '
                              'trainer' % e) from None

    def load_optimizer_into(self, optimizer, model):
        """Restore the optimizer state (``optimizer`` must be set up on ``model``).

        The state is stored per canonical parameter name, so it fits a model of the other
        ``impl`` as long as the two keep the same parameters (for the LSTM that depends on
        the bias layout of the recurrent links, see :mod:`seqdbr.charlm.model`).

        Raises:
            CheckpointError: the checkpoint has no optimizer state, or it does not match
                (another optimizer type, other parameters; the message names the ``impl``
                to resume with).
        """
        if not self.optimizer_state:
            raise self._error('it holds no optimizer state (a weights-only checkpoint); use '
                              '--init-from to start a new run from its weights')
        names = model.param_path_map()
        stored = {k.rsplit('/', 1)[0] for k in self.optimizer_state if k.startswith('rnn/')}
        stored = {k for k in stored if k.count('/') == 2}      # rnn/<l>/<name>
        wanted = {k for k in names if k.startswith('rnn/')}
        if stored and stored != wanted:
            raise self._error(
                'its optimizer state has the recurrent weights %s, but this %s model has %s '
                '(the %s and %s layers keep the LSTM bias differently); resume with --impl %s'
                % (', '.join(sorted(stored - wanted)), model.impl,
                   ', '.join(sorted(wanted - stored)), self.meta['model'].get('impl'),
                   model.impl, self.meta['model'].get('impl')))
        state = _rename(self.optimizer_state, names)
        try:
            serializers.deserialize_from_dict(state, optimizer, strict=True, name=self.path)
        except serializers.SerializationError as e:
            raise self._error('the optimizer state does not fit %s: %s'
                              % (type(optimizer).__name__, e)) from None
        self._check_optimizer_values(optimizer)

    def _check_optimizer_values(self, optimizer):
        """Refuse loaded optimizer values that would silently wreck the run: counters below
        0 or a rule ahead of the optimizer, hyperparameters the optimizer's constructor
        refuses (a ``beta1`` of 1 divides by zero) or that are not finite, and negative
        second-moment state (its square root is NaN)."""
        name = type(optimizer).__name__
        hp = optimizer.hyperparam
        values = {k: getattr(hp, k) for k in getattr(optimizer, '_hyperparam_names', ())}
        bad = ['%s = %r' % (k, v) for k, v in sorted(values.items())
               if not isinstance(v, bool) and isinstance(v, float) and not math.isfinite(v)]
        if optimizer.t < 0 or optimizer.epoch < 0:
            bad.append('t = %r, epoch = %r (must be >= 0)' % (optimizer.t, optimizer.epoch))
        base_lr = getattr(optimizer, 'base_lr', None)
        if base_lr is not None and not (math.isfinite(base_lr) and base_lr > 0):
            bad.append('base_lr = %r (must be a finite number > 0)' % (base_lr,))
        if not bad:
            try:
                type(optimizer)(**values)
            except (TypeError, ValueError) as e:
                bad.append(str(e))
        nonneg = checkpoint_meta.NONNEGATIVE_STATE.get(name, ())
        for path, param in optimizer.target.namedparams():
            rule = getattr(param, 'update_rule', None)
            if rule is None:
                continue
            if not 0 <= rule.t <= optimizer.t:
                bad.append('the step count of %s is %d, outside 0..%d' % (path, rule.t,
                                                                           optimizer.t))
            for k in nonneg:
                a = (rule.state or {}).get(k)
                if a is not None and bool((a < 0).any()):
                    bad.append('%s state %s of %s has negative entries' % (name, k, path))
        if bad:
            raise self._error('the checkpoint holds optimizer values that %s cannot use: %s; '
                              'the file is corrupt or was edited' % (name, '; '.join(bad[:5])))

    def carried_state(self):
        """The stored carried state as a dict of host arrays, or None when none was saved."""
        return dict(self.state) if self.state else None


def _parse_meta(path, raw):
    meta = checkpoint_meta.parse_meta(path, raw)
    if not isinstance(meta, dict) or meta.get('format') != FORMAT:
        raise CheckpointError('%s is not a seqdbr char-RNN checkpoint (metadata format %r, '
                              'expected %r)' % (path, meta.get('format') if isinstance(
                                  meta, dict) else None, FORMAT))
    version = meta.get('format_version')
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError('%s: invalid format_version %r; the file is corrupt'
                              % (path, version))
    if version > FORMAT_VERSION:
        raise CheckpointError(
            '%s uses checkpoint format version %d (written by seqdbr %s), but this seqdbr %s '
            'reads format versions up to %d; upgrade seqdbr to load it'
            % (path, version, meta.get('seqdbr_version', '?'), _seqdbr_version(),
               FORMAT_VERSION))
    for key in ('model', 'vocab'):
        if not isinstance(meta.get(key), dict):
            raise CheckpointError('%s: the metadata lacks the %r section; the file is corrupt'
                                  % (path, key))
    return meta


def _read_checked(path):
    """``(meta, arrays)`` of a checkpoint file, every check done before the data it guards
    is read (see :mod:`seqdbr.charlm.checkpoint_meta`)."""
    size = os.path.getsize(path)
    with serializers.NpzReader(path, max_bytes=checkpoint_meta.size_budget(size)) as r:
        checkpoint_meta.check_members(path, r.index, size)
        meta = _parse_meta(path, r.read(_META_KEY))
        cfg = dict(meta['model'])
        checkpoint_meta.check_model_config(path, cfg)
        validate_training_meta(meta, path)
        checkpoint_meta.check_layout(path, r.index, cfg, meta.get('train'))
        arrays = {k: r.read(k) for k in r.index if k != _META_KEY}
    checkpoint_meta.check_digests(path, meta, arrays)
    checkpoint_meta.check_optimizer_values(
        path, meta, {k[len(_OPT):]: v for k, v in arrays.items() if k.startswith(_OPT)})
    return meta, arrays


def load_checkpoint(path):
    """Read a checkpoint written by :func:`save_checkpoint`, as untrusted input.

    Before anything is inflated or built, the archive's headers, the metadata and the model
    configuration are checked against each other and against sane bounds
    (:mod:`seqdbr.charlm.checkpoint_meta`): unknown entries, a shape or dtype other than the
    configuration implies (weights and states are float32), a zip bomb, a pickled entry, or
    metadata the trainer could not use (:func:`validate_training_meta`) are refused. Never
    runs a pickle.

    Args:
        path (str or os.PathLike): the ``.npz`` file.

    Returns:
        Checkpoint.

    Raises:
        CheckpointError: the file does not exist or cannot be read, is truncated or corrupt,
            is not a char-RNN checkpoint, has a newer format version (the message names both
            versions), or holds inconsistent or implausible content. Every message names the
            file.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError('checkpoint %s does not exist; pass the path of a .npz file '
                              'written by the trainer (e.g. OUT/latest.npz or OUT/best.npz)'
                              % path)
    if os.path.isdir(path):
        raise CheckpointError('%s is a directory; pass the checkpoint file inside it (e.g. '
                              '%s)' % (path, os.path.join(path, 'latest.npz')))
    try:
        meta, arrays = _read_checked(path)
    except serializers.SerializationError as e:
        raise CheckpointError('%s; the checkpoint cannot be used (if a run was killed while '
                              'copying it, use the other checkpoint of the run, latest.npz or '
                              'best.npz)' % e) from None
    except OSError as e:
        raise CheckpointError('cannot read checkpoint %s: %s' % (path, e)) from None
    params, opt, state = {}, {}, {}
    for k, v in arrays.items():
        if k.startswith(_PARAMS):
            params[k[len(_PARAMS):]] = v
        elif k.startswith(_OPT):
            opt[k[len(_OPT):]] = v
        elif k.startswith(_STATE):
            state[k[len(_STATE):]] = v
    ck = Checkpoint(path, meta, params, opt, state)
    ck.check_consistent()
    return ck
