"""Data-parallel training on MPI: the communicator, the multi-node optimizer, the char-RNN
program under ``mpiexec -n 2`` (equivalence with one process, exact resume, failures).

Every test that needs MPI runs ``mpiexec -n 2`` on loopback and skips, with the reason, only
when mpi4py cannot be imported.
"""
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

import numpy
import pytest

from seqdbr import distributed as D

ROOT = pathlib.Path(__file__).resolve().parents[2]
HERE = pathlib.Path(__file__).resolve().parent


def require_mpi():
    """Skip (with the reason) when mpi4py cannot be imported; return mpiexec's path."""
    pytest.importorskip('mpi4py', reason="mpi4py is not installed (pip install -e '.[mpi]')")
    near = pathlib.Path(sys.executable).parent / 'mpiexec'
    exe = str(near) if near.exists() else shutil.which('mpiexec')
    assert exe, 'mpi4py imports but no mpiexec was found next to %s or on PATH' % sys.executable
    return exe


def mpi_run(n, args, timeout=120, cwd=None, env=None):
    """``mpiexec -n n python3 args...``; returns (CompletedProcess, seconds)."""
    exe = require_mpi()
    e = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1', OPENBLAS_NUM_THREADS='1',
             PYTHONUNBUFFERED='1')
    e.update(env or {})
    t0 = time.monotonic()
    p = subprocess.run([exe, '-n', str(n), sys.executable] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=timeout, cwd=cwd or ROOT, env=e)
    return p, time.monotonic() - t0



TRAIN = [sys.executable, str(ROOT / 'scripts' / 'train_charrnn.py')]


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    import pydoc_data.topics as topics
    text = ''.join(topics.topics[k] for k in sorted(topics.topics))[:40000]
    path = tmp_path_factory.mktemp('corpus') / 'text.txt'
    path.write_text(text, encoding='utf-8')
    return path


def _args(corpus, out, *extra):
    return ['--corpus', corpus, '--rnn-size', 32, '--num-layers', 1, '--seq-length', 8,
            '--batch-size', 50, '--dropout', 0, '--no-progress', '--out', out] + list(extra)


def _train(n, corpus, out, *extra, mode='none', rank=0, at=0, timeout=120, env=None):
    return mpi_run(n, [HERE / 'mpi_train_worker.py', mode, rank, at, '--']
                   + _args(corpus, out, *extra), timeout=timeout, env=env)


def _log(path):
    return [json.loads(line) for line in open(path / 'log.jsonl')]


def _weights(path):
    with numpy.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files if k.startswith(('params/', 'model/'))
                or 'optimizer' in k or k.startswith('state/')}


# -- without MPI ----------------------------------------------------------------------------------
def test_launcher_world_reads_the_launchers_environment():
    assert D.launcher_world({}) == (1, 0)
    assert D.launcher_world({'PMI_SIZE': '4', 'PMI_RANK': '3'}) == (4, 3)
    assert D.launcher_world({'OMPI_COMM_WORLD_SIZE': '2', 'OMPI_COMM_WORLD_RANK': '1'}) == (2, 1)


def test_missing_mpi4py_is_an_error_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, 'mpi4py', None)
    with pytest.raises(D.MPIUnavailableError, match=r"pip install -e '\.\[mpi\]'"):
        D.create_communicator()


def test_batch_not_divisible_message():
    with pytest.raises(ValueError, match='--batch-size 50 cannot be split across 3 processes.*'
                                         '--batch-size 48 or 51'):
        D.check_divisible(50, 3)


class _Comm:
    def __init__(self, rank, size):
        self.rank, self.size = rank, size

    def split_range(self, n):
        return D.MpiCommunicator.split_range(self, n)


@pytest.mark.parametrize('n,size', [(1, 1), (5, 2), (7, 3), (2, 2), (100, 7)])
def test_split_dataset_covers_every_example_with_equal_shares(n, size):
    data = list(range(n))
    shares = [D.split_dataset(data, _Comm(r, size)) for r in range(size)]
    assert len({len(s) for s in shares}) == 1                 # equal iterations per epoch
    seen = [x for s in shares for x in s[:]]
    assert sorted(set(seen)) == data
    assert seen[:n] == data                                    # contiguous, in order
    ranges = [_Comm(r, size).split_range(n) for r in range(size)]
    assert [i for lo, hi in ranges for i in range(lo, hi)] == data


def test_stream_shard_rows_are_the_global_windows_rows():
    from seqdbr.rnn.bptt import ParallelSequentialBatcher
    tokens = numpy.arange(1000) % 37
    ref = ParallelSequentialBatcher(tokens, 6, 5)
    shards = [D.StreamShard(ParallelSequentialBatcher(tokens, 6, 5), _Comm(r, 3))
              for r in range(3)]
    for _ in range(4):
        x, t = ref.next_window()
        parts = [s.next_window() for s in shards]
        numpy.testing.assert_array_equal(numpy.concatenate([p[0] for p in parts]), x)
        numpy.testing.assert_array_equal(numpy.concatenate([p[1] for p in parts]), t)
    assert shards[1].iteration == 4 and shards[1].local_batch_size == 2
    with pytest.raises(ValueError, match='multiple of the number of processes'):
        D.StreamShard(ParallelSequentialBatcher(tokens, 6, 5), _Comm(0, 4))


class _Aborted(Exception):
    pass


@pytest.mark.parametrize('rank,size,prefix', [(0, 1, ''), (0, 2, '[rank 0/2] '),
                                              (3, 4, '[rank 3/4] ')])
def test_abort_prints_then_waits_for_the_launcher_then_aborts(monkeypatch, capsys, rank, size,
                                                              prefix):
    """The order that keeps the message: (root delay,) print, flush, grace, MPI_Abort(code)."""
    from seqdbr.distributed import failure
    events = []
    monkeypatch.setattr(failure.time, 'sleep', lambda s: events.append(('sleep', s)))

    class World:
        def Abort(self, code):
            events.append(('abort', code, capsys.readouterr().err))
            raise _Aborted

    comm = _Comm(rank, size)
    comm.mpi_comm = World()
    with pytest.raises(_Aborted):
        failure.abort(comm, 2, 'prog: error: two\nlines\n')
    delay = [('sleep', 0.0 if rank == 0 else 1.5 + 0.1 * rank)]
    assert events == delay + [('sleep', failure.GRACE),
                              ('abort', 2, prefix + 'prog: error: two\n' + prefix + 'lines\n')]
    assert 0 < failure.GRACE < failure.root_delay(1) - 1.0      # a failing root still wins


def test_abort_without_a_message_does_not_wait_and_never_exits_zero(monkeypatch):
    from seqdbr.distributed import failure
    slept, codes = [], []
    monkeypatch.setattr(failure.time, 'sleep', slept.append)
    comm = _Comm(0, 2)
    comm.mpi_comm = type('W', (), {'Abort': lambda self, c: codes.append(c)})()
    with pytest.raises(SystemExit):
        failure.abort(comm, 0)
    assert slept == [0.0] and codes == [1]


# -- under mpiexec -n 2 -----------------------------------------------------------------------
def test_collectives_under_mpiexec():
    p, _ = mpi_run(2, [HERE / 'mpi_comm_worker.py'], timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.count('OK') == 2 and 'OK 0' in p.stdout.replace('OKOK', 'OK OK'), p.stdout


def test_two_processes_equal_one_process(corpus, tmp_path):
    """2 x 25 streams == 1 x 50 streams: per-iteration loss, validation, final weights."""
    one, two = tmp_path / 'one', tmp_path / 'two'
    extra = ['--max-iters', 100, '--eval-every', 50]
    p1, _ = _train(1, corpus, one, *extra)
    p2, _ = _train(2, corpus, two, *extra)
    assert p1.returncode == 0, p1.stderr
    assert p2.returncode == 0, p2.stderr
    a, b = _log(one), _log(two)
    assert len(a) == len(b) == 100
    la = numpy.array([r['train_loss'] for r in a])
    lb = numpy.array([r['train_loss'] for r in b])
    numpy.testing.assert_allclose(lb, la, rtol=1e-5)
    va = [(r['iteration'], r['val_loss']) for r in a if r.get('val_loss') is not None]
    vb = [(r['iteration'], r['val_loss']) for r in b if r.get('val_loss') is not None]
    assert [i for i, _ in va] == [i for i, _ in vb] == [50, 100]
    numpy.testing.assert_allclose([v for _, v in vb], [v for _, v in va], rtol=1e-6)
    wa, wb = _weights(one / 'latest.npz'), _weights(two / 'latest.npz')
    assert sorted(wa) == sorted(wb) and any(k.startswith('state/') for k in wb)
    for k in wa:                  # the carried state of all 50 streams is in the snapshot
        assert wa[k].shape == wb[k].shape, k
        numpy.testing.assert_allclose(wb[k], wa[k], rtol=1e-4, atol=1e-5, err_msg=k)
    assert p2.stdout.count('corpus:') == 1           # rank 0 alone prints


def test_resume_with_mpiexec_is_bit_exact(corpus, tmp_path):
    whole, parts = tmp_path / 'whole', tmp_path / 'parts'
    p, _ = _train(2, corpus, whole, '--max-iters', 40, '--eval-every', 15)
    assert p.returncode == 0, p.stderr
    p, _ = _train(2, corpus, parts, '--max-iters', 20, '--eval-every', 15)
    assert p.returncode == 0, p.stderr
    p = mpi_run(2, [HERE / 'mpi_train_worker.py', 'none', 0, 0, '--', '--resume',
                    parts / 'latest.npz', '--max-iters', 40, '--no-progress'])[0]
    assert p.returncode == 0, p.stderr
    assert _log(parts) == [dict(r, time=q['time']) for r, q in zip(_log(whole), _log(parts))]
    wa, wb = _weights(whole / 'latest.npz'), _weights(parts / 'latest.npz')
    assert sorted(wa) == sorted(wb)
    for k in wa:
        numpy.testing.assert_array_equal(wb[k], wa[k], err_msg=k)


def test_resume_with_another_world_size_follows_the_global_batch(corpus, tmp_path):
    """The snapshot holds all 50 streams: 2 processes resume a 1-process run (and get the
    same losses up to rounding)."""
    whole, parts = tmp_path / 'whole', tmp_path / 'parts'
    assert _train(1, corpus, whole, '--max-iters', 30, '--eval-every', 30)[0].returncode == 0
    assert _train(1, corpus, parts, '--max-iters', 15, '--eval-every', 30)[0].returncode == 0
    p = mpi_run(2, [HERE / 'mpi_train_worker.py', 'none', 0, 0, '--', '--resume',
                    parts / 'latest.npz', '--max-iters', 30, '--no-progress'])[0]
    assert p.returncode == 0, p.stderr
    la = [r['train_loss'] for r in _log(whole)]
    lb = [r['train_loss'] for r in _log(parts)]
    numpy.testing.assert_allclose(lb, la, rtol=1e-5)


@pytest.mark.parametrize('mode', ['raise', 'kill'])
def test_a_failing_rank_ends_the_job_quickly_and_keeps_the_snapshot(corpus, tmp_path, mode):
    out, stamp = tmp_path / 'run', tmp_path / 'failed_at'
    p, _ = _train(2, corpus, out, '--max-iters', 10000, '--checkpoint-every', 10,
                  '--eval-every', 1000, mode=mode, rank=1, at=25, timeout=60,
                  env={'SEQDBR_TEST_FAIL_STAMP': str(stamp)})
    ended = time.time()
    assert p.returncode != 0
    # from the failure to the job's end: rank 1's 1.6 s delay and 0.5 s grace, the abort
    # (about 1 s); generous for a loaded machine, far below a hang (the 60 s timeout)
    assert ended - float(stamp.read_text()) < 8, ended - float(stamp.read_text())
    if mode == 'raise':
        assert p.stderr.count('injected failure on rank 1 at iteration 25') == 1, p.stderr
    # the last complete snapshot (iteration 20) is intact and resumes
    resumed = mpi_run(2, [HERE / 'mpi_train_worker.py', 'none', 0, 0, '--', '--resume',
                          out / 'latest.npz', '--max-iters', 30, '--no-progress'])[0]
    assert resumed.returncode == 0, resumed.stderr
    assert 'resuming %s at iteration 20 ' % (out / 'latest.npz') in resumed.stdout
    assert len(_log(out)) == 30


def test_batch_size_not_divisible_is_one_clear_error(corpus, tmp_path):
    p, secs = mpi_run(2, TRAIN[1:] + _args(corpus, tmp_path / 'r', '--batch-size', 51,
                                           '--max-iters', 2), timeout=60)
    assert p.returncode == 2, p.stderr
    assert p.stderr.count('--batch-size 51 cannot be split across 2 processes') == 1, p.stderr


def test_mnist_example_two_processes_equal_one(tmp_path):
    """The example's StandardUpdater path: slices of one shared global batch, the test set's
    example-weighted metrics reduced over the ranks."""
    for n in (1, 2):
        p, _ = mpi_run(n, [HERE / 'mpi_mnist_worker.py', tmp_path / str(n)], timeout=120)
        assert p.returncode == 0, p.stderr
    a, b = _log(tmp_path / '1'), _log(tmp_path / '2')
    assert len(a) == len(b) == 3
    for ra, rb in zip(a, b):
        for k in ('train_loss', 'train_accuracy', 'test_loss', 'test_accuracy'):
            numpy.testing.assert_allclose(rb[k], ra[k], rtol=1e-5, err_msg=k)


def test_ctrl_c_stops_every_rank_after_the_same_iteration(corpus, tmp_path):
    """SIGINT to mpiexec (Hydra forwards it to every rank, at slightly different moments):
    the ranks agree on the stop, rank 0 writes the snapshot, the job exits 130, and the
    snapshot resumes."""
    import signal
    exe = require_mpi()
    out = tmp_path / 'run'
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1', OPENBLAS_NUM_THREADS='1')
    cmd = [exe, '-n', '2', sys.executable, str(HERE / 'mpi_train_worker.py'), 'none', '0', '0',
           '--'] + [str(a) for a in _args(corpus, out, '--max-iters', 10 ** 6,
                                           '--eval-every', 10 ** 5)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while not (out / 'log.jsonl').exists() or len(_log(out)) < 5:
            assert time.monotonic() < deadline and proc.poll() is None, 'no training started'
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert stdout.count('interrupted by SIGINT') == 1, stdout
    n = len(_log(out))
    resumed = mpi_run(2, [HERE / 'mpi_train_worker.py', 'none', 0, 0, '--', '--resume',
                          out / 'latest.npz', '--max-iters', n + 3, '--no-progress'])[0]
    assert resumed.returncode == 0, resumed.stderr
    assert 'at iteration %d ' % n in resumed.stdout


def test_generic_trainer_bptt_snapshot_holds_every_streams_state(tmp_path):
    """Trainer + BPTTUpdater(StreamShard) + the generic npz snapshot under mpiexec -n 2: the
    snapshot holds the carried state of all 4 streams, and N + resume + N == 2N bit for
    bit."""
    whole, parts = tmp_path / 'whole', tmp_path / 'parts'
    for args in ([whole, 12], [parts, 6], [parts, 12, 'resume']):
        p, _ = mpi_run(2, [HERE / 'mpi_bptt_worker.py'] + args, timeout=120)
        assert p.returncode == 0, p.stderr
    with numpy.load(whole / 'snap.npz') as a, numpy.load(parts / 'snap.npz') as b:
        assert sorted(a.files) == sorted(b.files)
        assert a['state/rnn.h'].shape == (4, 6)              # B = 4 streams, H = 6
        for k in a.files:
            if k != '__snapshot__' and not k.startswith('elapsed'):
                numpy.testing.assert_array_equal(b[k], a[k], err_msg=k)
