"""Graves' RMSprop: centred running variance plus momentum."""
import numpy

from seqdbr.core.optimizer import (GradientMethod, LazyKernel, UpdateRule, check_nonnegative,
                                   check_positive, check_unit_interval, hyperparameter_property)

__all__ = ['RMSpropGraves', 'RMSpropGravesRule']

_kernel = LazyKernel('T grad, T lr, T alpha, T momentum, T eps',
                     'T param, T n, T g, T delta',
                     'n = alpha * n + (1 - alpha) * grad * grad; '
                     'g = alpha * g + (1 - alpha) * grad; '
                     'delta = momentum * delta - lr * grad / sqrt(n - g * g + eps); '
                     'param += delta;',
                     'seqdbr_rmsprop_graves')


class RMSpropGravesRule(UpdateRule):
    """Update rule of :class:`RMSpropGraves`. State: ``n`` (running mean of ``g**2``),
    ``g`` (running mean of ``g``), ``delta`` (momentum of the updates)."""
    _defaults = {'lr': 1e-4, 'alpha': 0.95, 'momentum': 0.9, 'eps': 1e-4}

    def __init__(self, parent_hyperparam=None, lr=None, alpha=None, momentum=None, eps=None):
        super().__init__(parent_hyperparam, lr=lr, alpha=alpha, momentum=momentum, eps=eps)

    def state_names(self):
        return ('n', 'g', 'delta')

    def update_core_cpu(self, array, grad):
        hp = self.hyperparam
        alpha = hp.alpha
        state = self.state
        n, g, delta = state['n'], state['g'], state['delta']
        tmp = numpy.multiply(grad, grad)
        tmp *= 1.0 - alpha
        n *= alpha
        n += tmp                                   # (38)
        numpy.multiply(grad, 1.0 - alpha, out=tmp)
        g *= alpha
        g += tmp                                   # (39)
        numpy.multiply(g, g, out=tmp)
        numpy.subtract(n, tmp, out=tmp)
        tmp += hp.eps
        numpy.sqrt(tmp, out=tmp)
        numpy.divide(grad, tmp, out=tmp)
        tmp *= hp.lr
        delta *= hp.momentum
        delta -= tmp                               # (40)
        array += delta                             # (41)

    def update_core_gpu(self, array, grad):
        hp = self.hyperparam
        state = self.state
        _kernel(grad, hp.lr, hp.alpha, hp.momentum, hp.eps, array, state['n'], state['g'],
                state['delta'])


class RMSpropGraves(GradientMethod):
    """Graves' variant of RMSprop: Graves, "Generating sequences with recurrent neural
    networks", arXiv:1308.0850 (2013), eqs. (38)-(41).

    With state ``n``, ``g``, ``delta`` (all start at 0) and ``e`` the gradient, elementwise::

        n     <- alpha * n + (1 - alpha) * e**2                      (38)
        g     <- alpha * g + (1 - alpha) * e                         (39)
        delta <- momentum * delta - lr * e / sqrt(n - g**2 + eps)    (40)
        theta <- theta + delta                                       (41)

    ``n - g**2`` is a running variance estimate; ``eps`` sits inside the square root as in
    the paper. The defaults are the paper's values (alpha = 0.95, momentum = 0.9,
    lr = eps = 1e-4).

    Args:
        lr (float): learning rate (>= 0).
        alpha (float): decay rate of the running means, in [0, 1).
        momentum (float): momentum of the updates, in [0, 1).
        eps (float): added to the variance inside the square root (> 0).
    """
    _rule_class = RMSpropGravesRule
    alpha = hyperparameter_property('alpha', 'Decay rate of the running means.')
    momentum = hyperparameter_property('momentum', 'Momentum of the updates.')
    eps = hyperparameter_property('eps', 'Added to the variance inside the square root.')

    def __init__(self, lr=1e-4, alpha=0.95, momentum=0.9, eps=1e-4):
        super().__init__(lr=check_nonnegative('lr', lr),
                         alpha=check_unit_interval('alpha', alpha),
                         momentum=check_unit_interval('momentum', momentum),
                         eps=check_positive('eps', eps))
