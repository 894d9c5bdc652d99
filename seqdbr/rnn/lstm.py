"""The fused LSTM cell ``lstm(c_prev, x) -> (c, h)``.

One function node computes all four gates, the new cell state and the output from
the gate pre-activations, so a step of an LSTM is ``linear`` (input) + ``linear``
(recurrent) + this node. On the CPU one fused C pass does the forward and one the
backward when the optional extension is built (``seqdbr.rnn.cpu_kernels``); otherwise
NumPy computes the activations in place on one ``(B', 4H)`` buffer that backward reuses.
On the GPU one elementwise kernel does the forward and one the backward
(``seqdbr.rnn.kernels``).
"""
import numpy

from seqdbr.core import backend
from seqdbr.core.function_node import FunctionNode
from seqdbr.core.variable import Variable
from seqdbr.rnn import cpu_kernels, kernels

__all__ = ['lstm']

_scale_cache = {}


def _gate_scale(H, dtype):
    """``(4H,)`` vector: -1 on the sigmoid gates i, f, o and -2 on the candidate g."""
    key = (H, dtype)
    s = _scale_cache.get(key)
    if s is None:
        s = numpy.full(4 * H, -1, dtype=dtype)
        s[2 * H:3 * H] = -2
        _scale_cache[key] = s
    return s


def _sigmoid_of_negated(a):
    """In place: ``a <- 1 / (1 + exp(a))``, i.e. ``sigmoid(x)`` for ``a = -x``.

    Call it under ``numpy.errstate(over='ignore', under='ignore')``: ``exp`` overflows to inf
    for ``a`` above about 88 (float32), which gives exactly 0, the correctly rounded sigmoid
    there (and underflows harmlessly for very negative ``a``). NumPy's float32 ``exp`` is about
    twice as fast as its ``tanh``, so every gate goes through this.
    """
    numpy.exp(a, out=a)
    numpy.add(a, 1, out=a)
    numpy.reciprocal(a, out=a)


def _lstm_activations_cpu(x):
    """``(B, 4H)`` pre-activations -> new ``(B, 4H)`` array ``[sig(i), sig(f), tanh(g), sig(o)]``.

    ``tanh(g) = 2 sigmoid(2g) - 1``, so one ``exp`` pass covers all four gates.
    """
    H = x.shape[1] // 4
    a = numpy.multiply(x, _gate_scale(H, x.dtype))
    with numpy.errstate(over='ignore', under='ignore'):
        _sigmoid_of_negated(a)
    g = a[:, 2 * H:3 * H]
    numpy.multiply(g, 2, out=g)
    numpy.subtract(g, 1, out=g)
    return a


class LSTM(FunctionNode):
    """Fused LSTM cell; see :func:`lstm`."""

    def forward_cpu(self, inputs):
        c_prev, x = inputs
        B, H = c_prev.shape
        Bx = x.shape[0]
        cells = cpu_kernels.cells_for(x.dtype)
        if cells is not None:
            # compiled path: one fused pass (seqdbr.rnn.cpu_kernels)
            x = numpy.ascontiguousarray(x)
            c_prev = numpy.ascontiguousarray(c_prev)
            a = numpy.empty_like(x)
            c = numpy.empty_like(c_prev)
            tc = numpy.empty((Bx, H), dtype=x.dtype)
            h = numpy.empty((Bx, H), dtype=x.dtype)
            cells.lstm_cell_fwd(x, c_prev, Bx, H, a, c, tc, h)
            if Bx < B:
                c[Bx:] = c_prev[Bx:]
            self.act = a
            self.tc = tc
            return c, h
        a = _lstm_activations_cpu(x)
        i = a[:, :H]
        f = a[:, H:2 * H]
        g = a[:, 2 * H:3 * H]
        o = a[:, 3 * H:]
        c = numpy.empty_like(c_prev)
        ca = c[:Bx]
        numpy.multiply(f, c_prev[:Bx], out=ca)
        tmp = i * g
        ca += tmp
        if Bx < B:
            c[Bx:] = c_prev[Bx:]
        tc = numpy.tanh(ca, out=tmp)
        h = o * tc
        self.act = a
        self.tc = tc
        return c, h

    def forward_gpu(self, inputs):
        c_prev, x = inputs
        xp = backend.get_array_module(x)
        B, H = c_prev.shape
        Bx = x.shape[0]
        x = xp.ascontiguousarray(x)
        c = xp.empty_like(c_prev)
        h = xp.empty((Bx, H), dtype=x.dtype)
        act = xp.empty_like(x)
        kernels.get_kernel('lstm_fwd')(x, x, c_prev[:Bx], H, 0, c[:Bx], h, act)
        if Bx < B:
            c[Bx:] = c_prev[Bx:]
        self.act = act
        self.retain_outputs((0,))
        return c, h

    def backward(self, indexes, grad_outputs):
        gc, gh = grad_outputs
        c_prev = self.inputs[0].array
        if type(c_prev) is numpy.ndarray:
            with numpy.errstate(under='ignore'):  # products of tiny gate derivatives
                return self._backward_cpu(c_prev, gc, gh)
        return self._backward_gpu(c_prev, gc, gh)

    def _backward_cpu(self, c_prev, gc, gh):
        B, H = c_prev.shape
        a = self.act
        Bx = a.shape[0]
        tc = self.tc
        cells = cpu_kernels.cells_for(a.dtype)
        if cells is not None:
            # outputs C-ordered whatever the inputs' layout (the kernel writes them flat)
            gc_prev = numpy.empty(c_prev.shape, dtype=c_prev.dtype)
            if gc is None:
                gc_prev.fill(0)
            else:
                gc_prev[...] = gc
            gx = numpy.empty(a.shape, dtype=a.dtype)
            cells.lstm_cell_bwd(numpy.ascontiguousarray(a), numpy.ascontiguousarray(tc),
                                numpy.ascontiguousarray(c_prev),
                                None if gh is None else numpy.ascontiguousarray(gh, a.dtype),
                                Bx, H, gc_prev, gx)
            return gc_prev, gx
        i = a[:, :H]
        f = a[:, H:2 * H]
        g = a[:, 2 * H:3 * H]
        o = a[:, 3 * H:]
        gx = numpy.empty_like(a)
        gi = gx[:, :H]
        gf = gx[:, H:2 * H]
        gg = gx[:, 2 * H:3 * H]
        go = gx[:, 3 * H:]
        tmp = numpy.empty_like(tc)
        if gh is not None:
            # go = gh * tanh(c) * o (1 - o)
            numpy.multiply(gh, tc, out=go)
            numpy.subtract(1, o, out=tmp)
            tmp *= o
            go *= tmp
            # dc = gc + gh * o * (1 - tanh(c)^2)
            dc = numpy.multiply(tc, tc)
            numpy.subtract(1, dc, out=dc)
            dc *= o
            dc *= gh
            if gc is not None:
                dc += gc[:Bx]
        else:
            go.fill(0)
            dc = gc[:Bx]
        # gi = dc * g * i (1 - i)
        numpy.subtract(1, i, out=tmp)
        tmp *= i
        tmp *= g
        numpy.multiply(dc, tmp, out=gi)
        # gf = dc * c_prev * f (1 - f)
        numpy.subtract(1, f, out=tmp)
        tmp *= f
        tmp *= c_prev[:Bx]
        numpy.multiply(dc, tmp, out=gf)
        # gg = dc * i * (1 - g^2)
        numpy.multiply(g, g, out=tmp)
        numpy.subtract(1, tmp, out=tmp)
        tmp *= i
        numpy.multiply(dc, tmp, out=gg)
        gc_prev = numpy.empty_like(c_prev)
        numpy.multiply(dc, f, out=gc_prev[:Bx])
        if Bx < B:
            if gc is None:
                gc_prev[Bx:] = 0
            else:
                gc_prev[Bx:] = gc[Bx:]
        return gc_prev, gx

    def _backward_gpu(self, c_prev, gc, gh):
        xp = backend.get_array_module(c_prev)
        B, H = c_prev.shape
        act = self.act
        Bx = act.shape[0]
        c = self._out_arrays[0]
        zero = xp.zeros((), dtype=c.dtype)
        gc_prev = xp.empty_like(c_prev)
        gx = xp.empty_like(act)
        kernels.get_kernel('lstm_bwd')(
            act, c_prev[:Bx], c[:Bx], zero if gh is None else gh, zero,
            zero if gc is None else gc[:Bx], H, gc_prev[:Bx], gx)
        if Bx < B:
            if gc is None:
                gc_prev[Bx:] = 0
            else:
                gc_prev[Bx:] = gc[Bx:]
        return gc_prev, gx


def _array(v):
    return v.array if isinstance(v, Variable) else v


def lstm(c_prev, x):
    """Fused LSTM cell with forget gate: one step from pre-activations.

    Equations (Hochreiter & Schmidhuber 1997; forget gate of Gers et al. 2000), with the
    gate pre-activations ``x`` laid out in blocks ``[i | f | g | o]`` (the cuDNN/PyTorch
    order: ``x[:, 0:H]`` input gate, ``x[:, H:2H]`` forget gate, ``x[:, 2H:3H]`` cell
    candidate, ``x[:, 3H:4H]`` output gate)::

        i = sigmoid(x_i)   f = sigmoid(x_f)   g = tanh(x_g)   o = sigmoid(x_o)
        c = f * c_prev + i * g
        h = o * tanh(c)

    Typically ``x = x_t W_ih^T + h_{t-1} W_hh^T + b``. Numerics: ``sigmoid(x) = 1 / (1 +
    exp(-x))`` and ``tanh(g) = 2 sigmoid(2g) - 1`` on the CPU (an ``exp`` that overflows for
    very negative inputs yields exactly 0; the overflow is expected and never warns),
    ``(1 + tanh(x / 2)) / 2`` on the GPU; no input can produce NaN or a warning.

    Shrinking batches: ``x`` may have fewer rows than ``c_prev`` (``B' <= B``), as when
    the shortest sequences of a length-sorted batch have ended. Rows ``B'..B-1`` of ``c``
    are copies of ``c_prev`` (their gradient passes straight through) and ``h`` has only
    the ``B'`` active rows.

    Args:
        c_prev (Variable or array): previous cell state, shape ``(B, H)``, float16,
            float32 or float64, on NumPy or CuPy (float16 runs the float16 instantiation of
            the fused CUDA kernels on CuPy and NumPy's float16 arithmetic on the CPU: about
            3 significant digits, see ``tests/rnn/test_float16.py``).
        x (Variable or array): gate pre-activations, shape ``(B', 4H)`` with ``B' <= B``,
            same dtype and device as ``c_prev``.

    Returns:
        tuple ``(c, h)`` of Variables: ``c`` of shape ``(B, H)`` and ``h`` of shape
        ``(B', H)``. Backward works when only one of them is used downstream.

    Raises:
        TypeError: non-float or differing dtypes, or arrays on different devices.
        ValueError: not 2-d, ``x.shape[1] != 4 * c_prev.shape[1]``, or ``B' > B``.
    """
    ca = _array(c_prev)
    xa = _array(x)
    for name, arr in (('c_prev', ca), ('x', xa)):
        if not hasattr(arr, 'dtype'):
            raise TypeError('lstm: %s must be a Variable or an array, got %s'
                            % (name, type(arr).__name__))
        if arr.dtype.kind != 'f':
            raise TypeError('lstm: %s must be a float array, got dtype %s (shape %s); cast with '
                            '.astype(numpy.float32)' % (name, arr.dtype, arr.shape))
    if ca.dtype != xa.dtype:
        raise TypeError('lstm: c_prev has dtype %s but x has dtype %s; cast one of them'
                        % (ca.dtype, xa.dtype))
    if type(ca) is not type(xa):
        raise TypeError('lstm: c_prev is a %s but x is a %s; move both to one device'
                        % (type(ca).__name__, type(xa).__name__))
    if ca.ndim != 2 or xa.ndim != 2:
        raise ValueError('lstm: c_prev must be (B, H) and x must be (B\', 4H), got shapes %s '
                         'and %s' % (ca.shape, xa.shape))
    B, H = ca.shape
    if xa.shape[1] != 4 * H:
        raise ValueError('lstm: x has shape %s but c_prev has shape %s; x must have 4 * H = %d '
                         'columns (the gate blocks [i | f | g | o]); build it with a Linear '
                         'layer of output size 4 * H' % (xa.shape, ca.shape, 4 * H))
    if xa.shape[0] > B:
        raise ValueError('lstm: x has %d rows but c_prev only %d (shapes %s and %s); the batch '
                         'may shrink between steps but never grow: sort sequences by '
                         'decreasing length, or start a new state'
                         % (xa.shape[0], B, xa.shape, ca.shape))
    return LSTM().apply((c_prev, x))
