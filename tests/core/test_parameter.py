"""Parameter: lazy shape, clear errors before initialization, named init failures."""
import numpy
import pytest

from seqdbr import Parameter
from seqdbr.core import initializers


def test_uninitialized_parameter_properties_raise_one_clear_error():
    p = Parameter(name='W')
    assert p.array is None and p.dtype == numpy.float32
    for attr in ('shape', 'ndim', 'size'):
        with pytest.raises(RuntimeError, match="parameter 'W' is not initialized yet"):
            getattr(p, attr)
    p.initialize((2, 3))
    assert (p.shape, p.ndim, p.size, p.dtype) == ((2, 3), 2, 6, numpy.float32)


def test_initializer_failure_names_the_parameter_and_shape():
    with pytest.raises(ValueError, match=r"parameter 'b' of shape \(3,\)"):
        Parameter(None, (3,), name='b')     # LeCun normal needs (out, in, ...)
    p = Parameter(initializers.Constant(0.5), (3,), name='b')
    numpy.testing.assert_array_equal(p.array, numpy.full(3, 0.5, numpy.float32))
