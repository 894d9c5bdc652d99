"""Command-line front ends of the char-RNN application.

Installed as console scripts (see ``pyproject.toml``) and wrapped by ``scripts/*.py``:

``seqdbr-train-charrnn`` -> :func:`train_main`
    Train a model (flags are karpathy/char-rnn's names, spelled with hyphens).
``seqdbr-sample-charrnn CKPT`` -> :func:`sample_main`
    Generate text from a checkpoint; the text streams to stdout (UTF-8).
``seqdbr-eval-charrnn CKPT`` -> :func:`eval_main`
    Report loss (nats/char), bits/char and perplexity on a corpus split.

Each ``*_main(argv=None)`` returns the process exit status: 0 on success, 1 when a run
failed (an unusable corpus or checkpoint, a diverged run), 2 for invalid options (also
argparse's status), 128 + signal number when training was stopped by SIGINT/SIGTERM after
writing its checkpoint, 141 (128 + SIGPIPE) when the reader of stdout went away (e.g.
``seqdbr-sample-charrnn CKPT | head``; the trainer instead keeps training and stops printing).
Errors are printed as one ``error: ...`` message on stderr that says what is wrong and how to
fix it, never as a traceback.
"""
import argparse
import dataclasses
import io
import json
import os
import sys

from seqdbr.charlm.errors import CharLMError, ConfigError

__all__ = ['train_main', 'sample_main', 'eval_main', 'build_train_parser',
           'build_sample_parser', 'build_eval_parser']


def _user_errors():
    from seqdbr.charlm.vocab import UnknownCharacterError
    from seqdbr.core.dirlock import DirectoryLockedError
    from seqdbr.datasets.corpora import CorpusError
    from seqdbr.datasets.download import DownloadError
    return (CharLMError, CorpusError, UnknownCharacterError, DownloadError,
            DirectoryLockedError)


def _fail(prog, exc):
    code = 2 if isinstance(exc, ConfigError) else 1
    print('%s: error: %s' % (prog, exc), file=sys.stderr, flush=True)
    return code


#: Exit status when stdout is a pipe whose reader has gone away (128 + SIGPIPE).
EXIT_BROKEN_PIPE = 141


def _stdout_gone():
    """stdout's reader has gone away (``... | head``): point file descriptor 1 at /dev/null so
    that the interpreter's final flush cannot fail again, and return the exit status."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass
    return EXIT_BROKEN_PIPE


def _int_at_least(minimum):
    """argparse type: an integer >= ``minimum``."""
    def parse(text):
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError('expected an integer, got %r' % text) from None
        if v < minimum:
            raise argparse.ArgumentTypeError('must be >= %d, got %d' % (minimum, v))
        return v
    return parse


_positive_int = _int_at_least(1)
_nonneg_int = _int_at_least(0)


def _float(text):
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError('expected a number, got %r' % text) from None


# -----------------------------------------------------------------------------------------------
# train

def build_train_parser():
    """The ``seqdbr-train-charrnn`` argument parser (defaults are None so that the flags the
    user gave can be told apart; :class:`~seqdbr.charlm.train.TrainConfig` holds the real
    defaults)."""
    from seqdbr.charlm.train import TrainConfig
    d = TrainConfig()
    ap = argparse.ArgumentParser(
        prog='seqdbr-train-charrnn',
        description='Train a character-level LSTM/GRU language model (truncated BPTT on '
                    'parallel streams). Writes OUT/latest.npz, OUT/best.npz, OUT/log.jsonl '
                    'and OUT/loss.png.',
        argument_default=None)
    _add_model_args(ap, d)
    _add_data_args(ap, d)
    _add_optimization_args(ap, d)
    _add_stopping_args(ap, d)
    return ap


def _add_model_args(ap, d):
    """The model options. (``d``: the default TrainConfig.)"""
    m = ap.add_argument_group('model')
    m.add_argument('--model', choices=('lstm', 'gru'), help='cell type (default %s)' % d.model)
    m.add_argument('--rnn-size', type=_positive_int,
                   help='hidden units per layer, also the embedding size (default %d)'
                   % d.rnn_size)
    m.add_argument('--num-layers', type=_positive_int,
                   help='stacked recurrent layers (default %d)' % d.num_layers)
    m.add_argument('--dropout', type=_float,
                   help='dropout between layers and before the output layer, in [0, 1) '
                        '(default %g)' % d.dropout)
    m.add_argument('--forget-bias', type=_float,
                   help='initial forget-gate bias of the LSTM layers (default %g; 0 trained '
                        'faster than 1 in our measurements, see CharRNN)' % d.forget_bias)
    m.add_argument('--impl', choices=('nstep', 'stepwise'),
                   help='nstep: fused whole-window layers (fast); stepwise: one L.LSTM step '
                        'at a time. Same model and checkpoints (default %s)' % d.impl)


def _add_data_args(ap, d):
    """The corpus options. (``d``: the default TrainConfig.)"""
    g = ap.add_argument_group('data')
    g.add_argument('--corpus',
                   help="catalog name (see corpora/README.md), a UTF-8 text file, or 'pydoc' "
                        '(built in, no download; default %s)' % d.corpus)
    g.add_argument('--encoding', choices=('utf-8', 'bytes'),
                   help='model Unicode characters or raw bytes (default %s)' % d.encoding)
    g.add_argument('--train-frac', type=_float,
                   help='fraction of the corpus (from its start) used for training '
                        '(default 0.95, or the corpus\'s predefined splits)')
    g.add_argument('--val-frac', type=_float,
                   help='fraction after the training part used for validation (default 0.05; '
                        'train + val <= 1, the rest is the test split)')


def _add_optimization_args(ap, d):
    """The optimizer options. (``d``: the default TrainConfig.)"""
    o = ap.add_argument_group('optimization')
    o.add_argument('--seq-length', type=_positive_int,
                   help='BPTT window length in characters (default %d)' % d.seq_length)
    o.add_argument('--batch-size', type=_positive_int,
                   help='parallel streams per batch (default %d)' % d.batch_size)
    o.add_argument('--optimizer', choices=('adam', 'rmsprop', 'sgd'),
                   help='default %s' % d.optimizer)
    o.add_argument('--learning-rate', type=_float, help='default %g' % d.learning_rate)
    o.add_argument('--lr-decay', type=_float,
                   help='learning-rate multiplier per epoch once decay starts (default %g)'
                   % d.lr_decay)
    o.add_argument('--lr-decay-after', type=_nonneg_int,
                   help='epochs before the decay starts (default %d)' % d.lr_decay_after)
    o.add_argument('--grad-clip', type=_float,
                   help='clip the global L2 norm of the gradients to this (0: off; default %g)'
                   % d.grad_clip)


def _add_stopping_args(ap, d):
    """Stopping, output, resume and bookkeeping options. (``d``: the default TrainConfig.)"""
    s = ap.add_argument_group('stopping and bookkeeping')
    s.add_argument('--max-epochs', type=_positive_int,
                   help='stop after this many epochs (default %d when no other limit is '
                        'given)' % 50)
    s.add_argument('--max-iters', type=_positive_int,
                   help='stop after this many iterations in total (counted across resumes)')
    s.add_argument('--max-minutes', type=_float,
                   help='stop after this many minutes of wall-clock time in this invocation')
    s.add_argument('--eval-every', type=_positive_int,
                   help='iterations between validation passes (default: once per epoch)')
    s.add_argument('--checkpoint-every', type=_positive_int,
                   help='iterations between writes of OUT/latest.npz (default: --eval-every)')
    s.add_argument('--out', help='output folder (default %s; with --resume, the '
                                 "checkpoint's folder)" % d.out)
    s.add_argument('--seed', type=_nonneg_int, help='seed of the weights and dropout (default '
                                                     '%d)' % d.seed)
    s.add_argument('--device', help="'cpu' (default), 'gpu' or 'gpu:N'")
    s.add_argument('--resume', metavar='CKPT',
                   help='continue the run saved in CKPT exactly (options come from CKPT; the '
                        'stopping, bookkeeping and --device/--impl/--corpus options may be '
                        'given)')
    s.add_argument('--init-from', metavar='CKPT',
                   help='start a new run from the weights and vocabulary of CKPT')
    s.add_argument('--overwrite', action='store_true',
                   help='let a new run replace an earlier run in --out (it is replaced only '
                        'once the new run has written its first checkpoint); without it such '
                        'a folder is refused')
    s.add_argument('--no-progress', action='store_true',
                   help='no progress bar (evaluation lines are still printed)')


def _train_config_from_args(args):
    from seqdbr.charlm.train import TrainConfig
    values = {}
    explicit = set()
    for name in ('model', 'rnn_size', 'num_layers', 'dropout', 'forget_bias', 'impl', 'corpus',
                 'encoding', 'train_frac', 'val_frac', 'seq_length', 'batch_size', 'optimizer',
                 'learning_rate', 'lr_decay', 'lr_decay_after', 'grad_clip', 'max_epochs',
                 'max_iters', 'max_minutes', 'eval_every', 'checkpoint_every', 'out', 'seed',
                 'device', 'resume', 'init_from'):
        v = getattr(args, name)
        if v is not None:
            values[name] = v
            explicit.add(name)
    if args.no_progress:
        values['progress'] = False
        explicit.add('progress')
    if args.overwrite:
        values['overwrite'] = True
        explicit.add('overwrite')
    return TrainConfig(**values), explicit


def train_main(argv=None):
    """``seqdbr-train-charrnn``: parse ``argv`` (default ``sys.argv[1:]``), train, return the
    exit status (see the module docstring).

    Under ``mpiexec -n N`` (N > 1, read from the launcher's environment) the run is
    data-parallel automatically: the N processes train one model, the global batch stays
    ``--batch-size`` (which must be a multiple of N), rank 0 prints and writes. A failure on
    any rank prints its message once and ends every rank through ``MPI_Abort`` with the
    status above (:mod:`seqdbr.distributed.failure`). With ``--device gpu`` (or ``gpu:N``)
    each process uses GPU ``intra_rank`` of its host and gradients are reduced by NCCL.
    """
    from seqdbr.charlm.train import train
    from seqdbr.distributed import launcher_world
    size, rank = launcher_world()
    ap = build_train_parser()
    args = _parse_quiet(ap, argv) if rank != 0 else ap.parse_args(argv)
    cfg, explicit = _train_config_from_args(args)
    comm = None
    if size > 1:
        gpu = (cfg.device or 'cpu').startswith('gpu')
        comm = _communicator(ap.prog, rank, gpu)
        if isinstance(comm, int):
            return comm
        if gpu:                          # one GPU per process: this host's rank picks it
            cfg = dataclasses.replace(cfg, device='gpu:%d' % comm.intra_rank)
    try:
        result = train(cfg, explicit=explicit, comm=comm)
    except _user_errors() as e:
        if comm is not None:
            _abort(comm, 2 if isinstance(e, ConfigError) else 1, '%s: error: %s' % (ap.prog, e))
        return _fail(ap.prog, e)
    except BrokenPipeError:
        return _stdout_gone()
    except KeyboardInterrupt as e:
        # A repeated signal gave up at once (writes are atomic, so the previous checkpoint
        # file is intact), or Ctrl-C before training started. The status is the first
        # signal's (SIGTERM twice: 143).
        msg = ('%s: interrupted; no new checkpoint was completed (the previous one, if any, '
               'is intact)' % ap.prog)
        if comm is not None:
            _abort(comm, 128 + int(getattr(e, 'signum', 2)), msg)
        print(msg, file=sys.stderr, flush=True)
        return 128 + int(getattr(e, 'signum', 2))
    if result.status == 'interrupted':
        return 128 + int(result.signal or 2)
    return 0


def _parse_quiet(ap, argv):
    """Parse on a non-root rank: a usage error is printed by rank 0 only."""
    saved = sys.stderr
    sys.stderr = io.StringIO()
    try:
        return ap.parse_args(argv)
    finally:
        sys.stderr = saved


def _communicator(prog, rank, gpu):
    """The job's communicator (NCCL for ``gpu``) with the abort hook installed, or an exit
    status (2) when mpi4py, or the GPU set-up, is missing (said once, by rank 0)."""
    from seqdbr.distributed import MPIUnavailableError, create_communicator, install_abort_hook
    try:
        comm = create_communicator(device='gpu' if gpu else 'cpu')
    except MPIUnavailableError as e:
        if rank == 0:
            print('%s: error: launched by an MPI launcher with several processes, but %s'
                  % (prog, e), file=sys.stderr, flush=True)
        return 2
    except RuntimeError as e:         # GPU set-up; MPI is up: end every rank
        import types
        from seqdbr.distributed import abort, import_mpi
        world = import_mpi().COMM_WORLD
        abort(types.SimpleNamespace(rank=rank, size=world.Get_size(), mpi_comm=world), 2,
              '%s: error: --device gpu with several processes: %s' % (prog, e))
    install_abort_hook(comm)
    return comm


def _abort(comm, code, message):
    from seqdbr.distributed import abort
    abort(comm, code, message)


# -----------------------------------------------------------------------------------------------
# sample

def build_sample_parser():
    """The ``seqdbr-sample-charrnn`` argument parser."""
    ap = argparse.ArgumentParser(
        prog='seqdbr-sample-charrnn',
        description='Generate text from a char-RNN checkpoint. The prime and the new '
                    'characters stream to stdout as UTF-8.')
    ap.add_argument('checkpoint', metavar='CKPT', help='a .npz written by the trainer')
    ap.add_argument('--length', type=_nonneg_int, default=2000,
                    help='new characters to generate per sample (default 2000)')
    ap.add_argument('--temperature', type=_float, default=1.0,
                    help='>= 0; lower is more conservative, 0 equals --argmax (default 1)')
    ap.add_argument('--top-k', type=_positive_int, default=None,
                    help='sample only among the k most likely characters')
    pr = ap.add_mutually_exclusive_group()
    pr.add_argument('--prime', default='', help='text the output starts with')
    pr.add_argument('--prime-file', help='read the prime from this UTF-8 file (exactly, '
                                         'including line endings; one leading BOM is '
                                         'dropped). For a bytes model (--encoding bytes) '
                                         'the raw bytes are used as they are')
    ap.add_argument('--seed', type=_nonneg_int, default=None,
                    help='sampling seed; the same seed gives the same text (default: random, '
                         'printed on stderr)')
    ap.add_argument('--argmax', action='store_true',
                    help='always take the most likely character')
    ap.add_argument('--num-samples', type=_positive_int, default=1,
                    help='independent samples, each starting from the prime (default 1)')
    ap.add_argument('--device', default='cpu', help="'cpu' (default), 'gpu' or 'gpu:N'")
    ap.add_argument('--unknown', choices=('error', 'skip'), default='error',
                    help='prime characters outside the vocabulary: error (default) lists '
                         'them; skip drops them from what the model reads')
    ap.add_argument('--impl', choices=('nstep', 'stepwise'), default=None,
                    help='layer implementation (default: the one it was trained with)')
    return ap


def _stdout_writer(bytes_mode):
    """A stream for the sampler: UTF-8 text (char vocabularies) or raw bytes."""
    buf = getattr(sys.stdout, 'buffer', None)
    if bytes_mode:
        return buf if buf is not None else sys.stdout
    if buf is None:
        return sys.stdout
    sys.stdout.flush()
    return io.TextIOWrapper(buf, encoding='utf-8', errors='strict', newline='',
                            write_through=True)


def _read_prime_file(path, bytes_mode=False):
    """The prime in a file: str (UTF-8, one leading BOM dropped) or, for a bytes
    vocabulary, the raw bytes."""
    from seqdbr.charlm.errors import SamplingError
    try:
        with open(path, 'rb') as f:
            raw = f.read()
    except OSError as e:
        raise SamplingError('cannot read --prime-file %s: %s' % (path, e)) from None
    if bytes_mode:
        return raw
    if raw.startswith(b'\xef\xbb\xbf'):
        raw = raw[3:]
    try:
        return raw.decode('utf-8')
    except UnicodeDecodeError as e:
        raise SamplingError('--prime-file %s is not valid UTF-8 (byte offset %d); re-encode it '
                            'to UTF-8' % (path, e.start)) from None


def _command_line_prime(prime, bytes_mode):
    """The ``--prime`` text as the model needs it.

    On POSIX, command-line bytes that are not valid UTF-8 reach Python as lone surrogates
    (``surrogateescape``). A bytes vocabulary gets those original bytes back; a character
    vocabulary cannot use them, and the error says so (instead of listing U+DCxx "characters"
    that were never typed, or failing with a traceback when they are written out).
    """
    from seqdbr.charlm.errors import SamplingError
    try:
        prime.encode('utf-8')
        return prime.encode('utf-8') if bytes_mode else prime
    except UnicodeEncodeError:
        pass
    try:
        raw = os.fsencode(prime)
    except UnicodeEncodeError:
        raw = None
    if bytes_mode and raw is not None:
        return raw
    where = ''
    if raw is not None:
        try:
            raw.decode('utf-8')
        except UnicodeDecodeError as e:
            where = ' (byte offset %d)' % e.start
    raise SamplingError('--prime is not valid UTF-8%s; this model reads UTF-8 text. Use a '
                        'UTF-8 terminal/locale, or put the prime in a UTF-8 file and pass '
                        '--prime-file' % where)


def sample_main(argv=None):
    """``seqdbr-sample-charrnn``: parse ``argv``, stream the sample(s) to stdout, return the
    exit status."""
    import numpy
    from seqdbr.charlm.checkpoint import load_checkpoint
    from seqdbr.charlm.errors import SamplingError
    from seqdbr.charlm.sample import check_sampling_options, encode_prime, sample
    ap = build_sample_parser()
    args = ap.parse_args(argv)
    try:
        check_sampling_options(args.temperature, args.top_k)
    except SamplingError as e:
        return _fail(ap.prog, ConfigError(str(e)))    # an invalid option: status 2
    try:
        ck = load_checkpoint(args.checkpoint)
        ck.check_finite()
        vocab = ck.vocab
        bytes_mode = vocab.mode == 'bytes'
        if args.prime_file is None:
            prime = _command_line_prime(args.prime, bytes_mode)
        else:
            prime = _read_prime_file(args.prime_file, bytes_mode)
        encode_prime(vocab, prime, args.unknown)      # unknown characters: fail before output
        try:
            model = ck.build_model(impl=args.impl, device=args.device)
        except (RuntimeError, ValueError) as e:
            if isinstance(e, CharLMError):
                raise
            raise SamplingError('--device %s: %s' % (args.device, e)) from None
        seed = args.seed
        if seed is None and args.length > 0 and not (args.argmax or args.temperature == 0):
            seed = int(numpy.random.SeedSequence().entropy % (2 ** 32))
            print('sampling seed: %d (pass --seed %d to repeat this text)' % (seed, seed),
                  file=sys.stderr, flush=True)
        rng = numpy.random.default_rng(seed)
        out = _stdout_writer(vocab.mode == 'bytes')
        newline = b'\n' if vocab.mode == 'bytes' else '\n'
        try:
            for i in range(args.num_samples):
                if args.num_samples > 1:
                    header = '--- sample %d/%d ---\n' % (i + 1, args.num_samples)
                    out.write(header.encode() if vocab.mode == 'bytes' else header)
                sample(model, vocab, args.length, prime=prime, temperature=args.temperature,
                       top_k=args.top_k, argmax=args.argmax, rng=rng, unknown=args.unknown,
                       out=out)
                out.write(newline)
                out.flush()
        finally:
            if isinstance(out, io.TextIOWrapper) and out is not sys.stdout:
                try:
                    out.flush()
                except BrokenPipeError:
                    pass
                out.detach()        # keep sys.stdout's buffer open
    except _user_errors() as e:
        return _fail(ap.prog, e)
    except BrokenPipeError:
        return _stdout_gone()
    return 0


# -----------------------------------------------------------------------------------------------
# eval

def build_eval_parser():
    """The ``seqdbr-eval-charrnn`` argument parser."""
    ap = argparse.ArgumentParser(
        prog='seqdbr-eval-charrnn',
        description='Evaluate a char-RNN checkpoint: loss in nats/char, bits/char and '
                    'perplexity over a corpus split (a full deterministic pass). Prints JSON.')
    ap.add_argument('checkpoint', metavar='CKPT', help='a .npz written by the trainer')
    ap.add_argument('--corpus', default=None,
                    help="catalog name, file path or 'pydoc' (default: the checkpoint's "
                         'training corpus)')
    ap.add_argument('--split', choices=('train', 'val', 'test', 'all'), default=None,
                    help="which part: the checkpoint's --train-frac/--val-frac split of the "
                         "corpus (or its predefined splits), or 'all'. Default: held-out text, "
                         "i.e. for the text the checkpoint was trained on its test split, or "
                         "its val split when the test split is empty (as with the default "
                         "fractions); all for any other text given with --corpus. The split "
                         "used is printed on stderr and in the JSON")
    ap.add_argument('--encoding', choices=('utf-8', 'bytes'), default=None,
                    help="default: the checkpoint's")
    ap.add_argument('--batch-size', type=_positive_int, default=None,
                    help="parallel streams (default: the checkpoint's)")
    ap.add_argument('--seq-length', type=_positive_int, default=None,
                    help="window length (default: the checkpoint's)")
    ap.add_argument('--unknown', choices=('error', 'skip'), default='error',
                    help='characters outside the vocabulary: error (default) or skip')
    ap.add_argument('--device', default='cpu', help="'cpu' (default), 'gpu' or 'gpu:N'")
    return ap


def eval_main(argv=None):
    """``seqdbr-eval-charrnn``: parse ``argv``, evaluate, print one JSON object, return the
    exit status."""
    from seqdbr.charlm.checkpoint import load_checkpoint
    from seqdbr.charlm.evaluate import evaluate_split
    ap = build_eval_parser()
    args = ap.parse_args(argv)
    try:
        ck = load_checkpoint(args.checkpoint)
        ck.check_finite()
        report = evaluate_split(ck, corpus=args.corpus, split=args.split,
                                encoding=args.encoding, batch_size=args.batch_size,
                                seq_length=args.seq_length, unknown=args.unknown,
                                device=args.device)
    except _user_errors() as e:
        return _fail(ap.prog, e)
    if 'split_reason' in report:
        print('%s: evaluating the %s split (%s); pass --split to choose'
              % (ap.prog, report['split'], report['split_reason']), file=sys.stderr, flush=True)
    try:
        print(json.dumps(report, indent=2), flush=True)
    except BrokenPipeError:
        return _stdout_gone()
    return 0
