"""``Sequential``: a chain of layers called one after another."""
from seqdbr.core.link import ChainList, Link

__all__ = ['Sequential']


class Sequential(ChainList):
    """Call layers in order: ``y = f_n(... f_2(f_1(x)))``.

    Each layer is a :class:`Link` (registered as a child, so its parameters are seen by
    optimizers and serializers) or any other callable, e.g. ``F.relu`` or a lambda (no
    parameters). When a layer returns a tuple, the next one is called with its elements as
    positional arguments (so ``Sequential(rnn, lambda hy, cy, ys: ys)`` works).

    Parameter paths name links by their position among the *links* only (``'/0/W'``,
    ``'/1/W'`` for ``Sequential(L.Linear(3, 4), F.relu, L.Linear(4, 2))``), as in
    Chainer's ``Sequential``; ``seq[i]`` indexes all layers.

    Args:
        *layers: links and/or callables, at least one to call it.

    Call:
        ``seq(*args)`` -> the last layer's output.

    Raises:
        TypeError: a layer that is neither a Link nor callable, or the same Link twice.
        ValueError: calling an empty Sequential.
    """

    def __init__(self, *layers):
        super().__init__()
        self.__dict__['_layers'] = []
        for layer in layers:
            self.append(layer)

    def append(self, layer):
        """Add ``layer`` (a Link or a callable) at the end."""
        if isinstance(layer, Link):
            try:
                ChainList.append(self, layer)
            except ValueError as e:
                raise TypeError('Sequential: %s' % e) from None
        elif not callable(layer):
            raise TypeError('Sequential: layer %d is %r, neither a Link nor a callable'
                            % (len(self._layers), layer))
        self._layers.append(layer)

    add_link = append

    def __getitem__(self, index):
        return self._layers[index]

    def __len__(self):
        return len(self._layers)

    def __iter__(self):
        return iter(self._layers)

    def forward(self, *args):
        if not self._layers:
            raise ValueError('Sequential: no layers to call; append some first')
        x = args
        for layer in self._layers:
            x = layer(*x) if isinstance(x, tuple) else layer(x)
        return x

    def _copy(self, mode):
        new = ChainList._copy(self, mode)
        copies = {id(old): c for old, c in zip(self._children, new._children)}
        new.__dict__['_layers'] = [copies.get(id(f), f) for f in self._layers]
        return new

    def __repr__(self):
        lines = ['Sequential(']
        for i, layer in enumerate(self._layers):
            text = repr(layer) if isinstance(layer, Link) else \
                getattr(layer, '__name__', repr(layer))
            lines.append('  (%d): %s' % (i, text.replace('\n', '\n  ')))
        return '\n'.join(lines) + '\n)'
