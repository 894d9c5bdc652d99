"""Acceptance tests for the engine's promises: Variable, FunctionNode, backprop, graph
cutting, memory behaviour and the thread-local configuration."""
import gc
import os
import pathlib
import subprocess
import sys
import threading
import weakref

import numpy
import pytest

import seqdbr
import seqdbr.functions as F
from seqdbr import Variable, FunctionNode
from seqdbr.core import backend
from seqdbr.core.config import config, using_config, no_backprop_mode, force_backprop_mode
from seqdbr.gradient_check import assert_allclose

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _u(xp, shape, seed=0, lo=-1.0, hi=1.0):
    return xp.asarray(numpy.random.RandomState(seed).uniform(lo, hi, shape))


def _cpu(a):
    return backend.to_cpu(a.array if isinstance(a, Variable) else a)


class Recorder(FunctionNode):
    """y = sum of the inputs; backward records what the engine passed in."""

    def __init__(self, log):
        self.log = log

    def forward(self, inputs):
        y = inputs[0].copy()
        for x in inputs[1:]:
            y = y + x
        return (y,)

    def backward(self, indexes, grad_outputs):
        self.log.append((indexes, grad_outputs))
        gy = grad_outputs[0]
        # only the entries named in ``indexes`` may be read; poison the others
        return tuple(gy.copy() if i in indexes else 'must not be read'
                     for i in range(len(self.inputs)))


class TwoOutputs(FunctionNode):
    """(y0, y1) = (2 x, exp(x)); backward uses the retained exp(x) output array."""

    def __init__(self, log):
        self.log = log

    def forward(self, inputs):
        (x,) = inputs
        xp = backend.get_array_module(x)
        self.retain_outputs((1,))
        return (2 * x, xp.exp(x))

    def backward(self, indexes, grad_outputs):
        self.log.append(grad_outputs)
        g0, g1 = grad_outputs
        (e,) = self.get_retained_outputs()
        gx = None
        if g0 is not None:
            gx = 2 * g0
        if g1 is not None:
            gx = g1 * e if gx is None else gx + g1 * e
        return (gx,)


# -- input validation --------------------------------------------------------------------

def test_variable_rejects_lists_and_scalars():
    with pytest.raises(TypeError, match='numpy.ndarray'):
        Variable([1, 2])
    with pytest.raises(TypeError):
        Variable(1.5)
    v = Variable(numpy.float32(2.0))      # NumPy scalars become 0-d arrays
    assert v.shape == () and v.dtype == numpy.float32


def test_integer_variable_cannot_require_grad(xp):
    with pytest.raises(TypeError, match='int'):
        Variable(xp.arange(3), requires_grad=True)
    v = Variable(xp.arange(3))
    assert v.requires_grad is False
    assert Variable(xp.zeros(2, dtype=bool)).requires_grad is False
    assert Variable(xp.zeros(2)).requires_grad is True


def test_differentiable_op_rejects_integers(xp):
    with pytest.raises(TypeError, match='int'):
        F.exp(Variable(xp.arange(3)))
    with pytest.raises(TypeError, match='int'):
        F.exp(xp.arange(3))


def test_shape_mismatch_message_names_both_shapes(xp):
    a = Variable(_u(xp, (2, 3)))
    b = Variable(_u(xp, (4, 5)))
    for op in (lambda: a + b, lambda: a * b, lambda: F.add(a, b), lambda: a - b.array):
        with pytest.raises(ValueError) as e:
            op()
        assert '(2, 3)' in str(e.value) and '(4, 5)' in str(e.value)


def test_grad_setter_checks_shape_and_dtype(xp):
    v = Variable(_u(xp, (2, 3)))
    with pytest.raises(ValueError, match=r'\(3, 2\).*\(2, 3\)'):
        v.grad = xp.zeros((3, 2))
    with pytest.raises(ValueError, match='float32'):
        v.grad = xp.zeros((2, 3), dtype=numpy.float32)
    with pytest.raises(TypeError):
        v.grad = [[0.0] * 3] * 2
    g = xp.ones((2, 3))
    v.grad = g
    assert v.grad is g
    v.grad = None
    assert v.grad is None


# -- backward basics ---------------------------------------------------------------------

def test_backward_on_non_scalar_needs_a_grad(xp):
    x = Variable(_u(xp, (3,)))
    y = x * 2.0
    with pytest.raises(ValueError) as e:
        y.backward()
    msg = str(e.value)
    assert '.grad' in msg and 'scalar' in msg and '(3,)' in msg
    y.grad = xp.asarray([1.0, 2.0, 3.0])
    y.backward()
    assert_allclose(x.grad, [2.0, 4.0, 6.0], atol=0, rtol=0)


def test_scalar_output_starts_from_one(xp):
    x = Variable(_u(xp, (3,)))
    y = F.sum(x * 3.0)
    assert y.shape == ()
    y.backward()
    assert_allclose(x.grad, [3.0, 3.0, 3.0], atol=0, rtol=0)
    assert x.grad.dtype == x.dtype
    x32 = Variable(_u(xp, (2,)).astype(numpy.float32))
    F.sum(x32 * 2.0).backward()
    assert x32.grad.dtype == numpy.float32


def test_leaf_grads_accumulate_across_calls(xp):
    x = Variable(_u(xp, (3,)))
    F.sum(x * 2.0).backward()
    F.sum(x * 5.0).backward()
    assert_allclose(x.grad, [7.0, 7.0, 7.0], atol=0, rtol=0)
    x.cleargrad()
    assert x.grad is None
    F.sum(x * 5.0).backward()
    assert_allclose(x.grad, [5.0, 5.0, 5.0], atol=0, rtol=0)


def test_variable_used_twice_gets_both_paths(xp):
    xa = _u(xp, (4,), seed=1)
    x = Variable(xa)
    y = x * x + x
    y.grad = xp.ones(4)
    y.backward()
    assert_allclose(x.grad, 2 * _cpu(xa) + 1, atol=0, rtol=1e-15)


def test_diamond_waits_for_every_consumer(xp):
    # a feeds a shallow and a deep path: c = 3a + a = 4a = 8x, so dc/dx = 8
    x = Variable(_u(xp, (2,)))
    a = x * 2.0
    b = (a * 3.0) * 1.0
    c = F.sum(b + a)
    c.backward()
    assert_allclose(x.grad, [8.0, 8.0], atol=0, rtol=1e-15)


def test_intermediate_grads_dropped_unless_retained(xp):
    x = Variable(_u(xp, (3,)))
    h = x * 2.0
    y = F.sum(h * h)
    y.backward()
    assert h.grad is None
    assert x.grad is not None
    x.cleargrad()
    y.backward(retain_grad=True)
    assert_allclose(h.grad, 2 * _cpu(h.array), atol=0, rtol=1e-15)
    assert_allclose(x.grad, 8 * _cpu(x.array), atol=0, rtol=1e-15)


def test_leaf_grads_are_not_aliased(xp):
    x = Variable(_u(xp, (3,), seed=1))
    y = Variable(_u(xp, (3,), seed=2))
    z = x + y
    g = xp.ones(3)
    z.grad = g
    z.backward()
    assert x.grad is not y.grad
    x.grad *= 2
    assert_allclose(y.grad, [1.0, 1.0, 1.0], atol=0, rtol=0)
    assert_allclose(g, [1.0, 1.0, 1.0], atol=0, rtol=0)
    assert_allclose(x.grad, [2.0, 2.0, 2.0], atol=0, rtol=0)


# Leaves must own their gradients: hooks scale grads in place (GradientClipping).
def test_leaf_grads_are_not_aliased_through_views(xp):
    a = Variable(_u(xp, (2, 3), seed=1))
    b = Variable(_u(xp, (3, 2), seed=2))
    z = F.reshape(a, (6,)) + F.reshape(b, (6,))
    F.sum(z * 1.0).backward()
    a.grad *= 2
    assert_allclose(b.grad, numpy.ones((3, 2)), atol=0, rtol=0)


def test_retained_intermediate_grads_are_not_aliased(xp):
    x = Variable(_u(xp, (3,)))
    p = x * 2.0
    q = x * 3.0
    F.sum(p + q).backward(retain_grad=True)
    p.grad *= 2
    assert_allclose(q.grad, [1.0, 1.0, 1.0], atol=0, rtol=0)


def test_backward_from_leaf_or_constant_output_is_a_no_op(xp):
    x = Variable(_u(xp, ()))
    x.backward()
    assert x.grad is None
    c = F.exp(_u(xp, ()))                 # only constants: no graph
    assert c.creator is None and c.requires_grad is False
    c.backward()


# -- what backward receives ----------------------------------------------------------------

def test_gradients_only_for_inputs_that_need_them(xp):
    log = []
    a = Variable(_u(xp, (2,), seed=1))                        # needs grad
    b = _u(xp, (2,), seed=2)                                  # raw array: constant
    c = Variable(_u(xp, (2,), seed=3), requires_grad=False)   # explicit constant
    y = Recorder(log).apply((b, a, c))[0]
    F.sum(y).backward()
    assert len(log) == 1
    indexes, gys = log[0]
    assert indexes == (1,)
    assert_allclose(a.grad, [1.0, 1.0], atol=0, rtol=0)
    assert c.grad is None
    # a node none of whose inputs needs a gradient is not recorded, so never called
    log.clear()
    y2 = Recorder(log).apply((b, c))[0]
    assert y2.creator is None and y2.requires_grad is False
    F.sum(y2 * a).backward()
    assert log == []


def test_nodes_are_skipped_when_no_gradient_reaches_them(xp):
    log = []
    x = Variable(_u(xp, (3,)))
    y0, y1 = TwoOutputs(log).apply((x,))
    del y0, y1   # nothing downstream: the node is unreachable from any root
    z = F.sum(x * 1.0)
    z.backward()
    assert log == []


def test_unused_output_receives_none(xp):
    log = []
    xa = _u(xp, (3,))
    x = Variable(xa)
    y0, y1 = TwoOutputs(log).apply((x,))
    F.sum(y0).backward()
    assert len(log) == 1
    g0, g1 = log[0]
    assert g1 is None and g0 is not None
    assert_allclose(x.grad, [2.0, 2.0, 2.0], atol=0, rtol=0)
    # the other way round, with the unused output Variable deleted and collected
    log.clear()
    x.cleargrad()
    y0, y1 = TwoOutputs(log).apply((x,))
    r0 = weakref.ref(y0)
    del y0
    gc.collect()
    assert r0() is None
    F.sum(y1).backward()
    g0, g1 = log[0]
    assert g0 is None and g1 is not None
    assert_allclose(x.grad, numpy.exp(_cpu(xa)), atol=0, rtol=1e-15)


def test_retained_output_survives_deleting_its_variable(xp):
    log = []
    xa = _u(xp, (3,))
    x = Variable(xa)
    y0, y1 = TwoOutputs(log).apply((x,))   # backward reads the retained exp(x) = y1's array
    loss = F.sum(y0 * 1.0)
    r1 = weakref.ref(y1)
    del y1
    gc.collect()
    assert r1() is None
    loss.backward()
    assert_allclose(x.grad, [2.0, 2.0, 2.0], atol=0, rtol=0)
    # using both outputs: d/dx (2x + e^x) uses the retained array after the Variable died
    x.cleargrad()
    y0, y1 = TwoOutputs(log).apply((x,))
    loss = F.sum(y0 + y1)
    r1 = weakref.ref(y1)
    del y0, y1
    gc.collect()
    assert r1() is not None        # still an input of the add node
    loss.backward()
    assert_allclose(x.grad, 2 + numpy.exp(_cpu(xa)), atol=0, rtol=1e-15)


def test_exp_backward_uses_retained_output(xp):
    xa = _u(xp, (4,))
    x = Variable(xa)
    y = F.exp(x)
    loss = F.sum(y)
    y.array = None     # the graph must not read the output Variable's array
    loss.backward()
    assert_allclose(x.grad, numpy.exp(_cpu(xa)), atol=0, rtol=1e-15)


def test_debug_mode_detects_non_finite_gradients(xp):
    x = Variable(xp.asarray([0.0, 1.0]))
    y = F.sum(F.sqrt(x))
    with using_config('debug', True), numpy.errstate(divide='ignore'):
        with pytest.raises(FloatingPointError, match='Sqrt'):
            y.backward()
    assert config.debug is False


# -- deep graphs ----------------------------------------------------------------------------

N_DEEP = 100000


def test_deep_chain_backward_and_unchain(xp):
    x = Variable(xp.asarray([1.0, 2.0]))
    h = x
    for _ in range(N_DEEP):
        h = h * 1.0001
    loss = F.sum(h)
    loss.backward()
    assert_allclose(x.grad, numpy.full(2, 1.0001 ** N_DEEP), atol=0, rtol=1e-9)
    first = weakref.ref(x * 1.0)  # sanity: weakrefs to temporaries die at once
    assert first() is None
    loss.unchain_backward()
    assert loss.creator is None and h.creator is None


def test_dropping_a_deep_graph_does_not_crash():
    # run in a child process: a recursive deallocation would kill the interpreter
    code = ('import numpy, seqdbr.functions as F\n'
            'from seqdbr import Variable\n'
            'x = Variable(numpy.ones(2))\n'
            'h = x\n'
            'for _ in range(%d):\n'
            '    h = h + 1.0\n'
            'del h\n'
            'print("ok")\n' % N_DEEP)
    env = dict(os.environ)
    env['PYTHONPATH'] = str(ROOT) + os.pathsep + env.get('PYTHONPATH', '')
    r = subprocess.run([sys.executable, '-c', code], cwd=str(ROOT), env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == 'ok'


# -- graph cutting and memory --------------------------------------------------------------

def test_unchain_backward_frees_intermediates(xp):
    x = Variable(_u(xp, (3,)))
    a = x * 2.0
    b = F.exp(a)
    c = b + 1.0
    y = F.sum(c)
    refs = [weakref.ref(v) for v in (a, b, c)]
    nodes = [weakref.ref(v.creator) for v in (a, b, c, y)]
    del a, b, c
    assert all(r() is not None for r in refs)   # the graph keeps them alive
    y.unchain_backward()
    assert y.creator is None
    # freed by reference counting alone (no cycles), so no gc.collect() here
    assert all(r() is None for r in refs)
    assert all(n() is None for n in nodes)
    y.backward()                                # a leaf now: nothing happens
    assert x.grad is None


def test_unchain_cuts_one_link(xp):
    x = Variable(_u(xp, (3,)))
    h = x * 2.0
    y = F.sum(h * 3.0)
    h.unchain()
    assert h.creator is None
    y.backward()
    assert x.grad is None
    assert_allclose(h.grad, [3.0, 3.0, 3.0], atol=0, rtol=0)


def _live_nodes():
    return sum(1 for o in gc.get_objects() if isinstance(o, FunctionNode))


def test_truncated_bptt_loop_keeps_node_count_bounded(xp):
    gc.collect()
    baseline = _live_nodes()
    rs = numpy.random.RandomState(0)
    inputs = [xp.asarray(rs.uniform(-1, 1, 4)) for _ in range(35)]
    w = Variable(xp.full(4, 0.5))
    h = Variable(xp.zeros(4), requires_grad=False)
    loss = None
    after_cut, mid_window = [], []
    for step in range(1, 10001):
        h = h * w + inputs[step % 35]
        term = F.sum(h * h)
        loss = term if loss is None else loss + term
        if step % 1750 == 17:
            mid_window.append(_live_nodes() - baseline)
        if step % 35 == 0:
            loss.backward()
            loss.unchain_backward()
            loss = None
            if step % 1750 == 0:
                after_cut.append(_live_nodes() - baseline)
    assert len(after_cut) == 5 and len(mid_window) == 6
    # 17 steps into a window the graph is there (~5 nodes per step) ...
    assert min(mid_window) >= 17 * 4
    # ... and it never grows: the same count at every checkpoint, nothing left after a cut
    assert max(mid_window) == min(mid_window)
    assert max(after_cut) == 0
    assert w.grad is not None and bool(xp.isfinite(w.grad).all())


# -- configuration ---------------------------------------------------------------------------

def test_no_backprop_mode_and_force_backprop_mode(xp):
    x = Variable(_u(xp, (2,)))
    with no_backprop_mode():
        assert config.enable_backprop is False
        y = x * 2.0
        assert y.creator is None and y.requires_grad is False
        with force_backprop_mode():
            z = x * 2.0
            assert z.creator is not None
        w = F.exp(x)
        assert w.creator is None
    assert config.enable_backprop is True
    assert (x * 2.0).creator is not None
    F.sum(z).backward()
    assert_allclose(x.grad, [2.0, 2.0], atol=0, rtol=0)


def test_using_config_restores_even_on_error():
    assert config.train is True
    with using_config('train', False):
        assert config.train is False
        assert seqdbr.config.train is False
    assert config.train is True
    with pytest.raises(RuntimeError):
        with using_config('train', False):
            raise RuntimeError('boom')
    assert config.train is True
    with pytest.raises(AttributeError):
        with using_config('no_such_setting', 1):
            pass


def test_config_is_thread_local(xp):
    x = Variable(_u(xp, (2,)))
    seen = {}
    entered = threading.Event()
    release = threading.Event()

    def other_thread():
        seen['enable_backprop'] = config.enable_backprop
        seen['train'] = config.train
        seen['records'] = (x * 2.0).creator is not None
        with no_backprop_mode():
            entered.set()
            release.wait(30)

    with no_backprop_mode(), using_config('train', False):
        t = threading.Thread(target=other_thread)
        t.start()
        entered.wait(30)
        assert config.enable_backprop is False and config.train is False
    # main thread is back to defaults while the other thread is still inside its block
    assert config.enable_backprop is True
    assert (x * 2.0).creator is not None
    release.set()
    t.join(30)
    assert seen == {'enable_backprop': True, 'train': True, 'records': True}


# -- Variable attributes ---------------------------------------------------------------------

def test_variable_array_like_attributes(xp):
    a = _u(xp, (2, 3))
    v = Variable(a, name='v')
    assert v.array is a and v.data is a
    b = _u(xp, (2, 3), seed=1)
    v.data = b
    assert v.array is b
    v.array = a
    assert v.shape == (2, 3) and v.ndim == 2 and v.size == 6 and v.dtype == numpy.float64
    assert v.xp is xp
    assert len(v) == 2
    with pytest.raises(TypeError):
        len(Variable(_u(xp, ())))
    assert v.name == 'v' and 'name=' in repr(v)
    assert Variable(xp.asarray([2.5])).item() == 2.5
    with pytest.raises(TypeError):
        bool(v)


def test_variable_shape_methods_are_differentiable(xp):
    a = _u(xp, (2, 3))
    v = Variable(a)
    t = v.T
    assert t.shape == (3, 2)
    numpy.testing.assert_array_equal(_cpu(t), _cpu(a).T)
    r = v.reshape(3, 2)
    assert r.shape == (3, 2)
    assert v.reshape((6,)).shape == (6,)
    assert v.transpose(1, 0).shape == (3, 2)
    assert v.transpose().shape == (3, 2)
    s = v[1, ::2]
    numpy.testing.assert_array_equal(_cpu(s), _cpu(a)[1, ::2])
    loss = F.sum(t * 1.0) + F.sum(r * 2.0) + F.sum(s * 4.0)
    loss.backward()
    expected = numpy.full((2, 3), 3.0)
    expected[1, ::2] += 4.0
    assert_allclose(v.grad, expected, atol=0, rtol=0)


def test_cleargrad_zerograd_and_initial_grad(xp):
    v = Variable(_u(xp, (2,)), grad=xp.ones(2))
    assert_allclose(v.grad, [1.0, 1.0], atol=0, rtol=0)
    v.cleargrad()
    assert v.grad is None
    v.zerograd()
    assert_allclose(v.grad, [0.0, 0.0], atol=0, rtol=0)
    F.sum(v * 3.0).backward()
    assert_allclose(v.grad, [3.0, 3.0], atol=0, rtol=0)
