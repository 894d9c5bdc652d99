"""Public face of every link: ``import seqdbr.links as L``.

``L.Link``, ``L.Chain``, ``L.ChainList`` (base classes), ``L.Linear``, ``L.EmbedID``,
``L.LayerNormalization``, ``L.Classifier``, ``L.Sequential``, the attention links
``L.MultiHeadAttention`` and ``L.GlobalAttention``, ``L.Convolution2D``, ``L.Convolution1D``,
``L.BatchNormalization``, and the recurrent links of
``seqdbr.rnn.links``.
"""
from seqdbr.core.link import Link, Chain, ChainList  # noqa: F401
from seqdbr.core.links import *  # noqa: F401,F403
from seqdbr.rnn.links import *  # noqa: F401,F403
