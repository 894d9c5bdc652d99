"""ProgressBar: a tqdm bar on stderr with the loss, throughput and ETA."""
import sys
import time

from seqdbr.training.extension import PRIORITY_READER, Extension
from seqdbr.training.reporter import as_float

__all__ = ['ProgressBar']


class ProgressBar(Extension):
    """A tqdm bar (iterations done / total when the stop trigger knows it, ETA) showing the
    last ``loss`` and the throughput.

    Quiet when stderr is not a terminal or with ``quiet=True``. Lines printed with
    :meth:`write` appear above the bar.

    Args:
        units_per_iteration (int): items per iteration for the throughput (e.g.
            ``batch * seq`` characters, or the batch size in samples).
        unit (str): the throughput's unit (``'chars'``, ``'samples'``...).
        quiet (bool): no bar.
        file: the bar's stream (default ``sys.stderr``).
    """
    root_only = True        # a distributed run writes/prints on rank 0 only
    trigger = None
    priority = PRIORITY_READER

    def __init__(self, units_per_iteration=1, unit='samples', quiet=False, file=None):
        self.per_iter = units_per_iteration
        self.unit = unit
        self.quiet = quiet
        self.file = file
        self.bar = None
        self._rate = 0.0

    def initialize(self, trainer):
        from tqdm import tqdm
        total = trainer.stop_trigger.total_iterations(trainer.updater)
        start = trainer.updater.iteration
        self.bar = tqdm(total=total, initial=start, disable=True if self.quiet else None,
                        unit='it', dynamic_ncols=True, file=self.file or sys.stderr,
                        smoothing=0.1)
        self._mark = (time.perf_counter(), start)

    def __call__(self, trainer):
        now = time.perf_counter()
        t, it = self._mark
        if now - t > 0.5:
            self._rate = (trainer.updater.iteration - it) * self.per_iter / (now - t)
            self._mark = (now, trainer.updater.iteration)
        post = {'%s_s' % self.unit: '{:,}'.format(int(self._rate))}
        loss = trainer.observation.get('loss')
        if loss is not None:
            post = dict(loss='%.4f' % as_float(loss), **post)
        self.bar.set_postfix(post, refresh=False)
        self.bar.update(1)

    @property
    def active(self):
        return self.bar is not None and not self.bar.disable

    def write(self, text, file=None):
        """Print ``text`` above the bar (or plainly when there is no bar)."""
        if self.active:
            self.bar.write(text, file=file)
        else:
            print(text, file=file, flush=True)

    def finalize(self, trainer):
        if self.bar is not None:
            self.bar.close()
