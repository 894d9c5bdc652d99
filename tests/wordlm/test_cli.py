"""The word-LM commands: bad input exits with status 2 and a message naming the fix."""
import json
import re

import numpy
import pytest

from seqdbr.core import serializers
from seqdbr.wordlm.checkpoint import META_MEMBER, load_checkpoint
from seqdbr.wordlm.cli import eval_main, sample_main, train_main
from seqdbr.wordlm.errors import CheckpointError


def _train(tiny_files, out, *extra):
    tr, va, te = tiny_files
    return train_main(['--train', tr, '--valid', va, '--test', te, '--rnn-size', '8',
                       '--batch-size', '4', '--bptt', '5', '--init-scale', '0.5',
                       '--max-epochs', '1', '--out', str(out), '--no-progress', *extra])


@pytest.fixture
def ckpt(tiny_files, tmp_path):
    assert _train(tiny_files, tmp_path / 'run') == 0
    return tmp_path / 'run' / 'latest.npz'


def _err(capsys):
    return capsys.readouterr().err


@pytest.mark.parametrize('content,message', [
    (b' \n\n  \n', 'has no words'),
    (b'', 'is empty'),
    (b'caf\xe9 au lait\n', r'not valid UTF-8.*byte offset 3.*re-encode the file'),
])
def test_bad_corpus_files(tmp_path, capsys, content, message):
    f = tmp_path / 'train.txt'
    f.write_bytes(content)
    assert train_main(['--train', str(f), '--out', str(tmp_path / 'o'), '--no-progress']) == 2
    err = _err(capsys)
    assert 'seqdbr-train-wordlm: error:' in err and 'Traceback' not in err
    assert re.search(message, err), err
    assert not (tmp_path / 'o' / 'latest.npz').exists()


def test_ptb_folder_with_a_wrongly_encoded_file(tmp_path, capsys):
    for k in ('train', 'valid', 'test'):     # PTB in Latin-1 / UTF-16 is not the PTB file
        (tmp_path / ('ptb.%s.txt' % k)).write_bytes('caf\xe9 N\n'.encode('utf-16'))
    assert train_main(['--data', 'ptb', '--data-dir', str(tmp_path), '--no-progress',
                       '--out', str(tmp_path / 'o')]) == 2
    assert 'does not match the catalog' in _err(capsys)


@pytest.mark.parametrize('args,message', [
    (['--vocab-limit', '1'], r'--vocab-limit must be an integer >= 2 \(the vocabulary always '
                             r'holds <unk> and <eos>\), got 1'),
    (['--dropout', '1'], r'--dropout must be in \[0, 1\)'),
    (['--lr-decay', '0'], r'--lr-decay must be in \(0, 1\]'),
    (['--batch-size', '400'], r'one batch needs --batch-size 400 x --bptt 5 \+ 1'),
    (['--data', 'ptb'], '--data ptb and --train .* exclude each other'),
])
def test_bad_options(tiny_files, tmp_path, capsys, args, message):
    assert _train(tiny_files, tmp_path / 'o', *args) == 2
    assert re.search(message, _err(capsys))
    with pytest.raises(SystemExit) as e:          # argparse's own choices check
        _train(tiny_files, tmp_path / 'o', '--preset', 'huge')
    assert e.value.code == 2 and 'invalid choice' in _err(capsys)


def test_no_corpus(tmp_path, capsys):
    assert train_main(['--out', str(tmp_path), '--no-progress']) == 2
    assert 'no corpus: pass --data ptb or --train FILE' in _err(capsys)


def test_vocabulary_without_unk_or_eos_in_a_checkpoint(ckpt, tmp_path):
    arrays = serializers.load_npz_dict(str(ckpt))
    meta = json.loads(arrays[META_MEMBER].tobytes().decode('utf-8'))
    for drop in ('<unk>', '<eos>'):
        m = dict(meta, vocab=dict(meta['vocab'],
                                  words=[w for w in meta['vocab']['words'] if w != drop]))
        arrays[META_MEMBER] = numpy.frombuffer(json.dumps(m).encode(), numpy.uint8).copy()
        bad = tmp_path / 'bad.npz'
        serializers.save_npz_dict(str(bad), arrays)
        with pytest.raises(CheckpointError, match='the vocabulary lacks %s' % drop):
            load_checkpoint(str(bad))


def test_resume_refuses_changed_settings(ckpt, capsys):
    assert train_main(['--resume', str(ckpt), '--rnn-size', '16', '--max-epochs', '2',
                       '--no-progress']) == 2
    assert "--rnn-size 16 (the checkpoint has 8)" in _err(capsys)


def test_sample_and_eval_commands(ckpt, tiny_files, capsys):
    assert sample_main([str(ckpt), '-n', '2', '--top-k', '3', '--prime', 'the']) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[0].startswith('the')
    assert eval_main([str(ckpt), tiny_files[2]]) == 0
    assert 'perplexity' in capsys.readouterr().out
    assert sample_main([str(ckpt), '--temperature', '-1']) == 2
    assert 'temperature must be a finite number >= 0' in _err(capsys)
    assert sample_main([str(ckpt), '--prime', 'zebra']) == 2
    assert 'prime words not in the vocabulary: zebra' in _err(capsys)
    assert eval_main([str(ckpt)]) == 2
    assert 'give either --data ptb or one or more text files' in _err(capsys)


def test_foreign_or_missing_checkpoint(tmp_path, capsys):
    f = tmp_path / 'w.npz'
    serializers.save_npz_dict(str(f), {'W': numpy.zeros(3)})
    assert sample_main([str(f)]) == 2
    assert 'not a seqdbr training snapshot' in _err(capsys)
    assert eval_main([str(tmp_path / 'none.npz'), 'x.txt']) == 2
    assert 'does not exist' in _err(capsys)


def test_bias_pair_flag(tiny_files, tmp_path, capsys):
    """On by default (the presets' Zaremba/PyTorch LSTM); --no-bias-pair keeps one bias, and
    a resume cannot change it."""
    assert _train(tiny_files, tmp_path / 'pair') == 0
    assert ', bias pair,' in capsys.readouterr().out
    assert 'rnn/0/b_hh' in load_checkpoint(str(tmp_path / 'pair' / 'latest.npz')).weights
    assert _train(tiny_files, tmp_path / 'one', '--no-bias-pair') == 0
    assert ', one bias,' in capsys.readouterr().out
    one = tmp_path / 'one' / 'latest.npz'
    assert 'rnn/0/b_hh' not in load_checkpoint(str(one)).weights
    assert train_main(['--resume', str(one), '--bias-pair', '--max-epochs', '2']) == 2
    assert '--bias-pair True (the checkpoint has False)' in _err(capsys)
