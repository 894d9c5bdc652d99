"""The fused GRU cell ``gru_cell(h_prev, gi, gh) -> h`` (cuDNN/PyTorch convention)."""
import numpy

from seqdbr.core import backend
from seqdbr.core.function_node import FunctionNode
from seqdbr.core.variable import Variable
from seqdbr.rnn import cpu_kernels, kernels
from seqdbr.rnn.lstm import _sigmoid_of_negated

__all__ = ['gru_cell']


class GRUCell(FunctionNode):
    """Fused GRU cell; see :func:`gru_cell`."""

    def forward_cpu(self, inputs):
        h_prev, gi, gh = inputs
        B, H = h_prev.shape
        Bx = gi.shape[0]
        cells = cpu_kernels.cells_for(gi.dtype)
        if cells is not None:
            # compiled path: one fused pass (seqdbr.rnn.cpu_kernels); outputs C-ordered
            act = numpy.empty((Bx, 3 * H), dtype=gi.dtype)
            h = numpy.empty(h_prev.shape, dtype=h_prev.dtype)
            cells.gru_cell_fwd(numpy.ascontiguousarray(gi), numpy.ascontiguousarray(gh),
                               numpy.ascontiguousarray(h_prev), Bx, H, act, h)
            if Bx < B:
                h[Bx:] = h_prev[Bx:]
            self.act = act
            return (h,)
        H2 = 2 * H
        # act = [r | z | n]; r and z: sigmoid(gi + gh) = 1 / (1 + exp(-(gi + gh)))
        act = numpy.empty_like(gi)
        rz = act[:, :H2]
        numpy.add(gi[:, :H2], gh[:, :H2], out=rz)
        numpy.negative(rz, out=rz)
        with numpy.errstate(over='ignore', under='ignore'):
            _sigmoid_of_negated(rz)
        r = act[:, :H]
        z = act[:, H:H2]
        n = act[:, H2:]
        ghn = gh[:, H2:]
        numpy.multiply(r, ghn, out=n)
        n += gi[:, H2:]
        numpy.tanh(n, out=n)
        h = numpy.empty_like(h_prev)
        ha = h[:Bx]
        numpy.subtract(h_prev[:Bx], n, out=ha)
        ha *= z
        ha += n
        if Bx < B:
            h[Bx:] = h_prev[Bx:]
        self.act = act
        return (h,)

    def forward_gpu(self, inputs):
        h_prev, gi, gh = inputs
        xp = backend.get_array_module(gi)
        B, H = h_prev.shape
        Bx = gi.shape[0]
        gi = xp.ascontiguousarray(gi)
        gh = xp.ascontiguousarray(gh)
        h = xp.empty_like(h_prev)
        act = xp.empty((Bx, 4 * H), dtype=gi.dtype)
        kernels.get_kernel('gru_fwd')(gi, gh, gh, h_prev[:Bx], H, 1, h[:Bx], act)
        if Bx < B:
            h[Bx:] = h_prev[Bx:]
        self.act = act
        return (h,)

    def backward(self, indexes, grad_outputs):
        (gy,) = grad_outputs
        h_prev = self.inputs[0].array
        if type(h_prev) is numpy.ndarray:
            with numpy.errstate(under='ignore'):  # products of tiny gate derivatives
                return self._backward_cpu(h_prev, gy)
        return self._backward_gpu(h_prev, gy)

    def _backward_cpu(self, h_prev, gy):
        B, H = h_prev.shape
        H2 = 2 * H
        act = self.act
        Bx = act.shape[0]
        gh_arr = self.inputs[2].array
        cells = cpu_kernels.cells_for(act.dtype)
        if cells is not None:
            gh_prev = numpy.empty(h_prev.shape, dtype=h_prev.dtype)
            ggi = numpy.empty(act.shape, dtype=act.dtype)
            ggh = numpy.empty(act.shape, dtype=act.dtype)
            cells.gru_cell_bwd(numpy.ascontiguousarray(act), numpy.ascontiguousarray(gh_arr),
                               numpy.ascontiguousarray(h_prev),
                               numpy.ascontiguousarray(gy, dtype=act.dtype), Bx, H,
                               gh_prev, ggi, ggh)
            if Bx < B:
                gh_prev[Bx:] = gy[Bx:]
            return gh_prev, ggi, ggh
        r = act[:, :H]
        z = act[:, H:H2]
        n = act[:, H2:]
        ghn = gh_arr[:, H2:]
        gya = gy[:Bx]
        ggi = numpy.empty_like(act)
        dr = ggi[:, :H]
        dz = ggi[:, H:H2]
        dn = ggi[:, H2:]
        tmp = numpy.empty_like(n)
        # dn = gy (1 - z) (1 - n^2)
        numpy.subtract(1, z, out=dn)
        dn *= gya
        numpy.multiply(n, n, out=tmp)
        numpy.subtract(1, tmp, out=tmp)
        dn *= tmp
        # dz = gy (h_prev - n) z (1 - z)
        numpy.subtract(h_prev[:Bx], n, out=dz)
        dz *= gya
        numpy.subtract(1, z, out=tmp)
        tmp *= z
        dz *= tmp
        # dr = dn ghn r (1 - r)
        numpy.multiply(dn, ghn, out=dr)
        numpy.subtract(1, r, out=tmp)
        tmp *= r
        dr *= tmp
        ggh = ggi.copy()
        ggh[:, H2:] *= r
        gh_prev = numpy.empty_like(h_prev)
        numpy.multiply(gya, z, out=gh_prev[:Bx])
        if Bx < B:
            gh_prev[Bx:] = gy[Bx:]
        return gh_prev, ggi, ggh

    def _backward_gpu(self, h_prev, gy):
        xp = backend.get_array_module(h_prev)
        B, H = h_prev.shape
        act = self.act
        Bx = act.shape[0]
        zero = xp.zeros((), dtype=act.dtype)
        gh_prev = xp.empty_like(h_prev)
        ggi = xp.empty((Bx, 3 * H), dtype=act.dtype)
        ggh = xp.empty_like(ggi)
        kernels.get_kernel('gru_bwd')(act, h_prev[:Bx], gy[:Bx], zero, H, gh_prev[:Bx], ggi, ggh)
        if Bx < B:
            gh_prev[Bx:] = gy[Bx:]
        return gh_prev, ggi, ggh


def _array(v):
    return v.array if isinstance(v, Variable) else v


def gru_cell(h_prev, gi, gh):
    """Fused GRU cell, the cuDNN/PyTorch variant used everywhere in this library.

    Equations (Cho et al. 2014, in the form of cuDNN and ``torch.nn.GRU``, where the reset
    gate multiplies the *whole* hidden projection including its bias)::

        r  = sigmoid(gi_r + gh_r)
        z  = sigmoid(gi_z + gh_z)
        n  = tanh(gi_n + r * gh_n)
        h  = (1 - z) * n + z * h_prev

    with ``gi = x W_ih^T + b_ih`` and ``gh = h_prev W_hh^T + b_hh`` laid out in blocks
    ``[r | z | n]`` (PyTorch order). Because ``r`` multiplies ``gh_n = U_n h + b_hn``, the two
    projections cannot be summed beforehand; this cell takes them separately.

    Numerics: ``sigmoid(x) = 1 / (1 + exp(-x))`` on the CPU, never warning. The NumPy code
    gives exactly 0 where ``exp`` overflows; the compiled cell (``seqdbr.rnn.cpu_kernels``)
    clamps its float32 ``exp`` and may give a subnormal (~1e-38) instead, and computes
    ``tanh(x) = 2 sigmoid(2x) - 1`` (absolute, not relative, accuracy near 0). On the GPU
    ``sigmoid(x) = (1 + tanh(x / 2)) / 2``.

    Shrinking batches: ``gi`` and ``gh`` may have ``B' <= B`` rows; rows ``B'..B-1`` of the
    result are copies of ``h_prev`` (gradient passes straight through), so the returned
    state always has ``B`` rows and the output of the active sequences is ``h[:B']``.

    Args:
        h_prev (Variable or array): ``(B, H)`` previous hidden state, float32 or float64.
        gi (Variable or array): ``(B', 3H)`` input projection, same dtype.
        gh (Variable or array): ``(B', 3H)`` hidden projection of ``h_prev[:B']``.

    Returns:
        Variable: the new hidden state, shape ``(B, H)``.

    Raises:
        TypeError: non-float or differing dtypes, or arrays on different devices.
        ValueError: wrong ranks, ``gi``/``gh`` not ``(B', 3H)`` with ``B' <= B``, or
            ``gi.shape != gh.shape``.
    """
    ha, ia, hha = _array(h_prev), _array(gi), _array(gh)
    names = ('h_prev', 'gi', 'gh')
    for name, arr in zip(names, (ha, ia, hha)):
        if not hasattr(arr, 'dtype'):
            raise TypeError('gru_cell: %s must be a Variable or an array, got %s'
                            % (name, type(arr).__name__))
        if arr.dtype.kind != 'f':
            raise TypeError('gru_cell: %s must be a float array, got dtype %s (shape %s); cast '
                            'with .astype(numpy.float32)' % (name, arr.dtype, arr.shape))
        if arr.dtype != ha.dtype:
            raise TypeError('gru_cell: h_prev has dtype %s but %s has dtype %s; cast them to one '
                            'dtype' % (ha.dtype, name, arr.dtype))
        if type(arr) is not type(ha):
            raise TypeError('gru_cell: h_prev is a %s but %s is a %s; move all to one device'
                            % (type(ha).__name__, name, type(arr).__name__))
    if ha.ndim != 2 or ia.ndim != 2 or hha.ndim != 2:
        raise ValueError('gru_cell: h_prev must be (B, H) and gi, gh (B\', 3H), got shapes %s, '
                         '%s and %s' % (ha.shape, ia.shape, hha.shape))
    B, H = ha.shape
    if ia.shape != hha.shape:
        raise ValueError('gru_cell: gi has shape %s but gh has shape %s; both must be (B\', 3H) '
                         '(gh is the projection of h_prev[:B\'])' % (ia.shape, hha.shape))
    if ia.shape[1] != 3 * H:
        raise ValueError('gru_cell: gi has shape %s but h_prev has shape %s; the projections '
                         'need 3 * H = %d columns (blocks [r | z | n])'
                         % (ia.shape, ha.shape, 3 * H))
    if ia.shape[0] > B:
        raise ValueError('gru_cell: gi has %d rows but h_prev only %d (shapes %s and %s); the '
                         'batch may shrink between steps but never grow'
                         % (ia.shape[0], B, ia.shape, ha.shape))
    return GRUCell().apply((h_prev, gi, gh))[0]
