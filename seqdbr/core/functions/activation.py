"""Activations: relu, leaky_relu, tanh, sigmoid, softplus, softmax, log_softmax, gelu, swish.

All of them keep the input's float dtype (float16/32/64) and shape. They run on NumPy
and CuPy arrays alike; sigmoid has a fused CUDA kernel for float32/float64.

Numerical notes:
* ``sigmoid`` is ``1 / (1 + exp(-x))`` with ``x`` clipped to ``+-(log(tiny) + 1)`` of the
  dtype, so ``exp`` never overflows or underflows (no RuntimeWarning or FloatingPointError
  for ``x = +-1000``, even under ``numpy.errstate(all='raise')``) and the result is
  accurate to a few ulps *relative* everywhere (unlike the ``tanh`` form, whose relative
  error in the negative tail is large). Below the clip it returns about ``e * tiny``
  (3.2e-38 in float32, 6e-308 in float64) instead of the true, smaller value; the CuPy
  kernel returns 0 there.
  float16 inputs are computed in float32 and rounded back.
* ``softplus`` uses ``(max(bx, 0) + log1p(exp(-|bx|))) / b``: no overflow for large ``|x|``.
* ``softmax`` / ``log_softmax`` subtract the maximum along the axis first (log-sum-exp).
"""
import numbers

import numpy

from seqdbr.core import backend, cuda_kernels
from seqdbr.core.function_node import FunctionNode
from seqdbr.core.variable import Variable

__all__ = ['relu', 'leaky_relu', 'tanh', 'sigmoid', 'softplus', 'softmax', 'log_softmax',
           'gelu', 'swish']

_ndarray = numpy.ndarray


# -- shared input validation (also used by connection/loss/noise/evaluation) -----------

def _input_array(x, fname, argname='x'):
    """The array behind ``x`` (Variable or array), or TypeError naming what was passed."""
    a = x.array if isinstance(x, Variable) else x
    if backend.is_array(a):
        return a
    if isinstance(a, numpy.generic):   # NumPy scalar: the engine treats it as a 0-d array
        return numpy.asarray(a)
    if a is None and isinstance(x, Variable):
        raise TypeError('%s: %s is an uninitialized Parameter (no array yet); initialize it '
                        'first (param.initialize(shape))' % (fname, argname))
    raise TypeError('%s: %s must be a Variable, numpy.ndarray or cupy.ndarray, got %s; convert '
                    'it first, e.g. numpy.asarray(%s, dtype=numpy.float32)'
                    % (fname, argname, type(a).__name__, argname))


def _float_array(x, fname, argname='x'):
    """Like ``_input_array`` but also requires a floating dtype (differentiable inputs)."""
    a = _input_array(x, fname, argname)
    if a.dtype.kind != 'f':
        raise TypeError('%s: %s must be a floating-point array, got dtype %s with shape %s; '
                        'cast it with .astype(numpy.float32)' % (fname, argname, a.dtype, a.shape))
    return a


def _check_axis(fname, axis, ndim):
    """Normalize ``axis`` for an array of ``ndim`` dims; ValueError when out of range."""
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise TypeError('%s: axis must be an int, got %r' % (fname, axis))
    axis = int(axis)
    if ndim == 0:
        raise ValueError('%s: the input is 0-d (a scalar); it needs at least one dimension '
                         '(reshape it, e.g. to (1, n))' % fname)
    if not -ndim <= axis < ndim:
        raise ValueError('%s: axis %d is out of range for an input with %d dimensions (valid: '
                         '%d..%d)' % (fname, axis, ndim, -ndim, ndim - 1))
    return axis % ndim


def _check_real(fname, name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError('%s: %s must be a real number, got %r' % (fname, name, value))
    value = float(value)
    if not numpy.isfinite(value):
        raise ValueError('%s: %s must be finite, got %r' % (fname, name, value))
    return value


# -- GPU kernels (CuPy imported lazily; compiled on first use) ------------------------

_SIGMOID_FWD = cuda_kernels.elementwise('seqdbr_sigmoid_fwd', 'T x', 'T y',
                                        'y = 1 / (1 + exp(-x))', types=[
                                            {'T': t} for t in cuda_kernels.GPU_FLOATS])
_SIGMOID_BWD = cuda_kernels.elementwise('seqdbr_sigmoid_bwd', 'T y, T gy', 'T gx',
                                        'gx = gy * y * (1 - y)', types=[
                                            {'T': t} for t in cuda_kernels.GPU_FLOATS])


def _gpu_kernel(name):
    return _SIGMOID_FWD if name == 'sigmoid_fwd' else _SIGMOID_BWD


_GPU_FLOATS = (numpy.dtype(numpy.float32), numpy.dtype(numpy.float64))

_SIGMOID_LOW = {}


def _sigmoid_low(dtype):
    """``log(tiny) + 1`` of a float dtype (cached).

    sigmoid clips x to ``[low, -low]`` so ``exp(-x)`` neither overflows nor underflows and
    the result (at least about ``e * tiny``) stays a normal number (subnormals are slow on
    x86); clipping above changes nothing since ``1 + exp(-x)`` rounds to 1 there.
    """
    low = _SIGMOID_LOW.get(dtype)
    if low is None:
        low = _SIGMOID_LOW[numpy.dtype(dtype)] = float(numpy.log(numpy.finfo(dtype).tiny)) + 1.0
    return low


def _sigmoid_array(x):
    """Stable elementwise sigmoid of a float array (new array, same dtype)."""
    xp = backend.get_array_module(x)
    if x.dtype == numpy.float16:   # float16's tiny range would make the clip below coarse
        return _sigmoid_array(x.astype(numpy.float32)).astype(numpy.float16)
    if xp is not numpy and x.dtype in _GPU_FLOATS:
        return _gpu_kernel('sigmoid_fwd')(x)
    low = _sigmoid_low(x.dtype)
    y = xp.empty_like(x)
    xp.clip(x, low, -low, out=y)         # both sides: no overflow, no underflow flags
    xp.negative(y, out=y)
    xp.exp(y, out=y)
    y += 1
    xp.reciprocal(y, out=y)
    return y


# -- function nodes -------------------------------------------------------------------

class ReLU(FunctionNode):
    def forward(self, inputs):
        x = inputs[0]
        xp = backend.get_array_module(x)
        self.retain_outputs((0,))
        return (xp.maximum(x, 0, out=xp.empty_like(x)),)

    def backward(self, indexes, grad_outputs):
        y = self._out_arrays[0]
        gy = grad_outputs[0]
        xp = backend.get_array_module(y)
        return (xp.multiply(gy, y > 0, out=xp.empty_like(gy)),)


class LeakyReLU(FunctionNode):
    def __init__(self, slope):
        self.slope = slope

    def forward(self, inputs):
        x = inputs[0]
        xp = backend.get_array_module(x)
        s = self.slope
        y = xp.multiply(x, s, out=xp.empty_like(x))
        if 0 <= s <= 1:
            xp.maximum(y, x, out=y)          # max(x, s*x) == leaky relu for s in [0, 1]
        else:
            y = xp.where(x > 0, x, y)
        return (y,)

    def backward(self, indexes, grad_outputs):
        gy = grad_outputs[0]
        x = self.inputs[0].array
        xp = backend.get_array_module(gy)
        return (xp.where(x > 0, gy, gy * self.slope),)


class Tanh(FunctionNode):
    def forward(self, inputs):
        x = inputs[0]
        xp = backend.get_array_module(x)
        self.retain_outputs((0,))
        return (xp.tanh(x, out=xp.empty_like(x)),)

    def backward(self, indexes, grad_outputs):
        y = self._out_arrays[0]
        xp = backend.get_array_module(y)
        gx = xp.multiply(y, y, out=xp.empty_like(y))
        xp.subtract(1, gx, out=gx)
        gx *= grad_outputs[0]
        return (gx,)


class Sigmoid(FunctionNode):
    def forward(self, inputs):
        self.retain_outputs((0,))
        return (_sigmoid_array(inputs[0]),)

    def backward(self, indexes, grad_outputs):
        y = self._out_arrays[0]
        gy = grad_outputs[0]
        xp = backend.get_array_module(y)
        if xp is not numpy and y.dtype in _GPU_FLOATS:
            return (_gpu_kernel('sigmoid_bwd')(y, gy),)
        gx = xp.subtract(1, y, out=xp.empty_like(y))
        gx *= y
        gx *= gy
        return (gx,)


class Softplus(FunctionNode):
    def __init__(self, beta):
        self.beta = beta

    def forward(self, inputs):
        x = inputs[0]
        xp = backend.get_array_module(x)
        beta = self.beta
        bx = x * beta if beta != 1.0 else x
        y = xp.abs(bx, out=xp.empty_like(x))
        xp.negative(y, out=y)
        xp.exp(y, out=y)                     # exp(-|bx|) in (0, 1]: never overflows
        xp.log1p(y, out=y)
        y += xp.maximum(bx, 0)
        if beta != 1.0:
            y *= 1.0 / beta
        return (y,)

    def backward(self, indexes, grad_outputs):
        x = self.inputs[0].array
        beta = self.beta
        g = _sigmoid_array(x * beta if beta != 1.0 else x)
        g *= grad_outputs[0]
        return (g,)


class Softmax(FunctionNode):
    def __init__(self, axis):
        self.axis = axis

    def forward(self, inputs):
        x = inputs[0]
        xp = backend.get_array_module(x)
        self.retain_outputs((0,))
        if x.size == 0:
            return (xp.empty_like(x),)
        axis = self.axis
        y = x - x.max(axis=axis, keepdims=True)
        xp.exp(y, out=y)
        y /= y.sum(axis=axis, keepdims=True)
        return (y,)

    def backward(self, indexes, grad_outputs):
        # gx = y * (gy - sum(y * gy, axis))
        y = self._out_arrays[0]
        gy = grad_outputs[0]
        xp = backend.get_array_module(y)
        gx = y * gy
        s = gx.sum(axis=self.axis, keepdims=True)
        xp.subtract(gy, s, out=gx)
        gx *= y
        return (gx,)


class LogSoftmax(FunctionNode):
    def __init__(self, axis):
        self.axis = axis

    def forward(self, inputs):
        x = inputs[0]
        xp = backend.get_array_module(x)
        self.retain_outputs((0,))
        if x.size == 0:
            return (xp.empty_like(x),)
        axis = self.axis
        y = x - x.max(axis=axis, keepdims=True)    # max entry becomes exactly 0
        s = xp.exp(y).sum(axis=axis, keepdims=True)  # s in [1, n]
        xp.log(s, out=s)
        y -= s
        return (y,)

    def backward(self, indexes, grad_outputs):
        # gx = gy - softmax * sum(gy, axis)
        y = self._out_arrays[0]
        gy = grad_outputs[0]
        xp = backend.get_array_module(y)
        gx = xp.exp(y)
        gx *= gy.sum(axis=self.axis, keepdims=True)
        xp.subtract(gy, gx, out=gx)
        return (gx,)


# -- public functions -------------------------------------------------------------------

def relu(x):
    """Rectified linear unit ``max(x, 0)``.

    Args:
        x (Variable or array): float array of any shape.

    Returns:
        Variable of the same shape and dtype. The gradient is 1 where ``x > 0``, else 0.

    Raises:
        TypeError: ``x`` is not an array/Variable or not floating point.
    """
    _float_array(x, 'relu')
    return ReLU().apply((x,))[0]


def leaky_relu(x, slope=0.2):
    """Leaky ReLU: ``x`` where ``x > 0``, ``slope * x`` elsewhere.

    Args:
        x (Variable or array): float array of any shape.
        slope (float): slope of the negative part (any finite real; usually in (0, 1)).

    Returns:
        Variable of the same shape and dtype (gradient ``slope`` at ``x <= 0``).

    Raises:
        TypeError: non-float ``x`` or non-numeric ``slope``. ValueError: non-finite slope.
    """
    _float_array(x, 'leaky_relu')
    slope = _check_real('leaky_relu', 'slope', slope)
    return LeakyReLU(slope).apply((x,))[0]


def tanh(x):
    """Hyperbolic tangent, elementwise. Float ``x`` of any shape -> same shape and dtype.

    Raises:
        TypeError: ``x`` is not a float array/Variable.
    """
    _float_array(x, 'tanh')
    return Tanh().apply((x,))[0]


def sigmoid(x):
    """Logistic sigmoid ``1 / (1 + exp(-x))``, elementwise.

    Never overflows or warns, even for ``x = +-1000`` in float32/float64 (see the module
    notes on accuracy in the far negative tail). On CuPy (float32/float64) forward and
    backward are single fused kernels.

    Args:
        x (Variable or array): float array of any shape.

    Returns:
        Variable of the same shape and dtype, values in ``[tiny, 1]``.

    Raises:
        TypeError: ``x`` is not a float array/Variable.
    """
    _float_array(x, 'sigmoid')
    return Sigmoid().apply((x,))[0]


def softplus(x, beta=1.0):
    """Smooth ReLU ``log(1 + exp(beta * x)) / beta``, elementwise and overflow-free.

    Args:
        x (Variable or array): float array of any shape.
        beta (float): sharpness, > 0 (large beta approaches ``relu``).

    Returns:
        Variable of the same shape and dtype. Gradient: ``sigmoid(beta * x)``.

    Raises:
        TypeError: non-float ``x`` or non-numeric beta. ValueError: ``beta <= 0`` or not finite.
    """
    _float_array(x, 'softplus')
    beta = _check_real('softplus', 'beta', beta)
    if beta <= 0:
        raise ValueError('softplus: beta must be > 0, got %r' % beta)
    return Softplus(beta).apply((x,))[0]


def softmax(x, axis=1):
    """Softmax along ``axis``: ``exp(x - max) / sum(exp(x - max))``.

    Args:
        x (Variable or array): float array with at least one dimension, e.g. (B, C) or
            (B, C, T). Zero-size inputs give a zero-size output.
        axis (int): the axis that sums to one (negative values count from the end).

    Returns:
        Variable of the same shape and dtype.

    Raises:
        TypeError: non-float ``x`` or non-int axis. ValueError: axis out of range.
    """
    a = _float_array(x, 'softmax')
    axis = _check_axis('softmax', axis, a.ndim)
    return Softmax(axis).apply((x,))[0]


def log_softmax(x, axis=1):
    """Log of the softmax along ``axis``, computed as ``x - max - log(sum(exp(x - max)))``.

    Finite and exact for large logits: ``log_softmax([[1e4, 0]])`` is ``[[0, -1e4]]``.

    Args:
        x (Variable or array): float array with at least one dimension, e.g. (B, C).
        axis (int): the normalized axis (negative values count from the end).

    Returns:
        Variable of the same shape and dtype.

    Raises:
        TypeError: non-float ``x`` or non-int axis. ValueError: axis out of range.
    """
    a = _float_array(x, 'log_softmax')
    axis = _check_axis('log_softmax', axis, a.ndim)
    return LogSoftmax(axis).apply((x,))[0]


# -- gelu / swish ---------------------------------------------------------------------------

_SQRT_2_OVER_PI = 0.7978845608028654
_INV_SQRT_2 = 0.7071067811865476
_INV_SQRT_2PI = 0.3989422804014327
_GELU_C = 0.044715


def _erf(x):
    """Elementwise error function of a float array: ``scipy.special.erf`` when SciPy is
    installed (``cupyx.scipy.special.erf`` on CuPy), otherwise Python's ``math.erf`` per
    element (exact but slow; SciPy is not a dependency of seqdbr)."""
    xp = backend.get_array_module(x)
    if xp is not numpy:
        from cupyx.scipy.special import erf
        return erf(x)
    try:
        from scipy.special import erf
    except ImportError:
        import math
        erf = numpy.frompyfunc(math.erf, 1, 1)
        return erf(x).astype(x.dtype)
    return erf(x).astype(x.dtype, copy=False)


class GELU(FunctionNode):
    def __init__(self, approximate):
        self.approximate = approximate

    def forward(self, inputs):
        x = inputs[0]
        if x.ndim == 0:                   # 0-d arithmetic gives NumPy scalars: work on (1,)
            return (self.forward((x.reshape(1),))[0].reshape(()),)
        xp = backend.get_array_module(x)
        if self.approximate:
            u = x * x
            u *= _GELU_C
            u += 1
            u *= x
            u *= _SQRT_2_OVER_PI
            xp.tanh(u, out=u)
            self.aux = u                          # tanh(sqrt(2/pi) (x + c x^3))
            y = u + 1
        else:
            y = _erf(x * _INV_SQRT_2)
            y += 1
            self.aux = y * 0.5                    # Phi(x)
        y *= x
        y *= 0.5
        return (y,)

    def backward(self, indexes, grad_outputs):
        x = self.inputs[0].array.reshape(-1) if self.inputs[0].ndim == 0 else \
            self.inputs[0].array
        xp = backend.get_array_module(x)
        gy = grad_outputs[0]
        if self.approximate:
            t = self.aux
            # d/dx 0.5 x (1 + t) = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3c x^2)
            d = x * x
            d *= 3 * _GELU_C
            d += 1
            d *= x
            d *= 1 - t * t
            d *= _SQRT_2_OVER_PI
            d += 1 + t
            d *= 0.5
        else:
            # d/dx x Phi(x) = Phi(x) + x phi(x), phi the standard normal density
            d = x * x
            d *= -0.5
            xp.exp(d, out=d)
            d *= x
            d *= _INV_SQRT_2PI
            d += self.aux
        d *= gy
        return (d.reshape(gy.shape),)


def gelu(x, approximate='none'):
    """Gaussian error linear unit (Hendrycks & Gimpel 2016): ``x * Phi(x)`` with ``Phi`` the
    standard normal CDF, ``Phi(x) = (1 + erf(x / sqrt 2)) / 2``.

    ``approximate='tanh'`` uses the paper's approximation ``0.5 x (1 + tanh(sqrt(2/pi) (x +
    0.044715 x^3)))`` (as ``torch.nn.functional.gelu(x, approximate='tanh')``; within 5e-4 of
    the exact form). The exact form calls ``scipy.special.erf`` when SciPy is installed and a
    slow per-element ``math.erf`` otherwise; the tanh form needs NumPy only.

    Args:
        x (Variable or array): float array of any shape.
        approximate (str): ``'none'`` (exact, default) or ``'tanh'``.

    Returns:
        Variable of the same shape and dtype. Gradient ``Phi(x) + x phi(x)`` (exact form).

    Raises:
        TypeError: ``x`` not a float array/Variable. ValueError: another ``approximate``.
    """
    _float_array(x, 'gelu')
    if approximate not in ('none', 'tanh'):
        raise ValueError("gelu: approximate must be 'none' or 'tanh', got %r" % (approximate,))
    return GELU(approximate == 'tanh').apply((x,))[0]


class Swish(FunctionNode):
    def forward(self, inputs):
        x, beta = inputs
        xp = backend.get_array_module(x)
        s = _sigmoid_array(xp.multiply(x, beta, out=xp.empty(x.shape, x.dtype)))
        self.s = s
        return (xp.multiply(x, s, out=xp.empty_like(s)),)

    def backward(self, indexes, grad_outputs):
        # y = x s(bx):  dy/dx = s + b x s (1 - s),  dy/db = x^2 s (1 - s)
        from seqdbr.core.function_node import sum_to
        x, beta = self.inputs[0].array, self.inputs[1].array
        s = self.s
        gy = grad_outputs[0]
        ds = s * (1 - s)
        ds *= x
        ds *= gy                                   # gy x s (1 - s)
        gx = gb = None
        if 0 in indexes:
            gx = ds * beta
            gx += gy * s
        if 1 in indexes:
            gb = sum_to(ds * x, beta.shape)
        return gx, gb


def swish(x, beta=1.0):
    """Swish (Ramachandran et al. 2017): ``x * sigmoid(beta * x)``; ``beta = 1`` is SiLU
    (Elfwing et al. 2018, ``torch.nn.SiLU``).

    Args:
        x (Variable or array): float array of shape ``S``.
        beta (float, Variable or array): the slope, a number or a float array broadcastable to
            ``S`` of ``x``'s dtype (e.g. ``S[1:]``, one per feature, as Chainer's ``L.Swish``);
            a Variable ``beta`` receives a gradient ``sum(gy x^2 s (1 - s))``.

    Returns:
        Variable of shape ``S`` and ``x``'s dtype.

    Raises:
        TypeError: non-float ``x``, a ``beta`` of another dtype or type.
        ValueError: a non-finite number ``beta``, or a ``beta`` that does not broadcast to
            ``S`` (the message names both shapes).
    """
    a = _float_array(x, 'swish')
    xp = backend.get_array_module(a)
    if isinstance(beta, numbers.Real) and not isinstance(beta, _ndarray):
        beta = xp.asarray(_check_real('swish', 'beta', beta), dtype=a.dtype)
    b = _float_array(beta, 'swish', 'beta')
    if b.dtype != a.dtype:
        raise TypeError('swish: beta has dtype %s but x has %s; use one dtype'
                        % (b.dtype, a.dtype))
    try:
        shape = numpy.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        shape = None
    if shape != a.shape:
        raise ValueError('swish: beta of shape %s does not broadcast to x of shape %s; give a '
                         'number or e.g. shape x.shape[1:]' % (b.shape, a.shape))
    return Swish().apply((x, beta))[0]
