"""Public face of the parameter initializers: ``seqdbr.initializers.LeCunNormal`` etc."""
from seqdbr.core.initializers import *  # noqa: F401,F403
