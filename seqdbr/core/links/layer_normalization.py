"""``LayerNormalization``: learned scale and shift around :func:`F.layer_normalization`."""
import numbers

import numpy

from seqdbr.core import initializers
from seqdbr.core.functions.layer_normalization import layer_normalization
from seqdbr.core.link import Link
from seqdbr.core.variable import Parameter

__all__ = ['LayerNormalization']


class LayerNormalization(Link):
    """Layer normalization with a learned gain and bias (Ba et al. 2016, eq. 4):
    ``y = gamma * (x - mean) / sqrt(var + eps) + beta`` over the last axis of ``x``.

    Args:
        size (int or None): the number of features ``N`` (the last axis); None: taken from
            the first input.
        eps (float): added to the variance, > 0 (default 1e-5, as PyTorch and Chainer).
        initial_gamma: initializer spec for ``gamma`` (default 1).
        initial_beta: initializer spec for ``beta`` (default 0).

    Parameters:
        gamma, beta: ``(N,)``, float32 unless the initializer says otherwise.

    Call:
        ``x`` float ``(..., N)`` -> Variable of the same shape (see
        :func:`seqdbr.functions.layer_normalization`).

    Raises:
        ValueError: a non-positive ``size`` or ``eps``; at call time, an input whose last
            axis is not ``N``.
    """

    def __init__(self, size=None, eps=1e-5, initial_gamma=None, initial_beta=None):
        super().__init__()
        if size is not None and (isinstance(size, bool) or
                                 not isinstance(size, (int, numpy.integer)) or size <= 0):
            raise ValueError('LayerNormalization: size must be a positive int or None (inferred '
                             'from the first input), got %r' % (size,))
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps > 0:
            raise ValueError('LayerNormalization: eps must be a number > 0, got %r' % (eps,))
        self.eps = float(eps)
        shape = None if size is None else (int(size),)
        with self.init_scope():
            self.gamma = Parameter(initializers.get_initializer(
                1.0 if initial_gamma is None else initial_gamma), shape)
            self.beta = Parameter(initializers.get_initializer(
                0.0 if initial_beta is None else initial_beta), shape)

    def forward(self, x):
        if self.gamma.array is None:
            n = x.shape[-1] if getattr(x, 'ndim', 0) else None
            if not n:
                raise ValueError('LayerNormalization: cannot infer size from an input of shape '
                                 '%s (needs a non-empty last axis)' % (getattr(x, 'shape', None),))
            self.gamma.initialize((n,), xp=self.xp)
            self.beta.initialize((n,), xp=self.xp)
        N = self.gamma.array.shape[0]
        if getattr(x, 'ndim', 0) and x.shape[-1] != N:
            raise ValueError('LayerNormalization: the input of shape %s has %d features on its '
                             'last axis but this layer normalizes size=%d'
                             % (x.shape, x.shape[-1], N))
        return layer_normalization(x, self.gamma, self.beta, self.eps)

    def repr_args(self):
        n = None if self.gamma.array is None else self.gamma.array.shape[0]
        return 'size=%s, eps=%g' % (n, self.eps)
