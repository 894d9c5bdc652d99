"""Tests of the fused LSTM cell ``seqdbr.functions.lstm``."""
import warnings

import numpy
import pytest

import seqdbr.functions as F
from seqdbr.core import backend
from seqdbr.core.variable import Variable
from seqdbr.gradient_check import check_backward, assert_allclose

# every test here runs with the compiled CPU cell kernel and with the NumPy code
pytestmark = pytest.mark.usefixtures('cpu_path')


def _sigmoid(x):
    # reference written independently of the library: float64, the textbook formula
    return 1.0 / (1.0 + numpy.exp(-x))


def ref_lstm(c_prev, x):
    """Plain NumPy LSTM step (gate layout [i | f | g | o], shrinking batch)."""
    c_prev = numpy.asarray(c_prev, dtype=numpy.float64)
    x = numpy.asarray(x, dtype=numpy.float64)
    B, H = c_prev.shape
    Bx = x.shape[0]
    i = _sigmoid(x[:, :H])
    f = _sigmoid(x[:, H:2 * H])
    g = numpy.tanh(x[:, 2 * H:3 * H])
    o = _sigmoid(x[:, 3 * H:])
    c = c_prev.copy()
    c[:Bx] = f * c_prev[:Bx] + i * g
    h = o * numpy.tanh(c[:Bx])
    return c, h


def test_hand_computed_step():
    # H = 1, c_prev = 0.5, pre-activations i=0.2, f=0.3, g=0.1, o=0.4 (figures given)
    c, h = F.lstm(numpy.array([[0.5]]), numpy.array([[0.2, 0.3, 0.1, 0.4]]))
    assert c.dtype == numpy.float64 and h.dtype == numpy.float64
    assert abs(c.array.item() - 0.3420221102945875) < 1e-12
    assert abs(h.array.item() - 0.19713674319965133) < 1e-12


@pytest.mark.parametrize('dtype,tol', [(numpy.float32, 1e-6), (numpy.float64, 1e-13)])
def test_matches_numpy_reference(xp, dtype, tol):
    rng = numpy.random.RandomState(0)
    c_prev = rng.randn(5, 7).astype(dtype)
    x = (rng.randn(5, 28) * 3).astype(dtype)
    c, h = F.lstm(xp.asarray(c_prev), xp.asarray(x))
    assert c.shape == (5, 7) and h.shape == (5, 7)
    assert c.dtype == dtype and h.dtype == dtype
    rc, rh = ref_lstm(c_prev, x)
    assert_allclose(c.array, rc, atol=tol, rtol=tol)
    assert_allclose(h.array, rh, atol=tol, rtol=tol)


def test_gate_layout_is_ifgo():
    # Only the forget gate open (f -> 1, i -> 0): c = c_prev exactly; only the output gate
    # block decides h: with o -> 0, h = 0.
    H = 3
    c_prev = numpy.array([[0.3, -0.2, 0.9]])
    x = numpy.zeros((1, 4 * H))
    x[:, :H] = -50      # i closed
    x[:, H:2 * H] = 50  # f open
    x[:, 2 * H:3 * H] = 5
    x[:, 3 * H:] = -50  # o closed
    c, h = F.lstm(c_prev, x)
    assert_allclose(c.array, c_prev, atol=1e-15, rtol=0)
    assert_allclose(h.array, numpy.zeros((1, H)), atol=1e-15, rtol=0)


def _check(c_prev, x, gc=True, gh=True):
    rng = numpy.random.RandomState(1)

    def f(c, xx):
        return F.lstm(c, xx)
    gcs = rng.uniform(-1, 1, c_prev.shape) if gc else None
    ghs = rng.uniform(-1, 1, (x.shape[0], c_prev.shape[1])) if gh else None
    check_backward(f, (c_prev, x), (gcs, ghs), dtype=numpy.float64, atol=1e-7, rtol=1e-6)


@pytest.mark.parametrize('B,H', [(1, 1), (3, 4)])
def test_gradient_both_outputs(B, H):
    rng = numpy.random.RandomState(B * 10 + H)
    _check(rng.randn(B, H), rng.randn(B, 4 * H))


def test_gradient_only_h_used():
    rng = numpy.random.RandomState(2)
    _check(rng.randn(3, 2), rng.randn(3, 8), gc=False)


def test_gradient_only_c_used():
    rng = numpy.random.RandomState(3)
    _check(rng.randn(3, 2), rng.randn(3, 8), gh=False)


def test_gradient_shrinking_batch():
    rng = numpy.random.RandomState(4)
    _check(rng.randn(4, 3), rng.randn(2, 12))
    _check(rng.randn(4, 3), rng.randn(2, 12), gc=False)
    _check(rng.randn(4, 3), rng.randn(1, 12), gh=False)


def test_gradient_matches_hand_derivation():
    # d c / d c_prev = f, d h / d x_o = tanh(c) o (1 - o): checked against the closed forms
    c_prev = numpy.array([[0.5]])
    x = numpy.array([[0.2, 0.3, 0.1, 0.4]])
    cv = Variable(c_prev.copy())
    xv = Variable(x.copy())
    c, h = F.lstm(cv, xv)
    c.grad = numpy.ones_like(c.array)
    c.backward()
    assert abs(cv.grad.item() - _sigmoid(0.3)) < 1e-15
    cv2 = Variable(c_prev.copy())
    xv2 = Variable(x.copy())
    c2, h2 = F.lstm(cv2, xv2)
    h2.grad = numpy.ones_like(h2.array)
    h2.backward()
    o = _sigmoid(0.4)
    expect_go = numpy.tanh(c2.array.item()) * o * (1 - o)
    assert abs(xv2.grad[0, 3] - expect_go) < 1e-15


def test_shrinking_batch_pass_through(xp):
    rng = numpy.random.RandomState(5)
    c_prev = rng.randn(5, 3).astype(numpy.float32)
    x = rng.randn(2, 12).astype(numpy.float32)
    cv = Variable(xp.asarray(c_prev))
    xv = Variable(xp.asarray(x))
    c, h = F.lstm(cv, xv)
    assert c.shape == (5, 3) and h.shape == (2, 3)
    ca = backend.to_cpu(c.array)
    numpy.testing.assert_array_equal(ca[2:], c_prev[2:])   # exactly unchanged
    rc, rh = ref_lstm(c_prev[:2], x)
    numpy.testing.assert_allclose(ca[:2], rc, rtol=1e-6, atol=1e-6)
    numpy.testing.assert_allclose(backend.to_cpu(h.array), rh, rtol=1e-6, atol=1e-6)
    gc = rng.randn(5, 3).astype(numpy.float32)
    c.grad = xp.asarray(gc)
    c.backward()
    # the gradient of the passed-through rows is the upstream gradient itself
    numpy.testing.assert_array_equal(backend.to_cpu(cv.grad)[2:], gc[2:])
    assert xv.grad.shape == (2, 12)


def test_extreme_inputs_no_warning_and_finite():
    # |pre-activation| = 1e4 overflows a naive exp(-x) in both float32 and float64
    x = numpy.array([[1e4, -1e4, -1e4, 1e4, -1e4, 1e4, 1e4, -1e4]])
    c_prev = numpy.array([[2.0, -3.0]])
    for dtype in (numpy.float32, numpy.float64):
        with warnings.catch_warnings():
            warnings.simplefilter('error')
            with numpy.errstate(all='raise'):
                cv = Variable(c_prev.astype(dtype))
                xv = Variable(x.astype(dtype))
                c, h = F.lstm(cv, xv)
                (F.sum(c) + F.sum(h)).backward()
        # i = (1, 0), f = (0, 1), g = (-1, 1), o = (1, 0): c = (-1, -3), h = (tanh(-1), 0)
        numpy.testing.assert_allclose(c.array, [[-1.0, -3.0]])
        # (the compiled float32 kernel clamps exp at e^88, so a saturated sigmoid may be a
        # subnormal ~6e-39 rather than exactly 0)
        numpy.testing.assert_allclose(h.array, [[numpy.tanh(-1.0), 0.0]], rtol=1e-6,
                                      atol=1e-37)
        assert numpy.isfinite(cv.grad).all() and numpy.isfinite(xv.grad).all()


@pytest.mark.parametrize('c_shape,x_shape,exc,words', [
    ((2, 3), (2, 11), ValueError, ['4 * H = 12', '(2, 11)']),
    ((2, 3), (3, 12), ValueError, ['never grow', '(3, 12)', '(2, 3)']),
    ((2, 3, 1), (2, 12), ValueError, ['(B, H)']),
])
def test_bad_shapes(c_shape, x_shape, exc, words):
    with pytest.raises(exc) as e:
        F.lstm(numpy.zeros(c_shape, numpy.float32), numpy.zeros(x_shape, numpy.float32))
    for w in words:
        assert w in str(e.value)


def test_bad_dtypes():
    with pytest.raises(TypeError, match='float64'):
        F.lstm(numpy.zeros((2, 3), numpy.float32), numpy.zeros((2, 12), numpy.float64))
    with pytest.raises(TypeError, match='float array'):
        F.lstm(numpy.zeros((2, 3), numpy.int32), numpy.zeros((2, 12), numpy.int32))


@pytest.mark.gpu
def test_gpu_matches_cpu():
    import cupy
    rng = numpy.random.RandomState(6)
    c_prev = rng.randn(6, 5)
    x = rng.randn(4, 20) * 2
    gc = rng.randn(6, 5)
    gh = rng.randn(4, 5)
    out = {}
    for xp in (numpy, cupy):
        cv = Variable(xp.asarray(c_prev))
        xv = Variable(xp.asarray(x))
        c, h = F.lstm(cv, xv)
        c.grad = xp.asarray(gc)
        h.grad = xp.asarray(gh)
        (F.sum(c * xp.asarray(gc)) + F.sum(h * xp.asarray(gh))).backward()
        out[xp] = [backend.to_cpu(a) for a in (c.array, h.array, cv.grad, xv.grad)]
    for a, b in zip(out[numpy], out[cupy]):
        numpy.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    check_backward(F.lstm, (cupy.asarray(c_prev), cupy.asarray(x)),
                   (cupy.asarray(gc), cupy.asarray(gh)), dtype=numpy.float64, atol=1e-7,
                   rtol=1e-6)


def test_fortran_ordered_state_backward():
    """A Fortran-ordered c_prev (e.g. set via set_state) trains like a C-ordered one."""
    rng = numpy.random.RandomState(6)
    c = numpy.asfortranarray(rng.randn(3, 4))
    x = numpy.asfortranarray(rng.randn(3, 16))
    gc, gh = rng.randn(3, 4), rng.randn(3, 4)
    res = []
    for args in ((c, x), (numpy.ascontiguousarray(c), numpy.ascontiguousarray(x))):
        vs = [Variable(a) for a in args]
        cn, h = F.lstm(*vs)
        F.sum(cn * gc + h * gh).backward()
        res.append([cn.array, h.array] + [v.grad for v in vs])
    for a, b in zip(*res):
        numpy.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)
