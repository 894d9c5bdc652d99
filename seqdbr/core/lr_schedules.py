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
import math
import numbers

__all__ = ['LRSchedule', 'ExponentialDecay', 'StepDecay', 'WarmupCosine']


class LRSchedule:
    """Base class: subclasses implement ``lr_at(count, base_lr)``.

    ``unit`` says what ``count`` is: ``'epoch'`` (the optimizer's completed epochs,
    ``opt.epoch``) or ``'iteration'`` (its completed updates, ``opt.t``, i.e. the 0-based
    index of the update about to run).
    """
    name = 'LRSchedule'
    timing = 'pre'
    unit = 'epoch'

    def lr_at(self, epoch, base_lr):
        """The learning rate during epoch ``epoch`` (0-based: the number of completed
        epochs) of a run that started at ``base_lr``."""
        raise NotImplementedError

    def lr_for(self, optimizer):
        """The rate this schedule gives ``optimizer`` now (from ``opt.epoch`` or ``opt.t``)."""
        base_lr = getattr(optimizer, 'base_lr', None)
        if base_lr is None:
            raise TypeError('%s needs an optimizer with a learning rate (opt.base_lr); %s has '
                            'none' % (type(self).__name__, type(optimizer).__name__))
        count = optimizer.t if self.unit == 'iteration' else optimizer.epoch
        return self.lr_at(count, base_lr)

    def __call__(self, optimizer):
        optimizer.lr = self.lr_for(optimizer)


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


class WarmupCosine(LRSchedule):
    """Linear warm-up, then cosine annealing (Goyal et al. 2017; Loshchilov & Hutter 2017),
    per update (``unit = 'iteration'``). For update ``t`` (0-based, ``opt.t``)::

        t <  warmup:  lr = base_lr * (t + 1) / warmup
        t >= warmup:  lr = min_lr + (base_lr - min_lr) * (1 + cos(pi * p)) / 2,
                      p = min(1, (t - warmup) / max(1, total - warmup))

    so the rate climbs to ``base_lr`` over ``warmup`` updates, then falls to ``min_lr`` at
    update ``total`` and stays there.

    Args:
        warmup (int): warm-up updates (>= 0; 0 starts at ``base_lr``).
        total (int): the update at which the rate reaches ``min_lr`` (>= warmup).
        min_lr (float): the final rate (>= 0).

    Raises:
        ValueError: a negative ``warmup``, ``total < warmup`` or a negative ``min_lr``.
    """
    name = 'WarmupCosine'
    unit = 'iteration'

    def __init__(self, warmup, total, min_lr=0.0):
        if isinstance(warmup, bool) or not isinstance(warmup, numbers.Integral) or warmup < 0:
            raise ValueError('warmup must be an integer >= 0 (updates), got %r' % (warmup,))
        if isinstance(total, bool) or not isinstance(total, numbers.Integral) or total < warmup:
            raise ValueError('total must be an integer >= warmup (%r), got %r' % (warmup, total))
        if not isinstance(min_lr, numbers.Real) or not min_lr >= 0:
            raise ValueError('min_lr must be a number >= 0, got %r' % (min_lr,))
        self.warmup, self.total, self.min_lr = int(warmup), int(total), float(min_lr)

    def lr_at(self, step, base_lr):
        step = _check_epoch(step)
        if step < self.warmup:
            return base_lr * (step + 1) / self.warmup
        p = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return self.min_lr + (base_lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * p))

    def __repr__(self):
        return 'WarmupCosine(warmup=%r, total=%r, min_lr=%r)' % (self.warmup, self.total,
                                                                 self.min_lr)
