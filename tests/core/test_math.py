"""seqdbr.core.functions.math: elementwise functions, reductions, clip/where/maximum/minimum
and cast. NumPy reference values for forward, float64 check_backward for backward."""
import warnings

import numpy
import pytest

import seqdbr.functions as F
from seqdbr import Variable
from seqdbr.core import backend
from seqdbr.gradient_check import check_backward, assert_allclose


def _u(xp, shape, lo=-1.0, hi=1.0, seed=0, dtype=numpy.float64):
    return xp.asarray(numpy.random.RandomState(seed).uniform(lo, hi, shape).astype(dtype))


def _distinct(xp, shape, seed=0):
    """Values with no ties, at least 0.1 apart: max/min have a unique, stable argmax."""
    n = int(numpy.prod(shape, dtype=numpy.int64))
    vals = numpy.random.RandomState(seed).permutation(n) * 0.1 - 0.05 * n
    return xp.asarray(vals.reshape(shape).astype(numpy.float64))


def _cpu(a):
    return backend.to_cpu(a.array if isinstance(a, Variable) else a)


SHAPES = [(3, 4), (1, 4), (5,), (1,), (), (0, 3), (2, 1, 3)]


# -- exp / log / sqrt ---------------------------------------------------------------------

@pytest.mark.parametrize('shape', SHAPES)
def test_exp(xp, shape):
    x = _u(xp, shape, -2, 2)
    assert_allclose(F.exp(Variable(x)), numpy.exp(_cpu(x)), atol=0, rtol=1e-14)
    check_backward(F.exp, x)


@pytest.mark.parametrize('shape', SHAPES)
def test_log(xp, shape):
    x = _u(xp, shape, 0.5, 3)
    assert_allclose(F.log(Variable(x)), numpy.log(_cpu(x)), atol=0, rtol=1e-14)
    check_backward(F.log, x)


@pytest.mark.parametrize('shape', SHAPES)
def test_sqrt(xp, shape):
    x = _u(xp, shape, 0.5, 3)
    assert_allclose(F.sqrt(Variable(x)), numpy.sqrt(_cpu(x)), atol=0, rtol=1e-14)
    check_backward(F.sqrt, x)


def test_elementwise_gradients_by_hand(xp):
    x = Variable(xp.asarray([0.0, 1.0]))
    F.sum(F.exp(x)).backward()
    assert_allclose(x.grad, [1.0, numpy.e], atol=0, rtol=1e-15)
    x = Variable(xp.asarray([0.5, 4.0]))
    F.sum(F.log(x)).backward()
    assert_allclose(x.grad, [2.0, 0.25], atol=0, rtol=1e-15)
    x = Variable(xp.asarray([4.0, 0.25]))
    F.sum(F.sqrt(x)).backward()
    assert_allclose(x.grad, [0.25, 1.0], atol=0, rtol=1e-15)


@pytest.mark.parametrize('fn', [F.exp, F.log, F.sqrt])
def test_elementwise_keep_float32_and_reject_int(xp, fn):
    x = Variable(_u(xp, (2, 3), 0.5, 2, dtype=numpy.float32))
    y = fn(x)
    assert y.dtype == numpy.float32
    F.sum(y).backward()
    assert x.grad.dtype == numpy.float32
    with pytest.raises(TypeError, match='int32'):
        fn(xp.ones((2, 3), dtype=numpy.int32))
    with pytest.raises(TypeError, match='int64'):
        fn(Variable(xp.ones((2, 3), dtype=numpy.int64)))
    with pytest.raises(TypeError):
        fn([1.0, 2.0])


# -- sum / mean ----------------------------------------------------------------------------

REDUCE_CASES = [
    ((3, 4), None), ((3, 4), 0), ((3, 4), 1), ((3, 4), -1), ((3, 4), (0, 1)),
    ((2, 3, 4), (0, 2)), ((2, 3, 4), (-1, -3)), ((2, 3, 4), (2, 0)), ((1, 4), 0),
    ((5,), 0), ((1,), None), ((), None), ((0, 3), 1), ((0, 3), 0), ((0, 3), None),
    ((2, 1, 3), 1),
]


@pytest.mark.parametrize('shape,axis', REDUCE_CASES)
@pytest.mark.parametrize('keepdims', [False, True])
def test_sum(xp, shape, axis, keepdims):
    x = _u(xp, shape)
    y = F.sum(Variable(x), axis=axis, keepdims=keepdims)
    ref = numpy.sum(_cpu(x), axis=axis, keepdims=keepdims)
    assert y.shape == ref.shape
    assert isinstance(y.array, xp.ndarray)
    assert_allclose(y, ref, atol=1e-14, rtol=1e-14)
    check_backward(lambda v: F.sum(v, axis=axis, keepdims=keepdims), x)


@pytest.mark.parametrize('shape,axis', [c for c in REDUCE_CASES
                                        if 0 not in c[0] or c[1] == 1])
@pytest.mark.parametrize('keepdims', [False, True])
def test_mean(xp, shape, axis, keepdims):
    x = _u(xp, shape)
    y = F.mean(Variable(x), axis=axis, keepdims=keepdims)
    ref = numpy.mean(_cpu(x), axis=axis, keepdims=keepdims)
    assert y.shape == ref.shape
    assert_allclose(y, ref, atol=1e-14, rtol=1e-14)
    check_backward(lambda v: F.mean(v, axis=axis, keepdims=keepdims), x)


def test_mean_over_empty_axis_is_nan_with_empty_gradient(xp):
    x = Variable(xp.zeros((0, 3)))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)
        y = F.mean(x, axis=0)
    assert y.shape == (3,)
    assert numpy.isnan(_cpu(y.array)).all()
    y.grad = xp.ones(3)
    y.backward()
    assert x.grad.shape == (0, 3)


def test_sum_mean_gradients_by_hand(xp):
    x = Variable(xp.arange(6.0).reshape(2, 3))
    y = F.sum(x, axis=1)
    y.grad = xp.asarray([1.0, 10.0])
    y.backward()
    assert_allclose(x.grad, [[1, 1, 1], [10, 10, 10]], atol=0, rtol=0)
    x.cleargrad()
    F.mean(x).backward()
    assert_allclose(x.grad, numpy.full((2, 3), 1 / 6.0), atol=0, rtol=1e-15)


def test_reduction_leaf_grad_is_writable(xp):
    # the gradient must be a real array, not a read-only broadcast view
    x = Variable(_u(xp, (2, 3)))
    F.sum(x).backward()
    x.grad *= 2
    assert_allclose(x.grad, numpy.full((2, 3), 2.0), atol=0, rtol=0)


def test_sum_keeps_float32(xp):
    x = Variable(_u(xp, (2, 3), dtype=numpy.float32))
    for y in (F.sum(x), F.mean(x), F.sum(x, axis=1), F.max(x), F.min(x, axis=0)):
        assert y.dtype == numpy.float32


@pytest.mark.parametrize('fn', [F.sum, F.mean, F.max, F.min])
def test_reduction_axis_errors(xp, fn):
    x = Variable(_u(xp, (2, 3)))
    with pytest.raises(ValueError, match=r'axis 2 .*\(2, 3\)'):
        fn(x, axis=2)
    with pytest.raises(ValueError, match='-3'):
        fn(x, axis=-3)
    with pytest.raises(ValueError, match='repeats'):
        fn(x, axis=(1, -1))
    with pytest.raises(TypeError):
        fn(x, axis=1.0)
    with pytest.raises(TypeError):
        fn(x, axis='0')
    with pytest.raises(TypeError, match='int'):
        fn(xp.ones((2, 3), dtype=numpy.int32))


# -- max / min --------------------------------------------------------------------------------

MAXMIN_CASES = [
    ((3, 4), None), ((3, 4), 0), ((3, 4), -1), ((2, 3, 4), (0, 2)), ((1, 4), 0),
    ((5,), 0), ((1,), None), ((), None), ((0, 3), 1), ((2, 1, 3), 1),
]


@pytest.mark.parametrize('fn,ref', [(F.max, numpy.max), (F.min, numpy.min)])
@pytest.mark.parametrize('shape,axis', MAXMIN_CASES)
@pytest.mark.parametrize('keepdims', [False, True])
def test_max_min(xp, fn, ref, shape, axis, keepdims):
    x = _distinct(xp, shape)
    y = fn(Variable(x), axis=axis, keepdims=keepdims)
    r = ref(_cpu(x), axis=axis, keepdims=keepdims)
    assert y.shape == r.shape
    assert_allclose(y, r, atol=0, rtol=0)
    check_backward(lambda v: fn(v, axis=axis, keepdims=keepdims), x)


def test_max_min_gradient_goes_to_the_extremum(xp):
    x = Variable(xp.asarray([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]]))
    y = F.max(x, axis=1)
    y.grad = xp.asarray([2.0, 3.0])
    y.backward()
    assert_allclose(x.grad, [[0, 2, 0], [3, 0, 0]], atol=0, rtol=0)
    x.cleargrad()
    F.min(x).backward()
    assert_allclose(x.grad, [[0, 0, 0], [0, 1, 0]], atol=0, rtol=0)


def test_max_min_ties_share_the_gradient_equally(xp):
    x = Variable(xp.asarray([[3.0, 1.0, 3.0, 3.0], [2.0, 2.0, 0.0, 1.0]]))
    y = F.max(x, axis=1)
    y.grad = xp.asarray([3.0, 1.0])
    y.backward()
    assert_allclose(x.grad, [[1, 0, 1, 1], [0.5, 0.5, 0, 0]], atol=0, rtol=0)
    x = Variable(xp.full((2, 2), 4.0))
    F.min(x).backward()
    assert_allclose(x.grad, numpy.full((2, 2), 0.25), atol=0, rtol=0)


@pytest.mark.parametrize('fn', [F.max, F.min])
def test_max_min_over_empty_axis_raises(xp, fn):
    with pytest.raises(ValueError, match=r'zero-length axis 0 .*\(0, 3\)'):
        fn(Variable(xp.zeros((0, 3))), axis=0)
    with pytest.raises(ValueError, match='zero-length'):
        fn(Variable(xp.zeros((0, 3))))


# -- clip ---------------------------------------------------------------------------------------

@pytest.mark.parametrize('shape', [(3, 4), (1,), (), (0, 3), (2, 1, 5)])
@pytest.mark.parametrize('lo,hi', [(-0.5, 0.5), (None, 0.25), (-0.25, None), (-2.0, 2.0)])
def test_clip(xp, shape, lo, hi):
    x = _u(xp, shape, seed=3)
    # keep every element away from the bounds so central differences are exact
    xc = _cpu(x)
    for b in (lo, hi):
        if b is not None:
            xc = numpy.where(numpy.abs(xc - b) < 0.01, xc + 0.05, xc)
    x = xp.asarray(xc)
    y = F.clip(Variable(x), lo, hi)
    assert_allclose(y, numpy.clip(xc, lo, hi), atol=0, rtol=0)
    check_backward(lambda v: F.clip(v, lo, hi), x)


def test_clip_gradient_by_hand_bounds_inclusive(xp):
    x = Variable(xp.asarray([-2.0, -1.0, 0.0, 1.0, 2.0]))
    y = F.clip(x, -1.0, 1.0)
    assert_allclose(y, [-1, -1, 0, 1, 1], atol=0, rtol=0)
    F.sum(y).backward()
    assert_allclose(x.grad, [0, 1, 1, 1, 0], atol=0, rtol=0)


def test_clip_keeps_float32_and_validates(xp):
    x = Variable(_u(xp, (3,), dtype=numpy.float32))
    assert F.clip(x, -0.1, 0.1).dtype == numpy.float32
    assert F.clip(x, numpy.float64(-0.1), None).dtype == numpy.float32
    assert F.clip(x, numpy.asarray(-0.1), xp.asarray(0.1)).dtype == numpy.float32
    with pytest.raises(ValueError, match='both None'):
        F.clip(x, None, None)
    with pytest.raises(ValueError, match='greater'):
        F.clip(x, 1.0, -1.0)
    with pytest.raises(TypeError):
        F.clip(x, xp.zeros(3), 1.0)
    with pytest.raises(TypeError):
        F.clip(xp.arange(3), 0.0, 1.0)


# -- where ---------------------------------------------------------------------------------------

@pytest.mark.parametrize('sc,sx,sy', [
    ((3, 4), (3, 4), (3, 4)), ((3, 4), (4,), (3, 1)), ((1, 4), (3, 1), ()),
    ((), (2, 3), (2, 3)), ((1,), (1,), (1,)), ((0, 3), (0, 3), (3,)), ((2, 1, 3), (4, 1), (3,)),
])
def test_where(xp, sc, sx, sy):
    rs = numpy.random.RandomState(4)
    c = rs.uniform(size=sc) > 0.5
    x = _u(xp, sx, seed=5)
    y = _u(xp, sy, seed=6)
    out = F.where(xp.asarray(c), Variable(x), Variable(y))
    ref = numpy.where(c, _cpu(x), _cpu(y))
    assert out.shape == ref.shape
    assert_allclose(out, ref, atol=0, rtol=0)
    check_backward(lambda a, b: F.where(xp.asarray(c), a, b), (x, y))


def test_where_gradient_by_hand_and_scalars(xp):
    c = xp.asarray([True, False, True])
    x = Variable(xp.asarray([1.0, 2.0, 3.0]))
    y = Variable(xp.asarray([-1.0]))
    out = F.where(c, x, y)
    assert_allclose(out, [1, -1, 3], atol=0, rtol=0)
    F.sum(out).backward()
    assert_allclose(x.grad, [1, 0, 1], atol=0, rtol=0)
    assert_allclose(y.grad, [1], atol=0, rtol=0)
    xf = Variable(xp.asarray([1.0, 2.0, 3.0], dtype=numpy.float32))
    out = F.where(c, xf, 0.0)
    assert out.dtype == numpy.float32
    assert_allclose(out, [1, 0, 3], atol=0, rtol=0)
    out = F.where(Variable(c), 5.0, xf)
    assert_allclose(out, [5, 2, 5], atol=0, rtol=0)


def test_where_errors(xp):
    x = Variable(_u(xp, (2, 3)))
    with pytest.raises(TypeError, match='bool'):
        F.where(xp.ones((2, 3)), x, x)
    with pytest.raises(ValueError) as e:
        F.where(xp.ones((4,), dtype=bool), x, x)
    assert '(4,)' in str(e.value) and '(2, 3)' in str(e.value)
    with pytest.raises(TypeError, match='float32'):
        F.where(xp.ones((2, 3), dtype=bool), x, _u(xp, (2, 3), dtype=numpy.float32))
    with pytest.raises(TypeError):
        F.where(xp.ones((2, 3), dtype=bool), 1.0, 2.0)
    with pytest.raises(TypeError):
        F.where(xp.ones((2, 3), dtype=bool), x, xp.ones((2, 3), dtype=numpy.int32))


# -- maximum / minimum --------------------------------------------------------------------------

@pytest.mark.parametrize('fn,ref', [(F.maximum, numpy.maximum), (F.minimum, numpy.minimum)])
@pytest.mark.parametrize('sa,sb', [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 3), (4, 1)),
                                   ((), (2, 3)), ((1,), (1,)), ((0, 3), (3,))])
def test_maximum_minimum(xp, fn, ref, sa, sb):
    a = _u(xp, sa, seed=7)
    b = _u(xp, sb, seed=8)
    # no near-ties, so central differences stay on one side of the kink
    an, bn = numpy.broadcast_arrays(_cpu(a), _cpu(b))
    if an.size and numpy.abs(an - bn).min() < 0.01:
        pytest.fail('test data has a near tie; change the seed')
    out = fn(Variable(a), Variable(b))
    r = ref(_cpu(a), _cpu(b))
    assert out.shape == r.shape
    assert_allclose(out, r, atol=0, rtol=0)
    check_backward(fn, (a, b))


def test_maximum_minimum_ties_go_to_first_operand(xp):
    a = Variable(xp.asarray([1.0, 2.0, 3.0]))
    b = Variable(xp.asarray([3.0, 2.0, 1.0]))
    F.sum(F.maximum(a, b)).backward()
    assert_allclose(a.grad, [0, 1, 1], atol=0, rtol=0)
    assert_allclose(b.grad, [1, 0, 0], atol=0, rtol=0)
    a.cleargrad()
    b.cleargrad()
    F.sum(F.minimum(a, b)).backward()
    assert_allclose(a.grad, [1, 1, 0], atol=0, rtol=0)
    assert_allclose(b.grad, [0, 0, 1], atol=0, rtol=0)


def test_maximum_with_scalar_is_relu(xp):
    x = Variable(xp.asarray([-1.0, 0.5, 2.0], dtype=numpy.float32))
    y = F.maximum(x, 0.0)
    assert y.dtype == numpy.float32
    assert_allclose(y, [0, 0.5, 2], atol=0, rtol=0)
    F.sum(y).backward()
    assert_allclose(x.grad, [0, 1, 1], atol=0, rtol=0)
    x.cleargrad()
    F.sum(F.minimum(1.0, x)).backward()
    assert_allclose(x.grad, [1, 1, 0], atol=0, rtol=0)
    check_backward(lambda v: F.maximum(v, 0.0), xp.asarray([-1.0, 0.5, 2.0]))


def test_maximum_errors(xp):
    a = Variable(_u(xp, (2, 3)))
    with pytest.raises(ValueError) as e:
        F.maximum(a, Variable(_u(xp, (4,))))
    assert '(2, 3)' in str(e.value) and '(4,)' in str(e.value)
    with pytest.raises(TypeError):
        F.minimum(a, xp.ones((2, 3), dtype=numpy.int64))
    with pytest.raises(TypeError, match='float32'):
        F.maximum(a, _u(xp, (2, 3), dtype=numpy.float32))
    with pytest.raises(TypeError):
        F.maximum(1.0, 2.0)


# -- cast --------------------------------------------------------------------------------

@pytest.mark.parametrize('shape', [(3, 4), (1,), (), (0, 3)])
def test_cast_float_to_float(xp, shape):
    x = _u(xp, shape, dtype=numpy.float32)
    v = Variable(x)
    y = F.cast(v, numpy.float64)
    assert y.dtype == numpy.float64
    assert_allclose(y, _cpu(x).astype(numpy.float64), atol=0, rtol=0)
    y.grad = xp.ones(shape, dtype=numpy.float64) * 0.5
    y.backward()
    assert v.grad.dtype == numpy.float32
    assert_allclose(v.grad, numpy.full(shape, 0.5, dtype=numpy.float32), atol=0, rtol=0)
    # float64 -> float32 -> float64 numeric check (rounding to float32 is exact on float32
    # values, so the round trip is the identity)
    x64 = x.astype(numpy.float64)
    check_backward(lambda u: F.cast(F.cast(u, numpy.float32), numpy.float64), x64)
    check_backward(lambda u: F.cast(u, 'float16'), x64, atol=1e-2, rtol=1e-2, eps=1e-2)


def test_cast_same_dtype_and_integers(xp):
    v = Variable(_u(xp, (3,)))
    assert F.cast(v, numpy.float64) is v
    a = xp.arange(3)
    r = F.cast(a, a.dtype)
    assert isinstance(r, Variable) and r.requires_grad is False
    y = F.cast(xp.arange(3), numpy.float32)
    assert y.dtype == numpy.float32 and y.creator is None and not y.requires_grad
    z = F.cast(v, numpy.int32)
    assert z.dtype == numpy.int32 and z.creator is None and not z.requires_grad
    assert_allclose(z, _cpu(v.array).astype(numpy.int32), atol=0, rtol=0)
    with pytest.raises(TypeError, match='dtype'):
        F.cast(v, 'not-a-dtype')
    with pytest.raises(TypeError, match='None'):
        F.cast(v, None)
