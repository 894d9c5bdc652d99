"""Learning-rate schedules: the rate is a pure function of (base_lr, epoch).

(Exact resume of a scheduled run through ``opt.serialize`` is covered by
``test_optimizers.py::test_exact_resume[...-hooks+schedule-...]``.)
"""
import numpy
import pytest

from seqdbr import Parameter
from seqdbr.optimizers import (SGD, AdaDelta, Adam, ExponentialDecay, LRSchedule, StepDecay,
                               lr_schedules)


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


def charrnn_lrs(base, rate, after, n_epochs, ntrain=3):
    """The learning rate in use during each epoch, replaying char-rnn's train.lua loop:

        for i = 1, iterations do
            local epoch = i / ntrain
            ...optimizer step with learningRate...
            if i % ntrain == 0 and decay < 1 then
                if epoch >= decay_after then learningRate = learningRate * decay end
            end
        end
    """
    lr = base
    per_epoch = []
    for i in range(1, n_epochs * ntrain + 1):
        epoch = i / ntrain
        if (i - 1) % ntrain == 0:
            per_epoch.append(lr)  # rate used by the first iteration of this epoch
        if i % ntrain == 0 and epoch >= after:
            lr = lr * rate
    return per_epoch


@pytest.mark.parametrize('rate,after', [(0.97, 10), (0.5, 3), (0.5, 1), (0.5, 0), (0.9, 2)])
def test_exponential_decay_matches_charrnn_loop(rate, after):
    sched = ExponentialDecay(rate=rate, after=after)
    want = charrnn_lrs(2e-3, rate, after, 16)
    got = [sched.lr_at(e, 2e-3) for e in range(16)]
    numpy.testing.assert_allclose(got, want, rtol=1e-14)


def test_exponential_decay_defaults_hand_computed():
    sched = ExponentialDecay()
    assert (sched.rate, sched.after) == (0.97, 10)
    assert [sched.lr_at(e, 1.0) for e in (0, 9)] == [1.0, 1.0]
    assert sched.lr_at(10, 1.0) == pytest.approx(0.97, rel=1e-15)
    assert sched.lr_at(11, 1.0) == pytest.approx(0.97 ** 2, rel=1e-15)
    assert sched.lr_at(20, 0.002) == pytest.approx(0.002 * 0.97 ** 11, rel=1e-15)
    assert sched.n_decays(9) == 0 and sched.n_decays(12) == 3


def test_step_decay_hand_computed():
    sched = StepDecay(step_size=3, gamma=0.1)
    got = [sched.lr_at(e, 1.0) for e in range(7)]
    numpy.testing.assert_allclose(got, [1, 1, 1, 0.1, 0.1, 0.1, 0.01], rtol=1e-15)
    assert StepDecay(1, 0.5).lr_at(4, 8.0) == 0.5


def test_lr_at_is_pure():
    sched = ExponentialDecay(rate=0.5, after=2)
    first = [sched.lr_at(e, 1.0) for e in (5, 0, 3, 5, 2)]
    again = [sched.lr_at(e, 1.0) for e in (5, 0, 3, 5, 2)]
    assert first == again == [0.0625, 1.0, 0.25, 0.0625, 0.5]


def test_schedule_as_hook_sets_lr_from_base_and_epoch():
    p = Parameter(numpy.array([1.0]))
    opt = SGD(lr=0.4)
    opt.setup(Holder(p=p))
    opt.add_hook(StepDecay(step_size=1, gamma=0.5))
    steps = []
    for epoch in range(3):
        before = p.array[0]
        p.grad = numpy.array([1.0])
        opt.update()
        steps.append(before - p.array[0])
        opt.new_epoch()
    numpy.testing.assert_allclose(steps, [0.4, 0.2, 0.1], rtol=1e-14)
    assert opt.lr == pytest.approx(0.1)  # the rate of the last update


def test_schedule_overrides_manual_lr_but_follows_base_lr():
    opt = Adam(alpha=0.01)
    opt.epoch = 4
    sched = ExponentialDecay(rate=0.5, after=3)
    opt.lr = 123.0
    sched(opt)
    assert opt.alpha == pytest.approx(0.01 * 0.25)
    opt.base_lr = 0.1
    sched(opt)
    assert opt.alpha == pytest.approx(0.1 * 0.25)


def test_schedule_keeps_per_param_overrides():
    a = Parameter(numpy.array([1.0]))
    b = Parameter(numpy.array([1.0]))
    opt = SGD(lr=0.5)
    opt.setup(Holder(a=a, b=b))
    a.update_rule.hyperparam.lr = 0.0
    opt.add_hook(StepDecay(1, 0.5))
    opt.epoch = 1
    a.grad = numpy.array([1.0])
    b.grad = numpy.array([1.0])
    opt.update()
    assert a.array[0] == 1.0 and b.array[0] == 0.75


def test_schedule_on_adadelta_raises():
    opt = AdaDelta()
    opt.setup(Holder(p=Parameter(numpy.array([1.0]))))
    with pytest.raises(TypeError, match='learning rate'):
        ExponentialDecay()(opt)


def test_schedule_resume_needs_only_epoch_and_base_lr():
    """A second optimizer with the same (base_lr, epoch) gets the same rate."""
    sched = ExponentialDecay(rate=0.8, after=1)
    a = SGD(lr=0.3)
    for _ in range(5):
        a.new_epoch()
    sched(a)
    b = SGD(lr=0.3)
    b.epoch = 5
    sched(b)
    assert a.lr == b.lr == pytest.approx(0.3 * 0.8 ** 5)


def test_base_class_and_module():
    assert issubclass(ExponentialDecay, LRSchedule) and issubclass(StepDecay, LRSchedule)
    assert lr_schedules.ExponentialDecay is ExponentialDecay
    with pytest.raises(NotImplementedError):
        LRSchedule().lr_at(0, 1.0)
    assert ExponentialDecay().timing == 'pre'
    assert 'after=10' in repr(ExponentialDecay())
    assert 'step_size=2' in repr(StepDecay(2))


@pytest.mark.parametrize('make', [
    lambda: ExponentialDecay(rate=0.0), lambda: ExponentialDecay(rate=1.5),
    lambda: ExponentialDecay(after=-1), lambda: ExponentialDecay(after=1.5),
    lambda: StepDecay(0), lambda: StepDecay(2, gamma=0), lambda: StepDecay(2.0),
])
def test_invalid_arguments(make):
    with pytest.raises(ValueError):
        make()


def test_negative_epoch_raises():
    with pytest.raises(ValueError, match='epoch'):
        ExponentialDecay().lr_at(-1, 1.0)
    with pytest.raises(ValueError, match='epoch'):
        StepDecay(2).lr_at(-1, 1.0)
