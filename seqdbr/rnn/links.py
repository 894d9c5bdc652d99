"""Recurrent links, re-exported by ``seqdbr.links`` (``L``).

Stepwise (one time step per call):

* :class:`LSTM` -- stateful LSTM (Chainer semantics), :class:`StatelessLSTM`;
* :class:`GRU` (stateless, alias :class:`StatelessGRU`), :class:`StatefulGRU`.

Whole window (all time steps of a batch of variable-length sequences in one call, the fast
path for training):

* :class:`NStepLSTM`, :class:`NStepBiLSTM`, :class:`NStepGRU`, :class:`NStepBiGRU`,
  :class:`NStepRNNTanh`, :class:`NStepRNNReLU`, :class:`NStepBiRNNTanh`,
  :class:`NStepBiRNNReLU` (plain Elman RNNs, one bias ``b`` per layer like the LSTM).

Parameter layout (PyTorch/cuDNN weight layout; gate blocks ``[i | f | g | o]`` for the
LSTM and ``[r | z | n]`` for the GRU, ``H = out_size``)::

    stepwise LSTM / StatelessLSTM     n-step layer k (child '/k' of NStepLSTM)
      upward.W   (4H, in)        <->    W_ih (4H, in_k)
      lateral.W  (4H, H)         <->    W_hh (4H, H)
      upward.b   (4H,)           <->    b    (4H,)
    stepwise GRU / StatefulGRU
      upward.W, upward.b         <->    W_ih (3H, in_k), b_ih (3H,)
      lateral.W, lateral.b       <->    W_hh (3H, H),    b_hh (3H,)

The mapping is one to one, so the two kinds of links are the same model with the same
training dynamics: an LSTM has ONE bias per layer (as Chainer's ``LSTM``, whose lateral
Linear has none). cuDNN/PyTorch LSTMs carry two, ``b_ih`` and ``b_hh``, which always receive
the same gradient (a redundant pair that doubles the bias learning rate); import such
weights with ``b = b_ih + b_hh``, or build the n-step link with ``bias_pair=True`` to keep
the pair and train as they do (the stepwise copy then gets the sum). The GRU needs both
biases (the reset gate multiplies ``h W_hn^T + b_hn``), and both link kinds have them.

``NStepLSTM.copy_to_stepwise(links)`` / ``copy_from_stepwise(links)`` (and the GRU
equivalents) apply this mapping, so a model trained with the fast n-step links can be
sampled one character at a time with the stepwise ones (or the other way round).

Batches may shrink between steps of the stepwise links (sequences sorted by decreasing
length end one after another): the state keeps all ``B`` rows, the rows of the sequences
that ended pass through unchanged, and the output has the active rows only.
"""
import numpy

from seqdbr.core import backend
from seqdbr.core import initializers
from seqdbr.core.functions.array import concat
from seqdbr.core.functions.connection import check_ids, embed_id
from seqdbr.core.link import ChainList, Chain, Link
from seqdbr.core.links.linear import Linear
from seqdbr.core.variable import Parameter, Variable, as_variable
from seqdbr.rnn.embed_project import embed_project
from seqdbr.rnn.gru import gru_cell
from seqdbr.rnn.lstm import lstm
from seqdbr.rnn.n_step import (n_step_lstm, n_step_bilstm, n_step_gru, n_step_bigru,
                               n_step_rnn, n_step_birnn)

__all__ = ['LSTM', 'StatelessLSTM', 'GRU', 'StatelessGRU', 'StatefulGRU',
           'NStepLSTM', 'NStepBiLSTM', 'NStepGRU', 'NStepBiGRU', 'NStepRNNTanh', 'NStepRNNReLU',
           'NStepBiRNNTanh', 'NStepBiRNNReLU']


def _check_size(cls, name, v, allow_none=False):
    if v is None and allow_none:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, numpy.integer)) or v <= 0:
        raise ValueError('%s: %s must be a positive int%s, got %r'
                         % (cls, name, ' or None (inferred on the first call)' if allow_none
                            else '', v))
    return int(v)


def _sizes(cls, in_size, out_size):
    """Chainer convention: ``Link(out)`` and ``Link(None, out)`` mean a lazy ``in_size``."""
    if out_size is None:
        in_size, out_size = None, in_size
    return _check_size(cls, 'in_size', in_size, True), _check_size(cls, 'out_size', out_size)


def _lstm_bias(H, forget_bias, bias):
    b = numpy.full(4 * H, bias, dtype=numpy.float32)
    b[H:2 * H] = forget_bias
    return b


def _rows(v, n):
    """The first ``n`` rows of Variable ``v`` (``v`` itself when it has exactly ``n``)."""
    return v if v.shape[0] == n else v[:n]


def _as_state(cls, name, v, H, xp):
    if v is None:
        return None
    v = as_variable(v)
    a = v.array
    if a.ndim != 2 or a.shape[1] != H:
        raise ValueError('%s: %s must have shape (B, %d), got %s' % (cls, name, H, a.shape))
    if backend.get_array_module(a) is not xp:
        raise TypeError('%s: %s is a %s but the link lives on %s; move it first (e.g. '
                        'seqdbr.to_device)' % (cls, name, type(a).__name__, xp.__name__))
    return v


def _check_batch(cls, x, B):
    if x.shape[0] > B:
        raise ValueError('%s: x has %d rows but the state has %d (x shape %s); the batch may '
                         'shrink between steps but never grow: call reset_state() (or pass a '
                         'state of %d rows) to start a larger batch'
                         % (cls, x.shape[0], B, x.shape, x.shape[0]))


# -- stepwise LSTM -----------------------------------------------------------------------------

class _LSTMBase(Chain):
    def __init__(self, in_size, out_size=None, lateral_init=None, upward_init=None,
                 bias_init=0.0, forget_bias_init=1.0):
        super().__init__()
        in_size, out_size = _sizes(type(self).__name__, in_size, out_size)
        self.state_size = out_size
        H = out_size
        with self.init_scope():
            self.upward = Linear(in_size, 4 * H, initialW=upward_init,
                                 initial_bias=_lstm_bias(H, forget_bias_init, bias_init))
            self.lateral = Linear(H, 4 * H, initialW=lateral_init, nobias=True)

    def _step(self, c, h, x):
        """One step from state ``(c, h)`` (Variables of B rows or None) -> (c_new, y, h_new)."""
        H = self.state_size
        name = type(self).__name__
        x = as_variable(x)
        if x.ndim != 2:
            raise ValueError('%s: x must be 2-d (B, in_size), got shape %s' % (name, x.shape))
        Bx = x.shape[0]
        lstm_in = self.upward(x)
        if c is None and h is None:
            c = Variable(self.xp.zeros((Bx, H), dtype=lstm_in.dtype), requires_grad=False)
        elif c is None:
            c = Variable(self.xp.zeros(h.shape, dtype=h.dtype), requires_grad=False)
        if h is not None:
            if h.shape != c.shape:
                raise ValueError('%s: c has shape %s but h has shape %s; they must match'
                                 % (name, c.shape, h.shape))
            _check_batch(name, x, h.shape[0])
            lstm_in = lstm_in + self.lateral(_rows(h, Bx))
        else:
            _check_batch(name, x, c.shape[0])
        c_new, y = lstm(c, lstm_in)
        B = c.shape[0]
        if Bx == B:
            h_new = y
        elif h is None:
            rest = Variable(self.xp.zeros((B - Bx, H), dtype=y.dtype), requires_grad=False)
            h_new = concat([y, rest], axis=0)
        else:
            h_new = concat([y, h[Bx:]], axis=0)
        return c_new, y, h_new

    def repr_args(self):
        return 'in_size=%s, out_size=%d' % (self.upward.in_size, self.state_size)


class LSTM(_LSTMBase):
    """Stateful LSTM layer: one time step per call, the state kept in the link.

    Equations (Hochreiter & Schmidhuber 1997 with the forget gate of Gers et al. 2000)::

        a = upward(x) + lateral(h)          # (B, 4H), blocks [i | f | g | o]
        c, y = lstm(c, a)                   # see seqdbr.functions.lstm
        h = y

    ``LSTM(out_size)`` or ``LSTM(None, out_size)`` infer ``in_size`` on the first call.

    Args:
        in_size (int or None): input features (None: lazy).
        out_size (int): hidden units ``H``.
        lateral_init, upward_init: initializer specs of ``lateral.W`` (4H, H) and
            ``upward.W`` (4H, in) (default LeCun normal).
        bias_init (float): initial value of the i, g and o biases (default 0).
        forget_bias_init (float): initial forget-gate bias (default 1, so the cell
            remembers at the start of training; Gers et al. 2000, Jozefowicz et al. 2015).

    Parameters:
        ``upward`` (Linear in -> 4H, bias ``(4H,)``), ``lateral`` (Linear H -> 4H, no bias).

    Attributes:
        c, h (Variable or None): the state ``(B, H)``; None after :meth:`reset_state`.

    Call:
        ``x`` ``(B', in_size)`` -> ``y`` ``(B', H)``. ``B'`` may be smaller than the ``B`` of
        the current state (shrinking batch, sequences sorted by decreasing length): rows
        ``B'..B-1`` of ``c`` and ``h`` are kept unchanged and ``y`` holds the active rows.

    Raises:
        ValueError: non-2-d ``x``, more rows than the state, or bad sizes.
    """

    def __init__(self, in_size, out_size=None, lateral_init=None, upward_init=None,
                 bias_init=0.0, forget_bias_init=1.0):
        super().__init__(in_size, out_size, lateral_init, upward_init, bias_init,
                         forget_bias_init)
        self.reset_state()

    def reset_state(self):
        """Forget the state (next call starts from zeros)."""
        self.c = None
        self.h = None

    def set_state(self, c, h):
        """Set the state: ``c`` and ``h`` Variables or arrays of shape ``(B, H)`` (either may
        be None, meaning zeros of the other's shape). Arrays become constants (no gradient).
        """
        H = self.state_size
        c = _as_state('LSTM', 'c', c, H, self.xp)
        h = _as_state('LSTM', 'h', h, H, self.xp)
        if c is not None and h is not None and c.shape != h.shape:
            raise ValueError('LSTM.set_state: c has shape %s but h has shape %s; they must match'
                             % (c.shape, h.shape))
        self.c = c
        self.h = h

    def _on_device_change(self, device):
        """Move the carried state along with the parameters (called by ``to_device`` of this
        link or of any parent)."""
        for v in (self.c, self.h):
            if v is not None:
                v.to_device(device)

    def forward(self, x):
        self.c, y, self.h = self._step(self.c, self.h, x)
        return y


class StatelessLSTM(_LSTMBase):
    """LSTM layer whose state is passed in and returned (same parameters as :class:`LSTM`).

    Call:
        ``forward(c, h, x) -> (c_new, h_new)``: ``c``, ``h`` ``(B, H)`` Variables/arrays or None
        (zeros); ``x`` ``(B', in_size)`` with ``B' <= B``. Both results have ``B`` rows; rows
        ``B'..B-1`` are the old state, so the output of the active sequences is
        ``h_new[:B']``.
    """

    def forward(self, c, h, x):
        H = self.state_size
        c = _as_state('StatelessLSTM', 'c', c, H, self.xp)
        h = _as_state('StatelessLSTM', 'h', h, H, self.xp)
        c_new, _, h_new = self._step(c, h, x)
        return c_new, h_new


# -- stepwise GRU ------------------------------------------------------------------------------

class GRU(Chain):
    """Stateless GRU layer (cuDNN/PyTorch variant; alias ``StatelessGRU``).

    Equations (Cho et al. 2014; the reset gate multiplies the hidden projection including
    its bias, as in cuDNN and ``torch.nn.GRU``)::

        gi = upward(x)   = x W_ih^T + b_ih     # (B, 3H), blocks [r | z | n]
        gh = lateral(h)  = h W_hh^T + b_hh
        h' = gru_cell(h, gi, gh)               # see seqdbr.functions.gru_cell

    Args:
        in_size (int or None): input features (``GRU(out)`` / ``GRU(None, out)``: lazy).
        out_size (int): hidden units ``H``.
        init, inner_init: initializer specs of ``upward.W`` and ``lateral.W``.
        bias_init (float): initial value of both biases (default 0).

    Call:
        ``forward(h, x) -> h_new``: ``h`` ``(B, H)`` or None (zeros), ``x`` ``(B', in_size)``
        with ``B' <= B``; ``h_new`` has ``B`` rows (rows ``B'..`` unchanged).
    """

    def __init__(self, in_size, out_size=None, init=None, inner_init=None, bias_init=0.0):
        super().__init__()
        in_size, out_size = _sizes(type(self).__name__, in_size, out_size)
        self.state_size = out_size
        H = out_size
        with self.init_scope():
            self.upward = Linear(in_size, 3 * H, initialW=init, initial_bias=bias_init)
            self.lateral = Linear(H, 3 * H, initialW=inner_init, initial_bias=bias_init)

    def _step(self, h, x):
        name = type(self).__name__
        x = as_variable(x)
        if x.ndim != 2:
            raise ValueError('%s: x must be 2-d (B, in_size), got shape %s' % (name, x.shape))
        Bx = x.shape[0]
        gi = self.upward(x)
        if h is None:
            h = Variable(self.xp.zeros((Bx, self.state_size), dtype=gi.dtype),
                         requires_grad=False)
        _check_batch(name, x, h.shape[0])
        gh = self.lateral(_rows(h, Bx))
        return gru_cell(h, gi, gh)

    def forward(self, h, x):
        h = _as_state(type(self).__name__, 'h', h, self.state_size, self.xp)
        return self._step(h, x)

    def repr_args(self):
        return 'in_size=%s, out_size=%d' % (self.upward.in_size, self.state_size)


StatelessGRU = GRU


class StatefulGRU(GRU):
    """GRU layer that keeps its state (see :class:`GRU` for the equations and arguments).

    Call:
        ``x`` ``(B', in_size)`` -> ``y`` ``(B', H)``: the new state of the active rows. The
        state ``h`` keeps ``B`` rows; rows ``B'..B-1`` pass through unchanged.
    """

    def __init__(self, in_size, out_size=None, init=None, inner_init=None, bias_init=0.0):
        super().__init__(in_size, out_size, init, inner_init, bias_init)
        self.reset_state()

    def reset_state(self):
        """Forget the state (next call starts from zeros)."""
        self.h = None

    def set_state(self, h):
        """Set the state ``h`` (Variable or array ``(B, H)``; arrays become constants)."""
        self.h = _as_state('StatefulGRU', 'h', h, self.state_size, self.xp)

    def _on_device_change(self, device):
        """Move the carried state along with the parameters."""
        if self.h is not None:
            self.h.to_device(device)

    def forward(self, x):
        h_new = self._step(self.h, x)
        self.h = h_new
        Bx = x.shape[0]
        return h_new if Bx == h_new.shape[0] else h_new[:Bx]


# -- n-step links --------------------------------------------------------------------------------

class _RNNLayerParams(Link):
    """Parameters of one layer/direction of an n-step link: ``W_ih``, ``W_hh`` and the bias
    ``b`` (LSTM, RNN; plus ``b_hh`` with ``bias_pair``) or ``b_ih``, ``b_hh`` (GRU), PyTorch
    layout."""

    def __init__(self, gates, in_size, out_size, initialW, initial_bias, initial_bias_h,
                 project=True, bias_pair=False):
        super().__init__()
        G = gates * out_size
        with self.init_scope():
            if project:
                self.W_ih = Parameter(initializers.get_initializer(initialW),
                                      None if in_size is None else (G, in_size))
            else:
                self.W_ih = None
            self.W_hh = Parameter(initializers.get_initializer(initialW), (G, out_size))
            if gates != 3:
                self.b = Parameter(initializers.get_initializer(initial_bias), (G,))
                if bias_pair:   # starts at 0, so b + b_hh is the requested initial bias
                    self.b_hh = Parameter(initializers.get_initializer(0.0), (G,))
            else:
                self.b_ih = Parameter(initializers.get_initializer(initial_bias), (G,))
                self.b_hh = Parameter(initializers.get_initializer(initial_bias_h), (G,))


class _NStepRNNBase(ChainList):
    _gates = 4
    _bi = False
    _fn = None

    def __init__(self, n_layers, in_size, out_size, dropout, initialW=None, initial_bias=None,
                 forget_bias=None, project_input=True, bias_pair=False):
        name = type(self).__name__
        super().__init__()
        if not isinstance(bias_pair, bool):
            raise TypeError('%s: bias_pair must be True or False, got %r' % (name, bias_pair))
        self.bias_pair = bias_pair and self._gates != 3     # a GRU always has both
        n_layers = _check_size(name, 'n_layers', n_layers)
        in_size = _check_size(name, 'in_size', in_size, True)
        out_size = _check_size(name, 'out_size', out_size)
        self.project_input = bool(project_input)
        if not project_input:
            if self._bi:
                raise ValueError('%s: project_input=False needs a unidirectional link' % name)
            G = self._gates * out_size
            if in_size not in (None, G):
                raise ValueError('%s: with project_input=False the inputs are the layer-0 '
                                 'pre-activations, so in_size must be None or %d * out_size = '
                                 '%d, got %d' % (name, self._gates, G, in_size))
            in_size = G
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or \
                not 0 <= dropout < 1:
            raise ValueError('%s: dropout must be a number in [0, 1), got %r' % (name, dropout))
        self.n_layers = n_layers
        self.in_size = in_size
        self.out_size = out_size
        self.dropout = float(dropout)
        D = 2 if self._bi else 1
        H = out_size
        for k in range(n_layers * D):
            layer_in = in_size if k < D else D * H
            if self._gates == 4:
                b = numpy.full(4 * H, 0.0 if initial_bias is None else initial_bias,
                               dtype=numpy.float32)
                b[H:2 * H] = 1.0 if forget_bias is None else forget_bias
                bh = 0.0
            elif self._gates == 3:
                b = bh = 0.0 if initial_bias is None else initial_bias
            else:
                b, bh = 0.0 if initial_bias is None else initial_bias, None
            self.append(_RNNLayerParams(self._gates, layer_in, H, initialW, b, bh,
                                        project=k > 0 or self.project_input,
                                        bias_pair=self.bias_pair))

    def _weights(self, xs):
        if self[0].W_ih is not None and self[0].W_ih.array is None:
            x0 = xs[0] if isinstance(xs, (list, tuple)) else xs
            in_size = x0.shape[-1]
            self[0].W_ih.initialize((self._gates * self.out_size, in_size), device=self._device)
            if self._bi:
                self[1].W_ih.initialize((self._gates * self.out_size, in_size), device=self._device)
            self.in_size = int(in_size)
        ws = [[p.W_ih, p.W_hh] for p in self]
        if self.bias_pair:
            bs = [[p.b, p.b_hh] for p in self]
        elif self._gates != 3:  # one bias per layer; the function's b_hh slot gets zeros
            zero = self.xp.zeros(self[0].b.array.shape, dtype=self[0].b.array.dtype)
            bs = [[p.b, zero] for p in self]
        else:
            bs = [[p.b_ih, p.b_hh] for p in self]
        return ws, bs

    def _embedded(self, ids, W_embed):
        """``(xs, ws, bs)`` for ``forward_embed``: the layer-0 inputs ``W_embed[ids]``, or, for
        a unidirectional link that projects its input, their projections ``W_embed[ids]
        W_ih^T`` computed by :func:`seqdbr.rnn.embed_project.embed_project` (with ``W_ih``
        of layer 0 then passed as None)."""
        name = type(self).__name__
        ia = ids.array if isinstance(ids, Variable) else ids
        if getattr(ia, 'ndim', None) != 2 or ia.dtype.kind not in 'iu':
            raise ValueError('%s.forward_embed: ids must be a (B, T) integer array, got %s %s'
                             % (name, getattr(ia, 'dtype', type(ia).__name__),
                                getattr(ia, 'shape', '')))
        Wa = W_embed.array if isinstance(W_embed, Variable) else W_embed
        if getattr(Wa, 'ndim', None) != 2:
            raise ValueError('%s.forward_embed: W_embed must be a 2-d (V, in_size) table, got '
                             'shape %s' % (name, getattr(Wa, 'shape', None)))
        if self._bi or not self.project_input:
            xs = embed_id(ids, W_embed)
            ws, bs = self._weights(xs)
            return xs, ws, bs
        if self[0].W_ih.array is None:
            # validate the ids before the lazy W_ih is fixed to W_embed's width
            check_ids(ia, Wa.shape[0])
            self[0].W_ih.initialize((self._gates * self.out_size, Wa.shape[1]), device=self._device)
            self.in_size = int(Wa.shape[1])
        elif Wa.shape[1] != self[0].W_ih.array.shape[1]:
            raise ValueError('%s.forward_embed: W_embed has %d columns but layer 0 takes '
                             'in_size=%d inputs' % (name, Wa.shape[1],
                                                    self[0].W_ih.array.shape[1]))
        ws, bs = self._weights(None)
        xs = embed_project(ids, W_embed, ws[0][0])
        ws[0] = [None, ws[0][1]]
        return xs, ws, bs

    def serialize(self, serializer):
        super().serialize(serializer)
        if self[0].W_ih is not None and self[0].W_ih.array is not None:
            self.in_size = int(self[0].W_ih.array.shape[1])

    def repr_args(self):
        return 'n_layers=%d, in_size=%s, out_size=%d, dropout=%s' % (
            self.n_layers, self.in_size, self.out_size, self.dropout)

    def _stepwise_check(self, links, cls):
        name = type(self).__name__
        if self._bi:
            raise TypeError('%s: a bidirectional link has no stepwise equivalent' % name)
        if not self.project_input:
            raise TypeError('%s: built with project_input=False (no W_ih in layer 0), so it has '
                            'no stepwise equivalent' % name)
        links = list(links)
        if len(links) != self.n_layers:
            raise ValueError('%s: need %d stepwise links (one per layer), got %d'
                             % (name, self.n_layers, len(links)))
        for i, link in enumerate(links):
            if not isinstance(link, cls) or link.state_size != self.out_size:
                raise TypeError('%s: stepwise link %d must be a %s of out_size %d, got %r'
                                % (name, i, cls.__name__, self.out_size, link))
        return links


def _copy_into(dst, src, what):
    """Copy array ``src`` into Parameter ``dst`` (initializing a lazy one)."""
    src = src.array if isinstance(src, Variable) else src
    if dst.array is None:
        dst.initialize(src.shape, device=backend.get_device_from_array(src))
    if dst.array.shape != src.shape:
        raise ValueError('cannot copy %s: shapes %s and %s differ' % (what, src.shape,
                                                                        dst.array.shape))
    dst.array[...] = src


class NStepLSTM(_NStepRNNBase):
    """Multi-layer LSTM over whole windows of variable-length sequences (fast path).

    Runs :func:`seqdbr.functions.n_step_lstm` with this link's weights: one function node per
    layer for the whole window, inputs sorted and packed internally.

    Args:
        n_layers (int): stacked layers.
        in_size (int or None): input features (None: inferred on the first call).
        out_size (int): hidden units ``H``.
        dropout (float): dropout ratio between layers (see ``n_step_lstm``).
        initialW: initializer spec for all weights (default LeCun normal, fan-in = columns).
        initial_bias (float): initial value of the i, g, o entries of ``b`` (default 0).
        forget_bias (float): initial forget-gate entries of ``b`` (default 1, as in
            :class:`LSTM`).
        project_input (bool): False drops ``W_ih`` of layer 0: the inputs must then already be
            the layer-0 pre-activations ``x W_ih^T`` (``4H`` features), e.g. rows of an
            ``EmbedID(V, 4 * H)`` table, which folds the embedding and the input projection of
            layer 0 into one lookup and saves three of the six big matmuls of that layer
            (mathematically the same family of models: ``E W_ih^T`` is just a ``(V, 4H)``
            matrix). Unidirectional links only; ``in_size`` must be None or ``4H``.
        bias_pair (bool): also give every layer a second bias ``b_hh`` ``(4H,)`` (starting
            at 0), as PyTorch's ``nn.LSTM``, cuDNN and Zaremba et al.'s Torch7 code (whose
            ``i2h`` and ``h2h`` Linears both have a bias) do. The function is the same
            (``b + b_hh`` enters once), but the two always get the same gradient, so under
            SGD the bias learns at twice the rate and gradient clipping counts its gradient
            twice; reproducing those models' training needs it (the word-LM presets use it).
            Default False: one bias, as Chainer and TensorFlow.

    Parameters:
        child ``k`` (``'/k/W_ih'``, ``'/k/W_hh'``, ``'/k/b'``; ``'/k/b_hh'`` with
        ``bias_pair``): layer ``k`` in the PyTorch weight layout (``W_ih`` ``(4H, in_k)``,
        ``W_hh`` ``(4H, H)``) with one bias ``b`` ``(4H,)`` (PyTorch's ``b_ih + b_hh``, or
        its ``b_ih`` with ``bias_pair``); see the module docstring for the mapping to the
        stepwise :class:`LSTM`.

    Call:
        ``forward(hx, cx, xs) -> (hy, cy, ys)``: ``hx``, ``cx`` ``(n_layers, B, H)`` or None
        (zeros); ``xs`` a list of ``B`` arrays ``(T_i, in_size)`` (any order and lengths) or
        one ``(B, T, in_size)`` array; ``ys`` a list of ``(T_i, H)`` (or one ``(B, T, H)``).
        ``forward_embed(hx, cx, ids, W_embed)``: the same for token ids ``(B, T)`` embedded by
        the table ``W_embed``, with the embedding and layer 0's input projection done as one
        lookup (faster; same function).
    """
    _gates = 4
    _fn = staticmethod(n_step_lstm)

    def forward(self, hx, cx, xs):
        ws, bs = self._weights(xs)
        return self._fn(self.n_layers, self.dropout, hx, cx, ws, bs, xs)

    def forward_embed(self, hx, cx, ids, W_embed):
        """``forward(hx, cx, F.embed_id(ids, W_embed))`` for token ids, computed faster.

        For a unidirectional link with ``project_input`` the embedding and the input
        projection of layer 0 become one lookup in ``W_embed W_ih^T``
        (:func:`seqdbr.rnn.embed_project.embed_project`): the same function and gradients
        (``W_embed`` and ``W_ih`` stay separate parameters), with three of layer 0's six big
        matmuls replaced by ``V``-row ones when ``V < B*T``.

        Args:
            hx, cx: as :meth:`forward`.
            ids (array): ``(B, T)`` integer ids in ``[0, V)``.
            W_embed (Parameter or array): the embedding table ``(V, in_size)``, e.g.
                ``EmbedID.W``.

        Returns:
            ``(hy, cy, ys)`` with ``ys`` one ``(B, T, H)`` Variable (``(B, T, 2H)`` for
            :class:`NStepBiLSTM`, which embeds and then runs :meth:`forward`).

        Raises:
            ValueError: ids not 2-d integer, W_embed not 2-d or of the wrong width.
            IndexError: ids outside ``[0, V)``.
        """
        xs, ws, bs = self._embedded(ids, W_embed)
        return self._fn(self.n_layers, self.dropout, hx, cx, ws, bs, xs)

    def copy_to_stepwise(self, links):
        """Copy the weights into stepwise :class:`LSTM`/:class:`StatelessLSTM` links (one per
        layer): ``upward.W = W_ih``, ``lateral.W = W_hh``, ``upward.b = b`` (``b + b_hh``
        with ``bias_pair``)."""
        for p, link in zip(self, self._stepwise_check(links, _LSTMBase)):
            _copy_into(link.upward.W, p.W_ih, 'W_ih -> upward.W')
            _copy_into(link.lateral.W, p.W_hh, 'W_hh -> lateral.W')
            _copy_into(link.upward.b, p.b.array + p.b_hh.array if self.bias_pair else p.b,
                       'b -> upward.b')

    def copy_from_stepwise(self, links):
        """Copy the weights of stepwise LSTM links (one per layer) into this link:
        ``W_ih = upward.W``, ``W_hh = lateral.W``, ``b = upward.b`` (and ``b_hh = 0`` with
        ``bias_pair``)."""
        for p, link in zip(self, self._stepwise_check(links, _LSTMBase)):
            _copy_into(p.W_ih, link.upward.W, 'upward.W -> W_ih')
            _copy_into(p.W_hh, link.lateral.W, 'lateral.W -> W_hh')
            _copy_into(p.b, link.upward.b, 'upward.b -> b')
            if self.bias_pair:
                p.b_hh.array[...] = 0


class NStepBiLSTM(NStepLSTM):
    """Bidirectional :class:`NStepLSTM` (:func:`seqdbr.functions.n_step_bilstm`): child
    ``2 * layer + direction``; ``hx``/``cx``/``hy``/``cy`` have ``2 * n_layers`` rows and
    ``ys`` ``2H`` features ``[forward | backward]``."""
    _bi = True
    _fn = staticmethod(n_step_bilstm)


class NStepGRU(_NStepRNNBase):
    """Multi-layer GRU over whole windows (:func:`seqdbr.functions.n_step_gru`).

    Args: as :class:`NStepLSTM` (no ``forget_bias``; ``project_input=False`` expects ``3H``
    input features); ``initial_bias`` sets both biases.

    Parameters:
        child ``k``: ``W_ih`` ``(3H, in_k)``, ``W_hh`` ``(3H, H)``, ``b_ih``, ``b_hh`` ``(3H,)``,
        gate blocks ``[r | z | n]`` (PyTorch layout; identical to the stepwise :class:`GRU`'s
        ``upward``/``lateral`` Linear weights and biases).

    Call:
        ``forward(hx, xs) -> (hy, ys)``; ``forward_embed(hx, ids, W_embed) -> (hy, ys)``.
    """
    _gates = 3
    _fn = staticmethod(n_step_gru)

    def __init__(self, n_layers, in_size, out_size, dropout, initialW=None, initial_bias=None,
                 project_input=True):
        super().__init__(n_layers, in_size, out_size, dropout, initialW, initial_bias,
                         project_input=project_input)

    def forward(self, hx, xs):
        ws, bs = self._weights(xs)
        return self._fn(self.n_layers, self.dropout, hx, ws, bs, xs)

    def forward_embed(self, hx, ids, W_embed):
        """``forward(hx, F.embed_id(ids, W_embed))``, computed as in
        :meth:`NStepLSTM.forward_embed`; returns ``(hy, ys)``."""
        xs, ws, bs = self._embedded(ids, W_embed)
        return self._fn(self.n_layers, self.dropout, hx, ws, bs, xs)

    def copy_to_stepwise(self, links):
        """Copy the weights into stepwise :class:`GRU`/:class:`StatefulGRU` links (one per
        layer): ``upward.W/b = W_ih/b_ih``, ``lateral.W/b = W_hh/b_hh``."""
        for p, link in zip(self, self._stepwise_check(links, GRU)):
            _copy_into(link.upward.W, p.W_ih, 'W_ih -> upward.W')
            _copy_into(link.upward.b, p.b_ih, 'b_ih -> upward.b')
            _copy_into(link.lateral.W, p.W_hh, 'W_hh -> lateral.W')
            _copy_into(link.lateral.b, p.b_hh, 'b_hh -> lateral.b')

    def copy_from_stepwise(self, links):
        """Copy the weights of stepwise GRU links (one per layer) into this link."""
        for p, link in zip(self, self._stepwise_check(links, GRU)):
            _copy_into(p.W_ih, link.upward.W, 'upward.W -> W_ih')
            _copy_into(p.b_ih, link.upward.b, 'upward.b -> b_ih')
            _copy_into(p.W_hh, link.lateral.W, 'lateral.W -> W_hh')
            _copy_into(p.b_hh, link.lateral.b, 'lateral.b -> b_hh')


class NStepBiGRU(NStepGRU):
    """Bidirectional :class:`NStepGRU` (:func:`seqdbr.functions.n_step_bigru`)."""
    _bi = True
    _fn = staticmethod(n_step_bigru)


class NStepRNNTanh(_NStepRNNBase):
    """Multi-layer Elman RNN ``h_t = tanh(x_t W_ih^T + h_{t-1} W_hh^T + b)`` over whole
    windows (:func:`seqdbr.functions.n_step_rnn`, the fused path of :class:`NStepLSTM`).

    Args: as :class:`NStepLSTM` without ``forget_bias``; ``project_input=False`` expects
    ``H`` input features (the layer-0 pre-activations); ``bias_pair`` adds ``b_hh`` ``(H,)``
    as there.

    Parameters:
        child ``k``: ``W_ih`` ``(H, in_k)``, ``W_hh`` ``(H, H)``, one bias ``b`` ``(H,)``
        (PyTorch's ``nn.RNN`` has ``b_ih + b_hh``; import with their sum).

    Call:
        ``forward(hx, xs) -> (hy, ys)``; ``forward_embed(hx, ids, W_embed) -> (hy, ys)``,
        shapes as :class:`NStepGRU`.
    """
    _gates = 1
    _activation = 'tanh'
    _fn = staticmethod(n_step_rnn)

    def __init__(self, n_layers, in_size, out_size, dropout, initialW=None, initial_bias=None,
                 project_input=True, bias_pair=False):
        super().__init__(n_layers, in_size, out_size, dropout, initialW, initial_bias,
                         project_input=project_input, bias_pair=bias_pair)

    def forward(self, hx, xs):
        ws, bs = self._weights(xs)
        return self._fn(self.n_layers, self.dropout, hx, ws, bs, xs, self._activation)

    def forward_embed(self, hx, ids, W_embed):
        """``forward(hx, F.embed_id(ids, W_embed))``, computed as in
        :meth:`NStepLSTM.forward_embed`; returns ``(hy, ys)``."""
        xs, ws, bs = self._embedded(ids, W_embed)
        return self._fn(self.n_layers, self.dropout, hx, ws, bs, xs, self._activation)


class NStepRNNReLU(NStepRNNTanh):
    """:class:`NStepRNNTanh` with ``h_t = relu(x_t W_ih^T + h_{t-1} W_hh^T + b)`` (the
    IRNN of Le et al. 2015 when ``W_hh`` starts as the identity: ``initialW`` applies to
    every weight, so set ``link[k].W_hh.array[...] = numpy.eye(H)`` after construction)."""
    _activation = 'relu'


class NStepBiRNNTanh(NStepRNNTanh):
    """Bidirectional :class:`NStepRNNTanh` (:func:`seqdbr.functions.n_step_birnn`): child
    ``2 * layer + direction``, ``ys`` with ``2H`` features ``[forward | backward]``."""
    _bi = True
    _fn = staticmethod(n_step_birnn)


class NStepBiRNNReLU(NStepBiRNNTanh):
    """Bidirectional :class:`NStepRNNReLU`."""
    _activation = 'relu'
