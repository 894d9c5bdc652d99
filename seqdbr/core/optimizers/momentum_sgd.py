"""SGD with classical (heavy-ball) momentum."""
import numpy

from seqdbr.core.optimizer import (GradientMethod, LazyKernel, UpdateRule, check_nonnegative,
                                   check_unit_interval, hyperparameter_property)

__all__ = ['MomentumSGD', 'MomentumSGDRule']

_kernel = LazyKernel('T grad, T lr, T momentum', 'T param, T v',
                     'v = momentum * v - lr * grad; param += v;', 'seqdbr_momentum_sgd')


class MomentumSGDRule(UpdateRule):
    """Update rule of :class:`MomentumSGD`. State: ``v`` (velocity)."""
    _defaults = {'lr': 0.01, 'momentum': 0.9}

    def __init__(self, parent_hyperparam=None, lr=None, momentum=None):
        super().__init__(parent_hyperparam, lr=lr, momentum=momentum)

    def state_names(self):
        return ('v',)

    def update_core_cpu(self, array, grad):
        hp = self.hyperparam
        v = self.state['v']
        tmp = numpy.multiply(grad, hp.lr)
        v *= hp.momentum
        v -= tmp
        array += v

    def update_core_gpu(self, array, grad):
        hp = self.hyperparam
        _kernel(grad, hp.lr, hp.momentum, array, self.state['v'])


class MomentumSGD(GradientMethod):
    """SGD with classical momentum (Polyak 1964), in the form of Sutskever, Martens, Dahl &
    Hinton, "On the importance of initialization and momentum in deep learning" (ICML 2013),
    eqs. (1)-(2).

    With velocity ``v`` (state, starts at 0), gradient ``g``, learning rate ``lr`` and
    momentum coefficient ``mu``::

        v     <- mu * v - lr * g
        theta <- theta + v

    The learning rate is inside the velocity, so changing ``lr`` mid-training scales only the
    new gradient contributions, not the velocity already accumulated.

    Args:
        lr (float): learning rate (>= 0).
        momentum (float): ``mu``, in [0, 1).
    """
    _rule_class = MomentumSGDRule
    momentum = hyperparameter_property('momentum', 'Momentum coefficient ``mu``.')

    def __init__(self, lr=0.01, momentum=0.9):
        super().__init__(lr=check_nonnegative('lr', lr),
                         momentum=check_unit_interval('momentum', momentum))
