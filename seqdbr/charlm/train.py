"""Training a character-level RNN language model (the ``seqdbr-train-charrnn`` command).

:func:`train` runs the whole job from a :class:`TrainConfig`:

1. **Data.** The corpus (a catalog name, a file path, or the built-in ``'pydoc'`` text) is
   read as UTF-8 (or raw bytes), the vocabulary is built from all of it (or taken from the
   ``--init-from`` checkpoint), and it is split *contiguously*: the first ``train_frac`` of
   the characters train, the next ``val_frac`` validate, the rest is the test split. Corpora
   with predefined splits (``ptb-char``, ``text8``, ``enwik8``) use those unless fractions
   are given explicitly. Every check (sizes, fractions, unknown characters) runs before
   anything is written, so a bad invocation leaves no file behind.
2. **Model.** :class:`~seqdbr.charlm.model.CharRNN` (embedding -> LSTM/GRU layers ->
   linear), trained with truncated BPTT on ``batch_size`` parallel streams of
   ``seq_length`` steps (:mod:`seqdbr.rnn.bptt`); the hidden state is carried from one
   window to the next and reset at the start of each epoch.
3. **Optimization.** Adam / RMSprop / SGD; gradients clipped by their global L2 norm
   (``grad_clip``, 0 disables); char-rnn's learning-rate decay: after ``k`` completed epochs
   the rate is ``learning_rate * lr_decay ** max(0, k - max(lr_decay_after, 1) + 1)`` (one
   decay at the end of every epoch from epoch ``lr_decay_after`` on, never during the first
   epoch; :class:`seqdbr.core.lr_schedules.ExponentialDecay`).
4. **Monitoring.** A tqdm bar (loss, chars/s, ETA); ``OUT/log.jsonl`` with one JSON object
   per iteration: ``iteration``, ``epoch`` (fractional), ``train_loss`` and ``train_bpc``,
   ``val_loss`` and ``val_bpc`` (null except at evaluations), ``lr``, ``time`` (seconds
   since the start of the run, summed over resumes). The validation loss is a full,
   deterministic pass over the validation split from a fresh state
   (:func:`seqdbr.charlm.evaluate.evaluate_tokens`) that leaves the training state as it
   was. Losses are in nats per character; bits per character = nats / ln 2.
5. **Checkpoints.** ``OUT/latest.npz`` every ``checkpoint_every`` iterations and at the end;
   ``OUT/best.npz`` whenever the validation loss improves (see
   :mod:`seqdbr.charlm.checkpoint`). Both are written atomically.
6. **Safety.** Divergence guard: a NaN/inf loss (the update is then skipped), or a training
   loss above ``3 x`` the run's first loss, stops training with :class:`TrainingDiverged`;
   nothing is saved after the bad step, so ``best.npz`` never holds a diverged model.
   SIGINT (Ctrl-C) and SIGTERM finish the current step, write ``latest.npz`` and return
   (``status`` ``'interrupted'``). The output folder is checked for writability before
   training starts; a failed write later (disk full) stops the run with
   :class:`CheckpointError` and leaves the previous checkpoint files intact. If the summary
   stream is a pipe whose reader goes away (``... | head``), training carries on silently.
7. **Resume.** ``resume=PATH`` continues a run exactly: weights, optimizer state, learning
   rate schedule position, iteration and epoch counters, batcher cursor, carried hidden
   state, dropout RNG state and the loss histories all come from the checkpoint, and
   ``log.jsonl`` is cut back to the checkpoint's iteration (an extra end-of-run validation
   that fell between scheduled ones is dropped). On the CPU, ``N`` iterations +
   resume + ``N`` more equal ``2N`` iterations in one run bit for bit (with the same
   ``impl``; the other ``impl`` continues the same model and optimizer state up to float
   rounding, when the two keep the same parameters). On a GPU the continuation is exact up
   to dropout: CuPy's dropout generator state is not saved. ``init_from=PATH`` instead
   starts a new run from a checkpoint's weights (and vocabulary) only.
8. **End.** ``OUT/loss.png`` (train and validation curves) when matplotlib is installed,
   otherwise a notice.
"""
import dataclasses
import math
import os
import re
import signal
import sys
import threading
import time

import numpy

from seqdbr.charlm import checkpoint as ckpt_mod
from seqdbr.charlm.data import resolve_fractions, split_corpus
from seqdbr.charlm.errors import CheckpointError, ConfigError, TrainingDiverged
from seqdbr.charlm.evaluate import LN2, evaluate_tokens
from seqdbr.charlm.model import CharRNN, MODELS, IMPLS, check_forget_bias
from seqdbr.charlm.vocab import UnknownCharacterError, Vocabulary
from seqdbr.core import initializers
from seqdbr.core.functions import noise
from seqdbr.datasets.corpora import load_corpus
from seqdbr.rnn.bptt import NonFiniteLossError, ParallelSequentialBatcher, bptt_update
from seqdbr.training.evaluator import JsonlLogger, read_jsonl, rewrite_jsonl

__all__ = ['TrainConfig', 'TrainResult', 'train', 'DIVERGENCE_FACTOR', 'OPTIMIZERS',
           'LOG_NAME', 'LATEST_NAME', 'BEST_NAME', 'PLOT_NAME']

OPTIMIZERS = ('adam', 'rmsprop', 'sgd')
#: Training stops when the loss exceeds this multiple of the run's first loss.
DIVERGENCE_FACTOR = 3.0
LOG_NAME = 'log.jsonl'
LATEST_NAME = 'latest.npz'
BEST_NAME = 'best.npz'
PLOT_NAME = 'loss.png'
#: Default number of epochs when no stopping rule is given (char-rnn's default).
DEFAULT_MAX_EPOCHS = 50
_DEVICE_RE = re.compile(r'^(cpu|gpu|gpu:\d+)$')


@dataclasses.dataclass
class TrainConfig:
    """Every option of a training run (the command-line flags, with ``_`` for ``-``).

    Model: ``model`` ('lstm'|'gru'), ``rnn_size`` (128), ``num_layers`` (2), ``dropout``
    (0, between layers and before the output layer), ``impl`` ('nstep' fused layers, the
    fast default, or 'stepwise' one ``L.LSTM``/``L.StatefulGRU`` step at a time),
    ``forget_bias`` (0, the LSTM forget gates' initial bias; see :class:`CharRNN`).

    Data: ``corpus`` (catalog name, file path, or 'pydoc', the default), ``encoding``
    ('utf-8' or 'bytes'), ``train_frac`` (0.95) and ``val_frac`` (0.05): contiguous split
    fractions, ``train_frac + val_frac <= 1``, the rest is the test split (None: the corpus's
    predefined splits if it has them, else 0.95 / 0.05).

    Optimization: ``seq_length`` (50, BPTT window), ``batch_size`` (50, parallel streams),
    ``optimizer`` ('adam'|'rmsprop'|'sgd'), ``learning_rate`` (2e-3), ``lr_decay`` (0.97,
    in (0, 1]), ``lr_decay_after`` (10 epochs), ``grad_clip`` (5, global L2 norm; 0 = off).

    Stopping: ``max_epochs``, ``max_iters`` (total iterations, counted across resumes),
    ``max_minutes`` (wall-clock budget of this invocation, checked after every step; the
    final validation pass and checkpoint come after it); with none given,
    ``max_epochs = 50``. The first rule reached stops the run.

    Bookkeeping: ``eval_every`` (iterations between validations; None = once per epoch),
    ``checkpoint_every`` (None = same as ``eval_every``), ``out`` (output folder), ``seed``
    (weights init and dropout), ``device`` ('cpu'|'gpu'|'gpu:N'), ``resume``,
    ``init_from`` (checkpoint paths), ``progress`` (show the tqdm bar).
    """
    model: str = 'lstm'
    rnn_size: int = 128
    num_layers: int = 2
    dropout: float = 0.0
    forget_bias: float = 0.0
    seq_length: int = 50
    batch_size: int = 50
    optimizer: str = 'adam'
    learning_rate: float = 2e-3
    lr_decay: float = 0.97
    lr_decay_after: int = 10
    grad_clip: float = 5.0
    max_epochs: int = None
    max_iters: int = None
    max_minutes: float = None
    train_frac: float = None
    val_frac: float = None
    eval_every: int = None
    checkpoint_every: int = None
    out: str = 'charrnn-out'
    seed: int = 123
    device: str = 'cpu'
    resume: str = None
    init_from: str = None
    corpus: str = 'pydoc'
    encoding: str = 'utf-8'
    impl: str = 'nstep'
    progress: bool = True

    def to_json(self):
        return dataclasses.asdict(self)


#: Options a resumed run may change; all others are taken from the checkpoint.
RESUME_OVERRIDABLE = frozenset(('max_epochs', 'max_iters', 'max_minutes', 'eval_every',
                                'checkpoint_every', 'out', 'device', 'progress', 'impl',
                                'corpus', 'resume', 'init_from'))
#: Options that define the architecture: fixed by an ``init_from`` checkpoint.
ARCHITECTURE = ('model', 'rnn_size', 'num_layers')
#: ... and the initialisation option that the loaded weights make moot: recorded as stored.
FIXED_BY_INIT_FROM = ARCHITECTURE + ('forget_bias',)


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        status (str): ``'done'`` (a stopping rule was reached), ``'time budget'`` or
            ``'interrupted'`` (SIGINT/SIGTERM).
        signal (int or None): the signal number when interrupted.
        iteration (int), epoch (float): where the run stopped.
        train_loss (float or None): the last training loss (nats/char).
        best_val_loss (float or None): the best validation loss seen (nats/char).
        latest (str or None), best (str or None): checkpoint paths written.
        log (str): the JSON-lines log.
        plot (str or None): the PNG written, None when matplotlib is absent.
    """
    status: str
    signal: int
    iteration: int
    epoch: float
    train_loss: float
    best_val_loss: float
    latest: str
    best: str
    log: str
    plot: str


# ---------------------------------------------------------------------------------------------
# Validation of the options

def _is_int(v):
    return not isinstance(v, bool) and isinstance(v, (int, numpy.integer))


def _is_real(v):
    return not isinstance(v, bool) and isinstance(v, (int, float, numpy.integer, numpy.floating))


def _flag(name):
    return '--' + name.replace('_', '-')


def validate_config(cfg):
    """Check every option's type and range.

    Raises:
        ConfigError: naming the flag, the value and what is accepted.
    """
    def need_int(name, minimum, allow_none=False):
        v = getattr(cfg, name)
        if v is None and allow_none:
            return
        if not _is_int(v) or v < minimum:
            raise ConfigError('%s must be an integer >= %d, got %r'
                              % (_flag(name), minimum, v))

    def need_choice(name, choices):
        v = getattr(cfg, name)
        if v not in choices:
            raise ConfigError('%s must be one of %s, got %r'
                              % (_flag(name), ', '.join(choices), v))

    need_choice('model', MODELS)
    need_choice('impl', IMPLS)
    need_choice('optimizer', OPTIMIZERS)
    need_choice('encoding', ('utf-8', 'bytes'))
    need_int('rnn_size', 1)
    need_int('num_layers', 1)
    need_int('seq_length', 1)
    need_int('batch_size', 1)
    need_int('lr_decay_after', 0)
    need_int('max_epochs', 1, allow_none=True)
    need_int('max_iters', 1, allow_none=True)
    need_int('eval_every', 1, allow_none=True)
    need_int('checkpoint_every', 1, allow_none=True)
    need_int('seed', 0)
    try:
        check_forget_bias(cfg.forget_bias, '--forget-bias')
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if not _is_real(cfg.dropout) or not 0 <= cfg.dropout < 1:
        raise ConfigError('--dropout must be in [0, 1) (the probability of dropping a unit), '
                          'got %r' % (cfg.dropout,))
    if not _is_real(cfg.learning_rate) or not 0 < cfg.learning_rate < math.inf:
        raise ConfigError('--learning-rate must be a positive number, got %r'
                          % (cfg.learning_rate,))
    if not _is_real(cfg.lr_decay) or not 0 < cfg.lr_decay <= 1:
        raise ConfigError('--lr-decay must be in (0, 1] (1 = no decay), got %r'
                          % (cfg.lr_decay,))
    if not _is_real(cfg.grad_clip) or not 0 <= cfg.grad_clip < math.inf:
        raise ConfigError('--grad-clip must be a number >= 0 (0 disables clipping), got %r'
                          % (cfg.grad_clip,))
    if cfg.max_minutes is not None and (not _is_real(cfg.max_minutes)
                                        or not 0 < cfg.max_minutes < math.inf):
        raise ConfigError('--max-minutes must be a positive number, got %r'
                          % (cfg.max_minutes,))
    resolve_fractions(cfg.train_frac, cfg.val_frac)
    if cfg.resume is not None and cfg.init_from is not None:
        raise ConfigError('--resume and --init-from exclude each other: --resume continues '
                          'a run exactly, --init-from starts a new run from saved weights')
    if not isinstance(cfg.device, str) or not _DEVICE_RE.match(cfg.device):
        raise ConfigError("--device must be 'cpu', 'gpu' or 'gpu:N', got %r" % (cfg.device,))


# ---------------------------------------------------------------------------------------------
# Data

@dataclasses.dataclass
class _Data:
    corpus: object
    vocab: Vocabulary
    train: numpy.ndarray
    val: numpy.ndarray
    test: numpy.ndarray
    split_method: str
    fractions: tuple


def _encode(vocab, text, what, from_ckpt):
    try:
        return vocab.encode(text)
    except UnknownCharacterError as e:
        if from_ckpt:
            shown = ', '.join(repr(s) for s in list(e.unknown)[:40])
            more = '' if len(e.unknown) <= 40 else ' and %d more' % (len(e.unknown) - 40)
            raise ConfigError(
                'the corpus has %d distinct characters that are not in the vocabulary of the '
                '%s checkpoint %s (%d symbols): %s%s. A model cannot learn characters it has '
                'no embedding for: train from scratch (without --init-from), or remove these '
                'characters from the corpus' % (len(e.unknown), what, from_ckpt,
                                                len(vocab), shown, more)) from None
        raise


def _load_data(cfg, vocab=None, vocab_source=None, expect_sha=None):
    corpus = load_corpus(cfg.corpus, encoding=cfg.encoding)
    if expect_sha is not None and corpus.sha256 != expect_sha:
        raise ConfigError(
            'corpus %r (sha256 %s, from %s) is not the corpus the checkpoint was trained on '
            '(sha256 %s). Resuming needs the same text: pass the original file with --corpus '
            '(or use --init-from to train on new text from these weights)'
            % (cfg.corpus, corpus.sha256, corpus.source, expect_sha))
    split = split_corpus(corpus, cfg.train_frac, cfg.val_frac)
    train_t, val_t, test_t = split.train, split.val, split.test
    method, fracs = split.method, split.fractions
    if vocab is None:
        vocab = Vocabulary.from_text(corpus.text)
    # One pass over the whole text, so an error lists every unknown character at once.
    ids = _encode(vocab, corpus.text, '--init-from', vocab_source)
    if method == 'contiguous':
        n_train, n_val = len(train_t), len(val_t)
        train, val, test = ids[:n_train], ids[n_train:n_train + n_val], ids[n_train + n_val:]
    else:
        train, val, test = vocab.encode(train_t), vocab.encode(val_t), vocab.encode(test_t)
    unit = 'bytes' if corpus.encoding == 'bytes' else 'characters'
    needed = cfg.batch_size * cfg.seq_length + 1
    if train.size < needed:
        where = ('%.4g of the %d %s of %s' % (fracs[0], len(corpus.text), unit, corpus.source)
                 if fracs else 'the predefined train split of %s' % corpus.name)
        raise ConfigError(
            'the training split has %d %s (%s), but one batch needs --batch-size %d x '
            '--seq-length %d + 1 = %d. Fix: use a smaller --batch-size or --seq-length (at most '
            '%d %s per batch fit), a larger --train-frac, or a bigger corpus'
            % (train.size, unit, where, cfg.batch_size, cfg.seq_length, needed,
               max(train.size - 1, 0), unit))
    if fracs is not None and fracs[1] > 0 and val.size < 2:
        raise ConfigError(
            'the validation split has %d %s (--val-frac %g of %d); at least 2 are needed to '
            'score one prediction. Raise --val-frac, or set --val-frac 0 to train without '
            'validation' % (val.size, unit, fracs[1], len(corpus.text)))
    return _Data(corpus, vocab, train, val if val.size >= 2 else val[:0], test, method, fracs)


# ---------------------------------------------------------------------------------------------
# Pieces of the run

def _make_optimizer(cfg, model):
    from seqdbr import optimizers as O
    if cfg.optimizer == 'adam':
        opt = O.Adam(alpha=cfg.learning_rate)
    elif cfg.optimizer == 'rmsprop':
        opt = O.RMSprop(lr=cfg.learning_rate, alpha=0.95)   # char-rnn's decay_rate 0.95
    else:
        opt = O.SGD(lr=cfg.learning_rate)
    opt.setup(model)
    schedule = O.ExponentialDecay(rate=cfg.lr_decay, after=cfg.lr_decay_after)
    opt.add_hook(schedule)
    if cfg.grad_clip > 0:
        opt.add_hook(O.hooks.GradientClipping(cfg.grad_clip))
    return opt, schedule


def _rng_states():
    return {'initializers': initializers.get_rng().bit_generator.state,
            'dropout': noise.get_rng().bit_generator.state}


def _set_rng_states(states, path):
    try:
        initializers.get_rng().bit_generator.state = states['initializers']
        noise.get_rng().bit_generator.state = states['dropout']
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError('checkpoint %s: the stored RNG state is invalid (%s)'
                              % (path, e)) from None


class _SignalCatcher:
    """Turns SIGINT/SIGTERM into a flag checked between steps (main thread only)."""

    def __init__(self):
        self.signum = None
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signum is not None:
            # A second signal while the checkpoint is being written: give up at once (the
            # write is atomic, so the previous checkpoint survives).
            signal.signal(signum, self._old.get(signum, signal.SIG_DFL))
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}


class _SafeStream:
    """Wraps the summary stream: once its reader has gone away (BrokenPipeError, e.g.
    ``seqdbr-train-charrnn ... | head``), further output is dropped so that training, and
    its checkpoints, carry on."""

    def __init__(self, stream):
        self._stream = stream
        self.broken = False

    def write(self, text):
        if not self.broken:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self.broken = True
        return len(text)

    def flush(self):
        if not self.broken:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self.broken = True

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _check_writable(out_dir, paths):
    """Fail early (before any training) if the run's files cannot be written in ``out_dir``."""
    import tempfile
    for q in paths:
        if os.path.isdir(q):
            raise ConfigError('--out %s: %s is a folder, but the run writes a file of that '
                              'name; move it away or choose another --out' % (out_dir, q))
    try:
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix='.write-test-'):
            pass
    except OSError as e:
        raise ConfigError('--out %s: cannot write into the output folder (%s); choose a '
                          'writable --out' % (out_dir, e)) from None


def _plot(path, train_hist, val_hist, out_stream):
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        print('notice: matplotlib is not installed, so no loss plot was drawn '
              '(pip install "seqdbr[plot]" to get %s)' % PLOT_NAME, file=out_stream)
        return None
    from seqdbr.core.atomic import atomic_write
    fig, ax = plt.subplots(figsize=(8, 5))
    if train_hist:
        its = numpy.arange(1, len(train_hist) + 1)
        ax.plot(its, train_hist, lw=0.8, alpha=0.6, label='train (per window)')
    if val_hist:
        v = numpy.asarray(val_hist, dtype=float)
        ax.plot(v[:, 0], v[:, 1], 'o-', label='validation')
    ax.set_xlabel('iteration')
    ax.set_ylabel('cross-entropy (nats/char)')
    ax.grid(True, alpha=0.3)
    ax.legend()
    with atomic_write(path, 'wb') as f:
        fig.savefig(f, format='png', dpi=100)
    plt.close(fig)
    return path


def _corpus_spec(spec):
    """How to find the corpus again: a catalog name as is, a file as an absolute path (so a
    resume from another working directory finds it)."""
    from seqdbr.datasets.corpora import list_corpora
    spec = os.fspath(spec)
    if spec in list_corpora() or not os.path.exists(spec):
        return spec
    return os.path.abspath(spec)


def _fmt_int(n):
    return '{:,}'.format(int(n))


# ---------------------------------------------------------------------------------------------
# The run

def _merge_resume_config(cfg, stored, explicit, path):
    """The run's configuration on resume: stored values, with the overridable ones from
    ``cfg``. An explicitly given value that conflicts with the stored one is an error."""
    merged = dict(stored)
    conflicts = []
    for f in dataclasses.fields(TrainConfig):
        name = f.name
        mine = getattr(cfg, name)
        if name in RESUME_OVERRIDABLE:
            if name in explicit or name not in merged:
                merged[name] = mine
            continue
        if name not in merged:
            merged[name] = mine
        elif name in explicit and mine != merged[name]:
            conflicts.append('%s %r (the checkpoint has %r)' % (_flag(name), mine,
                                                               merged[name]))
    if conflicts:
        raise ConfigError(
            '--resume %s continues that run exactly, so these options cannot change: %s. '
            'Drop them (or use --init-from to start a new run from those weights)'
            % (path, '; '.join(conflicts)))
    merged['resume'] = cfg.resume
    merged['init_from'] = None
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in merged.items() if k in known})


def _explicit_fields(cfg):
    default = TrainConfig()
    return {f.name for f in dataclasses.fields(TrainConfig)
            if getattr(cfg, f.name) != getattr(default, f.name)}


def train(config, explicit=None, out_stream=None):
    """Run a training job (see the module docstring for what happens).

    Args:
        config (TrainConfig): the options.
        explicit (set of str or None): names of the options the user set explicitly (the
            CLI passes the flags given). On ``resume`` these may not conflict with the
            checkpoint's; None means "every option that differs from its default".
        out_stream: where the summary lines go (default ``sys.stdout``); the progress bar
            goes to ``sys.stderr``.

    Returns:
        TrainResult.

    Raises:
        ConfigError: invalid options, splits too small, a corpus with characters outside an
            ``init_from`` vocabulary, a resume conflicting with the checkpoint.
        seqdbr.datasets.corpora.CorpusError: the corpus cannot be read (empty file, invalid
            UTF-8, unknown name, ...).
        CheckpointError: an unreadable or unsuitable ``resume``/``init_from`` checkpoint.
        TrainingDiverged: the divergence guard stopped the run.
    """
    out_stream = sys.stdout if out_stream is None else out_stream
    cfg = config
    validate_config(cfg)
    if explicit is None:
        explicit = _explicit_fields(cfg)
    explicit = set(explicit)

    # -- everything that can fail on bad input happens before anything is written ----------
    resume_ck = init_ck = None
    if cfg.resume is not None:
        resume_ck = ckpt_mod.load_checkpoint(cfg.resume)
        stored = resume_ck.meta.get('train')
        if not isinstance(stored, dict) or 'progress' not in resume_ck.meta:
            raise CheckpointError('checkpoint %s holds no training state (it was not written '
                                  'by the trainer); use --init-from to start from its weights'
                                  % cfg.resume)
        stored = dict(stored)
        stored.setdefault('forget_bias', ckpt_mod.LEGACY_FORGET_BIAS)
        if 'out' not in explicit:
            cfg = dataclasses.replace(cfg, out=os.path.dirname(os.path.abspath(cfg.resume)))
            explicit.add('out')
        if 'corpus' not in explicit:
            cfg = dataclasses.replace(cfg, corpus=resume_ck.meta.get('corpus', {}).get(
                'spec', stored.get('corpus', cfg.corpus)))
            explicit.add('corpus')
        cfg = _merge_resume_config(cfg, stored, explicit, cfg.resume)
        validate_config(cfg)
        resume_ck.check_finite(training_state=True)
    elif cfg.init_from is not None:
        init_ck = ckpt_mod.load_checkpoint(cfg.init_from)
        arch = init_ck.model_config
        bad = ['%s %r (the checkpoint has %r)' % (_flag(k), getattr(cfg, k), arch.get(k))
               for k in FIXED_BY_INIT_FROM if k in explicit and getattr(cfg, k) != arch.get(k)]
        if bad:
            raise ConfigError('--init-from %s fixes the architecture and the initial weights; '
                              'these options conflict '
                              'with it: %s. Drop them' % (cfg.init_from, '; '.join(bad)))
        cfg = dataclasses.replace(cfg, **{k: arch[k] for k in FIXED_BY_INIT_FROM})
        init_ck.check_finite()
        if init_ck.vocab.mode != ('bytes' if cfg.encoding == 'bytes' else 'char'):
            raise ConfigError('--init-from %s has a %s vocabulary, but --encoding is %s; use '
                              '--encoding %s' % (cfg.init_from, init_ck.vocab.mode, cfg.encoding,
                                                 'bytes' if init_ck.vocab.mode == 'bytes'
                                                 else 'utf-8'))

    if resume_ck is not None:
        data = _load_data(cfg, vocab=resume_ck.vocab, vocab_source=None,
                          expect_sha=resume_ck.meta.get('corpus', {}).get('sha256'))
    elif init_ck is not None:
        data = _load_data(cfg, vocab=init_ck.vocab, vocab_source=cfg.init_from)
    else:
        data = _load_data(cfg)
    vocab = data.vocab

    batcher = ParallelSequentialBatcher(data.train, cfg.batch_size, cfg.seq_length)
    wpe = batcher.windows_per_epoch
    eval_every = cfg.eval_every or wpe
    checkpoint_every = cfg.checkpoint_every or eval_every
    max_epochs = cfg.max_epochs
    if cfg.max_epochs is None and cfg.max_iters is None and cfg.max_minutes is None:
        max_epochs = DEFAULT_MAX_EPOCHS
    limit_iters = cfg.max_iters
    if max_epochs is not None:
        by_epochs = max_epochs * wpe
        limit_iters = by_epochs if limit_iters is None else min(limit_iters, by_epochs)

    # Model and optimizer.
    initializers.set_seed(cfg.seed)
    noise.set_seed(cfg.seed)
    model = CharRNN(len(vocab), rnn_size=cfg.rnn_size, num_layers=cfg.num_layers,
                    dropout=cfg.dropout, model=cfg.model, impl=cfg.impl,
                    forget_bias=cfg.forget_bias)
    source_ck = resume_ck or init_ck
    if source_ck is not None:
        source_ck.load_params_into(model)
    opt, schedule = _make_optimizer(cfg, model)

    history_train = []
    history_val = []
    elapsed_before = 0.0
    initial_loss = None
    best_val = None
    best_iter = None
    if resume_ck is not None:
        meta = resume_ck.meta
        resume_ck.load_optimizer_into(opt, model)
        try:
            batcher.load_state_dict(meta['batcher'])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError('checkpoint %s: cannot restore the batch cursor (%s)'
                                  % (cfg.resume, e)) from None
        prog = meta['progress']
        hist = meta.get('history', {})
        history_train = list(hist.get('train_loss', []))
        history_val = [list(v) for v in hist.get('val', [])]
        elapsed_before = float(prog.get('elapsed', 0.0))
        initial_loss = prog.get('initial_loss')
        best_val = prog.get('best_val_loss')
        best_iter = prog.get('best_iteration')
        # A run that stopped between scheduled validations ran one extra, end-of-run
        # validation at its last iteration. The resumed run continues the schedule as if it
        # had never stopped, so that extra result is dropped (from the history, the best-so-
        # far bookkeeping and, below, the log): N + resume + N then logs exactly what 2N
        # iterations in one run log. (best.npz may still hold that extra point's weights.)
        n_done = batcher.iteration
        if history_val and history_val[-1][0] == n_done and n_done % eval_every != 0:
            history_val.pop()
            finite = [v for v in history_val if math.isfinite(v[1])]
            if finite:
                best_iter, best_val = min(finite, key=lambda v: v[1])
            else:
                best_iter = best_val = None
        if len(history_train) != batcher.iteration or opt.t != batcher.iteration:
            raise CheckpointError('checkpoint %s is inconsistent: iteration %d, optimizer step '
                                  '%d, %d logged losses; the file is corrupt'
                                  % (cfg.resume, batcher.iteration, opt.t,
                                     len(history_train)))
        _set_rng_states(meta.get('rng', {}), cfg.resume)
    if cfg.device != 'cpu':
        try:
            model.to_device(cfg.device)
        except (RuntimeError, ValueError) as e:
            raise ConfigError('--device %s: %s' % (cfg.device, e)) from None
    if resume_ck is not None and resume_ck.carried_state() is not None:
        carried = resume_ck.carried_state()
        try:
            if carried['h'].shape[1:2] != (cfg.batch_size,):
                raise ValueError('it has %d streams but the run uses --batch-size %d'
                                 % (carried['h'].shape[1], cfg.batch_size)
                                 if carried['h'].ndim >= 2 else
                                 'h has shape %s' % (carried['h'].shape,))
            model.set_state(carried)
        except (KeyError, ValueError) as e:
            raise CheckpointError('checkpoint %s: the stored hidden state does not fit the '
                                  'model (%s); the file is corrupt' % (cfg.resume, e)) from None
    xp = model.xp

    # -- summary ------------------------------------------------------------------------------
    unit = 'bytes' if data.corpus.encoding == 'bytes' else 'chars'
    nparams = model.count_params()
    out_stream = _SafeStream(out_stream)
    p = lambda *a: print(*a, file=out_stream, flush=True)  # noqa: E731
    p('corpus: %s (%s), %s %s, sha256 %s' % (data.corpus.name, data.corpus.source,
                                              _fmt_int(len(data.corpus.text)), unit,
                                              data.corpus.sha256[:16]))
    p('vocab size: %d' % len(vocab))
    p('split (%s, %s): train %s, val %s, test %s' % (
        data.split_method, unit, _fmt_int(data.train.size), _fmt_int(data.val.size),
        _fmt_int(data.test.size)))
    p('batches per epoch: %d (batch %d x seq %d = %s %s per batch)' % (
        wpe, cfg.batch_size, cfg.seq_length, _fmt_int(cfg.batch_size * cfg.seq_length), unit))
    p('parameters: %s (%s %dx%d, impl %s)' % (_fmt_int(nparams), cfg.model, cfg.num_layers,
                                               cfg.rnn_size, cfg.impl))
    if resume_ck is not None:
        p('resuming %s at iteration %d (epoch %.2f)' % (cfg.resume, batcher.iteration,
                                                       batcher.epoch_detail))
    elif init_ck is not None:
        p('initialized from the weights of %s' % cfg.init_from)

    if resume_ck is not None and limit_iters is not None and batcher.iteration >= limit_iters:
        # Nothing to train: write nothing (re-saving would replace OUT/latest.npz with this
        # state, e.g. with best.npz's older one, and cut the log back).
        p('nothing to do: the run is already at iteration %d and its stopping rule ends it at '
          'iteration %d; pass a larger --max-iters or --max-epochs to train further'
          % (batcher.iteration, limit_iters))
        q = os.path.join(cfg.out, BEST_NAME)
        return TrainResult(status='done', signal=None, iteration=batcher.iteration,
                           epoch=batcher.epoch_detail,
                           train_loss=history_train[-1] if history_train else None,
                           best_val_loss=best_val, latest=os.path.abspath(cfg.resume),
                           best=q if os.path.exists(q) else None,
                           log=os.path.join(cfg.out, LOG_NAME), plot=None)

    # -- output folder (first write) ---------------------------------------------------------------
    out_dir = cfg.out
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise ConfigError('--out %s: cannot create the output folder (%s)' % (out_dir, e)) \
            from None
    log_path = os.path.join(out_dir, LOG_NAME)
    latest_path = os.path.join(out_dir, LATEST_NAME)
    best_path = os.path.join(out_dir, BEST_NAME)
    _check_writable(out_dir, (log_path, latest_path, best_path,
                              os.path.join(out_dir, PLOT_NAME)))
    start_iter = batcher.iteration
    if resume_ck is None:
        old = [q for q in (latest_path, best_path) if os.path.exists(q)]
        if old:
            p('note: %s already holds checkpoints of an earlier run (%s); this new run '
              'replaces them as it goes' % (out_dir, ', '.join(os.path.basename(q)
                                                               for q in old)))
    if resume_ck is not None:
        try:
            old_log = read_jsonl(log_path)
        except (ValueError, UnicodeDecodeError) as e:
            raise ConfigError('%s; the run\'s log is damaged. Repair or delete that line (or '
                              'move the log away) and resume again; the checkpoint itself is '
                              'fine' % e) from None
        kept = [r for r in old_log
                if isinstance(r.get('iteration'), int) and r['iteration'] <= start_iter]
        if kept and kept[-1]['iteration'] == start_iter and start_iter % eval_every != 0:
            kept[-1] = dict(kept[-1], val_loss=None, val_bpc=None)  # the extra validation
        rewrite_jsonl(log_path, kept)
    elif os.path.exists(log_path):
        rewrite_jsonl(log_path, [])     # a new run in this folder starts a new log
    corpus_meta = {'name': data.corpus.name, 'spec': _corpus_spec(cfg.corpus),
                   'source': data.corpus.source, 'sha256': data.corpus.sha256,
                   'encoding': data.corpus.encoding, 'split_method': data.split_method,
                   'fractions': list(data.fractions) if data.fractions else None,
                   'sizes': {'train': int(data.train.size), 'val': int(data.val.size),
                             'test': int(data.test.size)}}
    train_json = cfg.to_json()

    def save(path, kind):
        meta = {
            'kind': kind,
            'train': train_json,
            'corpus': corpus_meta,
            'progress': {'iteration': batcher.iteration, 'epoch': batcher.epoch,
                         'epoch_detail': batcher.epoch_detail,
                         'elapsed': elapsed_before + (time.perf_counter() - t0),
                         'initial_loss': initial_loss, 'best_val_loss': best_val,
                         'best_iteration': best_iter, 'lr': float(opt.lr)},
            'rng': _rng_states(),
            'batcher': batcher.state_dict(),
            'history': {'train_loss': history_train, 'val': history_val},
        }
        try:
            return ckpt_mod.save_checkpoint(path, model, vocab, optimizer=opt, meta=meta)
        except OSError as e:
            raise CheckpointError('could not write checkpoint %s (%s: %s); training stopped. '
                                  'The previous version of that file, if any, is intact. Free '
                                  'disk space or fix the folder\'s permissions, then resume'
                                  % (path, type(e).__name__, e)) from None

    # -- loop --------------------------------------------------------------------------------------
    from tqdm import tqdm
    total = limit_iters
    bar = tqdm(total=total, initial=start_iter, disable=not cfg.progress or None,
               unit='it', dynamic_ncols=True, file=sys.stderr, smoothing=0.1)
    status = 'done'
    caught = None
    last_loss = history_train[-1] if history_train else None
    chars_per_iter = cfg.batch_size * cfg.seq_length
    budget = None if cfg.max_minutes is None else cfg.max_minutes * 60.0
    logger = JsonlLogger(log_path)
    t0 = time.perf_counter()
    rate_t, rate_it = t0, start_iter
    chars_per_sec = 0.0
    saved_latest_at = None
    try:
        with _SignalCatcher() as catcher:
            while limit_iters is None or batcher.iteration < limit_iters:
                if batcher.starts_epoch:
                    model.reset_state()
                lr = schedule.lr_at(opt.epoch, opt.base_lr)
                x_host, t_host = batcher.next_window()
                it = batcher.iteration
                try:
                    loss = bptt_update(model, opt, xp.asarray(x_host), xp.asarray(t_host),
                                       mode='window')
                except NonFiniteLossError as e:
                    loss = e.loss
                if batcher.is_new_epoch:
                    opt.new_epoch()
                if initial_loss is None:
                    initial_loss = loss
                history_train.append(loss)
                last_loss = loss
                now = time.perf_counter()
                stop_reason = None
                if limit_iters is not None and it >= limit_iters:
                    stop_reason = 'done'
                elif budget is not None and now - t0 >= budget:
                    stop_reason = 'time budget'
                elif catcher.signum is not None:
                    stop_reason = 'interrupted'
                diverged = not math.isfinite(loss) or loss > DIVERGENCE_FACTOR * initial_loss
                val = None
                if (not diverged and data.val.size >= 2 and stop_reason != 'interrupted'
                        and (it % eval_every == 0 or stop_reason is not None)):
                    val = evaluate_tokens(model, data.val, cfg.batch_size,
                                          cfg.seq_length).loss
                    history_val.append([it, val])
                    if not math.isfinite(val):
                        diverged = True
                record = {'iteration': it, 'epoch': batcher.epoch_detail,
                          'train_loss': loss, 'train_bpc': loss / LN2,
                          'val_loss': val, 'val_bpc': None if val is None else val / LN2,
                          'lr': lr, 'time': elapsed_before + (now - t0)}
                try:
                    logger.log(record)
                except OSError as e:
                    raise CheckpointError('could not append to the log %s (%s: %s); training '
                                          'stopped. Free disk space, then resume from %s'
                                          % (log_path, type(e).__name__, e,
                                             latest_path)) from None
                if now - rate_t > 0.5:
                    chars_per_sec = (it - rate_it) * chars_per_iter / (now - rate_t)
                    rate_t, rate_it = now, it
                bar.set_postfix(loss='%.4f' % loss, chars_s=_fmt_int(chars_per_sec),
                                refresh=False)
                bar.update(1)
                if diverged:
                    what = ('%r' % loss if not math.isfinite(loss) else
                            '%.4f nats/char, more than %g x the first loss %.4f'
                            % (loss, DIVERGENCE_FACTOR, initial_loss))
                    if val is not None and not math.isfinite(val):
                        what = 'validation loss %r' % val
                    kept = [q for q in (latest_path, best_path) if os.path.exists(q)]
                    raise TrainingDiverged(
                        'training diverged at iteration %d (epoch %.2f): loss %s. Stopped '
                        'without saving this state%s. Try a lower --learning-rate (now %g) or '
                        'a smaller --grad-clip (now %g)'
                        % (it, batcher.epoch_detail, what,
                           '; the last good checkpoints are kept: ' + ', '.join(kept)
                           if kept else '', cfg.learning_rate, cfg.grad_clip), it, loss)
                if val is not None:
                    msg = ('iter %d/%s  epoch %.2f  train %.4f  val %.4f nats/char '
                           '(%.3f bits/char)  lr %.3g' % (
                               it, limit_iters if limit_iters is not None else '?',
                               batcher.epoch_detail, loss, val, val / LN2, lr))
                    if best_val is None or val < best_val:
                        best_val, best_iter = val, it
                        save(best_path, 'best')
                        msg += '  -> best'
                    bar.write(msg, file=out_stream) if cfg.progress else p(msg)
                if stop_reason is not None or it % checkpoint_every == 0:
                    save(latest_path, 'latest')
                    saved_latest_at = it
                if stop_reason is not None:
                    status = stop_reason
                    caught = catcher.signum if stop_reason == 'interrupted' else None
                    break
            else:
                status = 'done'
            if saved_latest_at != batcher.iteration:
                save(latest_path, 'latest')
    finally:
        bar.close()
        logger.close()

    elapsed = time.perf_counter() - t0
    if status == 'interrupted':
        name = signal.Signals(caught).name if caught else 'signal'
        p('interrupted by %s at iteration %d: wrote %s; continue with --resume %s'
          % (name, batcher.iteration, latest_path, latest_path))
    elif status == 'time budget':
        p('stopped at iteration %d: the --max-minutes %g budget is spent'
          % (batcher.iteration, cfg.max_minutes))
    p('iteration %d, epoch %.2f, %.1f s; last train loss %s; best val loss %s (iteration %s)'
      % (batcher.iteration, batcher.epoch_detail, elapsed,
         'n/a' if last_loss is None else '%.4f' % last_loss,
         'n/a' if best_val is None else '%.4f' % best_val, best_iter))
    p('checkpoints: %s%s; log: %s' % (latest_path, (', ' + best_path)
                                      if os.path.exists(best_path) else '', log_path))
    plot = None
    if status != 'interrupted':
        plot = _plot(os.path.join(out_dir, PLOT_NAME), history_train, history_val, out_stream)
        if plot:
            p('loss curves: %s' % plot)
    return TrainResult(status=status, signal=caught, iteration=batcher.iteration,
                       epoch=batcher.epoch_detail, train_loss=last_loss, best_val_loss=best_val,
                       latest=latest_path,
                       best=best_path if os.path.exists(best_path) else None,
                       log=log_path, plot=plot)
