"""Engine defects of issue 14 (items 11-14), with independently derived expected values:
GradientClipping on float32 gradients whose squared norm overflows float32, backward() from a
one-element output of any shape, global_config reaching every thread, and Variable
comparisons that raise instead of testing identity."""
import math
import re
import threading

import numpy
import pytest

import seqdbr
import seqdbr.functions as F
from seqdbr import Parameter, Variable
from seqdbr.core import backend
from seqdbr.core.config import config, global_config, using_config
from seqdbr.optimizers import SGD, hooks


class _Holder:
    def __init__(self, **params):
        self._p = dict(params)

    def params(self, include_uninit=True):
        return iter(self._p.values())

    def namedparams(self, include_uninit=True):
        return (('/' + k, p) for k, p in self._p.items())

    def cleargrads(self):
        for p in self._p.values():
            p.cleargrad()


def _clip(threshold, xp=numpy, **grads):
    """Run GradientClipping through a real SGD update with lr=1 on zero weights, so each
    weight after the update is minus its clipped gradient (returned on the host)."""
    params = {}
    for k, g in grads.items():
        g = numpy.asarray(g)
        p = Parameter(xp.zeros(g.shape, g.dtype))
        p.grad = xp.asarray(g.copy())
        params[k] = p
    opt = SGD(lr=1.0)
    opt.setup(_Holder(**params))
    hook = hooks.GradientClipping(threshold)
    opt.add_hook(hook)
    opt.update()
    return hook, {k: _Host(backend.to_cpu(p.array)) for k, p in params.items()}


class _Host:
    def __init__(self, array):
        self.array = array


# -- item 11: GradientClipping --------------------------------------------------------------

@pytest.mark.parametrize('scale', [1e19, 1e20, 3e30, 1e38])
def test_clipping_float32_gradients_whose_squares_overflow(scale, xp):
    rng = numpy.random.default_rng(0)
    a = (rng.standard_normal((7, 5)) * scale).astype(numpy.float32)
    b = (rng.standard_normal(11) * scale).astype(numpy.float32)
    assert numpy.isfinite(a).all() and numpy.isfinite(b).all()
    with numpy.errstate(over='ignore'):
        assert not numpy.isfinite(numpy.dot(a.ravel(), a.ravel()))   # float32 squares overflow
    # Reference: the float64 norm of the raw gradients, by the definition.
    a64, b64 = a.astype(numpy.float64), b.astype(numpy.float64)
    want_norm = math.sqrt(float((a64 ** 2).sum() + (b64 ** 2).sum()))
    hook, p = _clip(5.0, xp, a=a, b=b)      # CPU, or the GPU with SEQDBR_TEST_DEVICE=gpu
    assert hook.last_norm == pytest.approx(want_norm, rel=1e-6)
    # The step taken is the clipped gradient: norm 5, the direction of the raw gradient.
    got = numpy.concatenate([-p['a'].array.ravel(), -p['b'].array.ravel()]).astype(
        numpy.float64)
    assert numpy.isfinite(got).all()
    assert math.sqrt(float((got ** 2).sum())) == pytest.approx(5.0, rel=1e-5)
    want = numpy.concatenate([a64.ravel(), b64.ravel()]) * (5.0 / want_norm)
    numpy.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-30)


def test_clipping_float64_beyond_float64_squares(xp):
    g = numpy.array([3e200, -4e200, 0.0])          # squares overflow float64
    hook, p = _clip(1.0, xp, g=g)
    assert hook.last_norm == pytest.approx(5e200, rel=1e-12)
    numpy.testing.assert_allclose(-p['g'].array, [0.6, -0.8, 0.0], rtol=1e-12)


def test_clipping_truly_non_finite_gradients_are_left_alone(xp):
    g = numpy.array([numpy.inf, 1.0], dtype=numpy.float32)
    h = numpy.array([1e30, 1e30], dtype=numpy.float32)
    hook, p = _clip(1.0, xp, g=g, h=h)
    assert math.isinf(hook.last_norm)
    assert numpy.isneginf(p['g'].array[0]) and p['g'].array[1] == -1.0
    numpy.testing.assert_array_equal(-p['h'].array, h)
    hook, p = _clip(1.0, xp, g=numpy.array([numpy.nan, 1e30], dtype=numpy.float32))
    assert math.isnan(hook.last_norm)


def test_clipping_float16_large_values():
    g = numpy.array([60000.0, -60000.0], dtype=numpy.float16)   # squares overflow float16
    hook, p = _clip(1.0, g=g)
    assert hook.last_norm == pytest.approx(60000.0 * math.sqrt(2), rel=1e-3)


# -- item 12: backward from a one-element output ---------------------------------------------

@pytest.mark.parametrize('shape', [(), (1,), (1, 1), (1, 1, 1)])
def test_backward_seeds_ones_for_any_one_element_output(shape):
    x = Variable(numpy.array([1.5, -2.0, 0.25]))
    y = F.reshape(F.sum(x * x), shape)          # d/dx sum(x^2) = 2x
    y.backward()
    numpy.testing.assert_array_equal(x.grad, 2 * x.array)
    assert y.grad is None or y.grad.shape == shape


@pytest.mark.parametrize('shape', [(2,), (1, 2), (0,), (3, 1)])
def test_backward_without_grad_still_refuses_other_sizes(shape):
    x = Variable(numpy.ones(shape))
    y = x * 2.0
    with pytest.raises(ValueError, match=r'set \.grad'):
        y.backward()


# -- item 13: global_config reaches every thread ---------------------------------------------

@pytest.fixture
def restore_global():
    saved = (global_config.train, global_config.enable_backprop, global_config.debug)
    yield
    global_config.train, global_config.enable_backprop, global_config.debug = saved


def test_global_config_reaches_the_importing_thread(restore_global):
    assert config.train is True
    seqdbr.global_config.train = False
    assert config.train is False and seqdbr.config.train is False
    with using_config('train', True):
        assert config.train is True
    assert config.train is False        # back to following the global value
    seqdbr.global_config.train = True
    assert config.train is True


def test_global_config_reaches_running_threads_unless_they_set_their_own(restore_global):
    started, changed, seen = threading.Event(), threading.Event(), {}

    def follower():
        seen['before'] = config.enable_backprop
        started.set()
        changed.wait(30)
        seen['after'] = config.enable_backprop
        config.enable_backprop = True               # a thread-local value shadows the global
        seen['own'] = config.enable_backprop

    t = threading.Thread(target=follower)
    t.start()
    started.wait(30)
    global_config.enable_backprop = False
    changed.set()
    t.join(30)
    assert seen == {'before': True, 'after': False, 'own': True}
    assert config.enable_backprop is False      # the other thread's write stayed there
    x = Variable(numpy.ones(2))
    assert (x * 2.0).creator is None            # ops see the global value too


def test_local_setting_shadows_then_using_config_restores_it(restore_global):
    config.debug = True                          # this thread's own value
    try:
        global_config.debug = False
        assert config.debug is True
        with using_config('debug', False):
            assert config.debug is False
        assert config.debug is True              # the local value is restored, not dropped
    finally:
        del config.debug
    assert config.debug is False


def test_global_config_unknown_and_private_names():
    with pytest.raises(AttributeError, match='no setting'):
        global_config.no_such_setting
    with pytest.raises(AttributeError):
        global_config._private = 1
    with pytest.raises(AttributeError):
        with using_config('no_such_setting', 1):
            pass


# -- item 14: comparisons --------------------------------------------------------------------

@pytest.mark.parametrize('op', ['==', '!=', '<', '<=', '>', '>='])
def test_every_variable_comparison_raises_the_same_way(op):
    a = Variable(numpy.array([1.0, 2.0]))
    b = Variable(numpy.array([1.0, 2.0]))
    for left, right in ((a, b), (a, a), (a, 1.0), (a, numpy.array([1.0, 2.0]))):
        with pytest.raises(TypeError, match='comparing Variables with ' + re.escape(op)) as e:
            eval('left %s right' % op)
        assert 'x.array %s y.array' % op in str(e.value)


def test_variables_stay_usable_as_dict_keys_and_set_members():
    a = Variable(numpy.array([1.0]))
    b = Variable(numpy.array([1.0]))          # equal value, different object
    d = {a: 'a', b: 'b'}
    assert d[a] == 'a' and d[b] == 'b' and len(d) == 2
    assert a in {a} and b not in {a}
    assert hash(a) != hash(b)
    # The backprop loop keys gradients by Variable: a graph reusing one value still works.
    x = Variable(numpy.array([3.0]))
    y = x * x + x * x
    y.backward()
    numpy.testing.assert_array_equal(x.grad, [12.0])
