"""``Classifier``: wraps a predictor with a loss (and accuracy) for training loops."""
from seqdbr.core.functions import evaluation, loss
from seqdbr.core.link import Chain, Link

__all__ = ['Classifier']

_DEFAULT = object()


class Classifier(Chain):
    """``loss = lossfun(predictor(*inputs), t)`` with the last positional argument as ``t``.

    Args:
        predictor (Link): the model; registered as the child ``predictor`` (parameters
            ``/predictor/...``).
        lossfun (callable): ``lossfun(y, t)`` -> scalar Variable; default
            ``F.softmax_cross_entropy``.
        accfun (callable or None): ``accfun(y, t)`` -> scalar Variable; default
            ``F.accuracy``. None disables accuracy (as does ``compute_accuracy = False``).

    Attributes (set by each call, None before):
        y: the predictor's output. loss: the loss Variable. accuracy: the accuracy Variable
        (None when ``compute_accuracy`` is False or ``accfun`` is None).
        compute_accuracy (bool): default True.

    Call:
        ``model(x, t)`` or ``model(x1, x2, ..., t)`` (keyword arguments go to the predictor)
        -> the loss Variable.

    Raises:
        TypeError: ``predictor`` is not a Link, or ``lossfun`` is not callable.
        ValueError: called with fewer than two positional arguments.
    """

    def __init__(self, predictor, lossfun=_DEFAULT, accfun=_DEFAULT):
        super().__init__()
        if not isinstance(predictor, Link):
            raise TypeError('Classifier: predictor must be a Link, got %s'
                            % type(predictor).__name__)
        if lossfun is _DEFAULT:
            lossfun = loss.softmax_cross_entropy
        if not callable(lossfun):
            raise TypeError('Classifier: lossfun must be callable, got %r' % (lossfun,))
        if accfun is _DEFAULT:
            accfun = evaluation.accuracy
        if accfun is not None and not callable(accfun):
            raise TypeError('Classifier: accfun must be callable or None, got %r' % (accfun,))
        self.lossfun = lossfun
        self.accfun = accfun
        self.compute_accuracy = True
        self.y = None
        self.loss = None
        self.accuracy = None
        with self.init_scope():
            self.predictor = predictor

    def forward(self, *args, **kwargs):
        if len(args) < 2:
            raise ValueError('Classifier needs the inputs and the labels as positional '
                             'arguments: model(x, t); got %d positional argument(s)' % len(args))
        t = args[-1]
        self.y = None
        self.loss = None
        self.accuracy = None
        self.y = self.predictor(*args[:-1], **kwargs)
        self.loss = self.lossfun(self.y, t)
        if self.compute_accuracy and self.accfun is not None:
            self.accuracy = self.accfun(self.y, t)
        return self.loss

    def repr_args(self):
        name = getattr(self.lossfun, '__name__', type(self.lossfun).__name__)
        return 'lossfun=%s' % name
