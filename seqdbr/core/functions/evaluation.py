"""Evaluation metrics (not differentiable; they record no graph)."""
import numbers

import numpy

from seqdbr.core import backend
from seqdbr.core.functions.activation import _float_array, _input_array
from seqdbr.core.variable import Variable

__all__ = ['accuracy']


def accuracy(y, t, ignore_label=None):
    """Fraction of positions whose arg-max class (axis 1 of ``y``) equals the label.

    Args:
        y (Variable or array): float scores of shape (B, C) or (B, C, d1, ...).
        t (Variable or array): integer labels of shape (B,) or (B, d1, ...). Labels outside
            ``[0, C)`` simply never match.
        ignore_label (int or None): positions whose label equals it are left out of both the
            numerator and the denominator. None: every position counts.

    Returns:
        Variable: 0-d, dtype of ``y``, ``requires_grad=False`` and no creator. 0.0 (not NaN,
        no warning) when there is no counted position (empty batch or all ignored).

    Raises:
        TypeError: ``y`` not floating point, ``t`` not integer, ignore_label not an int.
        ValueError: ``y.ndim < 2`` or ``t.shape != (B,) + y.shape[2:]``.
    """
    ya = _float_array(y, 'accuracy', 'y')
    ta = _input_array(t, 'accuracy', 't')
    if ta.dtype.kind not in 'iu':
        raise TypeError('accuracy: labels t must be an integer array, got dtype %s with shape '
                        '%s; convert with t.astype(numpy.int32)' % (ta.dtype, ta.shape))
    if ya.ndim < 2:
        raise ValueError('accuracy: y must have shape (B, C) or (B, C, ...) with classes on '
                         'axis 1, got shape %s' % (ya.shape,))
    expected = (ya.shape[0],) + ya.shape[2:]
    if ta.shape != expected:
        raise ValueError('accuracy: t must have shape %s for y of shape %s (y without the class '
                         'axis 1), got %s' % (expected, ya.shape, ta.shape))
    if ignore_label is not None and (isinstance(ignore_label, bool)
                                     or not isinstance(ignore_label, numbers.Integral)):
        raise TypeError('accuracy: ignore_label must be an int or None, got %r'
                        % (ignore_label,))
    xp = backend.get_array_module(ya)
    dtype = ya.dtype
    if ya.shape[1] == 0 or ta.size == 0:
        return Variable(xp.zeros((), dtype=dtype), requires_grad=False)
    hit = ya.argmax(axis=1) == ta
    if ignore_label is None:
        acc = xp.count_nonzero(hit) / hit.size if xp is numpy else hit.mean(dtype=dtype)
        return Variable(xp.asarray(acc, dtype=dtype), requires_grad=False)
    keep = ta != int(ignore_label)
    hit &= keep
    correct = xp.count_nonzero(hit)
    total = xp.count_nonzero(keep)
    if xp is numpy:
        acc = correct / total if total else 0.0
    else:
        acc = correct.astype(dtype) / xp.maximum(total, 1).astype(dtype)
    return Variable(xp.asarray(acc, dtype=dtype), requires_grad=False)
