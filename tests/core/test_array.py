"""seqdbr.core.functions.array: shape, joining, splitting, indexing and sequence functions.
NumPy reference values for forward, float64 check_backward for backward."""
import numpy
import pytest

import seqdbr.functions as F
from seqdbr import Variable
from seqdbr.core import backend
from seqdbr.gradient_check import check_backward, assert_allclose


def _u(xp, shape, seed=0, dtype=numpy.float64):
    return xp.asarray(numpy.random.RandomState(seed).uniform(-1, 1, shape).astype(dtype))


def _cpu(a):
    return backend.to_cpu(a.array if isinstance(a, Variable) else a)


def _same(actual, expected):
    a = _cpu(actual)
    assert a.shape == numpy.shape(expected), (a.shape, numpy.shape(expected))
    numpy.testing.assert_array_equal(a, expected)


# -- reshape ---------------------------------------------------------------------------------

@pytest.mark.parametrize('src,dst', [
    ((2, 3), (3, 2)), ((2, 3), (6,)), ((2, 3), (-1,)), ((2, 3, 4), (4, -1)), ((6,), (1, 6)),
    ((1,), ()), ((), (1, 1)), ((0, 3), (3, 0)), ((0, 3), (-1, 3)), ((2, 3), 6),
    ((2, 3), [3, -1]),
])
def test_reshape(xp, src, dst):
    x = _u(xp, src)
    y = F.reshape(Variable(x), dst)
    _same(y, _cpu(x).reshape(dst))
    check_backward(lambda v: F.reshape(v, dst), x)


def test_reshape_errors(xp):
    x = Variable(_u(xp, (2, 3)))
    with pytest.raises(ValueError, match=r'\(2, 3\).*\(4, 2\)'):
        F.reshape(x, (4, 2))
    with pytest.raises(ValueError, match='only one'):
        F.reshape(x, (-1, -1))
    with pytest.raises(ValueError, match='negative'):
        F.reshape(x, (-2, 3))
    with pytest.raises(ValueError, match='multiple'):
        F.reshape(x, (4, -1))
    with pytest.raises(ValueError):
        F.reshape(Variable(xp.zeros((0, 3))), (0, -1))
    with pytest.raises(TypeError):
        F.reshape(x, (2.0, 3))
    with pytest.raises(TypeError):
        F.reshape(x, '6')


def test_reshape_integer_arrays_pass_through(xp):
    y = F.reshape(xp.arange(6), (2, 3))
    _same(y, numpy.arange(6).reshape(2, 3))
    assert y.creator is None and not y.requires_grad


# -- transpose --------------------------------------------------------------------------------

@pytest.mark.parametrize('shape,axes', [
    ((2, 3), None), ((2, 3), (1, 0)), ((2, 3, 4), (2, 0, 1)), ((2, 3, 4), (-1, 0, -2)),
    ((2, 3, 4), None), ((1, 4), (1, 0)), ((5,), None), ((), None), ((0, 3), (1, 0)),
])
def test_transpose(xp, shape, axes):
    x = _u(xp, shape)
    y = F.transpose(Variable(x), axes)
    _same(y, numpy.transpose(_cpu(x), axes))
    check_backward(lambda v: F.transpose(v, axes), x)


def test_transpose_errors(xp):
    x = Variable(_u(xp, (2, 3, 4)))
    for bad in [(0, 1), (0, 1, 1), (0, 1, 3), (0, 1, 2, 3)]:
        with pytest.raises(ValueError, match=r'permutation.*\(2, 3, 4\)'):
            F.transpose(x, bad)
    with pytest.raises(TypeError):
        F.transpose(x, (0.0, 1, 2))


# -- expand_dims / squeeze ----------------------------------------------------------------------

@pytest.mark.parametrize('shape,axis', [((2, 3), 0), ((2, 3), 1), ((2, 3), 2), ((2, 3), -1),
                                        ((2, 3), -3), ((), 0), ((0, 3), 1)])
def test_expand_dims(xp, shape, axis):
    x = _u(xp, shape)
    y = F.expand_dims(Variable(x), axis)
    _same(y, numpy.expand_dims(_cpu(x), axis))
    check_backward(lambda v: F.expand_dims(v, axis), x)


def test_expand_dims_errors(xp):
    x = Variable(_u(xp, (2, 3)))
    with pytest.raises(ValueError, match='out of range'):
        F.expand_dims(x, 3)
    with pytest.raises(ValueError, match='out of range'):
        F.expand_dims(x, -4)
    with pytest.raises(TypeError):
        F.expand_dims(x, (0, 1))


@pytest.mark.parametrize('shape,axis', [((1, 3, 1), None), ((1, 3, 1), 0), ((1, 3, 1), -1),
                                        ((1, 3, 1), (0, 2)), ((1,), None), ((1, 1), 0),
                                        ((2, 3), None), ((0, 1), 1), ((1, 0), 0)])
def test_squeeze(xp, shape, axis):
    x = _u(xp, shape)
    y = F.squeeze(Variable(x), axis)
    _same(y, numpy.squeeze(_cpu(x), axis if axis is None else axis))
    check_backward(lambda v: F.squeeze(v, axis), x)


def test_squeeze_errors(xp):
    x = Variable(_u(xp, (1, 3, 1)))
    with pytest.raises(ValueError, match=r'axis 1 .*\(1, 3, 1\).*length 3'):
        F.squeeze(x, 1)
    with pytest.raises(ValueError, match='out of range'):
        F.squeeze(x, 3)
    with pytest.raises(ValueError, match='repeats'):
        F.squeeze(x, (0, -3))


# -- broadcast_to ----------------------------------------------------------------------------

@pytest.mark.parametrize('src,dst', [((3,), (2, 3)), ((1, 3), (4, 3)), ((2, 1), (2, 5)),
                                     ((), (2, 2)), ((1,), (1,)), ((2, 3), (2, 3)),
                                     ((1, 3), (0, 3)), ((3, 1), (2, 3, 4)), ((1,), 4)])
def test_broadcast_to(xp, src, dst):
    x = _u(xp, src)
    y = F.broadcast_to(Variable(x), dst)
    _same(y, numpy.broadcast_to(_cpu(x), dst))
    check_backward(lambda v: F.broadcast_to(v, dst), x)


def test_broadcast_to_gradient_by_hand(xp):
    x = Variable(xp.asarray([1.0, 2.0]))
    y = F.broadcast_to(x, (3, 2))
    y.grad = xp.arange(6.0).reshape(3, 2)
    y.backward()
    assert_allclose(x.grad, [0 + 2 + 4, 1 + 3 + 5], atol=0, rtol=0)


def test_broadcast_to_errors(xp):
    x = Variable(_u(xp, (2, 3)))
    for bad in [(3, 3), (3,), (2, 1), (4, 2, 2)]:
        with pytest.raises(ValueError) as e:
            F.broadcast_to(x, bad)
        assert '(2, 3)' in str(e.value) and str(bad) in str(e.value)


# -- concat / stack ----------------------------------------------------------------------------

@pytest.mark.parametrize('shapes,axis', [
    ([(2, 3), (2, 4)], 1), ([(2, 3), (2, 4), (2, 1)], -1), ([(1, 3), (2, 3)], 0),
    ([(2, 3)], 1), ([(3,), (2,)], 0), ([(2, 0), (2, 3)], 1), ([(0, 3), (0, 3)], 0),
    ([(2, 3, 4), (2, 1, 4)], 1),
])
def test_concat(xp, shapes, axis):
    xs = [_u(xp, s, seed=i) for i, s in enumerate(shapes)]
    y = F.concat([Variable(x) for x in xs], axis=axis)
    _same(y, numpy.concatenate([_cpu(x) for x in xs], axis=axis))
    check_backward(lambda *vs: F.concat(vs, axis=axis), tuple(xs))


def test_concat_default_axis_is_1_and_mixes_constants(xp):
    a = Variable(_u(xp, (2, 3)))
    b = _u(xp, (2, 2), seed=1)
    y = F.concat((a, b))
    assert y.shape == (2, 5)
    F.sum(y * y).backward()
    assert_allclose(a.grad, 2 * _cpu(a.array), atol=0, rtol=0)


def test_concat_errors(xp):
    a = Variable(_u(xp, (2, 3)))
    with pytest.raises(ValueError, match=r'input 1 has shape \(3, 3\).*\(2, 3\)'):
        F.concat([a, Variable(_u(xp, (3, 3)))], axis=1)
    with pytest.raises(ValueError):
        F.concat([a, Variable(_u(xp, (2, 3, 1)))])
    with pytest.raises(ValueError, match='at least one'):
        F.concat([])
    with pytest.raises(ValueError, match='0-d'):
        F.concat([Variable(_u(xp, ()))], axis=0)
    with pytest.raises(ValueError, match='out of range'):
        F.concat([a, a], axis=2)
    with pytest.raises(TypeError, match='float32'):
        F.concat([a, _u(xp, (2, 3), dtype=numpy.float32)])
    with pytest.raises(TypeError, match='list'):
        F.concat(a)


@pytest.mark.parametrize('shape,n,axis', [((2, 3), 3, 0), ((2, 3), 2, 1), ((2, 3), 2, 2),
                                          ((2, 3), 2, -1), ((2, 3), 1, 0), ((), 3, 0),
                                          ((0, 3), 2, 1), ((4,), 1, -2)])
def test_stack(xp, shape, n, axis):
    xs = [_u(xp, shape, seed=i) for i in range(n)]
    y = F.stack([Variable(x) for x in xs], axis=axis)
    _same(y, numpy.stack([_cpu(x) for x in xs], axis=axis))
    check_backward(lambda *vs: F.stack(vs, axis=axis), tuple(xs))


def test_stack_errors(xp):
    a = Variable(_u(xp, (2, 3)))
    with pytest.raises(ValueError, match=r'input 1 has shape \(3, 2\)'):
        F.stack([a, Variable(_u(xp, (3, 2)))])
    with pytest.raises(ValueError, match='at least one'):
        F.stack(())
    with pytest.raises(ValueError, match='out of range'):
        F.stack([a, a], axis=3)
    with pytest.raises(TypeError):
        F.stack([a, xp.zeros((2, 3), dtype=numpy.int32)])


# -- split_axis / separate -------------------------------------------------------------------

@pytest.mark.parametrize('shape,ios,axis', [
    ((4, 6), 3, 1), ((4, 6), 2, 0), ((4, 6), [1, 4], 1), ((4, 6), [0, 0, 6], 1),
    ((4, 6), (2,), -2), ((1, 6), 1, 0), ((3,), [1], 0), ((0, 4), 2, 1), ((4, 0), [], 1),
    ((2, 6, 1), numpy.array([2, 3]), 1),
])
def test_split_axis(xp, shape, ios, axis):
    x = _u(xp, shape)
    ys = F.split_axis(Variable(x), ios, axis)
    assert isinstance(ys, tuple)
    refs = numpy.split(_cpu(x), ios, axis=axis)
    assert len(ys) == len(refs)
    for y, r in zip(ys, refs):
        _same(y, r)
    check_backward(lambda v: F.split_axis(v, ios, axis), x)


def test_split_axis_unused_outputs_get_zero_gradient(xp):
    x = Variable(_u(xp, (2, 6)))
    a, b, c = F.split_axis(x, 3, axis=1)
    F.sum(b * 3.0).backward()
    expected = numpy.zeros((2, 6))
    expected[:, 2:4] = 3.0
    assert_allclose(x.grad, expected, atol=0, rtol=0)
    check_backward(lambda v: F.split_axis(v, [1, 2], 1)[2], _u(xp, (2, 6)))
    check_backward(lambda v: F.split_axis(v, [1, 2], 1)[0], _u(xp, (2, 6)))


def test_split_axis_errors(xp):
    x = Variable(_u(xp, (2, 6)))
    with pytest.raises(ValueError, match=r'length 6.*4 equal'):
        F.split_axis(x, 4, 1)
    with pytest.raises(ValueError):
        F.split_axis(x, 0, 1)
    with pytest.raises(ValueError, match='non-decreasing'):
        F.split_axis(x, [3, 1], 1)
    with pytest.raises(ValueError, match='non-decreasing'):
        F.split_axis(x, [7], 1)
    with pytest.raises(TypeError):
        F.split_axis(x, [1.5], 1)
    with pytest.raises(TypeError):
        F.split_axis(x, 2.0, 1)
    with pytest.raises(ValueError, match='out of range'):
        F.split_axis(x, 2, 2)
    with pytest.raises(ValueError, match='0-d'):
        F.split_axis(Variable(_u(xp, ())), 1, 0)


@pytest.mark.parametrize('shape,axis', [((3, 4), 0), ((3, 4), 1), ((3, 4), -1), ((1, 2), 0),
                                        ((5,), 0), ((2, 0), 0), ((2, 3, 4), 1)])
def test_separate(xp, shape, axis):
    x = _u(xp, shape)
    ys = F.separate(Variable(x), axis)
    assert isinstance(ys, tuple)
    xc = _cpu(x)
    assert len(ys) == xc.shape[axis]
    for i, y in enumerate(ys):
        _same(y, numpy.take(xc, i, axis=axis))
    check_backward(lambda v: F.separate(v, axis), x)


def test_separate_unused_outputs_and_zero_length(xp):
    x = Variable(_u(xp, (3, 2)))
    ys = F.separate(x)
    F.sum(ys[1]).backward()
    assert_allclose(x.grad, [[0, 0], [1, 1], [0, 0]], atol=0, rtol=0)
    assert F.separate(Variable(_u(xp, (0, 2)))) == ()
    with pytest.raises(ValueError, match='0-d'):
        F.separate(Variable(_u(xp, ())))
    with pytest.raises(ValueError, match='out of range'):
        F.separate(x, 2)


def test_separate_then_stack_roundtrip(xp):
    x = _u(xp, (3, 4))
    check_backward(lambda v: F.stack(F.separate(v, 1), 1), x)
    _same(F.stack(F.separate(Variable(x), 1), 1), _cpu(x))


# -- get_item ---------------------------------------------------------------------------------

KEYS = [
    1, -1, slice(None), slice(1, 3), slice(None, None, -1), slice(0, 4, 2),
    (1, 2), (slice(None), 1), (Ellipsis, 0), (None, 1), (0, None, slice(1, 3)),
    (Ellipsis, None), ([0, 2, 2],), [0, 0, 1], (slice(None), [1, 1, 3]),
    (Ellipsis, [3, 0]), ([0, 1], [2, 2]), (numpy.array([[0, 1], [2, 2]]),),
    (numpy.array([True, False, True]),), (numpy.array([2, 0, 2]), slice(1, 3)),
    (slice(0, 0),), ([],), (1, Ellipsis, None), numpy.int64(2), (numpy.array(1), 2),
]


@pytest.mark.parametrize('key', KEYS, ids=[repr(k).replace(' ', '') for k in KEYS])
def test_get_item(xp, key):
    ref = _u(numpy, (3, 4))
    x = xp.asarray(ref)
    if isinstance(key, tuple):   # move index arrays to the device under test
        key = tuple(xp.asarray(e) if isinstance(e, numpy.ndarray) else e for e in key)
    y = F.get_item(Variable(x), key)
    np_key = tuple(_cpu(e) if hasattr(e, 'shape') else e for e in key) \
        if isinstance(key, tuple) else (numpy.asarray(key) if isinstance(key, list) else key)
    _same(y, ref[np_key])
    check_backward(lambda v: F.get_item(v, key), x)
    check_backward(lambda v: v[key], x)


def test_get_item_repeated_indices_accumulate(xp):
    x = Variable(xp.asarray([10.0, 20.0, 30.0]))
    y = x[[0, 2, 0, 0]]
    y.grad = xp.asarray([1.0, 2.0, 3.0, 4.0])
    y.backward()
    assert_allclose(x.grad, [1 + 3 + 4, 0, 2], atol=0, rtol=0)
    x = Variable(xp.ones((2, 3)))
    y = x[:, xp.asarray([1, 1])]
    F.sum(y).backward()
    assert_allclose(x.grad, [[0, 2, 0], [0, 2, 0]], atol=0, rtol=0)


def test_get_item_with_integer_variable_and_zero_size(xp):
    idx = Variable(xp.asarray([1, 1, 0]))
    x = _u(xp, (2, 3))
    y = F.get_item(Variable(x), idx)
    _same(y, _cpu(x)[[1, 1, 0]])
    check_backward(lambda v: v[idx], x)
    z = _u(xp, (0, 3))
    check_backward(lambda v: v[:, 1], z)
    check_backward(lambda v: v[xp.zeros(0, dtype=numpy.int64)], z)
    check_backward(lambda v: v[0], _u(xp, (1,)))


def test_get_item_errors(xp):
    x = Variable(_u(xp, (3, 4)))
    with pytest.raises(IndexError, match=r'\(3, 4\)'):
        x[3]
    with pytest.raises(IndexError, match=r'\(3, 4\)'):
        x[0, 0, 0]
    with pytest.raises(IndexError, match=r'\(3, 4\)'):
        x[[0, 5]]
    with pytest.raises(TypeError, match='float'):
        x[1.0]
    with pytest.raises(TypeError, match='float64'):
        x[xp.asarray([0.0, 1.0])]
    with pytest.raises(TypeError):
        x['a']
    with pytest.raises(TypeError, match='bool'):
        x[True]


# -- pad_sequence -----------------------------------------------------------------------------

def _np_pad(xs, length, padding):
    tail = xs[0].shape[1:]
    out = numpy.full((len(xs), length) + tail, padding, dtype=xs[0].dtype)
    for i, x in enumerate(xs):
        out[i, :len(x)] = x
    return out


@pytest.mark.parametrize('lengths,tail,length,padding', [
    ([3, 1, 2], (2,), None, 0), ([3, 1, 2], (), 5, -1.5), ([1], (4,), None, 0),
    ([2, 2], (1, 3), None, 0), ([0, 2], (2,), None, 7.0), ([0], (2,), 3, 0),
    ([0, 0], (3,), None, 0), ([4], (), 4, 0),
])
def test_pad_sequence(xp, lengths, tail, length, padding):
    xs = [_u(xp, (n,) + tail, seed=i) for i, n in enumerate(lengths)]
    y = F.pad_sequence([Variable(x) for x in xs], length=length, padding=padding)
    T = max(lengths) if length is None else length
    _same(y, _np_pad([_cpu(x) for x in xs], T, padding))
    check_backward(lambda *vs: F.pad_sequence(vs, length=length, padding=padding), tuple(xs))


def test_pad_sequence_integer_labels(xp):
    xs = [xp.asarray([1, 2, 3], dtype=numpy.int32), xp.asarray([4], dtype=numpy.int32)]
    y = F.pad_sequence(xs, padding=-1)
    assert y.dtype == numpy.int32
    _same(y, numpy.array([[1, 2, 3], [4, -1, -1]], dtype=numpy.int32))


def test_pad_sequence_errors(xp):
    a = Variable(_u(xp, (3, 2)))
    with pytest.raises(ValueError, match='at least one'):
        F.pad_sequence([])
    with pytest.raises(ValueError, match=r'\(3, 3\).*\(3, 2\)'):
        F.pad_sequence([a, Variable(_u(xp, (3, 3)))])
    with pytest.raises(ValueError, match='shorter'):
        F.pad_sequence([a], length=2)
    with pytest.raises(ValueError, match='0-d'):
        F.pad_sequence([Variable(_u(xp, ()))])
    with pytest.raises(TypeError):
        F.pad_sequence([a, _u(xp, (3, 2), dtype=numpy.float32)])
    with pytest.raises(TypeError):
        F.pad_sequence(a)
    with pytest.raises(TypeError):
        F.pad_sequence([a], padding='x')


# -- transpose_sequence ------------------------------------------------------------------------

def _np_transpose_sequence(xs):
    if not xs or len(xs[0]) == 0:
        return []
    return [numpy.stack([x[t] for x in xs if len(x) > t]) for t in range(len(xs[0]))]


@pytest.mark.parametrize('lengths,tail', [
    ([4, 3, 3, 1], (2,)), ([3, 3], ()), ([1], (3,)), ([5], (2, 2)), ([1, 1, 1], (2,)),
    ([3, 2, 0], (2,)), ([2, 1], (0,)),
])
def test_transpose_sequence(xp, lengths, tail):
    xs = [_u(xp, (n,) + tail, seed=i) for i, n in enumerate(lengths)]
    ys = F.transpose_sequence([Variable(x) for x in xs])
    assert isinstance(ys, list)
    refs = _np_transpose_sequence([_cpu(x) for x in xs])
    assert len(ys) == len(refs) == lengths[0]
    for y, r in zip(ys, refs):
        _same(y, r)
    check_backward(lambda *vs: tuple(F.transpose_sequence(vs)), tuple(xs))


def test_transpose_sequence_is_its_own_inverse(xp):
    xs = [_u(xp, (n, 3), seed=n) for n in (5, 4, 4, 2, 1)]
    ys = F.transpose_sequence(xs)
    # batch sizes are the conjugate of the lengths: B_t = #{b: T_b > t}
    assert [y.shape[0] for y in ys] == [5, 4, 3, 3, 1]
    back = F.transpose_sequence(ys)
    assert len(back) == len(xs)
    for b, x in zip(back, xs):
        _same(b, _cpu(x))
    check_backward(lambda *vs: tuple(F.transpose_sequence(F.transpose_sequence(vs))),
                   tuple(xs))


def test_transpose_sequence_unused_steps_and_ints(xp):
    xs = [Variable(_u(xp, (3, 2), seed=1)), Variable(_u(xp, (2, 2), seed=2))]
    ys = F.transpose_sequence(xs)
    F.sum(ys[1]).backward()          # steps 0 and 2 unused
    assert_allclose(xs[0].grad, [[0, 0], [1, 1], [0, 0]], atol=0, rtol=0)
    assert_allclose(xs[1].grad, [[0, 0], [1, 1]], atol=0, rtol=0)
    labels = [xp.asarray([1, 2, 3]), xp.asarray([4, 5])]
    ts = F.transpose_sequence(labels)
    assert [t.array.tolist() for t in ts] == [[1, 4], [2, 5], [3]]
    assert F.transpose_sequence([]) == []
    assert F.transpose_sequence([xp.zeros((0, 2))]) == []


def test_transpose_sequence_errors(xp):
    with pytest.raises(ValueError, match=r'sorted by decreasing length.*\[2, 3\]'):
        F.transpose_sequence([_u(xp, (2, 1)), _u(xp, (3, 1))])
    with pytest.raises(ValueError, match=r'\(2, 2\).*\(3, 1\)'):
        F.transpose_sequence([_u(xp, (3, 1)), _u(xp, (2, 2))])
    with pytest.raises(ValueError, match='0-d'):
        F.transpose_sequence([_u(xp, ())])
    with pytest.raises(TypeError):
        F.transpose_sequence([_u(xp, (3, 1)), _u(xp, (2, 1), dtype=numpy.float32)])
    with pytest.raises(TypeError):
        F.transpose_sequence(_u(xp, (3, 1)))


# -- Variable methods use these functions ----------------------------------------------------

def test_variable_shape_methods(xp):
    x = _u(xp, (2, 3, 4))
    v = Variable(x)
    _same(v.reshape(4, 6), _cpu(x).reshape(4, 6))
    _same(v.reshape((4, -1)), _cpu(x).reshape(4, 6))
    _same(v.transpose(), _cpu(x).transpose())
    _same(v.transpose(1, 0, 2), _cpu(x).transpose(1, 0, 2))
    _same(v.transpose((2, 0, 1)), _cpu(x).transpose(2, 0, 1))
    _same(v.T, _cpu(x).T)
    _same(v[1, :, ::2], _cpu(x)[1, :, ::2])
    check_backward(lambda u: u.reshape(4, 6).T[1:, [0, 0]], x)


def test_gpu_scatter_add_helper_accumulates_through_ufunc_at():
    # the CuPy path prefers ``xp.add.at``; exercise that branch with NumPy standing in
    from seqdbr.core.functions.array import _gpu_scatter_add
    a = numpy.zeros((3, 2))
    _gpu_scatter_add(numpy, a, (numpy.array([0, 2, 0]), slice(None)), numpy.ones((3, 2)))
    numpy.testing.assert_array_equal(a, [[2, 2], [0, 0], [1, 1]])
