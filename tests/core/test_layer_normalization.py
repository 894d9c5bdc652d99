"""F.layer_normalization and L.LayerNormalization (Ba et al. 2016) against a NumPy reference
written here; float64 check_backward over several shapes incl. batch 1, N = 1 and zero-size."""
import numpy
import pytest

import seqdbr
import seqdbr.functions as F
import seqdbr.links as L
from seqdbr.core import backend
from seqdbr.gradient_check import check_backward, assert_allclose


def _u(xp, shape, seed=0, lo=-2.0, hi=2.0, dtype=numpy.float64):
    return xp.asarray(numpy.random.RandomState(seed).uniform(lo, hi, shape).astype(dtype))


def _ref(x, gamma, beta, eps):
    x = backend.to_cpu(x)
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    y = (x - mu) / numpy.sqrt(var + eps)
    if gamma is not None:
        y = y * backend.to_cpu(gamma)
    if beta is not None:
        y = y + backend.to_cpu(beta)
    return y


@pytest.mark.parametrize('shape', [(4, 5), (1, 5), (3, 1), (2, 3, 6), (0, 4), (7,)])
@pytest.mark.parametrize('affine', ['both', 'gamma', 'beta', 'none'])
def test_layer_normalization(xp, shape, affine):
    N = shape[-1]
    x = _u(xp, shape)
    gamma = _u(xp, (N,), seed=1, lo=0.5) if affine in ('both', 'gamma') else None
    beta = _u(xp, (N,), seed=2) if affine in ('both', 'beta') else None
    y = F.layer_normalization(x, gamma, beta, eps=1e-3)
    assert_allclose(y, _ref(x, gamma, beta, 1e-3), atol=1e-13, rtol=1e-13)
    inputs = tuple(a for a in (x, gamma, beta) if a is not None)

    def f(*vs):
        vs = list(vs)
        xv = vs.pop(0)
        g = vs.pop(0) if gamma is not None else None
        b = vs.pop(0) if beta is not None else None
        return F.layer_normalization(xv, g, b, eps=1e-3)
    check_backward(f, inputs)


def test_layer_normalization_rows_are_independent_and_float32(xp):
    x = _u(xp, (3, 8), dtype=numpy.float32)
    g = xp.ones(8, dtype=numpy.float32)
    b = xp.zeros(8, dtype=numpy.float32)
    y = F.layer_normalization(x, g, b)
    assert y.dtype == numpy.float32
    y1 = F.layer_normalization(x[1:2], g, b)           # same row alone: same result
    assert_allclose(y.array[1:2], y1.array, atol=0, rtol=0)
    yc = backend.to_cpu(y.array)
    assert_allclose(yc.mean(axis=1), numpy.zeros(3), atol=1e-6, rtol=0)
    assert_allclose(yc.std(axis=1), numpy.ones(3), atol=1e-3, rtol=0)


def test_layer_normalization_errors(xp):
    x = xp.zeros((2, 3))
    with pytest.raises(ValueError, match=r'gamma must have shape \(N,\) = \(3,\)'):
        F.layer_normalization(x, xp.ones(4), None)
    with pytest.raises(TypeError, match='beta has dtype float32'):
        F.layer_normalization(x, None, xp.zeros(3, dtype=numpy.float32))
    with pytest.raises(ValueError, match='eps'):
        F.layer_normalization(x, None, None, eps=0)
    with pytest.raises(ValueError, match='non-empty last'):
        F.layer_normalization(xp.zeros((2, 0)), None, None)
    with pytest.raises(TypeError, match='floating'):
        F.layer_normalization(xp.zeros((2, 3), dtype=numpy.int32), None, None)


def test_layer_normalization_link_lazy_and_trainable(xp):
    ln = L.LayerNormalization()
    if xp is not numpy:
        ln.to_gpu()
    x = _u(xp, (4, 6), dtype=numpy.float32)
    y = ln(x)
    assert ln.gamma.shape == (6,) and ln.beta.shape == (6,)
    assert_allclose(y, _ref(x, None, None, 1e-5), atol=1e-5, rtol=1e-5)
    F.sum(y * _u(xp, (4, 6), seed=5, dtype=numpy.float32)).backward()
    assert ln.gamma.grad.shape == (6,) and ln.beta.grad.shape == (6,)
    assert [n for n, _ in ln.namedparams()] == ['/gamma', '/beta']
    ln2 = L.LayerNormalization(6, eps=1e-3, initial_gamma=2.0, initial_beta=0.5)
    if xp is not numpy:
        ln2.to_gpu()
    assert_allclose(ln2(x), _ref(x, 2.0 * numpy.ones(6), 0.5 * numpy.ones(6), 1e-3), atol=1e-5,
                    rtol=1e-5)
    with pytest.raises(ValueError, match=r'has 5 features .* size=6'):
        ln2(_u(xp, (2, 5), dtype=numpy.float32))
    with pytest.raises(ValueError, match='size'):
        L.LayerNormalization(0)


def test_layer_normalization_link_serializes(tmp_path):
    ln = L.LayerNormalization(3)
    ln.gamma.array[...] = [1, 2, 3]
    seqdbr.serializers.save_npz(str(tmp_path / 'ln.npz'), ln)
    other = L.LayerNormalization()
    seqdbr.serializers.load_npz(str(tmp_path / 'ln.npz'), other)
    assert other.gamma.array.tolist() == [1, 2, 3]
