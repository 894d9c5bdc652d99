"""``Convolution2D`` and ``Convolution1D``: convolution layers with a lazily sized kernel."""
import numpy

from seqdbr.core import backend, initializers
from seqdbr.core.functions import convolution
from seqdbr.core.functions import _windows
from seqdbr.core.link import Link
from seqdbr.core.variable import Parameter

__all__ = ['Convolution2D', 'Convolution1D']


def _size(cls, name, v, allow_none):
    if v is None and allow_none:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, numpy.integer)) or v <= 0:
        raise ValueError('%s: %s must be a positive int%s, got %r'
                         % (cls, name, ' or None (inferred on the first call)' if allow_none
                            else '', v))
    return int(v)


class _ConvolutionND(Link):
    """Shared body of the 1-d and 2-d layers (``nd`` spatial axes)."""
    nd = 2

    def __init__(self, in_channels, out_channels, ksize=None, stride=1, pad=0, nobias=False,
                 initialW=None, initial_bias=None, dilate=1, groups=1):
        super().__init__()
        cls = type(self).__name__
        if ksize is None:  # Convolution2D(out_channels, ksize): in_channels is lazy
            in_channels, out_channels, ksize = None, in_channels, out_channels
        self.out_channels = _size(cls, 'out_channels', out_channels, False)
        self.in_channels = _size(cls, 'in_channels', in_channels, True)
        self.ksize = _windows.as_tuple(cls, 'ksize', ksize, self.nd, 1)
        self.stride = _windows.as_tuple(cls, 'stride', stride, self.nd, 1)
        self.pad = _windows.as_tuple(cls, 'pad', pad, self.nd, 0)
        self.dilate = _windows.as_tuple(cls, 'dilate', dilate, self.nd, 1)
        self.groups = _size(cls, 'groups', groups, False)
        if self.out_channels % self.groups or (
                self.in_channels is not None and self.in_channels % self.groups):
            raise ValueError('%s: groups=%d must divide out_channels=%d and in_channels=%s'
                             % (cls, self.groups, self.out_channels, self.in_channels))
        init = initializers.get_initializer(initialW)
        if backend.is_array(initialW):
            if self.in_channels is None:
                self.in_channels = initialW.shape[1] * self.groups
            want = self._w_shape(self.in_channels)
            if initialW.shape != want:
                raise ValueError('%s: initialW has shape %s but W must have shape %s '
                                 '(out_channels, in_channels / groups, *ksize)'
                                 % (cls, initialW.shape, want))
        with self.init_scope():
            self.W = Parameter(init, None if self.in_channels is None
                               else self._w_shape(self.in_channels))
            if nobias:
                self.b = None
            else:
                self.b = Parameter(initializers.get_initializer(
                    0.0 if initial_bias is None else initial_bias), (self.out_channels,))

    def _w_shape(self, in_channels):
        return (self.out_channels, in_channels // self.groups) + self.ksize

    def _initialize(self, x):
        if x.ndim != self.nd + 2:
            raise ValueError('%s: x must be %d-d %s, got shape %s'
                             % (type(self).__name__, self.nd + 2,
                                '(B, C, H, W)' if self.nd == 2 else '(B, C, T)', x.shape))
        C = int(x.shape[1])
        if C % self.groups:
            raise ValueError('%s: groups=%d must divide the input channels, but x of shape %s '
                             'has %d' % (type(self).__name__, self.groups, x.shape, C))
        self.W.initialize(self._w_shape(C), xp=self.xp)
        self.in_channels = C

    def serialize(self, serializer):
        super().serialize(serializer)
        if self.W.array is not None:   # a lazy W may have been created by loading
            self.in_channels = int(self.W.array.shape[1]) * self.groups

    def repr_args(self):
        return ('in_channels=%s, out_channels=%d, ksize=%s, stride=%s, pad=%s, dilate=%s, '
                'groups=%d, nobias=%s' % (self.in_channels, self.out_channels, self.ksize,
                                          self.stride, self.pad, self.dilate, self.groups,
                                          self.b is None))


class Convolution2D(_ConvolutionND):
    """Two-dimensional convolution layer over ``(B, C, H, W)`` (see ``F.convolution_2d``).

    ``Convolution2D(out_channels, ksize)`` (two arguments) and ``Convolution2D(None,
    out_channels, ksize)`` create ``W`` on the first call with ``in_channels = x.shape[1]``.

    Args:
        in_channels (int or None): input channels ``C``; None: inferred on the first call.
        out_channels (int): output channels ``O``.
        ksize (int or pair): kernel ``(kh, kw)``.
        stride, pad, dilate (int or pair): as ``F.convolution_2d``.
        nobias (bool): no bias.
        initialW: initializer spec for ``W`` (default LeCun normal, fan-in
            ``C / groups * kh * kw``); an array must have ``W``'s shape.
        initial_bias: initializer spec for ``b`` (default 0).
        groups (int): channel groups (divides ``C`` and ``O``).

    Parameters:
        W: ``(O, C / groups, kh, kw)``, float32 unless the initializer says otherwise.
        b: ``(O,)`` or None.

    Call:
        ``x`` float ``(B, C, H, W)`` -> Variable ``(B, O, oh, ow)``.

    Raises:
        ValueError: non-positive sizes, groups not dividing the channels, an ``initialW``
            of the wrong shape; on call, the errors of ``F.convolution_2d``.
    """
    nd = 2

    def forward(self, x):
        if self.W.array is None:
            self._initialize(x)
        return convolution.convolution_2d(x, self.W, self.b, self.stride, self.pad,
                                          self.dilate, self.groups)


class Convolution1D(_ConvolutionND):
    """One-dimensional convolution layer over sequences ``(B, C, T)`` (``F.convolution_1d``).

    Args:
        in_channels, out_channels, ksize, stride, pad, nobias, initialW, initial_bias,
        dilate, groups: as :class:`Convolution2D`, with int sizes.
        causal (bool): pad ``dilate (ksize - 1)`` steps on the left only, so the output at
            step t sees no input after it (pad must be 0).

    Parameters:
        W: ``(O, C / groups, k)``; b: ``(O,)`` or None.

    Call:
        ``x`` float ``(B, C, T)`` -> Variable ``(B, O, T_out)``.
    """
    nd = 1

    def __init__(self, in_channels, out_channels, ksize=None, stride=1, pad=0, nobias=False,
                 initialW=None, initial_bias=None, dilate=1, groups=1, causal=False):
        super().__init__(in_channels, out_channels, ksize, stride, pad, nobias, initialW,
                         initial_bias, dilate, groups)
        self.causal = bool(causal)

    def forward(self, x):
        if self.W.array is None:
            self._initialize(x)
        return convolution.convolution_1d(x, self.W, self.b, self.stride, self.pad,
                                          self.dilate, self.groups, self.causal)

    def repr_args(self):
        return super().repr_args() + ', causal=%s' % self.causal
