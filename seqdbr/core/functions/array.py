"""Shape and indexing functions: reshape, transpose, broadcast_to, concat, stack,
split_axis, separate, get_item, expand_dims, squeeze, pad_sequence, transpose_sequence,
flip, pad, select_item.

These functions move values around without arithmetic, so they accept any dtype (integer
arrays too, e.g. label sequences); gradients flow through floating-point inputs only.
Arguments are Variables or plain arrays (arrays are constants). Axes may be negative.

Outputs are views of the inputs where NumPy gives views (reshape, transpose, slicing,
split_axis, separate); as with NumPy, do not modify an output's ``.array`` in place unless
you mean to change the input too.
"""
import numbers

import numpy

from seqdbr.core import backend
from seqdbr.core.function_node import FunctionNode, sum_to
from seqdbr.core.variable import Variable, _check_array

__all__ = ['reshape', 'transpose', 'broadcast_to', 'concat', 'stack', 'split_axis',
           'separate', 'get_item', 'expand_dims', 'squeeze', 'pad_sequence',
           'transpose_sequence', 'flip', 'pad', 'select_item']

_ndarray = numpy.ndarray
_Integral = numbers.Integral


def _array_of(fname, x):
    if isinstance(x, Variable):
        return x.array
    return _check_array(x, fname)


def _is_int(v):
    return isinstance(v, _Integral) and not isinstance(v, bool)


def _axis(fname, axis, ndim):
    """Validate one axis of an ``ndim``-d array and make it non-negative."""
    if not _is_int(axis):
        raise TypeError('%s: axis must be an int, got %r' % (fname, axis))
    axis = int(axis)
    if axis < -ndim or axis >= ndim:
        raise ValueError('%s: axis %d is out of range for a %d-d input (valid: %d .. %d)'
                         % (fname, axis, ndim, -ndim, ndim - 1))
    return axis + ndim if axis < 0 else axis


def _shape_arg(fname, shape):
    """An int or a sequence of ints -> tuple of Python ints."""
    if _is_int(shape):
        return (int(shape),)
    if isinstance(shape, (tuple, list)):
        for s in shape:
            if not _is_int(s):
                raise TypeError('%s: shape must be a tuple of ints, got %r' % (fname, shape))
        return tuple([int(s) for s in shape])
    raise TypeError('%s: shape must be an int or a tuple of ints, got %r' % (fname, shape))


def _sequence_arg(fname, xs):
    if isinstance(xs, (Variable, _ndarray)) or backend.is_device_array(xs):
        raise TypeError('%s: expects a list or tuple of Variables/arrays, got a single %s; '
                        'wrap it in a list' % (fname, type(xs).__name__))
    if not isinstance(xs, (list, tuple)):
        raise TypeError('%s: expects a list or tuple of Variables/arrays, got %s'
                        % (fname, type(xs).__name__))
    return tuple(xs)


def _common_dtype(fname, arrays):
    dt = arrays[0].dtype
    for i, a in enumerate(arrays):
        if a.dtype != dt:
            raise TypeError('%s: all inputs must share one dtype, but input 0 is %s and input '
                            '%d is %s; cast them first (F.cast)' % (fname, dt, i, a.dtype))
    return dt


# -- reshape / transpose / expand_dims / squeeze ---------------------------------------

class Reshape(FunctionNode):
    def __init__(self, shape):
        self.shape = shape

    def forward(self, inputs):
        x = inputs[0]
        self.in_shape = x.shape
        return (x.reshape(self.shape),)

    def backward(self, indexes, grad_outputs):
        return (grad_outputs[0].reshape(self.in_shape),)


class ExpandDims(Reshape):
    pass


class Squeeze(Reshape):
    pass


def _resolve_shape(fname, in_shape, size, shape):
    shape = _shape_arg(fname, shape)
    unknown = -1
    known = 1
    for i, s in enumerate(shape):
        if s == -1:
            if unknown >= 0:
                raise ValueError('%s: only one dimension can be -1, got shape %s'
                                 % (fname, shape))
            unknown = i
        elif s < 0:
            raise ValueError('%s: negative dimension %d in shape %s (only -1 is allowed, to '
                             'infer one dimension)' % (fname, s, shape))
        else:
            known *= s
    if unknown >= 0:
        if known == 0 or size % known:
            raise ValueError('%s: cannot reshape an input of shape %s (size %d) into %s; the '
                             'size must be a multiple of the product of the other dimensions'
                             % (fname, in_shape, size, shape))
        return shape[:unknown] + (size // known,) + shape[unknown + 1:]
    if known != size:
        raise ValueError('%s: cannot reshape an input of shape %s (size %d) into %s (size %d);'
                         ' the sizes must match' % (fname, in_shape, size, shape, known))
    return shape


def reshape(x, shape):
    """Give ``x`` a new shape with the same elements (C order).

    Args:
        x (Variable or array): any shape and dtype.
        shape (int or tuple of ints): the new shape; one entry may be -1 (inferred).

    Returns:
        Variable of ``shape``; its array is a view of ``x``'s when NumPy can make one.

    Raises:
        TypeError: ``shape`` is not an int or a tuple of ints.
        ValueError: the sizes differ, more than one -1, or another negative entry.
    """
    a = _array_of('reshape', x)
    return Reshape(_resolve_shape('reshape', a.shape, a.size, shape)).apply((x,))[0]


class Transpose(FunctionNode):
    def __init__(self, axes):
        self.axes = axes

    def forward(self, inputs):
        return (inputs[0].transpose(self.axes),)

    def backward(self, indexes, grad_outputs):
        axes = self.axes
        if axes is None:
            return (grad_outputs[0].transpose(),)
        inv = [0] * len(axes)
        for i, a in enumerate(axes):
            inv[a] = i
        return (grad_outputs[0].transpose(inv),)


def transpose(x, axes=None):
    """Permute the axes of ``x``.

    Args:
        x (Variable or array): any shape and dtype.
        axes (None or tuple of ints): a permutation of ``range(x.ndim)`` (negatives allowed);
            None reverses the axes.

    Returns:
        Variable whose axis ``i`` is ``x``'s axis ``axes[i]``.

    Raises:
        TypeError: ``axes`` is not a tuple of ints.
        ValueError: ``axes`` is not a permutation of the input's axes.
    """
    a = _array_of('transpose', x)
    if axes is not None:
        axes = _shape_arg('transpose', axes)
        ndim = a.ndim
        norm = tuple([v + ndim if v < 0 else v for v in axes])
        if len(norm) != ndim or sorted(norm) != list(range(ndim)):
            raise ValueError('transpose: axes %s are not a permutation of the axes of an input '
                             'of shape %s (need each of 0 .. %d exactly once)'
                             % (axes, a.shape, ndim - 1))
        axes = norm
    return Transpose(axes).apply((x,))[0]


def expand_dims(x, axis):
    """Insert a length-1 axis at position ``axis`` of the output.

    Args:
        x (Variable or array): shape ``S`` of ``ndim`` axes, any dtype.
        axis (int): in ``[-ndim - 1, ndim]``.

    Returns:
        Variable with ``ndim + 1`` axes.

    Raises:
        TypeError / ValueError: ``axis`` not an int / out of range.
    """
    a = _array_of('expand_dims', x)
    axis = _axis('expand_dims', axis, a.ndim + 1)
    shape = a.shape
    return ExpandDims(shape[:axis] + (1,) + shape[axis:]).apply((x,))[0]


def squeeze(x, axis=None):
    """Remove length-1 axes.

    Args:
        x (Variable or array): any shape and dtype.
        axis (None, int or tuple of ints): the axes to remove (each must have length 1);
            None removes every length-1 axis.

    Returns:
        Variable without those axes.

    Raises:
        TypeError: ``axis`` is not an int or a tuple of ints.
        ValueError: an axis out of range, repeated, or of length other than 1.
    """
    a = _array_of('squeeze', x)
    shape = a.shape
    if axis is None:
        new = tuple([s for s in shape if s != 1])
    else:
        axes = _shape_arg('squeeze', axis)
        norm = set()
        for ax in axes:
            ax = _axis('squeeze', ax, a.ndim)
            if ax in norm:
                raise ValueError('squeeze: axis %r repeats axis %d' % (axis, ax))
            if shape[ax] != 1:
                raise ValueError('squeeze: axis %d of an input of shape %s has length %d; only '
                                 'length-1 axes can be removed' % (ax, shape, shape[ax]))
            norm.add(ax)
        new = tuple([s for i, s in enumerate(shape) if i not in norm])
    return Squeeze(new).apply((x,))[0]


# -- broadcast_to ---------------------------------------------------------------------------

class BroadcastTo(FunctionNode):
    def __init__(self, shape):
        self.shape = shape

    def forward(self, inputs):
        x = inputs[0]
        self.in_shape = x.shape
        xp = backend.get_array_module(x)
        return (xp.broadcast_to(x, self.shape),)

    def backward(self, indexes, grad_outputs):
        return (sum_to(grad_outputs[0], self.in_shape),)


def broadcast_to(x, shape):
    """Broadcast ``x`` to ``shape`` (NumPy rules); the gradient is summed back.

    Args:
        x (Variable or array): any dtype, shape broadcastable to ``shape``.
        shape (int or tuple of ints): the target shape.

    Returns:
        Variable of ``shape``. Its array is a read-only broadcast view of ``x``.

    Raises:
        TypeError: ``shape`` is not a tuple of ints.
        ValueError: ``x``'s shape cannot be broadcast to ``shape`` (the message names both).
    """
    a = _array_of('broadcast_to', x)
    shape = _shape_arg('broadcast_to', shape)
    src = a.shape
    lead = len(shape) - len(src)
    ok = lead >= 0 and min(shape, default=0) >= 0
    if ok:
        for i, s in enumerate(src):
            if s != 1 and s != shape[lead + i]:
                ok = False
                break
    if not ok:
        raise ValueError('broadcast_to: an input of shape %s cannot be broadcast to %s (each '
                         'trailing dimension must be equal or 1, and the target needs at least '
                         'as many axes)' % (src, shape))
    return BroadcastTo(shape).apply((x,))[0]


# -- concat / stack / split_axis / separate -------------------------------------------------

class Concat(FunctionNode):
    def __init__(self, axis):
        self.axis = axis

    def forward(self, inputs):
        xp = backend.get_array_module(*inputs)
        axis = self.axis
        self.sizes = [x.shape[axis] for x in inputs]
        return (xp.concatenate(inputs, axis=axis),)

    def backward(self, indexes, grad_outputs):
        gy = grad_outputs[0]
        pre = (slice(None),) * self.axis
        out = []
        start = 0
        for n in self.sizes:
            out.append(gy[pre + (slice(start, start + n),)])
            start += n
        return tuple(out)


def concat(xs, axis=1):
    """Join arrays along an existing axis.

    Args:
        xs (list or tuple of Variables/arrays): at least one; same ndim (>= 1), same dtype,
            equal shapes except along ``axis``.
        axis (int): the axis to join along (default 1, as in Chainer).

    Returns:
        Variable whose ``axis`` length is the sum of the inputs'.

    Raises:
        TypeError: ``xs`` not a sequence, or mixed dtypes.
        ValueError: empty ``xs``, 0-d inputs, ndim mismatch, or shapes differing off ``axis``.
    """
    xs = _sequence_arg('concat', xs)
    if not xs:
        raise ValueError('concat: needs at least one input')
    arrays = [_array_of('concat', x) for x in xs]
    ndim = arrays[0].ndim
    if ndim == 0:
        raise ValueError('concat: 0-d inputs cannot be concatenated; use F.stack')
    axis = _axis('concat', axis, ndim)
    _common_dtype('concat', arrays)
    ref = arrays[0].shape
    for i, a in enumerate(arrays):
        s = a.shape
        if len(s) != ndim or s[:axis] != ref[:axis] or s[axis + 1:] != ref[axis + 1:]:
            raise ValueError('concat: input %d has shape %s but input 0 has shape %s; all '
                             'dimensions except axis %d must match'
                             % (i, s, ref, axis))
    return Concat(axis).apply(xs)[0]


class Stack(FunctionNode):
    def __init__(self, axis):
        self.axis = axis

    def forward(self, inputs):
        xp = backend.get_array_module(*inputs)
        return (xp.stack(inputs, axis=self.axis),)

    def backward(self, indexes, grad_outputs):
        gy = grad_outputs[0]
        pre = (slice(None),) * self.axis
        return tuple([gy[pre + (i,)] for i in range(len(self.inputs))])


def stack(xs, axis=0):
    """Join arrays of one shape along a new axis.

    Args:
        xs (list or tuple of Variables/arrays): at least one, equal shapes and dtypes.
        axis (int): position of the new axis in the output, in ``[-ndim - 1, ndim]``.

    Returns:
        Variable of shape ``S[:axis] + (len(xs),) + S[axis:]``.

    Raises:
        TypeError: ``xs`` not a sequence, or mixed dtypes.
        ValueError: empty ``xs``, differing shapes, or ``axis`` out of range.
    """
    xs = _sequence_arg('stack', xs)
    if not xs:
        raise ValueError('stack: needs at least one input')
    arrays = [_array_of('stack', x) for x in xs]
    ref = arrays[0].shape
    for i, a in enumerate(arrays):
        if a.shape != ref:
            raise ValueError('stack: input %d has shape %s but input 0 has shape %s; all '
                             'shapes must be equal' % (i, a.shape, ref))
    _common_dtype('stack', arrays)
    axis = _axis('stack', axis, len(ref) + 1)
    return Stack(axis).apply(xs)[0]


def _zeros_for_missing(xp, gys, shapes, dtype):
    return [xp.zeros(s, dtype=dtype) if g is None else g for g, s in zip(gys, shapes)]


class SplitAxis(FunctionNode):
    def __init__(self, bounds, axis):
        self.bounds = bounds     # list of (start, stop)
        self.axis = axis

    def forward(self, inputs):
        x = inputs[0]
        pre = (slice(None),) * self.axis
        ys = tuple([x[pre + (slice(b, e),)] for b, e in self.bounds])
        self.dtype = x.dtype
        self.out_shapes = [y.shape for y in ys]
        return ys

    def backward(self, indexes, grad_outputs):
        xp = backend.get_array_module(*[g for g in grad_outputs if g is not None])
        gys = _zeros_for_missing(xp, grad_outputs, self.out_shapes, self.dtype)
        return (xp.concatenate(gys, axis=self.axis),)


def split_axis(x, indices_or_sections, axis):
    """Split ``x`` into pieces along ``axis``.

    Args:
        x (Variable or array): at least 1-d, any dtype.
        indices_or_sections (int or sequence of ints): an int ``n`` splits into ``n`` equal
            pieces (the axis length must be divisible by ``n``); a sequence gives the split
            points, non-decreasing, each in ``[0, length]`` (``[2, 5]`` -> ``[:2], [2:5],
            [5:]``).
        axis (int): the axis to split.

    Returns:
        tuple of Variables (always a tuple, even for one piece). An output nobody uses
        contributes a zero gradient.

    Raises:
        TypeError: non-int split points.
        ValueError: a non-divisible or non-positive section count, split points out of
            range or decreasing, a 0-d input, or ``axis`` out of range.
    """
    a = _array_of('split_axis', x)
    if a.ndim == 0:
        raise ValueError('split_axis: cannot split a 0-d input')
    axis = _axis('split_axis', axis, a.ndim)
    n = a.shape[axis]
    if _is_int(indices_or_sections):
        k = int(indices_or_sections)
        if k <= 0 or n % k:
            raise ValueError('split_axis: axis %d of shape %s (length %d) cannot be split into '
                             '%d equal sections; give a divisor of %d or a list of split '
                             'points' % (axis, a.shape, n, k, n))
        step = n // k
        bounds = [(i * step, (i + 1) * step) for i in range(k)]
    elif isinstance(indices_or_sections, (list, tuple, _ndarray)):
        pts = list(indices_or_sections)
        prev = 0
        for p in pts:
            if not _is_int(p):
                raise TypeError('split_axis: split points must be ints, got %r'
                                % (indices_or_sections,))
            if p < prev or p > n:
                raise ValueError('split_axis: split points %s must be non-decreasing and within '
                                 '[0, %d] (length of axis %d of shape %s)'
                                 % (list(indices_or_sections), n, axis, a.shape))
            prev = p
        edges = [0] + [int(p) for p in pts] + [n]
        bounds = [(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]
    else:
        raise TypeError('split_axis: indices_or_sections must be an int or a sequence of ints, '
                        'got %s' % type(indices_or_sections).__name__)
    return SplitAxis(bounds, axis).apply((x,))


class Separate(FunctionNode):
    def __init__(self, axis):
        self.axis = axis

    def forward(self, inputs):
        x = inputs[0]
        axis = self.axis
        pre = (slice(None),) * axis
        self.dtype = x.dtype
        self.out_shape = x.shape[:axis] + x.shape[axis + 1:]
        return tuple([x[pre + (i,)] for i in range(x.shape[axis])])

    def backward(self, indexes, grad_outputs):
        xp = backend.get_array_module(*[g for g in grad_outputs if g is not None])
        gys = _zeros_for_missing(xp, grad_outputs, [self.out_shape] * len(grad_outputs),
                                 self.dtype)
        return (xp.stack(gys, axis=self.axis),)


def separate(x, axis=0):
    """Split ``x`` into its slices along ``axis`` (the axis is removed): inverse of stack.

    Args:
        x (Variable or array): at least 1-d, any dtype.
        axis (int): the axis to take apart.

    Returns:
        tuple of ``x.shape[axis]`` Variables of shape ``x.shape`` without ``axis`` (empty
        when that length is 0). Unused outputs contribute zero gradients.

    Raises:
        ValueError: a 0-d input or ``axis`` out of range.
    """
    a = _array_of('separate', x)
    if a.ndim == 0:
        raise ValueError('separate: cannot separate a 0-d input')
    axis = _axis('separate', axis, a.ndim)
    return Separate(axis).apply((x,))


# -- get_item -------------------------------------------------------------------------------

class GetItem(FunctionNode):
    def __init__(self, key, scatter):
        self.key = key
        self.scatter = scatter   # True when integer-array indices may repeat positions

    def forward(self, inputs):
        x = inputs[0]
        self.in_shape = x.shape
        try:
            return (x[self.key],)
        except IndexError as e:
            raise IndexError('get_item: index %s does not fit an input of shape %s (%s)'
                             % (_key_repr(self.key), x.shape, e)) from None

    def backward(self, indexes, grad_outputs):
        gy = grad_outputs[0]
        xp = backend.get_array_module(gy)
        gx = xp.zeros(self.in_shape, dtype=gy.dtype)
        if not self.scatter:
            gx[self.key] = gy
        elif xp is numpy:
            numpy.add.at(gx, self.key, gy)
        else:
            _gpu_scatter_add(xp, gx, self.key, gy)
        return (gx,)


def _gpu_scatter_add(xp, a, key, v):
    """``a[key] += v`` with repeated indices accumulating, on CuPy."""
    add_at = getattr(xp.add, 'at', None)   # CuPy >= 12.1
    if add_at is not None:
        add_at(a, key, v)
        return
    import cupyx
    cupyx.scatter_add(a, key, v)


def _key_repr(key):
    parts = []
    for k in key:
        if isinstance(k, slice):
            parts.append('%s:%s%s' % ('' if k.start is None else k.start,
                                      '' if k.stop is None else k.stop,
                                      '' if k.step is None else ':%s' % k.step))
        elif k is Ellipsis:
            parts.append('...')
        elif k is None:
            parts.append('None')
        elif hasattr(k, 'shape') and getattr(k, 'ndim', 0) > 0:
            parts.append('<%s array %s>' % (k.dtype, k.shape))
        else:
            parts.append(repr(k))
    return '[%s]' % ', '.join(parts)


_basic_types = (int, slice, type(None), type(Ellipsis))


def _index_array(k, xp):
    if isinstance(k, Variable):
        k = k.array
    elif isinstance(k, list):
        k = numpy.asarray(k) if k else numpy.zeros(0, dtype=numpy.intp)
    kind = k.dtype.kind
    if kind not in 'iub':
        raise TypeError('get_item: index arrays must be integer or bool, got dtype %s; cast '
                        'with .astype(numpy.int64)' % k.dtype)
    if xp is not numpy and type(k) is _ndarray:
        k = xp.asarray(k)
    return k, kind != 'b'


def get_item(x, key):
    """``x[key]`` with NumPy indexing; the gradient is scattered back.

    Supported index elements: ints, slices, ``Ellipsis``, ``None`` (new axis), integer or bool
    arrays, lists of ints (advanced indexing, NumPy rules) and integer Variables. Repeated
    integer indices accumulate their gradients (scatter-add).

    Args:
        x (Variable or array): any shape and dtype.
        key: an index element or a tuple of them.

    Returns:
        Variable ``x[key]`` (a view for basic indexing).

    Raises:
        TypeError: an unsupported index element (float, str, bool scalar, float array).
        IndexError: an index out of range or too many indices (the message names the shape).
    """
    a = _array_of('get_item', x)
    t = type(key)
    if t is int or t is slice:
        return GetItem((key,), False).apply((x,))[0]
    if t is not tuple:
        key = (key,)
    xp = None
    scatter = False
    norm = []
    for k in key:
        if type(k) in _basic_types or (_is_int(k)):
            norm.append(k)
            continue
        if isinstance(k, bool):
            raise TypeError('get_item: bool scalars are not supported as indices; use None to '
                            'add an axis or a bool array as a mask')
        if isinstance(k, (list, Variable, _ndarray)) or backend.is_device_array(k):
            if xp is None:
                xp = backend.get_array_module(a)
            k, is_int = _index_array(k, xp)
            scatter = scatter or is_int
            norm.append(k)
            continue
        raise TypeError('get_item: unsupported index %r of type %s; use ints, slices, '
                        'Ellipsis, None, integer/bool arrays or lists of ints'
                        % (k, type(k).__name__))
    return GetItem(tuple(norm), scatter).apply((x,))[0]


# -- sequences -------------------------------------------------------------------------------

class PadSequence(FunctionNode):
    def __init__(self, length, padding):
        self.length = length
        self.padding = padding

    def forward(self, inputs):
        xp = backend.get_array_module(*inputs)
        x0 = inputs[0]
        shape = (len(inputs), self.length) + x0.shape[1:]
        y = xp.full(shape, self.padding, dtype=x0.dtype)
        for i, x in enumerate(inputs):
            y[i, :x.shape[0]] = x
        return (y,)

    def backward(self, indexes, grad_outputs):
        gy = grad_outputs[0]
        inputs = self.inputs
        return tuple([gy[i, :inputs[i].array.shape[0]] if i in indexes else None
                      for i in range(len(inputs))])


def pad_sequence(xs, length=None, padding=0):
    """Pad variable-length sequences into one batch array.

    Args:
        xs (list or tuple of Variables/arrays): ``B >= 1`` sequences of shapes ``(T_i, ...)``
            with equal trailing shapes and one dtype (``T_i = 0`` allowed).
        length (int or None): output length ``T``; None means ``max(T_i)``.
        padding (scalar): value for the positions past each sequence's end.

    Returns:
        Variable of shape ``(B, T, ...)``; row ``i`` holds ``xs[i]`` then padding. Padding
        receives no gradient.

    Raises:
        TypeError: ``xs`` not a sequence, mixed dtypes, or a non-scalar ``padding``.
        ValueError: empty ``xs``, 0-d items, differing trailing shapes, or ``length``
            shorter than the longest sequence.
    """
    xs = _sequence_arg('pad_sequence', xs)
    if not xs:
        raise ValueError('pad_sequence: needs at least one sequence')
    arrays = [_array_of('pad_sequence', x) for x in xs]
    _common_dtype('pad_sequence', arrays)
    tail = None
    longest = 0
    for i, a in enumerate(arrays):
        if a.ndim == 0:
            raise ValueError('pad_sequence: sequence %d is 0-d; each must have shape (T, ...)'
                             % i)
        if tail is None:
            tail = a.shape[1:]
        elif a.shape[1:] != tail:
            raise ValueError('pad_sequence: sequence %d has shape %s but sequence 0 has shape '
                             '%s; all must agree after the first (time) axis'
                             % (i, a.shape, arrays[0].shape))
        if a.shape[0] > longest:
            longest = a.shape[0]
    if length is None:
        length = longest
    elif not _is_int(length):
        raise TypeError('pad_sequence: length must be an int or None, got %r' % (length,))
    elif length < longest:
        raise ValueError('pad_sequence: length %d is shorter than the longest sequence (%d); '
                         'pass length=None or at least %d' % (length, longest, longest))
    if not isinstance(padding, numbers.Number):
        raise TypeError('pad_sequence: padding must be a scalar, got %s'
                        % type(padding).__name__)
    return PadSequence(int(length), padding).apply(xs)[0]


class TransposeSequence(FunctionNode):
    def __init__(self, lengths):
        self.lengths = lengths

    def _plan(self, xp):
        lengths = numpy.asarray(self.lengths, dtype=numpy.intp)
        steps = numpy.arange(int(lengths[0]), dtype=numpy.intp)
        mask = lengths[None, :] > steps[:, None]                       # (T, B)
        offsets = numpy.concatenate(([0], numpy.cumsum(lengths)[:-1]))
        perm = (offsets[None, :] + steps[:, None])[mask]               # step-major order
        batch = mask.sum(axis=1)
        self.batch_sizes = batch.tolist()
        self.perm = perm if xp is numpy else xp.asarray(perm)

    def forward(self, inputs):
        xp = backend.get_array_module(*inputs)
        self._plan(xp)
        flat = xp.concatenate(inputs, axis=0)[self.perm]
        ys = []
        start = 0
        for b in self.batch_sizes:
            ys.append(flat[start:start + b])
            start += b
        self.tail = inputs[0].shape[1:]
        self.dtype = inputs[0].dtype
        return tuple(ys)

    def backward(self, indexes, grad_outputs):
        xp = backend.get_array_module(*[g for g in grad_outputs if g is not None])
        tail = self.tail
        gys = _zeros_for_missing(xp, grad_outputs, [(b,) + tail for b in self.batch_sizes],
                                 self.dtype)
        g = xp.empty((len(self.perm),) + tail, dtype=self.dtype)
        g[self.perm] = xp.concatenate(gys, axis=0)
        out = []
        start = 0
        for n in self.lengths:
            out.append(g[start:start + n])
            start += n
        return tuple(out)


def transpose_sequence(xs):
    """Turn a batch of sequences into a sequence of batches (and back).

    Args:
        xs (list or tuple of Variables/arrays): ``B`` sequences of shapes ``(T_b, ...)``,
            sorted by decreasing length (``T_0 >= T_1 >= ...``), equal trailing shapes, one
            dtype.

    Returns:
        list of ``T_0`` Variables; item ``t`` has shape ``(B_t, ...)`` and holds step ``t``
        of every sequence longer than ``t`` (``B_t`` of them, in the order of ``xs``). The
        result is again sorted by decreasing length, so transposing it gives back ``xs``
        (zero-length sequences have no rows and are dropped). ``[]`` for empty ``xs``.

    Raises:
        TypeError: ``xs`` not a sequence, or mixed dtypes.
        ValueError: 0-d items, differing trailing shapes, or lengths not sorted in
            decreasing order.
    """
    xs = _sequence_arg('transpose_sequence', xs)
    if not xs:
        return []
    arrays = [_array_of('transpose_sequence', x) for x in xs]
    _common_dtype('transpose_sequence', arrays)
    tail = None
    lengths = []
    for i, a in enumerate(arrays):
        if a.ndim == 0:
            raise ValueError('transpose_sequence: item %d is 0-d; each must have shape '
                             '(T, ...)' % i)
        if tail is None:
            tail = a.shape[1:]
        elif a.shape[1:] != tail:
            raise ValueError('transpose_sequence: item %d has shape %s but item 0 has shape '
                             '%s; all must agree after the first axis'
                             % (i, a.shape, arrays[0].shape))
        lengths.append(a.shape[0])
    for i in range(1, len(lengths)):
        if lengths[i] > lengths[i - 1]:
            raise ValueError('transpose_sequence: xs must be sorted by decreasing length, got '
                             'lengths %s; sort them (e.g. order = sorted(range(len(xs)), '
                             'key=lambda i: -len(xs[i]))) and undo the permutation afterwards'
                             % (lengths,))
    if lengths[0] == 0:
        return []
    return list(TransposeSequence(lengths).apply(xs))


# -- flip / pad / select_item ------------------------------------------------------------------

class Flip(FunctionNode):
    def __init__(self, axes):
        self.axes = axes

    def forward(self, inputs):
        xp = backend.get_array_module(inputs[0])
        return (xp.flip(inputs[0], axis=self.axes),)

    def backward(self, indexes, grad_outputs):
        xp = backend.get_array_module(grad_outputs[0])
        return (xp.flip(grad_outputs[0], axis=self.axes),)


def flip(x, axis=None):
    """Reverse the order of the elements along ``axis``: ``y[..., i, ...] = x[..., n-1-i, ...]``.

    The gradient is ``gy`` flipped back the same way.

    Args:
        x (Variable or array): any shape and dtype.
        axis (int, tuple of ints or None): the axis or axes to reverse (negatives allowed);
            None reverses every axis, as ``numpy.flip``.

    Returns:
        Variable of ``x``'s shape and dtype (a view of ``x``).

    Raises:
        TypeError: an axis that is not an int. ValueError: an axis out of range or repeated,
            or any axis of a 0-d input.
    """
    a = _array_of('flip', x)
    if axis is None:
        axes = tuple(range(a.ndim))
    else:
        raw = axis if isinstance(axis, (tuple, list)) else (axis,)
        axes = tuple(_axis('flip', ax, a.ndim) for ax in raw)
        if len(set(axes)) != len(axes):
            raise ValueError('flip: axis %r repeats an axis' % (axis,))
    return Flip(axes).apply((x,))[0]


class Pad(FunctionNode):
    def __init__(self, width, value):
        self.width = width
        self.value = value

    def forward(self, inputs):
        x = inputs[0]
        xp = backend.get_array_module(x)
        shape = tuple(s + b + e for s, (b, e) in zip(x.shape, self.width))
        y = xp.full(shape, self.value, dtype=x.dtype)
        y[self._inner(x.shape)] = x
        return (y,)

    def _inner(self, shape):
        return tuple(slice(b, b + s) for s, (b, _) in zip(shape, self.width))

    def backward(self, indexes, grad_outputs):
        gy = grad_outputs[0]
        xp = backend.get_array_module(gy)
        return (xp.ascontiguousarray(gy[self._inner(self.inputs[0].shape)]),)


def _pad_width(a, pad_width):
    """NumPy's ``pad_width`` forms -> ``ndim`` pairs of non-negative Python ints."""
    try:
        w = numpy.asarray(pad_width)
        if w.dtype.kind not in 'iu' or w.ndim > 2:
            raise ValueError
        w = numpy.broadcast_to(w, (a.ndim, 2))
    except ValueError:
        raise ValueError('pad: pad_width %r does not fit a %d-d input of shape %s; give an int, '
                         '(before, after), or one (before, after) pair per axis (NumPy forms)'
                         % (pad_width, a.ndim, a.shape)) from None
    if (w < 0).any():
        raise ValueError('pad: pad_width %r has negative entries; widths must be >= 0 (slice '
                         'with F.get_item to crop)' % (pad_width,))
    return tuple((int(b), int(e)) for b, e in w)


def pad(x, pad_width, mode='constant', constant_values=0):
    """Pad ``x`` with a constant, as ``numpy.pad(x, pad_width, 'constant', constant_values=c)``.

    ``y`` has shape ``x.shape[i] + before_i + after_i`` on each axis; the gradient is ``gy``
    cropped back to ``x``'s region (the padding is a constant and gets none).

    Args:
        x (Variable or array): any shape and dtype (at least 1-d).
        pad_width: an int (every side), ``(before, after)`` (every axis), or a sequence of
            ``x.ndim`` pairs, all non-negative ints.
        mode (str): only ``'constant'`` (other NumPy modes would need other gradients).
        constant_values (number): the fill value (a scalar).

    Returns:
        Variable of the padded shape, dtype of ``x``.

    Raises:
        ValueError: an unsupported mode, a 0-d input, a pad_width of the wrong form or with
            negative entries. TypeError: a non-scalar ``constant_values``.
    """
    a = _array_of('pad', x)
    if mode != 'constant':
        raise ValueError("pad: only mode='constant' is supported, got %r" % (mode,))
    if a.ndim == 0:
        raise ValueError('pad: cannot pad a 0-d input; reshape it to (1,) first')
    if not isinstance(constant_values, numbers.Number) or isinstance(constant_values, bool):
        raise TypeError('pad: constant_values must be one number, got %r' % (constant_values,))
    return Pad(_pad_width(a, pad_width), constant_values).apply((x,))[0]


class SelectItem(FunctionNode):
    def forward(self, inputs):
        x, t = inputs
        xp = backend.get_array_module(x)
        self.in_shape = x.shape
        self.rows = xp.arange(x.shape[0])
        return (x[self.rows, t],)

    def backward(self, indexes, grad_outputs):
        gy = grad_outputs[0]
        xp = backend.get_array_module(gy)
        gx = xp.zeros(self.in_shape, dtype=gy.dtype)
        gx[self.rows, self.inputs[1].array] = gy       # one position per row: no repeats
        return gx, None


def select_item(x, t):
    """Pick one element per row: ``y[b] = x[b, t[b]]``.

    Args:
        x (Variable or array): ``(B, C)`` array of any float dtype.
        t (array or Variable): ``(B,)`` integer indices in ``[-C, C)`` (negatives count from
            the end, as in NumPy). Not differentiable.

    Returns:
        Variable ``(B,)`` of ``x``'s dtype; the gradient puts ``gy[b]`` at ``(b, t[b])``.

    Raises:
        TypeError: ``t`` not integer. ValueError: ``x`` not 2-d or ``t`` not ``(B,)``.
        IndexError: an index outside ``[-C, C)`` (the message names it and C).
    """
    a = _array_of('select_item', x)
    ta = _array_of('select_item', t)
    if a.ndim != 2:
        raise ValueError('select_item: x must be 2-d (B, C), got shape %s' % (a.shape,))
    if ta.dtype.kind not in 'iu':
        raise TypeError('select_item: t must be an integer array, got dtype %s; cast with '
                        '.astype(numpy.int32)' % ta.dtype)
    if ta.shape != (a.shape[0],):
        raise ValueError('select_item: t must have shape (B,) = (%d,) for x of shape %s, got %s'
                         % (a.shape[0], a.shape, ta.shape))
    C = a.shape[1]
    if ta.size:
        lo, hi = int(ta.min()), int(ta.max())
        if lo < -C or hi >= C:
            bad = lo if lo < -C else hi
            raise IndexError('select_item: index %d is out of range for x of shape %s (C = %d, '
                             'valid: %d .. %d)' % (bad, a.shape, C, -C, C - 1))
    return SelectItem().apply((x, t))[0]
