"""Thread-local run-time configuration.

``config.train`` (default True) switches train/test behaviour (dropout);
``config.enable_backprop`` (default True) records the graph; ``config.debug``
(default False) turns on extra checks (NaN detection in backward).
Each thread sees its own values, so a sampler thread under ``no_backprop_mode``
never changes a trainer thread.
"""
import contextlib
import threading

__all__ = ['config', 'global_config', 'using_config', 'no_backprop_mode', 'force_backprop_mode']


class _GlobalConfig:
    train = True
    enable_backprop = True
    debug = False


global_config = _GlobalConfig()


class _LocalConfig(threading.local):
    """Each thread starts from ``global_config``'s values; writes are local to the thread.

    Values are plain instance attributes (not a fallback lookup) so reading
    ``config.enable_backprop`` on every op costs one dict hit.
    """

    def __init__(self):
        self.train = global_config.train
        self.enable_backprop = global_config.enable_backprop
        self.debug = global_config.debug


config = _LocalConfig()


@contextlib.contextmanager
def using_config(name, value):
    """Set ``config.<name> = value`` inside a ``with`` block (this thread only), then restore."""
    old = getattr(config, name)  # AttributeError for an unknown setting
    setattr(config, name, value)
    try:
        yield
    finally:
        setattr(config, name, old)


def no_backprop_mode():
    """Context in which no graph is recorded: outputs have no creator (inference, sampling)."""
    return using_config('enable_backprop', False)


def force_backprop_mode():
    """Context that records the graph even inside ``no_backprop_mode``."""
    return using_config('enable_backprop', True)
