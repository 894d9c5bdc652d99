"""Tests for batch normalization: F.batch_normalization, F.fixed_batch_normalization and
L.BatchNormalization, against the equations of Ioffe & Szegedy (2015), Algorithms 1 and 2,
written out here."""
import numpy
import pytest

import seqdbr.functions as F
import seqdbr.links as L
from seqdbr import Variable
from seqdbr.core import backend, serializers
from seqdbr.core.config import using_config
from seqdbr.gradient_check import assert_allclose, check_backward


def _normal(shape, seed, dtype=numpy.float64):
    return numpy.random.default_rng(seed).standard_normal(shape).astype(dtype)


def bn_reference(x, gamma, beta, eps):
    """Algorithm 1 per channel c: statistics over every axis but axis 1."""
    y = numpy.empty_like(x)
    means, variances = [], []
    for c in range(x.shape[1]):
        v = x[:, c]
        mu = v.sum() / v.size
        var = ((v - mu) ** 2).sum() / v.size
        y[:, c] = gamma[c] * (v - mu) / numpy.sqrt(var + eps) + beta[c]
        means.append(mu)
        variances.append(var)
    return y, numpy.array(means), numpy.array(variances)


SHAPES = [(5, 3), (2, 3, 4, 5), (3, 2, 7), (1, 4, 2, 2), (2, 1, 1, 1)]


@pytest.mark.parametrize('shape', SHAPES)
def test_batch_normalization_matches_algorithm_1_and_updates_running_stats(xp, shape):
    x = _normal(shape, 1) * 3 + 1
    C = shape[1]
    gamma, beta = _normal((C,), 2), _normal((C,), 3)
    rm, rv = _normal((C,), 4), numpy.abs(_normal((C,), 5)) + 0.5
    rm_x, rv_x = xp.array(rm), xp.array(rv)      # copies: updated in place
    y = F.batch_normalization(xp.asarray(x), xp.asarray(gamma), xp.asarray(beta), eps=1e-3,
                              running_mean=rm_x, running_var=rv_x, decay=0.8)
    ref, mu, var = bn_reference(x, gamma, beta, 1e-3)
    assert_allclose(y, ref, atol=1e-12, rtol=1e-10)
    m = x.size // C
    assert_allclose(rm_x, 0.8 * rm + 0.2 * mu, atol=1e-12)             # Algorithm 2
    assert_allclose(rv_x, 0.8 * rv + 0.2 * var * m / max(m - 1, 1), atol=1e-12)


@pytest.mark.parametrize('shape', SHAPES)
def test_batch_normalization_backward(xp, shape):
    C = shape[1]
    check_backward(lambda x, g, b: F.batch_normalization(x, g, b, eps=1e-2),
                   (xp.asarray(_normal(shape, 6)), xp.asarray(_normal((C,), 7)),
                    xp.asarray(_normal((C,), 8))), dtype=numpy.float64, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize('shape', SHAPES + [(0, 3, 2)])
def test_fixed_batch_normalization_matches_equation_and_backward(xp, shape):
    C = shape[1]
    x, gamma, beta, mean = (_normal(shape, 9), _normal((C,), 10), _normal((C,), 11),
                            _normal((C,), 12))
    var = numpy.abs(_normal((C,), 13)) + 0.5
    bs = (1, C) + (1,) * (len(shape) - 2)
    ref = gamma.reshape(bs) * (x - mean.reshape(bs)) / numpy.sqrt(var.reshape(bs) + 1e-3) \
        + beta.reshape(bs)
    args = [xp.asarray(a) for a in (x, gamma, beta, mean, var)]
    assert_allclose(F.fixed_batch_normalization(*args, eps=1e-3), ref, atol=1e-12)
    check_backward(lambda *a: F.fixed_batch_normalization(*a, eps=1e-3), tuple(args),
                   dtype=numpy.float64)


def test_batch_normalization_float32_normalizes():
    x = _normal((64, 3, 4, 4), 14, numpy.float32) * 5 + 2
    y = F.batch_normalization(x, numpy.ones(3, numpy.float32), numpy.zeros(3, numpy.float32))
    assert y.dtype == numpy.float32
    yy = y.array.transpose(1, 0, 2, 3).reshape(3, -1)
    numpy.testing.assert_allclose(yy.mean(axis=1), 0, atol=1e-5)
    numpy.testing.assert_allclose(yy.std(axis=1), 1, atol=1e-4)


def test_batch_normalization_errors():
    x = numpy.zeros((4, 3, 2), numpy.float32)
    g = numpy.ones(3, numpy.float32)
    with pytest.raises(ValueError, match=r'gamma of shape \(4,\) must match the channel axes '
                                         r'x.shape\[1:2\] of x with shape \(4, 3, 2\)'):
        F.batch_normalization(x, numpy.ones(4, numpy.float32), numpy.zeros(4, numpy.float32))
    with pytest.raises(ValueError, match=r'beta has shape \(2,\) but gamma has shape \(3,\)'):
        F.batch_normalization(x, g, numpy.zeros(2, numpy.float32))
    with pytest.raises(ValueError, match='both running_mean and running_var'):
        F.batch_normalization(x, g, g, running_mean=numpy.zeros(3, numpy.float32))
    with pytest.raises(ValueError, match='no values to take statistics over'):
        F.batch_normalization(x[:0], g, g)
    with pytest.raises(TypeError, match='gamma has dtype float64 but x has dtype float32'):
        F.batch_normalization(x, g.astype(numpy.float64), g.astype(numpy.float64))
    with pytest.raises(ValueError, match='eps must be a positive number'):
        F.fixed_batch_normalization(x, g, g, g, g, eps=0)


# -- the link ------------------------------------------------------------------------------------

def test_batch_normalization_link_train_vs_test_mode():
    bn = L.BatchNormalization(3, decay=0.5, eps=1e-5, dtype=numpy.float64)
    bn.gamma.array[...] = [1.0, 2.0, 0.5]
    bn.beta.array[...] = [0.0, -1.0, 3.0]
    xs = [_normal((6, 3, 2, 2), 20 + k) * (k + 1) + k for k in range(3)]
    rm, rv = numpy.zeros(3), numpy.ones(3)
    for x in xs:                                  # training: batch statistics
        y = bn(x)
        ref, mu, var = bn_reference(x, bn.gamma.array, bn.beta.array, 1e-5)
        assert_allclose(y, ref, atol=1e-12)
        m = x.size // 3
        rm, rv = 0.5 * rm + 0.5 * mu, 0.5 * rv + 0.5 * var * m / (m - 1)
    assert bn.N == 3
    assert_allclose(bn.avg_mean, rm, atol=1e-12)
    assert_allclose(bn.avg_var, rv, atol=1e-12)
    x = _normal((2, 3, 2, 2), 30)
    with using_config('train', False):            # test: running statistics, no update
        y = bn(x)
    bs = (1, 3, 1, 1)
    ref = (bn.gamma.array.reshape(bs) * (x - rm.reshape(bs)) / numpy.sqrt(rv.reshape(bs) + 1e-5)
           + bn.beta.array.reshape(bs))
    assert_allclose(y, ref, atol=1e-12)
    assert bn.N == 3
    assert_allclose(bn.avg_mean, rm, atol=1e-12)


def test_batch_normalization_link_gradients_reach_gamma_and_beta():
    bn = L.BatchNormalization(2, dtype=numpy.float64)
    x = Variable(_normal((4, 2, 3), 31))
    F.sum(bn(x) * _normal((4, 2, 3), 32)).backward()
    assert bn.gamma.grad.shape == (2,) and bn.beta.grad.shape == (2,)
    assert float(abs(x.grad).sum()) > 0


def test_batch_normalization_link_serializes_running_stats_and_is_lazy(tmp_path):
    bn = L.BatchNormalization()                   # size inferred on the first call
    assert bn.avg_mean is None
    for k in range(3):
        bn(_normal((8, 5), 40 + k, numpy.float32) + k)
    assert bn.size == 5 and bn.gamma.shape == (5,)
    path = str(tmp_path / 'bn.npz')
    serializers.save_npz(path, bn)
    with numpy.load(path) as f:
        assert set(f.files) == {'gamma', 'beta', 'avg_mean', 'avg_var', 'N'}
    fresh = L.BatchNormalization()
    serializers.load_npz(path, fresh)
    assert fresh.size == 5 and fresh.N == 3
    numpy.testing.assert_array_equal(fresh.avg_mean, bn.avg_mean)
    numpy.testing.assert_array_equal(fresh.avg_var, bn.avg_var)
    sized = L.BatchNormalization(5)
    serializers.load_npz(path, sized)             # loaded in place into existing arrays
    x = _normal((2, 5), 50, numpy.float32)
    with using_config('train', False):
        assert_allclose(sized(x), bn(x), atol=0, rtol=0)
    with pytest.raises(ValueError, match=r'gamma of shape \(5,\) must match'):
        bn(numpy.zeros((2, 4), numpy.float32))


def test_batch_normalization_link_without_gamma_beta():
    bn = L.BatchNormalization(3, use_gamma=False, use_beta=False)
    assert list(bn.namedparams()) == []
    y = bn(_normal((10, 3), 60, numpy.float32) * 4 + 1)
    numpy.testing.assert_allclose(y.array.mean(axis=0), 0, atol=1e-5)


@pytest.mark.gpu
def test_batch_normalization_link_on_gpu():
    import cupy
    x = _normal((8, 3, 2, 2), 70, numpy.float32)
    res = []
    for dev in ('cpu', 'gpu'):
        bn = L.BatchNormalization(3)
        bn.to_device(dev)
        xv = Variable(bn.xp.asarray(x))
        F.sum(bn(xv) ** 2).backward()
        res.append([backend.to_cpu(a) for a in (bn.avg_mean, bn.avg_var, xv.grad,
                                                bn.gamma.grad)])
    assert isinstance(bn.avg_mean, cupy.ndarray)
    for c, g in zip(*res):
        numpy.testing.assert_allclose(g, c, atol=1e-4, rtol=1e-4)
