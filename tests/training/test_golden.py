"""The char-RNN program on the Trainer reproduces main's program exactly (issue 10).

``tests/fixtures/golden`` was recorded by ``tests/fixtures/make_golden.py`` from the code
*before* the training loop was rebuilt on :mod:`seqdbr.training`: 300 iterations with
validation every 100, LR decay, dropout, an n-step LSTM and a stepwise GRU. Replaying the
same runs must give the same log values and bit-identical weights. The legacy checkpoint
written then must still resume, sample and evaluate.
"""
import importlib.util
import io
import json
import pathlib

import numpy
import pytest

from seqdbr.charlm.checkpoint import load_checkpoint
from seqdbr.charlm.cli import eval_main, sample_main
from seqdbr.charlm.train import TrainConfig, train

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / 'fixtures'
GOLDEN = FIXTURES / 'golden'


def _make_golden():
    spec = importlib.util.spec_from_file_location('make_golden', FIXTURES / 'make_golden.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _records(path):
    out = []
    for line in pathlib.Path(path).read_text().splitlines():
        r = json.loads(line)
        r.pop('time')
        out.append(r)
    return out


@pytest.mark.parametrize('name', ['lstm_nstep', 'gru_stepwise'])
def test_replay_gives_identical_log_and_weights(name, tmp_path):
    g = _make_golden()
    out, params = g.run(name, g.RUNS[name], str(tmp_path))
    assert _records(pathlib.Path(out) / 'log.jsonl') == _records(GOLDEN / name / 'log.jsonl')
    ref = numpy.load(GOLDEN / name / 'weights.npz')
    assert sorted(ref.files) == sorted(params)
    for k in ref.files:
        assert ref[k].dtype == params[k].dtype
        assert ref[k].tobytes() == params[k].tobytes(), k


def test_legacy_checkpoint_resumes_samples_and_evaluates(tmp_path, capsys):
    g = _make_golden()
    corpus = tmp_path / 'corpus.txt'
    corpus.write_text(g.golden_text(), encoding='utf-8')
    ck = tmp_path / 'run' / 'latest.npz'
    ck.parent.mkdir()
    ck.write_bytes((GOLDEN / 'legacy_latest.npz').read_bytes())
    old = load_checkpoint(ck)
    assert old.iteration == 300
    res = train(TrainConfig(resume=str(ck), corpus=str(corpus), max_iters=320,
                            progress=False), explicit={'resume', 'corpus', 'max_iters'},
                out_stream=io.StringIO())
    assert res.status == 'done' and res.iteration == 320
    assert load_checkpoint(ck).iteration == 320
    capsys.readouterr()
    legacy = tmp_path / 'legacy.npz'
    legacy.write_bytes((GOLDEN / 'legacy_latest.npz').read_bytes())
    assert sample_main([str(legacy), '--length', '40', '--seed', '1']) == 0
    assert len(capsys.readouterr().out) >= 40
    assert eval_main([str(legacy), '--corpus', str(corpus), '--split', 'val']) == 0
    report = json.loads(capsys.readouterr().out)
    assert 0 < report['loss_nats_per_char'] < 3
