"""``Link``, ``Chain`` and ``ChainList``: objects that own parameters.

A :class:`Link` owns :class:`~seqdbr.core.variable.Parameter` objects (and
"persistent" non-trainable state such as running statistics or counters). A
:class:`Chain` additionally owns named child links, a :class:`ChainList` owns an
ordered list of child links. Together they form a tree whose leaves hold the
trainable parameters; optimizers walk it with :meth:`Link.namedparams`, the
serializers with :meth:`Link.serialize`.

Registration happens only inside ``with self.init_scope():`` (Parameters, and for
a Chain child Links, assigned as attributes there are recorded in assignment
order). Outside the scope attribute assignment is plain Python, so per-step state
(``self.h = h`` in a recurrent link) costs one flag test, and attribute reads are
never intercepted.

    class MLP(Chain):
        def __init__(self, n_units, n_out):
            super().__init__()
            with self.init_scope():
                self.l1 = L.Linear(None, n_units)
                self.l2 = L.Linear(n_units, n_out)

        def forward(self, x):
            return self.l2(F.relu(self.l1(x)))

Names: ``namedparams()`` yields ``('/l1/W', param)``; ChainList children are named by
position (``'/0/W'``). The order is deterministic: a link's own parameters in
registration order, then its children (in registration order), depth first.
"""
import contextlib
import copy as _copy
import warnings

import numpy

from seqdbr.core import backend
from seqdbr.core.variable import Parameter

__all__ = ['Link', 'Chain', 'ChainList']


_CpuDevice = backend.CpuDevice


def _is_array(x):
    return backend.is_array(x)


def _clone_param(p, mode, device):
    """A new Parameter object for ``Link.copy`` (see there for the modes)."""
    q = _copy.copy(p)  # same class and slots; rebinds, never copies, the arrays
    q.creator = None
    q.rank = 0
    q.update_rule = None
    if mode == 'share':
        q._grad = None
    elif mode == 'copy':
        if p.array is not None:
            q.array = p.array.copy()
        q._grad = None if p._grad is None else p._grad.copy()
    else:  # 'init'
        q._grad = None
        a = p.array
        if a is not None:
            if p.initializer is None and a.ndim < 2:
                q.array = device.xp.zeros_like(a)  # built from a raw vector: the bias convention
            else:
                q.array = None
                q._dtype = a.dtype
                q.initialize(a.shape, device=device)
    return q


def _indent(text):
    return text.replace('\n', '\n  ')


class Link:
    """A model component that owns parameters and persistent values.

    Subclass it for a layer with its own weights (``Linear``), register parameters with
    ``with self.init_scope(): self.W = Parameter(...)`` or :meth:`add_param`, and implement
    ``forward``. ``link(*args)`` calls ``forward(*args)``.

    Attributes:
        device: the device (``CpuDevice()`` or ``GpuDevice(id)``) the link's arrays live on;
            changed by :meth:`to_device`.
        xp: ``numpy`` or ``cupy`` for that device.
    """
    _within_init_scope = False
    _device = backend.CpuDevice()

    def __init__(self):
        d = self.__dict__
        d['_params'] = []
        d['_persistent'] = []
        d['_within_init_scope'] = False
        d['_device'] = backend.CpuDevice()

    # -- registration -----------------------------------------------------------------
    @contextlib.contextmanager
    def init_scope(self):
        """Context in which assigned Parameters (and, for Chain, Links) are registered."""
        if '_params' not in self.__dict__:
            raise RuntimeError('%s.__init__ must call super().__init__() before init_scope()'
                               % type(self).__name__)
        d = self.__dict__
        old = d['_within_init_scope']
        d['_within_init_scope'] = True
        try:
            yield
        finally:
            d['_within_init_scope'] = old

    def __setattr__(self, name, value):
        if self._within_init_scope:
            self._register(name, value)
        object.__setattr__(self, name, value)

    def _register(self, name, value):
        if isinstance(value, Parameter):
            self._check_not_registered(value, self._params, name)
            if value.name is None:
                value.name = name
            if name not in self._params:  # a replacement keeps its place in the order
                self._unregister(name)
                self._params.append(name)
        elif isinstance(value, Link):
            raise TypeError('cannot register link %r on a %s: only a Chain holds named child '
                            'links (use a Chain subclass), or append it to a ChainList'
                            % (name, type(self).__name__))
        else:
            self._unregister(name)

    def _check_not_registered(self, value, names, name):
        d = self.__dict__
        for other in names:
            if other != name and d.get(other) is value:
                raise ValueError('%s: the same object is already registered as %r; registering '
                                 'it again as %r would make optimizers update it twice (create '
                                 'a separate one, or share it via a single attribute)'
                                 % (type(self).__name__, other, name))

    def _unregister(self, name):
        for lst in (self._params, self._persistent):
            if name in lst:
                lst.remove(name)

    def __delattr__(self, name):
        if name in self.__dict__ and '_params' in self.__dict__:
            self._unregister(name)
        object.__delattr__(self, name)

    def _check_free(self, name):
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError('a parameter/persistent name must be a Python identifier, got %r'
                             % (name,))
        if hasattr(self, name):
            raise AttributeError('cannot register %r on %s: an attribute of that name already '
                                 'exists (pick another name or delete it first)'
                                 % (name, type(self).__name__))

    def add_param(self, name, shape=None, dtype=numpy.float32, initializer=None):
        """Register a new Parameter as attribute ``name``.

        Args:
            name (str): attribute name (must not exist yet).
            shape (tuple of int or None): when None the parameter stays uninitialized until
                ``getattr(link, name).initialize(shape)`` (lazy shape).
            dtype: float dtype of the array (default ``numpy.float32``).
            initializer: anything :func:`seqdbr.core.initializers.get_initializer` accepts
                (None means LeCun normal).

        Raises:
            AttributeError: ``name`` is already an attribute.
            ValueError: ``name`` is not an identifier.
        """
        self._check_free(name)
        if numpy.dtype(dtype).kind != 'f':
            raise TypeError('parameter %r: dtype must be a float type, got %s'
                            % (name, numpy.dtype(dtype)))
        p = Parameter(initializer, None, name=name, dtype=dtype)
        if shape is not None:
            p.initialize(shape, device=self._device)
        with self.init_scope():
            setattr(self, name, p)
        return p

    def add_persistent(self, name, value):
        """Register a non-trainable value that is serialized and moved by ``to_device``.

        Args:
            name (str): attribute name (must not exist yet).
            value: an ndarray (moved between devices and loaded in place), a Python scalar
                (``bool``, ``int``, ``float``, ``str``; loaded by value) or None.

        Raises:
            AttributeError: ``name`` is already an attribute.
            TypeError: ``value`` is of another type.
        """
        self._check_free(name)
        if not (value is None or _is_array(value)
                or isinstance(value, (bool, int, float, str, numpy.generic))):
            raise TypeError('persistent %r must be an array, a Python scalar or None, got %s'
                            % (name, type(value).__name__))
        self.__dict__[name] = value
        self._persistent.append(name)

    # -- traversal ------------------------------------------------------------------------
    def _own_params(self):
        d = self.__dict__
        for name in self._params:
            p = d.get(name)
            if not isinstance(p, Parameter):
                raise TypeError('%s.%s was registered as a Parameter but now holds %s; assign '
                                'a Parameter, or `del link.%s` to unregister it'
                                % (type(self).__name__, name, type(p).__name__, name))
            yield name, p

    def _named_children(self):
        return iter(())

    def params(self, include_uninit=True):
        """Yield every Parameter of this link and its descendants (``namedparams`` order)."""
        for _, p in self.namedparams(include_uninit):
            yield p

    def namedparams(self, include_uninit=True):
        """Yield ``(path, Parameter)`` pairs such as ``('/l1/W', W)``.

        Own parameters first (registration order), then each child's, depth first.
        ``include_uninit=False`` skips parameters whose array is not created yet.
        """
        stack = [('', self)]
        while stack:
            prefix, link = stack.pop()
            for name, p in link._own_params():
                if include_uninit or p.array is not None:
                    yield prefix + '/' + name, p
            kids = [(prefix + '/' + n, c) for n, c in link._named_children()]
            stack.extend(reversed(kids))

    def namedlinks(self, skipself=False):
        """Yield ``(path, link)``: ``('/', self)`` first (unless ``skipself``), then every
        descendant depth first (``'/l1'``, ``'/l1/sub'``, ...)."""
        if not skipself:
            yield '/', self
        stack = [('/' + n, c) for n, c in reversed(list(self._named_children()))]
        while stack:
            path, link = stack.pop()
            yield path, link
            kids = [(path + '/' + n, c) for n, c in link._named_children()]
            stack.extend(reversed(kids))

    def links(self, skipself=False):
        """Yield this link (unless ``skipself``) and every descendant, depth first."""
        for _, link in self.namedlinks(skipself):
            yield link

    def children(self):
        """Yield the direct child links (none for a plain Link)."""
        for _, c in self._named_children():
            yield c

    def cleargrads(self):
        """Set every parameter's gradient to None (the cheap way before a new backward)."""
        for p in self.params():
            p._grad = None

    def zerograds(self):
        """Set every initialized parameter's gradient to zeros (allocates)."""
        for p in self.params(include_uninit=False):
            p.zerograd()

    def count_params(self):
        """Total number of scalar parameters.

        Uninitialized (lazy) parameters count 0, and a ``UserWarning`` names them; run one
        forward pass first for the full count.
        """
        total = 0
        lazy = []
        for name, p in self.namedparams():
            if p.array is None:
                lazy.append(name)
            else:
                total += p.array.size
        if lazy:
            warnings.warn('count_params: %d uninitialized parameter(s) counted as 0: %s (run a '
                          'forward pass first to create them)' % (len(lazy), ', '.join(lazy)),
                          stacklevel=2)
        return total

    # -- copy ------------------------------------------------------------------------------
    def copy(self, mode='share'):
        """Return a copy of the link tree (new Link and Parameter objects).

        Args:
            mode (str): ``'share'``: parameter arrays (and persistent arrays) are shared with
                the original, gradients start as None; ``'copy'``: arrays, gradients and
                persistent arrays are deep-copied; ``'init'``: parameters get fresh arrays of
                the same shape and dtype drawn from their initializer (a parameter built from a
                raw array has none: it gets LeCun normal when it has 2 or more dimensions,
                zeros otherwise), persistents are deep-copied.
                Uninitialized parameters stay uninitialized in every mode. Other attributes
                are copied shallowly. Optimizer state (``update_rule``) is not copied.

        Raises:
            ValueError: unknown ``mode``.
        """
        if mode not in ('share', 'copy', 'init'):
            raise ValueError("Link.copy mode must be 'share', 'copy' or 'init', got %r"
                             % (mode,))
        return self._copy(mode)

    def _copy(self, mode):
        new = _copy.copy(self)  # shallow: a new object with a copy of __dict__
        d = new.__dict__
        d['_params'] = list(self._params)
        d['_persistent'] = list(self._persistent)
        d['_within_init_scope'] = False
        with self._device.using():       # CuPy copies onto the current device
            for name, p in self._own_params():
                d[name] = _clone_param(p, mode, self._device)
            if mode != 'share':
                for name in self._persistent:
                    v = d[name]
                    if _is_array(v):
                        d[name] = v.copy()
        return new

    # -- devices ---------------------------------------------------------------------------
    @property
    def device(self):
        """The device this link's arrays live on (``CpuDevice()`` or ``GpuDevice(id)``)."""
        return self._device

    @property
    def xp(self):
        """``numpy`` or ``cupy``: the array module of :attr:`device`."""
        return self._device.xp

    def to_device(self, device):
        """Move parameters, gradients and persistent arrays of the whole tree to ``device``.

        Args:
            device: ``'cpu'``, ``'gpu'``, ``'gpu:N'``, or a device object.

        Returns:
            self.

        Raises:
            ValueError: unknown device spec; RuntimeError: a GPU is asked for but not usable.
        """
        dev = backend.get_device(device)
        for link in self.links():
            for _, p in link._own_params():
                p.to_device(dev)
            d = link.__dict__
            for name in link._persistent:
                v = d[name]
                if _is_array(v):
                    d[name] = dev.send(v)
            d['_device'] = dev
            link._on_device_change(dev)
        return self

    def _on_device_change(self, device):
        """Hook for links with state outside parameters and persistents (e.g. the carried
        state of a stateful RNN link): called by ``to_device`` (on this link or any parent)
        after the parameters moved. The default does nothing."""

    def to_cpu(self):
        """Move everything to the host (NumPy). Returns self."""
        return self.to_device(backend.CpuDevice())

    def to_gpu(self, device=None):
        """Move everything to GPU ``device`` (int id or ``'gpu:N'``; default 0). Returns self."""
        dev = backend.get_device(0 if device is None else device)
        if not isinstance(dev, backend.GpuDevice):
            raise ValueError('to_gpu expects a GPU id >= 0 or a GPU spec, got %r; use to_cpu() '
                             'for the host' % (device,))
        return self.to_device(dev)

    # -- serialization ---------------------------------------------------------------------
    def serialize(self, serializer):
        """Save or load this link's state through ``serializer`` (see docs/design.md).

        Each parameter is written as ``serializer(name, param.array)``; an uninitialized
        parameter is created with the stored array's shape when loading (and skipped when
        saving). Then each persistent, then ``child.serialize(serializer[child_name])``.
        """
        d = self.__dict__
        for name, p in self._own_params():
            if p.array is None:
                value = serializer(name, None)
                if value is not None:
                    p.initialize(value.shape, device=self._device)  # keeps the declared dtype
                    if self.xp is numpy:
                        p.array[...] = backend.to_cpu(value)
                    else:
                        with self._device.using():
                            p.array[...] = self.xp.asarray(value)
            else:
                serializer(name, p.array)
        for name in self._persistent:
            v = d[name]
            if _is_array(v):
                serializer(name, v)
            else:
                loaded = serializer(name, v)
                if v is None and loaded is not None and self.xp is not numpy:
                    loaded = self._device.send(loaded)
                d[name] = loaded
        for name, child in self._named_children():
            child.serialize(serializer[name])

    # -- call / repr -----------------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        # The link's device is current while it runs, so every array its forward creates
        # (lazy parameters, zero states, temporaries) lands beside its parameters.
        dev = self._device
        if dev.__class__ is _CpuDevice:      # nothing to select (saves ~0.3 us per call)
            return self.forward(*args, **kwargs)
        with dev.using():
            return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):
        raise NotImplementedError('%s does not implement forward()' % type(self).__name__)

    def repr_args(self):
        """The text between the parentheses of ``repr(link)``; override in subclasses.

        The default lists parameter shapes (``W=(10, 5)``, ``W=?`` while uninitialized).
        """
        parts = []
        for name, p in self._own_params():
            parts.append('%s=%s' % (name, '?' if p.array is None else tuple(p.array.shape)))
        return ', '.join(parts)

    def __repr__(self):
        head = '%s(%s' % (type(self).__name__, self.repr_args())
        kids = list(self._named_children())
        if not kids:
            return head + ')'
        lines = [head]
        for name, child in kids:
            lines.append('  (%s): %s' % (name, _indent(repr(child))))
        return '\n'.join(lines) + '\n)'


class Chain(Link):
    """A link with named child links, registered by assignment inside ``init_scope()``.

    The children's parameters appear in ``namedparams`` under ``'/<child>/...'``.
    """

    def __init__(self):
        super().__init__()
        self.__dict__['_children'] = []

    def _register(self, name, value):
        if isinstance(value, Link):
            if value is self:
                raise ValueError('a link cannot be its own child (%r)' % name)
            self._check_not_registered(value, self._children, name)
            if name not in self._children:  # a replacement keeps its place in the order
                self._unregister(name)
                self._children.append(name)
        else:
            Link._register(self, name, value)

    def _unregister(self, name):
        Link._unregister(self, name)
        if name in self._children:
            self._children.remove(name)

    def add_link(self, name, link):
        """Register ``link`` as child ``name`` (same as assigning it inside ``init_scope``)."""
        if not isinstance(link, Link):
            raise TypeError('add_link expects a Link, got %s' % type(link).__name__)
        self._check_free(name)
        with self.init_scope():
            setattr(self, name, link)
        return link

    def _named_children(self):
        d = self.__dict__
        for name in self._children:
            c = d.get(name)
            if not isinstance(c, Link):
                raise TypeError('%s.%s was registered as a child link but now holds %s; assign '
                                'a Link, or `del chain.%s` to unregister it'
                                % (type(self).__name__, name, type(c).__name__, name))
            yield name, c

    def __getitem__(self, name):
        """The child link ``name``."""
        if name not in self._children:
            raise KeyError('%s has no child link %r (children: %s)'
                           % (type(self).__name__, name, ', '.join(self._children) or 'none'))
        return self.__dict__[name]

    def _copy(self, mode):
        new = Link._copy(self, mode)
        d = new.__dict__
        d['_children'] = list(self._children)
        for name, child in self._named_children():
            d[name] = child._copy(mode)
        return new


class ChainList(Link):
    """A link holding an ordered list of child links, named ``'0'``, ``'1'``, ...

    Args:
        *links: initial children (appended in order).
    """

    def __init__(self, *links):
        super().__init__()
        self.__dict__['_children'] = []
        for link in links:
            self.append(link)

    def append(self, link):
        """Add ``link`` as the next child (named by its position)."""
        if not isinstance(link, Link):
            raise TypeError('ChainList.append expects a Link, got %s' % type(link).__name__)
        if link is self:
            raise ValueError('a ChainList cannot contain itself')
        for i, c in enumerate(self._children):
            if c is link:
                raise ValueError('ChainList: this link is already child %d; appending it again '
                                 'would make optimizers update it twice' % i)
        self._children.append(link)

    add_link = append

    def __getitem__(self, index):
        return self._children[index]

    def __len__(self):
        return len(self._children)

    def __iter__(self):
        return iter(self._children)

    def _named_children(self):
        return ((str(i), c) for i, c in enumerate(self._children))

    def _copy(self, mode):
        new = Link._copy(self, mode)
        new.__dict__['_children'] = [c._copy(mode) for c in self._children]
        return new
