"""Arithmetic: add, sub, mul, div, neg, pow, matmul, and the Variable operators.

Binary ops broadcast like NumPy; the gradient of each input is summed back to its
own shape. Two variables must share a float dtype (no silent float64 upcasts);
plain arrays and Python scalars mixed in through operators are cast to the
variable's dtype, since they are constants.
"""
import numbers

import numpy

from seqdbr.core import backend
from seqdbr.core.function_node import FunctionNode, sum_to
from seqdbr.core.variable import Variable

__all__ = ['add', 'sub', 'mul', 'div', 'neg', 'pow', 'matmul', 'batch_matmul', 'absolute',
           'square']


def _shapes_error(name, a, b):
    return ValueError('%s: shapes %s and %s cannot be broadcast together (numpy broadcasting '
                      'rules); reshape or F.broadcast_to first' % (name, a.shape, b.shape))


def _check_pair(name, a, b):
    ka = a.dtype.kind
    if ka != 'f' or b.dtype.kind != 'f':
        bad = a if ka != 'f' else b
        raise TypeError('%s: expected floating-point inputs, got dtype %s (shape %s); cast '
                        'with .astype(numpy.float32)' % (name, bad.dtype, bad.shape))
    if a.dtype != b.dtype:
        raise TypeError('%s: dtypes %s and %s differ; cast one of them (e.g. '
                        '.astype(numpy.float32))' % (name, a.dtype, b.dtype))


class _Binary(FunctionNode):
    name = 'binary'

    def forward(self, inputs):
        a, b = inputs
        _check_pair(self.name, a, b)
        self.sa = a.shape
        self.sb = b.shape
        try:
            return (self._f(a, b),)
        except ValueError:
            if a.shape != b.shape:
                raise _shapes_error(self.name, a, b) from None
            raise


class Add(_Binary):
    name = 'add'

    def _f(self, a, b):
        return a + b

    def backward(self, indexes, gys):
        gy = gys[0]
        return sum_to(gy, self.sa), sum_to(gy, self.sb)


class Sub(_Binary):
    name = 'sub'

    def _f(self, a, b):
        return a - b

    def backward(self, indexes, gys):
        gy = gys[0]
        gb = sum_to(-gy, self.sb) if 1 in indexes else None
        return sum_to(gy, self.sa), gb


class Mul(_Binary):
    name = 'mul'

    def _f(self, a, b):
        return a * b

    def backward(self, indexes, gys):
        gy = gys[0]
        a, b = self.inputs[0].array, self.inputs[1].array
        ga = sum_to(gy * b, self.sa) if 0 in indexes else None
        gb = sum_to(gy * a, self.sb) if 1 in indexes else None
        return ga, gb


class Div(_Binary):
    name = 'div'

    def _f(self, a, b):
        return a / b

    def backward(self, indexes, gys):
        gy = gys[0]
        a, b = self.inputs[0].array, self.inputs[1].array
        ga = gy / b
        gb = sum_to(-ga * a / b, self.sb) if 1 in indexes else None
        return sum_to(ga, self.sa), gb


class PowVarVar(_Binary):
    name = 'pow'

    def _f(self, a, b):
        return a ** b

    def backward(self, indexes, gys):
        gy = gys[0]
        a, b = self.inputs[0].array, self.inputs[1].array
        xp = backend.get_array_module(a)
        ga = gb = None
        if 0 in indexes:
            ga = sum_to(gy * b * a ** (b - 1), self.sa)
        if 1 in indexes:
            with numpy.errstate(divide='ignore', invalid='ignore'):
                gb = sum_to(gy * a ** b * xp.log(a), self.sb)
        return ga, gb


class MatMul(FunctionNode):
    """``op(a) @ op(b)`` with NumPy matmul semantics (batched, broadcast leading dims), where
    ``op`` swaps the last two axes of an operand of >= 2 dims when its ``trans`` flag is set."""

    def __init__(self, transa=False, transb=False):
        self.transa = transa
        self.transb = transb

    def _operands(self, a, b):
        xp = backend.get_array_module(a)
        if self.transa and a.ndim >= 2:
            a = xp.swapaxes(a, -1, -2)
        if self.transb and b.ndim >= 2:
            b = xp.swapaxes(b, -1, -2)
        return xp, a, b

    def forward(self, inputs):
        a, b = inputs
        _check_pair('matmul', a, b)
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError('matmul: 0-d operands are not allowed (shapes %s and %s); use '
                             'mul' % (a.shape, b.shape))
        _, a2, b2 = self._operands(a, b)
        try:
            return (a2 @ b2,)
        except ValueError:
            raise ValueError('matmul: shapes %s%s and %s%s are not aligned (the last axis of '
                             'the first must equal the second-to-last axis of the second, '
                             'leading axes broadcast)'
                             % (a.shape, ' (transposed)' if self.transa else '', b.shape,
                                ' (transposed)' if self.transb else '')) from None

    def backward(self, indexes, gys):
        gy = gys[0]
        xp, a, b = self._operands(self.inputs[0].array, self.inputs[1].array)
        a2 = a[None, :] if a.ndim == 1 else a          # (..., M, K)
        b2 = b[:, None] if b.ndim == 1 else b          # (..., K, N)
        g2 = gy
        if b.ndim == 1:
            g2 = g2[..., None]
        if a.ndim == 1:
            g2 = g2[..., None, :]
        ga = gb = None
        if 0 in indexes:
            if self.transa and a.ndim >= 2:             # d op(a)^T = b g^T
                ga = sum_to(b2 @ xp.swapaxes(g2, -1, -2), self.inputs[0].shape)
            else:
                ga = g2 @ xp.swapaxes(b2, -1, -2)
                if a.ndim == 1:
                    ga = ga.reshape(ga.shape[:-2] + (ga.shape[-1],))
                ga = sum_to(ga, a.shape)
        if 1 in indexes:
            if self.transb and b.ndim >= 2:
                gb = sum_to(xp.swapaxes(g2, -1, -2) @ a2, self.inputs[1].shape)
            else:
                gb = xp.swapaxes(a2, -1, -2) @ g2
                if b.ndim == 1:
                    gb = gb.reshape(gb.shape[:-1])
                gb = sum_to(gb, b.shape)
        return ga, gb


class Neg(FunctionNode):
    def forward(self, inputs):
        return (-inputs[0],)

    def backward(self, indexes, gys):
        return (-gys[0],)


class AddConstant(FunctionNode):
    def __init__(self, c):
        self.c = c

    def forward(self, inputs):
        return (inputs[0] + self.c,)

    def backward(self, indexes, gys):
        return (gys[0],)


class SubFromConstant(FunctionNode):
    def __init__(self, c):
        self.c = c

    def forward(self, inputs):
        return (self.c - inputs[0],)

    def backward(self, indexes, gys):
        return (-gys[0],)


class MulConstant(FunctionNode):
    def __init__(self, c):
        self.c = c

    def forward(self, inputs):
        return (inputs[0] * self.c,)

    def backward(self, indexes, gys):
        return (gys[0] * self.c,)


class DivConstant(FunctionNode):
    """``x / c`` for a constant c (true division, so ``x / 0`` gives inf like NumPy)."""

    def __init__(self, c):
        self.c = c

    def forward(self, inputs):
        with numpy.errstate(divide='ignore', invalid='ignore'):
            return (inputs[0] / self.c,)

    def backward(self, indexes, gys):
        with numpy.errstate(divide='ignore', invalid='ignore'):
            return (gys[0] / self.c,)


class DivFromConstant(FunctionNode):
    def __init__(self, c):
        self.c = c

    def forward(self, inputs):
        self.retain_outputs((0,))
        return (self.c / inputs[0],)

    def backward(self, indexes, gys):
        y = self._out_arrays[0]
        x = self.inputs[0].array
        return (-gys[0] * y / x,)


class PowConstant(FunctionNode):
    """``x ** c`` for a constant exponent c."""

    def __init__(self, c):
        self.c = c

    def forward(self, inputs):
        return (inputs[0] ** self.c,)

    def backward(self, indexes, gys):
        x = self.inputs[0].array
        c = self.c
        if c == 2:
            return (gys[0] * (2 * x),)
        return (gys[0] * c * x ** (c - 1),)


class RPowConstant(FunctionNode):
    """``c ** x`` for a constant base c."""

    def __init__(self, c):
        self.c = c

    def forward(self, inputs):
        self.retain_outputs((0,))
        return (self.c ** inputs[0],)

    def backward(self, indexes, gys):
        xp = backend.get_array_module(gys[0])
        y = self._out_arrays[0]
        return (gys[0] * y * xp.log(xp.asarray(self.c, dtype=y.dtype)),)


class Absolute(FunctionNode):
    def forward(self, inputs):
        x = inputs[0]
        _check_float1('absolute', x)
        return (abs(x),)

    def backward(self, indexes, gys):
        xp = backend.get_array_module(gys[0])
        return (gys[0] * xp.sign(self.inputs[0].array),)


def _check_float1(name, x):
    if x.dtype.kind != 'f':
        raise TypeError('%s: expected a floating-point array, got dtype %s with shape %s; cast '
                        'with .astype(numpy.float32)' % (name, x.dtype, x.shape))


# -- constants and public functions -----------------------------------------------------

def _const(c, like):
    """Turn a constant operand into a Python scalar or an array of the variable's dtype."""
    if isinstance(c, numbers.Number) and not isinstance(c, numpy.ndarray):
        if isinstance(c, numpy.generic):
            c = c.item()
        return c
    if isinstance(c, Variable):
        return c
    arr = getattr(c, 'dtype', None)
    if arr is None:
        raise TypeError('cannot combine a Variable with %s; use an array, a scalar or a Variable'
                        % type(c).__name__)
    dt = like.array.dtype
    return c if c.dtype == dt else c.astype(dt)


_Number = numbers.Number


def add(a, b):
    """Elementwise ``a + b`` with broadcasting. Arrays or Variables, same float dtype."""
    return Add().apply((a, b))[0]


def sub(a, b):
    """Elementwise ``a - b`` with broadcasting."""
    return Sub().apply((a, b))[0]


def mul(a, b):
    """Elementwise ``a * b`` with broadcasting."""
    return Mul().apply((a, b))[0]


def div(a, b):
    """Elementwise ``a / b`` with broadcasting."""
    return Div().apply((a, b))[0]


def neg(x):
    """``-x``."""
    _check_float1('neg', x.array if isinstance(x, Variable) else x)
    return Neg().apply((x,))[0]


def pow(a, b):
    """``a ** b``: elementwise when both are arrays/Variables, or with a scalar exponent."""
    if isinstance(b, numbers.Number):
        return _pow_const(a, b)
    if isinstance(a, numbers.Number):
        return _rpow_const(b, a)
    return PowVarVar().apply((a, b))[0]


def matmul(a, b, transa=False, transb=False):
    """Matrix product ``op(a) @ op(b)`` with NumPy ``matmul`` semantics.

    Shapes: ``(..., M, K) @ (..., K, N) -> (..., M, N)``; 1-d operands are promoted as in
    NumPy; leading (batch) axes broadcast and their gradients are summed back.
    ``transa``/``transb`` swap the last two axes of ``a``/``b`` first (``op(a) = a^T``, per
    batch), without a copy; they are ignored for a 1-d operand (as in Chainer).
    Gradients: ``ga = gy op(b)^T``, ``gb = op(a)^T gy`` (transposed back when flagged).

    Raises:
        TypeError: non-float operands or differing dtypes.
        ValueError: 0-d operands, or shapes that are not aligned (the message names both).
    """
    return MatMul(bool(transa), bool(transb)).apply((a, b))[0]


def batch_matmul(a, b, transa=False, transb=False):
    """Per-example matrix products of two batches: ``y[i] = op(a[i]) @ op(b[i])``.

    Unlike :func:`matmul` there is no broadcasting: both operands carry the same batch
    size ``B`` on axis 0. A 2-d operand ``(B, N)`` is read as ``B`` column vectors
    ``(B, N, 1)`` (Chainer's convention), so ``batch_matmul(a, v)`` with ``a (B, M, N)``
    and ``v (B, N)`` gives ``(B, M, 1)``.

    Args:
        a (Variable or array): ``(B, M, K)`` (or ``(B, M)`` as ``(B, M, 1)``), float.
        b (Variable or array): ``(B, K, N)`` (or ``(B, K)`` as ``(B, K, 1)``), same dtype.
        transa, transb (bool): use ``a[i]^T`` / ``b[i]^T``.

    Returns:
        Variable ``(B, M, N)``.

    Raises:
        ValueError: an operand that is not 2-d or 3-d, differing batch sizes, or inner
            sizes that do not match (the message names the shapes).
        TypeError: non-float operands or differing dtypes.
    """
    from seqdbr.core.functions.array import expand_dims
    shapes = []
    for name, v in (('a', a), ('b', b)):
        arr = v.array if isinstance(v, Variable) else v
        shape = getattr(arr, 'shape', None)
        if shape is None or len(shape) not in (2, 3):
            raise ValueError('batch_matmul: %s must be a 3-d (B, rows, cols) batch of matrices '
                             'or a 2-d (B, n) batch of column vectors, got shape %s'
                             % (name, shape))
        shapes.append(shape)
    if shapes[0][0] != shapes[1][0]:
        raise ValueError('batch_matmul: a and b have batch sizes %d and %d (shapes %s and %s); '
                         'they must match (use matmul for broadcasting)'
                         % (shapes[0][0], shapes[1][0], shapes[0], shapes[1]))
    if len(shapes[0]) == 2:
        a = expand_dims(a, 2)
    if len(shapes[1]) == 2:
        b = expand_dims(b, 2)
    return matmul(a, b, transa, transb)


def absolute(x):
    """``|x|`` (gradient ``sign(x)``, 0 at 0)."""
    return Absolute().apply((x,))[0]


def square(x):
    """``x ** 2``."""
    return _pow_const(x, 2)


def _pow_const(x, c):
    _check_float1('pow', x.array if isinstance(x, Variable) else x)
    return PowConstant(c.item() if isinstance(c, numpy.generic) else c).apply((x,))[0]


def _rpow_const(x, c):
    _check_float1('pow', x.array if isinstance(x, Variable) else x)
    return RPowConstant(c.item() if isinstance(c, numpy.generic) else c).apply((x,))[0]


# -- operators --------------------------------------------------------------------------
# Fast paths first: Variable and Python float/int operands are by far the common case, and
# an exact type test is ~10x cheaper than isinstance against the numbers.Number ABC.


def _v_add(self, other):
    t = type(other)
    if t is Variable:
        return Add().apply((self, other))[0]
    if t is float or t is int:
        return AddConstant(other).apply((self,))[0]
    if isinstance(other, _Number):
        return AddConstant(_const(other, self)).apply((self,))[0]
    return Add().apply((self, _const(other, self)))[0]


def _v_sub(self, other):
    t = type(other)
    if t is Variable:
        return Sub().apply((self, other))[0]
    if t is float or t is int:
        return AddConstant(-other).apply((self,))[0]
    if isinstance(other, _Number):
        return AddConstant(-_const(other, self)).apply((self,))[0]
    return Sub().apply((self, _const(other, self)))[0]


def _v_rsub(self, other):
    if isinstance(other, _Number):
        return SubFromConstant(_const(other, self)).apply((self,))[0]
    return Sub().apply((_const(other, self), self))[0]


def _v_mul(self, other):
    t = type(other)
    if t is Variable:
        return Mul().apply((self, other))[0]
    if t is float or t is int:
        return MulConstant(other).apply((self,))[0]
    if isinstance(other, _Number):
        return MulConstant(_const(other, self)).apply((self,))[0]
    return Mul().apply((self, _const(other, self)))[0]


def _v_truediv(self, other):
    t = type(other)
    if t is Variable:
        return Div().apply((self, other))[0]
    if isinstance(other, _Number):
        return DivConstant(_const(other, self)).apply((self,))[0]
    return Div().apply((self, _const(other, self)))[0]


def _v_rtruediv(self, other):
    if isinstance(other, _Number):
        return DivFromConstant(_const(other, self)).apply((self,))[0]
    return Div().apply((_const(other, self), self))[0]


def _v_pow(self, other):
    if isinstance(other, _Number):
        return _pow_const(self, other)
    return PowVarVar().apply((self, _const(other, self)))[0]


def _v_rpow(self, other):
    if isinstance(other, _Number):
        return _rpow_const(self, other)
    return PowVarVar().apply((_const(other, self), self))[0]


def _v_matmul(self, other):
    return MatMul().apply((self, _const(other, self)))[0]


def _v_rmatmul(self, other):
    return MatMul().apply((_const(other, self), self))[0]


def _v_neg(self):
    return Neg().apply((self,))[0]


def _v_abs(self):
    return Absolute().apply((self,))[0]


def install_variable_operators():
    """Give ``Variable`` its arithmetic operators (called once at import)."""
    V = Variable
    V.__add__ = V.__radd__ = _v_add
    V.__sub__ = _v_sub
    V.__rsub__ = _v_rsub
    V.__mul__ = V.__rmul__ = _v_mul
    V.__truediv__ = _v_truediv
    V.__rtruediv__ = _v_rtruediv
    V.__pow__ = _v_pow
    V.__rpow__ = _v_rpow
    V.__matmul__ = _v_matmul
    V.__rmatmul__ = _v_rmatmul
    V.__neg__ = _v_neg
    V.__abs__ = _v_abs
    V.__pos__ = lambda self: self


install_variable_operators()
