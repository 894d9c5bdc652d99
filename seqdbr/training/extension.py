"""The extension protocol: what the trainer calls besides the updater.

An extension is a callable ``ext(trainer)`` run after an update whenever its trigger fires,
with optional methods:

* ``initialize(trainer)``: once before the first iteration of every ``run()`` (also after a
  resume);
* ``finalize(trainer)``: once when ``run()`` ends, normally or not;
* ``on_error(trainer, exc)``: when an update or an extension raised, before ``run()``
  re-raises;
* ``serialize(s)``: its state, saved in snapshots (the best value so far, a partial mean);
* ``drop_extra(iteration, keys)``: forget what an *extra* end-of-run firing of another
  extension reported at ``iteration`` (see :class:`seqdbr.training.Trainer`).

``root_only = True`` marks an extension that only writes or prints (a log, a report, a
progress bar, a plot): in a data-parallel run (``Trainer(comm=...)``) it runs on rank 0
only.

Attributes read by :meth:`Trainer.extend` when not given there: ``trigger`` (default every
iteration), ``priority`` (higher runs first) and ``name``.

Priorities (higher first): :data:`PRIORITY_WRITER` extensions add observations (an
evaluator), :data:`PRIORITY_EDITOR` ones change them or the optimizer (learning-rate
schedules), :data:`PRIORITY_READER` ones read them (log, progress bar, report). After the
readers the trainer stops a diverged run; :data:`PRIORITY_SNAPSHOT` extensions (snapshots)
run last, so a diverged state is never saved.
"""

__all__ = ['Extension', 'PRIORITY_GUARD', 'PRIORITY_WRITER', 'PRIORITY_EDITOR',
           'PRIORITY_READER', 'PRIORITY_SNAPSHOT']

PRIORITY_GUARD = 400
PRIORITY_WRITER = 300
PRIORITY_EDITOR = 200
PRIORITY_READER = 100
PRIORITY_SNAPSHOT = 50


class Extension:
    """Base class with the defaults (every iteration, reader priority, no state)."""
    trigger = (1, 'iteration')
    priority = PRIORITY_READER
    name = None
    root_only = False

    @property
    def default_name(self):
        return self.name or type(self).__name__

    def __call__(self, trainer):
        raise NotImplementedError

    def initialize(self, trainer):
        pass

    def finalize(self, trainer):
        pass

    def on_error(self, trainer, exc):
        pass
