"""AdaGrad: per-coordinate step sizes from the accumulated squared gradients."""
import numpy

from seqdbr.core.optimizer import (GradientMethod, LazyKernel, UpdateRule, _divided_step_cpu,
                                   check_nonnegative, hyperparameter_property)

__all__ = ['AdaGrad', 'AdaGradRule']

_kernel = LazyKernel('T grad, T lr, T eps', 'T param, T h',
                     'h += grad * grad; param -= lr * grad / (sqrt(h) + eps);',
                     'seqdbr_ada_grad')


class AdaGradRule(UpdateRule):
    """Update rule of :class:`AdaGrad`. State: ``h`` (sum of squared gradients)."""
    _defaults = {'lr': 0.001, 'eps': 1e-8}

    def __init__(self, parent_hyperparam=None, lr=None, eps=None):
        super().__init__(parent_hyperparam, lr=lr, eps=eps)

    def state_names(self):
        return ('h',)

    def update_core_cpu(self, array, grad):
        hp = self.hyperparam
        h = self.state['h']
        tmp = numpy.multiply(grad, grad)
        h += tmp
        _divided_step_cpu(array, grad, h, tmp, hp.lr, hp.eps)

    def update_core_gpu(self, array, grad):
        hp = self.hyperparam
        _kernel(grad, hp.lr, hp.eps, array, self.state['h'])


class AdaGrad(GradientMethod):
    """AdaGrad, diagonal form: Duchi, Hazan & Singer, "Adaptive subgradient methods for
    online learning and stochastic optimization", JMLR 12 (2011).

    With ``h`` (state, starts at 0) the running sum of squared gradients, elementwise::

        h     <- h + g**2
        theta <- theta - lr * g / (sqrt(h) + eps)

    ``eps`` keeps the first step finite for coordinates whose gradients are all zero.

    Args:
        lr (float): learning rate (>= 0).
        eps (float): added to ``sqrt(h)`` (>= 0).
    """
    _rule_class = AdaGradRule
    eps = hyperparameter_property('eps', 'Added to ``sqrt(h)`` in the denominator.')

    def __init__(self, lr=0.001, eps=1e-8):
        super().__init__(lr=check_nonnegative('lr', lr), eps=check_nonnegative('eps', eps))
