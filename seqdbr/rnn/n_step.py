"""Whole-window multi-layer LSTM/GRU/plain RNN: ``n_step_lstm``, ``n_step_bilstm``,
``n_step_gru``, ``n_step_bigru``, ``n_step_rnn``, ``n_step_birnn``.

How it is fast
--------------
The batch is sorted by length (stable) and packed time-major like cuDNN's packed
sequences: step ``t`` is the row block ``offsets[t]:offsets[t] + B_t`` where ``B_t`` is
the number of sequences longer than ``t`` (the active rows are always a prefix, because
the sequences are sorted by decreasing length). A batch of equal lengths needs no
sorting and no index gathers (``stack`` in, one transpose out); a ``(B, T, in)`` array
input avoids even the per-sequence split and join.

Each layer (both directions for the bidirectional variants) is ONE function node:

* forward: the input projection of every time step is one matmul
  ``X W_ih^T + (b_ih + b_hh)`` over the whole window; the recurrence is the only
  sequential part: per step one ``h_{t-1} W_hh^T`` matmul into a preallocated buffer
  plus the cell arithmetic, written in place into preallocated window buffers;
* backward: the sequential part computes the gate gradients ``dG`` step by step (one
  ``dG_t W_hh`` matmul per step); then ``dW_ih = dG^T X``, ``dW_hh = dG^T H_prev`` and
  ``dX = dG W_ih`` are one matmul each over the whole window and the bias gradients one
  sum.

NumPy specifics (measured on the 2-core development box, B = 50, H = 128, float32):

* gate arrays are gate-major ``(G, N, H)``, so every per-step operand is a contiguous
  ``(B_t, H)`` block (NumPy runs an op on a strided 2-d view one row at a time; the
  contiguous layout made the per-step arithmetic about 3x cheaper). The projections
  become one BLAS call per gate (same FLOPs, measured as fast);
* NumPy's float32 ``exp`` costs about half of its ``tanh``, so the weights are
  reordered to ``[i f o g]`` and scaled by -1 (sigmoid gates) or -2 (candidate): one
  ``exp`` pass over the step block then gives every gate, ``sigmoid(x) = 1 / (1 +
  exp(-x))`` and ``tanh(x) = 2 sigmoid(2x) - 1``. ``exp`` overflowing to inf for
  pre-activations below about -88 yields exactly 0 (sigmoid) or -1 (tanh); the overflow
  flag is masked, so no input can warn or produce NaN.

Without a graph (``no_backprop_mode``: evaluation, sampling) the CPU LSTM and GRU with the
compiled kernels keep the gates row-major in the weights' own layout and run the stepwise
C cell of ``F.lstm`` / ``F.gru_cell`` per step: nothing is saved and no weight is rearranged, which for one
character at a time (sampling) made a 2x128 model's step about 1.35x faster; a 50x50 window
costs the same either way.

CuPy: row-major gate arrays and one fused elementwise kernel per step for the forward
and one for the backward (``seqdbr.rnn.kernels``) around cuBLAS matmuls.

Layout conventions (PyTorch/cuDNN, so weights can be compared and imported):
``ws[k] = [W_ih (G*H, in_k), W_hh (G*H, H)]``, ``bs[k] = [b_ih (G*H,), b_hh (G*H,)]``
with ``G = 4`` (LSTM gates ``[i | f | g | o]``) or ``G = 3`` (GRU gates
``[r | z | n]``); ``k = layer`` or, bidirectional, ``k = 2 * layer + direction``
(direction 0 forward in time, 1 backward), and the same index for ``hx[k]``.
"""
import collections
import numbers

import numpy

from seqdbr.core import backend
from seqdbr.core.config import config
from seqdbr.core.function_node import FunctionNode
from seqdbr.core.variable import Variable
from seqdbr.rnn import cpu_kernels, kernels
from seqdbr.rnn.lstm import _sigmoid_of_negated

__all__ = ['n_step_lstm', 'n_step_bilstm', 'n_step_gru', 'n_step_bigru', 'n_step_rnn',
           'n_step_birnn']


# -- packing plan -------------------------------------------------------------------------

class _SeqBatch:
    """Length-sorted time-major packing plan of ``B`` sequences of ``lengths``.

    Attributes:
        B, T, N: batch size, longest length, total rows ``sum(lengths)``.
        equal (bool): all lengths equal (no sorting, no packing gathers).
        order: ``order[j]`` = original index of the j-th longest sequence (None if equal).
        batch_sizes, offsets: per time step, rows ``offsets[t]:offsets[t] + batch_sizes[t]``.
    """

    def __init__(self, lengths):
        self.lengths = lengths
        B = self.B = len(lengths)
        T = self.T = max(lengths)
        self.equal = min(lengths) == T
        self._idx = {}
        if self.equal:
            self.order = None
            self.inv = None
            self.batch_sizes = [B] * T
            self.offsets = [t * B for t in range(T + 1)]
        else:
            lens = numpy.asarray(lengths, dtype=numpy.int64)
            order = numpy.argsort(-lens, kind='stable')
            self.order = order
            inv = numpy.empty_like(order)
            inv[order] = numpy.arange(B)
            self.inv = inv
            # batch_sizes[t] = number of sequences longer than t
            counts = numpy.bincount(lens, minlength=T + 1)
            bs = B - numpy.cumsum(counts)[:T]
            self.batch_sizes = [int(b) for b in bs]
            off = [0]
            for b in self.batch_sizes:
                off.append(off[-1] + b)
            self.offsets = off
        self.N = self.offsets[-1]

    # index arrays, built on first use and cached per device (the plans themselves are
    # cached across calls by _seq_batch, so a training loop uploads them once, not per window)
    def index(self, name, xp):
        host = self._idx.get(name)
        if host is None:
            host = self._idx[name] = getattr(self, '_make_' + name)()
        if xp is numpy:
            return host
        key = (name, xp.cuda.get_device_id())
        a = self._idx.get(key)
        if a is None:
            a = self._idx[key] = xp.asarray(host)
        return a

    def _make_order(self):
        return self.order

    def _make_inv(self):
        return self.inv

    def _make_pack(self):
        """packed row -> row of the concatenation of the sequences in original order."""
        starts = numpy.concatenate([[0], numpy.cumsum(self.lengths)[:-1]])
        idx = numpy.empty(self.N, dtype=numpy.int64)
        order = self.order
        for t, (o, b) in enumerate(zip(self.offsets, self.batch_sizes)):
            idx[o:o + b] = starts[order[:b]] + t
        return idx

    def _make_unpack(self):
        pack = self.index('pack', numpy)
        inv = numpy.empty_like(pack)
        inv[pack] = numpy.arange(self.N)
        return inv

    def _make_last(self):
        """original sequence b -> packed row of its last step."""
        lens = numpy.asarray(self.lengths)
        off = numpy.asarray(self.offsets)
        if self.equal:
            return off[self.T - 1] + numpy.arange(self.B)
        return off[lens - 1] + self.inv

    def _make_prev(self):
        """packed rows of h_{t-1} for the rows of steps 1..T-1 (in row order)."""
        parts = [numpy.arange(o, o + b) for o, b in zip(self.offsets[:-2], self.batch_sizes[1:])]
        if not parts:
            return numpy.zeros(0, dtype=numpy.int64)
        return numpy.concatenate(parts)

    def _make_rev(self):
        """packed row (t, j) -> packed row (T_j - 1 - t, j): time reversal of each sequence."""
        idx = numpy.empty(self.N, dtype=numpy.int64)
        lens = numpy.asarray(self.lengths)
        slens = lens if self.equal else lens[self.order]
        off = numpy.asarray(self.offsets)
        for t, (o, b) in enumerate(zip(self.offsets, self.batch_sizes)):
            j = numpy.arange(b)
            idx[o:o + b] = off[slens[:b] - 1 - t] + j
        return idx


_PLANS = collections.OrderedDict()
_MAX_PLANS = 32


def _seq_batch(lengths):
    """The (cached, least recently used out first) packing plan of ``lengths``."""
    key = tuple(lengths)
    plan = _PLANS.get(key)
    if plan is None:
        plan = _PLANS[key] = _SeqBatch(list(key))
        if len(_PLANS) > _MAX_PLANS:
            _PLANS.popitem(last=False)
    else:
        _PLANS.move_to_end(key)
    return plan


# -- packing nodes ------------------------------------------------------------------------

class _PackSequences(FunctionNode):
    """B sequences ``(T_b, in)`` (original order) -> packed ``(N, in)``."""

    def __init__(self, plan):
        self.plan = plan

    def forward(self, inputs):
        plan = self.plan
        xp = backend.get_array_module(inputs[0])
        if plan.equal:
            return (xp.stack(inputs, axis=1).reshape(plan.N, -1),)
        cat = xp.concatenate(inputs, axis=0)
        return (cat.take(plan.index('pack', xp), axis=0),)

    def backward(self, indexes, grad_outputs):
        plan = self.plan
        gX = grad_outputs[0]
        xp = backend.get_array_module(gX)
        if plan.equal:
            g3 = xp.ascontiguousarray(gX.reshape(plan.T, plan.B, -1).transpose(1, 0, 2))
            return tuple([g3[b] for b in range(plan.B)])
        gcat = gX.take(plan.index('unpack', xp), axis=0)
        out = []
        start = 0
        for n in plan.lengths:
            out.append(gcat[start:start + n])
            start += n
        return tuple(out)


class _PackBatchMajor(FunctionNode):
    """``(B, T, in)`` -> time-major ``(T * B, in)``."""

    def forward(self, inputs):
        (x,) = inputs
        xp = backend.get_array_module(x)
        B, T = x.shape[:2]
        return (xp.ascontiguousarray(x.transpose(1, 0, 2)).reshape(T * B, -1),)

    def backward(self, indexes, grad_outputs):
        x = self.inputs[0]
        B, T = x.shape[:2]
        gX = grad_outputs[0]
        xp = backend.get_array_module(gX)
        return (xp.ascontiguousarray(gX.reshape(T, B, -1).transpose(1, 0, 2)),)


class _UnpackSequences(FunctionNode):
    """Packed ``(N, F)`` -> B sequences ``(T_b, F)`` in original order, or one
    ``(B, T, F)`` array when ``as_3d`` (equal lengths)."""

    def __init__(self, plan, as_3d):
        self.plan = plan
        self.as_3d = as_3d

    def forward(self, inputs):
        (Y,) = inputs
        plan = self.plan
        xp = backend.get_array_module(Y)
        self.dtype = Y.dtype
        self.F = Y.shape[1]
        if plan.equal:
            Y3 = xp.ascontiguousarray(Y.reshape(plan.T, plan.B, -1).transpose(1, 0, 2))
            if self.as_3d:
                return (Y3,)
            return tuple([Y3[b] for b in range(plan.B)])
        Ycat = Y.take(plan.index('unpack', xp), axis=0)
        out = []
        start = 0
        for n in plan.lengths:
            out.append(Ycat[start:start + n])
            start += n
        return tuple(out)

    def backward(self, indexes, grad_outputs):
        plan = self.plan
        xp = backend.get_array_module(*[g for g in grad_outputs if g is not None])
        F = self.F
        complete = all(g is not None for g in grad_outputs)
        if plan.equal:
            if self.as_3d:
                g = grad_outputs[0]
                return (xp.ascontiguousarray(g.transpose(1, 0, 2)).reshape(plan.N, F),)
            if complete:    # one C-level join instead of B strided copies
                return (xp.stack(grad_outputs, axis=1).reshape(plan.N, F),)
            g3 = xp.empty((plan.T, plan.B, F), dtype=self.dtype)
            for b, g in enumerate(grad_outputs):
                if g is None:
                    g3[:, b] = 0
                else:
                    g3[:, b] = g
            return (g3.reshape(plan.N, F),)
        if complete:
            return (xp.concatenate(grad_outputs, axis=0).take(plan.index('pack', xp), axis=0),)
        gcat = xp.empty((plan.N, F), dtype=self.dtype)
        start = 0
        for n, g in zip(plan.lengths, grad_outputs):
            if g is None:
                gcat[start:start + n] = 0
            else:
                gcat[start:start + n] = g
            start += n
        return (gcat.take(plan.index('pack', xp), axis=0),)


class _SplitStates(FunctionNode):
    """``(K, B, H)`` -> K arrays ``(B, H)``."""

    def forward(self, inputs):
        (s,) = inputs
        return tuple([s[k] for k in range(s.shape[0])])

    def backward(self, indexes, grad_outputs):
        s = self.inputs[0].array
        xp = backend.get_array_module(s)
        g = xp.empty_like(s)
        for k, gk in enumerate(grad_outputs):
            if gk is None:
                g[k] = 0
            else:
                g[k] = gk
        return (g,)


class _StackStates(FunctionNode):
    """K arrays ``(B, H)`` -> ``(K, B, H)``."""

    def forward(self, inputs):
        xp = backend.get_array_module(inputs[0])
        return (xp.stack(inputs, axis=0),)

    def backward(self, indexes, grad_outputs):
        g = grad_outputs[0]
        return tuple([g[k] for k in range(g.shape[0])])


# -- one direction of one layer: NumPy --------------------------------------------------------
#
# Gate-major ``(G, N, H)`` window arrays (see the module docstring): the block of gate k at
# step t, ``A[k, s:e]``, is one contiguous ``(B_t, H)`` array.

def _gate_blocks(W, H, order, scale):
    """``(G*H, C)`` or ``(G*H,)`` -> ``(G, H, C)`` / ``(G, 1, H)`` with gates reordered by
    ``order`` and multiplied by ``scale`` (one multiply per gate, no temporaries)."""
    G = len(order)
    src = W.reshape(G, H, -1) if W.ndim == 2 else W.reshape(G, 1, H)
    # C-ordered output: with a Fortran-ordered W (e.g. a transposed array) and H = 1, NumPy
    # 2.4's float32 negative(src[j], out=out[k]) on empty_like's layout read the input as if
    # contiguous and gave wrong values
    out = numpy.empty(src.shape, dtype=src.dtype)
    for k, (j, a) in enumerate(zip(order, scale)):
        if a == 1:
            out[k] = src[j]
        elif a == -1:
            numpy.negative(src[j], out=out[k])
        else:
            numpy.multiply(src[j], a, out=out[k])
    return out


def _project_cpu(X, W_ih, H, order, scale):
    """Gate-major ``(G, N, H)`` input pre-activations ``X W_ih^T``, gates reordered and scaled.

    With ``W_ih`` None, ``X`` (N, G*H) already holds them (pre-projected input of layer 0) and
    is only rearranged."""
    if W_ih is None:
        G = len(order)
        A = numpy.empty((G, X.shape[0], H), dtype=X.dtype)
        for k, (j, a) in enumerate(zip(order, scale)):
            src = X[:, j * H:(j + 1) * H]
            if a == 1:
                A[k] = src
            elif a == -1:
                numpy.negative(src, out=A[k])
            else:
                numpy.multiply(src, a, out=A[k])
        return A
    Wx = _gate_blocks(W_ih, H, order, scale)
    return numpy.matmul(X, Wx.transpose(0, 2, 1))


def _input_grad_cpu(dG, W_ih, H):
    """Gradient of the layer input from gate-major ``dG`` (external gate order)."""
    G = dG.shape[0]
    if W_ih is None:        # pre-projected input: dX is dG itself, laid out (N, G*H)
        gx = numpy.empty((dG.shape[1], G, H), dtype=dG.dtype)
        gx[...] = dG.transpose(1, 0, 2)
        return gx.reshape(dG.shape[1], G * H)
    return _sum_gate_matmuls(dG, W_ih.reshape(G, H, -1))


# LSTM: internal order [i f o g] (the three sigmoid gates adjacent), scaled -1 (sigmoid
# gates) and -2 (candidate), so that ONE exp pass gives every gate:
#     sigmoid(x) = 1 / (1 + exp(-x)),  tanh(x) = 2 sigmoid(2x) - 1.
_LSTM_ORDER = (0, 1, 3, 2)
_LSTM_SCALE = (-1, -1, -1, -2)


def _row_major_projection(xp, X, W_ih, b, rev):
    """Row-major ``(N, G*H)`` pre-activations ``X W_ih^T + b`` (``X + b`` when layer 0 takes
    pre-projected input, ``W_ih`` None), rows reversed per sequence by ``rev`` if given."""
    if W_ih is None:
        G = X + b
    else:
        G = xp.matmul(X, W_ih.T)
        G += b
    return G if rev is None else G.take(rev, axis=0)


def _lstm_inference_cpu(X, W_ih, W_hh, b_ih, b_hh, h0, c0, plan, H, rev):
    """Forward only (no graph is kept, so nothing is saved for a backward): the gates stay
    row-major ``[i | f | g | o]`` as the weights are laid out, so no weight is rearranged,
    and each step is one ``h W_hh^T`` GEMM plus the stepwise C cell of ``F.lstm``. For short
    windows (sampling one character at a time) the rearrangement the training path does per
    call (about 0.15 ms per layer at H=128) was most of the time. Same results up to
    rounding. Taken by ``_RNNLayer`` when no graph is recorded and the kernels are built."""
    cells = cpu_kernels.cells_for(X.dtype)
    G = _row_major_projection(numpy, X, W_ih, b_ih + b_hh, rev)
    N = G.shape[0]
    B = plan.B
    dtype = G.dtype
    Y = numpy.empty((N, H), dtype=dtype)
    C = numpy.empty((N, H), dtype=dtype)
    act = numpy.empty((B, 4 * H), dtype=dtype)
    tc = numpy.empty((B, H), dtype=dtype)
    hh = numpy.empty((B, 4 * H), dtype=dtype)
    WhT = W_hh.T
    c0 = numpy.zeros((B, H), dtype=dtype) if c0 is None else numpy.ascontiguousarray(c0, dtype)
    h_prev, ps = h0, None
    for s, Bt in zip(plan.offsets, plan.batch_sizes):
        e = s + Bt
        g = G[s:e]
        if h_prev is not None:
            numpy.matmul(h_prev[:Bt], WhT, out=hh[:Bt])
            g += hh[:Bt]
        cp = c0[:Bt] if ps is None else C[ps:ps + Bt]
        cells.lstm_cell_fwd(g, cp, Bt, H, act[:Bt], C[s:e], tc[:Bt], Y[s:e])
        h_prev, ps = Y[s:e], s
    return Y, C, None


def _lstm_forward_cpu(X, W_ih, W_hh, b_ih, b_hh, h0, c0, plan, H, rev):
    Wh = _gate_blocks(W_hh, H, _LSTM_ORDER, _LSTM_SCALE)
    b = _gate_blocks(b_ih + b_hh, H, _LSTM_ORDER, _LSTM_SCALE)
    A = _project_cpu(X, W_ih, H, _LSTM_ORDER, _LSTM_SCALE)      # (4, N, H)
    A += b
    if rev is not None:
        A = A.take(rev, axis=1)
    N = A.shape[1]
    B = plan.B
    dtype = A.dtype
    Y = numpy.empty((N, H), dtype=dtype)
    C = numpy.empty((N, H), dtype=dtype)
    TC = numpy.empty((N, H), dtype=dtype)
    hh = numpy.empty((B, 4 * H), dtype=dtype)
    # One (B_t, H) x (H, 4H) GEMM per step (not 4 batched (H, H) ones): columns are the
    # gate blocks, scattered into the gate-major A by one strided add.
    WhT = numpy.ascontiguousarray(Wh.transpose(2, 0, 1)).reshape(H, 4 * H)
    matmul = numpy.matmul
    h_prev, c_prev = h0, c0
    cells = cpu_kernels.cells_for(dtype)
    if cells is not None:
        # compiled path: per step one GEMM + one fused C pass (same layout and results)
        if c0 is not None:
            c0 = numpy.ascontiguousarray(c0, dtype=dtype)
        step = cells.lstm_fwd_step
        ps = None
        for s, Bt in zip(plan.offsets, plan.batch_sizes):
            hht = None
            if h_prev is not None:
                hht = hh[:Bt]
                matmul(h_prev[:Bt], WhT, out=hht)
            if ps is None:
                step(A, N, s, Bt, H, hht, c0, 0, C, TC, Y)
            else:
                step(A, N, s, Bt, H, hht, C, ps * H, C, TC, Y)
            h_prev = Y[s:s + Bt]
            ps = s
        return Y, C, (A, C, TC, Y, h0, c0)
    tmp = numpy.empty((B, H), dtype=dtype)
    tanh, multiply = numpy.tanh, numpy.multiply
    exp, add, reciprocal, subtract = numpy.exp, numpy.add, numpy.reciprocal, numpy.subtract
    # exp overflows to inf for very negative pre-activations: exactly sigmoid 0 / tanh -1
    with numpy.errstate(over='ignore', under='ignore'):
        for s, Bt in zip(plan.offsets, plan.batch_sizes):
            e = s + Bt
            a = A[:, s:e]
            if h_prev is not None:
                hht = hh[:Bt]
                matmul(h_prev[:Bt], WhT, out=hht)
                add(a, hht.reshape(Bt, 4, H).transpose(1, 0, 2), out=a)
            exp(a, out=a)
            add(a, 1, out=a)
            reciprocal(a, out=a)
            g = A[3, s:e]
            multiply(g, 2, out=g)
            subtract(g, 1, out=g)
            c = C[s:e]
            if c_prev is not None:
                multiply(A[1, s:e], c_prev[:Bt], out=c)
                t1 = tmp[:Bt]
                multiply(A[0, s:e], g, out=t1)
                add(c, t1, out=c)
            else:
                multiply(A[0, s:e], g, out=c)
            tc = TC[s:e]
            tanh(c, out=tc)
            h = Y[s:e]
            multiply(A[2, s:e], tc, out=h)
            h_prev = h
            c_prev = c
    return Y, C, (A, C, TC, Y, h0, c0)


def _lstm_backward_cpu(saved, X, W_ih, W_hh, plan, H, rev, gY, ghN, gcN, need):
    A, C, TC, Yp, h0, c0 = saved
    dtype = A.dtype
    dG = numpy.empty((4, A.shape[1], H), dtype=dtype)   # external order [i f g o]
    DC = numpy.empty((plan.B, H), dtype=dtype)
    cells = cpu_kernels.cells_for(dtype)
    if cells is not None:
        _lstm_bwd_steps_c(cells, A, C, TC, c0, W_hh, plan, H, gY, ghN, gcN, dG, DC)
    else:
        _lstm_bwd_steps_numpy(A, C, TC, c0, W_hh, plan, H, gY, ghN, gcN, dG, DC)
    return _lstm_window_grads(dG, DC, X, W_ih, W_hh.reshape(4, H, H), Yp, h0, plan, H, rev,
                              need)


def _lstm_bwd_setup(A, plan, H):
    """The per-step buffers of the backward loops: ``tmp4`` (B, 4H), ``DH`` (B, H)."""
    # Per step, dG_t is copied into one (B_t, 4H) row-major block so that
    # dh_prev = dG_t W_hh is a single GEMM (cheaper than 4 (H, H) GEMMs plus 3 adds).
    return (numpy.empty((plan.B, 4 * H), dtype=A.dtype),
            numpy.empty((plan.B, H), dtype=A.dtype))


def _lstm_bwd_steps_c(cells, A, C, TC, c0, W_hh, plan, H, gY, ghN, gcN, dG, DC):
    """The backward recurrence with the compiled cell: fills ``dG`` and ``DC``."""
    N, dtype = A.shape[1], A.dtype
    tmp4, DH = _lstm_bwd_setup(A, plan, H)
    matmul = numpy.matmul
    offsets, sizes = plan.offsets, plan.batch_sizes
    Bn = 0
    step = cells.lstm_bwd_step
    if gY is not None:
        gY = numpy.ascontiguousarray(gY, dtype=dtype)
    if c0 is not None:
        c0 = numpy.ascontiguousarray(c0, dtype=dtype)
    for t in range(plan.T - 1, -1, -1):
        s = offsets[t]
        Bt = sizes[t]
        if Bn:
            matmul(tmp4[:Bn], W_hh, out=DH[:Bn])
        if Bn < Bt:
            _start_rows(DH, ghN, Bn, Bt)
            _start_rows(DC, gcN, Bn, Bt)
        if t:
            step(A, N, s, Bt, H, TC, C, offsets[t - 1] * H, gY, DH, DC, dG, tmp4)
        else:
            step(A, N, s, Bt, H, TC, c0, 0, gY, DH, DC, dG, tmp4)
        Bn = Bt


def _lstm_bwd_steps_numpy(A, C, TC, c0, W_hh, plan, H, gY, ghN, gcN, dG, DC):
    """The backward recurrence in NumPy (no C compiler): fills ``dG`` and ``DC``."""
    B, dtype = plan.B, A.dtype
    tmp4, DH = _lstm_bwd_setup(A, plan, H)
    matmul = numpy.matmul
    offsets, sizes = plan.offsets, plan.batch_sizes
    Bn = 0
    ns = ne = None
    S3 = numpy.empty((3, B, H), dtype=dtype)
    T1 = numpy.empty((B, H), dtype=dtype)
    multiply, subtract, add = numpy.multiply, numpy.subtract, numpy.add
    for t in range(plan.T - 1, -1, -1):
        s = offsets[t]
        Bt = sizes[t]
        e = s + Bt
        if Bn:
            tm = tmp4[:Bn]
            tm.reshape(Bn, 4, H).transpose(1, 0, 2)[...] = dG[:, ns:ne]
            matmul(tm, W_hh, out=DH[:Bn])
        if Bn < Bt:
            _start_rows(DH, ghN, Bn, Bt)
            _start_rows(DC, gcN, Bn, Bt)
        dh = DH[:Bt]
        dc = DC[:Bt]
        if gY is not None:
            add(dh, gY[s:e], out=dh)
        i = A[0, s:e]
        f = A[1, s:e]
        o = A[2, s:e]
        g = A[3, s:e]
        tc = TC[s:e]
        sg = S3[:, :Bt]
        ifo = A[:3, s:e]
        subtract(1, ifo, out=sg)
        multiply(sg, ifo, out=sg)                       # s (1 - s) of i, f, o
        t1 = T1[:Bt]
        # output gate: dh * tanh(c) * o (1 - o)
        dgo = dG[3, s:e]
        multiply(dh, tc, out=dgo)
        multiply(dgo, S3[2, :Bt], out=dgo)
        # dc += dh * o * (1 - tanh(c)^2)
        multiply(tc, tc, out=t1)
        subtract(1, t1, out=t1)
        multiply(t1, o, out=t1)
        multiply(t1, dh, out=t1)
        add(dc, t1, out=dc)
        # input gate: dc * g * i (1 - i)
        dgi = dG[0, s:e]
        multiply(dc, g, out=dgi)
        multiply(dgi, S3[0, :Bt], out=dgi)
        # forget gate: dc * c_prev * f (1 - f)
        dgf = dG[1, s:e]
        if t:
            ps = offsets[t - 1]
            multiply(dc, C[ps:ps + Bt], out=dgf)
            multiply(dgf, S3[1, :Bt], out=dgf)
        elif c0 is not None:
            multiply(dc, c0, out=dgf)
            multiply(dgf, S3[1, :Bt], out=dgf)
        else:
            dgf.fill(0)
        # candidate: dc * i * (1 - g^2)
        dgg = dG[2, s:e]
        multiply(g, g, out=dgg)
        subtract(1, dgg, out=dgg)
        multiply(dgg, i, out=dgg)
        multiply(dgg, dc, out=dgg)
        # carry: dc_prev = dc * f
        multiply(dc, f, out=dc)
        Bn, ns, ne = Bt, s, e


def _lstm_window_grads(dG, DC, X, W_ih, Wh, Yp, h0, plan, H, rev, need):
    """The whole-window gradients from the gate gradients ``dG`` (4, N, H) [i f g o]."""
    B = plan.B
    dtype = dG.dtype
    out = {}
    if 'c0' in need:
        out['c0'] = DC
    if 'h0' in need:
        out['h0'] = numpy.matmul(dG[:, :B], Wh).sum(axis=0)
    if 'W_hh' in need:
        gW = numpy.empty((4, H, H), dtype=dtype)
        _hh_weight_grad(numpy, dG, Yp, h0, plan, gW)
        out['W_hh'] = gW.reshape(4 * H, H)
    if 'b' in need:
        out['b'] = dG.sum(axis=1).reshape(4 * H)
    if rev is not None and ('W_ih' in need or 'x' in need):
        dG = dG.take(rev, axis=1)
    if 'W_ih' in need:
        out['W_ih'] = numpy.matmul(dG.transpose(0, 2, 1), X).reshape(4 * H, -1)
    if 'x' in need:
        out['x'] = _input_grad_cpu(dG, W_ih, H)
    return out


def _start_rows(buf, g, lo, hi):
    """Rows ``lo:hi`` of a carried gradient (sequences whose last step is the current one)
    start from the final-state gradient ``g``, or from zeros when it is None."""
    buf[lo:hi] = 0 if g is None else g[lo:hi]


def _hh_weight_grad(xp, dG, Yp, h0, plan, out):
    """``out[k] = dG[k]^T H_prev`` over the whole window (one batched matmul)."""
    B = plan.B
    if plan.T > 1:
        if plan.equal:
            Hprev = Yp[:plan.N - B]
        else:
            Hprev = Yp.take(plan.index('prev', xp), axis=0)
        xp.matmul(dG[:, B:].transpose(0, 2, 1), Hprev, out=out)
        if h0 is not None:
            out += xp.matmul(dG[:, :B].transpose(0, 2, 1), h0)
    elif h0 is not None:
        xp.matmul(dG[:, :B].transpose(0, 2, 1), h0, out=out)
    else:
        out.fill(0)


def _sum_gate_matmuls(dG, W):
    """``sum_k dG[k] @ W[k]`` (the input gradient of a gate-major projection)."""
    gx = numpy.matmul(dG[0], W[0])
    for k in range(1, dG.shape[0]):
        gx += numpy.matmul(dG[k], W[k])
    return gx


# GRU: order [r z n], r and z negated (one exp pass), n unscaled; b_hr, b_hz folded into the
# input bias while b_hn stays with the hidden projection (r multiplies it).
_GRU_ORDER = (0, 1, 2)
_GRU_SCALE = (-1, -1, 1)


def _gru_inference_cpu(X, W_ih, W_hh, b_ih, b_hh, h0, c0, plan, H, rev):
    """Forward only, as :func:`_lstm_inference_cpu`: row-major ``[r | z | n]`` projections
    and the stepwise C cell of ``F.gru_cell`` per step."""
    cells = cpu_kernels.cells_for(X.dtype)
    G = _row_major_projection(numpy, X, W_ih, b_ih, rev)
    N = G.shape[0]
    B = plan.B
    dtype = G.dtype
    Y = numpy.empty((N, H), dtype=dtype)
    act = numpy.empty((B, 3 * H), dtype=dtype)
    gh = numpy.empty((B, 3 * H), dtype=dtype)
    WhT = W_hh.T
    h_prev = numpy.zeros((B, H), dtype=dtype) if h0 is None else \
        numpy.ascontiguousarray(h0, dtype)
    for s, Bt in zip(plan.offsets, plan.batch_sizes):
        e = s + Bt
        ght = gh[:Bt]
        numpy.matmul(h_prev[:Bt], WhT, out=ght)
        ght += b_hh
        cells.gru_cell_fwd(G[s:e], ght, h_prev, Bt, H, act[:Bt], Y[s:e])
        h_prev = Y[s:e]
    return Y, None, None


def _gru_forward_cpu(X, W_ih, W_hh, b_ih, b_hh, h0, c0, plan, H, rev):
    Wh = _gate_blocks(W_hh, H, _GRU_ORDER, _GRU_SCALE)
    b = b_ih.copy()
    b[:2 * H] += b_hh[:2 * H]
    b = _gate_blocks(b, H, _GRU_ORDER, _GRU_SCALE)
    b_hn = b_hh[2 * H:]
    A = _project_cpu(X, W_ih, H, _GRU_ORDER, _GRU_SCALE)        # (3, N, H)
    A += b
    if rev is not None:
        A = A.take(rev, axis=1)
    N = A.shape[1]
    B = plan.B
    dtype = A.dtype
    Y = numpy.empty((N, H), dtype=dtype)
    GHN = numpy.empty((N, H), dtype=dtype)
    hh = numpy.empty((3, B, H), dtype=dtype)
    WhT = Wh.transpose(0, 2, 1)
    matmul = numpy.matmul
    h_prev = h0
    cells = cpu_kernels.cells_for(dtype)
    if cells is not None:
        # compiled path: per step one batched GEMM + one fused C pass
        step = cells.gru_fwd_step
        b_hn = numpy.ascontiguousarray(b_hn, dtype=dtype)
        if h0 is not None:
            h0 = numpy.ascontiguousarray(h0, dtype=dtype)
        hs = B * H
        hp, hpo = h0, 0
        for s, Bt in zip(plan.offsets, plan.batch_sizes):
            if hp is not None:
                matmul(h_prev[:Bt], WhT, out=hh[:, :Bt])
                step(A, N, s, Bt, H, hh, hs, b_hn, hp, hpo, GHN, Y)
            else:
                step(A, N, s, Bt, H, None, hs, b_hn, None, 0, GHN, Y)
            h_prev = Y[s:s + Bt]
            hp, hpo = Y, s * H
        return Y, None, (A, GHN, Y, h0)
    tmp = numpy.empty((B, H), dtype=dtype)
    tanh, multiply, add = numpy.tanh, numpy.multiply, numpy.add
    with numpy.errstate(over='ignore', under='ignore'):
        for s, Bt in zip(plan.offsets, plan.batch_sizes):
            e = s + Bt
            rz = A[:2, s:e]
            ghn = GHN[s:e]
            if h_prev is not None:
                hht = hh[:, :Bt]
                matmul(h_prev[:Bt], WhT, out=hht)
                add(rz, hht[:2], out=rz)
                add(hht[2], b_hn, out=ghn)
            else:
                ghn[...] = b_hn
            _sigmoid_of_negated(rz)
            n = A[2, s:e]
            t1 = tmp[:Bt]
            multiply(A[0, s:e], ghn, out=t1)
            add(n, t1, out=n)
            tanh(n, out=n)
            y = Y[s:e]
            z = A[1, s:e]
            if h_prev is not None:
                numpy.subtract(h_prev[:Bt], n, out=y)
                multiply(y, z, out=y)
                add(y, n, out=y)
            else:
                multiply(z, n, out=y)
                numpy.subtract(n, y, out=y)
            h_prev = y
    return Y, None, (A, GHN, Y, h0)


def _gru_backward_cpu(saved, X, W_ih, W_hh, plan, H, rev, gY, ghN, gcN, need):
    A, GHN, Yp, h0 = saved
    N, B, dtype = A.shape[1], plan.B, A.dtype
    dGH = numpy.empty((3, N, H), dtype=dtype)           # d/d(h W_hh^T + b_hh), [r z n]
    dGIn = numpy.empty((N, H), dtype=dtype)             # d/d(n block of x W_ih^T + b_ih)
    CARRY = numpy.empty((B, H), dtype=dtype)
    cells = cpu_kernels.cells_for(dtype)
    if cells is not None:
        _gru_bwd_steps_c(cells, A, GHN, Yp, h0, W_hh, plan, H, gY, ghN, dGH, dGIn, CARRY)
    else:
        _gru_bwd_steps_numpy(A, GHN, Yp, h0, W_hh.reshape(3, H, H), plan, H, gY, ghN, dGH,
                             dGIn, CARRY)
    return _gru_window_grads(dGH, dGIn, CARRY, X, W_ih, W_hh.reshape(3, H, H), Yp, h0, plan,
                             H, rev, need)


def _gru_bwd_steps_c(cells, A, GHN, Yp, h0, W_hh, plan, H, gY, ghN, dGH, dGIn, CARRY):
    """The backward recurrence with the compiled cell: fills ``dGH``, ``dGIn``, ``CARRY``."""
    N, B, dtype = A.shape[1], plan.B, A.dtype
    TMP = numpy.empty((B, H), dtype=dtype)
    matmul = numpy.matmul
    offsets, sizes = plan.offsets, plan.batch_sizes
    Bn = 0
    step = cells.gru_bwd_step
    if gY is not None:
        gY = numpy.ascontiguousarray(gY, dtype=dtype)
    if h0 is not None:
        h0 = numpy.ascontiguousarray(h0, dtype=dtype)
    G3 = numpy.empty((B, 3 * H), dtype=dtype)      # [dr | dz | dn r] of the later step
    M = TMP
    for t in range(plan.T - 1, -1, -1):
        s = offsets[t]
        Bt = sizes[t]
        if Bn:
            matmul(G3[:Bn], W_hh, out=M[:Bn])
        if Bn < Bt:
            _start_rows(CARRY, ghN, Bn, Bt)
        if t:
            hp, hpo = Yp, offsets[t - 1] * H
        else:
            hp, hpo = h0, 0
        step(A, N, s, Bt, H, GHN, hp, hpo, gY, M if Bn else None, Bn, CARRY, dGH, dGIn,
             G3)
        Bn = Bt


def _gru_bwd_steps_numpy(A, GHN, Yp, h0, Wh, plan, H, gY, ghN, dGH, dGIn, CARRY):
    """The backward recurrence in NumPy (no C compiler): fills ``dGH``, ``dGIn``, ``CARRY``."""
    B, dtype = plan.B, A.dtype
    TMP = numpy.empty((B, H), dtype=dtype)
    matmul = numpy.matmul
    offsets, sizes = plan.offsets, plan.batch_sizes
    Bn = 0
    ns = ne = None
    tmp3 = numpy.empty((3, B, H), dtype=dtype)
    S2 = numpy.empty((2, B, H), dtype=dtype)
    multiply, subtract, add = numpy.multiply, numpy.subtract, numpy.add
    for t in range(plan.T - 1, -1, -1):
        s = offsets[t]
        Bt = sizes[t]
        e = s + Bt
        if Bn:
            tm = tmp3[:, :Bn]
            matmul(dGH[:, ns:ne], Wh, out=tm)
            c = CARRY[:Bn]
            add(c, tm[0], out=c)
            add(c, tm[1], out=c)
            add(c, tm[2], out=c)
        if Bn < Bt:
            _start_rows(CARRY, ghN, Bn, Bt)
        dh = CARRY[:Bt]
        if gY is not None:
            add(dh, gY[s:e], out=dh)
        r = A[0, s:e]
        z = A[1, s:e]
        n = A[2, s:e]
        sg = S2[:, :Bt]
        rz = A[:2, s:e]
        subtract(1, rz, out=sg)
        multiply(sg, rz, out=sg)
        t1 = TMP[:Bt]
        if t:
            ps = offsets[t - 1]
            h_prev = Yp[ps:ps + Bt]
        else:
            h_prev = h0
        # z: dh (h_prev - n) z (1 - z)
        dz = dGH[1, s:e]
        if h_prev is not None:
            subtract(h_prev, n, out=dz)
        else:
            numpy.negative(n, out=dz)
        multiply(dz, dh, out=dz)
        multiply(dz, S2[1, :Bt], out=dz)
        # n: dh (1 - z) (1 - n^2)
        dn = dGIn[s:e]
        subtract(1, z, out=dn)
        multiply(dn, dh, out=dn)
        multiply(n, n, out=t1)
        subtract(1, t1, out=t1)
        multiply(dn, t1, out=dn)
        # r: dn * (h W_hn^T + b_hn) * r (1 - r)
        dr = dGH[0, s:e]
        multiply(dn, GHN[s:e], out=dr)
        multiply(dr, S2[0, :Bt], out=dr)
        multiply(dn, r, out=dGH[2, s:e])
        # direct path to h_prev
        multiply(dh, z, out=dh)
        Bn, ns, ne = Bt, s, e


def _gru_window_grads(dGH, dGIn, CARRY, X, W_ih, Wh, Yp, h0, plan, H, rev, need):
    """The whole-window GRU gradients from ``dGH`` (3, N, H), ``dGIn`` (N, H) and the
    carry into ``h0``."""
    B = plan.B
    N = dGH.shape[1]
    dtype = dGH.dtype
    out = {}
    if 'h0' in need:
        out['h0'] = CARRY + numpy.matmul(dGH[:, :B], Wh).sum(axis=0)
    if 'W_hh' in need:
        gW = numpy.empty((3, H, H), dtype=dtype)
        _hh_weight_grad(numpy, dGH, Yp, h0, plan, gW)
        out['W_hh'] = gW.reshape(3 * H, H)
    if 'b_hh' in need:
        out['b_hh'] = dGH.sum(axis=1).reshape(3 * H)
    if 'b_ih' in need:
        gb = numpy.empty((3, H), dtype=dtype)
        dGH[:2].sum(axis=1, out=gb[:2])
        dGIn.sum(axis=0, out=gb[2])
        out['b_ih'] = gb.reshape(3 * H)
    if 'W_ih' in need or 'x' in need:
        dGI = numpy.empty((3, N, H), dtype=dtype)
        if rev is None:
            dGI[:2] = dGH[:2]
            dGI[2] = dGIn
        else:
            numpy.take(dGH[:2], rev, axis=1, out=dGI[:2])
            numpy.take(dGIn, rev, axis=0, out=dGI[2])
        if 'W_ih' in need:
            out['W_ih'] = numpy.matmul(dGI.transpose(0, 2, 1), X).reshape(3 * H, -1)
        if 'x' in need:
            out['x'] = _input_grad_cpu(dGI, W_ih, H)
    return out


# -- one direction of one layer: CuPy ----------------------------------------------------------
#
# Row-major ``(N, G*H)`` gate arrays; one fused elementwise kernel per step (forward and
# backward, see seqdbr.rnn.kernels) after one cuBLAS matmul.

def _lstm_forward_gpu(X, W_ih, W_hh, b_ih, b_hh, h0, c0, plan, H, rev):
    xp = backend.get_array_module(X)
    G = _row_major_projection(xp, X, W_ih, b_ih + b_hh, rev)
    N = G.shape[0]
    B = plan.B
    dtype = G.dtype
    Y = xp.empty((N, H), dtype=dtype)
    C = xp.empty((N, H), dtype=dtype)
    hh = xp.empty((B, 4 * H), dtype=dtype)
    zero = xp.zeros((), dtype=dtype)
    k = kernels.get_kernel('lstm_fwd')
    Wh_T = W_hh.T
    h_prev, c_prev = h0, c0
    for s, Bt in zip(plan.offsets, plan.batch_sizes):
        e = s + Bt
        a = G[s:e]
        cp = zero if c_prev is None else c_prev[:Bt]
        if h_prev is not None:
            xp.matmul(h_prev[:Bt], Wh_T, out=hh[:Bt])
            k(a, hh[:Bt], cp, H, 1, C[s:e], Y[s:e], a)
        else:
            k(a, a, cp, H, 0, C[s:e], Y[s:e], a)
        h_prev = Y[s:e]
        c_prev = C[s:e]
    return Y, C, (G, C, Y, h0, c0)


def _lstm_backward_gpu(saved, X, W_ih, W_hh, plan, H, rev, gY, ghN, gcN, need):
    A, C, Yp, h0, c0 = saved
    xp = backend.get_array_module(A)
    N = A.shape[0]
    B = plan.B
    dtype = A.dtype
    dG = xp.empty((N, 4 * H), dtype=dtype)
    DH = xp.empty((B, H), dtype=dtype)
    DC = xp.empty((B, H), dtype=dtype)
    zero = xp.zeros((), dtype=dtype)
    k = kernels.get_kernel('lstm_bwd')
    offsets, sizes = plan.offsets, plan.batch_sizes
    Bn = 0
    ns = ne = None
    for t in range(plan.T - 1, -1, -1):
        s = offsets[t]
        Bt = sizes[t]
        e = s + Bt
        if Bn:
            xp.matmul(dG[ns:ne], W_hh, out=DH[:Bn])
        if Bn < Bt:
            _start_rows(DH, ghN, Bn, Bt)
            _start_rows(DC, gcN, Bn, Bt)
        if t:
            ps = offsets[t - 1]
            c_prev = C[ps:ps + Bt]
        else:
            c_prev = zero if c0 is None else c0
        k(A[s:e], c_prev, C[s:e], DH[:Bt], zero if gY is None else gY[s:e], DC[:Bt], H,
          DC[:Bt], dG[s:e])
        Bn, ns, ne = Bt, s, e
    out = _row_major_window_grads(xp, dG, X, W_ih, W_hh, Yp, h0, plan, rev, need)
    if 'c0' in need:
        out['c0'] = DC
    return out


def _row_major_window_grads(xp, dG, X, W_ih, W_hh, Yp, h0, plan, rev, need):
    """The whole-window gradients (``h0``, ``W_hh``, ``b``, ``W_ih``, ``x``, as ``need``
    asks) from row-major pre-activation gradients ``dG`` ``(N, G*H)``."""
    out = {}
    if 'h0' in need:
        out['h0'] = xp.matmul(dG[:plan.B], W_hh)
    if 'W_hh' in need:
        gW = xp.empty((1,) + W_hh.shape, dtype=dG.dtype)
        _hh_weight_grad(xp, dG[None], Yp, h0, plan, gW)
        out['W_hh'] = gW[0]
    if 'b' in need:
        out['b'] = dG.sum(axis=0)
    if rev is not None and ('W_ih' in need or 'x' in need):
        dG = dG.take(rev, axis=0)
    if 'W_ih' in need:
        out['W_ih'] = xp.matmul(dG.T, X)
    if 'x' in need:
        out['x'] = dG if W_ih is None else xp.matmul(dG, W_ih)
    return out


def _gru_forward_gpu(X, W_ih, W_hh, b_ih, b_hh, h0, c0, plan, H, rev):
    xp = backend.get_array_module(X)
    GI = _row_major_projection(xp, X, W_ih, b_ih, rev)
    N = GI.shape[0]
    B = plan.B
    dtype = GI.dtype
    Y = xp.empty((N, H), dtype=dtype)
    ACT = xp.empty((N, 4 * H), dtype=dtype)
    hh = xp.empty((B, 3 * H), dtype=dtype)
    zero = xp.zeros((), dtype=dtype)
    k = kernels.get_kernel('gru_fwd')
    Wh_T = W_hh.T
    h_prev = h0
    for s, Bt in zip(plan.offsets, plan.batch_sizes):
        e = s + Bt
        if h_prev is not None:
            xp.matmul(h_prev[:Bt], Wh_T, out=hh[:Bt])
            k(GI[s:e], hh[:Bt], b_hh, h_prev[:Bt], H, 3, Y[s:e], ACT[s:e])
        else:
            k(GI[s:e], GI[s:e], b_hh, zero, H, 2, Y[s:e], ACT[s:e])
        h_prev = Y[s:e]
    return Y, None, (ACT, Y, h0)


def _gru_backward_gpu(saved, X, W_ih, W_hh, plan, H, rev, gY, ghN, gcN, need):
    ACT, Yp, h0 = saved
    xp = backend.get_array_module(ACT)
    N = ACT.shape[0]
    B = plan.B
    dtype = ACT.dtype
    dGI = xp.empty((N, 3 * H), dtype=dtype)
    dGH = xp.empty((N, 3 * H), dtype=dtype)
    CARRY = xp.empty((B, H), dtype=dtype)
    TMP = xp.empty((B, H), dtype=dtype)
    zero = xp.zeros((), dtype=dtype)
    k = kernels.get_kernel('gru_bwd')
    offsets, sizes = plan.offsets, plan.batch_sizes
    Bn = 0
    ns = ne = None
    for t in range(plan.T - 1, -1, -1):
        s = offsets[t]
        Bt = sizes[t]
        e = s + Bt
        if Bn:
            xp.matmul(dGH[ns:ne], W_hh, out=TMP[:Bn])
            CARRY[:Bn] += TMP[:Bn]
        if Bn < Bt:
            _start_rows(CARRY, ghN, Bn, Bt)
        if t:
            ps = offsets[t - 1]
            h_prev = Yp[ps:ps + Bt]
        else:
            h_prev = zero if h0 is None else h0
        k(ACT[s:e], h_prev, CARRY[:Bt], zero if gY is None else gY[s:e], H,
          CARRY[:Bt], dGI[s:e], dGH[s:e])
        Bn, ns, ne = Bt, s, e
    out = {}
    if 'h0' in need:
        out['h0'] = CARRY + xp.matmul(dGH[:B], W_hh)
    if 'W_hh' in need:
        gW = xp.empty((1, 3 * H, H), dtype=dtype)
        _hh_weight_grad(xp, dGH[None], Yp, h0, plan, gW)
        out['W_hh'] = gW[0]
    if 'b_hh' in need:
        out['b_hh'] = dGH.sum(axis=0)
    if 'b_ih' in need:
        out['b_ih'] = dGI.sum(axis=0)
    if rev is not None and ('W_ih' in need or 'x' in need):
        dGI = dGI.take(rev, axis=0)
    if 'W_ih' in need:
        out['W_ih'] = xp.matmul(dGI.T, X)
    if 'x' in need:
        out['x'] = dGI if W_ih is None else xp.matmul(dGI, W_ih)
    return out


# -- one direction of one layer: plain tanh / ReLU RNN (NumPy and CuPy alike) ---------------
#
# One gate: ``h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)``. Per step one GEMM into a
# preallocated buffer, one add and one activation written in place into the window output;
# the backward needs only the outputs (``tanh' = 1 - y^2``, ``relu' = [y > 0]``). A compiled
# cell would only fuse the add into the activation (the activation's own cost stays), so
# this path has none.

def _rnn_forward(act, X, W_ih, W_hh, b_ih, b_hh, h0, c0, plan, H, rev):
    xp = backend.get_array_module(X)
    Y = _row_major_projection(xp, X, W_ih, b_ih + b_hh, rev)       # (N, H), becomes h
    hh = xp.empty((plan.B, H), dtype=Y.dtype)
    WhT = W_hh.T
    h_prev = h0
    for s, Bt in zip(plan.offsets, plan.batch_sizes):
        a = Y[s:s + Bt]
        if h_prev is not None:
            xp.matmul(h_prev[:Bt], WhT, out=hh[:Bt])
            a += hh[:Bt]
        if act == 'tanh':
            xp.tanh(a, out=a)
        else:
            xp.maximum(a, 0, out=a)
        h_prev = a
    return Y, None, (Y, h0)


def _rnn_backward(act, saved, X, W_ih, W_hh, plan, H, rev, gY, ghN, gcN, need):
    Yp, h0 = saved
    xp = backend.get_array_module(Yp)
    dA = xp.empty_like(Yp)                       # gradient of the pre-activations
    DH = xp.empty((plan.B, H), dtype=Yp.dtype)
    offsets, sizes = plan.offsets, plan.batch_sizes
    Bn = 0
    ns = None
    for t in range(plan.T - 1, -1, -1):
        s = offsets[t]
        Bt = sizes[t]
        if Bn:
            xp.matmul(dA[ns:ns + Bn], W_hh, out=DH[:Bn])
        if Bn < Bt:
            _start_rows(DH, ghN, Bn, Bt)
        dh = DH[:Bt]
        if gY is not None:
            dh += gY[s:s + Bt]
        y = Yp[s:s + Bt]
        da = dA[s:s + Bt]
        if act == 'tanh':
            xp.multiply(y, y, out=da)
            xp.subtract(1, da, out=da)
            da *= dh
        else:
            xp.multiply(dh, y > 0, out=da)
        Bn, ns = Bt, s
    return _row_major_window_grads(xp, dA, X, W_ih, W_hh, Yp, h0, plan, rev, need)


def _rnn_impl(act):
    def fwd(*args):
        return _rnn_forward(act, *args)

    def bwd(*args):
        return _rnn_backward(act, *args)
    return fwd, bwd


_IMPL = {
    ('lstm', True): (_lstm_forward_cpu, _lstm_backward_cpu),
    ('lstm', False): (_lstm_forward_gpu, _lstm_backward_gpu),
    ('gru', True): (_gru_forward_cpu, _gru_backward_cpu),
    ('gru', False): (_gru_forward_gpu, _gru_backward_gpu),
    ('rnn_tanh', True): _rnn_impl('tanh'),
    ('rnn_tanh', False): _rnn_impl('tanh'),
    ('rnn_relu', True): _rnn_impl('relu'),
    ('rnn_relu', False): _rnn_impl('relu'),
}
#: CPU forward without a graph (nothing saved), used when the compiled cells are available.
_INFERENCE_CPU = {'lstm': _lstm_inference_cpu, 'gru': _gru_inference_cpu}


# -- the layer node -----------------------------------------------------------------------------

class _RNNLayer(FunctionNode):
    """One layer (one or two directions) of an n-step LSTM or GRU over a packed window.

    Inputs: ``X`` (N, in); per direction ``W_ih, W_hh, b_ih, b_hh``; then per direction
    ``h0`` (B, H) when given; then (LSTM) per direction ``c0`` when given. States are in
    the original batch order. Outputs: ``Y`` (N, D*H) packed, per direction ``hN`` and
    (LSTM) per direction ``cN``, (B, H) in the original order.
    """

    def __init__(self, kind, plan, n_dirs, has_h, has_c, projected=True):
        self.kind = kind
        self.plan = plan
        self.n_dirs = n_dirs
        self.has_h = has_h
        self.has_c = has_c
        self.projected = projected    # False: X holds the input pre-activations (W_ih absent)

    @property
    def label(self):
        name = {'rnn_tanh': 'RNNTanh', 'rnn_relu': 'RNNReLU'}.get(self.kind, self.kind.upper())
        return 'NStep%s%s' % ('Bi' if self.n_dirs == 2 else '', name)

    def _state_index(self, which, d):
        D = self.n_dirs
        base = 1 + 4 * D
        if which == 'h':
            return base + d if self.has_h else None
        if self.has_h:
            base += D
        return base + d if self.has_c else None

    def _sorted(self, a, xp):
        if a is None or self.plan.equal:
            return a
        return a.take(self.plan.index('order', xp), axis=0)

    def _unsorted(self, a, xp):
        if a is None or self.plan.equal:
            return a
        return a.take(self.plan.index('inv', xp), axis=0)

    def forward(self, inputs):
        X = inputs[0]
        xp = backend.get_array_module(X)
        cpu = xp is numpy
        if cpu:
            with numpy.errstate(under='ignore'):    # tiny products of saturated gates
                return self._forward(inputs, xp, cpu)
        return self._forward(inputs, xp, cpu)

    def _forward(self, inputs, xp, cpu):
        X = inputs[0]
        plan = self.plan
        D = self.n_dirs
        H = inputs[2].shape[1]
        self.H = H
        fwd = _IMPL[self.kind, cpu][0]
        if cpu and not config.enable_backprop and self.kind in _INFERENCE_CPU and \
                cpu_kernels.cells_for(X.dtype) is not None:
            fwd = _INFERENCE_CPU[self.kind]
        last = plan.index('last', xp)
        Ys, hNs, cNs, saved = [], [], [], []
        for d in range(D):
            W_ih, W_hh, b_ih, b_hh = inputs[1 + 4 * d:5 + 4 * d]
            if not self.projected:
                W_ih = None
            ih = self._state_index('h', d)
            ic = self._state_index('c', d)
            h0 = self._sorted(None if ih is None else inputs[ih], xp)
            c0 = self._sorted(None if ic is None else inputs[ic], xp)
            rev = plan.index('rev', xp) if d else None
            Yp, C, sv = fwd(X, W_ih, W_hh, b_ih, b_hh, h0, c0, plan, H, rev)
            saved.append(sv)
            hNs.append(Yp.take(last, axis=0))
            if C is not None:
                cNs.append(C.take(last, axis=0))
            Ys.append(Yp if rev is None else Yp.take(rev, axis=0))
        self.saved = saved
        Y = Ys[0] if D == 1 else xp.concatenate(Ys, axis=1)
        return (Y,) + tuple(hNs) + tuple(cNs)

    def backward(self, indexes, grad_outputs):
        xp = backend.get_array_module(self.inputs[0].array)
        if xp is numpy:
            with numpy.errstate(under='ignore'):
                return self._backward(indexes, grad_outputs, xp, True)
        return self._backward(indexes, grad_outputs, xp, False)

    def _backward(self, indexes, grad_outputs, xp, cpu):
        inputs = [v.array for v in self.inputs]
        X = inputs[0]
        plan = self.plan
        D = self.n_dirs
        H = self.H
        lstm = self.kind == 'lstm'
        one_bias = self.kind != 'gru'        # the two biases only ever enter as a sum
        bwd = _IMPL[self.kind, cpu][1]
        gY = grad_outputs[0]
        grads = [None] * len(inputs)
        gX = None
        for d in range(D):
            k = 1 + 4 * d
            ih = self._state_index('h', d)
            ic = self._state_index('c', d)
            need = set()
            if 0 in indexes:
                need.add('x')
            for j, name in enumerate(('W_ih', 'W_hh', 'b_ih', 'b_hh')):
                if k + j in indexes:
                    need.add(name)
            if one_bias and ('b_ih' in need or 'b_hh' in need):
                need.add('b')
            if ih is not None and ih in indexes:
                need.add('h0')
            if ic is not None and ic in indexes:
                need.add('c0')
            rev = plan.index('rev', xp) if d else None
            gYd = None
            if gY is not None:
                gYd = gY if D == 1 else gY[:, d * H:(d + 1) * H]
                if rev is not None:
                    gYd = gYd.take(rev, axis=0)
            ghN = self._sorted(grad_outputs[1 + d], xp)
            gcN = self._sorted(grad_outputs[1 + D + d], xp) if lstm else None
            W_ih = inputs[k] if self.projected else None
            res = bwd(self.saved[d], X, W_ih, inputs[k + 1], plan, H, rev, gYd, ghN, gcN, need)
            grads[k] = res.get('W_ih')
            grads[k + 1] = res.get('W_hh')
            if one_bias:
                gb = res.get('b')
                if gb is not None:
                    grads[k + 2] = gb
                    grads[k + 3] = gb.copy() if k + 2 in indexes else gb
            else:
                grads[k + 2] = res.get('b_ih')
                grads[k + 3] = res.get('b_hh')
            if 'h0' in need:
                grads[ih] = self._unsorted(res['h0'], xp)
            if 'c0' in need:
                grads[ic] = self._unsorted(res['c0'], xp)
            if 'x' in need:
                gX = res['x'] if gX is None else gX + res['x']
        grads[0] = gX
        return tuple(grads)


# -- public functions -----------------------------------------------------------------------

def _array(v):
    return v.array if isinstance(v, Variable) else v


def _check_int(fname, name, v, low):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < low:
        raise ValueError('%s: %s must be an int >= %d, got %r' % (fname, name, low, v))
    return int(v)


def _n_step_rnn(fname, kind, bi, n_layers, dropout_ratio, hx, cx, ws, bs, xs):
    """The body of every n-step function: check the inputs, then run the layers."""
    n_layers = _check_int(fname, 'n_layers', n_layers, 1)
    if isinstance(dropout_ratio, bool) or not isinstance(dropout_ratio, numbers.Real) \
            or not 0 <= dropout_ratio < 1:
        raise ValueError('%s: dropout_ratio must be a number in [0, 1), got %r'
                         % (fname, dropout_ratio))
    D = 2 if bi else 1
    lengths, in_size, x0, as_3d = _check_sequences(fname, xs)
    H, projected = _check_weights(fname, kind, bi, n_layers, ws, bs, in_size, x0)
    for name, s in (('hx', hx), ('cx', cx)):
        _check_state(fname, name, s, (n_layers * D, len(lengths), H), bi, x0)
    plan = _seq_batch(lengths)
    if as_3d:
        X = _PackBatchMajor().apply((xs,))[0]
    else:
        X = _PackSequences(plan).apply(tuple(xs))[0]
    X, hy, cy = _run_layers(kind, D, n_layers, dropout_ratio, plan, projected, hx, cx, ws, bs,
                            X, backend.get_array_module(x0))
    ys = _UnpackSequences(plan, as_3d).apply((X,))
    return hy, cy, (ys[0] if as_3d else list(ys))


def _check_sequences(fname, xs):
    """(lengths, in_size, first array, as_3d) of a list of ``(T_i, in_size)`` sequences or
    one ``(B, T, in_size)`` array; ValueError/TypeError naming the bad one."""
    if isinstance(xs, (list, tuple)):
        if not xs:
            raise ValueError('%s: xs is empty; pass a list of B >= 1 sequences of shape '
                             '(T_i, in_size)' % fname)
        xarr = [_array(x) for x in xs]
        for b, a in enumerate(xarr):
            if not hasattr(a, 'ndim') or a.ndim != 2 or a.shape[0] < 1:
                raise ValueError('%s: xs[%d] has shape %s; every sequence must be a 2-d array '
                                 '(T_i, in_size) with T_i >= 1'
                                 % (fname, b, getattr(a, 'shape', type(a).__name__)))
            if a.shape[1] != xarr[0].shape[1] or a.dtype != xarr[0].dtype:
                raise ValueError('%s: xs[%d] has shape %s and dtype %s but xs[0] has shape %s '
                                 'and dtype %s; all sequences need one in_size and dtype'
                                 % (fname, b, a.shape, a.dtype, xarr[0].shape, xarr[0].dtype))
        lengths, x0, as_3d = [int(a.shape[0]) for a in xarr], xarr[0], False
        in_size = x0.shape[1]
    else:
        x0 = _array(xs)
        if not hasattr(x0, 'ndim') or x0.ndim != 3 or x0.shape[0] < 1 or x0.shape[1] < 1:
            raise ValueError('%s: xs must be a list of B arrays (T_i, in_size) or one array '
                             '(B, T, in_size) of equal-length sequences, got %s'
                             % (fname, getattr(x0, 'shape', type(xs).__name__)))
        B3, T3, in_size = x0.shape
        lengths, as_3d = [int(T3)] * int(B3), True
    if x0.dtype.kind != 'f':
        raise TypeError('%s: xs must be float arrays, got dtype %s; cast with '
                        '.astype(numpy.float32) (or embed integer ids first)' % (fname, x0.dtype))
    return lengths, in_size, x0, as_3d


def _check_weights(fname, kind, bi, n_layers, ws, bs, in_size, x0):
    """(H, projected) from ``ws``/``bs``, after checking every shape, dtype and device."""
    D = 2 if bi else 1
    Gm = {'lstm': 4, 'gru': 3}.get(kind, 1)
    K = n_layers * D
    gates = {'lstm': '[i | f | g | o]', 'gru': '[r | z | n]'}.get(kind, '(one block)')
    if not isinstance(ws, (list, tuple)) or len(ws) != K or \
            not isinstance(bs, (list, tuple)) or len(bs) != K:
        raise ValueError('%s: ws and bs must be lists of %d entries (n_layers=%d%s), got %s and '
                         '%s entries' % (fname, K, n_layers, ' x 2 directions' if bi else '',
                                         len(ws) if isinstance(ws, (list, tuple)) else '?',
                                         len(bs) if isinstance(bs, (list, tuple)) else '?'))
    if not isinstance(ws[0], (list, tuple)) or len(ws[0]) != 2:
        raise ValueError('%s: ws[0] must be [W_ih, W_hh]' % fname)
    H = _array(ws[0][1]).shape[-1]
    projected = ws[0][0] is not None
    if not projected:
        if bi:
            raise ValueError('%s: W_ih of layer 0 may be None only for a unidirectional '
                             'network (both directions need their own input projection)'
                             % fname)
        if in_size != Gm * H:
            raise ValueError('%s: W_ih of layer 0 is None, so xs must hold the layer-0 input '
                             'pre-activations x W_ih^T with %d * H = %d features, but they have '
                             '%d (pass W_ih, or e.g. embed ids with a table of %d columns)'
                             % (fname, Gm, Gm * H, in_size, Gm * H))
    xp = backend.get_array_module(x0)
    for k in range(K):
        if not isinstance(ws[k], (list, tuple)) or len(ws[k]) != 2 or \
                not isinstance(bs[k], (list, tuple)) or len(bs[k]) != 2:
            raise ValueError('%s: ws[%d] must be [W_ih, W_hh] and bs[%d] [b_ih, b_hh]'
                             % (fname, k, k))
        layer_in = in_size if k < D else D * H
        expect = (('W_ih', ws[k][0], (Gm * H, layer_in)), ('W_hh', ws[k][1], (Gm * H, H)),
                  ('b_ih', bs[k][0], (Gm * H,)), ('b_hh', bs[k][1], (Gm * H,)))
        if k == 0 and not projected:
            expect = expect[1:]
        for name, v, shape in expect:
            a = _array(v)
            if not hasattr(a, 'shape') or a.shape != shape:
                raise ValueError(
                    '%s: %s of layer %d%s has shape %s but must be %s (H=%d, gates %s, input '
                    'size %d%s)' % (fname, name, k // D, ', direction %d' % (k % D) if bi else '',
                                    getattr(a, 'shape', type(a).__name__), shape, H, gates,
                                    layer_in, ' = in_size of xs' if k < D else
                                    ' = output size of the layer below'))
            if a.dtype != x0.dtype or backend.get_array_module(a) is not xp:
                raise TypeError('%s: %s of layer %d has dtype %s on %s but xs are %s on %s; '
                                'use one dtype and device' % (fname, name, k // D, a.dtype,
                                                              type(a).__name__, x0.dtype,
                                                              type(x0).__name__))
    return H, projected


def _check_state(fname, name, s, shape, bi, x0):
    """ValueError/TypeError unless ``s`` is None or a ``(K, B, H)`` array like ``x0``."""
    if s is None:
        return
    a = _array(s)
    if not hasattr(a, 'shape') or a.shape != shape:
        raise ValueError('%s: %s has shape %s but must be (n_layers%s, B, H) = (%d, %d, %d); '
                         'pass None for zeros' % ((fname, name, getattr(a, 'shape', None),
                                                   ' * 2' if bi else '') + shape))
    if a.dtype != x0.dtype or backend.get_array_module(a) is not backend.get_array_module(x0):
        raise TypeError('%s: %s has dtype %s but xs have %s (or another device)'
                        % (fname, name, a.dtype, x0.dtype))


def _run_layers(kind, D, n_layers, dropout_ratio, plan, projected, hx, cx, ws, bs, X, xp):
    """Apply the ``n_layers`` fused layer nodes to the packed input ``X``; returns
    ``(X, hy, cy)`` (``cy`` None unless LSTM)."""
    hs = _SplitStates().apply((hx,)) if hx is not None else None
    cs = _SplitStates().apply((cx,)) if cx is not None else None
    hys, cys = [], []
    use_dropout = dropout_ratio > 0 and config.train
    for layer in range(n_layers):
        if layer and use_dropout:
            from seqdbr.core.functions.noise import dropout
            X = dropout(X, dropout_ratio)
        ks = range(layer * D, layer * D + D)
        ins = [X]
        for k in ks:
            W_ih = ws[k][0]
            if W_ih is None:    # placeholder input; the node reads X as the pre-activations
                W_ih = xp.empty((0,), dtype=X.dtype)
            ins.extend((W_ih, ws[k][1], bs[k][0], bs[k][1]))
        if hs is not None:
            ins.extend(hs[k] for k in ks)
        if cs is not None:
            ins.extend(cs[k] for k in ks)
        node = _RNNLayer(kind, plan, D, hs is not None, kind == 'lstm' and cs is not None,
                         projected=layer > 0 or projected)
        outs = node.apply(ins)
        X = outs[0]
        hys.extend(outs[1:1 + D])
        if kind == 'lstm':
            cys.extend(outs[1 + D:1 + 2 * D])
    hy = _StackStates().apply(hys)[0]
    cy = _StackStates().apply(cys)[0] if kind == 'lstm' else None
    return X, hy, cy


_COMMON_ARGS = '''
    Args:
        n_layers (int): number of stacked layers (>= 1).
        dropout_ratio (float): dropout in [0, 1) applied to the input of every layer but the
            first (never to the input of layer 0 or to the output of the last layer); it is the
            identity when ``config.train`` is False.
        hx (Variable, array or None): initial hidden states ``(K, B, H)`` with {K}; None
            means zeros.{cx}
        ws (list of K lists): ``ws[k] = [W_ih, W_hh]`` with ``W_ih`` of shape
            ``({G}H, in_k)`` (``in_k`` = ``in_size`` for layer 0, {below} above) and ``W_hh``
            of shape ``({G}H, H)``; gate blocks {gates} along the first axis (PyTorch/cuDNN
            layout: ``torch.nn.{torch}``'s ``weight_ih_l*``/``weight_hh_l*`` can be used as
            they are).{none}
        bs (list of K lists): ``bs[k] = [b_ih, b_hh]``, each ``({G}H,)``.
        xs: a list of ``B`` Variables/arrays of shape ``(T_i, in_size)``, ``T_i >= 1``, in any
            order and of any lengths; or one ``(B, T, in_size)`` Variable/array of equal-length
            sequences (the fastest form: no per-sequence split or join at all). float32 or
            float64, all arrays (weights and states too) of one dtype and device.

    Returns:
        tuple ``{ret}``: ``hy`` {K_} ``(K, B, H)``: ``hy[k, b]`` is the state after the
        last step of sequence ``b``{bwd_note}{cy_ret};
        ``ys``: a list of ``B`` Variables ``(T_i, {DH})`` in the order of ``xs`` (one
        ``(B, T, {DH})`` Variable when ``xs`` was one 3-d array){ys_bi}.

    Raises:
        ValueError: empty or non-2-d sequences, differing feature sizes, wrong numbers of
            weights, or weight/state shapes that do not match (the message names the layer,
            the shapes and the expected shape).
        TypeError: non-float inputs, mixed dtypes or devices.
'''


def n_step_lstm(n_layers, dropout_ratio, hx, cx, ws, bs, xs):
    """Multi-layer LSTM over a whole window of variable-length sequences.

    Each layer runs the LSTM of :func:`seqdbr.rnn.lstm` (Hochreiter & Schmidhuber 1997, forget
    gate of Gers et al. 2000) with ``a_t = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh``, as
    ``torch.nn.LSTM`` and cuDNN do; layer ``l > 0`` reads the (dropped-out) outputs of layer
    ``l - 1``. Sequences are sorted by length and packed internally; the result is returned in
    the original order. See the module docstring for how the window is computed.
    """
    return _n_step_rnn('n_step_lstm', 'lstm', False, n_layers, dropout_ratio, hx, cx, ws, bs, xs)


def n_step_bilstm(n_layers, dropout_ratio, hx, cx, ws, bs, xs):
    """Bidirectional multi-layer LSTM: like :func:`n_step_lstm` with a forward-in-time and a
    backward-in-time LSTM per layer whose outputs are concatenated ``[forward | backward]``
    (``2H`` features) and fed to the next layer. Index ``k = 2 * layer + direction`` for
    ``ws``, ``bs``, ``hx``, ``cx``, ``hy``, ``cy`` (PyTorch/Chainer order).
    """
    return _n_step_rnn('n_step_bilstm', 'lstm', True, n_layers, dropout_ratio, hx, cx, ws, bs,
                       xs)


def n_step_gru(n_layers, dropout_ratio, hx, ws, bs, xs):
    """Multi-layer GRU over a whole window of variable-length sequences.

    Each layer runs the cuDNN/PyTorch GRU of :func:`seqdbr.rnn.gru_cell` (Cho et al. 2014 with
    the reset gate applied to ``h W_hn^T + b_hn``)::

        r = sigmoid(x W_ir^T + b_ir + h W_hr^T + b_hr)
        z = sigmoid(x W_iz^T + b_iz + h W_hz^T + b_hz)
        n = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn))
        h' = (1 - z) * n + z * h
    """
    hy, _, ys = _n_step_rnn('n_step_gru', 'gru', False, n_layers, dropout_ratio, hx, None, ws,
                            bs, xs)
    return hy, ys


def n_step_bigru(n_layers, dropout_ratio, hx, ws, bs, xs):
    """Bidirectional multi-layer GRU (see :func:`n_step_gru` and :func:`n_step_bilstm`)."""
    hy, _, ys = _n_step_rnn('n_step_bigru', 'gru', True, n_layers, dropout_ratio, hx, None, ws,
                            bs, xs)
    return hy, ys


def _rnn_kind(fname, activation):
    if activation not in ('tanh', 'relu'):
        raise ValueError("%s: activation must be 'tanh' or 'relu', got %r" % (fname, activation))
    return 'rnn_' + activation


def n_step_rnn(n_layers, dropout_ratio, hx, ws, bs, xs, activation='tanh'):
    """Multi-layer plain (Elman) RNN over a whole window of variable-length sequences.

    Each layer computes ``h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)`` with
    ``act`` tanh or ReLU (Elman 1990; the form of ``torch.nn.RNN`` and Chainer's
    ``n_step_rnn``), on the same packed whole-window path as :func:`n_step_lstm`: one input
    projection per layer, one ``h W_hh^T`` GEMM and one in-place activation per step, and
    whole-window weight gradients.
    """
    hy, _, ys = _n_step_rnn('n_step_rnn', _rnn_kind('n_step_rnn', activation), False, n_layers,
                            dropout_ratio, hx, None, ws, bs, xs)
    return hy, ys


def n_step_birnn(n_layers, dropout_ratio, hx, ws, bs, xs, activation='tanh'):
    """Bidirectional multi-layer plain RNN (see :func:`n_step_rnn` and
    :func:`n_step_bilstm`)."""
    hy, _, ys = _n_step_rnn('n_step_birnn', _rnn_kind('n_step_birnn', activation), True,
                            n_layers, dropout_ratio, hx, None, ws, bs, xs)
    return hy, ys


def _fill_doc(f, K, G, gates, torch, bi, lstm):
    DH = '2H' if bi else 'H'
    f.__doc__ += _COMMON_ARGS.format(
        K='K = 2 * n_layers (index 2 * layer + direction)' if bi else 'K = n_layers',
        K_='(Variable)',
        cx=('\n        cx (Variable, array or None): initial cell states, same shape as hx; '
            'None means zeros.' if lstm else ''),
        G=G, gates=gates, torch=torch,
        below='2H' if bi else 'H',
        ret='(hy, cy, ys)' if lstm else '(hy, ys)',
        cy_ret='; ``cy`` (Variable) ``(K, B, H)`` the matching cell states' if lstm else '',
        DH=DH,
        bwd_note=' (its first step, for a backward direction)' if bi else '',
        ys_bi=', features ``[forward | backward]``' if bi else '',
        none='' if bi else (
            '\n            ``ws[0][0]`` (W_ih of layer 0) may be None: then ``xs`` must already be '
            'the\n            layer-0 input projections ``x W_ih^T`` ({G}H features; ``b_ih`` is '
            'still\n            added). With an embedding of ``{G}H`` columns (``F.embed_id``) '
            'this folds the\n            embedding and the input projection of layer 0 into one '
            'lookup and saves\n            three of the six big matmuls of that layer '
            '(projection, dW_ih, dx).'.format(G=G)))


_fill_doc(n_step_lstm, 'K', 4, '[i | f | g | o]', 'LSTM', False, True)
_fill_doc(n_step_bilstm, 'K', 4, '[i | f | g | o]', 'LSTM', True, True)
_fill_doc(n_step_gru, 'K', 3, '[r | z | n]', 'GRU', False, False)
_fill_doc(n_step_rnn, 'K', '', '(one block)', 'RNN', False, False)
_fill_doc(n_step_birnn, 'K', '', '(one block)', 'RNN', True, False)
for _f in (n_step_rnn, n_step_birnn):
    _f.__doc__ = _f.__doc__.replace(
        '\n    Returns:', "        activation (str): ``'tanh'`` (default) or ``'relu'`` "
        "(ValueError otherwise).\n\n    Returns:", 1)
_fill_doc(n_step_bigru, 'K', 3, '[r | z | n]', 'GRU', True, False)
