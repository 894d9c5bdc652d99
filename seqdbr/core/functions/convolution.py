"""Convolutions: ``convolution_2d``, ``convolution_1d`` and ``deconvolution_2d``.

Layout NCHW (Chainer, PyTorch): ``x`` is ``(B, C, H, W)`` (or ``(B, C, T)`` in 1-d) and the
kernel ``W`` is ``(out_channels, in_channels / groups, kh, kw)``. The output is the
cross-correlation (no kernel flip), as in every deep-learning library:

    y[b, o, p, q] = b[o] + sum_{c, i, j} W[o, c, i, j]
                    * xpad[b, g(o) C/G + c, p sh + i dh, q sw + j dw]

with ``xpad`` the zero-padded input and ``g(o) = o // (O / G)`` the group of output channel
``o`` (Krizhevsky et al. 2012 for groups; Yu & Koltun 2016 for dilation).

How it is computed (CPU and GPU alike, through the array module of the inputs): the
padded input's windows are a strided view (no copy), copied once into the column matrix
``col`` of shape ``(C kh kw, oh ow B)``; then ``y = W2 @ col`` is ONE matrix product
(``W2 = W.reshape(O, C/G kh kw)``; with groups, one batched product over the groups). The
backward pass is two more products, ``gW = gy2 @ col^T`` and ``gcol = W2^T @ gy2``, and a
scatter of ``gcol`` back onto the input that loops over the ``kh kw`` kernel offsets (never
over output positions). ``deconvolution_2d`` is the same three products in the other order.

Layout: the column matrix orders its columns ``(oh, ow, B)``, batch innermost ("CHWN",
as in cuda-convnet), so the product is the output ``(B, O, oh, ow)`` as a transposed view
with the batch axis innermost in memory, with no copy. Element-wise ops keep that layout,
pooling preserves it, and the next convolution's ``col`` copy and its backward's
``_rows(gy)`` then read contiguous runs; the col2im adds run over ``ow B`` contiguous
elements instead of ``ow``, 7x faster at MNIST sizes. An input in ordinary C order (the
first layer's data) is transposed once before the gather. NumPy and CuPy ops accept any
strides. Memory: the node keeps ``col`` (``C kh kw x oh ow B`` elements) for ``gW``.
"""
import numbers

import numpy

from seqdbr.core import backend
from seqdbr.core.function_node import FunctionNode
from seqdbr.core.functions import _windows
from seqdbr.core.functions.activation import _float_array

__all__ = ['convolution_2d', 'convolution_1d', 'deconvolution_2d']


# -- the three products, with or without groups ---------------------------------------------

def _mm(W2, col, G):
    """``W2 (O, K/G) x col (K, N) -> (O, N)``, block-diagonal over G groups."""
    if G == 1:
        return W2 @ col
    xp = backend.get_array_module(W2)
    O, Kg = W2.shape
    y = xp.matmul(W2.reshape(G, O // G, Kg), col.reshape(G, Kg, -1))
    return y.reshape(O, -1)


def _mm_t(W2, gy2, G):
    """``W2^T x gy2``: ``(O, K/G), (O, N) -> (K, N)``, block-diagonal over G groups."""
    if G == 1:
        return W2.T @ gy2
    xp = backend.get_array_module(W2)
    O, Kg = W2.shape
    g = xp.matmul(W2.reshape(G, O // G, Kg).transpose(0, 2, 1), gy2.reshape(G, O // G, -1))
    return g.reshape(G * Kg, -1)


def _mm_w(gy2, col, G):
    """``gy2 x col^T``: ``(O, N), (K, N) -> (O, K/G)``, block-diagonal over G groups."""
    if G == 1:
        return gy2 @ col.T
    xp = backend.get_array_module(gy2)
    O, K = gy2.shape[0], col.shape[0]
    g = xp.matmul(gy2.reshape(G, O // G, -1), col.reshape(G, K // G, -1).transpose(0, 2, 1))
    return g.reshape(O, K // G)


def _rows(a):
    """``(B, C, h, w)`` -> ``(C, h w B)`` (free when ``a`` has the batch axis innermost, the
    layout of every convolution output; a copy otherwise)."""
    B, C, h, w = a.shape
    return a.transpose(1, 2, 3, 0).reshape(C, h * w * B)


def _unrows(m, B, h, w):
    """``(C, h w B)`` -> ``(B, C, h, w)`` view (batch innermost in memory)."""
    return m.reshape(m.shape[0], h, w, B).transpose(3, 0, 1, 2)


class _Geometry:
    """Kernel ``k``, stride ``s``, dilation ``d``, paddings ``ph``/``pw`` (before, after),
    output size ``o``, groups ``G`` and ``nd`` (1: arrays are (B, C, T), viewed as 4-d)."""

    def __init__(self, k, s, d, ph, pw, o, G, nd):
        self.k, self.s, self.d, self.ph, self.pw, self.o, self.G, self.nd = (
            k, s, d, ph, pw, o, G, nd)

    def as4(self, a):
        return a if self.nd == 2 else a[:, :, None, :]

    def back(self, a):
        return a if self.nd == 2 else a[:, :, 0, :]


def _conv_forward(g, x, W, b):
    """y = conv(x, W) + b on 4-d arrays; returns (y, col)."""
    B = x.shape[0]
    col = _windows.im2col(x, g.k, g.s, g.d, g.o, g.ph, g.pw)
    y = _mm(W.reshape(W.shape[0], -1), col, g.G)
    if b is not None:
        y += b[:, None]
    return _unrows(y, B, g.o[0], g.o[1]), col


def _conv_input_grad(g, W2, gy2, xshape):
    """Gradient of conv w.r.t. its 4-d input: ``col2im(W2^T gy2)`` for ``gy2 = _rows(gy)``."""
    B, C = xshape[:2]
    gcol = _mm_t(W2, gy2, g.G).reshape(C, g.k[0], g.k[1], g.o[0], g.o[1], B)
    return _windows.col2im(gcol, xshape, g.k, g.s, g.d, g.ph, g.pw)


class Convolution2DFunction(FunctionNode):
    """``(x, W[, b]) -> y``; also the 1-d convolution (``geometry.nd == 1``)."""

    def __init__(self, geometry):
        self.g = geometry

    def forward(self, inputs):
        g = self.g
        x, W = g.as4(inputs[0]), g.as4(inputs[1])
        y, self.col = _conv_forward(g, x, W, inputs[2] if len(inputs) == 3 else None)
        return (g.back(y),)

    def backward(self, indexes, grad_outputs):
        g = self.g
        x, W = g.as4(self.inputs[0].array), g.as4(self.inputs[1].array)
        gy2 = _rows(g.as4(grad_outputs[0]))
        W2 = W.reshape(W.shape[0], -1)
        gx = gW = gb = None
        if 0 in indexes:
            gx = g.back(_conv_input_grad(g, W2, gy2, x.shape))
        if 1 in indexes:
            gW = g.back(_mm_w(gy2, self.col, g.G).reshape(W.shape))
        if 2 in indexes:
            gb = gy2.sum(axis=1)
        return gx, gW, gb


class Deconvolution2DFunction(FunctionNode):
    """``(x, W[, b]) -> y`` with ``W`` of shape (C_in, C_out / G, kh, kw): the transpose of
    the convolution whose kernel is ``W`` (input and output roles swapped)."""

    def __init__(self, geometry, out_hw):
        self.g = geometry        # the geometry of the forward convolution y -> x
        self.out_hw = out_hw     # (H_out, W_out)

    def forward(self, inputs):
        g = self.g
        x, W = inputs[0], inputs[1]
        B, C = x.shape[:2]
        O = W.shape[1] * g.G
        y = _conv_input_grad(g, W.reshape(C, -1), _rows(x), (B, O) + self.out_hw)
        if len(inputs) == 3:
            y += inputs[2][:, None, None]
        return (y,)

    def backward(self, indexes, grad_outputs):
        g = self.g
        x, W = self.inputs[0].array, self.inputs[1].array
        gy = grad_outputs[0]
        col = _windows.im2col(gy, g.k, g.s, g.d, g.o, g.ph, g.pw)
        W2 = W.reshape(W.shape[0], -1)
        gx = gW = gb = None
        if 0 in indexes:
            gx = _unrows(_mm(W2, col, g.G), x.shape[0], g.o[0], g.o[1])
        if 1 in indexes:
            gW = _mm_w(_rows(x), col, g.G).reshape(W.shape)
        if 2 in indexes:
            gb = gy.sum(axis=(0, 2, 3))
        return gx, gW, gb


# -- argument checking ----------------------------------------------------------------------

def _check_groups(fname, groups):
    if isinstance(groups, bool) or not isinstance(groups, numbers.Integral) or groups < 1:
        raise ValueError('%s: groups must be a positive int, got %r' % (fname, groups))
    return int(groups)


def _check_common(fname, x, W, b, nd):
    """Arrays of x, W, b with ndim / dtype checks; returns (xa, Wa, ba or None)."""
    xa = _float_array(x, fname, 'x')
    Wa = _float_array(W, fname, 'W')
    layout = '(B, C, H, W)' if nd == 2 else '(B, C, T)'
    klayout = ('(out_channels, in_channels / groups, kh, kw)' if nd == 2 else
               '(out_channels, in_channels / groups, k)')
    if xa.ndim != nd + 2:
        hint = ' (a single example: x[None])' if xa.ndim == nd + 1 else ''
        raise ValueError('%s: x must be %d-d %s, got shape %s%s'
                         % (fname, nd + 2, layout, xa.shape, hint))
    if Wa.ndim != nd + 2:
        raise ValueError('%s: W must be %d-d %s, got shape %s' % (fname, nd + 2, klayout,
                                                                  Wa.shape))
    if xa.dtype != Wa.dtype:
        raise TypeError('%s: x has dtype %s but W has dtype %s; cast one of them (e.g. '
                        'x.astype(numpy.float32))' % (fname, xa.dtype, Wa.dtype))
    ba = None
    if b is not None:
        ba = _float_array(b, fname, 'b')
        if ba.dtype != Wa.dtype:
            raise TypeError('%s: b has dtype %s but W has dtype %s; cast one of them'
                            % (fname, ba.dtype, Wa.dtype))
    return xa, Wa, ba


def _check_extent(fname, axis, n, k, d, p0, p1):
    dk = d * (k - 1) + 1
    if dk > n + p0 + p1:
        raise ValueError('%s: the kernel spans %d %s (ksize %d, dilate %d) but the padded '
                         'input has only %d (size %d + pad %d + %d); use a smaller kernel or '
                         'dilation, or more padding' % (fname, dk, axis, k, d, n + p0 + p1,
                                                        n, p0, p1))


def _conv_geometry(fname, xa, Wa, ba, stride, pad, dilate, groups, nd, causal=False):
    G = _check_groups(fname, groups)
    B, C = xa.shape[:2]
    O, Cg = Wa.shape[:2]
    if C % G or O % G:
        raise ValueError('%s: groups=%d must divide both in_channels=%d (x of shape %s) and '
                         'out_channels=%d (W of shape %s)' % (fname, G, C, xa.shape, O,
                                                              Wa.shape))
    if Cg * G != C:
        raise ValueError('%s: x of shape %s has %d channels but W of shape %s expects '
                         'in_channels = W.shape[1] * groups = %d * %d = %d; pass x with %d '
                         'channels or build W as (%d, %d, ...)'
                         % (fname, xa.shape, C, Wa.shape, Cg, G, Cg * G, Cg * G, O, C // G))
    if ba is not None and ba.shape != (O,):
        raise ValueError('%s: b must have shape (out_channels,) = (%d,) to match W of shape '
                         '%s, got %s' % (fname, O, Wa.shape, ba.shape))
    s = _windows.as_tuple(fname, 'stride', stride, nd, 1)
    d = _windows.as_tuple(fname, 'dilate', dilate, nd, 1)
    p = _windows.as_tuple(fname, 'pad', pad, nd, 0)
    k = Wa.shape[2:]
    if nd == 1:
        if causal:
            if p[0]:
                raise ValueError('%s: causal=True pads d*(k-1) steps on the left by itself; '
                                 'pass pad=0 (got pad=%d)' % (fname, p[0]))
            pads = ((0, 0), (d[0] * (k[0] - 1), 0))
        else:
            pads = ((0, 0), (p[0], p[0]))
        s, d, k = (1,) + s, (1,) + d, (1,) + k
        sizes = (1,) + xa.shape[2:]
        names = (None, 'steps')
    else:
        pads = ((p[0], p[0]), (p[1], p[1]))
        sizes = xa.shape[2:]
        names = ('rows', 'columns')
    for ax in range(2):
        if names[ax] is not None:
            _check_extent(fname, names[ax], sizes[ax], k[ax], d[ax], *pads[ax])
    o = tuple(_windows.out_size(sizes[ax], k[ax], s[ax], pads[ax][0], pads[ax][1], d[ax])
              for ax in range(2))
    return _Geometry(k, s, d, pads[0], pads[1], o, G, nd)


# -- public functions ----------------------------------------------------------------------

def convolution_2d(x, W, b=None, stride=1, pad=0, dilate=1, groups=1):
    """Two-dimensional convolution (cross-correlation) over ``(B, C, H, W)`` images.

    ``y[b, o, p, q] = b[o] + sum_{c,i,j} W[o, c, i, j] xpad[b, g C/G + c, p sh + i dh,
    q sw + j dw]`` (``g`` the group of ``o``); output size per axis
    ``(n + 2 pad - dilate (k - 1) - 1) // stride + 1``.

    Args:
        x (Variable or array): float ``(B, C, H, W)``; ``B`` may be 0.
        W (Variable or array): ``(O, C / groups, kh, kw)``, same dtype as ``x``.
        b (Variable or array or None): ``(O,)`` bias, same dtype, or None.
        stride, pad, dilate (int or pair of ints): per axis ``(rows, columns)``; stride and
            dilate >= 1, pad >= 0 (zero padding on both sides).
        groups (int): channel groups ``G`` (``G`` divides ``C`` and ``O``; group ``g``'s
            outputs see only input channels ``g C/G .. (g+1) C/G - 1``).

    Returns:
        Variable ``(B, O, oh, ow)`` of ``x``'s dtype (a transposed view: strides need not
        be C-ordered).

    Raises:
        TypeError: non-float inputs or differing dtypes.
        ValueError: ``x`` or ``W`` not 4-d, a channel count that does not match ``W``,
            ``groups`` not dividing the channels, a (dilated) kernel larger than the padded
            input, a bad stride/pad/dilate or bias shape. Messages name the shapes.
    """
    xa, Wa, ba = _check_common('convolution_2d', x, W, b, 2)
    g = _conv_geometry('convolution_2d', xa, Wa, ba, stride, pad, dilate, groups, 2)
    args = (x, W) if b is None else (x, W, b)
    return Convolution2DFunction(g).apply(args)[0]


def convolution_1d(x, W, b=None, stride=1, pad=0, dilate=1, groups=1, causal=False):
    """One-dimensional convolution over sequences ``(B, C, T)`` (time last).

    ``y[b, o, t] = b[o] + sum_{c, i} W[o, c, i] xpad[b, g C/G + c, t stride + i dilate]``.
    With ``causal=True`` the input is padded by ``dilate (k - 1)`` steps on the left only,
    so ``y[..., t]`` depends on ``x[..., :t * stride + 1]`` (van den Oord et al. 2016,
    WaveNet); with stride 1 the output has length ``T``.

    Args:
        x (Variable or array): float ``(B, C, T)``.
        W (Variable or array): ``(O, C / groups, k)``, same dtype.
        b (Variable or array or None): ``(O,)`` or None.
        stride, pad, dilate (int): as in :func:`convolution_2d` (pad must be 0 when causal).
        groups (int): channel groups.
        causal (bool): left padding only, see above.

    Returns:
        Variable ``(B, O, T_out)``, ``T_out = (T + pads - dilate (k - 1) - 1) // stride + 1``.

    Raises:
        TypeError, ValueError: as :func:`convolution_2d` (``x`` must be 3-d; pad with
        causal).
    """
    xa, Wa, ba = _check_common('convolution_1d', x, W, b, 1)
    if not isinstance(causal, (bool, numpy.bool_)):
        raise TypeError('convolution_1d: causal must be a bool, got %r' % (causal,))
    g = _conv_geometry('convolution_1d', xa, Wa, ba, stride, pad, dilate, groups, 1,
                       bool(causal))
    args = (x, W) if b is None else (x, W, b)
    return Convolution2DFunction(g).apply(args)[0]


def deconvolution_2d(x, W, b=None, stride=1, pad=0, outsize=None, dilate=1, groups=1):
    """Transposed two-dimensional convolution ("deconvolution"), the adjoint of
    :func:`convolution_2d`: ``deconvolution_2d(y, W)`` is the gradient of
    ``convolution_2d(x, W)`` with respect to ``x`` for upstream gradient ``y`` (Zeiler et
    al. 2010; Dumoulin & Visin 2016, "A guide to convolution arithmetic").

    Args:
        x (Variable or array): float ``(B, C, H, W)``.
        W (Variable or array): ``(C, O / groups, kh, kw)`` (Chainer's layout: input
            channels first), same dtype.
        b (Variable or array or None): ``(O,)`` or None.
        stride, pad, dilate (int or pair): those of the convolution being transposed.
        outsize (pair of ints or None): output ``(H_out, W_out)``; None gives the smallest,
            ``stride (n - 1) + dilate (k - 1) + 1 - 2 pad``. Larger sizes (up to
            ``stride - 1`` more) are valid because a strided convolution maps several input
            sizes onto the same output size.
        groups (int): channel groups (divides ``C`` and ``O``).

    Returns:
        Variable ``(B, O, H_out, W_out)`` (batch innermost in memory).

    Raises:
        TypeError: non-float inputs or differing dtypes.
        ValueError: non-4-d arrays, ``x``'s channels != ``W.shape[0]``, groups not
            dividing the channels, an ``outsize`` that the convolution of it would not map
            to ``x``'s size, or a bias of the wrong shape.
    """
    fname = 'deconvolution_2d'
    xa, Wa, ba = _check_common(fname, x, W, b, 2)
    G = _check_groups(fname, groups)
    B, C, H, Wd = xa.shape
    if Wa.shape[0] != C:
        raise ValueError('%s: x of shape %s has %d channels but W of shape %s expects '
                         'W.shape[0] = %d input channels (W is (C_in, C_out / groups, kh, kw))'
                         % (fname, xa.shape, C, Wa.shape, Wa.shape[0]))
    if C % G:
        raise ValueError('%s: groups=%d must divide in_channels=%d (x of shape %s)'
                         % (fname, G, C, xa.shape))
    O = Wa.shape[1] * G
    if ba is not None and ba.shape != (O,):
        raise ValueError('%s: b must have shape (out_channels,) = (%d,) (W.shape[1] * groups), '
                         'got %s' % (fname, O, ba.shape))
    s = _windows.as_tuple(fname, 'stride', stride, 2, 1)
    p = _windows.as_tuple(fname, 'pad', pad, 2, 0)
    d = _windows.as_tuple(fname, 'dilate', dilate, 2, 1)
    k = Wa.shape[2:]
    least = tuple(s[a] * (xa.shape[2 + a] - 1) + d[a] * (k[a] - 1) + 1 - 2 * p[a]
                  for a in range(2))
    out_hw = least if outsize is None else _windows.as_tuple(fname, 'outsize', outsize, 2, 1)
    for a in range(2):
        n = xa.shape[2 + a]
        if out_hw[a] < 1 or _windows.out_size(out_hw[a], k[a], s[a], p[a], p[a], d[a]) != n:
            raise ValueError('%s: an output of size %d along axis %d is not mapped back to the '
                             'input size %d by the convolution (ksize %d, stride %d, pad %d, '
                             'dilate %d); valid sizes are %d..%d'
                             % (fname, out_hw[a], 2 + a, n, k[a], s[a], p[a], d[a], least[a],
                                least[a] + s[a] - 1))
    g = _Geometry(k, s, d, (p[0], p[0]), (p[1], p[1]), (H, Wd), G, 2)
    args = (x, W) if b is None else (x, W, b)
    return Deconvolution2DFunction(g, out_hw).apply(args)[0]
