"""Tests for seqdbr.core.functions.loss: softmax_cross_entropy, sigmoid_cross_entropy,
mean_squared_error."""
import warnings

import numpy
import pytest

import seqdbr.functions as F
from seqdbr import Variable
from seqdbr.core import backend
from seqdbr.gradient_check import assert_allclose, check_backward


def _normal(shape, seed, scale=1.0, dtype=numpy.float64):
    return (numpy.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def _cpu(v):
    return backend.to_cpu(v.array if isinstance(v, Variable) else v)


def _labels(shape, C, seed, ignore_label=None, ignore_every=3):
    t = numpy.random.default_rng(seed).integers(0, C, shape)
    if ignore_label is not None and t.size:
        t.reshape(-1)[::ignore_every] = ignore_label
    return t


# -- NumPy reference (float64, written without the implementation's tricks) -----------------

def ref_softmax_cross_entropy(x, t, ignore_label=-1, reduce='mean', normalize=True):
    x = numpy.asarray(x, dtype=numpy.float64)
    xm = numpy.moveaxis(x, 1, -1)                       # (B, ..., C)
    m = xm.max(axis=-1, keepdims=True) if xm.size else numpy.zeros(xm.shape[:-1] + (1,))
    logp = xm - m - numpy.log(numpy.exp(xm - m).sum(axis=-1, keepdims=True))
    losses = numpy.zeros(t.shape)
    for idx in numpy.ndindex(*t.shape):
        if t[idx] != ignore_label:
            losses[idx] = -logp[idx + (t[idx],)]
    if reduce == 'no':
        return losses
    n = numpy.count_nonzero(t != ignore_label) if normalize else x.shape[0]
    return losses.sum() / max(n, 1)


def ref_sigmoid_cross_entropy(x, t, ignore_label=-1, reduce='mean', normalize=True):
    x = numpy.asarray(x, dtype=numpy.float64)
    # -(t log p + (1 - t) log(1 - p)) with log p = -log(1 + e^-x), log(1-p) = -log(1 + e^x)
    losses = t * numpy.logaddexp(0, -x) + (1 - t) * numpy.logaddexp(0, x)
    losses = numpy.where(t == ignore_label, 0.0, losses)
    if reduce == 'no':
        return losses
    n = numpy.count_nonzero(t != ignore_label) if normalize else x.shape[0]
    return losses.sum() / max(n, 1)


# -- hand-computed cases (must pass exactly as specified) -----------------------------------

def test_softmax_cross_entropy_hand_computed_case(xp):
    x = Variable(xp.asarray(numpy.array([[1, 2, 3, 4], [1, 1, 1, 1]], dtype=numpy.float64)))
    t = xp.asarray(numpy.array([2, -1]))
    loss = F.softmax_cross_entropy(x, t)
    assert loss.shape == ()
    assert abs(float(loss.array) - 1.44018969856) < 1e-9
    loss.backward()
    g = _cpu(x.grad)
    numpy.testing.assert_allclose(g[0], [0.0320586, 0.0871443, -0.7631172, 0.6439143], atol=1e-6)
    numpy.testing.assert_array_equal(g[1], numpy.zeros(4))


def test_softmax_cross_entropy_ignore_label_outside_class_range(xp):
    x_np = numpy.array([[1, 2, 3, 4], [0, 0, 0, 0]], dtype=numpy.float64)
    x = Variable(xp.asarray(x_np))
    loss = F.softmax_cross_entropy(x, xp.asarray(numpy.array([2, 4])), ignore_label=4)
    row = x_np[0]
    log_softmax_row = row - numpy.log(numpy.sum(numpy.exp(row)))
    assert_allclose(loss, -log_softmax_row[2], atol=1e-12, rtol=1e-12)
    loss.backward()
    numpy.testing.assert_array_equal(_cpu(x.grad)[1], numpy.zeros(4))


# -- softmax_cross_entropy: forward against the reference ----------------------------------

CE_CASES = [  # (x shape, ignore_label)
    ((4, 3), -1), ((4, 3), None), ((1, 1), -1), ((1, 5), -1), ((0, 3), -1), ((6, 4), 2),
    ((2, 3, 4), -1), ((2, 3, 4, 2), -1), ((3, 2, 0), -1), ((1, 4, 1), 7)]


@pytest.mark.parametrize('dtype', [numpy.float32, numpy.float64])
@pytest.mark.parametrize('xshape,ignore_label', CE_CASES)
@pytest.mark.parametrize('reduce,normalize', [('mean', True), ('mean', False), ('no', True)])
def test_softmax_cross_entropy_forward(xp, dtype, xshape, ignore_label, reduce, normalize):
    x = _normal(xshape, 1, 3.0, dtype)
    tshape = (xshape[0],) + xshape[2:]
    t = _labels(tshape, xshape[1], 2, ignore_label)
    y = F.softmax_cross_entropy(xp.asarray(x), xp.asarray(t), ignore_label=ignore_label,
                                reduce=reduce, normalize=normalize)
    ref = ref_softmax_cross_entropy(x, t, ignore_label, reduce, normalize)
    assert y.dtype == dtype
    assert y.shape == (() if reduce == 'mean' else tshape)
    tol = 1e-5 if dtype == numpy.float32 else 1e-12
    assert_allclose(y, ref, atol=tol, rtol=tol)


@pytest.mark.parametrize('xshape,ignore_label', CE_CASES)
@pytest.mark.parametrize('reduce,normalize', [('mean', True), ('mean', False), ('no', True)])
def test_softmax_cross_entropy_backward(xp, xshape, ignore_label, reduce, normalize):
    x = _normal(xshape, 3, 2.0)
    t = _labels((xshape[0],) + xshape[2:], xshape[1], 4, ignore_label)
    check_backward(lambda x, t: F.softmax_cross_entropy(x, t, ignore_label=ignore_label,
                                                        reduce=reduce, normalize=normalize),
                   (xp.asarray(x), xp.asarray(t)), dtype=numpy.float64)


def test_softmax_cross_entropy_gradient_formula(xp):
    # grad = (softmax - onehot) * gy / count, zero rows for ignored labels.
    x = _normal((5, 4), 5, 2.0)
    t = numpy.array([0, 3, -1, 1, -1])
    v = Variable(xp.asarray(x))
    loss = F.softmax_cross_entropy(v, xp.asarray(t))
    loss.grad = xp.asarray(numpy.array(2.5))
    loss.backward()
    p = numpy.exp(x - x.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    onehot = numpy.zeros_like(p)
    keep = t != -1
    onehot[numpy.nonzero(keep)[0], t[keep]] = 1
    expected = (p - onehot) * keep[:, None] * 2.5 / 3
    assert_allclose(v.grad, expected, atol=1e-14, rtol=1e-12)


@pytest.mark.parametrize('dtype', [numpy.float32, numpy.float64])
def test_softmax_cross_entropy_large_logits_stable(xp, dtype):
    x = numpy.array([[1e4, 0.0, -1e4], [-3e4, 3e4, 0.0], [500.0, 500.0, 0.0]], dtype=dtype)
    t = numpy.array([1, 1, 0])
    v = Variable(xp.asarray(x))
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        loss = F.softmax_cross_entropy(v, xp.asarray(t), reduce='no')
        loss.grad = xp.ones(3, dtype=dtype)
        loss.backward()
    got = _cpu(loss)
    assert numpy.all(numpy.isfinite(got)) and numpy.all(numpy.isfinite(_cpu(v.grad)))
    numpy.testing.assert_allclose(got, [1e4, 0.0, numpy.log(2.0)], rtol=1e-6)
    numpy.testing.assert_allclose(_cpu(v.grad), [[1, -1, 0], [0, 0, 0], [-0.5, 0.5, 0]],
                                  atol=1e-6)


def test_softmax_cross_entropy_all_ignored_is_zero_without_warnings(xp):
    x = Variable(xp.asarray(_normal((3, 4), 6)))
    t = xp.asarray(numpy.full(3, -1))
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        with numpy.errstate(all='raise'):
            loss = F.softmax_cross_entropy(x, t)
            loss.backward()
            per = F.softmax_cross_entropy(x, t, reduce='no')
    assert float(loss.array) == 0.0
    assert loss.dtype == numpy.float64
    g = _cpu(x.grad)
    assert numpy.all(g == 0) and not numpy.isnan(g).any()
    numpy.testing.assert_array_equal(_cpu(per), numpy.zeros(3))


def test_softmax_cross_entropy_empty_batch(xp):
    x = Variable(xp.zeros((0, 4)))
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        loss = F.softmax_cross_entropy(x, xp.zeros(0, dtype=numpy.int32))
        loss.backward()
    assert float(loss.array) == 0.0
    assert x.grad.shape == (0, 4)


def test_softmax_cross_entropy_non_contiguous_input(xp):
    base = _normal((4, 3), 7, 2.0)
    xt = xp.asarray(numpy.asfortranarray(base))        # same values, Fortran order
    t = xp.asarray(numpy.array([0, 2, -1, 1]))
    v1, v2 = Variable(xt), Variable(xp.asarray(base))
    for v in (v1, v2):
        loss = F.softmax_cross_entropy(v, t)
        loss.backward()
    assert_allclose(v1.grad, v2.grad, atol=0, rtol=0)
    assert_allclose(F.softmax_cross_entropy(xt, t), F.softmax_cross_entropy(base, _cpu(t)),
                    atol=1e-15)


def test_softmax_cross_entropy_backward_twice_accumulates(xp):
    # backward must not consume the retained softmax: two passes give exactly twice the grad.
    x = Variable(xp.asarray(_normal((3, 5), 8)))
    loss = F.softmax_cross_entropy(x, xp.asarray(numpy.array([1, -1, 4])))
    loss.backward()
    g1 = _cpu(x.grad).copy()
    loss.backward()
    assert_allclose(x.grad, 2 * g1, atol=1e-15)


@pytest.mark.parametrize('label_dtype', [numpy.int8, numpy.int32, numpy.uint8, numpy.uint64])
def test_softmax_cross_entropy_label_dtypes(xp, label_dtype):
    x = _normal((4, 3), 9)
    t = numpy.array([0, 2, 1, 1], dtype=label_dtype)
    got = F.softmax_cross_entropy(xp.asarray(x), xp.asarray(t), ignore_label=None)
    assert_allclose(got, ref_softmax_cross_entropy(x, t.astype(numpy.int64), None), atol=1e-12)


def test_softmax_cross_entropy_errors():
    x = numpy.zeros((3, 4), numpy.float32)
    with pytest.raises(IndexError, match=r'\[0, 4\).*ignore_label=-1.*invalid label\(s\) 4, 7'):
        F.softmax_cross_entropy(x, numpy.array([4, 7, -1]))
    with pytest.raises(IndexError, match=r'invalid label\(s\) -2'):
        F.softmax_cross_entropy(x, numpy.array([-2, 0, -1]))
    with pytest.raises(IndexError, match=r'ignore_label is None.*invalid label\(s\) -1'):
        F.softmax_cross_entropy(x, numpy.array([-1, 0, 1]), ignore_label=None)
    with pytest.raises(ValueError, match=r't must have shape \(3,\) for x of shape \(3, 4\).*'
                                         r'got \(3, 1\)'):
        F.softmax_cross_entropy(x, numpy.zeros((3, 1), numpy.int32))
    with pytest.raises(ValueError, match=r't must have shape \(3, 5\)'):
        F.softmax_cross_entropy(numpy.zeros((3, 4, 5), numpy.float32), numpy.zeros(3, numpy.int32))
    with pytest.raises(TypeError, match=r'labels t must be an integer array, got dtype float32'):
        F.softmax_cross_entropy(x, numpy.zeros(3, numpy.float32))
    with pytest.raises(TypeError, match=r'x must be a floating-point array'):
        F.softmax_cross_entropy(numpy.zeros((3, 4), numpy.int32), numpy.zeros(3, numpy.int32))
    with pytest.raises(ValueError, match=r'shape \(B, C\).*got shape \(4,\)'):
        F.softmax_cross_entropy(numpy.zeros(4, numpy.float32), numpy.zeros(4, numpy.int32))
    with pytest.raises(ValueError, match=r'no classes'):
        F.softmax_cross_entropy(numpy.zeros((3, 0), numpy.float32), numpy.zeros(3, numpy.int32))
    with pytest.raises(ValueError, match=r"reduce must be 'mean' or 'no', got 'sum'"):
        F.softmax_cross_entropy(x, numpy.zeros(3, numpy.int32), reduce='sum')
    with pytest.raises(TypeError, match=r'ignore_label must be an int or None'):
        F.softmax_cross_entropy(x, numpy.zeros(3, numpy.int32), ignore_label=-1.0)


# -- sigmoid_cross_entropy ------------------------------------------------------------------

SCE_SHAPES = [(4, 3), (1, 1), (5,), (0, 2), (2, 3, 4)]


@pytest.mark.parametrize('dtype', [numpy.float32, numpy.float64])
@pytest.mark.parametrize('shape', SCE_SHAPES)
@pytest.mark.parametrize('reduce,normalize', [('mean', True), ('mean', False), ('no', True)])
def test_sigmoid_cross_entropy_forward(xp, dtype, shape, reduce, normalize):
    x = _normal(shape, 10, 4.0, dtype)
    t = _labels(shape, 2, 11, -1, ignore_every=4)
    y = F.sigmoid_cross_entropy(xp.asarray(x), xp.asarray(t), reduce=reduce, normalize=normalize)
    assert y.dtype == dtype
    assert y.shape == (() if reduce == 'mean' else shape)
    tol = 1e-5 if dtype == numpy.float32 else 1e-12
    assert_allclose(y, ref_sigmoid_cross_entropy(x, t, -1, reduce, normalize), atol=tol, rtol=tol)


@pytest.mark.parametrize('shape', SCE_SHAPES)
@pytest.mark.parametrize('reduce,normalize', [('mean', True), ('mean', False), ('no', True)])
@pytest.mark.parametrize('ignore_label', [-1, None])
def test_sigmoid_cross_entropy_backward(xp, shape, reduce, normalize, ignore_label):
    x = _normal(shape, 12, 2.0)
    t = _labels(shape, 2, 13, ignore_label, ignore_every=4)
    check_backward(lambda x, t: F.sigmoid_cross_entropy(x, t, reduce=reduce,
                                                        ignore_label=ignore_label,
                                                        normalize=normalize),
                   (xp.asarray(x), xp.asarray(t)), dtype=numpy.float64)


def test_sigmoid_cross_entropy_large_logits_and_all_ignored(xp):
    x = numpy.array([[1000.0, -1000.0, 0.0]], dtype=numpy.float32)
    t = numpy.array([[0, 1, 1]])
    v = Variable(xp.asarray(x))
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        loss = F.sigmoid_cross_entropy(v, xp.asarray(t), reduce='no')
        loss.grad = xp.ones((1, 3), dtype=numpy.float32)
        loss.backward()
    numpy.testing.assert_allclose(_cpu(loss), [[1000.0, 1000.0, numpy.log(2.0)]], rtol=1e-6)
    numpy.testing.assert_allclose(_cpu(v.grad), [[1.0, -1.0, -0.5]], atol=1e-6)
    v.cleargrad()
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        with numpy.errstate(all='raise'):
            loss = F.sigmoid_cross_entropy(v, xp.asarray(numpy.full((1, 3), -1)))
            loss.backward()
    assert float(loss.array) == 0.0
    assert not _cpu(v.grad).any()


def test_sigmoid_cross_entropy_errors():
    x = numpy.zeros((2, 3), numpy.float32)
    with pytest.raises(IndexError, match=r'\{0, 1\}.*invalid label\(s\) 2, 5'):
        F.sigmoid_cross_entropy(x, numpy.array([[0, 2, 1], [5, -1, 0]]))
    with pytest.raises(ValueError, match=r'same shape|shape of x, got x \(2, 3\) and t \(3, 2\)'):
        F.sigmoid_cross_entropy(x, numpy.zeros((3, 2), numpy.int32))
    with pytest.raises(TypeError, match=r'integer array, got dtype float32'):
        F.sigmoid_cross_entropy(x, numpy.zeros((2, 3), numpy.float32))
    with pytest.raises(ValueError, match=r"reduce must be 'mean' or 'no'"):
        F.sigmoid_cross_entropy(x, numpy.zeros((2, 3), numpy.int32), reduce='sum')
    with pytest.raises(ValueError, match=r'0-d'):
        F.sigmoid_cross_entropy(numpy.zeros((), numpy.float32), numpy.zeros((), numpy.int32))


# -- mean_squared_error ---------------------------------------------------------------------

@pytest.mark.parametrize('dtype', [numpy.float32, numpy.float64])
@pytest.mark.parametrize('shape', [(4, 3), (1,), (1, 1), (2, 3, 4), ()])
def test_mean_squared_error_forward(xp, dtype, shape):
    a = _normal(shape, 14, 1.0, dtype)
    b = _normal(shape, 15, 1.0, dtype)
    y = F.mean_squared_error(xp.asarray(a), xp.asarray(b))
    assert y.shape == () and y.dtype == dtype
    ref = numpy.mean((a.astype(numpy.float64) - b) ** 2)
    assert_allclose(y, ref, atol=1e-6 if dtype == numpy.float32 else 1e-14, rtol=1e-5)


@pytest.mark.parametrize('shape', [(4, 3), (1,), (2, 3, 4), ()])
def test_mean_squared_error_backward(xp, shape):
    check_backward(F.mean_squared_error,
                   (xp.asarray(_normal(shape, 16)), xp.asarray(_normal(shape, 17))),
                   dtype=numpy.float64)


def test_mean_squared_error_only_second_input_requires_grad(xp):
    a = _normal((3, 2), 18)
    b = _normal((3, 2), 19)
    check_backward(F.mean_squared_error, (xp.asarray(a), xp.asarray(b)),
                   no_grads=[True, False], dtype=numpy.float64)


def test_mean_squared_error_zero_dim_gradients_are_arrays(xp):
    a, b = Variable(xp.asarray(numpy.array(3.0))), Variable(xp.asarray(numpy.array(1.0)))
    loss = F.mean_squared_error(a, b)
    loss.backward()
    ndarray = type(xp.zeros(1))
    assert float(loss.array) == 4.0
    assert type(a.grad) is ndarray and type(b.grad) is ndarray
    assert float(a.grad) == 4.0 and float(b.grad) == -4.0


def test_mean_squared_error_errors():
    with pytest.raises(ValueError, match=r'same shape, got \(2, 3\) and \(3, 2\)'):
        F.mean_squared_error(numpy.zeros((2, 3)), numpy.zeros((3, 2)))
    with pytest.raises(TypeError, match=r'x0 has dtype float32 but x1 has dtype float64'):
        F.mean_squared_error(numpy.zeros(2, numpy.float32), numpy.zeros(2))
    with pytest.raises(ValueError, match=r'empty'):
        F.mean_squared_error(numpy.zeros((0, 2)), numpy.zeros((0, 2)))
    with pytest.raises(TypeError, match=r'floating-point'):
        F.mean_squared_error(numpy.zeros(2, numpy.int32), numpy.zeros(2, numpy.int32))


# -- GPU kernels ---------------------------------------------------------------------------------

@pytest.mark.gpu
@pytest.mark.parametrize('xshape', [(7, 5), (3, 4, 6)])
@pytest.mark.parametrize('reduce', ['mean', 'no'])
def test_softmax_cross_entropy_gpu_matches_cpu(xshape, reduce):
    import cupy
    x = _normal(xshape, 20, 3.0, numpy.float32)
    t = _labels((xshape[0],) + xshape[2:], xshape[1], 21, -1)
    gy = (numpy.float32(1.5) if reduce == 'mean'
          else _normal(t.shape, 22, 1.0, numpy.float32))
    out = []
    for mod in (numpy, cupy):
        v = Variable(mod.asarray(x))
        loss = F.softmax_cross_entropy(v, mod.asarray(t), reduce=reduce)
        loss.grad = mod.asarray(gy, dtype=numpy.float32)
        loss.backward()
        out.append((_cpu(loss), _cpu(v.grad)))
    assert_allclose(out[1][0], out[0][0], atol=1e-5, rtol=1e-5)
    assert_allclose(out[1][1], out[0][1], atol=1e-6, rtol=1e-5)


def test_public_names_are_exported_through_seqdbr_functions():
    from seqdbr.core.functions import loss as module
    assert sorted(module.__all__) == sorted(['softmax_cross_entropy', 'sigmoid_cross_entropy',
                                            'mean_squared_error'])
    for name in module.__all__:
        assert getattr(F, name) is getattr(module, name)
