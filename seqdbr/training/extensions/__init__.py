"""Trainer extensions (Chainer's names): evaluation, logging, progress, snapshots, plots,
learning-rate schedules and the divergence guard. See :mod:`seqdbr.training.extension` for
the protocol and priorities."""
from seqdbr.training.extensions.divergence import DivergenceGuard  # noqa: F401
from seqdbr.training.extensions.evaluator import Evaluator, LMEvaluator, lm_metrics  # noqa: F401
from seqdbr.training.extensions.log_report import LogReport  # noqa: F401
from seqdbr.training.extensions.lr_scheduler import LRScheduler  # noqa: F401
from seqdbr.training.extensions.plot_report import PlotReport  # noqa: F401
from seqdbr.training.extensions.print_report import PrintReport  # noqa: F401
from seqdbr.training.extensions.progress_bar import ProgressBar  # noqa: F401
from seqdbr.training.extensions.snapshot import Snapshot, snapshot  # noqa: F401

__all__ = ['DivergenceGuard', 'Evaluator', 'LMEvaluator', 'lm_metrics', 'LogReport',
           'LRScheduler', 'PlotReport', 'PrintReport', 'ProgressBar', 'Snapshot', 'snapshot']
