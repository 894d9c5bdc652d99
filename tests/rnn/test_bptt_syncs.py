"""Device-to-host transfers per truncated-BPTT window, counted without a GPU.

``backend.counting_fetches()`` counts every call of the library's one fetch helper
(``backend.to_host`` / ``backend.fetch_scalars``) and defers the NumPy id/label checks as
it defers CuPy ones, so a CPU run follows the fetch pattern of a GPU run. A window of an
n-step model (embedding folded into the first projection, ``forward_embed``) and a window
of stepwise links, each with Adam and gradient clipping and with ignored targets, must
make at most one transfer: the loss, with the deferred checks riding along.
"""
import numpy
import pytest

import seqdbr
import seqdbr.links as L
import seqdbr.optimizers as O
from seqdbr.core import backend
from seqdbr.core.optimizer_hooks import GradientClipping
from seqdbr.rnn.bptt import bptt_update

V, H, B, T = 11, 8, 3, 5


class NStepLM(seqdbr.Chain):
    """embed -> NStepLSTM (forward_embed: the embedding folded into W_ih) -> linear."""

    def __init__(self):
        super().__init__()
        with self.init_scope():
            self.embed = L.EmbedID(V, H)
            self.rnn = L.NStepLSTM(1, H, H, 0.0)
            self.out = L.Linear(H, V)
        self.h = self.c = None

    def forward(self, x):
        self.h, self.c, ys = self.rnn.forward_embed(self.h, self.c, x, self.embed.W)
        return self.out(ys.reshape(B * T, H))

    def unchain_state(self):
        self.h.unchain_backward()
        self.c.unchain_backward()


class StepLM(seqdbr.Chain):
    """embed -> LSTM -> GRU -> linear, one time step per call."""

    def __init__(self):
        super().__init__()
        with self.init_scope():
            self.embed = L.EmbedID(V, H, ignore_label=-1)
            self.lstm = L.LSTM(H, H)
            self.gru = L.StatefulGRU(H, H)
            self.out = L.Linear(H, V)

    def forward(self, x):
        return self.out(self.gru(self.lstm(self.embed(x))))


def _window(seed, bad=False):
    rng = numpy.random.default_rng(seed)
    x = rng.integers(0, V, (B, T)).astype(numpy.int32)
    t = rng.integers(0, V, (B, T)).astype(numpy.int32)
    t[0, 1] = -1                      # an ignored target: the count must stay on the device
    if bad:
        t[2, 3] = V + 4
    return x, t


def _setup(model):
    opt = O.Adam()
    opt.setup(model)
    opt.add_hook(GradientClipping(0.01))      # small: the clipping branch is taken
    return opt


@pytest.mark.parametrize('make,mode', [(NStepLM, 'window'), (StepLM, 'step')],
                         ids=['nstep-window', 'stepwise-window'])
def test_one_fetch_per_window(make, mode):
    model = make()
    opt = _setup(model)
    bptt_update(model, opt, *_window(0), mode=mode)     # first window: lazy initialisation
    for seed in (1, 2):
        with backend.counting_fetches() as counter:
            loss = bptt_update(model, opt, *_window(seed), mode=mode)
        assert counter.count == 1, counter.sites
        assert isinstance(loss, float) and numpy.isfinite(loss)
    # without the finiteness check nothing is fetched: the loss stays on the device
    with backend.counting_fetches() as counter:
        lazy = bptt_update(model, opt, *_window(3), mode=mode, check_finite=False)
    assert counter.count == 0, counter.sites
    with backend.counting_fetches() as counter:
        value = float(lazy)
    assert counter.count == 1 and numpy.isfinite(value)
    assert float(lazy) == value                                   # cached


@pytest.mark.parametrize('make,mode', [(NStepLM, 'window'), (StepLM, 'step')],
                         ids=['nstep-window', 'stepwise-window'])
def test_a_deferred_label_check_raises_at_the_fetch_and_updates_nothing(make, mode):
    model = make()
    opt = _setup(model)
    bptt_update(model, opt, *_window(0), mode=mode)
    before = {k: p.array.copy() for k, p in model.namedparams()}
    with backend.counting_fetches() as counter:
        with pytest.raises(IndexError, match=r'invalid label\(s\) %d' % (V + 4)):
            bptt_update(model, opt, *_window(1, bad=True), mode=mode)
    assert counter.count >= 1
    for k, p in model.namedparams():
        numpy.testing.assert_array_equal(p.array, before[k], err_msg=k)
        assert p.grad is None, k
    # the queue is empty afterwards: the next window runs normally
    assert numpy.isfinite(bptt_update(model, opt, *_window(2), mode=mode))


def test_a_deferred_id_check_raises_at_the_next_fetch():
    W = numpy.ones((4, 2), numpy.float32)
    with backend.counting_fetches() as counter:
        y = seqdbr.functions.embed_id(numpy.array([1, 7, 2]), W)     # no fetch, no error yet
        assert counter.count == 0
        with pytest.raises(IndexError, match=r'out-of-range id\(s\) 7'):
            backend.to_host(y.array)
    # outside the counter NumPy ids are checked at once
    with pytest.raises(IndexError, match=r'out-of-range id\(s\) 7'):
        seqdbr.functions.embed_id(numpy.array([1, 7, 2]), W)


def test_window_loss_on_an_all_ignored_window_is_a_clear_error():
    model = NStepLM()
    opt = _setup(model)
    x, t = _window(0)
    t[:] = -1
    with pytest.raises(ValueError, match='nothing to learn'):
        bptt_update(model, opt, x, t)
    with backend.counting_fetches():
        with pytest.raises(ValueError, match='nothing to learn'):
            bptt_update(model, opt, x, t)


def test_gradient_clipping_last_norm_is_kept_lazily():
    model = NStepLM()
    opt = O.Adam()
    opt.setup(model)
    hook = GradientClipping(0.01)
    opt.add_hook(hook)
    bptt_update(model, opt, *_window(0))
    norm = hook.last_norm
    assert isinstance(norm, float) and norm > 0.01
    # the gradients were rescaled to the threshold
    total = sum(float((p.grad.astype(numpy.float64) ** 2).sum()) for p in model.params())
    assert numpy.sqrt(total) == pytest.approx(0.01, rel=1e-4)


def test_a_long_stepwise_window_still_makes_one_fetch():
    # 2 deferred checks per step (ids and labels): 300 queued checks are merged on the
    # device as they pile up, never read early
    model = StepLM()
    opt = _setup(model)
    rng = numpy.random.default_rng(7)
    x = rng.integers(0, V, (2, 150)).astype(numpy.int32)
    t = rng.integers(0, V, (2, 150)).astype(numpy.int32)
    bptt_update(model, opt, x, t, mode='step')
    with backend.counting_fetches() as counter:
        loss = bptt_update(model, opt, x, t, mode='step')
    assert counter.count == 1, counter.sites
    assert numpy.isfinite(loss)
