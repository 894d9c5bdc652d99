"""Fuzzing the checkpoint reader with damaged and hostile files (issue 14, "must show").

A small real checkpoint is trained here, then more than 200 deterministic mutants of it
(truncations, byte flips, zeroed ranges, swapped and reordered members, wrong dtypes and
shapes, hostile metadata, a zip bomb, pickled members, unsupported zip features) are each run
through the four ways a checkpoint is used:

* ``load``: :func:`load_checkpoint`, then ``check_finite(training_state=True)`` (what every
  consumer does before using the arrays);
* ``sample``: :func:`sample_main` (the ``seqdbr-sample-charrnn`` program);
* ``eval``: :func:`eval_main` (``seqdbr-eval-charrnn``);
* ``resume``: :func:`train` with ``TrainConfig(resume=...)``.

For every mutant and use the outcome must be either a clear error -- a user-facing error type
(no traceback) whose message names the mutant's file -- or a result identical to the
original's. Each case runs under a time limit (SIGALRM), and ``pickle.load``/``loads`` are
replaced for the whole module by functions that fail the test if ever called.
"""
import contextlib
import io
import json
import os
import pickle
import signal
import struct
import sys
import warnings
import zipfile

import numpy
import pytest

from seqdbr.charlm.checkpoint import load_checkpoint
from seqdbr.charlm.checkpoint_meta import array_digest
from seqdbr.charlm.cli import _user_errors, eval_main, sample_main
from seqdbr.charlm.train import TrainConfig, train

#: Mutant seed; ``SEQDBR_FUZZ_SEED=N`` runs another deterministic set (longer fuzzing).
SEED = int(os.environ.get('SEQDBR_FUZZ_SEED', '20261206'))
CASE_LIMIT_S = 20.0
WORDS = ('the cat sat on a mat while dogs ran far away from home and small birds sang '
         'quietly in old green trees near water').split()


# -- the original checkpoint and the four uses ---------------------------------------------------

class _Timeout(Exception):
    pass


@contextlib.contextmanager
def _time_limit(seconds, what):
    def on_alarm(signum, frame):
        raise _Timeout('%s took more than %g s' % (what, seconds))
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _text(n, seed=0):
    rng = numpy.random.default_rng(seed)
    out = []
    while sum(map(len, out)) < n:
        out.append(' '.join(rng.choice(WORDS, size=int(rng.integers(3, 9)))).capitalize()
                   + ('.\n' if rng.random() < 0.5 else '. '))
    return ''.join(out)[:n]


def _arrays(path):
    """Every entry of an npz except the metadata, via NumPy (trusted files only)."""
    with numpy.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files if k != 'meta'}


def _same_arrays(a, b):
    return sorted(a) == sorted(b) and all(
        a[k].dtype == b[k].dtype and a[k].shape == b[k].shape
        and numpy.array_equal(a[k], b[k], equal_nan=True) for k in a)


@contextlib.contextmanager
def _captured():
    out = io.TextIOWrapper(io.BytesIO(), encoding='utf-8')
    err = io.StringIO()
    old = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    res = {}
    try:
        yield res
    finally:
        sys.stdout, sys.stderr = old
        out.flush()
        res['out'] = out.buffer.getvalue()
        res['err'] = err.getvalue()


def use_load(path, ctx):
    ck = load_checkpoint(path)
    ck.check_finite(training_state=True)
    meta = {k: ck.meta.get(k) for k in ('model', 'vocab', 'train', 'corpus', 'progress',
                                         'batcher', 'history', 'rng')}
    return ('ok', {'params': ck.params, 'opt': ck.optimizer_state, 'state': ck.state},
            json.dumps(meta, sort_keys=True))


def _cli(main, args, path):
    with _captured() as cap:
        rc = main(args)
    if rc == 0:
        return ('ok', cap['out'])
    return ('error', rc, cap['err'])


def use_sample(path, ctx):
    return _cli(sample_main, [path, '--length', '12', '--seed', '5'], path)


def use_eval(path, ctx):
    res = _cli(eval_main, [path, '--corpus', ctx['corpus']], path)
    if res[0] == 'ok':
        rep = json.loads(res[1])
        rep.pop('checkpoint')
        return ('ok', rep)
    return res


def use_resume(path, ctx):
    ctx['n'] += 1
    out = os.path.join(ctx['resume_dir'], str(ctx['n']))
    cfg = TrainConfig(resume=path, out=out, max_iters=6, progress=False)
    train(cfg, explicit={'resume', 'out', 'max_iters', 'progress'}, out_stream=io.StringIO())
    latest = os.path.join(out, 'latest.npz')
    meta = load_checkpoint(latest).meta
    return ('ok', _arrays(latest), json.dumps([meta['history'], meta['batcher']]))


USES = {'load': use_load, 'sample': use_sample, 'eval': use_eval, 'resume': use_resume}


def _outcome(use, path, ctx):
    """('ok', result...) or ('error', message); anything else propagates (a test failure)."""
    try:
        with _time_limit(CASE_LIMIT_S, '%s of %s' % (use, path)):
            res = USES[use](path, ctx)
    except _user_errors() as e:
        return ('error', str(e))
    if res[0] == 'error':
        _, rc, err = res
        assert rc in (1, 2), (use, path, rc, err)
        assert 'Traceback' not in err and err.count('\n') <= 2, err
        assert ': error: ' in err, err
        return ('error', err)
    return res


def _same(a, b):
    if a[0] != b[0] or len(a) != len(b):
        return False
    for x, y in zip(a[1:], b[1:]):
        if isinstance(x, dict) and x and all(isinstance(v, (dict, numpy.ndarray))
                                             for v in x.values()):
            if isinstance(next(iter(x.values())), dict):
                if sorted(x) != sorted(y) or not all(_same_arrays(x[k], y[k]) for k in x):
                    return False
            elif not _same_arrays(x, y):
                return False
        elif x != y:
            return False
    return True


@pytest.fixture(scope='module')
def no_pickle():
    calls = []

    def refuse(*a, **k):
        calls.append(a)
        raise AssertionError('a pickle load was attempted')

    saved = pickle.load, pickle.loads
    pickle.load, pickle.loads = refuse, refuse
    yield calls
    pickle.load, pickle.loads = saved


@pytest.fixture(scope='module')
def original(tmp_path_factory, no_pickle):
    d = tmp_path_factory.mktemp('fuzz')
    corpus = d / 'corpus.txt'
    corpus.write_text(_text(700), encoding='utf-8')
    cfg = TrainConfig(corpus=str(corpus), out=str(d / 'run'), rnn_size=8, num_layers=1,
                      batch_size=3, seq_length=5, max_iters=4, eval_every=2, progress=False,
                      seed=1, train_frac=0.8, val_frac=0.1)
    train(cfg, out_stream=io.StringIO())
    path = str(d / 'run' / 'latest.npz')
    ctx = {'corpus': str(corpus), 'resume_dir': str(d / 'resumed'), 'n': 0}
    base = {use: _outcome(use, path, ctx) for use in USES}
    for use, res in base.items():
        assert res[0] == 'ok', (use, res)
    with open(path, 'rb') as f:
        raw = f.read()
    return {'dir': d, 'path': path, 'raw': raw, 'ctx': ctx, 'base': base}


# -- building mutants -------------------------------------------------------------------------

def _entries(raw):
    """[(name, data bytes of the .npy)] in archive order."""
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        return [(i.filename, z.read(i)) for i in z.infolist()]


def _npy(a, allow_pickle=False):
    buf = io.BytesIO()
    numpy.lib.format.write_array(buf, numpy.asarray(a), allow_pickle=allow_pickle)
    return buf.getvalue()


def _zip(entries, method=zipfile.ZIP_STORED, comment=b'', date=None):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, 'w') as z, warnings.catch_warnings():
        warnings.simplefilter('ignore')            # 'Duplicate name' is the point of one case
        for name, data in entries:
            zi = zipfile.ZipInfo(name, date_time=date or (1980, 1, 1, 0, 0, 0))
            zi.compress_type = method
            z.writestr(zi, data)
        z.comment = comment
    return buf.getvalue()


def _load_entries(raw):
    return {n[:-4]: numpy.lib.format.read_array(io.BytesIO(d)) for n, d in _entries(raw)}


def _rebuild(raw, edit_arrays=None, edit_meta=None, forge=True, meta_text=None):
    """A consistent archive (valid CRCs) with edited arrays/metadata; ``forge`` re-records
    the digests as a deliberate editor would."""
    arrays = _load_entries(raw)
    meta = json.loads(arrays.pop('meta').tobytes().decode('utf-8'))
    if edit_arrays:
        edit_arrays(arrays)
    if edit_meta:
        edit_meta(meta)
    if forge:
        meta['digests'] = {k: array_digest(v) for k, v in arrays.items()
                           if v.dtype != object}
    text = meta_text(meta) if meta_text else json.dumps(meta).encode('utf-8')
    ents = [('meta.npy', _npy(numpy.frombuffer(text, numpy.uint8)))]
    ents += [(k + '.npy', _npy(v, allow_pickle=v.dtype == object)) for k, v in arrays.items()]
    return _zip(ents)


def _set(path, value):
    def edit(meta):
        d = meta
        keys = path.split('.')
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value
    return edit


def _key(arrays, suffix):
    return next(k for k in sorted(arrays) if k.endswith(suffix))


def _retype(suffix, dtype):
    def edit(a):
        k = _key(a, suffix)
        a[k] = a[k].astype(dtype)
    return edit


def _reshape(suffix, fn):
    def edit(a):
        k = _key(a, suffix)
        a[k] = fn(a[k])
    return edit


def _swap(s1, s2):
    def edit(a):
        k1, k2 = _key(a, s1), _key(a, s2)
        a[k1], a[k2] = a[k2], a[k1]
    return edit


def _patch_headers(raw, offset_field, value, fmt='<H'):
    """Set a field in every local (30-byte) and central (46-byte) zip header."""
    b = bytearray(raw)
    local_off, central_off = offset_field
    for sig, off in ((b'PK\x03\x04', local_off), (b'PK\x01\x02', central_off)):
        i = b.find(sig)
        while i >= 0:
            struct.pack_into(fmt, b, i + off, value)
            i = b.find(sig, i + 4)
    return bytes(b)


def _bomb_member(shape, dtype='<f4'):
    """A deflated .npy of zeros, compressed in a stream (never held whole in memory)."""
    header = io.BytesIO()
    numpy.lib.format.write_array_header_1_0(
        header, {'descr': dtype, 'fortran_order': False, 'shape': shape})
    return header.getvalue(), int(numpy.prod(shape)) * numpy.dtype(dtype).itemsize


_BOMBS = {}


def _zip_with_bomb(entries, name, shape):
    key = (tuple(n for n, _ in entries), name, shape)
    if key not in _BOMBS:                          # both tests use the same two bombs
        _BOMBS[key] = _make_zip_with_bomb(entries, name, shape)
    return _BOMBS[key]


def _make_zip_with_bomb(entries, name, shape):
    head, nbytes = _bomb_member(shape)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, 'w') as z:
        for n, data in entries:
            z.writestr(n, data)
        zi = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
        zi.compress_type = zipfile.ZIP_DEFLATED
        with z.open(zi, 'w', force_zip64=True) as f:
            f.write(head)
            zero = bytes(1 << 20)
            left = nbytes
            while left:
                f.write(zero[:min(left, len(zero))])
                left -= min(left, len(zero))
    return buf.getvalue()


def _deep_json(meta, depth):
    return ('{"extra": ' + '[' * depth + ']' * depth + ', '
            + json.dumps(meta)[1:]).encode('utf-8')


def _hostile_metadata():
    """(name, metadata edit) pairs; each leaves a file whose use must fail clearly."""
    m = [
        ('model.num_layers=1e6', _set('model.num_layers', 10 ** 6)),
        ('model.rnn_size=1e7', _set('model.rnn_size', 10 ** 7)),
        ('model.rnn_size=16', _set('model.rnn_size', 16)),
        ('model.vocab_size=1e9', _set('model.vocab_size', 10 ** 9)),
        ('model.vocab_size=-1', _set('model.vocab_size', -1)),
        ('model.vocab_size=true', _set('model.vocab_size', True)),
        ('model.model=rnn', _set('model.model', 'rnn')),
        ('model.dropout=2', _set('model.dropout', 2)),
        ('model.forget_bias=1e39', _set('model.forget_bias', 1e39)),
        ('model.extra', _set('model.evil', 1)),
        ('model=[]', _set('model', [])),
        ('vocab.symbols short', lambda mt: mt['vocab'].update(symbols=mt['vocab']['symbols'][:-1])),
        ('vocab.symbols str', _set('vocab.symbols', 'abc')),
        ('vocab.mode', _set('vocab.mode', 'words')),
        ('vocab surrogates', lambda mt: mt['vocab'].update(
            symbols=[0xD800 + i for i in range(len(mt['vocab']['symbols']))])),
        ('vocab=[]', _set('vocab', [])),
        ('format', _set('format', 'other')),
        ('format_version=99', _set('format_version', 99)),
        ('format_version=str', _set('format_version', '1')),
        ('progress=[]', _set('progress', [])),
        ('progress.elapsed=str', _set('progress.elapsed', 'long')),
        ('progress.initial_loss=-1', _set('progress.initial_loss', -1)),
        ('progress.initial_loss=NaN', _set('progress.initial_loss', float('nan'))),
        ('progress.iteration=-3', _set('progress.iteration', -3)),
        ('progress.iteration=1.5', _set('progress.iteration', 1.5)),
        ('progress.best_iteration=99', _set('progress.best_iteration', 99)),
        ('corpus=[]', _set('corpus', [])),
        ('corpus.sha256', _set('corpus.sha256', 'zz')),
        ('corpus.fractions', _set('corpus.fractions', [2, 0])),
        ('train=[]', _set('train', [])),
        ('train.batch_size=0', _set('train.batch_size', 0)),
        ('train.batch_size=str', _set('train.batch_size', '3')),
        ('train.device', _set('train.device', 'tpu')),
        ('train.optimizer', _set('train.optimizer', 'lbfgs')),
        ('train.learning_rate=-1', _set('train.learning_rate', -1)),
        ('train.lr_decay=true', _set('train.lr_decay', True)),
        ('train.rnn_size differs', _set('train.rnn_size', 9)),
        ('rng={}', _set('rng', {})),
        ('rng.dropout', _set('rng.dropout', {'bit_generator': 'PCG64', 'state': 1})),
        ('history.train_loss short', lambda mt: mt['history']['train_loss'].pop()),
        ('history.val bad', _set('history.val', [[0, 'x']])),
        ('batcher.iteration', _set('batcher.iteration', 99)),
        ('batcher=[]', _set('batcher', [])),
        ('digests garbage', _set('digests', ['x'])),
        ('digests missing', lambda mt: mt['digests'].pop(sorted(mt['digests'])[0])),
    ]
    return m


def _mutants(orig):
    raw = orig['raw']
    rng = numpy.random.default_rng(SEED)
    n = len(raw)
    out = []      # (name, bytes, must_fail)
    for cut in sorted(set([0, 1, 22, n // 2, n - 22, n - 1]
                          + [int(v) for v in rng.integers(1, n, 36)])):
        out.append(('truncated to %d' % cut, raw[:cut], True))
    for _ in range(60):
        pos, x = int(rng.integers(0, n)), int(rng.integers(1, 256))
        b = bytearray(raw)
        b[pos] ^= x
        out.append(('byte %d ^= %d' % (pos, x), bytes(b), False))
    for _ in range(30):
        ln = int(rng.choice([1, 4, 64, 512, 4096]))
        pos = int(rng.integers(0, n - 1))
        b = bytearray(raw)
        b[pos:pos + ln] = bytes(len(b[pos:pos + ln]))
        out.append(('zeroed %d bytes at %d' % (ln, pos), bytes(b), False))
    # Swapped members: same shapes, so only the digests can tell.
    for s1, s2 in (('params/embed/W', 'params/out/W'), ('/W_ih', '/W_hh'),
                   ('W_ih/m', 'W_hh/m'), ('embed/W/m', 'embed/W/v'), ('state/h', 'state/c')):
        out.append(('swapped %s and %s' % (s1, s2),
                    _rebuild(raw, _swap(s1, s2), forge=False), True))
    # Reordered, recompressed, re-dated archives hold the same checkpoint: identical results.
    ents = _entries(raw)
    out.append(('members reversed', _zip(ents[::-1]), False))
    order = list(rng.permutation(len(ents)))
    out.append(('members shuffled', _zip([ents[i] for i in order]), False))
    out.append(('recompressed (deflate)', _zip(ents, zipfile.ZIP_DEFLATED), False))
    out.append(('zip comment and dates', _zip(ents, comment=b'hello',
                                              date=(2030, 5, 6, 7, 8, 10)), False))
    # Wrong dtypes and shapes, digests forged to fit.
    for suffix, dtype in (('embed/W', numpy.float64), ('out/W', numpy.float16),
                          ('out/b', numpy.int32), ('/W_hh', numpy.int64),
                          ('state/h', numpy.float64), ('state/c', numpy.int32),
                          ('state/h', numpy.bool_), ('embed/W/m', numpy.float64),
                          ('out/b/v', numpy.int64), ('optimizer/t', numpy.float64),
                          ('optimizer/t', numpy.complex128), ('optimizer/t', numpy.bool_),
                          ('optimizer/epoch', numpy.float32), ('hyperparam/beta1', numpy.int32),
                          ('hyperparam/beta1', numpy.bool_), ('optimizer/base_lr', numpy.int64),
                          ('out/b/t', numpy.float64)):
        out.append(('%s as %s' % (suffix, numpy.dtype(dtype).name),
                    _rebuild(raw, _retype(suffix, dtype)), True))
    for suffix, fn, what in (
            ('embed/W', lambda a: a.T.copy(), 'transposed'),
            ('out/b', lambda a: numpy.append(a, 0), 'one longer'),
            ('/W_hh', lambda a: a[:-1], 'one row short'),
            ('state/h', lambda a: numpy.concatenate([a, a], axis=1), 'batch doubled'),
            ('state/c', lambda a: a[None], '4-D'),
            ('embed/W/v', lambda a: a[:, :-1], 'state shape'),
            ('optimizer/t', lambda a: a.reshape(1), '1-D t'),
            ('hyperparam/beta1', lambda a: numpy.full((), 1.0), 'beta1 = 1'),
            ('hyperparam/eps', lambda a: numpy.full((), numpy.inf), 'eps = inf'),
            ('optimizer/t', lambda a: numpy.full((), -2, a.dtype), 't = -2'),
            ('out/b/t', lambda a: numpy.full((), 99, a.dtype), 'rule t ahead'),
            ('embed/W/v', lambda a: -numpy.abs(a) - 1, 'negative v'),
            ('out/b', lambda a: numpy.full_like(a, numpy.nan), 'NaN weights'),
            ('embed/W/m', lambda a: numpy.full_like(a, numpy.inf), 'inf moments')):
        out.append(('%s %s' % (suffix, what), _rebuild(raw, _reshape(suffix, fn)), True))
    # Extra and missing entries.
    out.append(('extra entry', _rebuild(raw, lambda a: a.update(extra=numpy.zeros(3))), True))
    out.append(('extra optimizer entry', _rebuild(
        raw, lambda a: a.update({'optimizer/evil/x': numpy.zeros(3)})), True))
    out.append(('missing out/b', _rebuild(raw, lambda a: a.pop(_key(a, 'params/out/b'))), True))
    out.append(('no parameters', _rebuild(raw, lambda a: [a.pop(k) for k in list(a)
                                                          if k.startswith('params/')]), True))
    # Hostile metadata.
    for name, edit in _hostile_metadata():
        out.append(('meta ' + name, _rebuild(raw, edit_meta=edit,
                                             forge=not name.startswith('digests')), True))
    out.append(('meta nested 100000 deep', _rebuild(
        raw, meta_text=lambda mt: _deep_json(mt, 100000)), True))
    out.append(('meta nested 60 deep', _rebuild(
        raw, meta_text=lambda mt: _deep_json(mt, 60)), True))
    out.append(('meta not UTF-8', _rebuild(raw, meta_text=lambda mt: b'\xff\xfe{'), True))
    out.append(('meta a list', _rebuild(raw, meta_text=lambda mt: b'[1, 2]'), True))
    out.append(('meta int8', _rebuild(raw, lambda a: a.update(
        meta=numpy.zeros(3, numpy.int8)), meta_text=None), True))
    # Zip bombs: an unknown 64 MiB member, and a carried state of 32 MiB (1 MiB streams).
    small = [(nm, d) for nm, d in ents]
    out.append(('zip bomb (unknown member)',
                _zip_with_bomb(small, 'bomb.npy', (1 << 24,)), True))
    out.append(('zip bomb (state/h)', _zip_with_bomb(
        [(nm, d) for nm, d in ents if nm != 'state/h.npy'], 'state/h.npy',
        (1, 1 << 20, 8)), True))
    # A member whose .npy header claims (10**12,) floats.
    head = io.BytesIO()
    numpy.lib.format.write_array_header_1_0(
        head, {'descr': '<f4', 'fortran_order': False, 'shape': (10 ** 12,)})
    out.append(('header claims 10**12 floats', _zip(
        [(nm, head.getvalue() + d[-64:] if nm == 'params/out/b.npy' else d)
         for nm, d in ents]), True))
    # Pickled members (object arrays).
    out.append(('pickled parameter', _rebuild(raw, lambda a: a.update(
        {'params/out/b': numpy.array([1, 'x', None], dtype=object)}), forge=False), True))
    out.append(('pickled meta', _zip([('meta.npy', _npy(
        numpy.array([{'format': 'x'}], dtype=object), allow_pickle=True))]
        + [e for e in ents if e[0] != 'meta.npy']), True))
    # Zip features numpy never writes.
    out.append(('compression method 99', _patch_headers(raw, (8, 10), 99), True))
    out.append(('compression method 14 (lzma)', _patch_headers(raw, (8, 10), 14), True))
    out.append(('encrypted flag', _patch_headers(raw, (6, 8), 1), True))
    out.append(('duplicate member', _zip(ents + [ents[-1]]), True))
    out.append(('text member', _zip(ents + [('readme.txt', b'hello')]), True))
    out.append(('npy version 9', _zip([(nm, d[:6] + b'\x09\x00' + d[8:]) if i == 1
                                       else (nm, d) for i, (nm, d) in enumerate(ents)]), True))
    out.append(('empty zip', _zip([]), True))
    out.append(('random bytes', bytes(rng.integers(0, 256, 4000, dtype=numpy.uint8)), True))
    out.append(('a plain .npy', _npy(numpy.zeros(4)), True))
    out.append(('empty file', b'', True))
    return out


def test_fuzzed_checkpoints_fail_clearly_or_behave_identically(original, no_pickle, tmp_path):
    mutants = _mutants(original)
    assert len(mutants) >= 200
    base, ctx = original['base'], original['ctx']
    tally = {'error': 0, 'identical': 0}
    for i, (name, data, must_fail) in enumerate(mutants):
        path = str(tmp_path / ('m%03d.npz' % i))
        with open(path, 'wb') as f:
            f.write(data)
        for use in USES:
            res = _outcome(use, path, ctx)
            if res[0] == 'error':
                assert path in res[1] or os.path.basename(path) in res[1], (name, use, res[1])
                tally['error'] += 1
            else:
                # A damaged part that sampling or evaluation never reads (optimizer state,
                # training metadata) may leave them working -- with identical results.
                assert not (must_fail and use in ('load', 'resume')), (
                    '%s: %s succeeded' % (name, use))
                assert _same(res, base[use]), ('%s: %s gave a different result' % (name, use))
                tally['identical'] += 1
    assert no_pickle == []
    # Most mutants are refused; the reordered/recompressed archives (and flips in bytes
    # nothing reads, e.g. zip timestamps) behave exactly like the original.
    print('fuzz outcomes over %d mutants x %d uses: %s' % (len(mutants), len(USES), tally))
    assert tally['error'] > 600 and tally['identical'] >= 16, tally


def test_refused_zip_bomb_is_never_inflated(original, tmp_path, monkeypatch):
    """The 64 MiB unknown member and the 32 MiB carried state are refused from their headers
    (and the metadata): no read of their data is attempted."""
    from seqdbr.core import serializers
    ents = _entries(original['raw'])
    reads = []
    real = serializers.NpzReader._read_member

    def spy(self, key, info):
        reads.append(key)
        return real(self, key, info)

    monkeypatch.setattr(serializers.NpzReader, '_read_member', spy)
    for name, mutant in (('bomb.npy', _zip_with_bomb(ents, 'bomb.npy', (1 << 24,))),
                         ('state/h.npy', _zip_with_bomb(
                             [(n, d) for n, d in ents if n != 'state/h.npy'], 'state/h.npy',
                             (1, 1 << 20, 8)))):
        p = tmp_path / 'bomb.npz'
        p.write_bytes(mutant)
        assert p.stat().st_size < 1 << 20          # small on disk
        reads.clear()
        with pytest.raises(Exception) as e:
            load_checkpoint(p)
        assert 'bomb.npz' in str(e.value)
        assert name[:-4] not in reads
        assert set(reads) <= {'meta'}              # only the small metadata was read
