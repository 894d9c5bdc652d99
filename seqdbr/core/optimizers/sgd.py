"""Plain stochastic gradient descent."""
import numpy

from seqdbr.core.optimizer import GradientMethod, LazyKernel, UpdateRule, check_nonnegative

__all__ = ['SGD', 'SGDRule']

_kernel = LazyKernel('T grad, T lr', 'T param', 'param -= lr * grad', 'seqdbr_sgd')


class SGDRule(UpdateRule):
    """Update rule of :class:`SGD` (``theta <- theta - lr * g``); no state."""
    _defaults = {'lr': 0.01}

    def __init__(self, parent_hyperparam=None, lr=None):
        super().__init__(parent_hyperparam, lr=lr)

    def update_core_cpu(self, array, grad):
        tmp = numpy.multiply(grad, self.hyperparam.lr)
        array -= tmp

    def update_core_gpu(self, array, grad):
        _kernel(grad, self.hyperparam.lr, array)


class SGD(GradientMethod):
    """Stochastic gradient descent (Robbins & Monro 1951).

    For each parameter ``theta`` with gradient ``g``::

        theta <- theta - lr * g

    Args:
        lr (float): learning rate (>= 0).
    """
    _rule_class = SGDRule

    def __init__(self, lr=0.01):
        super().__init__(lr=check_nonnegative('lr', lr))
