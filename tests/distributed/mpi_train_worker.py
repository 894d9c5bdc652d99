"""``mpiexec -n N python3 mpi_train_worker.py MODE RANK ITER -- <seqdbr-train-charrnn args>``.

Runs the char-RNN program, after arranging for rank ``RANK`` to fail at iteration ``ITER``:
``raise`` (a RuntimeError from the update), ``kill`` (SIGKILL to itself, as ``kill -9``
would) or ``none`` (a plain run, for the launch itself). Just before failing, the rank
writes ``time.time()`` to the file named by ``SEQDBR_TEST_FAIL_STAMP`` (when set), so a test
can time the job's end from the failure rather than from the launch.
"""
import os
import signal
import sys
import time

from seqdbr.charlm.cli import train_main
from seqdbr.distributed import launcher_world
from seqdbr.training import bptt_updater


def main():
    mode, rank, at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    argv = sys.argv[sys.argv.index('--') + 1:]
    me = launcher_world()[1]
    original = bptt_updater.BPTTUpdater.update

    def update(self):
        if me == rank and self.iteration == at:
            stamp = os.environ.get('SEQDBR_TEST_FAIL_STAMP')
            if stamp:
                with open(stamp, 'w') as f:
                    f.write(repr(time.time()))
            if mode == 'raise':
                raise RuntimeError('injected failure on rank %d at iteration %d' % (me, at))
            if mode == 'kill':
                os.kill(os.getpid(), signal.SIGKILL)
        return original(self)

    bptt_updater.BPTTUpdater.update = update
    sys.exit(train_main(argv))


if __name__ == '__main__':
    main()
