"""GPU (CuPy) runs of the attention blocks and the seq2seq model equal the CPU runs.
Skipped without CuPy and a CUDA device."""
import numpy
import pytest

import seqdbr
import seqdbr.functions as F
from seqdbr import Variable
from seqdbr.core import backend
from seqdbr.gradient_check import assert_allclose

pytestmark = pytest.mark.gpu


def test_sdpa_gpu_matches_cpu_with_fully_masked_rows():
    import cupy
    r = numpy.random.default_rng(0)
    q, k, v = r.standard_normal((2, 3, 4)), r.standard_normal((2, 5, 4)), \
        r.standard_normal((2, 5, 2))
    mask = r.uniform(size=(2, 3, 5)) < 0.5
    mask[1, 0] = False
    outs = []
    for xp in (numpy, cupy):
        vs = [Variable(xp.asarray(a)) for a in (q, k, v)]
        y, p = F.scaled_dot_product_attention(*vs, mask=xp.asarray(mask), return_weights=True)
        F.sum(y * y + F.sum(p)).backward()
        outs.append([backend.to_cpu(a) for a in (y.array, p.array) + tuple(x.grad for x in vs)])
    for a, b in zip(*outs):
        assert numpy.isfinite(b).all()
        assert_allclose(b, a, atol=1e-10, rtol=1e-8)


def test_global_attention_and_seq2seq_loss_gpu_match_cpu():
    from seqdbr.examples import seq2seq as S
    seqdbr.initializers.set_seed(0)
    m = S.Seq2seq(7, 6, 3, 4, score='concat')
    r = numpy.random.default_rng(1)
    xs = [r.integers(0, 7, n).astype(numpy.int32) for n in (3, 1, 4)]
    ys = [r.integers(2, 6, n).astype(numpy.int32) for n in (2, 3, 1)]
    loss_cpu = float(m.loss(xs, ys)[0].array)
    greedy_cpu = m.greedy(xs, 6)
    m.to_gpu()
    loss_gpu = float(m.loss(xs, ys)[0].array)
    assert abs(loss_cpu - loss_gpu) < 1e-4
    assert [h.tokens for h in m.greedy(xs, 6)] == [h.tokens for h in greedy_cpu]
    assert m.beam_search(xs[0], 3, 6).finished in (True, False)
