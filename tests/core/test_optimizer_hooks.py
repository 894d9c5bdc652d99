"""Optimizer hooks: hand-computed gradients after WeightDecay, Lasso, GradientClipping and
GradientHardClipping, their order, and the grad-None policy."""
import math

import numpy
import pytest

from seqdbr import Parameter
from seqdbr.core import backend
from seqdbr.optimizers import SGD, MomentumSGD, hooks


class Holder:
    def __init__(self, **params):
        self._p = dict(params)

    def params(self, include_uninit=True):
        return iter(self._p.values())

    def namedparams(self, include_uninit=True):
        return (('/' + k, p) for k, p in self._p.items())

    def cleargrads(self):
        for p in self._p.values():
            p.cleargrad()


def _param(xp, values, grad=None, dtype=numpy.float64):
    p = Parameter(xp.asarray(numpy.asarray(values, dtype=dtype)))
    if grad is not None:
        p.grad = xp.asarray(numpy.asarray(grad, dtype=dtype))
    return p


def _run_hook(hook, link):
    """Apply the hook through a real update with lr=0, so values stay and grads are kept."""
    opt = SGD(lr=0.0)
    opt.setup(link)
    opt.add_hook(hook)
    opt.update()
    return opt


def _cpu(a):
    return backend.to_cpu(a)


def test_weight_decay(xp):
    p = _param(xp, [1.0, -2.0, 3.0], [0.1, 0.2, -0.3])
    q = _param(xp, [0.5], [1.0])
    _run_hook(hooks.WeightDecay(0.1), Holder(p=p, q=q))
    # g + 0.1 * theta
    numpy.testing.assert_allclose(_cpu(p.grad), [0.2, 0.0, 0.0], atol=1e-15)
    numpy.testing.assert_allclose(_cpu(q.grad), [1.05], rtol=1e-15)
    numpy.testing.assert_array_equal(_cpu(p.array), [1.0, -2.0, 3.0])


def test_weight_decay_feeds_the_update():
    p = _param(numpy, [2.0, -4.0], [1.0, 1.0])
    opt = SGD(lr=0.5)
    opt.setup(Holder(p=p))
    opt.add_hook(hooks.WeightDecay(0.25))
    opt.update()
    # g' = [1 + 0.5, 1 - 1] ; theta - 0.5 g'
    numpy.testing.assert_allclose(p.array, [2.0 - 0.75, -4.0], rtol=1e-15)


def test_lasso(xp):
    p = _param(xp, [1.0, -2.0, 0.0], [0.1, 0.2, -0.3])
    _run_hook(hooks.Lasso(0.5), Holder(p=p))
    # g + 0.5 * sign(theta), sign(0) = 0
    numpy.testing.assert_allclose(_cpu(p.grad), [0.6, -0.3, -0.3], rtol=1e-15)


def test_gradient_clipping_scales_by_global_norm(xp):
    a = _param(xp, [0.0, 0.0], [3.0, 4.0])
    b = _param(xp, [0.0], [12.0])
    hook = hooks.GradientClipping(6.5)
    _run_hook(hook, Holder(a=a, b=b))
    # global norm sqrt(9 + 16 + 144) = 13 > 6.5 -> scale 0.5 for every gradient
    assert hook.last_norm == pytest.approx(13.0, rel=1e-15)
    numpy.testing.assert_allclose(_cpu(a.grad), [1.5, 2.0], rtol=1e-15)
    numpy.testing.assert_allclose(_cpu(b.grad), [6.0], rtol=1e-15)


def test_gradient_clipping_below_or_at_threshold_is_identity():
    a = _param(numpy, [0.0, 0.0], [3.0, 4.0])
    grad = a.grad
    hook = hooks.GradientClipping(5.0)  # norm == threshold: untouched
    _run_hook(hook, Holder(a=a))
    assert a.grad is grad
    numpy.testing.assert_array_equal(a.grad, [3.0, 4.0])
    hook2 = hooks.GradientClipping(100.0)
    _run_hook(hook2, Holder(a=a))
    numpy.testing.assert_array_equal(a.grad, [3.0, 4.0])
    assert hook2.last_norm == 5.0


def test_gradient_clipping_ignores_params_without_grad():
    a = _param(numpy, [0.0, 0.0], [3.0, 4.0])
    unused = _param(numpy, [1e6, 1e6])  # no grad: neither counted nor touched
    hook = hooks.GradientClipping(2.5)
    _run_hook(hook, Holder(a=a, unused=unused))
    assert hook.last_norm == 5.0
    numpy.testing.assert_allclose(a.grad, [1.5, 2.0], rtol=1e-15)
    assert unused.grad is None


def test_gradient_clipping_all_grads_none():
    a = _param(numpy, [1.0])
    hook = hooks.GradientClipping(1.0)
    _run_hook(hook, Holder(a=a))
    assert hook.last_norm == 0.0 and a.grad is None


def test_gradient_clipping_float32_and_float16():
    a = _param(numpy, [0.0, 0.0], [3.0, 4.0], dtype=numpy.float32)
    h = _param(numpy, [0.0], [300.0], dtype=numpy.float16)  # 300**2 overflows float16
    hook = hooks.GradientClipping(1.0)
    _run_hook(hook, Holder(a=a, h=h))
    norm = math.sqrt(9 + 16 + 90000)
    assert hook.last_norm == pytest.approx(norm, rel=1e-6)
    assert a.grad.dtype == numpy.float32 and h.grad.dtype == numpy.float16
    numpy.testing.assert_allclose(a.grad, [3 / norm, 4 / norm], rtol=1e-6)
    numpy.testing.assert_allclose(h.grad, [300 / norm], rtol=1e-3)


def test_gradient_clipping_non_finite_norm_leaves_grads():
    a = _param(numpy, [0.0, 0.0], [numpy.nan, 1.0])
    hook = hooks.GradientClipping(1.0)
    _run_hook(hook, Holder(a=a))
    assert math.isnan(hook.last_norm)
    assert numpy.isnan(a.grad[0]) and a.grad[1] == 1.0


def test_gradient_hard_clipping(xp):
    p = _param(xp, [0.0, 0.0, 0.0, 0.0], [-3.0, 0.5, 4.0, -1.0])
    _run_hook(hooks.GradientHardClipping(-1.0, 2.0), Holder(p=p))
    numpy.testing.assert_array_equal(_cpu(p.grad), [-1.0, 0.5, 2.0, -1.0])
    q = _param(xp, [0.0, 0.0], [-3.0, 4.0])
    _run_hook(hooks.GradientHardClipping(None, 1.0), Holder(q=q))
    numpy.testing.assert_array_equal(_cpu(q.grad), [-3.0, 1.0])
    r = _param(xp, [0.0, 0.0], [-3.0, 4.0])
    _run_hook(hooks.GradientHardClipping(-2.0, None), Holder(r=r))
    numpy.testing.assert_array_equal(_cpu(r.grad), [-2.0, 4.0])


def test_hooks_modify_gradient_in_place():
    p = _param(numpy, [1.0, 1.0], [3.0, -3.0])
    grad = p.grad
    _run_hook(hooks.GradientHardClipping(-1.0, 1.0), Holder(p=p))
    _run_hook(hooks.WeightDecay(1.0), Holder(p=p))
    assert p.grad is grad
    numpy.testing.assert_array_equal(grad, [2.0, 0.0])


def test_hook_order_matters():
    """Clip then decay vs decay then clip: hand-computed, and they differ."""
    def run(order):
        p = _param(numpy, [4.0], [3.0])
        opt = SGD(lr=0.0)
        opt.setup(Holder(p=p))
        for h in order:
            opt.add_hook(h)
        opt.update()
        return p.grad[0]

    clip, decay = hooks.GradientClipping(1.0), hooks.WeightDecay(0.5)
    assert run([clip, decay]) == pytest.approx(1.0 + 0.5 * 4.0, rel=1e-15)  # 3 -> 1 -> 3
    clip, decay = hooks.GradientClipping(1.0), hooks.WeightDecay(0.5)
    assert run([decay, clip]) == pytest.approx(1.0, rel=1e-15)  # 3 -> 5 -> 1


@pytest.mark.parametrize('hook', [hooks.WeightDecay(0.1), hooks.Lasso(0.1),
                                  hooks.GradientClipping(0.1),
                                  hooks.GradientHardClipping(-0.1, 0.1)],
                         ids=lambda h: type(h).__name__)
def test_hooks_skip_params_without_grad(hook):
    used = _param(numpy, [1.0, -1.0], [0.5, 0.5])
    unused = _param(numpy, [2.0, -3.0])
    opt = MomentumSGD()
    opt.setup(Holder(used=used, unused=unused))
    opt.add_hook(hook)
    opt.update()
    assert unused.grad is None
    numpy.testing.assert_array_equal(unused.array, [2.0, -3.0])
    assert unused.update_rule.state is None


def test_hook_names_and_repr():
    assert hooks.WeightDecay(0.1).name == 'WeightDecay'
    assert hooks.GradientClipping(1.0).timing == 'pre'
    opt = SGD()
    opt.add_hook(hooks.WeightDecay(0.1))
    opt.add_hook(hooks.GradientClipping(1.0))
    assert list(opt.hooks) == ['WeightDecay', 'GradientClipping']
    assert 'rate=0.1' in repr(hooks.WeightDecay(0.1))
    assert 'threshold=2' in repr(hooks.GradientClipping(2))
    assert 'lower=-1' in repr(hooks.GradientHardClipping(-1, 1))


@pytest.mark.parametrize('make', [
    lambda: hooks.WeightDecay(-0.1), lambda: hooks.Lasso('a'),
    lambda: hooks.GradientClipping(0), lambda: hooks.GradientClipping(-1.0),
    lambda: hooks.GradientHardClipping(1.0, -1.0), lambda: hooks.GradientHardClipping(None, None),
    lambda: hooks.GradientHardClipping(float('nan'), 1.0),
])
def test_invalid_arguments(make):
    with pytest.raises(ValueError):
        make()


@pytest.mark.parametrize('hook', [hooks.WeightDecay(0.5), hooks.Lasso(0.5),
                                  hooks.GradientClipping(1.0),
                                  hooks.GradientHardClipping(-1.0, 1.0)],
                         ids=lambda h: type(h).__name__)
def test_read_only_gradient_is_copied_not_written(hook):
    source = numpy.array([2.0])
    p = _param(numpy, [1.0, 1.0])
    p.grad = numpy.broadcast_to(source, (2,))  # read-only view of `source`
    _run_hook(hook, Holder(p=p))
    assert source[0] == 2.0
    assert p.grad.flags.writeable
    assert not numpy.array_equal(p.grad, [2.0, 2.0])
