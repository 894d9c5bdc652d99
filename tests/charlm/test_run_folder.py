"""One run per output folder, and nothing of an earlier run lost (issue 14, items 6-8).

The building blocks are tested in tests/core/test_dirlock.py (DirectoryLock, stale-lock
takeover, clean_stale_temp_files); these tests check them wired into the Trainer, which
holds the lock while it trains, refuses a folder holding an earlier run unless
``--overwrite`` is given, and changes nothing of that run before its own first checkpoint.
"""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from seqdbr.charlm import checkpoint as ckpt_mod
from seqdbr.charlm.cli import train_main
from seqdbr.core.dirlock import LOCK_NAME

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = ['--rnn-size', '8', '--num-layers', '1', '--batch-size', '3', '--seq-length', '5',
        '--eval-every', '5', '--no-progress']

def _trainer(corpus, out, *extra):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''),
               OMP_NUM_THREADS='1', OPENBLAS_NUM_THREADS='1')
    return subprocess.Popen(
        [sys.executable, os.path.join(REPO, 'scripts', 'train_charrnn.py'), '--corpus',
         str(corpus), '--out', str(out)] + TINY + list(extra),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)


def test_two_trainers_on_one_folder_exactly_one_runs(tmp_path, charlm):
    corpus = charlm.write_corpus(tmp_path / 'c.txt', 3000)
    out = tmp_path / 'out'
    procs = [_trainer(corpus, out, '--max-iters', '1000000') for _ in range(2)]
    try:
        # With the lock the loser stops before any training; without it both train. Wait
        # for a stop, but give up 5 s after the folder's log shows training under way.
        deadline = time.time() + 120
        log = out / 'log.jsonl'
        while time.time() < deadline and all(p.poll() is None for p in procs):
            if log.exists() and log.read_text().count('\n') >= 20:
                deadline = min(deadline, time.time() + 5)
            time.sleep(0.05)
        loser = next((p for p in procs if p.poll() is not None), None)
        assert loser is not None, 'neither trainer stopped: both are training into one folder'
        winner = procs[1] if loser is procs[0] else procs[0]
        _, err = loser.communicate(timeout=60)
        assert loser.returncode == 1, err
        assert 'in use by process %d' % winner.pid in err and 'Traceback' not in err
        winner.send_signal(signal.SIGTERM)          # the winner stops cleanly
        winner.communicate(timeout=120)
        assert winner.returncode == 128 + signal.SIGTERM
        assert not (out / LOCK_NAME).exists()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()


def test_a_stale_lock_is_taken_over_with_a_notice(tmp_path, charlm):
    corpus = charlm.write_corpus(tmp_path / 'c.txt', 3000)
    out = tmp_path / 'out'
    out.mkdir()
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()
    from seqdbr.core import dirlock
    (out / LOCK_NAME).write_text(json.dumps({'pid': dead.pid, 'host': dirlock._hostname(),
                                             'started': 'earlier', 'command': 'old'}))
    p = _trainer(corpus, out, '--max-iters', '4')
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    assert 'took over the stale lock' in err and 'process %d' % dead.pid in err


def test_a_killed_writers_temp_files_are_removed_at_the_next_start(tmp_path, charlm):
    corpus = charlm.write_corpus(tmp_path / 'c.txt', 3000)
    out = tmp_path / 'out'
    p = _trainer(corpus, out, '--max-iters', '100000', '--checkpoint-every', '1')
    deadline = time.time() + 120
    while time.time() < deadline and not (out / 'latest.npz').exists():
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.communicate(timeout=60)
    # A temp file exactly as a writer killed mid-save leaves it (pid of the dead process).
    from seqdbr.core import atomic
    stale = out / ('.latest.npz.%d-%s-abcdef.tmp' % (p.pid, atomic._host_tag()))
    stale.write_bytes(b'\0' * 4096)
    done = ckpt_mod.load_checkpoint(str(out / 'latest.npz')).iteration
    rc = train_main(['--resume', str(out / 'latest.npz'), '--max-iters', str(done + 1)])
    assert rc == 0 and not stale.exists()


def test_a_failed_new_run_leaves_the_old_run_byte_identical(tmp_path, charlm, monkeypatch,
                                                            capsys):
    corpus = charlm.write_corpus(tmp_path / 'c.txt', 3000)
    out = tmp_path / 'out'
    assert train_main(['--corpus', str(corpus), '--out', str(out), '--max-iters', '10']
                      + TINY) == 0
    before = {n: (out / n).read_bytes() for n in sorted(os.listdir(out))}

    def disk_full(*a, **k):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(ckpt_mod, 'save_checkpoint', disk_full)
    # A new run into the old folder whose first save fails (disk full); however the new
    # trainer asks for permission to reuse a folder, the old files must survive.
    rc = train_main(['--corpus', str(corpus), '--out', str(out), '--max-iters', '10',
                     '--seed', '7'] + TINY)
    assert rc != 0 and 'Traceback' not in capsys.readouterr().err
    after = {n: (out / n).read_bytes() for n in sorted(os.listdir(out))}
    assert after == before
