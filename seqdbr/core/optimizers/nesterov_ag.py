"""Nesterov's accelerated gradient, in the look-ahead form used for deep nets."""
import numpy

from seqdbr.core.optimizer import (GradientMethod, LazyKernel, UpdateRule, check_nonnegative,
                                   check_unit_interval, hyperparameter_property)

__all__ = ['NesterovAG', 'NesterovAGRule']

_kernel = LazyKernel('T grad, T lr, T momentum', 'T param, T v',
                     'v = momentum * v - lr * grad; param += momentum * v - lr * grad;',
                     'seqdbr_nesterov_ag')


class NesterovAGRule(UpdateRule):
    """Update rule of :class:`NesterovAG`. State: ``v`` (velocity)."""
    _defaults = {'lr': 0.01, 'momentum': 0.9}

    def __init__(self, parent_hyperparam=None, lr=None, momentum=None):
        super().__init__(parent_hyperparam, lr=lr, momentum=momentum)

    def state_names(self):
        return ('v',)

    def update_core_cpu(self, array, grad):
        hp = self.hyperparam
        mu = hp.momentum
        v = self.state['v']
        tmp = numpy.multiply(grad, hp.lr)      # lr * g
        v *= mu
        v -= tmp                               # v <- mu * v - lr * g
        array -= tmp
        numpy.multiply(v, mu, out=tmp)
        array += tmp                           # theta <- theta + mu * v - lr * g

    def update_core_gpu(self, array, grad):
        hp = self.hyperparam
        _kernel(grad, hp.lr, hp.momentum, array, self.state['v'])


class NesterovAG(GradientMethod):
    """Nesterov's accelerated gradient (Nesterov 1983) as written for deep learning by
    Sutskever, Martens, Dahl & Hinton (ICML 2013), eqs. (3)-(4)::

        v_{t+1}     = mu * v_t - lr * grad f(theta_t + mu * v_t)
        theta_{t+1} = theta_t + v_{t+1}

    The gradient there is taken at the look-ahead point ``theta + mu * v``. A
    define-by-run step computes the gradient at the stored parameter, so (following
    Bengio, Boulanger-Lewandowski & Pascanu, "Advances in optimizing recurrent networks",
    ICASSP 2013, eq. (7)) the parameter stores the look-ahead point
    ``Theta = theta + mu * v``, and with ``g`` the gradient at ``Theta`` the update is
    exactly equivalent to::

        v     <- mu * v - lr * g
        Theta <- Theta + mu * v - lr * g        (mu * v with the *new* v)

    i.e. ``Theta <- Theta + mu**2 * v_old - (1 + mu) * lr * g``. This is what this
    optimizer implements; ``v`` starts at 0.

    Args:
        lr (float): learning rate (>= 0).
        momentum (float): ``mu``, in [0, 1).
    """
    _rule_class = NesterovAGRule
    momentum = hyperparameter_property('momentum', 'Momentum coefficient ``mu``.')

    def __init__(self, lr=0.01, momentum=0.9):
        super().__init__(lr=check_nonnegative('lr', lr),
                         momentum=check_unit_interval('momentum', momentum))
