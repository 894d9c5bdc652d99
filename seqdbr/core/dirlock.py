"""One process per folder: an advisory lock file that names its holder.

    with DirectoryLock(out_dir):          # raises DirectoryLockedError if another run holds it
        ...                               # train, write checkpoints and logs

The lock is a file ``<folder>/.seqdbr.lock`` created with ``O_CREAT | O_EXCL`` (atomic on
local filesystems and on NFSv3+), holding one JSON object: ``pid``, ``host``, ``started``
(UTC ISO time), ``command`` (the command line), ``pid_start`` (the process's start time in
clock ticks from ``/proc``, Linux only, so a reused pid is not mistaken for the holder) and
``token`` (random, so that a release only ever removes its own lock).

* A second locker gets :class:`DirectoryLockedError` whose message names the other process
  (pid, host, start time, command) and the lock file.
* A **stale** lock -- its holder ran on this host and is dead (``kill(pid, 0)`` fails with
  ESRCH, or the pid now belongs to a process that started later), or the file is empty or
  unreadable and older than :data:`PARTIAL_GRACE_S` (a holder killed between creating and
  writing it) -- is taken over with a notice. Takeovers are serialized by a second
  ``O_EXCL`` file (``.seqdbr.lock.takeover``), and the stale lock is removed only if it
  still holds the bytes that were judged stale, so two processes finding the same stale lock
  cannot both end up holding the folder.
* A lock held on another host is never taken over (its pid cannot be checked from here); the
  message says to delete the file if that run is gone.
* Released (the file removed, if it is still ours) when the ``with`` block exits, on an
  exception too. A ``kill -9`` leaves the file behind; the next locker takes it over.

This is advisory: it protects seqdbr runs from each other, not from other programs.
"""
import datetime
import json
import os
import secrets
import socket
import sys
import time

__all__ = ['DirectoryLock', 'DirectoryLockedError', 'LOCK_NAME', 'pid_alive']

#: Name of the lock file inside the locked folder.
LOCK_NAME = '.seqdbr.lock'
#: An empty or unparsable lock file younger than this (seconds) is a holder still writing it.
PARTIAL_GRACE_S = 5.0
#: How long to wait for another process's takeover of a stale lock (seconds).
TAKEOVER_WAIT_S = 10.0


class DirectoryLockedError(RuntimeError):
    """The folder is locked by another live process (or one on another host).

    Attributes:
        path (str): the lock file.
        holder (dict): what the lock file says about its holder (may be empty).
    """

    def __init__(self, message, path, holder):
        super().__init__(message)
        self.path = path
        self.holder = holder


def _process_start_ticks(pid):
    """Start time of ``pid`` in clock ticks since boot (Linux ``/proc``), or None."""
    try:
        with open('/proc/%d/stat' % pid, 'rb') as f:
            data = f.read()
        return int(data[data.rindex(b')') + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _is_zombie(pid):
    """True when ``/proc`` says ``pid`` has exited and only waits to be reaped (state Z or
    X): a killed holder whose parent has not collected it yet holds nothing."""
    try:
        with open('/proc/%d/stat' % pid, 'rb') as f:
            data = f.read()
        return data[data.rindex(b')') + 2:data.rindex(b')') + 3] in (b'Z', b'X')
    except (OSError, ValueError):
        return False


def pid_alive(pid, start_ticks=None):
    """Whether process ``pid`` exists on this host (and, when ``start_ticks`` is given and
    ``/proc`` can tell, is the process that started then rather than a reuse of its pid). An
    exited process that waits to be reaped (a zombie) counts as dead."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass                                     # exists, owned by another user
    except OSError:
        return False
    if start_ticks is not None:
        now = _process_start_ticks(pid)
        if now is not None and now != start_ticks:
            return False
    return not _is_zombie(pid)


def _hostname():
    return socket.gethostname()


def _read(path):
    """``(raw bytes, dict or None)`` of a lock file; ``(None, None)`` when it is gone."""
    try:
        with open(path, 'rb') as f:
            raw = f.read(65536)
    except FileNotFoundError:
        return None, None
    except OSError:
        return b'', None
    try:
        info = json.loads(raw.decode('utf-8'))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return raw, None
    return raw, (info if isinstance(info, dict) else None)


def _describe(info):
    if not info:
        return 'an unknown process (the lock file is empty or unreadable)'
    return 'process %s on %s, started %s (%s)' % (
        info.get('pid', '?'), info.get('host', '?'), info.get('started', '?'),
        str(info.get('command', '?'))[:300])


class DirectoryLock:
    """Context manager holding ``<path>/.seqdbr.lock`` (see the module docstring).

    Args:
        path (str or os.PathLike): the folder to lock; it must exist.
        command (str or None): recorded in the lock (default: ``sys.argv`` joined).
        notice (callable or None): called with one message string when a stale lock is taken
            over (default: print to ``sys.stderr``).

    Attributes:
        lock_path (str): the lock file.
        taken_over (dict or None): the stale holder's record when one was taken over.

    Raises (on entering, or :meth:`acquire`):
        DirectoryLockedError: another live process on this host holds the folder, or a
            process on another host does; the message names it and the lock file.
        FileNotFoundError: the folder does not exist.
        PermissionError: the folder is not writable.
    """

    def __init__(self, path, command=None, notice=None):
        self.path = os.fspath(path)
        self.lock_path = os.path.join(self.path, LOCK_NAME)
        self.command = command if command is not None else ' '.join(sys.argv)
        self.notice = notice
        self.taken_over = None
        self._token = None

    def __repr__(self):
        return 'DirectoryLock(%r, held=%s)' % (self.path, self._token is not None)

    @property
    def held(self):
        """bool: this object holds the lock."""
        return self._token is not None

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()

    def _record(self):
        self._token = secrets.token_hex(8)
        return {'pid': os.getpid(), 'host': _hostname(),
                'started': datetime.datetime.now(datetime.timezone.utc).isoformat(
                    timespec='seconds'),
                'command': self.command, 'pid_start': _process_start_ticks(os.getpid()),
                'token': self._token}

    def _try_create(self):
        try:
            fd = os.open(self.lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        except FileNotFoundError:
            raise FileNotFoundError('cannot lock %s: the folder does not exist' % self.path) \
                from None
        try:
            os.write(fd, json.dumps(self._record()).encode('utf-8'))
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            self._token = None
            try:
                os.unlink(self.lock_path)
            except OSError:
                pass
            raise
        os.close(fd)
        return True

    def _is_stale(self, raw, info):
        if info is None:                       # empty/partial: stale once old enough
            try:
                age = time.time() - os.stat(self.lock_path).st_mtime
            except FileNotFoundError:
                return None
            return True if age > PARTIAL_GRACE_S else None      # None: wait and look again
        if info.get('host') != _hostname():
            return False
        return not pid_alive(info.get('pid'), info.get('pid_start'))

    def acquire(self):
        """Take the lock (see the class docstring for what is raised)."""
        if self._token is not None:
            raise RuntimeError('%r is already held; DirectoryLock is not reentrant' % self)
        deadline = time.monotonic() + PARTIAL_GRACE_S + TAKEOVER_WAIT_S
        while True:
            if self._try_create():
                return self
            raw, info = _read(self.lock_path)
            if raw is None:
                continue                       # released meanwhile: try again
            stale = self._is_stale(raw, info)
            if stale is False:
                raise self._locked_error(info)
            if stale and self._remove_stale(raw):
                self.taken_over = info or {}
                self._notify('notice: took over the stale lock %s of %s, which is no longer '
                             'running' % (self.lock_path, _describe(info)))
                continue
            if time.monotonic() > deadline:
                raise self._locked_error(info)
            time.sleep(0.05)

    def _locked_error(self, info):
        where = ('if that run is gone (it ran on another host, so it cannot be checked from '
                 'here), delete %s' % self.lock_path) if info and info.get('host') != \
            _hostname() else ('wait for it to finish, stop it, or use another output folder')
        return DirectoryLockedError(
            'the folder %s is in use by %s: only one run may write into a folder at a time; '
            '%s' % (self.path, _describe(info), where), self.lock_path, info or {})

    def _notify(self, msg):
        if self.notice is not None:
            self.notice(msg)
        else:
            print(msg, file=sys.stderr, flush=True)

    def _remove_stale(self, raw):
        """Remove the lock file if it still holds ``raw``, under the takeover mutex."""
        mutex = self.lock_path + '.takeover'
        deadline = time.monotonic() + TAKEOVER_WAIT_S
        while True:
            try:
                fd = os.open(mutex, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                break
            except FileExistsError:
                _, other = _read(mutex)
                try:
                    age = time.time() - os.stat(mutex).st_mtime
                except FileNotFoundError:
                    continue
                dead = (other is not None and other.get('host') == _hostname()
                        and not pid_alive(other.get('pid'), other.get('pid_start')))
                if dead or age > TAKEOVER_WAIT_S:
                    try:
                        os.unlink(mutex)
                    except FileNotFoundError:
                        pass
                    continue
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.02)
        try:
            os.write(fd, json.dumps({'pid': os.getpid(), 'host': _hostname(),
                                     'pid_start': _process_start_ticks(os.getpid())})
                     .encode('utf-8'))
            os.close(fd)
            now, _ = _read(self.lock_path)
            if now != raw:
                return False                   # someone else took it over (or released)
            os.unlink(self.lock_path)
            return True
        finally:
            try:
                os.unlink(mutex)
            except FileNotFoundError:
                pass

    def release(self):
        """Remove the lock file if it is still this object's (idempotent)."""
        token, self._token = self._token, None
        if token is None:
            return
        _, info = _read(self.lock_path)
        if info is not None and info.get('token') == token:
            try:
                os.unlink(self.lock_path)
            except FileNotFoundError:
                pass
