"""Elementwise math and reductions: exp, log, sqrt, sum, mean, max, min, clip, where,
maximum, minimum, cast, logsumexp, prod, cumsum, argmax.

Every function accepts Variables or plain arrays (arrays are constants) and returns a
Variable. Differentiable functions require floating-point inputs and raise TypeError
otherwise; binary functions require both operands to share one float dtype (no silent
upcast), exactly like ``seqdbr.core.functions.basic_math``.

Reductions take ``axis`` as None (all axes), an int or a tuple of ints; negative axes count
from the end. ``keepdims=True`` keeps the reduced axes with length 1.
"""
import numbers

import numpy

from seqdbr.core import backend
from seqdbr.core.function_node import FunctionNode, sum_to, check_float
from seqdbr.core.variable import Variable, _check_array

__all__ = ['exp', 'log', 'sqrt', 'sum', 'mean', 'max', 'min', 'clip', 'where', 'maximum',
           'minimum', 'cast', 'logsumexp', 'prod', 'cumsum', 'argmax']

_ndarray = numpy.ndarray
_Integral = numbers.Integral
_Real = numbers.Real


def _array_of(fname, x):
    """The array behind a Variable or array argument (TypeError for anything else)."""
    if isinstance(x, Variable):
        return x.array
    return _check_array(x, fname)


def _float_array(fname, x):
    a = x.array if isinstance(x, Variable) else _check_array(x, fname)
    if a.dtype.kind != 'f':
        check_float(fname, a)
    return a


def _as_0d(v):
    """Make a reduction result an array (NumPy reductions over all axes return scalars)."""
    return numpy.asarray(v) if isinstance(v, numpy.generic) else v


def _normalize_axis(fname, axis, shape):
    """``axis`` (None, int or tuple of ints) -> None or a sorted tuple of non-negative axes."""
    if axis is None:
        return None
    ndim = len(shape)
    if isinstance(axis, _Integral) and not isinstance(axis, bool):
        axes = (axis,)
    elif isinstance(axis, (tuple, list)):
        axes = axis
    else:
        raise TypeError('%s: axis must be None, an int or a tuple of ints, got %r'
                        % (fname, axis))
    out = []
    for a in axes:
        if not isinstance(a, _Integral) or isinstance(a, bool):
            raise TypeError('%s: axis must be None, an int or a tuple of ints, got %r'
                            % (fname, axis))
        a = int(a)
        if a < -ndim or a >= ndim:
            raise ValueError('%s: axis %d is out of range for an input of shape %s (valid: '
                             '%d .. %d)' % (fname, a, shape, -ndim, ndim - 1))
        if a < 0:
            a += ndim
        if a in out:
            raise ValueError('%s: axis %r repeats axis %d' % (fname, axis, a))
        out.append(a)
    return tuple(sorted(out))


def _keep_shape(shape, axes):
    """The shape of a reduction over ``axes`` with keepdims=True."""
    if axes is None:
        return (1,) * len(shape)
    return tuple([1 if i in axes else s for i, s in enumerate(shape)])


def _binary_float_pair(fname, a, b):
    """Arrays of two float operands; a Python scalar takes the other operand's dtype."""
    a_num = isinstance(a, _Real) and not isinstance(a, _ndarray)
    b_num = isinstance(b, _Real) and not isinstance(b, _ndarray)
    if a_num and b_num:
        raise TypeError('%s: at least one operand must be a Variable or an array, got %s and '
                        '%s' % (fname, type(a).__name__, type(b).__name__))
    if b_num:
        aa = _float_array(fname, a)
        xp = backend.get_array_module(aa)
        return a, xp.asarray(b, dtype=aa.dtype)
    if a_num:
        bb = _float_array(fname, b)
        xp = backend.get_array_module(bb)
        return xp.asarray(a, dtype=bb.dtype), b
    aa = _float_array(fname, a)
    bb = _float_array(fname, b)
    if aa.dtype != bb.dtype:
        raise TypeError('%s: dtypes %s and %s differ; cast one of them (e.g. F.cast(x, '
                        'numpy.float32))' % (fname, aa.dtype, bb.dtype))
    return a, b


def _broadcast_shape(fname, *shapes):
    try:
        return numpy.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError('%s: shapes %s cannot be broadcast together (numpy broadcasting '
                         'rules); reshape or F.broadcast_to first'
                         % (fname, ' and '.join(str(s) for s in shapes))) from None


# -- elementwise ------------------------------------------------------------------------

class Exp(FunctionNode):
    def forward(self, inputs):
        xp = backend.get_array_module(inputs[0])
        self.retain_outputs((0,))
        return (xp.exp(inputs[0]),)

    def backward(self, indexes, grad_outputs):
        return (grad_outputs[0] * self._out_arrays[0],)


class Log(FunctionNode):
    def forward(self, inputs):
        xp = backend.get_array_module(inputs[0])
        return (xp.log(inputs[0]),)

    def backward(self, indexes, grad_outputs):
        return (grad_outputs[0] / self.inputs[0].array,)


class Sqrt(FunctionNode):
    def forward(self, inputs):
        xp = backend.get_array_module(inputs[0])
        self.retain_outputs((0,))
        return (xp.sqrt(inputs[0]),)

    def backward(self, indexes, grad_outputs):
        y = self._out_arrays[0]
        return (grad_outputs[0] / (y + y),)


def exp(x):
    """Elementwise ``e ** x``.

    Args:
        x (Variable or array): float array of any shape.

    Returns:
        Variable of the same shape and dtype.

    Raises:
        TypeError: for a non-floating dtype.
    """
    _float_array('exp', x)
    return Exp().apply((x,))[0]


def log(x):
    """Elementwise natural logarithm (``-inf`` at 0, ``nan`` below 0, as NumPy).

    Args:
        x (Variable or array): float array of any shape.

    Returns:
        Variable of the same shape and dtype. The gradient is ``1 / x``.

    Raises:
        TypeError: for a non-floating dtype.
    """
    _float_array('log', x)
    return Log().apply((x,))[0]


def sqrt(x):
    """Elementwise square root. The gradient ``1 / (2 sqrt(x))`` is infinite at 0.

    Args:
        x (Variable or array): float array of any shape.

    Returns:
        Variable of the same shape and dtype.

    Raises:
        TypeError: for a non-floating dtype.
    """
    _float_array('sqrt', x)
    return Sqrt().apply((x,))[0]


# -- reductions -------------------------------------------------------------------------

class _AxesReduction(FunctionNode):
    """A reduction over ``axes`` (a tuple, or None for all), keeping them as size 1 when
    ``keepdims``."""

    def __init__(self, axes, keepdims):
        self.axes = axes
        self.keepdims = keepdims


class Sum(_AxesReduction):
    def forward(self, inputs):
        x = inputs[0]
        self.in_shape = x.shape
        return (_as_0d(x.sum(axis=self.axes, keepdims=self.keepdims)),)

    def backward(self, indexes, grad_outputs):
        gy = grad_outputs[0]
        shape = self.in_shape
        if not self.keepdims:
            gy = gy.reshape(_keep_shape(shape, self.axes))
        xp = backend.get_array_module(gy)
        # materialize: a broadcast view would be read-only and stride-0 as a leaf's .grad
        gx = xp.empty(shape, dtype=gy.dtype)
        gx[...] = gy
        return (gx,)


class Mean(Sum):
    def forward(self, inputs):
        x = inputs[0]
        self.in_shape = x.shape
        axes = self.axes
        if axes is None:
            n = x.size
        else:
            n = 1
            for a in axes:
                n *= x.shape[a]
        self.n = n
        return (_as_0d(x.mean(axis=axes, keepdims=self.keepdims)),)

    def backward(self, indexes, grad_outputs):
        gy = grad_outputs[0]
        shape = self.in_shape
        if not self.keepdims:
            gy = gy.reshape(_keep_shape(shape, self.axes))
        xp = backend.get_array_module(gy)
        gx = xp.empty(shape, dtype=gy.dtype)
        if self.n:  # n == 0 only for an empty input, whose gradient is empty too
            xp.multiply(gy, gy.dtype.type(1.0 / self.n), out=gx)
        return (gx,)


class _MaxMin(_AxesReduction):
    def forward(self, inputs):
        x = inputs[0]
        y = _as_0d(self._reduce(x))
        self.retain_outputs((0,))
        return (y,)

    def backward(self, indexes, grad_outputs):
        x = self.inputs[0].array
        y = self._out_arrays[0]
        gy = grad_outputs[0]
        kshape = _keep_shape(x.shape, self.axes)
        if not self.keepdims:
            y = y.reshape(kshape)
            gy = gy.reshape(kshape)
        mask = x == y
        count = mask.sum(axis=self.axes, keepdims=True)
        # ties share the gradient equally (an average of the subgradients)
        return (mask * (gy / count.astype(gy.dtype)),)


class Max(_MaxMin):
    def _reduce(self, x):
        return x.max(axis=self.axes, keepdims=self.keepdims)


class Min(_MaxMin):
    def _reduce(self, x):
        return x.min(axis=self.axes, keepdims=self.keepdims)


def _reduction_args(fname, x, axis):
    a = _float_array(fname, x)
    return a, _normalize_axis(fname, axis, a.shape)


def sum(x, axis=None, keepdims=False):
    """Sum of the elements over ``axis``.

    Args:
        x (Variable or array): float array of shape ``S``.
        axis (None, int or tuple of ints): axes to reduce (None: all; negatives allowed).
        keepdims (bool): keep the reduced axes with length 1.

    Returns:
        Variable of ``S`` without (or with length-1) reduced axes, same dtype; 0-d when
        every axis is reduced. Zero-size inputs sum to 0.

    Raises:
        TypeError: non-floating dtype, or an axis that is not an int.
        ValueError: an axis out of range or repeated.
    """
    _, axes = _reduction_args('sum', x, axis)
    return Sum(axes, keepdims).apply((x,))[0]


def mean(x, axis=None, keepdims=False):
    """Arithmetic mean over ``axis``.

    Args, returns and errors as :func:`sum`. The mean over zero elements is ``nan`` (with
    NumPy's RuntimeWarning), as in NumPy.
    """
    _, axes = _reduction_args('mean', x, axis)
    return Mean(axes, keepdims).apply((x,))[0]


def _check_nonempty(fname, a, axes):
    if a.size:
        return
    for i in (range(a.ndim) if axes is None else axes):
        if a.shape[i] == 0:
            raise ValueError('%s: cannot reduce over the zero-length axis %d of an input of '
                             'shape %s (a maximum/minimum of no elements is undefined); reduce '
                             'over non-empty axes only' % (fname, i, a.shape))


def max(x, axis=None, keepdims=False):
    """Maximum over ``axis``.

    The gradient flows to the elements equal to the maximum; when several elements tie,
    each receives an equal share (``gy / number_of_ties``), so the total is preserved.

    Args:
        x (Variable or array): float array of shape ``S``.
        axis (None, int or tuple of ints): axes to reduce (None: all; negatives allowed).
        keepdims (bool): keep the reduced axes with length 1.

    Returns:
        Variable of the reduced shape, same dtype.

    Raises:
        TypeError: non-floating dtype, or an axis that is not an int.
        ValueError: an axis out of range or repeated, or a reduction over a zero-length axis.
    """
    a, axes = _reduction_args('max', x, axis)
    _check_nonempty('max', a, axes)
    return Max(axes, keepdims).apply((x,))[0]


def min(x, axis=None, keepdims=False):
    """Minimum over ``axis``; ties share the gradient equally. See :func:`max`."""
    a, axes = _reduction_args('min', x, axis)
    _check_nonempty('min', a, axes)
    return Min(axes, keepdims).apply((x,))[0]


# -- clip / where / maximum / minimum ---------------------------------------------------

class Clip(FunctionNode):
    def __init__(self, lo, hi):
        self.lo = lo
        self.hi = hi

    def forward(self, inputs):
        x = inputs[0]
        xp = backend.get_array_module(x)
        lo, hi = self.lo, self.hi
        if lo is None:
            return (xp.minimum(x, hi),)
        if hi is None:
            return (xp.maximum(x, lo),)
        return (xp.clip(x, lo, hi),)

    def backward(self, indexes, grad_outputs):
        x = self.inputs[0].array
        lo, hi = self.lo, self.hi
        if lo is None:
            mask = x <= hi
        elif hi is None:
            mask = x >= lo
        else:
            mask = (x >= lo) & (x <= hi)
        return (grad_outputs[0] * mask,)


def _scalar_bound(name, v):
    if v is None:
        return None
    if getattr(v, 'ndim', None) == 0 and hasattr(v, 'item'):   # 0-d NumPy/CuPy array
        v = backend.to_host(v).item() if backend.is_device_array(v) else v.item()
    if not isinstance(v, _Real) or isinstance(v, bool):
        raise TypeError('clip: %s must be a real Python/NumPy scalar or None, got %s'
                        % (name, type(v).__name__))
    return float(v)


def clip(x, x_min, x_max):
    """Clamp every element into ``[x_min, x_max]``.

    The gradient is passed where ``x_min <= x <= x_max`` (bounds inclusive) and is 0
    elsewhere.

    Args:
        x (Variable or array): float array of any shape.
        x_min (float or None): lower bound (None: no lower bound).
        x_max (float or None): upper bound (None: no upper bound).

    Returns:
        Variable of the same shape and dtype.

    Raises:
        TypeError: non-floating ``x`` or non-scalar bounds.
        ValueError: both bounds None, or ``x_min > x_max``.
    """
    _float_array('clip', x)
    lo = _scalar_bound('x_min', x_min)
    hi = _scalar_bound('x_max', x_max)
    if lo is None and hi is None:
        raise ValueError('clip: x_min and x_max are both None; give at least one bound')
    if lo is not None and hi is not None and lo > hi:
        raise ValueError('clip: x_min (%r) is greater than x_max (%r)' % (lo, hi))
    return Clip(lo, hi).apply((x,))[0]


class Where(FunctionNode):
    def __init__(self, cond):
        self.cond = cond

    def forward(self, inputs):
        x, y = inputs
        xp = backend.get_array_module(x, y)
        return (xp.where(self.cond, x, y),)

    def backward(self, indexes, grad_outputs):
        gy = grad_outputs[0]
        xp = backend.get_array_module(gy)
        c = self.cond
        zero = gy.dtype.type(0)
        gx = gyy = None
        if 0 in indexes:
            gx = sum_to(xp.where(c, gy, zero), self.inputs[0].array.shape)
        if 1 in indexes:
            gyy = sum_to(xp.where(c, zero, gy), self.inputs[1].array.shape)
        return gx, gyy


def where(condition, x, y):
    """Elementwise choice: ``x`` where ``condition`` is True, else ``y`` (with broadcasting).

    Args:
        condition (bool array or bool Variable): not differentiated.
        x, y (Variable, array or Python scalar): float operands of one dtype (a scalar takes
            the other operand's dtype). ``condition``, ``x`` and ``y`` broadcast together.

    Returns:
        Variable of the broadcast shape. ``x`` receives the gradient where ``condition`` is
        True and ``y`` where it is False, each summed back to its own shape.

    Raises:
        TypeError: a non-bool condition, non-float or mismatched operand dtypes, or two
            scalar operands.
        ValueError: shapes that do not broadcast (the message lists all three).
    """
    c = _array_of('where', condition)
    if c.dtype != numpy.bool_:
        raise TypeError('where: condition must be a bool array, got dtype %s with shape %s; '
                        'build it with a comparison (e.g. x.array > 0)' % (c.dtype, c.shape))
    x, y = _binary_float_pair('where', x, y)
    xa = x.array if isinstance(x, Variable) else x
    ya = y.array if isinstance(y, Variable) else y
    _broadcast_shape('where', c.shape, xa.shape, ya.shape)
    xp = backend.get_array_module(xa, ya)
    if xp is not numpy and type(c) is _ndarray:
        c = xp.asarray(c)
    return Where(c).apply((x, y))[0]


class _Extremum(FunctionNode):
    def forward(self, inputs):
        a, b = inputs
        xp = backend.get_array_module(a, b)
        self.sa = a.shape
        self.sb = b.shape
        return (self._f(xp, a, b),)

    def backward(self, indexes, grad_outputs):
        gy = grad_outputs[0]
        a, b = self.inputs[0].array, self.inputs[1].array
        mask = self._mask(a, b)      # True where ``a`` is selected (ties included)
        ga = gb = None
        if 0 in indexes:
            ga = sum_to(gy * mask, self.sa)
        if 1 in indexes:
            gb = sum_to(gy * ~mask, self.sb)
        return ga, gb


class Maximum(_Extremum):
    def _f(self, xp, a, b):
        return xp.maximum(a, b)

    def _mask(self, a, b):
        return a >= b


class Minimum(_Extremum):
    def _f(self, xp, a, b):
        return xp.minimum(a, b)

    def _mask(self, a, b):
        return a <= b


def _extremum(fname, node_cls, a, b):
    a, b = _binary_float_pair(fname, a, b)
    aa = a.array if isinstance(a, Variable) else a
    bb = b.array if isinstance(b, Variable) else b
    if aa.shape != bb.shape:
        _broadcast_shape(fname, aa.shape, bb.shape)
    return node_cls().apply((a, b))[0]


def maximum(a, b):
    """Elementwise maximum of ``a`` and ``b`` with broadcasting.

    Where ``a == b`` the whole gradient goes to ``a`` (the first operand). Each gradient is
    summed back to its operand's shape.

    Args:
        a, b (Variable, array or Python scalar): float operands of one dtype (a scalar takes
            the other operand's dtype; at most one may be a scalar).

    Returns:
        Variable of the broadcast shape.

    Raises:
        TypeError: non-float or mismatched dtypes, or two scalars.
        ValueError: shapes that do not broadcast (the message names both).
    """
    return _extremum('maximum', Maximum, a, b)


def minimum(a, b):
    """Elementwise minimum with broadcasting; ties give the gradient to ``a``.

    See :func:`maximum` for arguments and errors.
    """
    return _extremum('minimum', Minimum, a, b)


# -- cast --------------------------------------------------------------------------------

class Cast(FunctionNode):
    def __init__(self, dtype):
        self.dtype = dtype

    def forward(self, inputs):
        x = inputs[0]
        self.in_dtype = x.dtype
        return (x.astype(self.dtype),)

    def backward(self, indexes, grad_outputs):
        return (grad_outputs[0].astype(self.in_dtype),)


def cast(x, dtype):
    """Convert ``x`` to ``dtype``; the gradient is converted back to ``x``'s dtype.

    Args:
        x (Variable or array): any shape and dtype.
        dtype: a NumPy dtype (or anything ``numpy.dtype`` accepts).

    Returns:
        Variable with ``x``'s shape and the new dtype. When ``x`` already has ``dtype`` it
        is returned unchanged (wrapped as a constant Variable when it was an array).
        Gradients flow only between floating dtypes: a cast to or from a non-floating
        (integer, bool, complex) dtype returns a Variable with ``requires_grad=False`` and
        no creator.

    Raises:
        TypeError: ``dtype`` is not understood by NumPy, or ``x`` is not an array/Variable.
    """
    a = _array_of('cast', x)
    if dtype is None:
        raise TypeError('cast: dtype is None; give a dtype such as numpy.float32')
    try:
        dtype = numpy.dtype(dtype)
    except TypeError:
        raise TypeError('cast: %r is not a dtype; use e.g. numpy.float32' % (dtype,)) from None
    if a.dtype == dtype:
        if isinstance(x, Variable):
            return x
        return Variable(a, requires_grad=False)
    if a.dtype.kind != 'f' or dtype.kind != 'f':
        return Variable(a.astype(dtype), requires_grad=False)
    return Cast(dtype).apply((x,))[0]



# -- logsumexp / prod / cumsum / argmax ----------------------------------------------------

class LogSumExp(_AxesReduction):
    def forward(self, inputs):
        x = inputs[0]
        xp = backend.get_array_module(x)
        self.retain_outputs((0,))
        kshape = _keep_shape(x.shape, self.axes)
        if x.size == 0:
            y = xp.full(kshape, -numpy.inf, dtype=x.dtype)
        else:
            m = x.max(axis=self.axes, keepdims=True)
            m = xp.where(xp.isfinite(m), m, 0).astype(x.dtype)    # all -inf rows: no nan
            with numpy.errstate(divide='ignore'):
                y = xp.log(xp.exp(x - m).sum(axis=self.axes, keepdims=True))
            y += m
        if not self.keepdims:
            y = y.reshape(tuple(s for i, s in enumerate(x.shape)
                                if self.axes is not None and i not in self.axes))
        return (_as_0d(y),)

    def backward(self, indexes, grad_outputs):
        x = self.inputs[0].array
        xp = backend.get_array_module(x)
        kshape = _keep_shape(x.shape, self.axes)
        y = self._out_arrays[0].reshape(kshape)
        gy = grad_outputs[0].reshape(kshape)
        with numpy.errstate(invalid='ignore'):
            gx = x - y
        # a row of -inf only (y = -inf) has no softmax: its gradient is 0, not nan
        gx = xp.where(xp.isfinite(y), gx, -numpy.inf).astype(x.dtype)
        xp.exp(gx, out=gx)
        gx *= gy
        return (gx,)


def logsumexp(x, axis=None, keepdims=False):
    """``log(sum(exp(x), axis))``, computed stably as ``m + log(sum(exp(x - m)))`` with
    ``m = max(x, axis)``.

    Finite for any finite input (``logsumexp([1e4, 1e4])`` is ``1e4 + log 2``); a slice of
    only ``-inf`` gives ``-inf`` with a zero gradient, and a reduction over no elements gives
    ``-inf`` (the sum of no terms is 0). Gradient: ``gy * softmax(x, axis) = gy * exp(x - y)``.

    Args:
        x (Variable or array): float array of shape ``S``.
        axis (None, int or tuple of ints): axes to reduce (None: all; negatives allowed).
        keepdims (bool): keep the reduced axes with length 1.

    Returns:
        Variable of the reduced shape (0-d for ``axis=None``), same dtype.

    Raises:
        TypeError: non-floating dtype, or an axis that is not an int.
        ValueError: an axis out of range or repeated.
    """
    _, axes = _reduction_args('logsumexp', x, axis)
    return LogSumExp(axes, keepdims).apply((x,))[0]


def _to_last(xp, a, axes):
    """``a`` with ``axes`` (sorted tuple or None = all) moved to the end and flattened into
    one: ``(rest..., n)``; returns it and the permuted shape to undo with :func:`_from_last`."""
    if axes is None:
        axes = tuple(range(a.ndim))
    keep = [i for i in range(a.ndim) if i not in axes]
    perm = keep + list(axes)
    t = a.transpose(perm)
    return t.reshape(t.shape[:len(keep)] + (-1,)), perm, t.shape


def _from_last(xp, a, perm, tshape):
    inv = tuple(int(i) for i in numpy.argsort(perm))
    return xp.ascontiguousarray(a.reshape(tshape).transpose(inv))


class Prod(_AxesReduction):
    def forward(self, inputs):
        x = inputs[0]
        self.in_shape = x.shape
        return (_as_0d(x.prod(axis=self.axes, keepdims=self.keepdims)),)

    def backward(self, indexes, grad_outputs):
        # d prod / d x_i = prod_{j != i} x_j = (exclusive cumprod from the left) * (from the
        # right): exact also when some x_j are 0 (no division)
        x = self.inputs[0].array
        xp = backend.get_array_module(x)
        gy = grad_outputs[0].reshape(_keep_shape(x.shape, self.axes))
        flat, perm, tshape = _to_last(xp, x, self.axes)
        n = flat.shape[-1]
        left = xp.ones_like(flat)
        right = xp.ones_like(flat)
        if n > 1:
            xp.cumprod(flat[..., :-1], axis=-1, out=left[..., 1:])
            right[..., :-1] = xp.cumprod(flat[..., :0:-1], axis=-1)[..., ::-1]
        left *= right
        g = _from_last(xp, left, perm, tshape)
        g *= gy
        return (g,)


def prod(x, axis=None, keepdims=False):
    """Product of the elements over ``axis``.

    The gradient ``gy * prod_{j != i} x_j`` is computed from exclusive cumulative products
    (no division), so it is exact when some elements are zero.

    Args, returns and errors as :func:`sum` (the product of no elements is 1).
    """
    _, axes = _reduction_args('prod', x, axis)
    return Prod(axes, keepdims).apply((x,))[0]


class Cumsum(FunctionNode):
    def __init__(self, axis):
        self.axis = axis

    def forward(self, inputs):
        x = inputs[0]
        self.in_shape = x.shape
        return (x.cumsum(axis=self.axis),)

    def backward(self, indexes, grad_outputs):
        # y_j = sum_{i <= j} x_i  =>  gx_i = sum_{j >= i} gy_j (a reversed cumulative sum)
        gy = grad_outputs[0]
        xp = backend.get_array_module(gy)
        ax = 0 if self.axis is None else self.axis
        idx = [slice(None)] * gy.ndim
        idx[ax] = slice(None, None, -1)
        idx = tuple(idx)
        gx = xp.ascontiguousarray(gy[idx].cumsum(axis=ax)[idx])
        return (gx.reshape(self.in_shape),)


def cumsum(x, axis=None):
    """Cumulative sum along ``axis``: ``y[..., j, ...] = sum_{i <= j} x[..., i, ...]``.

    Args:
        x (Variable or array): float array of shape ``S``.
        axis (int or None): the axis to accumulate along (negatives allowed); None flattens
            ``x`` first (as ``numpy.cumsum``), giving a 1-d result of ``x.size`` elements.

    Returns:
        Variable of shape ``S`` (or ``(x.size,)`` for ``axis=None``), same dtype. The gradient
        is the reversed cumulative sum of ``gy``.

    Raises:
        TypeError: non-floating dtype, or an axis that is not an int or None.
        ValueError: an axis out of range.
    """
    a = _float_array('cumsum', x)
    if axis is not None:
        if isinstance(axis, bool) or not isinstance(axis, _Integral):
            raise TypeError('cumsum: axis must be an int or None, got %r' % (axis,))
        axis = _normalize_axis('cumsum', axis, a.shape)[0]
    return Cumsum(axis).apply((x,))[0]


def argmax(x, axis=None):
    """Index of the maximum along ``axis`` (the first one on ties), as ``numpy.argmax``.

    Not differentiable: the result is an integer Variable with ``requires_grad=False`` and
    no creator (use :func:`max` for the value with a gradient).

    Args:
        x (Variable or array): array of any real dtype and shape ``S``.
        axis (int or None): the axis searched (negatives allowed); None searches the
            flattened array and returns a 0-d index into ``x.ravel()``.

    Returns:
        Variable of dtype int32: ``S`` without ``axis`` (0-d for ``axis=None``).

    Raises:
        TypeError: not an array/Variable, or an axis that is not an int or None.
        ValueError: an axis out of range, or searching a zero-length axis (an empty input).
    """
    a = _array_of('argmax', x)
    if axis is not None:
        if isinstance(axis, bool) or not isinstance(axis, _Integral):
            raise TypeError('argmax: axis must be an int or None, got %r' % (axis,))
        axis = _normalize_axis('argmax', axis, a.shape)[0]
    if (axis is None and a.size == 0) or (axis is not None and a.shape[axis] == 0):
        raise ValueError('argmax: cannot search a zero-length axis (input shape %s, axis %s); '
                         'the maximum of no elements is undefined' % (a.shape, axis))
    xp = backend.get_array_module(a)
    return Variable(xp.asarray(a.argmax(axis=axis)).astype(numpy.int32), requires_grad=False)
