"""Every CUDA kernel of seqdbr, declared in one registry and compiled lazily through CuPy.

A kernel is declared at import time with :func:`elementwise`, which records its CuPy
``ElementwiseKernel`` definition together with the dtypes its call sites use, and returns a
callable that compiles it on first use (importing this module, or declaring a kernel, never
imports CuPy). No other module of seqdbr may construct ``cupy.ElementwiseKernel``,
``RawKernel`` or ``ReductionKernel`` directly (``tests/core/test_cuda_kernels.py`` checks
this), so the registry is the complete list of GPU code.

Because the registry knows each kernel's dtypes, :func:`compile_without_gpu` can generate
the exact source CuPy would build for a call (CuPy's own generator, fed a description of
the arguments instead of device arrays) and compile it with NVRTC. Neither step needs a
GPU or a driver, only the ``cupy-cuda12x`` wheel and the NVRTC and CUDA-runtime-header
wheels (``nvidia-cuda-nvrtc-cu12``, ``nvidia-cuda-runtime-cu12``), so CI compiles every
kernel at every dtype and a syntax or type error fails CI rather than a user's first GPU run.
``python -m seqdbr.core.cuda_kernels`` does the same from the command line.
"""
import numpy

from seqdbr.core import backend

__all__ = ['ElementwiseKernel', 'elementwise', 'registered', 'FLOATS', 'GPU_FLOATS',
           'kernel_source', 'compile_without_gpu']

#: float16, float32, float64: the dtypes of kernels that serve every float array.
FLOATS = (numpy.dtype(numpy.float16), numpy.dtype(numpy.float32), numpy.dtype(numpy.float64))
#: float32, float64: kernels whose callers route float16 to plain CuPy arithmetic.
GPU_FLOATS = FLOATS[1:]

_REGISTRY = {}


class ElementwiseKernel:
    """One registered ``cupy.ElementwiseKernel``, compiled on its first call and cached.

    Args:
        name (str): the kernel's name (``seqdbr_`` prefix; unique in the registry).
        in_params, out_params, operation, preamble (str): as ``cupy.ElementwiseKernel``.
        types (sequence of dict): one ``{placeholder: dtype}`` map per dtype combination
            the call sites use, e.g. ``[{'T': float32}, {'T': float64}]``.
        scalars (sequence of str): the input parameters the call sites pass as Python or
            NumPy scalars rather than arrays (e.g. a learning rate, a row length).

    Raises:
        ValueError: a name registered twice, or a ``scalars`` entry that is not an input.
    """

    def __init__(self, name, in_params, out_params, operation, preamble='', *, types,
                 scalars=()):
        if name in _REGISTRY:
            raise ValueError('CUDA kernel %r is declared twice' % name)
        names = [p.split()[-1] for p in in_params.split(',')]
        unknown = [s for s in scalars if s not in names]
        if unknown:
            raise ValueError('kernel %s: scalars %s are not input parameters (%s)'
                             % (name, unknown, ', '.join(names)))
        self.name = name
        self.in_params = in_params
        self.out_params = out_params
        self.operation = operation
        self.preamble = preamble
        self.types = tuple({k: numpy.dtype(v) for k, v in t.items()} for t in types)
        self.scalars = tuple(scalars)
        self._kernel = None
        _REGISTRY[name] = self

    def build(self, cupy):
        """The ``cupy.ElementwiseKernel`` object (not compiled until called)."""
        return cupy.ElementwiseKernel(self.in_params, self.out_params, self.operation,
                                      self.name, preamble=self.preamble)

    def __call__(self, *args, **kwargs):
        kernel = self._kernel
        if kernel is None:
            cupy = backend.cupy_or_none()
            if cupy is None:
                raise RuntimeError('the CUDA kernel %s needs CuPy; install it with '
                                   '`pip install -e .[gpu]` on a CUDA machine, or keep the '
                                   'arrays on the CPU' % self.name)
            kernel = self._kernel = self.build(cupy)
        return kernel(*args, **kwargs)

    def __repr__(self):
        return 'ElementwiseKernel(%s, types=%s)' % (
            self.name, ['/'.join('%s=%s' % kv for kv in sorted(t.items())) for t in self.types])


def elementwise(name, in_params, out_params, operation, preamble='', *, types, scalars=()):
    """Declare and register an elementwise kernel; see :class:`ElementwiseKernel`."""
    return ElementwiseKernel(name, in_params, out_params, operation, preamble, types=types,
                             scalars=scalars)


def registered():
    """Every declared kernel (of the modules imported so far), sorted by name."""
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def kernel_source(kernel, typemap, cupy=None):
    """The CUDA source CuPy generates for ``kernel`` at the dtypes ``typemap``.

    Uses CuPy's own generator (``cupy._core._kernel``) with argument descriptions instead
    of arrays (1-d C-contiguous arrays, 32-bit indexing), so it runs without a GPU. The
    result starts with CuPy's standard headers, as CuPy's compiler adds them.

    Raises:
        RuntimeError: CuPy is missing, or this CuPy's private generator API changed.
    """
    cupy = cupy or backend.cupy_or_none()
    if cupy is None:
        raise RuntimeError('kernel_source needs CuPy (pip install cupy-cuda12x)')
    try:
        from cupy._core import _carray, _kernel, core
        k = kernel.build(cupy)
        infos = []
        for p in k.params:
            if p.name == '_ind':
                infos.append(_kernel._ArgInfo(2, _carray.Indexer, None, 1, True, True))
                continue
            dtype = p.dtype if p.dtype is not None else typemap[p.ctype]
            if p.name in kernel.scalars:
                infos.append(_kernel._ArgInfo(3, dtype.type, dtype, 0, True, True))
            else:
                infos.append(_kernel._ArgInfo(1, cupy.ndarray, dtype, 1, True, True))
        tmap = _kernel._TypeMap(tuple(sorted(typemap.items())))
        code = _kernel._get_elementwise_kernel_code(tuple(infos), tmap, k.params, k.operation,
                                                    k.name, k.preamble)
        headers = ''.join('#include <%s>\n' % h for h in core._cupy_header_list)
    except (ImportError, AttributeError, TypeError) as e:   # pragma: no cover - CuPy change
        raise RuntimeError('this CuPy (%s) no longer exposes the elementwise source generator '
                           'seqdbr uses to compile kernels without a GPU: %s'
                           % (cupy.__version__, e)) from e
    return headers + code


def compile_without_gpu(kernel, typemap, arch='75'):
    """Compile ``kernel`` at ``typemap`` with NVRTC to PTX, without a GPU or a driver.

    The options are CuPy's for an elementwise kernel (its include paths, C++17,
    ``-ftz=true``, ``--device-as-default-execution-space``) with ``-arch=compute_<arch>``.

    Returns:
        bytes: the PTX.

    Raises:
        cupy.cuda.compiler.CompileException: the kernel does not compile (the message has
            NVRTC's log and the generated source).
        RuntimeError: CuPy or NVRTC is missing.
    """
    cupy = backend.cupy_or_none()
    if cupy is None:
        raise RuntimeError('compile_without_gpu needs CuPy and NVRTC: pip install '
                           'cupy-cuda12x nvidia-cuda-nvrtc-cu12 nvidia-cuda-runtime-cu12')
    from cupy._core import core
    from cupy.cuda import compiler
    source = kernel_source(kernel, typemap, cupy)
    options = core.assemble_cupy_compiler_options(()) + (
        '-ftz=true', '-arch=compute_%s' % arch, '--device-as-default-execution-space')
    ptx, _ = compiler._NVRTCProgram(source, kernel.name + '.cu').compile(options)
    return ptx


def _import_all():
    """Import every seqdbr module, so every kernel declaration has run."""
    import importlib
    import pkgutil

    import seqdbr
    for info in pkgutil.walk_packages(seqdbr.__path__, 'seqdbr.'):
        importlib.import_module(info.name)


def main():   # pragma: no cover - exercised by tests/core/test_cuda_kernels.py in a venv
    """Compile every kernel at every declared dtype; print one line each; exit 1 on failure."""
    import sys

    from seqdbr.core import cuda_kernels as registry   # not __main__'s copy of this module
    registry._import_all()
    failed = 0
    for k in registry.registered():
        for t in k.types:
            label = '%s[%s]' % (k.name, ','.join('%s=%s' % kv for kv in sorted(t.items())))
            try:
                ptx = registry.compile_without_gpu(k, t)
                print('ok    %s  (%d bytes of PTX)' % (label, len(ptx)))
            except Exception as e:
                failed += 1
                print('FAIL  %s\n%s' % (label, e))
    sys.exit(1 if failed else 0)


if __name__ == '__main__':
    main()
