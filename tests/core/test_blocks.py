"""Building blocks of issue 15 added to existing families: logsumexp, prod, cumsum, argmax
(math), flip, pad, select_item (array), gelu, swish (activation), matmul with transa/transb
and batch_matmul (basic_math), softmax_cross_entropy's label_smoothing (loss).

Forward values are compared with NumPy (or ``math``) references written here; backward with
float64 ``check_backward`` over several shapes, including batch 1, length 1 and zero-size."""
import math

import numpy
import pytest

import seqdbr.functions as F
from seqdbr import Variable
from seqdbr.core import backend
from seqdbr.gradient_check import check_backward, assert_allclose


def _u(xp, shape, lo=-1.0, hi=1.0, seed=0, dtype=numpy.float64):
    return xp.asarray(numpy.random.RandomState(seed).uniform(lo, hi, shape).astype(dtype))


def _cpu(a):
    return backend.to_cpu(a.array if isinstance(a, Variable) else a)


# -- logsumexp ------------------------------------------------------------------------------

@pytest.mark.parametrize('shape,axis', [((3, 4), 1), ((3, 4), 0), ((3, 4), None), ((1, 1), 1),
                                        ((2, 3, 4), (0, 2)), ((5,), -1), ((0, 3), 1)])
def test_logsumexp(xp, shape, axis):
    x = _u(xp, shape, -3, 3)
    ref = numpy.log(numpy.exp(_cpu(x)).sum(axis=axis))
    assert_allclose(F.logsumexp(x, axis=axis), ref, atol=1e-14, rtol=1e-14)
    check_backward(lambda v: F.logsumexp(v, axis=axis), x)
    y = F.logsumexp(x, axis=axis, keepdims=True)
    assert y.shape == numpy.exp(_cpu(x)).sum(axis=axis, keepdims=True).shape


def test_logsumexp_large_and_infinite_inputs(xp):
    x = xp.asarray([[1e4, 1e4], [-numpy.inf, -numpy.inf], [0.0, -numpy.inf]])
    v = Variable(x)
    y = F.logsumexp(v, axis=1)
    assert_allclose(y, [1e4 + math.log(2), -numpy.inf, 0.0], atol=1e-12, rtol=0)
    F.sum(F.where(xp.isfinite(y.array), y, xp.zeros(3))).backward()
    # softmax of each row; the all -inf row has no softmax and gets 0, not nan
    assert_allclose(v.grad, [[0.5, 0.5], [0, 0], [1, 0]], atol=1e-12, rtol=0)
    assert F.logsumexp(xp.zeros((2, 0)), axis=1).array.tolist() == [-numpy.inf] * 2


# -- prod ---------------------------------------------------------------------------------

@pytest.mark.parametrize('shape,axis', [((3, 4), 1), ((3, 4), None), ((2, 3, 4), (0, 2)),
                                        ((1,), 0), ((4, 1), 0), ((0, 3), 0)])
def test_prod(xp, shape, axis):
    x = _u(xp, shape, 0.5, 1.5)
    assert_allclose(F.prod(x, axis=axis), numpy.prod(_cpu(x), axis=axis), atol=0, rtol=1e-14)
    check_backward(lambda v: F.prod(v, axis=axis), x)


def test_prod_gradient_with_zeros_by_hand(xp):
    # d/dx_i prod = product of the others, also where x_i or another x_j is 0
    v = Variable(xp.asarray([[2.0, 0.0, 3.0], [0.0, 0.0, 5.0], [1.0, 2.0, 4.0]]))
    F.sum(F.prod(v, axis=1)).backward()
    assert_allclose(v.grad, [[0, 6, 0], [0, 0, 0], [8, 4, 2]], atol=0, rtol=0)
    check_backward(lambda a: F.prod(a, axis=1), xp.asarray([[2.0, 0.0, 3.0], [0.5, 1.5, 2.0]]))


# -- cumsum --------------------------------------------------------------------------------

@pytest.mark.parametrize('shape,axis', [((3, 4), 1), ((3, 4), 0), ((3, 4), -1), ((3, 4), None),
                                        ((1,), 0), ((2, 1, 3), 1), ((0, 3), 1), ((0, 3), None)])
def test_cumsum(xp, shape, axis):
    x = _u(xp, shape)
    assert_allclose(F.cumsum(x, axis=axis), numpy.cumsum(_cpu(x), axis=axis), atol=1e-15,
                    rtol=1e-14)
    check_backward(lambda v: F.cumsum(v, axis=axis), x)


def test_cumsum_gradient_by_hand(xp):
    v = Variable(xp.asarray([1.0, 2.0, 3.0]))
    y = F.sum(F.cumsum(v) * xp.asarray([1.0, 10.0, 100.0]))
    y.backward()
    assert_allclose(v.grad, [111.0, 110.0, 100.0], atol=0, rtol=0)


# -- argmax -------------------------------------------------------------------------------

def test_argmax(xp):
    x = xp.asarray([[1.0, 5.0, 5.0], [7.0, -1.0, 0.0]])
    y = F.argmax(Variable(x), axis=1)
    assert y.dtype == numpy.int32 and not y.requires_grad and y.creator is None
    assert _cpu(y).tolist() == [1, 0]               # first maximum on ties
    assert _cpu(F.argmax(x, axis=0)).tolist() == [1, 0, 0]
    assert int(_cpu(F.argmax(x))) == 3
    assert _cpu(F.argmax(xp.asarray([[3, 9, 2]], dtype=numpy.int64), axis=-1)).tolist() == [1]


def test_argmax_errors(xp):
    with pytest.raises(ValueError, match='zero-length'):
        F.argmax(xp.zeros((2, 0)), axis=1)
    with pytest.raises(ValueError, match='out of range'):
        F.argmax(xp.zeros((2, 3)), axis=2)
    with pytest.raises(TypeError, match='axis'):
        F.argmax(xp.zeros((2, 3)), axis=1.0)


# -- flip ---------------------------------------------------------------------------------

@pytest.mark.parametrize('shape,axis', [((3, 4), 0), ((3, 4), 1), ((3, 4), -1),
                                        ((2, 3, 4), (0, 2)), ((2, 3), None), ((1,), 0),
                                        ((0, 3), 1)])
def test_flip(xp, shape, axis):
    x = _u(xp, shape)
    assert_allclose(F.flip(x, axis), numpy.flip(_cpu(x), axis=axis), atol=0, rtol=0)
    check_backward(lambda v: F.flip(v, axis), x)


def test_flip_errors(xp):
    with pytest.raises(ValueError, match='out of range'):
        F.flip(xp.zeros((2, 3)), 2)
    with pytest.raises(ValueError, match='repeats'):
        F.flip(xp.zeros((2, 3)), (1, -1))


# -- pad ------------------------------------------------------------------------------------

@pytest.mark.parametrize('shape,width', [((3, 4), 1), ((3, 4), (1, 2)), ((3, 4), ((0, 1), (2, 0))),
                                         ((1,), (0, 3)), ((2, 1, 3), ((1, 1), (0, 0), (2, 1))),
                                         ((0, 2), 1)])
def test_pad(xp, shape, width):
    x = _u(xp, shape)
    assert_allclose(F.pad(x, width, constant_values=-2.5),
                    numpy.pad(_cpu(x), width, 'constant', constant_values=-2.5), atol=0, rtol=0)
    check_backward(lambda v: F.pad(v, width), x)


def test_pad_errors(xp):
    x = xp.zeros((2, 3))
    with pytest.raises(ValueError, match='negative'):
        F.pad(x, -1)
    with pytest.raises(ValueError, match='does not fit'):
        F.pad(x, ((1, 1), (1, 1), (1, 1)))
    with pytest.raises(ValueError, match="mode='constant'"):
        F.pad(x, 1, mode='reflect')
    with pytest.raises(ValueError, match='0-d'):
        F.pad(xp.zeros(()), 1)


# -- select_item ---------------------------------------------------------------------------

@pytest.mark.parametrize('B,C', [(4, 3), (1, 1), (1, 5), (0, 3)])
def test_select_item(xp, B, C):
    x = _u(xp, (B, C))
    t = xp.asarray(numpy.random.RandomState(1).randint(-C, C, B).astype(numpy.int32))
    ref = numpy.array([_cpu(x)[b, int(_cpu(t)[b])] for b in range(B)])
    assert_allclose(F.select_item(x, t), ref.reshape(B), atol=0, rtol=0)
    check_backward(lambda v: F.select_item(v, t), x)


def test_select_item_errors(xp):
    x = xp.zeros((2, 3))
    with pytest.raises(IndexError, match='index 3 is out of range'):
        F.select_item(x, xp.asarray([0, 3]))
    with pytest.raises(ValueError, match=r'shape \(B,\) = \(2,\)'):
        F.select_item(x, xp.asarray([0, 1, 2]))
    with pytest.raises(TypeError, match='integer'):
        F.select_item(x, xp.asarray([0.0, 1.0]))
    with pytest.raises(ValueError, match='2-d'):
        F.select_item(xp.zeros(3), xp.asarray([0]))


# -- gelu / swish ---------------------------------------------------------------------------

@pytest.mark.parametrize('shape', [(3, 4), (1,), (), (0, 2)])
def test_gelu(xp, shape):
    x = _u(xp, shape, -4, 4)
    exact = numpy.vectorize(lambda v: 0.5 * v * (1 + math.erf(v / math.sqrt(2))))
    tanh_form = numpy.vectorize(lambda v: 0.5 * v * (1 + math.tanh(
        math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3))))
    xc = _cpu(x)
    if xc.size:
        assert_allclose(F.gelu(x), exact(xc), atol=1e-15, rtol=1e-14)
        assert_allclose(F.gelu(x, approximate='tanh'), tanh_form(xc), atol=1e-15, rtol=1e-14)
    check_backward(F.gelu, x)
    check_backward(lambda v: F.gelu(v, approximate='tanh'), x)


def test_gelu_float32_and_errors(xp):
    y = F.gelu(_u(xp, (2, 3), dtype=numpy.float32))
    assert y.dtype == numpy.float32
    with pytest.raises(ValueError, match='approximate'):
        F.gelu(xp.zeros(2), approximate='erf')
    with pytest.raises(TypeError, match='floating'):
        F.gelu(xp.zeros(2, dtype=numpy.int32))


@pytest.mark.parametrize('shape,beta_shape', [((3, 4), None), ((), None), ((3, 4), (4,)),
                                              ((1, 1), (1,)),
                                              ((2, 3, 2), (3, 2)), ((0, 3), (3,))])
def test_swish(xp, shape, beta_shape):
    x = _u(xp, shape, -3, 3)
    if beta_shape is None:
        beta, bc = 1.5, 1.5
        assert_allclose(F.swish(x, beta), _cpu(x) / (1 + numpy.exp(-bc * _cpu(x))), atol=1e-15,
                        rtol=1e-14)
        check_backward(lambda v: F.swish(v, beta), x)
        return
    beta = _u(xp, beta_shape, 0.5, 2, seed=3)
    ref = _cpu(x) / (1 + numpy.exp(-_cpu(beta) * _cpu(x)))
    assert_allclose(F.swish(x, beta), ref, atol=1e-15, rtol=1e-14)
    check_backward(F.swish, (x, beta))


def test_swish_errors(xp):
    with pytest.raises(ValueError, match='does not broadcast'):
        F.swish(xp.zeros((2, 3)), xp.ones((2,)))
    with pytest.raises(TypeError, match='dtype'):
        F.swish(xp.zeros((2, 3)), xp.ones((3,), dtype=numpy.float32))
    with pytest.raises(ValueError, match='finite'):
        F.swish(xp.zeros((2, 3)), float('nan'))


# -- matmul(transa, transb) / batch_matmul ----------------------------------------------------

def _t(a):
    return a if a.ndim < 2 else numpy.swapaxes(a, -1, -2)


@pytest.mark.parametrize('sa,sb,ta,tb', [
    ((3, 4), (5, 4), False, True), ((4, 3), (4, 5), True, False), ((4, 3), (5, 4), True, True),
    ((2, 3, 4), (2, 5, 4), False, True), ((2, 4, 3), (4, 5), True, False),
    ((1, 1, 1), (3, 1, 1), True, True), ((4,), (5, 4), False, True),
    ((2, 0, 3), (2, 4, 3), False, True)])
def test_matmul_transposed(xp, sa, sb, ta, tb):
    a, b = _u(xp, sa), _u(xp, sb, seed=1)
    ref = numpy.matmul(_t(_cpu(a)) if ta else _cpu(a), _t(_cpu(b)) if tb else _cpu(b))
    assert_allclose(F.matmul(a, b, transa=ta, transb=tb), ref, atol=1e-14, rtol=1e-14)
    check_backward(lambda x, y: F.matmul(x, y, transa=ta, transb=tb), (a, b))


def test_matmul_transposed_error_names_shapes(xp):
    with pytest.raises(ValueError,
                       match=r'\(3, 4\) \(transposed\) and \(3, 4\) \(transposed\) are not'):
        F.matmul(xp.zeros((3, 4)), xp.zeros((3, 4)), transa=True, transb=True)


@pytest.mark.parametrize('sa,sb,ta,tb', [((2, 3, 4), (2, 4, 5), False, False),
                                         ((2, 4, 3), (2, 5, 4), True, True),
                                         ((3, 4, 2), (3, 4), True, False),
                                         ((1, 1, 1), (1, 1, 1), False, False),
                                         ((0, 2, 3), (0, 3, 1), False, False)])
def test_batch_matmul(xp, sa, sb, ta, tb):
    a, b = _u(xp, sa), _u(xp, sb, seed=1)
    A = _cpu(a) if len(sa) == 3 else _cpu(a)[:, :, None]
    Bm = _cpu(b) if len(sb) == 3 else _cpu(b)[:, :, None]
    ref = numpy.stack([(A[i].T if ta else A[i]) @ (Bm[i].T if tb else Bm[i])
                       for i in range(A.shape[0])]) if A.shape[0] else numpy.zeros(
        (0, sa[1], sb[2]))
    assert_allclose(F.batch_matmul(a, b, ta, tb), ref, atol=1e-14, rtol=1e-14)
    check_backward(lambda x, y: F.batch_matmul(x, y, ta, tb), (a, b))


def test_batch_matmul_errors(xp):
    with pytest.raises(ValueError, match='batch sizes 2 and 3'):
        F.batch_matmul(xp.zeros((2, 3, 4)), xp.zeros((3, 4, 5)))
    with pytest.raises(ValueError, match='3-d'):
        F.batch_matmul(xp.zeros((2, 3, 4, 1)), xp.zeros((2, 4, 5)))
    with pytest.raises(ValueError, match='not aligned'):
        F.batch_matmul(xp.zeros((2, 3, 4)), xp.zeros((2, 3, 5)))


# -- softmax_cross_entropy label_smoothing ---------------------------------------------------

def _smoothed_ce_ref(x, t, e, ignore=-1):
    """-sum_c q_c log softmax(x)_c with q = (1 - e) onehot + e / C, per example (0 ignored)."""
    C = x.shape[1]
    lp = x - x.max(axis=1, keepdims=True)
    lp = lp - numpy.log(numpy.exp(lp).sum(axis=1, keepdims=True))
    lp = numpy.moveaxis(lp, 1, -1).reshape(-1, C)
    out = []
    for row, label in zip(lp, t.reshape(-1)):
        if label == ignore:
            out.append(0.0)
            continue
        q = numpy.full(C, e / C)
        q[label] += 1 - e
        out.append(-(q * row).sum())
    return numpy.array(out).reshape(t.shape)


@pytest.mark.parametrize('shape,e', [((4, 5), 0.1), ((1, 3), 0.2), ((3, 1), 0.1),
                                     ((2, 4, 3), 0.3), ((4, 5), 1.0), ((0, 5), 0.1)])
def test_softmax_cross_entropy_label_smoothing(xp, shape, e):
    x = _u(xp, shape, -3, 3)
    rs = numpy.random.RandomState(2)
    t = rs.randint(0, shape[1], (shape[0],) + shape[2:]).astype(numpy.int32)
    if t.size > 2:
        t.reshape(-1)[1] = -1                          # one ignored label
    tx = xp.asarray(t)
    ref = _smoothed_ce_ref(_cpu(x), t, e)
    assert_allclose(F.softmax_cross_entropy(x, tx, reduce='no', label_smoothing=e), ref,
                    atol=1e-14, rtol=1e-13)
    n = max(int((t != -1).sum()), 1)
    assert_allclose(F.softmax_cross_entropy(x, tx, label_smoothing=e), ref.sum() / n,
                    atol=1e-14, rtol=1e-13)
    check_backward(lambda v: F.softmax_cross_entropy(v, tx, label_smoothing=e), x)
    check_backward(lambda v: F.softmax_cross_entropy(v, tx, reduce='no', label_smoothing=e), x)


def test_label_smoothing_zero_is_plain_and_bad_values(xp):
    x = _u(xp, (3, 4))
    t = xp.asarray([0, 3, 1])
    assert_allclose(F.softmax_cross_entropy(x, t, label_smoothing=0.0),
                    F.softmax_cross_entropy(x, t).array, atol=0, rtol=0)
    for bad in (-0.1, 1.5, True, 'x'):
        with pytest.raises(ValueError, match=r'label_smoothing must be a number in \[0, 1\]'):
            F.softmax_cross_entropy(x, t, label_smoothing=bad)
