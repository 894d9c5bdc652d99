"""Truncated backpropagation through time over parallel streams, as an updater.

:class:`BPTTUpdater` trains a recurrent model on a
:class:`seqdbr.rnn.bptt.ParallelSequentialBatcher`: each iteration takes the next
``(B, T)`` window, runs it with the state carried from the previous window, backprops
through those ``T`` steps only, cuts the graph (``unchain_backward``) and updates
(:func:`seqdbr.rnn.bptt.bptt_update`). The carried state is reset at the start of every
epoch (``reset_state='epoch'``; ``'never'`` carries it across epochs).

Models: ``mode='window'`` for models that take the whole ``(B, T)`` window and return
``(B, T, V)`` logits (n-step layers, ``seqdbr.charlm.CharRNN``); ``mode='step'`` for models
built from stepwise links (``L.LSTM``, ``L.StatefulGRU``) that take one ``(B,)`` column and
return ``(B, V)``. The carried state is part of a snapshot: through the model's
``get_state()`` / ``set_state(dict)`` when it has them, otherwise from every sublink that
carries ``h`` (and ``c``) and has ``set_state``.
"""
import json

import numpy

from seqdbr.core import backend
from seqdbr.core.serializers import Deserializer
from seqdbr.core.variable import Variable
from seqdbr.rnn.bptt import NonFiniteLossError, bptt_update
from seqdbr.training.reporter import report
from seqdbr.training.updater import Updater, _report_lr

__all__ = ['BPTTUpdater']

_MODES = ('window', 'step')
_RESETS = ('epoch', 'never')


class BPTTUpdater(Updater):
    """Truncated-BPTT updater (see the module docstring).

    Args:
        batcher (ParallelSequentialBatcher): the training windows (it keeps the cursor).
        optimizer: a set-up optimizer.
        model (Link or None): the recurrent model (default ``optimizer.target``). It must be
            the optimizer's target or a link that calls it.
        bptt_len (int or None): the window length; must equal ``batcher.bptt_len`` when given.
        mode (str): ``'window'`` or ``'step'`` (see above).
        reset_state (str): ``'epoch'`` (zero state at each epoch start) or ``'never'``.
        ignore_label (int or None): target value that scores nothing.

    Reports ``loss`` (mean nats per scored token of the window, a float) and ``lr``.

    Raises:
        ValueError: a ``bptt_len`` that differs from the batcher's, an unknown mode or reset
            rule, an optimizer that is not set up.
    """

    def __init__(self, batcher, optimizer, model=None, bptt_len=None, mode='window',
                 reset_state='epoch', ignore_label=-1):
        if getattr(optimizer, 'target', None) is None:
            raise ValueError('BPTTUpdater needs a set-up optimizer: call optimizer.setup(model)')
        if bptt_len is not None and bptt_len != batcher.bptt_len:
            raise ValueError('bptt_len=%r differs from the batcher\'s window length %d; build '
                             'the batcher with the window you want'
                             % (bptt_len, batcher.bptt_len))
        if mode not in _MODES:
            raise ValueError('mode must be one of %s, got %r' % (_MODES, mode))
        if reset_state not in _RESETS:
            raise ValueError('reset_state must be one of %s, got %r' % (_RESETS, reset_state))
        self.batcher = batcher
        self.optimizer = optimizer
        self.rnn_model = optimizer.target if model is None else model
        self.mode = mode
        self.reset_rule = reset_state
        self.ignore_label = ignore_label

    @property
    def iteration(self):
        return self.batcher.iteration

    @iteration.setter
    def iteration(self, value):
        self.batcher.iteration = value

    @property
    def epoch(self):
        return self.batcher.epoch

    @property
    def epoch_detail(self):
        return self.batcher.epoch_detail

    @property
    def is_new_epoch(self):
        return self.batcher.is_new_epoch

    @property
    def iterations_per_epoch(self):
        return self.batcher.windows_per_epoch

    def update(self):
        model = self.rnn_model
        if self.reset_rule == 'epoch' and self.batcher.starts_epoch:
            _reset(model)
        x_host, t_host = self.batcher.next_window()
        xp = model.xp
        with backend.using_device(model.device):       # the window on the model's device
            try:
                loss = bptt_update(model, self.optimizer, xp.asarray(x_host),
                                   xp.asarray(t_host), mode=self.mode,
                                   ignore_label=self.ignore_label)
            except NonFiniteLossError as e:
                loss = e.loss
        report({'loss': loss})
        _report_lr(self.optimizer)
        if self.batcher.is_new_epoch:
            self.optimizer.new_epoch()

    def serialize(self, s):
        self.batcher.serialize(s['batcher'])
        self.rnn_model.serialize(s['model'])
        self.optimizer.serialize(s['optimizer'])
        _serialize_state(self.rnn_model, s['state'], self.batcher)


def _reset(model):
    reset = getattr(model, 'reset_state', None)
    if reset is not None:
        reset()
        return
    for _, link in _stateful_links(model):
        link.reset_state()


def _stateful_links(model):
    return [(path, link) for path, link in model.namedlinks()
            if hasattr(link, 'set_state') and hasattr(link, 'h')]


def get_carried_state(model):
    """The model's carried state as ``{name: host array}`` (empty when there is none)."""
    if hasattr(model, 'get_state') and hasattr(model, 'set_state'):
        st = model.get_state() or {}
        return {k: backend.to_host(v) for k, v in st.items()}
    out = {}
    for path, link in _stateful_links(model):
        for k in ('h', 'c'):
            v = getattr(link, k, None)
            if v is not None:
                out['%s/%s' % (path.strip('/') or '_', k)] = backend.to_host(v.array)
    return out


def set_carried_state(model, state):
    """Restore :func:`get_carried_state` output (an empty dict resets the state)."""
    if hasattr(model, 'get_state') and hasattr(model, 'set_state'):
        model.set_state(state or None)
        return
    _reset(model)
    xp = model.xp
    for path, link in _stateful_links(model):
        key = path.strip('/') or '_'
        h = state.get(key + '/h')
        if h is None:
            continue
        h = Variable(xp.asarray(h), requires_grad=False)
        c = state.get(key + '/c')
        if c is None:
            link.set_state(h)
        else:
            link.set_state(Variable(xp.asarray(c), requires_grad=False), h)


def _serialize_state(model, s, batcher=None):
    """Save or load the carried state: a JSON list of names plus one array per name.

    A batcher that shares its streams across processes (``seqdbr.distributed.StreamShard``)
    has ``gather_carried`` / ``local_carried``: the snapshot then holds every stream's state
    and each process loads its own rows."""
    if not isinstance(s, Deserializer):
        state = get_carried_state(model)
        if hasattr(batcher, 'gather_carried'):
            state = batcher.gather_carried(state)
        s('names', json.dumps(sorted(state)))
        for name in sorted(state):
            s(name.replace('/', '.'), state[name])
        return
    names = json.loads(s('names', ''))
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError('the stored carried-state names are not a list of strings')
    loaded = {}
    for name in names:
        value = s(name.replace('/', '.'), None)
        if value is None:
            raise ValueError('the stored carried state lacks %r' % name)
        loaded[name] = numpy.asarray(value)
    if loaded and hasattr(batcher, 'local_carried'):
        loaded = batcher.local_carried(loaded)
    set_carried_state(model, loaded)
