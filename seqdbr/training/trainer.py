"""The training loop every program uses.

    trainer = Trainer(updater, stop_trigger=(20, 'epoch'), out='result')
    trainer.extend(extensions.Evaluator(val_data, model_fn), trigger=(1, 'epoch'))
    trainer.extend(extensions.LogReport())
    trainer.extend(extensions.snapshot('latest.npz'), trigger=(1, 'epoch'))
    trainer.run()

Each iteration: a fresh observation dict (:mod:`seqdbr.training.reporter`); the updater's
``update()``; the stopping rule (an iteration/epoch limit, a wall-clock budget, or a
SIGINT/SIGTERM received meanwhile) sets :attr:`Trainer.stop_reason`; then every extension
whose trigger fires runs, highest priority first (see :mod:`seqdbr.training.extension`).
A divergence guard (or an evaluator) marks a diverged run with :meth:`Trainer.mark_diverged`:
the readers (log, progress bar) still record that iteration, then :class:`TrainingDiverged`
is raised before any snapshot extension runs. An exception from the updater or an
extension calls every extension's ``on_error`` and is re-raised; ``finalize`` always runs.

**Exact resume.** :meth:`Trainer.serialize` saves the updater (counters, data cursor, model,
optimizer, carried state), every extension's and trigger's state, the elapsed time and
the library RNGs; :meth:`Trainer.resume` restores them. A run stopped between scheduled
evaluations still evaluates at its last iteration (triggers with ``at_end=True``); that
firing is *extra*, and on resume its observations are taken back (from the log and the
best-value triggers), so ``N`` iterations + snapshot + resume + ``N`` more equal ``2N``
iterations in one run, log included.
"""
import collections
import contextlib
import json
import os
import sys
import tempfile
import time

import numpy

from seqdbr.core import seeding
from seqdbr.core.atomic import clean_stale_temp_files
from seqdbr.core.dirlock import DirectoryLock
from seqdbr.core.serializers import Deserializer
from seqdbr.training.errors import OutputError, TrainingDiverged
from seqdbr.training.extension import PRIORITY_READER
from seqdbr.training.reporter import as_float, reporting
from seqdbr.training.signals import SignalCatcher
from seqdbr.training.snapshot_format import NpzSnapshotFormat
from seqdbr.training.triggers import get_stop_trigger, get_trigger

__all__ = ['Trainer']

_Entry = collections.namedtuple('_Entry', 'name ext trigger priority')


class Trainer:
    """Runs an updater until the stop trigger fires, calling extensions on the way.

    Args:
        updater: a :class:`~seqdbr.training.StandardUpdater`, :class:`BPTTUpdater` or other
            :class:`~seqdbr.training.updater.Updater`.
        stop_trigger: ``(N, 'iteration')``, ``(N, 'epoch')``, a
            :class:`~seqdbr.training.triggers.StopTrigger` (iterations, epochs and/or a
            wall-clock budget), or None (run until a signal).
        out (str or None): the output folder (created; snapshots and logs go there). None:
            a run that writes no file (in-memory logs only).
        snapshot_format: how snapshots are written and read (default
            :class:`~seqdbr.training.snapshot_format.NpzSnapshotFormat`).
        program (str): names the program in generic snapshots, so that one program's
            snapshot is refused by another (default ``'seqdbr'``).
        overwrite (bool): let a new (not resumed) run use a folder that holds an earlier
            run's files. Even then nothing of the earlier run changes until this run has
            written its first snapshot (the log goes to a side file until then).
        notice (callable or None): ``notice(text)`` for notices (a stale lock taken over,
            stale temp files removed); default: print to stderr.

    One run per folder: ``run()`` holds ``out/.seqdbr.lock``
    (:class:`seqdbr.core.dirlock.DirectoryLock`) while it trains, so a second trainer on the
    same folder stops with an error naming the first; a lock left by a dead process is
    taken over with a notice, and temp files that killed writers left are removed.
        comm: a :mod:`seqdbr.distributed` communicator for a data-parallel run (None: one
            process). Then after every update the ranks agree, in one small Allreduce, on
            the observations the updater reported (their mean over the ranks; ``lr`` is
            left as it is) and on whether to stop (any rank's time budget or signal stops
            every rank after the same iteration); extensions whose ``root_only`` attribute
            is true (logs, printed reports, the progress bar, plots) run on rank 0 only;
            snapshots are assembled on every rank (collectives may run in
            ``serialize``) and written by rank 0 only.

    Attributes:
        observation (dict): this iteration's reported values.
        stop_reason (str or None): ``'done'``, ``'time budget'`` or ``'interrupted'`` once the
            last iteration has run.
        signal (int or None): the signal that interrupted the run.
        diverged (str or None): why the run was marked diverged.
        extra_keys (list of str): the observation names that *extra* end-of-run firings
            reported in this iteration (filled as the extensions run).
        in_extra_firing (bool): the extension running now fires only because the run ends
            (an evaluator skips such a pass when a signal stopped the run).

    Raises:
        ValueError: a bad stop trigger (the message names it).
    """

    def __init__(self, updater, stop_trigger=None, out='result', snapshot_format=None,
                 program='seqdbr', overwrite=False, notice=None, comm=None):
        self.updater = updater
        self.comm = comm
        self.is_root = comm is None or comm.rank == 0
        self.stop_trigger = get_stop_trigger(stop_trigger)
        self.out = None if out is None else os.fspath(out)
        self.snapshot_format = snapshot_format or NpzSnapshotFormat(program)
        self.observation = {}
        self.stop_reason = self.signal = self.diverged = None
        self.extra_keys = []
        self.resumed_from = None
        self._entries = collections.OrderedDict()
        self._elapsed_before = 0.0
        self._t0 = None
        self._catcher = None
        self._pending_drop = None
        self.stored_states = None
        self.overwrite = overwrite
        self.in_extra_firing = False
        self.notice = notice or (lambda text: print(text, file=sys.stderr, flush=True))
        self.saves = 0

    # -- extensions ----------------------------------------------------------------------------
    def extend(self, extension, name=None, trigger=None, priority=None):
        """Register ``extension`` (see :mod:`seqdbr.training.extension`).

        Raises:
            ValueError: a bad trigger, or a name already taken.
        """
        if not callable(extension):
            raise TypeError('an extension must be callable as ext(trainer), got %s'
                            % type(extension).__name__)
        name = name or getattr(extension, 'default_name', None) or getattr(
            extension, 'name', None) or getattr(extension, '__name__', None) or \
            type(extension).__name__
        if name in self._entries:
            raise ValueError('an extension named %r is already registered; pass name=...'
                             % name)
        spec = trigger if trigger is not None else getattr(extension, 'trigger', None)
        prio = priority if priority is not None else getattr(extension, 'priority',
                                                             PRIORITY_READER)
        at_end = getattr(extension, 'trigger_at_end', False)
        self._entries[name] = _Entry(name, extension, get_trigger(spec, at_end), prio)
        return extension

    @property
    def extension_names(self):
        """The registered extension names, in registration order."""
        return list(self._entries)

    def get_extension(self, name):
        """The extension registered as ``name`` (KeyError listing the names otherwise)."""
        try:
            return self._entries[name].ext
        except KeyError:
            raise KeyError('no extension named %r (registered: %s)'
                           % (name, ', '.join(self._entries) or 'none')) from None

    def stop(self, reason='stopped'):
        """End the run after this iteration's extensions (e.g. early stopping); the first
        reason given is kept in :attr:`stop_reason`."""
        if self.stop_reason is None:
            self.stop_reason = reason

    def mark_diverged(self, message):
        """Stop the run after the readers have recorded this iteration (first reason kept)."""
        if self.diverged is None:
            self.diverged = message

    # -- time ---------------------------------------------------------------------------------
    @property
    def run_seconds(self):
        """Seconds since this ``run()`` started."""
        return 0.0 if self._t0 is None else time.perf_counter() - self._t0

    @property
    def elapsed_time(self):
        """Seconds of training, summed over resumes."""
        return self._elapsed_before + self.run_seconds

    # -- the loop ------------------------------------------------------------------------------
    def run(self):
        """Train until the stop trigger, a signal or an error.

        Returns:
            str: the stop reason (``'done'`` without any iteration when a resumed run is
            already at its limit).

        Raises:
            OutputError: ``out`` is a file, cannot be written, or holds an earlier run (and
                neither ``resume`` nor ``overwrite``).
            seqdbr.core.dirlock.DirectoryLockedError: another live process trains into
                ``out`` (the message names it).
            TrainingDiverged: the run was marked diverged.
        """
        if self.stop_trigger.reason(self) == 'done':
            self.stop_reason = 'done'
            return self.stop_reason
        lock = contextlib.nullcontext()
        if self.out is not None and self.is_root:
            _prepare_out(self.out)
            lock = DirectoryLock(self.out, notice=self.notice)
        with lock:
            if self.out is not None and self.is_root:
                self._claim_out()
            return self._run()

    def _claim_out(self):
        """Refuse a folder holding an earlier run (unless resumed or ``overwrite``); remove
        temp files of dead writers."""
        names = sorted({n for n in (getattr(e.ext, 'filename', None)
                                    for e in self._entries.values())
                        if isinstance(n, str) and '{' not in n})
        found = [n for n in names if os.path.exists(os.path.join(self.out, n))]
        if found and self.resumed_from is None and not self.overwrite:
            raise OutputError('the output folder %s already holds a run (%s): resume it, '
                              'choose another out, or allow overwriting (the earlier files '
                              'are replaced only once this run has saved its first snapshot)'
                              % (self.out, ', '.join(found)))
        for path, size in clean_stale_temp_files(self.out):
            self.notice('notice: removed %s (%d bytes), a temp file of a writer that was killed'
                        % (path, size))

    def _run(self):
        entries = sorted((e for e in self._entries.values()
                          if self.is_root or not getattr(e.ext, 'root_only', False)),
                         key=lambda e: -e.priority)
        with SignalCatcher() as catcher:
            self._catcher = catcher
            self._t0 = time.perf_counter()
            try:
                self._initialize(entries)
                while self.stop_reason is None:
                    self._iterate(entries, catcher)
            except BaseException as exc:
                for e in entries:
                    e.ext.on_error(self, exc) if hasattr(e.ext, 'on_error') else None
                raise
            finally:
                for e in entries:
                    if hasattr(e.ext, 'finalize'):
                        e.ext.finalize(self)
                self._catcher = None
        self.signal = catcher.signum if self.stop_reason == 'interrupted' else None
        return self.stop_reason

    def _initialize(self, entries):
        if self._pending_drop is not None:
            iteration, keys = self._pending_drop
            for e in entries:
                for obj in (e.ext, e.trigger):
                    if hasattr(obj, 'drop_extra'):
                        obj.drop_extra(iteration, keys)
            self._pending_drop = None
        for e in entries:
            if hasattr(e.ext, 'initialize'):
                e.ext.initialize(self)

    def _iterate(self, entries, catcher):
        self.observation = obs = {}
        self.extra_keys = extra = []
        with reporting(obs):
            self.updater.update()
            self.stop_reason = self.stop_trigger.reason(self) or (
                'interrupted' if catcher.signum is not None else None)
            if self.comm is not None:
                self.stop_reason = _agree(self.comm, obs, self.stop_reason)
            for e in entries:
                if e.priority < PRIORITY_READER and self.diverged is not None:
                    break
                if e.trigger(self):
                    self.in_extra_firing = getattr(e.trigger, 'extra', False)
                    before = set(obs) if self.in_extra_firing else None
                    e.ext(self)
                    if before is not None:
                        extra.extend(k for k in obs if k not in before)
        if self.diverged is not None:
            raise TrainingDiverged(self.diverged, self.updater.iteration,
                                   obs.get('loss'))

    # -- snapshots -----------------------------------------------------------------------------
    def save(self, path):
        """Write a snapshot of the whole training state to ``path`` (atomically; a second
        signal during the write is held back until it is complete), then call every
        extension's ``after_save(trainer, path)``."""
        if self._catcher is None:
            out = self.snapshot_format.save(self, path)
        else:
            with self._catcher.deferring():
                out = self.snapshot_format.save(self, path)
        self.saves += 1
        for e in self._entries.values():
            if hasattr(e.ext, 'after_save'):
                e.ext.after_save(self, path)
        return out

    def resume(self, path):
        """Restore the training state from a snapshot written by :meth:`save`.

        Raises:
            SnapshotError: the file is damaged, or belongs to another program or model.
        """
        self.snapshot_format.load(self, path)
        self.resumed_from = os.fspath(path)
        self._pending_drop = (self.updater.iteration, list(self.extra_keys))

    def serialize(self, s):
        """Save/load the updater (at the top level: ``model/...``, ``optimizer/...``, the
        data cursor), extensions, triggers, elapsed time and RNG states."""
        self.updater.serialize(s)
        elapsed = s('elapsed', float(self.elapsed_time))
        if isinstance(s, Deserializer):       # (on save, the running clock stays as it is)
            self._elapsed_before = elapsed
        self.extra_keys = json.loads(s('extra_keys', json.dumps(self.extra_keys)))
        rng = json.loads(s('rng', json.dumps(seeding.get_rng_state())))
        seeding.set_rng_state(rng)
        stored = self.stored_states        # on load: the (namespace, name) pairs present
        for e in self._entries.values():
            for space, obj in (('extensions', e.ext), ('triggers', e.trigger)):
                if hasattr(obj, 'serialize') and (stored is None or (space, e.name) in stored):
                    obj.serialize(s[space][e.name])
        self.stored_states = None


#: Stop reasons in the order of precedence when ranks differ.
_REASONS = ('done', 'time budget', 'interrupted', 'stopped')


def _agree(comm, obs, reason):
    """Average the updater's observations over the ranks and agree on the stop reason, in
    one Allreduce of ``len(obs) + 4`` float64 numbers."""
    keys = sorted(k for k in obs if k != 'lr')
    values = [as_float(obs[k]) for k in keys]
    flags = [1.0 if reason == r else 0.0 for r in _REASONS]
    if reason is not None and reason not in _REASONS:
        flags[-1] = 1.0
    out = comm.allreduce_array(numpy.array(values + flags, dtype=numpy.float64))
    for i, k in enumerate(keys):
        obs[k] = float(out[i] / comm.size)
    for i, r in enumerate(_REASONS):
        if out[len(keys) + i] > 0:
            return reason if reason is not None and r == 'stopped' else r
    return None


def _prepare_out(out):
    if os.path.exists(out) and not os.path.isdir(out):
        raise OutputError('the output folder %s is a file; choose another out (a folder '
                          'path) or move the file away' % out)
    try:
        os.makedirs(out, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix='.write-test-'):
            pass
    except OSError as e:
        raise OutputError('cannot write into the output folder %s (%s); choose a writable '
                          'out' % (out, e)) from None
