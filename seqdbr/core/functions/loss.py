"""Losses: softmax_cross_entropy, sigmoid_cross_entropy, mean_squared_error.

The cross entropies are fused single nodes: the forward pass computes the loss through
log-sum-exp (finite for any finite logits) and keeps what the backward pass needs
(the softmax, or nothing beyond the input for the sigmoid version), so backward is one
elementwise pass ``(p - onehot(t)) * coeff``.

Ignored labels (``ignore_label``) contribute neither loss nor gradient. With
``reduce='mean'`` and ``normalize=True`` the loss is divided by the number of
non-ignored labels; when every label is ignored (or the batch is empty) the loss is 0
and the gradient is 0 - no NaN, no RuntimeWarning.
"""
import numbers

import numpy

from seqdbr.core import backend, cuda_kernels
from seqdbr.core.function_node import FunctionNode
from seqdbr.core.functions.activation import (_float_array, _input_array,
                                              _sigmoid_array, _sigmoid_low)

__all__ = ['softmax_cross_entropy', 'sigmoid_cross_entropy', 'mean_squared_error']


# -- shared helpers ---------------------------------------------------------------------

def _check_reduce(fname, reduce):
    if reduce not in ('mean', 'no'):
        raise ValueError("%s: reduce must be 'mean' or 'no', got %r" % (fname, reduce))


def _check_ignore_label(fname, ignore_label):
    if ignore_label is None:
        return None
    if isinstance(ignore_label, bool) or not isinstance(ignore_label, numbers.Integral):
        raise TypeError('%s: ignore_label must be an int or None, got %r' % (fname, ignore_label))
    return int(ignore_label)


def _int_labels(fname, t):
    ta = _input_array(t, fname, 't')
    if ta.dtype.kind not in 'iu':
        raise TypeError('%s: labels t must be an integer array, got dtype %s with shape %s; '
                        'convert with t.astype(numpy.int32)' % (fname, ta.dtype, ta.shape))
    return ta


def _check_label_range(fname, t, low, high, ignore_label, what):
    """IndexError naming the labels outside [low, high] that are not ignore_label.

    NumPy labels are checked at once; CuPy labels on the device, with the verdict read by
    the next fetch (:func:`seqdbr.core.backend.check_index_range`): no host sync per call.
    """
    def error():
        host = backend.to_host(t)
        bad = host[(host < low) | (host > high)]
        if ignore_label is not None:
            bad = bad[bad != ignore_label]
        bad = numpy.unique(bad)
        shown = ', '.join(str(int(v)) for v in bad[:10])
        more = '' if bad.size <= 10 else ' and %d more' % (bad.size - 10)
        ign = ('ignore_label is None' if ignore_label is None
               else 'ignore_label=%d' % ignore_label)
        return IndexError('%s: labels must lie in %s or equal ignore_label (%s); got invalid '
                          'label(s) %s%s. Fix the targets, or pass the padding value as '
                          'ignore_label.' % (fname, what, ign, shown, more))
    backend.check_index_range(t, low, high, ignore_label, error)


# -- softmax cross entropy --------------------------------------------------------------

# i runs over gx (B, C, R) in C order; coeff and t are (B, R). Labels arrive as intp (int64)
# from the forward pass; int32 is declared too so either label dtype may be passed.
_CE_GRAD = cuda_kernels.elementwise(
    'seqdbr_softmax_ce_grad', 'T y, raw S t, raw T coeff, int64 C, int64 R', 'T gx',
    '''
    ptrdiff_t r = i % R;
    ptrdiff_t c = (i / R) % C;
    ptrdiff_t j = (i / (R * C)) * R + r;
    T co = coeff[j];
    gx = (c == (ptrdiff_t)t[j]) ? co * (y - (T)1) : co * y;
    ''', types=[{'T': f, 'S': s} for f in cuda_kernels.FLOATS
                 for s in (numpy.int32, numpy.int64)], scalars=('C', 'R'))


def _ce_grad_kernel():
    return _CE_GRAD


class SoftmaxCrossEntropy(FunctionNode):
    def __init__(self, ignore_label, reduce, normalize, label_smoothing=0.0):
        self.ignore_label = ignore_label
        self.reduce = reduce
        self.normalize = normalize
        self.ls = label_smoothing

    def forward(self, inputs):
        x, t = inputs
        xp = backend.get_array_module(x)
        gpu = xp is not numpy
        B, C = x.shape[0], x.shape[1]
        R = 1
        for s in x.shape[2:]:
            R *= s
        self.shape3 = (B, C, R)
        if not x.flags.c_contiguous:
            x = xp.ascontiguousarray(x)   # the flat target index below assumes C order
        t2 = t.reshape(B, R)
        if t2.dtype != numpy.intp:
            t2 = t2.astype(numpy.intp)
        mask = None
        ign = self.ignore_label
        if ign is not None:
            m = t2 != ign
            if gpu or not m.all():
                mask = m
                t2 = xp.where(m, t2, 0)
        self.mask = mask
        self.t2 = t2
        # flat index of the target logit of each (b, r) in a C-contiguous (B, C, R) array
        idx = xp.arange(B, dtype=numpy.intp)[:, None] * C
        idx = idx + t2
        idx *= R
        idx += xp.arange(R, dtype=numpy.intp)
        self.idx = idx
        if x.size == 0:
            y = xp.empty(x.shape, dtype=x.dtype)
            loss = xp.zeros((B, R), dtype=x.dtype)
        else:
            y = x - x.max(axis=1, keepdims=True)         # (B, C, ...), contiguous
            # x_t - max, (B, R). 'wrap' as CuPy's gathers do: under a deferred label check
            # (backend.check_later) a bad label must not fault before the check is read
            zt = y.reshape(-1)[idx] if gpu else y.reshape(-1).take(idx, mode='wrap')
            if self.ls:
                # target (1 - ls) onehot + ls / C: -sum_c q_c log p_c
                #   = log s - (1 - ls) z_t - ls mean_c z_c
                zt = zt * (1 - self.ls)
                zt += self.ls * y.mean(axis=1).reshape(B, R)
            xp.exp(y, out=y)
            s = y.sum(axis=1, keepdims=True)             # in [1, C]: log is safe
            y /= s
            loss = xp.log(s).reshape(B, R)
            loss -= zt
            if mask is not None:
                loss *= mask
        self.y = y
        if self.reduce == 'no':
            self.scale = None
            return (loss.reshape(t.shape),)
        if self.normalize:
            if mask is None:
                count = B * R
            elif gpu:
                count = mask.sum()
            else:
                count = int(numpy.count_nonzero(mask))
        else:
            count = B
        if gpu and not isinstance(count, int):
            self.scale = 1 / xp.maximum(count, 1).astype(x.dtype)   # stays on the device
        else:
            self.scale = 1.0 / max(count, 1)
        total = loss.sum() * self.scale
        return (xp.asarray(total, dtype=x.dtype),)

    def backward(self, indexes, grad_outputs):
        gy = grad_outputs[0]
        y = self.y
        xp = backend.get_array_module(y)
        B, C, R = self.shape3
        mask = self.mask
        if self.reduce == 'no':
            coeff = gy.reshape(B, R)
            if mask is not None:
                coeff = coeff * mask
        else:
            coeff = gy * self.scale                          # 0-d
            if mask is not None:
                coeff = mask * coeff
            elif xp is not numpy:
                coeff = xp.broadcast_to(coeff, (B, R))
        if self.ls:
            return self._smoothed_grad(xp, coeff), None
        if xp is not numpy:
            coeff = xp.ascontiguousarray(coeff, dtype=y.dtype)
            gx = _ce_grad_kernel()(y, self.t2, coeff, C, R)
            return gx, None
        gx = numpy.empty_like(y, order='C')   # C order: reshape(-1) below must be a view
        if coeff.ndim == 0:
            numpy.multiply(y, coeff, out=gx)
        else:
            numpy.multiply(y, coeff.reshape((B, 1) + y.shape[2:]), out=gx)
        gx.reshape(-1)[self.idx] -= coeff
        return gx, None

    def _smoothed_grad(self, xp, coeff):
        """``(p - (1 - ls) onehot(t) - ls / C) * coeff`` (NumPy or CuPy)."""
        y = self.y
        B, C, R = self.shape3
        c = coeff if coeff.ndim == 0 else coeff.reshape((B, 1) + y.shape[2:])
        gx = xp.ascontiguousarray(y - self.ls / C)
        gx *= c
        co = xp.broadcast_to(coeff, (B, R)).astype(y.dtype)
        flat = gx.reshape(-1)
        flat[self.idx] -= (1 - self.ls) * co                # one target per (b, r): no repeats
        return gx


def softmax_cross_entropy(x, t, ignore_label=-1, reduce='mean', normalize=True,
                          label_smoothing=0.0):
    """Cross entropy between ``softmax(x, axis=1)`` and integer labels ``t``.

    ``loss[b, ...] = logsumexp(x[b, :, ...]) - x[b, t[b, ...], ...]``, computed stably for
    large logits; backward is ``(softmax(x) - onehot(t)) * gy / count`` from the softmax kept
    by the forward pass.

    With ``label_smoothing = e > 0`` (Szegedy et al. 2016, "Rethinking the Inception
    Architecture", sec. 7) the target is the smoothed distribution ``q = (1 - e) onehot(t) +
    e / C`` and ``loss = -sum_c q_c log softmax(x)_c = logsumexp(x) - (1 - e) x_t - e
    mean_c(x_c)`` (the same as ``torch.nn.functional.cross_entropy(...,
    label_smoothing=e)``); the gradient is ``softmax(x) - q``.

    Args:
        x (Variable or array): float logits of shape (B, C) or (B, C, d1, ...); the class
            axis is 1. C must be >= 1; B (and any d) may be 0.
        t (array or Variable): integer labels of shape (B,) or (B, d1, ...), each in
            ``[0, C)`` or equal to ``ignore_label``.
        ignore_label (int or None): label value that is skipped (no loss, no gradient); may
            lie outside ``[0, C)`` (default -1). None: every label must be a valid class.
        reduce (str): ``'mean'`` returns a scalar; ``'no'`` returns per-example losses of
            shape ``t.shape`` (0 where ignored).
        normalize (bool): with ``reduce='mean'``, divide the summed loss by the number of
            non-ignored labels (True) or by the batch size B (False).
        label_smoothing (float): ``e`` in ``[0, 1]``; 0 (default) is the plain cross entropy.
            Ignored labels still contribute nothing.

    Returns:
        Variable: 0-d (``reduce='mean'``; 0 when every label is ignored) or of shape
        ``t.shape`` (``reduce='no'``), dtype of ``x``.

    Raises:
        TypeError: ``x`` not floating point, ``t`` not integer, or ignore_label not an int.
        ValueError: ``x.ndim < 2``, ``C == 0``, ``t.shape != (B,) + x.shape[2:]``, a bad
            ``reduce``, or ``label_smoothing`` outside ``[0, 1]``.
        IndexError: some label outside ``[0, C)`` that is not ``ignore_label`` (the message
            lists them).
    """
    fname = 'softmax_cross_entropy'
    xa = _float_array(x, fname, 'x')
    ta = _int_labels(fname, t)
    if xa.ndim < 2:
        raise ValueError('%s: x must have shape (B, C) or (B, C, ...) with classes on axis 1, '
                         'got shape %s' % (fname, xa.shape))
    C = xa.shape[1]
    if C == 0:
        raise ValueError('%s: x of shape %s has no classes (axis 1 is empty)' % (fname, xa.shape))
    expected = (xa.shape[0],) + xa.shape[2:]
    if ta.shape != expected:
        raise ValueError('%s: t must have shape %s for x of shape %s (x without the class axis '
                         '1), got %s' % (fname, expected, xa.shape, ta.shape))
    _check_reduce(fname, reduce)
    ignore_label = _check_ignore_label(fname, ignore_label)
    _check_label_range(fname, ta, 0, C - 1, ignore_label, '[0, %d) (C = %d classes)' % (C, C))
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, numbers.Real) \
            or not 0 <= label_smoothing <= 1:
        raise ValueError('%s: label_smoothing must be a number in [0, 1], got %r'
                         % (fname, label_smoothing))
    return SoftmaxCrossEntropy(ignore_label, reduce, bool(normalize),
                               float(label_smoothing)).apply((x, t))[0]


# -- sigmoid cross entropy --------------------------------------------------------------

class SigmoidCrossEntropy(FunctionNode):
    def __init__(self, ignore_label, reduce, normalize):
        self.ignore_label = ignore_label
        self.reduce = reduce
        self.normalize = normalize

    def forward(self, inputs):
        x, t = inputs
        xp = backend.get_array_module(x)
        gpu = xp is not numpy
        mask = None
        ign = self.ignore_label
        if ign is not None:
            m = t != ign
            if gpu or not m.all():
                mask = m
        self.mask = mask
        tf = t.astype(x.dtype)   # float labels: keeps the arithmetic in x's dtype
        self.tf = tf
        # loss = softplus(x) - t * x = max(x, 0) - t * x + log1p(exp(-|x|)); |x| is capped at
        # -log(tiny) - 1 so exp stays a normal number (no underflow flag; error < 1e-37)
        loss = xp.abs(x)
        xp.minimum(loss, -_sigmoid_low(x.dtype), out=loss)
        xp.negative(loss, out=loss)
        xp.exp(loss, out=loss)                # in (0, 1]: never overflows
        xp.log1p(loss, out=loss)
        loss += xp.maximum(x, 0)
        loss -= tf * x
        if mask is not None:
            loss *= mask
        if self.reduce == 'no':
            self.scale = None
            return (loss,)
        if self.normalize:
            if mask is None:
                count = x.size
            elif gpu:
                count = mask.sum()
            else:
                count = int(numpy.count_nonzero(mask))
        else:
            count = x.shape[0]
        if gpu and not isinstance(count, int):
            self.scale = 1 / xp.maximum(count, 1).astype(x.dtype)
        else:
            self.scale = 1.0 / max(count, 1)
        return (xp.asarray(loss.sum() * self.scale, dtype=x.dtype),)

    def backward(self, indexes, grad_outputs):
        x = self.inputs[0].array
        gy = grad_outputs[0]
        gx = _sigmoid_array(x)
        gx -= self.tf
        if self.reduce == 'no':
            gx *= gy
        else:
            gx *= gy * self.scale
        if self.mask is not None:
            gx *= self.mask
        return gx, None


def sigmoid_cross_entropy(x, t, reduce='mean', ignore_label=-1, normalize=True):
    """Binary cross entropy of logits ``x`` against 0/1 labels ``t``.

    ``loss = log(1 + exp(x)) - t * x`` elementwise, computed as
    ``max(x, 0) - t * x + log1p(exp(-|x|))`` (no overflow for any finite x).

    Args:
        x (Variable or array): float logits of any shape with at least one axis, (B, ...).
        t (array or Variable): integer labels of ``x.shape``, each 0, 1 or ``ignore_label``.
        reduce (str): ``'mean'`` (scalar) or ``'no'`` (elementwise, 0 where ignored).
        ignore_label (int or None): label value that is skipped (default -1).
        normalize (bool): with ``reduce='mean'``, divide by the number of non-ignored labels
            (True) or by the batch size ``x.shape[0]`` (False).

    Returns:
        Variable, 0-d or of ``x.shape``, dtype of ``x``. 0 when every label is ignored.

    Raises:
        TypeError: ``x`` not floating point, ``t`` not integer, or ignore_label not an int.
        ValueError: shapes differ, x is 0-d, or a bad ``reduce``.
        IndexError: some label not in {0, 1} that is not ``ignore_label``.
    """
    fname = 'sigmoid_cross_entropy'
    xa = _float_array(x, fname, 'x')
    ta = _int_labels(fname, t)
    if xa.ndim == 0:
        raise ValueError('%s: x must have a batch axis, got a 0-d array' % fname)
    if ta.shape != xa.shape:
        raise ValueError('%s: t must have the shape of x, got x %s and t %s'
                         % (fname, xa.shape, ta.shape))
    _check_reduce(fname, reduce)
    ignore_label = _check_ignore_label(fname, ignore_label)
    _check_label_range(fname, ta, 0, 1, ignore_label, '{0, 1}')
    return SigmoidCrossEntropy(ignore_label, reduce, bool(normalize)).apply((x, t))[0]


# -- mean squared error -----------------------------------------------------------------

class MeanSquaredError(FunctionNode):
    def forward(self, inputs):
        x0, x1 = inputs
        xp = backend.get_array_module(x0)
        diff = xp.subtract(x0, x1, out=xp.empty_like(x0))
        self.diff = diff
        sq = diff * diff
        return (xp.asarray(sq.sum() * (1.0 / diff.size), dtype=x0.dtype),)

    def backward(self, indexes, grad_outputs):
        diff = self.diff
        xp = backend.get_array_module(diff)
        g = xp.multiply(diff, grad_outputs[0] * (2.0 / diff.size), out=xp.empty_like(diff))
        g1 = xp.negative(g, out=xp.empty_like(g)) if 1 in indexes else None
        return g, g1


def mean_squared_error(x0, x1):
    """Mean of the squared differences, ``sum((x0 - x1) ** 2) / x0.size``.

    Args:
        x0, x1 (Variable or array): float arrays of the same shape (not empty) and dtype.
            Either or both may require a gradient.

    Returns:
        0-d Variable of the inputs' dtype.

    Raises:
        TypeError: non-float inputs or differing dtypes.
        ValueError: differing shapes, or empty inputs (the mean of nothing is undefined).
    """
    fname = 'mean_squared_error'
    a = _float_array(x0, fname, 'x0')
    b = _float_array(x1, fname, 'x1')
    if a.shape != b.shape:
        raise ValueError('%s: x0 and x1 must have the same shape, got %s and %s (no '
                         'broadcasting)' % (fname, a.shape, b.shape))
    if a.dtype != b.dtype:
        raise TypeError('%s: x0 has dtype %s but x1 has dtype %s; cast one of them'
                        % (fname, a.dtype, b.dtype))
    if a.size == 0:
        raise ValueError('%s: inputs of shape %s are empty; the mean of no elements is '
                         'undefined' % (fname, a.shape))
    return MeanSquaredError().apply((x0, x1))[0]
