"""MNIST with a multi-layer perceptron: the logic behind ``scripts/train_mnist.py``.

Model: ``Classifier(MLP)`` with ``MLP`` = Linear(784, units) -> ReLU -> Linear(units,
units) -> ReLU -> Linear(units, 10) (default units 1000), softmax cross-entropy loss,
Adam (alpha 0.001, the paper's defaults), minibatches of 100 drawn by a shuffled
``SerialIterator``.

Defaults: 20 epochs, as in Chainer's classic MNIST example (about 98.3% test accuracy);
3 epochs already reach at least 97.5% (``tests/examples/test_mnist_example.py``).

Output folder ``OUT`` (``--out``):

* ``log.jsonl``: one JSON object per epoch (see :data:`LOG_KEYS`):
  ``epoch``, ``iteration``, ``train_loss``, ``train_accuracy`` (example-weighted means over
  the epoch's minibatches, measured while training), ``test_loss``, ``test_accuracy``
  (the whole test set, evaluated in test mode without backprop), ``epoch_time`` (seconds
  for this epoch, evaluation included) and ``elapsed_time`` (seconds since the run
  started, summed over resumed runs).
* ``checkpoint.npz``: ONE combined file, rewritten atomically at the end of every epoch
  (so model, optimizer and iterator always come from the same moment): keys
  ``model/...`` (the Classifier; e.g. ``model/predictor/l1/W``), ``optimizer/...``
  (Adam's ``t``, ``epoch``, hyperparameters and every moment array), ``iterator/...``
  (position, epoch, shuffled order and generator state), ``meta/...`` (epoch, iteration,
  elapsed time, units, batchsize, input size, training set size). No pickles. To use the
  trained model elsewhere::

      model = L.Classifier(MLP(1000))
      seqdbr.core.serializers.load_npz('OUT/checkpoint.npz', model, path_prefix='model')

* ``graph.dot`` (with ``dot=True``): the computational graph of the loss of the first
  minibatch of the run, in Graphviz DOT (``dot -Tpng graph.dot -o graph.png``).

Exact resume: the checkpoint holds everything the next epoch depends on (weights, Adam's
moments and step counts, the iterator's order and random generator), so ``--resume``
from the end of epoch k gives, bit for bit on the CPU, the same weights, optimizer state
and log lines (timings aside) as an uninterrupted run. On resume, log lines written after
the checkpoint (a crash between the log line and the checkpoint) are dropped first; the
log line of an epoch is written before its checkpoint.
"""
import dataclasses
import math
import os
import time

import numpy

import seqdbr
import seqdbr.functions as F
import seqdbr.links as L
from seqdbr import optimizers
from seqdbr.core import backend, initializers, serializers
from seqdbr.core.atomic import atomic_write
from seqdbr.datasets import SerialIterator, TupleDataset, concat_examples, get_mnist
from seqdbr.training import (JsonlLogger, MeanAccumulator, classifier_metrics, evaluate,
                             read_jsonl, rewrite_jsonl)

__all__ = ['MLP', 'CNN', 'ARCHS', 'MnistConfig', 'MnistRun', 'LOG_KEYS', 'CHECKPOINT', 'LOG',
           'GRAPH', 'load_data', 'build', 'train', 'save_checkpoint', 'load_checkpoint']

CHECKPOINT = 'checkpoint.npz'
LOG = 'log.jsonl'
GRAPH = 'graph.dot'
LOG_KEYS = ('epoch', 'iteration', 'train_loss', 'train_accuracy', 'test_loss',
            'test_accuracy', 'epoch_time', 'elapsed_time')
_FORMAT = 1


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
        progress (bool): show a tqdm progress bar (stderr).
        verbose (bool): print one line per epoch (stdout).
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
        for name in ('train_size', 'test_size'):
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
    """
    model: object
    optimizer: object
    iterator: object
    log: list
    out: str


class _Meta:
    """Run metadata stored in the checkpoint under ``meta/``."""

    def __init__(self, config, n_in, n_train):
        self.format = _FORMAT
        self.epoch = 0
        self.iteration = 0
        self.elapsed = 0.0
        self.units = config.units
        self.batchsize = config.batchsize
        self.n_in = n_in
        self.n_train = n_train

    def serialize(self, s):
        for name in ('format', 'epoch', 'iteration', 'elapsed', 'units', 'batchsize', 'n_in',
                     'n_train'):
            setattr(self, name, s(name, getattr(self, name)))


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

    The weights are drawn after ``initializers.set_seed(config.seed)``, so the same seed
    gives the same initial model.

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
    initializers.set_seed(config.seed)
    net = CNN if config.arch == 'cnn' else MLP
    model = L.Classifier(net(config.units, 10, n_in))
    model.to_device(device)
    opt = optimizers.Adam(alpha=config.alpha)
    opt.setup(model)
    return model, opt


def save_checkpoint(path, model, optimizer, iterator, meta):
    """Write model, optimizer, iterator and metadata into one ``.npz``, atomically."""
    arrays = {}
    for prefix, obj in (('model', model), ('optimizer', optimizer), ('iterator', iterator),
                        ('meta', meta)):
        arrays.update(serializers.serialize_to_dict(obj, prefix))
    serializers.save_npz_dict(path, arrays)


def load_checkpoint(path, model, optimizer, iterator, meta):
    """Restore what :func:`save_checkpoint` wrote, strictly (every key must match).

    Raises:
        FileNotFoundError: no checkpoint.
        seqdbr.core.serializers.SerializationError: a truncated/corrupt file (named).
        ValueError: the checkpoint was made with other ``units``/``batchsize``/data
            (the message names the option to fix), or keys/shapes do not match.
    """
    d = serializers.load_npz_dict(path)
    stored = _Meta.__new__(_Meta)
    stored.__dict__.update(meta.__dict__)
    serializers.deserialize_from_dict(d, stored, 'meta', name=path)
    for name, option in (('units', '--units'), ('batchsize', '--batchsize'),
                         ('n_in', 'the input size'), ('n_train', '--train-size')):
        if getattr(stored, name) != getattr(meta, name):
            raise ValueError('%s was made with %s %s but this run has %s; resume with the same '
                             'setting (or start afresh without --resume)'
                             % (path, option, getattr(stored, name), getattr(meta, name)))
    if stored.format != _FORMAT:
        raise ValueError('%s has checkpoint format %d; this version reads format %d'
                         % (path, stored.format, _FORMAT))
    serializers.deserialize_from_dict(d, model, 'model', name=path)
    serializers.deserialize_from_dict(d, optimizer, 'optimizer', name=path)
    serializers.deserialize_from_dict(d, iterator, 'iterator', name=path)
    meta.__dict__.update(stored.__dict__)


def _write_graph(path, loss):
    from seqdbr.core.graph import build_computational_graph
    text = build_computational_graph([loss]).dump()
    with atomic_write(path, 'w') as f:
        f.write(text)


def train(config, data=None):
    """Train (or resume training) the MNIST MLP as ``config`` says.

    Args:
        config (MnistConfig): the settings.
        data (tuple or None): ``(train, test)`` datasets of ``(float32 (784,), int32)``
            examples to use instead of loading MNIST (``train_size``/``test_size`` still
            apply).

    Returns:
        MnistRun.

    Raises:
        ValueError: bad settings, or a checkpoint that does not match them.
        FileNotFoundError: ``resume`` without ``out/checkpoint.npz``.
        RuntimeError: a GPU device without a usable GPU.
        seqdbr.datasets.DownloadError: MNIST missing and not downloadable.
    """
    from tqdm.auto import tqdm

    config.validate()
    start = time.perf_counter()
    if data is None:
        train_set, test_set = load_data(config.data_dir, config.train_size, config.test_size)
    else:
        train_set, test_set = (_head(data[0], config.train_size),
                               _head(data[1], config.test_size))
    n_in = int(numpy.prod(train_set[0][0].shape))
    out = os.path.abspath(config.out)
    os.makedirs(out, exist_ok=True)
    ckpt_path = os.path.join(out, CHECKPOINT)
    log_path = os.path.join(out, LOG)

    model, opt = build(config, n_in)
    device = model.device
    it = SerialIterator(train_set, config.batchsize, repeat=True, shuffle=True,
                        seed=config.seed)
    meta = _Meta(config, n_in, len(train_set))
    if config.resume:
        if not os.path.exists(ckpt_path):
            raise FileNotFoundError('--resume: there is no checkpoint %s to resume from; run '
                                    'without --resume to start afresh' % ckpt_path)
        load_checkpoint(ckpt_path, model, opt, it, meta)
        records = [r for r in read_jsonl(log_path) if r.get('epoch', 0) <= meta.epoch]
    else:
        records = []
    rewrite_jsonl(log_path, records)     # a fresh log, or the log as of the checkpoint

    n = len(train_set)
    total_iters = -(-config.epochs * n // config.batchsize)
    elapsed_before = meta.elapsed
    metrics = MeanAccumulator()
    model_metrics = classifier_metrics(model)
    need_graph = config.dot
    say = print if not config.progress else tqdm.write
    if config.verbose and config.resume:
        say('resumed from %s at epoch %d (iteration %d)' % (ckpt_path, meta.epoch,
                                                            meta.iteration))
    bar = tqdm(total=max(total_iters, meta.iteration), initial=meta.iteration,
               disable=not config.progress, unit='it', desc='mnist', dynamic_ncols=True)
    epoch_start = time.perf_counter()
    resumed_at = meta.epoch
    with JsonlLogger(log_path) as logger, bar:
        while it.epoch < config.epochs:
            batch = next(it)
            x, t = concat_examples(batch, device)
            loss = model(x, t)
            if need_graph:
                _write_graph(os.path.join(out, GRAPH), loss)
                need_graph = False
            model.cleargrads()
            loss.backward()
            opt.update()
            metrics.add({'loss': loss, 'accuracy': model.accuracy}, len(batch))
            bar.update(1)
            if not it.is_new_epoch:
                continue
            opt.new_epoch()
            train_means = metrics.means()
            metrics.reset()
            test_means = evaluate(model_metrics, test_set, config.batchsize, device=device)
            now = time.perf_counter()
            record = {'epoch': it.epoch, 'iteration': opt.t,
                      'train_loss': train_means['loss'],
                      'train_accuracy': train_means['accuracy'],
                      'test_loss': test_means['loss'],
                      'test_accuracy': test_means['accuracy'],
                      'epoch_time': now - epoch_start,
                      'elapsed_time': elapsed_before + (now - start)}
            epoch_start = now
            logger.log(record)
            records.append(record)
            meta.epoch, meta.iteration, meta.elapsed = it.epoch, opt.t, record['elapsed_time']
            save_checkpoint(ckpt_path, model, opt, it, meta)
            if config.verbose:
                say('epoch %d  train loss %.4f acc %.4f  test loss %.4f acc %.4f  '
                    '(%.1f s/epoch, %.1f s elapsed)'
                    % (record['epoch'], record['train_loss'], record['train_accuracy'],
                       record['test_loss'], record['test_accuracy'], record['epoch_time'],
                       record['elapsed_time']))
            bar.set_postfix(test_acc='%.4f' % record['test_accuracy'])
    if config.verbose and config.resume and resumed_at >= config.epochs:
        say('nothing to do: the checkpoint is already at epoch %d >= --epochs %d'
            % (resumed_at, config.epochs))
    return MnistRun(model=model, optimizer=opt, iterator=it, log=records, out=out)


def describe(config):
    """One line naming the run's settings (printed by the script)."""
    if config.arch == 'cnn':
        model = 'CNN conv5x5(32)-pool-conv5x5(64)-pool-%d-10' % config.units
    else:
        model = 'MLP 784-%d-%d-10' % (config.units, config.units)
    return ('MNIST %s, Adam(alpha=%g), batch %d, %d epochs, device %s, seqdbr %s'
            % (model, config.alpha, config.batchsize, config.epochs, config.device,
               seqdbr.__version__))
