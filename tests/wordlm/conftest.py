"""Tiny word corpora written by the tests."""
import numpy
import pytest

#: Sentences "DET ADJ NOUN VERB PREP DET NOUN" with two or three choices per slot: 17
#: words, so a model that learned the grammar reaches a perplexity near 2.5 (uniform: 19).
SLOTS = (('the', 'a'), ('big', 'small', 'red'), ('cat', 'dog'), ('sat', 'ran', 'slept'),
         ('on', 'under'), ('the', 'a'), ('mat', 'log', 'box'))
WORDS = sorted({w for s in SLOTS for w in s})


def write_corpus(path, n_lines, seed):
    rng = numpy.random.default_rng(seed)
    lines = [' '.join(s[int(rng.integers(len(s)))] for s in SLOTS) for _ in range(n_lines)]
    path.write_text('\n'.join(lines) + '\n', encoding='utf-8')
    return path


@pytest.fixture
def tiny_files(tmp_path):
    d = tmp_path / 'corpus'
    d.mkdir()
    return (str(write_corpus(d / 'train.txt', 120, 0)), str(write_corpus(d / 'valid.txt', 20, 1)),
            str(write_corpus(d / 'test.txt', 20, 2)))
