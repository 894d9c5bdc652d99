"""One call seeds every random number generator seqdbr draws from.

seqdbr draws random numbers in two places, each with its own generator so that one does
not shift the other: weight initialisation (:mod:`seqdbr.core.initializers`) and dropout
masks (:mod:`seqdbr.core.functions.noise`; on a GPU a per-device CuPy generator derived
from the same seed). Data shuffling belongs to each iterator (``SerialIterator(seed=...)``)
and is saved with it. :func:`seed` seeds both library generators at once::

    seqdbr.seed(0)          # same weights, same dropout masks on every run

:func:`get_rng_state` / :func:`set_rng_state` capture and restore the host generators as
JSON-native dicts (the training snapshots store them). CuPy's dropout generators are
re-derived from the seed, not saved: a resumed GPU run is exact up to its dropout masks.
"""
import numbers

from seqdbr.core import initializers
from seqdbr.core.functions import noise

__all__ = ['seed', 'get_rng_state', 'set_rng_state']


def seed(s):
    """Seed the initializer and dropout generators (NumPy, and CuPy lazily) with ``s``.

    Args:
        s (int): a non-negative integer.

    Raises:
        TypeError: ``s`` is not an int. ValueError: ``s`` is negative.
    """
    if isinstance(s, bool) or not isinstance(s, numbers.Integral):
        raise TypeError('seqdbr.seed: expected a non-negative int, got %r' % (s,))
    if s < 0:
        raise ValueError('seqdbr.seed: expected a non-negative int, got %d' % s)
    initializers.set_seed(int(s))
    noise.set_seed(int(s))


def get_rng_state():
    """The host generators' states: ``{'initializers': {...}, 'dropout': {...}}`` (JSON-native
    dicts of numpy's ``bit_generator.state``)."""
    return {'initializers': initializers.get_rng().bit_generator.state,
            'dropout': noise.get_rng().bit_generator.state}


def set_rng_state(state):
    """Restore states from :func:`get_rng_state`.

    Raises:
        ValueError: ``state`` lacks a generator or holds an invalid state (the generators
            are then left as they were).
    """
    if not isinstance(state, dict):
        raise ValueError('an RNG state must be a dict, got %s' % type(state).__name__)
    try:
        init_state, drop_state = state['initializers'], state['dropout']
        a = initializers.get_rng().bit_generator
        b = noise.get_rng().bit_generator
        old_a = a.state
        a.state = init_state
        try:
            b.state = drop_state
        except Exception:
            a.state = old_a
            raise
    except (KeyError, TypeError, ValueError, OverflowError) as e:
        raise ValueError('invalid RNG state (%s: %s)' % (type(e).__name__, e)) from None
