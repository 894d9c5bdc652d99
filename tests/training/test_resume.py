"""Exact resume through the Trainer, in a new process, for both updaters.

2N iterations in one run must equal N iterations, a snapshot, a resume in a new process and
N more: parameters, optimizer state, learning rate, RNG states and log lines (timings
aside). The first part stops at an iteration between scheduled evaluations, so its extra
end-of-run evaluation must be taken back on resume.
"""
import json
import os
import pathlib
import subprocess
import sys

import numpy
import pytest

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def _run(args, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, str(HERE / 'training_models.py')] + args,
                       capture_output=True, text=True, env=env, cwd=cwd, timeout=120)
    assert r.returncode == 0, r.stderr


def _log(path):
    return [{k: v for k, v in json.loads(line).items() if k != 'time'}
            for line in pathlib.Path(path).read_text().splitlines()]


@pytest.mark.parametrize('kind', ['mlp', 'step'])
def test_n_plus_resume_plus_n_equals_2n(kind, tmp_path, tr):
    whole, split = tmp_path / 'whole', tmp_path / 'split'
    _run([kind, str(whole), '30'], tmp_path)
    _run([kind, str(split), '13'], tmp_path)        # stops between evaluations 12 and 16
    first = _log(split / 'log.jsonl')
    assert first[-1]['iteration'] == 12
    _run([kind, str(split), '30', 'resume'], tmp_path)
    a = numpy.load(whole / 'state.npz')
    b = numpy.load(split / 'state.npz')
    assert sorted(a.files) == sorted(b.files)
    for k in a.files:
        assert a[k].tobytes() == b[k].tobytes(), k
    assert _log(whole / 'log.jsonl') == _log(split / 'log.jsonl')
    assert len(_log(whole / 'log.jsonl')) == (7 if kind == 'mlp' else 10)
    assert any('val/loss' in r for r in _log(whole / 'log.jsonl'))


def test_in_process_resume_restores_rng_and_extension_state(tmp_path, tr):
    from seqdbr.core import seeding
    t1 = tr.full_trainer('mlp', tmp_path / 'a', 9)
    t1.run()
    state = seeding.get_rng_state()
    seeding.seed(12345)                         # disturb every generator
    t2 = tr.full_trainer('mlp', tmp_path / 'a', 20)
    t2.resume(tmp_path / 'a' / 'latest.npz')
    assert seeding.get_rng_state() == state
    assert t2.updater.iteration == 9 and t2.updater.optimizer.t == 9
    best = t2._entries['snapshot:best.npz'].trigger
    assert best.best is not None and best.history[-1][0] == 9     # taken back at run()
    t2.run()
    assert all(it != 9 for it, _ in best.history)
