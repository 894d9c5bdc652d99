"""Arithmetic (seqdbr.core.functions.basic_math) and the Variable operators.

Forward values are compared with NumPy; backward with float64 central differences
(check_backward). Backend-generic through the ``xp`` fixture.
"""
import numpy
import pytest

import seqdbr.functions as F
from seqdbr import Variable
from seqdbr.core import backend
from seqdbr.gradient_check import check_backward, assert_allclose


def _u(xp, shape, lo=-1.0, hi=1.0, seed=0, dtype=numpy.float64):
    a = numpy.random.RandomState(seed).uniform(lo, hi, shape).astype(dtype)
    return xp.asarray(a)


def _cpu(a):
    return backend.to_cpu(a.array if isinstance(a, Variable) else a)


def _away_from_zero(xp, shape, seed=0):
    """Values in +-[0.5, 1.5]: safe for division, abs and pow."""
    rs = numpy.random.RandomState(seed)
    a = rs.uniform(0.5, 1.5, shape) * rs.choice([-1.0, 1.0], size=shape)
    return xp.asarray(numpy.asarray(a, dtype=numpy.float64))


BROADCAST_PAIRS = [
    ((3, 4), (3, 4)),
    ((3, 4), (4,)),
    ((2, 1, 3), (4, 1)),
    ((1, 4), (3, 1)),
    ((), (2, 3)),
    ((1,), (1,)),
    ((0, 3), (1, 3)),
    ((0, 3), (3,)),
]

BINARY = [
    ('add', F.add, numpy.add),
    ('sub', F.sub, numpy.subtract),
    ('mul', F.mul, numpy.multiply),
    ('div', F.div, numpy.divide),
]


@pytest.mark.parametrize('name,fn,ref', BINARY)
@pytest.mark.parametrize('sa,sb', BROADCAST_PAIRS)
def test_binary_forward_and_backward(xp, name, fn, ref, sa, sb):
    a = _u(xp, sa, seed=1)
    b = _away_from_zero(xp, sb, seed=2)
    y = fn(Variable(a), Variable(b))
    expected = ref(_cpu(a), _cpu(b))
    assert y.shape == expected.shape
    assert y.dtype == numpy.float64
    assert_allclose(y, expected, atol=0, rtol=1e-12)
    check_backward(fn, (a, b), dtype=numpy.float64)


@pytest.mark.parametrize('name,fn,ref', BINARY)
def test_binary_float32_keeps_dtype(xp, name, fn, ref):
    a = _u(xp, (2, 3), dtype=numpy.float32)
    b = _away_from_zero(xp, (3,)).astype(numpy.float32)
    va, vb = Variable(a), Variable(b)
    y = fn(va, vb)
    assert y.dtype == numpy.float32
    F.sum(y).backward()
    assert va.grad.dtype == numpy.float32 and va.grad.shape == (2, 3)
    assert vb.grad.dtype == numpy.float32 and vb.grad.shape == (3,)


@pytest.mark.parametrize('name,fn,ref', BINARY)
def test_binary_rejects_bad_input(xp, name, fn, ref):
    a = Variable(_u(xp, (2, 3)))
    with pytest.raises(ValueError) as e:
        fn(a, Variable(_u(xp, (4,))))
    assert '(2, 3)' in str(e.value) and '(4,)' in str(e.value)
    with pytest.raises(TypeError, match='int'):
        fn(a, xp.ones((2, 3), dtype=numpy.int32))
    with pytest.raises(TypeError, match='float32'):
        fn(a, Variable(_u(xp, (2, 3), dtype=numpy.float32)))


def test_mul_and_div_gradients_by_hand(xp):
    # d(a*b)/da = b, d(a/b)/db = -a/b^2 on a hand-picked case
    a = Variable(xp.asarray([2.0, -3.0]))
    b = Variable(xp.asarray([4.0, 0.5]))
    F.sum(F.mul(a, b)).backward()
    assert_allclose(a.grad, [4.0, 0.5], atol=0, rtol=0)
    assert_allclose(b.grad, [2.0, -3.0], atol=0, rtol=0)
    a.cleargrad()
    b.cleargrad()
    F.sum(F.div(a, b)).backward()
    assert_allclose(a.grad, [0.25, 2.0], atol=1e-15, rtol=0)
    assert_allclose(b.grad, [-2.0 / 16.0, 3.0 / 0.25], atol=1e-15, rtol=0)


def test_constant_input_gets_no_gradient(xp):
    a = Variable(_u(xp, (2, 3)))
    b = _u(xp, (2, 3), seed=3)          # a raw array is a constant
    y = F.mul(a, b)
    F.sum(y).backward()
    assert_allclose(a.grad, b, atol=0, rtol=0)
    assert y.creator.inputs[1].grad is None
    assert y.creator.inputs[1].requires_grad is False


@pytest.mark.parametrize('shape', [(3, 4), (1,), (), (0, 3), (1, 1, 2)])
def test_neg(xp, shape):
    x = _u(xp, shape)
    assert_allclose(F.neg(Variable(x)), -_cpu(x), atol=0, rtol=0)
    check_backward(F.neg, x)
    with pytest.raises(TypeError):
        F.neg(xp.ones(3, dtype=numpy.int64))


@pytest.mark.parametrize('shape', [(3, 4), (1,), (), (0, 3)])
def test_absolute_and_square(xp, shape):
    x = _away_from_zero(xp, shape)
    assert_allclose(F.absolute(Variable(x)), numpy.abs(_cpu(x)), atol=0, rtol=0)
    assert_allclose(F.square(Variable(x)), _cpu(x) ** 2, atol=0, rtol=1e-15)
    check_backward(F.absolute, x)
    check_backward(F.square, x)
    with pytest.raises(TypeError):
        F.absolute(xp.ones(3, dtype=numpy.int32))
    with pytest.raises(TypeError):
        F.square(xp.ones(3, dtype=numpy.int32))


def test_absolute_gradient_at_zero_is_zero(xp):
    x = Variable(xp.asarray([-2.0, 0.0, 3.0]))
    F.sum(F.absolute(x)).backward()
    assert_allclose(x.grad, [-1.0, 0.0, 1.0], atol=0, rtol=0)


# -- pow --------------------------------------------------------------------------------

@pytest.mark.parametrize('sa,sb', [((3, 4), (3, 4)), ((3, 4), (4,)), ((1,), (2, 2)),
                                   ((), ()), ((0, 2), (2,))])
def test_pow_var_var(xp, sa, sb):
    a = _u(xp, sa, 0.5, 2.0, seed=4)
    b = _u(xp, sb, -1.5, 2.5, seed=5)
    y = F.pow(Variable(a), Variable(b))
    assert_allclose(y, _cpu(a) ** _cpu(b), atol=0, rtol=1e-12)
    check_backward(F.pow, (a, b))


@pytest.mark.parametrize('c', [2, 3, 0.5, -1.5, 1])
@pytest.mark.parametrize('shape', [(3, 4), (1,), (), (0, 4)])
def test_pow_var_const(xp, c, shape):
    x = _u(xp, shape, 0.5, 2.0, seed=6)
    assert_allclose(F.pow(Variable(x), c), _cpu(x) ** c, atol=0, rtol=1e-12)
    assert_allclose(Variable(x) ** c, _cpu(x) ** c, atol=0, rtol=1e-12)
    check_backward(lambda v: F.pow(v, c), x)
    check_backward(lambda v: v ** c, x)


@pytest.mark.parametrize('c', [2.0, 0.5, 3])
@pytest.mark.parametrize('shape', [(3, 4), (1,), (), (0, 4)])
def test_pow_const_var(xp, c, shape):
    x = _u(xp, shape, -1.0, 2.0, seed=7)
    assert_allclose(F.pow(c, Variable(x)), c ** _cpu(x), atol=0, rtol=1e-12)
    assert_allclose(c ** Variable(x), c ** _cpu(x), atol=0, rtol=1e-12)
    check_backward(lambda v: F.pow(c, v), x)
    check_backward(lambda v: c ** v, x)


def test_pow_keeps_float32(xp):
    x = Variable(_u(xp, (3,), 0.5, 2.0, dtype=numpy.float32))
    for y in (x ** 2, x ** 0.5, 2.0 ** x, F.square(x)):
        assert y.dtype == numpy.float32


def test_pow_rejects_int(xp):
    with pytest.raises(TypeError):
        F.pow(xp.ones(3, dtype=numpy.int32), 2)
    with pytest.raises(TypeError):
        F.pow(2.0, xp.ones(3, dtype=numpy.int32))


# -- matmul -----------------------------------------------------------------------------


MATMUL_SHAPES = [
    ((3, 4), (4, 2)),
    ((1, 4), (4, 1)),
    ((4,), (4, 2)),
    ((3, 4), (4,)),
    ((4,), (4,)),
    ((1,), (1,)),
    ((2, 1, 3, 4), (5, 4, 2)),
    ((5, 3, 4), (4, 2)),
    ((4,), (5, 4, 2)),
    ((2, 3, 4), (4,)),
    ((0, 3), (3, 2)),
    ((2, 0), (0, 3)),
    ((2, 3), (3, 0)),
]


@pytest.mark.parametrize('sa,sb', MATMUL_SHAPES)
def test_matmul(xp, sa, sb):
    a = _u(xp, sa, seed=8)
    b = _u(xp, sb, seed=9)
    y = F.matmul(Variable(a), Variable(b))
    expected = numpy.matmul(_cpu(a), _cpu(b))
    assert y.shape == expected.shape
    assert_allclose(y, expected, atol=1e-12, rtol=1e-12)
    check_backward(F.matmul, (a, b))


def test_matmul_vector_vector_forward(xp):
    a = _u(xp, (4,), seed=8)
    b = _u(xp, (4,), seed=9)
    y = F.matmul(Variable(a), Variable(b))
    assert y.shape == ()
    assert_allclose(y, float(_cpu(a) @ _cpu(b)), atol=1e-12, rtol=1e-12)


def test_matmul_hand_computed(xp):
    a = Variable(xp.asarray([[1.0, 2.0], [3.0, 4.0]]))
    b = Variable(xp.asarray([[5.0], [6.0]]))
    y = F.matmul(a, b)
    assert_allclose(y, [[17.0], [39.0]], atol=0, rtol=0)
    F.sum(y).backward()
    # d sum(ab)/da_ij = b_j ; d/db_j = sum_i a_ij
    assert_allclose(a.grad, [[5.0, 6.0], [5.0, 6.0]], atol=0, rtol=0)
    assert_allclose(b.grad, [[4.0], [6.0]], atol=0, rtol=0)


def test_matmul_errors(xp):
    a = Variable(_u(xp, (3, 4)))
    with pytest.raises(ValueError) as e:
        F.matmul(a, Variable(_u(xp, (3, 4))))
    assert '(3, 4)' in str(e.value)
    with pytest.raises(ValueError, match='0-d'):
        F.matmul(a, Variable(_u(xp, ())))
    with pytest.raises(TypeError):
        F.matmul(a, xp.ones((4, 2), dtype=numpy.int32))
    with pytest.raises(TypeError):
        F.matmul(a, Variable(_u(xp, (4, 2), dtype=numpy.float32)))


# -- operators --------------------------------------------------------------------------

OPERATORS = [
    ('v+c', lambda v, c: v + c, lambda x, c: x + c),
    ('c+v', lambda v, c: c + v, lambda x, c: c + x),
    ('v-c', lambda v, c: v - c, lambda x, c: x - c),
    ('c-v', lambda v, c: c - v, lambda x, c: c - x),
    ('v*c', lambda v, c: v * c, lambda x, c: x * c),
    ('c*v', lambda v, c: c * v, lambda x, c: c * x),
    ('v/c', lambda v, c: v / c, lambda x, c: x / c),
    ('c/v', lambda v, c: c / v, lambda x, c: c / x),
    ('v**c', lambda v, c: v ** c, lambda x, c: x ** c),
    ('c**v', lambda v, c: c ** v, lambda x, c: c ** x),
]


@pytest.mark.parametrize('name,op,ref', OPERATORS)
@pytest.mark.parametrize('const_kind', ['scalar', 'array', 'broadcast_array', 'numpy_scalar'])
def test_operators_with_constants(xp, name, op, ref, const_kind):
    x = _u(xp, (2, 3), 0.5, 2.0, seed=10)
    if const_kind == 'scalar':
        c = 1.5
    elif const_kind == 'numpy_scalar':
        c = numpy.float64(1.5)
    elif const_kind == 'array':
        c = _u(xp, (2, 3), 0.5, 2.0, seed=11)
    else:
        c = _u(xp, (3,), 0.5, 2.0, seed=12)
    y = op(Variable(x), c)
    assert isinstance(y, Variable), '%s returned %s' % (name, type(y))
    assert_allclose(y, ref(_cpu(x), _cpu(c) if hasattr(c, 'shape') and not
                           isinstance(c, numpy.generic) else c), atol=0, rtol=1e-12)
    check_backward(lambda v: op(v, c), x)


@pytest.mark.parametrize('name,op,ref', OPERATORS)
def test_operators_var_var(xp, name, op, ref):
    a = _u(xp, (2, 3), 0.5, 2.0, seed=13)
    b = _u(xp, (3,), 0.5, 2.0, seed=14)
    y = op(Variable(a), Variable(b))
    assert_allclose(y, ref(_cpu(a), _cpu(b)), atol=0, rtol=1e-12)
    check_backward(op, (a, b))


def test_operators_cast_array_constants_to_variable_dtype(xp):
    v = Variable(_u(xp, (3,), 0.5, 2.0, dtype=numpy.float32))
    c = _u(xp, (3,), 0.5, 2.0, seed=3)  # float64 constant
    for y in (v + c, c + v, v - c, c - v, v * c, c * v, v / c, c / v, v ** c, c ** v):
        assert y.dtype == numpy.float32


def test_matmul_operators_and_reflected(xp):
    a = _u(xp, (3, 4), seed=15)
    b = _u(xp, (4, 2), seed=16)
    expected = _cpu(a) @ _cpu(b)
    assert_allclose(Variable(a) @ Variable(b), expected, atol=1e-12, rtol=1e-12)
    assert_allclose(Variable(a) @ b, expected, atol=1e-12, rtol=1e-12)
    assert_allclose(a @ Variable(b), expected, atol=1e-12, rtol=1e-12)
    check_backward(lambda v: v @ b, a)
    check_backward(lambda v: a @ v, b)
    check_backward(lambda u, v: u @ v, (a, b))


def test_unary_operators(xp):
    x = _away_from_zero(xp, (2, 3), seed=17)
    v = Variable(x)
    assert_allclose(-v, -_cpu(x), atol=0, rtol=0)
    assert_allclose(abs(v), numpy.abs(_cpu(x)), atol=0, rtol=0)
    assert (+v) is v
    check_backward(lambda u: -u, x)
    check_backward(lambda u: abs(u), x)


def test_reflected_operators_with_array_on_the_left_return_variables(xp):
    # numpy must defer to Variable's reflected methods instead of broadcasting elementwise
    x = Variable(_u(xp, (2, 2), 0.5, 2.0))
    c = _u(xp, (2, 2), 0.5, 2.0, seed=1)
    for y in (c + x, c - x, c * x, c / x, c ** x, c @ x):
        assert isinstance(y, Variable)
        assert y.shape == (2, 2)
        assert y.creator is not None


def test_operator_with_unsupported_type(xp):
    v = Variable(_u(xp, (2,)))
    with pytest.raises(TypeError):
        v + 'a'
    with pytest.raises(TypeError):
        v * [1.0, 2.0]


def test_chained_expression_gradient(xp):
    # f(x, y) = (x*y + x/y - y**2) summed: df/dx = y + 1/y, df/dy = x - x/y^2 - 2y
    xa = _u(xp, (3,), 0.5, 2.0, seed=18)
    ya = _u(xp, (3,), 0.5, 2.0, seed=19)
    x, y = Variable(xa), Variable(ya)
    F.sum(x * y + x / y - y ** 2).backward()
    xn, yn = _cpu(xa), _cpu(ya)
    assert_allclose(x.grad, yn + 1 / yn, atol=0, rtol=1e-12)
    assert_allclose(y.grad, xn - xn / yn ** 2 - 2 * yn, atol=0, rtol=1e-12)
