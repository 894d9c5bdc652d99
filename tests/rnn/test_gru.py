"""Tests of the fused GRU cell ``seqdbr.functions.gru_cell`` (cuDNN/PyTorch convention)."""
import warnings

import numpy
import pytest

import seqdbr.functions as F
from seqdbr.core import backend
from seqdbr.core.variable import Variable
from seqdbr.gradient_check import check_backward, assert_allclose

# every test here runs with the compiled CPU cell (seqdbr.rnn._cpu_cells) and with NumPy
pytestmark = pytest.mark.usefixtures('cpu_path')


def _sigmoid(x):
    return 1.0 / (1.0 + numpy.exp(-x))


def ref_gru_from_weights(h, x, W_ih, W_hh, b_ih, b_hh):
    """The cuDNN/PyTorch GRU equations written out gate by gate, float64."""
    H = h.shape[1]
    Wir, Wiz, Win = W_ih[:H], W_ih[H:2 * H], W_ih[2 * H:]
    Whr, Whz, Whn = W_hh[:H], W_hh[H:2 * H], W_hh[2 * H:]
    bir, biz, bin_ = b_ih[:H], b_ih[H:2 * H], b_ih[2 * H:]
    bhr, bhz, bhn = b_hh[:H], b_hh[H:2 * H], b_hh[2 * H:]
    r = _sigmoid(x @ Wir.T + bir + h @ Whr.T + bhr)
    z = _sigmoid(x @ Wiz.T + biz + h @ Whz.T + bhz)
    n = numpy.tanh(x @ Win.T + bin_ + r * (h @ Whn.T + bhn))
    return (1 - z) * n + z * h


def ref_gru_cell(h, gi, gh):
    H = h.shape[1]
    Bx = gi.shape[0]
    r = _sigmoid(gi[:, :H] + gh[:, :H])
    z = _sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
    n = numpy.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
    out = numpy.array(h, dtype=numpy.float64)
    out[:Bx] = (1 - z) * n + z * h[:Bx]
    return out


@pytest.mark.parametrize('dtype,tol', [(numpy.float32, 2e-6), (numpy.float64, 1e-13)])
def test_matches_equations_with_weights(xp, dtype, tol):
    rng = numpy.random.RandomState(0)
    B, I, H = 4, 3, 5
    h = rng.randn(B, H)
    x = rng.randn(B, I)
    W_ih, W_hh = rng.randn(3 * H, I), rng.randn(3 * H, H)
    b_ih, b_hh = rng.randn(3 * H), rng.randn(3 * H)
    gi = x @ W_ih.T + b_ih
    gh = h @ W_hh.T + b_hh
    y = F.gru_cell(xp.asarray(h.astype(dtype)), xp.asarray(gi.astype(dtype)),
                   xp.asarray(gh.astype(dtype)))
    assert y.shape == (B, H) and y.dtype == dtype
    assert_allclose(y.array, ref_gru_from_weights(h, x, W_ih, W_hh, b_ih, b_hh), atol=tol,
                    rtol=tol)


def test_hand_computed_h1():
    # H = 1: gi = (0.1, -0.2, 0.3), gh = (0.4, 0.5, -0.6), h = 0.7
    r = 1 / (1 + numpy.exp(-0.5))
    z = 1 / (1 + numpy.exp(-0.3))
    n = numpy.tanh(0.3 + r * -0.6)
    expect = (1 - z) * n + z * 0.7
    y = F.gru_cell(numpy.array([[0.7]]), numpy.array([[0.1, -0.2, 0.3]]),
                   numpy.array([[0.4, 0.5, -0.6]]))
    assert abs(y.array.item() - expect) < 1e-14


def test_reset_gate_multiplies_hidden_bias():
    # with r -> 0 the hidden n-projection (including b_hn) must vanish from n
    gi = numpy.array([[-60.0, 0.0, 0.2]])
    gh_a = numpy.array([[0.0, 0.0, 5.0]])
    gh_b = numpy.array([[0.0, 0.0, -5.0]])
    h = numpy.array([[0.3]])
    ya = F.gru_cell(h, gi, gh_a).array
    yb = F.gru_cell(h, gi, gh_b).array
    assert_allclose(ya, yb, atol=1e-12, rtol=0)
    z = 0.5
    assert_allclose(ya, (1 - z) * numpy.tanh(0.2) + z * 0.3, atol=1e-12, rtol=0)


def _check(h, gi, gh):
    rng = numpy.random.RandomState(1)
    check_backward(F.gru_cell, (h, gi, gh), rng.uniform(-1, 1, h.shape),
                   dtype=numpy.float64, atol=1e-7, rtol=1e-6)


@pytest.mark.parametrize('B,Bx,H', [(1, 1, 1), (3, 3, 4), (4, 2, 3), (3, 1, 2)])
def test_gradient(B, Bx, H):
    rng = numpy.random.RandomState(B * 100 + Bx * 10 + H)
    _check(rng.randn(B, H), rng.randn(Bx, 3 * H), rng.randn(Bx, 3 * H))


def test_shrinking_batch_pass_through(xp):
    rng = numpy.random.RandomState(2)
    h = rng.randn(5, 3).astype(numpy.float32)
    gi = rng.randn(2, 9).astype(numpy.float32)
    gh = rng.randn(2, 9).astype(numpy.float32)
    hv = Variable(xp.asarray(h))
    y = F.gru_cell(hv, xp.asarray(gi), xp.asarray(gh))
    ya = backend.to_cpu(y.array)
    assert ya.shape == (5, 3)
    numpy.testing.assert_array_equal(ya[2:], h[2:])
    numpy.testing.assert_allclose(ya[:2], ref_gru_cell(h[:2], gi, gh), rtol=1e-6, atol=1e-6)
    g = rng.randn(5, 3).astype(numpy.float32)
    y.grad = xp.asarray(g)
    y.backward()
    numpy.testing.assert_array_equal(backend.to_cpu(hv.grad)[2:], g[2:])


def test_extreme_inputs_no_warning_and_finite():
    gi = numpy.array([[1e4, -1e4, -1e4, 1e4, 1e4, -1e4]])
    gh = numpy.array([[1e4, -1e4, -1e4, 1e4, 1e4, 1e4]])
    h = numpy.array([[0.5, -0.5]])
    for dtype in (numpy.float32, numpy.float64):
        with warnings.catch_warnings():
            warnings.simplefilter('error')
            with numpy.errstate(all='raise'):
                hv = Variable(h.astype(dtype))
                giv = Variable(gi.astype(dtype))
                ghv = Variable(gh.astype(dtype))
                y = F.gru_cell(hv, giv, ghv)
                F.sum(y).backward()
        # r = (1, 0), z = (0, 1), n = (tanh(1e4 + 1e4), tanh(-1e4 + 0)) -> y = (n_0, h_1)
        numpy.testing.assert_allclose(y.array, [[1.0, -0.5]])
        for v in (hv, giv, ghv):
            assert numpy.isfinite(v.grad).all()


def test_separate_gradients_for_gi_and_gh():
    # d/d gh_n = r * d/d gi_n: the two projection gradients differ in the n block only
    rng = numpy.random.RandomState(3)
    h = Variable(rng.randn(2, 2))
    gi = Variable(rng.randn(2, 6))
    gh = Variable(rng.randn(2, 6))
    F.sum(F.gru_cell(h, gi, gh)).backward()
    numpy.testing.assert_allclose(gi.grad[:, :4], gh.grad[:, :4], rtol=1e-15)
    r = _sigmoid(gi.array[:, :2] + gh.array[:, :2])
    numpy.testing.assert_allclose(gh.grad[:, 4:], gi.grad[:, 4:] * r, rtol=1e-14)
    assert gi.grad is not gh.grad


@pytest.mark.parametrize('shapes,words', [
    (((2, 3), (2, 9), (2, 6)), ['gi has shape (2, 9) but gh has shape (2, 6)']),
    (((2, 3), (2, 8), (2, 8)), ['3 * H = 9']),
    (((2, 3), (3, 9), (3, 9)), ['never grow']),
    (((2,), (2, 9), (2, 9)), ['(B, H)']),
])
def test_bad_shapes(shapes, words):
    with pytest.raises(ValueError) as e:
        F.gru_cell(*[numpy.zeros(s, numpy.float32) for s in shapes])
    for w in words:
        assert w in str(e.value)


def test_bad_dtypes():
    with pytest.raises(TypeError, match='float64'):
        F.gru_cell(numpy.zeros((2, 3), numpy.float32), numpy.zeros((2, 9), numpy.float64),
                   numpy.zeros((2, 9), numpy.float32))


@pytest.mark.gpu
def test_gpu_matches_cpu():
    import cupy
    rng = numpy.random.RandomState(4)
    h = rng.randn(5, 4)
    gi = rng.randn(3, 12)
    gh = rng.randn(3, 12)
    gy = rng.randn(5, 4)
    out = {}
    for xp in (numpy, cupy):
        vs = [Variable(xp.asarray(a)) for a in (h, gi, gh)]
        y = F.gru_cell(*vs)
        F.sum(y * xp.asarray(gy)).backward()
        out[xp] = [backend.to_cpu(y.array)] + [backend.to_cpu(v.grad) for v in vs]
    for a, b in zip(out[numpy], out[cupy]):
        numpy.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('layout', ['fortran', 'transposed', 'broadcast'])
def test_any_input_layout(layout):
    """h_prev (and gi, gh) in any memory layout: same values and gradients as C-ordered
    copies (the compiled cell writes its outputs C-ordered)."""
    rng = numpy.random.RandomState(4)
    B, H = 4, 5
    if layout == 'fortran':
        h = numpy.asfortranarray(rng.randn(B, H))
    elif layout == 'transposed':
        h = rng.randn(H, B).T
    else:
        h = numpy.broadcast_to(rng.randn(1, H), (B, H))
    gi = numpy.asfortranarray(rng.randn(B, 3 * H))
    gh = rng.randn(3 * H, B).T
    gy = rng.randn(B, H)
    res = []
    for args in ((h, gi, gh), tuple(numpy.ascontiguousarray(a) for a in (h, gi, gh))):
        vs = [Variable(a) for a in args]
        y = F.gru_cell(*vs)
        y.grad = gy
        y.backward()
        res.append([y.array] + [v.grad for v in vs])
    for a, b in zip(*res):
        numpy.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)
    numpy.testing.assert_allclose(res[1][0], ref_gru_cell(numpy.ascontiguousarray(h), gi, gh),
                                  rtol=1e-12, atol=1e-12)


def test_zero_hidden_units():
    y = F.gru_cell(numpy.zeros((2, 0)), numpy.zeros((2, 0)), numpy.zeros((2, 0)))
    assert y.shape == (2, 0)
