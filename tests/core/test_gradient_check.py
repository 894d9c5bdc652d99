"""The test oracle tested: ``seqdbr.gradient_check.check_backward`` must reject an analytic
gradient with a wrong sign, a missing term or a transposed weight gradient, and accept the
right one, over several shapes (batch 1, zero-size); ``numerical_grad`` must equal derivatives
worked out by hand.

A checker that compared the numerical gradient with itself would pass every gradient test in
the suite; the ``wrong`` cases here are what fails then.
"""
import numpy
import pytest

from seqdbr.core.function_node import FunctionNode
from seqdbr.core.variable import Variable
from seqdbr.gradient_check import assert_allclose, check_backward, numerical_grad


class _Linear(FunctionNode):
    """y = x W^T + b, with a backward that can be broken on purpose (``bug``)."""

    def __init__(self, bug=None):
        self.bug = bug

    def forward(self, inputs):
        x, W, b = inputs
        self.retain_inputs((0, 1))
        return (x @ W.T + b,)

    def backward(self, indexes, grad_outputs):
        x, W = self.get_retained_inputs()
        (gy,) = grad_outputs
        gx = gy @ W
        gW = gy.T @ x
        gb = gy.sum(axis=0)
        if self.bug == 'sign':
            gx = -gx
        elif self.bug == 'transposed_gW':
            gW = gW.T.copy()
        elif self.bug == 'missing_gb':
            gb = None
        elif self.bug == 'scaled':            # off by 0.1 %: above rtol=1e-4
            gx = gx * 1.001
        return gx, gW, gb


class _XExpX(FunctionNode):
    """y = x * exp(x); dy/dx = exp(x) + x exp(x) (product rule: two terms)."""

    def __init__(self, bug=None):
        self.bug = bug

    def forward(self, inputs):
        (x,) = inputs
        self.retain_inputs((0,))
        return (x * numpy.exp(x),)

    def backward(self, indexes, grad_outputs):
        (x,) = self.get_retained_inputs()
        (gy,) = grad_outputs
        if self.bug == 'missing_term':
            return (gy * x * numpy.exp(x),)
        return (gy * (numpy.exp(x) + x * numpy.exp(x)),)


class _TwoOutputs(FunctionNode):
    """(x + y, x * y): the gradient of x sums over both outputs."""

    def __init__(self, bug=None):
        self.bug = bug

    def forward(self, inputs):
        x, y = inputs
        self.retain_inputs((0, 1))
        return x + y, x * y

    def backward(self, indexes, grad_outputs):
        x, y = self.get_retained_inputs()
        g1, g2 = grad_outputs
        g1 = 0 * x if g1 is None else g1
        g2 = 0 * x if g2 is None else g2
        gx = g1 + g2 * y
        if self.bug == 'first_output_only':
            gx = g1
        return gx, g1 + g2 * x


def _linear(bug=None):
    return lambda x, W, b: _Linear(bug).apply((x, W, b))[0]


def _linear_inputs(B, n):
    rs = numpy.random.RandomState(B * 10 + n)
    return rs.randn(B, n), rs.randn(n, n), rs.randn(n)     # square W: a transposed gW fits


@pytest.mark.parametrize('B,n', [(1, 3), (4, 3), (2, 5), (0, 3)])
def test_accepts_the_right_linear_gradient(B, n):
    check_backward(_linear(), _linear_inputs(B, n), dtype=numpy.float64)


@pytest.mark.parametrize('bug,input_index', [('sign', 0), ('transposed_gW', 1),
                                             ('missing_gb', 2), ('scaled', 0)])
@pytest.mark.parametrize('B,n', [(1, 3), (4, 3), (2, 5)])
def test_rejects_a_wrong_linear_gradient(bug, input_index, B, n):
    with pytest.raises(AssertionError, match='gradient of input %d' % input_index):
        check_backward(_linear(bug), _linear_inputs(B, n), dtype=numpy.float64)


@pytest.mark.parametrize('shape', [(1,), (3, 4), ()])
def test_product_rule_missing_term_is_rejected(shape):
    x = numpy.asarray(numpy.random.RandomState(0).randn(*shape))
    f_ok = lambda v: _XExpX().apply((v,))[0]                    # noqa: E731
    f_bad = lambda v: _XExpX('missing_term').apply((v,))[0]     # noqa: E731
    check_backward(f_ok, x)
    with pytest.raises(AssertionError, match='gradient of input 0'):
        check_backward(f_bad, x)


def test_multiple_outputs_each_contribute():
    rs = numpy.random.RandomState(1)
    xs = (rs.randn(2, 3), rs.randn(2, 3))
    check_backward(lambda x, y: _TwoOutputs().apply((x, y)), xs)
    with pytest.raises(AssertionError, match='gradient of input 0'):
        check_backward(lambda x, y: _TwoOutputs('first_output_only').apply((x, y)), xs)
    # a zero upstream gradient for the second output makes the bug invisible, as it should
    gys = (rs.randn(2, 3), numpy.zeros((2, 3)))
    check_backward(lambda x, y: _TwoOutputs('first_output_only').apply((x, y)), xs, gys)


def test_constants_are_not_checked():
    """``no_grads`` (and integer inputs) are passed as constants: a wrong gradient for such
    an input is not looked at, a wrong one for a checked input still is."""
    args = _linear_inputs(3, 2)
    check_backward(_linear('sign'), args, no_grads=[True, False, False])
    with pytest.raises(AssertionError, match='input 1'):
        check_backward(_linear('transposed_gW'), args, no_grads=[True, False, False])


def test_wrong_shape_and_dtype_are_named():
    class BadShape(_Linear):
        def backward(self, indexes, grad_outputs):
            gx, gW, gb = super().backward(indexes, grad_outputs)
            return gx, gW, gb[:-1]

    class BadDtype(_Linear):
        def backward(self, indexes, grad_outputs):
            gx, gW, gb = super().backward(indexes, grad_outputs)
            return gx.astype(numpy.float32), gW, gb

    args = _linear_inputs(2, 3)
    with pytest.raises(AssertionError, match=r'gradient (shape|dtype)'):
        check_backward(lambda *v: BadShape().apply(v)[0], args)
    with pytest.raises(AssertionError) as e:
        check_backward(lambda *v: BadDtype().apply(v)[0], args)
    assert str(e.value) == 'input 0: gradient dtype float32 != input dtype float64'


def test_given_grad_outputs_and_dtype_cast():
    """An explicit upstream gradient is used (a zero one hides any error), and ``dtype``
    casts float inputs, leaving the caller's arrays alone."""
    args = tuple(a.astype(numpy.float32) for a in _linear_inputs(2, 3))
    saved = [a.copy() for a in args]
    check_backward(_linear('sign'), args, grad_outputs=numpy.zeros((2, 3)),
                   dtype=numpy.float64)
    with pytest.raises(AssertionError):
        check_backward(_linear('sign'), args, grad_outputs=numpy.ones((2, 3)),
                       dtype=numpy.float64)
    for a, s in zip(args, saved):
        assert a.dtype == numpy.float32
        numpy.testing.assert_array_equal(a, s)
    with pytest.raises(ValueError, match='2 grad_outputs for 1 outputs'):
        check_backward(_linear(), args, grad_outputs=(numpy.ones((2, 3)),) * 2,
                       dtype=numpy.float64)


def test_numerical_grad_equals_hand_derivatives():
    """d/dx sum(gy * x^3) = 3 x^2 gy and d/dy sum(gy * x * y) = x gy, to O(eps^2)."""
    rs = numpy.random.RandomState(2)
    x, y, gy = rs.randn(3, 2), rs.randn(3, 2), rs.randn(3, 2)
    x0, y0 = x.copy(), y.copy()
    gx, gyy = numerical_grad(lambda: (x ** 3, x * y), (x, y), (gy, gy), eps=1e-4)
    numpy.testing.assert_allclose(gx, 3 * x ** 2 * gy + y * gy, rtol=1e-7, atol=1e-9)
    numpy.testing.assert_allclose(gyy, x * gy, rtol=1e-7, atol=1e-9)
    numpy.testing.assert_array_equal(x, x0)                 # perturbations undone
    numpy.testing.assert_array_equal(y, y0)
    # a None weight skips that output
    (gx,) = numerical_grad(lambda: (x ** 3, x * y), (x,), (None, gy), eps=1e-4)
    numpy.testing.assert_allclose(gx, y * gy, rtol=1e-7, atol=1e-9)
    # eps is the step: with a large one the truncation error of x^3 shows (exactly eps^2 gy)
    (gx,) = numerical_grad(lambda: (x ** 3,), (x,), (gy,), eps=0.1)
    numpy.testing.assert_allclose(gx, (3 * x ** 2 + 0.01) * gy, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match='C-contiguous'):
        numerical_grad(lambda: (x,), (numpy.asfortranarray(rs.randn(3, 2)),), (gy,))


def test_assert_allclose_accepts_variables_and_scalars():
    assert_allclose(Variable(numpy.array([1.0, 2.0])), numpy.array([1.0, 2.0 + 1e-7]))
    assert_allclose(2.0, numpy.float64(2.0))
    with pytest.raises(AssertionError, match='context'):
        assert_allclose(numpy.array([1.0]), numpy.array([1.01]), err_msg='context')
    with pytest.raises(AssertionError):
        assert_allclose(numpy.array([1.0]), numpy.array([1.0 + 2e-4]), atol=0, rtol=1e-4)
    assert_allclose(numpy.array([1.0]), numpy.array([1.0 + 2e-4]), atol=0, rtol=1e-3)


# -- options and edge cases (from mutation-testing survivors) ----------------------------------

class _IgnoresUpstream(FunctionNode):
    """y = 2x with a backward that forgets the upstream gradient (right only when gy = 1)."""

    def forward(self, inputs):
        return (2 * inputs[0],)

    def backward(self, indexes, grad_outputs):
        return (2 * numpy.ones_like(grad_outputs[0]),)


class _Recorder(FunctionNode):
    """y = x; records the upstream gradients it receives."""
    seen = []

    def forward(self, inputs):
        return (inputs[0].copy(),)

    def backward(self, indexes, grad_outputs):
        _Recorder.seen.append(grad_outputs[0].copy())
        return (grad_outputs[0],)


def _cube(x):
    class Cube(FunctionNode):
        def forward(self, inputs):
            self.retain_inputs((0,))
            return (inputs[0] ** 3,)

        def backward(self, indexes, gys):
            (x,) = self.get_retained_inputs()
            return (3 * x ** 2 * gys[0],)
    return Cube().apply((x,))[0]


def test_default_upstream_gradients_are_random_and_reproducible():
    x = numpy.random.RandomState(3).randn(4, 3)
    with pytest.raises(AssertionError):
        check_backward(lambda v: _IgnoresUpstream().apply((v,))[0], x)
    _Recorder.seen = []
    for _ in range(2):
        check_backward(lambda v: _Recorder().apply((v,))[0], x)
    a, b = _Recorder.seen
    numpy.testing.assert_array_equal(a, b)                  # same draw every call
    assert a.min() < 0 < a.max() and len(numpy.unique(a)) == a.size


def test_outputs_that_are_none_are_skipped():
    rs = numpy.random.RandomState(4)
    xs = (rs.randn(2, 3), rs.randn(2, 3))

    def f(x, y):
        s, p = _TwoOutputs().apply((x, y))
        return None, p, s

    check_backward(f, xs)
    check_backward(f, xs, grad_outputs=(rs.randn(2, 3), rs.randn(2, 3), rs.randn(2, 3)))
    check_backward(f, xs, grad_outputs=(None, rs.randn(2, 3), None))
    check_backward(f, xs, grad_outputs=(None, rs.randn(2, 3), None), dtype=numpy.float64)
    with pytest.raises(AssertionError, match='gradient of input 0'):
        check_backward(lambda x, y: (None,) + tuple(
            _TwoOutputs('first_output_only').apply((x, y))), xs)


def test_eps_atol_and_rtol_are_used():
    x = numpy.array([1.0, -2.0, 0.5])
    check_backward(_cube, x)
    # with eps = 0.1 the central difference of x^3 is off by eps^2 = 0.01 per unit of gy
    with pytest.raises(AssertionError):
        check_backward(_cube, x, eps=0.1)
    check_backward(_cube, x, eps=0.1, atol=0.05, rtol=0)
    args = _linear_inputs(2, 3)
    check_backward(_linear('scaled'), args, atol=0, rtol=0.01)     # 0.1 % off: accepted
    with pytest.raises(AssertionError):
        check_backward(_linear('scaled'), args, atol=1e-9, rtol=1e-5)


def test_dtype_casts_and_float32_is_kept_without_it():
    seen = []

    def f(x):
        seen.append(x.dtype)
        return _XExpX().apply((x,))[0]

    x32 = numpy.linspace(-1, 1, 5).astype(numpy.float32)
    check_backward(f, x32, atol=1e-3, rtol=1e-2)
    assert set(seen) == {numpy.dtype(numpy.float32)}
    seen.clear()
    check_backward(f, x32.astype(numpy.float64), dtype=numpy.float32, eps=1e-2, atol=1e-3,
                   rtol=1e-2)
    assert set(seen) == {numpy.dtype(numpy.float32)}
    (g,) = numerical_grad(lambda: (x32 * 2,), (x32,), (numpy.ones(5, numpy.float32),))
    assert g.dtype == numpy.float32
    numpy.testing.assert_allclose(g, 2.0, rtol=1e-3)


def test_messages_in_full():
    with pytest.raises(ValueError) as e:
        numerical_grad(lambda: (numpy.zeros(2),),
                       (numpy.asfortranarray(numpy.zeros((2, 2))),), (None,))
    assert str(e.value) == 'numerical_grad needs C-contiguous inputs'
    with pytest.raises(ValueError) as e:
        check_backward(_linear(), _linear_inputs(2, 3), grad_outputs=(None, None, None))
    assert str(e.value) == 'check_backward: 3 grad_outputs for 1 outputs'

    class BadShape(_Linear):
        def backward(self, indexes, grad_outputs):
            gx, gW, gb = super().backward(indexes, grad_outputs)
            return gx, gW, gb[:-1]

    with pytest.raises(AssertionError) as e:
        check_backward(lambda *v: BadShape().apply(v)[0], _linear_inputs(2, 3))
    assert str(e.value) in ('input 2: gradient shape (2,) != input shape (3,)',)
    with pytest.raises(AssertionError,
                       match=r'(?m)^analytic vs numerical gradient of input 1$'):
        check_backward(_linear('transposed_gW'), _linear_inputs(2, 3))


def test_assert_allclose_defaults_and_variables_on_both_sides():
    assert_allclose(numpy.array([0.0]), numpy.array([5e-6]))        # default atol 1e-5
    with pytest.raises(AssertionError):
        assert_allclose(numpy.array([0.0]), numpy.array([5e-5]))
    assert_allclose(numpy.array([1000.0]), numpy.array([1000.05]))   # default rtol 1e-4
    v = Variable(numpy.array([1.0, 2.0]))
    assert_allclose(v, Variable(numpy.array([1.0, 2.0])))
    assert_allclose(numpy.array([1.0, 2.0]), v)
    with pytest.raises(AssertionError):
        assert_allclose(v, Variable(numpy.array([1.0, 2.5])))


def test_default_eps_and_plain_failure_message():
    x = numpy.array([1.0, -2.0, 0.5])
    gy = numpy.array([1.0, 2.0, -1.0])
    (g,) = numerical_grad(lambda: (x ** 3,), (x,), (gy,))      # eps = 1e-3 by default
    numpy.testing.assert_allclose(g, (3 * x ** 2 + 1e-6) * gy, rtol=1e-9, atol=1e-12)
    a, d = numpy.array([1.0, 2.0]), numpy.array([1.0, 3.0])
    with pytest.raises(AssertionError) as ours:
        assert_allclose(a, d)
    with pytest.raises(AssertionError) as plain:
        numpy.testing.assert_allclose(a, d, atol=1e-5, rtol=1e-4)
    assert str(ours.value) == str(plain.value)       # no err_msg: numpy's message unchanged
