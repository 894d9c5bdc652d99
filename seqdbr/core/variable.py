"""``Variable`` and ``Parameter``: arrays that remember how they were computed.

A Variable is one object per value. It holds the array, its gradient, and the
function node that created it (``creator``), so the graph is recorded while
ordinary Python runs. Function nodes hold their inputs strongly and their
outputs weakly: the graph lives exactly as long as some output is referenced,
and ``unchain_backward()`` frees everything behind a variable.

Design choice: unlike Chainer we do not split a value into a user-facing
Variable and an internal VariableNode. One object per value halves the
allocations on every op (per-op overhead is a feature of this library); the
price is that an input array stays alive while a node that consumed it is
alive, which in RNN training it does anyway.
"""
import weakref

import numpy

from seqdbr.core import backend

__all__ = ['Variable', 'Parameter', 'as_variable', 'as_array']

_ndarray = numpy.ndarray


def _check_array(array, what='Variable'):
    if backend.is_array(array):
        return array
    if isinstance(array, numpy.generic):
        return numpy.asarray(array)
    raise TypeError('%s expects a numpy.ndarray or cupy.ndarray, got %s; convert it first, '
                    'e.g. numpy.asarray(x, dtype=numpy.float32)' % (what, type(array).__name__))


class Variable:
    """An array with a gradient and a link to the function that created it.

    Args:
        array (numpy.ndarray or cupy.ndarray or None): the value. Lists and Python scalars
            raise TypeError (convert with ``numpy.asarray(..., dtype=numpy.float32)``).
        requires_grad (bool): whether backward computes a gradient for this variable.
            Integer and boolean arrays never require a gradient (the flag is forced False;
            passing True explicitly for them raises TypeError).
        name (str or None): shown in ``repr`` and in DOT graphs.
        grad: initial gradient array (same shape and dtype as ``array``).

    Attributes:
        array / data: the value.  grad: gradient array or None.  creator: the FunctionNode
        that produced it (None for leaves and outputs computed without backprop).
    """
    __slots__ = ('array', '_grad', 'creator', 'rank', 'name', 'requires_grad', '__weakref__')
    __array_priority__ = 200
    __array_ufunc__ = None  # make numpy defer to our reflected operators

    def __init__(self, array=None, requires_grad=None, name=None, grad=None):
        if array is not None:
            array = _check_array(array)
            if array.dtype.kind not in 'fc':
                if requires_grad:
                    raise TypeError('a %s array cannot require a gradient; use a float array '
                                    '(e.g. .astype(numpy.float32))' % array.dtype)
                requires_grad = False
        self.array = array
        self._grad = None
        self.creator = None
        self.rank = 0
        self.name = name
        self.requires_grad = True if requires_grad is None else bool(requires_grad)
        if grad is not None:
            self.grad = grad

    # -- array-like attributes -------------------------------------------------
    @property
    def data(self):
        """Alias of ``array`` (Chainer's spelling)."""
        return self.array

    @data.setter
    def data(self, value):
        self.array = value

    @property
    def grad(self):
        """Gradient array (same shape and dtype as ``array``) or None."""
        return self._grad

    @grad.setter
    def grad(self, g):
        if g is not None:
            g = _check_array(g, 'Variable.grad')
            a = self.array
            if a is not None and (g.shape != a.shape or g.dtype != a.dtype):
                raise ValueError('grad of shape %s and dtype %s does not match the variable\'s '
                                 'shape %s and dtype %s' % (g.shape, g.dtype, a.shape, a.dtype))
        self._grad = g

    @property
    def shape(self):
        return self.array.shape

    @property
    def ndim(self):
        return self.array.ndim

    @property
    def size(self):
        return self.array.size

    @property
    def dtype(self):
        return self.array.dtype

    @property
    def xp(self):
        """``numpy`` or ``cupy``, whichever holds the array."""
        return backend.get_array_module(self.array)

    @property
    def device(self):
        return backend.get_device_from_array(self.array)

    def __len__(self):
        if self.array.ndim == 0:
            raise TypeError('len() of a 0-d Variable')
        return self.array.shape[0]

    def item(self):
        """The value of a one-element variable as a Python scalar (from a GPU: one transfer,
        through ``backend.to_host``)."""
        return backend.to_host(self.array).item()

    @property
    def T(self):
        return self.transpose()

    def reshape(self, *shape):
        from seqdbr.core.functions.array import reshape
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return reshape(self, shape)

    def transpose(self, *axes):
        from seqdbr.core.functions.array import transpose
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return transpose(self, axes or None)

    def __getitem__(self, key):
        from seqdbr.core.functions.array import get_item
        return get_item(self, key)

    def __bool__(self):
        raise TypeError('the truth value of a Variable is ambiguous; use .array or .item()')

    # -- comparisons ---------------------------------------------------------------
    # All six comparisons raise, as in Chainer: ``==`` used to fall back to identity and
    # silently return False for equal values while ``<`` raised. Compare the arrays
    # (``a.array == b.array``) or the objects (``a is b``) instead. Hashing stays by
    # identity, so Variables remain usable as dict keys and set members (the backprop loop
    # relies on it; a dict compares identity before calling ``==``).
    def _refuse_comparison(self, other, op):
        raise TypeError(
            'comparing Variables with %s is not supported (it is neither elementwise nor an '
            'identity test); compare the arrays (x.array %s y.array) or test identity '
            '(x is y)' % (op, op))

    def __eq__(self, other):
        self._refuse_comparison(other, '==')

    def __ne__(self, other):
        self._refuse_comparison(other, '!=')

    def __lt__(self, other):
        self._refuse_comparison(other, '<')

    def __le__(self, other):
        self._refuse_comparison(other, '<=')

    def __gt__(self, other):
        self._refuse_comparison(other, '>')

    def __ge__(self, other):
        self._refuse_comparison(other, '>=')

    __hash__ = object.__hash__

    def __repr__(self):
        if self.array is None:
            return 'variable(%s, uninitialized)' % (self.name or '')
        body = numpy.array2string(backend.to_cpu(self.array), separator=', ', threshold=20,
                                  prefix='variable(')
        extra = '' if self.name is None else ', name=%r' % self.name
        return 'variable(%s%s)' % (body, extra)

    def __str__(self):
        return str(self.array)

    # -- graph methods ------------------------------------------------------------
    def cleargrad(self):
        """Drop the gradient (``grad = None``)."""
        self._grad = None

    def zerograd(self):
        """Set the gradient to zeros (allocates)."""
        self._grad = backend.get_array_module(self.array).zeros_like(self.array)

    def backward(self, retain_grad=False):
        """Run backprop from this variable.

        The starting gradient is ``self.grad``; when it is None a variable with exactly one
        element (shape ``()``, ``(1,)``, ``(1, 1)``, ...) starts from ones of its shape, as in
        Chainer and PyTorch, and any other size raises ValueError (set ``.grad`` or reduce to
        a scalar first).
        Leaf gradients accumulate (add) across calls; intermediate gradients are dropped
        unless ``retain_grad=True``. Iterative: graphs of any depth work.

        A variable without a creator has no graph behind it (a leaf, a variable cut by
        ``unchain``, or one computed under ``no_backprop_mode``): then this does nothing, as
        in Chainer, whatever its shape.
        """
        from seqdbr.core.backprop import backward
        backward(self, retain_grad)

    def unchain(self):
        """Cut the link to the creator: this variable becomes a leaf (gradients stop here)."""
        self.creator = None

    def unchain_backward(self):
        """Cut and free the whole graph behind this variable (truncated BPTT).

        Every function node reachable backwards from here drops its inputs and every output
        variable it produced becomes a leaf, so the arrays behind are freed by reference
        counting. Iterative: graphs of any depth work.
        """
        from seqdbr.core.backprop import unchain_backward
        unchain_backward(self)

    # -- device moves (in place: optimizers and links keep the same object) ----------------
    def to_device(self, device):
        dev = backend.get_device(device)
        if self.array is not None:
            self.array = dev.send(self.array)
        if self._grad is not None:
            self._grad = dev.send(self._grad)
        return self

    def to_cpu(self):
        return self.to_device('cpu')

    def to_gpu(self, device=0):
        return self.to_device(backend.GpuDevice(device))


def _new_variable(array, requires_grad):
    v = Variable.__new__(Variable)
    v.array = array
    v._grad = None
    v.creator = None
    v.rank = 0
    v.name = None
    v.requires_grad = requires_grad
    return v


class Parameter(Variable):
    """A trainable Variable owned by a Link, with an initializer and an optional lazy shape.

    Args:
        initializer: an array (used as the value), a Python scalar (constant fill), an
            initializer object (``init(array)`` fills in place, see
            ``seqdbr.core.initializers``), or None (LeCun normal).
        shape (tuple or None): when given the array is created now; when None it is created
            by ``initialize(shape)`` on first use (lazy parameters, e.g. ``Linear(None, 10)``).
        name (str or None): the parameter's name inside its link.
        dtype: float dtype of the array (default float32).
    """
    __slots__ = ('initializer', 'update_rule', '_dtype')

    def __init__(self, initializer=None, shape=None, name=None, dtype=numpy.float32):
        self.update_rule = None
        self._dtype = numpy.dtype(dtype)
        if isinstance(initializer, Variable):
            initializer = initializer.array
        if initializer is not None and (type(initializer) is _ndarray
                                        or backend.is_device_array(initializer)):
            super().__init__(initializer, requires_grad=True, name=name)
            self.initializer = None
            return
        super().__init__(None, requires_grad=True, name=name)
        self.initializer = initializer
        if shape is not None:
            self.initialize(shape)

    @property
    def is_initialized(self):
        return self.array is not None

    def _uninitialized(self):
        return RuntimeError('parameter %r is not initialized yet (its shape is decided on '
                            'the first forward call, or by initialize(shape))' % self.name)

    @property
    def shape(self):
        if self.array is None:
            raise self._uninitialized()
        return self.array.shape

    @property
    def ndim(self):
        if self.array is None:
            raise self._uninitialized()
        return self.array.ndim

    @property
    def size(self):
        if self.array is None:
            raise self._uninitialized()
        return self.array.size

    @property
    def dtype(self):
        """The array's dtype; before lazy initialization, the dtype it will be created with."""
        return self._dtype if self.array is None else self.array.dtype

    def initialize(self, shape, xp=numpy, device=None):
        """Create the array of ``shape`` and fill it with the initializer.

        Args:
            shape (tuple of int): the array's shape.
            xp: ``numpy`` or ``cupy`` (with ``device`` None: cupy puts the array on the
                current device).
            device: a device object or spec (``'gpu:1'``); the array is created there. This
                is what links pass (their own device), so a lazy parameter of a model on
                ``gpu:1`` lands on ``gpu:1`` whatever device is current.
        """
        from seqdbr.core import initializers
        shape = tuple(int(s) for s in shape)
        init = initializers.get_initializer(self.initializer)
        dtype = getattr(init, 'dtype', None) or self._dtype
        array = numpy.empty(shape, dtype=dtype)
        try:
            init(array)
        except (ValueError, TypeError) as e:
            raise type(e)('cannot initialize parameter %r of shape %s: %s'
                          % (self.name, shape, e)) from None
        if device is not None:
            array = backend.get_device(device).send(array)
        elif xp is not numpy:
            array = xp.asarray(array)
        self.array = array
        self._grad = None


def as_variable(x):
    """Return ``x`` if it is a Variable, else wrap an array as a constant (no gradient)."""
    if isinstance(x, Variable):
        return x
    return _new_variable(_check_array(x), False)


def as_array(x):
    """The array of a Variable, or ``x`` itself."""
    return x.array if isinstance(x, Variable) else x


def _weakref(v):
    return weakref.ref(v)
