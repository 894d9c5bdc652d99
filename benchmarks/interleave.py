"""Round-robin timing of training windows across worker processes (standard library and
NumPy only, so the anchors' interpreters can use it too).

A *worker* is a child process that builds one configuration (framework, input form, H),
runs its untimed warm-up windows, and then answers each line ``n`` on its stdin with one
JSON line ``{"wall": [...], "cpu": [...]}``: the wall-clock and process-CPU seconds of
``n`` windows. The *driver* starts one worker per configuration and asks them in turn,
round after round, so every configuration sees the same machine load, and only one
worker computes at any time (the others wait on a pipe).
"""
import json
import subprocess
import sys
import time

import numpy


def serve(window, warmup):
    """Worker side: run ``warmup`` untimed windows, say ``ready``, then serve requests."""
    for i in range(warmup):
        window(i)
    out = sys.stdout
    out.write('ready\n')
    out.flush()
    i = warmup
    for line in sys.stdin:
        n = int(line)
        wall, cpu = [], []
        for _ in range(n):
            c0, t0 = time.process_time(), time.perf_counter()
            window(i)
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            i += 1
        out.write(json.dumps({'wall': wall, 'cpu': cpu}) + '\n')
        out.flush()


def run_round_robin(workers, rounds, per_turn, env=None):
    """Driver side. ``workers``: list of ``(name, argv)`` or ``(name, argv, env)`` (a
    worker's own environment; default ``env``). Starts them all, waits until each is ready,
    then for ``rounds`` rounds asks each in order for ``per_turn`` windows.

    Returns ``{name: {'wall': [...], 'cpu': [...]}}`` (seconds per window)."""
    procs = []
    try:
        for w in workers:
            name, argv = w[:2]
            p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 env=w[2] if len(w) > 2 else env, text=True)
            procs.append((name, p))
            line = p.stdout.readline().strip()     # warm-up done, one at a time
            if line != 'ready':
                raise RuntimeError('worker %s did not start (got %r); run its command by hand: '
                                   '%s' % (name, line, ' '.join(argv)))
        res = {name: {'wall': [], 'cpu': []} for name, _ in procs}
        for _ in range(rounds):
            for name, p in procs:
                p.stdin.write('%d\n' % per_turn)
                p.stdin.flush()
                r = json.loads(p.stdout.readline())
                res[name]['wall'] += r['wall']
                res[name]['cpu'] += r['cpu']
        return res
    finally:
        for _, p in procs:
            if p.poll() is None:
                p.stdin.close()
                p.wait(timeout=60)


def summary(times, tokens):
    """Median figures of one configuration (``tokens`` per window)."""
    wall = numpy.median(times['wall'])
    cpu = numpy.median(times['cpu'])
    return {'tokens_per_s': round(tokens / wall, 1), 'cpu_tokens_per_s': round(tokens / cpu, 1),
            'median_window_ms': round(wall * 1e3, 2), 'median_window_cpu_ms': round(cpu * 1e3, 2),
            'windows': len(times['wall'])}
