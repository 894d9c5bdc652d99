"""Triggers: when an extension runs, and when training stops.

A trigger is a callable ``trigger(trainer) -> bool`` called once per iteration, after the
update. Specs accepted wherever a trigger is (:func:`get_trigger`):

* ``(N, 'iteration')`` / ``(N, 'epoch')``: every N iterations / at the end of every N-th
  epoch (:class:`IntervalTrigger`);
* ``'end'``: once, at the run's last iteration (:class:`EndTrigger`);
* a callable, used as is; ``None``: every iteration.

:class:`IntervalTrigger` with ``at_end=True`` also fires at the last iteration of the run
(a final evaluation or snapshot when the run stops between scheduled ones); such a firing is
*extra* (``trigger.extra`` is True after it), and the trainer uses that to make a resumed run
equal an uninterrupted one (see :class:`seqdbr.training.Trainer`).
:class:`MinValueTrigger` / :class:`MaxValueTrigger` fire when an observed key reaches a new
best (e.g. keep ``best.npz`` by validation loss). :class:`StopTrigger` is the stopping rule:
a number of iterations or epochs, a wall-clock budget, whichever comes first.
"""
import json
import math
import numbers

from seqdbr.training.reporter import as_float

__all__ = ['IntervalTrigger', 'EndTrigger', 'MinValueTrigger', 'MaxValueTrigger',
           'StopTrigger', 'get_trigger', 'UNITS']

UNITS = ('iteration', 'epoch')


def _check_period(period, unit, what):
    if unit not in UNITS:
        raise ValueError('%s: unknown unit %r; use %s' % (what, unit, ' or '.join(map(repr, UNITS))))
    if isinstance(period, bool) or not isinstance(period, numbers.Integral) or period < 1:
        raise ValueError('%s: the period must be an integer >= 1 (every N %ss), got %r'
                         % (what, unit, period))
    return int(period)


class IntervalTrigger:
    """Fires every ``period`` iterations, or at the end of every ``period``-th epoch.

    Args:
        period (int): >= 1.
        unit (str): ``'iteration'`` or ``'epoch'``.
        at_end (bool): also fire at the run's last iteration (an *extra* firing).

    Raises:
        ValueError: a period that is not a positive integer, or an unknown unit (the message
            names the trigger).
    """

    def __init__(self, period, unit='iteration', at_end=False):
        what = 'trigger (%r, %r)' % (period, unit)
        self.period = _check_period(period, unit, what)
        self.unit = unit
        self.at_end = bool(at_end)
        self.extra = False

    def scheduled(self, trainer):
        """True when the schedule itself (not the end of the run) fires now."""
        u = trainer.updater
        if self.unit == 'iteration':
            return u.iteration % self.period == 0
        return u.is_new_epoch and u.epoch % self.period == 0

    def __call__(self, trainer):
        on = self.scheduled(trainer)
        self.extra = not on and self.at_end and trainer.stop_reason is not None
        return on or self.extra

    def __repr__(self):
        return 'IntervalTrigger(%d, %r%s)' % (self.period, self.unit,
                                               ', at_end=True' if self.at_end else '')


class EndTrigger:
    """Fires at the run's last iteration (whatever stopped it)."""

    def __call__(self, trainer):
        return trainer.stop_reason is not None


class _BestValueTrigger:
    """Fires when ``key`` is in this iteration's observation and beats the best so far.

    State (saved in snapshots): every ``(iteration, value)`` seen, so that a value from an
    extra end-of-run evaluation can be taken back on resume (:meth:`drop_extra`).
    """
    _better = None

    def __init__(self, key):
        if not isinstance(key, str) or not key:
            raise ValueError('%s: key must be a non-empty observation name, got %r'
                             % (type(self).__name__, key))
        self.key = key
        self.history = []
        self.best = None
        self.best_iteration = None

    def __call__(self, trainer):
        if self.key not in trainer.observation:
            return False
        value = as_float(trainer.observation[self.key])
        self.history.append([trainer.updater.iteration, value])
        if math.isfinite(value) and (self.best is None or self._better(value, self.best)):
            self.best, self.best_iteration = value, trainer.updater.iteration
            return True
        return False

    def _recompute(self):
        self.best = self.best_iteration = None
        for it, v in self.history:
            if math.isfinite(v) and (self.best is None or self._better(v, self.best)):
                self.best, self.best_iteration = v, it

    def drop_extra(self, iteration, keys):
        """Forget this trigger's value from an extra evaluation at ``iteration``."""
        if self.key in keys and self.history and self.history[-1][0] == iteration:
            self.history.pop()
            self._recompute()

    def serialize(self, s):
        text = s('history', json.dumps(self.history))
        self.history = [[int(i), float(v)] for i, v in json.loads(text)]
        self._recompute()


class MinValueTrigger(_BestValueTrigger):
    """Fires when observation ``key`` reaches a new minimum (e.g. ``'val/loss'``)."""

    @staticmethod
    def _better(a, b):
        return a < b


class MaxValueTrigger(_BestValueTrigger):
    """Fires when observation ``key`` reaches a new maximum (e.g. ``'val/accuracy'``)."""

    @staticmethod
    def _better(a, b):
        return a > b


class StopTrigger:
    """The stopping rule: whichever limit is reached first.

    Args:
        max_iterations (int or None): total iterations (counted across resumes).
        max_epochs (int or None): completed epochs.
        max_minutes (float or None): wall-clock budget of this invocation, checked after
            every iteration.

    Raises:
        ValueError: a limit that is not positive.
    """

    def __init__(self, max_iterations=None, max_epochs=None, max_minutes=None):
        if max_iterations is not None:
            _check_period(max_iterations, 'iteration', 'max_iterations')
        if max_epochs is not None:
            _check_period(max_epochs, 'epoch', 'max_epochs')
        if max_minutes is not None and (isinstance(max_minutes, bool)
                                        or not isinstance(max_minutes, numbers.Real)
                                        or not 0 < max_minutes < math.inf):
            raise ValueError('max_minutes must be a positive number, got %r' % (max_minutes,))
        self.max_iterations, self.max_epochs = max_iterations, max_epochs
        self.max_minutes = max_minutes

    def reason(self, trainer):
        """``'done'`` (an iteration/epoch limit), ``'time budget'`` or None."""
        u = trainer.updater
        if self.max_iterations is not None and u.iteration >= self.max_iterations:
            return 'done'
        if self.max_epochs is not None and u.epoch >= self.max_epochs:
            return 'done'
        if self.max_minutes is not None and trainer.run_seconds >= self.max_minutes * 60.0:
            return 'time budget'
        return None

    def total_iterations(self, updater):
        """The iteration the limits end at, when known (for progress bars), else None."""
        ends = [] if self.max_iterations is None else [self.max_iterations]
        per_epoch = getattr(updater, 'iterations_per_epoch', None)
        if self.max_epochs is not None and per_epoch:
            ends.append(self.max_epochs * per_epoch)
        return min(ends) if ends else None

    def __repr__(self):
        return 'StopTrigger(max_iterations=%r, max_epochs=%r, max_minutes=%r)' % (
            self.max_iterations, self.max_epochs, self.max_minutes)


def get_trigger(spec, at_end=False):
    """Turn a trigger spec (see the module docstring) into a trigger.

    Args:
        spec: the spec.
        at_end (bool): an ``(N, unit)`` spec also fires at the run's last iteration.

    Raises:
        ValueError: a malformed spec (the message names it and the accepted forms).
    """
    if spec is None:
        return IntervalTrigger(1, 'iteration')
    if isinstance(spec, str) and spec == 'end':
        return EndTrigger()
    if callable(spec):
        return spec
    if isinstance(spec, (tuple, list)) and len(spec) == 2:
        return IntervalTrigger(spec[0], spec[1], at_end=at_end)
    raise ValueError("bad trigger %r: use (N, 'iteration'), (N, 'epoch'), 'end', a "
                     "callable trigger(trainer) -> bool, or None (every iteration)" % (spec,))


def get_stop_trigger(spec):
    """A :class:`StopTrigger` from ``(N, 'iteration')``, ``(N, 'epoch')``, a StopTrigger or
    None (never stops by itself: only a signal or an error ends the run)."""
    if spec is None:
        return StopTrigger()
    if isinstance(spec, StopTrigger):
        return spec
    if isinstance(spec, (tuple, list)) and len(spec) == 2:
        n, unit = spec
        _check_period(n, unit, 'stop trigger (%r, %r)' % (n, unit))
        return StopTrigger(**{'max_%ss' % unit: n})
    raise ValueError("bad stop trigger %r: use (N, 'iteration'), (N, 'epoch') or "
                     "StopTrigger(max_iterations=..., max_epochs=..., max_minutes=...)"
                     % (spec,))
