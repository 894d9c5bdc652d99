"""Training: one loop for every program.

    from seqdbr.training import Trainer, StandardUpdater, BPTTUpdater, extensions as E

* :class:`Trainer` runs an updater until a stop trigger, calling extensions
  (:mod:`seqdbr.training.trainer`); :mod:`~seqdbr.training.triggers` says when.
* Updaters: :class:`StandardUpdater` (i.i.d. minibatches), :class:`BPTTUpdater`
  (truncated BPTT over parallel streams).
* :mod:`~seqdbr.training.extensions`: ``Evaluator``, ``LMEvaluator``, ``LogReport``,
  ``PrintReport``, ``ProgressBar``, ``snapshot``, ``PlotReport``, ``LRScheduler``,
  ``DivergenceGuard``.
* :func:`report` adds values to the current iteration's observation.
* Helpers kept from before: ``evaluate`` / ``MeanAccumulator`` (example-weighted means),
  ``classifier_metrics``, ``JsonlLogger`` / ``read_jsonl`` / ``rewrite_jsonl``.
"""
from seqdbr.training.evaluator import (JsonlLogger, MeanAccumulator,  # noqa: F401
                                       classifier_metrics, evaluate, read_jsonl,
                                       rewrite_jsonl)
from seqdbr.training.errors import (OutputError, SnapshotError, TrainingDiverged,  # noqa: F401
                                    TrainingError, WriteError)
from seqdbr.training.reporter import report  # noqa: F401
from seqdbr.training import triggers  # noqa: F401
from seqdbr.training.triggers import (IntervalTrigger, MaxValueTrigger,  # noqa: F401
                                      MinValueTrigger, StopTrigger)
from seqdbr.training.updater import StandardUpdater, Updater  # noqa: F401
from seqdbr.training.bptt_updater import BPTTUpdater  # noqa: F401
from seqdbr.training.snapshot_format import NpzSnapshotFormat  # noqa: F401
from seqdbr.training.trainer import Trainer  # noqa: F401
from seqdbr.training import extensions  # noqa: F401

__all__ = ['Trainer', 'Updater', 'StandardUpdater', 'BPTTUpdater', 'extensions', 'triggers',
           'IntervalTrigger', 'MinValueTrigger', 'MaxValueTrigger', 'StopTrigger',
           'NpzSnapshotFormat', 'report', 'TrainingError', 'TrainingDiverged',
           'SnapshotError', 'OutputError', 'WriteError', 'JsonlLogger', 'MeanAccumulator',
           'classifier_metrics', 'evaluate', 'read_jsonl', 'rewrite_jsonl']
