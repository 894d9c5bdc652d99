"""save_npz / load_npz and the dictionary (de)serializers: round trips, strict errors,
corrupt files, pickle refusal, atomic writes."""
import os
import zipfile

import numpy
import pytest

from seqdbr.core import initializers as I
from seqdbr.core import serializers as S
from seqdbr.core.link import Chain, ChainList, Link
from seqdbr.core.variable import Parameter


class Leaf(Link):
    def __init__(self, n_in, n_out, lazy=False):
        super().__init__()
        with self.init_scope():
            self.W = Parameter(I.Normal(1.0), None if lazy else (n_out, n_in))
            self.b = Parameter(I.Normal(1.0), (n_out,))


class Model(Chain):
    def __init__(self, lazy=False):
        super().__init__()
        with self.init_scope():
            self.l1 = Leaf(3, 4, lazy=lazy)
            self.blocks = ChainList(Leaf(4, 4), Leaf(4, 2))
        self.add_persistent('step', 0)
        self.add_persistent('lr', 0.5)
        self.add_persistent('tag', 'init')
        self.add_persistent('done', False)
        self.add_persistent('stats', numpy.zeros(3, numpy.float32))


KEYS = {'step', 'lr', 'tag', 'done', 'stats', 'l1/W', 'l1/b', 'blocks/0/W', 'blocks/0/b',
        'blocks/1/W', 'blocks/1/b'}


def _trained_model(seed=0):
    I.set_seed(seed)
    m = Model()
    m.step = 17
    m.lr = 0.125
    m.tag = 'épоch-3'  # non-ASCII on purpose
    m.done = True
    m.stats[...] = [1.5, -2.0, 3.25]
    return m


def _assert_same_state(a, b):
    for (na, pa), (nb, pb) in zip(a.namedparams(), b.namedparams()):
        assert na == nb
        numpy.testing.assert_array_equal(pa.array, pb.array)
    numpy.testing.assert_array_equal(a.stats, b.stats)
    for k in ('step', 'lr', 'tag', 'done'):
        assert getattr(a, k) == getattr(b, k)
        assert type(getattr(a, k)) is type(getattr(b, k))


@pytest.mark.parametrize('compression', [True, False])
def test_round_trip(tmp_path, compression):
    src = _trained_model(0)
    path = tmp_path / 'model.npz'
    S.save_npz(path, src, compression=compression)
    with numpy.load(path, allow_pickle=False) as f:
        assert set(f.files) == KEYS
        assert f['tag'].dtype.kind == 'U' and f['tag'].shape == ()
        assert f['step'].shape == ()
        numpy.testing.assert_array_equal(f['l1/W'], src.l1.W.array)
        with zipfile.ZipFile(path) as z:
            kinds = {i.compress_type for i in z.infolist()}
        assert kinds == ({zipfile.ZIP_DEFLATED} if compression else {zipfile.ZIP_STORED})
    dst = _trained_model(1)  # different parameters, default scalars overwritten below
    dst.step, dst.lr, dst.tag, dst.done = 0, 0.0, '', False
    W_obj = dst.l1.W.array
    assert not numpy.array_equal(W_obj, src.l1.W.array)
    assert S.load_npz(path, dst) is dst
    _assert_same_state(src, dst)
    assert dst.l1.W.array is W_obj  # loaded in place


def test_lazy_parameter_takes_stored_shape(tmp_path):
    src = _trained_model(0)
    path = tmp_path / 'm.npz'
    S.save_npz(path, src)
    dst = Model(lazy=True)
    assert dst.l1.W.array is None
    S.load_npz(path, dst)
    assert dst.l1.W.array.shape == (4, 3) and dst.l1.W.array.dtype == numpy.float32
    _assert_same_state(src, dst)


def test_uninitialized_parameter_is_not_saved_and_round_trips_as_absent(tmp_path):
    path = tmp_path / 'lazy.npz'
    S.save_npz(path, Model(lazy=True))
    assert 'l1/W' not in S.load_npz_dict(path)
    dst = Model(lazy=True)
    S.load_npz(path, dst)  # strict: an absent key for an uninitialized param is fine
    assert dst.l1.W.array is None


def test_strict_lists_missing_unexpected_and_shape_mismatch_at_once(tmp_path):
    d = S.serialize_to_dict(_trained_model(0))
    del d['blocks/1/b']                                  # missing
    d['l1/extra'] = numpy.zeros(2)                       # unexpected
    d['l1/b'] = numpy.ones((1,), numpy.float32)          # (1,) must not broadcast to (4,)
    d['stats'] = numpy.ones((3, 1), numpy.float32)       # shape mismatch
    path = tmp_path / 'bad.npz'
    S.save_npz_dict(path, d)
    dst = _trained_model(1)
    b_before = dst.l1.b.array.copy()
    with pytest.raises(S.LoadError) as ei:
        S.load_npz(path, dst)
    e = ei.value
    assert isinstance(e, KeyError) and isinstance(e, ValueError)
    assert e.missing == ['blocks/1/b']
    assert e.unexpected == ['l1/extra']
    assert [k for k, _ in e.mismatched] == ['stats', 'l1/b']
    msg = str(e)
    for needle in ('blocks/1/b', 'l1/extra', 'stored shape (1,), expected (4,)',
                   'stored shape (3, 1), expected (3,)', str(path), 'strict=False'):
        assert needle in msg
    numpy.testing.assert_array_equal(dst.l1.b.array, b_before)  # mismatched: untouched


def test_non_strict_skips_missing_and_unexpected_but_not_mismatch(tmp_path):
    src = _trained_model(0)
    d = S.serialize_to_dict(src)
    del d['blocks/1/b']
    d['junk'] = numpy.zeros(1)
    path = tmp_path / 'partial.npz'
    S.save_npz_dict(path, d)
    dst = _trained_model(1)
    keep = dst.blocks[1].b.array.copy()
    S.load_npz(path, dst, strict=False)
    numpy.testing.assert_array_equal(dst.l1.W.array, src.l1.W.array)
    numpy.testing.assert_array_equal(dst.blocks[1].b.array, keep)
    d['l1/W'] = numpy.zeros((3, 4), numpy.float32)  # transposed
    S.save_npz_dict(path, d)
    with pytest.raises(S.LoadError, match=r'l1/W: stored shape \(3, 4\), expected \(4, 3\)'):
        S.load_npz(path, _trained_model(1), strict=False)


def test_dtype_mismatch_reported():
    m = Link()
    m.add_persistent('counts', numpy.zeros(2, numpy.int64))
    with pytest.raises(S.LoadError, match='counts: stored dtype float64, expected int64'):
        S.deserialize_from_dict({'counts': numpy.array([0.5, 1.5])}, m)
    m.add_persistent('n', 3)
    with pytest.raises(S.LoadError, match='n: stored a float64 value, expected an int'):
        S.deserialize_from_dict({'counts': numpy.zeros(2, numpy.int64),
                                 'n': numpy.asarray(2.5)}, m)


def test_scalar_conversion_to_type_of_value():
    m = Link()
    m.add_persistent('x', 1.0)
    S.deserialize_from_dict({'x': numpy.asarray(3.5, numpy.float32)}, m)
    assert m.x == 3.5 and type(m.x) is float
    # The kind must match exactly: an int, a bool or a complex never becomes a float.
    for bad in (numpy.asarray(3, numpy.int32), numpy.asarray(True), numpy.asarray(1 + 0j)):
        with pytest.raises(S.LoadError, match='x: stored a .* value, expected a float'):
            S.deserialize_from_dict({'x': bad}, m)


def test_prefix_namespaces_for_checkpoints(tmp_path):
    model = _trained_model(0)
    extra = Link()
    extra.add_persistent('epoch', 4)
    d = S.serialize_to_dict(model, prefix='model')
    d.update(S.serialize_to_dict(extra, prefix='/meta/'))
    assert set(d) == {'model/' + k for k in KEYS} | {'meta/epoch'}
    path = tmp_path / 'ckpt.npz'
    S.save_npz_dict(path, d)
    loaded = S.load_npz_dict(path)
    m2 = _trained_model(5)
    S.deserialize_from_dict(loaded, m2, path_prefix='model')  # meta/* is not "unexpected"
    _assert_same_state(model, m2)
    e2 = Link()
    e2.add_persistent('epoch', 0)
    S.load_npz(path, e2, path_prefix='meta/')
    assert e2.epoch == 4
    with pytest.raises(S.LoadError) as ei:
        S.load_npz(path, _trained_model(1), path_prefix='modle')
    assert 'modle/step' in ei.value.missing
    assert "under path_prefix 'modle/'; the file's top-level names are: meta, model" \
        in str(ei.value)


def test_truncated_file_names_the_file(tmp_path):
    path = tmp_path / 'ok.npz'
    S.save_npz(path, _trained_model(0))
    data = path.read_bytes()
    bad = tmp_path / 'half.npz'
    bad.write_bytes(data[:len(data) // 2])
    with pytest.raises(S.SerializationError, match='half.npz.*truncated or corrupt'):
        S.load_npz(bad, _trained_model(1))
    noise = tmp_path / 'noise.npz'
    noise.write_bytes(numpy.random.default_rng(0).bytes(300))
    with pytest.raises(S.SerializationError, match='noise.npz') as ei:
        S.load_npz(noise, _trained_model(1))
    assert 'allow_pickle' not in str(ei.value)  # never suggest unsafe loading
    empty = tmp_path / 'empty.npz'
    empty.write_bytes(b'')
    with pytest.raises(S.SerializationError, match='empty.npz'):
        S.load_npz(empty, _trained_model(1))
    with pytest.raises(FileNotFoundError):
        S.load_npz(tmp_path / 'absent.npz', _trained_model(1))


def test_corrupt_member_data_detected(tmp_path):
    """A complete zip directory whose stored member bytes were altered."""
    path = tmp_path / 'm.npz'
    S.save_npz(path, _trained_model(0), compression=False)
    data = bytearray(path.read_bytes())
    off = data.index(b'\x93NUMPY')  # first member's .npy header: break the magic
    data[off:off + 6] = b'GARBGE'
    bad = tmp_path / 'flipped.npz'
    bad.write_bytes(bytes(data))
    with pytest.raises(S.SerializationError, match='flipped.npz'):
        S.load_npz(bad, _trained_model(1))


def test_object_array_in_file_rejected(tmp_path):
    path = tmp_path / 'obj.npz'
    numpy.savez(path, stats=numpy.array([1, 'a', None], dtype=object))
    with pytest.raises(S.SerializationError, match=r"obj.npz: entry 'stats' is an object"):
        S.load_npz_dict(path)


def test_plain_npy_rejected(tmp_path):
    path = tmp_path / 'arr.npy'
    numpy.save(path, numpy.zeros(3))
    with pytest.raises(S.SerializationError, match='arr.npy.*not an .npz'):
        S.load_npz_dict(path)


def test_saver_refuses_objects_and_duplicates():
    s = S.DictionarySerializer()
    with pytest.raises(S.SerializationError, match="'x'.*object arrays"):
        s('x', numpy.array([None, 1], dtype=object))
    with pytest.raises(S.SerializationError, match="'sub/y'.*list"):
        s['sub']('y', [1, 2])
    s('z', 1)
    with pytest.raises(ValueError, match="'z' was written twice"):
        s('z', 2)
    with pytest.raises(ValueError, match='keys'):
        s('', 1)
    assert s('none', None) is None and 'none' not in s.target
    with pytest.raises(S.SerializationError, match='reserved'):
        S.save_npz_dict('/tmp/never-written.npz', {'file': numpy.zeros(1)})


def test_saver_snapshots_arrays():
    a = numpy.zeros(3)
    s = S.DictionarySerializer()
    assert s('a', a) is a
    a[0] = 1.0
    assert s.target['a'][0] == 0.0


def test_deserializer_none_gets_stored_array_and_finish_is_explicit():
    d = {'a/x': numpy.arange(3)}
    s = S.DictionaryDeserializer(d)
    numpy.testing.assert_array_equal(s['a']('x', None), numpy.arange(3))
    assert s('absent', None) is None
    assert s('missing', 5) == 5  # recorded, reported by finish()
    with pytest.raises(S.LoadError, match='missing'):
        s.finish()


def test_crash_mid_save_keeps_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / 'model.npz'
    S.save_npz(path, _trained_model(0), compression=False)
    old = path.read_bytes()
    real = numpy.savez

    def exploding_savez(f, *args, **kwargs):
        f.write(b'PK\x03\x04 partial data')  # something was written before the crash
        raise OSError('disk full (simulated)')

    monkeypatch.setattr(numpy, 'savez', exploding_savez)
    with pytest.raises(OSError, match='simulated'):
        S.save_npz(path, _trained_model(1), compression=False)
    monkeypatch.setattr(numpy, 'savez', real)
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ['model.npz']
    m = _trained_model(1)
    S.load_npz(path, m)
    _assert_same_state(_trained_model(0), m)


def test_save_into_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist'):
        S.save_npz(tmp_path / 'no' / 'm.npz', _trained_model(0))


@pytest.mark.gpu
def test_gpu_round_trip(tmp_path):
    import cupy
    src = _trained_model(0).to_gpu()
    path = tmp_path / 'g.npz'
    S.save_npz(path, src)
    with numpy.load(path, allow_pickle=False) as f:
        numpy.testing.assert_array_equal(f['l1/W'], src.l1.W.array.get())
    dst = _trained_model(1).to_gpu()
    lazy = Model(lazy=True).to_gpu()
    S.load_npz(path, dst)
    S.load_npz(path, lazy)
    for m in (dst, lazy):
        assert isinstance(m.l1.W.array, cupy.ndarray) and isinstance(m.stats, cupy.ndarray)
        cupy.testing.assert_array_equal(m.l1.W.array, src.l1.W.array)
        cupy.testing.assert_array_equal(m.stats, src.stats)


# -- untrusted archives (issue 14: bounded resources, no tracebacks, exact dtypes) -------------

def _zip_of(path, members, method=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, 'w') as z:
        for name, data in members:
            zi = zipfile.ZipInfo(name)
            zi.compress_type = method
            z.writestr(zi, data)
    return path


def _npy_bytes(a):
    import io
    buf = io.BytesIO()
    numpy.lib.format.write_array(buf, numpy.asarray(a), allow_pickle=False)
    return buf.getvalue()


def _npy_header(shape, descr='<f4'):
    import io
    buf = io.BytesIO()
    numpy.lib.format.write_array_header_1_0(buf, {'descr': descr, 'fortran_order': False,
                                                  'shape': shape})
    return buf.getvalue()


def test_index_is_read_from_headers_only(tmp_path):
    p = _zip_of(tmp_path / 'a.npz', [('W.npy', _npy_bytes(numpy.ones((2, 3), '<f4'))),
                                     ('n.npy', _npy_bytes(numpy.int64(7)))])
    idx = S.read_npz_index(p)
    assert idx['W'].shape == (2, 3) and idx['W'].dtype == numpy.float32
    assert idx['W'].nbytes == 24 and idx['n'].shape == () and idx['n'].nbytes == 8
    d = S.load_npz_dict(p)
    numpy.testing.assert_array_equal(d['W'], numpy.ones((2, 3)))
    assert d['n'] == 7 and d['n'].dtype == numpy.int64


@pytest.mark.parametrize('a', [numpy.asfortranarray(numpy.arange(12.).reshape(3, 4)),
                               numpy.arange(6, dtype='>i4').reshape(2, 3),
                               numpy.array(['ab', 'c']), numpy.zeros((0, 5)),
                               numpy.array([True, False])])
def test_layouts_round_trip(tmp_path, a):
    p = _zip_of(tmp_path / 'l.npz', [('a.npy', _npy_bytes(a))])
    got = S.load_npz_dict(p)['a']
    assert got.dtype == a.dtype and got.shape == a.shape
    numpy.testing.assert_array_equal(got, a)


def test_member_claiming_a_huge_shape_is_refused_without_allocating(tmp_path):
    # (10**12,) float32 declared, 64 bytes stored: the sizes disagree.
    p = _zip_of(tmp_path / 'huge.npz', [('W.npy', _npy_header((10 ** 12,)) + bytes(64))])
    with pytest.raises(S.SerializationError, match=r"huge.npz: entry 'W' declares shape "
                                                   r"\(1000000000000,\) of float32"):
        S.load_npz_dict(p)


def test_member_with_more_data_than_its_header_is_refused(tmp_path):
    p = _zip_of(tmp_path / 'more.npz', [('W.npy', _npy_bytes(numpy.ones(4, '<f4')) + b'x')])
    with pytest.raises(S.SerializationError, match=r'more.npz.*\(4,\) of float32 \(16 data '
                                                   r'bytes\) but the archive entry holds 17'):
        S.load_npz_dict(p)


def test_zip_bomb_beyond_the_budget_is_refused_before_inflating(tmp_path, monkeypatch):
    # 256 MiB of zeros deflate to ~256 KiB; a budget of 64 MiB refuses it from its header.
    shape = (1 << 26,)
    p = tmp_path / 'bomb.npz'
    with zipfile.ZipFile(p, 'w') as z:
        zi = zipfile.ZipInfo('z.npy')
        zi.compress_type = zipfile.ZIP_DEFLATED
        with z.open(zi, 'w', force_zip64=True) as f:
            f.write(_npy_header(shape))
            chunk = bytes(1 << 22)
            for _ in range(64):
                f.write(chunk)
    assert p.stat().st_size < (1 << 20)
    with pytest.raises(S.SerializationError, match=r"bomb.npz: entry 'z' declares 268435456 "
                                                   r"bytes .* exceeds the budget") as e:
        S.load_npz_dict(p, max_bytes=64 << 20)
    assert 'max_bytes' in str(e.value)
    # The default budget (1 GiB or 50x the file) would inflate it; a smaller default refuses.
    monkeypatch.setattr(S, 'DEFAULT_MAX_BYTES_FLOOR', 1 << 20)
    with pytest.raises(S.SerializationError, match='exceeds the budget'):
        S.load_npz_dict(p)


@pytest.mark.parametrize('method', [14, 99, 12])
def test_unsupported_compression_methods_are_refused(tmp_path, method):
    p = _zip_of(tmp_path / 'm.npz', [('W.npy', _npy_bytes(numpy.ones(3)))])
    data = bytearray(p.read_bytes())
    for sig, off in ((b'PK\x03\x04', 8), (b'PK\x01\x02', 10)):
        i = data.index(sig)
        data[i + off:i + off + 2] = method.to_bytes(2, 'little')
    p.write_bytes(bytes(data))
    with pytest.raises(S.SerializationError, match=r"m.npz: entry 'W' uses zip compression "
                                                   r"method %d" % method):
        S.load_npz_dict(p)


@pytest.mark.parametrize('members, needle', [
    ([('W.npy', _npy_bytes(numpy.ones(2))), ('W.npy', _npy_bytes(numpy.ones(2)))],
     "appears twice"),
    ([('W.npy', b'')], "entry 'W' cannot be read (ValueError: EOF"),
    # A flipped byte in the header text (found by the checkpoint fuzzer): NumPy's parser
    # raised tokenize.TokenError, which is not a ValueError.
    ([('W.npy', _npy_bytes(numpy.ones(2)).replace(b"(2,)", b"\xa12,)"))],
     "entry 'W' has an unreadable .npy header (TokenError"),
    ([('readme.txt', b'hello')], "member 'readme.txt' is not an .npy array"),
    ([('W.npy', b'\x93NUMPY\x09\x00' + bytes(60))], 'format version 9.0'),
    ([('W.npy', _npy_header((2,), '|V4') + bytes(8))], 'only bool, integer'),
    ([('W.npy', _npy_header((2,), '<M8[s]') + bytes(16))], 'only bool, integer'),
])
def test_malformed_members_are_serialization_errors(tmp_path, members, needle):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        p = _zip_of(tmp_path / 'x.npz', members)
    with pytest.raises(S.SerializationError, match='x.npz') as e:
        S.load_npz_dict(p)
    assert needle in str(e.value)


def test_memory_error_becomes_a_serialization_error(tmp_path, monkeypatch):
    p = _zip_of(tmp_path / 'm.npz', [('W.npy', _npy_bytes(numpy.ones(3)))])

    def no_memory(*a, **k):
        raise MemoryError

    monkeypatch.setattr(S.numpy, 'empty', no_memory)
    with pytest.raises(S.SerializationError, match="m.npz: entry 'W' needs 24 bytes, more "
                                                   "memory than is free"):
        S.load_npz_dict(p)


def test_load_npz_refuses_int64_weights_instead_of_casting(tmp_path):
    src = _trained_model(0)
    d = S.serialize_to_dict(src)
    d['l1/W'] = d['l1/W'].astype(numpy.int64)
    path = tmp_path / 'ints.npz'
    S.save_npz_dict(path, d)
    dst = _trained_model(1)
    before = dst.l1.W.array.copy()
    with pytest.raises(S.LoadError, match=r'l1/W: stored dtype int64, expected float32'):
        S.load_npz(path, dst)
    numpy.testing.assert_array_equal(dst.l1.W.array, before)
    # float64 into float32 is a change of dtype too: refused, not rounded.
    d['l1/W'] = src.l1.W.array.astype(numpy.float64)
    S.save_npz_dict(path, d)
    with pytest.raises(S.LoadError, match='stored dtype float64, expected float32'):
        S.load_npz(path, _trained_model(1))
    # A big-endian float32 file holds the same values: accepted.
    d['l1/W'] = src.l1.W.array.astype('>f4')
    S.save_npz_dict(path, d)
    dst = S.load_npz(path, _trained_model(1))
    numpy.testing.assert_array_equal(dst.l1.W.array, src.l1.W.array)


# -- exact messages and edge rules (from mutation-testing survivors) ---------------------------

def _raises(exc, fn, *a, **kw):
    with pytest.raises(exc) as e:
        fn(*a, **kw)
    return str(e.value)


def test_key_and_prefix_rules_and_messages():
    s = S.DictionarySerializer()
    for bad in ('', '/a', 'a/', 5):
        assert _raises(ValueError, s, bad, 1) == (
            'serializer keys must be non-empty strings without leading or trailing "/", '
            'got %r' % (bad,))
    s('a', 1)
    assert _raises(ValueError, s, 'a', 2) == \
        "serializer key 'a' was written twice; every value needs its own key"
    assert _raises(TypeError, S.serialize_to_dict, Leaf(2, 1), 3) == \
        'path_prefix must be a str, got int'
    leaf = Leaf(2, 1)
    assert set(S.serialize_to_dict(leaf, '/model/')) == {'model/W', 'model/b'}
    assert set(S.serialize_to_dict(leaf, None)) == {'W', 'b'}
    assert set(S.serialize_to_dict(leaf, '')) == {'W', 'b'}


def test_variables_are_saved_and_loaded_through_their_arrays():
    from seqdbr.core.variable import Variable
    s = S.DictionarySerializer()
    v = Variable(numpy.arange(3.0))
    assert s('v', v) is v
    numpy.testing.assert_array_equal(s.target['v'], [0.0, 1.0, 2.0])
    w = Variable(numpy.zeros(3))
    d = S.DictionaryDeserializer(s.target)
    assert d('v', w) is w
    numpy.testing.assert_array_equal(w.array, [0.0, 1.0, 2.0])
    d.finish()


def test_saver_type_messages():
    s = S.DictionarySerializer()
    assert _raises(S.SerializationError, s, 'x', [1, 2]) == (
        "cannot serialize 'x': a list is not an array or a Python scalar; convert it "
        "(numpy.asarray) or split it into several keys")
    assert _raises(S.SerializationError, s['sub'], 'o', numpy.array([None, 1])) == (
        "cannot serialize 'sub/o': object arrays need pickle, which seqdbr never writes; "
        "use a numeric or str dtype")


def test_stored_dtypes_must_match_exactly():
    """Issue 14: a float64 file is not cast into float32 arrays (nor floats into ints)."""
    d = S.DictionaryDeserializer({'a': numpy.array([0.1, 2.5])})
    target = numpy.zeros(2, numpy.float32)
    d('a', target)
    assert _raises(S.LoadError, d.finish) == (
        'could not load the state:\n'
        '  a: stored dtype float64, expected float32 (dtypes must match exactly; convert the '
        'file if the change is intended)')
    assert not target.any()
    d = S.DictionaryDeserializer({'a': numpy.array([0.5, 1.5])}, name='f.npz')
    d('a', numpy.zeros(2, numpy.int32))
    assert _raises(S.LoadError, d.finish).startswith(
        'could not load the state from f.npz:\n  a: stored dtype float64, expected int32')


@pytest.mark.parametrize('shape,ok', [((), True), ((1,), True), ((1, 1), True), ((2,), False),
                                      ((2, 2), False), ((0,), False)])
def test_scalars_load_from_any_single_element_array(shape, ok):
    stored = numpy.full(shape, 7, numpy.int64)
    d = S.DictionaryDeserializer({'n': stored})
    got = d('n', 0)
    if ok:
        assert got == 7 and type(got) is int
        d.finish()
    else:
        assert got == 0
        assert _raises(S.LoadError, d.finish) == (
            'could not load the state:\n  n: stored array of shape %s, expected a scalar'
            % (shape,))


def test_scalar_kind_mismatch_messages():
    src = {'f': numpy.array(1.5), 's': numpy.array('x'), 'i': numpy.array(3),
           'b': numpy.array(True)}
    d = S.DictionaryDeserializer(src)
    assert d('f', False) is False          # a float is not a bool
    assert d('s', 0) == 0                  # a str is not an int
    assert d('i', 'txt') == 'txt'          # an int is not a str
    assert d('f', 2) == 2                  # a float would be truncated to an int
    # a bool is not an int, an int is neither a bool nor a float: all refused (issue 14)
    assert d('b', 0) == 0 and d('i', True) is True and d('i', 0.0) == 0.0
    why = ' (the stored dtype must match the kind of the value exactly)'
    assert _raises(S.LoadError, d.finish) == 'could not load the state:\n' + '\n'.join(
        '  %s: stored a %s value, expected %s%s' % (k, dt, want, why) for k, dt, want in (
            ('f', 'float64', 'a bool'), ('s', '<U1', 'an int'), ('i', 'int64', 'a str'),
            ('f', 'float64', 'an int'), ('b', 'bool', 'an int'), ('i', 'int64', 'a bool'),
            ('i', 'int64', 'a float')))
    d = S.DictionaryDeserializer({'x': numpy.zeros(2)})
    assert _raises(S.SerializationError, d, 'x', [0, 0]) == (
        "cannot load 'x' into a list: pass an array (filled in place), a Python scalar or None")


def test_load_error_message_in_full():
    src = {'model/a': numpy.zeros(2), 'model/extra': numpy.zeros(1), 'other': numpy.zeros(1)}
    d = S.DictionaryDeserializer(src, name='ck.npz')
    sub = d['model']
    sub('a', numpy.zeros(3))                     # shape mismatch
    sub('gone', numpy.zeros(1))                  # missing
    e = pytest.raises(S.LoadError, d.finish, 'model/').value
    assert str(e) == (
        'could not load the state from ck.npz:\n'
        '  missing keys (the object has them, the file does not): model/gone\n'
        '  unexpected keys (in the file, not asked for by the object): model/extra\n'
        '  model/a: stored shape (2,), expected (3,)\n'
        '  (check the model architecture and path_prefix, or pass strict=False to skip '
        'missing/unexpected keys)')
    assert e.missing == ['model/gone'] and e.unexpected == ['model/extra']
    assert e.mismatched == [('model/a', 'stored shape (2,), expected (3,)')]
    assert isinstance(e, KeyError) and isinstance(e, ValueError)


def test_nothing_matched_lists_the_top_level_names():
    src = {'k%02d/x' % i: numpy.zeros(1) for i in range(21)}
    d = S.DictionaryDeserializer(src)
    d['model']('W', numpy.zeros(1))
    msg = _raises(S.LoadError, d.finish, 'model/')
    names = ', '.join('k%02d' % i for i in range(20))
    assert msg == (
        'could not load the state:\n'
        '  missing keys (the object has them, the file does not): model/W\n'
        "  nothing matched under path_prefix 'model/'; the file's top-level names are: "
        + names + ' ...\n'
        '  (check the model architecture and path_prefix, or pass strict=False to skip '
        'missing/unexpected keys)')
    del src['k20/x']                              # exactly 20 names: no ellipsis
    d = S.DictionaryDeserializer(src, strict=True)
    d('W', numpy.zeros(1))
    msg = _raises(S.LoadError, d.finish)
    assert "  nothing matched; the file's top-level names are: " + names + '\n' in msg
    # once something matched, a missing key gets no such hint
    d = S.DictionaryDeserializer({'a': numpy.zeros(1)})
    d('a', numpy.zeros(1))
    d('b', numpy.zeros(1))
    assert _raises(S.LoadError, d.finish) == (
        'could not load the state:\n'
        '  missing keys (the object has them, the file does not): b\n'
        '  (check the model architecture and path_prefix, or pass strict=False to skip '
        'missing/unexpected keys)')


def test_save_npz_dict_messages(tmp_path):
    p = tmp_path / 'x.npz'
    assert _raises(S.SerializationError, S.save_npz_dict, p, {'': numpy.zeros(1)}) == \
        "npz keys must be non-empty strings, got ''"
    assert _raises(S.SerializationError, S.save_npz_dict, p, {3: numpy.zeros(1)}) == \
        'npz keys must be non-empty strings, got 3'
    assert _raises(S.SerializationError, S.save_npz_dict, p, {'file': numpy.zeros(1)}) == (
        "the top-level key 'file' is reserved by numpy.savez; put it under a namespace "
        '(e.g. "meta/file")')
    assert _raises(S.SerializationError, S.save_npz_dict, p, {'a': [1.0]}) == \
        "value of 'a' must be an ndarray, got list"
    assert _raises(S.SerializationError, S.save_npz_dict, p,
                   {'a': numpy.array([None])}) == \
        "cannot save 'a': object arrays need pickle, which seqdbr never writes"
    assert not p.exists()


def test_load_npz_dict_messages_in_full(tmp_path):
    obj = tmp_path / 'obj.npz'
    numpy.savez(obj, stats=numpy.array([1, 'a', None], dtype=object))
    assert _raises(S.SerializationError, S.load_npz_dict, obj) == (
        "%s: entry 'stats' is an object (pickled) array; seqdbr never loads pickles (re-save "
        'it with numeric or str arrays); the file is corrupt or was not written by seqdbr'
        % obj)
    npy = tmp_path / 'arr.npy'
    numpy.save(npy, numpy.zeros(3))
    assert _raises(S.SerializationError, S.load_npz_dict, npy) == \
        '%s holds a single .npy array, not an .npz archive' % npy
    pickled = tmp_path / 'p.npy'
    numpy.save(pickled, numpy.array([1, None], dtype=object))
    assert _raises(S.SerializationError, S.load_npz_dict, pickled) == \
        '%s holds a single .npy array, not an .npz archive' % pickled       # never unpickled
    empty = tmp_path / 'empty.npz'
    empty.write_bytes(b'')
    assert _raises(S.SerializationError, S.load_npz_dict, empty).startswith(
        '%s is not a readable .npz archive (truncated or corrupt?): BadZipFile: ' % empty)


def test_lists_of_keys_and_nested_top_level_names():
    d = S.DictionaryDeserializer({'a/b/c': numpy.zeros(1), 'a/d': numpy.zeros(1),
                                  'e/f/g': numpy.zeros(1)})
    d('x', numpy.zeros(1))
    d('y', numpy.zeros(1))
    e = pytest.raises(S.LoadError, d.finish).value
    assert str(e) == (
        'could not load the state:\n'
        '  missing keys (the object has them, the file does not): x, y\n'
        '  unexpected keys (in the file, not asked for by the object): a/b/c, a/d, e/f/g\n'
        "  nothing matched; the file's top-level names are: a, e\n"
        '  (check the model architecture and path_prefix, or pass strict=False to skip '
        'missing/unexpected keys)')
    assert e.args == (str(e),)


def test_prefix_strips_only_slashes():
    assert set(S.serialize_to_dict(Leaf(2, 1), 'Xm/')) == {'Xm/W', 'Xm/b'}


def test_defaults_strict_and_compressed(tmp_path):
    d = S.serialize_to_dict(Leaf(2, 1))
    d['extra'] = numpy.zeros(1)
    with pytest.raises(S.LoadError, match='unexpected keys.*extra'):
        S.deserialize_from_dict(d, Leaf(2, 1))                  # strict by default
    for name, save in (('a.npz', lambda p: S.save_npz(p, Leaf(3, 2))),
                       ('b.npz', lambda p: S.save_npz_dict(p, {'x': numpy.zeros(50)}))):
        save(tmp_path / name)
        with zipfile.ZipFile(tmp_path / name) as zf:
            assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_DEFLATED}
    S.save_npz_dict(tmp_path / 'c.npz', {'x': numpy.zeros(50)}, compression=False)
    with zipfile.ZipFile(tmp_path / 'c.npz') as zf:
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_STORED}
