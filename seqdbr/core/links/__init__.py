"""Ready-made links of the engine: ``Linear``, ``EmbedID``, ``LayerNormalization``, the
``Classifier`` wrapper, the ``Sequential`` container, the attention links
``MultiHeadAttention`` and ``GlobalAttention``, ``Convolution2D``, ``Convolution1D`` and
``BatchNormalization``.

Recurrent links live in ``seqdbr.rnn.links``; ``seqdbr.links`` (``L``) re-exports both.
"""
from seqdbr.core.links.linear import Linear  # noqa: F401
from seqdbr.core.links.embed_id import EmbedID  # noqa: F401
from seqdbr.core.links.classifier import Classifier  # noqa: F401
from seqdbr.core.links.attention import (AttentionMemory, GlobalAttention,  # noqa: F401
                                         MultiHeadAttention)
from seqdbr.core.links.convolution import Convolution2D, Convolution1D  # noqa: F401
from seqdbr.core.links.normalization import BatchNormalization  # noqa: F401
from seqdbr.core.links.layer_normalization import LayerNormalization  # noqa: F401
from seqdbr.core.links.sequential import Sequential  # noqa: F401

__all__ = ['Linear', 'EmbedID', 'Classifier', 'MultiHeadAttention', 'GlobalAttention',
           'AttentionMemory', 'Convolution2D', 'Convolution1D', 'BatchNormalization',
           'LayerNormalization', 'Sequential']
