"""PrintReport: chosen observations as a table on stdout."""
import sys

from seqdbr.training.extension import PRIORITY_READER, Extension
from seqdbr.training.reporter import as_float

__all__ = ['PrintReport']


class PrintReport(Extension):
    """Print one table row per firing (default once per epoch): ``iteration``, ``epoch``
    and the chosen observation names (a blank cell where a name was not observed).

    When a :class:`LogReport` wrote a record at this iteration, the row shows that record
    (the means over its interval, as Chainer's PrintReport does); otherwise this iteration's
    values.

    Args:
        keys (list of str): observation names, e.g. ``['loss', 'val/loss']``.
        out: a text stream (default ``sys.stdout``); a closed pipe is ignored.
        width (int): minimum column width.
        log_report (str): the name of the LogReport extension to read.
    """
    root_only = True        # a distributed run writes/prints on rank 0 only
    trigger = (1, 'epoch')
    priority = PRIORITY_READER

    def __init__(self, keys, out=None, width=12, log_report='LogReport'):
        self.keys = list(keys)
        self.out = out
        self.width = width
        self.log_report = log_report
        self._header_done = False

    def _values(self, trainer):
        try:
            log = trainer.get_extension(self.log_report)
        except KeyError:
            log = None
        raw = getattr(log, 'last_raw', None)
        if raw is not None and raw.get('iteration') == trainer.updater.iteration:
            return raw
        return trainer.observation

    def _write(self, text):
        try:
            stream = self.out or sys.stdout
            stream.write(text)
            stream.flush()
        except BrokenPipeError:
            pass

    def __call__(self, trainer):
        cols = ['iteration', 'epoch'] + self.keys
        widths = [max(self.width, len(c) + 2) for c in cols]
        if not self._header_done:
            self._write(''.join(c.ljust(w) for c, w in zip(cols, widths)).rstrip() + '\n')
            self._header_done = True
        u = trainer.updater
        values = self._values(trainer)
        cells = [str(u.iteration), '%g' % round(u.epoch_detail, 2)]
        for k in self.keys:
            v = values.get(k)
            cells.append('%.6g' % as_float(v) if v is not None else '')
        self._write(''.join(c.ljust(w) for c, w in zip(cells, widths)).rstrip() + '\n')
