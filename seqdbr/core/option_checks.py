"""Type checks and flag names shared by the programs' option validation.

``bool`` is a subclass of ``int`` in Python, so ``isinstance(True, int)`` holds; an option
that must be a count or a rate rejects ``True``/``False`` explicitly. NumPy scalars (what a
value read back from an ``.npz`` is) are accepted as the numbers they are.
"""
import numpy

__all__ = ['is_int', 'is_real', 'flag_name']


def is_int(v):
    """True for a Python or NumPy integer, never for a bool."""
    return not isinstance(v, bool) and isinstance(v, (int, numpy.integer))


def is_real(v):
    """True for a Python or NumPy integer or float, never for a bool."""
    return not isinstance(v, bool) and isinstance(v, (int, float, numpy.integer, numpy.floating))


def flag_name(name):
    """The command-line flag of a configuration field: ``'batch_size'`` -> ``'--batch-size'``."""
    return '--' + name.replace('_', '-')
