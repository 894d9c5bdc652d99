"""Scoring a word-LM checkpoint on a corpus split (``seqdbr-eval-wordlm``)."""
from seqdbr.datasets.ptb import load_ptb, load_words
from seqdbr.rnn.lm_eval import evaluate_tokens
from seqdbr.wordlm.errors import ConfigError

__all__ = ['evaluate_checkpoint']


def evaluate_checkpoint(ck, data=None, data_dir=None, files=None, batch_size=1, bptt=100,
                        device='cpu'):
    """Perplexity of a checkpoint's model on PTB's valid and test splits or on text files.

    Args:
        ck (seqdbr.wordlm.checkpoint.Checkpoint): the loaded checkpoint.
        data (str or None): ``'ptb'``; else ``files`` are scored.
        data_dir (str or None): the PTB folder (default: the catalog cache).
        files (list of str or None): tokenized text files, read with the stored vocabulary.
        batch_size (int): parallel streams (1 = every word scored after all before it).
        bptt (int): window length (memory/speed only).
        device (str): where to run.

    Returns:
        dict ``{name: EvalResult}`` (``'valid'``, ``'test'`` for PTB; the file paths else).

    Raises:
        ConfigError: neither or both of ``data`` and ``files``; bad sizes.
        seqdbr.datasets.corpora.CorpusError, ValueError: unreadable files.
    """
    if (data is None) == (not files):
        raise ConfigError('give either --data ptb or one or more text files to score')
    for name, v in (('--batch-size', batch_size), ('--bptt', bptt)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError('%s must be an integer >= 1, got %r' % (name, v))
    model = ck.build_model()
    if device != 'cpu':
        model.to_device(device)
    if data is not None:
        c = load_ptb(data_dir, vocab=ck.vocab, allow_download=data_dir is None)
        splits = {'valid': c.valid, 'test': c.test}
    else:
        splits = {}
        for f in files:
            splits[f] = load_words(f, vocab=ck.vocab).train
    out = {}
    for name, ids in splits.items():
        if ids.size < 2:
            raise ConfigError('%s has fewer than 2 tokens; nothing to score' % name)
        model.reset_state()
        out[name] = evaluate_tokens(model, ids, batch_size, bptt)
    return out
