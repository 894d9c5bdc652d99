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
