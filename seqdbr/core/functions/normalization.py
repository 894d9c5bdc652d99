"""Batch normalization (Ioffe & Szegedy 2015): ``batch_normalization`` (statistics of the
batch, training) and ``fixed_batch_normalization`` (given statistics, inference).

For ``x`` of shape ``(B, C, ...)`` and per-channel ``gamma``, ``beta`` of shape ``(C,)``
(more generally ``x.shape[1:1 + gamma.ndim]``), the statistics are taken over the batch
axis and every axis after the channel axes (all images positions for a convolution's
output, Sec. 3.2 of the paper). With ``m`` the number of values per channel:

    mu = mean(x),   var = mean((x - mu)^2)                  (biased, Algorithm 1)
    xhat = (x - mu) / sqrt(var + eps)
    y = gamma xhat + beta

Backward (from the paper's Sec. 3, simplified):

    gbeta = sum(gy),   ggamma = sum(gy xhat)
    gx = gamma / sqrt(var + eps) (gy - (gbeta + xhat ggamma) / m)

The running statistics used at test time are exponential moving averages updated in
place during training (Algorithm 2 uses the unbiased variance):

    running_mean <- decay running_mean + (1 - decay) mu
    running_var  <- decay running_var + (1 - decay) var m / (m - 1)
"""
import numbers

from seqdbr.core import backend
from seqdbr.core.function_node import FunctionNode
from seqdbr.core.functions.activation import _float_array
from seqdbr.core.variable import Variable

__all__ = ['batch_normalization', 'fixed_batch_normalization']


def _bshape(x, gamma):
    """Shape that broadcasts a ``gamma``-shaped array against ``x``."""
    return (1,) + gamma.shape + (1,) * (x.ndim - 1 - gamma.ndim)


def _axes(x, gamma):
    return (0,) + tuple(range(1 + gamma.ndim, x.ndim))


class BatchNormalizationFunction(FunctionNode):
    def __init__(self, eps, running_mean, running_var, decay):
        self.eps = eps
        self.running_mean = running_mean
        self.running_var = running_var
        self.decay = decay

    def forward(self, inputs):
        x, gamma, beta = inputs
        xp = backend.get_array_module(x)
        axes = _axes(x, gamma)
        bs = _bshape(x, gamma)
        mean = x.mean(axis=axes)
        xc = x - mean.reshape(bs)
        var = (xc * xc).mean(axis=axes)
        inv_std = 1 / xp.sqrt(var + x.dtype.type(self.eps))
        xhat = xc
        xhat *= inv_std.reshape(bs)
        self.xhat, self.inv_std = xhat, inv_std
        y = xhat * gamma.reshape(bs)
        y += beta.reshape(bs)
        if self.running_mean is not None:
            m = x.size // gamma.size
            d = self.decay
            self.running_mean *= d
            self.running_mean += (1 - d) * mean
            self.running_var *= d
            self.running_var += (1 - d) * (m / max(m - 1, 1)) * var
        return (y,)

    def backward(self, indexes, grad_outputs):
        gy = grad_outputs[0]
        gamma = self.inputs[1].array
        xhat = self.xhat
        axes = _axes(gy, gamma)
        bs = _bshape(gy, gamma)
        gbeta = gy.sum(axis=axes)
        ggamma = (gy * xhat).sum(axis=axes)
        gx = None
        if 0 in indexes:
            m = gy.dtype.type(gy.size // gamma.size)
            gx = gy - (gbeta / m).reshape(bs) - xhat * (ggamma / m).reshape(bs)
            gx *= (gamma * self.inv_std).reshape(bs)
        return gx, ggamma, gbeta


class FixedBatchNormalizationFunction(FunctionNode):
    def __init__(self, eps):
        self.eps = eps

    def forward(self, inputs):
        x, gamma, beta, mean, var = inputs
        xp = backend.get_array_module(x)
        bs = _bshape(x, gamma)
        self.inv_std = inv_std = 1 / xp.sqrt(var + x.dtype.type(self.eps))
        scale = gamma * inv_std
        y = x * scale.reshape(bs)
        y += (beta - mean * scale).reshape(bs)
        return (y,)

    def backward(self, indexes, grad_outputs):
        gy = grad_outputs[0]
        x, gamma, _, mean, _ = [v.array for v in self.inputs]
        axes = _axes(x, gamma)
        bs = _bshape(x, gamma)
        inv_std = self.inv_std
        xhat = (x - mean.reshape(bs)) * inv_std.reshape(bs)
        gbeta = gy.sum(axis=axes)
        ggamma = (gy * xhat).sum(axis=axes)
        gx = gy * (gamma * inv_std).reshape(bs) if 0 in indexes else None
        gmean = -gamma * inv_std * gbeta
        gvar = -0.5 * gamma * inv_std * inv_std * ggamma
        return gx, ggamma, gbeta, gmean, gvar


def _check(fname, x, gamma, beta, stats):
    xa = _float_array(x, fname, 'x')
    ga = _float_array(gamma, fname, 'gamma')
    ba = _float_array(beta, fname, 'beta')
    if xa.ndim < 2 or ga.ndim < 1 or xa.shape[1:1 + ga.ndim] != ga.shape:
        raise ValueError('%s: gamma of shape %s must match the channel axes x.shape[1:%d] of '
                         'x with shape %s (x is (B, C, ...) and gamma (C,)); build the layer '
                         'with size %s' % (fname, ga.shape, 1 + ga.ndim, xa.shape,
                                           xa.shape[1] if xa.ndim >= 2 else '?'))
    if ga.dtype != xa.dtype:
        raise TypeError('%s: gamma has dtype %s but x has dtype %s; cast one of them'
                        % (fname, ga.dtype, xa.dtype))
    for name, a in (('beta', ba),) + stats:
        if a is None:
            continue
        if a.shape != ga.shape:
            raise ValueError('%s: %s has shape %s but gamma has shape %s; they must match'
                             % (fname, name, a.shape, ga.shape))
        if a.dtype != xa.dtype:
            raise TypeError('%s: %s has dtype %s but x has dtype %s; cast one of them'
                            % (fname, name, a.dtype, xa.dtype))
    return xa, ga


def _check_eps(fname, eps):
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps > 0:
        raise ValueError('%s: eps must be a positive number, got %r' % (fname, eps))
    return float(eps)


def batch_normalization(x, gamma, beta, eps=2e-5, running_mean=None, running_var=None,
                        decay=0.9):
    """Batch normalization with the statistics of this batch (training mode).

    Args:
        x (Variable or array): float ``(B, C, ...)``, e.g. (B, C) after a linear layer,
            (B, C, H, W) after a convolution or (B, C, T); ``B * prod(spatial) >= 1``.
        gamma, beta (Variable or array): scale and shift, shape ``(C,)`` (or
            ``x.shape[1:1 + gamma.ndim]``), dtype of ``x``.
        eps (float): added to the variance (default 2e-5, Chainer's).
        running_mean, running_var (array or None): if given (both, plain arrays of gamma's
            shape and x's dtype), updated IN PLACE with the moving averages in the module
            docstring; they are not differentiated.
        decay (float): the moving averages' decay in ``[0, 1]``.

    Returns:
        Variable of ``x``'s shape and dtype.

    Raises:
        TypeError: non-float arrays or differing dtypes.
        ValueError: shapes that do not match (named), a batch with no values per channel,
            bad ``eps``/``decay``, only one of the running statistics given.
    """
    fname = 'batch_normalization'
    rm = running_mean.array if isinstance(running_mean, Variable) else running_mean
    rv = running_var.array if isinstance(running_var, Variable) else running_var
    xa, ga = _check(fname, x, gamma, beta, (('running_mean', rm), ('running_var', rv)))
    if (rm is None) != (rv is None):
        raise ValueError('%s: pass both running_mean and running_var, or neither' % fname)
    if xa.size == 0:
        raise ValueError('%s: x of shape %s has no values to take statistics over; use '
                         'fixed_batch_normalization for an empty batch' % (fname, xa.shape))
    eps = _check_eps(fname, eps)
    if isinstance(decay, bool) or not isinstance(decay, numbers.Real) or not 0 <= decay <= 1:
        raise ValueError('%s: decay must be a number in [0, 1], got %r' % (fname, decay))
    return BatchNormalizationFunction(eps, rm, rv, float(decay)).apply((x, gamma, beta))[0]


def fixed_batch_normalization(x, gamma, beta, mean, var, eps=2e-5):
    """Batch normalization with given statistics (inference mode):
    ``y = gamma (x - mean) / sqrt(var + eps) + beta``.

    Args:
        x (Variable or array): float ``(B, C, ...)``; ``B`` may be 0.
        gamma, beta, mean, var (Variable or array): shape ``(C,)`` (see
            :func:`batch_normalization`), dtype of ``x``; all five are differentiable.
        eps (float): added to the variance.

    Returns:
        Variable of ``x``'s shape and dtype.

    Raises:
        TypeError, ValueError: as :func:`batch_normalization`.
    """
    fname = 'fixed_batch_normalization'
    _check(fname, x, gamma, beta, (('mean', _float_array(mean, fname, 'mean')),
                                   ('var', _float_array(var, fname, 'var'))))
    eps = _check_eps(fname, eps)
    return FixedBatchNormalizationFunction(eps).apply((x, gamma, beta, mean, var))[0]
