"""Device placement without a GPU: a fake two-device CuPy.

``FakeCupy`` stands in for CuPy with two "devices". Its arrays are NumPy arrays (a
subclass) that remember the device that was current when they were created, exactly as
CuPy allocates on the current device, and every operation on them checks that they live
on the current device (CuPy refuses arrays of another device). So a link, initializer,
optimizer or state that creates an array without making the right device current, or
computes on a device that is not current, fails here as it would on a two-GPU machine.
Paths that need real CUDA kernels (the fused cells, the optimizers' update kernels) are
replaced by NumPy code that checks the device in the same way; the sampler and the
evaluator are checked through the ``using_device`` calls they make.
"""
import contextlib

import numpy
import pytest

import seqdbr
import seqdbr.links as L
from seqdbr.core import backend
from seqdbr.core import optimizer as optimizer_mod
from seqdbr.core.functions import noise


class FakeArray(numpy.ndarray):
    """A NumPy array that lives on fake device ``dev``."""
    __cuda_array_interface__ = {}          # what backend.is_device_array looks for

    def __array_finalize__(self, obj):
        self.dev = FakeCupy.current

    @property
    def device(self):
        return FakeCupy.cuda.Device(self.dev)

    def get(self):
        FakeCupy.transfers += 1
        return numpy.array(self.view(numpy.ndarray))

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        _check_devices(inputs + tuple(kwargs.get('out', ()) or ()))
        plain = tuple(i.view(numpy.ndarray) if isinstance(i, FakeArray) else i for i in inputs)
        if 'out' in kwargs:
            kwargs['out'] = tuple(o.view(numpy.ndarray) if isinstance(o, FakeArray) else o
                                  for o in kwargs['out'])
        return _wrap(getattr(ufunc, method)(*plain, **kwargs))

    def __array_function__(self, func, types, args, kwargs):
        _check_devices(_flatten(args) + _flatten(tuple(kwargs.values())))
        plain_args = _unwrap(args)
        plain_kwargs = {k: _unwrap(v) for k, v in kwargs.items()}
        return _wrap(func(*plain_args, **plain_kwargs))


def _flatten(items):
    out = []
    for a in items:
        if isinstance(a, (list, tuple)):
            out.extend(_flatten(a))
        else:
            out.append(a)
    return tuple(out)


def _unwrap(x):
    if isinstance(x, FakeArray):
        return x.view(numpy.ndarray)
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(a) for a in x)
    return x


def _wrap(x):
    if isinstance(x, numpy.ndarray) and not isinstance(x, FakeArray):
        return x.view(FakeArray)
    if isinstance(x, tuple):
        return tuple(_wrap(a) for a in x)
    return x


def _check_devices(items):
    for a in items:
        if isinstance(a, FakeArray) and a.dev != FakeCupy.current:
            raise ValueError('array on fake device %d used while device %d is current'
                             % (a.dev, FakeCupy.current))


class _Device:
    def __init__(self, id=None):
        self.id = FakeCupy.current if id is None else int(id)
        self._prev = []

    def use(self):
        FakeCupy.current = self.id

    def __enter__(self):
        self._prev.append(FakeCupy.current)
        FakeCupy.current = self.id
        FakeCupy.entered.append(self.id)
        return self

    def __exit__(self, *exc):
        FakeCupy.current = self._prev.pop()
        return False


class _Rng:
    def __init__(self, seed):
        self.dev = FakeCupy.current
        self.g = numpy.random.default_rng(seed)

    def random(self, shape, dtype=numpy.float64):
        assert FakeCupy.current == self.dev, 'a generator used on another device'
        return _wrap(self.g.random(shape, dtype=dtype))


class FakeCupy:
    """The parts of the ``cupy`` module seqdbr's non-kernel paths use."""
    current = 0
    entered = []
    transfers = 0
    ndarray = FakeArray

    class cuda:
        Device = _Device

        @staticmethod
        def get_device_id():
            return FakeCupy.current

        class runtime:
            @staticmethod
            def getDeviceCount():
                return 2

    class random:
        @staticmethod
        def default_rng(seed=None):
            return _Rng(seed)

    @staticmethod
    def asarray(a, dtype=None):
        if isinstance(a, FakeArray):
            return a if dtype is None or a.dtype == dtype else a.astype(dtype)
        return numpy.array(a, dtype=dtype).view(FakeArray)

    def __getattr__(self, name):   # zeros, empty, stack, ...: NumPy's, on the current device
        f = getattr(numpy, name)
        if not callable(f) or isinstance(f, type):
            return f
        return lambda *a, **k: _wrap(f(*_unwrap(a), **{n: _unwrap(v) for n, v in k.items()}))


@pytest.fixture
def fake_gpu(monkeypatch):
    fake = FakeCupy()
    FakeCupy.current = 0
    FakeCupy.entered = []
    FakeCupy.transfers = 0
    monkeypatch.setattr(backend, '_cupy', fake)
    monkeypatch.setattr(backend, '_cupy_checked', True)
    monkeypatch.setattr(backend, '_device_count', 2)
    monkeypatch.setattr(backend, 'is_gpu_available', lambda: True)
    monkeypatch.setattr(noise, '_gpu_rngs', {})
    return fake


def _dev(a):
    return a.dev if isinstance(a, FakeArray) else 'host'


# -- GpuDevice ids ----------------------------------------------------------------------------

def test_gpu_ids_are_checked_against_the_device_count(fake_gpu):
    assert backend.get_device('gpu:1') == backend.GpuDevice(1)
    for spec in ('gpu:2', 'gpu:7', '@cupy:2', 2):
        with pytest.raises(ValueError, match=r'gpu:%s does not exist: this machine has 2 CUDA '
                           r'devices \(gpu:0 \.\. gpu:1\)' % str(spec)[-1]):
            backend.get_device(spec)
    with pytest.raises(ValueError, match='gpu:-1 does not exist'):
        backend.GpuDevice(-1)
    with pytest.raises(TypeError, match='must be an int'):
        backend.GpuDevice('1')


def test_without_a_gpu_a_gpu_spec_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(backend, '_device_count', 0)
    with pytest.raises(RuntimeError, match=r'pip install -e \.\[gpu\]'):
        backend.get_device('gpu:1')


# -- links: lazy parameters, forward, copies ---------------------------------------------------

def test_a_lazy_link_on_gpu1_creates_its_weights_there(fake_gpu):
    lin = L.Linear(None, 3)
    lin.to_device('gpu:1')
    assert FakeCupy.current == 0
    with backend.using_device('gpu:1'):
        x = fake_gpu.asarray(numpy.ones((2, 4), numpy.float32))
    y = lin(x)             # device 0 is current; the link makes its own device current
    assert FakeCupy.current == 0
    assert _dev(lin.W.array) == 1 and _dev(lin.b.array) == 1 and _dev(y.array) == 1
    for mode in ('copy', 'init'):
        c = lin.copy(mode)
        assert _dev(c.W.array) == 1, mode


def test_a_chain_moved_between_gpus_moves_params_grads_and_persistents(fake_gpu):
    m = seqdbr.Chain()
    with m.init_scope():
        m.l = L.Linear(4, 3)
    m.add_persistent('count', numpy.zeros(2))
    m.l.W.grad = numpy.ones((3, 4), numpy.float32)
    m.to_device('gpu:0')
    assert _dev(m.l.W.array) == 0 and _dev(m.l.W.grad) == 0 and _dev(m.count) == 0
    m.to_device('gpu:1')
    assert _dev(m.l.W.array) == 1 and _dev(m.l.W.grad) == 1 and _dev(m.count) == 1
    assert m.device == backend.GpuDevice(1)


def test_initializers_fill_a_gpu1_array_from_another_current_device(fake_gpu):
    from seqdbr.core import initializers
    with backend.using_device('gpu:1'):
        a = fake_gpu.zeros((3, 2), numpy.float32)
    assert FakeCupy.current == 0
    initializers.Normal(1.0)(a)
    initializers.Constant(2.0)(a)
    assert _dev(a) == 1 and float(a.view(numpy.ndarray)[0, 0]) == 2.0


# -- optimizer state --------------------------------------------------------------------------

class _CheckedMomentum(optimizer_mod.UpdateRule):
    """Momentum SGD whose 'GPU' update is NumPy code that checks the devices."""
    _defaults = {'lr': 0.1, 'momentum': 0.9}

    def state_names(self):
        return ('v',)

    def update_core_cpu(self, array, grad):
        v = self.state['v']
        v *= self.hyperparam.momentum
        v -= self.hyperparam.lr * grad
        array += v

    def update_core_gpu(self, array, grad):
        assert FakeCupy.current == array.dev == grad.dev == self.state['v'].dev
        self.update_core_cpu(array, grad)


def _momentum(model):
    import seqdbr.optimizers as O
    opt = O.MomentumSGD(lr=0.1)
    opt.setup(model)
    for p in model.params():
        p.update_rule = _CheckedMomentum()
    return opt


def _step(model, opt):
    for p in model.params():
        with backend.using_device(p.array):
            p.grad = backend.get_array_module(p.array).ones_like(p.array)
    opt.update()


def test_optimizer_state_is_created_on_and_follows_the_parameter(fake_gpu):
    lin = L.Linear(4, 3)
    opt = _momentum(lin)
    _step(lin, opt)                                   # on the host
    v_host = lin.W.update_rule.state['v'].copy()
    lin.to_device('gpu:0')
    _step(lin, opt)
    assert _dev(lin.W.update_rule.state['v']) == 0
    lin.to_device('gpu:1')                            # same array type, another device
    _step(lin, opt)
    assert _dev(lin.W.update_rule.state['v']) == 1
    lin.to_cpu()
    _step(lin, opt)
    v = lin.W.update_rule.state['v']
    assert type(v) is numpy.ndarray
    # v_{k+1} = 0.9 v_k - 0.1: three more steps from the first one
    expect = v_host
    for _ in range(3):
        expect = 0.9 * expect - 0.1
    numpy.testing.assert_allclose(v, expect, rtol=1e-6)


def test_optimizer_state_starts_on_gpu1_when_gpu0_is_current(fake_gpu):
    lin = L.Linear(4, 3).to_device('gpu:1')
    opt = _momentum(lin)
    _step(lin, opt)
    assert FakeCupy.current == 0 and _dev(lin.W.update_rule.state['v']) == 1


# -- RNN carried state, CharRNN state ------------------------------------------------------------

def test_carried_rnn_state_moves_between_gpus(fake_gpu):
    rnn = L.LSTM(3, 4)
    rnn(numpy.ones((2, 3), numpy.float32))            # state on the host
    rnn.to_device('gpu:0')
    assert _dev(rnn.h.array) == 0 and _dev(rnn.c.array) == 0
    rnn.to_device('gpu:1')
    assert _dev(rnn.h.array) == 1 and _dev(rnn.c.array) == 1
    gru = L.StatefulGRU(3, 4)
    gru(numpy.ones((2, 3), numpy.float32))
    gru.to_device('gpu:1')
    assert _dev(gru.h.array) == 1


def test_charrnn_state_set_from_another_device_lands_on_the_model(fake_gpu):
    from seqdbr.charlm.model import CharRNN
    for impl in ('nstep', 'stepwise'):
        m = CharRNN(7, 4, 2, impl=impl).to_device('gpu:1')
        with backend.using_device('gpu:0'):
            h = fake_gpu.zeros((2, 3, 4), numpy.float32)
            c = fake_gpu.zeros((2, 3, 4), numpy.float32)
        m.set_state({'h': h, 'c': c})
        st = m.get_state()
        assert _dev(st['h']) == 1 and _dev(st['c']) == 1, impl
        m.load_canonical({k: backend.to_cpu(v) for k, v in m.canonical_arrays().items()})
        assert all(_dev(v) == 1 for v in m.canonical_arrays().values()), impl


# -- dropout generator ----------------------------------------------------------------------------

def test_dropout_draws_from_the_generator_of_the_inputs_device(fake_gpu):
    with backend.using_device('gpu:1'):
        x = fake_gpu.ones((5,), numpy.float32)
    u = noise._uniform(fake_gpu, None, x.shape, x.dtype, x)
    assert _dev(u) == 1 and set(noise._gpu_rngs) == {1}
    assert FakeCupy.current == 0


# -- the charlm entry points make the model's device current -------------------------------------

@contextlib.contextmanager
def _recording_using_device(monkeypatch):
    calls = []
    real = backend.using_device

    def recording(obj):
        calls.append(obj)
        return real(obj)
    monkeypatch.setattr(backend, 'using_device', recording)
    yield calls


def test_sampler_and_evaluator_run_under_the_models_device(monkeypatch):
    from seqdbr.charlm import evaluate, sample
    from seqdbr.charlm.model import CharRNN
    from seqdbr.charlm.vocab import Vocabulary
    vocab = Vocabulary.from_text('abcdefg\n')
    m = CharRNN(len(vocab), 4, 1)
    seen_inside = []
    real_forward = CharRNN.forward

    def forward(self, x):
        seen_inside.append(bool(calls) and calls[-1] == self.device)
        return real_forward(self, x)
    monkeypatch.setattr(CharRNN, 'forward', forward)
    with _recording_using_device(monkeypatch) as calls:
        sample.sample(m, vocab, length=3, prime='ab', rng=numpy.random.default_rng(0))
        assert calls and calls[0] == m.device
        assert seen_inside and all(seen_inside)
        calls.clear()
        seen_inside.clear()
        tokens = vocab.encode('abcabcabcabcabc\n' * 4)
        evaluate.evaluate_tokens(m, tokens, 2, 4)
        assert calls[0] == m.device and seen_inside and all(seen_inside)


# -- a real two-GPU machine --------------------------------------------------------------------

@pytest.mark.gpu
def test_training_on_gpu1_while_gpu0_is_current_and_moving_to_gpu0():
    if backend.gpu_device_count() < 2:
        pytest.skip('needs two CUDA devices (this machine has %d)' % backend.gpu_device_count())
    import cupy

    import seqdbr.optimizers as O
    from seqdbr.charlm.model import CharRNN
    from seqdbr.core.optimizer_hooks import GradientClipping
    from seqdbr.rnn.bptt import bptt_update
    rng = numpy.random.default_rng(0)
    x_host = rng.integers(0, 7, (3, 5)).astype(numpy.int32)
    t_host = rng.integers(0, 7, (3, 5)).astype(numpy.int32)
    for impl in ('nstep', 'stepwise'):
        m = CharRNN(7, 4, 2, impl=impl, dropout=0.1).to_device('gpu:1')
        opt = O.Adam()
        opt.setup(m)
        opt.add_hook(GradientClipping(1.0))
        cupy.cuda.Device(0).use()
        with cupy.cuda.Device(1):
            x, t = cupy.asarray(x_host), cupy.asarray(t_host)
        losses = [bptt_update(m, opt, x, t) for _ in range(2)]
        assert cupy.cuda.Device().id == 0
        for name, p in m.namedparams():
            assert p.array.device.id == 1 and p.grad.device.id == 1, name
            assert all(v.device.id == 1 for v in p.update_rule.state.values()), name
        assert all(v.device.id == 1 for v in m.get_state().values())
        m.to_device('gpu:0')
        with cupy.cuda.Device(0):
            x0, t0 = cupy.asarray(x_host), cupy.asarray(t_host)
        losses.append(bptt_update(m, opt, x0, t0))
        for name, p in m.namedparams():
            assert all(v.device.id == 0 for v in p.update_rule.state.values()), name
        assert all(numpy.isfinite(losses)), (impl, losses)
