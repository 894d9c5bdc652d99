"""The multi-node optimizer: the wrapped optimizer, fed with the global mean gradient.

``create_multi_node_optimizer(opt, comm)`` returns an object that behaves as ``opt`` does
(attributes, ``lr``, hooks, ``new_epoch``, ``serialize``: all forwarded), except that
:meth:`MultiNodeOptimizer.update` first replaces every gradient by its mean over the ranks
(:meth:`~seqdbr.distributed.communicator.MpiCommunicator.allreduce_grad`) and only then runs
``opt.update()``: its hooks (gradient clipping by the global norm, weight decay) see the
reduced gradient, so every rank applies the same update, the one a single process would
compute on the whole batch (up to float rounding in the reduction).

The wrapper adds no state: a snapshot written through it is the wrapped optimizer's, and
loads into either.
"""
__all__ = ['MultiNodeOptimizer', 'create_multi_node_optimizer']

_OWN = ('actual_optimizer', 'communicator')


class MultiNodeOptimizer:
    """See the module docstring.

    Args:
        actual_optimizer: a seqdbr optimizer (set up or not yet).
        communicator: an :class:`~seqdbr.distributed.communicator.MpiCommunicator`.
    """

    def __init__(self, actual_optimizer, communicator):
        object.__setattr__(self, 'actual_optimizer', actual_optimizer)
        object.__setattr__(self, 'communicator', communicator)

    def setup(self, link):
        """Set up the wrapped optimizer and give every rank rank 0's parameters
        (``bcast_data``). Returns ``self``."""
        self.actual_optimizer.setup(link)
        self.communicator.bcast_data(link)
        return self

    def update(self, lossfun=None, *args, **kwds):
        """``lossfun`` as in the wrapped optimizer (cleargrads, forward, backward), then the
        gradient mean over the ranks, then the wrapped ``update()`` (hooks and rules)."""
        opt = self.actual_optimizer
        target = opt.target
        if target is None:
            raise RuntimeError('update: this optimizer has no target link; call setup(link) '
                               'first')
        if lossfun is not None:
            target.cleargrads()
            loss = lossfun(*args, **kwds)
            loss.backward()
            del loss
        self.communicator.allreduce_grad(target)
        opt.update()

    def __getattr__(self, name):
        return getattr(self.actual_optimizer, name)

    def __setattr__(self, name, value):
        if name in _OWN:
            object.__setattr__(self, name, value)
        else:
            setattr(self.actual_optimizer, name, value)

    def __repr__(self):
        return 'MultiNodeOptimizer(%r, %r)' % (self.actual_optimizer, self.communicator)


def create_multi_node_optimizer(actual_optimizer, communicator):
    """Wrap ``actual_optimizer`` for data-parallel training (see the module docstring)."""
    return MultiNodeOptimizer(actual_optimizer, communicator)
