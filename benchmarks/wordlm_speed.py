"""Word-LM training speed: seqdbr's ``WordLM`` against the same PyTorch model, interleaved.

One window = the program's update (:class:`seqdbr.training.BPTTUpdater` path:
``seqdbr.rnn.bptt.bptt_update``): embedding (V, H) -> 2-layer LSTM -> Linear(H, V) ->
softmax cross-entropy over the B x T window -> backward -> global-norm clipping -> SGD, the
state carried and cut between windows; random ids (speed does not depend on the text).
PyTorch (``anchors/torch_wordlm.py --worker``): ``nn.Embedding + nn.LSTM(batch_first) +
nn.Linear``, ``clip_grad_norm_``, the same SGD step. Configurations: Zaremba's ``small``
(H=200, T=20) and ``medium`` (H=650, T=35, dropout 0.5), B=20, V=10,000. Workers run one
at a time in round-robin (``interleave.py``), so each sees the same machine load; reported:
median training tokens/s (wall and process CPU) and the ratio seqdbr / PyTorch per preset.

    python benchmarks/wordlm_speed.py [--presets small medium] [--rounds 7] [--per-turn 3]
        [--threads 1] [--torch-python PATH] [--seqdbr-openblas-coretype auto|inherit]
"""
import argparse
import os
import sys

import numpy

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH_DIR)
sys.path.insert(0, os.path.join(BENCH_DIR, os.pardir))

import common  # noqa: E402
import interleave  # noqa: E402

DEFAULT_TORCH = os.environ.get('TORCH_PY', '/work/wt/_torchvenv/bin/python')
PRESETS = {'small': dict(H=200, T=20, dropout=0.0, init=0.1),
           'medium': dict(H=650, T=35, dropout=0.5, init=0.05)}


def worker(args):
    import seqdbr
    from seqdbr.rnn.bptt import bptt_update
    from seqdbr.wordlm.model import WordLM
    from seqdbr.wordlm.train import TrainConfig, make_optimizer
    c = PRESETS[args.worker]
    seqdbr.seed(args.seed)
    model = WordLM(args.vocab, c['H'], 2, c['dropout'], c['init'])
    cfg = TrainConfig(preset=args.worker).resolved()
    opt, _ = make_optimizer(cfg, model)
    rng = numpy.random.default_rng(args.seed)
    wins = [(rng.integers(0, args.vocab, (args.batchsize, c['T'])).astype(numpy.int32),
             rng.integers(0, args.vocab, (args.batchsize, c['T'])).astype(numpy.int32))
            for _ in range(8)]

    def window(i):
        x, t = wins[i % len(wins)]
        bptt_update(model, opt, x, t)

    interleave.serve(window, args.warmup)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--worker', help=argparse.SUPPRESS)
    p.add_argument('--presets', nargs='+', choices=sorted(PRESETS), default=['small', 'medium'])
    p.add_argument('--batchsize', type=int, default=20)
    p.add_argument('--vocab', type=int, default=10000)
    p.add_argument('--rounds', type=int, default=7)
    p.add_argument('--per-turn', type=int, default=3)
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--torch-python', default=DEFAULT_TORCH)
    p.add_argument('--seqdbr-openblas-coretype', default='inherit',
                   help="'inherit' (the environment's), 'auto' (unset: OpenBLAS detects the "
                        "CPU) or a core name")
    args = p.parse_args(argv)
    if args.worker:
        return worker(args)
    import seqdbr
    env = common.thread_env(args.threads)
    seq_env = dict(env)
    if args.seqdbr_openblas_coretype == 'auto':
        seq_env.pop('OPENBLAS_CORETYPE', None)
        seq_env.pop('OPENBLAS_L2_SIZE', None)
    elif args.seqdbr_openblas_coretype != 'inherit':
        seq_env['OPENBLAS_CORETYPE'] = args.seqdbr_openblas_coretype
    have_torch = bool(args.torch_python) and os.path.exists(args.torch_python)
    shared = ['--batchsize', str(args.batchsize), '--vocab', str(args.vocab), '--warmup',
              str(args.warmup), '--seed', str(args.seed)]
    anchor = os.path.join(BENCH_DIR, 'anchors', 'torch_wordlm.py')
    results = []
    for name in args.presets:
        c = PRESETS[name]
        workers = [('seqdbr', [sys.executable, os.path.abspath(__file__), '--worker', name]
                    + shared, seq_env)]
        if have_torch:
            workers.append(('torch', [args.torch_python, anchor, '--worker', name, '--threads',
                                      str(args.threads)] + shared, env))
        sys.stderr.write('wordlm_speed: %s, %d rounds\n' % (name, args.rounds))
        times = interleave.run_round_robin(workers, args.rounds, args.per_turn, env)
        row = {'preset': name, 'hidden': c['H'], 'bptt': c['T']}
        for w, tm in times.items():
            row[w] = interleave.summary(tm, args.batchsize * c['T'])
        if have_torch:
            row['ratio'] = round(row['seqdbr']['tokens_per_s'] / row['torch']['tokens_per_s'], 3)
            row['cpu_ratio'] = round(row['seqdbr']['cpu_tokens_per_s']
                                     / row['torch']['cpu_tokens_per_s'], 3)
        sys.stderr.write('%s\n' % row)
        results.append(row)
    versions = {'seqdbr': seqdbr.__version__}
    if have_torch:
        import subprocess
        versions['torch'] = subprocess.run(
            [args.torch_python, '-c', 'import torch; print(torch.__version__)'],
            capture_output=True, text=True).stdout.strip()
    common.emit({'benchmark': 'wordlm_speed', 'batchsize': args.batchsize, 'vocab': args.vocab,
                 'seqdbr_openblas_coretype': seq_env.get('OPENBLAS_CORETYPE', 'unset (auto)'),
                 'rounds': args.rounds, 'per_turn': args.per_turn,
                 'machine': common.machine_info(versions, env, args.threads),
                 'results': results})


if __name__ == '__main__':
    main()
