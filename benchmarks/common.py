"""Shared helpers of the benchmark scripts (seqdbr's and the anchors').

Imports only the standard library and NumPy (1.26 or 2.x): the anchor scripts run it in
their own venvs, where seqdbr is not installed. A script imports it as ``common`` after
putting the ``benchmarks/`` folder on ``sys.path``.

* timing: ``timed``, ``alternate_runs`` (training runs and matmul runs interleaved, so both
  see the same machine load), ``time_matmuls``, ``profile_text`` (cProfile report);
* the matrix-multiply limit: the float32 matmuls of one MLP step (``mlp_matmuls``) and of
  one char-LM window (``charlm_window_matmuls``, run by ``measure_charlm_windows``);
* per-op overhead: ``chain``, ``time_chain``, ``measure_variable_chain``,
  ``overhead_figures``;
* figures and JSON objects: ``mlp_header``, ``mlp_train_figures``/``mlp_matmul_figures``/
  ``mlp_figures``, ``charlm_output``; char-LM data: ``make_token_windows``;
* machine and process: ``rss_mb``, ``loadavg_1m``, ``machine_info``, ``thread_env``;
* child processes: ``child_argv``, ``run_configs``, ``serve_child`` (one fresh process per
  char-LM configuration);
* command line: ``make_parser`` and the ``add_*_args`` helpers; output: ``emit``.
"""
import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import resource
import statistics
import subprocess
import sys
import time

import numpy

median = statistics.median

THREAD_VARS = ('OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS', 'MKL_NUM_THREADS')
BLAS_THREADS_HELP = ('BLAS threads for the child processes (sets OPENBLAS/OMP/MKL_NUM_'
                     'THREADS; default: inherit the environment)')
SETTLE_HELP = 'seconds to pause around each timed matmul run (worker threads idle)'


# -- command line and output ----------------------------------------------------------------------
def make_parser(doc):
    """An argument parser described by the first paragraph of ``doc``."""
    return argparse.ArgumentParser(description=doc.split('\n\n')[0])


def add_overhead_args(p):
    p.add_argument('--ops', type=int, default=1000)
    p.add_argument('--repeats', type=int, default=15)


def add_mlp_args(p):
    p.add_argument('--units', type=int, default=1000)
    p.add_argument('--batchsize', type=int, default=100)
    p.add_argument('--steps', type=int, default=20, help='steps per timed run')
    p.add_argument('--repeats', type=int, default=7, help='timed runs (median reported)')
    p.add_argument('--warmup', type=int, default=10, help='untimed steps first')


def add_sampling_args(p):
    p.add_argument('--hidden', type=int, default=128)
    p.add_argument('--length', type=int, default=1000, help='characters per timed run')
    p.add_argument('--repeats', type=int, default=7, help='timed rounds (median reported)')


def add_charlm_args(p, threads_default=None, threads_help=BLAS_THREADS_HELP):
    """The char-LM options every implementation shares, up to ``--threads``."""
    p.add_argument('--sizes', type=int, nargs='+', default=[128, 512])
    p.add_argument('--impl', nargs='+', choices=['stepwise', 'nstep'],
                   default=['stepwise', 'nstep'])
    p.add_argument('--windows', type=int, default=20, help='timed windows (median reported)')
    p.add_argument('--warmup', type=int, default=3, help='untimed windows first')
    p.add_argument('--batchsize', type=int, default=50)
    p.add_argument('--bptt', type=int, default=50)
    p.add_argument('--threads', type=int, default=threads_default, help=threads_help)


def add_charlm_loop_args(p):
    p.add_argument('--settle', type=float, default=0.1, help=SETTLE_HELP)
    p.add_argument('--stepwise-loss', choices=['window', 'step'], default='window')


def add_child_args(p):
    p.add_argument('--inline', action='store_true',
                   help='run every configuration in this process (peak RSS then accumulates)')
    p.add_argument('--child', nargs=2, metavar=('IMPL', 'H'), help=argparse.SUPPRESS)


def emit(out, indent=2):
    """Print the benchmark's one JSON object on stdout."""
    print(json.dumps(out, indent=indent))


# -- machine and process --------------------------------------------------------------------------
def rss_mb():
    """Peak resident set size of this process so far (``ru_maxrss``), in MB."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


def loadavg_1m():
    return round(os.getloadavg()[0], 2)


def thread_env(threads, keep_set=False):
    """A copy of the environment with the BLAS/OpenMP thread variables set to ``threads``
    (if given); with ``keep_set``, only those not set already."""
    env = dict(os.environ)
    for k in THREAD_VARS:
        if keep_set:
            env.setdefault(k, str(threads))
        elif threads:
            env[k] = str(threads)
    return env


def machine_info(versions, blas_env=None, threads=None, loadavg=True):
    """``versions`` (e.g. ``{'torch': ...}``), then NumPy/Python versions, CPU count, the
    BLAS thread variables of ``blas_env`` and ``threads`` (each if given) and the load."""
    out = dict(versions)
    out.update({'numpy': numpy.__version__, 'python': platform.python_version(),
                'cpus': os.cpu_count()})
    if blas_env is not None:
        out['blas_threads'] = {k: blas_env.get(k, 'unset') for k in THREAD_VARS}
    if threads is not None:
        out['threads'] = threads
    if loadavg:
        out['loadavg_1m'] = loadavg_1m()
    return out


# -- timing ---------------------------------------------------------------------------------------
def timed(fn, *a):
    """(wall seconds, process CPU seconds of all threads) of one call."""
    c0, t0 = time.process_time(), time.perf_counter()
    fn(*a)
    return time.perf_counter() - t0, time.process_time() - c0


def alternate_runs(fns, steps, repeats, warmup, settle=0.0):
    """Interleave timed runs of ``steps`` calls ``fn(i)`` of each ``(name, fn)`` in
    ``fns``, ``repeats`` times, after ``warmup`` untimed calls of each: so all see the same
    machine load (the ratios stay meaningful on a shared, noisy machine). A ``settle``
    pause follows the warm-up and every run (worker threads of one library stop spinning
    before the next run). Returns ``{name: [(wall s, process CPU s) per step, per run]}``.
    """
    for i in range(warmup):
        for _, fn in fns:
            fn(i)
    if settle:
        time.sleep(settle)
    runs = {name: [] for name, _ in fns}
    for _ in range(repeats):
        for name, fn in fns:
            c0, t0 = time.process_time(), time.perf_counter()
            for i in range(steps):
                fn(i)
            runs[name].append(((time.perf_counter() - t0) / steps,
                               (time.process_time() - c0) / steps))
            if settle:
                time.sleep(settle)
    return runs


def time_matmuls(fn, repeats, *a):
    """Median wall seconds of ``fn(*a)`` over ``repeats`` back-to-back runs, after 2."""
    for _ in range(2):
        fn(*a)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(*a)
        times.append(time.perf_counter() - t0)
    return median(times)


def profile_text(fn, n, top):
    """cProfile ``fn(i)`` for i < n; the top ``top`` functions by own time, as text."""
    prof = cProfile.Profile()
    prof.enable()
    for i in range(n):
        fn(i)
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats('tottime').print_stats(top)
    return buf.getvalue()


# -- per-op overhead ------------------------------------------------------------------------------
def chain(x, w, n_ops):
    """``n_ops`` alternating ``h + w`` / ``h * w`` from ``h = x`` (any array type)."""
    h = x
    for i in range(n_ops):
        if i % 2:
            h = h * w
        else:
            h = h + w
    return h


def overhead_figures(shape, fwd, bwd, raw, extra=None, ratio=False):
    """Medians of per-op microseconds: forward, backward, raw NumPy forward; ``extra``
    keys next, then (``ratio``) forward + backward in units of the raw NumPy op."""
    f, b, r = median(fwd), median(bwd), median(raw)
    out = {'shape': list(shape), 'forward_us_per_op': round(f, 3),
           'backward_us_per_op': round(b, 3), 'total_us_per_op': round(f + b, 3),
           'numpy_forward_us_per_op': round(r, 3)}
    out.update(extra or {})
    if ratio:
        # machine-independent-ish: framework cost in units of one raw NumPy op
        out['total_over_numpy_forward'] = round((f + b) / r, 2)
    return out


def time_chain(x, w, a, b, n_ops, repeats, clear, backward, nograd=None):
    """Per-op microseconds of the overhead chain, each of ``repeats`` runs: forward on the
    framework's ``x``, ``w`` and ``backward(y)`` timed apart (after ``clear()``), the same
    arithmetic on the raw arrays ``a``, ``b``, and (if given) the forward again inside
    the ``nograd()`` context. Returns the lists (forward, backward, raw, nograd)."""
    fwd, bwd, raw, ng = [], [], [], []
    for _ in range(repeats):
        clear()
        t0 = time.perf_counter()
        y = chain(x, w, n_ops)
        t1 = time.perf_counter()
        backward(y)
        t2 = time.perf_counter()
        del y
        t3 = time.perf_counter()
        chain(a, b, n_ops)
        t4 = time.perf_counter()
        fwd.append((t1 - t0) / n_ops * 1e6)
        bwd.append((t2 - t1) / n_ops * 1e6)
        raw.append((t4 - t3) / n_ops * 1e6)
        if nograd is not None:
            with nograd():
                t5 = time.perf_counter()
                chain(x, w, n_ops)
                t6 = time.perf_counter()
            ng.append((t6 - t5) / n_ops * 1e6)
    return fwd, bwd, raw, ng


def measure_variable_chain(Variable, shape, n_ops, repeats, ratio=False):
    """The overhead chain on two float32 ``Variable`` s (seqdbr's or Chainer's API):
    forward and ``backward()`` (``y.grad`` set to ones) timed apart, and the same
    arithmetic on the raw arrays."""
    x = Variable(numpy.full(shape, 0.5, numpy.float32))
    w = Variable(numpy.full(shape, 1.0001, numpy.float32))

    def clear():
        x.cleargrad()
        w.cleargrad()

    def backward(y):
        y.grad = numpy.ones(shape, numpy.float32)
        y.backward()

    fwd, bwd, raw, _ = time_chain(x, w, x.array, w.array, n_ops, repeats, clear, backward)
    return overhead_figures(shape, fwd, bwd, raw, ratio=ratio)


# -- MLP: the 9 matmuls of one step ---------------------------------------------------------------
def mlp_mm_operands(units, batch, seed, n_in=784, n_out=10):
    """Random float32 operands of the step's matmuls (NumPy; ``torch.from_numpy`` them
    for torch)."""
    rng = numpy.random.default_rng(seed)
    f = numpy.float32
    return {'x': rng.random((batch, n_in), dtype=f),
            'W1': rng.standard_normal((units, n_in), dtype=f),
            'W2': rng.standard_normal((units, units), dtype=f),
            'W3': rng.standard_normal((n_out, units), dtype=f),
            'h1': rng.random((batch, units), dtype=f), 'h2': rng.random((batch, units), dtype=f),
            'g3': rng.random((batch, n_out), dtype=f), 'g2': rng.random((batch, units), dtype=f),
            'g1': rng.random((batch, units), dtype=f)}


def mlp_matmuls(o):
    """A function running the 9 matmuls of one step back to back: forward
    ``x@W1.T, h1@W2.T, h2@W3.T``; backward per layer ``gW = gy.T @ x`` and
    ``gx = gy @ W`` (the first layer's gx is not needed in training but is included)."""
    x, W1, W2, W3, h1, h2, g3, g2, g1 = (o[k] for k in ('x', 'W1', 'W2', 'W3', 'h1', 'h2',
                                                        'g3', 'g2', 'g1'))

    def once():
        x @ W1.T           # forward
        h1 @ W2.T
        h2 @ W3.T
        g3.T @ h2          # backward layer 3: gW, gx
        g3 @ W3
        g2.T @ h1          # layer 2
        g2 @ W2
        g1.T @ x           # layer 1
        g1 @ W1
    return once


def mlp_flops(units, batch, n_in=784, n_out=10):
    return 2 * batch * (n_in * units + units * units + units * n_out) * 3


def mlp_header(args, framework=None):
    """The leading keys of an MLP benchmark's output (``args`` from ``add_mlp_args``)."""
    out = {'benchmark': 'mlp'}
    if framework:
        out['framework'] = framework
    out.update({
        'model': '784-%d-%d-10 ReLU MLP, softmax cross-entropy, Adam' % (args.units,
                                                                          args.units),
        'batchsize': args.batchsize,
        'steps_per_run': args.steps, 'runs': args.repeats, 'warmup_steps': args.warmup,
    })
    return out


def mlp_train_figures(b, train):
    """``train``: (wall, CPU) seconds per step of each run; ``b``: the batch size."""
    step_s = median(t for t, _ in train)
    return {'samples_per_s': round(b / step_s, 1),
            'samples_per_s_runs': [round(b / t, 1) for t, _ in train],
            'step_ms': round(1000 * step_s, 3)}


def mlp_matmul_figures(b, flops, train, mm, prefix=''):
    """The matmul limit from the matmul runs ``mm`` interleaved with ``train``."""
    sps = b / median(t for t, _ in train)
    m = median(t for t, _ in mm)
    limit = b / m
    return {
        prefix + 'matmul_ms_per_step': round(1000 * m, 3),
        prefix + 'matmul_gflops': round(flops / m / 1e9, 2),
        prefix + 'matmul_limited_samples_per_s': round(limit, 1),
        prefix + 'ratio_to_matmul_limit': round(sps / limit, 3),
        # per-run ratios (train run vs the matmul run right after it): robust to load drift
        prefix + 'ratio_to_matmul_limit_median_of_runs': round(median(
            mt / st for (st, _), (mt, _) in zip(train, mm)), 3),
    }


def mlp_figures(b, flops, train, mm):
    """All the figures of one framework's training runs against its NumPy matmul runs."""
    out = mlp_train_figures(b, train)
    out.update(mlp_matmul_figures(b, flops, train, mm))
    step_s, mm_s = median(t for t, _ in train), median(t for t, _ in mm)
    step_c, mm_c = median(c for _, c in train), median(c for _, c in mm)
    out.update({
        'overhead_ms_per_step': round(1000 * (step_s - mm_s), 3),
        # process CPU time (all threads): less sensitive to other processes taking cores
        'cpu_ms_per_step': round(1000 * step_c, 3),
        'matmul_cpu_ms_per_step': round(1000 * mm_c, 3),
        'cpu_ratio_to_matmul_limit': round(mm_c / step_c, 3),
    })
    return out


# -- char-LM: the matmuls of one truncated-BPTT window --------------------------------------------
def charlm_mm_operands(H, B, T, V, seed):
    rng = numpy.random.default_rng(seed)
    f = numpy.float32

    def r(*shape):
        return rng.standard_normal(shape, dtype=f)
    return {'X': r(B * T, H), 'W_ih': r(4 * H, H), 'W_hh': r(4 * H, H), 'hs': r(T, B, H),
            'G': r(B * T, 4 * H), 'Hp': r(B * T, H), 'W_o': r(V, H), 'gY': r(B * T, V)}


def charlm_window_matmuls(o, T, fused_gW, n_layers=2):
    """The float32 matmuls of one window (every layer, forward and backward); NumPy arrays
    or torch tensors alike."""
    X, W_ih, W_hh, hs, G, W_o, gY = (o['X'], o['W_ih'], o['W_hh'], o['hs'], o['G'], o['W_o'],
                                     o['gY'])
    gs = G.reshape(T, -1, G.shape[1])
    for _ in range(n_layers):
        X @ W_ih.T                      # input projection of every step
        for j in range(T):
            hs[j] @ W_hh.T              # recurrence
        G @ W_ih                        # backward: input gradient
        G.T @ X                         # weight gradient of W_ih
        for j in range(T):
            gs[j] @ W_hh                # gradient to h_{t-1}
        if fused_gW:
            G.T @ o['Hp']               # weight gradient of W_hh, one matmul
        else:
            for j in range(T):
                gs[j].T @ hs[j]         # weight gradient of W_hh, per step
    X @ W_o.T                           # output layer
    gY @ W_o
    gY.T @ X


def charlm_window_flops(H, B, T, V, n_layers=2):
    return n_layers * 3 * 2 * (2 * B * T * H * 4 * H) + 3 * 2 * B * T * H * V


def make_token_windows(B, T, n, seed, vocab, dtype=None):
    """``n`` consecutive windows ``(x, t)`` of B parallel streams over one random token
    array (row b of window w+1 continues row b of window w, as the BPTT batcher does);
    tokens of ``dtype`` (default: NumPy's integer default)."""
    rng = numpy.random.default_rng(seed)
    L = n * T
    tokens = rng.integers(0, vocab, B * L + 1)
    if dtype is not None:
        tokens = tokens.astype(dtype)
    wins = []
    for w in range(n):
        x = numpy.stack([tokens[b * L + w * T: b * L + w * T + T] for b in range(B)])
        t = numpy.stack([tokens[b * L + w * T + 1: b * L + w * T + T + 1] for b in range(B)])
        wins.append((x, t))
    return wins


def measure_charlm_windows(window, make_operands, B, T, H, V, windows, warmup, settle):
    """Warm-up windows, then ``windows`` timed windows ``window(i)`` (returning the loss),
    each followed by one timed run of the window's matmul set (per-step and fused
    recurrent weight gradient), so training and matmuls see the same machine load. Peak
    RSS is read after the warm-up, before the matmul operands (``make_operands()``) exist.
    Returns (figures, operands)."""
    rss_before = rss_mb()
    for i in range(warmup):
        window(i)
    peak = rss_mb()
    ops = make_operands()
    for _ in range(2):
        charlm_window_matmuls(ops, T, False)
        charlm_window_matmuls(ops, T, True)
    win, mm, mmf = [], [], []
    last = None
    for i in range(windows):
        c0, t0 = time.process_time(), time.perf_counter()
        last = window(warmup + i)
        win.append((time.perf_counter() - t0, time.process_time() - c0))
        if settle:
            time.sleep(settle)   # let the framework's worker threads go idle
        mm.append(timed(charlm_window_matmuls, ops, T, False))
        mmf.append(timed(charlm_window_matmuls, ops, T, True))
        if settle:
            time.sleep(settle)   # let BLAS worker threads stop spinning before the window
    w, m, f = median(t for t, _ in win), median(t for t, _ in mm), median(t for t, _ in mmf)
    wc, mc = median(c for _, c in win), median(c for _, c in mm)
    rate, limit, limit_f = B * T / w, B * T / m, B * T / f
    flops = charlm_window_flops(H, B, T, V)
    res = {
        'chars_per_s': round(rate, 1),
        'chars_per_s_min': round(B * T / max(t for t, _ in win), 1),
        'chars_per_s_max': round(B * T / min(t for t, _ in win), 1),
        'window_ms': round(1000 * w, 3), 'windows': windows, 'warmup_windows': warmup,
        'last_loss': round(float(last), 4),
        'rss_before_mb': rss_before, 'peak_rss_mb': peak, 'peak_rss_mb_end': rss_mb(),
        'matmul_ms_per_window': round(1000 * m, 3),
        'matmul_gflops': round(flops / m / 1e9, 2),
        'matmul_limited_chars_per_s': round(limit, 1),
        'ratio_to_matmul_limit': round(rate / limit, 3),
        # per-window ratios (window vs the matmul run right after it): robust to load drift
        'ratio_to_matmul_limit_median_of_runs': round(median(
            mt / wt for (wt, _), (mt, _) in zip(win, mm)), 3),
        # process CPU time (all threads): less sensitive to other jobs taking the cores
        'cpu_ms_per_window': round(1000 * wc, 3),
        'matmul_cpu_ms_per_window': round(1000 * mc, 3),
        'cpu_ratio_to_matmul_limit': round(mc / wc, 3),
        'matmul_ms_per_window_fused_gW': round(1000 * f, 3),
        'matmul_limited_chars_per_s_fused_gW': round(limit_f, 1),
        'ratio_to_matmul_limit_fused_gW': round(rate / limit_f, 3),
    }
    return res, ops


def charlm_output(args, framework, versions, model, results, vocab, blas_env=None,
                  threads=None, model_source=None, nstep_xs=None):
    """The char-LM benchmark's JSON object (``model_source`` and ``nstep_xs``: seqdbr's
    own options, included when given)."""
    out = {'benchmark': 'charlm', 'framework': framework}
    out.update(machine_info(versions, blas_env=blas_env, threads=threads))
    out['model'] = model
    if model_source is not None:
        out['model_source'] = model_source
    out.update({'batchsize': args.batchsize, 'bptt': args.bptt, 'vocab': vocab,
                'stepwise_loss': args.stepwise_loss})
    if nstep_xs is not None:
        out['nstep_xs'] = nstep_xs
    out.update({'chars_per_window': args.batchsize * args.bptt, 'results': results})
    return out


# -- child processes: one fresh process per char-LM configuration ---------------------------------
def child_argv(script, args, impl, H, extra=()):
    """The command line re-running ``script`` for one (impl, H) with the shared options."""
    return [sys.executable, os.path.abspath(script), '--child', impl, str(H),
            '--windows', str(args.windows), '--warmup', str(args.warmup),
            '--batchsize', str(args.batchsize), '--bptt', str(args.bptt),
            '--settle', str(args.settle), '--seed', str(args.seed),
            '--stepwise-loss', args.stepwise_loss] + list(extra)


def serve_child(args, run_child):
    """In a child process (``--child IMPL H``): print its result as one JSON line and
    return True; else return False."""
    if not args.child:
        return False
    print(json.dumps(run_child(args, args.child[0], int(args.child[1]))))
    return True


def run_configs(args, run_child, script, extra_argv=(), env=None, label='child'):
    """``run_child(args, impl, H)`` for every H in ``args.sizes`` and impl in ``args.impl``:
    in this process with ``--inline``, else each in a fresh child process of ``script``
    (its stderr passed on). Returns the list of results."""
    results = []
    for H in args.sizes:
        for impl in args.impl:
            if args.inline:
                results.append(run_child(args, impl, H))
                continue
            r = subprocess.run(child_argv(script, args, impl, H, extra_argv), env=env,
                               capture_output=True, text=True)
            sys.stderr.write(r.stderr)
            if r.returncode:
                raise SystemExit('%s %s H=%d failed (exit %d)' % (label, impl, H, r.returncode))
            results.append(json.loads(r.stdout.strip().splitlines()[-1]))
    return results


def bigram_baseline(train_ids, val_ids, V):
    """Cross-entropy (nats/char) of an add-one smoothed bigram model, fitted on
    ``train_ids``, on ``val_ids`` (the quality benchmarks' floor to beat)."""
    counts = numpy.ones((V, V), dtype=numpy.float64)
    numpy.add.at(counts, (train_ids[:-1], train_ids[1:]), 1.0)
    logp = numpy.log(counts / counts.sum(axis=1, keepdims=True))
    return float(-logp[val_ids[:-1], val_ids[1:]].mean())
