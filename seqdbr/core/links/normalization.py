"""``BatchNormalization``: the batch normalization layer with running statistics."""
import numpy

from seqdbr.core import initializers
from seqdbr.core.config import config
from seqdbr.core.functions import normalization
from seqdbr.core.link import Link
from seqdbr.core.variable import Parameter

__all__ = ['BatchNormalization']


class BatchNormalization(Link):
    """Batch normalization layer (Ioffe & Szegedy 2015), see ``F.batch_normalization``.

    With ``config.train`` True (the default) it normalizes with the batch's statistics and
    updates the running averages ``avg_mean`` and ``avg_var`` in place; with
    ``config.train`` False (``using_config('train', False)``, evaluation) it uses the running
    averages and changes nothing. The running averages are persistents: they are saved and
    loaded with the link and moved by ``to_device``; they are not trained.

    Args:
        size (int or None): channels ``C`` (``x`` is ``(B, C, ...)``); None: inferred from
            ``x.shape[1]`` on the first call.
        decay (float): decay of the running averages (default 0.9).
        eps (float): added to the variance (default 2e-5).
        dtype: float dtype of the parameters and statistics (default float32).
        use_gamma, use_beta (bool): learn the scale / shift (else fixed at 1 / 0).
        initial_gamma, initial_beta: initializer specs (default 1 and 0).

    Parameters and persistents:
        gamma, beta: ``(C,)`` Parameters (constants when ``use_gamma``/``use_beta`` is False).
        avg_mean, avg_var: ``(C,)`` running mean (starts at 0) and unbiased running variance
            (starts at 1). N: the number of training batches seen.

    Call:
        ``x`` float ``(B, C, ...)`` -> Variable of the same shape.

    Raises:
        ValueError: non-positive ``size``; on call, the errors of ``F.batch_normalization``
            (for instance ``x.shape[1] != size``).
    """

    def __init__(self, size=None, decay=0.9, eps=2e-5, dtype=numpy.float32, use_gamma=True,
                 use_beta=True, initial_gamma=None, initial_beta=None):
        super().__init__()
        if size is not None and (isinstance(size, bool) or not isinstance(
                size, (int, numpy.integer)) or size <= 0):
            raise ValueError('BatchNormalization: size must be a positive int or None '
                             '(inferred on the first call), got %r' % (size,))
        self.size = None if size is None else int(size)
        self.decay = decay
        self.eps = eps
        self.dtype = numpy.dtype(dtype)
        self.use_gamma, self.use_beta = bool(use_gamma), bool(use_beta)
        self._gamma_init = initializers.get_initializer(
            1.0 if initial_gamma is None else initial_gamma)
        self._beta_init = initializers.get_initializer(
            0.0 if initial_beta is None else initial_beta)
        with self.init_scope():
            if self.use_gamma:
                self.gamma = Parameter(self._gamma_init, dtype=self.dtype)
            if self.use_beta:
                self.beta = Parameter(self._beta_init, dtype=self.dtype)
        self.add_persistent('avg_mean', None)
        self.add_persistent('avg_var', None)
        self.add_persistent('N', 0)
        if self.size is not None:
            self._initialize(self.size)

    def _initialize(self, size):
        xp = self.xp
        self.size = size
        if self.use_gamma:
            self.gamma.initialize((size,), xp=xp)
        if self.use_beta:
            self.beta.initialize((size,), xp=xp)
        self.avg_mean = xp.zeros(size, dtype=self.dtype)
        self.avg_var = xp.ones(size, dtype=self.dtype)

    def _affine(self, x):
        xp = self.xp
        gamma = self.gamma if self.use_gamma else xp.ones(self.size, dtype=x.dtype)
        beta = self.beta if self.use_beta else xp.zeros(self.size, dtype=x.dtype)
        return gamma, beta

    def forward(self, x):
        if self.avg_mean is None:
            if x.ndim < 2:
                raise ValueError('BatchNormalization: x must be (B, C, ...), got shape %s'
                                 % (x.shape,))
            self._initialize(int(x.shape[1]))
        gamma, beta = self._affine(x)
        if config.train:
            y = normalization.batch_normalization(x, gamma, beta, self.eps, self.avg_mean,
                                                  self.avg_var, self.decay)
            self.N += 1
            return y
        return normalization.fixed_batch_normalization(x, gamma, beta, self.avg_mean,
                                                       self.avg_var, self.eps)

    def serialize(self, serializer):
        super().serialize(serializer)
        if self.avg_mean is not None and self.size is None:   # created by loading
            self.size = int(self.avg_mean.shape[0])

    def repr_args(self):
        return 'size=%s, decay=%s, eps=%s' % (self.size, self.decay, self.eps)
