"""Atomic file writes: a crash mid-write never leaves a half-written file behind.

The data goes to a temporary file in the destination's directory (so the final
``os.replace`` is a same-filesystem rename, which POSIX makes atomic), is flushed
and fsync'ed, and only then renamed over the destination. On any exception the
temporary file is removed and an existing destination is left untouched.

A process killed outright (``kill -9``, power loss) cannot remove its temporary file. The
temporary file's name therefore says whose it is::

    .<destination name>.<pid>-<host tag>-<random>.tmp

(``host tag``: 8 hex digits of the SHA-256 of the host name), and
:func:`clean_stale_temp_files` removes, at the next start, the ones whose process is dead on
this host -- and only those: a live writer's file, another host's, or any other file is left
alone.
"""
import contextlib
import hashlib
import os
import re
import socket
import tempfile

__all__ = ['atomic_write', 'clean_stale_temp_files', 'temp_file_owner']

_TEMP_RE = re.compile(r'^\.(?P<base>.+)\.(?P<pid>[1-9][0-9]{0,9})-(?P<host>[0-9a-f]{8})-'
                      r'[A-Za-z0-9_]+\.tmp$')


def _host_tag():
    return hashlib.sha256(socket.gethostname().encode('utf-8', 'replace')).hexdigest()[:8]


def temp_file_owner(name):
    """``(pid, host_tag)`` encoded in the name of an :func:`atomic_write` temporary file, or
    None for any other name."""
    m = _TEMP_RE.match(os.path.basename(name))
    return None if m is None else (int(m.group('pid')), m.group('host'))


def clean_stale_temp_files(folder):
    """Remove the temporary files that :func:`atomic_write` calls of dead processes left in
    ``folder`` (a writer killed mid-write, e.g. by ``kill -9``).

    A file is removed only if its name has the temporary-file form (see the module
    docstring), its host tag is this host's and its process no longer exists
    (:func:`seqdbr.core.dirlock.pid_alive`). Files of live processes (a write in progress),
    of other hosts (their processes cannot be checked from here) and every other file are
    kept. Not recursive.

    Args:
        folder (str or os.PathLike): the folder to clean (a missing folder: nothing to do).

    Returns:
        list of (str, int): ``(path, size in bytes)`` of each removed file.
    """
    from seqdbr.core.dirlock import pid_alive
    folder = os.fspath(folder)
    me = _host_tag()
    removed = []
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for name in names:
        owner = temp_file_owner(name)
        if owner is None or owner[1] != me or pid_alive(owner[0]):
            continue
        path = os.path.join(folder, name)
        try:
            size = os.lstat(path).st_size
            os.unlink(path)
        except FileNotFoundError:
            continue
        removed.append((path, size))
    return removed


@contextlib.contextmanager
def atomic_write(path, mode='wb', encoding=None):
    """Open a temporary file that replaces ``path`` when the block exits cleanly.

    Args:
        path (str or os.PathLike): destination file.
        mode (str): ``'wb'`` (default) or ``'w'`` (text, ``encoding`` defaults to UTF-8).
        encoding (str or None): text encoding for ``mode='w'``.

    Yields:
        file object open for writing.

    Raises:
        ValueError: ``mode`` is not ``'wb'`` or ``'w'``.
        IsADirectoryError: ``path`` is a directory.
        FileNotFoundError: when the destination's directory does not exist.
        Any exception of the block (also ``KeyboardInterrupt``) or of the final fsync and
        rename, after the temporary file is removed.
    """
    yield from _write_then_replace(path, mode, encoding)


def _write_then_replace(path, mode, encoding):
    """The generator behind :func:`atomic_write` (kept undecorated so that tools that skip
    decorated functions, such as mutmut, still test this body)."""
    if mode not in ('wb', 'w'):
        raise ValueError("atomic_write mode must be 'wb' or 'w', got %r" % (mode,))
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise IsADirectoryError('cannot write %r: it is a directory; give a file path' % path)
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            'cannot write %r: directory %r does not exist (create it first)' % (path, directory))
    fd, tmp = tempfile.mkstemp(prefix='.%s.%d-%s-' % (os.path.basename(path), os.getpid(),
                                                      _host_tag()),
                               suffix='.tmp', dir=directory)
    try:
        # mkstemp creates the file 0600; give it the usual permissions (0666 minus umask).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        if mode == 'w':
            f = os.fdopen(fd, 'w', encoding=encoding or 'utf-8', newline='')
        else:
            f = os.fdopen(fd, 'wb')
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    # Make the rename durable too (best effort: not every filesystem allows it).
    with contextlib.suppress(OSError):
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
