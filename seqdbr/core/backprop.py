"""Reverse-mode backprop over the recorded graph, and graph cutting.

Function nodes are visited in decreasing ``rank`` (a heap), each exactly once, so a
node runs only after every consumer of its outputs has contributed. Everything is
iterative: graphs of any depth (100,000-step unrolls) need no recursion.
"""
import heapq

import numpy

from seqdbr.core import backend
from seqdbr.core.config import config

__all__ = ['backward', 'unchain_backward']

_heappush = heapq.heappush
_heappop = heapq.heappop
_generic = numpy.generic


def backward(root, retain_grad=False):
    """Accumulate d(root)/d(leaf) into every leaf's ``.grad``. See ``Variable.backward``."""
    f = root.creator
    if f is None:
        return
    g = root._grad
    if g is None:
        if root.array.size != 1:
            raise ValueError(
                'backward() on a variable of shape %s (%d elements) needs a starting '
                'gradient: set .grad (same shape) or reduce the output to a scalar first '
                '(e.g. F.sum); only a one-element output starts from 1 by itself'
                % (root.array.shape, root.array.size))
        g = backend.get_array_module(root.array).ones_like(root.array)
    grads = {root: g}
    heap = [(-f.rank, 0, f)]
    seen = {f}
    count = 1
    debug = config.debug
    while heap:
        f = _heappop(heap)[2]
        gys = []
        any_gy = False
        for ref in f.outputs:
            y = ref()
            if y is None:
                gys.append(None)
                continue
            gy = grads.pop(y, None)
            if gy is not None:
                any_gy = True
                if retain_grad and y is not root:
                    y._grad = gy.copy()  # never let two variables share one grad array
            gys.append(gy)
        if not any_gy:
            continue
        xs = f.inputs
        indexes = tuple([i for i, x in enumerate(xs) if x.requires_grad])
        if not indexes:
            continue
        gxs = f.backward(indexes, tuple(gys))
        for i in indexes:
            gx = gxs[i]
            if gx is None:
                continue
            if isinstance(gx, _generic):  # NumPy arithmetic on 0-d arrays gives scalars
                gx = numpy.asarray(gx)
            if debug:
                _check_finite(f, i, gx)
            x = xs[i]
            xf = x.creator
            if xf is None:  # leaf: accumulate into .grad
                cur = x._grad
                if cur is None:
                    # A leaf must own its gradient: hooks scale grads in place, so a grad that
                    # is (a view of) an upstream gradient, which other variables may also
                    # receive, is copied. Fresh arrays computed by backward are kept as is.
                    owner = gx if gx.base is None else gx.base
                    for gy in gys:
                        if gy is not None and (owner is gy or owner is gy.base):
                            gx = gx.copy()
                            break
                    x._grad = gx
                else:
                    g = cur + gx
                    x._grad = numpy.asarray(g) if isinstance(g, _generic) else g
            else:
                cur = grads.get(x)
                grads[x] = gx if cur is None else cur + gx
                if xf not in seen:
                    seen.add(xf)
                    _heappush(heap, (-xf.rank, count, xf))
                    count += 1


def _check_finite(f, i, gx):
    xp = backend.get_array_module(gx)
    if not bool(xp.isfinite(gx).all()):
        raise FloatingPointError('non-finite gradient for input %d of %s (config.debug is on)'
                                 % (i, f.label))


def unchain_backward(root):
    """Cut every function node behind ``root`` (see ``Variable.unchain_backward``)."""
    f = root.creator
    if f is None:
        return
    stack = [f]
    seen = {f}
    while stack:
        f = stack.pop()
        for x in f.inputs:
            xf = x.creator
            if xf is not None and xf not in seen:
                seen.add(xf)
                stack.append(xf)
        f.unchain()
