"""Minibatch iteration over a dataset, and stacking a minibatch into arrays."""
import numbers

import numpy

from seqdbr.core import backend

from seqdbr.datasets.tuple_dataset import TupleDataset

__all__ = ['SerialIterator', 'concat_examples']


def _check_seed(seed):
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError('seed must be None or a non-negative int, got %r' % (seed,))
    return int(seed)


_MASK64 = (1 << 64) - 1


def _rng_state_to_array(rng):
    """PCG64 state -> uint64[6]: state hi/lo, increment hi/lo, has_uint32, uinteger."""
    st = rng.bit_generator.state
    s, inc = st['state']['state'], st['state']['inc']
    return numpy.array([s >> 64, s & _MASK64, inc >> 64, inc & _MASK64,
                        st['has_uint32'], st['uinteger']], dtype=numpy.uint64)


def _rng_state_from_array(rng, arr):
    if arr.shape != (6,):
        raise ValueError('stored rng_state must have shape (6,), got %s' % (arr.shape,))
    w = [int(v) for v in arr]
    rng.bit_generator.state = {
        'bit_generator': 'PCG64',
        'state': {'state': (w[0] << 64) | w[1], 'inc': (w[2] << 64) | w[3]},
        'has_uint32': w[4], 'uinteger': w[5]}


class SerialIterator:
    """Iterate over a dataset in minibatches, optionally shuffled and repeated.

    Each ``next(it)`` returns a list of ``batch_size`` examples (``dataset[i]`` for
    the chosen indices). An epoch is one pass over the ``N = len(dataset)``
    examples.

    - ``shuffle=True``: every epoch visits the examples in a fresh random
      permutation drawn from the iterator's own ``numpy.random.Generator``
      (PCG64 seeded by ``seed``), so the same seed gives the same batches.
    - ``repeat=True``: iteration never ends. A batch that runs past the end of an
      epoch is completed with the first examples of the next epoch's order, so all
      batches have exactly ``batch_size`` examples (a batch larger than ``N`` spans
      several epochs).
    - ``repeat=False``: one epoch only; the last batch holds the remaining
      ``N mod batch_size`` examples when that is not 0, and the following
      ``next()`` raises ``StopIteration`` (until :meth:`reset`).

    Args:
        dataset: a non-empty object with ``len()`` and integer indexing (e.g. a
            :class:`TupleDataset` or a list). ``TupleDataset`` batches are gathered
            with one fancy-index per component.
        batch_size (int): examples per batch, >= 1.
        repeat (bool): loop over the data forever.
        shuffle (bool): visit examples in a random order each epoch.
        seed (int or None): seed of the shuffling generator (None: fresh OS entropy).

    Attributes:
        epoch (int): completed epochs.
        current_position (int): index, within the current epoch's order, of the next
            example to be returned; in ``[0, N)``.
        is_new_epoch (bool): True when the last batch completed an epoch.
        epoch_detail (float): ``epoch + current_position / N``.
        previous_epoch_detail (float or None): ``epoch_detail`` before the last
            batch; None before the first batch.

    Raises:
        ValueError: empty dataset, ``batch_size`` < 1, or a bad ``seed``.
    """

    def __init__(self, dataset, batch_size, repeat=True, shuffle=True, seed=None):
        try:
            n = len(dataset)
        except TypeError:
            raise TypeError('dataset must support len() and integer indexing, got %s'
                            % type(dataset).__name__) from None
        if n == 0:
            raise ValueError('dataset is empty: SerialIterator needs at least one example')
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) \
                or batch_size < 1:
            raise ValueError('batch_size must be a positive int, got %r' % (batch_size,))
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self._repeat = bool(repeat)
        self._shuffle = bool(shuffle)
        self._seed = _check_seed(seed)
        self._rng = numpy.random.Generator(numpy.random.PCG64(self._seed))
        self._n = n
        self._order = None
        self.reset()

    # -- properties -------------------------------------------------------------------
    @property
    def repeat(self):
        """bool: whether iteration loops over the dataset forever."""
        return self._repeat

    @property
    def shuffle(self):
        """bool: whether each epoch uses a fresh random order."""
        return self._shuffle

    @property
    def order(self):
        """numpy.ndarray of int64, shape (N,), or None: the current epoch's order
        (None when ``shuffle`` is False). Read-only view."""
        if self._order is None:
            return None
        view = self._order.view()
        view.flags.writeable = False
        return view

    @property
    def epoch_detail(self):
        """float: completed epochs plus the fraction of the current epoch done."""
        return self.epoch + self.current_position / self._n

    @property
    def previous_epoch_detail(self):
        """float or None: ``epoch_detail`` just before the last ``next()``."""
        if self._previous_epoch_detail < 0:
            return None
        return self._previous_epoch_detail

    # -- iteration --------------------------------------------------------------------
    def reset(self):
        """Restart from epoch 0, position 0.

        With ``shuffle`` a new order is drawn from the iterator's generator (which
        is not re-seeded, so the order differs from the first run's).
        """
        self.current_position = 0
        self.epoch = 0
        self.is_new_epoch = False
        self._previous_epoch_detail = -1.0
        self._order = self._rng.permutation(self._n).astype(numpy.int64) \
            if self._shuffle else None

    def __iter__(self):
        return self

    def _gather(self, start, stop):
        if self._order is not None:
            idx = self._order[start:stop]
        else:
            idx = numpy.arange(start, stop, dtype=numpy.int64)
        if isinstance(self.dataset, TupleDataset):
            return self.dataset[idx]
        return [self.dataset[int(i)] for i in idx]

    def __next__(self):
        """Return the next batch.

        Returns:
            list: ``batch_size`` examples (fewer only for the last batch when
            ``repeat`` is False).

        Raises:
            StopIteration: ``repeat`` is False and the epoch is finished.
        """
        if not self._repeat and self.epoch > 0:
            raise StopIteration
        self._previous_epoch_detail = self.epoch_detail
        n = self._n
        batch = []
        need = self.batch_size
        pos = self.current_position
        crossed = False
        while need > 0:
            take = min(need, n - pos)
            batch.extend(self._gather(pos, pos + take))
            need -= take
            pos += take
            if pos == n:
                self.epoch += 1
                crossed = True
                pos = 0
                if not self._repeat:
                    break
                if self._shuffle:
                    self._order = self._rng.permutation(n).astype(numpy.int64)
        self.current_position = pos
        self.is_new_epoch = crossed
        return batch

    next = __next__

    # -- checkpointing ----------------------------------------------------------------
    def serialize(self, serializer):
        """Save or restore the iteration state through a seqdbr serializer.

        Keys: ``current_position``, ``epoch``, ``is_new_epoch``,
        ``previous_epoch_detail`` (-1.0 for None), ``dataset_length``, ``shuffle``,
        and with ``shuffle`` also ``order`` (int64, shape (N,)) and ``rng_state``
        (uint64, shape (6,): the PCG64 state and increment as 64-bit halves plus
        the buffered 32-bit output), so a restored iterator returns exactly the
        batches the saved one would have returned next. Nothing is pickled.

        Raises:
            ValueError: on load, the stored dataset length or ``shuffle`` flag differ
                from this iterator's, or the stored position/order is invalid.
            KeyError: a key is missing from the stored state (from the serializer).
        """
        n = serializer('dataset_length', int(self._n))
        if n != self._n:
            raise ValueError('cannot restore SerialIterator state saved for a dataset of %d '
                             'examples into one over %d examples; use the same dataset'
                             % (n, self._n))
        shuffle = serializer('shuffle', bool(self._shuffle))
        if shuffle != self._shuffle:
            raise ValueError('cannot restore SerialIterator state saved with shuffle=%s into '
                             'an iterator with shuffle=%s; create it with shuffle=%s'
                             % (shuffle, self._shuffle, shuffle))
        position = serializer('current_position', int(self.current_position))
        epoch = serializer('epoch', int(self.epoch))
        is_new_epoch = serializer('is_new_epoch', bool(self.is_new_epoch))
        previous = serializer('previous_epoch_detail', float(self._previous_epoch_detail))
        if not 0 <= position < self._n or epoch < 0:
            raise ValueError('stored SerialIterator state is invalid: current_position=%d '
                             '(must be in [0, %d)), epoch=%d' % (position, self._n, epoch))
        if self._shuffle:
            order = serializer('order', self._order.copy())
            if not numpy.array_equal(numpy.sort(order), numpy.arange(self._n)):
                raise ValueError('stored SerialIterator order is not a permutation of '
                                 'range(%d); the checkpoint is corrupt' % self._n)
            self._order = order
            state = serializer('rng_state', _rng_state_to_array(self._rng))
            _rng_state_from_array(self._rng, numpy.asarray(state, dtype=numpy.uint64))
        self.current_position = int(position)
        self.epoch = int(epoch)
        self.is_new_epoch = bool(is_new_epoch)
        self._previous_epoch_detail = float(previous)


def _as_host_or_device_array(x):
    if backend.is_device_array(x):
        import cupy
        return cupy.asarray(x), cupy
    return numpy.asarray(x), numpy


def _stack(values, padding, what):
    arrays = []
    xp = numpy
    for v in values:
        a, xp_v = _as_host_or_device_array(v)
        if xp_v is not numpy:
            xp = xp_v
        arrays.append(a)
    first = arrays[0]
    if padding is None:
        for k, a in enumerate(arrays):
            if a.shape != first.shape:
                raise ValueError('cannot stack %s: example 0 has shape %s but example %d has '
                                 'shape %s; pass padding=<value> to pad to the largest shape'
                                 % (what, first.shape, k, a.shape))
        return xp.stack([xp.asarray(a) for a in arrays])
    ndim = first.ndim
    for k, a in enumerate(arrays):
        if a.ndim != ndim:
            raise ValueError('cannot pad %s: example 0 has %d dimensions but example %d has %d'
                             % (what, ndim, k, a.ndim))
    shape = tuple(max(a.shape[d] for a in arrays) for d in range(ndim))
    dtype = numpy.result_type(*[a.dtype for a in arrays])
    out = xp.full((len(arrays),) + shape, padding, dtype=dtype)
    for k, a in enumerate(arrays):
        out[(k,) + tuple(slice(0, s) for s in a.shape)] = xp.asarray(a)
    return out


def concat_examples(batch, device=None, padding=None):
    """Stack a list of examples into batch arrays.

    - Examples that are tuples (as from :class:`TupleDataset`) give a tuple of
      arrays, the j-th of shape ``(B,) + shape of component j``.
    - Examples that are dicts give a dict of stacked arrays, keyed the same.
    - Examples that are arrays (or scalars) give one array of shape ``(B,) + shape``.

    The dtype of each stacked array is that of the examples (NumPy promotion when
    they differ).

    Args:
        batch (list): ``B >= 1`` examples, all of the same structure.
        device (None or str or device object): None keeps the arrays where they are;
            otherwise each array is sent with ``seqdbr.core.backend.to_device(device,
            array)`` (e.g. ``'cpu'``, ``'gpu:0'``).
        padding (None, scalar, or tuple of scalars): when not None, arrays of
            different shapes (same number of dimensions) are padded at the end of
            each axis to the largest shape with this value; a tuple gives one value
            per tuple component (None in it disables padding for that component).

    Returns:
        tuple of arrays, dict of arrays, or one array (see above).

    Raises:
        ValueError: empty batch, examples of different structure, or of different
            shapes without ``padding`` (the message names the shapes).
    """
    if len(batch) == 0:
        raise ValueError('batch is empty: concat_examples needs at least one example')
    first = batch[0]

    def send(x):
        if device is None:
            return x
        from seqdbr.core import backend
        return backend.to_device(device, x)

    if isinstance(first, tuple):
        width = len(first)
        if isinstance(padding, tuple):
            if len(padding) != width:
                raise ValueError('padding has %d entries but examples have %d components'
                                 % (len(padding), width))
            pads = padding
        else:
            pads = (padding,) * width
        for k, ex in enumerate(batch):
            if not isinstance(ex, tuple) or len(ex) != width:
                got = ('a tuple of %d components' % len(ex) if isinstance(ex, tuple)
                       else 'a %s' % type(ex).__name__)
                raise ValueError('example 0 is a tuple of %d components but example %d is %s; '
                                 'all examples must have the same structure' % (width, k, got))
        return tuple(send(_stack([ex[j] for ex in batch], pads[j], 'component %d' % j))
                     for j in range(width))
    if isinstance(first, dict):
        keys = set(first)
        for k, ex in enumerate(batch):
            if not isinstance(ex, dict) or set(ex) != keys:
                raise ValueError('example 0 is a dict with keys %s but example %d differs; all '
                                 'examples must have the same keys' % (sorted(keys), k))
        if isinstance(padding, tuple):
            raise ValueError('padding for dict examples must be a scalar or None, got a tuple')
        return {key: send(_stack([ex[key] for ex in batch], padding, 'key %r' % (key,)))
                for key in first}
    if isinstance(padding, tuple):
        raise ValueError('padding for array examples must be a scalar or None, got a tuple')
    return send(_stack(batch, padding, 'examples'))
