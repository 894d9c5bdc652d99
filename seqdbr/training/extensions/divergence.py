"""DivergenceGuard: stop a run whose loss is NaN, infinite or exploding."""
import math

from seqdbr.training.extension import PRIORITY_GUARD, Extension
from seqdbr.training.reporter import as_float

__all__ = ['DivergenceGuard']


class DivergenceGuard(Extension):
    """Mark the run diverged when observation ``key`` is not finite or exceeds
    ``factor`` times its first value in the run.

    It runs first each iteration; the trainer then lets the log and the progress bar record
    the iteration and raises :class:`~seqdbr.training.TrainingDiverged` before any snapshot,
    so ``latest`` and ``best`` keep the last good state. The first value is part of the
    snapshot, so a resumed run uses the same limit.

    Args:
        key (str): the observation to watch (default ``'loss'``).
        factor (float): > 1; ``None`` checks finiteness only.
    """
    trigger = None
    priority = PRIORITY_GUARD

    def __init__(self, key='loss', factor=3.0):
        if factor is not None and not (isinstance(factor, (int, float)) and factor > 1):
            raise ValueError('factor must be a number > 1 or None, got %r' % (factor,))
        self.key = key
        self.factor = factor
        self.initial = None

    def __call__(self, trainer):
        if self.key not in trainer.observation:
            return
        value = as_float(trainer.observation[self.key])
        if self.initial is None and math.isfinite(value):
            self.initial = value
        it = trainer.updater.iteration
        if not math.isfinite(value):
            trainer.mark_diverged('training diverged at iteration %d (epoch %.2f): %s %r'
                                  % (it, trainer.updater.epoch_detail, self.key, value))
        elif self.factor is not None and value > self.factor * self.initial:
            trainer.mark_diverged(
                'training diverged at iteration %d (epoch %.2f): %s %.4f, more than %g x the '
                'first value %.4f' % (it, trainer.updater.epoch_detail, self.key, value,
                                      self.factor, self.initial))

    def serialize(self, s):
        stored = s('initial', math.nan if self.initial is None else float(self.initial))
        self.initial = stored if math.isfinite(stored) else None
