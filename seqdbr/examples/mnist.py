"""MNIST with a multi-layer perceptron: the logic behind ``scripts/train_mnist.py``.

Model: ``Classifier(MLP)`` with ``MLP`` = Linear(784, units) -> ReLU -> Linear(units,
units) -> ReLU -> Linear(units, 10) (default units 1000), softmax cross-entropy loss,
Adam (alpha 0.001, the paper's defaults), minibatches of 100 drawn by a shuffled
``SerialIterator``.

Defaults: 20 epochs, as in Chainer's classic MNIST example (about 98.3% test accuracy);
3 epochs already reach at least 97.5% (``tests/examples/test_mnist_example.py``).

It is assembled from the training framework (:mod:`seqdbr.training`): a
``StandardUpdater`` over a shuffled ``SerialIterator``, a ``Trainer`` that stops after
``epochs`` (or ``max_iters``), and the extensions ``Evaluator`` (test set, once per epoch),
``LogReport``, ``PrintReport``, ``ProgressBar`` and ``snapshot``.

Output folder ``OUT`` (``--out``):

* ``log.jsonl``: one JSON object per epoch (see :data:`LOG_KEYS`): ``iteration``,
  ``epoch``, ``train_loss``, ``train_accuracy`` (example-weighted means over the epoch's
  minibatches, measured while training), ``test_loss``, ``test_accuracy`` (the whole test
  set, evaluated in test mode without backprop) and ``time`` (training seconds, summed
  over resumed runs).
* ``checkpoint.npz``: the trainer's snapshot, rewritten atomically at the end of every
  epoch and when the run stops (a signal, ``max_iters``): ``model/...`` (the Classifier;
  e.g. ``model/predictor/l1/W``), ``optimizer/...`` (Adam's ``t``, ``epoch`` and every
  moment array), ``iterator/...`` (position, epoch, shuffled order and generator state),
  the log's partial means, the RNG states and ``__snapshot__`` (the program, its settings
  -- units, batch size, input size, training-set size -- and the parameter shapes, checked
  on resume). No pickles. To use the trained model elsewhere::

      model = L.Classifier(MLP(1000))
      seqdbr.core.serializers.load_npz('OUT/checkpoint.npz', model, path_prefix='model')

* ``graph.dot`` (with ``dot=True``): the computational graph of the loss of the first
  minibatch of the run, in Graphviz DOT (``dot -Tpng graph.dot -o graph.png``).

Exact resume: the checkpoint holds everything the rest of the run depends on, so
``--resume`` gives, bit for bit on the CPU, the same weights, optimizer state and log lines
(timings aside) as an uninterrupted run, also from a run stopped mid-epoch. On resume, log
lines written after the checkpoint are dropped first.
"""
import dataclasses
import math
import os

import numpy

import seqdbr
import seqdbr.functions as F
import seqdbr.links as L
from seqdbr import optimizers
from seqdbr.core import backend
from seqdbr.core.atomic import atomic_write
from seqdbr.datasets import SerialIterator, TupleDataset, get_mnist
from seqdbr.training import (IntervalTrigger, NpzSnapshotFormat, StandardUpdater, StopTrigger,
                             Trainer, classifier_metrics, read_jsonl)
from seqdbr.training import extensions as E

__all__ = ['MLP', 'CNN', 'ARCHS', 'MnistConfig', 'MnistRun', 'LOG_KEYS', 'LOG_FIELDS',
           'CHECKPOINT', 'LOG', 'GRAPH', 'load_data', 'build', 'build_trainer', 'train']

CHECKPOINT = 'checkpoint.npz'
LOG = 'log.jsonl'
GRAPH = 'graph.dot'
#: Observation -> log field.
LOG_FIELDS = {'loss': 'train_loss', 'accuracy': 'train_accuracy', 'test/loss': 'test_loss',
              'test/accuracy': 'test_accuracy'}
LOG_KEYS = ('iteration', 'epoch') + tuple(LOG_FIELDS.values()) + ('time',)


class MLP(L.Chain):
    """Three fully connected layers with ReLU: ``n_in -> n_units -> n_units -> n_out``.

    Args:
        n_units (int): width of the two hidden layers.
        n_out (int): number of classes (logits out).
        n_in (int): input features (784 for flattened MNIST).

    Call:
        ``x`` float32 ``(N, n_in)`` -> logits Variable float32 ``(N, n_out)``.
    """

    def __init__(self, n_units, n_out=10, n_in=784):
        super().__init__()
        with self.init_scope():
            self.l1 = L.Linear(n_in, n_units)
            self.l2 = L.Linear(n_units, n_units)
            self.l3 = L.Linear(n_units, n_out)

    def forward(self, x):
        h = F.relu(self.l1(x))
        h = F.relu(self.l2(h))
        return self.l3(h)


class CNN(L.Chain):
    """Two convolution + max-pooling blocks and two linear layers (LeNet-5 style, LeCun et
    al. 1998, with ReLU and max pooling):

        (N, 1, 28, 28) -> Conv 5x5 (c1) -> ReLU -> MaxPool 2 -> (N, c1, 12, 12)
                       -> Conv 5x5 (c2) -> ReLU -> MaxPool 2 -> (N, c2, 4, 4)
                       -> Linear(c2 * 16, n_units) -> ReLU -> Linear(n_units, n_out)

    Args:
        n_units (int): width of the hidden linear layer.
        n_out (int): number of classes.
        n_in (int): input features, a square image of ``side * side`` pixels (784).
        channels (pair of int): output channels of the two convolutions.

    Call:
        ``x`` float32 ``(N, n_in)`` (flat images, as the MLP takes them) or
        ``(N, 1, side, side)`` -> logits ``(N, n_out)``.

    Raises:
        ValueError: ``n_in`` is not a square number of at least 16 * 16 pixels.
    """

    def __init__(self, n_units=128, n_out=10, n_in=784, channels=(32, 64)):
        super().__init__()
        side = math.isqrt(n_in)
        if side * side != n_in or side < 16:
            raise ValueError('CNN: n_in=%d must be a square image of at least 16 x 16 pixels '
                             '(MNIST: 784 = 28 x 28)' % n_in)
        self.side = side
        with self.init_scope():
            self.conv1 = L.Convolution2D(1, channels[0], 5)
            self.conv2 = L.Convolution2D(channels[0], channels[1], 5)
            self.l1 = L.Linear(None, n_units)
            self.l2 = L.Linear(n_units, n_out)

    def forward(self, x):
        if x.ndim == 2:
            x = F.reshape(x, (x.shape[0], 1, self.side, self.side))
        h = F.max_pooling_2d(F.relu(self.conv1(x)), 2)
        h = F.max_pooling_2d(F.relu(self.conv2(h)), 2)
        return self.l2(F.relu(self.l1(h)))


ARCHS = ('mlp', 'cnn')


@dataclasses.dataclass
class MnistConfig:
    """Settings of one training run (the script's options).

    Attributes:
        epochs (int): train until this many epochs are complete (counting resumed ones).
        units (int): hidden layer width.
        batchsize (int): minibatch size (training and evaluation).
        device (str): ``'cpu'``, ``'gpu'`` or ``'gpu:N'``.
        out (str): output folder (created when absent).
        resume (bool): continue from ``out/checkpoint.npz`` (FileNotFoundError when absent).
        data_dir (str or None): folder with the four MNIST ``.gz`` files; None: the
            default cache (``$SEQDBR_DATA/mnist`` or ``~/.cache/seqdbr/mnist``), where
            missing files are downloaded.
        dot (bool): write ``out/graph.dot`` (DOT graph of the first minibatch's loss).
        seed (int): seeds the weight initializers and the iterator's shuffling.
        alpha (float): Adam's step size.
        train_size, test_size (int or None): use only the first N examples of each split
            (None: all; 60,000 and 10,000). For quick checks.
        max_iters (int or None): also stop after this many iterations in total (a run
            stopped mid-epoch resumes exactly).
        overwrite (bool): a new run may replace an earlier run in ``out`` (without it, and
            without ``resume``, such a folder is refused; the earlier files change only once
            the new run has saved its first checkpoint).
        progress (bool): show a tqdm progress bar (stderr).
        verbose (bool): print one table row per epoch (stdout).
        arch (str): ``'mlp'`` (:class:`MLP`, ``units`` wide) or ``'cnn'`` (:class:`CNN`
            with a hidden linear layer ``units`` wide; ``units=128`` is its usual size).
    """
    epochs: int = 20
    units: int = 1000
    batchsize: int = 100
    device: str = 'cpu'
    out: str = 'result'
    resume: bool = False
    data_dir: str = None
    dot: bool = False
    seed: int = 0
    alpha: float = 0.001
    train_size: int = None
    test_size: int = None
    max_iters: int = None
    overwrite: bool = False
    progress: bool = True
    verbose: bool = True
    arch: str = 'mlp'

    def validate(self):
        """Raise ValueError on an impossible setting (the message names the option)."""
        if self.arch not in ARCHS:
            raise ValueError('--arch must be one of %s, got %r' % (', '.join(ARCHS), self.arch))
        for name in ('epochs', 'units', 'batchsize'):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError('--%s must be a positive integer, got %r' % (name, v))
        for name in ('train_size', 'test_size', 'max_iters'):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError('--%s must be a positive integer, got %r'
                                 % (name.replace('_', '-'), v))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError('--seed must be a non-negative integer, got %r' % (self.seed,))
        if not (isinstance(self.alpha, (int, float)) and math.isfinite(self.alpha)
                and self.alpha > 0):
            raise ValueError('alpha must be a positive number, got %r' % (self.alpha,))
        try:
            backend.get_device(self.device)   # ValueError for an unknown spec
        except RuntimeError as e:             # a GPU spec without a usable GPU
            raise ValueError('--device %s: %s' % (self.device, e)) from None


@dataclasses.dataclass
class MnistRun:
    """What :func:`train` returns.

    Attributes:
        model: the trained ``L.Classifier`` (predictor ``MLP``), on the run's device.
        optimizer: its ``Adam``.
        iterator: the training ``SerialIterator`` (its state is in the checkpoint).
        log (list of dict): every record of ``out/log.jsonl`` after the run (previous,
            resumed-from epochs included).
        out (str): the output folder.
        status (str): the trainer's stop reason (``'done'``, ``'interrupted'``...).
        signal (int or None): the signal that interrupted the run.
    """
    model: object
    optimizer: object
    iterator: object
    log: list
    out: str
    status: str = 'done'
    signal: int = None


def load_data(data_dir=None, train_size=None, test_size=None):
    """MNIST as flat float32 ``(N, 784)`` images in [0, 1] and int32 labels.

    Args:
        data_dir: see :class:`MnistConfig`.
        train_size, test_size (int or None): keep only the first N examples.

    Returns:
        (train, test): two ``TupleDataset``.

    Raises:
        seqdbr.datasets.DownloadError: files missing and not downloadable (offline); the
            message says where to put them.
    """
    train, test = get_mnist(data_dir=data_dir)
    return _head(train, train_size), _head(test, test_size)


def _head(ds, n):
    if n is None or n >= len(ds):
        return ds
    return TupleDataset(*[a[:n] for a in ds.arrays])


def build(config, n_in=784):
    """Create the model (on ``config.device``) and its Adam optimizer.

    The weights are drawn after ``seqdbr.seed(config.seed)``, so the same seed gives the
    same initial model.

    Returns:
        (model, optimizer): ``L.Classifier(MLP(units, 10, n_in))`` (``CNN`` for
        ``arch='cnn'``) and ``Adam(alpha)`` already set up on it.

    Raises:
        RuntimeError: ``device`` is a GPU but CuPy/CUDA is not usable.
    """
    device = backend.get_device(config.device)
    if isinstance(device, backend.GpuDevice) and not backend.is_gpu_available():
        raise RuntimeError('--device %s needs CuPy and a CUDA GPU, which are not available '
                           'here; use --device cpu' % config.device)
    seqdbr.seed(config.seed)
    net = CNN if config.arch == 'cnn' else MLP
    model = L.Classifier(net(config.units, 10, n_in))
    model.to_device(device)
    opt = optimizers.Adam(alpha=config.alpha)
    opt.setup(model)
    return model, opt


def _loss_fn(model, graph_path):
    """The updater's loss: the Classifier's loss, its accuracy as a metric, and the DOT
    graph of the first minibatch's loss when ``graph_path`` is given."""
    pending = [graph_path] if graph_path else []

    def loss_fn(x, t):
        loss = model(x, t)
        if pending:
            from seqdbr.core.graph import build_computational_graph
            with atomic_write(pending.pop(), 'w') as f:
                f.write(build_computational_graph([loss]).dump())
        return loss, {'accuracy': model.accuracy}
    return loss_fn


def _settings(config, n_in, n_train):
    return {'--arch': config.arch, '--units': config.units, '--batchsize': config.batchsize,
            'the input size': n_in, '--train-size': n_train}


def build_trainer(config, model, opt, train_set, test_set, out, comm=None):
    """The run's Trainer: updater, stop rule, evaluation, log, report, checkpoint.

    With ``comm`` (a data-parallel run, ``opt`` the multi-node optimizer) every rank draws
    the same global batch of ``batchsize`` examples and trains its equal slice of it
    (:class:`seqdbr.distributed.BatchShard`), the test set is split across the ranks, and
    rank 0 prints and writes."""
    device = model.device
    it = SerialIterator(train_set, config.batchsize, repeat=True, shuffle=True,
                        seed=config.seed)
    if comm is not None:
        from seqdbr.distributed import BatchShard
        it = BatchShard(it, comm)
    graph = os.path.join(out, GRAPH) if config.dot and not config.resume else None
    updater = StandardUpdater(it, opt, _loss_fn(model, graph), device=device)
    n_in = int(numpy.prod(train_set[0][0].shape))
    fmt = NpzSnapshotFormat('mnist-mlp', _settings(config, n_in, len(train_set)))
    stop = StopTrigger(max_epochs=config.epochs, max_iterations=config.max_iters)
    trainer = Trainer(updater, stop_trigger=stop, out=out, snapshot_format=fmt, comm=comm,
                      overwrite=config.overwrite)
    trainer.extend(E.Evaluator(test_set, classifier_metrics(model), config.batchsize,
                               device=device, prefix='test/', comm=comm),
                   trigger=(1, 'epoch'))
    trainer.extend(E.LogReport(LOG_FIELDS, trigger=(1, 'epoch'), filename=LOG))
    if config.verbose:
        trainer.extend(E.PrintReport(['loss', 'accuracy', 'test/loss', 'test/accuracy']))
    trainer.extend(E.ProgressBar(config.batchsize, unit='samples', quiet=not config.progress))
    trainer.extend(E.snapshot(CHECKPOINT),
                   trigger=IntervalTrigger(1, 'epoch', at_end=True))
    return trainer


def train(config, data=None, comm=None):
    """Train (or resume training) the MNIST MLP as ``config`` says.

    Args:
        config (MnistConfig): the settings.
        data (tuple or None): ``(train, test)`` datasets of ``(float32 (784,), int32)``
            examples to use instead of loading MNIST (``train_size``/``test_size`` still
            apply).
        comm: a :mod:`seqdbr.distributed` communicator for a data-parallel run (see
            :func:`build_trainer`); ``batchsize`` must be a multiple of ``comm.size``.

    Returns:
        MnistRun.

    Raises:
        ValueError: bad settings, or a checkpoint that does not match them (a
            ``SerializationError`` naming the file for a damaged one).
        FileNotFoundError: ``resume`` without ``out/checkpoint.npz``.
        RuntimeError: a GPU device without a usable GPU.
        seqdbr.datasets.DownloadError: MNIST missing and not downloadable.
    """
    config.validate()
    if data is None:
        train_set, test_set = load_data(config.data_dir, config.train_size, config.test_size)
    else:
        train_set, test_set = (_head(data[0], config.train_size),
                               _head(data[1], config.test_size))
    out = os.path.abspath(config.out)
    ckpt_path = os.path.join(out, CHECKPOINT)
    if config.resume and not os.path.exists(ckpt_path):
        raise FileNotFoundError('--resume: there is no checkpoint %s to resume from; run '
                                'without --resume to start afresh' % ckpt_path)
    model, opt = build(config, int(numpy.prod(train_set[0][0].shape)))
    if comm is not None:
        from seqdbr.distributed import check_divisible, create_multi_node_optimizer
        check_divisible(config.batchsize, comm.size, flag='--batchsize')
        opt = create_multi_node_optimizer(opt, comm)
        comm.bcast_data(model)
    trainer = build_trainer(config, model, opt, train_set, test_set, out, comm)
    if config.resume:
        trainer.resume(ckpt_path)
        if config.verbose and trainer.is_root:
            print('resumed from %s at iteration %d (epoch %.2f)'
                  % (ckpt_path, trainer.updater.iteration, trainer.updater.epoch_detail))
    status = trainer.run()
    log_path = os.path.join(out, LOG)
    log = read_jsonl(log_path) if os.path.exists(log_path) else []
    return MnistRun(model=model, optimizer=opt, iterator=trainer.updater.iterator, log=log,
                    out=out, status=status, signal=trainer.signal)


def describe(config):
    """One line naming the run's settings (printed by the script)."""
    if config.arch == 'cnn':
        model = 'CNN conv5x5(32)-pool-conv5x5(64)-pool-%d-10' % config.units
    else:
        model = 'MLP 784-%d-%d-10' % (config.units, config.units)
    return ('MNIST %s, Adam(alpha=%g), batch %d, %d epochs, device %s, seqdbr %s'
            % (model, config.alpha, config.batchsize, config.epochs, config.device,
               seqdbr.__version__))
