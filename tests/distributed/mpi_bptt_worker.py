"""``mpiexec -n N python3 mpi_bptt_worker.py OUT ITERS [resume]``: the generic Trainer with a
BPTTUpdater over a StreamShard (stepwise LSTM), the generic npz snapshot format, a
multi-node optimizer; writes OUT/snap.npz at the end (and resumes from it with ``resume``)."""
import importlib.util
import pathlib
import sys

import numpy

import seqdbr
from seqdbr import distributed as D
from seqdbr.rnn.bptt import ParallelSequentialBatcher
from seqdbr.training import BPTTUpdater, Trainer, extensions as E

HERE = pathlib.Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location('training_models',
                                              HERE.parent / 'training' / 'training_models.py')
tm = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tm)


def main():
    out, iters = sys.argv[1], int(sys.argv[2])
    comm = D.create_communicator()
    D.install_abort_hook(comm)
    seqdbr.seed(0)
    model = tm.StepLM()
    opt = D.create_multi_node_optimizer(seqdbr.optimizers.SGD(lr=0.5), comm).setup(model)
    tokens = numpy.random.default_rng(1).integers(0, 7, 400).astype(numpy.int32)
    shard = D.StreamShard(ParallelSequentialBatcher(tokens, 4, 5), comm)
    trainer = Trainer(BPTTUpdater(shard, opt, model, mode='step'),
                      stop_trigger=(iters, 'iteration'), out=out, comm=comm)
    trainer.extend(E.LogReport(trigger=(1, 'iteration')))
    trainer.extend(E.snapshot('snap.npz'), trigger=(1000, 'iteration'))
    if sys.argv[3:] == ['resume']:
        trainer.resume(pathlib.Path(out) / 'snap.npz')
    trainer.run()


if __name__ == '__main__':
    main()
