"""Fixtures of the char-RNN application tests.

``charlm`` gives the helpers below as attributes (pytest runs with
``--import-mode=importlib``, so test modules cannot import a helper module directly).
"""
import io
import pathlib
import types

import numpy
import pytest

from seqdbr.charlm.train import TrainConfig, train

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / 'scripts'

_WORDS = ('the cat sat on a mat while dogs ran far away from home and small birds sang '
          'quietly in old green trees near water').split()


def make_text(n_chars, seed=0):
    """Deterministic English-like text of exactly ``n_chars`` characters (sentences, lines)."""
    rng = numpy.random.default_rng(seed)
    parts = []
    total = 0
    while total < n_chars:
        words = rng.choice(_WORDS, size=int(rng.integers(3, 9)))
        s = ' '.join(words).capitalize() + ('.\n' if rng.random() < 0.5 else '. ')
        parts.append(s)
        total += len(s)
    return ''.join(parts)[:n_chars]


def write_corpus(path, n_chars=3000, seed=0):
    path = pathlib.Path(path)
    path.write_text(make_text(n_chars, seed), encoding='utf-8', newline='')
    return path


def tiny_config(corpus, out, **kw):
    """A TrainConfig for a model that trains in well under a second."""
    base = dict(corpus=str(corpus), out=str(out), rnn_size=8, num_layers=2, batch_size=3,
                seq_length=6, max_iters=8, eval_every=4, progress=False, seed=1)
    base.update(kw)
    return TrainConfig(**base)


def run_train(corpus, out, explicit=None, **kw):
    """Train a tiny model; returns (TrainResult, printed summary text)."""
    buf = io.StringIO()
    result = train(tiny_config(corpus, out, **kw), explicit=explicit, out_stream=buf)
    return result, buf.getvalue()


@pytest.fixture
def charlm():
    """Namespace of helpers: make_text, write_corpus, tiny_config, run_train, ROOT, SCRIPTS."""
    return types.SimpleNamespace(make_text=make_text, write_corpus=write_corpus,
                                 tiny_config=tiny_config, run_train=run_train, ROOT=ROOT,
                                 SCRIPTS=SCRIPTS)
