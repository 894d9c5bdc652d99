"""embed_project (embedding + projection as one table lookup), its row scatter-add kernel,
and the n-step links' forward_embed, checked against the unfused computation and central
differences."""
import numpy
import pytest

import seqdbr.functions as F
import seqdbr.links as L
from seqdbr.core.variable import Variable
from seqdbr.gradient_check import check_backward
from seqdbr.rnn import cpu_kernels
from seqdbr.rnn.embed_project import EmbedProject, embed_project, scatter_add_rows

pytestmark = pytest.mark.usefixtures('cpu_path')


def _unfused(x, E, W):
    return F.linear(F.embed_id(x, E), W, n_batch_axes=x.ndim)


def _grads(fn, x, E, W, gy):
    Ev, Wv = Variable(E.copy()), Variable(W.copy())
    y = fn(x, Ev, Wv)
    y.grad = gy
    y.backward()
    return y.array, Ev.grad, Wv.grad


# ids shapes: N = 1, 1x1 (B = 1, T = 1), repeated ids, V < N (table route) and V >= N
# (direct route), 3-d ids
@pytest.mark.parametrize('shape,V', [((1,), 1), ((1, 1), 3), ((3, 4), 5), ((3, 4), 12),
                                     ((3, 4), 40), ((2, 3, 2), 2), ((50, 7), 9)])
def test_equals_embed_then_linear(shape, V):
    rs = numpy.random.RandomState(sum(shape) + V)
    D, K = 3, 8
    x = rs.randint(0, V, size=shape)
    E = rs.randn(V, D)
    W = rs.randn(K, D)
    gy = rs.randn(*(shape + (K,)))
    y, gE, gW = _grads(embed_project, x, E, W, gy)
    y0, gE0, gW0 = _grads(_unfused, x, E, W, gy)
    assert y.shape == shape + (K,)
    numpy.testing.assert_allclose(y, y0, rtol=1e-12, atol=1e-12)
    numpy.testing.assert_allclose(gE, gE0, rtol=1e-12, atol=1e-12)
    numpy.testing.assert_allclose(gW, gW0, rtol=1e-12, atol=1e-12)
    # and against NumPy written out by hand
    numpy.testing.assert_allclose(y, E[x] @ W.T, rtol=1e-12, atol=1e-12)


def test_table_route_is_taken_when_vocab_is_small():
    x = numpy.array([[0, 1, 1, 0]])
    W = Variable(numpy.ones((5, 3)))
    y = embed_project(x, Variable(numpy.ones((2, 3))), W)
    assert isinstance(y.creator, EmbedProject)
    y = embed_project(x, Variable(numpy.ones((4, 3))), W)              # V == N: direct
    assert not isinstance(y.creator, EmbedProject)


@pytest.mark.parametrize('shape,V', [((1,), 1), ((1, 1), 1), ((2, 5), 3), ((4, 3), 4),
                                     ((6,), 9)])
def test_gradient_check(shape, V):
    rs = numpy.random.RandomState(V)
    x = rs.randint(0, V, size=shape)
    E = rs.randn(V, 4)
    W = rs.randn(6, 4)
    check_backward(lambda E, W: embed_project(x, E, W), (E, W), dtype=numpy.float64,
                   eps=1e-6, atol=1e-8, rtol=1e-7)


def test_float32_close_to_float64():
    rs = numpy.random.RandomState(3)
    x = rs.randint(0, 65, size=(50, 50))
    E, W = rs.randn(65, 16), rs.randn(64, 16) * 0.1
    gy = rs.randn(50, 50, 64)
    ref = _grads(embed_project, x, E, W, gy)
    got = _grads(embed_project, x, E.astype(numpy.float32), W.astype(numpy.float32),
                 gy.astype(numpy.float32))
    for a, b in zip(got, ref):
        assert a.dtype == numpy.float32
        numpy.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-4 * numpy.abs(b).max())


def test_errors():
    E, W = numpy.ones((4, 3)), numpy.ones((5, 3))
    x = numpy.zeros((2, 6), dtype=numpy.int32)
    with pytest.raises(IndexError, match=r'out-of-range id\(s\) -1, 4'):
        embed_project(numpy.array([[0, 4, -1, 1, 1, 1]]), E, W)
    with pytest.raises(TypeError, match='integer'):
        embed_project(x.astype(numpy.float32), E, W)
    with pytest.raises(TypeError, match='one dtype'):
        embed_project(x, E, W.astype(numpy.float32))
    with pytest.raises(ValueError, match='disagree on D'):
        embed_project(x, E, numpy.ones((5, 2)))
    with pytest.raises(ValueError, match='2-d'):
        embed_project(x, numpy.ones(4), W)
    with pytest.raises(ValueError, match='at least 1-d'):
        embed_project(numpy.int64(1), E, W)


# -- the scatter-add of rows ------------------------------------------------------------------

@pytest.mark.parametrize('dtype', [numpy.float32, numpy.float64])
@pytest.mark.parametrize('N,V,K', [(1, 1, 1), (7, 3, 5), (2500, 65, 512), (0, 4, 3),
                                   (5, 4, 0)])
def test_scatter_add_rows(dtype, N, V, K):
    rs = numpy.random.RandomState(N + V + K)
    ids = rs.randint(0, V, size=N).astype(numpy.intp)
    g = rs.randn(N, K).astype(dtype)
    out = scatter_add_rows(g, ids, V)
    ref = numpy.zeros((V, K))
    for n in range(N):                      # the definition, one row at a time, in float64
        ref[ids[n]] += g[n]
    assert out.dtype == dtype and out.shape == (V, K)
    tol = 1e-12 if dtype == numpy.float64 else 1e-4
    numpy.testing.assert_allclose(out, ref, rtol=tol, atol=tol)


def test_scatter_kernel_checks_its_arguments():
    if not cpu_kernels.enabled():
        pytest.skip('checks of the compiled kernel (NumPy path selected)')
    cells = cpu_kernels.cells()
    out = numpy.zeros((3, 2), numpy.float32)
    g = numpy.ones((2, 2), numpy.float32)
    with pytest.raises(ValueError, match=r'ids\[1\] = 3 is outside \[0, 3\)'):
        cells.scatter_add_rows(out, g, numpy.array([0, 3]), 3, 2, 2)
    assert not out.any()                    # nothing was added before the check failed
    with pytest.raises(TypeError, match='int64'):
        cells.scatter_add_rows(out, g, numpy.array([0, 1], numpy.int32), 3, 2, 2)
    with pytest.raises(TypeError, match='float64'):
        cells.scatter_add_rows(out, g.astype(numpy.float64), numpy.array([0, 1]), 3, 2, 2)
    with pytest.raises(ValueError, match='outside'):
        cells.scatter_add_rows(out, g, numpy.array([0, 1]), 3, 3, 2)   # N too large for g


# -- NStepLSTM / NStepGRU.forward_embed -----------------------------------------------------

def _run_link(link, kind, h, c, x, E, embed):
    Ev = Variable(E.copy())
    if embed:
        xs = F.embed_id(x, Ev)
        out = link(h, c, xs) if kind == 'lstm' else link(h, xs)
    else:
        out = link.forward_embed(h, c, x, Ev) if kind == 'lstm' else \
            link.forward_embed(h, x, Ev)
    loss = sum(F.sum(o * o) if i else F.sum(o) for i, o in enumerate(out))
    link.cleargrads()
    loss.backward()
    grads = {k: p.grad.copy() for k, p in link.namedparams()}
    grads['E'] = Ev.grad
    return [o.array for o in out], grads


@pytest.mark.parametrize('kind', ['lstm', 'gru'])
@pytest.mark.parametrize('cls_bi', [False, True])
@pytest.mark.parametrize('B,T,V', [(1, 1, 3), (3, 4, 5), (4, 6, 40)])
@pytest.mark.parametrize('with_state', [False, True])
def test_forward_embed_equals_forward(kind, cls_bi, B, T, V, with_state):
    rs = numpy.random.RandomState(B * T + V)
    H, D = 4, 3
    cls = {('lstm', False): L.NStepLSTM, ('lstm', True): L.NStepBiLSTM,
           ('gru', False): L.NStepGRU, ('gru', True): L.NStepBiGRU}[kind, cls_bi]
    link = cls(2, D, H, 0.0)
    for p in link.params():
        p.array = rs.uniform(-0.5, 0.5, p.array.shape)
    K = 4 if cls_bi else 2
    h = rs.randn(K, B, H) if with_state else None
    c = rs.randn(K, B, H) if with_state and kind == 'lstm' else None
    x = rs.randint(0, V, size=(B, T))
    E = rs.randn(V, D)
    out0, g0 = _run_link(link, kind, h, c, x, E, embed=True)
    out1, g1 = _run_link(link, kind, h, c, x, E, embed=False)
    for a, b in zip(out1, out0):
        numpy.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    assert sorted(g1) == sorted(g0)
    for k in g0:
        numpy.testing.assert_allclose(g1[k], g0[k], rtol=1e-11, atol=1e-12, err_msg=k)


@pytest.mark.parametrize('kind', ['lstm', 'gru'])
@pytest.mark.parametrize('B,T', [(1, 1), (2, 3)])
def test_fused_layer0_gradient_check(kind, B, T):
    """What forward_embed computes: embed_project into an n-step network whose layer 0 has
    no W_ih; central differences w.r.t. the table and every weight and bias."""
    rs = numpy.random.RandomState(B + T)
    V, D, H = 4, 3, 2
    G = 4 if kind == 'lstm' else 3
    x = rs.randint(0, V, size=(B, T))
    shapes = [(V, D), (G * H, D), (G * H, H), (G * H,), (G * H,),
              (G * H, H), (G * H, H), (G * H,), (G * H,)]
    inputs = tuple(rs.uniform(-0.8, 0.8, s) for s in shapes)

    def f(E, Wi0, Wh0, bi0, bh0, Wi1, Wh1, bi1, bh1):
        xs = embed_project(x, E, Wi0)
        ws = [[None, Wh0], [Wi1, Wh1]]
        bs = [[bi0, bh0], [bi1, bh1]]
        if kind == 'lstm':
            hy, cy, ys = F.n_step_lstm(2, 0.0, None, None, ws, bs, xs)
            return ys, hy, cy
        hy, ys = F.n_step_gru(2, 0.0, None, ws, bs, xs)
        return ys, hy

    check_backward(f, inputs, dtype=numpy.float64, eps=1e-6, atol=1e-8, rtol=1e-6)


def test_forward_embed_infers_in_size_and_checks_width():
    link = L.NStepLSTM(1, None, 3, 0.0)
    x = numpy.array([[0, 1, 2, 1]])
    hy, cy, ys = link.forward_embed(None, None, x, numpy.ones((3, 5), numpy.float32))
    assert link[0].W_ih.shape == (12, 5) and ys.shape == (1, 4, 3)
    with pytest.raises(ValueError, match='W_embed has 4 columns but layer 0 takes in_size=5'):
        link.forward_embed(None, None, x, numpy.ones((3, 4), numpy.float32))
    with pytest.raises(ValueError, match=r'\(B, T\) integer array'):
        link.forward_embed(None, None, x[0], numpy.ones((3, 5), numpy.float32))
    with pytest.raises(IndexError, match='out-of-range'):
        link.forward_embed(None, None, x + 1, numpy.ones((3, 5), numpy.float32))


@pytest.mark.gpu
@pytest.mark.parametrize('shape,V', [((3, 4), 5), ((50, 50), 65), ((2, 3), 40)])
def test_gpu_equals_cpu(shape, V):
    from seqdbr.core import backend
    cp = backend.cupy_or_none()
    rs = numpy.random.RandomState(V)
    x = rs.randint(0, V, size=shape)
    E, W = rs.randn(V, 6), rs.randn(8, 6)
    gy = rs.randn(*(shape + (8,)))
    ref = _grads(embed_project, x, E, W, gy)
    got = _grads(embed_project, cp.asarray(x), cp.asarray(E), cp.asarray(W), cp.asarray(gy))
    for a, b in zip(got, ref):
        assert isinstance(a, cp.ndarray)
        numpy.testing.assert_allclose(cp.asnumpy(a), b, rtol=1e-12, atol=1e-12)


def test_strided_int64_ids():
    """Views whose reshape(-1) stays strided (every other column, reversed rows) reach the
    compiled scatter-add as copies."""
    rs = numpy.random.RandomState(9)
    X = rs.randint(0, 6, size=(4, 16)).astype(numpy.int64)
    E, W = rs.randn(6, 3), rs.randn(5, 3)
    for x in (X[:, ::2], X[0, ::-1], X[::-1, 1::3]):
        gy = rs.randn(*(x.shape + (5,)))
        got = _grads(embed_project, x, E, W, gy)
        ref = _grads(_unfused, numpy.ascontiguousarray(x), E, W, gy)
        for a, b in zip(got, ref):
            numpy.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_node_label_and_repr():
    y = embed_project(numpy.zeros((2, 3), numpy.int64), Variable(numpy.ones((2, 4))),
                      Variable(numpy.ones((5, 4))))
    assert y.creator.label == 'EmbedProject'
    assert 'EmbedProject' in repr(y.creator)


def test_zero_output_features():
    x = numpy.array([0, 1, 1, 0, 1])
    E = Variable(numpy.ones((2, 3)))
    W = Variable(numpy.ones((0, 3)))
    y = embed_project(x, E, W)
    assert y.shape == (5, 0)
    y.grad = numpy.ones((5, 0))
    y.backward()
    numpy.testing.assert_array_equal(E.grad, numpy.zeros((2, 3)))
    assert W.grad.shape == (0, 3)


def test_non_array_arguments_are_type_errors():
    with pytest.raises(TypeError, match='integer array'):
        embed_project([[0, 1]], numpy.ones((2, 3)), numpy.ones((4, 3)))
    with pytest.raises(TypeError, match='W must be a float array'):
        embed_project(numpy.array([0, 1, 1]), numpy.ones((2, 3)), [[1.0, 2.0, 3.0]])


def test_bad_ids_leave_a_lazy_link_uninitialised():
    link = L.NStepLSTM(1, None, 3, 0.0)
    with pytest.raises(IndexError, match='out-of-range'):
        link.forward_embed(None, None, numpy.array([[0, 9]]), numpy.ones((3, 5), numpy.float32))
    assert link[0].W_ih.array is None
    hy, cy, ys = link.forward_embed(None, None, numpy.array([[0, 2]]),
                                    numpy.ones((3, 4), numpy.float32))
    assert link[0].W_ih.shape == (12, 4)
