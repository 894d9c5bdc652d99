"""Deterministic evaluation of a char-RNN on a token array: loss, bits/char, perplexity.

The whole array is scored, every next-token target exactly once, from a fresh (zero) state,
with dropout off and no graph recorded. The layout mirrors training so that the numbers are
comparable: ``B`` parallel streams of ``L = (N - 1) // B`` positions walked in windows of
``T`` steps (the last window of each stream may be shorter), with the state carried from one
window to the next; the ``(N - 1) mod B`` targets after the last stream are then scored by
continuing the last stream's state, so nothing is left out. The model's own carried
(training) state is saved before and restored after, so evaluating in the middle of training
does not disturb it.
"""
import dataclasses
import math

import numpy

from seqdbr.charlm.errors import ConfigError
from seqdbr.core import backend
from seqdbr.core.config import no_backprop_mode, using_config
from seqdbr.core.functions import loss as _loss

__all__ = ['EvalResult', 'evaluate_tokens', 'evaluate_split']

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
    return float(backend.to_cpu(per_token.array).sum(dtype=numpy.float64))


def evaluate_tokens(model, tokens, batch_size, bptt_len):
    """Score every next-character prediction over ``tokens``.

    Args:
        model (seqdbr.charlm.model.CharRNN): evaluated on its current device.
        tokens (numpy.ndarray): 1-D int ids, at least 2 of them.
        batch_size (int): parallel streams (reduced to ``len(tokens) - 1`` for tiny arrays).
        bptt_len (int): window length in steps (only memory and speed depend on it; the
            result does not, up to float rounding).

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
    xp = model.xp
    saved = model.get_state()
    total = 0.0
    try:
        model.reset_state()
        with no_backprop_mode(), using_config('train', False):
            for lo in range(0, L, bptt_len):
                hi = min(lo + bptt_len, L)
                total += _score(model, inputs[:, lo:hi], targets[:, lo:hi], xp)
            rest = n_targets - B * L
            if rest:
                # Targets B*L+1 .. N-1 continue the last stream: keep only its state row.
                state = model.get_state()
                model.set_state({k: v[:, B - 1:B] for k, v in state.items()})
                tail_x = tokens[B * L:n_targets][None, :]
                tail_t = tokens[B * L + 1:][None, :]
                for lo in range(0, rest, bptt_len):
                    hi = min(lo + bptt_len, rest)
                    total += _score(model, tail_x[:, lo:hi], tail_t[:, lo:hi], xp)
    finally:
        if saved is None:
            model.reset_state()
        else:
            model.set_state(saved)
    loss = total / n_targets
    try:
        ppl = math.exp(loss)
    except OverflowError:
        ppl = math.inf
    return EvalResult(loss=loss, bits_per_char=loss / LN2, perplexity=ppl,
                      num_tokens=int(n_targets))


def evaluate_split(ck, corpus=None, split=None, encoding=None, batch_size=None,
                   seq_length=None, unknown='error', device='cpu'):
    """Evaluate a checkpoint on a split of a corpus (what ``seqdbr-eval-charrnn`` prints).

    Args:
        ck (seqdbr.charlm.checkpoint.Checkpoint): a loaded checkpoint.
        corpus (str or None): catalog name, file path or ``'pydoc'``; None means the corpus
            the checkpoint was trained on.
        split (str or None): ``'train'``, ``'val'``, ``'test'`` or ``'all'``, cut with the
            checkpoint's training fractions (or the corpus's predefined splits). None (the
            default) picks held-out text: for the corpus the checkpoint was trained on (same
            sha256) its test split, or its validation split when the test split is empty
            (the trainer's default fractions 0.95/0.05 leave no test part); for any other
            text (or when the checkpoint records no training corpus) ``'all'``: a held-out
            file is scored whole rather than cut with fractions meant for the training
            corpus. The report's ``split`` says which split was scored and
            ``split_reason`` why.
        encoding (str or None): ``'utf-8'``/``'bytes'``; None follows the vocabulary.
        batch_size, seq_length (int or None): evaluation layout (default: the checkpoint's
            training values).
        unknown (str): ``'error'`` or ``'skip'`` for characters outside the vocabulary.
        device: where to run.

    Returns:
        dict: ``checkpoint``, ``corpus``, ``source``, ``sha256``, ``split``, ``chars`` (targets
        scored), ``loss_nats_per_char``, ``bits_per_char``, ``perplexity``, and
        ``split_reason`` when the split was chosen by default.

    Raises:
        ConfigError: an empty or too small split (the message suggests another), no corpus
            known for the checkpoint. CorpusError: unreadable corpus.
        UnknownCharacterError: characters outside the vocabulary with ``unknown='error'``.
    """
    from seqdbr.charlm.data import split_corpus
    from seqdbr.datasets.corpora import load_corpus
    meta_corpus = ck.meta.get('corpus') or {}
    train_cfg = ck.meta.get('train') or {}
    if corpus is None:
        corpus = meta_corpus.get('spec')
        if corpus is None:
            raise ConfigError('checkpoint %s does not record its training corpus; pass '
                              '--corpus NAME|PATH' % ck.path)
    wanted = 'bytes' if ck.vocab.mode == 'bytes' else 'utf-8'
    if encoding is None:
        encoding = wanted
    elif encoding != wanted:
        raise ConfigError('--encoding %s does not match checkpoint %s, whose vocabulary holds '
                          '%s; use --encoding %s' % (encoding, ck.path, 'bytes' if wanted ==
                                                     'bytes' else 'characters', wanted))
    c = load_corpus(corpus, encoding=encoding)
    fr = meta_corpus.get('fractions')
    parts = split_corpus(c, *(fr if fr else (None, None)))
    reason = None
    if split is None:
        split, reason = _default_split(parts, c, meta_corpus.get('sha256'))
    text = parts.part(split)
    tokens = ck.vocab.encode(text, unknown=unknown)
    if tokens.size < 2:
        raise ConfigError(
            'the %s split of %s has %d characters (%s split%s); at least 2 are needed. Use '
            "--split val or --split all" % (
                split, c.source, tokens.size, parts.method,
                ' with train/val fractions %g/%g' % tuple(parts.fractions)
                if parts.fractions else ''))
    model = ck.build_model(device=device)
    res = evaluate_tokens(model, tokens,
                          batch_size or int(train_cfg.get('batch_size', 50)),
                          seq_length or int(train_cfg.get('seq_length', 50)))
    report = {'checkpoint': ck.path, 'corpus': c.name, 'source': c.source,
              'sha256': c.sha256, 'split': split, 'chars': res.num_tokens,
              'loss_nats_per_char': res.loss, 'bits_per_char': res.bits_per_char,
              'perplexity': res.perplexity}
    if reason is not None:
        report['split_reason'] = reason
    return report


def _default_split(parts, corpus, trained_sha):
    """``(split, reason)`` when ``--split`` is not given (see :func:`evaluate_split`)."""
    if not (trained_sha and corpus.sha256 == trained_sha):
        return 'all', ('default for a text other than the training corpus: all of it is '
                       'held out')
    how = ('train/val fractions %g/%g' % tuple(parts.fractions) if parts.fractions
           else '%s splits' % parts.method)
    if len(parts.test) >= 2:
        return 'test', 'default for the training corpus: its held-out test split'
    if len(parts.val) >= 2:
        return 'val', ('default for the training corpus: its test split is empty (%s), so '
                       'the validation split, also held out from training, is scored' % how)
    raise ConfigError('the checkpoint was trained on %s, whose test and validation splits are '
                      'both empty (%s): nothing held out to evaluate. Pass --split train or '
                      '--split all (text the model was trained on), or another text with '
                      '--corpus' % (corpus.source, how))
