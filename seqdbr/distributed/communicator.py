"""The communicator: who am I, how many are we, and the collectives training needs.

    comm = create_communicator()          # MPI.COMM_WORLD through mpi4py
    comm.bcast_data(model)                # rank 0's parameters everywhere
    ...backward...
    comm.allreduce_grad(model)            # every param.grad := mean over the ranks

**Gradients, one Allreduce per dtype.** :meth:`Communicator.allreduce_grad` packs every
parameter's gradient, in the link's sorted parameter order, into one contiguous buffer per
dtype (allocated once and reused while the parameter set stays the same), appends one
"present" flag per parameter, reduces the buffer with a single ``Allreduce(SUM)``, divides
by the number of ranks and copies the slices back. A gradient that is None on this rank
counts as zeros; a parameter whose gradient is None on *every* rank keeps ``grad = None``
(the update rules then skip it, as a single process would), and one that has a gradient on
some rank gets the mean on every rank, so the replicas never drift apart. The mean is the
ChainerMN / PyTorch DDP rule: ``g = (1/N) sum_r g_r``, which equals the single-process
gradient when each rank's loss is the mean over an equal share of the global batch.

**Arrays.** NumPy arrays go through MPI directly (buffer protocol). CuPy arrays use NCCL
(:mod:`cupy.cuda.nccl`) with :class:`NcclCommunicator`: rank 0 makes the NCCL unique id, MPI
broadcasts it, and each process drives GPU ``intra_rank``; the plain
:class:`MpiCommunicator` also accepts CuPy arrays, through one host copy each way.

Errors: every collective is called by every rank in the same order; a rank that raises
ends the job through :func:`seqdbr.distributed.failure.install_abort_hook`.
"""
import time

import numpy

from seqdbr.core import backend

__all__ = ['MpiCommunicator', 'NcclCommunicator', 'MPIUnavailableError', 'import_mpi']

#: The install line named by every "mpi4py missing" error.
EXTRA_HINT = ("install the MPI extra: pip install -e '.[mpi]' (it brings mpi4py and an MPICH "
              "with mpiexec from PyPI), then launch with mpiexec -n N ...")


class MPIUnavailableError(RuntimeError):
    """Distributed training was asked for but mpi4py cannot be imported."""


def import_mpi():
    """``mpi4py.MPI``, or :class:`MPIUnavailableError` naming the extra to install."""
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise MPIUnavailableError('distributed training needs mpi4py (%s); %s'
                                  % (e, EXTRA_HINT)) from None
    return MPI


def _sorted_params(link):
    return sorted(link.namedparams(), key=lambda kv: kv[0])


class MpiCommunicator:
    """Data-parallel collectives over an MPI communicator (see the module docstring).

    Args:
        mpi_comm: an ``mpi4py.MPI.Comm`` (default ``MPI.COMM_WORLD``).

    Attributes:
        rank (int): this process, ``0 <= rank < size``.
        size (int): the number of processes.
        intra_rank (int): the rank among the processes of this host (selects the GPU).
        intra_size (int): processes on this host.
        mpi_comm: the underlying communicator.
        reduce_seconds (float): time spent in :meth:`allreduce_grad` so far (benchmarks).
        reduce_bytes (int): bytes of the last gradient buffer(s) reduced.
    """

    def __init__(self, mpi_comm=None):
        MPI = import_mpi()
        self._MPI = MPI
        self.mpi_comm = MPI.COMM_WORLD if mpi_comm is None else mpi_comm
        self.rank = self.mpi_comm.Get_rank()
        self.size = self.mpi_comm.Get_size()
        node = self.mpi_comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        self.intra_rank, self.intra_size = node.Get_rank(), node.Get_size()
        node.Free()
        self._buffers = {}          # dtype str -> (layout key, flat buffer)
        self.reduce_seconds = 0.0
        self.reduce_bytes = 0

    def __repr__(self):
        return '%s(rank=%d, size=%d, intra_rank=%d)' % (type(self).__name__, self.rank,
                                                         self.size, self.intra_rank)

    # -- objects ------------------------------------------------------------------------------
    def barrier(self):
        """Wait until every rank reaches this call."""
        self.mpi_comm.Barrier()

    def bcast_obj(self, obj, root=0):
        """``root``'s picklable ``obj`` on every rank (small control data only)."""
        return self.mpi_comm.bcast(obj, root=root)

    def allreduce_obj(self, obj, op='sum'):
        """Reduce a Python number (or anything ``+``/``max``/``min`` combine) over the ranks.

        Args:
            op (str): ``'sum'``, ``'mean'``, ``'max'`` or ``'min'``.
        """
        MPI = self._MPI
        ops = {'sum': MPI.SUM, 'mean': MPI.SUM, 'max': MPI.MAX, 'min': MPI.MIN}
        if op not in ops:
            raise ValueError("op must be 'sum', 'mean', 'max' or 'min', got %r" % (op,))
        out = self.mpi_comm.allreduce(obj, op=ops[op])
        return out / self.size if op == 'mean' else out

    def allgather_obj(self, obj):
        """The list ``[obj of rank 0, obj of rank 1, ...]`` on every rank."""
        return self.mpi_comm.allgather(obj)

    def allreduce_array(self, array):
        """Element-wise sum of a host float64/float32 array over the ranks (a new array)."""
        a = numpy.ascontiguousarray(array)
        out = numpy.empty_like(a)
        self.mpi_comm.Allreduce(a, out, op=self._MPI.SUM)
        return out

    # -- parameters -----------------------------------------------------------------------------
    def bcast_data(self, link, root=0):
        """Copy ``root``'s parameter arrays into every rank's ``link`` (in place).

        Raises:
            ValueError: the ranks' models differ (parameter names or shapes; checked first,
                with one small broadcast, so a mismatch is an error and never a hang or a
                silently wrong model), or a parameter is still uninitialized.
        """
        params = _sorted_params(link)
        sig = [(n, None if p.array is None else (tuple(p.array.shape), str(p.array.dtype)))
               for n, p in params]
        ok = self.allreduce_obj(int(sig == self.bcast_obj(sig, root)), 'min')
        if not ok:
            raise ValueError('bcast_data: the ranks built different models (parameter names, '
                             'shapes or dtypes differ from rank %d); build the same model on '
                             'every rank' % root)
        for name, p in params:
            if p.array is None:
                raise ValueError('bcast_data: parameter %s is not initialized; run one forward '
                                 'pass (or give the link its input size) first' % name)
            self._bcast_array(p.array, root)

    def _bcast_array(self, array, root):
        if type(array) is numpy.ndarray:
            if array.flags.c_contiguous:
                self.mpi_comm.Bcast(array, root=root)
            else:
                tmp = numpy.ascontiguousarray(array)
                self.mpi_comm.Bcast(tmp, root=root)
                array[...] = tmp
            return
        host = backend.to_host(array)
        self.mpi_comm.Bcast(host, root=root)
        with backend.using_device(array):
            array[...] = backend.get_array_module(array).asarray(host)

    # -- gradients ------------------------------------------------------------------------------
    def _groups(self, params):
        groups = {}
        for name, p in params:
            if p.array is None:
                continue
            groups.setdefault(numpy.dtype(p.array.dtype).str, []).append((name, p))
        return groups

    def _buffer(self, key, layout, total, like):
        cached = self._buffers.get(key)
        if cached is None or cached[0] != layout:
            with backend.using_device(like):
                xp = backend.get_array_module(like)
                cached = (layout, xp.empty(total, dtype=numpy.dtype(key)))
            self._buffers[key] = cached
        return cached[1]

    def allreduce_grad(self, link):
        """Set every ``param.grad`` of ``link`` to the mean over the ranks (see the module
        docstring for the packing and the None rule). Returns the link."""
        t0 = time.perf_counter()
        nbytes = 0
        for key, group in sorted(self._groups(_sorted_params(link)).items()):
            xp = backend.get_array_module(group[0][1].array)
            sizes = [int(p.array.size) for _, p in group]
            layout = tuple((n, tuple(p.array.shape)) for n, p in group)
            total = sum(sizes) + len(group)
            buf = self._buffer(key, layout, total, group[0][1].array)
            flags = buf[total - len(group):]
            off = 0
            for i, ((_, p), n) in enumerate(zip(group, sizes)):
                seg = buf[off:off + n]
                if p.grad is None:
                    seg.fill(0)
                    flags[i] = 0
                else:
                    seg[...] = p.grad.reshape(-1)
                    flags[i] = 1
                off += n
            self._allreduce_inplace(buf)
            buf *= buf.dtype.type(1.0 / self.size)
            present = backend.to_host(flags) if xp is not numpy else flags
            off = 0
            for i, ((_, p), n) in enumerate(zip(group, sizes)):
                if present[i] > 0:
                    seg = buf[off:off + n].reshape(p.array.shape)
                    if p.grad is None:
                        p.grad = seg.copy()
                    else:
                        p.grad[...] = seg
                off += n
            nbytes += total * buf.dtype.itemsize
        self.reduce_bytes = nbytes
        self.reduce_seconds += time.perf_counter() - t0
        return link

    def _allreduce_inplace(self, buf):
        if type(buf) is numpy.ndarray:
            self.mpi_comm.Allreduce(self._MPI.IN_PLACE, buf, op=self._MPI.SUM)
            return
        # A device buffer through a (not CUDA-aware) MPI: one host copy each way. The NCCL
        # communicator avoids it.
        host = backend.to_host(buf)
        self.mpi_comm.Allreduce(self._MPI.IN_PLACE, host, op=self._MPI.SUM)
        with backend.using_device(buf):
            buf[...] = backend.get_array_module(buf).asarray(host)

    # -- data -------------------------------------------------------------------------------------
    def split_range(self, n):
        """``(lo, hi)``: this rank's contiguous share of ``n`` items; the first ``n % size``
        ranks get one more (every item belongs to exactly one rank)."""
        q, r = divmod(int(n), self.size)
        lo = self.rank * q + min(self.rank, r)
        return lo, lo + q + (1 if self.rank < r else 0)


class NcclCommunicator(MpiCommunicator):
    """:class:`MpiCommunicator` whose gradient Allreduce runs on the GPU through NCCL.

    Each process uses GPU ``intra_rank`` (made current here); rank 0 creates the NCCL unique
    id and MPI broadcasts it. Object collectives and :meth:`bcast_data` still go through
    MPI (host copies).

    Raises:
        RuntimeError: CuPy, a CUDA device or NCCL is unavailable (the message says which).
    """

    def __init__(self, mpi_comm=None):
        super().__init__(mpi_comm)
        try:
            import cupy
            from cupy.cuda import nccl
        except ImportError as e:
            raise RuntimeError('the NCCL communicator needs CuPy with NCCL (%s); install '
                               "'.[gpu]' or use the MPI communicator (device='cpu')" % e) \
                from None
        ndev = backend.gpu_device_count()
        if self.intra_rank >= ndev:
            raise RuntimeError('rank %d is process %d on its host but the host has %d GPU(s); '
                               'launch at most one process per GPU'
                               % (self.rank, self.intra_rank, ndev))
        self.device = backend.get_device('gpu:%d' % self.intra_rank)
        self.device.use()
        uid = nccl.get_unique_id() if self.rank == 0 else None
        uid = self.bcast_obj(uid)
        self._nccl = nccl.NcclCommunicator(self.size, uid, self.rank)
        self._cupy = cupy
        self._nccl_mod = nccl

    def _allreduce_inplace(self, buf):
        if type(buf) is numpy.ndarray:
            return super()._allreduce_inplace(buf)
        nccl = self._nccl_mod
        kinds = {'f': {2: nccl.NCCL_FLOAT16, 4: nccl.NCCL_FLOAT32, 8: nccl.NCCL_FLOAT64}}
        dt = kinds.get(buf.dtype.kind, {}).get(buf.dtype.itemsize)
        if dt is None:
            raise TypeError('NCCL allreduce: unsupported gradient dtype %s' % buf.dtype)
        stream = self._cupy.cuda.get_current_stream()
        self._nccl.allReduce(buf.data.ptr, buf.data.ptr, buf.size, dt, nccl.NCCL_SUM,
                             stream.ptr)

