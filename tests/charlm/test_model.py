"""CharRNN: the stepwise and n-step implementations are the same model."""
import numpy
import pytest

from seqdbr import optimizers
from seqdbr.charlm.model import CharRNN
from seqdbr.core import initializers
from seqdbr.core.config import using_config
from seqdbr.rnn.bptt import bptt_update, window_loss


def _windows(n, V=13, B=3, T=7, seed=0):
    rng = numpy.random.default_rng(seed)
    return [(rng.integers(0, V, (B, T)).astype(numpy.int32),
             rng.integers(0, V, (B, T)).astype(numpy.int32)) for _ in range(n)]


@pytest.mark.parametrize('kind', ['lstm', 'gru'])
def test_stepwise_and_nstep_give_the_same_loss_on_the_same_weights(kind):
    initializers.set_seed(1)
    fast = CharRNN(13, rnn_size=10, num_layers=3, model=kind, impl='nstep')
    slow = CharRNN(13, rnn_size=10, num_layers=3, model=kind, impl='stepwise')
    slow.load_canonical(fast.canonical_arrays())
    for x, t in _windows(3):                       # the carried state links the windows
        a, n = window_loss(fast, x, t)
        b, m = window_loss(slow, x, t)
        assert n == m == x.size
        assert float(a.array) == pytest.approx(float(b.array), rel=1e-5)
        fast.cleargrads()
        slow.cleargrads()
        a.backward()
        b.backward()
        # Gradients agree after mapping them the same way as the weights.
        ga = {'embed/W': fast.embed.W.grad, 'out/W': fast.out.W.grad}
        gb = {'embed/W': slow.embed.W.grad, 'out/W': slow.out.W.grad}
        for k in ga:
            numpy.testing.assert_allclose(ga[k], gb[k], rtol=1e-4, atol=1e-5)
        numpy.testing.assert_allclose(fast.rnn[0].W_hh.grad, slow.rnn[0].lateral.W.grad,
                                      rtol=1e-4, atol=1e-5)
        a.unchain_backward()
        b.unchain_backward()
    for k, v in fast.get_state().items():
        numpy.testing.assert_allclose(v, slow.get_state()[k], rtol=1e-5, atol=1e-6)


def test_training_steps_agree_between_implementations():
    initializers.set_seed(2)
    fast = CharRNN(13, rnn_size=8, num_layers=2, impl='nstep')
    slow = CharRNN(13, rnn_size=8, num_layers=2, impl='stepwise')
    slow.load_canonical(fast.canonical_arrays())
    # Same weights, same loss, same gradients: the training dynamics agree.
    same_layout = list(fast.canonical_params()) == list(slow.canonical_params())
    opts = {}
    for m in (fast, slow):
        opts[m.impl] = optimizers.Adam(alpha=1e-2)
        opts[m.impl].setup(m)
        if not same_layout:
            # An LSTM bias kept as a pair b_ih + b_hh (cuDNN style) moves twice as fast as a
            # single bias; compare the dynamics of everything else.
            for k, p in m.canonical_params().items():
                if k.startswith('rnn/') and '/b' in k:
                    p.update_rule.enabled = False
    for x, t in _windows(4, seed=5):
        a = bptt_update(fast, opts['nstep'], x, t)
        b = bptt_update(slow, opts['stepwise'], x, t)
        assert a == pytest.approx(b, rel=1e-4)
        # The carried state is a leaf after the update, in both implementations.
        assert fast._h.creator is None and fast._c.creator is None
        assert all(l.h.creator is None and l.c.creator is None for l in slow.rnn)
    fa, sa = fast.canonical_arrays(), slow.canonical_arrays()
    for k in fa:
        if k in sa:
            numpy.testing.assert_allclose(fa[k], sa[k], rtol=1e-4, atol=1e-5)


def test_dropout_is_active_only_in_training():
    initializers.set_seed(3)
    m = CharRNN(13, rnn_size=8, num_layers=2, dropout=0.5)
    x = _windows(1)[0][0]
    with using_config('train', False):
        a = m(x).array
        m.reset_state()
        b = m(x).array
    numpy.testing.assert_array_equal(a, b)
    m.reset_state()
    assert not numpy.array_equal(m(x).array, a)


def test_state_round_trip_and_batch_checks():
    initializers.set_seed(4)
    for impl in ('nstep', 'stepwise'):
        m = CharRNN(13, rnn_size=6, num_layers=2, impl=impl)
        assert m.get_state() is None
        x = _windows(2)
        m(x[0][0])
        st = {k: v.copy() for k, v in m.get_state().items()}
        assert st['h'].shape == (2, 3, 6) and st['c'].shape == (2, 3, 6)
        y1 = m(x[1][0]).array
        m.set_state(st)
        numpy.testing.assert_array_equal(m(x[1][0]).array, y1)
        with pytest.raises(ValueError, match='batch size 3 but the input has 1 rows'):
            m(x[1][0][:1])
        m.reset_state()
        assert m(x[1][0][:1]).shape == (1, 7, 13)
        with pytest.raises(ValueError, match='needs h, c'):
            m.set_state({'h': st['h']})
        with pytest.raises(ValueError, match='shape'):
            m.set_state({'h': st['h'][:1], 'c': st['c'][:1]})


@pytest.mark.parametrize('kw,msg', [
    (dict(vocab_size=0), 'vocab_size'), (dict(rnn_size=-1), 'rnn_size'),
    (dict(dropout=1.0), 'dropout'), (dict(model='rnn'), "'lstm' or 'gru'"),
    (dict(impl='cudnn'), "'nstep' or 'stepwise'")])
def test_bad_arguments(kw, msg):
    args = dict(vocab_size=5)
    args.update(kw)
    with pytest.raises(ValueError, match=msg):
        CharRNN(**args)


def test_input_must_be_a_window_of_ids():
    m = CharRNN(5, rnn_size=4, num_layers=1)
    with pytest.raises(ValueError, match=r'\(batch, time\) array of integer ids'):
        m(numpy.zeros((2, 3), numpy.float32))
    with pytest.raises(ValueError, match='integer ids'):
        m(numpy.zeros(3, numpy.int32))


@pytest.mark.parametrize('impl', ['nstep', 'stepwise'])
def test_forget_bias_sets_the_forget_gate_block_only(impl):
    H = 4
    for fb, want in ((None, 0.0), (1.0, 1.0), (-0.5, -0.5)):
        kw = {} if fb is None else {'forget_bias': fb}
        m = CharRNN(7, rnn_size=H, num_layers=2, impl=impl, **kw)
        assert m.config()['forget_bias'] == want
        for l in range(2):
            b = m.canonical_arrays()['rnn/%d/b' % l]      # [i | f | g | o], single bias
            numpy.testing.assert_array_equal(b[H:2 * H], want)
            numpy.testing.assert_array_equal(numpy.delete(b, numpy.s_[H:2 * H]), 0.0)


@pytest.mark.parametrize('bad', [float('nan'), float('inf'), '1', True])
def test_forget_bias_must_be_a_finite_number(bad):
    with pytest.raises(ValueError, match='forget_bias must be a finite number'):
        CharRNN(5, forget_bias=bad)


def test_a_config_without_forget_bias_still_builds():
    """Checkpoints written before the option existed store no forget_bias: it only sets the
    initial weights, which a checkpoint overwrites, so the default is used."""
    cfg = CharRNN(5, rnn_size=4).config()
    del cfg['forget_bias']
    assert CharRNN(**cfg).forget_bias == 0.0


def test_forget_bias_range_and_numpy_scalars():
    assert CharRNN(5, rnn_size=4, forget_bias=numpy.float32(2.0)).forget_bias == 2.0
    assert CharRNN(5, rnn_size=4, forget_bias=numpy.int64(-1)).forget_bias == -1.0
    for bad in (1e39, -1e39, 10 ** 400):
        with pytest.raises(ValueError, match='float32 range'):
            CharRNN(5, forget_bias=bad)
