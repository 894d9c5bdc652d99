"""Truncated BPTT: the parallel-stream batcher and the update step."""
import gc
import json
import weakref

import numpy
import pytest

import seqdbr.functions as F
import seqdbr.links as L
from seqdbr import optimizers
from seqdbr.core import initializers
from seqdbr.core.link import Chain
from seqdbr.core.serializers import deserialize_from_dict, serialize_to_dict
from seqdbr.core.variable import Variable
from seqdbr.rnn.bptt import (NonFiniteLossError, ParallelSequentialBatcher, TooFewTokensError,
                             bptt_update, window_loss)


# -- batcher ---------------------------------------------------------------------------------

def test_windows_and_targets_are_exact():
    # N = 23 -> L = (23 - 1) // 3 = 7 positions per stream, T = 3 -> 2 windows per epoch.
    tokens = numpy.arange(100, 123)
    b = ParallelSequentialBatcher(tokens, batch_size=3, bptt_len=3)
    assert (b.stream_len, b.windows_per_epoch) == (7, 2)
    x, t = b.next_window()
    assert x.dtype == numpy.int32 and t.dtype == numpy.int32
    numpy.testing.assert_array_equal(x, [[100, 101, 102], [107, 108, 109], [114, 115, 116]])
    numpy.testing.assert_array_equal(t, [[101, 102, 103], [108, 109, 110], [115, 116, 117]])
    x, t = b.next_window()
    numpy.testing.assert_array_equal(x, [[103, 104, 105], [110, 111, 112], [117, 118, 119]])
    numpy.testing.assert_array_equal(t, [[104, 105, 106], [111, 112, 113], [118, 119, 120]])
    assert b.iteration == 2 and b.epoch == 1 and b.is_new_epoch and b.starts_epoch
    x2, _ = b.next_window()                         # the second epoch starts over
    numpy.testing.assert_array_equal(x2, [[100, 101, 102], [107, 108, 109], [114, 115, 116]])
    assert b.epoch_detail == pytest.approx(1.5)
    assert not b.is_new_epoch and not b.starts_epoch


def test_each_row_continues_the_previous_window_and_targets_shift_by_one():
    rng = numpy.random.default_rng(0)
    tokens = rng.integers(0, 50, size=1001)
    b = ParallelSequentialBatcher(tokens, batch_size=4, bptt_len=7)
    L_ = (1001 - 1) // 4
    rows = [[] for _ in range(4)]
    trows = [[] for _ in range(4)]
    for _ in range(b.windows_per_epoch):
        x, t = b.next_window()
        assert x.shape == (4, 7)
        for r in range(4):
            rows[r].extend(x[r].tolist())
            trows[r].extend(t[r].tolist())
    for r in range(4):
        n = len(rows[r])
        assert n == (L_ // 7) * 7
        assert rows[r] == tokens[r * L_:r * L_ + n].tolist()
        assert trows[r] == tokens[r * L_ + 1:r * L_ + n + 1].tolist()


@pytest.mark.parametrize('N,B,T', [(13, 2, 3), (22, 3, 7), (7, 1, 6), (8, 1, 7), (101, 4, 5),
                                   (100, 4, 5), (50, 7, 1)])
def test_an_epoch_has_every_full_window(N, B, T):
    """``windows_per_epoch = ((N - 1) // B) // T``: streams whose length is a multiple of T
    keep their last window (a bug that dropped it passed the tests above, whose sizes all
    leave a remainder)."""
    tokens = numpy.arange(N)
    b = ParallelSequentialBatcher(tokens, batch_size=B, bptt_len=T, repeat=False)
    L_ = (N - 1) // B
    assert (b.stream_len, b.windows_per_epoch) == (L_, L_ // T)
    xs = list(b)
    assert len(xs) == L_ // T
    x = numpy.concatenate([w[0] for w in xs], axis=1)
    t = numpy.concatenate([w[1] for w in xs], axis=1)
    starts = numpy.arange(B)[:, None] * L_
    numpy.testing.assert_array_equal(x, starts + numpy.arange((L_ // T) * T))
    numpy.testing.assert_array_equal(t, x + 1)
    assert int(t.max()) <= N - 1


def test_iterator_protocol_and_repeat_false():
    b = ParallelSequentialBatcher(numpy.arange(11), batch_size=2, bptt_len=2, repeat=False)
    windows = list(b)
    assert len(windows) == b.windows_per_epoch == 2
    assert b.exhausted
    with pytest.raises(StopIteration):
        b.next_window()
    b.reset()
    assert len(list(b)) == 2


def test_too_short_array_names_both_sizes_and_the_fix():
    with pytest.raises(TooFewTokensError) as e:
        ParallelSequentialBatcher(numpy.arange(20), batch_size=4, bptt_len=5)
    msg = str(e.value)
    assert '20 tokens' in msg and '4 x 5 + 1 = 21' in msg
    assert '--batch-size' in msg and '--seq-length' in msg and 'bigger corpus' in msg
    assert e.value.num_tokens == 20 and e.value.needed == 21
    ParallelSequentialBatcher(numpy.arange(21), batch_size=4, bptt_len=5)   # exactly enough


@pytest.mark.parametrize('bad', [numpy.zeros((3, 4), numpy.int32), numpy.linspace(0, 1, 50)])
def test_bad_token_arrays(bad):
    with pytest.raises((ValueError, TypeError)):
        ParallelSequentialBatcher(bad, 2, 2)


def test_cursor_round_trip_state_dict_json_and_serializer():
    tokens = numpy.random.default_rng(1).integers(0, 9, size=200)
    a = ParallelSequentialBatcher(tokens, 3, 4)
    for _ in range(23):                  # crosses epoch boundaries (16 windows per epoch)
        a.next_window()
    state = json.loads(json.dumps(a.state_dict()))
    b = ParallelSequentialBatcher(tokens, 3, 4)
    b.load_state_dict(state)
    c = ParallelSequentialBatcher(tokens, 3, 4)
    deserialize_from_dict(serialize_to_dict(a, 'batcher'), c, 'batcher')
    for other in (b, c):
        assert other.iteration == 23 and other.epoch == a.epoch
    for _ in range(20):
        xa, ta = a.next_window()
        for other in (b, c):
            xo, to = other.next_window()
            numpy.testing.assert_array_equal(xa, xo)
            numpy.testing.assert_array_equal(ta, to)


def test_cursor_of_another_configuration_is_refused():
    tokens = numpy.arange(200)
    state = ParallelSequentialBatcher(tokens, 3, 4).state_dict()
    with pytest.raises(ValueError, match='batch_size'):
        ParallelSequentialBatcher(tokens, 2, 4).load_state_dict(state)
    with pytest.raises(ValueError, match='num_tokens'):
        ParallelSequentialBatcher(tokens[:150], 3, 4).load_state_dict(state)


# -- update step -----------------------------------------------------------------------------

class WindowModel(Chain):
    """A tiny n-step-style model: logits (B, T, V) for a (B, T) window, with a carried state
    h (B, H) that links consecutive windows (h_t = tanh(E[x_t] + h_{t-1} U))."""

    def __init__(self, V=7, H=5):
        super().__init__()
        with self.init_scope():
            self.embed = L.EmbedID(V, H)
            self.U = L.Linear(H, H, nobias=True)
            self.out = L.Linear(H, V)
        self.h = None

    def forward(self, x):
        B, T = x.shape
        e = self.embed(x)
        h = self.h
        hs = []
        for j in range(T):
            a = e[:, j]
            h = F.tanh(a if h is None else a + self.U(h))
            hs.append(h)
        self.h = h
        y = self.out(F.stack(hs, axis=1).reshape(B * T, -1))
        return y.reshape(B, T, -1)


class StepModel(WindowModel):
    """The same network called one column at a time: (B,) ids -> (B, V) logits."""

    def forward(self, x):
        a = self.embed(x)
        h = F.tanh(a if self.h is None else a + self.U(self.h))
        self.h = h
        return self.out(h)


def _reference_mean_loss(model, x, t):
    """Mean over all B*T tokens of -log softmax(logits)[target], in float64, by hand."""
    E = model.embed.W.array.astype(numpy.float64)
    U = model.U.W.array.astype(numpy.float64)
    W, b = model.out.W.array.astype(numpy.float64), model.out.b.array.astype(numpy.float64)
    B, T = x.shape
    h = numpy.zeros((B, E.shape[1])) if model.h is None else model.h.array.astype(numpy.float64)
    total = 0.0
    for j in range(T):
        h = numpy.tanh(E[x[:, j]] + h @ U.T)
        z = h @ W.T + b
        z = z - z.max(axis=1, keepdims=True)
        logp = z - numpy.log(numpy.exp(z).sum(axis=1, keepdims=True))
        total -= logp[numpy.arange(B), t[:, j]].sum()
    return total / (B * T)


@pytest.mark.parametrize('cls,mode', [(WindowModel, 'window'), (StepModel, 'step')])
def test_reported_loss_is_the_token_mean_over_the_whole_window(cls, mode):
    initializers.set_seed(0)
    model = cls()
    opt = optimizers.SGD(lr=0.1)
    opt.setup(model)
    rng = numpy.random.default_rng(2)
    x = rng.integers(0, 7, size=(3, 6)).astype(numpy.int32)
    t = rng.integers(0, 7, size=(3, 6)).astype(numpy.int32)
    expected = _reference_mean_loss(model, x, t)
    before = model.out.b.array.copy()
    loss = bptt_update(model, opt, x, t, mode=mode)
    assert isinstance(loss, float)
    assert loss == pytest.approx(expected, rel=1e-5)
    # A per-step mean of only the last step would differ: the window's tokens all count.
    assert not numpy.array_equal(before, model.out.b.array)        # an update happened
    # Second window: the carried state is used (reference starts from model.h).
    x2 = rng.integers(0, 7, size=(3, 6)).astype(numpy.int32)
    t2 = rng.integers(0, 7, size=(3, 6)).astype(numpy.int32)
    expected2 = _reference_mean_loss(model, x2, t2)
    assert bptt_update(model, opt, x2, t2, mode=mode) == pytest.approx(expected2, rel=1e-5)


def test_window_and_step_modes_give_the_same_update():
    rng = numpy.random.default_rng(3)
    x = rng.integers(0, 7, size=(2, 5)).astype(numpy.int32)
    t = rng.integers(0, 7, size=(2, 5)).astype(numpy.int32)
    results = []
    for cls, mode in ((WindowModel, 'window'), (StepModel, 'step')):
        initializers.set_seed(4)
        m = cls()
        opt = optimizers.SGD(lr=0.5)
        opt.setup(m)
        loss = bptt_update(m, opt, x, t, mode=mode)
        results.append((loss, {k: p.array.copy() for k, p in m.namedparams()}))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-6)
    for k in results[0][1]:
        numpy.testing.assert_allclose(results[0][1][k], results[1][1][k], rtol=1e-5, atol=1e-6)


def test_gradient_is_that_of_the_mean_loss():
    """SGD with lr=1 moves each parameter by exactly -d(mean loss)/d(param)."""
    initializers.set_seed(5)
    model = WindowModel()
    x = numpy.array([[1, 2, 3], [4, 5, 6]], numpy.int32)
    t = numpy.array([[2, 3, 4], [5, 6, 0]], numpy.int32)
    ref = model.copy('copy')
    ref.cleargrads()
    y = ref(x).reshape(6, 7)
    F.softmax_cross_entropy(y, t.reshape(6)).backward()
    opt = optimizers.SGD(lr=1.0)
    opt.setup(model)
    b0 = model.out.b.array.copy()
    bptt_update(model, opt, x, t)
    numpy.testing.assert_allclose(b0 - model.out.b.array, ref.out.b.grad, rtol=1e-5, atol=1e-7)


def test_graph_is_cut_after_the_update():
    initializers.set_seed(6)
    model = WindowModel()
    opt = optimizers.SGD(lr=0.1)
    opt.setup(model)
    x = numpy.array([[1, 2, 3, 4]], numpy.int32)
    bptt_update(model, opt, x, x)
    h = model.h
    assert isinstance(h, Variable)
    assert h.creator is None                       # the carried state is a leaf now
    # Nothing keeps the old graph alive: a node that was behind the loss dies.
    logits = model(x)
    node_ref = weakref.ref(logits.creator)
    del logits
    bptt_update(model, opt, x, x)
    gc.collect()
    assert model.h.creator is None
    # The node recorded before this update was only reachable through the old graph.
    assert node_ref() is None


def test_graph_behind_the_carried_state_is_freed():
    initializers.set_seed(7)
    model = WindowModel()
    opt = optimizers.SGD(lr=0.1)
    opt.setup(model)
    x = numpy.array([[1, 2, 3], [3, 2, 1]], numpy.int32)
    refs = []
    for _ in range(3):
        bptt_update(model, opt, x, x)
        refs.append(weakref.ref(model.h))
    # Only the newest carried state is alive; each window's graph went with its update.
    gc.collect()
    assert refs[-1]() is model.h
    assert all(r() is None for r in refs[:-1])


def test_non_finite_loss_skips_the_update_and_raises():
    initializers.set_seed(8)
    model = WindowModel()
    opt = optimizers.SGD(lr=0.1)
    opt.setup(model)
    model.out.b.array[0] = numpy.nan
    before = {k: p.array.copy() for k, p in model.namedparams()}
    x = numpy.array([[1, 2]], numpy.int32)
    with pytest.raises(NonFiniteLossError) as e:
        bptt_update(model, opt, x, x)
    assert numpy.isnan(e.value.loss)
    assert opt.t == 0
    for k, p in model.namedparams():
        numpy.testing.assert_array_equal(p.array, before[k])
        assert p.grad is None
    assert model.h.creator is None


def test_window_loss_sum_and_count_and_ignore_label():
    initializers.set_seed(9)
    model = WindowModel()
    x = numpy.array([[1, 2, 3], [4, 5, 6]], numpy.int32)
    t = numpy.array([[2, -1, 4], [5, 6, -1]], numpy.int32)
    s, n = window_loss(model, x, t)
    assert n == 4
    model.h = None
    logits = model(x).array.reshape(6, 7).astype(numpy.float64)
    tt = t.reshape(6)
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - numpy.log(numpy.exp(z).sum(axis=1, keepdims=True))
    ref = -sum(logp[i, tt[i]] for i in range(6) if tt[i] != -1)
    assert float(s.array) == pytest.approx(ref, rel=1e-5)


def test_bad_mode_and_shapes():
    model = WindowModel()
    opt = optimizers.SGD(lr=0.1)
    opt.setup(model)
    x = numpy.zeros((2, 3), numpy.int32)
    with pytest.raises(ValueError, match="mode must be"):
        bptt_update(model, opt, x, x, mode='fused')
    with pytest.raises(ValueError, match='shape'):
        bptt_update(model, opt, x, numpy.zeros((2, 4), numpy.int32))


class _StepLSTM(Chain):
    """EmbedID -> stateful L.LSTM -> Linear, one column per call ('step' mode)."""

    def __init__(self, V, H):
        super().__init__()
        with self.init_scope():
            self.embed = L.EmbedID(V, H)
            self.rnn = L.LSTM(H, H)
            self.out = L.Linear(H, V)

    def forward(self, x):
        return self.out(self.rnn(self.embed(x)))


class _NStepLSTMModel(Chain):
    """The same network with L.NStepLSTM over the whole window ('window' mode)."""

    def __init__(self, V, H):
        super().__init__()
        with self.init_scope():
            self.embed = L.EmbedID(V, H)
            self.rnn = L.NStepLSTM(1, H, H, 0.0)
            self.out = L.Linear(H, V)
        self.h = self.c = None

    def forward(self, x):
        B, T = x.shape
        self.h, self.c, ys = self.rnn(self.h, self.c, self.embed(x))
        return self.out(ys.reshape(B * T, -1)).reshape(B, T, -1)

    def unchain_state(self):
        # hy/cy come from a node the loss (which reads ys) does not depend on.
        self.h.unchain_backward()
        self.c.unchain_backward()


def test_library_lstm_links_in_both_modes_give_the_same_losses_and_cut_graphs():
    initializers.set_seed(10)
    fast = _NStepLSTMModel(9, 6)
    slow = _StepLSTM(9, 6)
    slow.embed.W.array[...] = fast.embed.W.array
    slow.out.W.array[...] = fast.out.W.array
    fast.rnn.copy_to_stepwise([slow.rnn])
    opt_f = optimizers.SGD(lr=0.3)
    opt_f.setup(fast)
    opt_s = optimizers.SGD(lr=0.3)
    opt_s.setup(slow)
    if getattr(fast.rnn[0], 'b_hh', None) is not None:
        # A cuDNN-style pair b_ih + b_hh gets the gradient twice, so SGD would move the sum
        # twice as fast as the stepwise link's single bias: keep biases fixed to compare.
        for p in (fast.rnn[0].b_ih, fast.rnn[0].b_hh, slow.rnn.upward.b):
            p.update_rule.enabled = False
    rng = numpy.random.default_rng(11)
    for _ in range(3):
        x = rng.integers(0, 9, size=(2, 5)).astype(numpy.int32)
        t = rng.integers(0, 9, size=(2, 5)).astype(numpy.int32)
        a = bptt_update(fast, opt_f, x, t, mode='window')
        b = bptt_update(slow, opt_s, x, t, mode='step')
        assert a == pytest.approx(b, rel=1e-5)
        # The carried states are leaves after each update (the graph was cut).
        assert fast.h.creator is None and fast.c.creator is None
        assert slow.rnn.h.creator is None and slow.rnn.c.creator is None
