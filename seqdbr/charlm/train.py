"""Training a character-level RNN language model (the ``seqdbr-train-charrnn`` command).

:func:`train` runs the whole job from a :class:`TrainConfig`. It is an assembly of parts of
:mod:`seqdbr.training` (read :func:`_build_trainer` for the whole flow): a
:class:`~seqdbr.training.BPTTUpdater` over a ``ParallelSequentialBatcher``, a ``Trainer``
with a ``StopTrigger``, and the extensions ``DivergenceGuard``, ``LRScheduler``,
``LMEvaluator``, ``LogReport``, ``ProgressBar`` and two snapshots, written in the
char-RNN checkpoint layout by :class:`seqdbr.charlm.snapshot.CharLMFormat`.

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
import io
import math
import os
import re
import signal
import sys

import numpy

from seqdbr.charlm import checkpoint as ckpt_mod
from seqdbr.charlm.data import resolve_fractions, split_corpus
from seqdbr.charlm.errors import CheckpointError, ConfigError, TrainingDiverged
from seqdbr.charlm.model import CharRNN, MODELS, IMPLS, check_forget_bias
from seqdbr.charlm.snapshot import CharLMFormat, LossHistory
from seqdbr.charlm.vocab import UnknownCharacterError, Vocabulary
from seqdbr.core import seeding
from seqdbr.core.option_checks import flag_name, is_int, is_real
from seqdbr.datasets.corpora import load_corpus
from seqdbr.distributed.data import StreamShard, check_divisible
from seqdbr.distributed.optimizer import create_multi_node_optimizer
from seqdbr.distributed.state import local_rows
from seqdbr.rnn.bptt import ParallelSequentialBatcher
from seqdbr.rnn.lm_eval import LN2
from seqdbr.training import BPTTUpdater, IntervalTrigger, MinValueTrigger, StopTrigger, Trainer
from seqdbr.training.errors import OutputError, WriteError
from seqdbr.training.errors import TrainingDiverged as GenericDiverged
from seqdbr.training.extension import PRIORITY_SNAPSHOT, PRIORITY_WRITER, Extension
from seqdbr.training.extensions import (DivergenceGuard, LMEvaluator, LogReport, LRScheduler,
                                        ProgressBar, snapshot)
from seqdbr.training.reporter import as_float, report

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
    ``init_from`` (checkpoint paths), ``overwrite`` (a new run may replace an earlier run in
    ``out``; without it such a folder is refused), ``progress`` (show the tqdm bar).
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
    overwrite: bool = False
    corpus: str = 'pydoc'
    encoding: str = 'utf-8'
    impl: str = 'nstep'
    progress: bool = True

    def to_json(self):
        return dataclasses.asdict(self)


#: Options a resumed run may change; all others are taken from the checkpoint.
RESUME_OVERRIDABLE = frozenset(('max_epochs', 'max_iters', 'max_minutes', 'eval_every',
                                'checkpoint_every', 'out', 'device', 'progress', 'impl',
                                'corpus', 'resume', 'init_from', 'overwrite'))
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


def validate_config(cfg):
    """Check every option's type and range.

    Raises:
        ConfigError: naming the flag, the value and what is accepted.
    """
    def need_int(name, minimum, allow_none=False):
        v = getattr(cfg, name)
        if v is None and allow_none:
            return
        if not is_int(v) or v < minimum:
            raise ConfigError('%s must be an integer >= %d, got %r'
                              % (flag_name(name), minimum, v))

    def need_choice(name, choices):
        v = getattr(cfg, name)
        if v not in choices:
            raise ConfigError('%s must be one of %s, got %r'
                              % (flag_name(name), ', '.join(choices), v))

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
    if not is_real(cfg.dropout) or not 0 <= cfg.dropout < 1:
        raise ConfigError('--dropout must be in [0, 1) (the probability of dropping a unit), '
                          'got %r' % (cfg.dropout,))
    if not is_real(cfg.learning_rate) or not 0 < cfg.learning_rate < math.inf:
        raise ConfigError('--learning-rate must be a positive number, got %r'
                          % (cfg.learning_rate,))
    if not is_real(cfg.lr_decay) or not 0 < cfg.lr_decay <= 1:
        raise ConfigError('--lr-decay must be in (0, 1] (1 = no decay), got %r'
                          % (cfg.lr_decay,))
    if not is_real(cfg.grad_clip) or not 0 <= cfg.grad_clip < math.inf:
        raise ConfigError('--grad-clip must be a number >= 0 (0 disables clipping), got %r'
                          % (cfg.grad_clip,))
    if cfg.max_minutes is not None and (not is_real(cfg.max_minutes)
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
    """The optimizer (with gradient clipping as a hook) and the LR schedule (an extension)."""
    from seqdbr import optimizers as O
    if cfg.optimizer == 'adam':
        opt = O.Adam(alpha=cfg.learning_rate)
    elif cfg.optimizer == 'rmsprop':
        opt = O.RMSprop(lr=cfg.learning_rate, alpha=0.95)   # char-rnn's decay_rate 0.95
    else:
        opt = O.SGD(lr=cfg.learning_rate)
    opt.setup(model)
    if cfg.grad_clip > 0:
        opt.add_hook(O.hooks.GradientClipping(cfg.grad_clip))
    return opt, O.ExponentialDecay(rate=cfg.lr_decay, after=cfg.lr_decay_after)


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
            conflicts.append('%s %r (the checkpoint has %r)' % (flag_name(name), mine,
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


def _open_checkpoints(cfg, explicit):
    """Validate ``cfg``; read the ``resume``/``init_from`` checkpoint and fold its stored
    options into the configuration. Returns ``(cfg, resume_ck, init_ck)``."""
    validate_config(cfg)
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
        bad = ['%s %r (the checkpoint has %r)' % (flag_name(k), getattr(cfg, k), arch.get(k))
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
    return cfg, resume_ck, init_ck


def _read_data(cfg, resume_ck, init_ck):
    if resume_ck is not None:
        return _load_data(cfg, vocab=resume_ck.vocab, vocab_source=None,
                          expect_sha=resume_ck.meta.get('corpus', {}).get('sha256'))
    if init_ck is not None:
        return _load_data(cfg, vocab=init_ck.vocab, vocab_source=cfg.init_from)
    return _load_data(cfg)


def _stop_trigger(cfg):
    max_epochs = cfg.max_epochs
    if cfg.max_epochs is None and cfg.max_iters is None and cfg.max_minutes is None:
        max_epochs = DEFAULT_MAX_EPOCHS
    return StopTrigger(max_iterations=cfg.max_iters, max_epochs=max_epochs,
                       max_minutes=cfg.max_minutes)


def _corpus_meta(cfg, data):
    return {'name': data.corpus.name, 'spec': _corpus_spec(cfg.corpus),
            'source': data.corpus.source, 'sha256': data.corpus.sha256,
            'encoding': data.corpus.encoding, 'split_method': data.split_method,
            'fractions': list(data.fractions) if data.fractions else None,
            'sizes': {'train': int(data.train.size), 'val': int(data.val.size),
                      'test': int(data.test.size)}}


class _ValidationLine(Extension):
    """Prints ``iter ... val ... -> best`` after each validation (after the snapshots, so
    that it knows whether this one was the best)."""
    priority = PRIORITY_SNAPSHOT - 10
    trigger = None
    root_only = True

    def __init__(self, best_snapshot, bar, out_stream, limit):
        self.best_snapshot, self.bar, self.out, self.limit = best_snapshot, bar, out_stream, limit

    def __call__(self, trainer):
        obs = trainer.observation
        if 'val/loss' not in obs:
            return
        u = trainer.updater
        val = as_float(obs['val/loss'])
        msg = ('iter %d/%s  epoch %.2f  train %.4f  val %.4f nats/char (%.3f bits/char)  '
               'lr %.3g' % (u.iteration, self.limit if self.limit is not None else '?',
                            u.epoch_detail, as_float(obs['loss']), val, val / LN2,
                            as_float(obs['lr'])))
        if self.best_snapshot.last_iteration == u.iteration:
            msg += '  -> best'
        self.bar.write(msg, file=self.out)


class _TrainBits(Extension):
    """Reports the training loss in bits per character (``bits``) for the log."""
    priority = PRIORITY_WRITER
    trigger = None

    def __call__(self, trainer):
        report({'bits': as_float(trainer.observation['loss']) / LN2})


#: Observation -> log field, in the log's order (``iteration`` and ``epoch`` come first,
#: ``time`` last).
LOG_FIELDS = {'loss': 'train_loss', 'bits': 'train_bpc', 'val/loss': 'val_loss',
              'val/bits': 'val_bpc', 'lr': 'lr'}


def _build_trainer(cfg, data, model, opt, schedule, batcher, out_stream, comm=None):
    """Assemble the Trainer: updater, stop rule and extensions (the run's whole flow).
    With ``comm`` (a data-parallel run) ``opt`` is the multi-node optimizer, each rank trains
    its rows of ``batcher``'s windows and validates its share of the streams."""
    stop = _stop_trigger(cfg)
    eval_every = cfg.eval_every or batcher.windows_per_epoch
    checkpoint_every = cfg.checkpoint_every or eval_every
    guard = DivergenceGuard('loss', factor=DIVERGENCE_FACTOR)
    best = MinValueTrigger('val/loss')
    history = LossHistory()
    fmt = CharLMFormat(model, getattr(opt, 'actual_optimizer', opt), data.vocab, batcher,
                       cfg.to_json(), _corpus_meta(cfg, data), guard, best, history,
                       eval_every, comm=comm)
    updater = BPTTUpdater(batcher if comm is None else StreamShard(batcher, comm), opt, model,
                          mode='window')
    trainer = Trainer(updater, stop_trigger=stop, out=cfg.out, snapshot_format=fmt, comm=comm,
                      overwrite=cfg.overwrite,
                      notice=lambda text: print(text, file=sys.stderr, flush=True))
    bar = ProgressBar(cfg.batch_size * cfg.seq_length, unit='chars', quiet=not cfg.progress)
    best_snapshot = snapshot(BEST_NAME)
    trainer.extend(guard)
    trainer.extend(LRScheduler(schedule))
    trainer.extend(_TrainBits())
    if data.val.size >= 2:
        trainer.extend(LMEvaluator(data.val, model, cfg.batch_size, cfg.seq_length,
                                   comm=comm),
                       trigger=IntervalTrigger(eval_every, 'iteration', at_end=True))
    trainer.extend(LogReport(LOG_FIELDS, trigger=None, filename=LOG_NAME, epoch='detail'))
    trainer.extend(history)
    trainer.extend(bar)
    trainer.extend(best_snapshot, trigger=best)
    trainer.extend(snapshot(LATEST_NAME),
                   trigger=IntervalTrigger(checkpoint_every, 'iteration', at_end=True))
    trainer.extend(_ValidationLine(best_snapshot, bar, out_stream,
                                   stop.total_iterations(updater)))
    trainer.extend(_ReplaceEarlierRun())
    return trainer, fmt


class _ReplaceEarlierRun(Extension):
    """After a new run's first checkpoint, remove what an earlier run in the folder left and
    this run has not written (its ``best.npz``, ``loss.png``): nothing of it is touched
    before, and nothing stale is left after."""
    trigger = 'end'

    def __init__(self):
        self.mine = set()
        self.done = False

    def __call__(self, trainer):
        pass

    def after_save(self, trainer, path):
        self.mine.add(os.path.basename(path))
        if self.done or trainer.resumed_from is not None:
            return
        self.done = True
        for name in (BEST_NAME, PLOT_NAME):
            q = os.path.join(trainer.out, name)
            if name not in self.mine and os.path.exists(q):
                os.remove(q)


def _print_summary(p, cfg, data, model, batcher, resume_ck, init_ck):
    unit = 'bytes' if data.corpus.encoding == 'bytes' else 'chars'
    p('corpus: %s (%s), %s %s, sha256 %s' % (data.corpus.name, data.corpus.source,
                                              _fmt_int(len(data.corpus.text)), unit,
                                              data.corpus.sha256[:16]))
    p('vocab size: %d' % len(data.vocab))
    p('split (%s, %s): train %s, val %s, test %s' % (
        data.split_method, unit, _fmt_int(data.train.size), _fmt_int(data.val.size),
        _fmt_int(data.test.size)))
    p('batches per epoch: %d (batch %d x seq %d = %s %s per batch)' % (
        batcher.windows_per_epoch, cfg.batch_size, cfg.seq_length,
        _fmt_int(cfg.batch_size * cfg.seq_length), unit))
    p('parameters: %s (%s %dx%d, impl %s)' % (_fmt_int(model.count_params()), cfg.model,
                                               cfg.num_layers, cfg.rnn_size, cfg.impl))
    if resume_ck is not None:
        p('resuming %s at iteration %d (epoch %.2f)' % (cfg.resume, batcher.iteration,
                                                       batcher.epoch_detail))
    elif init_ck is not None:
        p('initialized from the weights of %s' % cfg.init_from)


def _restore_carried_state(model, ck, cfg, comm=None):
    carried = ck.carried_state()
    if carried is None:
        return
    try:
        if carried['h'].shape[1:2] != (cfg.batch_size,):
            raise ValueError('it has %d streams but the run uses --batch-size %d'
                             % (carried['h'].shape[1], cfg.batch_size)
                             if carried['h'].ndim >= 2 else
                             'h has shape %s' % (carried['h'].shape,))
        if comm is not None:          # the snapshot holds every stream; keep this rank's
            carried = local_rows(comm, carried)
        model.set_state(carried)
    except (KeyError, ValueError) as e:
        raise CheckpointError('checkpoint %s: the stored hidden state does not fit the '
                              'model (%s); the file is corrupt' % (cfg.resume, e)) from None


def _prepare_out_dir(cfg, resumed, p):
    out_dir = cfg.out
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise ConfigError('--out %s: cannot create the output folder (%s)' % (out_dir, e)) \
            from None
    names = (LOG_NAME, LATEST_NAME, BEST_NAME, PLOT_NAME)
    _check_writable(out_dir, [os.path.join(out_dir, n) for n in names])
    if not resumed and cfg.overwrite:
        old = [n for n in names if os.path.exists(os.path.join(out_dir, n))]
        if old:
            p('note: %s holds an earlier run (%s); --overwrite: this run replaces it once its '
              'first checkpoint is written' % (out_dir, ', '.join(old)))


def _diverged_error(e, trainer, guard, cfg, out_dir):
    loss = e.loss if e.loss is None else as_float(e.loss)
    val = trainer.observation.get('val/loss')
    if val is not None and not math.isfinite(as_float(val)):
        what = 'validation loss %r' % as_float(val)
    elif loss is None or not math.isfinite(loss):
        what = '%r' % loss
    else:
        what = ('%.4f nats/char, more than %g x the first loss %.4f'
                % (loss, DIVERGENCE_FACTOR, guard.initial))
    kept = [q for q in (os.path.join(out_dir, LATEST_NAME), os.path.join(out_dir, BEST_NAME))
            if os.path.exists(q)]
    return TrainingDiverged(
        'training diverged at iteration %d (epoch %.2f): loss %s. Stopped without saving '
        'this state%s. Try a lower --learning-rate (now %g) or a smaller --grad-clip (now %g)'
        % (e.iteration, trainer.updater.epoch_detail, what,
           '; the last good checkpoints are kept: ' + ', '.join(kept) if kept else '',
           cfg.learning_rate, cfg.grad_clip), e.iteration, loss)


def _run(trainer, guard, cfg):
    try:
        return trainer.run()
    except GenericDiverged as e:
        raise _diverged_error(e, trainer, guard, cfg, cfg.out) from None
    except OutputError as e:
        raise ConfigError(str(e)) from None
    except WriteError as e:
        raise CheckpointError(str(e)) from None


def _finish(p, trainer, fmt, cfg, status, t_run):
    b = fmt.batcher
    latest = os.path.join(cfg.out, LATEST_NAME)
    best = os.path.join(cfg.out, BEST_NAME)
    log = os.path.join(cfg.out, LOG_NAME)
    if status == 'interrupted':
        name = signal.Signals(trainer.signal).name if trainer.signal else 'signal'
        p('interrupted by %s at iteration %d: wrote %s; continue with --resume %s'
          % (name, b.iteration, latest, latest))
    elif status == 'time budget':
        p('stopped at iteration %d: the --max-minutes %g budget is spent'
          % (b.iteration, cfg.max_minutes))
    last = fmt.history.train[-1] if fmt.history.train else None
    p('iteration %d, epoch %.2f, %.1f s; last train loss %s; best val loss %s (iteration %s)'
      % (b.iteration, b.epoch_detail, t_run, 'n/a' if last is None else '%.4f' % last,
         'n/a' if fmt.best.best is None else '%.4f' % fmt.best.best, fmt.best.best_iteration))
    p('checkpoints: %s%s; log: %s' % (latest, (', ' + best) if os.path.exists(best) else '',
                                      log))
    plot = None
    if status != 'interrupted' and trainer.is_root:
        plot = _plot(os.path.join(cfg.out, PLOT_NAME), fmt.history.train, fmt.history.val,
                     p.stream)
        if plot:
            p('loss curves: %s' % plot)
    return TrainResult(status=status, signal=trainer.signal, iteration=b.iteration,
                       epoch=b.epoch_detail, train_loss=last, best_val_loss=fmt.best.best,
                       latest=latest, best=best if os.path.exists(best) else None, log=log,
                       plot=plot)


def _printer(out_stream):
    stream = _SafeStream(out_stream)

    def p(*a):
        print(*a, file=stream, flush=True)
    p.stream = stream
    return p


def train(config, explicit=None, out_stream=None, comm=None):
    """Run a training job (see the module docstring for what happens).

    Args:
        config (TrainConfig): the options.
        explicit (set of str or None): names of the options the user set explicitly (the
            CLI passes the flags given). On ``resume`` these may not conflict with the
            checkpoint's; None means "every option that differs from its default".
        out_stream: where the summary lines go (default ``sys.stdout``); the progress bar
            goes to ``sys.stderr``.
        comm: a :mod:`seqdbr.distributed` communicator for a data-parallel run (each of its
            ``size`` processes calls ``train`` with the same options): the global batch stays
            ``batch_size`` streams, split in equal shares across the ranks; gradients are
            averaged before the optimizer's hooks; validation is split across the ranks;
            rank 0 alone prints and writes. Snapshots hold every stream's carried state, so
            they resume with any number of processes that divides ``batch_size``.

    Returns:
        TrainResult.

    Raises:
        ConfigError: invalid options, splits too small, a corpus with characters outside an
            ``init_from`` vocabulary, a resume conflicting with the checkpoint.
        seqdbr.datasets.corpora.CorpusError: the corpus cannot be read (empty file, invalid
            UTF-8, unknown name, ...).
        CheckpointError: an unreadable or unsuitable ``resume``/``init_from`` checkpoint, or
            a failed write.
        TrainingDiverged: the divergence guard stopped the run.
    """
    if comm is not None and comm.rank != 0:
        out_stream = io.StringIO()            # rank 0 prints
    p = _printer(sys.stdout if out_stream is None else out_stream)
    if comm is not None and config.batch_size % comm.size:
        try:
            check_divisible(config.batch_size, comm.size)
        except ValueError as e:
            raise ConfigError(str(e)) from None
    explicit = set(_explicit_fields(config) if explicit is None else explicit)
    # Everything that can fail on bad input happens before anything is written.
    cfg, resume_ck, init_ck = _open_checkpoints(config, explicit)
    data = _read_data(cfg, resume_ck, init_ck)
    seeding.seed(cfg.seed)
    model = CharRNN(len(data.vocab), rnn_size=cfg.rnn_size, num_layers=cfg.num_layers,
                    dropout=cfg.dropout, model=cfg.model, impl=cfg.impl,
                    forget_bias=cfg.forget_bias)
    if resume_ck or init_ck:
        (resume_ck or init_ck).load_params_into(model)
    opt, schedule = _make_optimizer(cfg, model)
    if comm is not None:
        opt = create_multi_node_optimizer(opt, comm)
        comm.bcast_data(model)
    batcher = ParallelSequentialBatcher(data.train, cfg.batch_size, cfg.seq_length)
    trainer, fmt = _build_trainer(cfg, data, model, opt, schedule, batcher, p.stream, comm)
    if resume_ck is not None:
        fmt.loaded[cfg.resume] = resume_ck
        trainer.resume(cfg.resume)
    if cfg.device != 'cpu':
        try:
            model.to_device(cfg.device)
        except (RuntimeError, ValueError) as e:
            raise ConfigError('--device %s: %s' % (cfg.device, e)) from None
    if resume_ck is not None:
        _restore_carried_state(model, resume_ck, cfg, comm)
    _print_summary(p, cfg, data, model, batcher, resume_ck, init_ck)
    limit = trainer.stop_trigger.total_iterations(trainer.updater)
    if resume_ck is not None and limit is not None and batcher.iteration >= limit:
        # Nothing to train: write nothing (re-saving would replace OUT/latest.npz).
        p('nothing to do: the run is already at iteration %d and its stopping rule ends it at '
          'iteration %d; pass a larger --max-iters or --max-epochs to train further'
          % (batcher.iteration, limit))
        q = os.path.join(cfg.out, BEST_NAME)
        return TrainResult(status='done', signal=None, iteration=batcher.iteration,
                           epoch=batcher.epoch_detail,
                           train_loss=fmt.history.train[-1] if fmt.history.train else None,
                           best_val_loss=fmt.best.best, latest=os.path.abspath(cfg.resume),
                           best=q if os.path.exists(q) else None,
                           log=os.path.join(cfg.out, LOG_NAME), plot=None)
    if trainer.is_root:
        _prepare_out_dir(cfg, resume_ck is not None, p)
    status = _run(trainer, trainer.get_extension('DivergenceGuard'), cfg)
    return _finish(p, trainer, fmt, cfg, status, trainer.run_seconds)
