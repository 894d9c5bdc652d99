"""Tests for seqdbr.core.functions.convolution and the Convolution2D/1D links.

The reference is a direct loop over every output element written here (no im2col), and
every backward is checked against central differences in float64.
"""
import numpy
import pytest

import seqdbr.functions as F
import seqdbr.links as L
from seqdbr import Variable
from seqdbr.core import backend, serializers
from seqdbr.gradient_check import assert_allclose, check_backward


def _normal(shape, seed, dtype=numpy.float64):
    return numpy.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _pair(v):
    return tuple(v) if isinstance(v, tuple) else (v, v)


def conv_loop(x, W, b, stride, pad, dilate, groups):
    """y[n, o, p, q] = b[o] + sum_{c,i,j} W[o,c,i,j] x[n, g*Cg + c, p*sh + i*dh - ph, ...]."""
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(pad), _pair(dilate)
    B, C, H, Wd = x.shape
    O, Cg, kh, kw = W.shape
    oh = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (Wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    y = numpy.zeros((B, O, oh, ow))
    for n in range(B):
        for o in range(O):
            g = o // (O // groups)
            for p in range(oh):
                for q in range(ow):
                    acc = 0.0 if b is None else b[o]
                    for c in range(Cg):
                        for i in range(kh):
                            for j in range(kw):
                                r, s = p * sh + i * dh - ph, q * sw + j * dw - pw
                                if 0 <= r < H and 0 <= s < Wd:
                                    acc += W[o, c, i, j] * x[n, g * Cg + c, r, s]
                    y[n, o, p, q] = acc
    return y


# (B, C, H, W), (O, kh, kw), stride, pad, dilate, groups
CASES = [
    ((2, 3, 5, 6), (4, 2, 3), 1, 0, 1, 1),            # non-square kernel
    ((1, 2, 7, 6), (3, 3, 3), 2, 1, 1, 1),            # batch 1, stride, pad
    ((2, 2, 6, 7), (2, 3, 2), (2, 1), (0, 1), 1, 1),  # per-axis stride / pad
    ((2, 2, 7, 7), (4, 3, 3), 1, 2, 2, 1),            # dilation
    ((2, 4, 5, 5), (6, 3, 3), 1, 1, 1, 2),            # groups
    ((1, 6, 4, 5), (3, 2, 2), 1, 0, (1, 2), 3),       # groups + per-axis dilation
    ((2, 3, 3, 3), (2, 3, 3), 1, 0, 1, 1),            # 1x1 output
    ((1, 1, 1, 1), (2, 1, 1), 1, 0, 1, 1),            # 1x1 everything
]


@pytest.mark.parametrize('xshape,wshape,stride,pad,dilate,groups', CASES)
@pytest.mark.parametrize('use_bias', [True, False])
def test_convolution_2d_matches_loop(xp, xshape, wshape, stride, pad, dilate, groups,
                                     use_bias):
    O, kh, kw = wshape
    x = _normal(xshape, 1)
    W = _normal((O, xshape[1] // groups, kh, kw), 2)
    b = _normal((O,), 3) if use_bias else None
    y = F.convolution_2d(xp.asarray(x), xp.asarray(W), None if b is None else xp.asarray(b),
                         stride, pad, dilate, groups)
    assert y.dtype == numpy.float64
    assert_allclose(y, conv_loop(x, W, b, stride, pad, dilate, groups), atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize('xshape,wshape,stride,pad,dilate,groups', CASES)
def test_convolution_2d_backward(xp, xshape, wshape, stride, pad, dilate, groups):
    O, kh, kw = wshape
    inputs = (xp.asarray(_normal(xshape, 4)),
              xp.asarray(_normal((O, xshape[1] // groups, kh, kw), 5)),
              xp.asarray(_normal((O,), 6)))
    check_backward(lambda x, W, b: F.convolution_2d(x, W, b, stride, pad, dilate, groups),
                   inputs, dtype=numpy.float64)


def test_convolution_2d_float32_and_zero_batch(xp):
    x = _normal((3, 2, 5, 5), 7, numpy.float32)
    W = _normal((4, 2, 3, 3), 8, numpy.float32)
    y = F.convolution_2d(xp.asarray(x), xp.asarray(W), pad=1)
    assert y.dtype == numpy.float32 and y.shape == (3, 4, 5, 5)
    assert_allclose(y, conv_loop(x.astype(float), W.astype(float), None, 1, 1, 1, 1),
                    atol=1e-5, rtol=1e-5)
    x0 = Variable(xp.zeros((0, 2, 5, 5), numpy.float32))
    W0 = Variable(xp.asarray(W))
    y0 = F.convolution_2d(x0, W0, pad=1)
    assert y0.shape == (0, 4, 5, 5)
    F.sum(y0).backward()
    assert x0.grad.shape == x0.shape and float(abs(W0.grad).sum()) == 0


@pytest.mark.parametrize('T,O,k,stride,pad,dilate,groups,causal', [
    (7, 4, 3, 1, 0, 1, 1, False), (8, 2, 3, 2, 1, 1, 1, False), (9, 4, 2, 1, 0, 3, 2, False),
    (5, 3, 3, 1, 0, 1, 1, True), (6, 2, 2, 1, 0, 2, 1, True), (1, 2, 1, 1, 0, 1, 1, False)])
def test_convolution_1d_matches_2d_loop_and_grad(xp, T, O, k, stride, pad, dilate, groups,
                                                 causal):
    B, C = 2, 4
    x, W, b = _normal((B, C, T), 9), _normal((O, C // groups, k), 10), _normal((O,), 11)
    y = F.convolution_1d(xp.asarray(x), xp.asarray(W), xp.asarray(b), stride, pad, dilate,
                         groups, causal)
    if causal:  # left padding only == the loop on an input padded by hand on the left
        xl = numpy.concatenate([numpy.zeros((B, C, dilate * (k - 1))), x], axis=2)
        ref = conv_loop(xl[:, :, None], W[:, :, None], b, (1, stride), 0, (1, dilate), groups)
        assert y.shape == (B, O, (T - 1) // stride + 1)
    else:
        ref = conv_loop(x[:, :, None], W[:, :, None], b, (1, stride), (0, pad), (1, dilate),
                        groups)
    assert_allclose(y, ref[:, :, 0], atol=1e-12, rtol=1e-12)
    check_backward(lambda x, W, b: F.convolution_1d(x, W, b, stride, pad, dilate, groups,
                                                    causal),
                   (xp.asarray(x), xp.asarray(W), xp.asarray(b)), dtype=numpy.float64)


def test_convolution_1d_causal_output_ignores_the_future(xp):
    x = _normal((1, 2, 6), 12)
    W = xp.asarray(_normal((3, 2, 3), 13))
    y1 = backend.to_cpu(F.convolution_1d(xp.asarray(x), W, causal=True, dilate=2).array)
    x2 = x.copy()
    x2[:, :, 4:] += 10.0
    y2 = backend.to_cpu(F.convolution_1d(xp.asarray(x2), W, causal=True, dilate=2).array)
    numpy.testing.assert_array_equal(y1[:, :, :4], y2[:, :, :4])
    assert not numpy.allclose(y1[:, :, 4:], y2[:, :, 4:])


# -- deconvolution --------------------------------------------------------------------------

@pytest.mark.parametrize('xshape,wshape,stride,pad,dilate,groups', CASES)
def test_deconvolution_is_the_adjoint_of_convolution(xp, xshape, wshape, stride, pad, dilate,
                                                     groups):
    # <conv(x, W), u> == <x, deconv(u, W)> for every x and u: deconvolution is the transpose.
    O, kh, kw = wshape
    x = _normal(xshape, 14)
    W = _normal((O, xshape[1] // groups, kh, kw), 15)
    y = conv_loop(x, W, None, stride, pad, dilate, groups)
    u = _normal(y.shape, 16)
    d = F.deconvolution_2d(xp.asarray(u), xp.asarray(W), None, stride, pad, xshape[2:],
                           dilate, groups)
    assert d.shape == xshape
    numpy.testing.assert_allclose(float((x * backend.to_cpu(d.array)).sum()),
                                  float((y * u).sum()), rtol=1e-12)


@pytest.mark.parametrize('xshape,wshape,stride,pad,dilate,groups', CASES[:6])
def test_deconvolution_2d_backward(xp, xshape, wshape, stride, pad, dilate, groups):
    # Here ``x`` of the deconvolution has the convolution's output shape.
    O, kh, kw = wshape
    W = _normal((O, xshape[1] // groups, kh, kw), 17)     # (C_in, C_out / G, kh, kw)
    u = conv_loop(_normal(xshape, 18), W, None, stride, pad, dilate, groups)
    b = _normal((xshape[1],), 19)
    check_backward(lambda u, W, b: F.deconvolution_2d(u, W, b, stride, pad, None, dilate,
                                                      groups),
                   (xp.asarray(u), xp.asarray(W), xp.asarray(b)), dtype=numpy.float64)


def test_deconvolution_2d_outsize_and_bias(xp):
    u = _normal((1, 2, 3, 3), 20)
    W = _normal((2, 3, 3, 3), 21)
    b = _normal((3,), 22)
    y = F.deconvolution_2d(xp.asarray(u), xp.asarray(W), xp.asarray(b), stride=2, pad=1,
                           outsize=(6, 5))
    assert y.shape == (1, 3, 6, 5)
    y0 = F.deconvolution_2d(xp.asarray(u), xp.asarray(W), None, stride=2, pad=1)
    assert y0.shape == (1, 3, 5, 5)
    assert_allclose(y.array[:, :, :5, :5], y0.array + xp.asarray(b)[:, None, None], atol=1e-12)
    with pytest.raises(ValueError, match='valid sizes are 5..6'):
        F.deconvolution_2d(xp.asarray(u), xp.asarray(W), stride=2, pad=1, outsize=(7, 5))


# -- bad input --------------------------------------------------------------------------------

def test_errors_name_the_shapes():
    x = numpy.zeros((2, 3, 5, 5), numpy.float32)
    W = numpy.zeros((4, 3, 3, 3), numpy.float32)
    with pytest.raises(ValueError, match=r'x must be 4-d \(B, C, H, W\), got shape \(3, 5, 5\)'
                                         r' \(a single example: x\[None\]\)'):
        F.convolution_2d(x[0], W)
    with pytest.raises(ValueError, match=r'W must be 4-d'):
        F.convolution_2d(x, W[0])
    with pytest.raises(ValueError, match=r'x of shape \(2, 2, 5, 5\) has 2 channels but W of '
                                         r'shape \(4, 3, 3, 3\) expects in_channels'):
        F.convolution_2d(x[:, :2], W)
    with pytest.raises(ValueError, match=r'groups=2 must divide both in_channels=3'):
        F.convolution_2d(x, W, groups=2)
    with pytest.raises(ValueError, match=r'kernel spans 7 rows \(ksize 3, dilate 3\) but the '
                                         r'padded input has only 5'):
        F.convolution_2d(x, W, dilate=3)
    with pytest.raises(ValueError, match=r'kernel spans 6 columns .* padded input has only 5'):
        F.convolution_2d(x, numpy.zeros((4, 3, 2, 6), numpy.float32))
    with pytest.raises(ValueError, match=r'b must have shape \(out_channels,\) = \(4,\)'):
        F.convolution_2d(x, W, numpy.zeros(3, numpy.float32))
    with pytest.raises(ValueError, match='stride must be a positive int'):
        F.convolution_2d(x, W, stride=0)
    with pytest.raises(TypeError, match='x has dtype float64 but W has dtype float32'):
        F.convolution_2d(x.astype(numpy.float64), W)
    with pytest.raises(ValueError, match=r'x must be 3-d \(B, C, T\)'):
        F.convolution_1d(x, W)
    with pytest.raises(ValueError, match='causal=True pads'):
        F.convolution_1d(x[:, :, 0], W[:, :, 0], pad=1, causal=True)
    with pytest.raises(ValueError, match=r'W.shape\[0\] = 4 input channels'):
        F.deconvolution_2d(x, W)


# -- links --------------------------------------------------------------------------------------

def test_convolution2d_link_lazy_in_channels_and_serialize(tmp_path):
    conv = L.Convolution2D(5, 3, stride=2, pad=1)       # (out_channels, ksize): lazy in
    assert conv.W.array is None and conv.in_channels is None
    x = _normal((2, 4, 7, 7), 23, numpy.float32)
    y = conv(x)
    assert conv.W.shape == (5, 4, 3, 3) and conv.in_channels == 4 and y.shape == (2, 5, 4, 4)
    assert_allclose(y, conv_loop(x.astype(float), conv.W.array.astype(float),
                                 conv.b.array.astype(float), 2, 1, 1, 1), atol=1e-5)
    serializers.save_npz(str(tmp_path / 'c.npz'), conv)
    other = L.Convolution2D(None, 5, 3, stride=2, pad=1)
    serializers.load_npz(str(tmp_path / 'c.npz'), other)
    assert other.in_channels == 4
    assert_allclose(other(x), y, atol=0, rtol=0)


def test_convolution_links_shapes_groups_and_errors():
    conv = L.Convolution2D(4, 6, (3, 2), groups=2, nobias=True)
    assert conv.W.shape == (6, 2, 3, 2) and conv.b is None
    # LeCun normal with fan-in (in / groups) * kh * kw
    big = L.Convolution2D(64, 256, 5)
    assert abs(float(big.W.array.std()) - (1 / (64 * 25)) ** 0.5) < 0.002
    c1 = L.Convolution1D(None, 8, 3, causal=True, dilate=2)
    assert c1(numpy.zeros((2, 5, 9), numpy.float32)).shape == (2, 8, 9)
    assert c1.W.shape == (8, 5, 3)
    with pytest.raises(ValueError, match='groups=2 must divide the input channels'):
        L.Convolution2D(None, 4, 3, groups=2)(numpy.zeros((1, 3, 5, 5), numpy.float32))
    with pytest.raises(ValueError, match='groups=4 must divide out_channels=6'):
        L.Convolution2D(4, 6, 3, groups=4)
    with pytest.raises(ValueError, match=r'initialW has shape \(2, 2, 2, 2\)'):
        L.Convolution2D(3, 2, 2, initialW=numpy.zeros((2, 2, 2, 2), numpy.float32))
    with pytest.raises(ValueError, match=r'x must be 4-d'):
        L.Convolution2D(2, 3)(numpy.zeros((1, 5, 5), numpy.float32))


@pytest.mark.gpu
def test_convolution_gpu_matches_cpu():
    import cupy
    x, W, b = (_normal((2, 4, 9, 8), 30, numpy.float32), _normal((6, 2, 3, 3), 31, numpy.float32),
               _normal((6,), 32, numpy.float32))
    gy = _normal((2, 6, 5, 8), 33, numpy.float32)
    outs = []
    for xp in (numpy, cupy):
        xv, Wv, bv = (Variable(xp.asarray(a)) for a in (x, W, b))
        y = F.convolution_2d(xv, Wv, bv, stride=(2, 1), pad=1, groups=2)
        y.grad = xp.asarray(gy)
        y.backward()
        outs.append([backend.to_cpu(a) for a in (y.array, xv.grad, Wv.grad, bv.grad)])
    for c, g in zip(*outs):
        numpy.testing.assert_allclose(g, c, atol=1e-4, rtol=1e-4)
