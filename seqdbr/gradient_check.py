"""Numerical gradient checking (central differences), the test oracle for every op.

Run it in float64: with ``eps=1e-3`` the central-difference truncation error is
O(eps^2) ~ 1e-6 relative, far below the default tolerances.
"""
import numpy

from seqdbr.core import backend
from seqdbr.core.variable import Variable

__all__ = ['numerical_grad', 'check_backward', 'assert_allclose']


def numerical_grad(f, inputs, grad_outputs, eps=1e-3):
    """Central-difference gradient of ``sum_k <f(inputs)_k, grad_outputs_k>``.

    Args:
        f: callable taking no arguments, returning a tuple of arrays; it reads ``inputs``,
            which this function perturbs in place one element at a time.
        inputs (tuple of arrays): float arrays (perturbed in place, restored afterwards).
        grad_outputs (tuple of arrays or None): weights for each output (None skips it).
        eps (float): step.

    Returns:
        tuple of arrays, the numerical gradient for each input (float64 accumulation).
    """
    grads = []
    for x in inputs:
        xp = backend.get_array_module(x)
        gx = numpy.zeros(x.shape, dtype=numpy.float64)
        flat = x.reshape(-1) if x.flags.c_contiguous else None
        if flat is None:
            raise ValueError('numerical_grad needs C-contiguous inputs')
        for i in range(x.size):
            orig = flat[i].item()
            flat[i] = orig + eps
            ys1 = [backend.to_cpu(y).astype(numpy.float64) for y in f()]
            flat[i] = orig - eps
            ys2 = [backend.to_cpu(y).astype(numpy.float64) for y in f()]
            flat[i] = orig
            s = 0.0
            for y1, y2, gy in zip(ys1, ys2, grad_outputs):
                if gy is None:
                    continue
                s += float(((y1 - y2) * backend.to_cpu(gy)).sum())
            gx.reshape(-1)[i] = s / (2 * eps)
        grads.append(xp.asarray(gx.astype(x.dtype)))
    return tuple(grads)


def assert_allclose(actual, desired, atol=1e-5, rtol=1e-4, err_msg=''):
    """``numpy.testing.assert_allclose`` that accepts CuPy arrays and Variables."""
    a = actual.array if isinstance(actual, Variable) else actual
    d = desired.array if isinstance(desired, Variable) else desired
    numpy.testing.assert_allclose(backend.to_cpu(numpy.asarray(a) if numpy.isscalar(a) else a),
                                  backend.to_cpu(numpy.asarray(d) if numpy.isscalar(d) else d),
                                  atol=atol, rtol=rtol, err_msg=err_msg)


def check_backward(func, inputs, grad_outputs=None, eps=1e-3, atol=1e-5, rtol=1e-4,
                   no_grads=None, dtype=None):
    """Check ``func``'s backward against central differences.

    Args:
        func: callable taking Variables (one per input) and returning a Variable or a tuple
            of Variables.
        inputs (array or tuple of arrays): the input values. Integer arrays and inputs
            marked in ``no_grads`` are passed as constants (no gradient checked).
        grad_outputs (array, tuple or None): upstream gradients; None draws random ones.
        eps, atol, rtol (float): step and tolerances.
        no_grads (sequence of bool or None): True for inputs whose gradient is not checked.
        dtype: cast float inputs (and grad_outputs) to this dtype first (e.g. numpy.float64).

    Raises:
        AssertionError naming the input whose analytic gradient differs.
    """
    if not isinstance(inputs, (tuple, list)):
        inputs = (inputs,)
    inputs = list(inputs)
    for k, x in enumerate(inputs):
        if dtype is not None and x.dtype.kind == 'f':
            inputs[k] = x.astype(dtype)
    if no_grads is None:
        no_grads = [x.dtype.kind != 'f' for x in inputs]
    xs = [Variable(x.copy(), requires_grad=not ng) if not ng else x
          for x, ng in zip(inputs, no_grads)]
    ys = func(*xs)
    if not isinstance(ys, (tuple, list)):
        ys = (ys,)
    ys = list(ys)
    grad_outputs = _grad_outputs(ys, grad_outputs, dtype)
    _backprop_dot(ys, grad_outputs, xs)

    def f():
        out = func(*[Variable(x.array, requires_grad=False) if isinstance(x, Variable) else x
                     for x in xs])
        if not isinstance(out, (tuple, list)):
            out = (out,)
        return tuple(o.array if o is not None else None for o in out)

    checked = [k for k, x in enumerate(xs) if isinstance(x, Variable)]
    num = numerical_grad(lambda: [o for o in f() if o is not None],
                         tuple(xs[k].array for k in checked),
                         [g for g, y in zip(grad_outputs, ys) if y is not None], eps=eps)
    for k, gnum in zip(checked, num):
        ganal = xs[k].grad
        xp = backend.get_array_module(gnum)
        if ganal is None:
            ganal = xp.zeros_like(gnum)
        if ganal.shape != gnum.shape:
            raise AssertionError('input %d: gradient shape %s != input shape %s'
                                 % (k, ganal.shape, gnum.shape))
        if ganal.dtype != xs[k].array.dtype:
            raise AssertionError('input %d: gradient dtype %s != input dtype %s'
                                 % (k, ganal.dtype, xs[k].array.dtype))
        assert_allclose(ganal, gnum, atol=atol, rtol=rtol,
                        err_msg='analytic vs numerical gradient of input %d' % k)


def _grad_outputs(ys, grad_outputs, dtype):
    """One upstream gradient per output (random U(-1, 1) when None), cast to ``dtype``."""
    rng = numpy.random.RandomState(0)
    if grad_outputs is None:
        grad_outputs = []
        for y in ys:
            if y is None:
                grad_outputs.append(None)
                continue
            xp = backend.get_array_module(y.array)
            grad_outputs.append(xp.asarray(rng.uniform(-1, 1, y.shape).astype(y.dtype)))
    elif not isinstance(grad_outputs, (tuple, list)):
        grad_outputs = (grad_outputs,)
    grad_outputs = [None if g is None else
                    (g.astype(dtype) if dtype is not None and g.dtype.kind == 'f' else g)
                    for g in grad_outputs]
    if len(grad_outputs) != len(ys):
        raise ValueError('check_backward: %d grad_outputs for %d outputs'
                         % (len(grad_outputs), len(ys)))
    return grad_outputs


def _backprop_dot(ys, grad_outputs, xs):
    """Fill the inputs' ``.grad`` with the gradient of ``sum_k <y_k, gy_k>``."""
    from seqdbr.core.functions import basic_math  # noqa: F401  (operators)
    total = None
    for y, gy in zip(ys, grad_outputs):
        if y is None or gy is None:
            continue
        term = _Dot(gy)(y)
        total = term if total is None else total + term
    for x in xs:
        if isinstance(x, Variable):
            x.cleargrad()
    if total is not None:
        total.backward()


class _Dot:
    """sum(y * gy) as a graph op, used to seed check_backward with arbitrary grad_outputs."""

    def __init__(self, gy):
        self.gy = gy

    def __call__(self, y):
        from seqdbr.core.function_node import FunctionNode

        gy = self.gy

        class Dot(FunctionNode):
            def forward(self, inputs):
                xp = backend.get_array_module(inputs[0])
                return (xp.asarray((inputs[0] * gy).sum(), dtype=inputs[0].dtype),)

            def backward(self, indexes, gys):
                return (gys[0] * gy,)

        return Dot().apply((y,))[0]
