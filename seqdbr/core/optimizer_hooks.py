"""Optimizer hooks: gradient transformations run before the update rules.

Register with ``opt.add_hook(hook)``; every update runs the hooks in registration
order, after ``t`` is incremented and before any rule. Each hook rewrites
``param.grad`` in place (a read-only NumPy gradient is replaced by a copy first) for
every parameter of the target that has a gradient;
parameters whose ``grad`` is None are skipped (they are not updated either, see
``seqdbr.core.optimizer``).

    opt.add_hook(hooks.GradientClipping(5.0))   # clip the global norm first,
    opt.add_hook(hooks.WeightDecay(1e-4))       # then add the L2 term
"""
import math
import numbers

import numpy

from seqdbr.core import backend

__all__ = ['WeightDecay', 'Lasso', 'GradientClipping', 'GradientHardClipping']


def _check_rate(name, value):
    if not isinstance(value, numbers.Real) or not value >= 0:
        raise ValueError('%s must be a real number >= 0, got %r' % (name, value))
    return value


def _params_with_grad(optimizer):
    return [p for p in optimizer.target.params() if p.grad is not None]


def _writable_grad(param):
    """``param.grad``, replaced by a private copy first when it is a read-only NumPy view
    (e.g. a broadcast array assigned by hand), so in-place edits are always possible."""
    grad = param.grad
    if type(grad) is numpy.ndarray and not grad.flags.writeable:
        grad = param.grad = grad.copy()
    return grad


class _RateHook:
    """Shared body of the regularization hooks (WeightDecay, Lasso): validate ``rate``, then
    for every parameter with a gradient add ``self._add_term(grad, param.array, rate)`` to
    its (writable) gradient in place."""
    timing = 'pre'

    def __init__(self, rate):
        self.rate = _check_rate('rate', rate)

    def __call__(self, optimizer):
        rate = self.rate
        for param in _params_with_grad(optimizer):
            self._add_term(_writable_grad(param), param.array, rate)


class WeightDecay(_RateHook):
    """L2 regularization (weight decay folded into the gradient).

    For each parameter with a gradient::

        g <- g + rate * theta

    i.e. the gradient of ``rate / 2 * ||theta||^2`` is added to the loss gradient. (With
    adaptive methods this decay is scaled by the adaptive denominator; for decoupled decay
    use ``Adam(weight_decay_rate=...)``.)

    Args:
        rate (float): coefficient (>= 0).
    """
    name = 'WeightDecay'

    def _add_term(self, grad, array, rate):
        grad += backend.get_array_module(grad).multiply(array, rate)

    def __repr__(self):
        return 'WeightDecay(rate=%r)' % self.rate


class Lasso(_RateHook):
    """L1 regularization folded into the gradient.

    For each parameter with a gradient::

        g <- g + rate * sign(theta)

    (the subgradient of ``rate * ||theta||_1``, taking ``sign(0) = 0``).

    Args:
        rate (float): coefficient (>= 0).
    """
    name = 'Lasso'

    def _add_term(self, grad, array, rate):
        tmp = backend.get_array_module(grad).sign(array)
        tmp *= rate
        grad += tmp

    def __repr__(self):
        return 'Lasso(rate=%r)' % self.rate


def _sum_of_squares(grads, min_dtype):
    """``sum over grads of sum(g**2)`` as a Python float, each array's dot product computed in
    at least ``min_dtype`` (float16 is always widened) and the total accumulated in float64
    (host arrays; CuPy gradients go through :func:`_device_sum_of_squares`). Overflow gives
    inf quietly (the caller retries in float64)."""
    total = 0.0
    device_sum = None
    min_size = numpy.dtype(min_dtype).itemsize
    with numpy.errstate(over='ignore', invalid='ignore'):
        for g in grads:
            flat = g.ravel()
            if flat.dtype.itemsize < min_size:
                flat = flat.astype(min_dtype)
            d = flat.dot(flat)
            if type(g) is numpy.ndarray:
                total += float(d)
            else:
                d = d.astype(numpy.float64)
                device_sum = d if device_sum is None else device_sum + d
        if device_sum is not None:
            total += float(device_sum)
    return total


def _device_sum_of_squares(grads):
    """``sum over grads of sum(g**2)`` in float64 as a 0-d device array (no host sync)."""
    total = None
    for g in grads:
        flat = g.ravel().astype(numpy.float64)
        d = flat.dot(flat)
        total = d if total is None else total + d
    return total


def _scaled_norm(grads):
    """The global L2 norm when even float64 squares overflow (norm above ~1.3e154): every
    array is divided by the largest magnitude ``m`` before squaring, ``norm = m * sqrt(sum
    ((g / m)**2))``. NaN or inf entries give a non-finite result."""
    m = 0.0
    for g in grads:
        if g.size:
            mg = float(abs(g).max())
            if not mg <= m:                  # also takes a NaN, which max() would drop
                m = mg
    if not math.isfinite(m) or m == 0.0:
        return m                             # NaN, inf, or all-zero gradients
    total = 0.0
    for g in grads:
        flat = g.ravel().astype(numpy.float64) / m
        total += float(flat.dot(flat))
    return m * math.sqrt(total)


class GradientClipping:
    """Rescale all gradients together when their global L2 norm exceeds ``threshold``.

    With ``norm = sqrt(sum over every parameter with a gradient of sum(g**2))``::

        if norm > threshold:  g <- g * (threshold / norm)   for every such gradient

    The direction of the full gradient is kept (Pascanu, Mikolov & Bengio, "On the
    difficulty of training recurrent neural networks", ICML 2013, Algorithm 1). Parameters
    without a gradient neither contribute to the norm nor are touched. The squared norm of
    each array is accumulated in float64 across parameters (float16 gradients are summed in
    float32). When that float32 sum overflows (a norm above about 1.8e19, with finite
    gradients: the exploding case clipping exists for) it is recomputed in float64, on the
    CPU and the GPU alike, so such gradients are clipped like any others. Only a truly
    non-finite norm (NaN/inf gradients) leaves the gradients unchanged.

    On CuPy the norm, the test and the rescaling all stay on the device (every gradient is
    multiplied by ``min(1, threshold / norm)``, or by 1 when the norm is not finite), so
    clipping costs no host synchronisation.

    Args:
        threshold (float): the largest allowed global norm (> 0).

    Attributes:
        last_norm (float or None): the global norm before clipping at the latest call
            (handy for logging); None before the first call. On CuPy it is kept on the
            device and fetched (one transfer) only when this attribute is read.
    """
    name = 'GradientClipping'
    timing = 'pre'

    def __init__(self, threshold):
        if not isinstance(threshold, numbers.Real) or not threshold > 0:
            raise ValueError('threshold must be a real number > 0, got %r' % (threshold,))
        self.threshold = threshold
        self._last_norm = None

    @property
    def last_norm(self):
        norm = self._last_norm
        if norm is not None and not isinstance(norm, float):
            norm = self._last_norm = backend.fetch_scalars(norm)[0]
        return norm

    def __call__(self, optimizer):
        params = _params_with_grad(optimizer)
        grads = [p.grad for p in params]
        if any(type(g) is not numpy.ndarray for g in grads):
            # CuPy: the squares in float64 on the device, no host sync (a norm above
            # ~1.3e154 is inf there and leaves the gradients unchanged)
            self._clip_on_device(params, _device_sum_of_squares(grads))
            return
        sqnorm = _sum_of_squares(grads, numpy.float32)
        if not math.isfinite(sqnorm):
            # float32 squares overflow once the norm passes ~1.8e19, although the gradients
            # are finite: redo the sum in float64 (rare, so the common path stays cheap). A
            # gradient that really holds NaN/inf stays non-finite.
            sqnorm = _sum_of_squares(grads, numpy.float64)
        norm = math.sqrt(sqnorm) if math.isfinite(sqnorm) else _scaled_norm(grads)
        self._last_norm = norm
        if norm > self.threshold and math.isfinite(norm):
            scale = self.threshold / norm
            for param in params:
                grad = _writable_grad(param)
                grad *= scale

    def _clip_on_device(self, params, sqnorm):
        xp = backend.get_array_module(sqnorm)
        norm = xp.sqrt(sqnorm)
        self._last_norm = norm
        clip = (norm > self.threshold) & xp.isfinite(norm)
        scale = xp.where(clip, self.threshold / xp.maximum(norm, 1e-300), 1.0)
        scales = {}
        for param in params:
            grad = _writable_grad(param)
            s = scales.get(grad.dtype)
            if s is None:
                s = scales[grad.dtype] = scale.astype(grad.dtype)
            grad *= s

    def __repr__(self):
        return 'GradientClipping(threshold=%r)' % self.threshold


class GradientHardClipping:
    """Clip every gradient element into ``[lower, upper]``::

        g <- min(max(g, lower), upper)

    Args:
        lower (float or None): smallest allowed value (None: no lower bound).
        upper (float or None): largest allowed value (None: no upper bound).
    """
    name = 'GradientHardClipping'
    timing = 'pre'

    def __init__(self, lower, upper):
        if lower is None and upper is None:
            raise ValueError('GradientHardClipping needs at least one of lower and upper')
        for label, v in (('lower', lower), ('upper', upper)):
            if v is not None and (not isinstance(v, numbers.Real) or math.isnan(v)):
                raise ValueError('%s must be a real number or None, got %r' % (label, v))
        if lower is not None and upper is not None and lower > upper:
            raise ValueError('lower (%r) must not exceed upper (%r)' % (lower, upper))
        self.lower = lower
        self.upper = upper

    def __call__(self, optimizer):
        lower, upper = self.lower, self.upper
        for param in _params_with_grad(optimizer):
            grad = _writable_grad(param)
            xp = backend.get_array_module(grad)
            if lower is None:
                xp.minimum(grad, upper, out=grad)
            elif upper is None:
                xp.maximum(grad, lower, out=grad)
            else:
                xp.clip(grad, lower, upper, out=grad)

    def __repr__(self):
        return 'GradientHardClipping(lower=%r, upper=%r)' % (self.lower, self.upper)
