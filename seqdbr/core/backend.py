"""One array API over NumPy (CPU) and CuPy (GPU).

CuPy is optional: it is imported lazily, the first time a GPU is asked for or a
non-NumPy array is seen, and a missing CuPy never breaks CPU code.

Three rules keep GPU code correct and fast (docs/design.md, "Arrays and devices"):

* **Placement.** Code that creates arrays for existing data (a lazy parameter, an
  optimizer state, a carried RNN state, a sampler's inputs) does it inside
  ``with using_device(that_data):``, so the arrays land on the data's GPU, not on
  whichever GPU happens to be current. On NumPy data it is a shared no-op context.
* **Fetches.** Every device-to-host transfer in library code goes through
  :func:`to_host` (or :func:`fetch_scalars`), so :func:`counting_fetches` can count them.
* **Deferred checks.** Range checks of device-side ids and labels do not sync: they are
  queued with :func:`check_later` and read, together with the loss, by the next fetch.
"""
import contextlib
import threading

import numpy

__all__ = ['get_array_module', 'is_gpu_available', 'cupy_or_none', 'CpuDevice', 'GpuDevice',
           'get_device', 'get_device_from_array', 'to_cpu', 'to_gpu', 'to_device',
           'is_array', 'is_device_array', 'using_device', 'gpu_device_count', 'to_host',
           'fetch_scalars', 'LazyScalar', 'check_later', 'check_index_range', 'flush_checks',
           'counting_fetches']

_cupy = None
_cupy_checked = False


def cupy_or_none():
    """Return the ``cupy`` module, or None when CuPy is not installed (imported once, lazily)."""
    global _cupy, _cupy_checked
    if not _cupy_checked:
        _cupy_checked = True
        try:
            import cupy
            _cupy = cupy
        except Exception:  # ImportError, or a broken CUDA install raising at import
            _cupy = None
    return _cupy


def is_gpu_available():
    """True when CuPy imports and at least one CUDA device answers. Never raises."""
    cp = cupy_or_none()
    if cp is None:
        return False
    try:
        return cp.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


_ndarray = numpy.ndarray
_device_types = {}   # type -> bool: does the type implement __cuda_array_interface__


def is_device_array(x):
    """True for a CUDA array (CuPy, or any type with ``__cuda_array_interface__``).

    Decided once per *type* (a dict lookup afterwards), so it never evaluates the
    interface property, which on CuPy builds a dict and queries the stream.
    """
    t = type(x)
    if t is _ndarray:
        return False
    r = _device_types.get(t)
    if r is None:
        r = _device_types[t] = hasattr(t, '__cuda_array_interface__')
    return r


def is_array(x):
    """True for a ``numpy.ndarray`` or a CUDA array (not for Variables or scalars)."""
    return type(x) is _ndarray or is_device_array(x)


def get_array_module(*xs):
    """Return ``numpy`` or ``cupy``, whichever the arrays (or Variables) ``xs`` belong to.

    NumPy is returned for NumPy arrays, Python scalars and when CuPy is absent.
    """
    for x in xs:
        t = type(x)
        if t is numpy.ndarray:
            continue
        if is_device_array(x) or is_device_array(getattr(x, 'array', None)):
            return cupy_or_none()
    return numpy


class _NullContext:
    """A reusable do-nothing context manager (what ``using_device`` returns for host data)."""
    __slots__ = ()

    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


_NULL_CONTEXT = _NullContext()


class CpuDevice:
    """The host: arrays are ``numpy.ndarray``."""
    xp = numpy
    name = 'cpu'

    def send(self, array):
        return to_cpu(array)

    def use(self):
        """Nothing to select on the host (kept so every device has ``use()``)."""

    def using(self):
        """A do-nothing context manager (see :func:`using_device`)."""
        return _NULL_CONTEXT

    def __eq__(self, other):
        return isinstance(other, CpuDevice)

    def __hash__(self):
        return hash('cpu')

    def __repr__(self):
        return 'CpuDevice()'


_device_count = None


def gpu_device_count():
    """The number of CUDA devices CuPy sees (0 without CuPy or a driver; cached)."""
    global _device_count
    if _device_count is None:
        cp = cupy_or_none()
        n = 0
        if cp is not None:
            try:
                n = int(cp.cuda.runtime.getDeviceCount())
            except Exception:
                n = 0
        _device_count = n
    return _device_count


class GpuDevice:
    """CUDA device ``id`` through CuPy.

    Args:
        id (int): the device ordinal, ``0 <= id < gpu_device_count()``.

    Raises:
        RuntimeError: CuPy or a CUDA GPU is not usable.
        ValueError: ``id`` is negative or not below the number of devices (the message
            names the valid range).
    """
    name = 'gpu'

    def __init__(self, id=0):
        if isinstance(id, bool) or not isinstance(id, (int, numpy.integer)):
            raise TypeError('GpuDevice: the device id must be an int, got %r' % (id,))
        count = gpu_device_count()
        if count == 0:
            raise RuntimeError('a GPU device was requested but CuPy or a CUDA GPU is not usable; '
                               'install the extra with `pip install -e .[gpu]` on a CUDA machine, '
                               'or use the CPU (device "cpu")')
        if not 0 <= id < count:
            raise ValueError('gpu:%d does not exist: this machine has %d CUDA device%s '
                             '(gpu:0%s); pick one of those or use "cpu"'
                             % (id, count, '' if count == 1 else 's',
                                '' if count == 1 else ' .. gpu:%d' % (count - 1)))
        self.id = int(id)
        self.xp = cupy_or_none()

    def send(self, array):
        return to_gpu(array, self)

    def use(self):
        """Make this the current CUDA device of the calling thread."""
        self.xp.cuda.Device(self.id).use()

    def using(self):
        """A context manager that makes this device current and restores the previous one."""
        return self.xp.cuda.Device(self.id)

    def __eq__(self, other):
        return isinstance(other, GpuDevice) and other.id == self.id

    def __hash__(self):
        return hash(('gpu', self.id))

    def __repr__(self):
        return 'GpuDevice(%d)' % self.id


def using_device(obj):
    """Context manager: make the device of ``obj`` current while the block runs.

    This is the one placement mechanism of seqdbr: entry points that create arrays for
    existing data (lazy parameters, initializers, optimizer state, RNN carried state,
    sampling and evaluation inputs) wrap the creation in it, so ``gpu:1`` data gets
    ``gpu:1`` arrays whatever device is current.

    Args:
        obj: an array (NumPy or CuPy), a Variable, a device object, a device spec
            (``'cpu'``, ``'gpu:1'``, ...) or None.

    Returns:
        a context manager; for host data and None a shared no-op one (no CuPy call).
    """
    if obj is None or type(obj) is _ndarray:
        return _NULL_CONTEXT
    if is_device_array(obj):
        return obj.device
    arr = getattr(obj, 'array', None)     # a Variable / Parameter
    if arr is not None or hasattr(obj, 'grad'):
        return using_device(arr)
    if isinstance(obj, (CpuDevice, GpuDevice)):
        return obj.using()
    if isinstance(obj, (str, int)):
        return get_device(obj).using()
    if isinstance(obj, (numpy.generic, float, complex)):
        return _NULL_CONTEXT
    raise TypeError('using_device expects an array, a Variable, a device or a device spec, '
                    'got %s' % type(obj).__name__)


def get_device(spec):
    """Turn ``'cpu'``, ``'gpu'``, ``'gpu:N'``, ``'@cupy:N'``, an int (>=0 GPU, <0 CPU) or a
    device object into a device object.

    Raises:
        ValueError: an unknown spec, or ``gpu:N`` with N not below the device count.
        RuntimeError: a GPU spec on a machine without CuPy or a CUDA GPU.
    """
    if isinstance(spec, (CpuDevice, GpuDevice)):
        return spec
    if spec is None or spec == 'cpu' or spec == '@numpy':
        return CpuDevice()
    if isinstance(spec, int) and not isinstance(spec, bool):
        return CpuDevice() if spec < 0 else GpuDevice(spec)
    if isinstance(spec, str):
        for prefix in ('gpu', '@cupy', 'cuda'):
            if spec == prefix:
                return GpuDevice(0)
            if spec.startswith(prefix + ':'):
                try:
                    n = int(spec[len(prefix) + 1:])
                except ValueError:
                    break
                return GpuDevice(n)
    raise ValueError("unknown device %r: use 'cpu', 'gpu' or 'gpu:N'" % (spec,))


def get_device_from_array(array):
    """The device an array lives on (``CpuDevice()`` for anything that is not a CUDA array)."""
    if is_device_array(array):
        return GpuDevice(array.device.id)
    return CpuDevice()


def device_key(array):
    """A cheap hashable id of an array's device: -1 for the host, else the CUDA ordinal."""
    if type(array) is _ndarray or not is_device_array(array):
        return -1
    return array.device.id


# -- device-to-host fetches ---------------------------------------------------------------------

class _FetchState(threading.local):
    def __init__(self):
        self.counter = None     # a FetchCounter while counting_fetches() is active
        self.pending = []       # deferred checks: (1-d flag array, [error factories])
        self.n_pending = 0      # number of factories (checks) queued


_state = _FetchState()

# Queued checks are merged on their device (no transfer) every COMPACT_CHECKS entries; more
# than MAX_PENDING_CHECKS checks are read at once (bounds what their error factories keep).
COMPACT_CHECKS = 64
MAX_PENDING_CHECKS = 4096


class FetchCounter:
    """What :func:`counting_fetches` records.

    Attributes:
        count (int): device-to-host transfers (calls of :func:`to_host` and
            :func:`fetch_scalars`, one each) made inside the block.
        sites (list of str): a short description of each, for failure messages.
    """

    def __init__(self):
        self.count = 0
        self.sites = []

    def _record(self, what):
        self.count += 1
        self.sites.append(what)


@contextlib.contextmanager
def counting_fetches():
    """Count the device-to-host transfers library code makes inside the block.

    Works without a GPU: NumPy arrays are counted as if they lived on a device (every
    :func:`to_host` / :func:`fetch_scalars` call is one transfer), and :func:`check_later`
    defers NumPy checks as it does CuPy ones, so the CPU run follows the GPU run's fetch
    pattern. Yields a :class:`FetchCounter`. Not reentrant per thread.
    """
    counter = FetchCounter()
    prev = _state.counter
    _state.counter = counter
    try:
        yield counter
    finally:
        _state.counter = prev


def _transfer(array, what):
    c = _state.counter
    if c is not None:
        c._record(what)
    if type(array) is _ndarray:
        return array
    return array.get()


def to_host(array):
    """Copy an array to the host: ``numpy.ndarray`` in, the same object out; a CUDA array in,
    a new ``numpy.ndarray`` out (one synchronising transfer).

    Every device-to-host transfer in seqdbr goes through this function (or
    :func:`fetch_scalars`). Pending deferred checks (:func:`check_later`) ride along in
    the same transfer, and a failed one raises here.

    Raises:
        whatever error a failed deferred check builds (e.g. IndexError for bad ids).
    """
    what = 'to_host %s' % (getattr(array, 'shape', None),)
    if not _state.pending:
        return _transfer(array, what)
    key = device_key(array)
    if any(device_key(f) not in (-1, key) for f, _ in _state.pending):
        flush_checks()                     # checks of another GPU: their own transfer
        return _transfer(array, what)
    pending, factories = _take_pending()
    xp = get_array_module(array)
    with using_device(array):              # the array's bytes and the flags, losslessly
        raw = xp.ascontiguousarray(array).reshape(-1).view(numpy.uint8)
        flags = [xp.asarray(f).astype(numpy.uint8) for f in pending]
        host = _transfer(xp.concatenate([raw] + flags),
                         '%s + %d checks' % (what, len(factories)))
    _raise_failed(factories, host[raw.size:])
    return host[:raw.size].view(array.dtype).reshape(array.shape)


def fetch_scalars(*values):
    """Fetch several 0-d values (and the pending deferred checks) in ONE transfer.

    Args:
        *values: 0-d arrays (NumPy or CuPy, any real dtype), Variables holding them, or
            Python numbers.

    Returns:
        tuple of Python floats, one per value.

    Raises:
        the error of the first failed deferred check, if any.
    """
    arrays = [v if is_array(v) else getattr(v, 'array', v) for v in values]
    if not _state.pending and not any(is_device_array(a) for a in arrays) \
            and _state.counter is None:
        return tuple(float(a) for a in arrays)
    parts = [a.reshape(1) if is_array(a) else numpy.asarray([a], numpy.float64)
             for a in arrays]
    host = _fetch_with_checks(parts, 'fetch_scalars(%d)' % len(arrays))
    return tuple(float(v) for v in host[:len(arrays)])


def _fetch_with_checks(parts, what):
    """Concatenate ``parts`` (1-d) and the pending check flags on one device, fetch them
    in one transfer, raise the first failed check, and return the host float64 array."""
    flags, factories = _take_pending()
    everything = parts + flags
    keys = {device_key(p) for p in everything}
    keys.discard(-1)    # host parts are uploaded to the device of the others (tiny)
    if len(keys) <= 1:
        xp = get_array_module(*everything)
        with using_device(next((p for p in everything if is_device_array(p)), None)):
            flat = xp.concatenate([xp.asarray(p).astype(numpy.float64) for p in everything]) \
                if everything else numpy.zeros(0)
        host = _transfer(flat, '%s + %d checks' % (what, len(factories)))
    else:   # arrays on several GPUs: one transfer per array
        host = numpy.concatenate([numpy.asarray(_transfer(p, what), numpy.float64).reshape(-1)
                                  for p in everything])
    n = len(host) - len(factories)
    _raise_failed(factories, host[n:])
    return host[:n]


def _take_pending():
    """Empty the queue: (list of 1-d flag arrays, list of their error factories in order)."""
    pending, _state.pending, _state.n_pending = _state.pending, [], 0
    return [f for f, _ in pending], [m for _, ms in pending for m in ms]


def _raise_failed(factories, flags):
    for make_error, bad in zip(factories, flags):
        if bad:
            raise make_error()


def _compact_pending():
    """Merge the queued flags of each device into one array (on the device: no transfer)."""
    groups = {}
    for f, ms in _state.pending:
        groups.setdefault(device_key(f), []).append((f, ms))
    merged = []
    for entries in groups.values():
        f0 = entries[0][0]
        xp = get_array_module(f0)
        with using_device(f0):
            flags = xp.concatenate([f for f, _ in entries])
        merged.append((flags, [m for _, ms in entries for m in ms]))
    _state.pending = merged


class LazyScalar:
    """A 0-d value kept on its device until read: ``float(v)`` fetches it (once, through
    :func:`fetch_scalars`, with the pending deferred checks) and caches the result.

    Attributes:
        array: the 0-d array (NumPy or CuPy).
    """
    __slots__ = ('array', '_value')

    def __init__(self, array):
        self.array = array
        self._value = None

    def __float__(self):
        if self._value is None:
            self._value = fetch_scalars(self.array)[0]
        return self._value

    def item(self):
        return float(self)

    def __format__(self, spec):
        return format(float(self), spec)

    def __repr__(self):
        return 'LazyScalar(%s)' % ('not fetched' if self._value is None else self._value)


def check_later(bad, make_error):
    """Queue a check whose verdict lives on the device, to be read by the next fetch.

    Args:
        bad: a 0-d boolean array, True when the check failed (e.g. ``(ids >= V).any()``).
        make_error: a callable returning the exception to raise; it runs only on failure
            and may fetch whatever it needs to write a good message.

    A NumPy ``bad`` is read at once (no transfer is involved) unless
    :func:`counting_fetches` is active, which defers it like a CUDA one. Checks of the
    device queue are read by the next :func:`to_host` / :func:`fetch_scalars` (in the same
    transfer), by :func:`flush_checks`, or when more than ``MAX_PENDING_CHECKS`` pile up
    (queued flags are merged on the device every ``COMPACT_CHECKS`` checks, which costs no
    transfer, so a long stepwise window still makes one). The queue is per thread.
    Until then the computation goes on with the bad values (CuPy's gathers clip or wrap
    out-of-range indices, they do not fault), so callers that apply updates, such as
    :func:`seqdbr.rnn.bptt.bptt_update`, fetch before updating.
    """
    if not is_device_array(bad) and _state.counter is None:
        if bad:
            raise make_error()
        return
    flag = bad if is_array(bad) else numpy.asarray(bad)
    _state.pending.append((flag.reshape(1), [make_error]))
    _state.n_pending += 1
    if _state.n_pending > MAX_PENDING_CHECKS:
        flush_checks()
    elif len(_state.pending) > COMPACT_CHECKS:
        _compact_pending()


def check_index_range(a, low, high, exempt, make_error):
    """Check that every integer in ``a`` lies in ``[low, high]`` or equals ``exempt``.

    NumPy arrays are checked now (two reductions; the slower exact test only when they
    fail). CUDA arrays are checked on the device and the verdict is queued with
    :func:`check_later`, so the check costs no host synchronisation.

    Args:
        a: an integer array (NumPy or CuPy); empty arrays pass.
        low, high (int): the inclusive bounds.
        exempt (int or None): a value allowed anywhere (an ignore label).
        make_error: callable returning the exception to raise on failure.
    """
    if a.size == 0:
        return
    if type(a) is _ndarray and _state.counter is None:
        if int(a.min()) >= low and int(a.max()) <= high:
            return
        bad = (a < low) | (a > high)
        if exempt is not None:
            bad &= a != exempt
        if bad.any():
            raise make_error()
        return
    bad = (a < low) | (a > high)
    if exempt is not None:
        bad &= a != exempt
    check_later(bad.any(), make_error)


def flush_checks():
    """Read every pending deferred check now (one transfer if any is queued) and raise the
    first failure's error."""
    if _state.pending:
        fetch_scalars()


def to_cpu(array):
    """Copy a CuPy array to the host; NumPy arrays, scalars and None pass through."""
    if array is None or type(array) is _ndarray:
        return array
    if is_device_array(array):
        return to_host(array)
    return numpy.asarray(array)


def to_gpu(array, device=None):
    """Copy an array to GPU ``device`` (default: the current one). Raises without a GPU."""
    if array is None:
        return None
    cp = cupy_or_none()
    if cp is None or not is_gpu_available():
        raise RuntimeError('to_gpu needs CuPy and a CUDA GPU; install `pip install -e .[gpu]`')
    if device is None:
        return cp.asarray(array)
    dev = device if isinstance(device, GpuDevice) else GpuDevice(int(device))
    if is_device_array(array):
        if array.device.id == dev.id:
            return array
        with dev.using():      # ndarray.copy() allocates on the current device
            return array.copy()
    with dev.using():
        return cp.asarray(array)


def to_device(device, array):
    """Send ``array`` to ``device`` (anything `get_device` accepts)."""
    return get_device(device).send(array)
