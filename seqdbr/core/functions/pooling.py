"""Pooling: max and average pooling in 2-d and 1-d, and global pooling over time.

Window geometry follows Chainer: ``stride`` defaults to ``ksize``; ``pad`` pads both sides;
the output size per axis is ``(n + 2 pad - k) // s + 1``, or with ``cover_all=True``
``(n + 2 pad - k + s - 1) // s + 1``, which keeps a last, partial window so that every
input element is covered (extra padding is added after the input). Max pooling pads with
``-inf`` (a padded cell never wins); average pooling pads with zeros and divides by
``kh kw`` (Chainer's rule) unless ``pad_value=None``, which divides by the number of real
input cells in the window (PyTorch's ``count_include_pad=False``).

The forward and backward loop over the ``kh kw`` kernel offsets, each step one
output-sized array operation; nothing loops over output positions. Max pooling records
which offset won (the first maximum on ties, like ``argmax``) and its backward routes each
output gradient to that one input cell.

Global pooling over time reduces ``(B, C, T)`` to ``(B, C)`` with an optional mask or
per-sequence lengths, so padded steps of variable-length sequences never contribute
(max-over-time pooling of Collobert et al. 2011 and Kim 2014).
"""
import numbers

import numpy

from seqdbr.core import backend
from seqdbr.core.function_node import FunctionNode
from seqdbr.core.functions import _windows
from seqdbr.core.functions.activation import _float_array, _input_array

__all__ = ['max_pooling_2d', 'average_pooling_2d', 'max_pooling_1d', 'average_pooling_1d',
           'global_max_pooling_1d', 'global_average_pooling_1d']


class _PoolGeometry:
    def __init__(self, k, s, ph, pw, o, nd, shape):
        self.k, self.s, self.ph, self.pw, self.o, self.nd = k, s, ph, pw, o, nd
        self.shape4 = shape      # the 4-d input shape

    def as4(self, a):
        return a if self.nd == 2 else a[:, :, None, :]

    def back(self, a):
        return a if self.nd == 2 else a[:, :, 0, :]

    def offsets(self):
        for i in range(self.k[0]):
            for j in range(self.k[1]):
                yield i * self.k[1] + j, _windows.offset_slices(i, j, self.s, self.o)

    def scatter(self, like, term):
        """Sum ``term(kk)`` over the offsets into an input-shaped gradient laid out in
        memory as ``like`` (the output gradient)."""
        B, C, H, W = self.shape4
        ph, pw = self.ph, self.pw
        g = _windows.alloc_like(like, (B, C, H + ph[0] + ph[1], W + pw[0] + pw[1]),
                                like.dtype)
        for kk, sl in self.offsets():
            g[sl] += term(kk)
        return g[:, :, ph[0]:ph[0] + H, pw[0]:pw[0] + W]


class MaxPooling2D(FunctionNode):
    # Masked NumPy ops (copyto(where=), where, boolean setitem) on strided windows cost
    # 10-50x more than plain arithmetic here (NumPy 2.4, 2x2 pooling of (100, 16, 24, 24)
    # float32: 22 ms against 0.6 ms), so the winning offset is tracked arithmetically.

    def __init__(self, geometry):
        self.g = geometry

    def forward(self, inputs):
        g = self.g
        x = g.as4(inputs[0])
        xp = backend.get_array_module(x)
        xpd = _windows.pad4(x, g.ph, g.pw, -numpy.inf)
        it = g.offsets()
        _, sl = next(it)
        y = xpd[sl].copy(order='K')           # keeps x's memory layout (see convolution)
        idx = xp.zeros_like(y, dtype=numpy.int8 if g.k[0] * g.k[1] <= 127 else numpy.int32)
        for kk, sl in it:
            v = xpd[sl]
            m = (v > y).astype(idx.dtype)      # 1 where offset kk beats the best so far
            idx -= idx * m
            idx += m * idx.dtype.type(kk)
            xp.maximum(y, v, out=y)
        self.idx = idx
        return (g.back(y),)

    def backward(self, indexes, grad_outputs):
        g = self.g
        idx = self.idx
        gy = _windows.as_layout(g.as4(grad_outputs[0]), idx)
        gx = g.scatter(gy, lambda kk: gy * (idx == kk))
        return (g.back(gx),)


class AveragePooling2D(FunctionNode):
    def __init__(self, geometry, divisor):
        self.g = geometry
        self.divisor = divisor   # scalar, or (oh, ow) array of real-cell counts

    def forward(self, inputs):
        g = self.g
        x = g.as4(inputs[0])
        xpd = _windows.pad4(x, g.ph, g.pw, 0)
        it = g.offsets()
        y = xpd[next(it)[1]].copy(order='K')
        for _, sl in it:
            y += xpd[sl]
        y /= self._div(x)
        return (g.back(y),)

    def _div(self, a):
        d = self.divisor
        if isinstance(d, numbers.Number):
            return a.dtype.type(d)
        xp = backend.get_array_module(a)
        return xp.asarray(d, dtype=a.dtype)

    def backward(self, indexes, grad_outputs):
        g = self.g
        gy = g.as4(grad_outputs[0])
        gyd = gy / self._div(gy)
        return (g.back(g.scatter(gyd, lambda kk: gyd)),)


def _pool_geometry(fname, xa, ksize, stride, pad, cover_all, nd):
    layout = '(B, C, H, W)' if nd == 2 else '(B, C, T)'
    if xa.ndim != nd + 2:
        hint = ' (a single example: x[None])' if xa.ndim == nd + 1 else ''
        raise ValueError('%s: x must be %d-d %s, got shape %s%s'
                         % (fname, nd + 2, layout, xa.shape, hint))
    k = _windows.as_tuple(fname, 'ksize', ksize, nd, 1)
    s = k if stride is None else _windows.as_tuple(fname, 'stride', stride, nd, 1)
    p = _windows.as_tuple(fname, 'pad', pad, nd, 0)
    if not isinstance(cover_all, (bool, numpy.bool_)):
        raise TypeError('%s: cover_all must be a bool, got %r' % (fname, cover_all))
    sizes = xa.shape[2:]
    if nd == 1:
        k, s, p, sizes = (1,) + k, (1,) + s, (0,) + p, (1,) + sizes
    pads, o = [], []
    for a in range(2):
        n = sizes[a]
        if p[a] >= k[a]:
            raise ValueError('%s: pad %d must be smaller than ksize %d (a window would see '
                             'only padding)' % (fname, p[a], k[a]))
        if k[a] > n + 2 * p[a]:
            raise ValueError('%s: ksize %d is larger than the padded input (size %d + 2 * pad '
                             '%d) of x with shape %s; use a smaller ksize or more padding'
                             % (fname, k[a], n, p[a], xa.shape))
        oa = _windows.out_size(n, k[a], s[a], p[a], p[a], 1, bool(cover_all))
        if s[a] * (oa - 1) >= n + p[a]:
            raise ValueError('%s: with cover_all=True the last window (stride %d, pad %d) '
                             'lies entirely in the padding of an input of size %d; use a '
                             'smaller pad, or cover_all=False' % (fname, s[a], p[a], n))
        pads.append((p[a], max(p[a], s[a] * (oa - 1) + k[a] - n - p[a])))
        o.append(oa)
    return _PoolGeometry(k, s, pads[0], pads[1], tuple(o), nd, (xa.shape[0], xa.shape[1])
                         + tuple(sizes))


def _real_counts(g):
    """(oh, ow) number of real (unpadded) input cells in each window."""
    counts = []
    for a, pads in enumerate((g.ph, g.pw)):
        n = g.shape4[2 + a]
        start = numpy.arange(g.o[a]) * g.s[a] - pads[0]
        lo = numpy.maximum(start, 0)
        hi = numpy.minimum(start + g.k[a], n)
        counts.append(hi - lo)
    return numpy.outer(counts[0], counts[1]).astype(numpy.float64)


def _max_pool(fname, x, ksize, stride, pad, cover_all, nd):
    xa = _float_array(x, fname, 'x')
    g = _pool_geometry(fname, xa, ksize, stride, pad, cover_all, nd)
    return MaxPooling2D(g).apply((x,))[0]


def _avg_pool(fname, x, ksize, stride, pad, cover_all, pad_value, nd):
    xa = _float_array(x, fname, 'x')
    g = _pool_geometry(fname, xa, ksize, stride, pad, cover_all, nd)
    if pad_value is None:
        div = _real_counts(g)
    elif isinstance(pad_value, numbers.Real) and not isinstance(pad_value, bool) \
            and pad_value == 0:
        div = g.k[0] * g.k[1]
    else:
        raise ValueError('%s: pad_value must be 0 (padded cells count as zeros) or None '
                         '(they are left out of the mean), got %r' % (fname, pad_value))
    return AveragePooling2D(g, div).apply((x,))[0]


def max_pooling_2d(x, ksize, stride=None, pad=0, cover_all=True):
    """Max pooling over ``(B, C, H, W)``: ``y[b, c, p, q] = max_{i,j} xpad[b, c, p sh + i,
    q sw + j]`` with ``-inf`` padding.

    Args:
        x (Variable or array): float ``(B, C, H, W)``.
        ksize (int or pair): window ``(kh, kw)``.
        stride (int, pair or None): None means ``ksize`` (non-overlapping windows).
        pad (int or pair): padding on both sides, smaller than ``ksize``.
        cover_all (bool): Chainer's rule (default True): keep a last partial window so
            every input cell is covered; False drops it (PyTorch's default).

    Returns:
        Variable ``(B, C, oh, ow)``; the gradient goes to the first maximum of each window.

    Raises:
        TypeError: non-float ``x``. ValueError: ``x`` not 4-d, a window larger than the
        padded input, ``pad >= ksize``, bad sizes (the message names the shapes).
    """
    return _max_pool('max_pooling_2d', x, ksize, stride, pad, cover_all, 2)


def max_pooling_1d(x, ksize, stride=None, pad=0, cover_all=True):
    """Max pooling over time of ``(B, C, T)``; arguments as :func:`max_pooling_2d` (ints).

    Returns:
        Variable ``(B, C, T_out)``.
    """
    return _max_pool('max_pooling_1d', x, ksize, stride, pad, cover_all, 1)


def average_pooling_2d(x, ksize, stride=None, pad=0, cover_all=False, pad_value=0):
    """Average pooling over ``(B, C, H, W)``: the mean of each window.

    Args:
        x, ksize, stride, pad: as :func:`max_pooling_2d`.
        cover_all (bool): keep a last partial window (default False, as Chainer's
            ``average_pooling_2d``).
        pad_value (0 or None): 0 counts padded cells as zeros and divides by ``kh kw``
            (Chainer); None divides by the number of real cells in the window.

    Returns:
        Variable ``(B, C, oh, ow)``.

    Raises:
        TypeError, ValueError: as :func:`max_pooling_2d`; ValueError for another
        ``pad_value``.
    """
    return _avg_pool('average_pooling_2d', x, ksize, stride, pad, cover_all, pad_value, 2)


def average_pooling_1d(x, ksize, stride=None, pad=0, cover_all=False, pad_value=0):
    """Average pooling over time of ``(B, C, T)``; arguments as :func:`average_pooling_2d`.

    Returns:
        Variable ``(B, C, T_out)``.
    """
    return _avg_pool('average_pooling_1d', x, ksize, stride, pad, cover_all, pad_value, 1)


# -- global pooling over time -------------------------------------------------------------

class GlobalMaxPooling1D(FunctionNode):
    def __init__(self, mask):
        self.mask = mask            # (B, T) bool or None

    def forward(self, inputs):
        x = inputs[0]
        xp = backend.get_array_module(x)
        xm = x if self.mask is None else xp.where(self.mask[:, None, :], x, -numpy.inf)
        self.idx = xm.argmax(axis=2)
        return (xp.take_along_axis(x, self.idx[:, :, None], axis=2)[:, :, 0],)

    def backward(self, indexes, grad_outputs):
        gy = grad_outputs[0]
        xp = backend.get_array_module(gy)
        B, C, T = self.inputs[0].shape
        gx = xp.zeros((B, C, T), dtype=gy.dtype)
        gx[xp.arange(B)[:, None], xp.arange(C)[None, :], self.idx] = gy
        return (gx,)


class GlobalAveragePooling1D(FunctionNode):
    def __init__(self, weights):
        self.weights = weights      # (B, T): mask / length, or None for plain 1 / T

    def forward(self, inputs):
        x = inputs[0]
        if self.weights is None:
            return (x.mean(axis=2),)
        return ((x * self.weights[:, None, :].astype(x.dtype)).sum(axis=2),)

    def backward(self, indexes, grad_outputs):
        gy = grad_outputs[0]
        xp = backend.get_array_module(gy)
        B, C, T = self.inputs[0].shape
        if self.weights is None:
            return (xp.broadcast_to(gy[:, :, None] / gy.dtype.type(T), (B, C, T)).copy(),)
        return (gy[:, :, None] * self.weights[:, None, :].astype(gy.dtype),)


def _time_mask(fname, xa, lengths, mask):
    """(B, T) bool mask from ``lengths`` or ``mask`` (None when every step is valid)."""
    if xa.ndim != 3:
        raise ValueError('%s: x must be 3-d (B, C, T), got shape %s' % (fname, xa.shape))
    B, C, T = xa.shape
    if T == 0:
        raise ValueError('%s: x of shape %s has no time steps to pool over' % (fname, xa.shape))
    xp = backend.get_array_module(xa)
    if lengths is not None and mask is not None:
        raise ValueError('%s: pass lengths or mask, not both' % fname)
    if lengths is not None:
        la = _input_array(xp.asarray(lengths) if isinstance(lengths, (list, tuple))
                          else lengths, fname, 'lengths')
        if la.dtype.kind not in 'iu' or la.shape != (B,):
            raise ValueError('%s: lengths must be an integer array of shape (B,) = (%d,), got '
                             'dtype %s shape %s' % (fname, B, la.dtype, la.shape))
        la = xp.asarray(la)
        mask = xp.arange(T)[None, :] < la[:, None]
        if B and (int(la.min()) < 1 or int(la.max()) > T):
            raise ValueError('%s: every length must lie in [1, T] = [1, %d], got min %d max %d'
                             % (fname, T, int(la.min()), int(la.max())))
        return mask
    if mask is None:
        return None
    ma = xp.asarray(_input_array(mask, fname, 'mask'))
    if ma.dtype != numpy.bool_ or ma.shape != (B, T):
        raise ValueError('%s: mask must be a bool array of shape (B, T) = (%d, %d), got dtype '
                         '%s shape %s' % (fname, B, T, ma.dtype, ma.shape))
    if B and not bool(ma.any(axis=1).all()):
        raise ValueError('%s: every sequence needs at least one True step in mask (rows %s '
                         'have none)' % (fname, backend.to_cpu(xp.nonzero(~ma.any(axis=1))[0])
                                         .tolist()[:10]))
    return ma


def global_max_pooling_1d(x, lengths=None, mask=None):
    """Max over time: ``y[b, c] = max_{t valid} x[b, c, t]`` (max-over-time pooling).

    Args:
        x (Variable or array): float ``(B, C, T)``, ``T >= 1``.
        lengths (array or sequence of ints, or None): ``(B,)`` valid lengths in ``[1, T]``;
            steps ``t >= lengths[b]`` (padding) are ignored.
        mask (bool array or None): ``(B, T)``, True for valid steps (each row needs one);
            the alternative to ``lengths``. Neither: every step is valid.

    Returns:
        Variable ``(B, C)``; the gradient goes to the (first) maximal valid step.

    Raises:
        TypeError: non-float ``x``. ValueError: ``x`` not 3-d or ``T == 0``, lengths/mask
        of the wrong shape or dtype, a sequence with no valid step, both given.
    """
    xa = _float_array(x, 'global_max_pooling_1d', 'x')
    m = _time_mask('global_max_pooling_1d', xa, lengths, mask)
    return GlobalMaxPooling1D(m).apply((x,))[0]


def global_average_pooling_1d(x, lengths=None, mask=None):
    """Mean over time: ``y[b, c] = sum_{t valid} x[b, c, t] / (number of valid steps)``.

    Args, Returns, Raises: as :func:`global_max_pooling_1d`.
    """
    xa = _float_array(x, 'global_average_pooling_1d', 'x')
    m = _time_mask('global_average_pooling_1d', xa, lengths, mask)
    w = None if m is None else m / m.sum(axis=1, keepdims=True)
    return GlobalAveragePooling1D(w).apply((x,))[0]
