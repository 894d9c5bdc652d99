"""Public face of every differentiable function: ``import seqdbr.functions as F``."""
from seqdbr.core.functions import *  # noqa: F401,F403
from seqdbr.rnn.functions import *  # noqa: F401,F403
