"""The word-LM programs' corpus: PTB or any tokenized text, checked against the run's sizes."""
from seqdbr.datasets.corpora import CorpusError
from seqdbr.datasets.ptb import load_ptb, load_words
from seqdbr.wordlm.errors import ConfigError

__all__ = ['load_data']


def load_data(cfg, vocab=None):
    """The corpus named by a resolved, validated config.

    Args:
        cfg: a :class:`seqdbr.wordlm.train.TrainConfig` (``data``/``data_dir`` or
            ``train_file``/``valid_file``/``test_file``, ``vocab_limit``, ``batch_size``,
            ``bptt``).
        vocab (WordVocabulary or None): a vocabulary to use instead of building one (a
            resumed run's).

    Returns:
        seqdbr.datasets.ptb.WordCorpus.

    Raises:
        seqdbr.datasets.corpora.CorpusError: missing, empty or non-UTF-8 files.
        ValueError: a file with no words, a vocabulary limit under 2.
        ConfigError: a training split shorter than one batch.
    """
    if cfg.data == 'ptb':
        corpus = load_ptb(cfg.data_dir, limit=cfg.vocab_limit, vocab=vocab,
                          allow_download=cfg.data_dir is None)
    else:
        try:
            corpus = load_words(cfg.train_file, cfg.valid_file, cfg.test_file,
                                limit=cfg.vocab_limit, vocab=vocab)
        except CorpusError as e:
            raise _word_level_fix(e) from None
    need = cfg.batch_size * cfg.bptt + 1
    if corpus.train.size < need:
        raise ConfigError(
            'the training split has %d tokens (words and <eos>), but one batch needs '
            '--batch-size %d x --bptt %d + 1 = %d. Use a smaller --batch-size or --bptt, or a '
            'bigger corpus' % (corpus.train.size, cfg.batch_size, cfg.bptt, need))
    return corpus


def _word_level_fix(e):
    """The reader's message suggests ``--encoding bytes``, a char-LM option; a word-level
    corpus must be UTF-8 text, so the fix is re-encoding it."""
    msg = str(e)
    if 'is not valid UTF-8' not in msg or ' Fix:' not in msg:
        return e
    return CorpusError(msg.split(' Fix:')[0] + ' Fix: word-level corpora are read as UTF-8 '
                       'text; re-encode the file (e.g. iconv -f LATIN1 -t UTF-8 in.txt > '
                       'out.txt).')
