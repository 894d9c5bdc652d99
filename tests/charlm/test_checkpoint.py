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


# -- every refusal in full, from crafted files (mutation-testing survivors) ---------------------

def _saved_arrays(tmp_path):
    from seqdbr.core.serializers import load_npz_dict
    m, opt, vocab = _trained()
    path = save_checkpoint(tmp_path / 'good.npz', m, vocab, optimizer=opt)
    arrays = load_npz_dict(path)
    return arrays, json.loads(arrays['meta'].tobytes().decode('utf-8'))


def _write(tmp_path, name, arrays, meta=None):
    from seqdbr.core.serializers import save_npz_dict
    arrays = dict(arrays)
    if meta is not None:
        arrays['meta'] = numpy.frombuffer(json.dumps(meta).encode('utf-8'), numpy.uint8).copy()
    p = tmp_path / name
    save_npz_dict(p, arrays)
    return str(p)


def _refusal(path):
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path)
    return str(e.value)


def test_missing_path_and_directory_messages(tmp_path):
    p = str(tmp_path / 'nope.npz')
    assert _refusal(p) == ('checkpoint %s does not exist; pass the path of a .npz file '
                           'written by the trainer (e.g. OUT/latest.npz or OUT/best.npz)' % p)
    assert _refusal(str(tmp_path)) == (
        '%s is a directory; pass the checkpoint file inside it (e.g. %s)'
        % (tmp_path, os.path.join(str(tmp_path), 'latest.npz')))
    cut = tmp_path / 'cut.npz'
    cut.write_bytes(b'PK\x03\x04 truncated')
    msg = _refusal(str(cut))
    assert msg.startswith('%s is not a readable .npz archive' % cut)
    assert msg.endswith('; the checkpoint cannot be used (if a run was killed while copying '
                        'it, use the other checkpoint of the run, latest.npz or best.npz)')


def test_metadata_refusals_in_full(tmp_path):
    arrays, meta = _saved_arrays(tmp_path)
    no_meta = {k: v for k, v in arrays.items() if k != 'meta'}
    p = _write(tmp_path, 'nometa.npz', no_meta)
    names = ', '.join(sorted(no_meta)[:10])
    assert _refusal(p) == ("%s is not a seqdbr char-RNN checkpoint: it has no 'meta' entry "
                           '(entries: %s)' % (p, names))
    p = _write(tmp_path, 'empty.npz', {'meta': numpy.zeros((2, 2), numpy.uint8)})
    assert _refusal(p) == ("checkpoint %s: the 'meta' entry must be a 1-D uint8 array of JSON "
                           'text, got uint8 (2, 2); the file is corrupt' % p)
    p = _write(tmp_path, 'int.npz', {'meta': numpy.zeros(3, numpy.int32)})
    assert _refusal(p) == ("checkpoint %s: the 'meta' entry must be a 1-D uint8 array of JSON "
                           'text, got int32 (3,); the file is corrupt' % p)
    for fmt_meta, shown in (({'format': 'other'}, "'other'"), ([1, 2], 'None')):
        p = _write(tmp_path, 'fmt.npz', arrays, fmt_meta)
        assert _refusal(p) == ('%s is not a seqdbr char-RNN checkpoint (metadata format %s, '
                               "expected 'seqdbr.charlm.checkpoint')" % (p, shown))
    for bad in (0, True, '1', None):
        p = _write(tmp_path, 'ver.npz', arrays, dict(meta, format_version=bad))
        assert _refusal(p) == '%s: invalid format_version %r; the file is corrupt' % (p, bad)
    p = _write(tmp_path, 'v1.npz', arrays, dict(meta, format_version=1))
    assert load_checkpoint(p).meta['format_version'] == 1
    p = _write(tmp_path, 'v9.npz', arrays, dict(meta, format_version=9, seqdbr_version='9.0'))
    import seqdbr
    assert _refusal(p) == (
        '%s uses checkpoint format version 9 (written by seqdbr 9.0), but this seqdbr %s '
        'reads format versions up to %d; upgrade seqdbr to load it'
        % (p, getattr(seqdbr, '__version__', 'unknown'), FORMAT_VERSION))
    p = _write(tmp_path, 'v9b.npz', arrays,
               {k: v for k, v in dict(meta, format_version=9).items() if k != 'seqdbr_version'})
    assert '(written by seqdbr ?)' in _refusal(p)
    for key in ('model', 'vocab'):
        p = _write(tmp_path, 'no%s.npz' % key, arrays, dict(meta, **{key: [1]}))
        assert _refusal(p) == ('%s: the metadata lacks the %r section; the file is corrupt'
                               % (p, key))


def test_parameter_refusals_in_full(tmp_path):
    arrays, meta = _saved_arrays(tmp_path)
    bad = dict(arrays)
    bad['params/out/b'] = bad['params/out/b'].astype(numpy.int64)
    p = _write(tmp_path, 'intparam.npz', bad)
    assert _refusal(p) == (
        'checkpoint %s: its parameters do not fit the stored model configuration (%s): '
        'out/b has dtype int64, expected float32; the file is corrupt'
        % (p, "vocab_size=15, rnn_size=8, num_layers=2, dropout=0.0, model='lstm', "
              "impl='nstep', forget_bias=0.0"))
    only_meta = {k: v for k, v in arrays.items() if not k.startswith('params/')}
    p = _write(tmp_path, 'noparams.npz', only_meta)
    assert _refusal(p) == '%s holds no parameters; the file is corrupt' % p
    V, H = meta['model']['vocab_size'], meta['model']['rnn_size']
    p = _write(tmp_path, 'vsize.npz', arrays,
               dict(meta, model=dict(meta['model'], vocab_size=V + 1)))
    msg = _refusal(p)                    # the stored shapes contradict the configuration
    assert msg.startswith('checkpoint %s: its parameters do not fit the stored model '
                          'configuration (vocab_size=%d' % (p, V + 1))
    assert 'embed/W has shape (%d, %d), expected (%d, %d)' % (V, H, V + 1, H) in msg
    for name in ('embed/W', 'out/W', 'out/b'):
        bad = dict(arrays)
        bad['params/' + name] = bad['params/' + name][:-1]
        p = _write(tmp_path, 'shape.npz', bad)
        want = (V,) if name == 'out/b' else (V, H)
        got = (V - 1,) if name == 'out/b' else (V - 1, H)
        assert _refusal(p) == (
            "checkpoint %s: its parameters do not fit the stored model configuration "
            "(vocab_size=%r, rnn_size=%r, num_layers=2, dropout=0.0, model='lstm', "
            "impl='nstep', forget_bias=0.0): %s has shape %s, expected %s; the file is corrupt"
            % (p, V, H, name, got, want))


def test_properties_and_repr(tmp_path):
    arrays, meta = _saved_arrays(tmp_path)
    legacy = dict(meta, model={k: v for k, v in meta['model'].items() if k != 'forget_bias'},
                  progress={'iteration': 12, 'epoch': 3})
    ck = load_checkpoint(_write(tmp_path, 'legacy.npz', arrays, legacy))
    assert ck.model_config['forget_bias'] == ckpt_mod.LEGACY_FORGET_BIAS == 1.0
    assert 'forget_bias' not in ck.meta['model']          # the stored metadata is untouched
    assert ck.iteration == 12 and ck.epoch == 3
    assert repr(ck) == ('Checkpoint(%r, model=%r, iteration=12, vocab_size=%d)'
                        % (ck.path, ck.model_config, len(ck.vocab)))
    ck = load_checkpoint(_write(tmp_path, 'plain.npz', arrays, meta))
    assert ck.iteration == 0 and ck.epoch == 0              # weights-only: no progress
    bad_vocab = dict(meta, vocab={'mode': 'nonsense'})
    ck = ckpt_mod.Checkpoint('x.npz', bad_vocab, {}, {}, {})
    with pytest.raises(CheckpointError) as e:
        ck.vocab
    assert str(e.value).startswith('checkpoint x.npz: the stored vocabulary is invalid (')
    assert str(e.value).endswith('); the file is corrupt')


def test_check_finite_messages_in_full(tmp_path):
    m, opt, vocab = _trained()
    m.out.b.array[:2] = numpy.nan
    m.out.W.array[0, 0] = numpy.inf
    path = save_checkpoint(tmp_path / 'nan.npz', m, vocab, optimizer=opt)
    ck = load_checkpoint(path)
    with pytest.raises(CheckpointError) as e:
        ck.check_finite()
    assert str(e.value) == (
        'checkpoint %s: non-finite (NaN or inf) weights in out/W (1 of %d entries), out/b '
        '(2 of %d entries). These weights cannot produce text; the run that wrote them '
        'diverged or the file was altered. Use an earlier checkpoint (e.g. best.npz) or '
        'train again with a lower --learning-rate.'
        % (path, m.out.W.array.size, m.out.b.array.size))
    m, opt, vocab = _trained()
    m(numpy.zeros((2, 3), numpy.int32))                    # a carried state to store
    path = save_checkpoint(tmp_path / 'state.npz', m, vocab, optimizer=opt)
    ck = load_checkpoint(path)
    ck.check_finite(training_state=True)                   # all finite: no error
    key = sorted(k for k in ck.optimizer_state if k.endswith('/m'))[0]
    ck.optimizer_state[key][...] = numpy.nan
    ck.state['h'][0, 0, 0] = numpy.inf
    ck.check_finite()                                      # weights alone are fine
    with pytest.raises(CheckpointError) as e:
        ck.check_finite(training_state=True)
    assert str(e.value) == (
        'checkpoint %s: non-finite (NaN or inf) training state in optimizer/%s (%d of %d '
        'entries), state/h (1 of %d entries); the file was altered or damaged, so the run '
        'cannot continue exactly. Resume from another checkpoint of the run (best.npz or '
        'latest.npz), or start a new run from these weights with --init-from.'
        % (path, key, ck.optimizer_state[key].size, ck.optimizer_state[key].size,
           ck.state['h'].size))


def test_save_metadata_fields(tmp_path):
    import datetime
    import seqdbr
    m, _, vocab = _trained()
    path = save_checkpoint(tmp_path / 'c.npz', m, vocab, meta={'note': 'caf\u00e9 \u732b'})
    ck = load_checkpoint(path)
    assert ck.meta['note'] == 'caf\u00e9 \u732b'
    assert ck.meta['seqdbr_version'] == seqdbr.__version__
    created = datetime.datetime.fromisoformat(ck.meta['created'])
    assert created.utcoffset() == datetime.timedelta(0)          # UTC, with its offset
    assert abs((datetime.datetime.now(datetime.timezone.utc) - created).total_seconds()) < 600
    raw = load_npz_dict_raw(path)['meta'].tobytes()
    assert max(raw) < 128 and '\\u732b' in raw.decode('ascii')   # ASCII-escaped JSON
    assert set(ck.carried_state()) == {'h', 'c'}
    no_state = load_checkpoint(save_checkpoint(tmp_path / 'n.npz', m, vocab,
                                               carried_state=False))
    assert no_state.carried_state() is None
    with pytest.raises(TypeError) as e:
        save_checkpoint(tmp_path / 'd.npz', m, vocab, meta={'bad': object()})
    assert str(e.value) == ('checkpoint metadata must be JSON-serializable: Object of type '
                            'object is not JSON serializable')


def load_npz_dict_raw(path):
    from seqdbr.core.serializers import load_npz_dict
    return load_npz_dict(path)


def test_rename_longest_prefix_wins():
    out = ckpt_mod._rename({'a/b/c': 1, 'a/x': 2, 'z': 3}, {'a': 'A', 'a/b': 'B'})
    assert out == {'B/c': 1, 'A/x': 2, 'z': 3}


def test_build_and_load_errors_in_full(tmp_path):
    m, opt, vocab = _trained()
    path = save_checkpoint(tmp_path / 'c.npz', m, vocab, optimizer=opt)
    ck = load_checkpoint(path)
    ck.meta['model'] = dict(ck.meta['model'], num_layers=0)
    with pytest.raises(CheckpointError) as e:
        ck.build_model()
    assert str(e.value).startswith(
        'checkpoint %s: the stored model configuration %r is invalid (' % (path, ck.meta['model']))
    ck = load_checkpoint(path)
    del ck.params['out/b']
    with pytest.raises(CheckpointError) as e:
        ck.build_model()
    assert str(e.value).startswith('checkpoint %s: ' % path)
    assert str(e.value).endswith('; the file is corrupt or was not written by the char-RNN '
                                 'trainer')
    ck = load_checkpoint(path)
    assert ck.build_model(device='cpu').xp is numpy
    weights_only = load_checkpoint(save_checkpoint(tmp_path / 'w.npz', m, vocab))
    o = optimizers.Adam()
    fresh = ck.build_model()
    o.setup(fresh)
    with pytest.raises(CheckpointError) as e:
        weights_only.load_optimizer_into(o, fresh)
    assert str(e.value) == (
        'checkpoint %s: it holds no optimizer state (a weights-only checkpoint); use '
        '--init-from to start a new run from its weights' % weights_only.path)
    sgd = optimizers.SGD()
    sgd.setup(fresh)
    with pytest.raises(CheckpointError) as e:
        ck.load_optimizer_into(sgd, fresh)
    assert str(e.value).startswith(
        'checkpoint %s: the optimizer state does not fit SGD: could not load the state from '
        '%s:\n  missing keys' % (path, path))


def test_optimizer_state_of_another_bias_layout_names_the_impl(tmp_path):
    """A state stored with separate b_ih/b_hh recurrent biases does not fit a model with one
    bias per layer: the message lists both sets and the impl to resume with."""
    m, opt, vocab = _trained()
    ck = load_checkpoint(save_checkpoint(tmp_path / 'c.npz', m, vocab, optimizer=opt))
    moved = {}
    for k, v in ck.optimizer_state.items():
        for layer in ('0', '1'):
            pre = 'rnn/%s/b/' % layer
            if k.startswith(pre):
                moved['rnn/%s/b_ih/' % layer + k[len(pre):]] = v
                moved['rnn/%s/b_hh/' % layer + k[len(pre):]] = v
                break
        else:
            moved[k] = v
    ck.optimizer_state = moved
    ck.meta['model'] = dict(ck.meta['model'], impl='stepwise')
    model = load_checkpoint(ck.path).build_model()
    o = optimizers.Adam()
    o.setup(model)
    with pytest.raises(CheckpointError) as e:
        ck.load_optimizer_into(o, model)
    assert str(e.value) == (
        'checkpoint %s: its optimizer state has the recurrent weights rnn/0/b_hh, rnn/0/b_ih, '
        'rnn/1/b_hh, rnn/1/b_ih, but this nstep model has rnn/0/b, rnn/1/b (the stepwise and '
        'nstep layers keep the LSTM bias differently); resume with --impl stepwise' % ck.path)


def test_empty_archive_and_unreadable_file_messages(tmp_path, monkeypatch):
    from seqdbr.core import serializers
    p = _write(tmp_path, 'nothing.npz', {})
    assert _refusal(p) == ("%s is not a seqdbr char-RNN checkpoint: it has no 'meta' entry "
                           '(entries: none)' % p)
    bad = tmp_path / 'badjson.npz'
    numpy.savez(bad, meta=numpy.frombuffer(b'{"format": 1', numpy.uint8))
    msg = _refusal(str(bad))
    assert msg.startswith('checkpoint %s: the metadata is not valid JSON (' % bad)
    assert msg.endswith('); the file is corrupt')

    def denied(path):
        raise PermissionError(13, 'Permission denied', path)

    monkeypatch.setattr(ckpt_mod, '_read_checked', denied)
    assert _refusal(p) == ("cannot read checkpoint %s: [Errno 13] Permission denied: %r"
                           % (p, p))
