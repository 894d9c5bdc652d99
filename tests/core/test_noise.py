"""Tests for seqdbr.core.functions.noise.dropout."""
import math

import numpy
import pytest

import seqdbr
import seqdbr.functions as F
from seqdbr import Variable
from seqdbr.core import backend
from seqdbr.core.functions import noise
from seqdbr.gradient_check import assert_allclose, check_backward


def _cpu(v):
    return backend.to_cpu(v.array if isinstance(v, Variable) else v)


def _normal(shape, seed, dtype=numpy.float64):
    return numpy.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.fixture(autouse=True)
def _restore_dropout_rng():
    yield
    noise.set_seed(None)


@pytest.mark.parametrize('dtype', [numpy.float16, numpy.float32, numpy.float64])
@pytest.mark.parametrize('ratio', [0.1, 0.5, 0.9])
def test_kept_units_are_scaled_and_dropped_units_are_zero(xp, dtype, ratio):
    x = (numpy.abs(_normal((50, 40), 1)) + 0.5).astype(dtype)   # strictly positive
    y = _cpu(F.dropout(xp.asarray(x), ratio, rng=numpy.random.default_rng(0)))
    assert y.dtype == dtype and y.shape == x.shape
    kept = y != 0
    assert 0 < kept.sum() < x.size
    scale = 1.0 / (1.0 - ratio)
    tol = 2e-3 if dtype == numpy.float16 else 1e-6
    numpy.testing.assert_allclose(y[kept], (x[kept].astype(numpy.float64) * scale).astype(dtype),
                                  rtol=tol)


@pytest.mark.parametrize('ratio', [0.2, 0.5, 0.8])
def test_statistics_match_binomial(xp, ratio):
    # N independent keeps ~ Binomial(N, 1 - ratio); allow 5 standard deviations (fixed seed).
    n = 200_000
    noise.set_seed(1234)
    y = _cpu(F.dropout(xp.ones(n, dtype=numpy.float32), ratio))
    p = 1.0 - ratio
    k = int(numpy.count_nonzero(y))
    assert abs(k - n * p) < 5 * math.sqrt(n * p * (1 - p))
    # the mean of y estimates 1 (expectation preserved); its std is sqrt(ratio / (p * n))
    assert abs(float(y.astype(numpy.float64).mean()) - 1.0) < 5 * math.sqrt(ratio / (p * n))


def test_identity_in_test_mode_and_for_zero_ratio(xp):
    v = Variable(xp.asarray(_normal((3, 4), 2)))
    with seqdbr.using_config('train', False):
        assert F.dropout(v) is v
        assert F.dropout(v, 0.9) is v
    assert F.dropout(v, 0.0) is v
    arr = xp.asarray(_normal((2, 2), 3))
    with seqdbr.using_config('train', False):
        out = F.dropout(arr)
    assert isinstance(out, Variable) and out.array is arr and out.creator is None
    assert not out.requires_grad


def test_validation_runs_in_test_mode_too():
    with seqdbr.using_config('train', False):
        with pytest.raises(ValueError, match=r'ratio must be in \[0, 1\).*got 1.0'):
            F.dropout(numpy.zeros(3), 1.0)


def test_set_seed_reproduces_masks_and_rng_argument(xp):
    x = xp.ones((20, 30), dtype=numpy.float32)
    noise.set_seed(7)
    a = _cpu(F.dropout(x, 0.5))
    b = _cpu(F.dropout(x, 0.5))
    noise.set_seed(7)
    a2 = _cpu(F.dropout(x, 0.5))
    F.set_dropout_seed(7)
    a3 = _cpu(F.dropout(x, 0.5))
    numpy.testing.assert_array_equal(a, a2)
    numpy.testing.assert_array_equal(a, a3)
    assert not numpy.array_equal(a, b)      # the stream advances between calls
    r1 = _cpu(F.dropout(x, 0.3, rng=numpy.random.default_rng(42)))
    r2 = _cpu(F.dropout(x, 0.3, rng=numpy.random.default_rng(42)))
    numpy.testing.assert_array_equal(r1, r2)


def test_cpu_mask_is_documented_threshold_of_generator_draws():
    # the mask keeps exactly the positions where Generator.random(shape, float32) >= ratio
    x = numpy.ones((6, 7), dtype=numpy.float32)
    u = numpy.random.default_rng(3).random((6, 7), dtype=numpy.float32)
    y = F.dropout(x, 0.4, rng=numpy.random.default_rng(3)).array
    numpy.testing.assert_array_equal(y != 0, u >= 0.4)


@pytest.mark.parametrize('shape', [(4, 5), (1, 1), (0, 3), (2, 3, 4), ()])
@pytest.mark.parametrize('ratio', [0.3, 0.7])
def test_dropout_backward(xp, shape, ratio):
    # a fresh generator with a fixed seed per call makes every forward use the same mask
    check_backward(lambda x: F.dropout(x, ratio, rng=numpy.random.default_rng(5)),
                   xp.asarray(_normal(shape, 4)), dtype=numpy.float64)


def test_zero_dim_input_gives_array_output_and_gradient(xp):
    v = Variable(xp.asarray(numpy.array(2.0)))
    y = F.dropout(v, 0.5, rng=numpy.random.default_rng(0))
    y.backward()
    ndarray = type(xp.zeros(1))
    assert type(y.array) is ndarray and type(v.grad) is ndarray
    # the gradient follows the forward's mask: 1 / (1 - 0.5) where kept, else 0
    assert float(y.array) in (0.0, 4.0)
    assert float(v.grad) == float(y.array) / 2.0
    if xp is numpy:     # and that mask is the documented one: keep where u >= ratio
        u = numpy.random.default_rng(0).random((), dtype=numpy.float32)
        assert float(v.grad) == (2.0 if u >= 0.5 else 0.0)


def test_backward_multiplies_by_the_same_mask(xp):
    x = Variable(xp.asarray(numpy.abs(_normal((30, 20), 6)) + 1.0))
    y = F.dropout(x, 0.6)
    gy = _normal((30, 20), 7)
    y.grad = xp.asarray(gy)
    y.backward()
    mask = _cpu(y) / _cpu(x)
    assert set(numpy.unique(numpy.round(mask, 12))) <= {0.0, round(1 / 0.4, 12)}
    assert_allclose(x.grad, gy * mask, atol=1e-12)


def test_errors():
    x = numpy.zeros((2, 2), numpy.float32)
    for bad in (1.0, 1.5, -0.1):
        with pytest.raises(ValueError, match=r'ratio must be in \[0, 1\)'):
            F.dropout(x, bad)
    with pytest.raises(TypeError, match=r'ratio must be a float'):
        F.dropout(x, '0.5')
    with pytest.raises(TypeError, match=r'ratio must be a float'):
        F.dropout(x, True)
    with pytest.raises(TypeError, match=r'floating-point.*int32'):
        F.dropout(numpy.zeros(3, numpy.int32))
    with pytest.raises(TypeError, match=r'rng must be None or a numpy.random.Generator.*'
                                        r'RandomState'):
        F.dropout(x, 0.5, rng=numpy.random.RandomState(0))
    with pytest.raises(ValueError, match=r'seed must be a non-negative int'):
        noise.set_seed(-1)
    with pytest.raises(TypeError, match=r'seed must be a non-negative int or None, got 1.5'):
        noise.set_seed(1.5)


@pytest.mark.gpu
def test_dropout_gpu_kernel_and_host_generator():
    import cupy
    x = numpy.abs(_normal((64, 50), 8)).astype(numpy.float32) + 1
    # a NumPy generator on a CuPy input reproduces the CPU mask exactly
    yc = _cpu(F.dropout(x, 0.35, rng=numpy.random.default_rng(11)))
    yg = _cpu(F.dropout(cupy.asarray(x), 0.35, rng=numpy.random.default_rng(11)))
    assert_allclose(yg, yc, atol=0, rtol=1e-6)
    # the default CuPy stream is seeded by set_seed
    noise.set_seed(3)
    a = _cpu(F.dropout(cupy.asarray(x), 0.35))
    noise.set_seed(3)
    b = _cpu(F.dropout(cupy.asarray(x), 0.35))
    numpy.testing.assert_array_equal(a, b)
    v = Variable(cupy.asarray(x))
    y = F.dropout(v, 0.5)
    y.grad = cupy.ones_like(y.array)
    y.backward()
    assert_allclose(v.grad, _cpu(y) / x, atol=1e-6)


def test_public_names_are_exported_through_seqdbr_functions():
    from seqdbr.core.functions import noise as module
    assert sorted(module.__all__) == sorted(['dropout', 'set_dropout_seed'])
    for name in module.__all__:
        assert getattr(F, name) is getattr(module, name)
