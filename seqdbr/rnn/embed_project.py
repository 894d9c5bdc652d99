"""``embed_project``: an embedding lookup followed by a linear map, done as one lookup.

``y = W_embed[x] W^T`` is the input projection of the first recurrent layer of every
token-level RNN (``EmbedID`` followed by the layer's ``W_ih``). Computed directly it costs,
per window of ``N`` tokens, three ``(N, D) x (D, K)`` matmuls (the projection, ``dW`` and the
gradient of the embedded rows). Because the rows come from a table of only ``V`` entries,
the same values are ``(W_embed W^T)[x]``: project the table once (``V`` rows instead of
``N``), look rows up, and in the backward scatter-add the output gradient into a
``(V, K)`` table gradient ``gT``, from which ``gW_embed = gT W`` and ``gW = gT^T W_embed``
are again ``V``-row matmuls. For a character model (``V = 65``, ``N = B*T = 2500``) that
removes about a quarter of a window's matmul flops; the function is the same, only the
rounding differs (sums are grouped per vocabulary entry).

The table route is taken when ``V < N``; otherwise (large vocabularies, tiny batches) the
direct ``linear(embed_id(x, W_embed), W)`` is cheaper and is used.

The scatter-add runs in the compiled kernel of :mod:`seqdbr.rnn.cpu_kernels` when it is
built (about 0.25 ms for ``N = 2500``, ``K = 512`` float32 on the 2-core development machine,
against 3 ms for NumPy's ``add.at``), in NumPy otherwise, and with ``cupyx.scatter_add`` on
the GPU.
"""
import numpy

from seqdbr.core import backend
from seqdbr.core.function_node import FunctionNode
from seqdbr.core.functions.connection import check_ids, embed_id, linear, take_rows
from seqdbr.core.variable import Variable
from seqdbr.rnn import cpu_kernels

__all__ = ['embed_project']


def _array(v):
    return v.array if isinstance(v, Variable) else v


def scatter_add_rows(g, ids, V):
    """``(V, K)`` array ``out`` with ``out[ids[n]] += g[n]``.

    ``g`` is ``(N, K)`` float, ``ids`` ``(N,)`` integers in ``[0, V)`` (any layout; the
    caller has validated them: the compiled kernel checks them again and raises ValueError,
    the NumPy and CuPy paths do not)."""
    xp = backend.get_array_module(g)
    N, K = g.shape
    out = xp.zeros((V, K), dtype=g.dtype)
    if not N or not K:
        return out
    if xp is not numpy:
        import cupyx
        cupyx.scatter_add(out, ids, g)
        return out
    cells = cpu_kernels.cells_for(g.dtype)
    if cells is not None and ids.dtype == numpy.int64:
        # the kernel takes C-contiguous buffers only (a strided view of ids or g is copied)
        cells.scatter_add_rows(out, numpy.ascontiguousarray(g), numpy.ascontiguousarray(ids),
                               V, N, K)
        return out
    flat = (ids[:, None] * K + numpy.arange(K)).reshape(-1)
    numpy.add.at(out.reshape(-1), flat, g.reshape(-1))
    return out


class EmbedProject(FunctionNode):
    """``y = (W_embed W^T)[ids]`` with the table route's backward (see the module docstring)."""

    def __init__(self, ids):
        self.ids = ids          # validated intp ids, any shape

    @property
    def label(self):
        return 'EmbedProject'

    def forward(self, inputs):
        E, W = inputs
        table = E @ W.T                                     # (V, K)
        return (take_rows(table, self.ids),)

    def backward(self, indexes, grad_outputs):
        E = self.inputs[0].array
        W = self.inputs[1].array
        gy = grad_outputs[0]
        K = W.shape[0]
        gT = scatter_add_rows(gy.reshape(self.ids.size, K), self.ids.reshape(-1), E.shape[0])
        gE = gT @ W if 0 in indexes else None
        gW = gT.T @ E if 1 in indexes else None
        return gE, gW


def embed_project(x, W_embed, W):
    """Embed ids and project them: ``y = W_embed[x] W^T``, computed as one table lookup.

    Mathematically ``F.linear(F.embed_id(x, W_embed), W, n_batch_axes=x.ndim)``; when the
    vocabulary is smaller than the number of ids (``V < x.size``) it is computed as
    ``(W_embed W^T)[x]``, which replaces three ``x.size``-row matmuls by ``V``-row ones (see the
    module docstring). Gradients flow to ``W_embed`` and ``W``.

    Args:
        x (array or Variable): integer ids of shape ``S`` (at least 1-d), each in ``[0, V)``.
        W_embed (Variable or array): float table ``(V, D)``.
        W (Variable or array): float weight ``(K, D)`` of the same dtype (e.g. ``W_ih`` of an
            LSTM layer, ``K = 4H``).

    Returns:
        Variable of shape ``S + (K,)`` and the dtype of the weights.

    Raises:
        TypeError: ids or weights that are not arrays, non-integer ids, non-float or
            mixed-dtype weights.
        ValueError: 0-d ids, weights that are not 2-d, or ``D`` differing between them.
        IndexError: ids outside ``[0, V)`` (listed, as :func:`seqdbr.functions.embed_id`).
    """
    xa = _array(x)
    if not hasattr(xa, 'ndim'):
        raise TypeError('embed_project: ids x must be an integer array (NumPy or CuPy), got %s'
                        % type(x).__name__)
    Ea, Wa = _array(W_embed), _array(W)
    for name, a in (('W_embed', Ea), ('W', Wa)):
        if not hasattr(a, 'ndim'):
            raise TypeError('embed_project: %s must be a float array or Variable, got %s'
                            % (name, type(a).__name__))
        if a.ndim != 2:
            raise ValueError('embed_project: %s must be a 2-d array, got %s'
                             % (name, getattr(a, 'shape', type(a).__name__)))
        if a.dtype.kind != 'f':
            raise TypeError('embed_project: %s must be a float array, got %s' % (name, a.dtype))
    if Ea.dtype != Wa.dtype:
        raise TypeError('embed_project: W_embed is %s but W is %s; use one dtype'
                        % (Ea.dtype, Wa.dtype))
    if Ea.shape[1] != Wa.shape[1]:
        raise ValueError('embed_project: W_embed (V, D) = %s and W (K, D) = %s disagree on D'
                         % (Ea.shape, Wa.shape))
    if getattr(xa, 'ndim', 0) < 1:
        raise ValueError('embed_project: ids x must be at least 1-d, got %r' % (x,))
    V = Ea.shape[0]
    if not V < xa.size:
        return linear(embed_id(x, W_embed), W, n_batch_axes=xa.ndim)
    # embed_id validates the ids (dtype, range) with its messages; its node is not used
    if xa.dtype.kind not in 'iu':
        embed_id(x, W_embed)                        # raises the TypeError
    xp = backend.get_array_module(xa)
    ids = xa if xa.dtype == numpy.intp else xa.astype(numpy.intp)
    check_ids(ids, V)          # on CuPy: checked on the device, read by the next fetch
    if xp is not numpy:
        ids = xp.ascontiguousarray(ids)
    return EmbedProject(ids).apply((W_embed, W))[0]
