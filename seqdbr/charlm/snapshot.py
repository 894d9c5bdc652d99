"""The char-RNN program's snapshots: the trainer's state in the char-RNN checkpoint layout.

The char-RNN program keeps its own checkpoint file (:mod:`seqdbr.charlm.checkpoint`:
canonical weights, optimizer state, vocabulary and readable JSON metadata), because
sampling and evaluation read it and older checkpoints must keep working. :class:`CharLMFormat`
is the :class:`~seqdbr.training.Trainer`'s snapshot format for it: ``save`` turns the
trainer's state (counters, batcher cursor, RNG states, divergence guard, best value, loss
history) into that metadata; ``load`` puts a checkpoint's state back into the trainer.
:class:`LossHistory` records the per-iteration training loss and the validation points
(the metadata's ``history``, and the loss plot).
"""
import math
import os

from seqdbr.charlm import checkpoint as ckpt_mod
from seqdbr.charlm.errors import CheckpointError
from seqdbr.core import seeding
from seqdbr.distributed.state import gather_state
from seqdbr.training.extension import PRIORITY_READER, Extension
from seqdbr.training.reporter import as_float

__all__ = ['CharLMFormat', 'LossHistory', 'VAL_KEYS']

#: The observations of one validation pass (what an extra end-of-run pass adds).
VAL_KEYS = ('val/loss', 'val/bits', 'val/perplexity')


class LossHistory(Extension):
    """Training loss per iteration and ``[iteration, validation loss]`` pairs."""
    trigger = None
    priority = PRIORITY_READER

    def __init__(self):
        self.train = []
        self.val = []

    def __call__(self, trainer):
        obs = trainer.observation
        self.train.append(as_float(obs['loss']))
        if 'val/loss' in obs:
            self.val.append([trainer.updater.iteration, as_float(obs['val/loss'])])

    def drop_extra(self, iteration, keys):
        if 'val/loss' in keys and self.val and self.val[-1][0] == iteration:
            self.val.pop()


class CharLMFormat:
    """Save/load the trainer's state as a char-RNN checkpoint (see the module docstring).

    Args:
        model, optimizer, vocab, batcher: the run's parts.
        train_json (dict), corpus_meta (dict): stored as the ``train`` and ``corpus``
            sections.
        guard (DivergenceGuard), best (MinValueTrigger), history (LossHistory): the
            extensions and trigger whose state the metadata holds.
        eval_every (int): the validation period (to recognise an extra end-of-run pass).
        comm: a data-parallel run's communicator: ``save`` gathers every rank's carried
            state (all ``B`` streams, as one process would hold them) and rank 0 writes.
    """

    def __init__(self, model, optimizer, vocab, batcher, train_json, corpus_meta, guard, best,
                 history, eval_every, comm=None):
        self.comm = comm
        self.model, self.optimizer, self.vocab = model, optimizer, vocab
        self.batcher, self.train_json, self.corpus_meta = batcher, train_json, corpus_meta
        self.guard, self.best, self.history = guard, best, history
        self.eval_every = eval_every
        self.loaded = {}        # path -> Checkpoint already read by the program

    def save(self, trainer, path):
        if self.comm is None:
            return self._save(trainer, path)
        local = self.model.get_state()
        full = gather_state(self.comm, local)          # collective: every rank calls it
        if self.comm.rank != 0:
            return None
        try:
            if full is not None:
                xp = self.model.xp
                self.model.set_state({k: xp.asarray(v) for k, v in full.items()})
            return self._save(trainer, path)
        finally:
            self.model.set_state(local)

    def _save(self, trainer, path):
        b = self.batcher
        meta = {
            'kind': 'best' if os.path.basename(path) == 'best.npz' else 'latest',
            'train': self.train_json,
            'corpus': self.corpus_meta,
            'progress': {'iteration': b.iteration, 'epoch': b.epoch,
                         'epoch_detail': b.epoch_detail, 'elapsed': trainer.elapsed_time,
                         'initial_loss': self.guard.initial,
                         'best_val_loss': self.best.best,
                         'best_iteration': self.best.best_iteration,
                         'lr': float(self.optimizer.lr)},
            'rng': seeding.get_rng_state(),
            'batcher': b.state_dict(),
            'history': {'train_loss': self.history.train, 'val': self.history.val},
        }
        try:
            return ckpt_mod.save_checkpoint(path, self.model, self.vocab,
                                            optimizer=self.optimizer, meta=meta)
        except OSError as e:
            raise CheckpointError('could not write checkpoint %s (%s: %s); training stopped. '
                                  'The previous version of that file, if any, is intact. Free '
                                  'disk space or fix the folder\'s permissions, then resume'
                                  % (path, type(e).__name__, e)) from None

    def load(self, trainer, path):
        ck = self.loaded.get(path) or ckpt_mod.load_checkpoint(path)
        meta = ck.meta
        ck.load_optimizer_into(self.optimizer, self.model)
        try:
            self.batcher.load_state_dict(meta['batcher'])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError('checkpoint %s: cannot restore the batch cursor (%s)'
                                  % (path, e)) from None
        prog, hist = meta['progress'], meta.get('history', {})
        self.history.train = list(hist.get('train_loss', []))
        self.history.val = [list(v) for v in hist.get('val', [])]
        self.best.history = [list(v) for v in self.history.val]
        self.best._recompute()
        trainer._elapsed_before = float(prog.get('elapsed', 0.0))
        initial = prog.get('initial_loss')
        self.guard.initial = initial if isinstance(initial, (int, float)) and \
            math.isfinite(initial) else None
        n = b_it = self.batcher.iteration
        if len(self.history.train) != b_it or self.optimizer.t != b_it:
            raise CheckpointError('checkpoint %s is inconsistent: iteration %d, optimizer step '
                                  '%d, %d logged losses; the file is corrupt'
                                  % (path, b_it, self.optimizer.t, len(self.history.train)))
        # A run that stopped between scheduled validations validated once more at its last
        # iteration; the trainer takes that extra pass back (log, best value, history).
        extra = self.history.val and self.history.val[-1][0] == n and n % self.eval_every
        trainer.extra_keys = list(VAL_KEYS) if extra else []
        try:
            seeding.set_rng_state(meta.get('rng', {}))
        except ValueError as e:
            raise CheckpointError('checkpoint %s: the stored RNG state is invalid (%s)'
                                  % (path, e)) from None
