"""The gradient methods: one module per optimizer (rule + optimizer class)."""
from seqdbr.core.optimizers.sgd import SGD, SGDRule  # noqa: F401
from seqdbr.core.optimizers.momentum_sgd import MomentumSGD, MomentumSGDRule  # noqa: F401
from seqdbr.core.optimizers.nesterov_ag import NesterovAG, NesterovAGRule  # noqa: F401
from seqdbr.core.optimizers.ada_grad import AdaGrad, AdaGradRule  # noqa: F401
from seqdbr.core.optimizers.ada_delta import AdaDelta, AdaDeltaRule  # noqa: F401
from seqdbr.core.optimizers.adam import Adam, AdamRule  # noqa: F401
from seqdbr.core.optimizers.rmsprop import RMSprop, RMSpropRule  # noqa: F401
from seqdbr.core.optimizers.rmsprop_graves import RMSpropGraves, RMSpropGravesRule  # noqa: F401

__all__ = ['SGD', 'SGDRule', 'MomentumSGD', 'MomentumSGDRule', 'NesterovAG', 'NesterovAGRule',
           'AdaGrad', 'AdaGradRule', 'AdaDelta', 'AdaDeltaRule', 'Adam', 'AdamRule',
           'RMSprop', 'RMSpropRule', 'RMSpropGraves', 'RMSpropGravesRule']
