"""Parameter initializers, and the one random generator they draw from.

An initializer is a callable object that fills a float array in place:
``init(array)``. It may carry a ``dtype`` attribute (None: use the parameter's
dtype). Random values are always drawn on the host in float64 from a
``numpy.random.Generator`` and then cast and copied into the array, so a CuPy
array gets exactly the values a NumPy one would.

Reproducibility: every initializer draws from the module-level generator
returned by :func:`get_rng` unless it was given an explicit ``rng=``.
``set_seed(s)`` replaces that generator with ``numpy.random.default_rng(s)``, so

    set_seed(0); a = MyModel()
    set_seed(0); b = MyModel()

creates identical parameters. Without ``set_seed`` the generator is seeded from
OS entropy at import.

Fans: for a weight of shape ``(out, in, k1, k2, ...)`` (the layout of ``Linear``'s
``W`` and of convolution kernels) ``fan_in = in * k1 * k2 * ...`` and
``fan_out = out * k1 * k2 * ...``.
"""
import numbers

import numpy

from seqdbr.core import backend

__all__ = ['set_seed', 'get_rng', 'get_fans', 'get_initializer', 'Initializer', 'Constant',
           'Zero', 'One', 'Normal', 'Uniform', 'LeCunNormal', 'LeCunUniform', 'GlorotNormal',
           'GlorotUniform', 'HeNormal', 'HeUniform', 'Orthogonal']

_rng = numpy.random.default_rng()


def set_seed(seed):
    """Reseed the shared initializer generator: ``numpy.random.default_rng(seed)``.

    Args:
        seed (int or None): None reseeds from OS entropy.
    """
    global _rng
    _rng = numpy.random.default_rng(seed)


def get_rng():
    """The shared ``numpy.random.Generator`` every initializer draws from by default."""
    return _rng


def get_fans(shape):
    """``(fan_in, fan_out)`` of a weight of shape ``(out, in, *kernel)``.

    Raises:
        ValueError: fewer than 2 dimensions (fans are undefined for a vector).
    """
    shape = tuple(shape)
    if len(shape) < 2:
        raise ValueError('fan_in/fan_out need a weight of shape (out, in, ...), got shape %s; '
                         'use a non-fan initializer (Constant, Normal, Uniform) for vectors'
                         % (shape,))
    receptive = 1
    for s in shape[2:]:
        receptive *= int(s)
    return int(shape[1]) * receptive, int(shape[0]) * receptive


def _check_target(array, who):
    if not backend.is_array(array):
        raise TypeError('%s fills a numpy/cupy array in place, got %s'
                        % (who, type(array).__name__))
    if array.dtype.kind != 'f':
        raise TypeError('%s: parameters must be floating point, got an array of dtype %s; '
                        'create it with dtype=numpy.float32' % (who, array.dtype))


def _assign(array, values):
    if type(array) is numpy.ndarray:
        array[...] = values
    else:  # cupy: one host-to-device copy, onto the target's device (not the current one)
        with backend.using_device(array):
            array[...] = backend.cupy_or_none().asarray(values, dtype=array.dtype)


class Initializer:
    """Base class: subclasses implement ``generate(shape, rng)`` returning a float64 host
    array of ``shape``; ``__call__`` validates the target, casts and copies.

    Args:
        dtype: dtype the parameter should get (None: the parameter's own, float32 by default).
        rng (numpy.random.Generator or None): explicit generator; None uses :func:`get_rng`
            at call time (so a later ``set_seed`` applies).
    """

    def __init__(self, dtype=None, rng=None):
        self.dtype = None if dtype is None else numpy.dtype(dtype)
        if rng is not None and not isinstance(rng, numpy.random.Generator):
            raise TypeError('rng must be a numpy.random.Generator (numpy.random.default_rng(s)),'
                            ' got %s' % type(rng).__name__)
        self.rng = rng

    def __call__(self, array):
        _check_target(array, type(self).__name__)
        if array.size == 0:
            return array
        values = self.generate(array.shape, self.rng if self.rng is not None else _rng)
        _assign(array, values)
        return array

    def generate(self, shape, rng):
        raise NotImplementedError

    def _args(self):
        return ''

    def __repr__(self):
        return '%s(%s)' % (type(self).__name__, self._args())


class Constant(Initializer):
    """Fill with a constant: a scalar, or an array of exactly the parameter's shape.

    Args:
        fill_value (float or array): the value (an array is copied to the host now).
        dtype: see :class:`Initializer`.

    Raises (on fill):
        ValueError: the array's shape differs from the parameter's.
    """

    def __init__(self, fill_value, dtype=None):
        super().__init__(dtype)
        if isinstance(fill_value, numbers.Number) and not isinstance(fill_value, bool):
            self.fill_value = fill_value
        elif backend.is_array(fill_value):
            host = backend.to_cpu(fill_value)
            if host.dtype.kind not in 'fiu':
                raise TypeError('Constant: a numeric array is needed, got dtype %s' % host.dtype)
            self.fill_value = numpy.array(host, copy=True)
        else:
            raise TypeError('Constant expects a number or an array, got %s'
                            % type(fill_value).__name__)

    def __call__(self, array):
        _check_target(array, 'Constant')
        v = self.fill_value
        if type(v) is numpy.ndarray and v.shape != array.shape:
            raise ValueError('Constant initializer: the given array has shape %s but the '
                             'parameter has shape %s; pass an array of exactly that shape'
                             % (v.shape, array.shape))
        _assign(array, v)
        return array

    def _args(self):
        v = self.fill_value
        return 'array of shape %s' % (v.shape,) if type(v) is numpy.ndarray else repr(v)


class Zero(Constant):
    """Fill with 0."""

    def __init__(self, dtype=None):
        super().__init__(0.0, dtype)


class One(Constant):
    """Fill with 1."""

    def __init__(self, dtype=None):
        super().__init__(1.0, dtype)


class Normal(Initializer):
    """Independent draws from N(0, scale^2).

    Args:
        scale (float): standard deviation (default 0.05).
    """

    def __init__(self, scale=0.05, dtype=None, rng=None):
        super().__init__(dtype, rng)
        self.scale = float(scale)

    def generate(self, shape, rng):
        return rng.normal(0.0, self.scale, size=shape)

    def _args(self):
        return 'scale=%g' % self.scale


class Uniform(Initializer):
    """Independent draws from U(-scale, scale).

    Args:
        scale (float): half-width of the interval (default 0.05).
    """

    def __init__(self, scale=0.05, dtype=None, rng=None):
        super().__init__(dtype, rng)
        self.scale = float(scale)

    def generate(self, shape, rng):
        return rng.uniform(-self.scale, self.scale, size=shape)

    def _args(self):
        return 'scale=%g' % self.scale


class _FanBased(Initializer):
    def __init__(self, scale=1.0, dtype=None, rng=None):
        super().__init__(dtype, rng)
        self.scale = float(scale)

    def _args(self):
        return 'scale=%g' % self.scale


class LeCunNormal(_FanBased):
    """N(0, scale^2 / fan_in): keeps unit activation variance through linear layers.

    LeCun, Bottou, Orr & Mueller, "Efficient BackProp", in Neural Networks: Tricks of the
    Trade, 1998. The default initializer for weights (``W``) in seqdbr.

    Raises (on fill):
        ValueError: the array has fewer than 2 dimensions.
    """

    def generate(self, shape, rng):
        fan_in, _ = get_fans(shape)
        return rng.normal(0.0, self.scale * numpy.sqrt(1.0 / fan_in), size=shape)


class LeCunUniform(_FanBased):
    """U(-a, a) with a = scale * sqrt(3 / fan_in) (same variance as :class:`LeCunNormal`;
    LeCun et al. 1998)."""

    def generate(self, shape, rng):
        fan_in, _ = get_fans(shape)
        a = self.scale * numpy.sqrt(3.0 / fan_in)
        return rng.uniform(-a, a, size=shape)


class GlorotNormal(_FanBased):
    """N(0, scale^2 * 2 / (fan_in + fan_out)).

    Glorot & Bengio, "Understanding the difficulty of training deep feedforward neural
    networks", AISTATS 2010.
    """

    def generate(self, shape, rng):
        fan_in, fan_out = get_fans(shape)
        return rng.normal(0.0, self.scale * numpy.sqrt(2.0 / (fan_in + fan_out)), size=shape)


class GlorotUniform(_FanBased):
    """U(-a, a) with a = scale * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio, AISTATS 2010;
    "Xavier" initialization)."""

    def generate(self, shape, rng):
        fan_in, fan_out = get_fans(shape)
        a = self.scale * numpy.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-a, a, size=shape)


class HeNormal(_FanBased):
    """N(0, scale^2 * 2 / fan_in), for ReLU networks.

    He, Zhang, Ren & Sun, "Delving Deep into Rectifiers: Surpassing Human-Level Performance
    on ImageNet Classification", ICCV 2015.
    """

    def generate(self, shape, rng):
        fan_in, _ = get_fans(shape)
        return rng.normal(0.0, self.scale * numpy.sqrt(2.0 / fan_in), size=shape)


class HeUniform(_FanBased):
    """U(-a, a) with a = scale * sqrt(6 / fan_in) (He et al., ICCV 2015)."""

    def generate(self, shape, rng):
        fan_in, _ = get_fans(shape)
        a = self.scale * numpy.sqrt(6.0 / fan_in)
        return rng.uniform(-a, a, size=shape)


class Orthogonal(_FanBased):
    """A (semi-)orthogonal matrix times ``scale``; recommended for recurrent weights.

    Saxe, McClelland & Ganguli, "Exact solutions to the nonlinear dynamics of learning in
    deep linear neural networks", ICLR 2014.

    The weight is viewed as a matrix of shape ``(shape[0], prod(shape[1:]))``. A Gaussian
    matrix is QR-factorized and the signs of Q's columns are fixed by ``sign(diag(R))`` so
    the result is uniformly (Haar) distributed. Rows are orthonormal when
    ``rows <= cols`` (``W @ W.T == scale^2 * I``), columns otherwise
    (``W.T @ W == scale^2 * I``).

    Raises (on fill):
        ValueError: the array has fewer than 2 dimensions.
    """

    def generate(self, shape, rng):
        if len(shape) < 2:
            raise ValueError('Orthogonal needs a weight with at least 2 dimensions, got shape '
                             '%s' % (shape,))
        rows = int(shape[0])
        cols = 1
        for s in shape[1:]:
            cols *= int(s)
        tall = rows > cols
        g = rng.normal(0.0, 1.0, size=(rows, cols) if tall else (cols, rows))
        q, r = numpy.linalg.qr(g)  # q: (max, min) with orthonormal columns
        d = numpy.sign(numpy.diag(r))
        d[d == 0] = 1.0
        q = q * d
        w = q if tall else q.T
        return (self.scale * w).reshape(shape)


def get_initializer(spec):
    """Turn an initializer spec into an initializer object.

    Args:
        spec: None -> :class:`LeCunNormal` (scale 1); a Python number -> :class:`Constant`;
            an ndarray -> :class:`Constant` (copied; the parameter's shape must match it
            exactly); an initializer object (any callable filling an array in place) ->
            itself.

    Raises:
        TypeError: anything else (e.g. a list or a string).
    """
    if spec is None:
        return LeCunNormal()
    if isinstance(spec, bool):
        raise TypeError('a bool is not an initializer; use a number (Constant) or an '
                        'initializer object')
    if isinstance(spec, numbers.Number):
        return Constant(spec)
    if backend.is_array(spec):
        return Constant(spec)
    if callable(spec):
        return spec
    raise TypeError('cannot use %r as an initializer: pass None, a number, an array or an '
                    'initializer object such as seqdbr.core.initializers.HeNormal()' % (spec,))
