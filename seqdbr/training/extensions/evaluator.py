"""Evaluation extensions: a validation pass under ``no_backprop_mode`` with ``train=False``.

:class:`Evaluator` scores a dataset batch by batch and reports weighted means; 
:class:`LMEvaluator` scores a language model on one long token stream
(:func:`seqdbr.rnn.lm_eval.evaluate_tokens`). Both report under a prefix (``'val/'``),
keep the model's carried recurrent state as it was, and mark the run diverged when their
loss is not finite. They skip the pass when the run has diverged, or when a signal stopped
the run and the pass is an extra end-of-run one (a scheduled pass still runs, so a resumed
run equals an uninterrupted one).

Data-parallel runs (``comm=`` a :mod:`seqdbr.distributed` communicator): each rank scores a
contiguous share (of the examples, or of the evaluation streams) and the weighted sums and
weights are added over the ranks in one Allreduce, so every rank reports the value a single
process computes on the whole set (up to float rounding in the sums).
"""
import numpy

import math
import numbers

from seqdbr.core import backend
from seqdbr.core.config import no_backprop_mode, using_config
from seqdbr.core.variable import Variable
from seqdbr.datasets.iterators import SerialIterator, concat_examples
from seqdbr.rnn.lm_eval import LN2, evaluate_tokens
from seqdbr.training.bptt_updater import get_carried_state, set_carried_state
from seqdbr.training.evaluator import MeanAccumulator
from seqdbr.training.extension import PRIORITY_WRITER, Extension
from seqdbr.training.reporter import as_float, report

__all__ = ['Evaluator', 'LMEvaluator', 'lm_metrics']


def lm_metrics(loss):
    """``{'loss', 'bits', 'perplexity'}`` from a mean loss in nats per token."""
    try:
        ppl = math.exp(loss)
    except OverflowError:
        ppl = math.inf
    return {'loss': loss, 'bits': loss / LN2, 'perplexity': ppl}


def _normalize(out, n_examples):
    """eval_fn output -> (metrics dict, weight)."""
    if isinstance(out, Variable):
        return {'loss': out}, n_examples
    if isinstance(out, dict):
        return out, n_examples
    if isinstance(out, tuple) and len(out) == 2:
        a, b = out
        if isinstance(a, Variable) and isinstance(b, dict):
            return dict(b, loss=a), n_examples
        if isinstance(a, dict) and isinstance(b, numbers.Integral) and not isinstance(b, bool):
            return a, int(b)
    raise TypeError('eval_fn must return a loss Variable, a dict of metrics, (loss, metrics) '
                    'or (metrics, weight) with an int weight (tokens), got %r'
                    % (type(out).__name__,))


class _EvaluatorBase(Extension):
    trigger = (1, 'epoch')
    priority = PRIORITY_WRITER

    def __init__(self, model, prefix, comm=None):
        self.model = model
        self.prefix = prefix
        self.comm = comm

    def __call__(self, trainer):
        if trainer.diverged is not None or (trainer.stop_reason == 'interrupted'
                                            and trainer.in_extra_firing):
            return None         # a scheduled pass still runs, so a resumed run is exact
        saved = get_carried_state(self.model) if self.model is not None else None
        try:
            with no_backprop_mode(), using_config('train', False):
                means = self.evaluate()
        finally:
            if saved is not None:
                set_carried_state(self.model, saved)
        report(means, prefix=self.prefix)
        loss = means.get('loss')
        if loss is not None and not math.isfinite(as_float(loss)):
            trainer.mark_diverged('validation loss %r at iteration %d'
                                  % (as_float(loss), trainer.updater.iteration))
        return means


class Evaluator(_EvaluatorBase):
    """Weighted means of ``eval_fn`` over a dataset.

    Args:
        dataset: a sequence of examples (e.g. ``TupleDataset``), walked once in order.
        eval_fn (callable): ``eval_fn(*arrays)`` for one converted batch, returning a loss
            Variable, a dict ``{name: scalar}``, ``(loss, metrics)``, or
            ``(metrics, weight)`` with an int weight (e.g. the batch's token count, for
            token-weighted means of variable-length sequences). Without a weight each
            batch counts as many times as it has examples, so a short last batch does not
            skew the mean.
        batch_size (int): examples per batch.
        converter (callable): as in :class:`~seqdbr.training.StandardUpdater`.
        device: where the converter sends the arrays.
        model (Link or None): whose carried recurrent state is saved and restored.
        prefix (str): prefix of the reported names (default ``'val/'``).
        lm (bool): also report ``bits`` and ``perplexity`` from ``loss`` (nats/token).
        comm: a communicator: each rank scores ``dataset[lo:hi]`` of its share (see the
            module docstring).

    Raises:
        ValueError: an empty dataset, or fewer examples than ranks.
    """

    def __init__(self, dataset, eval_fn, batch_size=100, converter=concat_examples,
                 device=None, model=None, prefix='val/', lm=False, comm=None):
        super().__init__(model, prefix, comm)
        if len(dataset) == 0:
            raise ValueError('Evaluator: the dataset is empty; give it at least one example')
        if comm is not None:
            if len(dataset) < comm.size:
                raise ValueError('Evaluator: %d examples cannot be shared by %d processes; '
                                 'use a bigger validation set' % (len(dataset), comm.size))
            lo, hi = comm.split_range(len(dataset))
            dataset = _Slice(dataset, lo, hi)
        self.dataset, self.eval_fn, self.batch_size = dataset, eval_fn, batch_size
        self.converter, self.device, self.lm = converter, device, lm

    def evaluate(self):
        acc = MeanAccumulator()
        it = SerialIterator(self.dataset, self.batch_size, repeat=False, shuffle=False)
        for batch in it:
            args = self.converter(batch, self.device)
            out = self.eval_fn(**args) if isinstance(args, dict) else (
                self.eval_fn(*args) if isinstance(args, tuple) else self.eval_fn(args))
            metrics, weight = _normalize(out, len(batch))
            acc.add(metrics, weight)
        means = acc.means() if self.comm is None else _reduce_means(self.comm, acc)
        if self.lm and 'loss' in means:
            means.update(lm_metrics(float(means['loss'])))
        return means


class LMEvaluator(_EvaluatorBase):
    """Loss (nats/token), bits/token and perplexity of ``model`` on a token stream.

    Args:
        tokens (numpy.ndarray): 1-D int ids (at least 2).
        model: the language model (the protocol of :mod:`seqdbr.rnn.lm_eval`).
        batch_size, bptt_len (int): the evaluation layout (streams, window).
        prefix (str): default ``'val/'``.
        comm: a communicator: each rank scores a contiguous share of the ``batch_size``
            evaluation streams; the token-weighted loss is reduced over the ranks.
    """

    def __init__(self, tokens, model, batch_size, bptt_len, prefix='val/', comm=None):
        super().__init__(model, prefix, comm)
        if getattr(tokens, 'size', len(tokens)) < 2:
            raise ValueError('LMEvaluator needs at least 2 tokens (1 input, 1 target)')
        self.tokens, self.batch_size, self.bptt_len = tokens, batch_size, bptt_len

    def evaluate(self):
        if self.comm is not None:
            return self._evaluate_shared()
        r = evaluate_tokens(self.model, self.tokens, self.batch_size, self.bptt_len)
        return {'loss': r.loss, 'bits': r.bits_per_char, 'perplexity': r.perplexity}

    def _evaluate_shared(self):
        n_streams = min(int(self.batch_size), int(getattr(self.tokens, 'size',
                                                          len(self.tokens))) - 1)
        r = evaluate_tokens(self.model, self.tokens, self.batch_size, self.bptt_len,
                            streams=self.comm.split_range(n_streams))
        part = r.loss * r.num_tokens if r.num_tokens else 0.0
        total, count = self.comm.allreduce_array(numpy.array([part, r.num_tokens],
                                                             dtype=numpy.float64))
        return lm_metrics(float(total / count))


class _Slice:
    """``dataset[lo:hi]`` as a view."""

    def __init__(self, dataset, lo, hi):
        self.dataset, self.lo, self.hi = dataset, lo, hi

    def __len__(self):
        return self.hi - self.lo

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self.dataset[self.lo + i]


def _reduce_means(comm, acc):
    """Example- (or token-) weighted means over every rank's accumulator."""
    names = sorted(acc._sums or {})
    sums = [float(v) for v in backend.fetch_scalars(*[acc._sums[k] for k in names])] \
        if names else []
    out = comm.allreduce_array(numpy.array(sums + [acc.count], dtype=numpy.float64))
    return {k: float(out[i] / out[-1]) for i, k in enumerate(names)}
