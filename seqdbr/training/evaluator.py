"""Evaluation over a dataset with example-weighted means, and a JSON-lines logger.

Why weighted: a per-batch metric (mean loss, accuracy) averaged over batches gives a
short last batch the same say as a full one. :func:`evaluate` instead weights each
batch's value by the number of examples in the batch, so the result is the true mean
over examples: 5 examples in batches of 3 (3 correct) and 2 (1 correct) give
``(3/3 * 3 + 1/2 * 2) / 5 = 0.8``, not ``(1 + 0.5) / 2 = 0.75``.

Public API::

    evaluate(model_fn, data, batch_size=None, converter=concat_examples, device=None)
    classifier_metrics(classifier)          # model_fn for an L.Classifier
    MeanAccumulator                         # the weighted accumulator evaluate uses
    JsonlLogger(path), read_jsonl(path), rewrite_jsonl(path, records)
"""
import json
import numbers
import os

import numpy

from seqdbr.core import backend
from seqdbr.core.atomic import atomic_write
from seqdbr.core.config import no_backprop_mode, using_config
from seqdbr.core.variable import Variable
from seqdbr.datasets.iterators import SerialIterator, concat_examples

__all__ = ['MeanAccumulator', 'evaluate', 'classifier_metrics', 'JsonlLogger', 'read_jsonl',
           'rewrite_jsonl']


def _scalar(name, value):
    """A metric value -> Python float (host) or 0-d float64 device array (kept lazy)."""
    if isinstance(value, Variable):
        value = value.array
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, numpy.ndarray) or isinstance(value, numpy.generic):
        if numpy.size(value) != 1:
            raise ValueError('metric %r must be a scalar (a per-example mean over the batch), '
                             'got an array of shape %s' % (name, numpy.shape(value)))
        return float(value.reshape(()) if isinstance(value, numpy.ndarray) else value)
    if backend.is_device_array(value):
        if value.size != 1:
            raise ValueError('metric %r must be a scalar (a per-example mean over the batch), '
                             'got an array of shape %s' % (name, value.shape))
        return value.reshape(()).astype('float64')  # no device sync until means()
    raise TypeError('metric %r must be a Variable, an array or a real number, got %s'
                    % (name, type(value).__name__))


class MeanAccumulator:
    """Accumulate per-batch mean metrics into example-weighted means.

    ``add({'loss': 0.3, 'accuracy': acc_var}, n)`` adds ``value * n`` to the running sum of
    each metric and ``n`` to the count; :meth:`means` returns ``sum / count`` per metric.
    Values may be Python numbers, 0-d/1-element NumPy arrays, Variables, or CuPy arrays (the
    latter are summed on the device and only copied to the host by :meth:`means`, so
    training loops do not synchronise the GPU on every step). Sums are kept in float64.

    Every ``add`` must report the same metric names (a metric that appears in some batches
    only would be averaged over the wrong count).

    Attributes:
        count (int): examples added so far.

    Raises:
        ValueError: ``n`` < 1, a non-scalar value, or a set of names different from the
            first ``add``'s.
        TypeError: a value that is not a number/array/Variable.
    """

    def __init__(self):
        self._sums = None
        self.count = 0

    def add(self, metrics, n):
        """Add one batch: ``metrics`` (dict name -> per-example mean over the batch) of
        ``n`` examples."""
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise ValueError('n (examples in the batch) must be a positive int, got %r' % (n,))
        n = int(n)
        if self._sums is None:
            self._sums = {name: 0.0 for name in metrics}
        elif set(metrics) != set(self._sums):
            raise ValueError('metric names changed between batches: first %s, now %s'
                             % (sorted(self._sums), sorted(metrics)))
        values = [(name, _scalar(name, value)) for name, value in metrics.items()]
        sums = self._sums
        for name, value in values:   # all converted first: a bad value changes nothing
            sums[name] = sums[name] + value * n
        self.count += n

    def means(self):
        """dict name -> float: the example-weighted means (empty dict before any ``add``)."""
        if self._sums is None:
            return {}
        c = self.count
        names = list(self._sums)
        values = backend.fetch_scalars(*[self._sums[n] for n in names])   # one transfer
        return {name: v / c for name, v in zip(names, values)}

    def reset(self):
        """Forget everything (start a new epoch)."""
        self._sums = None
        self.count = 0


def classifier_metrics(classifier):
    """A ``model_fn`` for :func:`evaluate` from a ``Classifier``-like link.

    The returned function calls ``classifier(*arrays)`` (the last array being the labels)
    and returns ``{'loss': classifier.loss, 'accuracy': classifier.accuracy}`` (without
    ``'accuracy'`` when the classifier computed none).
    """
    def model_fn(*arrays):
        loss = classifier(*arrays)
        out = {'loss': loss}
        acc = getattr(classifier, 'accuracy', None)
        if acc is not None:
            out['accuracy'] = acc
        return out
    return model_fn


def _batches(data, batch_size):
    if hasattr(data, '__next__'):            # an iterator of batches
        if getattr(data, 'repeat', False):
            raise ValueError('evaluate needs an iterator that stops after one epoch '
                             '(repeat=False); this one repeats forever')
        if hasattr(data, 'reset'):
            data.reset()
        return data
    if batch_size is None:
        raise ValueError('evaluate over a dataset needs batch_size (or pass an iterator)')
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) \
            or batch_size < 1:
        raise ValueError('batch_size must be a positive int, got %r' % (batch_size,))
    return SerialIterator(data, int(batch_size), repeat=False, shuffle=False)


def evaluate(model_fn, data, batch_size=None, converter=concat_examples, device=None):
    """Run ``model_fn`` over every example once and return example-weighted mean metrics.

    Runs under ``no_backprop_mode()`` (no graph is recorded) and
    ``using_config('train', False)`` (test behaviour, e.g. no dropout); both settings are
    restored afterwards, also on error.

    Args:
        model_fn (callable): ``model_fn(*arrays)`` for one batch, where ``arrays`` is what
            ``converter(batch, device)`` returns (a tuple is spread into positional
            arguments, a dict into keyword arguments, anything else is passed as the only
            argument). It returns either a dict ``name -> value`` or a single value (named
            ``'loss'``); each value is the **mean over the examples of the batch** (Python
            number, 0-d array or Variable, CuPy allowed). Use :func:`classifier_metrics`
            for an ``L.Classifier``.
        data: a dataset (``len`` and indexing, e.g. ``TupleDataset``), visited in order in
            batches of ``batch_size``; or an iterator yielding batches (lists of examples)
            and ending, e.g. ``SerialIterator(test, 100, repeat=False, shuffle=False)``.
            An iterator with ``reset()`` is reset first, so the same iterator can be
            evaluated every epoch; one with ``repeat=True`` is refused.
        batch_size (int or None): batch size when ``data`` is a dataset.
        converter (callable): ``converter(batch, device)`` -> arrays; default
            :func:`seqdbr.datasets.concat_examples`.
        device: passed to ``converter`` (None: keep arrays where they are; ``'gpu'``...).

    Returns:
        dict name -> float: for each metric, ``sum_b(value_b * n_b) / sum_b(n_b)`` where
        ``n_b = len(batch_b)``. Non-finite values propagate (a NaN loss gives NaN).

    Raises:
        ValueError: empty data, a repeating iterator, missing/invalid ``batch_size``, a
            non-scalar metric, or metric names that differ between batches.
        TypeError: a metric value of an unsupported type.
    """
    acc = MeanAccumulator()
    with no_backprop_mode(), using_config('train', False):
        for batch in _batches(data, batch_size):
            n = len(batch)
            if n == 0:
                continue
            arrays = converter(batch, device)
            if isinstance(arrays, tuple):
                out = model_fn(*arrays)
            elif isinstance(arrays, dict):
                out = model_fn(**arrays)
            else:
                out = model_fn(arrays)
            if not isinstance(out, dict):
                out = {'loss': out}
            acc.add(out, n)
    if acc.count == 0:
        raise ValueError('evaluate: the data yielded no examples')
    return acc.means()


# -- JSON lines -----------------------------------------------------------------------------

def _json_default(o):
    if isinstance(o, numpy.generic):
        return o.item()
    if isinstance(o, numpy.ndarray) and o.size == 1:
        return o.item()
    if isinstance(o, Variable) and o.array is not None and o.array.size == 1:
        return backend.fetch_scalars(o.array.reshape(()))[0]
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    raise TypeError('cannot write a %s to a JSON log; convert it to a number, str, list or '
                    'dict first' % type(o).__name__)


def _dumps(record):
    if not isinstance(record, dict):
        raise TypeError('a log record must be a dict, got %s' % type(record).__name__)
    # allow_nan: a diverged run's NaN loss is logged as NaN (Python's json reads it back).
    return json.dumps(record, default=_json_default, allow_nan=True, ensure_ascii=False)


class JsonlLogger:
    """Append one JSON object per line to a file, flushing after every line.

    Each :meth:`log` call writes ``json.dumps(record)`` and a newline, then flushes the
    file (and fsyncs it when ``fsync=True``), so another process reading the file (a
    plotter, ``tail -f``) sees complete lines only and a crash loses at most the line
    being written. NumPy scalars, 1-element arrays and Variables are written as numbers;
    NaN and infinities as ``NaN``/``Infinity`` (Python's ``json`` reads them).

    Args:
        path (str or PathLike): the log file; created (with its directory) when absent,
            appended to when present.
        fsync (bool): also ``os.fsync`` after each line (slower; default False).

    Use as a context manager or call :meth:`close`.

    Raises:
        TypeError: a record that is not a dict or holds a value JSON cannot represent
            (nothing is written for that record).
    """

    def __init__(self, path, fsync=False):
        self.path = os.fspath(path)
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        self._fsync = bool(fsync)
        self._f = open(self.path, 'a', encoding='utf-8', newline='\n')

    def log(self, record):
        """Append ``record`` (a dict) as one line and flush. Returns the line written
        (without the newline)."""
        if self._f is None:
            raise ValueError('JsonlLogger for %s is closed' % self.path)
        line = _dumps(record)
        self._f.write(line + '\n')
        self._f.flush()
        if self._fsync:
            os.fsync(self._f.fileno())
        return line

    def close(self):
        if self._f is not None:
            self._f.close()
            self._f = None

    @property
    def closed(self):
        return self._f is None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        f = getattr(self, '_f', None)
        if f is not None:
            f.close()


def read_jsonl(path):
    """Read a JSON-lines file into a list of dicts.

    A last line without its newline (a write cut short by a crash) is ignored when it is
    not valid JSON; a bad line anywhere else raises ValueError naming the file and line.
    A missing file gives an empty list.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        return []
    with open(path, encoding='utf-8') as f:
        text = f.read()
    lines = text.split('\n')
    records = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            if i == len(lines) - 1:    # an unterminated (partial) final line
                break
            raise ValueError('%s line %d is not valid JSON: %s' % (path, i + 1, e)) from None
        if not isinstance(rec, dict):
            raise ValueError('%s line %d holds a %s, expected a JSON object'
                             % (path, i + 1, type(rec).__name__))
        records.append(rec)
    return records


def rewrite_jsonl(path, records):
    """Atomically replace ``path`` with exactly ``records`` (one JSON object per line).

    Used on resume to drop log lines written after the checkpoint being resumed from.
    """
    lines = [_dumps(r) for r in records]
    with atomic_write(path, 'w') as f:
        f.write(''.join(line + '\n' for line in lines))
