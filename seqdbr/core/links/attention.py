"""Attention links: ``MultiHeadAttention`` (Vaswani et al. 2017) and ``GlobalAttention``
(Luong et al. 2015).

Both build on :func:`seqdbr.core.functions.attention.scaled_dot_product_attention` and its
masking rule: boolean masks, True where attention is allowed; a query with no allowed key
gets a zero context (no NaN, forward or backward).
"""
import numpy

from seqdbr.core import backend
from seqdbr.core.functions import activation, array, basic_math
from seqdbr.core.functions.attention import (length_mask, masked_softmax,
                                             scaled_dot_product_attention)
from seqdbr.core.functions.connection import linear
from seqdbr.core.link import Chain
from seqdbr.core.links.linear import Linear
from seqdbr.core.variable import Variable

__all__ = ['MultiHeadAttention', 'GlobalAttention', 'AttentionMemory']


def _pos_int(cls, name, v, allow_none=False):
    if v is None and allow_none:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, numpy.integer)) or v <= 0:
        raise ValueError('%s: %s must be a positive int%s, got %r'
                         % (cls, name, ' or None' if allow_none else '', v))
    return int(v)


def _shape_of(x):
    a = x.array if isinstance(x, Variable) else x
    return getattr(a, 'shape', None)


def _proj(lin, x):
    """``lin`` applied to the last axis of a 2-d or 3-d ``x`` (batch axes kept)."""
    return linear(x, lin.W, lin.b, n_batch_axes=len(x.shape) - 1)


# -- multi-head attention -----------------------------------------------------------------

class MultiHeadAttention(Chain):
    """Multi-head attention (Vaswani et al. 2017, sec. 3.2.2).

    ``MultiHead(Q, K, V) = concat(head_1, ..., head_h) W_O`` with
    ``head_i = Attention(Q W_Q_i, K W_K_i, V W_V_i)`` and ``Attention`` the scaled
    dot-product attention (scale ``1 / sqrt(d_model / h)``). The per-head projections are
    stored as one ``Linear`` each (``linear_q`` ``(d_model, d_model)``, ``linear_k``
    ``(d_model, kdim)``, ``linear_v`` ``(d_model, vdim)``), split into ``n_heads`` blocks of
    ``d_model / n_heads`` features (PyTorch's ``in_proj`` layout, block by block).

    Args:
        n_heads (int): number of heads ``h``; must divide ``d_model``.
        d_model (int): query features and the width of every projection.
        kdim, vdim (int or None): key and value features (None: ``d_model``).
        out_size (int or None): output features (None: ``d_model``).
        nobias (bool): no biases in the four projections.
        initialW: initializer spec for the projection weights (default LeCun normal).

    Call:
        ``forward(q, k=None, v=None, mask=None, return_weights=False)``:
        ``q`` ``(B, Tq, d_model)``, ``k`` ``(B, Tk, kdim)`` (None: ``q``, self-attention),
        ``v`` ``(B, Tk, vdim)`` (None: ``k``); ``mask`` boolean, True = may attend, of shape
        ``(B|1, Tq|1, Tk)`` (shared by the heads) or ``(B|1, h|1, Tq|1, Tk)``; a causal mask
        is ``numpy.tril(numpy.ones((T, T), bool))[None]``. Returns ``y``
        ``(B, Tq, out_size)``, and with ``return_weights`` also the weights
        ``(B, h, Tq, Tk)``. Rows with no allowed key give ``W_O``'s bias (zero context).

    Raises:
        ValueError: ``d_model % n_heads != 0``, inputs not 3-d, batch sizes or feature sizes
            that do not match, a mask of the wrong shape.
    """

    def __init__(self, n_heads, d_model, kdim=None, vdim=None, out_size=None, nobias=False,
                 initialW=None):
        super().__init__()
        n_heads = _pos_int('MultiHeadAttention', 'n_heads', n_heads)
        d_model = _pos_int('MultiHeadAttention', 'd_model', d_model)
        if d_model % n_heads:
            raise ValueError('MultiHeadAttention: d_model=%d is not divisible by n_heads=%d; '
                             'each head gets d_model / n_heads features' % (d_model, n_heads))
        self.n_heads = n_heads
        self.d_model = d_model
        self.kdim = _pos_int('MultiHeadAttention', 'kdim', kdim, True) or d_model
        self.vdim = _pos_int('MultiHeadAttention', 'vdim', vdim, True) or d_model
        self.out_size = _pos_int('MultiHeadAttention', 'out_size', out_size, True) or d_model
        with self.init_scope():
            self.linear_q = Linear(d_model, d_model, nobias=nobias, initialW=initialW)
            self.linear_k = Linear(self.kdim, d_model, nobias=nobias, initialW=initialW)
            self.linear_v = Linear(self.vdim, d_model, nobias=nobias, initialW=initialW)
            self.linear_o = Linear(d_model, self.out_size, nobias=nobias, initialW=initialW)

    def _check(self, name, x, size):
        s = _shape_of(x)
        if s is None or len(s) != 3 or s[2] != size:
            raise ValueError('MultiHeadAttention: %s must be 3-d (B, T, %d), got shape %s'
                             % (name, size, s))
        return s

    def _heads(self, x):
        """``(B, T, d_model)`` -> ``(B, h, T, d_model / h)``."""
        B, T, _ = x.shape
        x = array.reshape(x, (B, T, self.n_heads, self.d_model // self.n_heads))
        return array.transpose(x, (0, 2, 1, 3))

    def _mask(self, mask, B, Tq, Tk):
        m = mask.array if isinstance(mask, Variable) else mask
        s = getattr(m, 'shape', None)
        if s is not None and len(s) == 3:
            m = m[:, None]
        elif s is None or len(s) != 4:
            raise ValueError('MultiHeadAttention: mask must have shape (B|1, Tq|1, Tk) = '
                             '(%d|1, %d|1, %d) or (B|1, h|1, Tq|1, Tk), got %s'
                             % (B, Tq, Tk, s))
        return m

    def forward(self, q, k=None, v=None, mask=None, return_weights=False):
        k = q if k is None else k
        v = k if v is None else v
        B, Tq, _ = self._check('q', q, self.d_model)
        Bk, Tk, _ = self._check('k', k, self.kdim)
        Bv, Tv, _ = self._check('v', v, self.vdim)
        if Bk != B or Bv != B or Tv != Tk:
            raise ValueError('MultiHeadAttention: q, k and v must be (B, Tq, .), (B, Tk, .) and '
                             '(B, Tk, .) with one B and Tk, got shapes %s, %s and %s'
                             % (_shape_of(q), _shape_of(k), _shape_of(v)))
        if mask is not None:
            mask = self._mask(mask, B, Tq, Tk)
        qh = self._heads(_proj(self.linear_q, q))
        kh = self._heads(_proj(self.linear_k, k))
        vh = self._heads(_proj(self.linear_v, v))
        y, w = scaled_dot_product_attention(qh, kh, vh, mask=mask, return_weights=True)
        y = array.reshape(array.transpose(y, (0, 2, 1, 3)), (B, Tq, self.d_model))
        y = _proj(self.linear_o, y)
        return (y, w) if return_weights else y

    def repr_args(self):
        return 'n_heads=%d, d_model=%d, kdim=%d, vdim=%d, out_size=%d' % (
            self.n_heads, self.d_model, self.kdim, self.vdim, self.out_size)


# -- Luong global attention ---------------------------------------------------------------

class AttentionMemory:
    """The source side of :class:`GlobalAttention`, prepared once per batch of sources.

    Attributes:
        hs (Variable): source states ``(B, S, source_size)`` (zero rows after each length).
        mask (array): boolean ``(B, 1, S)``, True at real (unpadded) source positions.
        keys (Variable): what the scores compare the query with: ``hs`` (dot, general) or
            ``hs W_s^T`` ``(B, S, attn_size)`` (concat).
        lengths (list of int): the source lengths.
    """

    def __init__(self, hs, mask, keys, lengths):
        self.hs = hs
        self.mask = mask
        self.keys = keys
        self.lengths = lengths

    def select(self, index):
        """The memory of the sources ``index`` (an int array or list of rows, e.g. beam
        parents), as a new :class:`AttentionMemory`."""
        idx = numpy.asarray(index, dtype=numpy.intp)
        xp = backend.get_array_module(self.mask)
        ix = idx if xp is numpy else xp.asarray(idx)
        hs = array.get_item(self.hs, ix)
        keys = hs if self.keys is self.hs else array.get_item(self.keys, ix)
        return AttentionMemory(hs, self.mask[ix], keys, [self.lengths[i] for i in idx])


class GlobalAttention(Chain):
    """Luong et al. 2015 global attention, one decoder step (or a whole sequence) at a time.

    For a decoder state ``h_t`` and source states ``h_s`` (``s < S_b``, the source length)::

        score(h_t, h_s) = h_t . h_s                        'dot'      (eq. 8)
                        = h_t W_a h_s                      'general'  (W_a: linear_in)
                        = v_a . tanh(W_q h_t + W_s h_s)    'concat'   (W_a = [W_q W_s])
        a_t(s) = exp(score_s) / sum_{s' < S_b} exp(score_s')          (eq. 7, padding masked)
        c_t = sum_s a_t(s) h_s
        ht_t = tanh(W_c [c_t ; h_t])                                  (eq. 5, no bias)

    Input feeding (sec. 3.3) is the decoder's business: feed ``ht_t`` with the next input.

    Args:
        query_size (int): decoder state features ``Hq``.
        source_size (int or None): source state features ``Hs`` (None: ``Hq``; 'dot' needs
            ``Hs == Hq``).
        score (str): 'dot', 'general' or 'concat'.
        out_size (int or None): features of ``ht`` (None: ``Hq``).
        attn_size (int or None): hidden size ``A`` of the concat score (None: ``Hq``).
        initialW: initializer spec of the weights (default LeCun normal).

    Parameters:
        ``linear_in.W`` ``(Hs, Hq)`` ('general'); ``linear_q.W`` ``(A, Hq)``, ``linear_s.W``
        ``(A, Hs)``, ``linear_v.W`` ``(1, A)`` (``v_a``; 'concat');
        ``linear_out.W`` ``(out_size, Hs + Hq)`` (``W_c``).

    Call:
        ``prepare(hs, lengths=None) -> AttentionMemory``: ``hs`` a ``(B, S, Hs)``
        Variable/array, or a list of ``B`` Variables ``(S_b, Hs)`` (padded with zeros here;
        e.g. the ``ys`` of an ``NStepBiLSTM``); ``lengths`` the source lengths (default
        ``S`` each, or the list's lengths). Do it once per batch of sources.
        ``forward(h, memory, lengths=None) -> (ht, a)``: ``h`` ``(B, Hq)`` (one step) or
        ``(B, T, Hq)``; ``memory`` an :class:`AttentionMemory` (or raw ``hs``, prepared on
        the fly with ``lengths``); ``ht`` ``(B, out_size)`` / ``(B, T, out_size)`` and the
        weights ``a`` ``(B, S)`` / ``(B, T, S)``. A source of length 0 gives ``c = 0``.

    Raises:
        ValueError: unknown score, 'dot' with ``Hs != Hq``, shapes that do not match (the
            message names them), lengths outside ``[0, S]``.
    """

    SCORES = ('dot', 'general', 'concat')

    def __init__(self, query_size, source_size=None, score='general', out_size=None,
                 attn_size=None, initialW=None):
        super().__init__()
        Hq = _pos_int('GlobalAttention', 'query_size', query_size)
        Hs = _pos_int('GlobalAttention', 'source_size', source_size, True) or Hq
        if score not in self.SCORES:
            raise ValueError("GlobalAttention: score must be 'dot', 'general' or 'concat', "
                             "got %r" % (score,))
        if score == 'dot' and Hs != Hq:
            raise ValueError("GlobalAttention: the 'dot' score needs source_size == query_size,"
                             " got %d and %d; use score='general' (a learned W_a) instead"
                             % (Hs, Hq))
        self.query_size, self.source_size, self.score = Hq, Hs, score
        self.out_size = _pos_int('GlobalAttention', 'out_size', out_size, True) or Hq
        A = self.attn_size = _pos_int('GlobalAttention', 'attn_size', attn_size, True) or Hq
        with self.init_scope():
            if score == 'general':
                self.linear_in = Linear(Hq, Hs, nobias=True, initialW=initialW)
            elif score == 'concat':
                self.linear_q = Linear(Hq, A, nobias=True, initialW=initialW)
                self.linear_s = Linear(Hs, A, nobias=True, initialW=initialW)
                self.linear_v = Linear(A, 1, nobias=True, initialW=initialW)
            self.linear_out = Linear(Hs + Hq, self.out_size, nobias=True, initialW=initialW)

    def prepare(self, hs, lengths=None):
        """Pad the sources, build the mask and the keys (see the class docstring)."""
        if isinstance(hs, (list, tuple)):
            if not hs:
                raise ValueError('GlobalAttention.prepare: hs is an empty list (no sources)')
            lens = [int(_shape_of(h)[0]) for h in hs]
            if lengths is not None and list(lengths) != lens:
                raise ValueError('GlobalAttention.prepare: lengths %s differ from the lengths '
                                 'of the listed sources %s' % (list(lengths), lens))
            lengths = lens
            hs = array.pad_sequence(list(hs), padding=0)
        s = _shape_of(hs)
        if s is None or len(s) != 3 or s[2] != self.source_size:
            raise ValueError('GlobalAttention: hs must be (B, S, source_size=%d) or a list of '
                             '(S_b, %d) arrays, got shape %s'
                             % (self.source_size, self.source_size, s))
        B, S = s[0], s[1]
        if lengths is None:
            lengths = [S] * B
        lengths = [int(n) for n in lengths]
        if len(lengths) != B:
            raise ValueError('GlobalAttention: %d lengths for a batch of %d sources'
                             % (len(lengths), B))
        xp = backend.get_array_module(hs.array if isinstance(hs, Variable) else hs)
        mask = length_mask(lengths, S, xp=xp)[:, None, :]
        keys = _proj(self.linear_s, hs) if self.score == 'concat' else hs
        return AttentionMemory(hs, mask, keys, lengths)

    def forward(self, h, memory, lengths=None):
        if not isinstance(memory, AttentionMemory):
            memory = self.prepare(memory, lengths)
        hs = memory.hs
        B, S, _ = hs.shape
        s = _shape_of(h)
        if s is None or len(s) not in (2, 3) or s[0] != B or s[-1] != self.query_size:
            raise ValueError('GlobalAttention: h must be (B, query_size) = (%d, %d) or '
                             '(B, T, query_size), matching the %d prepared sources; got %s'
                             % (B, self.query_size, B, s))
        one_step = len(s) == 2
        h3 = array.expand_dims(h, 1) if one_step else h         # (B, T, Hq)
        if self.score == 'concat':
            e = basic_math.add(array.expand_dims(memory.keys, 1),
                               array.expand_dims(_proj(self.linear_q, h3), 2))
            score = _proj(self.linear_v, activation.tanh(e))          # (B, T, S, 1)
            score = array.reshape(score, score.shape[:3])
            a = masked_softmax(score, memory.mask, axis=-1)
            c = basic_math.matmul(a, hs)
        else:
            q = _proj(self.linear_in, h3) if self.score == 'general' else h3
            c, a = scaled_dot_product_attention(q, hs, hs, mask=memory.mask, scale=1.0,
                                                return_weights=True)
        ht = activation.tanh(_proj(self.linear_out, array.concat([c, h3], axis=-1)))
        if one_step:
            return array.reshape(ht, (B, self.out_size)), array.reshape(a, (B, S))
        return ht, a

    def repr_args(self):
        return 'query_size=%d, source_size=%d, score=%r, out_size=%d' % (
            self.query_size, self.source_size, self.score, self.out_size)

