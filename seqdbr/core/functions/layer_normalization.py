"""Layer normalization (Ba, Kiros & Hinton 2016, "Layer Normalization", eq. 4): each row is
normalized over its own features, so the result does not depend on the rest of the batch
(unlike batch normalization) and is the same in training and evaluation.

One fused node: the forward keeps the normalized input and the reciprocal standard
deviation; the backward is the closed form

    gx = rstd * (g - mean(g) - xhat * mean(g * xhat)),   g = gy * gamma

with means over the normalized (last) axis.
"""
import numbers

from seqdbr.core import backend
from seqdbr.core.function_node import FunctionNode
from seqdbr.core.functions.activation import _float_array

__all__ = ['layer_normalization']


class LayerNormalization(FunctionNode):
    def __init__(self, eps, has_gamma, has_beta):
        self.eps = eps
        self.has_gamma = has_gamma
        self.has_beta = has_beta

    def forward(self, inputs):
        x = inputs[0]
        xp = backend.get_array_module(x)
        mu = x.mean(axis=-1, keepdims=True)
        xc = x - mu
        var = (xc * xc).mean(axis=-1, keepdims=True)
        var += self.eps
        rstd = xp.sqrt(var, out=var)
        xp.reciprocal(rstd, out=rstd)
        xc *= rstd                                       # xhat
        self.xhat, self.rstd = xc, rstd
        k = 1
        y = xc
        if self.has_gamma:
            y = xc * inputs[k]
            k += 1
        if self.has_beta:
            y = y + inputs[k]
        elif y is xc:
            y = xc.copy()
        return (y,)

    def backward(self, indexes, grad_outputs):
        gy = grad_outputs[0]
        xhat, rstd = self.xhat, self.rstd
        lead = tuple(range(gy.ndim - 1))
        out = [None]
        g = gy
        if self.has_gamma:
            gamma = self.inputs[1].array
            out.append(None if 1 not in indexes else (gy * xhat).sum(axis=lead))
            g = gy * gamma
        if self.has_beta:
            out.append(gy.sum(axis=lead) if len(out) in indexes else None)
        if 0 in indexes:
            n = gy.shape[-1]
            gx = g - g.sum(axis=-1, keepdims=True) / n
            gx -= xhat * ((g * xhat).sum(axis=-1, keepdims=True) / n)
            gx *= rstd
            out[0] = gx
        return tuple(out)


def layer_normalization(x, gamma, beta, eps=1e-5):
    """Layer normalization over the last axis (Ba et al. 2016, eq. 4)::

        mu = mean(x, -1),  sigma^2 = mean((x - mu)^2, -1)
        y = gamma * (x - mu) / sqrt(sigma^2 + eps) + beta

    (the biased variance, as ``torch.nn.functional.layer_norm`` and Chainer).

    Args:
        x (Variable or array): float ``(..., N)``, e.g. ``(B, N)`` or ``(B, T, N)``; each
            vector along the last axis is normalized on its own. ``N >= 1``; leading axes
            may be zero-size.
        gamma (Variable, array or None): scale ``(N,)``, same dtype; None means 1.
        beta (Variable, array or None): shift ``(N,)``, same dtype; None means 0.
        eps (float): added to the variance, > 0.

    Returns:
        Variable of ``x``'s shape and dtype.

    Raises:
        TypeError: non-float inputs, or differing dtypes.
        ValueError: ``x`` 0-d or with ``N = 0``, ``gamma``/``beta`` not of shape ``(N,)``,
            or ``eps <= 0``.
    """
    fname = 'layer_normalization'
    a = _float_array(x, fname, 'x')
    if a.ndim == 0 or a.shape[-1] == 0:
        raise ValueError('%s: x must have a non-empty last (feature) axis, got shape %s'
                         % (fname, a.shape))
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps > 0:
        raise ValueError('%s: eps must be a number > 0, got %r' % (fname, eps))
    N = a.shape[-1]
    inputs = [x]
    for name, v in (('gamma', gamma), ('beta', beta)):
        if v is None:
            continue
        p = _float_array(v, fname, name)
        if p.shape != (N,):
            raise ValueError('%s: %s must have shape (N,) = (%d,) for x of shape %s (N = the '
                             'last axis), got %s' % (fname, name, N, a.shape, p.shape))
        if p.dtype != a.dtype:
            raise TypeError('%s: %s has dtype %s but x has %s; use one dtype'
                            % (fname, name, p.dtype, a.dtype))
        inputs.append(v)
    node = LayerNormalization(float(eps), gamma is not None, beta is not None)
    return node.apply(tuple(inputs))[0]
