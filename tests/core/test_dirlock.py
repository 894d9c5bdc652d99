"""DirectoryLock (one process per folder) and clean_stale_temp_files (temp files of killed
writers): racing processes, stale and partial locks, pid reuse, kill -9 mid-write."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from seqdbr.core import atomic, dirlock
from seqdbr.core.atomic import atomic_write, clean_stale_temp_files, temp_file_owner
from seqdbr.core.dirlock import LOCK_NAME, DirectoryLock, DirectoryLockedError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _python(code, *args):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
    return subprocess.Popen([sys.executable, '-c', textwrap.dedent(code)] + list(args),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=REPO)


def _dead_pid():
    p = subprocess.Popen([sys.executable, '-c', 'pass'])
    p.wait()
    return p.pid


# -- DirectoryLock ------------------------------------------------------------------------

def test_lock_file_names_the_holder_and_is_removed_on_exit(tmp_path):
    with DirectoryLock(tmp_path, command='train --out x') as lk:
        assert lk.held
        info = json.loads((tmp_path / LOCK_NAME).read_text())
        assert info['pid'] == os.getpid() and info['command'] == 'train --out x'
        assert info['host'] and info['started'] and info['token']
    assert not (tmp_path / LOCK_NAME).exists() and not lk.held


def test_second_locker_is_refused_with_the_holders_name(tmp_path):
    with DirectoryLock(tmp_path, command='first run'):
        with pytest.raises(DirectoryLockedError) as e:
            DirectoryLock(tmp_path).acquire()
        msg = str(e.value)
        assert 'process %d' % os.getpid() in msg and 'first run' in msg
        assert str(tmp_path) in msg and 'another output folder' in msg
        assert e.value.holder['pid'] == os.getpid()
    with DirectoryLock(tmp_path):               # free again after release
        pass


def test_released_on_exception(tmp_path):
    with pytest.raises(ZeroDivisionError):
        with DirectoryLock(tmp_path):
            1 / 0
    assert not (tmp_path / LOCK_NAME).exists()


def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist'):
        DirectoryLock(tmp_path / 'nope').acquire()


def test_stale_lock_of_a_dead_process_is_taken_over_with_a_notice(tmp_path):
    pid = _dead_pid()
    stale = {'pid': pid, 'host': dirlock._hostname(), 'started': 'then', 'command': 'old run',
             'token': 'x'}
    (tmp_path / LOCK_NAME).write_text(json.dumps(stale))
    notes = []
    with DirectoryLock(tmp_path, notice=notes.append) as lk:
        assert lk.taken_over['pid'] == pid
        assert json.loads((tmp_path / LOCK_NAME).read_text())['pid'] == os.getpid()
    assert len(notes) == 1 and 'stale' in notes[0] and 'process %d' % pid in notes[0]
    assert not (tmp_path / (LOCK_NAME + '.takeover')).exists()


def test_reused_pid_counts_as_dead(tmp_path):
    # Our own pid with another start time: the holder is gone and the pid was reused.
    ticks = dirlock._process_start_ticks(os.getpid())
    if ticks is None:
        pytest.skip('no /proc start times on this system')
    stale = {'pid': os.getpid(), 'host': dirlock._hostname(), 'pid_start': ticks - 1}
    (tmp_path / LOCK_NAME).write_text(json.dumps(stale))
    with DirectoryLock(tmp_path, notice=lambda m: None) as lk:
        assert lk.taken_over is not None


def test_lock_of_another_host_is_never_taken_over(tmp_path):
    other = {'pid': _dead_pid(), 'host': 'some-other-host.invalid', 'started': 't',
             'command': 'c'}
    (tmp_path / LOCK_NAME).write_text(json.dumps(other))
    with pytest.raises(DirectoryLockedError) as e:
        DirectoryLock(tmp_path).acquire()
    assert 'some-other-host.invalid' in str(e.value) and 'delete' in str(e.value)
    assert json.loads((tmp_path / LOCK_NAME).read_text()) == other


def test_partial_lock_waits_then_is_taken_over(tmp_path, monkeypatch):
    monkeypatch.setattr(dirlock, 'PARTIAL_GRACE_S', 0.3)
    lock = tmp_path / LOCK_NAME
    lock.write_bytes(b'')                    # a holder killed between create and write
    t0 = time.monotonic()
    with DirectoryLock(tmp_path, notice=lambda m: None) as lk:
        assert lk.taken_over == {}
    assert time.monotonic() - t0 >= 0.25     # a fresh empty file is not stolen at once


def test_release_never_removes_someone_elses_lock(tmp_path):
    lk = DirectoryLock(tmp_path).acquire()
    (tmp_path / LOCK_NAME).write_text(json.dumps({'pid': 1, 'token': 'not-ours'}))
    lk.release()
    assert (tmp_path / LOCK_NAME).exists()


_RACER = '''
import json, os, sys, time
from seqdbr.core.dirlock import DirectoryLock, DirectoryLockedError
folder, go = sys.argv[1], float(sys.argv[2])
while time.time() < go:
    time.sleep(0.001)
try:
    with DirectoryLock(folder, notice=lambda m: print('NOTICE', m)):
        print('HELD', os.getpid(), flush=True)
        time.sleep(0.8)
except DirectoryLockedError as e:
    print('REFUSED', e.holder.get('pid'), flush=True)
'''


@pytest.mark.parametrize('stale_first', [False, True])
def test_processes_racing_for_one_folder_exactly_one_wins(tmp_path, stale_first):
    if stale_first:       # all racers find the same stale lock: still exactly one wins
        (tmp_path / LOCK_NAME).write_text(json.dumps(
            {'pid': _dead_pid(), 'host': dirlock._hostname()}))
    go = time.time() + 1.5
    procs = [_python(_RACER, str(tmp_path), repr(go)) for _ in range(4)]
    outs = [p.communicate(timeout=60) for p in procs]
    lines = [o[0].split() for o in outs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    held = [ln for ln in lines if 'HELD' in ln]
    refused = [ln for ln in lines if 'REFUSED' in ln and 'HELD' not in ln]
    assert len(held) == 1 and len(refused) == 3, lines
    winner = held[0][held[0].index('HELD') + 1]
    assert all(ln[ln.index('REFUSED') + 1] == winner for ln in refused)
    assert not (tmp_path / LOCK_NAME).exists()


def test_holder_killed_by_sigkill_leaves_a_lock_the_next_run_takes_over(tmp_path):
    p = _python('''
        import sys, time
        from seqdbr.core.dirlock import DirectoryLock
        DirectoryLock(sys.argv[1]).acquire()
        print('HELD', flush=True)
        time.sleep(60)
        ''', str(tmp_path))
    assert p.stdout.readline().strip() == 'HELD'
    with pytest.raises(DirectoryLockedError, match='process %d' % p.pid):
        DirectoryLock(tmp_path).acquire()
    p.send_signal(signal.SIGKILL)
    p.communicate(timeout=30)
    with DirectoryLock(tmp_path, notice=lambda m: None) as lk:
        assert lk.taken_over['pid'] == p.pid


# -- temp files of killed writers ---------------------------------------------------------

def test_temp_file_name_encodes_the_writer(tmp_path):
    with atomic_write(tmp_path / 'a.npz') as f:
        (name,) = [n for n in os.listdir(tmp_path)]
        f.write(b'x')
    assert temp_file_owner(name) == (os.getpid(), atomic._host_tag())
    assert temp_file_owner('a.npz') is None and temp_file_owner('.a.npz.abc.tmp') is None


def test_kill_9_mid_write_leaves_a_temp_file_that_the_next_start_removes(tmp_path):
    (tmp_path / 'latest.npz').write_bytes(b'old checkpoint')
    p = _python('''
        import sys, time
        from seqdbr.core.atomic import atomic_write
        with atomic_write(sys.argv[1]) as f:
            f.write(b'\\0' * 1000000)
            f.flush()
            print('WRITING', flush=True)
            time.sleep(60)
        ''', str(tmp_path / 'latest.npz'))
    assert p.stdout.readline().strip() == 'WRITING'
    live = [n for n in os.listdir(tmp_path) if n.endswith('.tmp')]
    assert len(live) == 1
    assert clean_stale_temp_files(tmp_path) == []          # its writer is alive: kept
    p.send_signal(signal.SIGKILL)
    p.communicate(timeout=30)
    # Files that must survive: another host's temp file, unrelated files.
    other_host = '.best.npz.%d-%s-abc123.tmp' % (_dead_pid(), 'f' * 8
                                                 if atomic._host_tag() != 'f' * 8 else 'e' * 8)
    (tmp_path / other_host).write_bytes(b'y')
    (tmp_path / 'notes.tmp').write_bytes(b'z')
    removed = clean_stale_temp_files(tmp_path)
    assert removed == [(str(tmp_path / live[0]), 1000000)]
    assert sorted(os.listdir(tmp_path)) == sorted([other_host, 'notes.tmp', 'latest.npz'])
    assert (tmp_path / 'latest.npz').read_bytes() == b'old checkpoint'
    assert clean_stale_temp_files(tmp_path / 'missing') == []


def test_an_exited_but_unreaped_holder_counts_as_dead():
    """A holder killed by its MPI launcher can linger as a zombie until its parent reaps it;
    its lock must be taken over, not reported as in use."""
    from seqdbr.core.dirlock import pid_alive
    p = subprocess.Popen([sys.executable, '-c', 'pass'])
    deadline = time.time() + 10
    while time.time() < deadline:          # exited, not yet reaped: a zombie
        with open('/proc/%d/stat' % p.pid) as f:
            if f.read().rsplit(')', 1)[1].split()[0] == 'Z':
                break
        time.sleep(0.01)
    assert not pid_alive(p.pid)
    p.wait()
    assert pid_alive(os.getpid())
