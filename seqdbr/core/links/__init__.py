"""Ready-made links of the engine: ``Linear``, ``EmbedID``, ``LayerNormalization``, the
``Classifier`` wrapper and the ``Sequential`` container.

Recurrent links live in ``seqdbr.rnn.links``; ``seqdbr.links`` (``L``) re-exports both.
"""
from seqdbr.core.links.linear import Linear  # noqa: F401
from seqdbr.core.links.embed_id import EmbedID  # noqa: F401
from seqdbr.core.links.classifier import Classifier  # noqa: F401
from seqdbr.core.links.layer_normalization import LayerNormalization  # noqa: F401
from seqdbr.core.links.sequential import Sequential  # noqa: F401

__all__ = ['Linear', 'EmbedID', 'Classifier', 'LayerNormalization', 'Sequential']
