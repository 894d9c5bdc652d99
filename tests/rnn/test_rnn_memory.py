"""Bounded memory in truncated BPTT, and deep unrolls without recursion (issue 4).

Live graph nodes are counted with gc.get_objects(); RSS is read from /proc/self/statm
(current, not peak), so a leak of the graph behind each cut would show as steady growth.
"""
import gc
import os

import numpy
import pytest

import seqdbr.functions as F
import seqdbr.links as L
from seqdbr.core.function_node import FunctionNode


def _live_nodes():
    return sum(1 for o in gc.get_objects() if isinstance(o, FunctionNode))


def _rss_mb():
    try:
        with open('/proc/self/statm') as f:
            pages = int(f.read().split()[1])
    except OSError:
        pytest.skip('/proc/self/statm is not available on this platform')
    return pages * os.sysconf('SC_PAGE_SIZE') / 2 ** 20


def test_stateful_lstm_10000_steps_with_cuts_keeps_nodes_and_rss_bounded():
    rng = numpy.random.RandomState(0)
    B, H = 4, 64
    lstm = L.LSTM(H, H)
    out = L.Linear(H, 1)
    xs = rng.uniform(-1, 1, (35, B, H)).astype(numpy.float32)
    nodes, rss = [], []
    loss = None
    for step in range(35 * 286):  # 10,010 steps, ending on a cut
        y = out(lstm(xs[step % 35]))
        term = F.sum(y * y)
        loss = term if loss is None else loss + term
        if (step + 1) % 35 == 0:
            lstm.cleargrads()
            out.cleargrads()
            loss.backward()
            loss.unchain_backward()
            loss = None
            if (step + 1) % 1050 == 0:
                nodes.append(_live_nodes())
                rss.append(_rss_mb())
    assert len(nodes) == 9
    # After each cut nothing but the carried state may stay alive: the count is the same
    # small number at every checkpoint, not growing with the number of windows.
    assert max(nodes) <= 10, nodes
    assert nodes[-1] <= nodes[0] + 2, nodes
    # One window's graph is a few MB at most; 9 checkpoints apart, RSS must not keep growing.
    assert rss[-1] - rss[1] < 20.0, rss
    assert lstm.h.creator is None and lstm.c.creator is None


def test_100000_step_lstm_unroll_backward_has_no_recursion_error():
    rng = numpy.random.RandomState(1)
    lstm = L.LSTM(1, 2)
    x = rng.uniform(-1, 1, (1, 1)).astype(numpy.float32)
    h = None
    for _ in range(100000):
        h = lstm(x)
    loss = F.sum(h)
    loss.backward()          # iterative backprop: no RecursionError on a 100k-deep graph
    g = lstm.upward.W.grad
    assert g is not None and numpy.isfinite(g).all()
    loss.unchain_backward()  # iterative cut: no RecursionError either
    assert lstm.h.creator is None
    del loss, h
    gc.collect()
