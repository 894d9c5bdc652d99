"""Splitting the data across ranks: a dataset's examples, or a BPTT batcher's streams.

* :func:`split_dataset`: rank ``r`` gets a contiguous share of ``ceil(N / size)`` examples,
  the last shares completed by wrapping to the start (ChainerMN's ``force_equal_length``),
  so every rank has the same number of iterations per epoch and the ranks' epoch
  triggers fire together (unequal shares would make one rank evaluate or snapshot while
  another trains, and the job would block in a collective).
* :class:`StreamShard`: the global :class:`~seqdbr.rnn.bptt.ParallelSequentialBatcher` of
  ``B`` streams, of which this rank trains rows ``[r B/N, (r+1) B/N)`` of every window. The
  cursor, the epoch and the snapshot state are the global batcher's, so a distributed run
  sees exactly the single-process windows, split by rows, and its snapshots resume with any
  number of processes that divides ``B``.
* :class:`BatchShard`: the same for i.i.d. minibatches: every rank draws the global batch of
  one shared iterator (same seed, same order) and keeps its equal slice of it; the
  iterator's state is the same on every rank, so snapshots resume exactly.
"""
__all__ = ['split_dataset', 'SubDataset', 'StreamShard', 'BatchShard', 'check_divisible']


class SubDataset:
    """A view of ``dataset[order[lo:hi]]`` (indices wrap modulo ``len(dataset)``)."""

    def __init__(self, dataset, lo, hi):
        self.dataset, self.lo, self.hi = dataset, int(lo), int(hi)

    def __len__(self):
        return self.hi - self.lo

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        if not -n <= i < n:
            raise IndexError('index %d out of range for a shard of %d examples' % (i, n))
        return self.dataset[(self.lo + (i % n)) % len(self.dataset)]


def split_dataset(dataset, comm):
    """This rank's share of ``dataset`` (see the module docstring).

    Args:
        dataset: anything with ``len()`` and integer indexing.
        comm: the communicator (``rank``, ``size``).

    Returns:
        SubDataset: ``ceil(N / size)`` examples on every rank.

    Raises:
        ValueError: fewer examples than ranks.
    """
    n = len(dataset)
    if n < comm.size:
        raise ValueError('split_dataset: %d examples cannot be shared by %d processes; use '
                         'fewer processes or more data' % (n, comm.size))
    share = -(-n // comm.size)
    return SubDataset(dataset, comm.rank * share, (comm.rank + 1) * share)


def check_divisible(batch_size, size, flag='--batch-size'):
    """Raise ValueError unless ``size`` processes share ``batch_size`` streams equally."""
    if batch_size % size:
        raise ValueError('%s %d cannot be split across %d processes: it must be a multiple of '
                         'the number of processes (the global batch is shared equally), e.g. '
                         '%s %d or %d' % (flag, batch_size, size, flag,
                                          batch_size - batch_size % size,
                                          batch_size - batch_size % size + size))


class StreamShard:
    """This rank's rows of a global batcher's windows (see the module docstring).

    Args:
        batcher (ParallelSequentialBatcher): the global batcher of ``B`` streams.
        comm: the communicator.

    Attributes:
        lo, hi (int): this rank's stream rows.
        local_batch_size (int): ``B / size``.

    Everything else (``iteration``, ``epoch``, ``windows_per_epoch``, ``serialize``,
    ``state_dict``, ...) is the global batcher's.

    Raises:
        ValueError: ``B`` is not a multiple of the number of processes.
    """

    def __init__(self, batcher, comm):
        check_divisible(batcher.batch_size, comm.size)
        object.__setattr__(self, 'global_batcher', batcher)
        k = batcher.batch_size // comm.size
        object.__setattr__(self, 'lo', comm.rank * k)
        object.__setattr__(self, 'hi', (comm.rank + 1) * k)
        object.__setattr__(self, 'local_batch_size', k)
        object.__setattr__(self, 'comm', comm)

    def gather_carried(self, state):
        """The global carried state from this rank's (collective; see
        :mod:`seqdbr.distributed.state`). :class:`~seqdbr.training.BPTTUpdater` calls it
        when it saves, so a snapshot holds every stream's state."""
        from seqdbr.distributed.state import gather_state
        return gather_state(self.comm, state) or {}

    def local_carried(self, state):
        """This rank's rows of a loaded global carried state."""
        from seqdbr.distributed.state import local_rows
        return local_rows(self.comm, state)

    def next_window(self):
        x, t = self.global_batcher.next_window()
        return x[self.lo:self.hi], t[self.lo:self.hi]

    def __getattr__(self, name):
        return getattr(self.global_batcher, name)

    def __setattr__(self, name, value):
        setattr(self.global_batcher, name, value)


class BatchShard:
    """This rank's slice of every batch of a global iterator (see the module docstring).

    Args:
        iterator: a ``SerialIterator`` (``repeat=True``) over the whole training set whose
            ``batch_size`` is the global batch.
        comm: the communicator.

    Raises:
        ValueError: the batch size is not a multiple of the number of processes.
    """

    def __init__(self, iterator, comm):
        check_divisible(iterator.batch_size, comm.size, flag='the batch size')
        k = iterator.batch_size // comm.size
        object.__setattr__(self, 'global_iterator', iterator)
        object.__setattr__(self, 'lo', comm.rank * k)
        object.__setattr__(self, 'hi', (comm.rank + 1) * k)

    def next(self):
        return self.global_iterator.next()[self.lo:self.hi]

    __next__ = next

    def __iter__(self):
        return self

    def __getattr__(self, name):
        return getattr(self.global_iterator, name)

    def __setattr__(self, name, value):
        setattr(self.global_iterator, name, value)
