"""Run under ``mpiexec -n 2`` by test_distributed.py: the communicator's collectives, each
checked against values computed here independently. Prints ``OK <rank>`` at the end."""
import numpy

import seqdbr
import seqdbr.links as L
from seqdbr import distributed as D
from seqdbr import optimizers as O
from seqdbr.core.serializers import serialize_to_dict


def grads(rank, shape, k):
    return (numpy.arange(numpy.prod(shape), dtype=numpy.float64).reshape(shape) * (k + 1)
            + 10.0 * rank)


def main():
    comm = D.create_communicator()
    D.install_abort_hook(comm)            # a failed check ends both ranks, never a hang
    r, n = comm.rank, comm.size
    assert n == 2 and 0 <= comm.intra_rank < 2, comm

    # objects
    assert comm.bcast_obj({'a': r}) == {'a': 0}
    assert comm.allreduce_obj(r + 1) == 3
    assert comm.allreduce_obj(r + 1, 'max') == 2
    assert comm.allreduce_obj(float(r), 'mean') == 0.5
    comm.barrier()
    assert comm.split_range(5) == ((0, 3) if r == 0 else (3, 5))
    share = D.split_dataset(list(range(5)), comm)
    assert list(share[:]) == ([0, 1, 2] if r == 0 else [3, 4, 0]), list(share[:])

    # bcast_data: rank 0's weights everywhere
    seqdbr.seed(100 + r)                         # different initial weights per rank
    model = seqdbr.Chain()
    with model.init_scope():
        model.a = L.Linear(3, 4)
        model.b = L.Linear(4, 2)
    model.a.W.array[...] = r
    comm.bcast_data(model)
    assert (model.a.W.array == 0).all()
    w = {k: v.array.copy() for k, v in model.namedparams()}
    allw = comm.allgather_obj(w)
    for k in w:
        numpy.testing.assert_array_equal(allw[0][k], allw[1][k])

    # allreduce_grad: the mean; None on one rank = zeros; None everywhere stays None
    params = dict(model.namedparams())
    for k, (name, p) in enumerate(sorted(params.items())):
        p.grad = grads(r, p.array.shape, k).astype(p.array.dtype)
    params['/b/b'].grad = None                       # None everywhere
    if r == 1:
        params['/a/b'].grad = None                   # None on rank 1 only
    comm.allreduce_grad(model)
    buf_id = {k: id(v[1]) for k, v in comm._buffers.items()}
    for k, (name, p) in enumerate(sorted(params.items())):
        if name == '/b/b':
            assert p.grad is None
            continue
        g0 = grads(0, p.array.shape, k)
        g1 = numpy.zeros_like(g0) if name == '/a/b' else grads(1, p.array.shape, k)
        numpy.testing.assert_allclose(p.grad, (g0 + g1) / 2, rtol=1e-6)
    total = sum(p.array.size for p in params.values()) + len(params)
    assert comm.reduce_bytes == total * 4, (comm.reduce_bytes, total)
    comm.allreduce_grad(model)                       # buffer reused, not reallocated
    assert buf_id == {k: id(v[1]) for k, v in comm._buffers.items()}

    # two dtypes: one buffer (and one Allreduce) each
    mixed = seqdbr.Chain()
    with mixed.init_scope():
        mixed.f = L.Linear(2, 3)
        mixed.d = L.Linear(3, 2)
    for p in mixed.d.params():
        p.array = p.array.astype(numpy.float64)
    for k, (name, p) in enumerate(sorted(mixed.namedparams())):
        p.grad = grads(r, p.array.shape, k).astype(p.array.dtype)
    comm._buffers.clear()
    comm.allreduce_grad(mixed)
    assert sorted(comm._buffers) == ['<f4', '<f8'], sorted(comm._buffers)
    assert comm.reduce_bytes == (6 + 3 + 2) * 4 + (6 + 2 + 2) * 8   # values + flags
    for k, (name, p) in enumerate(sorted(mixed.namedparams())):
        assert p.grad.dtype == p.array.dtype
        numpy.testing.assert_allclose(p.grad, (grads(0, p.array.shape, k)
                                               + grads(1, p.array.shape, k)) / 2, rtol=1e-6)

    # multi-node optimizer: clipping sees the reduced global gradient
    seqdbr.seed(7)
    net = L.Linear(2, 2)
    opt = D.create_multi_node_optimizer(O.SGD(lr=1.0), comm).setup(net)
    opt.add_hook(O.hooks.GradientClipping(1.0))
    w0 = net.W.array.copy()
    net.W.grad = numpy.full((2, 2), 3.0 if r == 0 else -1.0, numpy.float32)   # mean 1
    net.b.grad = numpy.zeros(2, numpy.float32)
    opt.update()
    # global mean gradient: all ones, norm 2 -> clipped to 0.5 each
    numpy.testing.assert_allclose(net.W.array, w0 - 0.5, rtol=1e-6)
    assert opt.t == 1 and opt.lr == 1.0
    opt.lr = 0.5
    assert opt.actual_optimizer.lr == 0.5
    assert sorted(serialize_to_dict(opt)) == sorted(serialize_to_dict(opt.actual_optimizer))
    print('OK %d\n' % r, end='', flush=True)


if __name__ == '__main__':
    main()
