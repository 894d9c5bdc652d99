"""Link / Chain / ChainList: registration, traversal order, copies, devices, repr.

The toy links here use only Parameters and arithmetic operators, so these tests do not
depend on the F.linear family."""
import warnings

import numpy
import pytest

import seqdbr
from seqdbr.core import backend
from seqdbr.core import initializers as I
from seqdbr.core.functions.math import sum as fsum
from seqdbr.core.link import Chain, ChainList, Link
from seqdbr.core.variable import Parameter, Variable


class Affine(Link):
    """y = x @ W + b, with W of shape (n_in, n_out)."""

    def __init__(self, n_in, n_out, lazy=False):
        super().__init__()
        self.n_in, self.n_out = n_in, n_out
        with self.init_scope():
            self.W = Parameter(I.Normal(1.0), None if lazy else (n_in, n_out))
            self.b = Parameter(0.5, (n_out,))
        self.scratch = Parameter(0.0, (2,))  # outside init_scope: not registered

    def forward(self, x):
        return x @ self.W + self.b


class Net(Chain):
    def __init__(self):
        super().__init__()
        with self.init_scope():
            self.scale = Parameter(1.0, (1,))
            self.enc = Affine(3, 4)
            self.stack = ChainList(Affine(4, 4), Affine(4, 2))
        self.add_persistent('steps', 0)
        self.add_persistent('mean', numpy.arange(3, dtype=numpy.float32))

    def forward(self, x):
        h = self.enc(x)
        for layer in self.stack:
            h = layer(h)
        return h * self.scale


EXPECTED_NAMES = ['/scale', '/enc/W', '/enc/b', '/stack/0/W', '/stack/0/b', '/stack/1/W',
                  '/stack/1/b']


def test_namedparams_names_and_order():
    net = Net()
    names = [n for n, _ in net.namedparams()]
    assert names == EXPECTED_NAMES
    assert [id(p) for p in net.params()] == [id(p) for _, p in net.namedparams()]
    assert net.enc.W is dict(net.namedparams())['/enc/W']
    # own parameters of a leaf link
    assert [n for n, _ in Affine(2, 2).namedparams()] == ['/W', '/b']


def test_registration_only_inside_init_scope():
    a = Affine(2, 3)
    assert 'scratch' not in [n for n, _ in a.namedparams()]
    with a.init_scope():
        a.extra = Parameter(0.0, (1,))
        a.note = 'plain attribute'
    assert [n for n, _ in a.namedparams()] == ['/W', '/b', '/extra']
    assert a.extra.name == 'extra'


def test_reassign_in_scope_keeps_single_entry_and_delete_unregisters():
    a = Affine(2, 3)
    with a.init_scope():
        a.W = Parameter(0.0, (2, 3))
    assert [n for n, _ in a.namedparams()] == ['/W', '/b']  # a replacement keeps its place
    assert not a.W.array.any()
    del a.W
    assert [n for n, _ in a.namedparams()] == ['/b']
    net = Net()
    del net.enc
    assert '/enc/W' not in [n for n, _ in net.namedparams()]


def test_registered_name_overwritten_outside_scope_is_reported():
    a = Affine(2, 3)
    a.W = None
    with pytest.raises(TypeError, match=r'Affine\.W was registered as a Parameter.*del link\.W'):
        list(a.namedparams())


def test_same_object_registered_twice_is_refused():
    a = Affine(2, 2)
    with pytest.raises(ValueError, match="already registered as 'W'.*update it twice"):
        with a.init_scope():
            a.W2 = a.W
    net = Net()
    with pytest.raises(ValueError, match="already registered as 'enc'"):
        with net.init_scope():
            net.enc2 = net.enc
    with net.init_scope():
        net.enc = net.enc  # re-assigning under the same name is fine
    with net.init_scope():
        net.enc = Affine(3, 4)
    assert [n for n, _ in net.namedlinks(skipself=True)] == ['/enc', '/stack', '/stack/0',
                                                             '/stack/1']
    with net.init_scope():
        net.scale = Affine(1, 1)  # a parameter name now holds a link
    assert [n for n, _ in net.namedparams()][:3] == ['/enc/W', '/enc/b', '/stack/0/W']
    assert '/scale/W' in [n for n, _ in net.namedparams()]
    with pytest.raises(ValueError, match='already child 0'):
        net.stack.append(net.stack[0])


def test_link_cannot_hold_child_links():
    a = Affine(2, 2)
    with pytest.raises(TypeError, match='only a Chain'):
        with a.init_scope():
            a.child = Affine(2, 2)


def test_init_scope_without_super_init():
    class Bad(Link):
        def __init__(self):
            with self.init_scope():
                self.W = Parameter(0.0, (1,))

    with pytest.raises(RuntimeError, match=r'super\(\).__init__\(\)'):
        Bad()


def test_init_scope_restored_after_exception():
    a = Affine(2, 2)
    with pytest.raises(KeyError):
        with a.init_scope():
            raise KeyError('x')
    a.later = Parameter(0.0, (1,))
    assert 'later' not in [n for n, _ in a.namedparams()]


def test_add_param_and_errors():
    link = Link()
    p = link.add_param('W', (2, 3), initializer=I.Constant(2.0))
    assert p is link.W and p.name == 'W'
    numpy.testing.assert_array_equal(p.array, numpy.full((2, 3), 2.0, numpy.float32))
    lazy = link.add_param('V', dtype=numpy.float64)
    assert lazy.array is None
    lazy.initialize((4, 2))
    assert lazy.array.dtype == numpy.float64
    assert [n for n, _ in link.namedparams()] == ['/W', '/V']
    with pytest.raises(AttributeError, match="'W'.*already exists"):
        link.add_param('W', (1,))
    with pytest.raises(TypeError, match='float'):
        link.add_param('I', (1,), dtype=numpy.int32)
    with pytest.raises(ValueError, match='identifier'):
        link.add_param('a/b', (1,))


def test_add_persistent_types():
    link = Link()
    link.add_persistent('count', 3)
    link.add_persistent('stats', numpy.zeros(2))
    link.add_persistent('nothing', None)
    assert link.count == 3
    with pytest.raises(TypeError, match='persistent'):
        link.add_persistent('bad', [1, 2])
    with pytest.raises(AttributeError):
        link.add_persistent('count', 4)


def test_links_namedlinks_children():
    net = Net()
    names = [n for n, _ in net.namedlinks()]
    assert names == ['/', '/enc', '/stack', '/stack/0', '/stack/1']
    assert [n for n, _ in net.namedlinks(skipself=True)] == names[1:]
    links = list(net.links())
    assert links[0] is net and links[1] is net.enc and links[3] is net.stack[0]
    assert len(list(net.links(skipself=True))) == 4
    assert list(net.children()) == [net.enc, net.stack]
    assert list(net.stack.children()) == [net.stack[0], net.stack[1]]
    assert list(net.enc.children()) == []
    assert net['enc'] is net.enc
    with pytest.raises(KeyError, match='no child link'):
        net['nope']


def test_chainlist_container():
    a, b, c = Affine(1, 1), Affine(1, 2), Affine(2, 2)
    cl = ChainList(a, b)
    cl.append(c)
    assert len(cl) == 3 and cl[0] is a and cl[-1] is c and list(cl) == [a, b, c]
    assert [n for n, _ in cl.namedparams()][:4] == ['/0/W', '/0/b', '/1/W', '/1/b']
    with pytest.raises(TypeError, match='expects a Link'):
        cl.append('x')


def test_forward_backward_and_grads():
    net = Net()
    x = numpy.random.default_rng(0).normal(size=(5, 3)).astype(numpy.float32)
    y = net(x)
    assert y.shape == (5, 2)
    ref = x @ net.enc.W.array + net.enc.b.array
    for layer in net.stack:
        ref = ref @ layer.W.array + layer.b.array
    numpy.testing.assert_allclose(y.array, ref * net.scale.array, rtol=1e-5)
    loss = fsum(y * y)
    loss.backward()
    for name, p in net.namedparams():
        assert p.grad is not None and p.grad.shape == p.array.shape, name
    net.cleargrads()
    assert all(p.grad is None for p in net.params())
    net.zerograds()
    assert all(not p.grad.any() for p in net.params())


def test_call_needs_forward():
    with pytest.raises(NotImplementedError, match='Link does not implement forward'):
        Link()(1)


def test_count_params_and_uninitialized_warning():
    net = Net()
    assert net.count_params() == 1 + (12 + 4) + (16 + 4) + (8 + 2)
    lazy = Affine(3, 2, lazy=True)
    with pytest.warns(UserWarning, match='/W'):
        assert lazy.count_params() == 2
    lazy.W.initialize((3, 2))
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert lazy.count_params() == 8


def test_params_include_uninit():
    lazy = Affine(3, 2, lazy=True)
    assert [n for n, _ in lazy.namedparams()] == ['/W', '/b']
    assert [n for n, _ in lazy.namedparams(include_uninit=False)] == ['/b']
    assert len(list(lazy.params(include_uninit=False))) == 1


def _pairs(a, b):
    return list(zip([p for _, p in a.namedparams()], [p for _, p in b.namedparams()]))


def test_copy_share():
    net = Net()
    for p in net.params():
        p.grad = numpy.ones_like(p.array)
    c = net.copy()  # default 'share'
    assert c is not net and c.enc is not net.enc and c.stack[0] is not net.stack[0]
    assert [n for n, _ in c.namedparams()] == EXPECTED_NAMES
    for p, q in _pairs(net, c):
        assert p is not q and q.array is p.array and q.grad is None
    assert c.mean is net.mean
    net.enc.W.array[0, 0] = 42.0
    assert c.enc.W.array[0, 0] == 42.0


def test_copy_copy():
    net = Net()
    net.enc.W.grad = numpy.full((3, 4), 3.0, numpy.float32)
    c = net.copy('copy')
    for p, q in _pairs(net, c):
        assert q.array is not p.array
        numpy.testing.assert_array_equal(q.array, p.array)
    numpy.testing.assert_array_equal(c.enc.W.grad, net.enc.W.grad)
    assert c.enc.W.grad is not net.enc.W.grad
    assert c.mean is not net.mean
    numpy.testing.assert_array_equal(c.mean, net.mean)
    net.enc.W.array[...] = 0.0
    net.mean[...] = -1.0
    assert c.enc.W.array.any() and (c.mean >= 0).all()
    c.stack.append(Affine(2, 2))
    assert len(net.stack) == 2  # child lists are independent


def test_copy_init():
    net = Net()
    for p in net.params():
        p.array[...] = 7.0
    c = net.copy('init')
    for (name, p), q in zip(net.namedparams(), c.params()):
        assert q.array.shape == p.array.shape and q.array.dtype == p.array.dtype
        assert q.array is not p.array
    # the initializers are re-run: Normal(1.0) for W, constants for b and scale
    assert not numpy.any(c.enc.W.array == 7.0)
    numpy.testing.assert_array_equal(c.enc.b.array, numpy.full(4, 0.5, numpy.float32))
    numpy.testing.assert_array_equal(c.scale.array, [1.0])
    assert c.mean is not net.mean


def test_copy_init_of_raw_array_parameters():
    link = Link()
    with link.init_scope():
        link.W = Parameter(numpy.full((3, 4), 9.0, numpy.float64))
        link.b = Parameter(numpy.full(3, 9.0, numpy.float32))
    I.set_seed(8)
    c = link.copy('init')
    expected = numpy.random.default_rng(8).normal(0.0, numpy.sqrt(1.0 / 4), (3, 4))
    numpy.testing.assert_array_equal(c.W.array, expected)  # LeCun normal, float64 kept
    numpy.testing.assert_array_equal(c.b.array, numpy.zeros(3, numpy.float32))
    assert c.b.array.dtype == numpy.float32


def test_copy_init_reproducible_and_lazy_stays_lazy():
    lazy = Affine(3, 2, lazy=True)
    for mode in ('share', 'copy', 'init'):
        assert lazy.copy(mode).W.array is None
    net = Net()
    I.set_seed(3)
    a = net.copy('init').enc.W.array
    I.set_seed(3)
    b = net.copy('init').enc.W.array
    numpy.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="'share', 'copy' or 'init'"):
        net.copy('deep')


def test_to_device_cpu_round_trip():
    net = Net()
    before = {n: p.array.copy() for n, p in net.namedparams()}
    net.enc.W.grad = numpy.ones((3, 4), numpy.float32)
    assert net.to_device('cpu') is net
    assert net.to_cpu() is net
    assert net.device == backend.CpuDevice() and net.xp is numpy
    assert net.stack[1].device == backend.CpuDevice()
    for n, p in net.namedparams():
        assert type(p.array) is numpy.ndarray
        numpy.testing.assert_array_equal(p.array, before[n])
    assert type(net.enc.W.grad) is numpy.ndarray
    with pytest.raises(ValueError, match='unknown device'):
        net.to_device('tpu')


def test_to_gpu_without_gpu_raises():
    if backend.is_gpu_available():
        pytest.skip('a GPU is available')
    with pytest.raises(RuntimeError, match='GPU'):
        Net().to_gpu()


@pytest.mark.gpu
def test_to_gpu_and_back():
    import cupy
    net = Net()
    before = {n: p.array.copy() for n, p in net.namedparams()}
    net.enc.W.grad = numpy.ones((3, 4), numpy.float32)
    assert net.to_gpu() is net
    assert net.xp is cupy and net.stack[0].xp is cupy
    assert isinstance(net.enc.W.array, cupy.ndarray)
    assert isinstance(net.enc.W.grad, cupy.ndarray)
    assert isinstance(net.mean, cupy.ndarray) and net.steps == 0
    y = net(Variable(cupy.ones((2, 3), dtype=cupy.float32)))
    assert isinstance(y.array, cupy.ndarray)
    net.to_cpu()
    for n, p in net.namedparams():
        assert type(p.array) is numpy.ndarray
        numpy.testing.assert_array_equal(p.array, before[n])
    assert type(net.mean) is numpy.ndarray


def test_repr_tree():
    class Lin(Link):
        def __init__(self, i, o):
            super().__init__()
            self.i, self.o = i, o

        def repr_args(self):
            return 'in_size=%s, out_size=%d' % (self.i, self.o)

    class MLP(Chain):
        def __init__(self):
            super().__init__()
            with self.init_scope():
                self.l1 = Lin(784, 100)
                self.l2 = ChainList(Lin(100, 10))

    assert repr(MLP()) == ('MLP(\n'
                           '  (l1): Lin(in_size=784, out_size=100)\n'
                           '  (l2): ChainList(\n'
                           '    (0): Lin(in_size=100, out_size=10)\n'
                           '  )\n'
                           ')')
    assert repr(Affine(3, 2)) == 'Affine(W=(3, 2), b=(2,))'
    assert repr(Affine(3, 2, lazy=True)) == 'Affine(W=?, b=(2,))'


def test_serialize_calls_protocol_in_order():
    """Link.serialize: params, then persistents, then children in namespaces."""
    calls = []

    class Rec:
        def __init__(self, path=''):
            self.path = path

        def __getitem__(self, name):
            return Rec(self.path + name + '/')

        def __call__(self, key, value):
            calls.append(self.path + key)
            return value

    Net().serialize(Rec())
    assert calls == ['scale', 'steps', 'mean', 'enc/W', 'enc/b', 'stack/0/W', 'stack/0/b',
                     'stack/1/W', 'stack/1/b']


def test_variable_state_outside_scope_is_plain_attribute():
    net = Net()
    net.h = Variable(numpy.zeros((1, 2), numpy.float32))
    assert net.h.shape == (1, 2)
    assert [n for n, _ in net.namedparams()] == EXPECTED_NAMES
    assert seqdbr.Parameter is Parameter
