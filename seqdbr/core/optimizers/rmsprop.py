"""RMSprop: gradient divided by a running RMS of recent gradients."""
import numpy

from seqdbr.core.optimizer import (GradientMethod, LazyKernel, UpdateRule, _divided_step_cpu,
                                   check_nonnegative, check_unit_interval,
                                   hyperparameter_property)

__all__ = ['RMSprop', 'RMSpropRule']

_kernel = LazyKernel('T grad, T lr, T alpha, T eps', 'T param, T ms',
                     'ms = alpha * ms + (1 - alpha) * grad * grad; '
                     'param -= lr * grad / (sqrt(ms) + eps);',
                     'seqdbr_rmsprop')


class RMSpropRule(UpdateRule):
    """Update rule of :class:`RMSprop`. State: ``ms`` (running mean of ``g**2``)."""
    _defaults = {'lr': 0.01, 'alpha': 0.99, 'eps': 1e-8}

    def __init__(self, parent_hyperparam=None, lr=None, alpha=None, eps=None):
        super().__init__(parent_hyperparam, lr=lr, alpha=alpha, eps=eps)

    def state_names(self):
        return ('ms',)

    def update_core_cpu(self, array, grad):
        hp = self.hyperparam
        alpha = hp.alpha
        ms = self.state['ms']
        tmp = numpy.multiply(grad, grad)
        tmp *= 1.0 - alpha
        ms *= alpha
        ms += tmp
        _divided_step_cpu(array, grad, ms, tmp, hp.lr, hp.eps)

    def update_core_gpu(self, array, grad):
        hp = self.hyperparam
        _kernel(grad, hp.lr, hp.alpha, hp.eps, array, self.state['ms'])


class RMSprop(GradientMethod):
    """RMSprop: Tieleman & Hinton, "Lecture 6.5 - rmsprop: divide the gradient by a running
    average of its recent magnitude", COURSERA: Neural Networks for Machine Learning (2012).

    With ``ms`` (state, starts at 0), elementwise::

        ms    <- alpha * ms + (1 - alpha) * g**2
        theta <- theta - lr * g / (sqrt(ms) + eps)

    (``eps``, not in the lecture, keeps the step finite where ``ms`` is 0.)

    Args:
        lr (float): learning rate (>= 0).
        alpha (float): decay rate of the running mean, in [0, 1).
        eps (float): added to ``sqrt(ms)`` (>= 0).
    """
    _rule_class = RMSpropRule
    alpha = hyperparameter_property('alpha', 'Decay rate of the running mean of ``g**2``.')
    eps = hyperparameter_property('eps', 'Added to ``sqrt(ms)``.')

    def __init__(self, lr=0.01, alpha=0.99, eps=1e-8):
        super().__init__(lr=check_nonnegative('lr', lr),
                         alpha=check_unit_interval('alpha', alpha),
                         eps=check_nonnegative('eps', eps))
