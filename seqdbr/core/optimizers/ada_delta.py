"""AdaDelta: step sizes from running averages of squared gradients and squared updates."""
import numpy

from seqdbr.core.optimizer import (GradientMethod, LazyKernel, UpdateRule, check_positive,
                                   check_unit_interval, hyperparameter_property)

__all__ = ['AdaDelta', 'AdaDeltaRule']

_kernel = LazyKernel(
    'T grad, T rho, T eps', 'T param, T msg, T msdx',
    'msg = rho * msg + (1 - rho) * grad * grad; '
    'T dx = sqrt((msdx + eps) / (msg + eps)) * grad; '
    'msdx = rho * msdx + (1 - rho) * dx * dx; '
    'param -= dx;',
    'seqdbr_ada_delta')


class AdaDeltaRule(UpdateRule):
    """Update rule of :class:`AdaDelta`. State: ``msg`` (E[g^2]), ``msdx`` (E[dx^2])."""
    _defaults = {'rho': 0.95, 'eps': 1e-6}

    def __init__(self, parent_hyperparam=None, rho=None, eps=None):
        super().__init__(parent_hyperparam, rho=rho, eps=eps)

    def state_names(self):
        return ('msg', 'msdx')

    def update_core_cpu(self, array, grad):
        hp = self.hyperparam
        rho, eps = hp.rho, hp.eps
        msg, msdx = self.state['msg'], self.state['msdx']
        tmp = numpy.multiply(grad, grad)
        tmp *= 1 - rho
        msg *= rho
        msg += tmp                             # E[g^2]_t
        dx = numpy.add(msdx, eps)
        numpy.add(msg, eps, out=tmp)
        dx /= tmp
        numpy.sqrt(dx, out=dx)
        dx *= grad                             # -(delta x_t)
        numpy.multiply(dx, dx, out=tmp)
        tmp *= 1 - rho
        msdx *= rho
        msdx += tmp                            # E[dx^2]_t
        array -= dx

    def update_core_gpu(self, array, grad):
        hp = self.hyperparam
        _kernel(grad, hp.rho, hp.eps, array, self.state['msg'], self.state['msdx'])


class AdaDelta(GradientMethod):
    """AdaDelta: Zeiler, "ADADELTA: an adaptive learning rate method", arXiv:1212.5701
    (2012), Algorithm 1.

    With running averages ``E[g^2]`` and ``E[dx^2]`` (state ``msg`` and ``msdx``, both start
    at 0), elementwise::

        E[g^2]  <- rho * E[g^2] + (1 - rho) * g**2
        dx       = -sqrt(E[dx^2] + eps) / sqrt(E[g^2] + eps) * g    (E[dx^2] of the previous step)
        E[dx^2] <- rho * E[dx^2] + (1 - rho) * dx**2
        theta   <- theta + dx

    AdaDelta has no learning rate: ``opt.lr`` raises AttributeError, and learning-rate
    schedules cannot be attached to it.

    Args:
        rho (float): decay rate of both averages, in [0, 1).
        eps (float): conditioning constant (> 0; it also sets the size of the first steps).
    """
    _rule_class = AdaDeltaRule
    _lr_name = None
    _no_lr_message = ('AdaDelta has no learning rate: its step size is derived from the '
                      'running averages (hyperparameters rho and eps, Zeiler 2012), so opt.lr '
                      'and learning-rate schedules do not apply; tune opt.rho / opt.eps '
                      'instead, or use another optimizer')
    rho = hyperparameter_property('rho', 'Decay rate of the running averages.')
    eps = hyperparameter_property('eps', 'Conditioning constant.')

    def __init__(self, rho=0.95, eps=1e-6):
        super().__init__(rho=check_unit_interval('rho', rho), eps=check_positive('eps', eps))
