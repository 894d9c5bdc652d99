"""Tests for seqdbr.core.functions.connection: linear and embed_id."""
import numpy
import pytest

import seqdbr.functions as F
from seqdbr import Variable
from seqdbr.core import backend
from seqdbr.gradient_check import assert_allclose, check_backward


def _normal(shape, seed, dtype=numpy.float64):
    return numpy.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _cpu(v):
    return backend.to_cpu(v.array if isinstance(v, Variable) else v)


# -- linear ------------------------------------------------------------------------------------

@pytest.mark.parametrize('dtype', [numpy.float32, numpy.float64])
@pytest.mark.parametrize('xshape,n_batch_axes,out', [
    ((3, 4), 1, 5), ((1, 1), 1, 1), ((0, 4), 1, 3), ((2, 3, 4), 1, 6), ((2, 3, 4), 2, 6),
    ((2, 3, 2, 2), 2, 3), ((4, 7), 1, 0)])
@pytest.mark.parametrize('use_bias', [True, False])
def test_linear_forward_matches_numpy(xp, dtype, xshape, n_batch_axes, out, use_bias):
    x = _normal(xshape, 1, dtype)
    in_size = int(numpy.prod(xshape[n_batch_axes:]))
    W = _normal((out, in_size), 2, dtype)
    b = _normal((out,), 3, dtype) if use_bias else None
    batch = xshape[:n_batch_axes]
    ref = x.reshape(int(numpy.prod(batch)), in_size) @ W.T
    if use_bias:
        ref = ref + b
    ref = ref.reshape(batch + (out,))
    y = F.linear(xp.asarray(x), xp.asarray(W), None if b is None else xp.asarray(b),
                 n_batch_axes=n_batch_axes)
    assert y.shape == batch + (out,)
    assert y.dtype == dtype
    tol = 1e-5 if dtype == numpy.float32 else 1e-12
    assert_allclose(y, ref, atol=tol, rtol=tol)


@pytest.mark.parametrize('xshape,n_batch_axes,out', [
    ((3, 4), 1, 5), ((1, 1), 1, 1), ((0, 4), 1, 3), ((2, 3, 4), 1, 6), ((2, 3, 4), 2, 6),
    ((2, 3, 2, 2), 2, 3)])
@pytest.mark.parametrize('use_bias', [True, False])
def test_linear_backward(xp, xshape, n_batch_axes, out, use_bias):
    in_size = int(numpy.prod(xshape[n_batch_axes:]))
    inputs = [xp.asarray(_normal(xshape, 4)), xp.asarray(_normal((out, in_size), 5))]
    if use_bias:
        inputs.append(xp.asarray(_normal((out,), 6)))

    def f(x, W, b=None):
        return F.linear(x, W, b, n_batch_axes=n_batch_axes)
    check_backward(f, tuple(inputs), dtype=numpy.float64)


def test_linear_backward_with_constant_weight(xp):
    # Only x requires a gradient; W is a raw array (a constant).
    W = xp.asarray(_normal((3, 4), 7))
    check_backward(lambda x: F.linear(x, W), xp.asarray(_normal((2, 4), 8)),
                   dtype=numpy.float64)


def test_linear_gradients_match_hand_formulas(xp):
    x = _normal((5, 4), 9)
    W = _normal((3, 4), 10)
    b = _normal((3,), 11)
    gy = _normal((5, 3), 12)
    vx, vW, vb = Variable(xp.asarray(x)), Variable(xp.asarray(W)), Variable(xp.asarray(b))
    y = F.linear(vx, vW, vb)
    y.grad = xp.asarray(gy)
    y.backward()
    assert_allclose(vx.grad, gy @ W, atol=1e-12)
    assert_allclose(vW.grad, gy.T @ x, atol=1e-12)
    assert_allclose(vb.grad, gy.sum(0), atol=1e-12)


def test_linear_errors():
    x = numpy.zeros((2, 3), numpy.float32)
    W = numpy.zeros((4, 5), numpy.float32)
    with pytest.raises(ValueError, match=r'x of shape \(2, 3\) has 3 input features.*W of shape '
                                         r'\(4, 5\) expects in_size=5'):
        F.linear(x, W)
    with pytest.raises(ValueError, match=r'x of shape \(2, 3, 2\) has 6 input features'):
        F.linear(numpy.zeros((2, 3, 2), numpy.float32), W)
    with pytest.raises(TypeError, match=r'x has dtype float64 but W has dtype float32'):
        F.linear(numpy.zeros((2, 5)), W)
    with pytest.raises(TypeError, match=r'floating-point.*int64'):
        F.linear(numpy.zeros((2, 5), numpy.int64), W)
    with pytest.raises(ValueError, match=r'W must be 2-d.*got shape \(5,\)'):
        F.linear(numpy.zeros((2, 5), numpy.float32), numpy.zeros(5, numpy.float32))
    with pytest.raises(ValueError, match=r'b must have shape \(out_size,\) = \(4,\).*got \(5,\)'):
        F.linear(numpy.zeros((2, 5), numpy.float32), W, numpy.zeros(5, numpy.float32))
    with pytest.raises(TypeError, match=r'b has dtype float64 but W has dtype float32'):
        F.linear(numpy.zeros((2, 5), numpy.float32), W, numpy.zeros(4))
    with pytest.raises(ValueError, match=r'n_batch_axes=2 is out of range for x of shape \(2, 5\)'):
        F.linear(numpy.zeros((2, 5), numpy.float32), W, n_batch_axes=2)
    with pytest.raises(ValueError, match=r'n_batch_axes=0'):
        F.linear(numpy.zeros((2, 5), numpy.float32), W, n_batch_axes=0)
    with pytest.raises(TypeError, match=r'n_batch_axes must be an int'):
        F.linear(numpy.zeros((2, 5), numpy.float32), W, n_batch_axes=1.0)
    with pytest.raises(TypeError, match=r'uninitialized Parameter'):
        from seqdbr import Parameter
        F.linear(numpy.zeros((2, 5), numpy.float32), Parameter())


# -- embed_id ---------------------------------------------------------------------------------

@pytest.mark.parametrize('dtype', [numpy.float32, numpy.float64])
@pytest.mark.parametrize('ids_shape', [(5,), (2, 3), (), (0,), (1,), (2, 0, 3)])
@pytest.mark.parametrize('id_dtype', [numpy.int32, numpy.int64, numpy.uint8])
def test_embed_id_forward(xp, dtype, ids_shape, id_dtype):
    V, D = 7, 4
    ids = numpy.random.default_rng(1).integers(0, V, ids_shape).astype(id_dtype)
    W = _normal((V, D), 2, dtype)
    y = F.embed_id(xp.asarray(ids), xp.asarray(W))
    assert y.shape == ids_shape + (D,)
    assert y.dtype == dtype
    assert_allclose(y, W[ids.astype(numpy.int64)], atol=0, rtol=0)


@pytest.mark.parametrize('ids_shape', [(5,), (2, 3), (), (0,), (1,)])
@pytest.mark.parametrize('ignore_label', [None, -1])
def test_embed_id_backward(xp, ids_shape, ignore_label):
    V, D = 6, 3
    ids = numpy.random.default_rng(3).integers(0, V, ids_shape)
    if ignore_label is not None and ids.size > 1:
        ids.reshape(-1)[::2] = ignore_label
    check_backward(lambda x, W: F.embed_id(x, W, ignore_label=ignore_label),
                   (xp.asarray(ids), xp.asarray(_normal((V, D), 4))), dtype=numpy.float64)


@pytest.mark.parametrize('V,D,n', [(65, 128, 2500), (300, 16, 1000), (5, 3, 40), (1, 2, 3)])
def test_embed_id_gradient_accumulates_repeated_ids(xp, V, D, n):
    rng = numpy.random.default_rng(5)
    ids = rng.integers(0, V, n)
    gy = rng.standard_normal((n, D)).astype(numpy.float32)
    W = Variable(xp.asarray(rng.standard_normal((V, D)).astype(numpy.float32)))
    y = F.embed_id(xp.asarray(ids), W)
    y.grad = xp.asarray(gy)
    y.backward()
    ref = numpy.zeros((V, D), numpy.float64)
    for i, k in enumerate(ids):          # plain loop: an independent reference
        ref[k] += gy[i]
    assert W.grad.dtype == numpy.float32 and W.grad.shape == (V, D)
    assert_allclose(W.grad, ref, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize('ignore_label', [-1, 0, 3, 100])
def test_embed_id_ignore_label_gives_zero_rows_and_no_gradient(xp, ignore_label):
    V, D = 4, 3
    W = _normal((V, D), 6)
    raw = numpy.array([[1, 2, 0], [3, 1, 2]])
    ids = raw.copy()
    ids[0, 1] = ids[1, 0] = ignore_label
    vW = Variable(xp.asarray(W))
    y = F.embed_id(xp.asarray(ids), vW, ignore_label=ignore_label)
    keep = ids != ignore_label
    expected = numpy.where(keep[..., None], W[numpy.where(keep, ids, 0)], 0.0)
    assert_allclose(y, expected, atol=0, rtol=0)
    gy = _normal((2, 3, D), 7)
    y.grad = xp.asarray(gy)
    y.backward()
    ref = numpy.zeros((V, D))
    for idx in zip(*numpy.nonzero(keep)):
        ref[ids[idx]] += gy[idx]
    assert_allclose(vW.grad, ref, atol=1e-12)


def test_embed_id_all_ignored_and_empty_vocabulary(xp):
    W = Variable(xp.zeros((0, 5)))
    ids = xp.asarray(numpy.array([-1, -1]))
    y = F.embed_id(ids, W, ignore_label=-1)
    assert y.shape == (2, 5)
    assert not _cpu(y).any()
    y.grad = xp.ones((2, 5))
    y.backward()
    assert W.grad.shape == (0, 5)


def test_embed_id_minus_one_is_never_wrapped():
    W = numpy.arange(12, dtype=numpy.float32).reshape(4, 3)
    with pytest.raises(IndexError, match=r'\[0, 4\).*id\(s\) -1\b'):
        F.embed_id(numpy.array([0, -1, 2]), W)


def test_embed_id_out_of_range_ids_raise_index_error(xp):
    W = xp.zeros((5, 2), dtype=numpy.float32)
    with pytest.raises(IndexError, match=r'ids must lie in \[0, 5\).*id\(s\) 5\b'):
        F.embed_id(xp.asarray(numpy.array([0, 5, 1])), W)
    with pytest.raises(IndexError, match=r'id\(s\) -3, 7, 9\b'):
        F.embed_id(xp.asarray(numpy.array([[-3, 9], [7, 2]])), W)
    # ignore_label exempts only its own value
    with pytest.raises(IndexError, match=r'ignore_label=-1 is exempt.*id\(s\) -2\b'):
        F.embed_id(xp.asarray(numpy.array([-1, -2, 0])), W, ignore_label=-1)
    with pytest.raises(IndexError, match=r'id\(s\) 5\b'):
        F.embed_id(xp.asarray(numpy.array([-1, 5])), W, ignore_label=-1)
    with pytest.raises(IndexError, match=r'and 5 more'):
        F.embed_id(xp.asarray(numpy.arange(10, 25)), W)
    # the check runs in test mode and without backprop too
    import seqdbr
    with seqdbr.using_config('train', False), seqdbr.no_backprop_mode():
        with pytest.raises(IndexError):
            F.embed_id(xp.asarray(numpy.array([6])), W)


def test_embed_id_type_and_shape_errors():
    W = numpy.zeros((5, 2), numpy.float32)
    with pytest.raises(TypeError, match=r'integer array, got dtype float32 with shape \(2,\)'):
        F.embed_id(numpy.array([0.0, 1.0], numpy.float32), W)
    with pytest.raises(TypeError, match=r'W must be a floating-point array'):
        F.embed_id(numpy.array([0, 1]), numpy.zeros((5, 2), numpy.int32))
    with pytest.raises(ValueError, match=r'W must be 2-d of shape \(V, D\), got shape \(5,\)'):
        F.embed_id(numpy.array([0, 1]), numpy.zeros(5, numpy.float32))
    with pytest.raises(TypeError, match=r'ignore_label must be an int or None'):
        F.embed_id(numpy.array([0, 1]), W, ignore_label=0.5)


def test_embed_id_ids_are_not_differentiated(xp):
    W = Variable(xp.asarray(_normal((3, 2), 8)))
    x = Variable(xp.asarray(numpy.array([0, 2])))
    y = F.embed_id(x, W)
    y.grad = xp.ones((2, 2))
    y.backward()
    assert x.grad is None
    assert_allclose(W.grad, [[1, 1], [0, 0], [1, 1]], atol=0)


@pytest.mark.gpu
def test_embed_id_gpu_scatter_matches_cpu():
    import cupy
    rng = numpy.random.default_rng(9)
    V, D = 65, 16
    ids = rng.integers(-1, V, (50, 7))
    W = rng.standard_normal((V, D)).astype(numpy.float32)
    gy = rng.standard_normal((50, 7, D)).astype(numpy.float32)
    grads = []
    for mod in (numpy, cupy):
        vW = Variable(mod.asarray(W))
        y = F.embed_id(mod.asarray(ids), vW, ignore_label=-1)
        y.grad = mod.asarray(gy)
        y.backward()
        grads.append((_cpu(y), _cpu(vW.grad)))
    assert_allclose(grads[1][0], grads[0][0], atol=0)
    assert_allclose(grads[1][1], grads[0][1], atol=1e-4, rtol=1e-5)


def test_public_names_are_exported_through_seqdbr_functions():
    from seqdbr.core.functions import connection as module
    assert sorted(module.__all__) == sorted(['linear', 'embed_id'])
    for name in module.__all__:
        assert getattr(F, name) is getattr(module, name)
