"""Data-parallel training across processes and machines, on MPI (NCCL between GPUs).

    mpiexec -n 2 python3 my_training.py

    from seqdbr import distributed as D
    comm = D.create_communicator()                  # MPI.COMM_WORLD
    opt = D.create_multi_node_optimizer(seqdbr.optimizers.Adam(), comm).setup(model)
    trainer = Trainer(updater, stop, out='result', comm=comm)

* :func:`create_communicator` (:mod:`~seqdbr.distributed.communicator`): ``rank``, ``size``,
  ``intra_rank``, ``bcast_data``, ``allreduce_grad`` (one packed buffer per dtype, one
  Allreduce per step), ``allreduce_obj``, ``bcast_obj``, ``barrier``.
* :func:`create_multi_node_optimizer` (:mod:`~seqdbr.distributed.optimizer`).
* :func:`split_dataset`, :class:`StreamShard`, :class:`BatchShard`
  (:mod:`~seqdbr.distributed.data`).
* :func:`install_abort_hook`, :func:`abort` (:mod:`~seqdbr.distributed.failure`).
* :func:`launcher_world` reads the launcher's environment without importing MPI.

Needs the ``mpi`` extra (``pip install -e '.[mpi]'``: mpi4py and MPICH from PyPI); without it
``import seqdbr`` and one-process training work as before, and :func:`create_communicator`
raises :class:`MPIUnavailableError` naming the extra. See ``docs/distributed.md``.
"""
import os

from seqdbr.distributed.communicator import (EXTRA_HINT, MPIUnavailableError,  # noqa: F401
                                             MpiCommunicator, NcclCommunicator, import_mpi)
from seqdbr.distributed.data import (BatchShard, StreamShard, SubDataset,  # noqa: F401
                                     check_divisible, split_dataset)
from seqdbr.distributed.failure import abort, install_abort_hook  # noqa: F401
from seqdbr.distributed.optimizer import (MultiNodeOptimizer,  # noqa: F401
                                          create_multi_node_optimizer)

__all__ = ['create_communicator', 'create_multi_node_optimizer', 'MultiNodeOptimizer',
           'MpiCommunicator', 'NcclCommunicator', 'MPIUnavailableError', 'split_dataset',
           'SubDataset', 'StreamShard', 'BatchShard', 'check_divisible', 'install_abort_hook',
           'abort', 'launcher_world', 'import_mpi', 'EXTRA_HINT']

#: (size variable, rank variable) of the launchers we recognise: MPICH/Hydra (PMI),
#: Open MPI, Slurm's srun.
_LAUNCHER_ENV = (('PMI_SIZE', 'PMI_RANK'), ('OMPI_COMM_WORLD_SIZE', 'OMPI_COMM_WORLD_RANK'),
                 ('PMIX_SIZE', 'PMIX_RANK'), ('SLURM_NTASKS', 'SLURM_PROCID'))


def launcher_world(environ=None):
    """``(size, rank)`` announced by an MPI launcher in the environment, ``(1, 0)`` when the
    process was not started by one (reads variables only; imports nothing)."""
    env = os.environ if environ is None else environ
    for size_var, rank_var in _LAUNCHER_ENV:
        if size_var in env and rank_var in env:
            try:
                return int(env[size_var]), int(env[rank_var])
            except ValueError:
                continue
    return 1, 0


def create_communicator(mpi_comm=None, device='cpu'):
    """The communicator of this job.

    Args:
        mpi_comm: an ``mpi4py.MPI.Comm`` (default ``COMM_WORLD``).
        device (str): ``'cpu'`` (MPI for everything, gradients on the host) or ``'gpu'``
            (gradients reduced by NCCL on GPU ``intra_rank``, made current).

    Raises:
        MPIUnavailableError: mpi4py cannot be imported (the message names the extra).
        ValueError: an unknown device.
    """
    if device == 'cpu':
        return MpiCommunicator(mpi_comm)
    if device in ('gpu', 'nccl'):
        return NcclCommunicator(mpi_comm)
    raise ValueError("device must be 'cpu' or 'gpu', got %r" % (device,))
