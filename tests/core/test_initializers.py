"""Initializers: distributions (statistical tolerances from the sample size), orthogonality,
the shared seeded generator, specs and errors."""
import numpy
import pytest

from seqdbr.core import initializers as I
from seqdbr.core.variable import Parameter


def _draw(init, shape, dtype=numpy.float64):
    a = numpy.empty(shape, dtype=dtype)
    init(a)
    return a


def _check_normal(w, std):
    """Mean 0 and standard deviation ``std``, within 5 standard errors of the estimators."""
    n = w.size
    assert abs(w.mean()) < 5 * std / numpy.sqrt(n)
    # std error of the sample std of a normal sample: std / sqrt(2 n)
    assert abs(w.std() - std) < 5 * std / numpy.sqrt(2 * n)


def _check_uniform(w, a):
    n = w.size
    assert w.min() >= -a and w.max() <= a
    # the extremes of n uniform draws are within a few a/n of the bounds
    assert w.max() > a * (1 - 20.0 / n) and w.min() < -a * (1 - 20.0 / n)
    var = a * a / 3
    se_var = numpy.sqrt(4.0 / 45.0) * a * a / numpy.sqrt(n)  # Var(X^2) = 4 a^4 / 45
    assert abs(w.var() - var) < 5 * se_var
    assert abs(w.mean()) < 5 * numpy.sqrt(var / n)


def test_get_fans_dense_and_conv():
    assert I.get_fans((7, 3)) == (3, 7)
    assert I.get_fans((8, 4, 3, 2)) == (4 * 6, 8 * 6)
    with pytest.raises(ValueError, match=r'\(out, in, \.\.\.\)'):
        I.get_fans((5,))


def test_lecun_normal_std():
    I.set_seed(1)
    w = _draw(I.LeCunNormal(), (800, 250))
    _check_normal(w, numpy.sqrt(1.0 / 250))
    w = _draw(I.LeCunNormal(scale=3.0), (600, 100))
    _check_normal(w, 3.0 * numpy.sqrt(1.0 / 100))


def test_lecun_normal_uses_receptive_field_for_4d():
    I.set_seed(2)
    w = _draw(I.LeCunNormal(), (100, 20, 5, 5))
    _check_normal(w, numpy.sqrt(1.0 / (20 * 25)))


def test_glorot_and_he():
    I.set_seed(3)
    fan_in, fan_out = 300, 500
    _check_normal(_draw(I.GlorotNormal(), (fan_out, fan_in)),
                  numpy.sqrt(2.0 / (fan_in + fan_out)))
    _check_uniform(_draw(I.GlorotUniform(), (fan_out, fan_in)),
                   numpy.sqrt(6.0 / (fan_in + fan_out)))
    _check_normal(_draw(I.HeNormal(), (fan_out, fan_in)), numpy.sqrt(2.0 / fan_in))
    _check_uniform(_draw(I.HeUniform(), (fan_out, fan_in)), numpy.sqrt(6.0 / fan_in))
    _check_uniform(_draw(I.LeCunUniform(), (fan_out, fan_in)), numpy.sqrt(3.0 / fan_in))


def test_normal_and_uniform_scale():
    I.set_seed(4)
    _check_normal(_draw(I.Normal(0.3), (400, 300)), 0.3)
    _check_normal(_draw(I.Normal(), (400, 300)), 0.05)
    _check_uniform(_draw(I.Uniform(2.0), (400, 300)), 2.0)
    # vectors are fine for non-fan initializers
    assert _draw(I.Normal(1.0), (10,)).shape == (10,)


@pytest.mark.parametrize('shape', [(5, 5), (4, 9), (9, 4), (3, 2, 2, 2), (6, 2, 2)])
@pytest.mark.parametrize('scale', [1.0, 1.7])
def test_orthogonal(shape, scale):
    I.set_seed(5)
    w = _draw(I.Orthogonal(scale=scale), shape)
    m = w.reshape(shape[0], -1)
    rows, cols = m.shape
    if rows <= cols:
        numpy.testing.assert_allclose(m @ m.T, scale ** 2 * numpy.eye(rows), atol=1e-12)
    else:
        numpy.testing.assert_allclose(m.T @ m, scale ** 2 * numpy.eye(cols), atol=1e-12)


def test_orthogonal_is_unbiased():
    """Haar-distributed Q has E[Q_00] = 0 (Var 1/n); an un-sign-fixed QR is biased."""
    I.set_seed(6)
    n, draws = 4, 400
    vals = [_draw(I.Orthogonal(), (n, n))[0, 0] for _ in range(draws)]
    assert abs(numpy.mean(vals)) < 5 * numpy.sqrt(1.0 / n / draws)


def test_orthogonal_needs_matrix():
    with pytest.raises(ValueError, match='at least 2 dimensions'):
        _draw(I.Orthogonal(), (5,))


def test_set_seed_reproduces_and_seeds_differ():
    shape = (6, 7)
    for cls in (I.LeCunNormal, I.GlorotUniform, I.HeNormal, I.Orthogonal, I.Normal, I.Uniform):
        I.set_seed(123)
        a = _draw(cls(), shape)
        I.set_seed(123)
        b = _draw(cls(), shape)
        I.set_seed(124)
        c = _draw(cls(), shape)
        numpy.testing.assert_array_equal(a, b)
        assert not numpy.array_equal(a, c), cls.__name__


def test_draws_come_from_get_rng():
    I.set_seed(9)
    expected = numpy.random.default_rng(9).normal(0.0, 0.5, size=(3, 4))
    numpy.testing.assert_array_equal(_draw(I.Normal(0.5), (3, 4)), expected)
    assert isinstance(I.get_rng(), numpy.random.Generator)


def test_explicit_rng_does_not_touch_shared_generator():
    I.set_seed(10)
    before = I.get_rng().bit_generator.state
    a = _draw(I.Normal(1.0, rng=numpy.random.default_rng(77)), (4, 4))
    assert I.get_rng().bit_generator.state == before
    numpy.testing.assert_array_equal(a, numpy.random.default_rng(77).normal(0, 1, (4, 4)))
    with pytest.raises(TypeError, match='Generator'):
        I.Normal(rng=numpy.random.RandomState(0))


def test_parameters_reproducible_through_set_seed():
    I.set_seed(0)
    p1 = Parameter(None, (5, 3))
    I.set_seed(0)
    p2 = Parameter(None, (5, 3))
    numpy.testing.assert_array_equal(p1.array, p2.array)
    assert p1.array.dtype == numpy.float32


def test_cast_to_target_dtype():
    I.set_seed(11)
    a32 = _draw(I.Normal(1.0), (3, 3), numpy.float32)
    I.set_seed(11)
    a64 = _draw(I.Normal(1.0), (3, 3), numpy.float64)
    assert a32.dtype == numpy.float32
    numpy.testing.assert_array_equal(a32, a64.astype(numpy.float32))


def test_initializer_dtype_wins_in_parameter():
    p = Parameter(I.Normal(1.0, dtype=numpy.float64), (2, 2))
    assert p.array.dtype == numpy.float64


def test_constant_scalar_array_zero_one():
    numpy.testing.assert_array_equal(_draw(I.Constant(2.5), (2, 3)), numpy.full((2, 3), 2.5))
    numpy.testing.assert_array_equal(_draw(I.Zero(), (4,)), numpy.zeros(4))
    numpy.testing.assert_array_equal(_draw(I.One(), (4,)), numpy.ones(4))
    src = numpy.arange(6.0).reshape(2, 3)
    init = I.Constant(src)
    src[0, 0] = 100.0  # the initializer keeps its own copy
    numpy.testing.assert_array_equal(_draw(init, (2, 3)), numpy.arange(6.0).reshape(2, 3))


def test_constant_shape_mismatch():
    with pytest.raises(ValueError, match=r'shape \(2, 3\).*shape \(3, 2\)'):
        _draw(I.Constant(numpy.zeros((2, 3))), (3, 2))


def test_integer_target_rejected():
    with pytest.raises(TypeError, match='floating point'):
        I.LeCunNormal()(numpy.zeros((2, 2), dtype=numpy.int32))
    with pytest.raises(TypeError, match='in place'):
        I.Zero()([[0.0]])


def test_get_initializer_specs():
    assert isinstance(I.get_initializer(None), I.LeCunNormal)
    c = I.get_initializer(3)
    assert isinstance(c, I.Constant)
    numpy.testing.assert_array_equal(_draw(c, (2,)), [3.0, 3.0])
    arr = numpy.ones((2, 2))
    ca = I.get_initializer(arr)
    assert isinstance(ca, I.Constant) and ca.fill_value is not arr
    he = I.HeNormal()
    assert I.get_initializer(he) is he
    for bad in ('normal', [1.0, 2.0], True):
        with pytest.raises(TypeError):
            I.get_initializer(bad)


@pytest.mark.parametrize('shape', [(0, 3), (3, 0), (0,), (2, 0, 4)])
@pytest.mark.parametrize('make', [I.Orthogonal, I.LeCunNormal, I.GlorotUniform, I.HeNormal,
                                  lambda: I.Constant(2.0)])
def test_zero_size_array_ok(shape, make):
    """A zero-size parameter is filled without a warning (fan 0 must not divide by zero),
    keeps its shape and dtype, and draws nothing from the shared generator, so the
    parameters initialized after it are the same as without it."""
    import warnings
    I.set_seed(4)
    a = numpy.empty(shape, dtype=numpy.float32)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        make()(a)
    assert a.shape == shape and a.dtype == numpy.float32
    after = _draw(I.LeCunNormal(), (3, 2))
    I.set_seed(4)
    numpy.testing.assert_array_equal(after, _draw(I.LeCunNormal(), (3, 2)))


def test_fills_device_arrays(xp):
    I.set_seed(12)
    a = xp.empty((5, 4), dtype=xp.float32)
    I.GlorotNormal()(a)
    I.set_seed(12)
    b = _draw(I.GlorotNormal(), (5, 4), numpy.float32)
    numpy.testing.assert_array_equal(a if xp is numpy else a.get(), b)


def test_repr():
    assert repr(I.HeNormal(scale=2.0)) == 'HeNormal(scale=2)'
    assert repr(I.Constant(0.5)) == 'Constant(0.5)'
