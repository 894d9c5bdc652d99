"""Bad input to the command-line tools: one clear error message, a non-zero status, no
traceback and no file left behind."""
import json
import os

import numpy
import pytest

from seqdbr.charlm.checkpoint import save_checkpoint
from seqdbr.charlm.cli import eval_main, sample_main, train_main
from seqdbr.charlm.model import CharRNN
from seqdbr.charlm.vocab import Vocabulary

TINY = ['--rnn-size', '8', '--num-layers', '1', '--batch-size', '3', '--seq-length', '5',
        '--max-iters', '4', '--no-progress']


def _train_err(capsys, args, code=None):
    rc = train_main(args)
    err = capsys.readouterr().err
    assert rc != 0, err
    if code is not None:
        assert rc == code
    assert 'Traceback' not in err
    assert err.startswith('seqdbr-train-charrnn: error: ')
    return err


def _nothing_written(out):
    assert not out.exists() or not any(out.iterdir()), list(out.iterdir())


def test_empty_file(tmp_path, capsys):
    f = tmp_path / 'empty.txt'
    f.write_bytes(b'')
    out = tmp_path / 'out'
    err = _train_err(capsys, ['--corpus', str(f), '--out', str(out)] + TINY)
    assert 'empty.txt is empty' in err
    _nothing_written(out)
    f.write_bytes(b'\xef\xbb\xbf')                      # only a byte-order mark
    err = _train_err(capsys, ['--corpus', str(f), '--out', str(out)] + TINY)
    assert 'empty' in err
    _nothing_written(out)


def test_file_shorter_than_one_batch_names_both_sizes_and_the_fix(tmp_path, capsys):
    f = tmp_path / 'short.txt'
    f.write_text('hello world, this is short', encoding='utf-8')     # 26 chars
    out = tmp_path / 'out'
    err = _train_err(capsys, ['--corpus', str(f), '--out', str(out), '--batch-size', '50',
                              '--seq-length', '50', '--max-iters', '2', '--no-progress'])
    assert 'the training split has 24 characters' in err
    assert '--batch-size 50 x --seq-length 50 + 1 = 2501' in err
    assert 'smaller --batch-size or --seq-length' in err and 'bigger corpus' in err
    _nothing_written(out)


def test_invalid_utf8(tmp_path, capsys):
    f = tmp_path / 'latin1.txt'
    f.write_bytes('caf\u00e9 au lait, '.encode('latin-1') * 50)
    out = tmp_path / 'out'
    err = _train_err(capsys, ['--corpus', str(f), '--out', str(out)] + TINY)
    assert 'latin1.txt is not valid UTF-8' in err and 'byte offset 3' in err
    assert '--encoding bytes' in err
    _nothing_written(out)
    # The suggested fix works: model the raw bytes.
    assert train_main(['--corpus', str(f), '--out', str(out), '--encoding', 'bytes'] + TINY) == 0


def test_fractions_that_sum_above_one(tmp_path, capsys, charlm):
    f = charlm.write_corpus(tmp_path / 'c.txt', 2000)
    out = tmp_path / 'out'
    err = _train_err(capsys, ['--corpus', str(f), '--out', str(out), '--train-frac', '0.95',
                              '--val-frac', '0.1'] + TINY, code=2)
    assert '--train-frac 0.95 + --val-frac 0.1 = 1.05 exceeds 1' in err
    assert 'e.g. --train-frac 0.9 --val-frac 0.1' in err
    _nothing_written(out)


@pytest.mark.parametrize('args,needle', [
    (['--dropout', '1.0'], '--dropout must be in [0, 1)'),
    (['--learning-rate', '-1'], '--learning-rate must be a positive number'),
    (['--lr-decay', '1.5'], '--lr-decay must be in (0, 1]'),
    (['--device', 'tpu'], "--device must be 'cpu', 'gpu' or 'gpu:N'"),
    (['--train-frac', '0'], '--train-frac must be > 0'),
    (['--forget-bias', 'nan'], '--forget-bias must be a finite number'),
    (['--forget-bias', '1e39'], 'within the float32 range'),
])
def test_bad_option_values(tmp_path, capsys, charlm, args, needle):
    f = charlm.write_corpus(tmp_path / 'c.txt', 2000)
    out = tmp_path / 'out'
    err = _train_err(capsys, ['--corpus', str(f), '--out', str(out)] + TINY + args, code=2)
    assert needle in err
    _nothing_written(out)


def test_argparse_rejects_malformed_numbers(capsys):
    with pytest.raises(SystemExit) as e:
        train_main(['--batch-size', '0'])
    assert e.value.code == 2
    assert '--batch-size' in capsys.readouterr().err


def test_unknown_corpus_name(tmp_path, capsys):
    err = _train_err(capsys, ['--corpus', 'no-such-corpus', '--out', str(tmp_path / 'o')] + TINY)
    assert 'neither a known corpus' in err and 'tinyshakespeare' in err


@pytest.fixture
def ckpt(tmp_path):
    vocab = Vocabulary.from_text('abc def\n')
    model = CharRNN(len(vocab), rnn_size=8, num_layers=1)
    return save_checkpoint(tmp_path / 'model.npz', model, vocab), model, vocab


def _sample_err(capsys, args):
    rc = sample_main(args)
    cap = capsys.readouterr()
    assert rc != 0 and 'Traceback' not in cap.err
    assert cap.out == ''                                    # nothing half-printed
    return cap.err


def test_prime_with_unknown_characters(ckpt, capsys):
    path, _, _ = ckpt
    err = _sample_err(capsys, [path, '--prime', 'abc XYZ \u732b', '--length', '5'])
    for c in 'XYZ\u732b':
        assert repr(c) in err
    assert '--unknown skip' in err
    assert sample_main([path, '--prime', 'abc XYZ', '--length', '5', '--unknown', 'skip',
                        '--seed', '0']) == 0


def test_negative_temperature(ckpt, capsys):
    path, _, _ = ckpt
    err = _sample_err(capsys, [path, '--temperature', '-1'])
    assert 'temperature must be >= 0, got -1' in err and '--argmax' in err


def test_truncated_checkpoint(ckpt, tmp_path, capsys, charlm):
    path, _, _ = ckpt
    data = open(path, 'rb').read()
    bad = tmp_path / 'cut.npz'
    bad.write_bytes(data[:len(data) // 3])
    err = _sample_err(capsys, [str(bad)])
    assert str(bad) in err and 'truncated or corrupt' in err
    f = charlm.write_corpus(tmp_path / 'c.txt', 2000)
    err = _train_err(capsys, ['--resume', str(bad), '--corpus', str(f)] + TINY[-3:])
    assert str(bad) in err
    rc = eval_main([str(bad)])
    assert rc == 1 and str(bad) in capsys.readouterr().err


def test_nan_weight_is_refused_at_sampling_time(ckpt, tmp_path, capsys):
    _, model, vocab = ckpt
    model.rnn[0].W_ih.array[1, 2] = numpy.nan
    path = save_checkpoint(tmp_path / 'nan.npz', model, vocab)
    err = _sample_err(capsys, [path, '--prime', 'abc', '--length', '10'])
    assert 'non-finite' in err and 'rnn/0/W_ih' in err and 'nan.npz' in err


def test_missing_checkpoint_and_prime_file(ckpt, tmp_path, capsys):
    path, _, _ = ckpt
    err = _sample_err(capsys, [str(tmp_path / 'nope.npz')])
    assert 'nope.npz does not exist' in err
    err = _sample_err(capsys, [path, '--prime-file', str(tmp_path / 'nope.txt')])
    assert 'nope.txt' in err
    (tmp_path / 'bad.txt').write_bytes(b'ab\xffc')
    err = _sample_err(capsys, [path, '--prime-file', str(tmp_path / 'bad.txt')])
    assert 'not valid UTF-8' in err


def test_eval_reports_loss_bits_and_perplexity(tmp_path, capsys, charlm):
    f = charlm.write_corpus(tmp_path / 'c.txt', 3000)
    out = tmp_path / 'run'
    assert train_main(['--corpus', str(f), '--out', str(out), '--train-frac', '0.8',
                       '--val-frac', '0.1'] + TINY) == 0
    capsys.readouterr()
    assert eval_main([str(out / 'latest.npz')]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep['split'] == 'test' and rep['chars'] == 299
    assert rep['bits_per_char'] == pytest.approx(rep['loss_nats_per_char'] / numpy.log(2))
    assert rep['perplexity'] == pytest.approx(numpy.exp(rep['loss_nats_per_char']))
    assert eval_main([str(out / 'latest.npz'), '--corpus', str(f), '--split', 'val']) == 0
    assert json.loads(capsys.readouterr().out)['chars'] == 299
    # An empty test split: the default falls back to the validation split and says so; an
    # explicit --split test gets a clear message.
    assert train_main(['--corpus', str(f), '--out', str(tmp_path / 'r2'), '--train-frac', '0.9',
                       '--val-frac', '0.1'] + TINY) == 0
    capsys.readouterr()
    assert eval_main([str(tmp_path / 'r2' / 'latest.npz')]) == 0
    cap = capsys.readouterr()
    assert json.loads(cap.out)['split'] == 'val' and 'evaluating the val split' in cap.err
    assert eval_main([str(tmp_path / 'r2' / 'latest.npz'), '--split', 'test']) == 2
    err = capsys.readouterr().err
    assert 'the test split' in err and '--split val' in err
    # Nothing held out at all (--train-frac 1): the default refuses and names the choices.
    assert train_main(['--corpus', str(f), '--out', str(tmp_path / 'r3'), '--train-frac', '1',
                       '--val-frac', '0'] + TINY) == 0
    capsys.readouterr()
    assert eval_main([str(tmp_path / 'r3' / 'latest.npz')]) == 2
    err = capsys.readouterr().err
    assert 'test and validation splits are both empty' in err and '--split train' in err
    assert 'Traceback' not in err


def test_resume_with_a_conflicting_flag(tmp_path, capsys, charlm):
    f = charlm.write_corpus(tmp_path / 'c.txt', 2000)
    out = tmp_path / 'run'
    assert train_main(['--corpus', str(f), '--out', str(out)] + TINY) == 0
    capsys.readouterr()
    before = sorted(os.listdir(out))
    mtimes = {n: os.stat(out / n).st_mtime_ns for n in before}
    err = _train_err(capsys, ['--resume', str(out / 'latest.npz'), '--rnn-size', '16',
                              '--max-iters', '8'], code=2)
    assert '--rnn-size 16 (the checkpoint has 8)' in err and '--init-from' in err
    assert sorted(os.listdir(out)) == before
    assert {n: os.stat(out / n).st_mtime_ns for n in before} == mtimes
