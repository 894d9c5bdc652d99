"""Thread-local run-time configuration that falls back to a process-wide default.

``config.train`` (default True) switches train/test behaviour (dropout);
``config.enable_backprop`` (default True) records the graph; ``config.debug``
(default False) turns on extra checks (NaN detection in backward).

Two objects, as in Chainer:

* ``global_config``: the process-wide values. ``seqdbr.global_config.train = False`` changes
  what *every* thread reads, including threads that already exist and the thread that
  imported seqdbr, unless that thread has set its own value.
* ``config``: what code reads. A value set on it (``config.train = False``, or inside
  ``using_config``) is local to the current thread and shadows the global one; a setting the
  thread has not set reads the global value. So a sampler thread under ``no_backprop_mode``
  never changes a trainer thread.

Reading ``config.enable_backprop`` (done on every op) stays one ordinary attribute lookup:
the global values are kept as class attributes of the thread-local class, which an instance
(thread) attribute shadows, so no Python-level fallback function runs.
"""
import contextlib
import threading

__all__ = ['config', 'global_config', 'using_config', 'no_backprop_mode', 'force_backprop_mode']


class _LocalConfig(threading.local):
    """Per-thread values (instance attributes) over the global ones (class attributes)."""
    train = True
    enable_backprop = True
    debug = False

    def __repr__(self):
        names = sorted(k for k in vars(_LocalConfig) if not k.startswith('_'))
        return 'config(%s)' % ', '.join('%s=%r' % (k, getattr(self, k)) for k in names)


class _GlobalConfig:
    """The process-wide defaults; every attribute write reaches all threads (see module)."""
    __slots__ = ()

    def __getattr__(self, name):
        if name.startswith('_'):
            raise AttributeError(name)
        try:
            return vars(_LocalConfig)[name]
        except KeyError:
            raise AttributeError('global_config has no setting %r' % name) from None

    def __setattr__(self, name, value):
        if name.startswith('_'):
            raise AttributeError('global_config settings cannot start with "_": %r' % name)
        setattr(_LocalConfig, name, value)

    def __delattr__(self, name):
        if name.startswith('_') or name not in vars(_LocalConfig):
            raise AttributeError('global_config has no setting %r' % name)
        delattr(_LocalConfig, name)

    def __repr__(self):
        names = sorted(k for k in vars(_LocalConfig) if not k.startswith('_'))
        return 'global_config(%s)' % ', '.join('%s=%r' % (k, vars(_LocalConfig)[k])
                                               for k in names)


global_config = _GlobalConfig()
config = _LocalConfig()


@contextlib.contextmanager
def using_config(name, value):
    """Set ``config.<name> = value`` inside a ``with`` block (this thread only), then restore.

    On exit a setting that the thread had not set before is removed again, so the thread goes
    back to following ``global_config``.

    Raises:
        AttributeError: an unknown setting (neither set in this thread nor global).
    """
    local = config.__dict__                    # this thread's own values
    had_local = name in local
    old = getattr(config, name)  # AttributeError for an unknown setting
    setattr(config, name, value)
    try:
        yield
    finally:
        if had_local:
            setattr(config, name, old)
        else:
            config.__dict__.pop(name, None)


def no_backprop_mode():
    """Context in which no graph is recorded: outputs have no creator (inference, sampling)."""
    return using_config('enable_backprop', False)


def force_backprop_mode():
    """Context that records the graph even inside ``no_backprop_mode``."""
    return using_config('enable_backprop', True)
