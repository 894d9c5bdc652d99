"""Scoring a language model on one long token stream: loss, bits per token, perplexity.

The whole array is scored, every next-token target exactly once, from a fresh (zero) state,
with dropout off and no graph recorded. The layout mirrors truncated-BPTT training
(:mod:`seqdbr.rnn.bptt`) so that the numbers are comparable: ``B`` parallel streams of
``L = (N - 1) // B`` positions walked in windows of ``T`` steps (the last window of each
stream may be shorter), with the state carried from one window to the next; the
``(N - 1) mod B`` targets after the last stream are then scored by continuing the last
stream's state, so nothing is left out. The model's own carried (training) state is saved
before and restored after, so evaluating in the middle of training does not disturb it.

The model protocol: ``model(x)`` maps a ``(B, T)`` int32 window to ``(B, T, V)`` logits
and carries its state; ``model.get_state()`` returns a dict of arrays shaped
``(layers, B, H)`` (or None), ``model.set_state(d)`` takes such a dict and
``model.reset_state()`` zeroes it (``seqdbr.charlm.CharRNN`` is one such model).
"""
import dataclasses
import math

import numpy

from seqdbr.core import backend
from seqdbr.core.config import no_backprop_mode, using_config
from seqdbr.core.functions import loss as _loss

__all__ = ['EvalResult', 'evaluate_tokens', 'LN2']

LN2 = math.log(2.0)


@dataclasses.dataclass(frozen=True)
class EvalResult:
    """Result of :func:`evaluate_tokens`.

    Attributes:
        loss (float): mean cross-entropy per character, in nats.
        bits_per_char (float): ``loss / ln 2``.
        perplexity (float): ``exp(loss)`` (``inf`` if it overflows).
        num_tokens (int): number of targets scored (``len(tokens) - 1``).
    """
    loss: float
    bits_per_char: float
    perplexity: float
    num_tokens: int

    def to_json(self):
        return dataclasses.asdict(self)


def _score(model, x_host, t_host, xp):
    """Summed cross-entropy (float, nats) of one window (the model's state is carried)."""
    x = xp.asarray(x_host)
    t = xp.asarray(t_host)
    y = model(x)                                  # (B, T, V)
    B, T, V = y.shape
    per_token = _loss.softmax_cross_entropy(y.reshape(B * T, V), t.reshape(B * T),
                                            ignore_label=None, reduce='no')
    # one scalar transfer per window (it also reads the deferred label checks)
    return backend.fetch_scalars(per_token.array.sum(dtype=numpy.float64))[0]


def evaluate_tokens(model, tokens, batch_size, bptt_len, streams=None):
    """Score every next-character prediction over ``tokens``.

    Args:
        model (seqdbr.charlm.model.CharRNN): evaluated on its current device.
        tokens (numpy.ndarray): 1-D int ids, at least 2 of them.
        batch_size (int): parallel streams (reduced to ``len(tokens) - 1`` for tiny arrays).
        bptt_len (int): window length in steps (only memory and speed depend on it; the
            result does not, up to float rounding).
        streams (tuple or None): ``(lo, hi)``: score only streams ``lo..hi-1`` of the
            ``batch_size`` streams (and the tail that continues the last stream when
            ``hi`` includes it); the result then covers those targets only
            (``num_tokens`` of them, possibly 0 with a NaN loss). Data-parallel evaluation
            gives each process a share and combines ``loss * num_tokens`` sums.

    Returns:
        EvalResult.

    Raises:
        ValueError: fewer than 2 tokens, or non-positive sizes.
    """
    tokens = numpy.asarray(tokens)
    if tokens.ndim != 1 or tokens.size < 2:
        raise ValueError('evaluation needs a 1-D array of at least 2 token ids (1 input and '
                         '1 target), got shape %s; use a bigger evaluation split'
                         % (tokens.shape,))
    if batch_size < 1 or bptt_len < 1:
        raise ValueError('batch_size and bptt_len must be >= 1, got %r and %r'
                         % (batch_size, bptt_len))
    tokens = tokens.astype(numpy.int32, copy=False)
    n_targets = tokens.size - 1
    B = min(int(batch_size), n_targets)
    L = n_targets // B
    inputs = tokens[:B * L].reshape(B, L)
    targets = tokens[1:B * L + 1].reshape(B, L)
    lo, hi = (0, B) if streams is None else (max(0, min(streams[0], B)),
                                             max(0, min(streams[1], B)))
    inputs, targets = inputs[lo:hi], targets[lo:hi]
    rest = n_targets - B * L if hi == B and hi > lo else 0
    scored = (hi - lo) * L + rest
    xp = model.xp
    saved = model.get_state()
    total = 0.0
    try:
        model.reset_state()
        with no_backprop_mode(), using_config('train', False), \
                backend.using_device(model.device):
            for a in range(0, L if hi > lo else 0, bptt_len):
                b = min(a + bptt_len, L)
                total += _score(model, inputs[:, a:b], targets[:, a:b], xp)
            if rest:
                # Targets B*L+1 .. N-1 continue the last stream: keep only its state row.
                state = model.get_state()
                model.set_state({k: v[:, -1:] for k, v in state.items()})
                tail_x = tokens[B * L:n_targets][None, :]
                tail_t = tokens[B * L + 1:][None, :]
                for a in range(0, rest, bptt_len):
                    b = min(a + bptt_len, rest)
                    total += _score(model, tail_x[:, a:b], tail_t[:, a:b], xp)
    finally:
        if saved is None:
            model.reset_state()
        else:
            model.set_state(saved)
    loss = total / scored if scored else float('nan')
    try:
        ppl = math.exp(loss)
    except OverflowError:
        ppl = math.inf
    return EvalResult(loss=loss, bits_per_char=loss / LN2, perplexity=ppl,
                      num_tokens=int(scored))
