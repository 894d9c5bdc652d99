"""The word-level LSTM language model of Zaremba et al. 2014: ``EmbedID -> LSTM layers ->
Linear``, optionally with tied input/output embeddings (Press & Wolf 2017).

Zaremba, Sutskever & Vinyals 2014, "Recurrent Neural Network Regularization", section 3.1
and 4.1: a stack of LSTM layers over word embeddings of the same width ``H``; dropout
("non-recurrent connections only") on the embedding output, between the layers and on the
last layer's output before the softmax; every parameter initialised ``U(-s, s)``
(``s = 0.1`` small, ``0.05`` medium, ``0.04`` large). Their Torch7 code builds each LSTM
layer from two ``nn.Linear`` maps (``i2h``, ``h2h``) that both carry a bias, as PyTorch's
``nn.LSTM`` does; ``bias_pair=True`` keeps that pair (see :class:`seqdbr.links.NStepLSTM`).
It matters under SGD: the pair learns at twice the rate of one bias. On PTB "small" (13
epochs) one bias ended at test perplexity 113.4-115.3 (three seeds), the pair at
112.5-112.6 (two seeds), below the paper's 114.5 (see ``benchmarks/README.md``).

Press & Wolf 2017, "Using the Output Embedding to Improve Language Models": with
``tied=True`` the output layer's weight *is* the embedding table (``logits = h E^T + b``),
which removes ``V x H`` parameters.
"""
import collections

import numpy

import seqdbr.functions as F
import seqdbr.links as L
from seqdbr.core import initializers
from seqdbr.core.link import Chain
from seqdbr.core.variable import Parameter, Variable

__all__ = ['WordLM']


def _pos_int(name, v):
    if isinstance(v, bool) or not isinstance(v, (int, numpy.integer)) or v < 1:
        raise ValueError('WordLM: %s must be an int >= 1, got %r' % (name, v))
    return int(v)


class WordLM(Chain):
    """Word-level LSTM language model (Zaremba et al. 2014).

    Args:
        vocab_size (int): ``V``, words in the vocabulary (with ``<unk>`` and ``<eos>``).
        rnn_size (int): ``H``, hidden units per layer and embedding width (default 200).
        num_layers (int): stacked LSTM layers (default 2).
        dropout (float): in ``[0, 1)``: on the embedding output, between layers and before
            the output layer (training mode only; default 0).
        init_scale (float): every parameter starts ``U(-init_scale, init_scale)``
            (default 0.1; must be > 0).
        tied (bool): tie the output weight to the embedding table (Press & Wolf 2017).
        bias_pair (bool): two biases per LSTM layer, ``b`` and ``b_hh``, each
            ``U(-init_scale, init_scale)`` (Zaremba's and PyTorch's parameterization; the
            presets use it). Default False: one bias ``b``.

    Parameters:
        ``embed/W`` ``(V, H)``; ``rnn/<l>/W_ih`` ``(4H, H)``, ``rnn/<l>/W_hh`` ``(4H, H)``,
        ``rnn/<l>/b`` ``(4H,)`` (gate blocks ``[i|f|g|o]``, PyTorch layout, one bias per
        layer = PyTorch's ``b_ih + b_hh``), plus ``rnn/<l>/b_hh`` ``(4H,)`` with
        ``bias_pair``; ``out/W`` ``(V, H)`` (absent when tied) and
        ``out_b`` ``(V,)``.

    Call:
        ``model(x)`` with ``x`` an int array ``(B, T)`` of ids in ``[0, V)`` returns float32
        logits ``(B, T, V)``; the LSTM state left after the last step is carried to the next
        call (truncated BPTT).

    Raises:
        ValueError: bad sizes, dropout or init_scale; an input that is not a 2-d integer
            array; a batch size that differs from the carried state's.
    """

    def __init__(self, vocab_size, rnn_size=200, num_layers=2, dropout=0.0, init_scale=0.1,
                 tied=False, bias_pair=False):
        super().__init__()
        V = _pos_int('vocab_size', vocab_size)
        H = _pos_int('rnn_size', rnn_size)
        n = _pos_int('num_layers', num_layers)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) \
                or not 0 <= dropout < 1:
            raise ValueError('WordLM: dropout must be in [0, 1), got %r' % (dropout,))
        if isinstance(init_scale, bool) or not isinstance(init_scale, (int, float)) \
                or not 0 < init_scale < numpy.inf:
            raise ValueError('WordLM: init_scale must be a positive number, got %r'
                             % (init_scale,))
        self.vocab_size, self.rnn_size, self.num_layers = V, H, n
        if not isinstance(bias_pair, bool):
            raise ValueError('WordLM: bias_pair must be True or False, got %r' % (bias_pair,))
        self.dropout, self.init_scale, self.tied = float(dropout), float(init_scale), bool(tied)
        self.bias_pair = bias_pair
        u = initializers.Uniform(self.init_scale)
        with self.init_scope():
            self.embed = L.EmbedID(V, H, initialW=u)
            # between-layer dropout is NStepLSTM's own (input of layers 1..n-1)
            self.rnn = L.NStepLSTM(n, H, H, self.dropout, initialW=u, bias_pair=bias_pair)
            if not self.tied:
                self.out = L.Linear(H, V, nobias=True, initialW=u)
            self.out_b = Parameter(u, (V,))
        for layer in self.rnn:      # the biases too (NStepLSTM starts them at 0 / 1)
            u(layer.b.array)
            if bias_pair:
                u(layer.b_hh.array)
        self._h = self._c = None

    def config(self):
        """The constructor arguments (JSON-native), as stored in checkpoints."""
        return {'vocab_size': self.vocab_size, 'rnn_size': self.rnn_size,
                'num_layers': self.num_layers, 'dropout': self.dropout,
                'init_scale': self.init_scale, 'tied': self.tied, 'bias_pair': self.bias_pair}

    def count_params(self):
        return int(sum(p.array.size for _, p in self.namedparams()))

    # -- carried state (the protocol of seqdbr.rnn.lm_eval and BPTTUpdater) ---------------
    def reset_state(self):
        """Forget the carried state (the next call starts from zeros)."""
        self._h = self._c = None

    def unchain_state(self):
        """Cut the graph behind the carried state (truncated BPTT)."""
        for v in (self._h, self._c):
            if v is not None:
                v.unchain_backward()

    def get_state(self):
        """``{'h': (num_layers, B, H), 'c': same}`` arrays, or None before the first call."""
        if self._h is None:
            return None
        return {'h': self._h.array, 'c': self._c.array}

    def set_state(self, state):
        """Set the carried state from :meth:`get_state` output (None resets).

        Raises:
            ValueError: a missing ``h``/``c`` or a shape other than ``(num_layers, B, H)``.
        """
        if state is None:
            self.reset_state()
            return
        arrays = {}
        for k in ('h', 'c'):
            if k not in state:
                raise ValueError('WordLM.set_state: the LSTM state needs h and c, got keys %s'
                                 % sorted(state))
            a = state[k]
            a = a.array if isinstance(a, Variable) else a
            a = self.device.send(a).astype(self.embed.W.array.dtype, copy=False)
            if a.ndim != 3 or a.shape[0] != self.num_layers or a.shape[2] != self.rnn_size \
                    or a.shape[1] < 1:
                raise ValueError('WordLM.set_state: %s must have shape (num_layers=%d, B, '
                                 'rnn_size=%d), got %s' % (k, self.num_layers, self.rnn_size,
                                                           a.shape))
            arrays[k] = Variable(a, requires_grad=False)
        self._h, self._c = arrays['h'], arrays['c']

    def to_device(self, device):
        super().to_device(device)
        for v in (self._h, self._c):
            if v is not None:
                v.to_device(self.device)
        return self

    # -- forward ----------------------------------------------------------------------------
    def forward(self, x):
        """Logits ``(B, T, V)`` for the ids ``x`` ``(B, T)``; updates the carried state."""
        if isinstance(x, Variable):
            x = x.array
        if getattr(x, 'ndim', None) != 2 or x.dtype.kind not in 'iu':
            raise ValueError('WordLM expects a (batch, time) array of integer word ids, got %s '
                             '%s' % (getattr(x, 'dtype', type(x).__name__),
                                     getattr(x, 'shape', '')))
        B, T = x.shape
        if self._h is not None and self._h.shape[1] != B:
            raise ValueError('WordLM: the carried state has batch size %d but the input has '
                             '%d rows; call reset_state() (or set_state) first'
                             % (self._h.shape[1], B))
        e = self.embed(x)                                     # (B, T, H)
        if self.dropout:
            e = F.dropout(e, self.dropout)
        self._h, self._c, ys = self.rnn(self._h, self._c, e)  # ys (B, T, H)
        hs = ys.reshape(B * T, self.rnn_size)
        if self.dropout:
            hs = F.dropout(hs, self.dropout)
        W = self.embed.W if self.tied else self.out.W
        return F.linear(hs, W, self.out_b).reshape(B, T, self.vocab_size)

    def weights(self):
        """``OrderedDict`` parameter path (without the leading ``/``) -> Parameter."""
        return collections.OrderedDict((k.lstrip('/'), p) for k, p in
                                       sorted(self.namedparams()))
