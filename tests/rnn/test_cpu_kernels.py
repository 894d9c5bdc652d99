"""The optional compiled CPU cell kernels (``seqdbr.rnn._cpu_cells``): the same results as
the NumPy path of ``n_step_lstm``/``n_step_gru`` (which tests/rnn/test_n_step.py checks against a plain
reference and numerical gradients, under both paths), saturation without inf/NaN, NaN
propagation, and clear errors for misuse of the raw kernels.

``SEQDBR_REQUIRE_CPU_KERNELS=1`` (set by .ci/run) turns "not built" into a failure, so CI
notices a broken build instead of silently testing the NumPy path only.
"""
import os

import numpy
import pytest

import seqdbr.functions as F
from seqdbr.core.variable import Variable
from seqdbr.gradient_check import assert_allclose
from seqdbr.rnn import cpu_kernels

needs_kernels = pytest.mark.skipif(
    not cpu_kernels.available,
    reason='seqdbr.rnn._cpu_cells is not built (no C compiler at install time)')


def test_built_when_required():
    if os.environ.get('SEQDBR_REQUIRE_CPU_KERNELS') != '1':
        pytest.skip('SEQDBR_REQUIRE_CPU_KERNELS is not 1')
    assert cpu_kernels.available, 'the C extension seqdbr.rnn._cpu_cells failed to build'


def _params(I, H, n_layers, rng, scale, dtype, G=4):
    ws, bs = [], []
    for layer in range(n_layers):
        inp = I if layer == 0 else H
        ws.append([(rng.randn(G * H, inp) * scale).astype(dtype),
                   (rng.randn(G * H, H) * scale).astype(dtype)])
        bs.append([(rng.randn(G * H) * scale).astype(dtype),
                   (rng.randn(G * H) * scale).astype(dtype)])
    return ws, bs


def _run(enabled, dtype, lengths, with_state, scale=0.5, seed=0, use_hy_only=False,
         kind='lstm'):
    """Forward + backward of a 2-layer n_step_lstm/gru; returns every output and gradient."""
    old = cpu_kernels.set_enabled(enabled)
    try:
        rng = numpy.random.RandomState(seed)
        I, H, L = 5, 7, 2
        lstm = kind == 'lstm'
        ws, bs = _params(I, H, L, rng, scale, dtype, G=4 if lstm else 3)
        wv = [[Variable(w.copy()) for w in p] for p in ws]
        bv = [[Variable(b.copy()) for b in p] for p in bs]
        xs = [Variable(rng.randn(n, I).astype(dtype)) for n in lengths]
        B = len(lengths)
        hx = Variable(rng.randn(L, B, H).astype(dtype)) if with_state else None
        cx = Variable(rng.randn(L, B, H).astype(dtype)) if with_state and lstm else None
        if lstm:
            hy, cy, ys = F.n_step_lstm(L, 0.0, hx, cx, wv, bv, xs)
        else:
            (hy, ys), cy = F.n_step_gru(L, 0.0, hx, wv, bv, xs), None
        gys = [rng.randn(*y.shape).astype(dtype) for y in ys]
        if use_hy_only:
            loss = F.sum(hy * hy)
        else:
            loss = F.sum(hy) + (F.sum(cy * cy) if lstm else 0)
            for y, g in zip(ys, gys):
                loss = loss + F.sum(y * g)
        loss.backward()
        out = {'hy': hy.array}
        if lstm:
            out['cy'] = cy.array
        out.update({'y%d' % i: y.array for i, y in enumerate(ys)})
        out.update({'gx%d' % i: x.grad for i, x in enumerate(xs)})
        for k, (p, q) in enumerate(zip(wv, bv)):
            out['gW_ih%d' % k], out['gW_hh%d' % k] = p[0].grad, p[1].grad
            out['gb_ih%d' % k], out['gb_hh%d' % k] = q[0].grad, q[1].grad
        if with_state:
            out['ghx'] = hx.grad
            if lstm:
                out['gcx'] = cx.grad
        return out
    finally:
        cpu_kernels.set_enabled(old)


@needs_kernels
@pytest.mark.parametrize('kind', ['lstm', 'gru'])
@pytest.mark.parametrize('lengths', [[1], [3, 3], [4, 1, 6, 2, 6], [9, 2]])
@pytest.mark.parametrize('with_state', [False, True])
def test_compiled_equals_numpy_float64(kind, lengths, with_state):
    a = _run(True, numpy.float64, lengths, with_state, seed=len(lengths), kind=kind)
    b = _run(False, numpy.float64, lengths, with_state, seed=len(lengths), kind=kind)
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == numpy.float64
        assert_allclose(a[k], b[k], atol=1e-13, rtol=1e-12, err_msg=k)


@needs_kernels
@pytest.mark.parametrize('kind', ['lstm', 'gru'])
@pytest.mark.parametrize('use_hy_only', [False, True])
def test_compiled_float32_close_to_numpy_float64(kind, use_hy_only):
    # float32 with the polynomial exp against the float64 NumPy path
    lengths = [6, 1, 8, 8, 3]
    a = _run(True, numpy.float32, lengths, True, seed=3, use_hy_only=use_hy_only, kind=kind)
    b = _run(False, numpy.float64, lengths, True, seed=3, use_hy_only=use_hy_only, kind=kind)
    for k in a:
        assert a[k].dtype == numpy.float32
        assert_allclose(a[k], b[k], atol=2e-5, rtol=2e-4, err_msg=k)


@needs_kernels
@pytest.mark.parametrize('kind', ['lstm', 'gru'])
def test_saturated_gates_stay_finite_and_exact(kind):
    # weights ~ 2e3 drive most pre-activations far past exp's float32 range (|x| > 88):
    # no inf or NaN anywhere, and the float64 results are matched
    a = _run(True, numpy.float32, [5, 2], True, scale=2e3, seed=1, kind=kind)
    b = _run(False, numpy.float64, [5, 2], True, scale=2e3, seed=1, kind=kind)
    for k in a:
        assert numpy.isfinite(a[k]).all(), k
        assert_allclose(a[k], b[k], atol=1e-4, rtol=1e-3, err_msg=k)


@needs_kernels
def test_nan_input_propagates():
    old = cpu_kernels.set_enabled(True)
    try:
        ws, bs = _params(2, 3, 1, numpy.random.RandomState(0), 0.5, numpy.float32)
        x = numpy.ones((4, 2), numpy.float32)
        x[2, 1] = numpy.nan
        hy, cy, ys = F.n_step_lstm(1, 0.0, None, None, ws, bs, [x])
        assert numpy.isfinite(ys[0].array[:2]).all()
        assert numpy.isnan(ys[0].array[2:]).all() and numpy.isnan(hy.array).all()
    finally:
        cpu_kernels.set_enabled(old)


@needs_kernels
def test_exp_polynomial_accuracy_through_sigmoid():
    # one step with zero recurrent input: the forget/input/output gates are sigmoid(x)
    # of a grid of pre-activations; compare with float64 math
    from seqdbr.rnn import _cpu_cells
    x = numpy.linspace(-90, 90, 4001)
    H = x.size
    A = numpy.empty((4, 1, H), numpy.float32)
    A[0] = A[1] = A[2] = -x                       # sigmoid gates are stored negated
    A[3] = -2 * x                                 # candidate: tanh(x) = 2 sigmoid(2x) - 1
    C = numpy.empty((1, H), numpy.float32)
    TC, Y = numpy.empty_like(C), numpy.empty_like(C)
    _cpu_cells.lstm_fwd_step(A, 1, 0, 1, H, None, None, 0, C, TC, Y)
    sig = 1 / (1 + numpy.exp(-x))
    assert numpy.abs(A[0, 0] - sig).max() < 3e-7
    assert numpy.abs(A[3, 0] - numpy.tanh(x)).max() < 5e-7
    assert_allclose(C[0], sig * numpy.tanh(x), atol=5e-7, rtol=0)


@needs_kernels
def test_raw_kernel_errors_name_the_problem():
    from seqdbr.rnn import _cpu_cells
    N, H = 2, 3
    A = numpy.zeros((4, N, H), numpy.float32)
    C = numpy.zeros((N, H), numpy.float32)
    with pytest.raises(TypeError, match='float64 but the other arrays are float32'):
        _cpu_cells.lstm_fwd_step(A, N, 0, 1, H, None, None, 0, C.astype(numpy.float64), C, C)
    with pytest.raises(TypeError, match='float32 or float64'):
        _cpu_cells.lstm_fwd_step(A.astype(numpy.int32), N, 0, 1, H, None, None, 0, C, C, C)
    with pytest.raises(ValueError, match='outside'):
        _cpu_cells.lstm_fwd_step(A, N, 0, 1, H, None, C, 5, C, C, C)
    with pytest.raises(ValueError, match='bad sizes'):
        _cpu_cells.lstm_fwd_step(A, N, 1, 2, H, None, None, 0, C, C, C)
    with pytest.raises(ValueError, match='outside'):       # N larger than the arrays
        _cpu_cells.lstm_fwd_step(A, N + 5, 0, 1, H, None, None, 0, C, C, C)
    with pytest.raises(TypeError, match='not None'):
        _cpu_cells.lstm_fwd_step(A, N, 0, 1, H, None, None, 0, None, C, C)
    with pytest.raises((BufferError, ValueError)):         # not C-contiguous
        _cpu_cells.lstm_fwd_step(A, N, 0, 1, H, None, None, 0,
                                 numpy.zeros((H, N), numpy.float32).T, C, C)
    with pytest.raises((BufferError, TypeError, ValueError)):   # read-only output
        ro = C.copy()
        ro.flags.writeable = False
        _cpu_cells.lstm_fwd_step(A, N, 0, 1, H, None, None, 0, ro, C, C)
    G4 = numpy.zeros((1, 4 * H), numpy.float32)
    with pytest.raises(ValueError, match='G4'):
        _cpu_cells.lstm_bwd_step(A, N, 0, 2, H, C, None, 0, None, C, C.copy(),
                                 numpy.zeros((4, N, H), numpy.float32), G4)


@needs_kernels
def test_raw_gru_kernel_errors():
    from seqdbr.rnn import _cpu_cells
    N, H, B = 2, 3, 1
    A = numpy.zeros((3, N, H), numpy.float32)
    Y = numpy.zeros((N, H), numpy.float32)
    hh = numpy.zeros((3, B, H), numpy.float32)
    bhn = numpy.zeros(H, numpy.float32)
    with pytest.raises(ValueError, match='both be given'):
        _cpu_cells.gru_fwd_step(A, N, 0, 1, H, hh, B * H, bhn, None, 0, Y, Y.copy())
    with pytest.raises(ValueError, match='b_hn'):
        _cpu_cells.gru_fwd_step(A, N, 0, 1, H, None, B * H, bhn[:2], None, 0, Y, Y.copy())
    with pytest.raises(ValueError, match='smaller than'):
        _cpu_cells.gru_fwd_step(A, N, 0, 1, H, numpy.zeros(9, numpy.float32), 1, bhn, Y, 0,
                                Y.copy(), Y.copy())
    with pytest.raises(ValueError, match='bad sizes'):      # Bn > Bt
        _cpu_cells.gru_bwd_step(A, N, 0, 1, H, Y, None, 0, None, None, 2, Y.copy(), A.copy(),
                                Y.copy(), numpy.zeros((1, 3 * H), numpy.float32))


@needs_kernels
def test_raw_cell_kernel_errors():
    from seqdbr.rnn import _cpu_cells
    B, H = 2, 3
    x = numpy.zeros((B, 4 * H), numpy.float32)
    c = numpy.zeros((B, H), numpy.float32)
    with pytest.raises(ValueError, match='c_prev'):       # fewer rows than Bx
        _cpu_cells.lstm_cell_fwd(x, c[:1], B, H, x.copy(), c.copy(), c.copy(), c.copy())
    with pytest.raises(TypeError, match='float64 but the other arrays are float32'):
        _cpu_cells.lstm_cell_fwd(x, c.astype(numpy.float64), B, H, x.copy(), c.copy(),
                                 c.copy(), c.copy())
    with pytest.raises(ValueError, match='gx'):
        _cpu_cells.lstm_cell_bwd(x, c, c, None, B, H, c.copy(), x[:1].copy())


def test_set_enabled_without_extension_raises(monkeypatch):
    monkeypatch.setattr(cpu_kernels, 'available', False)
    monkeypatch.setattr(cpu_kernels, '_enabled', False)
    with pytest.raises(RuntimeError, match='not built'):
        cpu_kernels.set_enabled(True)
    assert cpu_kernels.set_enabled(False) is False
    assert cpu_kernels.cells() is None


@needs_kernels
@pytest.mark.parametrize('B,Bx,H', [(1, 1, 1), (4, 4, 5), (5, 2, 3)])
def test_gru_cell_compiled_equals_numpy(B, Bx, H):
    """F.gru_cell forward and backward: compiled kernel against the NumPy code, float64,
    with a shrinking batch (rows Bx.. pass through)."""
    import seqdbr.functions as F
    from seqdbr.core.variable import Variable
    rs = numpy.random.RandomState(B + Bx + H)
    h, gi, gh = rs.randn(B, H), rs.randn(Bx, 3 * H) * 2, rs.randn(Bx, 3 * H) * 2
    gy = rs.randn(B, H)
    out = {}
    for on in (True, False):
        old = cpu_kernels.set_enabled(on)
        try:
            vs = [Variable(a.copy()) for a in (h, gi, gh)]
            y = F.gru_cell(*vs)
            y.grad = gy.copy()
            y.backward()
            out[on] = [y.array] + [v.grad for v in vs]
        finally:
            cpu_kernels.set_enabled(old)
    for a, b in zip(out[True], out[False]):
        numpy.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


@needs_kernels
def test_raw_gru_cell_kernel_errors():
    from seqdbr.rnn import _cpu_cells
    B, H = 2, 3
    g = numpy.zeros((B, 3 * H), numpy.float32)
    h = numpy.zeros((B, H), numpy.float32)
    with pytest.raises(ValueError, match='h_prev'):       # fewer rows than Bx
        _cpu_cells.gru_cell_fwd(g, g, h[:1], B, H, g.copy(), h.copy())
    with pytest.raises(TypeError, match='float64 but the other arrays are float32'):
        _cpu_cells.gru_cell_fwd(g, g.astype(numpy.float64), h, B, H, g.copy(), h.copy())
    with pytest.raises(ValueError, match='ggh'):
        _cpu_cells.gru_cell_bwd(g, g, h, h, B, H, h.copy(), g.copy(), g[:1].copy())


@needs_kernels
@pytest.mark.parametrize('B,Bx,H', [(1, 1, 1), (4, 4, 5), (5, 2, 3), (3, 0, 2)])
@pytest.mark.parametrize('dtype,rtol,atol', [(numpy.float64, 1e-12, 1e-13),
                                             (numpy.float32, 2e-6, 2e-6)])
def test_lstm_cell_compiled_equals_numpy(B, Bx, H, dtype, rtol, atol):
    """F.lstm forward (c, h) and backward (gc_prev, gx): compiled kernel against the NumPy
    code, with a shrinking batch (rows Bx.. of c pass through), gradients from both outputs,
    and pre-activations large enough to saturate some gates."""
    import seqdbr.functions as F
    from seqdbr.core.variable import Variable
    rs = numpy.random.RandomState(B + 3 * Bx + 7 * H)
    c_prev = rs.randn(B, H).astype(dtype)
    x = (rs.randn(Bx, 4 * H) * 3).astype(dtype)
    gc, gh = rs.randn(B, H).astype(dtype), rs.randn(Bx, H).astype(dtype)
    out = {}
    for on in (True, False):
        old = cpu_kernels.set_enabled(on)
        try:
            vs = [Variable(a.copy()) for a in (c_prev, x)]
            c, h = F.lstm(*vs)
            (F.sum(c * gc) + F.sum(h * gh)).backward()
            out[on] = [c.array, h.array] + [v.grad for v in vs]
        finally:
            cpu_kernels.set_enabled(old)
    for a, b in zip(out[True], out[False]):
        assert a.dtype == b.dtype == dtype and a.shape == b.shape
        numpy.testing.assert_allclose(a, b, rtol=rtol, atol=atol)
