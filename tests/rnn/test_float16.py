"""float16 through the cells and the n-step layers, on the CPU and (marked gpu) on CuPy.

Reference: the same function in float64 on NumPy, from the same (float16-representable)
inputs. float16 keeps 11 significant bits (unit roundoff 2**-11 = 4.9e-4), so values of
order one agree to about 1e-2 after a few steps; the gradients of the whole window too.
On CuPy the cells run the float16 instantiation of the fused kernels (``T = float16``, see
``seqdbr.core.cuda_kernels``); on NumPy the cells compute in float16 arithmetic.
"""
import numpy
import pytest

import seqdbr.functions as F
from seqdbr import Variable
from seqdbr.core import backend

ATOL = 2e-2    # measured on the CPU: at most 3e-3 (values up to 7.7)
B, H, I, T = 3, 4, 5, 4


def _xp(device):
    if device == 'gpu':
        return backend.cupy_or_none()
    return numpy


def _f16(rng, *shape, scale=0.5):
    return (rng.standard_normal(shape) * scale).astype(numpy.float16)


def _run(xp, dtype, fn, arrays):
    """Forward fn(*Variables) -> tuple of Variables; backward of sum(y * w_k) with fixed
    weights; return the outputs and input gradients on the host, in float64."""
    vs = [Variable(xp.asarray(a.astype(dtype))) for a in arrays]
    ys = fn(*vs)
    rng = numpy.random.default_rng(5)
    loss = None
    for y in ys:
        w = xp.asarray(rng.standard_normal(y.shape).astype(dtype))
        term = F.sum(y * w)
        loss = term if loss is None else loss + term
    loss.backward()
    out = [backend.to_cpu(y.array).astype(numpy.float64) for y in ys]
    out += [backend.to_cpu(v.grad).astype(numpy.float64) for v in vs]
    for y in ys:
        assert y.dtype == dtype
    return out


def _compare(device, fn, arrays):
    xp = _xp(device)
    got = _run(xp, numpy.float16, fn, arrays)
    ref = _run(numpy, numpy.float64, fn, arrays)
    for k, (g, r) in enumerate(zip(got, ref)):
        assert numpy.all(numpy.isfinite(g)), k
        numpy.testing.assert_allclose(g, r, atol=ATOL, rtol=ATOL, err_msg='output %d' % k)


def _lstm_cell(c, x):
    c1, h1 = F.lstm(c, x)
    c2, h2 = F.lstm(c1, x * 0.5 + F.concat([h1] * 4, axis=1))
    return c2, h2


def _gru_cell(h, gi, gh):
    h1 = F.gru_cell(h, gi, gh)
    return (F.gru_cell(h1, gi * 0.5, gh),)


def _n_step(kind):
    def fn(hx, cx, *rest):
        n = 2
        ws = [list(rest[4 * l:4 * l + 2]) for l in range(n)]        # [W_ih, W_hh]
        bs = [list(rest[4 * l + 2:4 * l + 4]) for l in range(n)]    # [b_ih, b_hh]
        xs = list(rest[4 * n:])
        if kind == 'lstm':
            hy, cy, ys = F.n_step_lstm(n, 0.0, hx, cx, ws, bs, xs)
            return (hy, cy) + tuple(ys)
        hy, ys = F.n_step_gru(n, 0.0, hx, ws, bs, xs)
        return (hy,) + tuple(ys)
    return fn


def _n_step_arrays(kind, rng):
    G = (4 if kind == 'lstm' else 3) * H
    arrays = [_f16(rng, 2, B, H), _f16(rng, 2, B, H)]
    for layer in range(2):
        arrays += [_f16(rng, G, I if layer == 0 else H), _f16(rng, G, H),
                   _f16(rng, G, scale=0.1), _f16(rng, G, scale=0.1)]
    arrays += [_f16(rng, n, I) for n in (T, T - 1, 2)]
    return arrays


def _check_n_step(device, kind):
    rng = numpy.random.default_rng(3 if kind == 'lstm' else 4)
    arrays = _n_step_arrays(kind, rng)
    fn = _n_step(kind)
    if kind == 'gru':
        del arrays[1]                   # no cell state
        _compare(device, lambda hx, *rest: fn(hx, None, *rest), arrays)
    else:
        _compare(device, fn, arrays)


CELLS = {
    'lstm': (_lstm_cell, lambda rng: [_f16(rng, B, H), _f16(rng, B, 4 * H)]),
    'gru': (_gru_cell, lambda rng: [_f16(rng, B, H), _f16(rng, B, 3 * H), _f16(rng, B, 3 * H)]),
}


@pytest.mark.parametrize('cell', sorted(CELLS))
def test_float16_cell_on_cpu(cell):
    fn, make = CELLS[cell]
    _compare('cpu', fn, make(numpy.random.default_rng(1)))


@pytest.mark.gpu
@pytest.mark.parametrize('cell', sorted(CELLS))
def test_float16_cell_on_gpu(cell):
    fn, make = CELLS[cell]
    _compare('gpu', fn, make(numpy.random.default_rng(1)))


@pytest.mark.parametrize('kind', ['lstm', 'gru'])
def test_float16_n_step_on_cpu(kind):
    _check_n_step('cpu', kind)


@pytest.mark.gpu
@pytest.mark.parametrize('kind', ['lstm', 'gru'])
def test_float16_n_step_on_gpu(kind):
    _check_n_step('gpu', kind)
