"""Tests for seqdbr.core.functions.activation (relu, leaky_relu, tanh, sigmoid, softplus,
softmax, log_softmax): NumPy references, float64 numerical gradients, stability, errors."""
import warnings

import numpy
import pytest

import seqdbr.functions as F
from seqdbr import Variable
from seqdbr.core import backend
from seqdbr.gradient_check import assert_allclose, check_backward

SHAPES = [(3, 4), (1, 1), (1, 5), (0, 3), (2, 3, 4), ()]


def _away_from_zero(shape, seed=0, low=0.1, high=2.0):
    """Random values with |x| in [low, high]: kinks of relu-like functions stay out of the
    finite-difference stencil."""
    rng = numpy.random.default_rng(seed)
    mag = rng.uniform(low, high, shape)
    return mag * rng.choice([-1.0, 1.0], shape)


def _normal(shape, seed=0, scale=1.0):
    return numpy.random.default_rng(seed).standard_normal(shape) * scale


def _cpu(v):
    return backend.to_cpu(v.array if isinstance(v, Variable) else v)


# -- NumPy references (written independently of the implementation) -------------------------

def ref_sigmoid(x):
    x = numpy.asarray(x, dtype=numpy.float64)
    out = numpy.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + numpy.exp(-x[pos]))
    e = numpy.exp(x[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def ref_softplus(x, beta=1.0):
    bx = beta * numpy.asarray(x, dtype=numpy.float64)
    return numpy.logaddexp(0.0, bx) / beta


def ref_log_softmax(x, axis):
    x = numpy.asarray(x, dtype=numpy.float64)
    if x.size == 0:
        return x.copy()
    m = x.max(axis=axis, keepdims=True)
    return x - m - numpy.log(numpy.exp(x - m).sum(axis=axis, keepdims=True))


# -- forward values ------------------------------------------------------------------------

@pytest.mark.parametrize('dtype', [numpy.float32, numpy.float64])
@pytest.mark.parametrize('shape', SHAPES)
def test_elementwise_forward_matches_numpy(xp, dtype, shape):
    x = _normal(shape, seed=1, scale=3.0).astype(dtype)
    xd = xp.asarray(x)
    tol = dict(atol=1e-6, rtol=1e-5) if dtype == numpy.float32 else dict(atol=1e-12, rtol=1e-12)
    cases = [
        (F.relu(xd), numpy.maximum(x, 0)),
        (F.leaky_relu(xd), numpy.where(x > 0, x, 0.2 * x)),
        (F.leaky_relu(xd, slope=0.05), numpy.where(x > 0, x, 0.05 * x)),
        (F.leaky_relu(xd, slope=-0.5), numpy.where(x > 0, x, -0.5 * x)),
        (F.leaky_relu(xd, slope=2.0), numpy.where(x > 0, x, 2.0 * x)),
        (F.tanh(xd), numpy.tanh(x.astype(numpy.float64))),
        (F.sigmoid(xd), ref_sigmoid(x)),
        (F.softplus(xd), ref_softplus(x)),
        (F.softplus(xd, beta=2.5), ref_softplus(x, 2.5)),
    ]
    for y, ref in cases:
        assert y.shape == shape
        assert y.dtype == dtype
        assert_allclose(y, ref.astype(dtype), **tol)


@pytest.mark.parametrize('dtype', [numpy.float32, numpy.float64])
@pytest.mark.parametrize('shape,axis', [((3, 4), 1), ((1, 1), 1), ((1, 6), -1), ((0, 3), 1),
                                        ((4, 0), 1), ((2, 3, 4), 1), ((2, 3, 4), 2),
                                        ((2, 3, 4), 0), ((5,), 0)])
def test_softmax_and_log_softmax_forward(xp, dtype, shape, axis):
    x = _normal(shape, seed=2, scale=4.0).astype(dtype)
    ref = ref_log_softmax(x, axis)
    tol = dict(atol=1e-6, rtol=1e-5) if dtype == numpy.float32 else dict(atol=1e-13, rtol=1e-13)
    y = F.softmax(xp.asarray(x), axis=axis)
    ly = F.log_softmax(xp.asarray(x), axis=axis)
    assert y.shape == shape and ly.shape == shape
    assert y.dtype == dtype and ly.dtype == dtype
    assert_allclose(ly, ref.astype(dtype), **tol)
    assert_allclose(y, numpy.exp(ref).astype(dtype), **tol)
    if x.size:
        assert_allclose(_cpu(y).sum(axis=axis), numpy.ones(numpy.delete(shape, axis % len(shape))),
                        atol=1e-6, rtol=0)


def test_softmax_default_axis_is_1(xp):
    x = _normal((2, 3, 4), seed=3)
    assert_allclose(F.softmax(xp.asarray(x)), numpy.exp(ref_log_softmax(x, 1)), atol=1e-14)
    assert_allclose(F.log_softmax(xp.asarray(x)), ref_log_softmax(x, 1), atol=1e-14)


# -- numerical stability ------------------------------------------------------------------

@pytest.mark.parametrize('dtype', [numpy.float16, numpy.float32, numpy.float64])
def test_sigmoid_extreme_inputs_no_overflow_no_warning(xp, dtype):
    x = numpy.array([-1000.0, -100.0, -50.0, 0.0, 50.0, 100.0, 1000.0], dtype=dtype)
    # float16 is computed in float32; rounding tiny results to float16 zero is an underflow,
    # which NumPy ignores by default, so only the default error state applies to it
    strict = dict(all='raise') if dtype != numpy.float16 else {}
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        with numpy.errstate(**strict):
            y = F.sigmoid(xp.asarray(x))
    y = _cpu(y).astype(numpy.float64)
    assert numpy.all(numpy.isfinite(y))
    assert y[3] == 0.5
    assert y[-1] == 1 and y[-2] == 1
    assert numpy.all(y[:3] >= 0) and numpy.all(y[:3] < 1e-20)


@pytest.mark.parametrize('dtype', [numpy.float32, numpy.float64])
def test_sigmoid_gradient_at_extremes_is_finite(xp, dtype):
    x = Variable(xp.asarray(numpy.array([-1000.0, 0.0, 1000.0], dtype=dtype)))
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        y = F.sigmoid(x)
        y.grad = xp.ones_like(y.array)
        y.backward()
    g = _cpu(x.grad)
    assert g.dtype == dtype
    assert_allclose(g, [0.0, 0.25, 0.0], atol=1e-30, rtol=0)


@pytest.mark.parametrize('dtype', [numpy.float16, numpy.float32, numpy.float64])
def test_sigmoid_relative_accuracy_in_the_tails(dtype):
    # 1/(1+exp(-x)) keeps full relative precision where the tanh form would not.
    x = numpy.linspace(-80 if dtype != numpy.float16 else -9, 30, 2001).astype(dtype)
    y = F.sigmoid(x).array.astype(numpy.float64)
    ref = ref_sigmoid(x.astype(numpy.float64))
    rel = numpy.abs(y - ref) / ref
    eps = numpy.finfo(dtype).eps
    assert rel.max() < 8 * eps


@pytest.mark.parametrize('dtype', [numpy.float32, numpy.float64])
def test_softplus_large_inputs_are_exact_and_quiet(xp, dtype):
    x = numpy.array([-1000.0, -30.0, 0.0, 30.0, 1000.0], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        y = _cpu(F.softplus(xp.asarray(x)))
        y2 = _cpu(F.softplus(xp.asarray(x), beta=10.0))
    assert numpy.all(numpy.isfinite(y)) and numpy.all(numpy.isfinite(y2))
    assert y[-1] == dtype(1000.0) and y2[-1] == dtype(1000.0)
    assert y[0] == 0 and y2[0] == 0
    assert_allclose(y, ref_softplus(x).astype(dtype), rtol=1e-6, atol=0)
    assert_allclose(y2, ref_softplus(x, 10.0).astype(dtype), rtol=1e-6, atol=0)


@pytest.mark.parametrize('dtype', [numpy.float32, numpy.float64])
def test_log_softmax_huge_logits_finite_and_exact(xp, dtype):
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        y = _cpu(F.log_softmax(xp.asarray(numpy.array([[1e4, 0]], dtype=dtype))))
        s = _cpu(F.softmax(xp.asarray(numpy.array([[1e4, 0], [-1e4, 1e4]], dtype=dtype))))
    assert numpy.all(numpy.isfinite(y))
    numpy.testing.assert_array_equal(y, numpy.array([[0.0, -1e4]], dtype=dtype))
    numpy.testing.assert_array_equal(s, numpy.array([[1.0, 0.0], [0.0, 1.0]], dtype=dtype))


# -- numerical gradients (float64) --------------------------------------------------------

@pytest.mark.parametrize('shape', SHAPES)
def test_relu_backward(xp, shape):
    check_backward(F.relu, xp.asarray(_away_from_zero(shape, 10)), dtype=numpy.float64)


@pytest.mark.parametrize('shape', SHAPES)
@pytest.mark.parametrize('slope', [0.2, 0.0, -0.5, 1.5])
def test_leaky_relu_backward(xp, shape, slope):
    check_backward(lambda x: F.leaky_relu(x, slope=slope),
                   xp.asarray(_away_from_zero(shape, 11)), dtype=numpy.float64)


@pytest.mark.parametrize('shape', SHAPES)
def test_tanh_backward(xp, shape):
    check_backward(F.tanh, xp.asarray(_normal(shape, 12)), dtype=numpy.float64)


@pytest.mark.parametrize('shape', SHAPES)
def test_sigmoid_backward(xp, shape):
    check_backward(F.sigmoid, xp.asarray(_normal(shape, 13, 3.0)), dtype=numpy.float64)


@pytest.mark.parametrize('shape', SHAPES)
@pytest.mark.parametrize('beta', [1.0, 0.5, 3.0])
def test_softplus_backward(xp, shape, beta):
    check_backward(lambda x: F.softplus(x, beta=beta), xp.asarray(_normal(shape, 14, 2.0)),
                   dtype=numpy.float64)


@pytest.mark.parametrize('func', [F.softmax, F.log_softmax])
@pytest.mark.parametrize('shape,axis', [((3, 4), 1), ((1, 1), 1), ((1, 5), 1), ((0, 3), 1),
                                        ((2, 3, 4), 1), ((2, 3, 4), 2), ((2, 3, 4), -1),
                                        ((2, 3, 4), 0), ((4,), 0)])
def test_softmax_family_backward(xp, func, shape, axis):
    check_backward(lambda x: func(x, axis=axis), xp.asarray(_normal(shape, 15, 2.0)),
                   dtype=numpy.float64)


def test_backward_float32_matches_float64_analytic(xp):
    # The float32 path (in-place ops) gives the same gradients as float64 to float32 precision.
    x64 = _normal((4, 5), 16, 2.0)
    gy = _normal((4, 5), 17)
    for func in (F.relu, F.tanh, F.sigmoid, F.softplus, F.softmax, F.log_softmax,
                 lambda v: F.leaky_relu(v, 0.1)):
        grads = []
        for dt in (numpy.float32, numpy.float64):
            v = Variable(xp.asarray(x64.astype(dt)))
            y = func(v)
            y.grad = xp.asarray(gy.astype(dt))
            y.backward()
            assert v.grad.dtype == dt
            grads.append(_cpu(v.grad).astype(numpy.float64))
        assert_allclose(grads[0], grads[1], atol=1e-5, rtol=1e-5)


# -- graph behaviour ------------------------------------------------------------------------

def test_outputs_record_graph_only_when_input_requires_grad(xp):
    x = xp.asarray(_normal((2, 3), 18).astype(numpy.float32))
    for func in (F.relu, F.leaky_relu, F.tanh, F.sigmoid, F.softplus, F.softmax, F.log_softmax):
        assert func(x).creator is None
        assert func(Variable(x)).creator is not None


def test_backward_does_not_modify_upstream_gradient(xp):
    x = Variable(xp.asarray(_normal((3, 4), 19)))
    gy = xp.asarray(_normal((3, 4), 20))
    for func in (F.relu, F.tanh, F.sigmoid, F.softplus, F.softmax, F.log_softmax):
        x.cleargrad()
        y = func(x)
        g = gy.copy()
        y.grad = g
        y.backward()
        assert_allclose(g, gy, atol=0, rtol=0)


@pytest.mark.parametrize('func', [F.relu, F.leaky_relu, lambda v: F.leaky_relu(v, -0.5),
                                  F.tanh, F.sigmoid, F.softplus, lambda v: F.softplus(v, 2.0)])
def test_zero_dim_input_gives_array_output_and_gradient(xp, func):
    # NumPy ufuncs return scalars for 0-d operands; outputs and grads must stay arrays.
    v = Variable(xp.asarray(numpy.array(0.7)))
    y = func(v)
    y.backward()
    ndarray = type(xp.zeros(1))
    assert type(y.array) is ndarray and y.shape == ()
    assert type(v.grad) is ndarray and v.grad.shape == ()


def test_relu_gradient_is_zero_at_and_below_zero():
    x = Variable(numpy.array([-1.0, 0.0, 2.0]))
    y = F.relu(x)
    y.grad = numpy.ones(3)
    y.backward()
    numpy.testing.assert_array_equal(x.grad, [0.0, 0.0, 1.0])


# -- errors ----------------------------------------------------------------------------------

@pytest.mark.parametrize('func', [F.relu, F.leaky_relu, F.tanh, F.sigmoid, F.softplus,
                                  F.softmax, F.log_softmax])
def test_integer_input_raises_type_error(func):
    with pytest.raises(TypeError, match=r'floating-point.*int64.*\(2, 3\).*astype'):
        func(numpy.zeros((2, 3), dtype=numpy.int64))


@pytest.mark.parametrize('func', [F.relu, F.sigmoid, F.softmax])
def test_list_input_raises_type_error(func):
    with pytest.raises(TypeError, match=r'got list.*numpy.asarray'):
        func([[1.0, 2.0]])


@pytest.mark.parametrize('func', [F.softmax, F.log_softmax])
def test_softmax_axis_errors(func):
    x = numpy.zeros((2, 3))
    with pytest.raises(ValueError, match=r'axis 2 is out of range.*2 dimensions'):
        func(x, axis=2)
    with pytest.raises(ValueError, match=r'axis -3 is out of range'):
        func(x, axis=-3)
    with pytest.raises(TypeError, match=r'axis must be an int'):
        func(x, axis=1.0)
    with pytest.raises(ValueError, match=r'0-d'):
        func(numpy.ones(()), axis=0)


def test_parameter_errors():
    x = numpy.zeros((2, 3), dtype=numpy.float32)
    with pytest.raises(TypeError, match=r'slope must be a real number'):
        F.leaky_relu(x, slope='0.2')
    with pytest.raises(ValueError, match=r'slope must be finite'):
        F.leaky_relu(x, slope=float('nan'))
    with pytest.raises(ValueError, match=r'beta must be > 0, got -1.0'):
        F.softplus(x, beta=-1)
    with pytest.raises(ValueError, match=r'beta must be > 0'):
        F.softplus(x, beta=0)
    with pytest.raises(TypeError, match=r'beta must be a real number'):
        F.softplus(x, beta=None)


# -- GPU kernels -------------------------------------------------------------------------------

@pytest.mark.gpu
@pytest.mark.parametrize('dtype', [numpy.float32, numpy.float64])
def test_sigmoid_gpu_kernel_matches_cpu(dtype):
    import cupy
    x = _normal((64, 33), 21, 5.0).astype(dtype)
    x[0, :3] = [-1000, 0, 1000]
    gy = _normal((64, 33), 22).astype(dtype)
    out = []
    for arr, g in ((x, gy), (cupy.asarray(x), cupy.asarray(gy))):
        v = Variable(arr)
        y = F.sigmoid(v)
        y.grad = g
        y.backward()
        out.append((_cpu(y), _cpu(v.grad)))
    tol = 1e-6 if dtype == numpy.float32 else 1e-14
    assert_allclose(out[1][0], out[0][0], atol=tol, rtol=tol)
    assert_allclose(out[1][1], out[0][1], atol=tol, rtol=tol)


def test_public_names_are_exported_through_seqdbr_functions():
    from seqdbr.core.functions import activation as module
    assert sorted(module.__all__) == sorted(['relu', 'leaky_relu', 'tanh', 'sigmoid', 'softplus',
                                            'softmax', 'log_softmax', 'gelu', 'swish'])
    for name in module.__all__:
        assert getattr(F, name) is getattr(module, name)
