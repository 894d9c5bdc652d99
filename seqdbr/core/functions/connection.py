"""Connections: ``linear`` (fully connected) and ``embed_id`` (lookup table).

Both are single function nodes (no reshape/transpose nodes around them): ``linear``
flattens trailing axes inside the node and ``embed_id`` gathers rows with ``take``.
"""
import numbers

import numpy

from seqdbr.core import backend
from seqdbr.core.function_node import FunctionNode
from seqdbr.core.functions.activation import _float_array, _input_array

__all__ = ['linear', 'embed_id']


class LinearFunction(FunctionNode):
    """``y = x2 @ W.T (+ b)`` with ``x2 = x.reshape(N, in)``; output ``batch_shape + (out,)``."""

    def __init__(self, n_batch, in_size, out_shape):
        self.n_batch = n_batch
        self.in_size = in_size
        self.out_shape = out_shape

    def forward(self, inputs):
        x, W = inputs[0], inputs[1]
        if x.ndim != 2:
            x = x.reshape(self.n_batch, self.in_size)
        y = x @ W.T
        if len(inputs) == 3:
            y += inputs[2]
        if y.shape != self.out_shape:
            y = y.reshape(self.out_shape)
        return (y,)

    def backward(self, indexes, grad_outputs):
        inputs = self.inputs
        x = inputs[0].array
        W = inputs[1].array
        gy = grad_outputs[0]
        if gy.ndim != 2:
            gy = gy.reshape(self.n_batch, W.shape[0])
        gx = gW = gb = None
        if 0 in indexes:
            gx = gy @ W
            if gx.shape != x.shape:
                gx = gx.reshape(x.shape)
        if 1 in indexes:
            x2 = x if x.ndim == 2 else x.reshape(self.n_batch, self.in_size)
            gW = gy.T @ x2
        if 2 in indexes:
            gb = gy.sum(axis=0)
        return gx, gW, gb


def linear(x, W, b=None, n_batch_axes=1):
    """Fully connected layer ``y = x W^T + b``.

    Args:
        x (Variable or array): float array of shape ``batch_shape + feature_shape`` where
            ``batch_shape = x.shape[:n_batch_axes]``; the feature axes are flattened, so
            ``prod(feature_shape)`` must equal ``in_size``. Typically (B, in_size); a zero-size
            batch is allowed.
        W (Variable or array): weight of shape (out_size, in_size), same dtype as ``x``.
        b (Variable or array or None): bias of shape (out_size,), same dtype, or None.
        n_batch_axes (int): how many leading axes of ``x`` are batch axes (>= 1, < x.ndim).

    Returns:
        Variable of shape ``batch_shape + (out_size,)`` and the dtype of ``x``.

    Raises:
        TypeError: non-float inputs, differing dtypes, or a non-int ``n_batch_axes``.
        ValueError: W not 2-d, b not of shape (out_size,), ``n_batch_axes`` out of range,
            or ``prod(feature_shape) != in_size`` (the message names the shapes).
    """
    xa = _float_array(x, 'linear', 'x')
    Wa = _float_array(W, 'linear', 'W')
    if Wa.ndim != 2:
        raise ValueError('linear: W must be 2-d of shape (out_size, in_size), got shape %s'
                         % (Wa.shape,))
    if xa.dtype != Wa.dtype:
        raise TypeError('linear: x has dtype %s but W has dtype %s; cast one of them (e.g. '
                        'x.astype(numpy.float32))' % (xa.dtype, Wa.dtype))
    if isinstance(n_batch_axes, bool) or not isinstance(n_batch_axes, numbers.Integral):
        raise TypeError('linear: n_batch_axes must be an int, got %r' % (n_batch_axes,))
    n_batch_axes = int(n_batch_axes)
    xshape = xa.shape
    if not 1 <= n_batch_axes < len(xshape):
        raise ValueError('linear: n_batch_axes=%d is out of range for x of shape %s; it must be '
                         '>= 1 and < x.ndim (x needs at least one feature axis, e.g. shape '
                         '(B, in_size))' % (n_batch_axes, xshape))
    out_size, in_size = Wa.shape
    if n_batch_axes == 1 and len(xshape) == 2:
        n_batch = xshape[0]
        feat = xshape[1]
    else:
        n_batch = 1
        for s in xshape[:n_batch_axes]:
            n_batch *= s
        feat = 1
        for s in xshape[n_batch_axes:]:
            feat *= s
    if feat != in_size:
        raise ValueError('linear: x of shape %s has %d input features (product of axes %s) but '
                         'W of shape %s expects in_size=%d; reshape x or build W as '
                         '(out_size, %d)' % (xshape, feat, xshape[n_batch_axes:], Wa.shape,
                                             in_size, feat))
    out_shape = xshape[:n_batch_axes] + (out_size,)
    if b is None:
        return LinearFunction(n_batch, in_size, out_shape).apply((x, W))[0]
    ba = _float_array(b, 'linear', 'b')
    if ba.shape != (out_size,):
        raise ValueError('linear: b must have shape (out_size,) = (%d,) to match W of shape %s, '
                         'got %s' % (out_size, Wa.shape, ba.shape))
    if ba.dtype != Wa.dtype:
        raise TypeError('linear: b has dtype %s but W has dtype %s; cast one of them'
                        % (ba.dtype, Wa.dtype))
    return LinearFunction(n_batch, in_size, out_shape).apply((x, W, b))[0]


# -- embed_id -----------------------------------------------------------------------------
#
# Backward is a scatter-add of the (N, D) output gradient into a zero (V, D) array. Timings
# for N = 2500 random ids, float32, NumPy 2.4 on the 2-core development box (best of 9,
# noisy machine; microseconds):
#
#     (V, D)          2-d add.at   flat 1-d add.at   bincount(flat)   one-hot matmul
#     (65, 128)         3719          597              751             501..1269
#     (65, 512)        14639         2748             4836            1168..5860
#     (200, 256)        6933         1193             1655            1918..2308
#     (1000, 256)       6809         1270             1896             9570
#     (10000, 128)      4200         1037             2350                -
#     (10000, 512)     15332         4978            11969                -
#
# ``numpy.add.at`` on the flattened (V*D,) gradient with flat indices ``id*D + arange(D)``
# takes NumPy's 1-d fast path and wins everywhere but tiny V with a free BLAS (where the
# one-hot matmul is erratic); bincount pays for its float64 (V*D,) result and the cast back;
# sort + add.reduceat measured 1.5-3x slower than flat add.at. On CuPy we use
# ``cupyx.scatter_add`` (atomic adds).
#
# Ignored ids are redirected to an extra dummy row V (no copy of gy needed); the returned
# gradient is the contiguous first V rows of that (V + 1, D) buffer.

def take_rows(W, ids):
    """``W[ids]`` along axis 0, wrapping out-of-range ids as CuPy's gathers do (so an id
    check deferred by ``backend.check_later`` is read before anything faults)."""
    if type(W) is numpy.ndarray:
        return W.take(ids, axis=0, mode='wrap')
    return W.take(ids, axis=0)


class EmbedIDFunction(FunctionNode):
    def __init__(self, ids, scatter_ids, ignore_mask):
        self.ids = ids                  # validated intp ids; ignored ones replaced by 0
        self.scatter_ids = scatter_ids  # the same with ignored ones replaced by V (dummy row)
        self.ignore_mask = ignore_mask  # bool array of x.shape, or None when nothing ignored

    def forward(self, inputs):
        W = inputs[1]
        mask = self.ignore_mask
        if mask is None:
            return (take_rows(W, self.ids),)
        if W.shape[0] == 0:  # V == 0: every id is ignored (anything else was rejected)
            xp = backend.get_array_module(W)
            return (xp.zeros(self.ids.shape + (W.shape[1],), dtype=W.dtype),)
        y = take_rows(W, self.ids)
        if type(y) is numpy.ndarray:
            y[mask] = 0
        else:   # no boolean-mask assignment on CuPy: it counts the mask on the host
            xp = backend.get_array_module(y)
            y = xp.where(mask[..., None], xp.zeros((), y.dtype), y)
        return (y,)

    def backward(self, indexes, grad_outputs):
        W = self.inputs[1].array
        gy = grad_outputs[0]
        xp = backend.get_array_module(gy)
        V, D = W.shape
        rows = V if self.ignore_mask is None else V + 1
        ids = self.scatter_ids.reshape(-1)
        gy2 = gy.reshape(ids.size, D)
        if xp is numpy:
            g = numpy.zeros(rows * D, dtype=W.dtype)
            if ids.size and D:
                flat = ids[:, None] * D
                flat = flat + numpy.arange(D)
                numpy.add.at(g, flat.reshape(-1), gy2.reshape(-1))
            g = g.reshape(rows, D)
        else:
            import cupyx
            g = xp.zeros((rows, D), dtype=W.dtype)
            if ids.size and D:
                cupyx.scatter_add(g, ids, gy2)
        if rows != V:
            g = g[:V]
        return None, g


def check_ids(ids, V, ignore_label=None):
    """Check that the integer ``ids`` lie in ``[0, V)`` or equal ``ignore_label``.

    NumPy ids are checked at once; CuPy ids on the device, the verdict being read by the
    next device-to-host fetch (see :func:`seqdbr.core.backend.check_index_range`): no
    host synchronisation per call.

    Raises:
        IndexError: listing the out-of-range ids (now, or at that fetch).
    """
    def error():
        host = backend.to_host(ids)
        bad = host[(host < 0) | (host >= V)]
        if ignore_label is not None:
            bad = bad[bad != ignore_label]
        return IndexError(_bad_ids_message(bad, V, ignore_label))
    backend.check_index_range(ids, 0, V - 1, ignore_label, error)


def _bad_ids_message(bad, V, ignore_label):
    bad = numpy.unique(bad)
    shown = ', '.join(str(int(v)) for v in bad[:10])
    more = '' if bad.size <= 10 else ' and %d more' % (bad.size - 10)
    ign = ('' if ignore_label is None else ' (ignore_label=%d is exempt)' % ignore_label)
    return ('embed_id: ids must lie in [0, %d) for a table W of %d rows%s; got out-of-range '
            'id(s) %s%s. Negative ids are never wrapped; pass ignore_label=-1 to mask padding, '
            'or enlarge the vocabulary.' % (V, V, ign, shown, more))


def embed_id(x, W, ignore_label=None):
    """Look up rows of an embedding table: ``y[..., :] = W[x[...], :]``.

    Args:
        x (Variable or array): integer ids of any shape (int or uint dtype), each in
            ``[0, V)`` or equal to ``ignore_label``. Never differentiated.
        W (Variable or array): float table of shape (V, D).
        ignore_label (int or None): ids equal to it give zero vectors and send no gradient
            (may lie inside or outside ``[0, V)``). None: no id is ignored.

    Returns:
        Variable of shape ``x.shape + (D,)`` and the dtype of W. The gradient of W is a
        scatter-add of the output gradient (repeated ids accumulate).

    Raises:
        TypeError: ``x`` is not an integer array, W not a float array, or ignore_label not
            an int.
        ValueError: W is not 2-d.
        IndexError: some id outside ``[0, V)`` that is not ``ignore_label`` (the message lists
            the offending ids and V). This is checked on every call; -1 is never wrapped to
            the last row.
    """
    xa = _input_array(x, 'embed_id', 'x')
    if xa.dtype.kind not in 'iu':
        raise TypeError('embed_id: ids x must be an integer array, got dtype %s with shape %s; '
                        'convert with x.astype(numpy.int32)' % (xa.dtype, xa.shape))
    Wa = _float_array(W, 'embed_id', 'W')
    if Wa.ndim != 2:
        raise ValueError('embed_id: W must be 2-d of shape (V, D), got shape %s' % (Wa.shape,))
    V = Wa.shape[0]
    if ignore_label is not None and (isinstance(ignore_label, bool)
                                     or not isinstance(ignore_label, numbers.Integral)):
        raise TypeError('embed_id: ignore_label must be an int or None, got %r' % (ignore_label,))
    xp = backend.get_array_module(xa)
    ids = xa if xa.dtype == numpy.intp else xa.astype(numpy.intp)
    check_ids(ids, V, ignore_label)
    scatter_ids = ids
    mask = None
    if ignore_label is not None:
        ignore_label = int(ignore_label)
        m = ids == ignore_label
        if xp is not numpy or m.any():     # (on CuPy skip the host sync; masking is cheap)
            mask = m
            scatter_ids = xp.where(m, V, ids)  # dummy row V collects (and drops) their grads
            ids = xp.where(m, 0, ids)
    return EmbedIDFunction(ids, scatter_ids, mask).apply((x, W))[0]
