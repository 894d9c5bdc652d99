"""Tests for L.MultiHeadAttention and L.GlobalAttention: NumPy references written here from
the papers' equations, float64 gradient checks of inputs and parameters, masks, errors."""
import numpy
import pytest

import seqdbr
import seqdbr.functions as F
import seqdbr.links as L
from seqdbr import Variable
from seqdbr.gradient_check import assert_allclose, check_backward, numerical_grad


def _rng(seed=0):
    return numpy.random.default_rng(seed)


@pytest.fixture(autouse=True)
def _seeded():
    seqdbr.initializers.set_seed(0)   # the same weights whatever ran before


def _to_float64(link):
    for p in link.params():
        p.array = p.array.astype(numpy.float64)
    return link


def _w(lin):
    return lin.W.array.astype(numpy.float64)


def _b(lin):
    return 0.0 if lin.b is None else lin.b.array.astype(numpy.float64)


def _softmax_allowed(s, allowed):
    out = numpy.zeros_like(s)
    if allowed.any():
        e = numpy.exp(s[allowed] - s[allowed].max())
        out[allowed] = e / e.sum()
    return out


def _check_param_grads(link, fn, seed=0, atol=1e-6, rtol=1e-5):
    """Backward's parameter gradients against central differences of sum(fn() * gy)."""
    y = fn()
    gy = _rng(seed).uniform(-1, 1, y.shape)
    link.cleargrads()
    F.sum(y * gy).backward()
    names = [n for n, _ in link.namedparams()]
    params = [p for _, p in link.namedparams()]
    num = numerical_grad(lambda: (fn().array,), tuple(p.array for p in params), (gy,),
                         eps=1e-5)     # float64: truncation error ~1e-10, rounding ~1e-11
    for name, p, g in zip(names, params, num):
        assert p.grad is not None, name
        assert_allclose(p.grad, g, atol=atol, rtol=rtol, err_msg=name)


# -- MultiHeadAttention --------------------------------------------------------------------

def ref_mha(link, q, k, v, mask=None):
    h, dm = link.n_heads, link.d_model
    dk = dm // h
    Q = q @ _w(link.linear_q).T + _b(link.linear_q)
    K = k @ _w(link.linear_k).T + _b(link.linear_k)
    V = v @ _w(link.linear_v).T + _b(link.linear_v)
    B, Tq, Tk = q.shape[0], q.shape[1], k.shape[1]
    m = numpy.ones((B, Tq, Tk), bool) if mask is None else numpy.broadcast_to(mask, (B, Tq, Tk))
    heads = numpy.zeros((B, Tq, dm))
    weights = numpy.zeros((B, h, Tq, Tk))
    for b in range(B):
        for i in range(h):
            sl = slice(i * dk, (i + 1) * dk)
            for t in range(Tq):
                s = K[b, :, sl] @ Q[b, t, sl] / numpy.sqrt(dk)
                a = _softmax_allowed(s, m[b, t])
                weights[b, i, t] = a
                heads[b, t, sl] = a @ V[b, :, sl]
    return heads @ _w(link.linear_o).T + _b(link.linear_o), weights


@pytest.mark.parametrize('B,Tq,Tk,h,dm,kdim,vdim,out', [
    (2, 3, 4, 2, 6, None, None, None),
    (1, 1, 1, 1, 2, None, None, None),       # batch 1, length 1, one head
    (2, 2, 5, 3, 6, 4, 5, 3),
])
def test_mha_matches_reference_and_gradients(B, Tq, Tk, h, dm, kdim, vdim, out):
    link = _to_float64(L.MultiHeadAttention(h, dm, kdim=kdim, vdim=vdim, out_size=out))
    r = _rng(1)
    for p in link.params():
        if p.array.ndim == 1:
            p.array[...] = r.standard_normal(p.array.shape) * 0.1   # non-zero biases
    q = r.standard_normal((B, Tq, dm))
    k = r.standard_normal((B, Tk, kdim or dm))
    v = r.standard_normal((B, Tk, vdim or dm))
    mask = r.uniform(size=(B, 1, Tk)) < 0.7
    mask[0, 0, :] = False            # example 0: every key padded (zero context)
    for m in (None, mask):
        y, w = link(q, k, v, mask=m, return_weights=True)
        y_ref, w_ref = ref_mha(link, q, k, v, m)
        assert y.shape == (B, Tq, out or dm) and w.shape == (B, h, Tq, Tk)
        assert_allclose(y, y_ref, atol=1e-12, rtol=1e-10)
        assert_allclose(w, w_ref, atol=1e-12, rtol=1e-10)
        assert numpy.isfinite(y.array).all()
        check_backward(lambda q, k, v: link(q, k, v, mask=m), (q, k, v))
        _check_param_grads(link, lambda: link(q, k, v, mask=m))


def test_mha_self_attention_causal_mask_and_4d_mask():
    link = _to_float64(L.MultiHeadAttention(2, 4))
    x = _rng(2).standard_normal((2, 5, 4))
    causal = numpy.tril(numpy.ones((5, 5), bool))[None]
    y = link(x, mask=causal)
    assert_allclose(y, ref_mha(link, x, x, x, causal)[0], atol=1e-12, rtol=1e-10)
    # the output at t depends on x[:t+1] only
    x2 = x.copy()
    x2[:, 3:] += 1.0
    y2 = link(x2, mask=causal)
    assert_allclose(y.array[:, :3], y2.array[:, :3], atol=1e-12)
    y4 = link(x, mask=causal[:, None])            # (1, 1, T, T): explicit heads axis
    assert (y4.array == y.array).all()
    check_backward(lambda x: link(x, mask=causal), x)


def test_mha_errors():
    with pytest.raises(ValueError, match='not divisible'):
        L.MultiHeadAttention(3, 8)
    link = L.MultiHeadAttention(2, 4, kdim=3)
    q = numpy.zeros((2, 3, 4), numpy.float32)
    k = numpy.zeros((2, 5, 3), numpy.float32)
    with pytest.raises(ValueError, match=r'k must be 3-d \(B, T, 3\)'):
        link(q)                                   # self-attention needs kdim == d_model
    with pytest.raises(ValueError, match='q must be 3-d'):
        link(q[0], k)
    with pytest.raises(ValueError, match='one B and Tk'):
        link(q, k, numpy.zeros((2, 4, 4), numpy.float32))
    with pytest.raises(ValueError, match='one B and Tk'):
        link(q, k[:1], numpy.zeros((1, 5, 4), numpy.float32))
    v = numpy.zeros((2, 5, 4), numpy.float32)
    assert link(q, k, v).shape == (2, 3, 4)
    with pytest.raises(ValueError, match='mask must have shape'):
        link(q, k, v, mask=numpy.ones((2, 5), bool))
    with pytest.raises(ValueError, match='mask of shape'):
        link(q, k, v, mask=numpy.ones((2, 3, 4), bool))


# -- GlobalAttention -----------------------------------------------------------------------

def ref_global(link, h, hs, lengths):
    """Luong et al. 2015, eqs. 5, 7, 8, one query row at a time. h (B, T, Hq)."""
    B, T, _ = h.shape
    S = hs.shape[1]
    ht = numpy.zeros((B, T, link.out_size))
    a = numpy.zeros((B, T, S))
    for b in range(B):
        for t in range(T):
            q = h[b, t]
            if link.score == 'dot':
                s = hs[b] @ q
            elif link.score == 'general':
                s = hs[b] @ (_w(link.linear_in) @ q)
            else:
                s = numpy.tanh(hs[b] @ _w(link.linear_s).T + _w(link.linear_q) @ q) \
                    @ _w(link.linear_v)[0]
            a[b, t] = _softmax_allowed(s, numpy.arange(S) < lengths[b])
            c = a[b, t] @ hs[b]
            ht[b, t] = numpy.tanh(_w(link.linear_out) @ numpy.concatenate([c, q]))
    return ht, a


@pytest.mark.parametrize('score', ['dot', 'general', 'concat'])
@pytest.mark.parametrize('B,S,T', [(3, 4, 1), (1, 1, 1), (2, 5, 3)])
def test_global_attention_reference_and_gradients(score, B, S, T):
    Hq, Hs = 3, (3 if score == 'dot' else 4)
    link = _to_float64(L.GlobalAttention(Hq, Hs, score=score, out_size=2, attn_size=5))
    r = _rng(3)
    hs = r.standard_normal((B, S, Hs))
    lengths = [S] + [int(n) for n in r.integers(1, S + 1, B - 1)]
    if B > 2:
        lengths[-1] = 0                          # an empty source: zero context, no NaN
    h = r.standard_normal((B, T, Hq))
    hs_pad = hs * (numpy.arange(S)[None, :, None] < numpy.array(lengths)[:, None, None])
    ht_ref, a_ref = ref_global(link, h, hs_pad, lengths)
    ht, a = link(h, hs_pad, lengths=lengths)
    assert_allclose(ht, ht_ref, atol=1e-12, rtol=1e-10)
    assert_allclose(a, a_ref, atol=1e-12, rtol=1e-10)
    # one step at a time with a prepared memory gives the same rows
    mem = link.prepare(hs_pad, lengths)
    for t in range(T):
        ht_t, a_t = link(h[:, t], mem)
        assert ht_t.shape == (B, 2) and a_t.shape == (B, S)
        assert_allclose(ht_t, ht_ref[:, t], atol=1e-12, rtol=1e-10)
        assert_allclose(a_t, a_ref[:, t], atol=1e-12, rtol=1e-10)
    check_backward(lambda h, hs: link(h, hs, lengths=lengths), (h, hs_pad))
    check_backward(lambda h, hs: link(h[:, 0], hs, lengths=lengths)[0], (h, hs_pad))
    _check_param_grads(link, lambda: link(h, hs_pad, lengths=lengths)[0])


def test_global_attention_list_sources_and_select():
    link = _to_float64(L.GlobalAttention(3, 4, score='general'))
    r = _rng(4)
    seqs = [r.standard_normal((n, 4)) for n in (2, 4, 1)]
    pad = numpy.zeros((3, 4, 4))
    for i, s in enumerate(seqs):
        pad[i, :len(s)] = s
    h = r.standard_normal((3, 3))
    mem = link.prepare([Variable(s) for s in seqs])
    assert mem.lengths == [2, 4, 1] and mem.mask.shape == (3, 1, 4)
    ht1, a1 = link(h, mem)
    ht2, a2 = link(h, pad, lengths=[2, 4, 1])
    assert_allclose(ht1, ht2.array, atol=1e-14)
    assert (a1.array[0, 2:] == 0).all() and (a1.array[2, 1:] == 0).all()
    sub = mem.select([2, 2, 0])               # e.g. beam parents
    ht3, _ = link(h[[2, 2, 0]], sub)
    assert_allclose(ht3, ht1.array[[2, 2, 0]], atol=1e-14)
    check_backward(lambda *xs: link(h, link.prepare(list(xs)))[0], tuple(seqs))


def test_global_attention_errors():
    with pytest.raises(ValueError, match="'dot' score needs source_size == query_size"):
        L.GlobalAttention(3, 4, score='dot')
    with pytest.raises(ValueError, match='score must be'):
        L.GlobalAttention(3, score='bilinear')
    link = L.GlobalAttention(3, 4)
    hs = numpy.zeros((2, 5, 4), numpy.float32)
    with pytest.raises(ValueError, match=r'hs must be \(B, S, source_size=4\)'):
        link.prepare(numpy.zeros((2, 5, 3), numpy.float32))
    with pytest.raises(ValueError, match='2 prepared sources'):
        link(numpy.zeros((3, 3), numpy.float32), hs)
    with pytest.raises(ValueError, match='query_size'):
        link(numpy.zeros((2, 4), numpy.float32), hs)
    with pytest.raises(ValueError, match='3 lengths for a batch of 2'):
        link.prepare(hs, [1, 2, 3])
    with pytest.raises(ValueError, match='lengths must lie'):
        link.prepare(hs, [1, 6])
    with pytest.raises(ValueError, match='empty list'):
        link.prepare([])
