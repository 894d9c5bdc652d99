"""Training speed of the n-step LSTM by input form, against PyTorch ``nn.LSTM``, interleaved.

One window = embedding (V, H) -> 2-layer LSTM (H -> H -> H) -> Linear(H, V) -> softmax
cross-entropy (mean over the window's tokens) -> backward -> Adam(2e-3); hidden state
carried and cut after each window (truncated BPTT); random tokens; B = 50 streams of
T = 50 steps by default. The seqdbr input forms of ``L.NStepLSTM``:

* ``3d``: one padded ``(B, T, H)`` array of embeddings;
* ``list``: a list of B ``(T, H)`` sequences (``F.separate`` of the embedded batch; the
  outputs are joined back with ``F.stack``), what Chainer-style code passes;
* ``embed``: token ids through ``forward_embed`` (embedding folded into layer 0's input
  projection when ``V < B*T``);
* ``varlen`` (``--forms``): a list of B sequences of lengths spread evenly from T down
  to T/2 (embedded one by one, outputs joined with ``F.concat``).

The PyTorch anchor (``anchors/torch_nstep_forms.py``, run with ``--torch-python``) times
``padded`` (``nn.LSTM(batch_first=True)`` on the ``(B, T, H)`` embeddings) and ``packed``
(``pack_sequence`` of the same variable-length batch as ``varlen``). Every configuration
runs in its own worker process; the driver asks the workers in turn for ``--per-turn``
windows, ``--rounds`` times, so all see the same machine load (``interleave.py``).
Reported: median tokens/s (wall) and from process CPU time, and per H the ratio of each
seqdbr form to PyTorch ``padded`` (``varlen`` also to ``packed``) in the same run, and
the OpenBLAS kernel set NumPy uses in the seqdbr workers (``--seqdbr-openblas-coretype``:
the development machine's environment pins ``OPENBLAS_CORETYPE=Haswell``, AVX2, while
PyTorch's oneDNN/MKL use AVX-512 there; ``auto`` lets OpenBLAS detect the CPU).

    python benchmarks/nstep_forms.py [--sizes 128 512 650] [--forms 3d list embed]
        [--rounds 7] [--per-turn 2] [--threads 1] [--torch-python PATH]
        [--seqdbr-openblas-coretype auto] [--torch-env ONEDNN_MAX_CPU_ISA=AVX2 ...]
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

N_LAYERS = 2
DEFAULT_TORCH = os.environ.get('TORCH_PY', '/work/wt/_torchvenv/bin/python')


def varlen_lengths(B, T):
    """B lengths spread evenly from T down to about T/2 (the ``varlen``/``packed`` batch)."""
    return [T - (b * (T // 2)) // max(B - 1, 1) for b in range(B)]


def build(form, H, V):
    import seqdbr.functions as F
    import seqdbr.links as L
    from seqdbr.core.link import Chain

    class LM(Chain):
        def __init__(self):
            super().__init__()
            with self.init_scope():
                self.embed = L.EmbedID(V, H)
                self.rnn = L.NStepLSTM(N_LAYERS, H, H, 0.0)
                self.out = L.Linear(H, V)
            self.hx = self.cx = None

        def loss(self, x, t):
            B, T = x.shape
            if form == 'embed':
                hy, cy, ys = self.rnn.forward_embed(self.hx, self.cx, x, self.embed.W)
            elif form == '3d':
                hy, cy, ys = self.rnn(self.hx, self.cx, self.embed(x))
            elif form == 'list':
                hy, cy, ys = self.rnn(self.hx, self.cx, list(F.separate(self.embed(x), axis=0)))
                ys = F.stack(ys, axis=0)
            else:                                            # varlen
                lens = varlen_lengths(B, T)
                hy, cy, ys = self.rnn(self.hx, self.cx,
                                      [self.embed(x[b, :n]) for b, n in enumerate(lens)])
                t = numpy.concatenate([t[b, :n] for b, n in enumerate(lens)])
                ys = F.concat(ys, axis=0)
            self.hx, self.cx = hy, cy
            return F.softmax_cross_entropy(self.out(F.reshape(ys, (-1, H))), t.reshape(-1))

    return LM()


def worker(args):
    from seqdbr import optimizers
    from seqdbr.core import initializers
    form, H = args.worker[0], int(args.worker[1])
    initializers.set_seed(args.seed)
    model = build(form, H, args.vocab)
    opt = optimizers.Adam(alpha=2e-3)
    opt.setup(model)
    wins = common.make_token_windows(args.batchsize, args.bptt, 8, args.seed, args.vocab,
                                     numpy.int32)

    def window(i):
        x, t = wins[i % len(wins)]
        loss = model.loss(x, t)
        model.cleargrads()
        loss.backward()
        loss.unchain_backward()
        opt.update()

    interleave.serve(window, args.warmup)


def openblas_core(env):
    """The kernel set NumPy's OpenBLAS picks in a child process with ``env`` (its
    ``*_get_corename`` function; 'unknown' for other BLAS libraries)."""
    import subprocess
    code = ('import ctypes, glob, os, numpy\n'
            'libs = glob.glob(os.path.join(os.path.dirname(numpy.__file__), os.pardir, '
            '"numpy.libs", "*openblas*"))\n'
            'name = "unknown"\n'
            'for lib in libs:\n'
            '    dll = ctypes.CDLL(lib)\n'
            '    for sym in ("scipy_openblas_get_corename64_", "openblas_get_corename"):\n'
            '        f = getattr(dll, sym, None)\n'
            '        if f is not None:\n'
            '            f.restype = ctypes.c_char_p\n'
            '            name = f().decode()\n'
            'print(name)\n')
    out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True)
    return out.stdout.strip() or 'unknown'


def add_args(p):
    p.add_argument('--sizes', type=int, nargs='+', default=[128, 512, 650])
    p.add_argument('--batchsize', type=int, default=50)
    p.add_argument('--bptt', type=int, default=50)
    p.add_argument('--vocab', type=int, default=65)
    p.add_argument('--warmup', type=int, default=2, help='untimed windows per worker')
    p.add_argument('--seed', type=int, default=0)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    add_args(p)
    p.add_argument('--forms', nargs='+', choices=['3d', 'list', 'embed', 'varlen'],
                   default=['3d', 'list', 'embed'])
    p.add_argument('--torch-forms', nargs='+', choices=['padded', 'packed'], default=None,
                   help="default: padded, plus packed when 'varlen' is among --forms")
    p.add_argument('--rounds', type=int, default=7)
    p.add_argument('--per-turn', type=int, default=2, help='windows per worker per round')
    p.add_argument('--threads', type=int, default=1,
                   help='BLAS/OpenMP threads of every worker (torch.set_num_threads too)')
    p.add_argument('--seqdbr-openblas-coretype', default='inherit',
                   help="OPENBLAS_CORETYPE of the seqdbr workers: 'inherit' (default: as "
                        "this process), 'auto' (unset: OpenBLAS detects the CPU), or a core "
                        "name such as Haswell or SkylakeX")
    p.add_argument('--torch-env', nargs='*', default=[], metavar='KEY=VALUE',
                   help='extra environment of the PyTorch workers, e.g. ONEDNN_MAX_CPU_ISA=AVX2 '
                        'ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 (same ISA as an '
                        'AVX2 OpenBLAS)')
    p.add_argument('--torch-python', default=DEFAULT_TORCH,
                   help='interpreter with torch for the anchor ("" to skip it)')
    p.add_argument('--worker', nargs=2, metavar=('FORM', 'H'), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args)

    import seqdbr
    env = common.thread_env(args.threads)
    seq_env = dict(env)
    torch_env = dict(env)
    torch_env.update(kv.split('=', 1) for kv in args.torch_env)
    if args.seqdbr_openblas_coretype == 'auto':
        seq_env.pop('OPENBLAS_CORETYPE', None)
    elif args.seqdbr_openblas_coretype != 'inherit':
        seq_env['OPENBLAS_CORETYPE'] = args.seqdbr_openblas_coretype
    torch_forms = args.torch_forms or (['padded', 'packed'] if 'varlen' in args.forms
                                       else ['padded'])
    have_torch = bool(args.torch_python) and os.path.exists(args.torch_python)
    if not have_torch:
        sys.stderr.write('nstep_forms: no PyTorch interpreter at %r; timing seqdbr only\n'
                         % args.torch_python)
    shared = ['--batchsize', str(args.batchsize), '--bptt', str(args.bptt), '--vocab',
              str(args.vocab), '--warmup', str(args.warmup), '--seed', str(args.seed)]
    anchor = os.path.join(BENCH_DIR, 'anchors', 'torch_nstep_forms.py')
    tokens = {f: args.batchsize * args.bptt for f in args.forms + torch_forms}
    tokens['varlen'] = tokens['packed'] = sum(varlen_lengths(args.batchsize, args.bptt))
    results = []
    for H in args.sizes:
        workers = [('seqdbr/' + f, [sys.executable, os.path.abspath(__file__), '--worker', f,
                                    str(H)] + shared, seq_env) for f in args.forms]
        if have_torch:
            workers += [('torch/' + f, [args.torch_python, anchor, '--worker', f, str(H),
                                        '--threads', str(args.threads)] + shared, torch_env)
                        for f in torch_forms]
        sys.stderr.write('nstep_forms: H=%d, %d workers, %d rounds\n'
                         % (H, len(workers), args.rounds))
        times = interleave.run_round_robin(workers, args.rounds, args.per_turn, env)
        row = {'hidden': H}
        for name, tm in times.items():
            row[name] = interleave.summary(tm, tokens[name.split('/')[1]])
        if have_torch:
            ref = row['torch/padded']
            for f in args.forms:
                s = row['seqdbr/' + f]
                s['ratio_to_torch_padded'] = round(s['tokens_per_s'] / ref['tokens_per_s'], 3)
                s['cpu_ratio_to_torch_padded'] = round(
                    s['cpu_tokens_per_s'] / ref['cpu_tokens_per_s'], 3)
            if 'varlen' in args.forms and 'torch/packed' in row:
                s, r = row['seqdbr/varlen'], row['torch/packed']
                s['ratio_to_torch_packed'] = round(s['tokens_per_s'] / r['tokens_per_s'], 3)
                s['cpu_ratio_to_torch_packed'] = round(
                    s['cpu_tokens_per_s'] / r['cpu_tokens_per_s'], 3)
        results.append(row)
        sys.stderr.write(str({k: (v.get('ratio_to_torch_padded'), v.get('cpu_ratio_to_torch_'
                                                                       'padded'))
                              for k, v in row.items() if k.startswith('seqdbr')}) + '\n')
    versions = {'seqdbr': seqdbr.__version__}
    if have_torch:
        import subprocess
        versions['torch'] = subprocess.run(
            [args.torch_python, '-c', 'import torch; print(torch.__version__)'],
            capture_output=True, text=True).stdout.strip()
    common.emit({'benchmark': 'nstep_forms', 'batchsize': args.batchsize, 'bptt': args.bptt,
                 'seqdbr_openblas_coretype': seq_env.get('OPENBLAS_CORETYPE', 'unset (auto)'),
                 'seqdbr_openblas_core': openblas_core(seq_env),
                 'torch_env': args.torch_env,
                 'vocab': args.vocab, 'layers': N_LAYERS, 'rounds': args.rounds,
                 'per_turn': args.per_turn,
                 'machine': common.machine_info(versions, env, args.threads),
                 'results': results})


if __name__ == '__main__':
    main()
