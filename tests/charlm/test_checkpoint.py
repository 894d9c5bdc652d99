"""Char-RNN checkpoints: contents, no pickles, atomic writes, and clear errors on bad files."""
import json
import os
import zipfile

import numpy
import pytest

from seqdbr import optimizers
from seqdbr.charlm import checkpoint as ckpt_mod
from seqdbr.charlm.checkpoint import FORMAT_VERSION, load_checkpoint, save_checkpoint
from seqdbr.charlm.errors import CheckpointError
from seqdbr.charlm.model import CharRNN
from seqdbr.charlm.vocab import Vocabulary
from seqdbr.core import initializers
from seqdbr.core.serializers import serialize_to_dict
from seqdbr.rnn.bptt import bptt_update

TEXT = 'Hello, wörld!\r\n\u732b\U0001F40D\n'


def _trained(impl='nstep', model='lstm', steps=2):
    initializers.set_seed(0)
    vocab = Vocabulary.from_text(TEXT)
    m = CharRNN(len(vocab), rnn_size=8, num_layers=2, model=model, impl=impl)
    opt = optimizers.Adam(alpha=1e-2)
    opt.setup(m)
    ids = vocab.encode(TEXT * 3)
    x = ids[:24].reshape(2, 12)
    t = ids[1:25].reshape(2, 12)
    for _ in range(steps):
        bptt_update(m, opt, x, t)
    return m, opt, vocab


def test_round_trip_of_weights_optimizer_state_vocab_and_metadata(tmp_path):
    m, opt, vocab = _trained()
    path = tmp_path / 'c.npz'
    meta = {'progress': {'iteration': 2, 'epoch': 0}, 'rng': {'x': [1, 2, 2 ** 100]},
            'history': {'train_loss': [4.1, float('nan')]}}
    save_checkpoint(path, m, vocab, optimizer=opt, meta=meta)
    ck = load_checkpoint(path)
    assert ck.vocab == vocab and ck.iteration == 2
    assert ck.meta['format_version'] == FORMAT_VERSION
    assert ck.meta['model'] == m.config()
    assert ck.meta['rng'] == {'x': [1, 2, 2 ** 100]}                 # big ints survive
    assert numpy.isnan(ck.meta['history']['train_loss'][1])
    m2 = ck.build_model()
    for k, a in m.canonical_arrays().items():
        numpy.testing.assert_array_equal(m2.canonical_arrays()[k], a)
    opt2 = optimizers.Adam(alpha=1e-2)
    opt2.setup(m2)
    ck.load_optimizer_into(opt2, m2)
    s1, s2 = serialize_to_dict(opt), serialize_to_dict(opt2)
    assert sorted(s1) == sorted(s2) and opt2.t == 2
    for k in s1:
        numpy.testing.assert_array_equal(s1[k], s2[k])
    st = ck.carried_state()
    for k, a in m.get_state().items():
        numpy.testing.assert_array_equal(st[k], a)


def test_the_file_is_a_plain_npz_without_pickles(tmp_path):
    m, opt, vocab = _trained()
    path = save_checkpoint(tmp_path / 'c.npz', m, vocab, optimizer=opt)
    with numpy.load(path, allow_pickle=False) as z:
        for k in z.files:
            a = z[k]
            assert a.dtype != object
            if k.startswith('params/'):
                assert type(a) is numpy.ndarray and a.dtype == numpy.float32
        meta = json.loads(z['meta'].tobytes().decode('utf-8'))
    assert meta['vocab'] == vocab.to_json()
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            head = zf.read(info.filename)[:10]
            assert head.startswith(b'\x93NUMPY')            # .npy members only


def test_weights_load_into_the_other_implementation(tmp_path):
    for kind in ('lstm', 'gru'):
        m, _, vocab = _trained(model=kind)
        path = save_checkpoint(tmp_path / ('%s.npz' % kind), m, vocab)
        x = vocab.encode(TEXT)[None, :]
        m.reset_state()
        ref = m(x).array
        ck = load_checkpoint(path)
        other = ck.build_model(impl='stepwise')
        assert other.impl == 'stepwise'
        numpy.testing.assert_allclose(other(x).array, ref, rtol=1e-5, atol=1e-5)
        # And back: stepwise -> checkpoint -> n-step, the same function again (the weights
        # exactly; the LSTM biases may come back re-split as b_ih = b_ih + b_hh, b_hh = 0).
        path2 = save_checkpoint(tmp_path / ('%s-sw.npz' % kind), other, vocab)
        back = load_checkpoint(path2).build_model(impl='nstep')
        numpy.testing.assert_allclose(back(x).array, ref, rtol=1e-5, atol=1e-5)
        a, b = back.canonical_arrays(), m.canonical_arrays()
        for k in a:
            if '/b' not in k:
                numpy.testing.assert_array_equal(a[k], b[k])
        for l in range(2):
            bias = lambda arrs: sum(v for k, v in arrs.items()          # noqa: E731
                                    if k.startswith('rnn/%d/b' % l))
            if kind == 'lstm':
                numpy.testing.assert_array_equal(bias(a), bias(b))


def test_truncated_file_names_the_file(tmp_path):
    m, opt, vocab = _trained()
    path = save_checkpoint(tmp_path / 'c.npz', m, vocab, optimizer=opt)
    data = open(path, 'rb').read()
    for n in (len(data) // 2, 100, 0):
        bad = tmp_path / ('cut%d.npz' % n)
        bad.write_bytes(data[:n])
        with pytest.raises(CheckpointError) as e:
            load_checkpoint(bad)
        assert str(bad) in str(e.value)


def test_corrupt_bytes_are_detected(tmp_path):
    m, opt, vocab = _trained()
    path = save_checkpoint(tmp_path / 'c.npz', m, vocab, optimizer=opt)
    data = bytearray(open(path, 'rb').read())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo('params/out/W.npy')
    # Flip bytes inside the member's data (after its local header): the CRC check fails.
    start = info.header_offset + 30 + len(info.filename) + 200
    data[start:start + 8] = bytes(b ^ 0xFF for b in data[start:start + 8])
    bad = tmp_path / 'flipped.npz'
    bad.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match='flipped.npz'):
        load_checkpoint(bad)


def test_newer_format_version_names_both_versions(tmp_path, monkeypatch):
    m, _, vocab = _trained()
    monkeypatch.setattr(ckpt_mod, 'FORMAT_VERSION', FORMAT_VERSION + 4)
    path = save_checkpoint(tmp_path / 'future.npz', m, vocab)
    monkeypatch.setattr(ckpt_mod, 'FORMAT_VERSION', FORMAT_VERSION)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path)
    msg = str(e.value)
    assert 'format version %d' % (FORMAT_VERSION + 4) in msg
    assert 'up to %d' % FORMAT_VERSION in msg and 'future.npz' in msg and 'upgrade' in msg


def test_other_files_are_refused_clearly(tmp_path):
    with pytest.raises(CheckpointError, match='does not exist'):
        load_checkpoint(tmp_path / 'nope.npz')
    with pytest.raises(CheckpointError, match='is a directory'):
        load_checkpoint(tmp_path)
    numpy.savez(tmp_path / 'plain.npz', a=numpy.zeros(3))
    with pytest.raises(CheckpointError, match="not a seqdbr char-RNN checkpoint"):
        load_checkpoint(tmp_path / 'plain.npz')
    numpy.savez(tmp_path / 'badmeta.npz', meta=numpy.frombuffer(b'{"format": 1', numpy.uint8))
    with pytest.raises(CheckpointError, match='not valid JSON'):
        load_checkpoint(tmp_path / 'badmeta.npz')


def test_wrong_shapes_are_listed(tmp_path):
    m, _, vocab = _trained()
    path = save_checkpoint(tmp_path / 'c.npz', m, vocab)
    ck = load_checkpoint(path)
    ck.params['out/b'] = ck.params['out/b'][:3]
    del ck.params['rnn/1/W_hh']
    with pytest.raises(CheckpointError) as e:
        ck.build_model()
    assert 'rnn/1/W_hh' in str(e.value) and 'out/b' in str(e.value) and 'c.npz' in str(e.value)


def test_non_finite_weights_are_reported_with_their_names(tmp_path):
    m, _, vocab = _trained()
    m.rnn[1].W_hh.array[2, :3] = numpy.nan
    m.out.b.array[0] = numpy.inf
    ck = load_checkpoint(save_checkpoint(tmp_path / 'nan.npz', m, vocab))
    with pytest.raises(CheckpointError) as e:
        ck.check_finite()
    msg = str(e.value)
    assert 'rnn/1/W_hh (3 of' in msg and 'out/b (1 of' in msg and 'nan.npz' in msg


def test_a_failed_save_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    m, opt, vocab = _trained()
    path = save_checkpoint(tmp_path / 'latest.npz', m, vocab, optimizer=opt,
                           meta={'progress': {'iteration': 2}})
    before = open(path, 'rb').read()
    real_savez = numpy.savez

    def dying_savez(f, *args, **kw):
        f.write(b'PK\x03\x04 half a zip')
        raise OSError('disk full')

    monkeypatch.setattr(numpy, 'savez', dying_savez)
    m.reset_state()
    bptt_update(m, opt, vocab.encode(TEXT)[None, :-1], vocab.encode(TEXT)[None, 1:])
    with pytest.raises(OSError, match='disk full'):
        save_checkpoint(path, m, vocab, optimizer=opt, meta={'progress': {'iteration': 3}})
    monkeypatch.setattr(numpy, 'savez', real_savez)
    assert open(path, 'rb').read() == before
    assert sorted(os.listdir(tmp_path)) == ['latest.npz']          # no temp file left
    assert load_checkpoint(path).iteration == 2


def test_metadata_must_be_json(tmp_path):
    m, _, vocab = _trained()
    with pytest.raises(TypeError, match='JSON'):
        save_checkpoint(tmp_path / 'c.npz', m, vocab, meta={'bad': object()})
    assert not os.listdir(tmp_path)


def test_optimizer_state_across_implementations(tmp_path):
    for kind in ('gru', 'lstm'):
        m, opt, vocab = _trained(model=kind)
        ck = load_checkpoint(save_checkpoint(tmp_path / 'c.npz', m, vocab, optimizer=opt))
        assert 'rnn/1/W_hh/m' in ck.optimizer_state                   # canonical names
        sw = ck.build_model(impl='stepwise')
        o = optimizers.Adam(alpha=1e-2)
        o.setup(sw)
        if list(sw.canonical_params()) != list(m.canonical_params()):
            # The LSTM bias layouts differ: the state cannot move, and the error says what to do.
            with pytest.raises(CheckpointError, match="resume with --impl nstep"):
                ck.load_optimizer_into(o, sw)
            continue
        ck.load_optimizer_into(o, sw)
        assert o.t == opt.t
        numpy.testing.assert_array_equal(sw.rnn[1].lateral.W.update_rule.state['m'],
                                         m.rnn[1].W_hh.update_rule.state['m'])
        # A stepwise run's checkpoint holds the same optimizer keys as an n-step one.
        ck2 = load_checkpoint(save_checkpoint(tmp_path / 'sw.npz', sw, vocab, optimizer=o))
        assert sorted(ck2.optimizer_state) == sorted(ck.optimizer_state)
        for k, a in ck.optimizer_state.items():
            numpy.testing.assert_array_equal(ck2.optimizer_state[k], a)


def test_optimizer_state_errors(tmp_path):
    m, opt, vocab = _trained()
    ck = load_checkpoint(save_checkpoint(tmp_path / 'c.npz', m, vocab, optimizer=opt))
    fresh = ck.build_model()
    weights_only = load_checkpoint(save_checkpoint(tmp_path / 'w.npz', m, vocab))
    o = optimizers.Adam()
    o.setup(fresh)
    with pytest.raises(CheckpointError, match='no optimizer state'):
        weights_only.load_optimizer_into(o, fresh)
    sgd = optimizers.SGD()
    sgd.setup(fresh)
    with pytest.raises(CheckpointError, match='does not fit SGD'):
        ck.load_optimizer_into(sgd, fresh)


@pytest.mark.parametrize('edit, needle', [
    (lambda o: setattr(o.hyperparam, 'beta1', 1.0), 'beta1 must be in [0, 1), got 1.0'),
    (lambda o: o.target.embed.W.update_rule.state['v'].__isub__(1.0),
     'Adam state v of /embed/W has negative entries'),
])
def test_loaded_optimizer_values_are_checked(tmp_path, edit, needle):
    # No train section: the load-time checks cannot know the optimizer, so the values are
    # checked once they are in the optimizer.
    m, opt, vocab = _trained()
    edit(opt)
    ck = load_checkpoint(save_checkpoint(tmp_path / 'c.npz', m, vocab, optimizer=opt))
    fresh = ck.build_model()
    o = optimizers.Adam()
    o.setup(fresh)
    with pytest.raises(CheckpointError, match='c.npz') as e:
        ck.load_optimizer_into(o, fresh)
    assert needle in str(e.value) and 'optimizer values that Adam cannot use' in str(e.value)


def test_non_finite_hyperparameters_are_refused_at_load(tmp_path):
    m, opt, vocab = _trained()
    opt.hyperparam.eps = float('inf')
    with pytest.raises(CheckpointError, match=r'c.npz: the checkpoint holds optimizer values '
                                              r'that cannot be used: eps = inf'):
        load_checkpoint(save_checkpoint(tmp_path / 'c.npz', m, vocab, optimizer=opt))


@pytest.mark.gpu
def test_gpu_trained_checkpoint_loads_on_the_cpu(tmp_path):
    m, opt, vocab = _trained()
    m.to_device('gpu')
    ids = vocab.encode(TEXT * 2)
    import cupy
    x = cupy.asarray(ids[:20].reshape(2, 10))
    t = cupy.asarray(ids[1:21].reshape(2, 10))
    bptt_update(m, opt, x, t)
    path = save_checkpoint(tmp_path / 'gpu.npz', m, vocab, optimizer=opt)
    ck = load_checkpoint(path)
    cpu = ck.build_model()
    assert cpu.xp is numpy
    for k, a in m.canonical_arrays().items():
        numpy.testing.assert_array_equal(cpu.canonical_arrays()[k], cupy.asnumpy(a))
    o = optimizers.Adam(alpha=1e-2)
    o.setup(cpu)
    ck.load_optimizer_into(o, cpu)
