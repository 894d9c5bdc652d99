"""Observations: the values an iteration reports (losses, metrics, the learning rate).

The trainer gives every iteration a fresh dict, ``trainer.observation``; while the updater
and the extensions run, :func:`report` writes into it. Model code reports metrics the same
way, wherever it is called from::

    def loss_fn(x, t):
        y = model(x)
        seqdbr.training.report({'accuracy': F.accuracy(y, t)})
        return F.softmax_cross_entropy(y, t)

Values may be Python numbers, 0-d/size-1 arrays or Variables (kept as they are: a device
value is fetched to the host only when an extension reads it, see :func:`as_float`).
Outside a trainer's iteration :func:`report` does nothing.
"""
import contextlib
import threading

from seqdbr.core import backend

__all__ = ['report', 'reporting', 'as_float']

_local = threading.local()


def report(values, prefix=''):
    """Add ``values`` (dict name -> value) to the current observation, names prefixed by
    ``prefix``; no-op outside an iteration."""
    obs = getattr(_local, 'observation', None)
    if obs is None:
        return
    for k, v in values.items():
        obs[prefix + k] = v


@contextlib.contextmanager
def reporting(observation):
    """Make ``observation`` (a dict) the target of :func:`report` in this thread."""
    old = getattr(_local, 'observation', None)
    _local.observation = observation
    try:
        yield observation
    finally:
        _local.observation = old


def as_float(value):
    """An observed value as a Python float (a device value is fetched through
    :func:`seqdbr.core.backend.fetch_scalars`, the one counted transfer path).

    Raises:
        TypeError: a non-scalar value.
    """
    array = getattr(value, 'array', value)
    if isinstance(array, float):
        return array
    if getattr(array, 'size', 1) != 1:
        raise TypeError('an observed value must be a scalar, got shape %s' % (array.shape,))
    if hasattr(array, 'reshape'):
        array = array.reshape(())
    return backend.fetch_scalars(array)[0]
