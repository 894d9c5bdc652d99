"""Sequence to sequence with attention: the logic behind ``scripts/seq2seq_dates.py``.

Model (:class:`Seq2seq`), after Luong, Pham & Manning 2015 ("Effective Approaches to
Attention-based Neural Machine Translation"):

* encoder: character embedding -> bidirectional ``NStepBiLSTM`` (``n_layers`` x ``H`` per
  direction) over the variable-length sources; the source states ``h_s`` are ``2H`` wide;
* decoder: a stepwise ``StatelessLSTM`` (``H``) whose input at step ``t`` is
  ``[embed(y_{t-1}) ; ht_{t-1}]`` (input feeding, sec. 3.3), started from
  ``h_0 = tanh(W_b [h_fwd_last ; h_bwd_first])`` of the encoder's top layer and ``c_0 = 0``;
* attention: ``GlobalAttention(H, 2H, score)`` (dot is impossible here since ``2H != H``;
  'general' by default) gives ``ht_t = tanh(W_c [c_t ; h_t])``, and
  ``p(y_t | y_<t, x) = softmax(W_o ht_t + b_o)``.

Token ids: targets use ``0 = <eos>``, ``1 = <bos>`` then the characters; sources use
``0 = <unk>`` (any character outside the vocabulary) then the characters.

Training uses teacher forcing (:meth:`Seq2seq.loss`: mean cross-entropy per target token,
``<eos>`` included, over a batch of variable-length pairs). Decoding is greedy
(:meth:`Seq2seq.greedy`) or beam search (:meth:`Seq2seq.beam_search`: width, length
normalisation, end of sequence, maximum length). Model scores are sums of log-probabilities
(natural log) of the emitted symbols, ``<eos>`` included when it was emitted.

Checkpoints (:func:`save_checkpoint`/:func:`load_checkpoint`) are one ``.npz`` file: the
weights under ``model/``, optional optimizer state under ``optimizer/``, and ``meta``, a
JSON string with the model configuration and both vocabularies; no pickle.

:func:`train` is a plain training loop (Adam, gradient clipping, shuffled minibatches,
exact-match evaluation on a held-out split); :func:`convert_batch` is the converter to use
with a generic iterator/updater (a batch of ``(source_ids, target_ids)`` pairs -> two lists).
"""
import collections
import json

import numpy

import seqdbr
import seqdbr.functions as F
import seqdbr.links as L
from seqdbr.core import serializers
from seqdbr.core.optimizer_hooks import GradientClipping
from seqdbr.core.variable import Variable
from seqdbr.datasets import SerialIterator
from seqdbr.training import IntervalTrigger, StandardUpdater, StopTrigger, Trainer, report
from seqdbr.training import extensions as E
from seqdbr.training.extension import PRIORITY_READER, PRIORITY_WRITER, Extension

__all__ = ['EOS', 'BOS', 'UNK', 'CharVocab', 'Hypothesis', 'Seq2seq', 'convert_batch',
           'encode_pairs', 'exact_match', 'train', 'save_checkpoint', 'load_checkpoint',
           'FORMAT']

EOS, BOS, UNK = 0, 1, 0
FORMAT = 'seqdbr.examples.seq2seq'

Hypothesis = collections.namedtuple('Hypothesis', ['tokens', 'score', 'finished'])
Hypothesis.__doc__ = """A decoded output: ``tokens`` (tuple of target ids, no ``<eos>``),
``score`` (sum of the natural-log probabilities of the emitted symbols, ``<eos>`` included
when ``finished``) and ``finished`` (``<eos>`` was emitted before the maximum length)."""


def normalized_score(hyp, length_penalty):
    """``score / n ** length_penalty`` with ``n`` the number of emitted symbols (``<eos>``
    counted): 0 ranks by the raw model score, 1 by the mean log-probability per symbol."""
    if length_penalty == 0:
        return hyp.score
    n = len(hyp.tokens) + (1 if hyp.finished else 0)
    return hyp.score / max(n, 1) ** length_penalty


class CharVocab:
    """Characters <-> ids, with special symbols first.

    Args:
        chars (str or iterable of str): the characters (duplicates dropped, order kept).
        specials (tuple of str): names of the reserved ids ``0 .. len(specials) - 1``.
        unk (int or None): id given to characters outside the vocabulary; None raises.
    """

    def __init__(self, chars, specials, unk=None):
        self.specials = tuple(specials)
        self.chars = ''.join(dict.fromkeys(chars))
        self.unk = unk
        self._index = {c: i + len(self.specials) for i, c in enumerate(self.chars)}

    def __len__(self):
        return len(self.specials) + len(self.chars)

    def encode(self, text):
        """``text`` -> int32 ids ``(len(text),)``.

        Raises:
            ValueError: a character outside the vocabulary when ``unk`` is None.
        """
        out = numpy.empty(len(text), dtype=numpy.int32)
        for i, ch in enumerate(text):
            j = self._index.get(ch, self.unk)
            if j is None:
                raise ValueError('character %r (position %d of %r) is not in the vocabulary'
                                 % (ch, i, text))
            out[i] = j
        return out

    def decode(self, ids):
        """ids -> string (special ids are dropped)."""
        n = len(self.specials)
        return ''.join(self.chars[i - n] for i in numpy.asarray(ids).tolist() if i >= n)

    def to_json(self):
        return {'chars': self.chars, 'specials': list(self.specials), 'unk': self.unk}

    @classmethod
    def from_json(cls, d):
        return cls(d['chars'], d['specials'], d['unk'])


def _check_sources(xs, what='source'):
    if not isinstance(xs, (list, tuple)) or not xs:
        raise ValueError('expected a non-empty list of %s id arrays, got %r'
                         % (what, type(xs).__name__))
    for i, x in enumerate(xs):
        if getattr(x, 'ndim', None) != 1 or x.dtype.kind not in 'iu':
            raise ValueError('%s sequence %d must be a 1-d integer id array, got %s'
                             % (what, i, getattr(x, 'shape', type(x).__name__)))
        if len(x) == 0:
            raise ValueError('%s sequence %d is empty; every source needs at least one token '
                             '(drop empty inputs before decoding)' % (what, i))


def _beam_done(finished, best_live, alpha, max_length):
    """True when no live hypothesis can beat the best finished one: scores only decrease,
    so a live score ``s <= 0`` can at best reach ``s / max_length ** alpha`` normalised."""
    if not finished:
        return False
    best = max(normalized_score(h, alpha) for h in finished)
    return best >= (best_live if alpha == 0 else best_live / max_length ** alpha)


def _log_softmax_rows(z):
    """float64 log-softmax of logits ``(R, V)``, with ``<bos>`` made impossible (-inf): it is
    an input symbol only, never an output."""
    z = z.astype(numpy.float64)
    z = z - z.max(axis=1, keepdims=True)
    z -= numpy.log(numpy.exp(z).sum(axis=1, keepdims=True))
    z[:, BOS] = -numpy.inf
    return z


def _pos_int(name, v):
    if isinstance(v, bool) or not isinstance(v, (int, numpy.integer)) or v < 1:
        raise ValueError('%s must be an int >= 1, got %r' % (name, v))
    return int(v)


class Seq2seq(L.Chain):
    """Bidirectional-LSTM encoder, input-feeding LSTM decoder with Luong attention.

    Args:
        n_source_vocab, n_target_vocab (int): vocabulary sizes (target ids 0 and 1 are
            ``<eos>`` and ``<bos>``).
        embed_size (int): embedding width of both sides.
        hidden_size (int): ``H``: decoder state and each encoder direction.
        n_layers (int): encoder layers.
        score (str): attention score, 'general' or 'concat' ('dot' needs ``2H == H``).
        dropout (float): dropout between encoder layers.

    Call shapes: sources ``xs`` and targets ``ys`` are lists of ``B`` 1-d int32 id arrays of
    any lengths >= 1 (targets without ``<eos>``; it is added here).
    """

    def __init__(self, n_source_vocab, n_target_vocab, embed_size=32, hidden_size=64,
                 n_layers=1, score='general', dropout=0.0):
        super().__init__()
        self.cfg = dict(n_source_vocab=int(n_source_vocab), n_target_vocab=int(n_target_vocab),
                        embed_size=int(embed_size), hidden_size=int(hidden_size),
                        n_layers=int(n_layers), score=score, dropout=float(dropout))
        E, H = self.cfg['embed_size'], self.cfg['hidden_size']
        if n_target_vocab < 3:
            raise ValueError('Seq2seq: n_target_vocab must be >= 3 (<eos>, <bos> and at least '
                             'one symbol), got %r' % (n_target_vocab,))
        with self.init_scope():
            self.embed_x = L.EmbedID(n_source_vocab, E)
            self.encoder = L.NStepBiLSTM(n_layers, E, H, dropout)
            self.bridge = L.Linear(2 * H, H)
            self.embed_y = L.EmbedID(n_target_vocab, E)
            self.decoder = L.StatelessLSTM(E + H, H)
            self.attention = L.GlobalAttention(H, 2 * H, score=score, out_size=H)
            self.out = L.Linear(H, n_target_vocab)

    # -- the network ---------------------------------------------------------------------

    def encode(self, xs):
        """Encode sources -> ``(memory, state)``: the attention memory (``B`` rows) and the
        decoder's initial state ``(c, h, ht)`` (each ``(B, H)``).

        Raises:
            ValueError: an empty list, a non-1-d or non-integer source, an empty source.
        """
        _check_sources(xs)
        lengths = [len(x) for x in xs]
        xp = self.xp
        if min(lengths) == max(lengths):
            ex = self.embed_x(xp.asarray(numpy.stack(xs)))                 # (B, S, E)
            hy, _, ys = self.encoder(None, None, ex)
        else:
            ex = self.embed_x(xp.asarray(numpy.concatenate(xs)))
            exs = F.split_axis(ex, numpy.cumsum(lengths)[:-1].tolist(), axis=0)
            hy, _, ys = self.encoder(None, None, list(exs))
        memory = self.attention.prepare(ys, lengths)
        h = F.tanh(self.bridge(F.concat([hy[-2], hy[-1]], axis=1)))
        B, H = h.shape
        zeros = xp.zeros((B, H), dtype=h.dtype)
        return memory, (zeros, h, zeros)

    def step(self, state, y_prev, memory):
        """One decoder step: ``state`` ``(c, h, ht)``, previous ids ``y_prev`` ``(B,)`` ->
        ``(new_state, attention_weights (B, S))``; the logits are ``self.out(new_state[2])``."""
        c, h, ht = state
        x = F.concat([self.embed_y(y_prev), ht], axis=1)
        c, h = self.decoder(c, h, x)
        ht, a = self.attention(h, memory)
        return (c, h, ht), a

    def _teacher_forced_logits(self, xs, ys):
        _check_sources(ys, 'target')
        if len(xs) != len(ys):
            raise ValueError('%d sources but %d targets' % (len(xs), len(ys)))
        memory, state = self.encode(xs)
        B = len(ys)
        T = max(len(y) for y in ys) + 1
        y_in = numpy.full((T, B), EOS, dtype=numpy.int32)
        y_in[0] = BOS
        y_out = numpy.full((T, B), -1, dtype=numpy.int32)
        for b, y in enumerate(ys):
            y_in[1:len(y) + 1, b] = y
            y_out[:len(y), b] = y
            y_out[len(y), b] = EOS
        xp = self.xp
        hts = []
        for t in range(T):
            state, _ = self.step(state, xp.asarray(y_in[t]), memory)
            hts.append(state[2])
        hs = F.stack(hts, axis=0)                                # (T, B, H)
        logits = self.out(F.reshape(hs, (T * B, hs.shape[2])))
        return logits, y_out

    def loss(self, xs, ys):
        """Teacher-forced loss: ``(loss, {'accuracy': acc})``, the mean cross-entropy per
        target symbol (``<eos>`` included) and the per-symbol accuracy (0-d Variables)."""
        logits, y_out = self._teacher_forced_logits(xs, ys)
        t = self.xp.asarray(y_out.reshape(-1))
        loss = F.softmax_cross_entropy(logits, t, ignore_label=-1)
        return loss, {'accuracy': F.accuracy(logits, t, ignore_label=-1)}

    def forward(self, xs, ys):
        return self.loss(xs, ys)[0]

    def score(self, xs, ys, eos=True):
        """Model scores ``log p(y | x)`` (float64 array ``(B,)``) of given outputs.

        ``eos=True`` scores ``y`` followed by ``<eos>`` (a finished hypothesis); False scores
        only the symbols of ``y`` (an unfinished one). ``<bos>`` is never an output: a ``y``
        containing it scores ``-inf`` (the decoders exclude it).
        """
        ys = [numpy.asarray(y, dtype=numpy.int32).reshape(-1) for y in ys]
        if len(ys) != len(xs):
            raise ValueError('%d sources but %d outputs to score' % (len(xs), len(ys)))
        with seqdbr.no_backprop_mode(), seqdbr.using_config('train', False):
            memory, state = self.encode(xs)
            B = len(ys)
            T = max(len(y) for y in ys) + 1
            total = numpy.zeros(B)
            y_prev = numpy.full(B, BOS, dtype=numpy.int32)
            for t in range(T):
                state, _ = self.step(state, self.xp.asarray(y_prev), memory)
                logp = _log_softmax_rows(seqdbr.to_cpu(self.out(state[2]).array))
                for b, y in enumerate(ys):
                    if t < len(y):
                        total[b] += logp[b, y[t]]
                    elif t == len(y) and eos:
                        total[b] += logp[b, EOS]
                y_prev = numpy.array([y[t] if t < len(y) else EOS for y in ys],
                                     dtype=numpy.int32)
        return total

    # -- decoding ------------------------------------------------------------------------

    def greedy(self, xs, max_length=50):
        """Greedy decoding of a batch: the arg-max symbol at every step.

        Args:
            xs (list of int arrays): ``B`` non-empty sources.
            max_length (int): at most this many decoding steps (``<eos>`` counts as one).

        Returns:
            list of ``B`` :class:`Hypothesis`.

        Raises:
            ValueError: empty list or source, ``max_length < 1``.
        """
        max_length = _pos_int('max_length', max_length)
        with seqdbr.no_backprop_mode(), seqdbr.using_config('train', False):
            memory, state = self.encode(xs)
            B = len(xs)
            y = numpy.full(B, BOS, dtype=numpy.int32)
            alive = numpy.ones(B, dtype=bool)
            scores = numpy.zeros(B)
            tokens = [[] for _ in range(B)]
            rows = numpy.arange(B)
            for _ in range(max_length):
                state, _ = self.step(state, self.xp.asarray(y), memory)
                logp = _log_softmax_rows(seqdbr.to_cpu(self.out(state[2]).array))
                y = logp.argmax(axis=1).astype(numpy.int32)
                scores[alive] += logp[rows, y][alive]
                for b in numpy.flatnonzero(alive & (y != EOS)).tolist():
                    tokens[b].append(int(y[b]))
                alive &= y != EOS
                if not alive.any():
                    break
        return [Hypothesis(tuple(t), float(s), not a) for t, s, a in zip(tokens, scores, alive)]

    def beam_search(self, x, beam_width=5, max_length=50, length_penalty=0.0,
                    keep_greedy=True):
        """Beam search for one source.

        At each step every live hypothesis is extended by every symbol; the extensions by
        ``<eos>`` that rank among the ``beam_width`` best become finished hypotheses, and the
        ``beam_width`` best other extensions stay live (the beam stays full). The search
        stops when no live hypothesis can beat the best finished one any more (scores only
        decrease: with ``length_penalty`` 0 a live score below the best finished score
        suffices; otherwise the bound is ``live score / max_length ** alpha``), or after
        ``max_length`` steps (live hypotheses then join the candidates as unfinished). The
        result is the candidate with the best :func:`normalized_score`. There is no "stop
        after ``beam_width`` finished" rule: early, unlikely ``<eos>`` extensions would fill
        it and end the search before the likely outputs are complete (measured on 200 dates
        with an untrained model, width 5, ``length_penalty`` 1: plain beam search ended
        below greedy decoding on 11 with that rule, on 1 without it).

        Plain beam search can still prune the greedy path and end below it (same untrained
        model, width 2, no length penalty: 10 of 200; a trained model: 0); with
        ``keep_greedy`` the greedy hypothesis is one of the candidates, so the result never
        scores below greedy decoding (by the same normalised score). Width 1 with
        ``length_penalty`` 0 is greedy decoding (with a length penalty, a finished
        hypothesis may still be overtaken by a longer one, so the search goes on).

        Args:
            x (int array): one non-empty source ``(S,)``.
            beam_width (int): >= 1.
            max_length (int): >= 1 decoding steps (``<eos>`` counts as one).
            length_penalty (float): ``alpha`` of :func:`normalized_score` (>= 0).
            keep_greedy (bool): see above.

        Returns:
            :class:`Hypothesis`.

        Raises:
            ValueError: ``beam_width < 1`` (e.g. 0), ``max_length < 1``, a negative
                ``length_penalty``, an empty or non-integer source.
        """
        if isinstance(beam_width, bool) or not isinstance(beam_width, (int, numpy.integer)) \
                or beam_width < 1:
            raise ValueError('beam_width must be an int >= 1 (1 is greedy decoding), got %r'
                             % (beam_width,))
        max_length = _pos_int('max_length', max_length)
        if not length_penalty >= 0:
            raise ValueError('length_penalty must be >= 0, got %r' % (length_penalty,))
        x = numpy.asarray(x)
        _check_sources([x])
        cands = self._beam(x, int(beam_width), max_length, float(length_penalty))
        if keep_greedy and beam_width > 1:
            cands.append(self.greedy([x], max_length)[0])
        return max(cands, key=lambda h: normalized_score(h, length_penalty))

    def _beam(self, x, K, max_length, alpha):
        xp = self.xp
        with seqdbr.no_backprop_mode(), seqdbr.using_config('train', False):
            memory1, state = self.encode([x])
            state = tuple(s.array if isinstance(s, Variable) else s for s in state)
            mems = {1: memory1}
            tokens, scores = [()], numpy.zeros(1)
            last = numpy.array([BOS], dtype=numpy.int32)
            finished = []
            for _ in range(max_length):
                R = len(tokens)
                if R not in mems:
                    mems[R] = memory1.select([0] * R)
                new_state, _ = self.step(state, xp.asarray(last), mems[R])
                logp = _log_softmax_rows(seqdbr.to_cpu(self.out(new_state[2]).array))
                cand = (scores[:, None] + logp).ravel()
                finished, keep = self._beam_select(cand, logp.shape[1], K, tokens, finished)
                if not keep or _beam_done(finished, keep[0][2], alpha, max_length):
                    return finished
                idx = numpy.array([p for p, _, _ in keep])
                ix = xp.asarray(idx)
                state = tuple(s.array[ix] for s in new_state)
                tokens = [tokens[p] + (tok,) for p, tok, _ in keep]
                scores = numpy.array([s for _, _, s in keep])
                last = numpy.array([tok for _, tok, _ in keep], dtype=numpy.int32)
            return finished + [Hypothesis(t, float(s), False) for t, s in zip(tokens, scores)]

    @staticmethod
    def _beam_select(cand, V, K, tokens, finished):
        """Among the flattened candidate scores ``cand`` (rows x V), the ``<eos>``
        extensions ranked in the top ``K`` join ``finished``; the ``K`` best other
        extensions are kept as ``(row, token, score)``, best first (ties: lower index)."""
        n = min(2 * K, cand.size)        # rows <= K, so at most K of them are <eos>
        top = numpy.argpartition(-cand, n - 1)[:n] if n < cand.size else \
            numpy.arange(cand.size)
        top = top[numpy.lexsort((top, -cand[top]))]
        keep = []
        for rank, j in enumerate(top.tolist()):
            p, tok = divmod(j, V)
            if tok == BOS:                   # -inf: never an output
                continue
            if tok == EOS:
                if rank < K:
                    finished.append(Hypothesis(tokens[p], float(cand[j]), True))
            elif len(keep) < K:
                keep.append((p, tok, float(cand[j])))
        return finished, keep

    def translate(self, xs, beam_width=None, max_length=50, length_penalty=0.0):
        """Decode a batch of sources: greedy (``beam_width`` None) or beam search per source.
        Returns a list of :class:`Hypothesis`."""
        if beam_width is None:
            return self.greedy(xs, max_length)
        _check_sources(xs)
        return [self.beam_search(x, beam_width, max_length, length_penalty) for x in xs]


# -- data plumbing ------------------------------------------------------------------------

def encode_pairs(pairs, src_vocab, tgt_vocab):
    """String pairs -> list of ``(source_ids, target_ids)`` int32 array pairs."""
    return [(src_vocab.encode(s), tgt_vocab.encode(t)) for s, t in pairs]


def convert_batch(batch, device=None):
    """Converter for a batch of ``(source_ids, target_ids)`` examples: ``(xs, ys)``, two
    lists of 1-d arrays (variable lengths), ready for ``Seq2seq.loss(xs, ys)``."""
    if not batch:
        raise ValueError('convert_batch: the batch is empty')
    xs = [numpy.asarray(b[0]) for b in batch]
    ys = [numpy.asarray(b[1]) for b in batch]
    if device is not None:
        xs = [seqdbr.to_device(device, x) for x in xs]
        ys = [seqdbr.to_device(device, y) for y in ys]
    return xs, ys


def exact_match(model, examples, beam_width=None, batch_size=256, max_length=50):
    """Fraction of ``(source_ids, target_ids)`` examples decoded exactly (and finished)."""
    if not examples:
        return 0.0
    hits = 0
    for i in range(0, len(examples), batch_size):
        chunk = examples[i:i + batch_size]
        hyps = model.translate([x for x, _ in chunk], beam_width, max_length)
        hits += sum(h.finished and list(h.tokens) == y.tolist()
                    for h, (_, y) in zip(hyps, chunk))
    return hits / len(examples)


class ExactMatch(Extension):
    """Reports ``val/exact``: the greedy exact-match accuracy on ``examples``; stops the run
    once it reaches ``target`` (early stopping)."""
    priority = PRIORITY_WRITER

    def __init__(self, model, examples, target=None):
        self.model, self.examples, self.target = model, list(examples), target

    def __call__(self, trainer):
        if trainer.stop_reason == 'interrupted' and trainer.in_extra_firing:
            return
        acc = exact_match(self.model, self.examples)
        report({'val/exact': acc})
        if self.target is not None and acc >= self.target:
            trainer.stop('target accuracy %.4f reached' % acc)


#: Observation -> history field.
HISTORY_FIELDS = {'loss': 'loss', 'accuracy': 'accuracy', 'val/exact': 'val_exact'}


class _Callback(Extension):
    """Calls ``log(record)`` with each record the LogReport wrote this iteration."""
    priority = PRIORITY_READER - 1
    trigger = None

    def __init__(self, log_report, log):
        self.log_report, self.log, self._seen = log_report, log, 0

    def __call__(self, trainer):
        for rec in self.log_report.log[self._seen:]:
            self.log(rec)
        self._seen = len(self.log_report.log)


def build_trainer(model, train_examples, val_examples=(), batch_size=64, lr=3e-3,
                  grad_clip=5.0, max_epochs=10, max_seconds=None, target_accuracy=None,
                  eval_size=500, seed=0, log=None, out=None):
    """The seq2seq Trainer: Adam (+ gradient clipping) on shuffled minibatches with teacher
    forcing, greedy exact match on the first ``eval_size`` validation examples after every
    epoch (and at the end), a per-epoch log, and a snapshot per epoch when ``out`` is given.
    Returns ``(trainer, log_report)``."""
    if not train_examples:
        raise ValueError('train: no training examples')
    opt = seqdbr.optimizers.Adam(alpha=lr).setup(model)
    if grad_clip:
        opt.add_hook(GradientClipping(grad_clip))
    it = SerialIterator(list(train_examples), batch_size, shuffle=True, seed=seed)
    updater = StandardUpdater(it, opt, model.loss, converter=convert_batch)
    stop = StopTrigger(max_epochs=max_epochs,
                       max_minutes=None if max_seconds is None else max_seconds / 60.0)
    trainer = Trainer(updater, stop_trigger=stop, out=out, program='seq2seq')
    val = list(val_examples)[:eval_size]
    if val:
        trainer.extend(ExactMatch(model, val, target_accuracy),
                       trigger=IntervalTrigger(1, 'epoch', at_end=True))
    log_report = E.LogReport(HISTORY_FIELDS, trigger=IntervalTrigger(1, 'epoch', at_end=True),
                             filename=None if out is None else 'log.jsonl')
    trainer.extend(log_report)
    if log is not None:
        trainer.extend(_Callback(log_report, log))
    if out is not None:
        trainer.extend(E.snapshot('latest.npz'))
    return trainer, log_report


def train(model, train_examples, val_examples=(), batch_size=64, lr=3e-3, grad_clip=5.0,
          max_epochs=10, max_seconds=None, target_accuracy=None, eval_size=500, seed=0,
          log=None, out=None):
    """Train ``model`` with the :class:`~seqdbr.training.Trainer` (see :func:`build_trainer`).

    Training stops after ``max_epochs``, when ``max_seconds`` of wall-clock time have passed
    (checked after each minibatch), or when the validation exact match reaches
    ``target_accuracy``.

    Args:
        model (Seq2seq): the model (trained in place).
        train_examples, val_examples: lists of ``(source_ids, target_ids)``.
        log (callable or None): called with each epoch's record (a dict).
        out (str or None): a folder for ``log.jsonl`` and ``latest.npz`` (None: no files).

    Returns:
        ``(optimizer, history)``: the Adam optimizer and a list of per-epoch dicts
        ``{'iteration', 'epoch', 'loss', 'accuracy', 'val_exact', 'time'}`` (means over the
        epoch's minibatches; ``time``: seconds since the start, evaluation included; a run
        stopped mid-epoch adds a record for the partial epoch).
    """
    trainer, log_report = build_trainer(model, train_examples, val_examples, batch_size, lr,
                                        grad_clip, max_epochs, max_seconds, target_accuracy,
                                        eval_size, seed, log, out)
    trainer.run()
    return trainer.updater.optimizer, log_report.log


# -- checkpoints --------------------------------------------------------------------------

def save_checkpoint(path, model, src_vocab, tgt_vocab, optimizer=None, extra=None):
    """Write model weights, both vocabularies and the model config (and optionally the
    optimizer state and an ``extra`` JSON-able dict) to one ``.npz`` file, atomically."""
    meta = {'format': FORMAT, 'format_version': 1, 'seqdbr_version': seqdbr.__version__,
            'model': model.cfg, 'source_vocab': src_vocab.to_json(),
            'target_vocab': tgt_vocab.to_json(), 'extra': extra or {}}
    arrays = serializers.serialize_to_dict(model, prefix='model')
    if optimizer is not None:
        arrays.update(serializers.serialize_to_dict(optimizer, prefix='optimizer'))
    arrays['meta'] = numpy.asarray(json.dumps(meta, allow_nan=False))
    serializers.save_npz_dict(path, arrays)


def load_checkpoint(path):
    """Read a checkpoint written by :func:`save_checkpoint`.

    Returns:
        ``(model, src_vocab, tgt_vocab, meta)``; ``meta`` is the JSON metadata dict.

    Raises:
        FileNotFoundError; serializers.SerializationError for a corrupt file or one that
        is not a seq2seq checkpoint (the message says which).
    """
    arrays = serializers.load_npz_dict(path)
    if 'meta' not in arrays:
        raise serializers.SerializationError('%s is not a seq2seq checkpoint (no meta entry)'
                                             % path)
    meta = json.loads(str(arrays['meta']))
    if meta.get('format') != FORMAT:
        raise serializers.SerializationError('%s holds format %r, not %r'
                                             % (path, meta.get('format'), FORMAT))
    model = Seq2seq(**meta['model'])
    serializers.deserialize_from_dict({k: v for k, v in arrays.items() if k.startswith('model/')},
                                      model, path_prefix='model', name=str(path))
    return (model, CharVocab.from_json(meta['source_vocab']),
            CharVocab.from_json(meta['target_vocab']), meta)


def date_vocabs():
    """The vocabularies of the date task (:mod:`seqdbr.datasets.dates`)."""
    from seqdbr.datasets import dates
    return (CharVocab(dates.SOURCE_ALPHABET, ('<unk>',), unk=UNK),
            CharVocab(dates.TARGET_ALPHABET, ('<eos>', '<bos>')))
