"""Deterministic evaluation of a char-RNN on a token array: loss, bits/char, perplexity.

The whole array is scored, every next-token target exactly once, from a fresh (zero) state,
with dropout off and no graph recorded. The layout mirrors training so that the numbers are
comparable: ``B`` parallel streams of ``L = (N - 1) // B`` positions walked in windows of
``T`` steps (the last window of each stream may be shorter), with the state carried from one
window to the next; the ``(N - 1) mod B`` targets after the last stream are then scored by
continuing the last stream's state, so nothing is left out. The model's own carried
(training) state is saved before and restored after, so evaluating in the middle of training
does not disturb it. The scoring itself is :func:`seqdbr.rnn.lm_eval.evaluate_tokens`
(re-exported here); this module adds the checkpoint-and-corpus front end.
"""
from seqdbr.charlm.errors import ConfigError
from seqdbr.rnn.lm_eval import EvalResult, evaluate_tokens  # noqa: F401  (re-exported)

__all__ = ['EvalResult', 'evaluate_tokens', 'evaluate_split']


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
