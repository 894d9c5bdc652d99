"""WordLM against an independent NumPy reference, its carried state, tying and gradients."""
import numpy
import pytest

import seqdbr
import seqdbr.functions as F
from seqdbr.wordlm.model import WordLM


def _sigmoid(x):
    return 1 / (1 + numpy.exp(-x))


def reference_logits(model, x, h=None, c=None):
    """NumPy forward: embedding, LSTM layers (gates [i|f|g|o], bias b [+ b_hh]), linear."""
    P = {k: p.array.astype(numpy.float64) for k, p in model.weights().items()}
    n, H = model.num_layers, model.rnn_size
    B, T = x.shape
    h = numpy.zeros((n, B, H)) if h is None else h.copy()
    c = numpy.zeros((n, B, H)) if c is None else c.copy()
    inp = P['embed/W'][x]                              # (B, T, H)
    for l in range(n):
        outs = []
        for t in range(T):
            a = inp[:, t] @ P['rnn/%d/W_ih' % l].T + h[l] @ P['rnn/%d/W_hh' % l].T \
                + P['rnn/%d/b' % l] + P.get('rnn/%d/b_hh' % l, 0)
            i, f, g, o = numpy.split(a, 4, axis=1)
            c[l] = _sigmoid(f) * c[l] + _sigmoid(i) * numpy.tanh(g)
            h[l] = _sigmoid(o) * numpy.tanh(c[l])
            outs.append(h[l].copy())
        inp = numpy.stack(outs, 1)
    W = P['embed/W'] if model.tied else P['out/W']
    return inp @ W.T + P['out_b'], h, c


@pytest.mark.parametrize('tied,bias_pair', [(False, False), (True, False), (False, True)])
@pytest.mark.parametrize('B,T,n', [(1, 1, 1), (3, 5, 2), (2, 4, 3)])
def test_logits_match_numpy_reference(tied, bias_pair, B, T, n):
    seqdbr.seed(0)
    m = WordLM(13, 6, n, init_scale=0.5, tied=tied, bias_pair=bias_pair)
    assert ('rnn/0/b_hh' in m.weights()) == bias_pair
    x = numpy.random.default_rng(1).integers(0, 13, (B, T)).astype(numpy.int32)
    y = m(x)
    ref, h, c = reference_logits(m, x)
    assert y.shape == (B, T, 13) and y.dtype == numpy.float32
    numpy.testing.assert_allclose(y.array, ref, rtol=1e-4, atol=1e-5)
    # the state is carried into the next call
    x2 = numpy.random.default_rng(2).integers(0, 13, (B, 2)).astype(numpy.int32)
    ref2, _, _ = reference_logits(m, x2, h, c)
    numpy.testing.assert_allclose(m(x2).array, ref2, rtol=1e-4, atol=1e-5)


def test_init_uniform_every_parameter_and_tying():
    seqdbr.seed(0)
    m = WordLM(50, 8, 2, init_scale=0.1)
    for k, p in m.weights().items():
        a = p.array
        assert numpy.abs(a).max() <= 0.1 and a.std() > 0.03, k     # U(-0.1, 0.1)
    seqdbr.seed(0)
    p = WordLM(50, 8, 2, init_scale=0.1, bias_pair=True)
    for l in range(2):
        b, b_hh = p.weights()['rnn/%d/b' % l].array, p.weights()['rnn/%d/b_hh' % l].array
        assert numpy.abs(b_hh).max() <= 0.1 and b_hh.std() > 0.03      # its own U(-s, s)
        assert not numpy.array_equal(b, b_hh)
    assert p.config()['bias_pair'] and not WordLM(50, 8, 2).config()['bias_pair']
    with pytest.raises(ValueError, match='bias_pair must be True or False'):
        WordLM(50, 8, 2, bias_pair='yes')
    seqdbr.seed(0)
    t = WordLM(50, 8, 2, tied=True)
    assert 'out/W' not in t.weights()
    assert m.count_params() - t.count_params() == 50 * 8


def test_tied_gradient_float64_numerical():
    """d loss / d embed.W collects both uses of the tied table (lookup and output)."""
    seqdbr.seed(3)
    m = WordLM(7, 4, 2, init_scale=0.5, tied=True)
    for _, p in m.namedparams():
        p.array = p.array.astype(numpy.float64)
    rng = numpy.random.default_rng(0)
    x = rng.integers(0, 7, (2, 3)).astype(numpy.int32)
    t = rng.integers(0, 7, (2, 3)).astype(numpy.int32)

    def loss():
        m.reset_state()
        y = m(x)
        return F.softmax_cross_entropy(y.reshape(6, 7), t.reshape(6))

    m.cleargrads()
    loss().backward()
    E = m.embed.W
    g = E.grad.copy()
    eps = 1e-6
    for (i, j) in [(int(x[0, 0]), 0), (int(t[1, 2]), 3), (int(x[1, 1]), 2)]:
        old = E.array[i, j]
        E.array[i, j] = old + eps
        lp = float(loss().array)
        E.array[i, j] = old - eps
        lm = float(loss().array)
        E.array[i, j] = old
        assert abs((lp - lm) / (2 * eps) - g[i, j]) < 1e-7 * max(1, abs(g[i, j])), (i, j)


def test_state_protocol_and_errors():
    seqdbr.seed(0)
    m = WordLM(10, 4, 2)
    assert m.get_state() is None
    m(numpy.zeros((3, 2), numpy.int32))
    st = m.get_state()
    assert st['h'].shape == (2, 3, 4) and st['c'].shape == (2, 3, 4)
    with pytest.raises(ValueError, match='batch size 3 but the input has 2 rows'):
        m(numpy.zeros((2, 2), numpy.int32))
    with pytest.raises(ValueError, match='integer word ids'):
        m(numpy.zeros((3, 2), numpy.float32))
    with pytest.raises(ValueError, match=r'shape \(num_layers=2, B, rnn_size=4\)'):
        m.set_state({'h': numpy.zeros((1, 3, 4)), 'c': numpy.zeros((1, 3, 4))})
    m.set_state(st)
    m.reset_state()
    assert m.get_state() is None
    for bad in (dict(dropout=1.0), dict(init_scale=0), dict(rnn_size=0)):
        with pytest.raises(ValueError, match='WordLM'):
            WordLM(10, **{'rnn_size': 4, **bad})
