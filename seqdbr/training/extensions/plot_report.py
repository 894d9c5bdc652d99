"""PlotReport: a PNG of chosen observations against iteration or epoch."""
import json
import os
import warnings

from seqdbr.training.extension import PRIORITY_READER, Extension
from seqdbr.training.reporter import as_float
from seqdbr.training.triggers import get_trigger

__all__ = ['PlotReport']

_warned = []


class PlotReport(Extension):
    """Collect ``keys`` every iteration they are observed; draw ``out/filename`` (PNG,
    written atomically) when the trigger fires and at the end of the run.

    matplotlib is the optional extra ``seqdbr[plot]``; without it one warning names the
    extra and training goes on.

    Args:
        keys (list of str): observation names (one line each).
        x_key (str): ``'iteration'`` or ``'epoch'`` (fractional).
        trigger: when to redraw (default once per epoch).
        filename (str): relative to the trainer's ``out``.
        ylabel (str or None): the y axis label.
    """
    root_only = True        # a distributed run writes/prints on rank 0 only
    trigger = None
    priority = PRIORITY_READER

    def __init__(self, keys, x_key='iteration', trigger=(1, 'epoch'), filename='plot.png',
                 ylabel=None):
        if x_key not in ('iteration', 'epoch'):
            raise ValueError("x_key must be 'iteration' or 'epoch', got %r" % (x_key,))
        self.keys = list(keys)
        self.x_key = x_key
        self._draw_trigger = get_trigger(trigger)
        self.filename = filename
        self.ylabel = ylabel
        self.series = {k: [] for k in self.keys}
        self.path = None

    def __call__(self, trainer):
        u = trainer.updater
        x = u.iteration if self.x_key == 'iteration' else u.epoch_detail
        for k in self.keys:
            if k in trainer.observation:
                self.series[k].append([x, as_float(trainer.observation[k])])
        if self._draw_trigger(trainer) or trainer.stop_reason is not None:
            self.draw(os.path.join(trainer.out, self.filename))

    def drop_extra(self, iteration, keys):
        for k in keys:
            pts = self.series.get(k)
            if pts and self.x_key == 'iteration' and pts[-1][0] == iteration:
                pts.pop()

    def draw(self, path):
        """Draw the PNG now; returns the path, or None without matplotlib."""
        try:
            import matplotlib
            matplotlib.use('Agg')
            import matplotlib.pyplot as plt
        except ImportError:
            if not _warned:
                warnings.warn('matplotlib is not installed, so PlotReport draws nothing; '
                              'pip install "seqdbr[plot]" to get plots', stacklevel=2)
                _warned.append(True)
            return None
        from seqdbr.core.atomic import atomic_write
        fig, ax = plt.subplots(figsize=(8, 5))
        for k, pts in self.series.items():
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, marker='o' if len(pts) < 50 else None, label=k)
        ax.set_xlabel(self.x_key)
        if self.ylabel:
            ax.set_ylabel(self.ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend()
        with atomic_write(path, 'wb') as f:
            fig.savefig(f, format='png', dpi=100)
        plt.close(fig)
        self.path = path
        return path

    def serialize(self, s):
        self.series = json.loads(s('series', json.dumps(self.series, allow_nan=True)))
