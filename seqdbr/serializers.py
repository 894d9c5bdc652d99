"""Public face of the npz serializers: ``seqdbr.serializers.save_npz`` / ``load_npz``."""
from seqdbr.core.serializers import *  # noqa: F401,F403
