"""Checks of a char-RNN checkpoint's content, run before anything is built from it.

A checkpoint may come from anywhere, so :func:`seqdbr.charlm.checkpoint.load_checkpoint`
treats it as untrusted input and runs these checks in this order, each before the step it
protects:

1. :func:`check_members` -- on the archive's headers only (nothing decompressed): a
   ``meta`` entry that is 1-D uint8 of at most :data:`MAX_META_BYTES`, every other entry
   ``params/``, ``optimizer/`` or ``state/``, and a total declared size no larger than
   :func:`size_budget` of the file (a zip bomb is refused before it is inflated).
2. :func:`parse_meta` -- the JSON text, at most :data:`MAX_JSON_DEPTH` levels deep.
3. :func:`check_model_config` -- the ``CharRNN`` arguments: known keys, types, and sane
   bounds (:data:`LIMITS`); then :func:`validate_training_meta` (below).
4. :func:`check_layout` -- every parameter, optimizer-state and carried-state entry has the
   shape and dtype (float32) that the model configuration implies, and nothing else is
   stored. So the model that is built next has exactly the size of the arrays in the file.
5. :func:`check_digests` and :func:`check_optimizer_values`, once the data is read: every
   entry against the SHA-256 recorded at save time (swapped or edited entries), and the
   optimizer's counters, hyperparameters and second moments.

:func:`validate_training_meta` (step 3) checks the sections the trainer reads on resume
(``train``, ``progress``, ``batcher``, ``history``, ``rng``, ``corpus``): types, ranges and
their agreement with each other and with the model. Its messages say "the checkpoint holds
...", never blaming a command-line flag the user did not give.

Every failure is a :class:`~seqdbr.charlm.errors.CheckpointError` naming the file.
"""
import hashlib
import json
import math
import re

import numpy

from seqdbr.charlm.errors import CheckpointError

__all__ = ['LIMITS', 'MAX_META_BYTES', 'MAX_JSON_DEPTH', 'size_budget', 'check_members',
           'parse_meta', 'check_model_config', 'check_layout', 'validate_training_meta',
           'array_digest', 'check_digests', 'check_optimizer_values']

#: Sane bounds of the stored model configuration (far above any real char-RNN).
LIMITS = {'vocab_size': 0x110000, 'rnn_size': 1 << 16, 'num_layers': 256}
#: Largest metadata entry read (bytes of JSON text).
MAX_META_BYTES = 64 << 20
#: Deepest nesting of the metadata JSON (a real checkpoint has about 5 levels).
MAX_JSON_DEPTH = 32
#: Largest carried-state batch (parallel streams).
MAX_STATE_BATCH = 1 << 20
#: A checkpoint's arrays may declare up to this multiple of its size on disk (the trainer
#: writes them uncompressed, ratio about 1) ...
MAX_EXPANSION = 20
#: ... or this many bytes, whichever is larger.
MIN_BUDGET = 64 << 20

_MODEL_KEYS = ('vocab_size', 'rnn_size', 'num_layers', 'dropout', 'model', 'impl',
               'forget_bias')
_GATES = {'lstm': 4, 'gru': 3}
_NAME = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')
_DEVICE = re.compile(r'^(cpu|gpu|gpu:\d+)$')
_SHA256 = re.compile(r'^[0-9a-f]{64}$')
#: Optimizer hyperparameters that are booleans (all others are floats).
_BOOL_HYPERPARAMS = frozenset(('amsgrad',))
_KIND_WORDS = {'f': 'float', 'fb': 'bool', 'iu': 'integer'}
#: The trainer's optimizer names -> classes in seqdbr.optimizers.
_OPTIMIZER_CLASSES = {'adam': 'Adam', 'rmsprop': 'RMSprop', 'sgd': 'SGD'}
#: Optimizer state arrays that are running means of squares (never negative).
NONNEGATIVE_STATE = {'Adam': ('v', 'vhat'), 'RMSprop': ('ms',), 'AdaGrad': ('h',),
                     'AdaDelta': ('msg', 'msdx'), 'RMSpropGraves': ('n',)}


def _fail(path, msg):
    return CheckpointError('checkpoint %s: %s' % (path, msg))


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def size_budget(file_size):
    """Most bytes of array data a checkpoint of ``file_size`` bytes on disk may declare."""
    return max(MIN_BUDGET, MAX_EXPANSION * int(file_size))


# -- 1. members -------------------------------------------------------------------------------

def check_members(path, index, file_size):
    """Check the entry names, the metadata entry and the total declared size.

    Args:
        index (dict): key -> :class:`seqdbr.core.serializers.NpyMemberInfo`.
        file_size (int): the file's size on disk.
    """
    meta = index.get('meta')
    if meta is None and '__snapshot__' in index:
        raise CheckpointError('%s is a training snapshot of another seqdbr program (written by '
                              'seqdbr.training, not by seqdbr-train-charrnn); resume, sample '
                              'or evaluate it with the program that wrote it' % path)
    if meta is None:
        raise CheckpointError('%s is not a seqdbr char-RNN checkpoint: it has no %r entry '
                              '(entries: %s)' % (path, 'meta',
                                                 ', '.join(sorted(index)[:10]) or 'none'))
    if meta.dtype != numpy.uint8 or len(meta.shape) != 1:
        raise _fail(path, 'the %r entry must be a 1-D uint8 array of JSON text, got %s %s; '
                          'the file is corrupt' % ('meta', meta.dtype, meta.shape))
    if meta.nbytes > MAX_META_BYTES:
        raise _fail(path, 'the metadata declares %d bytes, more than the %d a checkpoint '
                          'holds; the file is corrupt' % (meta.nbytes, MAX_META_BYTES))
    other = sorted(k for k in index if k != 'meta'
                   and not k.startswith(('params/', 'optimizer/', 'state/')))
    if other:
        raise _fail(path, 'unknown entries %s (a checkpoint holds only meta, params/..., '
                          'optimizer/... and state/...); the file is corrupt or not a '
                          'char-RNN checkpoint' % ', '.join(repr(k) for k in other[:10]))
    total = sum(info.nbytes for info in index.values())
    budget = size_budget(file_size)
    if total > budget:
        raise _fail(path, 'its entries declare %d bytes of data in a file of %d bytes (more '
                          'than %d); refusing to inflate it (a zip bomb or a corrupt file)'
                    % (total, file_size, budget))


# -- 2. metadata text -------------------------------------------------------------------------

def _depth(obj):
    """Nesting depth of a JSON value, iteratively (no recursion on hostile input)."""
    deepest = 0
    stack = [(obj, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            v = list(v.values())
        if isinstance(v, list):
            deepest = max(deepest, d)
            if deepest > MAX_JSON_DEPTH:
                return deepest
            stack.extend((x, d + 1) for x in v)
    return deepest


def parse_meta(path, raw):
    """The metadata dict from the ``meta`` entry's bytes (JSON, depth-limited)."""
    try:
        meta = json.loads(raw.tobytes().decode('utf-8'))
    except (UnicodeDecodeError, ValueError) as e:
        raise _fail(path, 'the metadata is not valid JSON (%s); the file is corrupt'
                    % e) from None
    except (RecursionError, MemoryError):
        raise _fail(path, 'the metadata JSON is nested too deeply to read (a real checkpoint '
                          'has about 5 levels); the file is corrupt') from None
    if _depth(meta) > MAX_JSON_DEPTH:
        raise _fail(path, 'the metadata JSON is nested more than %d levels deep (a real '
                          'checkpoint has about 5); the file is corrupt' % MAX_JSON_DEPTH)
    return meta


# -- 3. model configuration -------------------------------------------------------------------

def check_model_config(path, cfg):
    """Check the stored ``CharRNN`` arguments: keys, types and :data:`LIMITS`."""
    def bad(msg):
        return _fail(path, 'the checkpoint holds an invalid model configuration: %s; the file '
                           'is corrupt or was edited' % msg)
    unknown = sorted(str(k) for k in cfg if k not in _MODEL_KEYS)
    if unknown:
        raise bad('unknown entries %s' % ', '.join(unknown))
    for key in ('vocab_size', 'rnn_size', 'num_layers'):
        v = cfg.get(key)
        if not _is_int(v) or not 1 <= v <= LIMITS[key]:
            raise bad('%s = %r (must be an integer in 1..%d)' % (key, v, LIMITS[key]))
    if cfg.get('model') not in _GATES:
        raise bad("model = %r (must be 'lstm' or 'gru')" % (cfg.get('model'),))
    if cfg.get('impl', 'nstep') not in ('nstep', 'stepwise'):
        raise bad("impl = %r (must be 'nstep' or 'stepwise')" % (cfg.get('impl'),))
    d = cfg.get('dropout', 0.0)
    if not _is_real(d) or not 0 <= d < 1:
        raise bad('dropout = %r (must be in [0, 1))' % (d,))
    fb = cfg.get('forget_bias', 0.0)
    if not _is_real(fb) or not abs(fb) <= float(numpy.finfo(numpy.float32).max):
        raise bad('forget_bias = %r (must be a finite float32 number)' % (fb,))


# -- 4. array layout ----------------------------------------------------------------------------

def _expected_params(cfg):
    """name -> shape of the weights; each LSTM layer may hold b_ih + b_hh or one b."""
    V, H, n = cfg['vocab_size'], cfg['rnn_size'], cfg['num_layers']
    G = _GATES[cfg['model']]
    out = {'embed/W': (V, H), 'out/W': (V, H), 'out/b': (V,)}
    for l in range(n):
        out['rnn/%d/W_ih' % l] = (G * H, H)
        out['rnn/%d/W_hh' % l] = (G * H, H)
    return out


def _check_params(path, index, cfg):
    want = _expected_params(cfg)
    G, H = _GATES[cfg['model']], cfg['rnn_size']
    stored = {k[len('params/'):]: info for k, info in index.items() if k.startswith('params/')}
    if not stored:
        raise CheckpointError('%s holds no parameters; the file is corrupt' % path)
    for l in range(cfg['num_layers']):
        pre = 'rnn/%d/' % l
        if pre + 'b' in stored and cfg['model'] == 'lstm':
            want[pre + 'b'] = (G * H,)
        else:
            want[pre + 'b_ih'] = want[pre + 'b_hh'] = (G * H,)
    missing = sorted(k for k in want if k not in stored)
    unexpected = sorted(k for k in stored if k not in want)
    wrong = ['%s has shape %s, expected %s' % (k, stored[k].shape, want[k])
             for k in sorted(want) if k in stored and stored[k].shape != want[k]]
    wrong += ['%s has dtype %s, expected float32' % (k, stored[k].dtype)
              for k in sorted(stored) if stored[k].dtype != numpy.float32]
    if missing or unexpected or wrong:
        parts = (['missing %s' % ', '.join(missing)] if missing else []) + \
            (['unexpected %s' % ', '.join(unexpected)] if unexpected else []) + wrong
        raise _fail(path, 'its parameters do not fit the stored model configuration (%s): %s; '
                          'the file is corrupt'
                    % (', '.join('%s=%r' % (k, cfg.get(k)) for k in _MODEL_KEYS if k in cfg),
                       '; '.join(parts[:12])))
    return {k: info.shape for k, info in stored.items()}


def _check_optimizer(path, index, param_shapes):
    for key, info in sorted(index.items()):
        if not key.startswith('optimizer/'):
            continue
        name = key[len('optimizer/'):]
        head, _, last = name.rpartition('/')
        if name in ('t', 'epoch', 'base_lr') or (head == 'hyperparam' and _NAME.match(last)) \
                or (head in param_shapes and last == 't'):
            kinds = ('f' if name == 'base_lr' else
                     ('fb' if last in _BOOL_HYPERPARAMS else 'f') if head == 'hyperparam'
                     else 'iu')
            if info.shape != () or info.dtype.kind not in kinds:
                raise _fail(path, 'optimizer entry %s is %s %s, expected a scalar %s; the file '
                                  'is corrupt or was edited'
                            % (name, info.dtype, info.shape, _KIND_WORDS[kinds]))
        elif head in param_shapes and _NAME.match(last):
            if info.shape != param_shapes[head] or info.dtype != numpy.float32:
                raise _fail(path, 'optimizer state %s is %s %s, but its parameter %s is float32 '
                                  '%s; the file is corrupt'
                            % (name, info.dtype, info.shape, head, param_shapes[head]))
        else:
            raise _fail(path, 'unknown optimizer entry %s; the file is corrupt' % name)


def _check_state(path, index, cfg, batch_size=None):
    L, H = cfg['num_layers'], cfg['rnn_size']
    keys = sorted(k[len('state/'):] for k in index if k.startswith('state/'))
    if not keys:
        return
    need = ['c', 'h'] if cfg['model'] == 'lstm' else ['h']
    if keys != need:
        raise _fail(path, 'the carried state holds %s, but a %s model carries %s; the file is '
                          'corrupt' % (', '.join(keys), cfg['model'], ', '.join(need)))
    for k in sorted(keys, reverse=True):             # h first
        info = index['state/' + k]
        s = info.shape
        if len(s) != 3 or s[0] != L or s[2] != H or not 1 <= s[1] <= MAX_STATE_BATCH \
                or info.dtype != numpy.float32:
            raise _fail(path, 'the carried state %s is %s %s, expected float32 (num_layers=%d, '
                              'B, rnn_size=%d) with 1 <= B <= %d; the file is corrupt'
                        % (k, info.dtype, s, L, H, MAX_STATE_BATCH))
    B = index['state/h'].shape[1]
    if _is_int(batch_size) and B != batch_size:
        raise _fail(path, 'the carried state has %d streams but the checkpoint\'s training '
                          'configuration has batch_size %d; the file is corrupt'
                    % (B, batch_size))
    if len({index['state/' + k].shape for k in keys}) != 1:
        raise _fail(path, 'the carried states h %s and c %s differ in shape; the file is corrupt'
                    % (index['state/h'].shape, index['state/c'].shape))


def check_layout(path, index, cfg, train=None):
    """Check every ``params/``, ``optimizer/`` and ``state/`` entry against the (already
    checked) model configuration ``cfg`` (and the carried state's batch against
    ``train['batch_size']`` when the training configuration is given), from the headers
    alone."""
    shapes = _check_params(path, index, cfg)
    _check_optimizer(path, index, shapes)
    _check_state(path, index, cfg,
                 train.get('batch_size') if isinstance(train, dict) else None)


# -- 5. training metadata --------------------------------------------------------------------

def _int_at_least(lo, optional=False):
    def check(v):
        if v is None and optional:
            return None
        if not _is_int(v) or v < lo:
            return 'must be an integer >= %d%s' % (lo, ' or null' if optional else '')
    return check


def _real_in(lo, hi, lo_open=False, hi_open=False, optional=False):
    def check(v):
        if v is None and optional:
            return None
        ok = _is_real(v) and math.isfinite(v) and (v > lo if lo_open else v >= lo) \
            and (v < hi if hi_open else v <= hi)
        if not ok:
            return 'must be a finite number in %s%g, %g%s%s' % (
                '(' if lo_open else '[', lo, hi, ')' if hi_open else ']',
                ' or null' if optional else '')
    return check


def _choice(*choices):
    def check(v):
        if not isinstance(v, str) or v not in choices:
            return 'must be one of %s' % ', '.join(choices)
    return check


def _string(optional=False):
    def check(v):
        if not (isinstance(v, str) or (v is None and optional)):
            return 'must be a string%s' % (' or null' if optional else '')
    return check


def _device(v):
    if not isinstance(v, str) or not _DEVICE.match(v):
        return "must be 'cpu', 'gpu' or 'gpu:N'"


def _boolean(v):
    if not isinstance(v, bool):
        return 'must be true or false'


_F32_MAX = float(numpy.finfo(numpy.float32).max)
#: What each stored training option may hold (the trainer's ``TrainConfig`` fields).
TRAIN_SCHEMA = {
    'model': _choice('lstm', 'gru'), 'rnn_size': _int_at_least(1),
    'num_layers': _int_at_least(1), 'dropout': _real_in(0, 1, hi_open=True),
    'forget_bias': _real_in(-_F32_MAX, _F32_MAX), 'seq_length': _int_at_least(1),
    'batch_size': _int_at_least(1), 'optimizer': _choice('adam', 'rmsprop', 'sgd'),
    'learning_rate': _real_in(0, 1e308, lo_open=True), 'lr_decay': _real_in(0, 1, lo_open=True),
    'lr_decay_after': _int_at_least(0), 'grad_clip': _real_in(0, 1e308),
    'max_epochs': _int_at_least(1, True), 'max_iters': _int_at_least(1, True),
    'max_minutes': _real_in(0, 1e308, lo_open=True, optional=True),
    'train_frac': _real_in(0, 1, optional=True), 'val_frac': _real_in(0, 1, optional=True),
    'eval_every': _int_at_least(1, True), 'checkpoint_every': _int_at_least(1, True),
    'out': _string(), 'seed': _int_at_least(0), 'device': _device,
    'resume': _string(True), 'init_from': _string(True), 'corpus': _string(),
    'encoding': _choice('utf-8', 'bytes'), 'impl': _choice('nstep', 'stepwise'),
    'progress': _boolean,
}

_PROGRESS_SCHEMA = {
    'iteration': _int_at_least(0), 'epoch': _int_at_least(0),
    'epoch_detail': _real_in(0, 1e308), 'elapsed': _real_in(0, 1e308),
    'initial_loss': _real_in(0, 1e308, optional=True),
    'best_val_loss': _real_in(0, 1e308, optional=True),
    'best_iteration': _int_at_least(0, True), 'lr': _real_in(0, 1e308, optional=True),
}


class _Checker:
    def __init__(self, path):
        self.path = path

    def fail(self, where, value, why):
        shown = json.dumps(value)[:80] if _json_ok(value) else repr(value)[:80]
        return CheckpointError(
            'checkpoint %s holds %s = %s, which %s; the file is corrupt or was edited. Resume '
            'from another checkpoint of the run (latest.npz or best.npz), or start a new run '
            'from its weights with --init-from' % (self.path, where, shown, why))

    def section(self, meta, name, required=True):
        v = meta.get(name)
        if v is None and not required:
            return None
        if not isinstance(v, dict):
            raise self.fail(name, v, 'is not a JSON object' if name in meta else 'is missing')
        return v

    def fields(self, section, d, schema, required=()):
        for key in required:
            if key not in d:
                raise self.fail('%s.%s' % (section, key), None, 'is missing')
        for key, check in schema.items():
            if key in d:
                why = check(d[key])
                if why:
                    raise self.fail('%s.%s' % (section, key), d[key], why)


def _json_ok(v):
    try:
        json.dumps(v)
        return True
    except (TypeError, ValueError, RecursionError):
        return False


def validate_training_meta(meta, path):
    """Check every metadata field the trainer reads on resume.

    ``train`` (the options, :data:`TRAIN_SCHEMA`; their split fractions sum to at most 1;
    architecture equal to the ``model`` section), ``progress`` (counters, elapsed time,
    losses: an ``initial_loss`` must be a loss, i.e. finite and >= 0), ``batcher`` (its
    cursor is the progress iteration, with the stored batch size and window length),
    ``history`` (one training loss per iteration, validation points ``[iteration, loss]`` in
    order), ``rng`` (bit-generator states of this NumPy's generator type) and ``corpus``
    (name, spec, source, sha256, encoding, fractions, sizes). Each of these sections, when
    present, must be a JSON object; ``train`` and ``corpus`` are checked in full whenever
    present (evaluation reads them), the others when the file is resumable (it has
    ``train`` and ``progress``).

    Args:
        meta (dict): the parsed metadata.
        path (str): the file, for messages.

    Raises:
        CheckpointError: "checkpoint PATH holds FIELD = VALUE, which ...": the message names
            the stored field, not a command-line flag.
    """
    c = _Checker(path)
    for name in ('train', 'corpus', 'progress', 'batcher', 'history', 'rng'):
        if name in meta:
            c.section(meta, name)                  # present: must be a JSON object
    # What the trainer resumes from: a train section and a progress section (without them
    # it refuses the file itself, as "holds no training state").
    resumable = 'train' in meta and 'progress' in meta
    train = meta.get('train')
    if train is not None:
        c.fields('train', train, TRAIN_SCHEMA)
        tf, vf = train.get('train_frac'), train.get('val_frac')
        if tf is not None and vf is not None and tf + vf > 1 + 1e-9:
            raise c.fail('train.train_frac + train.val_frac', tf + vf, 'exceeds 1')
        if tf is not None and tf <= 0:
            raise c.fail('train.train_frac', tf, 'leaves nothing to train on')
        model = meta.get('model', {})
        for key in ('model', 'rnn_size', 'num_layers'):
            if key in train and train[key] != model.get(key):
                raise c.fail('train.%s' % key, train[key], 'differs from its model section '
                             '(%s = %r)' % (key, model.get(key)))
    corpus = c.section(meta, 'corpus', required=False)
    if corpus is not None:
        _check_corpus(c, corpus)
    if not resumable:
        return
    prog = c.section(meta, 'progress')
    c.fields('progress', prog, _PROGRESS_SCHEMA, required=('iteration', 'epoch'))
    it = prog['iteration']
    if prog.get('best_iteration') is not None and prog['best_iteration'] > it:
        raise c.fail('progress.best_iteration', prog['best_iteration'],
                     'is after the iteration it was saved at (%d)' % it)
    _check_batcher(c, c.section(meta, 'batcher'), it, train)
    sizes = (meta.get('corpus') or {}).get('sizes') or {}
    if _is_int(sizes.get('train')) and sizes['train'] != meta['batcher']['num_tokens']:
        raise c.fail('batcher.num_tokens', meta['batcher']['num_tokens'],
                     'differs from the training split size corpus.sizes.train (%d)'
                     % sizes['train'])
    _check_history(c, c.section(meta, 'history', required=False) or {}, it)
    _check_rng(c, c.section(meta, 'rng'))


def _check_batcher(c, b, it, train):
    c.fields('batcher', b, {k: _int_at_least(0 if k == 'iteration' else 1) for k in
                            ('iteration', 'batch_size', 'bptt_len', 'num_tokens')},
             required=('iteration', 'batch_size', 'bptt_len', 'num_tokens'))
    if b['iteration'] != it:
        raise c.fail('batcher.iteration', b['iteration'], 'differs from progress.iteration '
                     '(%d)' % it)
    for key, tkey in (('batch_size', 'batch_size'), ('bptt_len', 'seq_length')):
        if tkey in train and b[key] != train[tkey]:
            raise c.fail('batcher.%s' % key, b[key], 'differs from train.%s (%r)'
                         % (tkey, train[tkey]))
    if b['num_tokens'] < b['batch_size'] * b['bptt_len'] + 1:
        raise c.fail('batcher.num_tokens', b['num_tokens'], 'cannot hold one batch of '
                     'batch_size %d x bptt_len %d + 1' % (b['batch_size'], b['bptt_len']))


def _check_history(c, h, it):
    losses = h.get('train_loss', [])
    if not isinstance(losses, list) or not all(_is_real(v) for v in losses):
        raise c.fail('history.train_loss', losses, 'is not a list of numbers')
    if len(losses) != it:
        raise c.fail('history.train_loss', '%d entries' % len(losses),
                     'is not one loss per iteration (%d)' % it)
    val = h.get('val', [])
    ok = isinstance(val, list) and all(
        isinstance(p, list) and len(p) == 2 and _is_int(p[0]) and 1 <= p[0] <= it
        and _is_real(p[1]) for p in val)
    if not ok or any(a[0] >= b[0] for a, b in zip(val, val[1:])):
        raise c.fail('history.val', val, 'is not a list of [iteration, loss] pairs in '
                     'increasing iteration order up to %d' % it)


def _check_rng(c, rng):
    from seqdbr.core import initializers
    from seqdbr.core.functions import noise
    for key, gen in (('initializers', initializers.get_rng()), ('dropout', noise.get_rng())):
        state = rng.get(key)
        kind = type(gen.bit_generator)
        ok = isinstance(state, dict) and state.get('bit_generator') == kind.__name__
        if ok:
            try:
                kind().state = state
            except Exception:     # noqa: BLE001 -- NumPy raises several types for bad states
                ok = False
        if not ok:
            raise c.fail('rng.%s' % key, state, 'is not a valid %s state' % kind.__name__)


def _check_corpus(c, corpus):
    c.fields('corpus', corpus, {
        'name': _string(True), 'spec': _string(), 'source': _string(True),
        'encoding': _choice('utf-8', 'bytes'), 'split_method': _string(True)})
    sha = corpus.get('sha256')
    if sha is not None and (not isinstance(sha, str) or not _SHA256.match(sha)):
        raise c.fail('corpus.sha256', sha, 'is not 64 lowercase hex digits')
    fr = corpus.get('fractions')
    if fr is not None and not (isinstance(fr, list) and len(fr) == 2
                               and all(_is_real(v) and 0 <= v <= 1 for v in fr)
                               and fr[0] > 0 and fr[0] + fr[1] <= 1 + 1e-9):
        raise c.fail('corpus.fractions', fr, 'is not [train, val] fractions in [0, 1] with '
                     'a positive train part and a sum of at most 1')
    sizes = corpus.get('sizes')
    if sizes is not None and not (isinstance(sizes, dict) and all(
            _is_int(v) and v >= 0 for v in sizes.values())):
        raise c.fail('corpus.sizes', sizes, 'is not a mapping of split sizes')



# -- 6. values (after the data is read) ---------------------------------------------------------

def array_digest(a):
    """SHA-256 (hex) of an array's dtype, shape and bytes (C order)."""
    a = numpy.ascontiguousarray(a)
    h = hashlib.sha256(('%s%s' % (a.dtype.str, a.shape)).encode('ascii'))
    h.update(a.reshape(-1).view(numpy.uint8))
    return h.hexdigest()


def check_digests(path, meta, arrays):
    """Compare every entry with the digest recorded when the file was written (checkpoints
    written before digests existed have none and pass). Detects swapped, replaced or edited
    entries whose zip checksums were made to fit."""
    digests = meta.get('digests')
    if digests is None:
        return
    if not isinstance(digests, dict) or not all(
            isinstance(v, str) and _SHA256.match(v) for v in digests.values()):
        raise _fail(path, 'the metadata\'s digests section is not a mapping of SHA-256 hex '
                          'digests; the file is corrupt')
    names = set(arrays)
    if set(digests) != names:
        extra = sorted(names - set(digests))
        gone = sorted(set(digests) - names)
        raise _fail(path, 'its entries do not match the ones recorded when it was written '
                          '(not recorded: %s; missing: %s); the file was altered'
                    % (', '.join(extra[:5]) or 'none', ', '.join(gone[:5]) or 'none'))
    bad = sorted(k for k in names if array_digest(arrays[k]) != digests[k])
    if bad:
        raise _fail(path, 'the content of %s differs from what was written (SHA-256 '
                          'mismatch); the file was altered or damaged'
                    % ', '.join(bad[:5]) + (' and %d more' % (len(bad) - 5)
                                            if len(bad) > 5 else ''))


def check_optimizer_values(path, meta, opt):
    """Check the stored optimizer scalars and state (``opt``: key -> array, canonical names)
    before any optimizer is built: counters >= 0 and no rule ahead of the optimizer, finite
    hyperparameters that the optimizer named in ``train.optimizer`` accepts (a ``beta1`` of
    1 would divide by zero), and non-negative second-moment state."""
    if not opt:
        return
    def bad(msg):
        return _fail(path, 'the checkpoint holds optimizer values that cannot be used: %s; the '
                           'file is corrupt or was edited' % msg)
    t = int(opt['t']) if 't' in opt else 0
    for k, a in opt.items():
        if k == 't' or k == 'epoch' or k.endswith('/t') and not k.startswith('hyperparam/'):
            v = int(a)
            if v < 0 or (k.endswith('/t') and v > t):
                raise bad('%s = %d (must be in 0..%d)' % (k, v, t if k != 'epoch' else v))
    hyper = {k[len('hyperparam/'):]: a.item() for k, a in opt.items()
             if k.startswith('hyperparam/')}
    nonfinite = ['%s = %r' % kv for kv in sorted(hyper.items())
                 if isinstance(kv[1], float) and not math.isfinite(kv[1])]
    if 'base_lr' in opt and not (math.isfinite(float(opt['base_lr']))
                                 and float(opt['base_lr']) > 0):
        nonfinite.append('base_lr = %r' % float(opt['base_lr']))
    if nonfinite:
        raise bad(', '.join(nonfinite))
    train = meta.get('train') if isinstance(meta.get('train'), dict) else {}
    cls_name = _OPTIMIZER_CLASSES.get(train.get('optimizer'))
    if cls_name is not None and hyper:
        from seqdbr import optimizers
        try:
            getattr(optimizers, cls_name)(**hyper)
        except (TypeError, ValueError) as e:
            raise bad('%s refuses them (%s)' % (cls_name, e)) from None
        for k, a in opt.items():
            if k.rpartition('/')[2] in NONNEGATIVE_STATE.get(cls_name, ()) and a.ndim and \
                    bool((a < 0).any()):
                raise bad('%s holds negative entries (a mean of squares)' % k)
