"""Truncated backpropagation through time: a parallel-stream batcher and one update step.

Language models over one long token array are trained on ``B`` parallel streams. The array
of ``N`` tokens is cut into ``B`` contiguous streams of ``L = (N - 1) // B`` input
positions each; stream ``b`` reads inputs ``tokens[b*L : b*L + L]`` and predicts targets
``tokens[b*L + 1 : b*L + L + 1]`` (the inputs shifted by one). Each stream is then walked in
windows of ``T = bptt_len`` steps, all streams in lock step, so window ``w`` is::

    x[b, j] = tokens[b*L + w*T + j]          shape (B, T), int32
    t[b, j] = tokens[b*L + w*T + j + 1]

One epoch is ``L // T`` windows (the last ``L mod T`` positions of every stream, and the
``(N - 1) mod B`` tokens after the last stream, are not visited in training). Because row
``b`` of window ``w + 1`` continues row ``b`` of window ``w``, a model may carry its hidden
state from one window to the next; :func:`bptt_update` cuts the graph behind it after each
update (``unchain_backward``), which is the whole memory policy of truncated BPTT.

:class:`ParallelSequentialBatcher` produces the windows and keeps a cursor that can be
saved and restored (``state_dict`` / ``load_state_dict`` with JSON-native ints, or the
``serialize(s)`` protocol), so an interrupted run continues with the very next window.
"""
import numbers

import numpy

from seqdbr.core import backend
from seqdbr.core.variable import Variable

__all__ = ['ParallelSequentialBatcher', 'TooFewTokensError', 'NonFiniteLossError', 'window_loss',
           'bptt_update']


class TooFewTokensError(ValueError):
    """The token array cannot fill one ``(batch_size, bptt_len)`` window.

    Attributes:
        num_tokens (int): tokens available.
        needed (int): ``batch_size * bptt_len + 1``.
    """

    def __init__(self, message, num_tokens, needed):
        super().__init__(message)
        self.num_tokens = num_tokens
        self.needed = needed


class NonFiniteLossError(FloatingPointError):
    """The window's loss was NaN or infinite; the parameters were not updated.

    Attributes:
        loss (float): the non-finite value.
    """

    def __init__(self, message, loss):
        super().__init__(message)
        self.loss = loss


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError('%s must be an int >= %d, got %r' % (name, minimum, value))
    return int(value)


class ParallelSequentialBatcher:
    """``B`` parallel streams over one token array, walked in windows of ``bptt_len``.

    Args:
        tokens (array-like of int): 1-D token ids (a NumPy array, or a list). Stored as
            int32 on the host (ids must lie in ``[-2**31, 2**31)``). The batcher keeps a
            reference-free copy only when a dtype change is needed.
        batch_size (int): ``B``, the number of parallel streams (>= 1).
        bptt_len (int): ``T``, the window length in steps (>= 1).
        repeat (bool): True (default): windows continue forever, epoch after epoch.
            False: one epoch, then ``StopIteration`` / :meth:`next_window` raises
            StopIteration.

    Attributes:
        batch_size (int), bptt_len (int), num_tokens (int): the configuration.
        stream_len (int): ``L = (N - 1) // B`` input positions per stream.
        windows_per_epoch (int): ``L // T`` (>= 1).
        iteration (int): windows returned so far (the cursor).

    Raises:
        TooFewTokensError: ``len(tokens) < batch_size * bptt_len + 1`` (the message names
            both sizes and how to fix it).
        ValueError: ``tokens`` not 1-D, sizes < 1, ids outside the int32 range.
        TypeError: non-integer tokens.
    """

    def __init__(self, tokens, batch_size, bptt_len, repeat=True):
        self.batch_size = _check_int('batch_size', batch_size, 1)
        self.bptt_len = _check_int('bptt_len', bptt_len, 1)
        tokens = backend.to_cpu(tokens) if backend.is_device_array(tokens) \
            else numpy.asarray(tokens)
        if tokens.ndim != 1:
            raise ValueError('tokens must be a 1-D array of ids, got shape %s'
                             % (tokens.shape,))
        if tokens.size and tokens.dtype.kind not in 'iu':
            raise TypeError('tokens must be integer ids, got dtype %s' % tokens.dtype)
        n = int(tokens.size)
        needed = self.batch_size * self.bptt_len + 1
        if n < needed:
            raise TooFewTokensError(
                'the token array has %d tokens, but batch_size x bptt_len + 1 = %d x %d + 1 '
                '= %d are needed for one window; use a smaller batch size or window length '
                '(--batch-size / --seq-length), or a bigger corpus'
                % (n, self.batch_size, self.bptt_len, needed), n, needed)
        if tokens.dtype != numpy.int32:
            if int(tokens.max()) >= 2 ** 31 or int(tokens.min()) < -2 ** 31:
                raise ValueError('token ids must fit in int32, got values in [%d, %d]'
                                 % (int(tokens.min()), int(tokens.max())))
            tokens = tokens.astype(numpy.int32)
        self.num_tokens = n
        self.repeat = bool(repeat)
        self.stream_len = (n - 1) // self.batch_size
        self.windows_per_epoch = self.stream_len // self.bptt_len
        span = self.batch_size * self.stream_len
        # Views, not copies: row b of _inputs is stream b.
        self._inputs = tokens[:span].reshape(self.batch_size, self.stream_len)
        self._targets = tokens[1:span + 1].reshape(self.batch_size, self.stream_len)
        self.iteration = 0

    # -- cursor ------------------------------------------------------------------------------
    @property
    def epoch(self):
        """Completed epochs (int)."""
        return self.iteration // self.windows_per_epoch

    @property
    def epoch_detail(self):
        """``iteration / windows_per_epoch`` (float): epochs including the current fraction."""
        return self.iteration / self.windows_per_epoch

    @property
    def window_in_epoch(self):
        """Index, within its epoch, of the window the next call returns (``[0, wpe)``)."""
        return self.iteration % self.windows_per_epoch

    @property
    def starts_epoch(self):
        """True when the next window is the first of an epoch (the streams start over, so a
        carried hidden state should be reset)."""
        return self.iteration % self.windows_per_epoch == 0

    @property
    def is_new_epoch(self):
        """True right after the window that completed an epoch (Chainer's iterator flag)."""
        return self.iteration > 0 and self.iteration % self.windows_per_epoch == 0

    @property
    def exhausted(self):
        """True when ``repeat=False`` and the one epoch has been returned."""
        return not self.repeat and self.iteration >= self.windows_per_epoch

    # -- windows -----------------------------------------------------------------------------
    def window(self, index):
        """Window ``index`` of an epoch, without moving the cursor.

        Args:
            index (int): in ``[0, windows_per_epoch)``.

        Returns:
            tuple ``(x, t)`` of fresh C-contiguous int32 arrays of shape
            ``(batch_size, bptt_len)``: inputs and next-token targets.
        """
        index = _check_int('index', index, 0)
        if index >= self.windows_per_epoch:
            raise IndexError('window %d does not exist: an epoch has %d windows'
                             % (index, self.windows_per_epoch))
        lo = index * self.bptt_len
        hi = lo + self.bptt_len
        return (numpy.ascontiguousarray(self._inputs[:, lo:hi]),
                numpy.ascontiguousarray(self._targets[:, lo:hi]))

    def next_window(self):
        """Return the next window ``(x, t)`` (see :meth:`window`) and advance the cursor.

        Raises:
            StopIteration: ``repeat=False`` and the epoch is over.
        """
        if self.exhausted:
            raise StopIteration
        xt = self.window(self.iteration % self.windows_per_epoch)
        self.iteration += 1
        return xt

    __next__ = next_window

    def __iter__(self):
        return self

    def reset(self):
        """Move the cursor back to the first window of epoch 0."""
        self.iteration = 0

    # -- saving and restoring the cursor -------------------------------------------------------
    def state_dict(self):
        """The cursor and the configuration it belongs to, as JSON-native ints.

        Returns:
            dict: ``{'iteration', 'batch_size', 'bptt_len', 'num_tokens'}``.
        """
        return {'iteration': int(self.iteration), 'batch_size': self.batch_size,
                'bptt_len': self.bptt_len, 'num_tokens': self.num_tokens}

    def load_state_dict(self, state):
        """Restore a cursor saved by :meth:`state_dict`.

        Raises:
            ValueError: the state was saved for another batch size, window length or token
                count (a cursor means nothing for different data or shapes), or the
                iteration is negative / not an int.
        """
        if not isinstance(state, dict):
            raise TypeError('load_state_dict expects the dict from state_dict(), got %s'
                            % type(state).__name__)
        missing = [k for k in ('iteration', 'batch_size', 'bptt_len', 'num_tokens')
                   if k not in state]
        if missing:
            raise ValueError('batcher state lacks %s' % ', '.join(missing))
        mine = self.state_dict()
        diff = ['%s: saved %r, this batcher %r' % (k, state[k], mine[k])
                for k in ('batch_size', 'bptt_len', 'num_tokens') if state[k] != mine[k]]
        if diff:
            raise ValueError('the saved batcher cursor belongs to another configuration (%s); '
                             'resume with the same data, batch size and window length'
                             % '; '.join(diff))
        self.iteration = _check_int('iteration', state['iteration'], 0)

    def serialize(self, serializer):
        """Save or load the cursor through the serializer protocol (key ``iteration``;
        the configuration keys are checked on load like :meth:`load_state_dict`)."""
        for key in ('batch_size', 'bptt_len', 'num_tokens'):
            mine = getattr(self, key)
            stored = serializer(key, mine)
            if stored != mine:
                raise ValueError('the saved batcher cursor has %s=%r but this batcher has %r; '
                                 'resume with the same data, batch size and window length'
                                 % (key, stored, mine))
        self.iteration = _check_int('iteration', serializer('iteration', int(self.iteration)),
                                    0)

    def __repr__(self):
        return ('ParallelSequentialBatcher(num_tokens=%d, batch_size=%d, bptt_len=%d, '
                'windows_per_epoch=%d, iteration=%d)'
                % (self.num_tokens, self.batch_size, self.bptt_len, self.windows_per_epoch,
                   self.iteration))


# -----------------------------------------------------------------------------------------------
# The update step

def _scored(t, ignore_label, nothing):
    """The number of scored targets of ``t``: a host int without ``ignore_label``, else a
    0-d array on ``t``'s device (no host sync; the "nothing scored" check is deferred)."""
    if t.size == 0:
        raise ValueError(nothing)
    if ignore_label is None:
        return int(t.size)
    n = (t != ignore_label).sum()
    backend.check_later(n == 0, lambda: ValueError(nothing))
    return n


def _window_mean(model, x, t, mode, ignore_label):
    """The mean cross-entropy over the scored tokens of one window, and their count (an int,
    or a 0-d array on the device when ``ignore_label`` is set: nothing here syncs)."""
    from seqdbr.core.functions import loss as _loss
    from seqdbr.core.functions.math import sum as _sum
    if x.ndim != 2 or tuple(x.shape) != tuple(t.shape):
        raise ValueError('x and t must both have shape (batch, bptt_len), got %s and %s'
                         % (tuple(x.shape), tuple(t.shape)))
    B, T = int(x.shape[0]), int(x.shape[1])
    nothing = ('every target of the window equals ignore_label=%r; nothing to learn from'
               % (ignore_label,))
    if mode not in ('window', 'step'):
        raise ValueError("mode must be 'window' (n-step models) or 'step' (stepwise links), "
                         "got %r" % (mode,))
    n = _scored(t, ignore_label, nothing)
    if mode == 'window':
        y = model(x)
        if not isinstance(y, Variable):
            y = Variable(y, requires_grad=False)
        if y.ndim == 3:
            if tuple(y.shape[:2]) != (B, T):
                raise ValueError('model(x) returned logits of shape %s for a window of shape '
                                 '%s; expected (%d, %d, vocab)' % (tuple(y.shape), (B, T), B, T))
            y = y.reshape(B * T, int(y.shape[2]))
        elif y.ndim != 2 or int(y.shape[0]) != B * T:
            raise ValueError('model(x) returned logits of shape %s for a window of shape %s; '
                             'expected (%d, %d, vocab) or (%d, vocab)'
                             % (tuple(y.shape), (B, T), B, T, B * T))
        # The mean over the scored tokens is the token-weighted mean of the window.
        return _loss.softmax_cross_entropy(y, t.reshape(B * T), ignore_label=ignore_label), n
    total = None
    for j in range(T):
        y = model(x[:, j])
        # per-token losses (0 where ignored), summed: each step's share of the window sum
        term = _sum(_loss.softmax_cross_entropy(y, t[:, j], ignore_label=ignore_label,
                                                reduce='no'))
        total = term if total is None else total + term
    if isinstance(n, int):
        return total / float(n), n
    xp = backend.get_array_module(n)
    return total / xp.maximum(n, 1).astype(total.dtype), n


def window_loss(model, x, t, mode='window', ignore_label=-1):
    """Run ``model`` over one window and return the loss summed over its tokens.

    Args:
        model: a Link. ``mode='window'``: ``model(x)`` takes the whole ``(B, T)`` window and
            returns logits of shape ``(B, T, V)`` or ``(B*T, V)`` (row-major, i.e. row
            ``b*T + j`` is position ``(b, j)``); an n-step RNN model. ``mode='step'``:
            ``model(x[:, j])`` takes one ``(B,)`` column and returns ``(B, V)`` logits,
            keeping its recurrent state between calls (stepwise links such as ``L.LSTM``).
        x (array): ``(B, T)`` integer inputs, on the model's device.
        t (array): ``(B, T)`` integer targets (``ignore_label`` entries score nothing).
        mode (str): ``'window'`` or ``'step'``.
        ignore_label (int or None): target value to leave out of the loss and of the count.

    Returns:
        tuple ``(loss_sum, n)``: a 0-d float Variable holding the cross-entropy (nats)
        summed over the scored tokens, and ``n``, the number of scored tokens (int).

    Raises:
        ValueError: ``x`` and ``t`` shapes differ or are not 2-D; a bad ``mode``; logits of
            the wrong shape; no scored token.
    """
    mean, n = _window_mean(model, x, t, mode, ignore_label)
    if not isinstance(n, int):
        n = int(backend.fetch_scalars(n)[0])     # the one fetch (with the deferred checks)
    return mean * float(n), n


def bptt_update(model, optimizer, x, t, mode='window', ignore_label=-1, check_finite=True):
    """One truncated-BPTT update on one window; returns the mean loss per token.

    Steps: run the window (:func:`window_loss`), which sums the cross-entropy over all
    ``n`` scored tokens of the window; ``model.cleargrads()``; backward from ``sum / n`` (so
    the gradient scale does not depend on the batch size or window length); cut the graph
    with ``loss.unchain_backward()``, and then call ``model.unchain_state()`` when the model
    has that method; ``optimizer.update()`` (its hooks, e.g. gradient clipping, run first).

    After the cut the model's carried state is a leaf and everything behind it is freed.
    A state on the loss's path (a stepwise ``L.LSTM``'s ``h``, and its ``c``) is cut by
    ``loss.unchain_backward()`` alone; a state the loss does not depend on, such as the
    ``hy``/``cy`` of ``L.NStepLSTM`` (stacked from the layers by a node of its own, while the
    loss reads ``ys``), needs ``model.unchain_state()``: a model that carries such a state
    should define it (e.g. ``self.hy.unchain_backward()``), or the next window's graph keeps
    one extra node of the previous window alive until the next cut.

    Args:
        model: the Link the optimizer was set up with (see :func:`window_loss` for the call
            conventions of the two modes).
        optimizer: a set-up optimizer (``optimizer.update()`` without arguments is called).
        x, t (array): ``(B, T)`` integer inputs and targets on the model's device.
        mode (str): ``'window'`` (n-step: ``model(x)`` -> ``(B, T, V)`` logits) or ``'step'``
            (``model(x[:, j])`` -> ``(B, V)``, one call per step).
        ignore_label (int or None): targets with this value are not scored.
        check_finite (bool): when True (default) a NaN/inf loss raises
            :class:`NonFiniteLossError` *before* the update, so the parameters and the
            optimizer state keep their last finite values (the gradients are cleared and the
            graph is cut).

    Returns:
        float: the token-weighted mean cross-entropy of the whole window, in nats per token
        (``sum over scored tokens / n``), computed before the update. With
        ``check_finite=False`` a :class:`seqdbr.core.backend.LazyScalar` instead: the value
        stays on the device until ``float()`` (or a report) reads it.

    Host synchronisation: on CuPy the whole window (the id and label range checks, the
    target count, gradient clipping, the update) runs without one, except for a single
    device-to-host transfer that fetches the loss together with the deferred id/label
    checks (none at all with ``check_finite=False``; the checks are then read by the next
    fetch). ``tests/rnn/test_bptt_syncs.py`` counts this for both modes.

    Raises:
        NonFiniteLossError: see ``check_finite``.
        IndexError: an input id or a target outside the vocabulary (nothing is updated).
        ValueError: every target equals ``ignore_label``.
    """
    loss, _ = _window_mean(model, x, t, mode, ignore_label)
    if not check_finite:
        value = backend.LazyScalar(loss.array)
    else:
        try:   # the window's one device-to-host transfer: the loss and the deferred checks
            value = backend.fetch_scalars(loss.array)[0]
        except Exception:     # a bad id or label: drop the graph, update nothing
            loss.unchain_backward()
            _unchain_state(model)
            model.cleargrads()
            raise
    if check_finite and not numpy.isfinite(value):
        loss.unchain_backward()
        _unchain_state(model)
        model.cleargrads()
        raise NonFiniteLossError('the loss of this window is %r (not finite); the parameters '
                                 'were not updated' % value, value)
    model.cleargrads()
    loss.backward()
    loss.unchain_backward()
    del loss
    _unchain_state(model)
    optimizer.update()
    return value


def _unchain_state(model):
    unchain = getattr(model, 'unchain_state', None)
    if unchain is not None:
        unchain()
