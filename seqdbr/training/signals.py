"""SIGINT/SIGTERM as a request to stop after the current iteration.

Inside :class:`SignalCatcher` (main thread only; elsewhere it does nothing) the first SIGINT
or SIGTERM only sets ``signum``: the trainer finishes the iteration, writes its snapshot and
returns, and the program exits with ``128 + signum`` (130 / 143). While a snapshot is being
written (:meth:`SignalCatcher.deferring`) further signals are held back until the write is
complete, so a second Ctrl-C cannot leave a half-written or missing file; a third signal
during the same write gives up at once (:class:`Aborted`, a ``KeyboardInterrupt`` carrying
the first signal's number; the write is atomic, so the previous file survives). Outside a
write a second signal also gives up at once.
"""
import contextlib
import signal
import threading

__all__ = ['SignalCatcher', 'Aborted']

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Aborted(KeyboardInterrupt):
    """A second SIGINT/SIGTERM gave up at once; ``signum`` is the first signal's number, so
    the program can exit with its usual status (``128 + signum``)."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


class SignalCatcher:
    """Context manager turning SIGINT/SIGTERM into a flag (see the module docstring).

    Attributes:
        signum (int or None): the first signal received.
    """

    def __init__(self):
        self.signum = None
        self._old = {}
        self._writing = False
        self._held = 0

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in _SIGNALS:
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signum is None:
            self.signum = signum
            return
        if self._writing and self._held == 0:
            self._held += 1         # finish the snapshot first
            return
        signal.signal(signum, self._old.get(signum, signal.SIG_DFL))
        raise Aborted(self.signum)

    @contextlib.contextmanager
    def deferring(self):
        """Hold back a second signal while the body (a snapshot write) runs."""
        self._writing, self._held = True, 0
        try:
            yield
        finally:
            self._writing = False

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}
