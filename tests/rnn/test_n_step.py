"""Tests of the whole-window recurrences ``n_step_lstm``/``n_step_bilstm``/``n_step_gru``/
``n_step_bigru`` against a plain NumPy reference written here (sequence by sequence, step by
step, no packing)."""
import warnings

import numpy
import pytest

import seqdbr.functions as F
from seqdbr.core import backend
from seqdbr.core.config import using_config
from seqdbr.core.functions.noise import set_seed as set_dropout_seed
from seqdbr.core.variable import Variable
from seqdbr.gradient_check import check_backward, assert_allclose
from seqdbr.rnn.n_step import _SeqBatch

# every test here runs with the compiled CPU cell kernels and with the NumPy code
pytestmark = pytest.mark.usefixtures('cpu_path')


# -- NumPy reference --------------------------------------------------------------------------

def _sigmoid(x):
    return 1.0 / (1.0 + numpy.exp(-x))


def _lstm_step(x, h, c, W, b):
    H = h.shape[0]
    a = W[0] @ x + b[0] + W[1] @ h + b[1]
    i, f = _sigmoid(a[:H]), _sigmoid(a[H:2 * H])
    g, o = numpy.tanh(a[2 * H:3 * H]), _sigmoid(a[3 * H:])
    c = f * c + i * g
    return o * numpy.tanh(c), c


def _gru_step(x, h, c, W, b):
    H = h.shape[0]
    gi = W[0] @ x + b[0]
    gh = W[1] @ h + b[1]
    r = _sigmoid(gi[:H] + gh[:H])
    z = _sigmoid(gi[H:2 * H] + gh[H:2 * H])
    n = numpy.tanh(gi[2 * H:] + r * gh[2 * H:])
    return (1 - z) * n + z * h, c


def reference(kind, n_layers, hx, cx, ws, bs, xs, bi=False):
    """Returns (hy, cy, ys) as float64 NumPy arrays; each sequence processed on its own."""
    step = _lstm_step if kind == 'lstm' else _gru_step
    D = 2 if bi else 1
    K = n_layers * D
    B = len(xs)
    H = ws[0][1].shape[1]
    hx = numpy.zeros((K, B, H)) if hx is None else numpy.asarray(hx, dtype=numpy.float64)
    cx = numpy.zeros((K, B, H)) if cx is None else numpy.asarray(cx, dtype=numpy.float64)
    ws = [[numpy.asarray(w, dtype=numpy.float64) for w in p] for p in ws]
    bs = [[numpy.asarray(w, dtype=numpy.float64) for w in p] for p in bs]
    hy = numpy.zeros((K, B, H))
    cy = numpy.zeros((K, B, H))
    ys = []
    for b in range(B):
        inp = numpy.asarray(xs[b], dtype=numpy.float64)
        for layer in range(n_layers):
            outs = []
            for d in range(D):
                k = layer * D + d
                h, c = hx[k, b], cx[k, b]
                out = [None] * len(inp)
                steps = range(len(inp)) if d == 0 else range(len(inp) - 1, -1, -1)
                for t in steps:
                    h, c = step(inp[t], h, c, ws[k], bs[k])
                    out[t] = h
                hy[k, b], cy[k, b] = h, c
                outs.append(numpy.array(out))
            inp = numpy.concatenate(outs, axis=1)
        ys.append(inp)
    return hy, cy, ys


def make_params(kind, n_layers, in_size, H, bi=False, seed=0, scale=0.5):
    rng = numpy.random.RandomState(seed)
    G = 4 if kind == 'lstm' else 3
    D = 2 if bi else 1
    ws, bs = [], []
    for k in range(n_layers * D):
        n_in = in_size if k < D else D * H
        ws.append([rng.randn(G * H, n_in) * scale, rng.randn(G * H, H) * scale])
        bs.append([rng.randn(G * H) * scale, rng.randn(G * H) * scale])
    return ws, bs


FUNCS = {('lstm', False): F.n_step_lstm, ('lstm', True): F.n_step_bilstm,
         ('gru', False): F.n_step_gru, ('gru', True): F.n_step_bigru}


def run(kind, bi, n_layers, hx, cx, ws, bs, xs, dropout=0.0):
    """Uniform (hy, cy, ys) interface (cy None for the GRU)."""
    fn = FUNCS[kind, bi]
    if kind == 'lstm':
        return fn(n_layers, dropout, hx, cx, ws, bs, xs)
    hy, ys = fn(n_layers, dropout, hx, ws, bs, xs)
    return hy, None, ys


def _to(xp, nested, dtype):
    return [[xp.asarray(numpy.asarray(a, dtype=dtype)) for a in p] for p in nested]


# -- forward ---------------------------------------------------------------------------------

@pytest.mark.parametrize('kind', ['lstm', 'gru'])
@pytest.mark.parametrize('bi', [False, True])
@pytest.mark.parametrize('lengths', [[2, 3, 1], [4, 4, 4], [1], [5, 1, 3, 3, 2]])
@pytest.mark.parametrize('with_state', [False, True])
def test_forward_matches_reference(xp, kind, bi, lengths, with_state):
    n_layers, I, H = 2, 3, 4
    K = n_layers * (2 if bi else 1)
    rng = numpy.random.RandomState(len(lengths))
    xs = [rng.randn(n, I) for n in lengths]
    ws, bs = make_params(kind, n_layers, I, H, bi, seed=sum(lengths))
    hx = rng.randn(K, len(lengths), H) if with_state else None
    cx = rng.randn(K, len(lengths), H) if with_state else None
    hy, cy, ys = run(kind, bi, n_layers,
                     None if hx is None else xp.asarray(hx),
                     None if cx is None else xp.asarray(cx),
                     _to(xp, ws, numpy.float64), _to(xp, bs, numpy.float64),
                     [xp.asarray(x) for x in xs])
    rhy, rcy, rys = reference(kind, n_layers, hx, cx, ws, bs, xs, bi)
    assert hy.shape == (K, len(lengths), H)
    assert_allclose(hy.array, rhy, atol=1e-12, rtol=1e-12)
    if kind == 'lstm':
        assert_allclose(cy.array, rcy, atol=1e-12, rtol=1e-12)
    assert isinstance(ys, list) and len(ys) == len(lengths)
    for y, ry in zip(ys, rys):
        assert y.shape == ry.shape
        assert_allclose(y.array, ry, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize('kind', ['lstm', 'gru'])
def test_float32_close_to_float64_reference(kind):
    rng = numpy.random.RandomState(7)
    lengths = [6, 2, 9, 9, 1]
    xs = [rng.randn(n, 5).astype(numpy.float32) for n in lengths]
    ws, bs = make_params(kind, 2, 5, 8, seed=3)
    hy, cy, ys = run(kind, False, 2, None, None, _to(numpy, ws, numpy.float32),
                     _to(numpy, bs, numpy.float32), xs)
    assert hy.dtype == numpy.float32 and ys[0].dtype == numpy.float32
    rhy, rcy, rys = reference(kind, 2, None, None, ws, bs, xs)
    assert_allclose(hy.array, rhy, atol=2e-5, rtol=1e-4)
    for y, ry in zip(ys, rys):
        assert_allclose(y.array, ry, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize('kind', ['lstm', 'gru'])
def test_3d_input_equals_list_input(kind):
    rng = numpy.random.RandomState(8)
    x3 = rng.randn(3, 4, 2)
    ws, bs = make_params(kind, 2, 2, 3)
    hy1, cy1, ys1 = run(kind, False, 2, None, None, ws, bs, [x3[b] for b in range(3)])
    hy2, cy2, ys2 = run(kind, False, 2, None, None, ws, bs, x3)
    assert ys2.shape == (3, 4, 3)
    assert_allclose(hy1.array, hy2.array, atol=0, rtol=0)
    for b in range(3):
        assert_allclose(ys1[b].array, ys2.array[b], atol=0, rtol=0)
    # and its gradient
    xv = Variable(x3.copy())
    hy, cy, ys = run(kind, False, 2, None, None, ws, bs, xv)
    F.sum(ys * ys).backward()
    xl = [Variable(x3[b].copy()) for b in range(3)]
    hy, cy, ysl = run(kind, False, 2, None, None, ws, bs, xl)
    sum(F.sum(y * y) for y in ysl).backward()
    for b in range(3):
        assert_allclose(xv.grad[b], xl[b].grad, atol=1e-14, rtol=1e-12)


def test_hx_none_equals_zeros():
    rng = numpy.random.RandomState(9)
    xs = [rng.randn(n, 2) for n in (3, 1, 2)]
    ws, bs = make_params('lstm', 2, 2, 3)
    z = numpy.zeros((2, 3, 3))
    a = F.n_step_lstm(2, 0.0, None, None, ws, bs, xs)
    b = F.n_step_lstm(2, 0.0, z, z, ws, bs, xs)
    assert_allclose(a[0].array, b[0].array, atol=0, rtol=0)
    assert_allclose(a[1].array, b[1].array, atol=0, rtol=0)
    for ya, yb in zip(a[2], b[2]):
        assert_allclose(ya.array, yb.array, atol=0, rtol=0)


@pytest.mark.parametrize('kind,bi', [('lstm', False), ('gru', False), ('lstm', True)])
def test_padding_invariance(kind, bi):
    """A sequence's outputs do not depend on which (shorter/longer) sequences share its batch."""
    rng = numpy.random.RandomState(10)
    target = rng.randn(4, 3)
    ws, bs = make_params(kind, 2, 3, 5, bi)
    alone_hy, alone_cy, alone = run(kind, bi, 2, None, None, ws, bs, [target])
    for others in ([1], [7], [2, 9, 4, 4], [4, 4]):
        xs = [rng.randn(n, 3) for n in others]
        pos = len(xs) // 2
        xs.insert(pos, target)
        hy, cy, ys = run(kind, bi, 2, None, None, ws, bs, xs)
        assert_allclose(ys[pos].array, alone[0].array, atol=1e-13, rtol=1e-12)
        assert_allclose(hy.array[:, pos], alone_hy.array[:, 0], atol=1e-13, rtol=1e-12)
        if kind == 'lstm':
            assert_allclose(cy.array[:, pos], alone_cy.array[:, 0], atol=1e-13, rtol=1e-12)


def test_equal_lengths_take_the_unsorted_path():
    plan = _SeqBatch([50] * 50)
    assert plan.equal and plan.order is None
    assert plan.batch_sizes == [50] * 50 and plan.N == 2500
    plan = _SeqBatch([2, 3, 1])
    assert not plan.equal
    assert list(plan.order) == [1, 0, 2]           # stable, by decreasing length
    assert plan.batch_sizes == [3, 2, 1] and plan.offsets == [0, 3, 5, 6]


# -- gradients (float64 central differences) -----------------------------------------------

def _grad_case(kind, bi, n_layers, lengths, I, H, use, with_state=True, seed=0):
    rng = numpy.random.RandomState(seed)
    D = 2 if bi else 1
    K = n_layers * D
    B = len(lengths)
    ws, bs = make_params(kind, n_layers, I, H, bi, seed=seed + 1)
    xs = [rng.randn(n, I) for n in lengths]
    hx = rng.randn(K, B, H)
    cx = rng.randn(K, B, H)
    flat_w = [a for k in range(K) for a in (ws[k][0], ws[k][1], bs[k][0], bs[k][1])]
    states = [hx, cx] if kind == 'lstm' else [hx]
    if not with_state:
        states = []
    inputs = states + flat_w + xs
    ns = len(states)

    def f(*args):
        st = args[:ns]
        w = args[ns:ns + 4 * K]
        seqs = list(args[ns + 4 * K:])
        h0 = st[0] if ns else None
        c0 = st[1] if ns > 1 else None
        wsv = [[w[4 * k], w[4 * k + 1]] for k in range(K)]
        bsv = [[w[4 * k + 2], w[4 * k + 3]] for k in range(K)]
        hy, cy, ys = run(kind, bi, n_layers, h0, c0, wsv, bsv, seqs)
        outs = {'hy': (hy,), 'cy': (cy,), 'ys0': (ys[0],),
                'all': (hy,) + ((cy,) if cy is not None else ()) + tuple(ys)}
        return outs[use]

    check_backward(f, inputs, dtype=numpy.float64, eps=1e-4, atol=1e-7, rtol=1e-6)


@pytest.mark.parametrize('kind', ['lstm', 'gru'])
def test_gradient_batch1_hidden1_length1(kind):
    _grad_case(kind, False, 1, [1], 1, 1, 'all')


@pytest.mark.parametrize('kind', ['lstm', 'gru'])
def test_gradient_shuffled_lengths_two_layers(kind):
    _grad_case(kind, False, 2, [2, 3, 1], 2, 3, 'all', seed=1)


@pytest.mark.parametrize('kind', ['lstm', 'gru'])
def test_gradient_zero_initial_state(kind):
    _grad_case(kind, False, 2, [3, 1, 2], 2, 2, 'all', with_state=False, seed=2)


@pytest.mark.parametrize('kind,use', [('lstm', 'hy'), ('lstm', 'cy'), ('lstm', 'ys0'),
                                      ('gru', 'hy'), ('gru', 'ys0')])
def test_gradient_partial_losses(kind, use):
    _grad_case(kind, False, 2, [2, 3, 1], 2, 2, use, seed=3)


@pytest.mark.parametrize('kind', ['lstm', 'gru'])
def test_gradient_bidirectional(kind):
    _grad_case(kind, True, 2, [2, 3, 1], 2, 2, 'all', seed=4)


@pytest.mark.parametrize('kind', ['lstm', 'gru'])
def test_gradient_equal_lengths(kind):
    _grad_case(kind, False, 2, [3, 3], 2, 2, 'all', seed=5)


def test_only_hy_loss_gives_exact_zero_for_unused_paths():
    # the loss reads hy of layer 0 only: layer 1 weights get zero gradient
    ws, bs = make_params('lstm', 2, 2, 3)
    wv = [[Variable(w.copy()) for w in p] for p in ws]
    bv = [[Variable(b.copy()) for b in p] for p in bs]
    xs = [numpy.random.RandomState(0).randn(n, 2) for n in (2, 3)]
    hy, cy, ys = F.n_step_lstm(2, 0.0, None, None, wv, bv, xs)
    F.sum(hy[0]).backward()
    assert wv[1][0].grad is None or not wv[1][0].grad.any()
    assert numpy.abs(wv[0][0].grad).sum() > 0


def test_gradients_finite_on_long_saturating_sequences():
    rng = numpy.random.RandomState(11)
    ws, bs = make_params('lstm', 2, 4, 6, scale=6.0)
    ws = _to(numpy, ws, numpy.float32)
    bs = _to(numpy, bs, numpy.float32)
    xs = [Variable((rng.randn(n, 4) * 10).astype(numpy.float32)) for n in (200, 150, 3)]
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        with numpy.errstate(all='raise'):   # underflow included: the library masks it
            hy, cy, ys = F.n_step_lstm(2, 0.0, None, None, ws, bs, xs)
            (F.sum(hy) + F.sum(cy) + sum(F.sum(y) for y in ys)).backward()
    for x in xs:
        assert numpy.isfinite(x.grad).all()


# -- pre-projected layer-0 input (W_ih of layer 0 = None) -----------------------------------

@pytest.mark.parametrize('kind', ['lstm', 'gru'])
def test_pre_projected_input_equals_projection(kind):
    rng = numpy.random.RandomState(20)
    ws, bs = make_params(kind, 2, 3, 4, seed=21)
    xs = [rng.randn(n, 3) for n in (4, 1, 3)]
    proj = [x @ ws[0][0].T for x in xs]          # x W_ih^T computed by the caller
    hy1, cy1, ys1 = run(kind, False, 2, None, None, ws, bs, xs)
    ws_p = [[None, ws[0][1]], ws[1]]
    hy2, cy2, ys2 = run(kind, False, 2, None, None, ws_p, bs, proj)
    assert_allclose(hy1.array, hy2.array, atol=1e-13, rtol=1e-12)
    for a, b in zip(ys1, ys2):
        assert_allclose(a.array, b.array, atol=1e-13, rtol=1e-12)

    def f(*args):
        w = [[None, args[0]], [args[1], args[2]]]
        b = [[args[3], args[4]], [args[5], args[6]]]
        hy, cy, ys = run(kind, False, 2, None, None, w, b, list(args[7:]))
        return (hy,) + tuple(ys)

    inputs = [ws[0][1], ws[1][0], ws[1][1], bs[0][0], bs[0][1], bs[1][0], bs[1][1]] + proj
    check_backward(f, inputs, dtype=numpy.float64, eps=1e-4, atol=1e-7, rtol=1e-6)


def test_pre_projected_input_errors():
    ws, bs = make_params('lstm', 1, 3, 4)
    with pytest.raises(ValueError, match='16 features'):
        F.n_step_lstm(1, 0.0, None, None, [[None, ws[0][1]]], bs, [numpy.zeros((2, 3))])
    ws2, bs2 = make_params('lstm', 1, 16, 4, bi=True)
    with pytest.raises(ValueError, match='unidirectional'):
        F.n_step_bilstm(1, 0.0, None, None, [[None, ws2[0][1]], ws2[1]], bs2,
                        [numpy.zeros((2, 16))])


# -- dropout and test mode ------------------------------------------------------------------

def test_dropout_only_between_layers():
    rng = numpy.random.RandomState(12)
    xs = [rng.randn(n, 3).astype(numpy.float32) for n in (5, 3)]
    ws1, bs1 = make_params('lstm', 1, 3, 4)
    ws1, bs1 = _to(numpy, ws1, numpy.float32), _to(numpy, bs1, numpy.float32)
    # one layer: nothing to drop (never on the input of layer 0, never on the last output)
    a = F.n_step_lstm(1, 0.9, None, None, ws1, bs1, xs)
    b = F.n_step_lstm(1, 0.0, None, None, ws1, bs1, xs)
    for ya, yb in zip(a[2], b[2]):
        assert_allclose(ya.array, yb.array, atol=0, rtol=0)
    ws2, bs2 = make_params('lstm', 2, 3, 4)
    ws2, bs2 = _to(numpy, ws2, numpy.float32), _to(numpy, bs2, numpy.float32)
    ref = F.n_step_lstm(2, 0.0, None, None, ws2, bs2, xs)
    set_dropout_seed(0)
    d1 = F.n_step_lstm(2, 0.5, None, None, ws2, bs2, xs)
    set_dropout_seed(0)
    d2 = F.n_step_lstm(2, 0.5, None, None, ws2, bs2, xs)
    assert not numpy.allclose(d1[2][0].array, ref[2][0].array)
    assert_allclose(d1[2][0].array, d2[2][0].array, atol=0, rtol=0)   # reproducible
    # layer 0 is untouched by dropout
    assert_allclose(d1[0].array[0], ref[0].array[0], atol=0, rtol=0)
    with using_config('train', False):
        e = F.n_step_lstm(2, 0.5, None, None, ws2, bs2, xs)
    for ya, yb in zip(e[2], ref[2]):
        assert_allclose(ya.array, yb.array, atol=0, rtol=0)


def test_saliency_in_test_mode():
    """Gradients w.r.t. the inputs work with config.train False (no dropout node)."""
    rng = numpy.random.RandomState(13)
    ws, bs = make_params('lstm', 2, 2, 3)
    xs = [rng.randn(n, 2) for n in (3, 2)]

    def f(x0, x1):
        hy, cy, ys = F.n_step_lstm(2, 0.0, None, None, ws, bs, [x0, x1])
        return ys[0], hy

    with using_config('train', False):
        check_backward(f, xs, dtype=numpy.float64, atol=1e-7, rtol=1e-6)
        x0 = Variable(xs[0].copy())
        hy, cy, ys = F.n_step_lstm(2, 0.0, None, None, ws, bs, [x0, xs[1]])
        F.sum(ys[0]).backward()
        assert numpy.abs(x0.grad).sum() > 0


# -- errors ----------------------------------------------------------------------------------

def _lstm_args():
    ws, bs = make_params('lstm', 2, 3, 4)
    xs = [numpy.zeros((2, 3)), numpy.zeros((1, 3))]
    return ws, bs, xs


def test_error_wrong_layer_weight_shape():
    ws, bs, xs = _lstm_args()
    ws[1][0] = numpy.zeros((16, 3))
    with pytest.raises(ValueError) as e:
        F.n_step_lstm(2, 0.0, None, None, ws, bs, xs)
    msg = str(e.value)
    assert 'W_ih of layer 1' in msg and '(16, 3)' in msg and '(16, 4)' in msg


def test_error_wrong_number_of_layers():
    ws, bs, xs = _lstm_args()
    with pytest.raises(ValueError, match='2 entries'):
        F.n_step_lstm(2, 0.0, None, None, ws[:1], bs[:1], xs)


def test_error_gru_shapes_with_lstm_function():
    ws, bs = make_params('gru', 1, 3, 4)
    with pytest.raises(ValueError, match=r'\[i \| f \| g \| o\]'):
        F.n_step_lstm(1, 0.0, None, None, ws, bs, [numpy.zeros((2, 3))])


def test_error_state_shape():
    ws, bs, xs = _lstm_args()
    with pytest.raises(ValueError, match=r'\(2, 2, 4\)'):
        F.n_step_lstm(2, 0.0, numpy.zeros((2, 3, 4)), None, ws, bs, xs)


def test_error_sequences():
    ws, bs, xs = _lstm_args()
    with pytest.raises(ValueError, match='empty'):
        F.n_step_lstm(2, 0.0, None, None, ws, bs, [])
    with pytest.raises(ValueError, match='T_i >= 1'):
        F.n_step_lstm(2, 0.0, None, None, ws, bs, [numpy.zeros((0, 3))])
    with pytest.raises(ValueError, match=r'xs\[1\]'):
        F.n_step_lstm(2, 0.0, None, None, ws, bs, [numpy.zeros((2, 3)), numpy.zeros((2, 5))])
    with pytest.raises(TypeError, match='float'):
        F.n_step_lstm(2, 0.0, None, None, ws, bs, [numpy.zeros((2, 3), numpy.int32)])
    with pytest.raises(TypeError, match='dtype'):
        F.n_step_lstm(2, 0.0, None, None, ws, bs, [numpy.zeros((2, 3), numpy.float32)])


def test_error_arguments():
    ws, bs, xs = _lstm_args()
    with pytest.raises(ValueError, match='dropout_ratio'):
        F.n_step_lstm(2, 1.0, None, None, ws, bs, xs)
    with pytest.raises(ValueError, match='n_layers'):
        F.n_step_lstm(0, 0.0, None, None, ws, bs, xs)


# -- GPU ----------------------------------------------------------------------------------------

@pytest.mark.gpu
@pytest.mark.parametrize('kind', ['lstm', 'gru'])
@pytest.mark.parametrize('bi', [False, True])
@pytest.mark.parametrize('lengths', [[2, 5, 1, 5], [4, 4, 4]])
def test_gpu_matches_cpu(kind, bi, lengths):
    import cupy
    rng = numpy.random.RandomState(14)
    n_layers, I, H = 2, 3, 5
    K = n_layers * (2 if bi else 1)
    ws, bs = make_params(kind, n_layers, I, H, bi)
    xs = [rng.randn(n, I) for n in lengths]
    hx = rng.randn(K, len(lengths), H)
    cx = rng.randn(K, len(lengths), H)
    res = {}
    for xp in (numpy, cupy):
        wv = [[Variable(xp.asarray(w)) for w in p] for p in ws]
        bv = [[Variable(xp.asarray(b)) for b in p] for p in bs]
        xv = [Variable(xp.asarray(x)) for x in xs]
        hv, cv = Variable(xp.asarray(hx)), Variable(xp.asarray(cx))
        hy, cy, ys = run(kind, bi, n_layers, hv, cv, wv, bv, xv)
        loss = F.sum(hy * hy) + sum(F.sum(y * y) for y in ys)
        if cy is not None:
            loss = loss + F.sum(cy)
        loss.backward()
        arrays = [hy.array] + [y.array for y in ys] + [v.grad for v in xv] + [hv.grad]
        arrays += [w.grad for p in wv for w in p] + [b.grad for p in bv for b in p]
        res[xp] = [backend.to_cpu(a) for a in arrays]
    for a, b in zip(res[numpy], res[cupy]):
        numpy.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


# -- forward without a graph (no_backprop_mode: the LSTM's row-major inference path) ---------

@pytest.mark.parametrize('kind', ['lstm', 'gru'])
@pytest.mark.parametrize('bi', [False, True])
@pytest.mark.parametrize('lengths', [[1], [2, 3, 1], [4, 4, 4], [5, 1, 3, 3, 2]])
@pytest.mark.parametrize('with_state', [False, True])
@pytest.mark.parametrize('dtype', [numpy.float64, numpy.float32])
def test_forward_without_graph_equals_forward_with_graph(kind, bi, lengths, with_state, dtype):
    from seqdbr.core.config import no_backprop_mode
    n_layers, I, H = 2, 3, 4
    K = n_layers * (2 if bi else 1)
    rng = numpy.random.RandomState(len(lengths) + 7)
    xs = [rng.randn(n, I).astype(dtype) for n in lengths]
    ws, bs = make_params(kind, n_layers, I, H, bi, seed=sum(lengths))
    ws = [[w.astype(dtype) for w in p] for p in ws]
    bs = [[b.astype(dtype) for b in p] for p in bs]
    hx = rng.randn(K, len(lengths), H).astype(dtype) if with_state else None
    cx = rng.randn(K, len(lengths), H).astype(dtype) if with_state and kind == 'lstm' \
        else None
    wv = [[Variable(w) for w in p] for p in ws]       # parameters: a graph is recorded
    bv = [[Variable(b) for b in p] for p in bs]
    hy0, cy0, ys0 = run(kind, bi, n_layers, hx, cx, wv, bv, xs)
    assert hy0.creator is not None
    with no_backprop_mode():
        hy1, cy1, ys1 = run(kind, bi, n_layers, hx, cx, wv, bv, xs)
    assert hy1.creator is None
    tol = 1e-12 if dtype == numpy.float64 else 2e-6
    pairs = [(hy1, hy0)] + ([(cy1, cy0)] if kind == 'lstm' else [])
    for a, b in pairs + list(zip(ys1, ys0)):
        numpy.testing.assert_allclose(a.array, b.array, rtol=tol, atol=tol)


@pytest.mark.parametrize('kind', ['lstm', 'gru'])
def test_forward_without_graph_pre_projected_input(kind):
    """Layer 0 without W_ih (the forward_embed form) on the inference path."""
    from seqdbr.core.config import no_backprop_mode
    rng = numpy.random.RandomState(3)
    H = 4
    G = 4 if kind == 'lstm' else 3
    X = rng.randn(3, 5, G * H)
    ws, bs = make_params(kind, 2, G * H, H, False, seed=3)
    ws[0][0] = None
    out0 = run(kind, False, 2, None, None, ws, bs, Variable(X))
    with no_backprop_mode():
        out1 = run(kind, False, 2, None, None, ws, bs, X)
    for a, b in zip(out1, out0):
        if b is not None:
            numpy.testing.assert_allclose(a.array, b.array, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('dtype', [numpy.float32, numpy.float64])
def test_fortran_ordered_weights_with_one_hidden_unit(dtype):
    """H = 1 with Fortran-ordered weights (transposed arrays): the training path's gate
    rearrangement once gave wrong float32 values here (a NumPy 2.4 strided-ufunc case)."""
    rng = numpy.random.RandomState(8)
    I, H = 4, 1
    xs = [rng.randn(3, I).astype(dtype), rng.randn(2, I).astype(dtype)]
    ws, bs = make_params('lstm', 1, I, H, seed=8)
    wf = [[numpy.asfortranarray(w.astype(dtype)) for w in p] for p in ws]
    wc = [[numpy.ascontiguousarray(w.astype(dtype)) for w in p] for p in ws]
    bsd = [[b.astype(dtype) for b in p] for p in bs]
    out_f = run('lstm', False, 1, None, None, [[Variable(w) for w in p] for p in wf], bsd, xs)
    out_c = run('lstm', False, 1, None, None, [[Variable(w) for w in p] for p in wc], bsd, xs)
    tol = 1e-6 if dtype == numpy.float32 else 1e-13
    for a, b in zip([out_f[0], out_f[1]] + list(out_f[2]), [out_c[0], out_c[1]] + list(out_c[2])):
        numpy.testing.assert_allclose(a.array, b.array, rtol=tol, atol=tol)
