"""A recurrent model's carried state across ranks: gather it whole, scatter it back.

Each rank carries the state of its own streams only. A snapshot holds the *global* state
(all ``B`` streams, in stream order), exactly what a single process would hold, so it
resumes with any number of processes that divides ``B`` (one process included).

Batch axis: arrays with 3 axes are ``(num_layers, B, H)`` (n-step layers, ``CharRNN``)
and are split on axis 1; arrays with 2 axes are ``(B, H)`` (stepwise links) and are split
on axis 0.
"""
import numpy

from seqdbr.core import backend

__all__ = ['batch_axis', 'gather_state', 'local_rows']


def batch_axis(array):
    """1 for ``(L, B, H)`` state arrays, 0 for ``(B, H)`` ones."""
    return 1 if array.ndim == 3 else 0


def gather_state(comm, state):
    """The global carried state from every rank's ``{name: array}`` (collective).

    Returns:
        dict of host arrays, or None when no rank carries a state yet. Raises ValueError
        when some ranks carry a state and others do not (they would have drifted apart).
    """
    host = None if not state else {k: backend.to_host(v) for k, v in state.items()}
    parts = comm.allgather_obj(host)
    if all(p is None for p in parts):
        return None
    if any(p is None for p in parts):
        raise ValueError('the ranks disagree on whether the model carries a state (ranks %s '
                         'carry none)' % [i for i, p in enumerate(parts) if p is None])
    return {k: numpy.concatenate([p[k] for p in parts], axis=batch_axis(parts[0][k]))
            for k in sorted(parts[0])}


def local_rows(comm, state, like=None):
    """This rank's rows of a global ``state`` (``{name: array}``), as arrays of ``like``'s
    array module (host arrays when ``like`` is None).

    Raises:
        ValueError: the stream count is not a multiple of the number of processes.
    """
    out = {}
    for k, v in state.items():
        ax = batch_axis(v)
        B = v.shape[ax]
        if B % comm.size:
            raise ValueError('the carried state %r has %d streams, not a multiple of the %d '
                             'processes' % (k, B, comm.size))
        n = B // comm.size
        sl = [slice(None)] * v.ndim
        sl[ax] = slice(comm.rank * n, (comm.rank + 1) * n)
        rows = numpy.ascontiguousarray(backend.to_host(v)[tuple(sl)])
        out[k] = rows if like is None else backend.get_array_module(like).asarray(rows)
    return out
