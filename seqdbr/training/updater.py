"""Updaters: one training iteration, and the counters that say where a run is.

An updater owns the data cursor, the optimizer (and through it the model) and the iteration
count. The :class:`~seqdbr.training.Trainer` calls :meth:`Updater.update` once per
iteration; everything an updater holds is saved by :meth:`Updater.serialize`, so a snapshot
resumes exactly.

:class:`StandardUpdater` is for i.i.d. minibatches: it draws a batch from an iterator
(``seqdbr.datasets.SerialIterator``), converts it to arrays, computes the loss, backprops
and updates. Truncated BPTT over parallel streams is
:class:`seqdbr.training.BPTTUpdater`.
"""
import math

from seqdbr.core import backend
from seqdbr.core.variable import Variable
from seqdbr.datasets.iterators import concat_examples
from seqdbr.training.reporter import report

__all__ = ['Updater', 'StandardUpdater']


class Updater:
    """Base class. Subclasses implement :meth:`update` and the counters below.

    Attributes:
        iteration (int): updates done (across resumes).
        optimizer: the optimizer; ``optimizer.target`` is the model.
    """
    iteration = 0
    optimizer = None

    @property
    def model(self):
        return self.optimizer.target

    @property
    def epoch(self):
        """Completed epochs."""
        raise NotImplementedError

    @property
    def epoch_detail(self):
        """Epochs as a float (``1.5``: half-way through the second epoch)."""
        raise NotImplementedError

    @property
    def is_new_epoch(self):
        """True right after the update that completed an epoch."""
        raise NotImplementedError

    def update(self):
        raise NotImplementedError

    def serialize(self, s):
        """Save/load the iteration count, the model and the optimizer (subclasses add the
        data cursor)."""
        self.iteration = s('iteration', int(self.iteration))
        self.model.serialize(s['model'])
        self.optimizer.serialize(s['optimizer'])


def _split_output(out, where):
    if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict):
        return out
    if isinstance(out, Variable):
        return out, {}
    raise TypeError('%s must return a loss Variable or (loss, {name: metric}), got %s'
                    % (where, type(out).__name__))


class StandardUpdater(Updater):
    """One minibatch per iteration: ``loss = loss_fn(*converter(batch))``, backward, update.

    Args:
        iterator: a ``SerialIterator`` (or anything with ``next()``, ``epoch``,
            ``epoch_detail``, ``is_new_epoch`` and ``serialize``).
        optimizer: a set-up optimizer; ``optimizer.target`` is the model.
        loss_fn (callable or None): ``loss_fn(*arrays)`` (or ``loss_fn(**arrays)`` when the
            converter returns a dict) returning a 0-d loss Variable, or ``(loss, metrics)``
            with ``metrics`` a dict of scalars. None: the model itself (e.g.
            ``L.Classifier``).
        converter (callable): ``converter(batch, device)`` -> tuple/dict of arrays
            (default :func:`seqdbr.datasets.concat_examples`).
        device: where the converter sends the arrays (None: leave them; ``'gpu'`` etc.).
        check_finite (bool): skip the update (parameters and optimizer state unchanged) when
            the loss is NaN/inf; the loss is still reported, so a divergence guard sees it.

    Reports ``loss`` (and every metric) each iteration, and ``lr`` when the optimizer has a
    learning rate. Calls ``optimizer.new_epoch()`` when the iterator completes an epoch (so
    epoch-based learning-rate schedules advance).
    """

    def __init__(self, iterator, optimizer, loss_fn=None, converter=concat_examples,
                 device=None, check_finite=True):
        if getattr(optimizer, 'target', None) is None:
            raise ValueError('StandardUpdater needs a set-up optimizer: call '
                             'optimizer.setup(model) first')
        self.iterator = iterator
        self.optimizer = optimizer
        self.loss_fn = optimizer.target if loss_fn is None else loss_fn
        self.converter = converter
        self.device = device
        self.check_finite = check_finite
        self.iteration = 0

    @property
    def epoch(self):
        return self.iterator.epoch

    @property
    def epoch_detail(self):
        return self.iterator.epoch_detail

    @property
    def is_new_epoch(self):
        return self.iterator.is_new_epoch

    @property
    def iterations_per_epoch(self):
        n = getattr(self.iterator, 'dataset', None)
        bs = getattr(self.iterator, 'batch_size', None)
        return None if n is None or not bs else math.ceil(len(n) / bs)

    def update(self):
        batch = self.iterator.next()
        args = self.converter(batch, self.device)
        if isinstance(args, dict):
            out = self.loss_fn(**args)
        elif isinstance(args, tuple):
            out = self.loss_fn(*args)
        else:
            out = self.loss_fn(args)
        loss, metrics = _split_output(out, 'loss_fn')
        model = self.optimizer.target
        model.cleargrads()
        finite = True
        if self.check_finite:
            finite = math.isfinite(backend.fetch_scalars(loss.array)[0])
        if finite:
            loss.backward()
        loss.unchain_backward()
        if finite:
            self.optimizer.update()
        if self.iterator.is_new_epoch:
            self.optimizer.new_epoch()
        self.iteration += 1
        report(dict(metrics, loss=loss.array))
        _report_lr(self.optimizer)

    def serialize(self, s):
        super().serialize(s)
        self.iterator.serialize(s['iterator'])


def _report_lr(optimizer):
    try:
        lr = optimizer.lr
    except AttributeError:
        return
    report({'lr': float(lr)})
