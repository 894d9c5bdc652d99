"""Linear, EmbedID and Classifier against NumPy references and numerical gradients."""
import numpy
import pytest

import seqdbr.links as L
from seqdbr.core import initializers as I
from seqdbr.core import serializers as S
from seqdbr.core.config import no_backprop_mode
from seqdbr.core.variable import Variable
from seqdbr.gradient_check import check_backward, numerical_grad


def _rng(seed=0):
    return numpy.random.default_rng(seed)


# -- Linear ---------------------------------------------------------------------------------

def test_linear_forward_matches_numpy():
    I.set_seed(0)
    link = L.Linear(3, 5)
    assert link.W.shape == (5, 3) and link.b.shape == (5,)
    assert link.W.array.dtype == numpy.float32
    numpy.testing.assert_array_equal(link.b.array, numpy.zeros(5, numpy.float32))
    x = _rng().normal(size=(4, 3)).astype(numpy.float32)
    y = link(x)
    assert y.shape == (4, 5) and y.dtype == numpy.float32
    ref = x.astype(numpy.float64) @ link.W.array.T.astype(numpy.float64) + link.b.array
    numpy.testing.assert_allclose(y.array, ref, rtol=1e-5, atol=1e-6)


def test_linear_gradients_float64_through_the_link():
    rng = _rng(1)
    W0 = rng.normal(size=(4, 3))
    b0 = rng.normal(size=(4,))
    link = L.Linear(3, 4, initialW=I.Constant(W0, dtype=numpy.float64),
                    initial_bias=I.Constant(b0, dtype=numpy.float64))
    assert link.W.array.dtype == numpy.float64
    x = rng.normal(size=(5, 3))
    # gradient w.r.t. the input, via the numerical checker
    check_backward(lambda v: link(v), x, dtype=numpy.float64)
    # gradients w.r.t. the parameters: closed form and central differences
    gy = rng.normal(size=(5, 4))
    link.cleargrads()
    y = link(Variable(x))
    y.grad = gy
    y.backward()
    numpy.testing.assert_allclose(link.W.grad, gy.T @ x, rtol=1e-12)
    numpy.testing.assert_allclose(link.b.grad, gy.sum(axis=0), rtol=1e-12)

    def f():
        with no_backprop_mode():
            return (link(x).array,)

    gW, gb = numerical_grad(f, (link.W.array, link.b.array), (gy,))
    numpy.testing.assert_allclose(link.W.grad, gW, rtol=1e-5, atol=1e-7)
    numpy.testing.assert_allclose(link.b.grad, gb, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize('make', [lambda: L.Linear(5), lambda: L.Linear(None, 5)])
def test_linear_lazy_in_size(make):
    link = make()
    assert link.in_size is None and link.out_size == 5 and link.W.array is None
    assert [n for n, _ in link.namedparams()] == ['/W', '/b']
    x = _rng(2).normal(size=(2, 3, 4)).astype(numpy.float32)
    y = link(x)
    assert link.W.shape == (5, 12) and link.in_size == 12
    assert y.shape == (2, 5)
    numpy.testing.assert_allclose(y.array, x.reshape(2, 12) @ link.W.array.T + link.b.array,
                                  rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError):
        link(numpy.zeros((2, 7), numpy.float32))  # W is fixed now


def test_linear_lazy_reproducible_with_seed():
    x = numpy.ones((1, 6), numpy.float32)
    I.set_seed(4)
    a = L.Linear(None, 3)
    a(x)
    I.set_seed(4)
    b = L.Linear(None, 3)
    b(x)
    numpy.testing.assert_array_equal(a.W.array, b.W.array)


def test_linear_lazy_uninferable_input():
    with pytest.raises(ValueError, match='cannot infer in_size'):
        L.Linear(None, 3)(numpy.zeros((4,), numpy.float32))


def test_linear_initial_arrays_and_in_size_from_initialW():
    W = numpy.arange(6, dtype=numpy.float64).reshape(2, 3)
    link = L.Linear(None, 2, initialW=W, initial_bias=numpy.array([1.0, -1.0]))
    assert link.in_size == 3 and link.W.array.dtype == numpy.float32
    numpy.testing.assert_array_equal(link.W.array, W)
    numpy.testing.assert_array_equal(link.b.array, [1.0, -1.0])
    W[0, 0] = 99.0
    assert link.W.array[0, 0] == 0.0  # copied
    link2 = L.Linear(3, 2, initial_bias=0.25)
    numpy.testing.assert_array_equal(link2.b.array, [0.25, 0.25])
    with pytest.raises(ValueError, match=r'initialW has shape \(3, 2\).*\(2, 3\)'):
        L.Linear(3, 2, initialW=numpy.zeros((3, 2)))
    with pytest.raises(ValueError, match='out_size'):
        L.Linear(3, 0)
    with pytest.raises(ValueError, match='in_size'):
        L.Linear(-1, 2)
    with pytest.raises(ValueError, match='out_size'):
        L.Linear(3, 2.5)


def test_linear_nobias():
    link = L.Linear(2, 3, nobias=True)
    assert link.b is None
    assert [n for n, _ in link.namedparams()] == ['/W']
    x = numpy.ones((1, 2), numpy.float32)
    numpy.testing.assert_allclose(link(x).array, x @ link.W.array.T, rtol=1e-6)


def test_linear_repr_and_mlp_repr():
    assert repr(L.Linear(3, 4)) == 'Linear(in_size=3, out_size=4, nobias=False)'

    class MLP(L.Chain):
        def __init__(self):
            super().__init__()
            with self.init_scope():
                self.l1 = L.Linear(None, 100)
                self.l2 = L.Linear(100, 10, nobias=True)

    assert repr(MLP()) == ('MLP(\n'
                           '  (l1): Linear(in_size=None, out_size=100, nobias=False)\n'
                           '  (l2): Linear(in_size=100, out_size=10, nobias=True)\n'
                           ')')


def test_linear_lazy_load_sets_in_size(tmp_path):
    src = L.Linear(7, 2)
    S.save_npz(tmp_path / 'l.npz', src)
    dst = L.Linear(2)
    S.load_npz(tmp_path / 'l.npz', dst)
    assert dst.in_size == 7
    numpy.testing.assert_array_equal(dst.W.array, src.W.array)


def test_linear_copy_init_new_values():
    I.set_seed(0)
    link = L.Linear(4, 3)
    c = link.copy('init')
    assert c.W.shape == (3, 4)
    assert not numpy.array_equal(c.W.array, link.W.array)
    numpy.testing.assert_array_equal(c.b.array, numpy.zeros(3))


# -- EmbedID --------------------------------------------------------------------------------

def test_embed_forward_backward():
    I.set_seed(0)
    emb = L.EmbedID(6, 4)
    assert emb.W.shape == (6, 4) and emb.W.array.dtype == numpy.float32
    x = numpy.array([[0, 5, 2], [2, 2, 1]], numpy.int32)
    y = emb(x)
    assert y.shape == (2, 3, 4)
    numpy.testing.assert_array_equal(y.array, emb.W.array[x])
    gy = _rng(3).normal(size=(2, 3, 4)).astype(numpy.float32)
    y.grad = gy
    y.backward()
    expected = numpy.zeros((6, 4), numpy.float32)
    numpy.add.at(expected, x, gy)  # repeated ids accumulate
    numpy.testing.assert_allclose(emb.W.grad, expected, rtol=1e-6)


def test_embed_ignore_label():
    emb = L.EmbedID(3, 2, ignore_label=-1)
    x = numpy.array([1, -1, 0], numpy.int64)
    y = emb(x)
    numpy.testing.assert_array_equal(y.array[1], [0.0, 0.0])
    numpy.testing.assert_array_equal(y.array[0], emb.W.array[1])
    y.grad = numpy.ones((3, 2), numpy.float32)
    y.backward()
    numpy.testing.assert_array_equal(emb.W.grad, [[1, 1], [1, 1], [0, 0]])


def test_embed_default_init_is_unit_normal():
    I.set_seed(5)
    w = L.EmbedID(2000, 50).W.array.astype(numpy.float64)
    n = w.size
    assert abs(w.mean()) < 5 / numpy.sqrt(n)
    assert abs(w.std() - 1.0) < 5 / numpy.sqrt(2 * n)


def test_embed_initialW_and_errors():
    W = numpy.arange(6.0).reshape(3, 2)
    emb = L.EmbedID(3, 2, initialW=W)
    numpy.testing.assert_array_equal(emb.W.array, W)
    with pytest.raises(ValueError, match=r'initialW has shape \(2, 3\)'):
        L.EmbedID(3, 2, initialW=W.T.copy())
    with pytest.raises(ValueError, match='in_size'):
        L.EmbedID(0, 2)
    with pytest.raises(TypeError, match='ignore_label'):
        L.EmbedID(3, 2, ignore_label=0.5)
    assert repr(emb) == 'EmbedID(in_size=3, out_size=2, ignore_label=None)'


# -- Classifier -----------------------------------------------------------------------------

def _softmax_ce(y, t):
    y = y.astype(numpy.float64)
    m = y.max(axis=1, keepdims=True)
    lse = numpy.log(numpy.exp(y - m).sum(axis=1)) + m[:, 0]
    return float((lse - y[numpy.arange(len(t)), t]).mean())


def test_classifier_default_loss():
    I.set_seed(0)
    model = L.Classifier(L.Linear(4, 3), accfun=None)
    assert [n for n, _ in model.namedparams()] == ['/predictor/W', '/predictor/b']
    x = _rng(0).normal(size=(6, 4)).astype(numpy.float32)
    t = numpy.array([0, 1, 2, 2, 1, 0], numpy.int32)
    loss = model(x, t)
    assert loss is model.loss and model.accuracy is None
    numpy.testing.assert_allclose(model.y.array, x @ model.predictor.W.array.T, rtol=1e-5,
                                  atol=1e-6)
    numpy.testing.assert_allclose(float(loss.array), _softmax_ce(model.y.array, t), rtol=1e-5)
    loss.backward()
    assert model.predictor.W.grad.shape == (3, 4)


def test_classifier_default_accuracy():
    """Needs F.accuracy (seqdbr.core.functions.evaluation)."""
    model = L.Classifier(L.Linear(4, 3))
    x = _rng(1).normal(size=(8, 4)).astype(numpy.float32)
    t = numpy.array([0, 1, 2, 0, 1, 2, 0, 1], numpy.int32)
    model(x, t)
    expected = float((model.y.array.argmax(axis=1) == t).mean())
    numpy.testing.assert_allclose(float(model.accuracy.array), expected)
    model.compute_accuracy = False
    model(x, t)
    assert model.accuracy is None


def test_classifier_custom_functions_many_inputs_and_kwargs():
    class Two(L.Chain):
        def __init__(self):
            super().__init__()
            with self.init_scope():
                self.a = L.Linear(2, 2)

        def forward(self, x1, x2, scale=1.0):
            return self.a(x1) + self.a(x2) * scale

    calls = []

    def lossfun(y, t):
        calls.append(('loss', y.shape, t.shape))
        return ((y - t) * (y - t)).array.sum()

    def accfun(y, t):
        calls.append(('acc',))
        return 0.75

    model = L.Classifier(Two(), lossfun=lossfun, accfun=accfun)
    x1 = numpy.ones((3, 2), numpy.float32)
    x2 = numpy.full((3, 2), 2.0, numpy.float32)
    t = numpy.zeros((3, 2), numpy.float32)
    out = model(x1, x2, t, scale=0.5)
    y_ref = x1 @ model.predictor.a.W.array.T + model.predictor.a.b.array + \
        0.5 * (x2 @ model.predictor.a.W.array.T + model.predictor.a.b.array)
    numpy.testing.assert_allclose(model.y.array, y_ref, rtol=1e-6)
    numpy.testing.assert_allclose(out, (y_ref ** 2).sum(), rtol=1e-5)
    assert model.accuracy == 0.75
    assert calls == [('loss', (3, 2), (3, 2)), ('acc',)]


def test_classifier_errors():
    with pytest.raises(TypeError, match='predictor must be a Link'):
        L.Classifier(lambda x: x)
    with pytest.raises(TypeError, match='lossfun must be callable'):
        L.Classifier(L.Linear(2, 2), lossfun=3, accfun=None)
    model = L.Classifier(L.Linear(2, 2), accfun=None)
    with pytest.raises(ValueError, match=r'model\(x, t\)'):
        model(numpy.zeros((1, 2), numpy.float32))


def test_facade_exports():
    for name in ('Link', 'Chain', 'ChainList', 'Linear', 'EmbedID', 'Classifier'):
        assert hasattr(L, name)
