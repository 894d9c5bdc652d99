"""Tests of the recurrent links: stepwise LSTM/GRU, n-step links, and their equivalence."""
import numpy
import pytest

import seqdbr.functions as F
import seqdbr.links as L
from seqdbr.core import backend
from seqdbr.core.serializers import load_npz, save_npz
from seqdbr.core.variable import Variable
from seqdbr.gradient_check import assert_allclose


def _sigmoid(x):
    return 1.0 / (1.0 + numpy.exp(-x))


# -- stepwise LSTM ------------------------------------------------------------------------------

def test_forget_bias_one_with_zero_weights():
    """Zero weights, default biases: pre-activations are i = g = o = 0 and f = 1, so
    c = sigmoid(1) * c_prev + sigmoid(0) * tanh(0) = sigmoid(1) * c_prev, and
    h = sigmoid(0) * tanh(c) = tanh(c) / 2."""
    H = 3
    link = L.LSTM(2, H, lateral_init=0.0, upward_init=0.0)
    b = link.upward.b.array
    numpy.testing.assert_array_equal(b[:H], 0)
    numpy.testing.assert_array_equal(b[H:2 * H], 1)
    numpy.testing.assert_array_equal(b[2 * H:], 0)
    assert link.lateral.b is None
    c_prev = numpy.array([[0.5, -1.0, 2.0]], dtype=numpy.float32)
    h_prev = numpy.array([[0.3, 0.2, -0.7]], dtype=numpy.float32)
    link.set_state(c_prev, h_prev)
    y = link(numpy.ones((1, 2), dtype=numpy.float32))
    sig1 = 1.0 / (1.0 + numpy.exp(-1.0))
    numpy.testing.assert_allclose(link.c.array, sig1 * c_prev, rtol=1e-6)
    numpy.testing.assert_allclose(y.array, 0.5 * numpy.tanh(sig1 * c_prev), rtol=1e-6)
    assert link.h is y


def test_lstm_matches_numpy_steps():
    rng = numpy.random.RandomState(0)
    link = L.LSTM(3, 4)
    Wx = link.upward.W.array.astype(numpy.float64)
    Wh = link.lateral.W.array.astype(numpy.float64)
    b = link.upward.b.array.astype(numpy.float64)
    h = numpy.zeros((2, 4))
    c = numpy.zeros((2, 4))
    for t in range(4):
        x = rng.randn(2, 3).astype(numpy.float32)
        y = link(x)
        a = x @ Wx.T + h @ Wh.T + b
        i, f, g, o = (_sigmoid(a[:, :4]), _sigmoid(a[:, 4:8]), numpy.tanh(a[:, 8:12]),
                      _sigmoid(a[:, 12:]))
        c = f * c + i * g
        h = o * numpy.tanh(c)
        numpy.testing.assert_allclose(y.array, h, rtol=1e-5, atol=1e-6)
        numpy.testing.assert_allclose(link.c.array, c, rtol=1e-5, atol=1e-6)


def test_lstm_lazy_in_size_and_reset():
    link = L.LSTM(5)
    assert link.upward.W.array is None and link.state_size == 5
    x = numpy.random.RandomState(1).randn(2, 3).astype(numpy.float32)
    y1 = link(x)
    assert link.upward.W.shape == (20, 3) and y1.shape == (2, 5)
    y2 = link(x)
    assert not numpy.allclose(y1.array, y2.array)     # state carried
    link.reset_state()
    assert link.c is None and link.h is None
    numpy.testing.assert_array_equal(link(x).array, y1.array)
    assert L.LSTM(None, 5).upward.W.array is None


def test_lstm_shrinking_batch_keeps_state_rows():
    rng = numpy.random.RandomState(2)
    link = L.LSTM(3, 4)
    link(rng.randn(3, 3).astype(numpy.float32))
    c_before = link.c.array.copy()
    h_before = link.h.array.copy()
    y = link(rng.randn(2, 3).astype(numpy.float32))
    assert y.shape == (2, 4)
    assert link.c.shape == (3, 4) and link.h.shape == (3, 4)
    numpy.testing.assert_array_equal(link.c.array[2:], c_before[2:])
    numpy.testing.assert_array_equal(link.h.array[2:], h_before[2:])
    numpy.testing.assert_array_equal(link.h.array[:2], y.array)
    with pytest.raises(ValueError, match='never grow'):
        link(rng.randn(4, 3).astype(numpy.float32))


def test_lstm_set_state_errors():
    link = L.LSTM(3, 4)
    with pytest.raises(ValueError, match=r'\(B, 4\)'):
        link.set_state(numpy.zeros((2, 5), numpy.float32), None)
    with pytest.raises(ValueError, match='must match'):
        link.set_state(numpy.zeros((2, 4), numpy.float32), numpy.zeros((3, 4), numpy.float32))


def test_stateless_lstm_equals_stateful():
    rng = numpy.random.RandomState(3)
    a = L.LSTM(3, 4)
    b = L.StatelessLSTM(3, 4)
    b.upward.W.array[...] = a.upward.W.array
    b.upward.b.array[...] = a.upward.b.array
    b.lateral.W.array[...] = a.lateral.W.array
    c = h = None
    for n in (3, 3, 2, 1):
        x = rng.randn(n, 3).astype(numpy.float32)
        y = a(x)
        c, h = b(c, h, x)
        assert c.shape == (3, 4) and h.shape == (3, 4)
        numpy.testing.assert_allclose(h.array[:n], y.array, rtol=1e-6)
        numpy.testing.assert_allclose(h.array, a.h.array, rtol=1e-6)
        numpy.testing.assert_allclose(c.array, a.c.array, rtol=1e-6)


def test_lstm_to_device_cpu_keeps_state():
    link = L.LSTM(2, 3)
    link(numpy.ones((2, 2), numpy.float32))
    c = link.c.array.copy()
    assert link.to_device('cpu') is link
    numpy.testing.assert_array_equal(link.c.array, c)


# -- stepwise GRU -------------------------------------------------------------------------------

def test_gru_matches_numpy_equations():
    rng = numpy.random.RandomState(4)
    link = L.GRU(3, 2, bias_init=0.1)
    W_ih, b_ih = link.upward.W.array.astype(float), link.upward.b.array.astype(float)
    W_hh, b_hh = link.lateral.W.array.astype(float), link.lateral.b.array.astype(float)
    x = rng.randn(4, 3).astype(numpy.float32)
    h = rng.randn(4, 2).astype(numpy.float32)
    y = link(h, x)
    r = _sigmoid(x @ W_ih[:2].T + b_ih[:2] + h @ W_hh[:2].T + b_hh[:2])
    z = _sigmoid(x @ W_ih[2:4].T + b_ih[2:4] + h @ W_hh[2:4].T + b_hh[2:4])
    n = numpy.tanh(x @ W_ih[4:].T + b_ih[4:] + r * (h @ W_hh[4:].T + b_hh[4:]))
    numpy.testing.assert_allclose(y.array, (1 - z) * n + z * h, rtol=1e-5, atol=1e-6)
    # h None means zeros
    numpy.testing.assert_allclose(link(None, x).array,
                                  link(numpy.zeros((4, 2), numpy.float32), x).array, rtol=0)
    assert L.StatelessGRU is L.GRU


def test_stateful_gru_equals_stateless_and_shrinks():
    rng = numpy.random.RandomState(5)
    a = L.StatefulGRU(3, 4)
    b = L.GRU(3, 4)
    for name in ('upward', 'lateral'):
        getattr(b, name).W.array[...] = getattr(a, name).W.array
        getattr(b, name).b.array[...] = getattr(a, name).b.array
    h = None
    for n in (3, 3, 2, 1):
        x = rng.randn(n, 3).astype(numpy.float32)
        y = a(x)
        h = b(h, x)
        assert y.shape == (n, 4) and a.h.shape == (3, 4)
        numpy.testing.assert_allclose(a.h.array, h.array, rtol=1e-6)
        numpy.testing.assert_allclose(y.array, h.array[:n], rtol=1e-6)
    a.reset_state()
    assert a.h is None
    a.set_state(numpy.zeros((2, 4), numpy.float32))
    with pytest.raises(ValueError, match='never grow'):
        a(rng.randn(3, 3).astype(numpy.float32))


# -- stepwise == n-step ---------------------------------------------------------------------------

def _randomize(link, seed):
    rng = numpy.random.RandomState(seed)
    for _, p in sorted(link.namedparams()):
        p.array[...] = rng.uniform(-0.6, 0.6, p.shape)


def _run_stepwise(links, xs, kind):
    """Run stepwise links over a variable-length batch, sorted by decreasing length with a
    shrinking batch; returns (ys in original order, hy, cy) as Variables."""
    lengths = [len(x) for x in xs]
    B = len(xs)
    order = sorted(range(B), key=lambda b: -lengths[b])
    inv = numpy.argsort(order)
    for link in links:
        link.reset_state()
    outs = [[] for _ in range(B)]
    for t in range(max(lengths)):
        active = [b for b in order if lengths[b] > t]
        inp = F.stack([xs[b][t] for b in active], axis=0)
        for link in links:
            inp = link(inp)
        for j, b in enumerate(active):
            outs[b].append(inp[j])
    ys = [F.stack(o, axis=0) for o in outs]
    hy = F.stack([link.h[inv] for link in links], axis=0)
    cy = F.stack([link.c[inv] for link in links], axis=0) if kind == 'lstm' else None
    return ys, hy, cy


def _loss(ys, hy, cy, seed):
    rng = numpy.random.RandomState(seed)
    total = F.sum(hy * rng.randn(*hy.shape).astype(numpy.float32))
    if cy is not None:
        total = total + F.sum(cy * rng.randn(*cy.shape).astype(numpy.float32))
    for y in ys:
        total = total + F.sum(y * rng.randn(*y.shape).astype(numpy.float32))
    return total


@pytest.mark.parametrize('kind', ['lstm', 'gru'])
def test_stepwise_equals_n_step(kind):
    rng = numpy.random.RandomState(6)
    n_layers, I, H = 2, 3, 4
    lengths = [3, 5, 2, 5, 1]
    if kind == 'lstm':
        nstep = L.NStepLSTM(n_layers, I, H, 0.0)
        links = [L.LSTM(I, H), L.LSTM(H, H)]
    else:
        nstep = L.NStepGRU(n_layers, I, H, 0.0)
        links = [L.StatefulGRU(I, H), L.StatefulGRU(H, H)]
    _randomize(nstep, 7)
    nstep.copy_to_stepwise(links)
    x_arrays = [rng.randn(n, I).astype(numpy.float32) for n in lengths]

    xs1 = [Variable(x.copy()) for x in x_arrays]
    if kind == 'lstm':
        hy1, cy1, ys1 = nstep(None, None, xs1)
    else:
        hy1, ys1 = nstep(None, xs1)
        cy1 = None
    _loss(ys1, hy1, cy1, 8).backward()

    xs2 = [Variable(x.copy()) for x in x_arrays]
    ys2, hy2, cy2 = _run_stepwise(links, xs2, kind)
    _loss(ys2, hy2, cy2, 8).backward()

    tol = dict(rtol=1e-4, atol=1e-5)
    assert_allclose(hy1.array, hy2.array, **tol)
    if kind == 'lstm':
        assert_allclose(cy1.array, cy2.array, **tol)
    for a, b in zip(ys1, ys2):
        assert_allclose(a.array, b.array, **tol)
    for a, b in zip(xs1, xs2):
        assert_allclose(a.grad, b.grad, **tol)
    for p, link in zip(nstep, links):
        assert_allclose(p.W_ih.grad, link.upward.W.grad, **tol)
        assert_allclose(p.W_hh.grad, link.lateral.W.grad, **tol)
        if kind == 'lstm':
            assert_allclose(p.b.grad, link.upward.b.grad, **tol)
        else:
            assert_allclose(p.b_ih.grad, link.upward.b.grad, **tol)
            assert_allclose(p.b_hh.grad, link.lateral.b.grad, **tol)


@pytest.mark.parametrize('kind', ['lstm', 'gru'])
def test_copy_from_stepwise_round_trip(kind):
    rng = numpy.random.RandomState(9)
    if kind == 'lstm':
        links = [L.LSTM(2, 3), L.LSTM(3, 3)]
        nstep = L.NStepLSTM(2, None, 3, 0.0)
    else:
        links = [L.StatefulGRU(2, 3), L.StatefulGRU(3, 3)]
        nstep = L.NStepGRU(2, None, 3, 0.0)
    for link in links:
        _randomize(link, 10)
    nstep.copy_from_stepwise(links)     # also initializes the lazy W_ih of layer 0
    assert nstep[0].W_ih.shape == (nstep[0].W_hh.shape[0], 2)
    xs = [rng.randn(n, 2).astype(numpy.float32) for n in (4, 2)]
    if kind == 'lstm':
        _, _, ys = nstep(None, None, xs)
    else:
        _, ys = nstep(None, xs)
    ys2, _, _ = _run_stepwise(links, xs, kind)
    for a, b in zip(ys, ys2):
        assert_allclose(a.array, b.array, rtol=1e-5, atol=1e-6)


def test_copy_to_stepwise_checks():
    nstep = L.NStepLSTM(2, 3, 4, 0.0)
    with pytest.raises(ValueError, match='need 2 stepwise links'):
        nstep.copy_to_stepwise([L.LSTM(3, 4)])
    with pytest.raises(TypeError, match='out_size 4'):
        nstep.copy_to_stepwise([L.LSTM(3, 4), L.LSTM(4, 5)])
    with pytest.raises(TypeError, match='bidirectional'):
        L.NStepBiLSTM(1, 3, 4, 0.0).copy_to_stepwise([L.LSTM(3, 4)])


# -- n-step links -------------------------------------------------------------------------------

def test_n_step_lstm_link_parameters():
    link = L.NStepLSTM(2, 3, 4, 0.25)
    names = [n for n, _ in link.namedparams()]
    assert names == ['/0/W_ih', '/0/W_hh', '/0/b', '/1/W_ih', '/1/W_hh', '/1/b']
    assert link[0].W_ih.shape == (16, 3) and link[1].W_ih.shape == (16, 4)
    assert link[1].W_hh.shape == (16, 4)
    for layer in link:
        b = layer.b.array
        numpy.testing.assert_array_equal(b[4:8], 1)     # forget bias 1
        numpy.testing.assert_array_equal(numpy.delete(b, numpy.s_[4:8]), 0)
    assert link.dropout == 0.25
    gru = L.NStepGRU(1, 3, 4, 0.0)
    assert [n for n, _ in gru.namedparams()] == ['/0/W_ih', '/0/W_hh', '/0/b_ih', '/0/b_hh']
    assert gru[0].W_ih.shape == (12, 3)
    numpy.testing.assert_array_equal(gru[0].b_ih.array, 0)


def test_n_step_lstm_and_stepwise_train_identically():
    """One bias per LSTM layer in both link kinds: after SGD updates on the same data the
    n-step and stepwise models still agree (two redundant biases would not)."""
    rng = numpy.random.RandomState(16)
    nstep = L.NStepLSTM(1, 3, 4, 0.0)
    step = L.LSTM(3, 4)
    _randomize(nstep, 17)
    nstep.copy_to_stepwise([step])
    xs = [rng.randn(n, 3).astype(numpy.float32) for n in (4, 2, 3)]
    for _ in range(3):
        for link in (nstep, step):
            link.cleargrads()
        _, _, ys1 = nstep(None, None, xs)
        sum(F.sum(y * y) for y in ys1).backward()
        ys2, _, _ = _run_stepwise([step], xs, 'lstm')
        sum(F.sum(y * y) for y in ys2).backward()
        for a, b in zip(ys1, ys2):
            assert_allclose(a.array, b.array, rtol=1e-4, atol=1e-5)
        for p, q in ((nstep[0].W_ih, step.upward.W), (nstep[0].W_hh, step.lateral.W),
                     (nstep[0].b, step.upward.b)):
            p.array -= 0.5 * p.grad
            q.array -= 0.5 * q.grad


def test_n_step_link_lazy_in_size_and_hx():
    rng = numpy.random.RandomState(11)
    link = L.NStepLSTM(1, None, 3, 0.0)
    xs = [rng.randn(n, 5).astype(numpy.float32) for n in (2, 4)]
    hx = rng.randn(1, 2, 3).astype(numpy.float32)
    hy, cy, ys = link(hx, None, xs)
    assert link[0].W_ih.shape == (12, 5) and link.in_size == 5
    zero = numpy.zeros(12, numpy.float32)
    ref = F.n_step_lstm(1, 0.0, hx, None, [[link[0].W_ih, link[0].W_hh]],
                        [[link[0].b, zero]], xs)
    assert_allclose(hy.array, ref[0].array, atol=0, rtol=0)
    assert [y.shape for y in ys] == [(2, 3), (4, 3)]


def test_n_step_bilstm_link_matches_function():
    rng = numpy.random.RandomState(12)
    link = L.NStepBiLSTM(2, 3, 4, 0.0)
    assert len(link) == 4 and link[2].W_ih.shape == (16, 8)
    xs = [rng.randn(n, 3).astype(numpy.float32) for n in (3, 1, 2)]
    hy, cy, ys = link(None, None, xs)
    assert hy.shape == (4, 3, 4) and ys[0].shape == (3, 8)
    ws = [[p.W_ih, p.W_hh] for p in link]
    bs = [[p.b, numpy.zeros(16, numpy.float32)] for p in link]
    hy2, cy2, ys2 = F.n_step_bilstm(2, 0.0, None, None, ws, bs, xs)
    assert_allclose(hy.array, hy2.array, atol=0, rtol=0)
    bigru = L.NStepBiGRU(1, 3, 2, 0.0)
    hy, ys = bigru(None, xs)
    assert hy.shape == (2, 3, 2) and ys[2].shape == (2, 4)


def test_n_step_link_serialization_round_trip(tmp_path):
    rng = numpy.random.RandomState(13)
    a = L.NStepLSTM(2, None, 3, 0.0)
    xs = [rng.randn(n, 2).astype(numpy.float32) for n in (3, 2)]
    _, _, ya = a(None, None, xs)
    path = str(tmp_path / 'lstm.npz')
    save_npz(path, a)
    b = L.NStepLSTM(2, None, 3, 0.0)
    load_npz(path, b)
    assert b.in_size == 2
    _, _, yb = b(None, None, xs)
    for u, v in zip(ya, yb):
        numpy.testing.assert_array_equal(u.array, v.array)


@pytest.mark.parametrize('kind', ['lstm', 'gru'])
def test_n_step_link_without_input_projection_folds_embedding(kind):
    """EmbedID(V, E) -> W_ih equals one EmbedID(V, G*H) table holding E W_ih^T."""
    rng = numpy.random.RandomState(14)
    V, E, H = 7, 5, 3
    G = 4 if kind == 'lstm' else 3
    cls = L.NStepLSTM if kind == 'lstm' else L.NStepGRU
    full = cls(2, E, H, 0.0)
    folded = cls(2, None, H, 0.0, project_input=False)
    biases = ('b',) if kind == 'lstm' else ('b_ih', 'b_hh')
    assert [n for n, _ in folded.namedparams()][:1 + len(biases)] == \
        ['/0/W_hh'] + ['/0/' + b for b in biases]
    _randomize(full, 15)
    for p, q in zip(full, folded):
        for name in ('W_hh',) + biases:
            getattr(q, name).array[...] = getattr(p, name).array
    folded[1].W_ih.array[...] = full[1].W_ih.array
    E_table = rng.randn(V, E).astype(numpy.float32)
    table = (E_table @ full[0].W_ih.array.T).astype(numpy.float32)     # (V, G*H)
    ids = [rng.randint(0, V, size=n).astype(numpy.int32) for n in (4, 2, 4)]
    xs_full = [F.embed_id(i, E_table) for i in ids]
    xs_fold = [F.embed_id(i, table) for i in ids]
    out_full = full(None, None, xs_full) if kind == 'lstm' else full(None, xs_full)
    out_fold = folded(None, None, xs_fold) if kind == 'lstm' else folded(None, xs_fold)
    for a, b in zip(out_full[-1], out_fold[-1]):
        assert_allclose(a.array, b.array, rtol=1e-5, atol=1e-6)
    assert xs_fold[0].shape == (4, G * H)
    with pytest.raises(TypeError, match='project_input=False'):
        folded.copy_to_stepwise([L.LSTM(G * H, H), L.LSTM(H, H)] if kind == 'lstm'
                                else [L.GRU(G * H, H), L.GRU(H, H)])
    with pytest.raises(ValueError, match='in_size must be None'):
        cls(1, 5, H, 0.0, project_input=False)


def test_n_step_link_bad_arguments():
    with pytest.raises(ValueError, match='n_layers'):
        L.NStepLSTM(0, 3, 4, 0.0)
    with pytest.raises(ValueError, match='dropout'):
        L.NStepGRU(1, 3, 4, 1.5)
    with pytest.raises(ValueError, match='out_size'):
        L.LSTM(3, 0)


# -- GPU -----------------------------------------------------------------------------------------

@pytest.mark.gpu
def test_lstm_link_to_gpu_moves_state():
    import cupy
    link = L.LSTM(2, 3)
    link(numpy.ones((2, 2), numpy.float32))
    c = link.c.array.copy()
    link.to_device('gpu')
    assert isinstance(link.c.array, cupy.ndarray) and isinstance(link.h.array, cupy.ndarray)
    numpy.testing.assert_array_equal(backend.to_cpu(link.c.array), c)
    y = link(cupy.ones((2, 2), numpy.float32))
    assert isinstance(y.array, cupy.ndarray)
    link.to_device('cpu')
    assert isinstance(link.h.array, numpy.ndarray)


# -- bias_pair: PyTorch's / Zaremba's two biases per layer -----------------------------------
@pytest.mark.parametrize('cls,gates', [(L.NStepLSTM, 4), (L.NStepRNNTanh, 1),
                                       (L.NStepBiLSTM, 4)])
def test_bias_pair_adds_b_hh_and_computes_with_the_sum(cls, gates):
    rng = numpy.random.RandomState(21)
    pair = cls(2, 3, 4, 0.0, bias_pair=True)
    one = cls(2, 3, 4, 0.0)
    names = [n for n, _ in pair.namedparams()]
    assert '/0/b_hh' in names and '/1/b_hh' in names and '/0/b_hh' not in dict(one.namedparams())
    for p, q in zip(pair, one):
        numpy.testing.assert_array_equal(p.b_hh.array, 0)      # b + b_hh = the initial bias
        numpy.testing.assert_array_equal(p.b.array, q.b.array)
        p.W_ih.array[...] = rng.uniform(-.5, .5, p.W_ih.shape)
        p.W_hh.array[...] = rng.uniform(-.5, .5, p.W_hh.shape)
        p.b.array[...] = rng.uniform(-.5, .5, p.b.shape)
        p.b_hh.array[...] = rng.uniform(-.5, .5, p.b.shape)
        q.W_ih.array[...], q.W_hh.array[...] = p.W_ih.array, p.W_hh.array
        q.b.array[...] = p.b.array + p.b_hh.array
    xs = [rng.randn(n, 3).astype(numpy.float32) for n in (3, 1, 2)]
    outs = []
    for link in (pair, one):
        link.cleargrads()
        out = link(None, None, xs) if gates == 4 else link(None, xs)
        ys = out[-1]
        sum(F.sum(y * y * y) for y in ys).backward()
        outs.append(ys)
    for a, b in zip(*outs):
        assert_allclose(a.array, b.array, rtol=1e-6, atol=1e-6)
    for p, q in zip(pair, one):     # both biases get the one bias's gradient
        assert_allclose(p.b.grad, q.b.grad, rtol=1e-5, atol=1e-6)
        assert_allclose(p.b_hh.grad, q.b.grad, rtol=1e-5, atol=1e-6)


def test_bias_pair_gradients_float64():
    from seqdbr.gradient_check import check_backward
    rng = numpy.random.RandomState(22)
    for B, T in ((1, 1), (2, 3)):
        link = L.NStepLSTM(1, 2, 3, 0.0, bias_pair=True)
        for _, p in link.namedparams():
            p.array = rng.uniform(-.5, .5, p.shape)
        x = rng.randn(B, T, 2)

        def f(x, b, b_hh):
            return F.n_step_lstm(1, 0.0, None, None, [[link[0].W_ih, link[0].W_hh]],
                                 [[b, b_hh]], x)[2]
        check_backward(f, (x, link[0].b.array, link[0].b_hh.array), dtype=numpy.float64,
                       atol=1e-6, rtol=1e-5)


def test_bias_pair_sgd_step_moves_the_bias_twice_as_far():
    """The reason the option exists: the same gradient g reaches both biases, so one SGD
    step moves ``b + b_hh`` by ``2 lr g`` (one bias: ``lr g``)."""
    from seqdbr import optimizers as O
    rng = numpy.random.RandomState(23)
    xs = rng.randn(2, 3, 2).astype(numpy.float32)
    moved = []
    for pair in (False, True):
        link = L.NStepLSTM(1, 2, 3, 0.0, bias_pair=pair)
        link[0].W_ih.array[...] = 0.3
        link[0].W_hh.array[...] = -0.2
        opt = O.SGD(lr=0.1)
        opt.setup(link)
        link.cleargrads()
        F.sum(link(None, None, xs)[2]).backward()
        g = link[0].b.grad.copy()
        before = link[0].b.array.copy()
        opt.update()
        total = link[0].b.array + (link[0].b_hh.array if pair else 0)
        moved.append((before - total) / (0.1 * g))
    numpy.testing.assert_allclose(moved[0], 1, rtol=1e-3)     # float32 rounding of b ~ 1
    numpy.testing.assert_allclose(moved[1], 2, rtol=1e-3)


def test_bias_pair_stepwise_copy_and_bad_value():
    rng = numpy.random.RandomState(24)
    link = L.NStepLSTM(1, 2, 3, 0.0, bias_pair=True)
    link[0].b_hh.array[...] = rng.randn(12)
    step = L.LSTM(2, 3)
    link.copy_to_stepwise([step])
    numpy.testing.assert_array_equal(step.upward.b.array, link[0].b.array + link[0].b_hh.array)
    xs = rng.randn(2, 4, 2).astype(numpy.float32)
    ys = link(None, None, xs)[2].array
    back = L.NStepLSTM(1, 2, 3, 0.0, bias_pair=True)
    back.copy_from_stepwise([step])
    numpy.testing.assert_array_equal(back[0].b_hh.array, 0)
    assert_allclose(back(None, None, xs)[2].array, ys, rtol=1e-6, atol=1e-6)
    with pytest.raises(TypeError, match='bias_pair must be True or False'):
        L.NStepLSTM(1, 2, 3, 0.0, bias_pair=1)
    assert not L.NStepGRU(1, 2, 3, 0.0).bias_pair
