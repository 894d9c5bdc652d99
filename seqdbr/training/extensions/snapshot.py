"""snapshot: write the whole training state when a trigger fires."""
import json
import os

from seqdbr.training.extension import PRIORITY_SNAPSHOT, Extension

__all__ = ['Snapshot', 'snapshot']


class Snapshot(Extension):
    """Write ``trainer.save(out/filename)`` when the trigger fires.

    ``filename`` may use ``{iteration}`` and ``{epoch}`` (e.g.
    ``'snapshot_iter_{iteration}.npz'``); with ``keep_last=K`` only the K newest such
    files this extension wrote are kept. For "keep the best", give a
    :class:`~seqdbr.training.triggers.MinValueTrigger` as the trigger. Snapshots run after
    every other extension and never after a diverged iteration. An ``(N, unit)`` trigger
    (default once per epoch) also fires when the run stops (a limit, a signal), so the last
    state is always saved. In a data-parallel run it runs on every rank (the state may be
    gathered) and rank 0 writes the file.

    Attributes:
        last_path (str or None): the file written last.
    """
    trigger = (1, 'epoch')
    trigger_at_end = True
    priority = PRIORITY_SNAPSHOT

    def __init__(self, filename='latest.npz', keep_last=None):
        if keep_last is not None and (isinstance(keep_last, bool)
                                      or not isinstance(keep_last, int) or keep_last < 1):
            raise ValueError('keep_last must be an integer >= 1 or None, got %r'
                             % (keep_last,))
        self.filename = filename
        self.keep_last = keep_last
        self.written = []
        self.last_path = None
        self.last_iteration = None

    @property
    def default_name(self):
        return 'snapshot:' + self.filename

    def __call__(self, trainer):
        u = trainer.updater
        name = self.filename.format(iteration=u.iteration, epoch=u.epoch)
        path = os.path.join(trainer.out, name)
        if self.keep_last is not None:       # the snapshot records itself among the kept
            self.written = [q for q in self.written if q != path] + [path]
        trainer.save(path)
        self.last_path, self.last_iteration = path, u.iteration
        if self.keep_last is not None and getattr(trainer, 'is_root', True):
            while len(self.written) > self.keep_last:
                old = self.written.pop(0)
                try:
                    os.remove(old)
                except FileNotFoundError:
                    pass

    def serialize(self, s):
        if self.keep_last is not None:
            self.written = json.loads(s('written', json.dumps(self.written)))


def snapshot(filename='latest.npz', keep_last=None):
    """A :class:`Snapshot` extension (Chainer's spelling)."""
    return Snapshot(filename, keep_last)
