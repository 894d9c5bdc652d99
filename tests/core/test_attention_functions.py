"""Tests for seqdbr.core.functions.attention: scaled_dot_product_attention, masked_softmax,
length_mask. NumPy references written here (loops over the batch), float64 numerical
gradients, the fully-masked-row rule (no NaN forward or backward), errors."""
import itertools

import numpy
import pytest

import seqdbr.functions as F
from seqdbr import Variable
from seqdbr.gradient_check import assert_allclose, check_backward


def _rng(seed=0):
    return numpy.random.default_rng(seed)


def ref_attention(q, k, v, mask=None, scale=None):
    """Reference: explicit loops over the leading axes and the queries."""
    q, k, v = [numpy.asarray(a, dtype=numpy.float64) for a in (q, k, v)]
    lead = q.shape[:-2]
    Tq, D = q.shape[-2:]
    Tk, Dv = v.shape[-2:]
    if scale is None:
        scale = 1.0 / numpy.sqrt(D) if D else 1.0
    full = numpy.ones(lead + (Tq, Tk), bool) if mask is None else \
        numpy.broadcast_to(mask, lead + (Tq, Tk))
    y = numpy.zeros(lead + (Tq, Dv))
    p = numpy.zeros(lead + (Tq, Tk))
    for idx in itertools.product(*[range(n) for n in lead]):
        for i in range(Tq):
            allowed = [j for j in range(Tk) if full[idx + (i, j)]]
            if not allowed:
                continue
            s = numpy.array([scale * numpy.dot(q[idx + (i,)], k[idx + (j,)]) for j in allowed])
            w = numpy.exp(s - s.max())
            w /= w.sum()
            for wj, j in zip(w, allowed):
                p[idx + (i, j)] = wj
                y[idx + (i,)] += wj * v[idx + (j,)]
    return y, p


CASES = [  # (lead axes, Tq, Tk, D, Dv)
    ((2,), 3, 4, 5, 2),
    ((1,), 1, 1, 1, 1),        # batch 1, length 1
    ((2, 3), 2, 5, 4, 3),      # multi-head layout
    ((), 3, 2, 4, 4),          # plain 2-d
    ((2,), 1, 6, 3, 2),        # one decoder step
]


def _inputs(lead, Tq, Tk, D, Dv, dtype=numpy.float64, seed=0):
    r = _rng(seed)
    return (r.standard_normal(lead + (Tq, D)).astype(dtype),
            r.standard_normal(lead + (Tk, D)).astype(dtype),
            r.standard_normal(lead + (Tk, Dv)).astype(dtype))


def _random_mask(shape, seed=1, p=0.6):
    return _rng(seed).uniform(size=shape) < p


@pytest.mark.parametrize('case', CASES)
@pytest.mark.parametrize('dtype', [numpy.float32, numpy.float64])
def test_sdpa_forward_matches_reference(case, dtype):
    lead, Tq, Tk, D, Dv = case
    q, k, v = _inputs(lead, Tq, Tk, D, Dv, dtype)
    for mask in (None, _random_mask(lead + (Tq, Tk)),
                 _random_mask(lead + (1, Tk), seed=3) if lead else None):
        y, p = F.scaled_dot_product_attention(q, k, v, mask=mask, return_weights=True)
        y_ref, p_ref = ref_attention(q, k, v, mask)
        assert y.dtype == dtype and y.shape == lead + (Tq, Dv) and p.shape == lead + (Tq, Tk)
        tol = 1e-5 if dtype == numpy.float32 else 1e-12
        assert_allclose(y, y_ref, atol=tol, rtol=tol)
        assert_allclose(p, p_ref, atol=tol, rtol=tol)
        if mask is not None:
            assert (p.array[~numpy.broadcast_to(mask, p.shape)] == 0).all()


def test_sdpa_custom_scale():
    q, k, v = _inputs((2,), 3, 4, 5, 2)
    y = F.scaled_dot_product_attention(q, k, v, scale=1.0)
    assert_allclose(y, ref_attention(q, k, v, scale=1.0)[0], atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize('shape', [((0,), 2, 3, 4, 2), ((2,), 0, 3, 4, 2),
                                   ((2,), 3, 0, 4, 2), ((2,), 3, 4, 0, 2)])
def test_sdpa_zero_size(shape):
    lead, Tq, Tk, D, Dv = shape
    q, k, v = _inputs(lead, Tq, Tk, D, Dv)
    y, p = F.scaled_dot_product_attention(q, k, v, return_weights=True)
    y_ref, p_ref = ref_attention(q, k, v)
    assert y.shape == y_ref.shape and p.shape == p_ref.shape
    assert_allclose(y, y_ref, atol=1e-12)      # Tk = 0: every query gets a zero output
    check_backward(lambda q, k, v: F.scaled_dot_product_attention(q, k, v), (q, k, v))


def _fully_masked_case(dtype):
    q, k, v = _inputs((2,), 3, 4, 5, 2, dtype)
    mask = numpy.ones((2, 3, 4), bool)
    mask[0, 1, :] = False            # query 1 of example 0 sees nothing
    mask[1, :, :] = False            # example 1 sees nothing at all
    mask[0, 2, 3] = False
    return q, k, v, mask


@pytest.mark.parametrize('dtype', [numpy.float16, numpy.float32, numpy.float64])
def test_fully_masked_rows_zero_and_no_nan(dtype):
    q, k, v, mask = _fully_masked_case(dtype)
    k[0, 3] = 1e4 if dtype != numpy.float16 else 1e3    # exp(score) would overflow
    with numpy.errstate(over='raise', invalid='raise', divide='raise'):   # underflow is fine
        qv, kv, vv = Variable(q), Variable(k), Variable(v)
        y, p = F.scaled_dot_product_attention(qv, kv, vv, mask=mask, return_weights=True)
        assert (y.array[0, 1] == 0).all() and (y.array[1] == 0).all()
        assert (p.array[0, 1] == 0).all() and (p.array[1] == 0).all()
        assert numpy.isfinite(y.array).all() and numpy.isfinite(p.array).all()
        F.sum(y * y + F.sum(p * p)).backward()
    for g in (qv.grad, kv.grad, vv.grad):
        assert numpy.isfinite(g).all()
    assert (qv.grad[0, 1] == 0).all() and (qv.grad[1] == 0).all()
    assert (kv.grad[1] == 0).all() and (vv.grad[1] == 0).all()
    # key 3 of example 0 is visible to query 0 only: its value gradient is p[0, 0, 3] * gy[0, 0]
    expect = p.array[0, 0, 3].astype(numpy.float64) * 2 * y.array[0, 0].astype(numpy.float64)
    assert_allclose(vv.grad[0, 3].astype(numpy.float64), expect, atol=1e-2, rtol=1e-2)


def test_masked_values_do_not_matter():
    q, k, v, mask = _fully_masked_case(numpy.float64)
    y1 = F.scaled_dot_product_attention(q, k, v, mask=mask).array
    k2, v2 = k.copy(), v.copy()
    k2[1] = 123.0
    v2[1] = -7.0
    y2 = F.scaled_dot_product_attention(q, k2, v2, mask=mask).array
    assert (y1 == y2).all()


@pytest.mark.parametrize('case', CASES + [((2,), 3, 0, 2, 2)])
def test_sdpa_gradient(case):
    lead, Tq, Tk, D, Dv = case
    q, k, v = _inputs(lead, Tq, Tk, D, Dv)
    check_backward(lambda q, k, v: F.scaled_dot_product_attention(q, k, v), (q, k, v))
    mask = _random_mask(lead + (Tq, Tk), seed=5)
    check_backward(lambda q, k, v: F.scaled_dot_product_attention(
        q, k, v, mask=mask, return_weights=True), (q, k, v))


def test_sdpa_gradient_fully_masked_rows():
    q, k, v, mask = _fully_masked_case(numpy.float64)
    check_backward(lambda q, k, v: F.scaled_dot_product_attention(
        q, k, v, mask=mask, return_weights=True), (q, k, v))
    check_backward(lambda q, k, v: F.scaled_dot_product_attention(
        q, k, v, mask=mask[:, :1], scale=0.7), (q, k, v))


def test_sdpa_gradient_weights_only():
    """Only the weights output is used downstream (grad of y is None)."""
    q, k, v = _inputs((2,), 3, 4, 5, 2)
    check_backward(lambda q, k, v: F.scaled_dot_product_attention(
        q, k, v, return_weights=True)[1], (q, k, v))


@pytest.mark.parametrize('shapes,match', [
    (((2, 3, 4), (2, 5, 3), (2, 5, 2)), 'D=4 features but k has 3'),
    (((2, 3, 4), (2, 5, 4), (2, 6, 2)), 'Tk=5 keys but v has 6'),
    (((2, 3, 4), (3, 5, 4), (3, 5, 2)), 'leading'),
    (((3, 4), (2, 5, 4), (2, 5, 2)), 'same number'),
    (((4,), (4,), (4,)), 'same number'),
])
def test_sdpa_shape_errors(shapes, match):
    q, k, v = [numpy.zeros(s) for s in shapes]
    with pytest.raises(ValueError, match=match):
        F.scaled_dot_product_attention(q, k, v)


def test_sdpa_mask_errors():
    q, k, v = _inputs((2,), 3, 5, 4, 2)
    with pytest.raises(ValueError, match=r'mask of shape \(2, 5\).*mask\[:, None, :\]'):
        F.scaled_dot_product_attention(q, k, v, mask=numpy.ones((2, 5), bool))
    with pytest.raises(ValueError, match='mask of shape'):
        F.scaled_dot_product_attention(q, k, v, mask=numpy.ones((2, 3, 4), bool))
    with pytest.raises(TypeError, match='boolean'):
        F.scaled_dot_product_attention(q, k, v, mask=numpy.ones((2, 3, 5)))
    with pytest.raises(TypeError, match='share one dtype'):
        F.scaled_dot_product_attention(q.astype(numpy.float32), k, v)
    with pytest.raises(TypeError, match='floating'):
        F.scaled_dot_product_attention(q.astype(numpy.int32), k, v)
    with pytest.raises(TypeError, match='scale'):
        F.scaled_dot_product_attention(q, k, v, scale=float('nan'))


# -- masked_softmax ---------------------------------------------------------------------

def ref_masked_softmax(x, mask, axis):
    x = numpy.moveaxis(numpy.asarray(x, numpy.float64), axis, -1)
    m = numpy.moveaxis(numpy.broadcast_to(mask, numpy.moveaxis(x, -1, axis).shape), axis, -1)
    out = numpy.zeros_like(x)
    for idx in numpy.ndindex(*x.shape[:-1]):
        sel = m[idx]
        if sel.any():
            e = numpy.exp(x[idx][sel] - x[idx][sel].max())
            out[idx][sel] = e / e.sum()
    return numpy.moveaxis(out, -1, axis)


@pytest.mark.parametrize('shape,axis', [((3, 4), -1), ((2, 3, 5), 1), ((1, 1), 0), ((4, 0), 1),
                                        ((2, 3, 4), 2)])
def test_masked_softmax(shape, axis):
    x = _rng(2).standard_normal(shape)
    mask = _rng(3).uniform(size=shape) < 0.5
    if x.size:      # one fully masked row along `axis`
        numpy.moveaxis(mask, axis, -1)[(0,) * (len(shape) - 1)] = False
    y = F.masked_softmax(x, mask, axis=axis)
    assert_allclose(y, ref_masked_softmax(x, mask, axis), atol=1e-12, rtol=1e-12)
    assert numpy.isfinite(y.array).all()
    check_backward(lambda x: F.masked_softmax(x, mask, axis=axis), x)
    check_backward(lambda x: F.masked_softmax(x, None, axis=axis), x)


def test_masked_softmax_fully_masked_row_broadcast_mask():
    x = _rng(0).standard_normal((3, 4))
    mask = numpy.array([[True], [False], [True]])     # (3, 1): row 1 fully masked
    y = F.masked_softmax(x, mask, axis=1)
    assert (y.array[1] == 0).all()
    assert_allclose(y.array[0].sum(), 1.0, atol=1e-12)
    check_backward(lambda x: F.masked_softmax(x, mask, axis=1), x)
    with pytest.raises(ValueError, match='mask of shape'):
        F.masked_softmax(x, numpy.ones((4,), bool))


# -- length_mask ---------------------------------------------------------------------------

def test_length_mask():
    m = F.length_mask([2, 0, 3], 4)
    assert m.dtype == numpy.bool_
    assert (m == numpy.array([[1, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 0]], bool)).all()
    assert F.length_mask(numpy.array([1, 2])).shape == (2, 2)
    assert F.length_mask([]).shape == (0, 0)
    with pytest.raises(ValueError, match='lengths must lie'):
        F.length_mask([5], 4)
    with pytest.raises(ValueError, match='lengths must lie'):
        F.length_mask([-1], 4)
    with pytest.raises(ValueError, match='1-d'):
        F.length_mask([[1]], 4)
