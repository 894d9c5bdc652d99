"""Public face of the optimizers: ``import seqdbr.optimizers as O``.

    opt = O.Adam(alpha=2e-3)
    opt.setup(model)
    opt.add_hook(O.hooks.GradientClipping(5.0))
    opt.add_hook(O.ExponentialDecay(rate=0.97, after=10))
    opt.update(lossfun, x, t)

Optimizers: SGD, MomentumSGD, NesterovAG, AdaGrad, AdaDelta, Adam, RMSprop,
RMSpropGraves. Hooks: ``hooks.WeightDecay``, ``hooks.Lasso``,
``hooks.GradientClipping``, ``hooks.GradientHardClipping``. Learning-rate
schedules: ``ExponentialDecay``, ``StepDecay``, ``WarmupCosine`` (also as ``lr_schedules``). Base
classes for new methods: ``Optimizer``, ``GradientMethod``, ``UpdateRule``,
``Hyperparameter``. See ``seqdbr.core.optimizer`` for the update protocol.
"""
from seqdbr.core import lr_schedules  # noqa: F401
from seqdbr.core import optimizer_hooks as hooks  # noqa: F401
from seqdbr.core.lr_schedules import (ExponentialDecay, LRSchedule, StepDecay,  # noqa: F401
                                       WarmupCosine)
from seqdbr.core.optimizer import (GradientMethod, Hyperparameter, Optimizer,  # noqa: F401
                                   UpdateRule)
from seqdbr.core.optimizers import *  # noqa: F401,F403
from seqdbr.core.optimizers import __all__ as _rules_all

__all__ = ['hooks', 'lr_schedules', 'ExponentialDecay', 'StepDecay', 'WarmupCosine', 'LRSchedule',
           'Optimizer', 'GradientMethod', 'UpdateRule', 'Hyperparameter'] + list(_rules_all)
