"""A dataset whose i-th example is the tuple of the i-th rows of several arrays."""
import numbers

import numpy

from seqdbr.core import backend

__all__ = ['TupleDataset']


class TupleDataset:
    """Zip equal-length arrays into a dataset of tuples.

    ``TupleDataset(x, t)[i] == (x[i], t[i])``. Any object with ``len()`` and
    integer indexing can be a component (NumPy/CuPy arrays, lists, other
    datasets); the components are not copied.

    Indexing:
        - an int (NumPy integers too; negative counts from the end) returns one
          example, a tuple with one entry per component;
        - a slice, a 1-D integer index array/list or a 1-D boolean mask of length
          ``len(self)`` returns a **list** of example tuples (the form that
          :func:`seqdbr.datasets.concat_examples` stacks into a batch).

    Args:
        *arrays: one or more components of equal length ``N``.

    Attributes:
        arrays (tuple): the components, as given.

    Raises:
        ValueError: no component given, or components of different lengths (the
            message lists every length).
        TypeError: a component has no ``len()``.
    """

    def __init__(self, *arrays):
        if not arrays:
            raise ValueError('TupleDataset needs at least one array, e.g. TupleDataset(x, t)')
        lengths = []
        for i, a in enumerate(arrays):
            try:
                lengths.append(len(a))
            except TypeError:
                raise TypeError('TupleDataset component %d (%s) has no len(); pass arrays or '
                                'sequences with one entry per example'
                                % (i, type(a).__name__)) from None
        if len(set(lengths)) != 1:
            raise ValueError('TupleDataset components must all have the same length, got '
                             'lengths %s; trim or fix the arrays so that they match'
                             % (lengths,))
        self._arrays = tuple(arrays)
        self._length = lengths[0]

    @property
    def arrays(self):
        """tuple: the components, in order."""
        return self._arrays

    def __len__(self):
        return self._length

    def __repr__(self):
        return '<TupleDataset of %d examples, %d components>' % (self._length,
                                                                 len(self._arrays))

    def _indices(self, index):
        """Turn a slice, mask or index array into a 1-D array of non-negative int64 indices."""
        n = self._length
        if isinstance(index, slice):
            return numpy.arange(*index.indices(n), dtype=numpy.int64)
        if backend.is_device_array(index):   # a CuPy index array
            index = backend.to_host(index)
        idx = numpy.asarray(index)
        if idx.dtype == numpy.bool_:
            if idx.shape != (n,):
                raise IndexError('boolean mask must have shape (%d,) to match the dataset, got %s'
                                 % (n, idx.shape))
            return numpy.flatnonzero(idx)
        if idx.size == 0:
            return numpy.zeros(0, dtype=numpy.int64)
        if idx.ndim != 1 or not numpy.issubdtype(idx.dtype, numpy.integer):
            raise IndexError('TupleDataset index must be an int, a slice, a 1-D integer array or '
                             'a boolean mask; got an array of shape %s and dtype %s'
                             % (idx.shape, idx.dtype))
        bad = (idx < -n) | (idx >= n)
        if bad.any():
            raise IndexError('index %d is out of range for a TupleDataset of length %d'
                             % (int(idx[bad][0]), n))
        return numpy.where(idx < 0, idx + n, idx).astype(numpy.int64, copy=False)

    def __getitem__(self, index):
        if isinstance(index, numbers.Integral) and not isinstance(index, bool):
            i = int(index)
            if not -self._length <= i < self._length:
                raise IndexError('index %d is out of range for a TupleDataset of length %d'
                                 % (i, self._length))
            return tuple(a[i] for a in self._arrays)
        if isinstance(index, bool) or index is None or isinstance(index, (str, bytes, float)):
            raise IndexError('TupleDataset index must be an int, a slice, a 1-D integer array or '
                             'a boolean mask, got %r' % (index,))
        idx = self._indices(index)
        columns = []
        for a in self._arrays:
            if backend.is_array(a):
                columns.append(a[idx])
            else:
                columns.append([a[int(i)] for i in idx])
        return [tuple(col[k] for col in columns) for k in range(len(idx))]
