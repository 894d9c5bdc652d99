"""Regression tests for problems found by using the char-RNN tools as a new user would.

Each test names the symptom it guards against (before the fix: a traceback, a misleading
message, a file overwritten for nothing, or memory growing with the prime).
"""
import io
import json
import os
import subprocess
import sys

import numpy
import pytest

from seqdbr.charlm import checkpoint as ckpt_mod
from seqdbr.charlm import sample as sample_mod
from seqdbr.charlm.checkpoint import load_checkpoint, save_checkpoint
from seqdbr.charlm.checkpoint_meta import array_digest
from seqdbr.charlm.cli import EXIT_BROKEN_PIPE, eval_main, sample_main, train_main
from seqdbr.charlm.errors import CheckpointError
from seqdbr.charlm.model import CharRNN
from seqdbr.charlm.sample import sample
from seqdbr.charlm.vocab import Vocabulary
from seqdbr.core import initializers

TINY = ['--rnn-size', '8', '--num-layers', '1', '--batch-size', '3', '--seq-length', '6',
        '--max-iters', '6', '--eval-every', '3', '--no-progress']


def _rewrite(src, dst, meta_edit=None, array_edit=None):
    """Copy checkpoint ``src`` to ``dst`` with edited metadata and/or arrays."""
    with numpy.load(src) as z:
        d = {k: z[k] for k in z.files}
    meta = json.loads(d['meta'].tobytes().decode('utf-8'))
    if meta_edit:
        meta_edit(meta)
    if array_edit:
        array_edit(d)
    # Re-record the digests, as a deliberate editor would: the checks behind them must still
    # catch the edit (an edit alone is caught by the digests, see test_fuzz_checkpoint.py).
    meta['digests'] = {k: array_digest(v) for k, v in d.items() if k != 'meta'}
    d['meta'] = numpy.frombuffer(json.dumps(meta).encode('utf-8'), dtype=numpy.uint8)
    numpy.savez(dst, **d)
    return str(dst)


@pytest.fixture
def run(tmp_path, charlm):
    """A tiny finished training run: (corpus path, output folder)."""
    corpus = charlm.write_corpus(tmp_path / 'c.txt', 2000)
    out = tmp_path / 'run'
    assert train_main(['--corpus', str(corpus), '--out', str(out)] + TINY) == 0
    return corpus, out


# -- sampling ---------------------------------------------------------------------------------

def test_sample_into_a_closed_pipe_exits_quietly(run, charlm):
    """``seqdbr-sample-charrnn CKPT | head`` printed a BrokenPipeError traceback."""
    _, out = run
    env = dict(os.environ, PYTHONPATH=str(charlm.ROOT))
    proc = subprocess.Popen([sys.executable, str(charlm.SCRIPTS / 'sample_charrnn.py'),
                             str(out / 'latest.npz'), '--length', '200000', '--seed', '1'],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert len(proc.stdout.read(10)) == 10
    proc.stdout.close()                      # the reader goes away, like `| head -c 10`
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=120) == EXIT_BROKEN_PIPE
    assert 'Traceback' not in err and 'BrokenPipe' not in err


def _bytes_ckpt(tmp_path):
    initializers.set_seed(0)
    vocab = Vocabulary.from_text(b'ab \xe9\xff\n')
    model = CharRNN(len(vocab), rnn_size=8, num_layers=1)
    return save_checkpoint(tmp_path / 'bytes.npz', model, vocab)


def _char_ckpt(tmp_path):
    initializers.set_seed(0)
    vocab = Vocabulary.from_text('ab c\n\u00e9')
    model = CharRNN(len(vocab), rnn_size=8, num_layers=1)
    return save_checkpoint(tmp_path / 'char.npz', model, vocab)


def test_non_utf8_command_line_prime(tmp_path, capfdbinary):
    """A --prime whose bytes are not UTF-8 reaches Python as lone surrogates: a bytes model
    crashed with UnicodeEncodeError, a char model listed made-up U+DCxx characters or (with
    --unknown skip) crashed while writing the prime."""
    prime = os.fsdecode(b'a\xe9')            # what sys.argv holds for those bytes
    assert sample_main([_bytes_ckpt(tmp_path), '--prime', prime, '--length', '3',
                        '--seed', '1']) == 0
    assert capfdbinary.readouterr().out.startswith(b'a\xe9')
    char = _char_ckpt(tmp_path)
    for extra in ([], ['--unknown', 'skip']):
        rc = sample_main([char, '--prime', prime, '--length', '3', '--seed', '1'] + extra)
        cap = capfdbinary.readouterr()
        assert rc == 1 and cap.out == b''
        err = cap.err.decode()
        assert '--prime is not valid UTF-8' in err and '--prime-file' in err
        assert 'Traceback' not in err


def test_prime_file_of_a_bytes_model_is_read_raw(tmp_path, capfdbinary):
    """A bytes model (trained with --encoding bytes, e.g. on Latin-1 text) refused a prime
    file that is not UTF-8."""
    f = tmp_path / 'prime.bin'
    f.write_bytes(b'\xe9\xffab')
    assert sample_main([_bytes_ckpt(tmp_path), '--prime-file', str(f), '--length', '2',
                        '--seed', '1']) == 0
    assert capfdbinary.readouterr().out.startswith(b'\xe9\xffab')


def test_invalid_sampling_option_is_status_2_and_no_seed_note_without_sampling(tmp_path,
                                                                              capfdbinary):
    """Invalid options exit with status 2 like every other invalid option (was 1); --length 0
    printed a 'sampling seed' note although nothing is sampled."""
    path = _char_ckpt(tmp_path)
    assert sample_main([path, '--temperature', '-1']) == 2
    assert 'temperature must be >= 0' in capfdbinary.readouterr().err.decode()
    assert sample_main([path, '--prime', 'ab', '--length', '0']) == 0
    cap = capfdbinary.readouterr()
    assert cap.out == b'ab\n' and b'sampling seed' not in cap.err


def test_long_prime_is_fed_in_bounded_windows(monkeypatch):
    """The whole prime went through the model as one window, so memory grew with its length
    (about 1.4 GB for a 300,000-character prime with the default model). Feeding it window by
    window with the state carried gives the same continuation."""
    initializers.set_seed(3)
    text = 'the cat sat on the mat. ' * 40
    vocab = Vocabulary.from_text(text)
    model = CharRNN(len(vocab), rnn_size=16, num_layers=2)
    whole = sample(model, vocab, 40, prime=text, argmax=True)
    seen = []
    real_forward = model.forward

    def spy(x):
        seen.append(x.shape[1])
        return real_forward(x)

    monkeypatch.setattr(model, 'forward', spy)
    monkeypatch.setattr(sample_mod, 'PRIME_WINDOW', 100)
    windows = sample(model, vocab, 40, prime=text, argmax=True)
    assert windows == whole
    assert seen[:10] == [100] * 9 + [60] and max(seen) <= 100    # 960 prime characters
    # The state after the prime is the same up to float rounding.
    model.reset_state()
    ids = vocab.encode(text)[None, :]
    model(ids)
    h_whole = model.get_state()['h'].copy()
    model.reset_state()
    for lo in range(0, ids.shape[1], 100):
        model(ids[:, lo:lo + 100])
    numpy.testing.assert_allclose(model.get_state()['h'], h_whole, rtol=1e-5, atol=1e-6)


# -- checkpoints --------------------------------------------------------------------------------

def test_checkpoint_whose_vocab_or_config_disagrees_with_its_weights(run, tmp_path, capsys):
    """A vocabulary shorter than the model let the sampler produce ids it cannot decode; a
    configuration that disagrees with the stored shapes built a model of that size first
    (MemoryError traceback for a huge rnn_size). Both are now refused at load time."""
    _, out = run
    src = out / 'latest.npz'
    short = _rewrite(src, tmp_path / 'short.npz', meta_edit=lambda m: m['vocab'].update(
        symbols=m['vocab']['symbols'][:-2]))
    with pytest.raises(CheckpointError, match='vocab_size .* but the stored vocabulary'):
        load_checkpoint(short)
    huge = _rewrite(src, tmp_path / 'huge.npz',
                    meta_edit=lambda m: m['model'].update(rnn_size=10 ** 7))
    with pytest.raises(CheckpointError, match=r'rnn_size = 10000000 \(must be an integer in '):
        load_checkpoint(huge)
    wrong = _rewrite(src, tmp_path / 'wrong.npz',
                     meta_edit=lambda m: (m['model'].update(rnn_size=16),
                                          m['train'].update(rnn_size=16)))
    with pytest.raises(CheckpointError, match=r'embed/W has shape \(\d+, 8\), expected'):
        load_checkpoint(wrong)
    assert sample_main([huge, '--length', '3']) == 1
    err = capsys.readouterr().err
    assert 'huge.npz' in err and 'Traceback' not in err


def test_resume_refuses_a_damaged_training_state(run, tmp_path, capsys):
    """NaN in the optimizer state was only noticed as a 'diverged' run a few steps later
    (with advice to lower the learning rate); a carried state of the wrong shape raised a
    ValueError traceback."""
    _, out = run
    src = out / 'latest.npz'

    def nan_opt(d):
        k = next(k for k in d if k.startswith('optimizer/') and k.endswith('/v'))
        d[k] = numpy.full_like(d[k], numpy.nan)

    def bad_state(d):
        d['state/h'] = d['state/h'][:, :, :3]

    for edit, needle in ((nan_opt, 'non-finite (NaN or inf) training state'),
                         (bad_state, 'the carried state h is float32 (1, ')):
        d = tmp_path / edit.__name__
        d.mkdir()
        path = _rewrite(src, d / 'latest.npz', array_edit=edit)
        rc = train_main(['--resume', path, '--max-iters', '9', '--no-progress'])
        err = capsys.readouterr().err
        assert rc == 1 and needle in err and 'Traceback' not in err
        assert sorted(os.listdir(d)) == ['latest.npz']          # nothing written


# -- training -------------------------------------------------------------------------------------

class _ClosedPipe(io.StringIO):
    def write(self, text):
        raise BrokenPipeError(32, 'Broken pipe')

    def flush(self):
        raise BrokenPipeError(32, 'Broken pipe')


def test_training_survives_its_summary_reader_going_away(tmp_path, charlm):
    """``seqdbr-train-charrnn ... | head`` killed the run with a BrokenPipeError traceback
    at the next summary line, before any checkpoint was written."""
    corpus = charlm.write_corpus(tmp_path / 'c.txt', 2000)
    from seqdbr.charlm.train import train
    res = train(charlm.tiny_config(corpus, tmp_path / 'o', max_iters=8, eval_every=2),
                out_stream=_ClosedPipe())
    assert res.iteration == 8 and os.path.exists(res.latest) and os.path.exists(res.best)


def test_unwritable_output_is_reported_before_training(tmp_path, capsys, charlm):
    """A file of the run that cannot be written (here: a folder named latest.npz; a
    read-only --out fails the same check) raised IsADirectoryError/PermissionError
    tracebacks, after training, from the first checkpoint or log write."""
    corpus = charlm.write_corpus(tmp_path / 'c.txt', 2000)
    out = tmp_path / 'o'
    (out / 'latest.npz').mkdir(parents=True)
    rc = train_main(['--corpus', str(corpus), '--out', str(out)] + TINY)
    err = capsys.readouterr().err
    assert rc == 2 and 'latest.npz is a folder' in err and 'Traceback' not in err
    assert sorted(os.listdir(out)) == ['latest.npz']


def test_a_failed_checkpoint_write_is_a_clear_error(tmp_path, capsys, charlm, monkeypatch):
    """A full disk while saving raised an OSError traceback."""
    corpus = charlm.write_corpus(tmp_path / 'c.txt', 2000)

    def full(*a, **k):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(ckpt_mod, 'save_checkpoint', full)
    rc = train_main(['--corpus', str(corpus), '--out', str(tmp_path / 'o')] + TINY)
    err = capsys.readouterr().err
    assert rc == 1 and 'could not write checkpoint' in err and 'No space left' in err
    assert 'Traceback' not in err


def test_resume_with_nothing_to_do_writes_nothing(run, capsys):
    """Resuming a finished run (or from best.npz with an old stopping rule) silently
    re-saved latest.npz with the resumed state and cut the log back to it."""
    _, out = run
    before = {n: (out / n).read_bytes() for n in os.listdir(out)}
    capsys.readouterr()
    assert train_main(['--resume', str(out / 'best.npz'), '--max-iters', '3']) == 0
    assert 'nothing to do' in capsys.readouterr().out
    assert {n: (out / n).read_bytes() for n in os.listdir(out)} == before


def test_resume_with_a_damaged_log_is_a_clear_error(run, capsys):
    """A damaged line in log.jsonl made --resume fail with a ValueError traceback."""
    _, out = run
    lines = (out / 'log.jsonl').read_text().splitlines(True)
    lines[1] = 'garbage\n'
    (out / 'log.jsonl').write_text(''.join(lines))
    capsys.readouterr()
    rc = train_main(['--resume', str(out / 'latest.npz'), '--max-iters', '9'])
    err = capsys.readouterr().err
    assert rc == 2 and 'log.jsonl line 2' in err and 'Traceback' not in err


# -- evaluation ------------------------------------------------------------------------------------

def test_eval_on_another_text_scores_all_of_it(run, tmp_path, capsys, charlm):
    """``seqdbr-eval-charrnn CKPT --corpus OTHER`` cut OTHER with the training fractions, so
    with the default 0.95/0.05 there was no test part and it always failed."""
    corpus, out = run
    other = charlm.write_corpus(tmp_path / 'other.txt', 1000, seed=7)
    capsys.readouterr()
    assert eval_main([str(out / 'latest.npz'), '--corpus', str(other)]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep['split'] == 'all' and rep['chars'] == 999
    # The training text's test split is empty with the default fractions: eval without
    # --split used to fail on every such run. It now scores the held-out validation split
    # and says so (stderr and the report).
    assert eval_main([str(out / 'latest.npz'), '--corpus', str(corpus)]) == 0
    cap = capsys.readouterr()
    rep = json.loads(cap.out)
    assert rep['split'] == 'val' and 'test split is empty' in rep['split_reason']
    assert 'evaluating the val split' in cap.err
    assert eval_main([str(out / 'latest.npz')]) == 0               # the recorded corpus
    assert json.loads(capsys.readouterr().out)['split'] == 'val'
    # The same numbers as an explicit --split val.
    assert eval_main([str(out / 'latest.npz'), '--split', 'val']) == 0
    cap2 = capsys.readouterr()
    assert json.loads(cap2.out)['loss_nats_per_char'] == rep['loss_nats_per_char']
    assert 'split_reason' not in json.loads(cap2.out) and cap2.err == ''
    # An explicit empty split is still an error naming it.
    assert eval_main([str(out / 'latest.npz'), '--split', 'test']) == 2
    assert 'the test split' in capsys.readouterr().err
