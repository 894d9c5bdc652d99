"""Run under ``mpiexec -n N`` (N <= GPUs) by test_nccl.py: the NCCL gradient Allreduce of
CuPy parameters, checked against the mean computed on the host. Prints ``OK <rank>``."""
import numpy

import seqdbr
import seqdbr.links as L
from seqdbr import distributed as D
from seqdbr import optimizers as O


def main():
    comm = D.create_communicator(device='gpu')
    D.install_abort_hook(comm)
    import cupy
    assert cupy.cuda.Device().id == comm.intra_rank
    r, n = comm.rank, comm.size
    seqdbr.seed(3 + r)
    model = seqdbr.Chain()
    with model.init_scope():
        model.a = L.Linear(5, 7)
        model.b = L.Linear(7, 3)
    model.to_device('gpu:%d' % comm.intra_rank)
    comm.bcast_data(model)
    w = {k: cupy.asnumpy(p.array) for k, p in model.namedparams()}
    for k, v in comm.allgather_obj(w)[0].items():
        numpy.testing.assert_array_equal(w[k], v)
    params = dict(sorted(model.namedparams()))
    expect = {}
    for k, (name, p) in enumerate(params.items()):
        per_rank = [numpy.full(p.array.shape, 1.0 + k + 10 * q, numpy.float32) for q in range(n)]
        if name == '/a/b' and r == n - 1 and n > 1:
            p.grad = None
            per_rank[-1][...] = 0
        else:
            p.grad = cupy.asarray(per_rank[r])
        expect[name] = sum(per_rank) / n
    params['/b/b'].grad = None
    comm.allreduce_grad(model)
    for name, p in params.items():
        if name == '/b/b':
            assert p.grad is None
            continue
        assert isinstance(p.grad, cupy.ndarray)
        numpy.testing.assert_allclose(cupy.asnumpy(p.grad), expect[name], rtol=1e-6)
    opt = D.create_multi_node_optimizer(O.Adam(), comm).setup(model)
    for p in model.params():
        p.grad = cupy.ones_like(p.array)
    opt.update()
    assert opt.t == 1
    print('OK %d\n' % r, end='', flush=True)


if __name__ == '__main__':
    main()
