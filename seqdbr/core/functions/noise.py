"""Noise: inverted ``dropout``.

Randomness comes from one documented source so runs are reproducible:

* NumPy inputs draw from a module-level ``numpy.random.Generator`` (PCG64);
* CuPy inputs draw from a per-device ``cupy.random.Generator`` created lazily;

``set_seed(seed)`` (also exported as ``F.set_dropout_seed``) re-seeds both. A call may pass
its own generator as ``rng`` instead (a NumPy Generator for NumPy inputs; for CuPy inputs a
CuPy Generator, or a NumPy Generator whose mask is drawn on the host and copied over, which
reproduces the CPU mask exactly).
"""
import numbers

import numpy

from seqdbr.core import backend, cuda_kernels
from seqdbr.core.config import config
from seqdbr.core.function_node import FunctionNode
from seqdbr.core.functions.activation import _float_array
from seqdbr.core.variable import as_variable

__all__ = ['dropout', 'set_dropout_seed']

_rng = numpy.random.default_rng()
_seed = None            # last seed given to set_seed (None: OS entropy)
_gpu_rngs = {}          # device id -> cupy Generator


def set_seed(seed=None):
    """Re-seed the dropout generators (NumPy now, CuPy lazily on next use).

    Args:
        seed (int or None): a non-negative int for reproducible masks; None draws fresh OS
            entropy.

    Raises:
        TypeError: seed is not an int or None. ValueError: seed is negative.
    """
    global _rng, _seed
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise TypeError('set_seed: seed must be a non-negative int or None, got %r'
                            % (seed,))
        if seed < 0:
            raise ValueError('set_seed: seed must be a non-negative int, got %d' % seed)
    _seed = None if seed is None else int(seed)
    _rng = numpy.random.default_rng(_seed)
    _gpu_rngs.clear()


set_dropout_seed = set_seed


def get_rng():
    """The module-level NumPy Generator used for NumPy inputs."""
    return _rng


def _gpu_rng(cp, dev=None):
    """The CuPy Generator of CUDA device ``dev`` (default: the current one), seeded
    ``seed + dev`` after :func:`set_seed`; draws must run with that device current."""
    if dev is None:
        dev = cp.cuda.Device().id
    g = _gpu_rngs.get(dev)
    if g is None:
        seed = None if _seed is None else _seed + dev
        g = cp.random.default_rng(seed)
        _gpu_rngs[dev] = g
    return g


_DROPOUT_FWD = cuda_kernels.elementwise(
    'seqdbr_dropout_fwd', 'T x, T u, T ratio, T scale', 'T y, T mask',
    'mask = u >= ratio ? scale : (T)0; y = x * mask;',
    types=[{'T': t} for t in cuda_kernels.GPU_FLOATS], scalars=('ratio', 'scale'))


def _dropout_kernel(cp):
    return _DROPOUT_FWD


_GPU_FLOATS = (numpy.dtype(numpy.float32), numpy.dtype(numpy.float64))


def _uniform(xp, rng, shape, dtype, like=None):
    """Uniform [0, 1) draws of ``shape`` (float32 for float16 inputs, else ``dtype``), on
    the device of the array ``like`` (with its generator), whatever device is current."""
    rdtype = numpy.float64 if dtype == numpy.float64 else numpy.float32
    if xp is numpy:
        return (_rng if rng is None else rng).random(shape, dtype=rdtype)
    with backend.using_device(like):
        if rng is None:
            dev = None if like is None else like.device.id
            return _gpu_rng(xp, dev).random(shape, dtype=rdtype)
        if isinstance(rng, numpy.random.Generator):
            return xp.asarray(rng.random(shape, dtype=rdtype))
        return rng.random(shape, dtype=rdtype)


class Dropout(FunctionNode):
    def __init__(self, ratio, rng):
        self.ratio = ratio
        self.rng = rng

    def forward(self, inputs):
        x = inputs[0]
        xp = backend.get_array_module(x)
        ratio = self.ratio
        scale = 1.0 / (1.0 - ratio)
        u = _uniform(xp, self.rng, x.shape, x.dtype, x)
        self.rng = None
        if xp is not numpy and x.dtype in _GPU_FLOATS:
            t = x.dtype.type
            y, mask = _dropout_kernel(xp)(x, u, t(ratio), t(scale))
            self.mask = mask
            return (y,)
        # mask = scale where u >= ratio else 0, built in place in u's buffer
        xp.greater_equal(u, ratio, out=u)
        if u.dtype != x.dtype:
            u = u.astype(x.dtype)
        u *= scale
        self.mask = u
        return (xp.multiply(x, u, out=xp.empty_like(x)),)

    def backward(self, indexes, grad_outputs):
        gy = grad_outputs[0]
        xp = backend.get_array_module(gy)
        return (xp.multiply(gy, self.mask, out=xp.empty_like(gy)),)


def dropout(x, ratio=0.5, rng=None):
    """Inverted dropout: zero each element with probability ``ratio``, scale the rest.

    In training (``config.train`` True) each element is kept with probability
    ``1 - ratio`` and multiplied by ``1 / (1 - ratio)``, so the expected value is unchanged;
    the backward pass multiplies by the same mask. In test mode (``config.train`` False) or
    with ``ratio == 0`` it is the identity and adds no graph node: a Variable ``x`` is
    returned itself (a raw array is wrapped as a constant Variable).

    Args:
        x (Variable or array): float array of any shape.
        ratio (float): drop probability in ``[0, 1)``.
        rng: None (the module-level generator, see ``set_seed``), a
            ``numpy.random.Generator``, or for CuPy inputs a ``cupy.random.Generator``.

    Returns:
        Variable of the shape and dtype of ``x``.

    Raises:
        TypeError: ``x`` not floating point, ``ratio`` not a number, or a bad ``rng``.
        ValueError: ``ratio`` outside ``[0, 1)``.
    """
    xa = _float_array(x, 'dropout')
    if isinstance(ratio, bool) or not isinstance(ratio, numbers.Real):
        raise TypeError('dropout: ratio must be a float in [0, 1), got %r' % (ratio,))
    ratio = float(ratio)
    if not 0.0 <= ratio < 1.0:
        raise ValueError('dropout: ratio must be in [0, 1) (the probability of dropping a unit), '
                         'got %r' % ratio)
    if rng is not None and not isinstance(rng, numpy.random.Generator) and (
            type(xa) is numpy.ndarray or not hasattr(rng, 'random')):
        raise TypeError('dropout: rng must be None or a numpy.random.Generator (or a '
                        'cupy.random.Generator for CuPy inputs), got %s; create one with '
                        'numpy.random.default_rng(seed)' % type(rng).__name__)
    if ratio == 0.0 or not config.train:
        return as_variable(x)
    return Dropout(ratio, rng).apply((x,))[0]
