"""``scripts/seq2seq_dates.py``: a tiny training run writes a loadable checkpoint, translate
prints one tab-separated line per input, and user errors are one ``error:`` line (exit 1)."""
import importlib.util
import pathlib

import pytest

from seqdbr.examples import seq2seq as S

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture
def script():
    spec = importlib.util.spec_from_file_location('seq2seq_dates_script',
                                                  ROOT / 'scripts' / 'seq2seq_dates.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def checkpoint(script, tmp_path, capsys):
    out = tmp_path / 'run'
    rc = script.main(['train', '--out', str(out), '--n-train', '64', '--n-val', '8',
                      '--n-test', '8', '--epochs', '1', '--hidden', '8', '--embed', '4',
                      '--beam', '2'])
    text = capsys.readouterr().out
    assert rc == 0
    assert 'epoch 1' in text and 'test exact match: greedy' in text
    return out / 'model.npz'


def test_train_then_translate(script, checkpoint, capsys):
    model, sv, tv, meta = S.load_checkpoint(checkpoint)
    assert meta['model']['hidden_size'] == 8 and len(meta['extra']['history']) == 1
    assert script.main(['translate', str(checkpoint), '3 May 1998', 'May 4, 1999',
                        '--beam', '3', '--max-length', '11']) == 0
    lines = capsys.readouterr().out.strip().split('\n')
    assert [ln.split('\t')[0] for ln in lines] == ['3 May 1998', 'May 4, 1999']
    hyp = model.beam_search(sv.encode('3 May 1998'), 3, 11)
    assert lines[0].split('\t')[1] == tv.decode(hyp.tokens)


@pytest.mark.parametrize('argv,message', [
    (['--beam', '0'], 'beam_width must be an int >= 1'),
    (['--max-length', '0'], 'max_length must be an int >= 1'),
])
def test_translate_errors(script, checkpoint, capsys, argv, message):
    assert script.main(['translate', str(checkpoint), '3 May 1998'] + argv) == 1
    err = capsys.readouterr().err
    assert 'error: ' in err and message in err and 'Traceback' not in err


def test_empty_input_and_missing_checkpoint(script, checkpoint, tmp_path, capsys):
    assert script.main(['translate', str(checkpoint), '']) == 1
    assert 'empty input' in capsys.readouterr().err
    assert script.main(['translate', str(tmp_path / 'nope.npz'), 'x']) == 1
    assert 'error: ' in capsys.readouterr().err
