"""LogReport: the observations as JSON lines, one record per report, flushed each time."""
import json
import os

from seqdbr.training.errors import OutputError, WriteError
from seqdbr.training.evaluator import JsonlLogger, read_jsonl, rewrite_jsonl
from seqdbr.training.extension import PRIORITY_READER, Extension
from seqdbr.training.reporter import as_float
from seqdbr.training.triggers import get_trigger

__all__ = ['LogReport']


class LogReport(Extension):
    """Append the mean of each observed value since the last report to ``out/filename``.

    Each record holds ``iteration``, ``epoch`` (completed epochs, or the fractional epoch
    with ``epoch='detail'``), the means and ``time``
    (training seconds, summed over resumes). With ``keys=None`` every observed name is
    logged; with a list, those names (``null`` when not observed in the interval); with a
    dict ``{observation: field}``, those observations under the field names, in the dict's
    order (the char-RNN program's log uses this).

    On a fresh run the file is started anew; when it replaces an earlier run's log, the new
    records go to a side file (``.<filename>.new``) that replaces the old log only once the
    run has saved its first snapshot (or ends normally without any), so a run that fails
    early leaves the earlier log as it was. On a resumed run records after the snapshot's
    iteration are cut (an atomic rewrite), and values that an extra end-of-run evaluation added to the last
    kept record are taken back, so the log equals an uninterrupted run's.

    Args:
        keys (None, list or dict): see above.
        trigger: when to write (default once per epoch; None: every iteration).
        filename (str or None): relative to the trainer's ``out``; None keeps the records
            in memory only (:attr:`log`).
        epoch (str): ``'count'`` (an int) or ``'detail'`` (a float, e.g. 2.5).

    Raises:
        WriteError: the log cannot be written (disk full).
        OutputError: a resumed run's log is damaged.
    """
    root_only = True        # a distributed run writes/prints on rank 0 only
    trigger = None          # sees every iteration; writes on its own trigger
    priority = PRIORITY_READER + 10

    def __init__(self, keys=None, trigger=(1, 'epoch'), filename='log.jsonl', epoch='count'):
        if epoch not in ('count', 'detail'):
            raise ValueError("epoch must be 'count' or 'detail', got %r" % (epoch,))
        self.epoch_format = epoch
        if keys is None or isinstance(keys, dict):
            self.fields = keys
        else:
            self.fields = {k: k for k in keys}
        self._write_trigger = get_trigger(trigger)
        self.filename = filename
        self._sums, self._counts = {}, {}
        self._extra = {}         # values from extra end-of-run firings, kept apart
        self.last_raw = None     # the last record's means (PrintReport shows them)
        self._drop = None
        self._logger = None
        self._side = None
        self.path = None
        self.log = []            # the records written by this run

    def initialize(self, trainer):
        if self.filename is None or trainer.out is None:
            return
        self.path = os.path.join(trainer.out, self.filename)
        self._side = None
        target = self.path
        if trainer.resumed_from is not None:
            self._cut_back(trainer.updater.iteration)
        elif os.path.exists(self.path):
            self._side = target = os.path.join(trainer.out, '.%s.new' % self.filename)
            rewrite_jsonl(target, [])
        self._logger = JsonlLogger(target)

    def _promote(self):
        """The side file replaces the earlier run's log (see the class docstring)."""
        if self._side is None:
            return
        self._logger.close()
        os.replace(self._side, self.path)
        self._side = None
        self._logger = JsonlLogger(self.path)

    def after_save(self, trainer, path):
        self._promote()

    def on_error(self, trainer, exc):
        if self._side is not None and self._logger is not None:
            self._logger.close()
            self._logger = None
            try:
                os.remove(self._side)      # the earlier run's log stays as it was
            except OSError:
                pass
            self._side = None

    def _cut_back(self, iteration):
        try:
            old = read_jsonl(self.path) if os.path.exists(self.path) else []
        except (ValueError, UnicodeDecodeError) as e:
            raise OutputError('%s; the run\'s log is damaged. Repair or delete that line (or '
                              'move the log away) and resume again; the snapshot itself is '
                              'fine' % e) from None
        kept = [r for r in old if isinstance(r.get('iteration'), int)
                and not isinstance(r.get('iteration'), bool) and r['iteration'] <= iteration]
        if self._drop and kept and kept[-1]['iteration'] == iteration:
            last = dict(kept[-1])
            for k in self._drop:
                if self.fields is None:
                    last.pop(k, None)
                elif k in self.fields:
                    last[self.fields[k]] = None
            kept[-1] = last
        try:
            rewrite_jsonl(self.path, kept)
        except OSError as e:
            raise WriteError('could not rewrite the log %s for the resumed run (%s: %s); '
                             'nothing was changed (the rewrite is atomic). Free disk space, '
                             'then resume again' % (self.path, type(e).__name__, e)) from None

    def drop_extra(self, iteration, keys):
        self._drop = set(keys)
        self._extra = {}

    def __call__(self, trainer):
        extra = trainer.extra_keys
        for k, v in trainer.observation.items():
            if self.fields is not None and k not in self.fields:
                continue
            if k in extra:
                self._extra[k] = as_float(v)
            else:
                self._sums[k] = self._sums.get(k, 0.0) + as_float(v)
                self._counts[k] = self._counts.get(k, 0) + 1
        if self._write_trigger(trainer):
            self.write(trainer)

    def _means(self):
        means = {k: self._sums[k] / self._counts[k] for k in self._sums}
        for k, v in self._extra.items():
            means[k] = (self._sums[k] + v) / (self._counts[k] + 1) if k in self._sums else v
        return means

    def write(self, trainer):
        u = trainer.updater
        means = self._means()
        record = {'iteration': u.iteration,
                  'epoch': u.epoch_detail if self.epoch_format == 'detail' else u.epoch}
        if self.fields is None:
            record.update(means)
        else:
            record.update((f, means.get(k)) for k, f in self.fields.items())
        record['time'] = trainer.elapsed_time
        self._sums, self._counts, self._extra = {}, {}, {}
        self.last_raw = dict(means, iteration=u.iteration)
        self.log.append(record)
        if self._logger is None:
            return
        try:
            self._logger.log(record)
        except OSError as e:
            raise WriteError('could not append to the log %s (%s: %s); training stopped. Free '
                              'disk space, then resume from the last snapshot'
                              % (self.path, type(e).__name__, e)) from None

    def finalize(self, trainer):
        if self._logger is not None:
            self._promote()
            self._logger.close()
            self._logger = None

    def serialize(self, s):
        state = {'sums': self._sums, 'counts': self._counts, 'extra': self._extra}
        state = json.loads(s('state', json.dumps(state, allow_nan=True)))
        self._sums, self._counts = state['sums'], state['counts']
        self._extra = state['extra']
