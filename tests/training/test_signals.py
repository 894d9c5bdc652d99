"""A real SIGTERM to the char-RNN program: it saves, exits 143, and the snapshot resumes
exactly (the resumed run equals an uninterrupted one, log and weights)."""
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy

from seqdbr.charlm.checkpoint import load_checkpoint

ROOT = pathlib.Path(__file__).resolve().parents[2]
WORDS = 'the quick brown fox jumps over a lazy dog while seven small birds sing'.split()


def _cmd(corpus, out, *extra):
    return [sys.executable, str(ROOT / 'scripts' / 'train_charrnn.py'), '--corpus', str(corpus),
            '--out', str(out), '--rnn-size', '16', '--batch-size', '4', '--seq-length', '8',
            '--eval-every', '7', '--dropout', '0.1', '--no-progress', '--seed', '3'] + list(extra)


def _env():
    return dict(os.environ, PYTHONPATH=str(ROOT))


def _log(out):
    return [{k: v for k, v in json.loads(line).items() if k != 'time'}
            for line in (out / 'log.jsonl').read_text().splitlines()]


def test_sigterm_mid_run_saves_and_resumes_exactly(tmp_path):
    rng = numpy.random.default_rng(0)
    corpus = tmp_path / 'c.txt'
    corpus.write_text(' '.join(rng.choice(WORDS, 3000)), encoding='utf-8')
    run = tmp_path / 'run'
    p = subprocess.Popen(_cmd(corpus, run, '--max-iters', '100000'), env=_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        log = run / 'log.jsonl'
        if log.exists() and len(log.read_text().splitlines()) >= 12:
            break
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 128 + signal.SIGTERM, err
    k = load_checkpoint(run / 'latest.npz').iteration
    assert 'interrupted by SIGTERM at iteration %d' % k in out
    total = k + 11
    r = subprocess.run(_cmd(corpus, run, '--resume', str(run / 'latest.npz'), '--max-iters',
                            str(total)), env=_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    whole = tmp_path / 'whole'
    r = subprocess.run(_cmd(corpus, whole, '--max-iters', str(total)), env=_env(),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert _log(run) == _log(whole)
    a, b = load_checkpoint(run / 'latest.npz'), load_checkpoint(whole / 'latest.npz')
    assert sorted(a.params) == sorted(b.params)
    assert all(a.params[n].tobytes() == b.params[n].tobytes() for n in a.params)
    assert all(a.optimizer_state[n].tobytes() == b.optimizer_state[n].tobytes()
               for n in a.optimizer_state)


def test_a_signal_at_a_scheduled_validation_still_validates(tmp_path, monkeypatch):
    """The validation due at the interrupted iteration runs (a resumed run would not redo
    it); only an extra end-of-run validation is skipped on a signal."""
    import io
    from seqdbr.charlm.train import TrainConfig, train
    from seqdbr.training import bptt_updater
    from seqdbr.training.evaluator import read_jsonl
    corpus = tmp_path / 'c.txt'
    corpus.write_text(' '.join(numpy.random.default_rng(1).choice(WORDS, 800)))
    real, calls = bptt_updater.bptt_update, []

    def update(*a, **k):
        calls.append(1)
        loss = real(*a, **k)
        if len(calls) in (4, 13):
            os.kill(os.getpid(), signal.SIGTERM)
        return loss
    monkeypatch.setattr(bptt_updater, 'bptt_update', update)
    kw = dict(corpus=str(corpus), rnn_size=8, batch_size=3, seq_length=6, eval_every=4,
              max_iters=50, progress=False)
    res = train(TrainConfig(out=str(tmp_path / 'a'), **kw), out_stream=io.StringIO())
    assert res.status == 'interrupted' and res.iteration == 4
    assert read_jsonl(tmp_path / 'a' / 'log.jsonl')[-1]['val_loss'] is not None
    res = train(TrainConfig(resume=str(tmp_path / 'a' / 'latest.npz'), **kw),
                explicit={'resume'}, out_stream=io.StringIO())
    assert res.status == 'interrupted' and res.iteration == 13     # between validations
    assert read_jsonl(tmp_path / 'a' / 'log.jsonl')[-1]['val_loss'] is None
