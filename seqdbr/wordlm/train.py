"""Training a word-level LSTM language model (the ``seqdbr-train-wordlm`` command).

:func:`train` runs a job from a :class:`TrainConfig`; :func:`build_trainer` is the whole
flow, assembled from :mod:`seqdbr.training` like the char-RNN and MNIST programs:

1. **Data.** PTB (``--data ptb``: the catalog corpus, or ``--data-dir`` with
   ``ptb.{train,valid,test}.txt[.gz]``) or any tokenized UTF-8 text (``--train FILE``
   with optional ``--valid``/``--test``): words split on whitespace, ``<eos>`` after every
   line, a vocabulary of the ``--vocab-limit`` most frequent training words plus ``<unk>``
   and ``<eos>`` (:mod:`seqdbr.datasets.ptb`).
2. **Model.** :class:`seqdbr.wordlm.model.WordLM` (Zaremba et al. 2014), optionally tied.
3. **Optimization.** Truncated BPTT (:class:`~seqdbr.training.BPTTUpdater`) over
   ``batch_size`` parallel streams and ``bptt`` steps, state carried between windows and
   reset at each epoch. The learning rate and the clipping threshold are in Zaremba's units:
   the loss of a window is the cross-entropy *summed over its T steps* and averaged over the
   batch (Zaremba's Torch code and TensorFlow's PTB tutorial both do so). The updater
   minimises the mean over all ``B*T`` tokens, ``T`` times smaller, so SGD runs with
   ``lr * T`` and clips the global gradient norm at ``grad_clip / T``: exactly the same
   updates (SGD is linear in the gradient and ``clip(T g, c) = T clip(g, c / T)``). Adam,
   invariant to the gradient's scale, takes ``lr`` as is. The rate is divided by
   ``1 / lr_decay`` after every epoch from epoch ``lr_decay_after + 1`` on
   (:class:`seqdbr.core.lr_schedules.ExponentialDecay`).
4. **Monitoring.** After every epoch the validation perplexity (``B`` streams of ``bptt``
   windows, :class:`~seqdbr.training.extensions.LMEvaluator`); ``OUT/log.jsonl`` has one
   record per full epoch: ``train_loss`` (the epoch's mean, nats per word), ``val_loss``,
   ``val_perplexity``, ``lr`` (the optimizer's rate: for SGD ``T`` times the rate in
   Zaremba's units), ``time`` (seconds of the run, validation included, summed over
   resumes); stdout gets one line per epoch with the perplexities in Zaremba's units.
5. **Checkpoints.** ``OUT/latest.npz`` each epoch (and at a stop), ``OUT/best.npz`` at the
   best validation loss: generic training snapshots
   (:class:`~seqdbr.training.NpzSnapshotFormat`, program ``seqdbr-wordlm``) that also hold
   the model configuration and the vocabulary (:mod:`seqdbr.wordlm.checkpoint`), so that
   they are self-contained for ``seqdbr-sample-wordlm`` / ``seqdbr-eval-wordlm`` and resume
   exactly (``resume=PATH``).
6. **End.** The final model is scored on the valid and test splits with one stream
   (``eval_batch_size``, default 1: Zaremba's test layout; every word scored from the state
   left by all the words before it), and the perplexities are printed and returned.
"""
import dataclasses
import math
import os
import sys

from seqdbr import optimizers as O
from seqdbr.core import seeding
from seqdbr.core.option_checks import flag_name, is_int, is_real
from seqdbr.rnn.bptt import ParallelSequentialBatcher
from seqdbr.rnn.lm_eval import evaluate_tokens
from seqdbr.training import BPTTUpdater, IntervalTrigger, MinValueTrigger, StopTrigger, Trainer
from seqdbr.training.extension import Extension
from seqdbr.training.extensions import (DivergenceGuard, LMEvaluator, LogReport, LRScheduler,
                                        ProgressBar, snapshot)
from seqdbr.wordlm import checkpoint as ckpt_mod
from seqdbr.wordlm.data import load_data
from seqdbr.wordlm.errors import ConfigError
from seqdbr.wordlm.model import WordLM

__all__ = ['PRESETS', 'TrainConfig', 'TrainResult', 'train', 'build_trainer', 'validate_config',
           'PROGRAM', 'LOG_NAME', 'LATEST_NAME', 'BEST_NAME']

PROGRAM = ckpt_mod.PROGRAM
LOG_NAME = 'log.jsonl'
LATEST_NAME = 'latest.npz'
BEST_NAME = 'best.npz'
OPTIMIZERS = ('sgd', 'adam')

#: Zaremba et al. 2014, section 4.1 (and their released code, ``main.lua``): the "small"
#: (non-regularized) and "medium"/"large" (regularized) PTB configurations. ``lr_decay`` is
#: the multiplier per epoch (1/2, 1/1.2, 1/1.15), from epoch ``lr_decay_after + 1`` on.
#: ``bias_pair``: their code's two biases per LSTM layer (``i2h`` and ``h2h`` both have one),
#: which PyTorch's ``nn.LSTM`` shares; see :class:`seqdbr.wordlm.model.WordLM`.
PRESETS = {
    'small': dict(rnn_size=200, num_layers=2, dropout=0.0, init_scale=0.1, learning_rate=1.0,
                  lr_decay=0.5, lr_decay_after=4, max_epochs=13, batch_size=20, bptt=20,
                  grad_clip=5.0, bias_pair=True),
    'medium': dict(rnn_size=650, num_layers=2, dropout=0.5, init_scale=0.05, learning_rate=1.0,
                   lr_decay=1 / 1.2, lr_decay_after=6, max_epochs=39, batch_size=20, bptt=35,
                   grad_clip=5.0, bias_pair=True),
    'large': dict(rnn_size=1500, num_layers=2, dropout=0.65, init_scale=0.04, learning_rate=1.0,
                  lr_decay=1 / 1.15, lr_decay_after=14, max_epochs=55, batch_size=20, bptt=35,
                  grad_clip=10.0, bias_pair=True),
}


@dataclasses.dataclass
class TrainConfig:
    """Every option of a run (the command-line flags, with ``_`` for ``-``).

    ``preset`` ('small', 'medium', 'large' or None) fills every model/optimization option
    that is left None; without a preset the 'small' values are the defaults.

    Data: ``data`` ('ptb' or None), ``data_dir`` (folder of the PTB files; default the
    catalog cache), ``train_file``, ``valid_file``, ``test_file`` (any tokenized text,
    instead of ``data``), ``vocab_limit`` (None: every training word).

    Model: ``rnn_size``, ``num_layers``, ``dropout``, ``init_scale``, ``tied``,
    ``bias_pair`` (None: the preset's, True).
    Optimization: ``optimizer`` ('sgd' or 'adam'), ``learning_rate``, ``lr_decay`` (in
    (0, 1]), ``lr_decay_after`` (epochs), ``grad_clip`` (0 = off), ``batch_size``, ``bptt``.
    Stopping: ``max_epochs`` (the preset's by default), ``max_iters``, ``max_minutes``
    (counted in this invocation); the first rule reached stops the run.
    Other: ``eval_batch_size`` (final scoring streams, default 1), ``out``, ``seed``,
    ``device``, ``resume``, ``progress``.
    """
    preset: str = None
    data: str = None
    data_dir: str = None
    train_file: str = None
    valid_file: str = None
    test_file: str = None
    vocab_limit: int = None
    rnn_size: int = None
    num_layers: int = None
    dropout: float = None
    init_scale: float = None
    tied: bool = False
    bias_pair: bool = None
    optimizer: str = 'sgd'
    learning_rate: float = None
    lr_decay: float = None
    lr_decay_after: int = None
    grad_clip: float = None
    batch_size: int = None
    bptt: int = None
    max_epochs: int = None
    max_iters: int = None
    max_minutes: float = None
    eval_batch_size: int = 1
    out: str = 'wordlm-out'
    seed: int = 1
    device: str = 'cpu'
    resume: str = None
    progress: bool = True

    def resolved(self):
        """A copy with the preset's (or the 'small' defaults') values filled in."""
        if self.preset is not None and self.preset not in PRESETS:
            raise ConfigError('--preset must be one of %s, got %r'
                              % (', '.join(PRESETS), self.preset))
        base = PRESETS[self.preset or 'small']
        fill = {k: v for k, v in base.items() if getattr(self, k) is None}
        return dataclasses.replace(self, **fill)

    def to_json(self):
        return dataclasses.asdict(self)


#: Settings a resumed run must share with its snapshot (anything that changes the updates).
RESUME_FIXED = ('rnn_size', 'num_layers', 'dropout', 'init_scale', 'tied', 'bias_pair',
                'optimizer', 'learning_rate', 'lr_decay', 'lr_decay_after', 'grad_clip',
                'batch_size', 'bptt', 'seed', 'vocab_limit')


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` returns: ``status`` ('done', 'time budget', 'interrupted'),
    ``iteration``, ``epoch``, ``best_val_perplexity``, the final model's
    ``valid_perplexity`` and ``test_perplexity`` (None for a split that was not given or
    when interrupted), the ``latest``/``best`` checkpoint paths and the ``log`` path."""
    status: str
    iteration: int
    epoch: float
    best_val_perplexity: float
    valid_perplexity: float
    test_perplexity: float
    latest: str
    best: str
    log: str



def validate_config(cfg):
    """Check a resolved configuration's types and ranges.

    Raises:
        ConfigError: naming the flag, the value and what is accepted.
    """
    for name, lo, none_ok in (('rnn_size', 1, False), ('num_layers', 1, False),
                              ('batch_size', 1, False), ('bptt', 1, False),
                              ('lr_decay_after', 0, False), ('max_epochs', 1, True),
                              ('max_iters', 1, True), ('eval_batch_size', 1, False),
                              ('seed', 0, False), ('vocab_limit', 2, True)):
        v = getattr(cfg, name)
        if v is None and none_ok:
            continue
        if not is_int(v) or v < lo:
            extra = (' (the vocabulary always holds <unk> and <eos>)'
                     if name == 'vocab_limit' else '')
            raise ConfigError('%s must be an integer >= %d%s, got %r'
                              % (flag_name(name), lo, extra, v))
    for name in ('tied', 'bias_pair'):
        if not isinstance(getattr(cfg, name), bool):
            raise ConfigError('%s must be true or false, got %r' % (flag_name(name),
                                                                    getattr(cfg, name)))
    if cfg.optimizer not in OPTIMIZERS:
        raise ConfigError('--optimizer must be one of %s, got %r'
                          % (', '.join(OPTIMIZERS), cfg.optimizer))
    if not is_real(cfg.dropout) or not 0 <= cfg.dropout < 1:
        raise ConfigError('--dropout must be in [0, 1), got %r' % (cfg.dropout,))
    for name in ('learning_rate', 'init_scale'):
        v = getattr(cfg, name)
        if not is_real(v) or not 0 < v < math.inf:
            raise ConfigError('%s must be a positive number, got %r' % (flag_name(name), v))
    if not is_real(cfg.lr_decay) or not 0 < cfg.lr_decay <= 1:
        raise ConfigError('--lr-decay must be in (0, 1] (the rate multiplier per epoch; 1 = '
                          'no decay), got %r' % (cfg.lr_decay,))
    if not is_real(cfg.grad_clip) or not 0 <= cfg.grad_clip < math.inf:
        raise ConfigError('--grad-clip must be a number >= 0 (0 disables clipping), got %r'
                          % (cfg.grad_clip,))
    if cfg.max_minutes is not None and (not is_real(cfg.max_minutes)
                                        or not 0 < cfg.max_minutes < math.inf):
        raise ConfigError('--max-minutes must be a positive number, got %r'
                          % (cfg.max_minutes,))
    if cfg.data is not None and cfg.train_file is not None:
        raise ConfigError('--data %s and --train %s exclude each other: give the PTB corpus or '
                          'your own files, not both' % (cfg.data, cfg.train_file))
    if cfg.data is None and cfg.train_file is None:
        raise ConfigError('no corpus: pass --data ptb or --train FILE (with --valid/--test)')
    if cfg.data is not None and cfg.data != 'ptb':
        raise ConfigError("--data must be 'ptb' (other tokenized text: --train FILE), got %r"
                          % (cfg.data,))
    if cfg.train_file is None and (cfg.valid_file or cfg.test_file):
        raise ConfigError('--valid/--test go with --train; with --data ptb the splits are '
                          "PTB's own")
    if not isinstance(cfg.device, str) or not (cfg.device in ('cpu', 'gpu') or (
            cfg.device.startswith('gpu:') and cfg.device[4:].isdigit())):
        raise ConfigError("--device must be 'cpu', 'gpu' or 'gpu:N', got %r" % (cfg.device,))


def make_optimizer(cfg, model):
    """The optimizer in Zaremba's units (see the module docstring) and its LR schedule."""
    T = cfg.bptt
    if cfg.optimizer == 'sgd':
        opt = O.SGD(lr=cfg.learning_rate * T)
    else:
        opt = O.Adam(alpha=cfg.learning_rate)
    opt.setup(model)
    if cfg.grad_clip > 0:
        opt.add_hook(O.hooks.GradientClipping(cfg.grad_clip / T))
    return opt, O.ExponentialDecay(rate=cfg.lr_decay, after=cfg.lr_decay_after)


LOG_FIELDS = {'loss': 'train_loss', 'val/loss': 'val_loss', 'val/perplexity': 'val_perplexity',
              'lr': 'lr'}


class _EpochLine(Extension):
    """Prints one line per log record: epoch, train and validation perplexity, lr (Zaremba's
    units) and the wall-clock minutes of this invocation (validation included)."""
    trigger = None
    priority = 90           # after LogReport (110) wrote the record

    def __init__(self, stream, bptt, optimizer):
        self.stream, self.bptt, self.optimizer = stream, bptt, optimizer
        self._seen = 0

    def __call__(self, trainer):
        log = trainer.get_extension('LogReport').log
        if len(log) == self._seen:
            return
        self._seen = len(log)
        r = log[-1]
        lr = r.get('lr')
        if lr is not None and self.optimizer == 'sgd':
            lr = lr / self.bptt
        tl, vp = r.get('train_loss'), r.get('val_perplexity')
        print('epoch %2s  iter %6d  train ppl %8s  valid ppl %8s  lr %-8.4g  %6.1f min' % (
            r['epoch'], r['iteration'], '%.2f' % math.exp(tl) if tl is not None else 'n/a',
            '%.2f' % vp if vp is not None else 'n/a', lr if lr is not None else float('nan'),
            trainer.run_seconds / 60.0), file=self.stream, flush=True)


def build_trainer(cfg, corpus, model, out_stream):
    """Assemble the Trainer for a resolved, validated ``cfg`` (the run's whole flow).

    Returns:
        ``(trainer, meta)`` with ``meta`` the :class:`seqdbr.wordlm.checkpoint.WordLMMeta`
        extension that stores the vocabulary and model configuration in the snapshots.
    """
    opt, schedule = make_optimizer(cfg, model)
    batcher = ParallelSequentialBatcher(corpus.train, cfg.batch_size, cfg.bptt)
    updater = BPTTUpdater(batcher, opt, model, mode='window')
    settings = {flag_name(k): getattr(cfg, k) for k in RESUME_FIXED}
    fmt = ckpt_mod.snapshot_format(settings)
    stop = StopTrigger(max_iterations=cfg.max_iters, max_epochs=cfg.max_epochs,
                       max_minutes=cfg.max_minutes)
    trainer = Trainer(updater, stop_trigger=stop, out=cfg.out, snapshot_format=fmt)
    meta = ckpt_mod.WordLMMeta(corpus.vocab, model.config(), cfg.to_json())
    trainer.extend(meta)
    trainer.extend(DivergenceGuard('loss', factor=3.0))
    trainer.extend(LRScheduler(schedule))
    epoch_end = IntervalTrigger(batcher.windows_per_epoch, 'iteration', at_end=True)
    if corpus.valid is not None and corpus.valid.size >= 2:
        trainer.extend(LMEvaluator(corpus.valid, model, cfg.batch_size, cfg.bptt),
                       trigger=epoch_end)
    # the log: one record per full epoch (a stop in mid-epoch writes none, so that a
    # resumed run's log equals an uninterrupted one's; the partial sums are in the snapshot)
    trainer.extend(LogReport(LOG_FIELDS, trigger=(batcher.windows_per_epoch, 'iteration'),
                             filename=LOG_NAME, epoch='detail'))
    trainer.extend(_EpochLine(out_stream, cfg.bptt, cfg.optimizer))
    trainer.extend(ProgressBar(cfg.batch_size * cfg.bptt, unit='words', quiet=not cfg.progress))
    if corpus.valid is not None and corpus.valid.size >= 2:
        trainer.extend(snapshot(BEST_NAME), trigger=MinValueTrigger('val/loss'))
    trainer.extend(snapshot(LATEST_NAME), trigger=epoch_end)
    return trainer, meta


def _final_scores(model, corpus, cfg):
    out = {}
    for split in ('valid', 'test'):
        ids = getattr(corpus, split)
        if ids is None or ids.size < 2:
            out[split] = None
            continue
        model.reset_state()
        out[split] = evaluate_tokens(model, ids, cfg.eval_batch_size,
                                     max(cfg.bptt, 100 // cfg.eval_batch_size or 1)).perplexity
    model.reset_state()
    return out


def train(config, out_stream=None):
    """Run a training job (see the module docstring).

    Args:
        config (TrainConfig): the options (None values come from the preset).
        out_stream: where the summary lines go (default ``sys.stdout``).

    Returns:
        TrainResult.

    Raises:
        ConfigError: invalid options, a corpus too small for one batch, a resume snapshot of
            another configuration.
        seqdbr.datasets.corpora.CorpusError: unreadable corpus files (missing, wrong
            encoding).
        ValueError: a corpus without words.
        seqdbr.training.SnapshotError: an unreadable or foreign ``resume`` snapshot.
        seqdbr.training.TrainingDiverged: the loss became NaN/inf or exploded.
    """
    p_stream = sys.stdout if out_stream is None else out_stream

    def p(*a):
        print(*a, file=p_stream, flush=True)

    stored = None
    if config.resume is not None:
        stored = ckpt_mod.read_train_config(config.resume)
        config = _merge_resume(config, stored)
    cfg = config.resolved()
    validate_config(cfg)
    vocab = None if stored is None else ckpt_mod.load_checkpoint(cfg.resume).vocab
    corpus = load_data(cfg, vocab=vocab)
    seeding.seed(cfg.seed)
    model = WordLM(len(corpus.vocab), cfg.rnn_size, cfg.num_layers, cfg.dropout,
                   cfg.init_scale, cfg.tied, cfg.bias_pair)
    trainer, _ = build_trainer(cfg, corpus, model, p_stream)
    if cfg.resume is not None:
        trainer.resume(cfg.resume)
    if cfg.device != 'cpu':
        try:
            model.to_device(cfg.device)
        except (RuntimeError, ValueError) as e:
            raise ConfigError('--device %s: %s' % (cfg.device, e)) from None
    b = trainer.updater.batcher
    p('corpus: %s; vocabulary %d words; train %s / valid %s / test %s tokens'
      % (corpus.source, len(corpus.vocab), '{:,}'.format(corpus.train.size),
         '-' if corpus.valid is None else '{:,}'.format(corpus.valid.size),
         '-' if corpus.test is None else '{:,}'.format(corpus.test.size)))
    p('model: %d x %d LSTM%s%s, dropout %g, %s parameters; %s lr %g (decay %g after epoch %d), '
      'clip %g, batch %d, bptt %d; %d windows per epoch'
      % (cfg.num_layers, cfg.rnn_size, ', tied' if cfg.tied else '',
         ', bias pair' if cfg.bias_pair else ', one bias', cfg.dropout,
         '{:,}'.format(model.count_params()), cfg.optimizer, cfg.learning_rate, cfg.lr_decay,
         cfg.lr_decay_after, cfg.grad_clip, cfg.batch_size, cfg.bptt, b.windows_per_epoch))
    if cfg.resume is not None:
        p('resumed %s at iteration %d (epoch %.2f)' % (cfg.resume, b.iteration, b.epoch_detail))
    status = trainer.run()
    best = os.path.join(cfg.out, BEST_NAME)
    latest = os.path.join(cfg.out, LATEST_NAME)
    scores = {'valid': None, 'test': None}
    if status != 'interrupted':
        scores = _final_scores(model, corpus, cfg)
        p('final model: valid perplexity %s, test perplexity %s (%d stream(s))'
          % (_fmt(scores['valid']), _fmt(scores['test']), cfg.eval_batch_size))
    log = trainer.get_extension('LogReport').log
    vals = [r['val_perplexity'] for r in log if r.get('val_perplexity') is not None]
    return TrainResult(status=status, iteration=b.iteration, epoch=b.epoch_detail,
                       best_val_perplexity=min(vals) if vals else None,
                       valid_perplexity=scores['valid'], test_perplexity=scores['test'],
                       latest=latest, best=best if os.path.exists(best) else None,
                       log=os.path.join(cfg.out, LOG_NAME))


def _fmt(v):
    return 'n/a' if v is None else '%.2f' % v


def _merge_resume(cfg, stored):
    """The resumed run's configuration: the stored one, except the stop rules (when any is
    given, the given ones replace all three), the output folder (default: the checkpoint's
    folder), ``device``, ``progress``, ``data_dir`` and ``eval_batch_size`` from ``cfg``.
    The options that change the updates (:data:`RESUME_FIXED`) are checked against the
    snapshot's settings when the trainer loads it."""
    merged = dict(stored)
    merged.setdefault('bias_pair', False)   # checkpoints written before the option: one bias
    default = TrainConfig()
    conflicts = ['%s %r (the checkpoint has %r)' % (flag_name(k), getattr(cfg, k), stored.get(k))
                 for k in RESUME_FIXED + ('preset', 'data', 'train_file', 'vocab_limit')
                 if getattr(cfg, k) != getattr(default, k) and getattr(cfg, k) != stored.get(k)]
    if conflicts:
        raise ConfigError('--resume %s continues that run exactly, so these options cannot '
                          'change: %s. Drop them, or start a new run' % (cfg.resume,
                                                                      '; '.join(conflicts)))
    stops = ('max_epochs', 'max_iters', 'max_minutes')
    if any(getattr(cfg, k) is not None for k in stops):
        merged.update({k: getattr(cfg, k) for k in stops})
    for k in ('device', 'progress', 'data_dir', 'eval_batch_size', 'out'):
        if getattr(cfg, k) != getattr(default, k):
            merged[k] = getattr(cfg, k)
    if cfg.out == default.out:
        merged['out'] = os.path.dirname(os.path.abspath(cfg.resume))
    merged['resume'] = cfg.resume
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in merged.items() if k in known})
