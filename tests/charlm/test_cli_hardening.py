"""The CLI error catalogue of issue 14: each reported case through the programs a user runs
(``sample_main``, ``eval_main``, ``train_main --resume``) gives exit status 1 or 2 and one
``error:`` line naming the file and the problem (never a traceback, never blaming a flag the
user did not give), and leaves nothing written. Damage that the fuzz test
(test_fuzz_checkpoint.py) produces at random is made here on purpose, one case per report."""
import io
import json
import os
import pathlib
import time
import zipfile

import numpy
import pytest

from seqdbr.charlm.checkpoint_meta import array_digest
from seqdbr.charlm.cli import eval_main, sample_main, train_main

TINY = ['--rnn-size', '8', '--num-layers', '1', '--batch-size', '3', '--seq-length', '5',
        '--max-iters', '4', '--eval-every', '2', '--no-progress']


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp('catalogue')
    rng = numpy.random.default_rng(0)
    words = 'the cat sat on a mat while dogs ran far away from home'.split()
    corpus = d / 'c.txt'
    corpus.write_text(' '.join(rng.choice(words, 400)) + '\n', encoding='utf-8')
    assert train_main(['--corpus', str(corpus), '--out', str(d / 'run')] + TINY) == 0
    return corpus, d / 'run' / 'latest.npz'


def _arrays_and_meta(src):
    with numpy.load(src, allow_pickle=False) as z:
        d = {k: z[k] for k in z.files}
    return d, json.loads(d.pop('meta').tobytes().decode('utf-8'))


def _write(dst, arrays, meta, forge=True, meta_bytes=None):
    dst = pathlib.Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if forge:      # a deliberate editor re-records the digests; the checks behind must hold
        meta['digests'] = {k: array_digest(v) for k, v in arrays.items()}
    text = meta_bytes if meta_bytes is not None else json.dumps(meta).encode('utf-8')
    numpy.savez(dst, meta=numpy.frombuffer(text, numpy.uint8), **arrays)
    return str(dst)


def _edit(src, dst, meta_edit=None, array_edit=None, **kw):
    arrays, meta = _arrays_and_meta(src)
    if meta_edit:
        meta_edit(meta)
    if array_edit:
        array_edit(arrays)
    return _write(dst, arrays, meta, **kw)


def _err(capsys, main, args, path, code=1):
    rc = main(args)
    cap = capsys.readouterr()
    assert rc == code, cap.err
    assert 'Traceback' not in cap.err and cap.err.count('\n') == 1, cap.err
    assert ': error: ' in cap.err and str(path) in cap.err, cap.err
    return cap.err


def _all_refuse(capsys, run, path, needle):
    """sample, eval and resume each refuse ``path`` with ``needle`` in the message, fast,
    writing nothing."""
    corpus, _ = run
    folder = sorted(os.listdir(os.path.dirname(path)))
    for main, args in ((sample_main, [path, '--length', '5', '--seed', '1']),
                       (eval_main, [path, '--corpus', str(corpus)]),
                       (train_main, ['--resume', path, '--max-iters', '8', '--no-progress'])):
        t0 = time.perf_counter()
        err = _err(capsys, main, args, path)
        assert needle in err, err
        assert time.perf_counter() - t0 < 5
    assert sorted(os.listdir(os.path.dirname(path))) == folder


def _set(key, value):
    def edit(meta):
        d = meta
        parts = key.split('.')
        for k in parts[:-1]:
            d = d[k]
        d[parts[-1]] = value
    return edit


# -- 1. resource exhaustion ------------------------------------------------------------------

@pytest.mark.parametrize('key, value, needle', [
    ('model.num_layers', 1000000, 'num_layers = 1000000 (must be an integer in 1..256)'),
    ('model.rnn_size', 10 ** 9, 'rnn_size = 1000000000 (must be an integer in 1..65536)'),
    ('model.vocab_size', 10 ** 8, 'vocab_size = 100000000'),
    ('model.rnn_size', 16, 'embed/W has shape'),
])
def test_implausible_model_configuration_is_refused_before_building(run, tmp_path, capsys,
                                                                     key, value, needle):
    def edit(meta):
        _set(key, value)(meta)
        _set(key.replace('model.', 'train.'), value)(meta)    # consistent with each other
    p = _edit(run[1], tmp_path / 'x' / 'm.npz', meta_edit=edit)
    _all_refuse(capsys, run, p, needle)


def test_member_claiming_10_12_elements(run, tmp_path, capsys):
    arrays, meta = _arrays_and_meta(run[1])
    p = _write(tmp_path / 'x' / 'm.npz', arrays, meta)
    with zipfile.ZipFile(p) as z:
        members = [(i.filename, z.read(i)) for i in z.infolist()]
    head = io.BytesIO()
    numpy.lib.format.write_array_header_1_0(
        head, {'descr': '<f4', 'fortran_order': False, 'shape': (10 ** 12,)})
    with zipfile.ZipFile(p, 'w') as z:
        for name, data in members:
            if name == 'params/out/b.npy':
                data = head.getvalue() + arrays['params/out/b'].tobytes()
            z.writestr(name, data)
    _all_refuse(capsys, run, p, "entry 'params/out/b' declares shape (1000000000000,)")


def test_zip_bomb_and_unknown_member(run, tmp_path, capsys):
    arrays, meta = _arrays_and_meta(run[1])
    p = _write(tmp_path / 'x' / 'm.npz', arrays, meta)
    head = io.BytesIO()
    numpy.lib.format.write_array_header_1_0(
        head, {'descr': '<f4', 'fortran_order': False, 'shape': (1 << 24,)})
    with zipfile.ZipFile(p, 'a') as z:
        zi = zipfile.ZipInfo('bomb.npy')
        zi.compress_type = zipfile.ZIP_DEFLATED
        with z.open(zi, 'w', force_zip64=True) as f:
            f.write(head.getvalue())
            for _ in range(64):
                f.write(bytes(1 << 20))
    assert os.path.getsize(p) < 1 << 20
    _all_refuse(capsys, run, p, "unknown entries 'bomb'")


# -- 2. tracebacks -> clear errors -----------------------------------------------------------

def test_unsupported_compression_method(run, tmp_path, capsys):
    p = pathlib.Path(_edit(run[1], tmp_path / 'x' / 'm.npz'))
    data = bytearray(p.read_bytes())
    for sig, off in ((b'PK\x03\x04', 8), (b'PK\x01\x02', 10)):
        i = data.find(sig)
        while i >= 0:
            data[i + off:i + off + 2] = (99).to_bytes(2, 'little')
            i = data.find(sig, i + 4)
    p.write_bytes(bytes(data))
    _all_refuse(capsys, run, str(p), 'uses zip compression method 99')


def test_deeply_nested_metadata(run, tmp_path, capsys):
    arrays, meta = _arrays_and_meta(run[1])
    text = ('{"x": ' + '[' * 100000 + ']' * 100000 + ', ' + json.dumps(meta)[1:]).encode()
    p = _write(tmp_path / 'x' / 'm.npz', arrays, meta, meta_bytes=text)
    _all_refuse(capsys, run, p, 'nested too deeply')


@pytest.mark.parametrize('key, value, needle', [
    ('progress', [], 'holds progress = [], which is not a JSON object'),
    ('progress.elapsed', 'ten', 'holds progress.elapsed = "ten", which must be a finite'),
    ('corpus', [], 'holds corpus = [], which is not a JSON object'),
    ('rng.dropout', {'bit_generator': 'PCG64'}, 'rng.dropout'),
    ('history.train_loss', [1.0], 'is not one loss per iteration'),
    ('batcher.iteration', 99, 'batcher.iteration = 99, which differs from progress'),
    # 4. a bad *stored* option: "the checkpoint holds", not "--batch-size must be"
    ('train.batch_size', 0, 'holds train.batch_size = 0, which must be an integer >= 1'),
    ('train.device', 'tpu', "holds train.device = \"tpu\", which must be 'cpu'"),
    ('train.learning_rate', -1, 'holds train.learning_rate = -1'),
    ('batcher.num_tokens', 7, 'holds batcher.num_tokens = 7, which'),
    # 10. an initial loss of -1 is not a loss (it made every step "diverge")
    ('progress.initial_loss', -1, 'holds progress.initial_loss = -1, which must be a finite '
                                  'number in [0'),
])
def test_wrong_types_and_values_in_the_resume_metadata(run, tmp_path, capsys, key, value,
                                                        needle):
    p = _edit(run[1], tmp_path / 'x' / 'm.npz', meta_edit=_set(key, value))
    err = _err(capsys, train_main, ['--resume', p, '--max-iters', '8', '--no-progress'], p)
    assert needle in err and 'the file is corrupt or was edited' in err
    assert '--batch-size must' not in err and 'diverged' not in err
    assert sorted(os.listdir(os.path.dirname(p))) == ['m.npz']


@pytest.mark.parametrize('suffix, make, needle', [
    ('optimizer/t', lambda a: numpy.asarray(a, numpy.complex128),
     'optimizer entry t is complex128 (), expected a scalar integer'),
    ('hyperparam/beta1', lambda a: numpy.asarray(True),
     'optimizer entry hyperparam/beta1 is bool (), expected a scalar float'),
    # 3. an int32 beta1 resumed as 0.0
    ('hyperparam/beta1', lambda a: numpy.asarray(0, numpy.int32),
     'optimizer entry hyperparam/beta1 is int32 (), expected a scalar float'),
    ('hyperparam/beta1', lambda a: numpy.asarray(1.0),
     'beta1 must be in [0, 1), got 1.0'),
    # 3. integer hidden state and optimizer state were cast silently
    ('state/h', lambda a: a.astype(numpy.int32), 'the carried state h is int32'),
    ('embed/W/m', lambda a: a.astype(numpy.int64), 'optimizer state embed/W/m is int64'),
    ('embed/W/v', lambda a: -numpy.abs(a) - 1, 'embed/W/v holds negative entries'),
])
def test_optimizer_and_state_values_of_the_wrong_kind(run, tmp_path, capsys, suffix, make,
                                                      needle):
    def edit(arrays):
        k = next(k for k in sorted(arrays) if k.endswith(suffix))
        arrays[k] = make(arrays[k])
    p = _edit(run[1], tmp_path / 'x' / 'm.npz', array_edit=edit)
    err = _err(capsys, train_main, ['--resume', p, '--max-iters', '8', '--no-progress'], p)
    assert needle in err, err


def test_swapped_members_are_caught_by_the_digests(run, tmp_path, capsys):
    def swap(a):
        a['params/embed/W'], a['params/out/W'] = a['params/out/W'], a['params/embed/W']
    p = _edit(run[1], tmp_path / 'x' / 'm.npz', array_edit=swap, forge=False)
    _all_refuse(capsys, run, p, 'differs from what was written (SHA-256 mismatch)')


# -- 9. an unreadable corpus ------------------------------------------------------------------

def test_unreadable_corpus(run, tmp_path, capsys, monkeypatch):
    corpus, ckpt = run
    real = pathlib.Path.read_bytes

    def read_bytes(self):
        if self.name == 'locked.txt':
            raise PermissionError(13, 'Permission denied', str(self))
        return real(self)

    monkeypatch.setattr(pathlib.Path, 'read_bytes', read_bytes)
    locked = tmp_path / 'locked.txt'
    locked.write_text(corpus.read_text())
    err = _err(capsys, eval_main, [str(ckpt), '--corpus', str(locked)], locked)
    assert 'permission denied' in err
    out = tmp_path / 'out'
    err = _err(capsys, train_main, ['--corpus', str(locked), '--out', str(out)] + TINY, locked)
    assert 'permission denied' in err and not out.exists()


def test_stored_corpus_naming_a_device_is_not_read(run, tmp_path, capsys):
    """eval without --corpus reads the corpus the checkpoint names: /dev/zero would never end."""
    p = _edit(run[1], tmp_path / 'x' / 'm.npz', meta_edit=_set('corpus.spec', '/dev/zero'))
    err = _err(capsys, eval_main, [p], '/dev/zero')
    assert 'is a device or socket' in err


def test_vocabulary_of_surrogates(run, tmp_path, capsys):
    """A vocabulary of lone surrogates made sampling crash while writing (UnicodeEncodeError)."""
    p = _edit(run[1], tmp_path / 'x' / 'm.npz', meta_edit=lambda m: m['vocab'].update(
        symbols=[0xD800 + i for i in range(len(m['vocab']['symbols']))]))
    _all_refuse(capsys, run, p, 'surrogate code points')
