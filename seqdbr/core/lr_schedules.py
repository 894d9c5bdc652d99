"""Learning-rate schedules: the rate as a pure function of ``(base_lr, epoch)``.

A schedule object has ``lr_at(epoch, base_lr)`` and is also an optimizer hook::

    opt = seqdbr.optimizers.Adam(alpha=2e-3)
    opt.setup(model)
    opt.add_hook(ExponentialDecay(rate=0.97, after=10))
    for epoch in range(n_epochs):
        for batch in batches:
            opt.update(lossfun, *batch)   # the hook sets opt.lr before the rules run
        opt.new_epoch()

Called as ``schedule(opt)`` it sets ``opt.lr = schedule.lr_at(opt.epoch, opt.base_lr)``.
``opt.epoch`` is the number of completed epochs (``new_epoch()`` calls) and
``opt.base_lr`` the optimizer's constructor learning rate, and both are saved by
``opt.serialize``. Nothing else is remembered, so a run resumed from a checkpoint
continues the schedule exactly, and changing ``base_lr`` rescales the whole schedule.
As a hook the schedule runs before every update; after ``new_epoch()`` the new rate
takes effect at the next update (call ``schedule(opt)`` to apply it at once, e.g. to
log it).
"""
import numbers

__all__ = ['LRSchedule', 'ExponentialDecay', 'StepDecay']


class LRSchedule:
    """Base class: subclasses implement ``lr_at(epoch, base_lr)``."""
    name = 'LRSchedule'
    timing = 'pre'

    def lr_at(self, epoch, base_lr):
        """The learning rate during epoch ``epoch`` (0-based: the number of completed
        epochs) of a run that started at ``base_lr``."""
        raise NotImplementedError

    def __call__(self, optimizer):
        base_lr = getattr(optimizer, 'base_lr', None)
        if base_lr is None:
            raise TypeError('%s needs an optimizer with a learning rate (opt.base_lr); %s has '
                            'none' % (type(self).__name__, type(optimizer).__name__))
        optimizer.lr = self.lr_at(optimizer.epoch, base_lr)


def _check_epoch(epoch):
    if not isinstance(epoch, numbers.Integral) or epoch < 0:
        raise ValueError('epoch must be an integer >= 0, got %r' % (epoch,))
    return int(epoch)


class ExponentialDecay(LRSchedule):
    """Multiply the learning rate by ``rate`` at the end of every epoch from epoch
    ``after`` on (char-rnn's ``learning_rate_decay`` / ``learning_rate_decay_after``).

    char-rnn (Karpathy, ``train.lua``) decays once at the end of each epoch, when the
    number of completed epochs ``k`` satisfies ``k >= after``. So with ``epoch`` = the
    number of completed epochs (0 during the first epoch)::

        lr_at(epoch) = base_lr * rate ** max(0, epoch - max(after, 1) + 1)

    With the defaults the first 10 epochs (``epoch`` 0..9) run at ``base_lr``, epoch 10
    (the 11th) at ``base_lr * 0.97``, epoch 11 at ``base_lr * 0.97**2``, and so on.
    ``after <= 1`` decays after every epoch.

    Args:
        rate (float): multiplier per decayed epoch, in (0, 1].
        after (int): first completed-epoch count at which a decay happens (>= 0).
    """
    name = 'ExponentialDecay'

    def __init__(self, rate=0.97, after=10):
        if not isinstance(rate, numbers.Real) or not 0 < rate <= 1:
            raise ValueError('rate must be in (0, 1], got %r' % (rate,))
        if not isinstance(after, numbers.Integral) or after < 0:
            raise ValueError('after must be an integer >= 0, got %r' % (after,))
        self.rate = rate
        self.after = int(after)

    def n_decays(self, epoch):
        """How many decays have happened once ``epoch`` epochs are complete."""
        return max(0, _check_epoch(epoch) - max(self.after, 1) + 1)

    def lr_at(self, epoch, base_lr):
        return base_lr * self.rate ** self.n_decays(epoch)

    def __repr__(self):
        return 'ExponentialDecay(rate=%r, after=%r)' % (self.rate, self.after)


class StepDecay(LRSchedule):
    """Multiply the learning rate by ``gamma`` every ``step_size`` epochs::

        lr_at(epoch) = base_lr * gamma ** (epoch // step_size)

    (``epoch`` = number of completed epochs, so epochs 0..step_size-1 run at ``base_lr``.)

    Args:
        step_size (int): epochs per step (>= 1).
        gamma (float): multiplier per step (> 0).
    """
    name = 'StepDecay'

    def __init__(self, step_size, gamma=0.1):
        if not isinstance(step_size, numbers.Integral) or step_size < 1:
            raise ValueError('step_size must be an integer >= 1, got %r' % (step_size,))
        if not isinstance(gamma, numbers.Real) or not gamma > 0:
            raise ValueError('gamma must be a real number > 0, got %r' % (gamma,))
        self.step_size = int(step_size)
        self.gamma = gamma

    def lr_at(self, epoch, base_lr):
        return base_lr * self.gamma ** (_check_epoch(epoch) // self.step_size)

    def __repr__(self):
        return 'StepDecay(step_size=%r, gamma=%r)' % (self.step_size, self.gamma)
