"""One array API over NumPy (CPU) and CuPy (GPU).

CuPy is optional: it is imported lazily, the first time a GPU is asked for or a
non-NumPy array is seen, and a missing CuPy never breaks CPU code.
"""
import numpy

__all__ = ['get_array_module', 'is_gpu_available', 'cupy_or_none', 'CpuDevice', 'GpuDevice',
           'get_device', 'get_device_from_array', 'to_cpu', 'to_gpu', 'to_device']

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


def get_array_module(*xs):
    """Return ``numpy`` or ``cupy``, whichever the arrays (or Variables) ``xs`` belong to.

    NumPy is returned for NumPy arrays, Python scalars and when CuPy is absent.
    """
    for x in xs:
        t = type(x)
        if t is numpy.ndarray:
            continue
        arr = getattr(x, 'array', None) if not hasattr(x, '__cuda_array_interface__') else x
        if arr is not None and hasattr(arr, '__cuda_array_interface__'):
            return cupy_or_none()
    return numpy


class CpuDevice:
    """The host: arrays are ``numpy.ndarray``."""
    xp = numpy
    name = 'cpu'

    def send(self, array):
        return to_cpu(array)

    def __eq__(self, other):
        return isinstance(other, CpuDevice)

    def __hash__(self):
        return hash('cpu')

    def __repr__(self):
        return 'CpuDevice()'


class GpuDevice:
    """CUDA device ``id`` through CuPy. Creating one raises RuntimeError without a usable GPU."""
    name = 'gpu'

    def __init__(self, id=0):
        if not is_gpu_available():
            raise RuntimeError('a GPU device was requested but CuPy or a CUDA GPU is not usable; '
                               'install the extra with `pip install -e .[gpu]` on a CUDA machine, '
                               'or use the CPU (device "cpu")')
        self.id = int(id)
        self.xp = cupy_or_none()

    def send(self, array):
        return to_gpu(array, self.id)

    def __eq__(self, other):
        return isinstance(other, GpuDevice) and other.id == self.id

    def __hash__(self):
        return hash(('gpu', self.id))

    def __repr__(self):
        return 'GpuDevice(%d)' % self.id


def get_device(spec):
    """Turn ``'cpu'``, ``'gpu'``, ``'gpu:N'``, ``'@cupy:N'``, an int (>=0 GPU, <0 CPU) or a
    device object into a device object. Raises ValueError on anything else."""
    if isinstance(spec, (CpuDevice, GpuDevice)):
        return spec
    if spec is None or spec == 'cpu' or spec == '@numpy':
        return CpuDevice()
    if isinstance(spec, int):
        return CpuDevice() if spec < 0 else GpuDevice(spec)
    if isinstance(spec, str):
        for prefix in ('gpu', '@cupy', 'cuda'):
            if spec == prefix:
                return GpuDevice(0)
            if spec.startswith(prefix + ':'):
                try:
                    return GpuDevice(int(spec[len(prefix) + 1:]))
                except ValueError:
                    break
    raise ValueError("unknown device %r: use 'cpu', 'gpu' or 'gpu:N'" % (spec,))


def get_device_from_array(array):
    """The device an array lives on."""
    if hasattr(array, '__cuda_array_interface__'):
        return GpuDevice(array.device.id)
    return CpuDevice()


def to_cpu(array):
    """Copy a CuPy array to the host; NumPy arrays, scalars and None pass through."""
    if array is None or type(array) is numpy.ndarray:
        return array
    if hasattr(array, '__cuda_array_interface__'):
        return array.get()
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
    with cp.cuda.Device(int(device)):
        return cp.asarray(array)


def to_device(device, array):
    """Send ``array`` to ``device`` (anything `get_device` accepts)."""
    return get_device(device).send(array)
