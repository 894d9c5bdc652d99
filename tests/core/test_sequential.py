"""L.Sequential: order of calls, parameter registration, tuple passing, copy, errors."""
import numpy
import pytest

import seqdbr
import seqdbr.functions as F
import seqdbr.links as L
from seqdbr.gradient_check import assert_allclose


def test_sequential_matches_hand_written_chain():
    seqdbr.core.initializers.set_seed(0)
    l1, l2 = L.Linear(3, 4), L.Linear(4, 2)
    seq = L.Sequential(l1, F.relu, l2)
    x = numpy.random.RandomState(0).randn(5, 3).astype(numpy.float32)
    ref = numpy.maximum(x @ l1.W.array.T + l1.b.array, 0) @ l2.W.array.T + l2.b.array
    assert_allclose(seq(x), ref, atol=1e-6, rtol=1e-6)
    assert len(seq) == 3 and seq[1] is F.relu and seq[2] is l2
    assert [n for n, _ in seq.namedparams()] == ['/0/W', '/0/b', '/1/W', '/1/b']
    F.sum(seq(x)).backward()
    assert l1.W.grad is not None and l2.b.grad is not None
    opt = seqdbr.optimizers.SGD(lr=0.1).setup(seq)
    before = l1.W.array.copy()
    opt.update()
    assert not numpy.array_equal(before, l1.W.array)


def test_sequential_passes_tuples_and_appends():
    rnn = L.NStepLSTM(1, 3, 4, 0.0)
    seq = L.Sequential(lambda xs: (None, None, xs), rnn)
    seq.append(lambda hy, cy, ys: ys)
    xs = [numpy.ones((2, 3), numpy.float32), numpy.ones((1, 3), numpy.float32)]
    ys = seq(xs)
    assert [y.shape for y in ys] == [(2, 4), (1, 4)]
    assert [n for n, _ in seq.namedparams()] == ['/0/0/W_ih', '/0/0/W_hh', '/0/0/b']


def test_sequential_copy_keeps_layer_order_and_serializes(tmp_path):
    seq = L.Sequential(L.Linear(3, 4), F.tanh, L.Linear(4, 2))
    c = seq.copy('copy')
    assert c[0] is not seq[0] and c[1] is F.tanh and c[2] is c._children[1]
    x = numpy.ones((1, 3), numpy.float32)
    assert_allclose(c(x), seq(x).array, atol=0, rtol=0)
    seqdbr.serializers.save_npz(str(tmp_path / 's.npz'), seq)
    other = L.Sequential(L.Linear(3, 4), F.tanh, L.Linear(4, 2))
    seqdbr.serializers.load_npz(str(tmp_path / 's.npz'), other)
    assert_allclose(other(x), seq(x).array, atol=0, rtol=0)
    assert 'Linear' in repr(seq) and '(1): tanh' in repr(seq)


def test_sequential_errors():
    with pytest.raises(ValueError, match='no layers'):
        L.Sequential()(numpy.ones(2))
    with pytest.raises(TypeError, match='neither a Link nor a callable'):
        L.Sequential(L.Linear(2, 2), 3)
    lin = L.Linear(2, 2)
    with pytest.raises(TypeError, match='already'):
        L.Sequential(lin, lin)
