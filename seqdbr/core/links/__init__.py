"""Ready-made links of the engine: ``Linear``, ``EmbedID``, the ``Classifier`` wrapper and the
attention links ``MultiHeadAttention`` and ``GlobalAttention``.

Recurrent links live in ``seqdbr.rnn.links``; ``seqdbr.links`` (``L``) re-exports both.
"""
from seqdbr.core.links.linear import Linear  # noqa: F401
from seqdbr.core.links.embed_id import EmbedID  # noqa: F401
from seqdbr.core.links.classifier import Classifier  # noqa: F401
from seqdbr.core.links.attention import (AttentionMemory, GlobalAttention,  # noqa: F401
                                         MultiHeadAttention)

__all__ = ['Linear', 'EmbedID', 'Classifier', 'MultiHeadAttention', 'GlobalAttention',
           'AttentionMemory']
