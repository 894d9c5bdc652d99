"""seqdbr.datasets.ptb: word tokenization with <eos>, the word vocabulary (limit, <unk>),
text files, and the real PTB files from ../shared/data (skipped when absent)."""
import gzip
import hashlib

import numpy
import pytest

from seqdbr.datasets import corpora
from seqdbr.datasets.corpora import CorpusError
from seqdbr.datasets.ptb import (EOS, UNK, WordVocabulary, load_ptb, load_words, read_words,
                                 tokenize)


# -- tokenize ---------------------------------------------------------------------------------

def test_tokenize_puts_eos_at_every_line_end():
    assert tokenize(' a b \n c\n') == ['a', 'b', EOS, 'c', EOS]
    assert tokenize('a b') == ['a', 'b', EOS]                 # last line without a newline
    assert tokenize('a\n\n b\n') == ['a', EOS, EOS, 'b', EOS]  # an empty line is a line
    assert tokenize('a\r\nb\r\n') == ['a', EOS, 'b', EOS]      # CRLF reads the same


def test_tokenize_errors():
    with pytest.raises(ValueError, match='has no words'):
        tokenize(' \n\n  \n')
    with pytest.raises(TypeError, match='decode bytes first'):
        tokenize(b'a b')


# -- vocabulary ---------------------------------------------------------------------------------

def test_vocabulary_from_words_orders_by_count_then_first_occurrence():
    words = tokenize('b a c a\nd c a\n')                 # a x3, c x2, b x1, d x1
    v = WordVocabulary.from_words(words)
    assert v.words == (UNK, EOS, 'a', 'c', 'b', 'd')
    assert (v.unk_id, v.eos_id) == (0, 1)
    small = WordVocabulary.from_words(words, limit=4)
    assert small.words == (UNK, EOS, 'a', 'c')
    ids = small.encode(words)
    assert ids.dtype == numpy.int32
    assert small.decode(ids) == [UNK, 'a', 'c', 'a', EOS, UNK, 'c', 'a', EOS]
    assert WordVocabulary.from_words(words, limit=2).words == (UNK, EOS)
    # <unk> in the text counts as unknown, not as a word of its own
    assert WordVocabulary.from_words(['x', UNK, UNK, EOS]).words == (UNK, EOS, 'x')


def test_vocabulary_limit_errors():
    for bad in (1, 0, -5):
        with pytest.raises(ValueError, match='limit must be >= 2'):
            WordVocabulary.from_words(['a', EOS], limit=bad)
    with pytest.raises(TypeError, match='limit must be an int'):
        WordVocabulary.from_words(['a', EOS], limit=2.5)
    with pytest.raises(ValueError, match='no words'):
        WordVocabulary.from_words([EOS, EOS])


def test_given_vocabulary_needs_unk_and_eos():
    with pytest.raises(ValueError, match=r"lacks <unk>; .*'<unk>' for out-of-vocabulary"):
        WordVocabulary([EOS, 'a'])
    with pytest.raises(ValueError, match='lacks <unk> and <eos>'):
        WordVocabulary(['a', 'b'])
    with pytest.raises(ValueError, match='lacks <eos>'):
        WordVocabulary.from_json({'format': 'seqdbr.word_vocabulary', 'version': 1,
                                  'words': [UNK, 'a']})
    with pytest.raises(ValueError, match='duplicate'):
        WordVocabulary([UNK, EOS, 'a', 'a'])
    with pytest.raises(ValueError, match='not a word'):
        WordVocabulary([UNK, EOS, 'a b'])


def test_vocabulary_json_round_trip_and_decode_range():
    v = WordVocabulary([UNK, EOS, 'x', 'y'])
    assert WordVocabulary.from_json(v.to_json()) == v
    with pytest.raises(ValueError, match='not a seqdbr word vocabulary'):
        WordVocabulary.from_json({'format': 'seqdbr.vocabulary'})
    with pytest.raises(IndexError, match=r'\[0, 4\)'):
        v.decode([0, 4])
    assert v.encode(['y', 'zzz', EOS]).tolist() == [3, 0, 1]


# -- files ---------------------------------------------------------------------------------

def test_load_words_from_files(tmp_path):
    (tmp_path / 'tr.txt').write_text(' the cat sat \n the dog sat \n', encoding='utf-8')
    (tmp_path / 'va.txt.gz').write_bytes(gzip.compress(' the bird sat \n'.encode('utf-8')))
    c = load_words(tmp_path / 'tr.txt', tmp_path / 'va.txt.gz', limit=4)
    assert c.vocab.words == (UNK, EOS, 'the', 'sat')
    assert c.vocab.decode(c.train) == ['the', UNK, 'sat', EOS, 'the', UNK, 'sat', EOS]
    assert c.vocab.decode(c.valid) == ['the', UNK, 'sat', EOS]
    assert c.test is None
    again = load_words(tmp_path / 'va.txt.gz', vocab=c.vocab)        # a given vocabulary
    assert again.vocab is c.vocab and again.train.tolist() == c.valid.tolist()


def test_file_errors(tmp_path):
    (tmp_path / 'latin1.txt').write_bytes('caf\xe9 au lait\n'.encode('latin-1'))
    with pytest.raises(CorpusError, match=r'not valid UTF-8.*byte offset 3.*iconv'):
        read_words(tmp_path / 'latin1.txt')
    (tmp_path / 'blank.txt').write_text('  \n \n', encoding='utf-8')
    with pytest.raises(ValueError, match='blank.txt has no words'):
        load_words(tmp_path / 'blank.txt')
    (tmp_path / 'empty.txt').write_bytes(b'')
    with pytest.raises(CorpusError, match='empty'):
        load_words(tmp_path / 'empty.txt')
    with pytest.raises(CorpusError, match='does not exist'):
        load_words(tmp_path / 'missing.txt')


def test_load_ptb_checks_the_catalog(tmp_path):
    with pytest.raises(CorpusError, match='ptb.train.txt'):
        load_ptb(tmp_path, allow_download=False)                  # says where to put them
    for name in ('ptb.train.txt', 'ptb.valid.txt', 'ptb.test.txt'):
        (tmp_path / name).write_text(' a b \n', encoding='utf-8')
    with pytest.raises(CorpusError, match='does not match the catalog'):
        load_ptb(tmp_path, allow_download=False)


# -- the real PTB files ----------------------------------------------------------------------

def test_real_ptb_counts_and_vocabulary(shared_data):
    c = load_ptb(shared_data / 'ptb', allow_download=False)
    # MANIFEST: 887,521 + 42,068 lines; 70,390 + 3,370; 78,669 + 3,761 (words + <eos>)
    assert (len(c.train), len(c.valid), len(c.test)) == (929589, 73760, 82430)
    assert len(c.vocab) == 10000
    assert int((c.train == c.vocab.eos_id).sum()) == 42068
    assert c.vocab.decode(c.valid[:15]) == ['consumers', 'may', 'want', 'to', 'move', 'their',
                                           'telephones', 'a', 'little', 'closer', 'to', 'the',
                                           'tv', 'set', EOS]
    # valid and test words all belong to the training vocabulary: <unk> only where written
    valid_text = (shared_data / 'ptb' / 'ptb.valid.txt').read_text(encoding='utf-8')
    assert int((c.valid == c.vocab.unk_id).sum()) == valid_text.split().count(UNK)
    small = load_ptb(shared_data / 'ptb', limit=100, allow_download=False)
    assert len(small.vocab) == 100 and small.vocab.words[2:5] == ('the', 'N', 'of')


def test_catalog_ptb_checksums_agree_with_shared_data(shared_data):
    files = {f.split: f for f in corpora.get_spec('ptb').files}
    train = gzip.decompress((shared_data / 'ptb' / 'ptb.train.txt.gz').read_bytes())
    assert files['train'].sha256 == hashlib.sha256(train).hexdigest()
    assert files['train'].size == len(train)
    for split in ('valid', 'test'):
        raw = (shared_data / 'ptb' / ('ptb.%s.txt' % split)).read_bytes()
        assert files[split].sha256 == hashlib.sha256(raw).hexdigest()
        assert files[split].size == len(raw)
