#!/usr/bin/env python
"""Train a 784-1000-1000-10 ReLU MLP (or, with --arch cnn, a small CNN) on MNIST with Adam.

Thin front end: the logic (model, loop, checkpoint layout, log format) lives in
``seqdbr.examples.mnist``; see its docstring. Examples::

    python scripts/train_mnist.py                       # 20 epochs on the CPU -> result/
    python scripts/train_mnist.py --epochs 3 --out run1 --dot
    python scripts/train_mnist.py --epochs 5 --out run1 --resume   # continue run1 exactly
    python scripts/train_mnist.py --device gpu
    python scripts/train_mnist.py --arch cnn --units 128 --epochs 3   # >= 99% test accuracy
    mpiexec -n 2 python scripts/train_mnist.py --epochs 3   # 2 processes, one model

Outputs in --out: log.jsonl (one JSON line per epoch), checkpoint.npz (model, optimizer,
iterator and metadata in one file, rewritten atomically each epoch), graph.dot (--dot).

Exit status: 0 on success; 1 for an unusable setting, data or checkpoint (one ``error:``
line on stderr, no traceback); 2 for invalid options; 130 after Ctrl-C (the checkpoint of
the last completed epoch is intact: continue with --resume).

Under ``mpiexec -n N`` (N > 1) the processes train one model (``seqdbr.distributed``): the
global batch stays --batchsize (a multiple of N), each process trains its slice of it and
scores its share of the test set, rank 0 prints and writes; an error on any rank is printed
once and ends every rank with the status above.
"""
import argparse
import dataclasses
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

from seqdbr.examples import mnist  # noqa: E402


class _DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: X)`` only for options that have a real default (not None, not a
    flag's False); those options describe their default in their own help text."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def build_parser():
    d = mnist.MnistConfig()
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=_DefaultsHelpFormatter)
    p.add_argument('--epochs', '-e', type=int, default=d.epochs,
                   help='train until this many epochs are done (3 already give >= 97.5%%)')
    p.add_argument('--arch', choices=mnist.ARCHS, default=d.arch,
                   help='mlp: 3 linear layers; cnn: 2 conv+pool blocks and 2 linear layers')
    p.add_argument('--units', '-u', type=int, default=d.units, help='hidden layer width')
    p.add_argument('--batchsize', '-b', type=int, default=d.batchsize, help='minibatch size')
    p.add_argument('--device', '-d', default=d.device, help="'cpu', 'gpu' or 'gpu:N'")
    p.add_argument('--out', '-o', default=d.out, help='output folder')
    p.add_argument('--resume', action='store_true',
                   help='continue exactly from OUT/checkpoint.npz')
    p.add_argument('--data-dir', default=None,
                   help='folder with the four MNIST .gz files (default: $SEQDBR_DATA/mnist '
                        'or ~/.cache/seqdbr/mnist, downloading missing files)')
    p.add_argument('--dot', action='store_true',
                   help='write the DOT graph of the loss to OUT/graph.dot')
    p.add_argument('--seed', type=int, default=d.seed,
                   help='seed of the weight initializers and of the shuffling')
    p.add_argument('--alpha', type=float, default=d.alpha, help="Adam's step size")
    p.add_argument('--train-size', type=int, default=None,
                   help='use only the first N training examples (quick checks)')
    p.add_argument('--test-size', type=int, default=None,
                   help='use only the first N test examples (quick checks)')
    p.add_argument('--overwrite', action='store_true',
                   help='let a new run replace an earlier run in --out (without it such a '
                        'folder is refused; use --resume to continue it)')
    p.add_argument('--max-iters', type=int, default=None,
                   help='also stop after this many iterations in total (resumable mid-epoch)')
    p.add_argument('--no-progress', action='store_true', help='no progress bar')
    return p


def config_from_args(args):
    return mnist.MnistConfig(epochs=args.epochs, units=args.units, batchsize=args.batchsize,
                             device=args.device, out=args.out, resume=args.resume,
                             data_dir=args.data_dir, dot=args.dot, seed=args.seed,
                             alpha=args.alpha, train_size=args.train_size,
                             test_size=args.test_size, max_iters=args.max_iters,
                             overwrite=args.overwrite, progress=not args.no_progress,
                             arch=args.arch)


def _fail(prog, error):
    print('%s: error: %s' % (prog, error), file=sys.stderr, flush=True)
    return 1


def main(argv=None):
    from seqdbr.distributed import launcher_world
    size, rank = launcher_world()
    parser = build_parser()
    if rank != 0:                          # usage errors are printed by rank 0
        sys.stderr, saved = open(os.devnull, 'w'), sys.stderr
        try:
            args = parser.parse_args(argv)
        finally:
            sys.stderr = saved
    else:
        args = parser.parse_args(argv)
    config = config_from_args(args)
    try:
        config.validate()
    except ValueError as e:
        if rank != 0:
            return 2
        parser.error(str(e))
    comm = None
    if size > 1:
        from seqdbr import distributed as D
        try:
            comm = D.create_communicator()
        except D.MPIUnavailableError as e:
            if rank == 0:
                _fail(parser.prog, e)
            return 2
        D.install_abort_hook(comm)
        if rank != 0:
            config = dataclasses.replace(config, verbose=False, progress=False)
    if rank == 0:
        print(mnist.describe(config) + ('' if comm is None else ', %d processes' % comm.size),
              flush=True)
    from seqdbr.datasets.download import DownloadError
    try:
        run = mnist.train(config) if comm is None else mnist.train(config, comm=comm)
    except (DownloadError, ValueError, OSError) as e:
        # The documented user errors of mnist.train: MNIST missing and not downloadable, a
        # checkpoint made with other settings or corrupt (SerializationError is a
        # ValueError), --resume without a checkpoint, bad MNIST files, an unwritable --out.
        if comm is not None:
            D.abort(comm, 1, '%s: error: %s' % (parser.prog, e))
        return _fail(parser.prog, e)
    except KeyboardInterrupt:
        msg = ('%s: interrupted; the last checkpoint (if any) is intact in %s: continue with '
               '--resume' % (parser.prog, config.out))
        if comm is not None:
            D.abort(comm, 130, msg)
        print(msg, file=sys.stderr, flush=True)
        return 130
    if run.status == 'interrupted':
        if rank == 0:
            print('%s: interrupted at iteration %d; wrote %s: continue with --resume'
                  % (parser.prog, run.optimizer.t, os.path.join(run.out, mnist.CHECKPOINT)),
                  file=sys.stderr, flush=True)
        return 128 + run.signal
    if run.log and rank == 0:
        last = run.log[-1]
        print('final: epoch %d, test accuracy %.4f; outputs in %s'
              % (last['epoch'], last['test_accuracy'], run.out))
    return 0


if __name__ == '__main__':
    sys.exit(main())
