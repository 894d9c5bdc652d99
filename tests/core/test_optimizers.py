"""Optimizers: update equations against float64 references, the setup/update protocol,
per-parameter hyperparameters, the grad-None policy, serialization and exact resume.

Every reference below is an independent scalar implementation of the published
equations (plain Python floats, one element at a time); none calls seqdbr code.
"""
import math

import numpy
import pytest

import seqdbr
import seqdbr.functions as F
import seqdbr.links as L
from seqdbr import Parameter, Variable
from seqdbr.core import backend, serializers
from seqdbr.core.optimizer import GradientMethod, Hyperparameter, UpdateRule
from seqdbr.optimizers import (SGD, AdaDelta, AdaGrad, Adam, ExponentialDecay, MomentumSGD,
                               NesterovAG, RMSprop, RMSpropGraves, hooks)
from seqdbr.optimizers import AdamRule, SGDRule

# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------


class Holder:
    """Minimal stand-in for a Link: named Parameters, params()/namedparams()/cleargrads()."""

    def __init__(self, **params):
        self._p = dict(params)

    def params(self, include_uninit=True):
        for p in self._p.values():
            if include_uninit or p.array is not None:
                yield p

    def namedparams(self, include_uninit=True):
        for name, p in self._p.items():
            if include_uninit or p.array is not None:
                yield '/' + name, p

    def cleargrads(self):
        for p in self._p.values():
            p.cleargrad()

    def serialize(self, s):
        for name, p in self._p.items():
            s(name, p.array)


class DictSaver:
    """In-memory saver following the serializer contract (flat keys 'a/b/key')."""

    def __init__(self, target=None, path=''):
        self.target = {} if target is None else target
        self.path = path

    def __getitem__(self, name):
        return DictSaver(self.target, self.path + name + '/')

    def __call__(self, key, value):
        k = self.path + key
        assert k not in self.target, 'key written twice: %s' % k
        if value is None:
            return None
        if isinstance(value, (bool, int, float)):
            self.target[k] = numpy.asarray(value)
        else:
            self.target[k] = numpy.array(backend.to_cpu(value), copy=True)
        return value


class DictLoader:
    """Strict in-memory loader of the contract; records which keys were read."""

    def __init__(self, source, path='', used=None):
        self.source = source
        self.path = path
        self.used = set() if used is None else used

    def __getitem__(self, name):
        return DictLoader(self.source, self.path + name + '/', self.used)

    def __call__(self, key, value):
        k = self.path + key
        stored = self.source[k]  # KeyError when missing (strict)
        self.used.add(k)
        if value is None:
            return stored.copy()
        if isinstance(value, (bool, int, float)):
            return type(value)(stored.item())
        if stored.shape != value.shape:
            raise ValueError('%s: stored shape %s, expected %s' % (k, stored.shape, value.shape))
        value[...] = backend.get_array_module(value).asarray(stored)
        return value


def save(obj):
    s = DictSaver()
    obj.serialize(s)
    return s.target


def load(obj, d):
    s = DictLoader(d)
    obj.serialize(s)
    assert s.used == set(d), 'keys never read: %s' % sorted(set(d) - s.used)


# ----------------------------------------------------------------------------------------
# independent float64 references (published equations, scalar per element)
# ----------------------------------------------------------------------------------------

def ref_sgd(p, g, s, t, lr=0.01):
    return p - lr * g, s


def ref_momentum(p, g, s, t, lr=0.01, momentum=0.9):
    # Sutskever et al. 2013, eqs. (1)-(2): v <- mu v - lr g; theta <- theta + v
    v = momentum * s.get('v', 0.0) - lr * g
    return p + v, {'v': v}


def ref_nesterov(p, g, s, t, lr=0.01, momentum=0.9):
    # Bengio et al. 2013, eq. (7): with Theta = theta + mu v the Sutskever NAG step reads
    # Theta <- Theta + mu^2 v_old - (1 + mu) lr g, v <- mu v_old - lr g.
    v_old = s.get('v', 0.0)
    p_new = p + momentum * momentum * v_old - (1.0 + momentum) * lr * g
    return p_new, {'v': momentum * v_old - lr * g}


def ref_adagrad(p, g, s, t, lr=0.001, eps=1e-8):
    # Duchi et al. 2011 (diagonal): h <- h + g^2; theta <- theta - lr g / (sqrt(h) + eps)
    h = s.get('h', 0.0) + g * g
    return p - lr * g / (math.sqrt(h) + eps), {'h': h}


def ref_adadelta(p, g, s, t, rho=0.95, eps=1e-6):
    # Zeiler 2012, Algorithm 1
    eg2 = rho * s.get('msg', 0.0) + (1.0 - rho) * g * g
    edx2 = s.get('msdx', 0.0)
    dx = -(math.sqrt(edx2 + eps) / math.sqrt(eg2 + eps)) * g
    edx2 = rho * edx2 + (1.0 - rho) * dx * dx
    return p + dx, {'msg': eg2, 'msdx': edx2}


def ref_adam(p, g, s, t, alpha=0.001, beta1=0.9, beta2=0.999, eps=1e-8, eta=1.0,
             weight_decay_rate=0.0, amsgrad=False):
    # Kingma & Ba 2015, Algorithm 1 with bias-corrected moments; eps enters as the
    # "epsilon hat" of Section 2 (eps added to sqrt(v), i.e. eps / sqrt(1 - beta2^t) next
    # to sqrt(v_hat)); decoupled decay of Loshchilov & Hutter 2019; AMSGrad's running max.
    m = beta1 * s.get('m', 0.0) + (1.0 - beta1) * g
    v = beta2 * s.get('v', 0.0) + (1.0 - beta2) * g * g
    new = {'m': m, 'v': v}
    den_v = v
    if amsgrad:
        den_v = max(s.get('vhat', 0.0), v)
        new['vhat'] = den_v
    m_hat = m / (1.0 - beta1 ** t)
    v_hat = den_v / (1.0 - beta2 ** t)
    eps_hat = eps / math.sqrt(1.0 - beta2 ** t)
    step = alpha * m_hat / (math.sqrt(v_hat) + eps_hat)
    return p - eta * (step + weight_decay_rate * p), new


def ref_rmsprop(p, g, s, t, lr=0.01, alpha=0.99, eps=1e-8):
    # Tieleman & Hinton 2012
    ms = alpha * s.get('ms', 0.0) + (1.0 - alpha) * g * g
    return p - lr * g / (math.sqrt(ms) + eps), {'ms': ms}


def ref_rmsprop_graves(p, g, s, t, lr=1e-4, alpha=0.95, momentum=0.9, eps=1e-4):
    # Graves 2013, eqs. (38)-(41)
    n = alpha * s.get('n', 0.0) + (1.0 - alpha) * g * g
    gm = alpha * s.get('g', 0.0) + (1.0 - alpha) * g
    delta = momentum * s.get('delta', 0.0) - lr * g / math.sqrt(n - gm * gm + eps)
    return p + delta, {'n': n, 'g': gm, 'delta': delta}


def reference_run(ref, p0, grads, hp):
    """Per element: run the scalar reference over the steps; list of (params, states)."""
    n = len(p0)
    ps = [float(x) for x in p0]
    states = [{} for _ in range(n)]
    out = []
    for t, g in enumerate(grads, start=1):
        for i in range(n):
            ps[i], states[i] = ref(ps[i], float(g[i]), states[i], t, **hp)
        out.append((list(ps), [dict(s) for s in states]))
    return out


P0 = [0.5, -1.2, 2.0]
GRADS = [[0.1, -0.3, 0.7], [-0.2, 0.05, 0.4], [0.3, 0.6, -0.9]]
# Step 2 is much smaller than step 1 on element 0, so v decreases there (AMSGrad differs).
GRADS_AMS = [[1.0, -0.3, 0.7], [0.01, 0.05, 0.4], [0.02, 0.6, -0.9]]

CASES = [
    ('SGD', SGD, ref_sgd, {}, GRADS),
    ('SGD-lr', SGD, ref_sgd, {'lr': 0.3}, GRADS),
    ('MomentumSGD', MomentumSGD, ref_momentum, {}, GRADS),
    ('MomentumSGD-hp', MomentumSGD, ref_momentum, {'lr': 0.2, 'momentum': 0.5}, GRADS),
    ('NesterovAG', NesterovAG, ref_nesterov, {}, GRADS),
    ('NesterovAG-hp', NesterovAG, ref_nesterov, {'lr': 0.2, 'momentum': 0.7}, GRADS),
    ('AdaGrad', AdaGrad, ref_adagrad, {}, GRADS),
    ('AdaGrad-hp', AdaGrad, ref_adagrad, {'lr': 0.1, 'eps': 0.01}, GRADS),
    ('AdaDelta', AdaDelta, ref_adadelta, {}, GRADS),
    ('AdaDelta-hp', AdaDelta, ref_adadelta, {'rho': 0.5, 'eps': 1e-3}, GRADS),
    ('Adam', Adam, ref_adam, {}, GRADS),
    ('Adam-hp', Adam, ref_adam, {'alpha': 0.1, 'beta1': 0.5, 'beta2': 0.8, 'eps': 1e-3},
     GRADS),
    ('AdamW', Adam, ref_adam, {'alpha': 0.01, 'weight_decay_rate': 0.1, 'eta': 0.5}, GRADS),
    ('AMSGrad', Adam, ref_adam, {'amsgrad': True}, GRADS_AMS),
    ('AMSGrad-hp', Adam, ref_adam, {'amsgrad': True, 'beta2': 0.9, 'alpha': 0.05}, GRADS_AMS),
    ('AMSGradW', Adam, ref_adam, {'amsgrad': True, 'weight_decay_rate': 0.05, 'eta': 2.0},
     GRADS_AMS),
    ('RMSprop', RMSprop, ref_rmsprop, {}, GRADS),
    ('RMSprop-hp', RMSprop, ref_rmsprop, {'lr': 0.05, 'alpha': 0.5, 'eps': 1e-2}, GRADS),
    ('RMSpropGraves', RMSpropGraves, ref_rmsprop_graves, {}, GRADS),
    ('RMSpropGraves-hp', RMSpropGraves, ref_rmsprop_graves,
     {'lr': 0.01, 'alpha': 0.5, 'momentum': 0.6, 'eps': 1e-3}, GRADS),
]
ALL_OPTIMIZERS = [SGD, MomentumSGD, NesterovAG, AdaGrad, AdaDelta, Adam, RMSprop,
                  RMSpropGraves]


def _single(xp, values, dtype=numpy.float64):
    p = Parameter(xp.asarray(numpy.asarray(values, dtype=dtype)), name='w')
    return p, Holder(w=p)


# ----------------------------------------------------------------------------------------
# equations
# ----------------------------------------------------------------------------------------

def test_adam_first_step_published_value():
    p = Parameter(numpy.array([1.0]))
    opt = Adam()
    opt.setup(Holder(w=p))
    p.grad = numpy.array([0.5])
    opt.update()
    assert p.array[0] == 0.9990000006324551


def test_adam_first_step_published_value_any_device(xp):
    p = Parameter(xp.asarray(numpy.array([1.0])))
    opt = Adam()
    opt.setup(Holder(w=p))
    p.grad = xp.asarray(numpy.array([0.5]))
    opt.update()
    numpy.testing.assert_allclose(backend.to_cpu(p.array), [0.9990000006324551],
                                  rtol=1e-15, atol=0)


@pytest.mark.parametrize('label,cls,ref,hp,grads', CASES, ids=[c[0] for c in CASES])
def test_first_three_updates_match_reference(xp, label, cls, ref, hp, grads):
    p, link = _single(xp, P0)
    opt = cls(**hp)
    opt.setup(link)
    array_id = id(p.array)
    expected = reference_run(ref, P0, grads, hp)
    for t, g in enumerate(grads, start=1):
        p.grad = xp.asarray(numpy.asarray(g, dtype=numpy.float64))
        opt.update()
        assert opt.t == t and p.update_rule.t == t
        want_p, want_states = expected[t - 1]
        numpy.testing.assert_allclose(backend.to_cpu(p.array), want_p, rtol=1e-12, atol=0)
        state = p.update_rule.state
        assert set(state) == set(want_states[0])
        for k in state:
            numpy.testing.assert_allclose(backend.to_cpu(state[k]),
                                          [s[k] for s in want_states], rtol=1e-12, atol=1e-300)
            assert state[k].dtype == numpy.float64
    assert id(p.array) == array_id  # updated in place
    assert not numpy.array_equal(backend.to_cpu(p.array), P0)


def test_amsgrad_case_is_discriminative():
    """The AMSGrad grads make v shrink, so the reference differs from plain Adam by far more
    than the 1e-12 relative tolerance of the comparisons."""
    for hp in ({}, {'beta2': 0.9}):
        ams = reference_run(ref_adam, P0, GRADS_AMS, dict(hp, amsgrad=True))[-1][0]
        plain = reference_run(ref_adam, P0, GRADS_AMS, hp)[-1][0]
        assert abs(ams[0] - plain[0]) > 1e-8


@pytest.mark.parametrize('label,cls,ref,hp,grads', CASES, ids=[c[0] for c in CASES])
def test_float32_params_stay_float32(label, cls, ref, hp, grads):
    p, link = _single(numpy, P0, numpy.float32)
    opt = cls(**hp)
    opt.setup(link)
    for g in grads:
        p.grad = numpy.asarray(g, dtype=numpy.float32)
        opt.update()
    assert p.array.dtype == numpy.float32
    assert all(v.dtype == numpy.float32 for v in p.update_rule.state.values())
    want = reference_run(ref, P0, grads, hp)[-1][0]
    numpy.testing.assert_allclose(p.array, want, rtol=2e-5, atol=1e-6)


def test_nesterov_differs_from_momentum():
    a, la = _single(numpy, P0)
    b, lb = _single(numpy, P0)
    oa, ob = NesterovAG(lr=0.1), MomentumSGD(lr=0.1)
    oa.setup(la)
    ob.setup(lb)
    for g in GRADS:
        a.grad = numpy.array(g)
        b.grad = numpy.array(g)
        oa.update()
        ob.update()
    assert not numpy.allclose(a.array, b.array)


def test_rules_usable_standalone():
    p = Parameter(numpy.array([1.0, 2.0]))
    rule = SGDRule(lr=0.5)
    p.grad = numpy.array([1.0, -1.0])
    rule.update(p)
    numpy.testing.assert_array_equal(p.array, [0.5, 2.5])
    assert rule.hyperparam.lr == 0.5
    r2 = AdamRule()
    assert r2.hyperparam.alpha == 0.001 and r2.hyperparam.amsgrad is False
    p2 = Parameter(numpy.array([1.0]))
    p2.grad = numpy.array([0.5])
    r2.update(p2)
    assert p2.array[0] == 0.9990000006324551
    assert r2.alpha_t == pytest.approx(0.001 * math.sqrt(1 - 0.999) / (1 - 0.9), rel=1e-15)


def test_adam_alpha_t_property():
    opt = Adam(alpha=0.01, beta1=0.8, beta2=0.9)
    with pytest.raises(RuntimeError, match='t >= 1'):
        opt.alpha_t
    opt.t = 3
    assert opt.alpha_t == pytest.approx(0.01 * math.sqrt(1 - 0.9 ** 3) / (1 - 0.8 ** 3),
                                        rel=1e-15)


def test_adam_amsgrad_switched_on_later_starts_vhat_at_zero():
    p, link = _single(numpy, P0)
    opt = Adam()
    opt.setup(link)
    p.grad = numpy.array(GRADS_AMS[0])
    opt.update()
    opt.amsgrad = True
    p.grad = numpy.array(GRADS_AMS[1])
    opt.update()
    # vhat = max(0, v) = v, so this step is a plain Adam step
    want = reference_run(ref_adam, P0, GRADS_AMS[:2], {})[-1][0]
    numpy.testing.assert_allclose(p.array, want, rtol=1e-12)
    numpy.testing.assert_array_equal(p.update_rule.state['vhat'], p.update_rule.state['v'])


# ----------------------------------------------------------------------------------------
# protocol: setup, update, hyperparameters, t / epoch
# ----------------------------------------------------------------------------------------

def _three_params(xp=numpy):
    a = Parameter(xp.asarray(numpy.array([1.0, 2.0])), name='a')
    b = Parameter(xp.asarray(numpy.array([3.0])), name='b')
    c = Parameter(xp.asarray(numpy.array([-1.0, 0.5, 4.0])), name='c')
    return (a, b, c), Holder(a=a, b=b, c=c)


def _set_grads(params, value=1.0):
    for p in params:
        p.grad = numpy.full(p.array.shape, value)


@pytest.mark.parametrize('cls', ALL_OPTIMIZERS)
def test_setup_gives_each_param_its_own_rule(cls):
    params, link = _three_params()
    opt = cls()
    assert opt.setup(link) is opt
    rules = [p.update_rule for p in params]
    assert all(isinstance(r, UpdateRule) for r in rules)
    assert len({id(r) for r in rules}) == 3
    assert len({id(r.hyperparam) for r in rules}) == 3
    assert all(r.hyperparam.parent is opt.hyperparam for r in rules)
    assert all(r.state is None and r.t == 0 for r in rules)


def test_setup_rejects_non_link():
    with pytest.raises(TypeError, match='namedparams'):
        SGD().setup(object())


@pytest.mark.parametrize('cls', ALL_OPTIMIZERS)
def test_per_param_override_and_disable(cls):
    params, link = _three_params()
    a, b, c = params
    opt = cls()
    opt.setup(link)
    name = opt._lr_name or 'rho'
    # per-parameter override: a's step size is 0 (AdaDelta: rho has no zero-step value,
    # so freeze through enabled instead)
    if opt._lr_name is not None:
        setattr(a.update_rule.hyperparam, name, 0.0)
    else:
        a.update_rule.enabled = False
    b.update_rule.enabled = False
    a0, b0, c0 = a.array.copy(), b.array.copy(), c.array.copy()
    _set_grads(params, 0.5)
    opt.update()
    numpy.testing.assert_array_equal(a.array, a0)
    numpy.testing.assert_array_equal(b.array, b0)
    assert b.update_rule.state is None and b.update_rule.t == 0
    assert not numpy.array_equal(c.array, c0)
    if opt._lr_name is not None:
        assert getattr(a.update_rule.hyperparam, name) == 0.0
        assert getattr(c.update_rule.hyperparam, name) == opt.lr
        delattr(a.update_rule.hyperparam, name)  # follow the optimizer again
        assert getattr(a.update_rule.hyperparam, name) == opt.lr


def test_runtime_lr_change_takes_effect_next_update():
    params, link = _three_params()
    a = params[0]
    opt = SGD(lr=0.1)
    opt.setup(link)
    _set_grads(params, 1.0)
    opt.update()
    numpy.testing.assert_allclose(a.array, [0.9, 1.9], rtol=1e-15)
    opt.lr = 0.25
    assert all(p.update_rule.hyperparam.lr == 0.25 for p in params)
    opt.update()
    numpy.testing.assert_allclose(a.array, [0.65, 1.65], rtol=1e-15)


def test_runtime_hyperparameter_change_momentum():
    p, link = _single(numpy, [1.0])
    opt = MomentumSGD(lr=0.1, momentum=0.5)
    opt.setup(link)
    p.grad = numpy.array([1.0])
    opt.update()                                  # v = -0.1, p = 0.9
    opt.momentum = 0.0
    opt.update()                                  # v = -0.1, p = 0.8
    numpy.testing.assert_allclose(p.array, [0.8], rtol=1e-15)
    assert opt.hyperparam.momentum == 0.0


def test_lr_property_for_every_optimizer():
    expected = {SGD: ('lr', 0.01), MomentumSGD: ('lr', 0.01), NesterovAG: ('lr', 0.01),
                AdaGrad: ('lr', 0.001), RMSprop: ('lr', 0.01), RMSpropGraves: ('lr', 1e-4),
                Adam: ('alpha', 0.001)}
    for cls, (name, default) in expected.items():
        opt = cls()
        assert opt.lr == default and getattr(opt.hyperparam, name) == default
        assert opt.base_lr == default
        opt.lr = 0.123
        assert getattr(opt.hyperparam, name) == 0.123 and opt.lr == 0.123
        assert opt.base_lr == default  # the schedule's origin is not touched
    adam = Adam(alpha=0.5)
    assert adam.lr == adam.alpha == 0.5
    adam.alpha = 0.25
    assert adam.lr == 0.25


def test_adadelta_has_no_lr():
    opt = AdaDelta()
    with pytest.raises(AttributeError, match='no learning rate'):
        opt.lr
    with pytest.raises(AttributeError, match='rho'):
        opt.lr = 0.1
    assert not hasattr(opt, 'lr')
    assert opt.base_lr is None
    assert opt.rho == 0.95 and opt.eps == 1e-6


def test_default_hyperparameters():
    assert Adam().hyperparam.get_dict() == {
        'alpha': 0.001, 'beta1': 0.9, 'beta2': 0.999, 'eps': 1e-8, 'eta': 1.0,
        'weight_decay_rate': 0.0, 'amsgrad': False}
    assert RMSpropGraves().hyperparam.get_dict() == {'lr': 1e-4, 'alpha': 0.95,
                                                     'momentum': 0.9, 'eps': 1e-4}
    assert AdaGrad().hyperparam.get_dict() == {'lr': 0.001, 'eps': 1e-8}
    assert AdaDelta().hyperparam.get_dict() == {'rho': 0.95, 'eps': 1e-6}
    assert RMSprop().hyperparam.get_dict() == {'lr': 0.01, 'alpha': 0.99, 'eps': 1e-8}
    assert MomentumSGD().hyperparam.get_dict() == {'lr': 0.01, 'momentum': 0.9}
    assert NesterovAG().hyperparam.get_dict() == {'lr': 0.01, 'momentum': 0.9}
    assert SGD().hyperparam.get_dict() == {'lr': 0.01}
    assert 'alpha=0.001' in repr(Adam())


@pytest.mark.parametrize('make', [
    lambda: SGD(lr=-1), lambda: MomentumSGD(momentum=1.0), lambda: NesterovAG(momentum=-0.1),
    lambda: AdaGrad(eps=-1), lambda: AdaDelta(rho=1.5), lambda: AdaDelta(eps=0),
    lambda: Adam(beta1=1.0), lambda: Adam(beta2=-0.5), lambda: Adam(alpha='0.1'),
    lambda: Adam(weight_decay_rate=-0.1), lambda: RMSprop(alpha=1.0),
    lambda: RMSpropGraves(eps=0.0), lambda: SGD(lr=float('nan')),
])
def test_invalid_hyperparameters_raise(make):
    with pytest.raises(ValueError):
        make()


def test_hyperparameter_namespace():
    root = Hyperparameter()
    root.lr = 0.1
    root.momentum = 0.9
    child = Hyperparameter(root)
    assert child.lr == 0.1
    child.lr = 0.0
    assert child.lr == 0.0 and root.lr == 0.1
    assert child.get_dict() == {'lr': 0.0, 'momentum': 0.9}
    assert child.own_dict() == {'lr': 0.0}
    root.momentum = 0.5
    assert child.momentum == 0.5
    del child.lr
    assert child.lr == 0.1
    with pytest.raises(AttributeError, match='no hyperparameter named'):
        child.beta
    assert 'lr=0.1' in repr(child)


def test_t_incremented_before_hooks_and_rules_and_epoch():
    params, link = _three_params()
    opt = SGD()
    opt.setup(link)
    seen = []
    opt.add_hook(lambda o: seen.append((o.t, params[0].array.copy())), name='probe')
    _set_grads(params)
    a0 = params[0].array.copy()
    opt.update()
    opt.update()
    assert [t for t, _ in seen] == [1, 2]
    numpy.testing.assert_array_equal(seen[0][1], a0)  # hooks run before the rules
    assert opt.epoch == 0
    opt.new_epoch()
    opt.new_epoch()
    assert opt.epoch == 2 and opt.t == 2
    opt.setup(link)  # setup resets the counters
    assert opt.t == 0 and opt.epoch == 0


def test_hook_registration():
    opt = SGD()
    calls = []

    def first(o):
        calls.append('first')

    class Second:
        name = 'second'

        def __call__(self, o):
            calls.append('second')

    opt.add_hook(first)
    opt.add_hook(Second())
    opt.add_hook(lambda o: calls.append('third'), name='third')
    assert list(opt.hooks) == ['first', 'second', 'third']
    with pytest.raises(KeyError, match='already registered'):
        opt.add_hook(first)
    with pytest.raises(TypeError, match='callable'):
        opt.add_hook(3)

    class Post:
        timing = 'post'

        def __call__(self, o):
            pass

    with pytest.raises(ValueError, match='timing'):
        opt.add_hook(Post())
    params, link = _three_params()
    opt.setup(link)
    _set_grads(params)
    opt.update()
    assert calls == ['first', 'second', 'third']
    opt.remove_hook('second')
    with pytest.raises(KeyError, match='no hook named'):
        opt.remove_hook('second')
    calls.clear()
    opt.update()
    assert calls == ['first', 'third']


def test_update_requires_setup():
    with pytest.raises(RuntimeError, match='setup'):
        SGD().update()


def test_update_with_lossfun_clears_backprops_and_updates():
    w = Parameter(numpy.array([1.0, -2.0, 3.0]), name='w')
    link = Holder(w=w)
    opt = SGD(lr=0.1)
    opt.setup(link)
    w.grad = numpy.array([100.0, 100.0, 100.0])  # stale: must be cleared, not accumulated
    x = numpy.array([0.5, 1.0, -1.0])

    def lossfun(x, scale=1.0):
        return F.sum(w * Variable(x, requires_grad=False) * scale)

    opt.update(lossfun, x, scale=2.0)
    # d/dw sum(2 * w * x) = 2x
    numpy.testing.assert_allclose(w.array, [1.0 - 0.1, -2.0 - 0.2, 3.0 + 0.2], rtol=1e-15)
    numpy.testing.assert_allclose(w.grad, 2 * x)
    with pytest.raises(TypeError, match='Variable'):
        opt.update(lambda: 1.0)


def test_param_added_after_setup_gets_a_rule():
    a = Parameter(numpy.array([1.0]))
    link = Holder(a=a)
    opt = SGD(lr=0.5)
    opt.setup(link)
    late = Parameter(numpy.array([2.0]))
    link._p['late'] = late
    a.grad = numpy.array([1.0])
    late.grad = numpy.array([1.0])
    opt.update()
    assert late.update_rule is not None and late.update_rule.hyperparam.parent is opt.hyperparam
    numpy.testing.assert_array_equal(late.array, [1.5])


# ----------------------------------------------------------------------------------------
# grad None policy
# ----------------------------------------------------------------------------------------

@pytest.mark.parametrize('cls', ALL_OPTIMIZERS)
def test_params_without_grad_are_skipped(cls):
    params, link = _three_params()
    a, b, c = params
    opt = cls()
    opt.setup(link)
    opt.add_hook(hooks.WeightDecay(0.1))
    opt.add_hook(hooks.GradientClipping(1.0))
    b0 = b.array.copy()
    for step in range(3):
        a.grad = numpy.full(2, 0.3)
        c.grad = numpy.full(3, -0.2)
        b.cleargrad()
        opt.update()
    numpy.testing.assert_array_equal(b.array, b0)
    assert b.grad is None
    assert b.update_rule.state is None and b.update_rule.t == 0
    assert a.update_rule.t == 3 and opt.t == 3


def test_uninitialized_param_is_skipped():
    lazy = Parameter(shape=None, name='lazy')
    a = Parameter(numpy.array([1.0]))
    opt = Adam()
    opt.setup(Holder(a=a, lazy=lazy))
    a.grad = numpy.array([1.0])
    opt.update()
    assert lazy.array is None and lazy.update_rule.state is None


def test_adam_bias_correction_counts_the_params_own_updates():
    """A parameter first used at step 3 gets the t=1 correction for its moments."""
    a = Parameter(numpy.array([1.0]))
    late = Parameter(numpy.array([1.0]))
    opt = Adam()
    opt.setup(Holder(a=a, late=late))
    for step in range(3):
        a.grad = numpy.array([0.1])
        late.grad = numpy.array([0.5]) if step == 2 else None
        opt.update()
    assert opt.t == 3 and late.update_rule.t == 1
    assert late.array[0] == 0.9990000006324551


def test_zero_grad_is_a_real_update():
    p, link = _single(numpy, [1.0])
    opt = MomentumSGD(lr=0.1, momentum=0.5)
    opt.setup(link)
    p.grad = numpy.array([1.0])
    opt.update()                      # v = -0.1, p = 0.9
    p.grad = numpy.array([0.0])
    opt.update()                      # v = -0.05, p = 0.85
    numpy.testing.assert_allclose(p.array, [0.85], rtol=1e-15)
    assert p.update_rule.t == 2


# ----------------------------------------------------------------------------------------
# serialization
# ----------------------------------------------------------------------------------------

def test_serialize_layout_and_roundtrip_creates_state():
    W = Parameter(numpy.array([[1.0, 2.0], [3.0, 4.0]]), name='W')
    b = Parameter(numpy.array([0.5, -0.5]), name='b')
    unused = Parameter(numpy.array([7.0]), name='u')


    class Top:
        def __init__(self, W, b, u):
            self.l1 = Holder(W=W, b=b)
            self.u = u

        def params(self, include_uninit=True):
            yield from self.l1.params()
            yield self.u

        def namedparams(self, include_uninit=True):
            for n, p in self.l1.namedparams():
                yield '/l1' + n, p
            yield '/u', self.u

        def cleargrads(self):
            for p in self.params():
                p.cleargrad()

    top = Top(W, b, unused)
    opt = Adam(alpha=0.01, amsgrad=True)
    opt.setup(top)
    for step in range(2):
        W.grad = numpy.array([[0.1, -0.2], [0.3, 0.4]]) * (step + 1)
        b.grad = numpy.array([0.5, 0.25])
        opt.update()
    opt.new_epoch()
    opt.lr = 0.005
    d = save(opt)
    assert set(d) == {
        't', 'epoch', 'base_lr', 'hyperparam/alpha', 'hyperparam/beta1', 'hyperparam/beta2',
        'hyperparam/eps', 'hyperparam/eta', 'hyperparam/weight_decay_rate',
        'hyperparam/amsgrad', 'l1/W/t', 'l1/W/m', 'l1/W/v', 'l1/W/vhat', 'l1/b/t', 'l1/b/m',
        'l1/b/v', 'l1/b/vhat', 'u/t'}  # u was never updated: no state written
    assert d['t'] == 2 and d['epoch'] == 1 and d['hyperparam/alpha'] == 0.005
    assert d['base_lr'] == 0.01 and d['l1/W/t'] == 2

    W2 = Parameter(numpy.zeros((2, 2)), name='W')
    b2 = Parameter(numpy.zeros(2), name='b')
    u2 = Parameter(numpy.zeros(1), name='u')
    opt2 = Adam()
    opt2.setup(Top(W2, b2, u2))
    assert W2.update_rule.state is None
    load(opt2, d)
    assert opt2.t == 2 and opt2.epoch == 1 and opt2.lr == 0.005 and opt2.base_lr == 0.01
    assert opt2.amsgrad is True
    for p_old, p_new in ((W, W2), (b, b2)):
        assert p_new.update_rule.t == 2
        assert set(p_new.update_rule.state) == {'m', 'v', 'vhat'}
        for k, v in p_old.update_rule.state.items():
            assert p_new.update_rule.state[k].shape == p_old.array.shape
            numpy.testing.assert_array_equal(p_new.update_rule.state[k], v)
    assert u2.update_rule.state is None and u2.update_rule.t == 0


def test_loading_requires_setup():
    opt = Adam()
    with pytest.raises(RuntimeError, match=r'call setup\(link\) before loading optimizer '
                                           r'state'):
        opt.serialize(DictLoader({'t': numpy.asarray(1)}))


def test_loading_shape_mismatch_raises():
    p, link = _single(numpy, [1.0, 2.0, 3.0])
    opt = MomentumSGD()
    opt.setup(link)
    p.grad = numpy.ones(3)
    opt.update()
    d = save(opt)
    q, link2 = _single(numpy, [1.0, 2.0])
    opt2 = MomentumSGD()
    opt2.setup(link2)
    with pytest.raises(ValueError, match='shape'):
        opt2.serialize(DictLoader(d))


def test_loading_state_into_uninitialized_param_raises():
    p, link = _single(numpy, [1.0, 2.0])
    opt = Adam()
    opt.setup(link)
    p.grad = numpy.ones(2)
    opt.update()
    d = save(opt)
    lazy = Parameter(name='w')
    opt2 = Adam()
    opt2.setup(Holder(w=lazy))
    with pytest.raises(RuntimeError, match='/w: .*load the model before the optimizer'):
        opt2.serialize(DictLoader(d))


def test_loading_never_updated_state_resets_existing_state():
    p, link = _single(numpy, [1.0])
    fresh = Adam()
    fresh.setup(link)
    d = save(fresh)
    assert 'w/m' not in d and d['w/t'] == 0
    used = Adam()
    used.setup(link)
    p.grad = numpy.array([1.0])
    used.update()
    assert p.update_rule.state is not None
    load(used, d)
    assert p.update_rule.state is None and p.update_rule.t == 0 and used.t == 0


def test_int_hyperparameter_set_at_runtime_roundtrips_as_float():
    p, link = _single(numpy, [1.0])
    opt = SGD()
    opt.setup(link)
    opt.lr = 1  # an int
    d = save(opt)
    assert d['hyperparam/lr'].dtype.kind == 'f'
    opt2 = SGD()
    opt2.setup(link)
    load(opt2, d)
    assert opt2.lr == 1.0 and type(opt2.lr) is float


def test_rule_serialize_without_param_takes_stored_arrays():
    p, link = _single(numpy, [1.0, 2.0])
    opt = RMSprop()
    opt.setup(link)
    p.grad = numpy.array([0.5, 1.0])
    opt.update()
    d = save(opt)
    rule = RMSprop().create_update_rule()
    rule.serialize(DictLoader(d)['w'])
    assert rule.t == 1
    numpy.testing.assert_array_equal(rule.state['ms'], p.update_rule.state['ms'])


# ----------------------------------------------------------------------------------------
# exact resume with real links
# ----------------------------------------------------------------------------------------

class MLP(L.Chain):
    def __init__(self, seed):
        super().__init__()
        rng = numpy.random.default_rng(seed)
        with self.init_scope():
            self.l1 = L.Linear(4, 5, initialW=rng.standard_normal((5, 4)).astype(numpy.float32),
                               initial_bias=rng.standard_normal(5).astype(numpy.float32))
            self.l2 = L.Linear(5, 3, initialW=rng.standard_normal((3, 5)).astype(numpy.float32))

    def forward(self, x):
        return self.l2(F.tanh(self.l1(x)))


def _loss(model, x, y):
    d = model(x) - y
    return F.sum(d * d) * (1.0 / len(x))


_DATA_RNG = numpy.random.default_rng(1234)
DATA = [(_DATA_RNG.standard_normal((6, 4)).astype(numpy.float32),
         _DATA_RNG.standard_normal((6, 3)).astype(numpy.float32)) for _ in range(8)]

RESUME_CASES = [
    ('SGD', lambda: SGD(lr=0.05)),
    ('MomentumSGD', lambda: MomentumSGD(lr=0.05)),
    ('NesterovAG', lambda: NesterovAG(lr=0.05)),
    ('AdaGrad', lambda: AdaGrad(lr=0.05)),
    ('AdaDelta', lambda: AdaDelta()),
    ('Adam', lambda: Adam(alpha=0.01)),
    ('AdamW-AMSGrad', lambda: Adam(alpha=0.01, weight_decay_rate=0.01, amsgrad=True)),
    ('RMSprop', lambda: RMSprop(lr=0.01)),
    ('RMSpropGraves', lambda: RMSpropGraves(lr=1e-3)),
]


def _make_optimizer(factory, model, with_extras):
    opt = factory()
    opt.setup(model)
    if with_extras:
        opt.add_hook(hooks.GradientClipping(1.0))
        opt.add_hook(hooks.WeightDecay(1e-3))
        if opt.base_lr is not None:
            opt.add_hook(ExponentialDecay(rate=0.5, after=1))
    return opt


def _train(model, opt, steps, with_extras):
    for i in steps:
        opt.update(_loss, model, *DATA[i])
        if with_extras and i % 2 == 1:
            opt.new_epoch()


def _dict_roundtrip(model, opt, fresh_model, fresh_opt, tmp_path):
    load(fresh_model, save(model))
    load(fresh_opt, save(opt))


def _npz_roundtrip(model, opt, fresh_model, fresh_opt, tmp_path):
    serializers.save_npz(tmp_path / 'model.npz', model)
    serializers.save_npz(tmp_path / 'opt.npz', opt)
    serializers.load_npz(tmp_path / 'model.npz', fresh_model)
    serializers.load_npz(tmp_path / 'opt.npz', fresh_opt)


@pytest.mark.parametrize('roundtrip', [_dict_roundtrip, _npz_roundtrip], ids=['dict', 'npz'])
@pytest.mark.parametrize('with_extras', [False, True], ids=['plain', 'hooks+schedule'])
@pytest.mark.parametrize('label,factory', RESUME_CASES, ids=[c[0] for c in RESUME_CASES])
def test_exact_resume(label, factory, with_extras, roundtrip, tmp_path):
    ref_model = MLP(0)
    ref_opt = _make_optimizer(factory, ref_model, with_extras)
    _train(ref_model, ref_opt, range(8), with_extras)

    model = MLP(0)
    opt = _make_optimizer(factory, model, with_extras)
    _train(model, opt, range(4), with_extras)

    fresh_model = MLP(99)  # different initial values: everything must come from the files
    fresh_opt = _make_optimizer(factory, fresh_model, with_extras)
    roundtrip(model, opt, fresh_model, fresh_opt, tmp_path)
    assert fresh_opt.t == 4
    _train(fresh_model, fresh_opt, range(4, 8), with_extras)

    assert fresh_opt.t == ref_opt.t == 8
    assert fresh_opt.epoch == ref_opt.epoch
    if with_extras and ref_opt.base_lr is not None:
        assert fresh_opt.lr == ref_opt.lr == ref_opt.base_lr * 0.5 ** 3
    for (name, p_ref), (name2, p) in zip(ref_model.namedparams(), fresh_model.namedparams()):
        assert name == name2
        assert numpy.array_equal(p.array, p_ref.array), name
        for k, v in p_ref.update_rule.state.items():
            assert numpy.array_equal(p.update_rule.state[k], v), (name, k)
    # training really moved the parameters
    assert not numpy.array_equal(MLP(0).l1.W.array, ref_model.l1.W.array)


def test_resume_with_lazy_linear_loads_model_first(tmp_path):
    def build():
        m = L.Linear(None, 2, initialW=None)
        o = Adam(alpha=0.01)
        o.setup(m)
        return m, o

    x = DATA[0][0]
    y = DATA[0][1][:, :2]
    model, opt = build()
    model.W.initialize((2, 4))
    model.W.array[...] = numpy.arange(8, dtype=numpy.float32).reshape(2, 4) / 10
    opt.update(_loss, model, x, y)
    fresh_model, fresh_opt = build()
    assert fresh_model.W.array is None
    _npz_roundtrip(model, opt, fresh_model, fresh_opt, tmp_path)
    assert fresh_model.W.update_rule.state['m'].shape == (2, 4)
    opt.update(_loss, model, x, y)
    fresh_opt.update(_loss, fresh_model, x, y)
    assert numpy.array_equal(fresh_model.W.array, model.W.array)


# ----------------------------------------------------------------------------------------
# GPU
# ----------------------------------------------------------------------------------------

GPU_CASES = [c for c in CASES if not c[0].endswith('-hp')]


@pytest.mark.gpu
@pytest.mark.parametrize('dtype', [numpy.float32, numpy.float64])
@pytest.mark.parametrize('label,cls,ref,hp,grads', GPU_CASES, ids=[c[0] for c in GPU_CASES])
def test_gpu_kernels_match_cpu(label, cls, ref, hp, grads, dtype):
    import cupy
    rng = numpy.random.default_rng(7)
    p0 = rng.standard_normal((4, 5)).astype(dtype)
    gs = [rng.standard_normal((4, 5)).astype(dtype) for _ in range(3)]
    cpu = Parameter(p0.copy())
    gpu = Parameter(cupy.asarray(p0))
    oc, og = cls(**hp), cls(**hp)
    oc.setup(Holder(w=cpu))
    og.setup(Holder(w=gpu))
    for g in gs:
        cpu.grad = g.copy()
        gpu.grad = cupy.asarray(g)
        oc.update()
        og.update()
    rtol = 1e-5 if dtype == numpy.float32 else 1e-12
    numpy.testing.assert_allclose(cupy.asnumpy(gpu.array), cpu.array, rtol=rtol, atol=rtol)
    for k, v in cpu.update_rule.state.items():
        assert isinstance(gpu.update_rule.state[k], cupy.ndarray)
        numpy.testing.assert_allclose(cupy.asnumpy(gpu.update_rule.state[k]), v, rtol=rtol,
                                      atol=rtol)


@pytest.mark.gpu
@pytest.mark.parametrize('cls', ALL_OPTIMIZERS)
def test_gpu_state_follows_param_to_device_and_resume(cls, tmp_path):
    import cupy
    model_c, model_g = MLP(0), MLP(0)
    oc, og = cls(), cls()
    oc.setup(model_c)
    og.setup(model_g)
    for i in range(2):
        oc.update(_loss, model_c, *DATA[i])
        og.update(_loss, model_g, *DATA[i])
    model_g.to_gpu()
    for i in range(2, 4):
        oc.update(_loss, model_c, *DATA[i])
        og.update(_loss, model_g, cupy.asarray(DATA[i][0]), cupy.asarray(DATA[i][1]))
    for (n, pc), (_, pg) in zip(model_c.namedparams(), model_g.namedparams()):
        assert all(isinstance(v, cupy.ndarray) for v in pg.update_rule.state.values())
        numpy.testing.assert_allclose(cupy.asnumpy(pg.array), pc.array, rtol=1e-4, atol=1e-5)
    # save from the GPU, load into a fresh GPU model
    fresh = MLP(5)
    fresh.to_gpu()
    fo = cls()
    fo.setup(fresh)
    _npz_roundtrip(model_g, og, fresh, fo, tmp_path)
    for (_, pg), (_, pf) in zip(model_g.namedparams(), fresh.namedparams()):
        for k, v in pg.update_rule.state.items():
            assert isinstance(pf.update_rule.state[k], cupy.ndarray)
            assert bool((pf.update_rule.state[k] == v).all())


def test_public_facade():
    import seqdbr.optimizers as O
    for name in ['SGD', 'MomentumSGD', 'NesterovAG', 'AdaGrad', 'AdaDelta', 'Adam', 'RMSprop',
                 'RMSpropGraves', 'ExponentialDecay', 'StepDecay', 'Optimizer',
                 'GradientMethod', 'UpdateRule', 'Hyperparameter']:
        assert hasattr(O, name), name
    assert O.hooks.GradientClipping is hooks.GradientClipping
    assert issubclass(O.Adam, GradientMethod)
    assert seqdbr.optimizers is O


def test_hyperparameter_copy_and_pickle():
    import copy
    import pickle
    root = Hyperparameter()
    root.lr = 0.5
    child = Hyperparameter(root)
    child.momentum = 0.25
    for clone in (copy.deepcopy(child), pickle.loads(pickle.dumps(child))):
        assert clone.get_dict() == {'lr': 0.5, 'momentum': 0.25}
        assert clone.parent is not root
    opt = copy.deepcopy(Adam(alpha=0.02))
    assert opt.lr == 0.02
