"""The character-level language model: ``EmbedID -> LSTM/GRU layers -> Linear``.

:class:`CharRNN` maps a window of character ids ``(B, T)`` to next-character logits
``(B, T, V)`` and carries its recurrent state from one call to the next (truncated BPTT:
the trainer cuts the graph behind it after each update).

Two implementations of the recurrent layers compute the same function with the same
weights:

``impl='nstep'`` (default, fast)
    one ``L.NStepLSTM`` / ``L.NStepGRU`` link: each layer is one fused node over the whole
    window (one input-projection matmul per layer per window; for layer 0 not even that:
    ``forward_embed`` looks the ids up in ``embed/W W_ih^T``, a ``(V, G*H)`` table).
``impl='stepwise'``
    one stateful ``L.LSTM`` / ``L.StatefulGRU`` link per layer, called once per time step.

Dropout (``dropout > 0``, training mode only) is applied to the input of every recurrent
layer but the first and to the output of the last layer before the linear layer.

The two implementations hold their weights in different links (n-step: ``W_ih``, ``W_hh``
and the bias(es) of each layer; stepwise: ``upward`` and ``lateral`` Linear links), so the
weights have *canonical* names that do not depend on where they live (PyTorch's weight
layout: ``G = 4`` gate blocks ``[i|f|g|o]`` for LSTM, ``G = 3`` blocks ``[r|z|n]`` for GRU)::

    embed/W        (V, H)     embedding                      EmbedID W
    rnn/<l>/W_ih   (G*H, H)   input weights of layer l       n-step W_ih  | upward.W
    rnn/<l>/W_hh   (G*H, H)   recurrent weights              n-step W_hh  | lateral.W
    rnn/<l>/b_ih   (G*H,)     input bias                     n-step b_ih  | upward.b
    rnn/<l>/b_hh   (G*H,)     recurrent bias                 n-step b_hh  | lateral.b
    rnn/<l>/b      (4H,)      the one bias of a layer that has a single LSTM bias
                              (the stepwise L.LSTM: upward.b; its lateral link has none)
    out/W          (V, H)     output layer                   Linear W
    out/b          (V,)                                      Linear b

(The input size of every layer is H: the embedding size equals ``rnn_size``.) Every
parameter keeps its own name, so a checkpoint restores a model of the same ``impl`` exactly.
Between implementations whose LSTM bias layouts differ, :meth:`CharRNN.load_canonical`
converts: ``b = b_ih + b_hh`` one way, ``b_ih = b, b_hh = 0`` the other (the layer adds the
two biases, so the function is unchanged). That is the whole conversion: a model trained with
one implementation is sampled, evaluated or fine-tuned with the other. Optimizer state (per
parameter) moves between implementations only when their layouts agree.
"""
import collections
import math
import numbers

import numpy

import seqdbr.functions as F
import seqdbr.links as L
from seqdbr.core import backend
from seqdbr.core.link import Chain, ChainList
from seqdbr.core.variable import Parameter, Variable

__all__ = ['CharRNN', 'MODELS', 'IMPLS', 'check_forget_bias']

MODELS = ('lstm', 'gru')
IMPLS = ('nstep', 'stepwise')
#: Where the stepwise links keep each canonical weight (``b`` when ``lateral`` has no bias).
_STEPWISE = {'W_ih': ('upward', 'W'), 'W_hh': ('lateral', 'W'), 'b_ih': ('upward', 'b'),
             'b_hh': ('lateral', 'b'), 'b': ('upward', 'b')}
_NSTEP_NAMES = ('W_ih', 'W_hh', 'b', 'b_ih', 'b_hh')


def check_forget_bias(v, what):
    """``float(v)`` for a real number that float32 (the weights' dtype) holds finitely; else
    ValueError naming ``what``."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise ValueError('%s must be a finite number, got %r' % (what, v))
    try:
        f = float(v)
    except OverflowError:
        f = math.inf
    if not abs(f) <= float(numpy.finfo(numpy.float32).max):
        raise ValueError('%s must be a finite number within the float32 range (|x| <= 3.4e38), '
                         'got %r' % (what, v))
    return f


def _check_positive_int(name, v):
    if isinstance(v, bool) or not isinstance(v, (int, numpy.integer)) or v < 1:
        raise ValueError('CharRNN: %s must be an int >= 1, got %r' % (name, v))
    return int(v)


class CharRNN(Chain):
    """Character-level RNN language model.

    Args:
        vocab_size (int): ``V``, number of symbols.
        rnn_size (int): ``H``, hidden units per layer and embedding size (default 128).
        num_layers (int): stacked recurrent layers (default 2).
        dropout (float): in ``[0, 1)`` (default 0); see the module docstring.
        model (str): ``'lstm'`` (default) or ``'gru'``.
        impl (str): ``'nstep'`` (default) or ``'stepwise'``; same function, same weights.
        forget_bias (float): initial forget-gate bias of the LSTM layers (default 0; ignored
            for GRU). Measured choice, see below.

    Initialisation: embedding ``N(0, 1)``; recurrent and output weights LeCun normal
    (``N(0, 1/fan_in)``); biases 0 except the forget gates (``forget_bias``). The forget-gate
    bias defaults to 0, not the 1 of ``L.LSTM`` (Gers et al. 2000; Jozefowicz et al. 2015):
    on Tiny Shakespeare with char-rnn's defaults (2x128, Adam 2e-3, 90/10 split) a bias of 1
    trained slower at every epoch: validation loss after 10 epochs 1.5636 and 1.5594 against
    1.5479 and 1.5518 with 0, for seeds 1 and 2 (``benchmarks/README.md``, seed study). PyTorch's
    ``nn.LSTM``, whose biases start near 0, gave 1.5549 and 1.5579.

    Call:
        ``model(x)`` with ``x`` an int array ``(B, T)`` (on the model's device) returns a
        Variable of logits ``(B, T, V)`` (float32). The recurrent state left after the last
        step is kept and used by the next call (with the same ``B``).

    Raises:
        ValueError: invalid sizes, dropout, ``model``, ``impl`` or ``forget_bias``.
    """

    def __init__(self, vocab_size, rnn_size=128, num_layers=2, dropout=0.0, model='lstm',
                 impl='nstep', forget_bias=0.0):
        super().__init__()
        V = _check_positive_int('vocab_size', vocab_size)
        H = _check_positive_int('rnn_size', rnn_size)
        n = _check_positive_int('num_layers', num_layers)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) \
                or not 0 <= dropout < 1:
            raise ValueError('CharRNN: dropout must be in [0, 1), got %r' % (dropout,))
        if model not in MODELS:
            raise ValueError("CharRNN: model must be 'lstm' or 'gru', got %r" % (model,))
        if impl not in IMPLS:
            raise ValueError("CharRNN: impl must be 'nstep' or 'stepwise', got %r" % (impl,))
        self.forget_bias = check_forget_bias(forget_bias, 'CharRNN: forget_bias')
        self.vocab_size, self.rnn_size, self.num_layers = V, H, n
        self.dropout = float(dropout)
        self.model, self.impl = model, impl
        with self.init_scope():
            self.embed = L.EmbedID(V, H)
            fb = self.forget_bias
            if impl == 'nstep':
                self.rnn = (L.NStepLSTM(n, H, H, self.dropout, forget_bias=fb)
                            if model == 'lstm' else L.NStepGRU(n, H, H, self.dropout))
            else:
                self.rnn = ChainList(*[L.LSTM(H, H, forget_bias_init=fb) if model == 'lstm'
                                       else L.StatefulGRU(H, H) for _ in range(n)])
            self.out = L.Linear(H, V)
        self._h = None      # n-step carried state: (num_layers, B, H) Variables
        self._c = None

    def config(self):
        """The constructor arguments (JSON-native), as stored in checkpoints."""
        return {'vocab_size': self.vocab_size, 'rnn_size': self.rnn_size,
                'num_layers': self.num_layers, 'dropout': self.dropout, 'model': self.model,
                'impl': self.impl, 'forget_bias': self.forget_bias}

    def repr_args(self):
        return ', '.join('%s=%r' % kv for kv in self.config().items())

    # -- canonical parameters -------------------------------------------------------------------
    def canonical_params(self):
        """``OrderedDict`` canonical name -> Parameter (see the module docstring)."""
        out = collections.OrderedDict()
        out['embed/W'] = self.embed.W
        for l, layer in enumerate(self.rnn):
            found = collections.OrderedDict()
            if self.impl == 'nstep':
                for k in _NSTEP_NAMES:
                    p = getattr(layer, k, None)
                    if isinstance(p, Parameter):
                        found[k] = p
            else:
                two = getattr(layer.lateral, 'b', None) is not None
                for k in (('W_ih', 'W_hh', 'b_ih', 'b_hh') if two else ('W_ih', 'W_hh', 'b')):
                    child, attr = _STEPWISE[k]
                    found[k] = getattr(getattr(layer, child), attr)
            biases = [k for k in found if k.startswith('b')]
            if 'W_ih' not in found or 'W_hh' not in found or biases not in (
                    ['b'], ['b_ih', 'b_hh']):
                raise RuntimeError('CharRNN: layer %d of %s has parameters %s; expected W_ih, '
                                   'W_hh and b or b_ih + b_hh (the recurrent links changed '
                                   'their layout)' % (l, type(self.rnn).__name__, list(found)))
            for k, p in found.items():
                out['rnn/%d/%s' % (l, k)] = p
        out['out/W'] = self.out.W
        out['out/b'] = self.out.b
        return out

    def canonical_shapes(self):
        """``OrderedDict`` canonical name -> shape tuple."""
        return collections.OrderedDict((k, tuple(p.array.shape))
                                       for k, p in self.canonical_params().items())

    def canonical_arrays(self):
        """``OrderedDict`` canonical name -> parameter array (on the model's device; the
        arrays themselves, not copies)."""
        return collections.OrderedDict((k, p.array) for k, p in self.canonical_params().items())

    def param_path_map(self):
        """``{canonical name: the parameter's path in this link tree}`` (paths without the
        leading ``'/'``, as the serializers name them), for renaming optimizer state."""
        paths = {id(p): path.lstrip('/') for path, p in self.namedparams()}
        return {k: paths[id(p)] for k, p in self.canonical_params().items()}

    def load_canonical(self, arrays):
        """Copy weights given under canonical names into this model (either ``impl``).

        The LSTM biases are converted when the layouts differ: stored ``b_ih`` and ``b_hh``
        into a single ``b`` as their sum; a stored ``b`` into ``b_ih = b``, ``b_hh = 0``.

        Args:
            arrays (Mapping): canonical name -> array (host or device), all of them.

        Raises:
            ValueError: missing, unexpected or mis-shaped entries (all listed).
        """
        params = self.canonical_params()
        arrays = dict(arrays)
        for l in range(self.num_layers):
            pre = 'rnn/%d/' % l
            if pre + 'b' in params and pre + 'b' not in arrays \
                    and pre + 'b_ih' in arrays and pre + 'b_hh' in arrays:
                b_ih = numpy.asarray(backend.to_cpu(arrays.pop(pre + 'b_ih')))
                arrays[pre + 'b'] = b_ih + numpy.asarray(backend.to_cpu(
                    arrays.pop(pre + 'b_hh')), dtype=b_ih.dtype)
            elif pre + 'b_ih' in params and pre + 'b' in arrays \
                    and pre + 'b_ih' not in arrays and self.model == 'lstm':
                b = arrays.pop(pre + 'b')
                arrays[pre + 'b_ih'] = b
                arrays[pre + 'b_hh'] = numpy.zeros(tuple(b.shape), dtype=b.dtype)
        missing = [k for k in params if k not in arrays]
        unexpected = [k for k in arrays if k not in params]
        wrong = ['%s: got %s, expected %s' % (k, tuple(arrays[k].shape), p.array.shape)
                 for k, p in params.items()
                 if k in arrays and tuple(arrays[k].shape) != p.array.shape]
        if missing or unexpected or wrong:
            parts = []
            if missing:
                parts.append('missing: ' + ', '.join(missing))
            if unexpected:
                parts.append('unexpected: ' + ', '.join(unexpected))
            if wrong:
                parts.append('shape mismatch: ' + '; '.join(wrong))
            raise ValueError('the weights do not fit this CharRNN(%s) (%s)'
                             % (self.repr_args(), ' / '.join(parts)))
        xp = self.xp
        with self.device.using():         # the host->device copies land on the model's GPU
            for k, p in params.items():
                p.array[...] = xp.asarray(arrays[k], dtype=p.array.dtype)

    # -- state ----------------------------------------------------------------------------------
    def reset_state(self):
        """Forget the carried state (the next call starts from zeros)."""
        self._h = self._c = None
        if self.impl == 'stepwise':
            for link in self.rnn:
                link.reset_state()

    def unchain_state(self):
        """Cut the graph behind the carried state, which becomes a leaf (truncated BPTT).

        :func:`seqdbr.rnn.bptt.bptt_update` calls it after ``loss.unchain_backward()``: the
        n-step layers' final states are stacked by a node the loss does not depend on, so
        that call alone would not reach them.
        """
        for v in (self._h, self._c):
            if v is not None:
                v.unchain_backward()
        if self.impl == 'stepwise':
            for link in self.rnn:
                for v in (getattr(link, 'h', None), getattr(link, 'c', None)):
                    if v is not None:
                        v.unchain_backward()

    def get_state(self):
        """The carried state as host-or-device arrays, or None when there is none.

        Returns:
            dict ``{'h': (num_layers, B, H)}`` plus ``'c'`` (same shape) for LSTM, or None.
        """
        if self.impl == 'nstep':
            if self._h is None:
                return None
            st = {'h': self._h.array}
            if self._c is not None:
                st['c'] = self._c.array
            return st
        links = list(self.rnn)
        if links[0].h is None:
            return None
        xp = self.xp
        with self.device.using():
            st = {'h': xp.stack([link.h.array for link in links])}
            if self.model == 'lstm':
                st['c'] = xp.stack([link.c.array for link in links])
        return st

    def set_state(self, state):
        """Set the carried state from :meth:`get_state` output (arrays are not copied).

        Args:
            state (dict or None): ``{'h': (num_layers, B, H)[, 'c': same]}``; None resets.

        Raises:
            ValueError: missing keys or wrong shapes.
        """
        if state is None:
            self.reset_state()
            return
        need = ('h', 'c') if self.model == 'lstm' else ('h',)
        missing = [k for k in need if k not in state]
        if missing:
            raise ValueError('CharRNN.set_state: the %s state needs %s, got keys %s'
                             % (self.model, ', '.join(need), sorted(state)))
        arrays = {}
        for k in need:
            a = state[k]
            a = a.array if isinstance(a, Variable) else a
            with self.device.using():   # state saved on another device comes over here
                a = self.device.send(a).astype(self.embed.W.array.dtype, copy=False)
            if a.ndim != 3 or a.shape[0] != self.num_layers or a.shape[2] != self.rnn_size \
                    or a.shape[1] < 1:
                raise ValueError('CharRNN.set_state: %s must have shape (num_layers=%d, B, '
                                 'rnn_size=%d), got %s' % (k, self.num_layers, self.rnn_size,
                                                           a.shape))
            arrays[k] = a
        if self.impl == 'nstep':
            self._h = Variable(arrays['h'], requires_grad=False)
            self._c = Variable(arrays['c'], requires_grad=False) if 'c' in arrays else None
            return
        for l, link in enumerate(self.rnn):
            h = Variable(arrays['h'][l], requires_grad=False)
            if self.model == 'lstm':
                link.set_state(Variable(arrays['c'][l], requires_grad=False), h)
            else:
                link.set_state(h)

    def to_device(self, device):
        """Move the weights and the carried state to ``device`` (``'cpu'``, ``'gpu'``,
        ``'gpu:N'``). Returns self."""
        super().to_device(device)
        dev = backend.get_device(device)
        for v in (self._h, self._c):
            if v is not None:
                v.to_device(dev)
        if self.impl == 'stepwise':
            for link in self.rnn:
                link.to_device(dev)
        return self

    # -- forward ----------------------------------------------------------------------------------
    def forward(self, x):
        """Logits ``(B, T, V)`` for the ids ``x`` ``(B, T)``; updates the carried state."""
        if isinstance(x, Variable):
            x = x.array
        if getattr(x, 'ndim', None) != 2 or x.dtype.kind not in 'iu':
            raise ValueError('CharRNN expects a (batch, time) array of integer ids, got %s %s'
                             % (getattr(x, 'dtype', type(x).__name__), getattr(x, 'shape', '')))
        B, T = x.shape
        self._check_batch(B)
        if self.impl == 'nstep':
            # embedding + layer-0 input projection as one lookup in embed.W W_ih^T
            # (NStepLSTM.forward_embed): same function, fewer matmul flops
            if self.model == 'lstm':
                hy, cy, ys = self.rnn.forward_embed(self._h, self._c, x, self.embed.W)
                self._c = cy
            else:
                hy, ys = self.rnn.forward_embed(self._h, x, self.embed.W)
            self._h = hy
            hs = ys                                          # (B, T, H)
        else:
            e = self.embed(x)                                # (B, T, H)
            layers = list(self.rnn)
            cols = []
            for j in range(T):
                h = e[:, j]
                for l, link in enumerate(layers):
                    if l and self.dropout:
                        h = F.dropout(h, self.dropout)
                    h = link(h)
                cols.append(h)
            hs = F.stack(cols, axis=1)                      # (B, T, H)
        hs = hs.reshape(B * T, self.rnn_size)
        if self.dropout:
            hs = F.dropout(hs, self.dropout)
        return self.out(hs).reshape(B, T, self.vocab_size)

    def _check_batch(self, B):
        st = None
        if self.impl == 'nstep':
            st = self._h
        else:
            st = list(self.rnn)[0].h
        if st is not None:
            have = st.shape[1] if self.impl == 'nstep' else st.shape[0]
            if have != B:
                raise ValueError('CharRNN: the carried state has batch size %d but the input '
                                 'has %d rows; call reset_state() (or set_state) first'
                                 % (have, B))
