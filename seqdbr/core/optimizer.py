"""Optimizer machinery: ``Optimizer``, ``GradientMethod``, ``UpdateRule``, ``Hyperparameter``.

An optimizer is attached to a link with ``opt.setup(link)``. Setup gives every
``Parameter`` of the link its own ``UpdateRule`` (stored in ``param.update_rule``);
the rule owns that parameter's state arrays (momentum, moment estimates, ...)
and a ``Hyperparameter`` view whose parent is the optimizer's hyperparameters.

Hyperparameters
---------------
Reading ``rule.hyperparam.lr`` returns the rule's own value when one was set on
the rule, else the optimizer's. So::

    opt = seqdbr.optimizers.MomentumSGD(lr=0.1)
    opt.setup(model)
    opt.lr = 0.05                                  # every rule, from the next update on
    model.embed.W.update_rule.hyperparam.lr = 0.0  # this parameter only (override)
    del model.embed.W.update_rule.hyperparam.lr    # back to following the optimizer
    model.l1.b.update_rule.enabled = False         # freeze a parameter

One training step
-----------------
``opt.update()`` (after ``loss.backward()``) or ``opt.update(lossfun, *args)``
(``cleargrads`` -> ``loss = lossfun(*args)`` -> ``loss.backward()`` -> update) does:

1. ``opt.t += 1``: inside hooks and rules ``opt.t`` is the 1-based index of the
   update being performed.
2. The hooks, in registration order (all hooks run before the rules, "pre" timing).
3. Each parameter's rule.

Parameters without a gradient (policy)
--------------------------------------
A parameter whose ``grad`` is None (the loss did not use it, or it is not initialized
yet) is skipped by every rule and every built-in hook: its value is untouched, its
rule's step count ``rule.t`` does not advance, and its state is not even created
(state is created lazily on a parameter's first real update). Note the difference
with a zero gradient, which is a real update (momentum keeps moving the parameter,
Adam's moments decay). The built-in hooks skip such parameters too; in particular
``GradientClipping``'s global norm is taken over the parameters that have a gradient.

Step counts
-----------
``opt.t`` counts ``update()`` calls. ``rule.t`` counts the updates that rule actually
applied; it is what Adam's bias correction uses, so a parameter that joins training
late (e.g. a decoder head first used at step 100) gets the correct correction for its
own moment estimates. For parameters that receive a gradient at every step,
``rule.t == opt.t``.

Serialization
-------------
``opt.serialize(s)`` stores ``t``, ``epoch``, ``base_lr``, the optimizer's
hyperparameters (namespace ``hyperparam``) and, under each parameter's path
(``'/l1/W'`` -> ``s['l1']['W']``), the rule's ``t`` and state arrays (none while
``rule.t == 0``: an untouched parameter has no state to save). Loading recreates
state (with the parameter's shape, dtype and device) for parameters the fresh
optimizer has not updated yet. Per-parameter hyperparameter overrides and
``enabled`` flags are configuration (set them again in code), not saved state.
Load the model before the optimizer, so lazily shaped parameters are initialized.

Devices and dtypes
------------------
State arrays live on the parameter's device with the parameter's dtype; after
``link.to_gpu()`` / ``to_cpu()`` the state follows on the next update. NumPy arrays
are updated with in-place ufuncs; CuPy arrays with one fused ``ElementwiseKernel`` per
rule (compiled on first use). Float16 parameters get float16 state, in which small
constants such as Adam's ``eps=1e-8`` underflow: train float16 models from a float32
master copy.
"""
import collections
import numbers

import numpy

from seqdbr.core import backend, cuda_kernels

__all__ = ['Hyperparameter', 'UpdateRule', 'Optimizer', 'GradientMethod', 'LazyKernel']

_ndarray = numpy.ndarray


class Hyperparameter:
    """A namespace of hyperparameters that falls back to a parent namespace.

    ``hp.name`` is this object's own value when it was set here, else ``parent.name``;
    ``del hp.name`` removes an own value (the parent's shows through again). The
    optimizer holds the root namespace; each ``UpdateRule`` holds a child of it.

    Args:
        parent (Hyperparameter or None): where unset names are looked up.
    """

    def __init__(self, parent=None):
        object.__setattr__(self, '_parent', parent)

    def __getattr__(self, name):
        # Only called when ``name`` is not an own attribute (a rule reading a value it
        # inherits): one dict lookup and one getattr on the parent.
        parent = self.__dict__.get('_parent')
        if parent is None:
            raise AttributeError('no hyperparameter named %r (known: %s)'
                                 % (name, ', '.join(sorted(self.get_dict())) or 'none'))
        return getattr(parent, name)

    @property
    def parent(self):
        """The namespace unset names fall back to (None for the root)."""
        return self.__dict__.get('_parent')

    def get_dict(self):
        """All visible hyperparameters (own values over the parent's) as a dict."""
        parent = self.__dict__.get('_parent')
        d = {} if parent is None else parent.get_dict()
        for k, v in self.__dict__.items():
            if not k.startswith('_'):
                d[k] = v
        return d

    def own_dict(self):
        """Only the values set on this namespace (the per-parameter overrides of a rule)."""
        return {k: v for k, v in self.__dict__.items() if not k.startswith('_')}

    def __repr__(self):
        items = ', '.join('%s=%r' % kv for kv in sorted(self.get_dict().items()))
        return 'Hyperparameter(%s)' % items


def LazyKernel(in_params, out_params, operation, name):
    """Declare an optimizer's update kernel in :mod:`seqdbr.core.cuda_kernels` (compiled on
    its first call; creating it never imports CuPy). The kernels take the parameter, its
    gradient and its state at the parameter's dtype (float16, float32 or float64) and the
    hyperparameters as scalars."""
    scalars = [p.split()[-1] for p in in_params.split(',')][1:]   # all inputs but grad
    return cuda_kernels.elementwise(name, in_params, out_params, operation,
                                    types=[{'T': t} for t in cuda_kernels.FLOATS],
                                    scalars=scalars)


class UpdateRule:
    """How one parameter is updated from its gradient; owns that parameter's state.

    Subclasses define:

    * ``state_names(self)``: the names of the state arrays (default: none);
    * ``init_state(self, param)``: a dict of zero arrays shaped like ``param.array``
      (the default builds one per name in ``state_names()``);
    * ``update_core_cpu(self, array, grad)`` / ``update_core_gpu(self, array, grad)``:
      update ``array`` (``param.array``) in place from ``grad``, reading and updating
      ``self.state`` in place.

    Args:
        parent_hyperparam (Hyperparameter or None): the optimizer's namespace. When None
            (a standalone rule) the rule's defaults are used.
        **hyperparams: values set on this rule (None values are ignored).

    Attributes:
        hyperparam (Hyperparameter): this rule's view (own overrides over the parent's).
        state (dict or None): state arrays; None until the first real update.
        t (int): number of updates this rule has applied.
        enabled (bool): when False, ``update`` does nothing.
    """
    _defaults = {}

    def __init__(self, parent_hyperparam=None, **hyperparams):
        if parent_hyperparam is None:
            parent_hyperparam = Hyperparameter()
            for k, v in self._defaults.items():
                setattr(parent_hyperparam, k, v)
        hp = Hyperparameter(parent_hyperparam)
        for k, v in hyperparams.items():
            if v is not None:
                setattr(hp, k, v)
        self.hyperparam = hp
        self.state = None
        self.t = 0
        self.enabled = True
        self._device_key = None     # backend.device_key of the state arrays

    def state_names(self):
        """Names of this rule's state arrays (depends on hyperparameters for some rules)."""
        return ()

    def init_state(self, param):
        """Return the state for ``param``: one zero array per name in ``state_names()``."""
        xp = backend.get_array_module(param.array)
        return {name: xp.zeros_like(param.array) for name in self.state_names()}

    def update(self, param):
        """Apply one update to ``param`` from ``param.grad`` (skipped when the grad is None
        or the rule is disabled)."""
        if not self.enabled:
            return
        grad = param.grad
        if grad is None:
            return
        array = param.array
        if type(array) is _ndarray:
            if self.state is None:
                self.state = self.init_state(param)
                self._device_key = -1
            elif self._device_key != -1:
                self._move_state(array)
            self.t += 1
            self.update_core_cpu(array, grad)
            return
        # CuPy: the parameter's device is current while its state is created and updated
        # (CuPy allocates and launches on the current device), and the state follows the
        # parameter when it moved, between the host and a GPU or between two GPUs.
        with backend.using_device(array):
            if self.state is None:
                self.state = self.init_state(param)
                self._device_key = backend.device_key(array)
            elif backend.device_key(array) != self._device_key:
                self._move_state(array)
            self.t += 1
            self.update_core_gpu(array, grad)

    def update_core_cpu(self, array, grad):
        raise NotImplementedError('%s does not implement update_core_cpu' % type(self).__name__)

    def update_core_gpu(self, array, grad):
        raise NotImplementedError('%s does not implement update_core_gpu' % type(self).__name__)

    def _move_state(self, array):
        # The parameter moved between devices (link.to_device() after some updates): bring
        # the state along.
        dev = backend.get_device_from_array(array)
        for k, v in self.state.items():
            self.state[k] = dev.send(v)
        self._device_key = backend.device_key(array)

    def serialize(self, serializer, param=None):
        """Save or load ``t`` and the state arrays.

        A rule with ``t == 0`` has no state and writes none. When loading a state saved
        with ``t > 0`` into a rule that has none yet, zero arrays shaped like
        ``param.array`` are created first and the stored arrays copied into them (so a
        shape mismatch raises the serializer's ValueError); without ``param`` the stored
        arrays are taken as they are.
        """
        self.t = serializer('t', self.t)
        if self.t == 0:
            self.state = None
            return
        state = self.state
        if state is None:
            if param is not None and param.array is None:
                raise RuntimeError(
                    'cannot load optimizer state for the uninitialized parameter %r; load '
                    'the model before the optimizer so its parameters get their shapes'
                    % (param.name,))
            state = {} if param is None else self.init_state(param)
        for name in self.state_names():
            value = state.get(name)
            if value is None and param is not None:
                with backend.using_device(param.array):
                    value = backend.get_array_module(param.array).zeros_like(param.array)
            state[name] = serializer(name, value)
        self.state = state
        # Arrays loaded without a parameter may sit on another device than the parameter;
        # update() compares this key with the parameter's and moves the state if needed.
        self._device_key = backend.device_key(next(iter(state.values()))) if state else None


def _check_link(link):
    for attr in ('params', 'namedparams', 'cleargrads'):
        if not callable(getattr(link, attr, None)):
            raise TypeError('Optimizer.setup expects a Link (an object with params(), '
                            'namedparams() and cleargrads()), got %s without %s()'
                            % (type(link).__name__, attr))


class Optimizer:
    """Base class: target link, step/epoch counters, hooks, serialization.

    Attributes:
        target: the link given to ``setup`` (None before).
        t (int): number of ``update()`` calls since ``setup``.
        epoch (int): number of ``new_epoch()`` calls since ``setup`` (completed epochs).
    """

    def __init__(self):
        self.target = None
        self.t = 0
        self.epoch = 0
        self._hooks = collections.OrderedDict()

    def setup(self, link):
        """Attach to ``link`` and reset ``t`` and ``epoch``. Returns ``self``."""
        _check_link(link)
        self.target = link
        self.t = 0
        self.epoch = 0
        return self

    def _require_target(self, what):
        if self.target is None:
            raise RuntimeError('%s: this optimizer has no target link; call setup(link) first'
                               % what)

    def new_epoch(self):
        """Mark the end of an epoch: ``epoch += 1`` (learning-rate schedules read it)."""
        self.epoch += 1

    # -- hooks ----------------------------------------------------------------------------
    def add_hook(self, hook, name=None):
        """Register ``hook(optimizer)``, run before the rules on every update.

        Hooks run in registration order. ``name`` defaults to ``hook.name``, then the
        function's ``__name__``, then the class name; a name already in use raises KeyError.
        A hook whose ``timing`` attribute is not ``'pre'`` raises ValueError (only pre-update
        hooks exist).
        """
        if not callable(hook):
            raise TypeError('an optimizer hook must be callable as hook(optimizer), got %s'
                            % type(hook).__name__)
        timing = getattr(hook, 'timing', 'pre')
        if timing != 'pre':
            raise ValueError("unsupported hook timing %r: optimizer hooks run before the "
                             "update rules ('pre')" % (timing,))
        if name is None:
            name = (getattr(hook, 'name', None) or getattr(hook, '__name__', None)
                    or type(hook).__name__)
        if name in self._hooks:
            raise KeyError('a hook named %r is already registered; pass another name= or '
                           'remove_hook(%r) first' % (name, name))
        self._hooks[name] = hook

    def remove_hook(self, name):
        """Unregister the hook called ``name`` (KeyError when there is none)."""
        try:
            del self._hooks[name]
        except KeyError:
            raise KeyError('no hook named %r (registered: %s)'
                           % (name, ', '.join(self._hooks) or 'none')) from None

    @property
    def hooks(self):
        """Registered hooks, ``{name: hook}`` in run order (a copy)."""
        return collections.OrderedDict(self._hooks)

    def call_hooks(self):
        """Run every hook on this optimizer, in registration order."""
        for hook in self._hooks.values():
            hook(self)

    # -- update ---------------------------------------------------------------------------
    def update(self, lossfun=None, *args, **kwds):
        raise NotImplementedError

    # -- serialization --------------------------------------------------------------------
    def serialize(self, serializer):
        """Save or load ``t`` and ``epoch`` (subclasses add their own state)."""
        if self.target is None:
            raise RuntimeError('this optimizer has no target link: call setup(link) before '
                               'loading optimizer state (or saving it)')
        self.t = serializer('t', self.t)
        self.epoch = serializer('epoch', self.epoch)


def _path_namespace(serializer, path):
    s = serializer
    for part in path.split('/'):
        if part:
            s = s[part]
    return s


class GradientMethod(Optimizer):
    """An optimizer that updates each parameter from its gradient with an ``UpdateRule``.

    Subclasses set ``_rule_class`` and call ``super().__init__(**hyperparams)`` with every
    hyperparameter (the names become ``opt.<name>`` read/write properties through
    ``hyperparam``). ``_lr_name`` names the main learning rate (``None``: the method has
    none).

    Attributes:
        hyperparam (Hyperparameter): the optimizer-wide values every rule falls back to.
        base_lr (float or None): the learning rate LR schedules start from: the
            constructor's value. Setting ``opt.lr`` changes the current rate only; a
            schedule recomputes ``lr`` from ``base_lr`` and ``epoch`` (set ``opt.base_lr``
            to change a scheduled run's starting rate).
    """
    _rule_class = None
    _lr_name = 'lr'
    _no_lr_message = None

    def __init__(self, **hyperparams):
        super().__init__()
        hp = Hyperparameter()
        for k, v in hyperparams.items():
            setattr(hp, k, v)
        self.hyperparam = hp
        self._hyperparam_names = tuple(hyperparams)
        self.base_lr = None if self._lr_name is None else float(hyperparams[self._lr_name])

    def create_update_rule(self):
        """A new rule whose hyperparameters follow this optimizer's."""
        return self._rule_class(self.hyperparam)

    def setup(self, link):
        """Attach to ``link`` and reset ``t``/``epoch``: each of its parameters gets a fresh
        ``update_rule`` (replacing any previous one, with its state). Returns ``self``."""
        super().setup(link)
        for param in link.params():
            param.update_rule = self.create_update_rule()
        return self

    @property
    def lr(self):
        """The main learning rate (read/write; Adam: ``alpha``). Writing it changes every
        rule without a per-parameter override, from the next update on."""
        name = self._lr_name
        if name is None:
            raise AttributeError(self._no_lr_message or '%s has no learning rate'
                                 % type(self).__name__)
        return getattr(self.hyperparam, name)

    @lr.setter
    def lr(self, value):
        name = self._lr_name
        if name is None:
            raise AttributeError(self._no_lr_message or '%s has no learning rate'
                                 % type(self).__name__)
        setattr(self.hyperparam, name, value)

    def update(self, lossfun=None, *args, **kwds):
        """Apply one update to every parameter of the target.

        Without ``lossfun`` the gradients already in ``param.grad`` are used (call after
        ``loss.backward()``). With ``lossfun`` this first runs ``target.cleargrads()``,
        ``loss = lossfun(*args, **kwds)`` and ``loss.backward()``. Then ``t`` is
        incremented, the hooks run, and each rule updates its parameter (parameters with
        ``grad`` None are skipped, see the module docstring).
        """
        self._require_target('update')
        target = self.target
        if lossfun is not None:
            target.cleargrads()
            loss = lossfun(*args, **kwds)
            backward = getattr(loss, 'backward', None)
            if backward is None:
                raise TypeError('lossfun must return a Variable (the loss), got %s'
                                % type(loss).__name__)
            backward()
            del loss
        self.t += 1
        self.call_hooks()
        for param in target.params():
            rule = param.update_rule
            if rule is None:  # a parameter added to the link after setup
                rule = param.update_rule = self.create_update_rule()
            rule.update(param)

    def serialize(self, serializer):
        """Save or load ``t``, ``epoch``, ``base_lr``, the hyperparameters and every rule's
        ``t`` and state (see the module docstring for the layout)."""
        super().serialize(serializer)
        hs = serializer['hyperparam']
        hp = self.hyperparam
        for name in self._hyperparam_names:
            value = getattr(hp, name)
            if not isinstance(value, bool):
                if not isinstance(value, numbers.Real):
                    continue  # not a number (a user-defined extra): configuration only
                value = float(value)  # an int set at run time must load as the same type
            setattr(hp, name, hs(name, value))
        if self._lr_name is not None:
            self.base_lr = serializer('base_lr', float(self.base_lr))
        for path, param in self.target.namedparams():
            rule = param.update_rule
            if rule is None:
                rule = param.update_rule = self.create_update_rule()
            try:
                rule.serialize(_path_namespace(serializer, path), param)
            except RuntimeError as e:
                raise RuntimeError('%s: %s' % (path, e)) from None

    def __repr__(self):
        items = ', '.join('%s=%r' % (k, getattr(self.hyperparam, k))
                          for k in self._hyperparam_names)
        return '%s(%s)' % (type(self).__name__, items)


def hyperparameter_property(name, doc):
    """A read/write ``opt.<name>`` property forwarding to ``opt.hyperparam.<name>``."""

    def fget(self):
        return getattr(self.hyperparam, name)

    def fset(self, value):
        setattr(self.hyperparam, name, value)

    return property(fget, fset, doc=doc)


def check_nonnegative(name, value):
    if not isinstance(value, numbers.Real) or not value >= 0:
        raise ValueError('%s must be a real number >= 0, got %r' % (name, value))
    return float(value)


def check_positive(name, value):
    if not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError('%s must be a real number > 0, got %r' % (name, value))
    return float(value)


def check_unit_interval(name, value):
    """0 <= value < 1 (decay rates and momentum coefficients)."""
    if not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise ValueError('%s must be in [0, 1), got %r' % (name, value))
    return float(value)


def _divided_step_cpu(array, grad, acc, tmp, lr, eps):
    """``array -= lr * grad / (sqrt(acc) + eps)`` in place on NumPy arrays, with ``tmp`` (an
    array of ``array``'s shape and dtype) as scratch space: the CPU step shared by AdaGrad
    (``acc = h``) and RMSprop (``acc = ms``)."""
    numpy.sqrt(acc, out=tmp)
    tmp += eps
    numpy.divide(grad, tmp, out=tmp)
    tmp *= lr
    array -= tmp
