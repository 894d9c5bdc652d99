"""Checksum-verified downloads into a local cache.

Every file that seqdbr fetches is named by a SHA-256 digest. A download is
streamed to a temporary file beside the destination (``seqdbr.core.atomic``),
hashed while it streams, and only renamed into place when the digest matches,
so a failed, interrupted or corrupted transfer never leaves a file behind.
Several mirror URLs may be given; they are tried in order.

When no mirror can be reached (an offline machine), :class:`DownloadError`
says which URLs were tried, what went wrong with each, and the exact path where
the file can be placed by hand.
"""
import hashlib
import os
import pathlib
import re

import requests
import urllib3

from seqdbr.core.atomic import atomic_write

__all__ = ['DownloadError', 'cache_dir', 'download_file', 'ensure_file', 'sha256_file']

_ENV_VAR = 'SEQDBR_DATA'
_SHA256_RE = re.compile(r'^[0-9a-f]{64}$')


class DownloadError(RuntimeError):
    """No mirror delivered a file with the expected SHA-256 digest.

    Attributes:
        dest (pathlib.Path): where the file was to be written (nothing was written there).
        urls (list of str): the URLs tried, in order.
        sha256 (str): the expected digest (64 lowercase hex digits).
        failures (list of (str, str)): ``(url, reason)`` for every URL tried.
    """

    def __init__(self, message, dest=None, urls=(), sha256=None, failures=()):
        super().__init__(message)
        self.dest = dest
        self.urls = list(urls)
        self.sha256 = sha256
        self.failures = list(failures)


class _ChecksumMismatch(Exception):
    """Internal: raised inside ``atomic_write`` so that the temporary file is discarded."""

    def __init__(self, actual, nbytes):
        super().__init__(actual)
        self.actual = actual
        self.nbytes = nbytes


def cache_dir():
    """The root of seqdbr's download cache, created when missing.

    Returns ``$SEQDBR_DATA`` when that environment variable is set and not empty,
    else ``~/.cache/seqdbr``.

    Returns:
        pathlib.Path: an existing directory (absolute, ``~`` expanded).

    Raises:
        OSError: when the directory cannot be created (e.g. ``$SEQDBR_DATA`` points
            into a read-only location); set ``SEQDBR_DATA`` to a writable folder.
    """
    env = os.environ.get(_ENV_VAR, '')
    root = pathlib.Path(env) if env else pathlib.Path('~') / '.cache' / 'seqdbr'
    root = root.expanduser().absolute()
    root.mkdir(parents=True, exist_ok=True)
    return root


def sha256_file(path, chunk_size=1 << 20):
    """SHA-256 digest of a file's bytes.

    Args:
        path (str or os.PathLike): the file.
        chunk_size (int): bytes read at a time.

    Returns:
        str: 64 lowercase hex digits.

    Raises:
        FileNotFoundError / OSError: when the file cannot be read.
    """
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        while True:
            block = f.read(chunk_size)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def _normalize_urls(urls):
    if isinstance(urls, (str, bytes)):
        urls = [urls]
    try:
        urls = list(urls)
    except TypeError:
        raise TypeError('urls must be a URL string or a list of mirror URL strings, got %r'
                        % (urls,)) from None
    if not urls:
        raise ValueError('urls is empty: give at least one URL to download from')
    for u in urls:
        if not isinstance(u, str) or not u.startswith(('http://', 'https://')):
            raise ValueError('every URL must be a str starting with http:// or https://, got %r'
                             % (u,))
    return urls


def _normalize_sha256(sha256):
    if not isinstance(sha256, str) or not _SHA256_RE.match(sha256.lower()):
        raise ValueError('sha256 must be 64 hex digits (the SHA-256 of the expected file), got %r'
                         % (sha256,))
    return sha256.lower()


class _NullProgress:
    """Progress sink used when tqdm is not installed: counts bytes, shows nothing."""

    def __init__(self, total=None, **kwargs):
        self.total = total
        self.n = 0

    def update(self, n):
        self.n += n

    def close(self):
        pass


def _progress_bar(total, desc):
    """A byte progress bar (tqdm when installed; hidden when stderr is not a terminal)."""
    try:
        from tqdm import tqdm
    except ImportError:
        return _NullProgress(total=total)
    return tqdm(total=total, desc=desc, unit='B', unit_scale=True, unit_divisor=1024,
                leave=False, disable=None)


def _fetch_one(url, dest, sha256, desc, timeout, chunk_size):
    """Stream ``url`` into ``dest`` atomically; raise on any failure, leaving no file."""
    headers = {'Accept-Encoding': 'identity'}   # the digest is of the bytes as published
    with requests.get(url, stream=True, timeout=timeout, headers=headers) as resp:
        resp.raise_for_status()
        length = resp.headers.get('Content-Length')
        total = int(length) if length is not None and length.isdigit() else None
        h = hashlib.sha256()
        nbytes = 0
        bar = _progress_bar(total, desc)
        try:
            with atomic_write(dest, 'wb') as f:
                # decode_content=False: keep the bytes exactly as sent, even when a
                # server labels a .gz file with Content-Encoding: gzip.
                for chunk in resp.raw.stream(chunk_size, decode_content=False):
                    h.update(chunk)
                    f.write(chunk)
                    nbytes += len(chunk)
                    bar.update(len(chunk))
                if total is not None and nbytes != total:
                    raise urllib3.exceptions.ProtocolError(
                        'transfer interrupted: received %d of %d bytes' % (nbytes, total))
                actual = h.hexdigest()
                if actual != sha256:
                    raise _ChecksumMismatch(actual, nbytes)
        finally:
            bar.close()


def download_file(urls, dest, sha256, *, desc=None, timeout=30.0, chunk_size=1 << 16):
    """Download a file, verify its SHA-256, and place it at ``dest`` atomically.

    When ``dest`` already exists with the expected digest it is returned at once,
    without any network access. Otherwise each URL is tried in order until one
    delivers bytes with the expected digest. The bytes stream into a temporary file
    in ``dest``'s directory that is renamed to ``dest`` only after the digest
    matched: an interrupted transfer, an HTTP error or a checksum mismatch leaves no
    file behind, and a pre-existing ``dest`` (with a wrong digest) stays as it was
    until a good copy replaces it.

    Args:
        urls (str or list of str): one URL, or mirror URLs tried in order.
        dest (str or os.PathLike): destination file path; missing parent directories
            are created.
        sha256 (str): expected SHA-256 of the file, 64 hex digits.
        desc (str or None): label of the progress bar (default: the file name).
        timeout (float): seconds to wait for the connection and for each read.
        chunk_size (int): bytes per read while streaming.

    Returns:
        pathlib.Path: ``dest``, holding the verified file.

    Raises:
        ValueError / TypeError: malformed ``urls``, ``sha256``, ``timeout`` or
            ``chunk_size``.
        DownloadError: no URL delivered the expected file. The message lists every
            URL with its failure (HTTP status, connection error, interrupted
            transfer, or ``expected`` vs ``actual`` sha256) and the full path where
            the file can be put by hand.
        OSError: the destination cannot be written (disk full, permissions).
    """
    urls = _normalize_urls(urls)
    sha256 = _normalize_sha256(sha256)
    if not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ValueError('timeout must be a positive number of seconds, got %r' % (timeout,))
    if not (isinstance(chunk_size, int) and chunk_size > 0):
        raise ValueError('chunk_size must be a positive int, got %r' % (chunk_size,))
    dest = pathlib.Path(dest).expanduser().absolute()

    stale = None
    if dest.is_file():
        have = sha256_file(dest)
        if have == sha256:
            return dest
        stale = have
    dest.parent.mkdir(parents=True, exist_ok=True)

    failures = []
    for url in urls:
        reason = _try_url(url, dest, sha256, desc or dest.name, timeout, chunk_size)
        if reason is None:
            return dest
        failures.append((url, reason))
    raise _download_error(dest, urls, sha256, failures, stale)


def _try_url(url, dest, sha256, desc, timeout, chunk_size):
    """Fetch ``url`` into ``dest``; None on success, else ``(kind, message)`` with kind
    'mismatch', 'unreachable' or 'failed'."""
    try:
        _fetch_one(url, dest, sha256, desc, timeout, chunk_size)
    except _ChecksumMismatch as e:
        return 'mismatch', ('checksum mismatch: expected sha256 %s, got %s (%d bytes)'
                            % (sha256, e.actual, e.nbytes))
    except requests.HTTPError as e:
        return 'failed', 'HTTP error %s' % (e.response.status_code
                                             if e.response is not None else e,)
    except requests.Timeout as e:
        return 'unreachable', 'timed out after %gs (%s)' % (timeout, type(e).__name__)
    except requests.ConnectionError as e:
        return 'unreachable', 'cannot connect (%s: %s)' % (type(e).__name__, e)
    except (requests.RequestException, urllib3.exceptions.HTTPError) as e:
        return 'failed', 'transfer failed (%s: %s)' % (type(e).__name__, e)
    return None


def _download_error(dest, urls, sha256, failures, stale):
    """The :class:`DownloadError` listing every URL's failure and how to install by hand."""
    kinds = [kind for _, (kind, _) in failures]
    reasons = [(u, reason) for u, (_, reason) in failures]
    lines = ['could not download %s (expected sha256 %s); tried %d URL(s):'
             % (dest.name, sha256, len(urls))]
    lines += ['  - %s: %s' % (u, reason) for u, reason in reasons]
    if 'mismatch' in kinds:
        lines.append('A mirror served different bytes: it may hold another version of the '
                     'file, or the transfer was corrupted.')
    elif kinds.count('unreachable') == len(urls):
        lines.append('No mirror could be reached: this machine may be offline, or the '
                     'servers are down.')
    else:
        lines.append('No mirror delivered the complete file.')
    lines.append('To install the file by hand, fetch it on a machine with network access '
                 'from one of the URLs above, check that its sha256 is %s, and put it at:'
                 % sha256)
    lines.append('    %s' % dest)
    if stale is not None:
        lines.append('(a file is already there, but its sha256 is %s: it is left unchanged; '
                     'replace it)' % stale)
    return DownloadError('\n'.join(lines), dest=dest, urls=urls, sha256=sha256,
                         failures=reasons)


def ensure_file(filename, urls, sha256, *, subdir=None, data_dir=None, desc=None,
                timeout=30.0):
    """Return the verified path of a cached file, downloading it when missing.

    The file lives at ``data_dir / filename`` when ``data_dir`` is given, else at
    ``cache_dir() / subdir / filename`` (``subdir`` may be None).

    Args:
        filename (str): bare file name (no directory part).
        urls (str or list of str): mirror URLs for the file, tried in order.
        sha256 (str): expected SHA-256, 64 hex digits.
        subdir (str or None): folder under :func:`cache_dir` (ignored with ``data_dir``).
        data_dir (str or os.PathLike or None): explicit folder for the file.
        desc (str or None): progress bar label.
        timeout (float): network timeout in seconds.

    Returns:
        pathlib.Path: the file, whose digest equals ``sha256``.

    Raises:
        ValueError: ``filename`` contains a directory separator or is empty.
        DownloadError: see :func:`download_file`.
    """
    if (not isinstance(filename, str) or not filename or os.sep in filename
            or '/' in filename or filename in ('.', '..')):
        raise ValueError('filename must be a bare file name such as "data.gz", got %r'
                         % (filename,))
    if data_dir is not None:
        folder = pathlib.Path(data_dir)
    else:
        folder = cache_dir()
        if subdir:
            folder = folder / subdir
    return download_file(urls, folder / filename, sha256, desc=desc, timeout=timeout)
