"""Sliding-window geometry shared by convolution and pooling (private helpers).

Everything here works on 4-d arrays ``(A0, A1, H, W)`` of NumPy or CuPy; the 1-d functions
view their ``(B, C, T)`` arrays as ``(B, C, 1, T)``. Output positions are never looped over
in Python: :func:`im2col` is one strided view plus one copy, and :func:`col2im` and the
pooling kernels loop over the ``kh * kw`` kernel offsets only, each step touching a whole
output-sized array.

Output size along one axis (Chainer's ``get_conv_outsize``), for input size ``n``, kernel
``k``, stride ``s``, dilation ``d``, padding ``p0`` before and ``p1`` after:

    dk = d (k - 1) + 1
    out = (n + p0 + p1 - dk) // s + 1              (cover_all=False)
    out = (n + p0 + p1 - dk + s - 1) // s + 1      (cover_all=True: the last, partial window
                                                    is kept; extra padding is added after)
"""
import numbers

import numpy

__all__ = []


def as_tuple(fname, name, value, n, minimum):
    """``value`` (int or sequence of ``n`` ints, each ``>= minimum``) as a tuple of ``n`` ints."""
    if isinstance(value, (tuple, list)):
        items = tuple(value)
    else:
        items = (value,) * n
    ok = len(items) == n and all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= minimum
        for v in items)
    if not ok:
        what = 'a positive int' if minimum > 0 else 'a non-negative int'
        raise ValueError('%s: %s must be %s or a sequence of %d such ints, got %r'
                         % (fname, name, what, n, value))
    return tuple(int(v) for v in items)


def out_size(n, k, s, p0, p1, d=1, cover_all=False):
    """Number of window positions along one axis (see the module docstring)."""
    dk = d * (k - 1) + 1
    if cover_all:
        return (n + p0 + p1 - dk + s - 1) // s + 1
    return (n + p0 + p1 - dk) // s + 1


def pad4(x, ph, pw, value=0):
    """``x`` (A0, A1, H, W) padded by ``ph = (before, after)`` rows and ``pw`` columns.

    Returns ``x`` itself when nothing is padded; otherwise a new array in ``x``'s memory
    layout (see :func:`alloc_like`) filled with ``value`` around a copy of ``x``.
    """
    if not (ph[0] or ph[1] or pw[0] or pw[1]):
        return x
    A0, A1, H, W = x.shape
    out = alloc_like(x, (A0, A1, H + ph[0] + ph[1], W + pw[0] + pw[1]), x.dtype, value)
    out[:, :, ph[0]:ph[0] + H, pw[0]:pw[0] + W] = x
    return out


def layout(a):
    """Axis order of ``a`` from outermost to innermost in memory (by decreasing stride)."""
    st = a.strides
    return tuple(sorted(range(a.ndim), key=lambda i: (-st[i], i)))


def alloc_like(like, shape, dtype, fill=0):
    """A new array of ``shape`` whose axes are laid out in memory as ``like``'s are (the
    convolutions keep the batch axis innermost; every op here preserves the layout)."""
    xp = numpy if type(like) is numpy.ndarray else _cupy()
    perm = layout(like)
    a = xp.full(tuple(shape[p] for p in perm), fill, dtype=dtype)
    return a.transpose(tuple(perm.index(i) for i in range(len(perm))))


def as_layout(a, like):
    """``a`` itself if it is laid out as ``like``, else a copy in ``like``'s layout."""
    if a.strides == like.strides or layout(a) == layout(like):
        return a
    out = alloc_like(like, a.shape, a.dtype)
    out[...] = a
    return out


def _cupy():
    import cupy
    return cupy


def windows(x, k, s, d, o):
    """Strided view ``v[a0, a1, i, j, y, z] = x[a0, a1, i*d0 + y*s0, j*d1 + z*s1]``.

    Args:
        x: 4-d array (A0, A1, Hp, Wp), already padded, any strides.
        k, s, d, o: (kh, kw), strides, dilations and output sizes (oh, ow).

    Returns:
        A read-only view of shape ``(A0, A1, kh, kw, oh, ow)``; no data is copied.
    """
    xp = numpy if type(x) is numpy.ndarray else _cupy()
    s0, s1, s2, s3 = x.strides
    shape = (x.shape[0], x.shape[1], k[0], k[1], o[0], o[1])
    strides = (s0, s1, s2 * d[0], s3 * d[1], s2 * s[0], s3 * s[1])
    if xp is numpy:
        return numpy.lib.stride_tricks.as_strided(x, shape, strides, writeable=False)
    return xp.lib.stride_tricks.as_strided(x, shape, strides)


def im2col(x, k, s, d, o, ph, pw):
    """The column matrix of a convolution: ``(C kh kw, oh ow B)``, C-contiguous.

    ``col[(c, i, j), (y, z, b)] = xpad[b, c, i dh + y sh, j dw + z sw]`` for ``x`` of shape
    (B, C, H, W): one strided view (:func:`windows`) and one copy. The batch axis is
    innermost ("CHWN", as in cuda-convnet), so the product ``W2 @ col`` is the next layer's
    input in the same layout and :func:`col2im` adds contiguous runs of ``ow B`` elements
    (about 7x faster than the batch-outermost layout for MNIST-sized images).
    """
    xp = numpy if type(x) is numpy.ndarray else _cupy()
    B, C = x.shape[:2]
    if B > 1 and x.strides[0] != x.itemsize:
        # Gathering a batch-innermost col from a batch-outermost x reads one element per
        # cache line (36 ms for (100, 32, 12, 12) with a 5x5 kernel); one transposing copy
        # of x first makes that gather contiguous (1.8 ms for both copies).
        x = xp.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
    v = windows(pad4(x, ph, pw), k, s, d, o)            # (B, C, kh, kw, oh, ow)
    col = xp.ascontiguousarray(v.transpose(1, 2, 3, 4, 5, 0))
    return col.reshape(C * k[0] * k[1], o[0] * o[1] * B)


def col2im(gcol, shape, k, s, d, ph, pw):
    """Adjoint of :func:`im2col`: sum ``gcol`` (C, kh, kw, oh, ow, B) onto the input.

    Returns:
        The (B, C, H, W) gradient as a view of a (C, H, W, B)-ordered buffer; the loop is
        over the ``kh kw`` kernel offsets, never over output positions.
    """
    xp = numpy if type(gcol) is numpy.ndarray else _cupy()
    B, C, H, W = shape
    oh, ow = gcol.shape[3], gcol.shape[4]
    Hp, Wp = H + ph[0] + ph[1], W + pw[0] + pw[1]
    g = xp.zeros((C, Hp, Wp, B), dtype=gcol.dtype)
    for i in range(k[0]):
        r = slice(i * d[0], i * d[0] + s[0] * (oh - 1) + 1, s[0])
        for j in range(k[1]):
            c = slice(j * d[1], j * d[1] + s[1] * (ow - 1) + 1, s[1])
            g[:, r, c] += gcol[:, i, j]
    return g[:, ph[0]:ph[0] + H, pw[0]:pw[0] + W].transpose(3, 0, 1, 2)


def offset_slices(i, j, s, o):
    """Index of the input elements that kernel offset ``(i, j)`` sees at every output."""
    return (Ellipsis, slice(i, i + s[0] * (o[0] - 1) + 1, s[0]),
            slice(j, j + s[1] * (o[1] - 1) + 1, s[1]))

