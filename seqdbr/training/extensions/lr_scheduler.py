"""LRScheduler: a learning-rate schedule as a trainer extension."""
from seqdbr.training.extension import PRIORITY_EDITOR, Extension

__all__ = ['LRScheduler']


class LRScheduler(Extension):
    """Set ``optimizer.lr`` from a schedule before the first update and after every update.

    The schedules are :mod:`seqdbr.core.lr_schedules` objects, pure functions of the
    optimizer's counters: ``ExponentialDecay(rate, after)`` (char-rnn's decay after N
    epochs), ``StepDecay(step_size, gamma)`` and ``WarmupCosine(warmup, total, min_lr)``
    (per update). Since the counters are saved with the optimizer, a resumed run continues
    the schedule exactly; nothing else is stored. (The same objects also work as optimizer
    hooks, ``opt.add_hook(schedule)``.)

    Args:
        schedule (LRSchedule): the schedule.
        optimizer: default the updater's optimizer.
    """
    trigger = None
    priority = PRIORITY_EDITOR

    def __init__(self, schedule, optimizer=None):
        if not hasattr(schedule, 'lr_for'):
            raise TypeError('LRScheduler needs a seqdbr.core.lr_schedules schedule, got %s'
                            % type(schedule).__name__)
        self.schedule = schedule
        self.optimizer = optimizer

    def _apply(self, trainer):
        opt = self.optimizer or trainer.updater.optimizer
        opt.lr = self.schedule.lr_for(opt)

    def initialize(self, trainer):
        self._apply(trainer)

    def __call__(self, trainer):
        self._apply(trainer)
