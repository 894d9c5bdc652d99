"""Adam, with optional decoupled weight decay (AdamW) and AMSGrad."""
import math

import numpy

from seqdbr.core import backend
from seqdbr.core.optimizer import (GradientMethod, LazyKernel, UpdateRule, check_nonnegative,
                                   check_unit_interval, hyperparameter_property)

__all__ = ['Adam', 'AdamRule']

_ADAM_STEP = ('m = beta1 * m + (1 - beta1) * grad; '
              'v = beta2 * v + (1 - beta2) * grad * grad; ')
_kernel = LazyKernel(
    'T grad, T alpha_t, T beta1, T beta2, T eps, T eta, T weight_decay_rate',
    'T param, T m, T v',
    _ADAM_STEP
    + 'param -= eta * (alpha_t * m / (sqrt(v) + eps) + weight_decay_rate * param);',
    'seqdbr_adam')
_amsgrad_kernel = LazyKernel(
    'T grad, T alpha_t, T beta1, T beta2, T eps, T eta, T weight_decay_rate',
    'T param, T m, T v, T vhat',
    _ADAM_STEP
    + 'vhat = (v > vhat) ? v : vhat; '
    'param -= eta * (alpha_t * m / (sqrt(vhat) + eps) + weight_decay_rate * param);',
    'seqdbr_amsgrad')


def _alpha_t(alpha, beta1, beta2, t):
    if t < 1:
        raise RuntimeError('Adam alpha_t is defined for steps t >= 1 (got t=%d); it is the '
                           'step size of the t-th update' % t)
    return alpha * math.sqrt(1.0 - beta2 ** t) / (1.0 - beta1 ** t)


class AdamRule(UpdateRule):
    """Update rule of :class:`Adam`. State: ``m``, ``v`` (and ``vhat`` with AMSGrad).

    The bias correction uses ``self.t``, the number of updates this rule has applied.
    """
    _defaults = {'alpha': 0.001, 'beta1': 0.9, 'beta2': 0.999, 'eps': 1e-8, 'eta': 1.0,
                 'weight_decay_rate': 0.0, 'amsgrad': False}

    def __init__(self, parent_hyperparam=None, alpha=None, beta1=None, beta2=None, eps=None,
                 eta=None, weight_decay_rate=None, amsgrad=None):
        super().__init__(parent_hyperparam, alpha=alpha, beta1=beta1, beta2=beta2, eps=eps,
                         eta=eta, weight_decay_rate=weight_decay_rate, amsgrad=amsgrad)

    def state_names(self):
        return ('m', 'v', 'vhat') if self.hyperparam.amsgrad else ('m', 'v')

    @property
    def alpha_t(self):
        """Bias-corrected step size of this rule's latest update (``t >= 1``)."""
        hp = self.hyperparam
        return _alpha_t(hp.alpha, hp.beta1, hp.beta2, self.t)

    def _vhat(self, array):
        vhat = self.state.get('vhat')
        if vhat is None:  # amsgrad switched on after some updates: vhat starts at 0
            vhat = self.state['vhat'] = backend.get_array_module(array).zeros_like(array)
        return vhat

    def update_core_cpu(self, array, grad):
        hp = self.hyperparam
        beta1, beta2 = hp.beta1, hp.beta2
        state = self.state
        m, v = state['m'], state['v']
        tmp = numpy.multiply(grad, 1.0 - beta1)
        m *= beta1
        m += tmp                                   # m <- beta1 m + (1 - beta1) g
        numpy.multiply(grad, grad, out=tmp)
        tmp *= 1.0 - beta2
        v *= beta2
        v += tmp                                   # v <- beta2 v + (1 - beta2) g^2
        if hp.amsgrad:
            den = self._vhat(array)
            numpy.maximum(den, v, out=den)         # vhat <- max(vhat, v)
        else:
            den = v
        numpy.sqrt(den, out=tmp)
        tmp += hp.eps
        numpy.divide(m, tmp, out=tmp)
        tmp *= _alpha_t(hp.alpha, beta1, beta2, self.t)
        wd = hp.weight_decay_rate
        if wd != 0:
            tmp += numpy.multiply(array, wd)
        eta = hp.eta
        if eta != 1:
            tmp *= eta
        array -= tmp

    def update_core_gpu(self, array, grad):
        hp = self.hyperparam
        args = (grad, _alpha_t(hp.alpha, hp.beta1, hp.beta2, self.t), hp.beta1, hp.beta2,
                hp.eps, hp.eta, hp.weight_decay_rate, array, self.state['m'], self.state['v'])
        if hp.amsgrad:
            _amsgrad_kernel(*args, self._vhat(array))
        else:
            _kernel(*args)


class Adam(GradientMethod):
    """Adam: Kingma & Ba, "Adam: a method for stochastic optimization", ICLR 2015
    (Algorithm 1, with the reordered computation of Section 2); decoupled weight decay
    (AdamW): Loshchilov & Hutter, "Decoupled weight decay regularization", ICLR 2019
    (Algorithm 2); AMSGrad: Reddi, Kale & Kumar, "On the convergence of Adam and beyond",
    ICLR 2018.

    At a parameter's ``t``-th update (``t`` counts that parameter's updates, see
    ``seqdbr.core.optimizer``), with ``m`` and ``v`` starting at 0, elementwise::

        m       <- beta1 * m + (1 - beta1) * g
        v       <- beta2 * v + (1 - beta2) * g**2
        alpha_t  = alpha * sqrt(1 - beta2**t) / (1 - beta1**t)
        theta   <- theta - eta * (alpha_t * m / (sqrt(v) + eps) + weight_decay_rate * theta)

    ``alpha_t * m / sqrt(v)`` equals ``alpha * m_hat / sqrt(v_hat)`` with the bias-corrected
    ``m_hat = m / (1 - beta1**t)`` and ``v_hat = v / (1 - beta2**t)``; ``eps`` is added to
    ``sqrt(v)`` (the "epsilon hat" of Kingma & Ba, Section 2), not to ``sqrt(v_hat)``. The
    weight decay term is decoupled from the adaptive scaling and, as in AdamW, multiplied
    by the schedule multiplier ``eta`` only, not by ``alpha``; ``weight_decay_rate=0``
    (default) gives plain Adam. PyTorch's ``AdamW(lr, weight_decay=wd)`` multiplies its
    decay by ``lr``: it corresponds to ``Adam(alpha=lr, weight_decay_rate=lr * wd)`` here.

    With ``amsgrad=True`` a running maximum ``vhat <- max(vhat, v)`` (state ``vhat``,
    starts at 0) replaces ``v`` in the denominator; ``alpha_t`` is unchanged.

    ``opt.lr`` is an alias of ``opt.alpha`` (what learning-rate schedules change).

    Args:
        alpha (float): step size (>= 0).
        beta1, beta2 (float): decay rates of the moment estimates, in [0, 1).
        eps (float): added to ``sqrt(v)`` (>= 0).
        eta (float): schedule multiplier of the whole step (>= 0).
        weight_decay_rate (float): decoupled weight decay rate (>= 0).
        amsgrad (bool): use AMSGrad's running maximum of ``v``.
    """
    _rule_class = AdamRule
    _lr_name = 'alpha'
    alpha = hyperparameter_property('alpha', 'Step size (``opt.lr`` is an alias).')
    beta1 = hyperparameter_property('beta1', 'Decay rate of the first moment.')
    beta2 = hyperparameter_property('beta2', 'Decay rate of the second moment.')
    eps = hyperparameter_property('eps', 'Added to ``sqrt(v)``.')
    eta = hyperparameter_property('eta', 'Schedule multiplier of the whole step.')
    weight_decay_rate = hyperparameter_property('weight_decay_rate',
                                                'Decoupled weight decay rate.')
    amsgrad = hyperparameter_property('amsgrad', 'Whether AMSGrad is used.')

    def __init__(self, alpha=0.001, beta1=0.9, beta2=0.999, eps=1e-8, eta=1.0,
                 weight_decay_rate=0, amsgrad=False):
        super().__init__(alpha=check_nonnegative('alpha', alpha),
                         beta1=check_unit_interval('beta1', beta1),
                         beta2=check_unit_interval('beta2', beta2),
                         eps=check_nonnegative('eps', eps),
                         eta=check_nonnegative('eta', eta),
                         weight_decay_rate=check_nonnegative('weight_decay_rate',
                                                             weight_decay_rate),
                         amsgrad=bool(amsgrad))

    @property
    def alpha_t(self):
        """Bias-corrected step size of update ``opt.t`` (needs ``t >= 1``), for a parameter
        updated at every step."""
        return _alpha_t(self.alpha, self.beta1, self.beta2, self.t)
