"""Tests for seqdbr.core.functions.pooling: 2-d/1-d max and average pooling, and global
pooling over time with lengths/masks. References are direct loops written here."""
import numpy
import pytest

import seqdbr.functions as F
from seqdbr import Variable
from seqdbr.core import backend
from seqdbr.gradient_check import assert_allclose, check_backward


def _pair(v):
    return tuple(v) if isinstance(v, tuple) else (v, v)


def _distinct(shape, seed):
    """Values with distinct entries (so the max of a window is unique: finite differences
    of max pooling are then well defined)."""
    rng = numpy.random.default_rng(seed)
    n = int(numpy.prod(shape))
    return (rng.permutation(n) / max(n, 1) * 4 - 2).reshape(shape).astype(numpy.float64)


def pool_loop(x, ksize, stride, pad, cover_all, op, divide_by_real=False):
    """Windows located exactly as Chainer's get_conv_outsize says; padding left out of max
    and of the real-cell count, counted as zeros for the kh*kw average."""
    k = _pair(ksize)
    s = k if stride is None else _pair(stride)
    p = _pair(pad)
    B, C, H, W = x.shape
    size = [(n + 2 * pp - kk + (ss - 1 if cover_all else 0)) // ss + 1
            for n, kk, ss, pp in zip((H, W), k, s, p)]
    y = numpy.zeros((B, C) + tuple(size))
    for a in range(size[0]):
        for b in range(size[1]):
            vals = [x[:, :, r, c] for i in range(k[0]) for j in range(k[1])
                    for r, c in [(a * s[0] + i - p[0], b * s[1] + j - p[1])]
                    if 0 <= r < H and 0 <= c < W]
            if op == 'max':
                y[:, :, a, b] = numpy.max(vals, axis=0)
            else:
                y[:, :, a, b] = numpy.sum(vals, axis=0) / (len(vals) if divide_by_real
                                                           else k[0] * k[1])
    return y


# shape, ksize, stride, pad, cover_all
CASES = [
    ((2, 3, 6, 6), 2, None, 0, False),
    ((2, 3, 5, 7), 2, None, 0, True),           # cover_all keeps the partial last window
    ((1, 2, 7, 6), (3, 2), (2, 1), (1, 1), True),
    ((2, 1, 5, 5), 3, 2, 1, False),
    ((1, 2, 3, 3), 3, 1, 0, False),             # 1x1 output, batch 1
    ((2, 2, 4, 5), (1, 3), (1, 2), (0, 1), True),
]


@pytest.mark.parametrize('shape,ksize,stride,pad,cover_all', CASES)
def test_max_pooling_2d_forward_and_backward(xp, shape, ksize, stride, pad, cover_all):
    x = _distinct(shape, 1)
    y = F.max_pooling_2d(xp.asarray(x), ksize, stride, pad, cover_all)
    assert_allclose(y, pool_loop(x, ksize, stride, pad, cover_all, 'max'), atol=0, rtol=0)
    check_backward(lambda x: F.max_pooling_2d(x, ksize, stride, pad, cover_all),
                   (xp.asarray(x),), dtype=numpy.float64)


@pytest.mark.parametrize('shape,ksize,stride,pad,cover_all', CASES)
@pytest.mark.parametrize('pad_value', [0, None])
def test_average_pooling_2d_forward_and_backward(xp, shape, ksize, stride, pad, cover_all,
                                                 pad_value):
    x = _distinct(shape, 2)
    y = F.average_pooling_2d(xp.asarray(x), ksize, stride, pad, cover_all, pad_value)
    ref = pool_loop(x, ksize, stride, pad, cover_all, 'avg', divide_by_real=pad_value is None)
    assert_allclose(y, ref, atol=1e-12, rtol=1e-12)
    check_backward(lambda x: F.average_pooling_2d(x, ksize, stride, pad, cover_all, pad_value),
                   (xp.asarray(x),), dtype=numpy.float64)


def test_max_pooling_cover_all_sizes_follow_chainer():
    x = numpy.zeros((1, 1, 5, 5), numpy.float32)
    assert F.max_pooling_2d(x, 2).shape == (1, 1, 3, 3)                   # default cover_all
    assert F.max_pooling_2d(x, 2, cover_all=False).shape == (1, 1, 2, 2)
    assert F.average_pooling_2d(x, 2).shape == (1, 1, 2, 2)               # default False
    assert F.max_pooling_2d(numpy.zeros((0, 2, 4, 4), numpy.float32), 2).shape == (0, 2, 2, 2)


@pytest.mark.parametrize('T,k,stride,pad,cover_all', [(7, 2, None, 0, True), (8, 3, 2, 1, False),
                                                      (1, 1, 1, 0, False), (6, 3, 1, 1, True)])
def test_pooling_1d_is_2d_with_one_row(xp, T, k, stride, pad, cover_all):
    x = _distinct((2, 3, T), 3)
    y = F.max_pooling_1d(xp.asarray(x), k, stride, pad, cover_all)
    ref = pool_loop(x[:, :, None], (1, k), None if stride is None else (1, stride), (0, pad),
                    cover_all, 'max')
    assert_allclose(y, ref[:, :, 0], atol=0, rtol=0)
    ya = F.average_pooling_1d(xp.asarray(x), k, stride, pad, cover_all)
    refa = pool_loop(x[:, :, None], (1, k), None if stride is None else (1, stride), (0, pad),
                     cover_all, 'avg')
    assert_allclose(ya, refa[:, :, 0], atol=1e-12)
    check_backward(lambda x: F.max_pooling_1d(x, k, stride, pad, cover_all), (xp.asarray(x),))
    check_backward(lambda x: F.average_pooling_1d(x, k, stride, pad, cover_all),
                   (xp.asarray(x),))


def test_max_pooling_ties_send_the_gradient_to_the_first_maximum(xp):
    x = Variable(xp.ones((1, 1, 2, 2)))
    y = F.max_pooling_2d(x, 2)
    y.grad = xp.full((1, 1, 1, 1), 3.0)
    y.backward()
    numpy.testing.assert_array_equal(backend.to_cpu(x.grad)[0, 0], [[3, 0], [0, 0]])


def test_pooling_errors():
    x = numpy.zeros((2, 3, 4, 4), numpy.float32)
    with pytest.raises(ValueError, match=r'x must be 4-d \(B, C, H, W\), got shape \(3, 4, 4\)'):
        F.max_pooling_2d(x[0], 2)
    with pytest.raises(ValueError, match=r'ksize 5 is larger than the padded input \(size 4 '
                                         r'\+ 2 \* pad 0\) of x with shape \(2, 3, 4, 4\)'):
        F.max_pooling_2d(x, 5)
    with pytest.raises(ValueError, match='pad 2 must be smaller than ksize 2'):
        F.average_pooling_2d(x, 2, pad=2)
    with pytest.raises(ValueError, match='lies entirely in the padding'):
        F.max_pooling_2d(x, 2, stride=3, pad=1)
    with pytest.raises(ValueError, match='pad_value must be 0'):
        F.average_pooling_2d(x, 2, pad_value=1)
    with pytest.raises(ValueError, match=r'x must be 3-d \(B, C, T\)'):
        F.max_pooling_1d(x, 2)
    with pytest.raises(TypeError, match='floating-point'):
        F.max_pooling_2d(x.astype(numpy.int32), 2)


# -- global pooling over time -------------------------------------------------------------------

@pytest.mark.parametrize('how', ['none', 'lengths', 'mask'])
def test_global_pooling_over_time_ignores_padding(xp, how):
    B, C, T = 3, 4, 6
    lengths = numpy.array([6, 1, 3])
    x = _distinct((B, C, T), 4)
    x[1, :, 1:] = 100.0       # padding with large values must not win (nor count)
    x[2, :, 3:] = 100.0
    if how == 'none':
        lengths = numpy.full(B, T)
        x = _distinct((B, C, T), 4)
        kw = {}
    elif how == 'lengths':
        kw = {'lengths': xp.asarray(lengths)}
    else:
        kw = {'mask': xp.asarray(numpy.arange(T)[None, :] < lengths[:, None])}
    ymax = F.global_max_pooling_1d(xp.asarray(x), **kw)
    yavg = F.global_average_pooling_1d(xp.asarray(x), **kw)
    for b in range(B):
        assert_allclose(ymax.array[b], x[b, :, :lengths[b]].max(axis=1), atol=0, rtol=0)
        assert_allclose(yavg.array[b], x[b, :, :lengths[b]].mean(axis=1), atol=1e-12)
    check_backward(lambda x: F.global_max_pooling_1d(x, **kw), (xp.asarray(x),))
    check_backward(lambda x: F.global_average_pooling_1d(x, **kw), (xp.asarray(x),))


def test_global_pooling_batch_one_length_one_and_list_lengths(xp):
    x = _distinct((1, 2, 1), 5)
    assert_allclose(F.global_max_pooling_1d(xp.asarray(x), lengths=[1]), x[:, :, 0], atol=0)
    check_backward(lambda x: F.global_max_pooling_1d(x), (xp.asarray(x),))


def test_global_pooling_errors():
    x = numpy.zeros((2, 3, 4), numpy.float32)
    with pytest.raises(ValueError, match=r'every length must lie in \[1, T\] = \[1, 4\]'):
        F.global_max_pooling_1d(x, lengths=[0, 4])
    with pytest.raises(ValueError, match=r'lengths must be an integer array of shape \(B,\)'):
        F.global_max_pooling_1d(x, lengths=numpy.array([1, 2, 3]))
    with pytest.raises(ValueError, match='rows \\[1\\] have none'):
        F.global_average_pooling_1d(x, mask=numpy.array([[True] * 4, [False] * 4]))
    with pytest.raises(ValueError, match='not both'):
        F.global_max_pooling_1d(x, lengths=[1, 1], mask=numpy.ones((2, 4), bool))
    with pytest.raises(ValueError, match='no time steps'):
        F.global_max_pooling_1d(numpy.zeros((2, 3, 0), numpy.float32))
    with pytest.raises(ValueError, match=r'x must be 3-d'):
        F.global_max_pooling_1d(numpy.zeros((2, 3), numpy.float32))


@pytest.mark.gpu
def test_pooling_gpu_matches_cpu():
    import cupy
    x = _distinct((2, 3, 7, 6), 6).astype(numpy.float32)
    outs = []
    for xp in (numpy, cupy):
        xv = Variable(xp.asarray(x))
        y = F.max_pooling_2d(xv, 3, 2, 1) + F.average_pooling_2d(xv, 3, 2, 1)
        F.sum(y * y).backward()
        outs.append((backend.to_cpu(y.array), backend.to_cpu(xv.grad)))
    for c, g in zip(*outs):
        numpy.testing.assert_allclose(g, c, atol=1e-5, rtol=1e-5)
