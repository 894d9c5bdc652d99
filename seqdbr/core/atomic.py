"""Atomic file writes: a crash mid-write never leaves a half-written file behind.

The data goes to a temporary file in the destination's directory (so the final
``os.replace`` is a same-filesystem rename, which POSIX makes atomic), is flushed
and fsync'ed, and only then renamed over the destination. On any exception the
temporary file is removed and an existing destination is left untouched.
"""
import contextlib
import os
import tempfile

__all__ = ['atomic_write']


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
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', suffix='.tmp',
                               dir=directory)
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
