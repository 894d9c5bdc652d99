"""Attention: ``scaled_dot_product_attention``, ``masked_softmax`` and ``length_mask``.

Masks are boolean arrays with **True where attention is allowed** (as in PyTorch's boolean
``attn_mask``). A mask has exactly as many axes as the scores it masks; each of its axes has
the scores' length or 1 (broadcast), e.g. ``(B, 1, Tk)`` for a padding mask of the keys
shared by every query, ``(1, Tq, Tk)`` for a causal mask shared by the batch. Fewer axes are
refused, not right-aligned: a ``(B, Tk)`` mask would otherwise be silently misread as
``(Tq, Tk)`` whenever ``B == Tq``.

The fully-masked-row rule: a query whose every key is masked (and a query over zero keys)
gets all-zero weights, so its output is exactly 0 and its gradients are exactly 0, with no
NaN or inf anywhere in the forward or the backward. Masked positions get exactly 0 weight,
so any *finite* values of the masked scores (padding keys) do not change the output.
Non-finite values in masked keys (NaN padding) still reach the backward of ``q`` through a
``0 * NaN`` product: pad with zeros.
"""
import math
import numbers

import numpy

from seqdbr.core import backend
from seqdbr.core.function_node import FunctionNode
from seqdbr.core.functions.activation import _check_axis, _float_array, _input_array
from seqdbr.core.variable import Variable

__all__ = ['scaled_dot_product_attention', 'masked_softmax', 'length_mask']


# -- the masked softmax kernel (arrays only) ----------------------------------------------

def _masked_softmax_array(xp, s, mask, axis):
    """Softmax of ``s`` along ``axis`` over the positions where ``mask`` is True.

    Masked positions get exactly 0; a row with no allowed position gets all zeros. ``mask``
    is None (nothing masked) or a boolean array broadcastable to ``s`` (same ndim).
    """
    if s.shape[axis] == 0:
        return xp.zeros_like(s)
    if mask is None:
        p = s - s.max(axis=axis, keepdims=True)
        xp.exp(p, out=p)
        p /= p.sum(axis=axis, keepdims=True)
        return p
    neg = xp.where(mask, s, s.dtype.type(-numpy.inf))
    m = neg.max(axis=axis, keepdims=True)
    m[~xp.isfinite(m)] = 0           # fully masked rows: -inf - 0 below, exp gives 0
    neg -= m
    p = xp.exp(neg, out=neg)
    d = p.sum(axis=axis, keepdims=True)
    d[d == 0] = 1                    # fully masked rows stay all-zero, no 0/0
    p /= d
    return p


def _softmax_backward(p, gp, axis):
    """``gs = p * (gp - sum(p * gp))`` along ``axis``: the softmax's vector-Jacobian
    product. Masked entries (``p == 0``) and fully masked rows get exactly 0."""
    gs = p * gp
    gs -= p * gs.sum(axis=axis, keepdims=True)
    return gs


# -- validation ---------------------------------------------------------------------------

def _mask_array(fname, mask, target_shape, what):
    """The boolean array of ``mask`` after checking it broadcasts to ``target_shape``."""
    m = _input_array(mask, fname, 'mask')
    if m.dtype != numpy.bool_:
        raise TypeError('%s: mask must be a boolean array (True = may attend), got dtype %s; '
                        'build it with a comparison, e.g. positions < lengths[:, None]'
                        % (fname, m.dtype))
    n = len(target_shape)
    ok = m.ndim == n and all(a == b or a == 1 for a, b in zip(m.shape, target_shape))
    if not ok:
        raise ValueError('%s: mask of shape %s does not fit the %s of shape %s: it needs %d '
                         'axes, each of that length or 1 (e.g. a key-padding mask of shape '
                         '(B, Tk) becomes mask[:, None, :])'
                         % (fname, m.shape, what, target_shape, n))
    return m


def _check_scale(fname, scale, D):
    if scale is None:
        return 1.0 / math.sqrt(D) if D > 0 else 1.0
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or \
            not math.isfinite(scale):
        raise TypeError('%s: scale must be a finite real number or None (1/sqrt(D)), got %r'
                        % (fname, scale))
    return float(scale)


# -- nodes --------------------------------------------------------------------------------

class ScaledDotProductAttention(FunctionNode):
    """``y = softmax_mask(scale * q k^T) v``; outputs ``(y, p)``."""

    def __init__(self, scale, mask):
        self.scale = scale
        self.mask = mask

    def forward(self, inputs):
        q, k, v = inputs
        xp = backend.get_array_module(q)
        s = xp.matmul(q, xp.swapaxes(k, -1, -2))
        if self.scale != 1.0:
            s *= s.dtype.type(self.scale)
        p = _masked_softmax_array(xp, s, self.mask, -1)
        self.p = p
        self.retain_inputs((0, 1, 2))
        return xp.matmul(p, v), p

    def backward(self, indexes, grad_outputs):
        q, k, v = self.inputs[0].array, self.inputs[1].array, self.inputs[2].array
        gy, gw = grad_outputs
        p = self.p
        xp = backend.get_array_module(p)
        if gy is None:
            gy = xp.zeros(p.shape[:-1] + (v.shape[-1],), dtype=p.dtype)
        gq = gk = gv = None
        if 2 in indexes:
            gv = xp.matmul(xp.swapaxes(p, -1, -2), gy)
        gp = xp.matmul(gy, xp.swapaxes(v, -1, -2))
        if gw is not None:
            gp += gw
        gs = _softmax_backward(p, gp, -1)
        if self.scale != 1.0:
            gs *= gs.dtype.type(self.scale)
        if 0 in indexes:
            gq = xp.matmul(gs, k)
        if 1 in indexes:
            gk = xp.matmul(xp.swapaxes(gs, -1, -2), q)
        return gq, gk, gv


class MaskedSoftmax(FunctionNode):
    def __init__(self, mask, axis):
        self.mask = mask
        self.axis = axis

    def forward(self, inputs):
        x = inputs[0]
        xp = backend.get_array_module(x)
        self.retain_outputs((0,))
        return (_masked_softmax_array(xp, x, self.mask, self.axis),)

    def backward(self, indexes, grad_outputs):
        return (_softmax_backward(self._out_arrays[0], grad_outputs[0], self.axis),)


# -- public functions ---------------------------------------------------------------------

def scaled_dot_product_attention(q, k, v, mask=None, scale=None, return_weights=False):
    """Scaled dot-product attention (Vaswani et al. 2017, eq. 1), with a boolean mask.

    ``y = P v`` with ``P = softmax(scale * q k^T)`` over the keys (last axis), where masked
    scores get exactly 0 weight::

        s[..., i, j] = scale * sum_d q[..., i, d] k[..., j, d]
        P[..., i, j] = mask_ij exp(s_ij) / sum_j' mask_ij' exp(s_ij')   (0 when no j' is allowed)
        y[..., i, :] = sum_j P[..., i, j] v[..., j, :]

    A query whose every key is masked (or a query over ``Tk = 0`` keys) gets a zero output
    and zero gradients, with no NaN in the forward or the backward (see the module notes).
    One function node; ``P`` is kept for the backward (``O(... Tq Tk)`` memory).

    Args:
        q (Variable or array): queries ``(..., Tq, D)``, float16/32/64, at least 2-d.
        k (Variable or array): keys ``(..., Tk, D)``; same leading axes and dtype as ``q``.
        v (Variable or array): values ``(..., Tk, Dv)``; same leading axes and dtype.
        mask (array or None): boolean, True where query ``i`` may attend to key ``j``; same
            number of axes as the scores ``(..., Tq, Tk)``, each axis of their length or 1
            (e.g. ``(B, 1, Tk)`` for key padding). None attends everywhere.
        scale (float or None): the score scale; None is ``1 / sqrt(D)`` (1 when ``D = 0``);
            Luong's "dot" attention is ``scale=1``.
        return_weights (bool): also return ``P``.

    Returns:
        Variable ``y`` ``(..., Tq, Dv)`` of the inputs' dtype; with ``return_weights``,
        ``(y, P)`` with ``P`` ``(..., Tq, Tk)`` (differentiable too).

    Raises:
        TypeError: non-float or mixed dtypes, a non-boolean mask, a bad ``scale``.
        ValueError: inputs with fewer than 2 axes, leading axes that differ, ``q`` and ``k``
            with different ``D``, ``k`` and ``v`` with different ``Tk``, a mask that does not
            fit the scores' shape (each message names the shapes).
    """
    fname = 'scaled_dot_product_attention'
    qa = _float_array(q, fname, 'q')
    ka = _float_array(k, fname, 'k')
    va = _float_array(v, fname, 'v')
    if qa.dtype != ka.dtype or qa.dtype != va.dtype:
        raise TypeError('%s: q, k and v must share one dtype, got %s, %s and %s; cast them '
                        '(e.g. .astype(numpy.float32))' % (fname, qa.dtype, ka.dtype, va.dtype))
    if qa.ndim < 2 or ka.ndim != qa.ndim or va.ndim != qa.ndim:
        raise ValueError('%s: q, k and v must have the same number (>= 2) of axes, shaped '
                         '(..., Tq, D), (..., Tk, D) and (..., Tk, Dv); got %s, %s and %s'
                         % (fname, qa.shape, ka.shape, va.shape))
    if qa.shape[:-2] != ka.shape[:-2] or qa.shape[:-2] != va.shape[:-2]:
        raise ValueError('%s: the leading (batch) axes of q, k and v must be equal, got shapes '
                         '%s, %s and %s' % (fname, qa.shape, ka.shape, va.shape))
    if qa.shape[-1] != ka.shape[-1]:
        raise ValueError('%s: q has D=%d features but k has %d (shapes %s and %s); queries '
                         'and keys must have the same last axis (project one of them)'
                         % (fname, qa.shape[-1], ka.shape[-1], qa.shape, ka.shape))
    if ka.shape[-2] != va.shape[-2]:
        raise ValueError('%s: k has Tk=%d keys but v has %d values (shapes %s and %s); they '
                         'must pair up' % (fname, ka.shape[-2], va.shape[-2], ka.shape, va.shape))
    scale = _check_scale(fname, scale, qa.shape[-1])
    score_shape = qa.shape[:-1] + (ka.shape[-2],)
    m = None if mask is None else _mask_array(fname, mask, score_shape, 'scores (..., Tq, Tk)')
    y, p = ScaledDotProductAttention(scale, m).apply((q, k, v))
    return (y, p) if return_weights else y


def masked_softmax(x, mask=None, axis=-1):
    """Softmax along ``axis`` restricted to the positions where ``mask`` is True.

    ``y_j = mask_j exp(x_j) / sum_j' mask_j' exp(x_j')``, computed stably (maximum of the
    allowed entries subtracted first). Masked positions are exactly 0; a row with no allowed
    position is all zeros with a zero gradient (no NaN). Used for Bahdanau-style/concat
    attention scores (Luong et al. 2015, eq. 7) that are not dot products.

    Args:
        x (Variable or array): float scores, at least 1-d.
        mask (array or None): boolean, same number of axes as ``x``, each axis of ``x``'s
            length or 1; True = allowed. None is a plain softmax.
        axis (int): the normalised axis.

    Returns:
        Variable of ``x``'s shape and dtype.

    Raises:
        TypeError: non-float ``x``, non-boolean mask. ValueError: bad axis or mask shape.
    """
    a = _float_array(x, 'masked_softmax')
    axis = _check_axis('masked_softmax', axis, a.ndim)
    m = None if mask is None else _mask_array('masked_softmax', mask, a.shape, 'input')
    return MaskedSoftmax(m, axis).apply((x,))[0]


def length_mask(lengths, max_length=None, xp=None):
    """Boolean ``(B, max_length)`` mask, True at positions ``t < lengths[b]``.

    Args:
        lengths (sequence of int or 1-d integer array): each in ``[0, max_length]``.
        max_length (int or None): the padded length; None is ``max(lengths)`` (0 if empty).
        xp: numpy (default) or cupy, the module of the result.

    Returns:
        bool array ``(B, max_length)``. For attention over padded keys use
        ``length_mask(...)[:, None, :]`` (shape ``(B, 1, Tk)``).

    Raises:
        ValueError: lengths not 1-d, negative, or longer than ``max_length``.
    """
    if isinstance(lengths, Variable):
        lengths = lengths.array
    lens = numpy.asarray(backend.to_cpu(lengths) if not isinstance(lengths, (list, tuple))
                         else lengths)
    if lens.ndim != 1 or (lens.size and lens.dtype.kind not in 'iu'):
        raise ValueError('length_mask: lengths must be a 1-d sequence of ints, got %r'
                         % (lengths,))
    lens = lens.astype(numpy.int64)
    longest = int(lens.max()) if lens.size else 0
    if max_length is None:
        max_length = longest
    if lens.size and (int(lens.min()) < 0 or longest > max_length):
        raise ValueError('length_mask: lengths must lie in [0, max_length=%d], got %s'
                         % (max_length, lens.tolist()))
    m = numpy.arange(max_length)[None, :] < lens[:, None]
    return m if xp is None or xp is numpy else xp.asarray(m)
