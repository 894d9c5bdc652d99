"""A parent's to_device moves a stateful RNN child's carried state too (via the
Link._on_device_change hook), so no per-step device check is needed in forward."""
import numpy
import pytest

import seqdbr
import seqdbr.links as L
from seqdbr.core import backend


class Model(seqdbr.Chain):
    def __init__(self):
        super().__init__()
        with self.init_scope():
            self.rnn = L.LSTM(3, 4)
            self.gru = L.StatefulGRU(4, 4)


def _run(m, xp):
    x = xp.asarray(numpy.ones((2, 3), numpy.float32))
    return m.gru(m.rnn(x))


def test_parent_to_device_calls_the_state_hook_of_every_link(monkeypatch):
    m = Model()
    _run(m, numpy)
    seen = []
    for cls in (L.LSTM, L.StatefulGRU):
        orig = cls._on_device_change
        monkeypatch.setattr(cls, '_on_device_change',
                            lambda self, dev, orig=orig: (seen.append(type(self).__name__),
                                                          orig(self, dev)))
    m.to_cpu()
    assert sorted(seen) == ['LSTM', 'StatefulGRU']
    assert type(m.rnn.c.array) is numpy.ndarray and type(m.gru.h.array) is numpy.ndarray


@pytest.mark.gpu
def test_parent_to_gpu_moves_carried_state():
    m = Model()
    _run(m, numpy)
    m.to_gpu()
    cp = backend.cupy_or_none()
    assert isinstance(m.rnn.c.array, cp.ndarray) and isinstance(m.gru.h.array, cp.ndarray)
    y = _run(m, cp)
    assert isinstance(y.array, cp.ndarray)
    m.to_cpu()
    assert type(m.rnn.h.array) is numpy.ndarray
