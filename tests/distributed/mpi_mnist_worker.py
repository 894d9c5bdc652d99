"""``mpiexec -n N python3 mpi_mnist_worker.py OUT``: the MNIST example's training on a small
synthetic set (so no download), data-parallel when N > 1."""
import sys

import numpy

from seqdbr import distributed as D
from seqdbr.datasets import TupleDataset
from seqdbr.examples import mnist


def main():
    rng = numpy.random.default_rng(0)
    x = rng.normal(size=(700, 20)).astype(numpy.float32)
    t = (x[:, :3].sum(1) > 0).astype(numpy.int32) + 2 * (x[:, 3] > 0).astype(numpy.int32)
    train, test = TupleDataset(x[:600], t[:600]), TupleDataset(x[600:], t[600:])
    size, _ = D.launcher_world()
    comm = D.create_communicator() if size > 1 else None
    if comm is not None:
        D.install_abort_hook(comm)
    cfg = mnist.MnistConfig(epochs=3, units=16, batchsize=40, out=sys.argv[1], seed=1,
                            alpha=1e-2, progress=False, verbose=False)
    mnist.train(cfg, data=(train, test), comm=comm)


if __name__ == '__main__':
    main()
