"""``n_step_rnn`` / ``n_step_birnn`` (tanh and ReLU) and the links ``NStepRNNTanh``,
``NStepRNNReLU``, ``NStepBiRNNTanh``, ``NStepBiRNNReLU`` against a NumPy reference written
here (each sequence on its own, step by step, no packing); float64 gradient checks over
several shapes including batch 1, length 1, H = 1, shuffled lengths, both directions."""
import numpy
import pytest

import seqdbr
import seqdbr.functions as F
import seqdbr.links as L
from seqdbr.core.config import using_config
from seqdbr.gradient_check import check_backward, assert_allclose

pytestmark = pytest.mark.usefixtures('cpu_path')

ACT = {'tanh': numpy.tanh, 'relu': lambda a: numpy.maximum(a, 0)}


def reference(act, n_layers, hx, ws, bs, xs, bi=False):
    """(hy, ys) in float64: h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)."""
    f = ACT[act]
    D = 2 if bi else 1
    B = len(xs)
    H = ws[0][1].shape[1]
    hx = numpy.zeros((n_layers * D, B, H)) if hx is None else numpy.asarray(hx, numpy.float64)
    hy = numpy.zeros_like(hx)
    ys = []
    for b in range(B):
        inp = numpy.asarray(xs[b], numpy.float64)
        for layer in range(n_layers):
            outs = []
            for d in range(D):
                k = layer * D + d
                W_ih, W_hh = [numpy.asarray(w, numpy.float64) for w in ws[k]]
                b_ih, b_hh = [numpy.asarray(v, numpy.float64) for v in bs[k]]
                h = hx[k, b]
                out = [None] * len(inp)
                for t in (range(len(inp)) if d == 0 else range(len(inp) - 1, -1, -1)):
                    h = f(W_ih @ inp[t] + b_ih + W_hh @ h + b_hh)
                    out[t] = h
                hy[k, b] = h
                outs.append(numpy.array(out))
            inp = numpy.concatenate(outs, axis=1)
        ys.append(inp)
    return hy, ys


def make_params(n_layers, in_size, H, bi=False, seed=0, scale=0.6):
    rng = numpy.random.RandomState(seed)
    D = 2 if bi else 1
    ws, bs = [], []
    for k in range(n_layers * D):
        n_in = in_size if k < D else D * H
        ws.append([rng.randn(H, n_in) * scale, rng.randn(H, H) * scale])
        bs.append([rng.randn(H) * scale, rng.randn(H) * scale])
    return ws, bs


def _fn(bi):
    return F.n_step_birnn if bi else F.n_step_rnn


@pytest.mark.parametrize('act', ['tanh', 'relu'])
@pytest.mark.parametrize('bi', [False, True])
@pytest.mark.parametrize('lengths', [[2, 3, 1], [4, 4, 4], [1], [5, 1, 3, 3, 2]])
@pytest.mark.parametrize('with_state', [False, True])
def test_forward_matches_reference(xp, act, bi, lengths, with_state):
    n_layers, I, H = 2, 3, 4
    K = n_layers * (2 if bi else 1)
    rng = numpy.random.RandomState(len(lengths))
    xs = [rng.randn(n, I) for n in lengths]
    ws, bs = make_params(n_layers, I, H, bi, seed=sum(lengths))
    hx = rng.randn(K, len(lengths), H) if with_state else None
    hy, ys = _fn(bi)(n_layers, 0.0, None if hx is None else xp.asarray(hx),
                     [[xp.asarray(w) for w in p] for p in ws],
                     [[xp.asarray(v) for v in p] for p in bs],
                     [xp.asarray(x) for x in xs], activation=act)
    rhy, rys = reference(act, n_layers, hx, ws, bs, xs, bi)
    assert_allclose(hy.array, rhy, atol=1e-12, rtol=1e-12)
    assert len(ys) == len(lengths)
    for y, ry in zip(ys, rys):
        assert y.shape == ry.shape
        assert_allclose(y.array, ry, atol=1e-12, rtol=1e-12)
    # the (B, T, in) form and the no-graph (evaluation) path give the same numbers
    if len(set(lengths)) == 1:
        hy3, ys3 = _fn(bi)(n_layers, 0.0, None if hx is None else xp.asarray(hx),
                           [[xp.asarray(w) for w in p] for p in ws],
                           [[xp.asarray(v) for v in p] for p in bs],
                           xp.asarray(numpy.stack(xs)), activation=act)
        assert_allclose(ys3.array, numpy.stack(rys), atol=1e-12, rtol=1e-12)
    with seqdbr.no_backprop_mode():
        hy2, _ = _fn(bi)(n_layers, 0.0, None if hx is None else xp.asarray(hx),
                         [[xp.asarray(w) for w in p] for p in ws],
                         [[xp.asarray(v) for v in p] for p in bs],
                         [xp.asarray(x) for x in xs], activation=act)
    assert_allclose(hy2.array, rhy, atol=1e-12, rtol=1e-12)


def _grad_case(act, bi, n_layers, lengths, I, H, seed=0, with_state=True, use='all'):
    rng = numpy.random.RandomState(seed)
    D = 2 if bi else 1
    K = n_layers * D
    ws, bs = make_params(n_layers, I, H, bi, seed=seed)
    xs = [rng.randn(n, I) for n in lengths]
    flat = [a for k in range(K) for a in (ws[k][0], ws[k][1], bs[k][0], bs[k][1])]
    inputs = tuple(xs) + tuple(flat)
    if with_state:
        inputs += (rng.randn(K, len(lengths), H),)

    def f(*args):
        seqs = list(args[:len(lengths)])
        w = args[len(lengths):len(lengths) + 4 * K]
        h0 = args[len(lengths) + 4 * K] if with_state else None
        wsv = [[w[4 * k], w[4 * k + 1]] for k in range(K)]
        bsv = [[w[4 * k + 2], w[4 * k + 3]] for k in range(K)]
        hy, ys = _fn(bi)(n_layers, 0.0, h0, wsv, bsv, seqs, activation=act)
        return {'all': (hy,) + tuple(ys), 'hy': (hy,), 'ys0': (ys[0],)}[use]

    check_backward(f, inputs, dtype=numpy.float64, eps=1e-5, atol=1e-7, rtol=1e-6)


@pytest.mark.parametrize('act', ['tanh', 'relu'])
@pytest.mark.parametrize('bi,n_layers,lengths,I,H,use', [
    (False, 1, [1], 1, 1, 'all'),               # batch 1, length 1, H 1
    (False, 2, [2, 3, 1], 2, 3, 'all'),          # shuffled lengths, two layers
    (False, 2, [3, 3], 2, 2, 'all'),             # equal lengths
    (False, 2, [2, 3, 1], 2, 2, 'hy'),
    (False, 2, [2, 3, 1], 2, 2, 'ys0'),
    (True, 2, [2, 3, 1], 2, 2, 'all'),           # bidirectional
    (True, 1, [1], 2, 1, 'all')])
def test_gradients(act, bi, n_layers, lengths, I, H, use):
    _grad_case(act, bi, n_layers, lengths, I, H, seed=len(lengths) + n_layers, use=use)


def test_gradient_zero_initial_state():
    _grad_case('tanh', False, 2, [3, 1, 2], 2, 2, seed=2, with_state=False)


def test_relu_hidden_state_by_hand():
    # one unit, W_ih = 1, W_hh = -2, b = 0: h1 = relu(1) = 1, h2 = relu(3 - 2) = 1,
    # h3 = relu(-1 - 2) = 0
    x = numpy.array([[1.0], [3.0], [-1.0]])
    hy, ys = F.n_step_rnn(1, 0.0, None, [[numpy.ones((1, 1)), -2 * numpy.ones((1, 1))]],
                          [[numpy.zeros(1), numpy.zeros(1)]], [x], activation='relu')
    assert ys[0].array.ravel().tolist() == [1.0, 1.0, 0.0]
    assert hy.array.ravel().tolist() == [0.0]


def test_errors():
    ws, bs = make_params(1, 2, 3)
    xs = [numpy.ones((2, 2))]
    with pytest.raises(ValueError, match="activation must be 'tanh' or 'relu'"):
        F.n_step_rnn(1, 0.0, None, ws, bs, xs, activation='sigmoid')
    with pytest.raises(ValueError, match=r'W_hh of layer 0 has shape \(3, 3\) but must be '
                                         r'\(4, 4\)|W_ih of layer 0'):
        F.n_step_rnn(1, 0.0, None, [[numpy.ones((4, 2)), numpy.ones((3, 3))]], bs, xs)
    with pytest.raises(ValueError, match=r'hx has shape \(2, 1, 3\) but must be'):
        F.n_step_rnn(1, 0.0, numpy.zeros((2, 1, 3)), ws, bs, xs)
    with pytest.raises(ValueError, match='2 entries'):
        F.n_step_birnn(1, 0.0, None, ws, bs, xs)


# -- links --------------------------------------------------------------------------------------

@pytest.mark.parametrize('cls,act,bi', [(L.NStepRNNTanh, 'tanh', False),
                                        (L.NStepRNNReLU, 'relu', False),
                                        (L.NStepBiRNNTanh, 'tanh', True),
                                        (L.NStepBiRNNReLU, 'relu', True)])
def test_links_match_reference_and_train(cls, act, bi):
    seqdbr.core.initializers.set_seed(3)
    link = cls(2, None, 4, 0.0)
    rng = numpy.random.RandomState(0)
    xs = [rng.randn(n, 3).astype(numpy.float32) for n in (3, 1, 2)]
    hy, ys = link(None, xs)
    D = 2 if bi else 1
    assert link[0].W_ih.shape == (4, 3) and link[D].W_ih.shape == (4, D * 4)
    assert [n for n, _ in link.namedparams()][:3] == ['/0/W_ih', '/0/W_hh', '/0/b']
    ws = [[p.W_ih.array, p.W_hh.array] for p in link]
    bs = [[p.b.array, numpy.zeros_like(p.b.array)] for p in link]
    rhy, rys = reference(act, 2, None, ws, bs, xs, bi)
    assert_allclose(hy.array, rhy, atol=1e-5, rtol=1e-5)
    for y, ry in zip(ys, rys):
        assert_allclose(y.array, ry, atol=1e-5, rtol=1e-5)
    F.sum(F.concat(ys, axis=0)).backward()
    assert all(p.grad is not None for p in link.params())
    assert link[0].b.grad.shape == (4,)


def test_link_forward_embed_equals_forward():
    seqdbr.core.initializers.set_seed(0)
    link = L.NStepRNNTanh(1, 5, 3, 0.0)
    embed = L.EmbedID(7, 5)
    ids = numpy.random.RandomState(0).randint(0, 7, (2, 4)).astype(numpy.int32)
    hy, ys = link.forward_embed(None, ids, embed.W)
    hy2, ys2 = link(None, F.embed_id(ids, embed.W))
    assert_allclose(hy.array, hy2.array, atol=1e-6, rtol=1e-6)
    assert_allclose(ys.array, ys2.array, atol=1e-6, rtol=1e-6)
    pre = L.NStepRNNReLU(1, None, 3, 0.0, project_input=False)
    hy3, _ = pre(None, [numpy.ones((2, 3), numpy.float32)])
    assert hy3.shape == (1, 1, 3) and pre[0].W_ih is None


def test_link_dropout_and_eval_mode():
    link = L.NStepRNNTanh(2, 3, 4, 0.5)
    xs = [numpy.ones((3, 3), numpy.float32)]
    with using_config('train', False):
        a = link(None, xs)[0].array
        b = link(None, xs)[0].array
    assert numpy.array_equal(a, b)
