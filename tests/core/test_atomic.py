"""``seqdbr.core.atomic.atomic_write``: contents, permissions that follow the umask, and a
destination that is either the old file or the complete new one, never a half-written file
or a stray temporary file, whatever interrupts the write (an exception, Ctrl-C, a failed
rename)."""
import os
import stat

import pytest

from seqdbr.core import atomic
from seqdbr.core.atomic import atomic_write


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask():
    """Set the process umask for one test (restored afterwards)."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda m: os.umask(m)
    os.umask(old)


def test_binary_write_creates_the_file(tmp_path):
    p = tmp_path / 'a.bin'
    with atomic_write(p) as f:
        f.write(b'\x00\x01payload')
    assert p.read_bytes() == b'\x00\x01payload'
    assert os.listdir(tmp_path) == ['a.bin']


def test_text_mode_utf8_by_default_and_line_endings_kept(tmp_path):
    p = tmp_path / 'a.txt'
    with atomic_write(str(p), mode='w') as f:
        f.write('caf\u00e9\r\nline\n')
    assert p.read_bytes() == 'caf\u00e9\r\nline\n'.encode('utf-8')
    with atomic_write(p, mode='w', encoding='latin-1') as f:
        f.write('caf\u00e9')
    assert p.read_bytes() == b'caf\xe9'


def test_replaces_only_when_the_block_completes(tmp_path):
    p = tmp_path / 'a.txt'
    p.write_text('old')
    with atomic_write(p, 'w') as f:
        f.write('new contents')
        f.flush()
        # mid-write: the destination still holds the old file; the data sits in a hidden
        # temporary file in the same directory (so the rename stays on one filesystem)
        assert p.read_text() == 'old'
        (tmp,) = [n for n in os.listdir(tmp_path) if n != 'a.txt']
        assert tmp.startswith('.a.txt.') and tmp.endswith('.tmp')
        assert (tmp_path / tmp).read_text() == 'new contents'
    assert p.read_text() == 'new contents'
    assert os.listdir(tmp_path) == ['a.txt']


@pytest.mark.parametrize('mask,expected', [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664),
                                           (0o000, 0o666)])
def test_permissions_follow_the_umask(tmp_path, umask, mask, expected):
    """Like ``open(path, 'w')``: 0666 minus the umask (a bare temporary file would be 0600,
    making every saved checkpoint unreadable to the group)."""
    umask(mask)
    new = tmp_path / 'new.npz'
    with atomic_write(new) as f:
        f.write(b'x')
    assert _mode(new) == expected
    plain = tmp_path / 'plain'
    with open(plain, 'wb'):
        pass
    assert _mode(plain) == expected                 # the same as a plain open()
    assert os.umask(mask) == mask                   # the umask itself is left as it was


@pytest.mark.parametrize('exc', [KeyboardInterrupt, RuntimeError, SystemExit])
def test_interrupted_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path, exc):
    p = tmp_path / 'latest.npz'
    p.write_bytes(b'old checkpoint')
    with pytest.raises(exc):
        with atomic_write(p) as f:
            f.write(b'half of the new')
            raise exc()
    assert p.read_bytes() == b'old checkpoint'
    assert os.listdir(tmp_path) == ['latest.npz']


def test_interrupted_first_write_leaves_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(tmp_path / 'x', 'w') as f:
            f.write('partial')
            raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []


def test_failed_fsync_or_rename_keeps_the_old_file(tmp_path, monkeypatch):
    p = tmp_path / 'f'
    p.write_bytes(b'old')
    for name in ('fsync', 'replace'):
        def fail(*args, _name=name):
            raise OSError(28, 'No space left on device (%s)' % _name)
        with monkeypatch.context() as m:
            m.setattr(atomic.os, name, fail)
            with pytest.raises(OSError, match='No space left'):
                with atomic_write(p) as f:
                    f.write(b'new')
        assert p.read_bytes() == b'old'
        assert os.listdir(tmp_path) == ['f']


def test_data_is_fsynced_before_the_rename(tmp_path, monkeypatch):
    """The file's data reaches the disk before the rename makes it visible, and the
    directory entry is synced after it (best effort)."""
    p = tmp_path / 'f'
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(('fsync', stat.S_ISDIR(os.fstat(fd).st_mode), p.exists()))
        return real_fsync(fd)

    def replace(a, b):
        events.append(('replace',))
        return real_replace(a, b)

    monkeypatch.setattr(atomic.os, 'fsync', fsync)
    monkeypatch.setattr(atomic.os, 'replace', replace)
    with atomic_write(p) as f:
        f.write(b'data')
    assert events == [('fsync', False, False), ('replace',), ('fsync', True, True)]


def test_directory_fsync_failure_is_ignored(tmp_path, monkeypatch):
    """Some filesystems refuse to fsync a directory: the write has happened, so it counts."""
    p = tmp_path / 'f'
    real_open = os.open

    def no_dir_open(path, flags, *a):
        if os.path.isdir(path):
            raise PermissionError(13, 'no')
        return real_open(path, flags, *a)

    monkeypatch.setattr(atomic.os, 'open', no_dir_open)
    with atomic_write(p) as f:
        f.write(b'ok')
    assert p.read_bytes() == b'ok'


def test_bad_mode_missing_directory_and_directory_target(tmp_path):
    with pytest.raises(ValueError) as e:
        with atomic_write(tmp_path / 'x', mode='a'):
            pass
    assert str(e.value) == "atomic_write mode must be 'wb' or 'w', got 'a'"
    missing = tmp_path / 'nope' / 'x'
    with pytest.raises(FileNotFoundError) as e:
        with atomic_write(missing):
            pass
    assert str(e.value) == ('cannot write %r: directory %r does not exist (create it first)'
                            % (str(missing), str(tmp_path / 'nope')))
    with pytest.raises(IsADirectoryError) as e:
        with atomic_write(tmp_path):
            pass
    assert str(e.value) == ('cannot write %r: it is a directory; give a file path'
                            % str(tmp_path))
    assert os.listdir(tmp_path) == []


def test_cleanup_failure_does_not_hide_the_original_error(tmp_path, monkeypatch):
    """If removing the temporary file fails too, the caller still sees the error that
    interrupted the write (here Ctrl-C), not the OSError of the cleanup."""
    def unlink_fails(path):
        raise PermissionError(13, 'Permission denied', path)

    monkeypatch.setattr(atomic.os, 'unlink', unlink_fails)
    p = tmp_path / 'f'
    p.write_bytes(b'old')
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(p) as f:
            f.write(b'new')
            raise KeyboardInterrupt
    assert p.read_bytes() == b'old'
