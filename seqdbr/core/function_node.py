"""``FunctionNode``: the one op protocol.

A function node computes output arrays from input arrays in ``forward`` and
input gradients from output gradients in ``backward``; both work on plain
arrays (NumPy or CuPy), never on Variables. ``apply`` wraps this: it unpacks
Variables, runs ``forward`` on the device of the inputs, and records the node in
the graph when ``config.enable_backprop`` is on and some input requires a
gradient. See docs/design.md for a worked example.
"""
import weakref

import numpy

from seqdbr.core.config import config
from seqdbr.core.variable import Variable, _check_array

__all__ = ['FunctionNode', 'sum_to', 'check_float']

_ndarray = numpy.ndarray
_generic = numpy.generic
_asarray = numpy.asarray
_wref = weakref.ref


class FunctionNode:
    """Base class of every differentiable op.

    Subclasses implement ``forward(inputs)`` (or ``forward_cpu`` / ``forward_gpu``, chosen by
    the input array type) returning a tuple of arrays, and ``backward(indexes, grad_outputs)``
    returning one gradient array (or None) per input; only the positions in ``indexes``
    (inputs that require a gradient) are read. ``grad_outputs`` has None for outputs that no
    later computation used.

    Attributes:
        inputs (tuple of Variable): held strongly while the node is in a graph.
        outputs (tuple of weakref): to the output Variables.
        rank (int): topological depth, used by backprop's heap.
    """
    inputs = ()
    outputs = ()
    rank = 0
    _retain_in = None
    _retain_out = None
    _out_arrays = None

    @property
    def label(self):
        """Name shown in DOT graphs and reprs."""
        return type(self).__name__

    def __repr__(self):
        return '<%s rank=%d>' % (self.label, self.rank)

    # -- forward ------------------------------------------------------------------
    def forward(self, inputs):
        if type(inputs[0]) is _ndarray:
            return self.forward_cpu(inputs)
        return self.forward_gpu(inputs)

    def forward_cpu(self, inputs):
        raise NotImplementedError('%s implements neither forward nor forward_cpu' % self.label)

    def forward_gpu(self, inputs):
        raise NotImplementedError('%s implements neither forward nor forward_gpu' % self.label)

    def backward(self, indexes, grad_outputs):
        raise NotImplementedError('%s is not differentiable' % self.label)

    def retain_inputs(self, indexes):
        """Declare which input arrays ``backward`` reads (positions)."""
        self._retain_in = indexes

    def retain_outputs(self, indexes):
        """Keep these output arrays for ``backward`` (the output Variables may die)."""
        self._retain_out = indexes

    def get_retained_inputs(self):
        inputs = self.inputs
        return tuple([inputs[i].array for i in self._retain_in])

    def get_retained_outputs(self):
        return self._out_arrays

    # -- graph construction ---------------------------------------------------------
    def apply(self, inputs):
        """Run the op on ``inputs`` (Variables or arrays) and return a tuple of Variables."""
        xs = []
        arrays = []
        needs_grad = False
        rank = 0
        for x in inputs:
            if not isinstance(x, Variable):
                a = _check_array(x, self.label)
                x = Variable.__new__(Variable)
                x.array = a
                x._grad = None
                x.creator = None
                x.rank = 0
                x.name = None
                x.requires_grad = False
            else:
                if x.requires_grad:
                    needs_grad = True
                if x.rank > rank:
                    rank = x.rank
            xs.append(x)
            arrays.append(x.array)
        ys = self.forward(tuple(arrays))
        for y in ys:
            if isinstance(y, _generic):  # NumPy ops on 0-d arrays return scalars
                ys = tuple([_asarray(y) if isinstance(y, _generic) else y for y in ys])
                break
        if needs_grad and config.enable_backprop:
            self.inputs = tuple(xs)
            self.rank = rank
            rank += 1
            outs = []
            refs = []
            for y in ys:
                v = Variable.__new__(Variable)
                v.array = y
                v._grad = None
                v.creator = self
                v.rank = rank
                v.name = None
                v.requires_grad = True
                outs.append(v)
                refs.append(_wref(v))
            self.outputs = tuple(refs)
            r = self._retain_out
            if r is not None:
                self._out_arrays = tuple([ys[i] for i in r])
            return tuple(outs)
        outs = []
        for y in ys:
            v = Variable.__new__(Variable)
            v.array = y
            v._grad = None
            v.creator = None
            v.rank = 0
            v.name = None
            v.requires_grad = False
            outs.append(v)
        return tuple(outs)

    def unchain(self):
        """Drop the inputs and make every live output a leaf."""
        for ref in self.outputs:
            y = ref()
            if y is not None:
                y.creator = None
        self.inputs = ()
        self._out_arrays = None


def sum_to(g, shape):
    """Sum a broadcast gradient ``g`` back down to ``shape`` (numpy broadcasting rules)."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = list(range(lead))
    for i, s in enumerate(shape):
        if s == 1 and g.shape[i + lead] != 1:
            axes.append(i + lead)
    y = g.sum(axis=tuple(axes), keepdims=True)
    if lead:
        y = y.reshape(shape)
    return y


def check_float(fname, *arrays):
    """Raise TypeError unless every array has a floating dtype (differentiable ops)."""
    for a in arrays:
        if a.dtype.kind != 'f':
            raise TypeError('%s: expected a floating-point array, got dtype %s with shape %s; '
                            'cast it with .astype(numpy.float32)' % (fname, a.dtype, a.shape))
