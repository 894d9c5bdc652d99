"""Failure handling: one rank's error ends the whole job, at once, with the message once.

Under MPI a rank that raises and exits normally would leave its peers blocked in the next
collective forever (and its own ``MPI_Finalize`` at exit would wait for them). The rule here
is ChainerMN's global except hook: a rank that fails prints its error and calls
``MPI_Abort`` on ``COMM_WORLD``, and the launcher (``mpiexec``) then kills every other rank;
the job's exit status is the code given to ``MPI_Abort`` (non-zero).

*Message once.* The same error often happens on every rank (a bad option, a missing file).
Rank 0 prints and aborts at once; rank ``r > 0`` waits ``1.5 + 0.1 r`` seconds first, so when
rank 0 fails too it is killed before printing a copy, and when it fails alone its message
still comes within about two and a half seconds. After printing, a rank waits ``GRACE``
seconds before ``MPI_Abort``: the launcher forwards each rank's output through a pipe, and an
abort right after the write can end the job before the message is forwarded (lost in 4 of 15
runs on a loaded 2-core machine; 0 of 30 with the grace). A ``kill -9`` of a rank needs
nothing from us: MPICH's ``mpiexec`` sees the process die and ends the others within about a
second. Snapshots are written atomically by rank 0 only, so whichever way the job ends, the
last complete snapshot stays intact.
"""
import sys
import time
import traceback

__all__ = ['install_abort_hook', 'abort', 'root_delay']

#: Seconds between printing the message and ``MPI_Abort`` (see the module doc). Below the
#: first non-root delay, so a root that fails too still ends the job before a copy is printed.
GRACE = 0.5


def root_delay(rank):
    """Seconds a non-root rank waits before printing and aborting (see the module doc)."""
    return 0.0 if rank == 0 else 1.5 + 0.1 * min(rank, 20)


def abort(comm, code=1, message=None):
    """Print ``message`` (rank-prefixed when the job has several ranks) and end the whole
    job with exit status ``code`` through ``MPI_Abort``. Never returns.

    Args:
        comm: a :class:`~seqdbr.distributed.communicator.MpiCommunicator`.
        code (int): the job's exit status (non-zero).
        message (str or None): what to print on stderr.
    """
    code = int(code) or 1
    time.sleep(root_delay(comm.rank))
    if message:
        prefix = '' if comm.size == 1 else '[rank %d/%d] ' % (comm.rank, comm.size)
        sys.stderr.write(''.join(prefix + line + '\n' for line in message.rstrip('\n')
                                 .split('\n')))
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    if message:
        time.sleep(GRACE)
    comm.mpi_comm.Abort(code)
    raise SystemExit(code)      # not reached: MPI_Abort ends this process


def install_abort_hook(comm):
    """Make an uncaught exception on any rank print its traceback once and end the job
    (``sys.excepthook``; exit status 1). Returns the previous hook.

    Only worth installing when ``comm.size > 1``; a one-process run keeps Python's default
    behaviour.
    """
    previous = sys.excepthook

    def hook(exc_type, exc, tb):
        if issubclass(exc_type, KeyboardInterrupt):
            code = 130
        else:
            code = 1
        abort(comm, code, ''.join(traceback.format_exception(exc_type, exc, tb)))

    sys.excepthook = hook
    return previous
