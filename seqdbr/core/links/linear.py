"""``Linear``: the fully connected layer ``y = x W^T + b``."""
import numpy

from seqdbr.core import backend, initializers
from seqdbr.core.functions import connection
from seqdbr.core.link import Link
from seqdbr.core.variable import Parameter

__all__ = ['Linear']


def _check_size(name, v, allow_none):
    if v is None and allow_none:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, numpy.integer)) or v <= 0:
        raise ValueError('Linear: %s must be a positive int%s, got %r'
                         % (name, ' or None (inferred on the first call)' if allow_none else '',
                            v))
    return int(v)


class Linear(Link):
    """Fully connected layer: ``y = x @ W.T + b``.

    ``Linear(out_size)`` (one argument) and ``Linear(None, out_size)`` create ``W`` lazily
    on the first call, with ``in_size`` taken as the product of ``x.shape[1:]``.

    Args:
        in_size (int or None): input features; None means inferred on the first call.
        out_size (int): output features.
        nobias (bool): no bias term (``b`` is None).
        initialW: initializer spec for ``W`` (see
            :func:`seqdbr.core.initializers.get_initializer`; default LeCun normal). An array
            must have shape ``(out_size, in_size)``; with ``in_size=None`` it fixes
            ``in_size = initialW.shape[1]``.
        initial_bias: initializer spec for ``b`` (default 0).

    Parameters:
        W: ``(out_size, in_size)``, float32 unless the initializer says otherwise.
        b: ``(out_size,)`` or None.

    Call:
        ``x`` of shape ``(N, in_size)`` (or ``(N, d1, d2, ...)``, flattened to
        ``(N, d1*d2*...)``) -> Variable of shape ``(N, out_size)``, same float dtype as ``W``.

    Raises:
        ValueError: non-positive sizes, or an ``initialW`` array of the wrong shape.
    """

    def __init__(self, in_size, out_size=None, nobias=False, initialW=None, initial_bias=None):
        super().__init__()
        if out_size is None:
            in_size, out_size = None, in_size
        out_size = _check_size('out_size', out_size, False)
        in_size = _check_size('in_size', in_size, True)
        if backend.is_array(initialW):
            if initialW.ndim != 2 or initialW.shape[0] != out_size or (
                    in_size is not None and initialW.shape[1] != in_size):
                raise ValueError('Linear: initialW has shape %s but W must have shape '
                                 '(out_size, in_size) = (%d, %s)'
                                 % (initialW.shape, out_size,
                                    'in_size' if in_size is None else in_size))
            in_size = initialW.shape[1]
        self.in_size = in_size
        self.out_size = out_size
        self.nobias = bool(nobias)
        with self.init_scope():
            self.W = Parameter(initializers.get_initializer(initialW),
                               None if in_size is None else (out_size, in_size))
            if self.nobias:
                self.b = None
            else:
                self.b = Parameter(initializers.get_initializer(
                    0.0 if initial_bias is None else initial_bias), (out_size,))

    def forward(self, x):
        W = self.W
        if W.array is None:
            in_size = 1
            for s in x.shape[1:]:
                in_size *= int(s)
            if x.ndim < 2 or in_size == 0:
                raise ValueError('Linear: cannot infer in_size from an input of shape %s; pass '
                                 'a batch of shape (N, in_size)' % (x.shape,))
            W.initialize((self.out_size, in_size), device=self._device)
            self.in_size = in_size
        return connection.linear(x, W, self.b)

    def serialize(self, serializer):
        super().serialize(serializer)
        if self.W.array is not None:  # a lazy W may have been created by loading
            self.in_size = int(self.W.array.shape[1])

    def repr_args(self):
        return 'in_size=%s, out_size=%d, nobias=%s' % (self.in_size, self.out_size, self.nobias)
