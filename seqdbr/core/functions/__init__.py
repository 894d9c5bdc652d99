"""Differentiable functions on Variables, one module per family.

Importing this package installs the Variable arithmetic operators.
"""
from seqdbr.core.functions.basic_math import *  # noqa: F401,F403
from seqdbr.core.functions.math import *  # noqa: F401,F403
from seqdbr.core.functions.array import *  # noqa: F401,F403
from seqdbr.core.functions.activation import *  # noqa: F401,F403
from seqdbr.core.functions.connection import *  # noqa: F401,F403
from seqdbr.core.functions.loss import *  # noqa: F401,F403
from seqdbr.core.functions.noise import *  # noqa: F401,F403
from seqdbr.core.functions.evaluation import *  # noqa: F401,F403
from seqdbr.core.functions.attention import *  # noqa: F401,F403
from seqdbr.core.functions.convolution import *  # noqa: F401,F403
from seqdbr.core.functions.pooling import *  # noqa: F401,F403
from seqdbr.core.functions.normalization import *  # noqa: F401,F403
from seqdbr.core.functions.layer_normalization import *  # noqa: F401,F403
