"""``EmbedID``: a lookup table from integer ids to vectors."""
import numpy

from seqdbr.core import backend, initializers
from seqdbr.core.functions import connection
from seqdbr.core.link import Link
from seqdbr.core.variable import Parameter

__all__ = ['EmbedID']


class EmbedID(Link):
    """Word/character embedding: ``y[...] = W[x[...]]``.

    Args:
        in_size (int): vocabulary size (ids are ``0 .. in_size-1``).
        out_size (int): embedding dimension.
        initialW: initializer spec for ``W`` (see
            :func:`seqdbr.core.initializers.get_initializer`). Default:
            ``Normal(scale=1.0)``, i.e. unit-variance entries, so an embedded id has the
            same scale whatever the vocabulary size (fan-based rules such as LeCun's would
            divide by ``in_size``, which is not a fan-in for a lookup). An array must have
            shape ``(in_size, out_size)``.
        ignore_label (int or None): id that maps to a zero vector and gets no gradient
            (padding).

    Parameters:
        W: ``(in_size, out_size)``, float32 by default.

    Call:
        ``x``: int32/int64 array (or Variable) of any shape, values in ``[0, in_size)`` or
        ``ignore_label`` -> Variable of shape ``x.shape + (out_size,)``.

    Raises:
        ValueError: non-positive sizes or an ``initialW`` array of the wrong shape.
    """

    def __init__(self, in_size, out_size, initialW=None, ignore_label=None):
        super().__init__()
        for name, v in (('in_size', in_size), ('out_size', out_size)):
            if isinstance(v, bool) or not isinstance(v, (int, numpy.integer)) or v <= 0:
                raise ValueError('EmbedID: %s must be a positive int, got %r' % (name, v))
        if ignore_label is not None and (isinstance(ignore_label, bool)
                                         or not isinstance(ignore_label, (int, numpy.integer))):
            raise TypeError('EmbedID: ignore_label must be an int or None, got %r'
                            % (ignore_label,))
        if backend.is_array(initialW) \
                and tuple(initialW.shape) != (in_size, out_size):
            raise ValueError('EmbedID: initialW has shape %s but W must have shape '
                             '(in_size, out_size) = (%d, %d)'
                             % (initialW.shape, in_size, out_size))
        self.in_size = int(in_size)
        self.out_size = int(out_size)
        self.ignore_label = None if ignore_label is None else int(ignore_label)
        if initialW is None:
            initialW = initializers.Normal(1.0)
        with self.init_scope():
            self.W = Parameter(initializers.get_initializer(initialW),
                               (self.in_size, self.out_size))

    def forward(self, x):
        return connection.embed_id(x, self.W, self.ignore_label)

    def repr_args(self):
        return 'in_size=%d, out_size=%d, ignore_label=%s' % (self.in_size, self.out_size,
                                                             self.ignore_label)
