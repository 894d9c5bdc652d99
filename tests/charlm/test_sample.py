"""Sampling: prime fed once, temperature 0 == argmax, seeds, top-k, unknown characters,
non-finite logits, streaming, and the Japanese round trip on real data."""
import io
import math

import numpy
import pytest

from seqdbr.charlm.checkpoint import load_checkpoint, save_checkpoint
from seqdbr.charlm.cli import sample_main
from seqdbr.charlm.errors import SamplingError
from seqdbr.charlm.model import CharRNN
from seqdbr.charlm.sample import choose, sample
from seqdbr.charlm.vocab import UnknownCharacterError, Vocabulary
from seqdbr.core import initializers
from seqdbr.core.config import config, no_backprop_mode, using_config

TEXT = 'the quick brown fox jumps over the lazy dog\n\u732b\u304c\u597d\u304d\u3002\n'


@pytest.fixture
def lm():
    initializers.set_seed(3)
    vocab = Vocabulary.from_text(TEXT)
    model = CharRNN(len(vocab), rnn_size=12, num_layers=2)
    # Larger output weights make the distribution peaked enough for argmax tests to matter.
    model.out.W.array[...] *= 4
    return model, vocab


def test_temperature_zero_equals_argmax(lm):
    model, vocab = lm
    a = sample(model, vocab, 40, prime='the ', temperature=0)
    b = sample(model, vocab, 40, prime='the ', argmax=True,
               rng=numpy.random.default_rng(0))
    assert a == b and a.startswith('the ')
    # ... and both are the greedy path computed by hand.
    model.reset_state()
    ids = list(vocab.encode('the '))
    y = model(numpy.array([ids], numpy.int32)).array[0, -1]
    greedy = []
    for _ in range(40):
        k = int(numpy.argmax(y))
        greedy.append(k)
        y = model(numpy.array([[k]], numpy.int32)).array[0, -1]
    assert a == 'the ' + vocab.decode(numpy.array(greedy))


def test_same_seed_same_text_and_other_seeds_differ(lm):
    model, vocab = lm
    runs = [sample(model, vocab, 60, prime='fox', rng=numpy.random.default_rng(s))
            for s in (7, 7, 8)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
    assert all(r.startswith('fox') and len(r) == 63 for r in runs)


def test_prime_is_fed_exactly_once_over_its_whole_length(lm, monkeypatch):
    model, vocab = lm
    prime = ('the lazy dog ' * 40)[:500]
    calls = []
    real = CharRNN.forward

    def spy(self, x):
        calls.append((x.shape, config.enable_backprop, config.train))
        return real(self, x)

    monkeypatch.setattr(CharRNN, 'forward', spy)
    out = sample(model, vocab, 5, prime=prime, temperature=0)
    assert out.startswith(prime) and len(out) == 505
    assert calls[0][0] == (1, 500)                         # the whole prime in one call
    assert [c[0] for c in calls[1:]] == [(1, 1)] * 4       # then one char per call
    assert all(not bp and not tr for _, bp, tr in calls)   # no graph, no dropout
    # The state after the prime equals the state of one pass over the prime (run the same
    # way: without a graph, which takes the inference path of the n-step LSTM).
    model.reset_state()
    with no_backprop_mode(), using_config('train', False):
        real(model, vocab.encode(prime)[None, :])
    ref = model.get_state()
    sample(model, vocab, 0, prime=prime)
    for k, a in model.get_state().items():
        numpy.testing.assert_array_equal(a, ref[k])


def test_choose_matches_the_tempered_distribution():
    logits = numpy.array([2.0, 1.0, 0.0, -1.0], numpy.float32)
    rng = numpy.random.default_rng(0)
    for temp in (1.0, 0.5):
        counts = numpy.bincount([choose(logits, temp, rng=rng) for _ in range(20000)],
                                minlength=4)
        p = numpy.exp(logits / temp) / numpy.exp(logits / temp).sum()
        numpy.testing.assert_allclose(counts / 20000, p, atol=0.015)
    assert choose(logits, 0.0) == 0
    assert choose(numpy.array([0.0, 5.0, 5.0]), 0) == 1         # first maximum on ties


def test_top_k_restricts_the_choice():
    logits = numpy.array([0.1, 3.0, 2.9, -2.0, 2.8])
    rng = numpy.random.default_rng(1)
    picks = {choose(logits, 5.0, top_k=2, rng=rng) for _ in range(500)}
    assert picks == {1, 2}
    assert {choose(logits, 3.0, top_k=1, rng=rng) for _ in range(50)} == {1}
    assert len({choose(logits, 50.0, top_k=10, rng=rng) for _ in range(2000)}) == 5


@pytest.mark.parametrize('temp', [-1, -0.001, float('nan'), float('inf')])
def test_bad_temperature_is_an_error(lm, temp):
    model, vocab = lm
    with pytest.raises(SamplingError, match='temperature'):
        sample(model, vocab, 5, temperature=temp)


def test_bad_top_k_and_length(lm):
    model, vocab = lm
    with pytest.raises(SamplingError, match='top_k'):
        sample(model, vocab, 5, top_k=0)
    with pytest.raises(SamplingError, match='length'):
        sample(model, vocab, -3)


def test_non_finite_logits_raise_instead_of_emitting_a_bogus_index(lm):
    with pytest.raises(SamplingError, match='non-finite logits'):
        choose(numpy.array([0.0, numpy.nan, 1.0]), 1.0, rng=numpy.random.default_rng(0))
    with pytest.raises(SamplingError, match='non-finite'):
        choose(numpy.array([0.0, numpy.inf]), 0)
    model, vocab = lm
    model.rnn[0].W_hh.array[0, 0] = numpy.nan
    out = io.StringIO()
    with pytest.raises(SamplingError):
        sample(model, vocab, 5, prime='dog', out=out, rng=numpy.random.default_rng(0))
    assert out.getvalue() == ''                          # nothing was printed


def test_unknown_prime_characters(lm):
    model, vocab = lm
    with pytest.raises(UnknownCharacterError) as e:
        sample(model, vocab, 5, prime='the QUICK ß')
    msg = str(e.value)
    for c in 'QUICKß':
        assert repr(c) in msg
    assert '--unknown skip' in msg
    out = sample(model, vocab, 5, prime='the QUICK fox', unknown='skip', temperature=0)
    assert out.startswith('the QUICK fox')


def test_output_streams_piece_by_piece(lm):
    model, vocab = lm

    class Recorder:
        def __init__(self):
            self.writes = []

        def write(self, s):
            self.writes.append(s)

        def flush(self):
            pass

    rec = Recorder()
    text = sample(model, vocab, 12, prime='dog', out=rec, rng=numpy.random.default_rng(2))
    assert rec.writes[0] == 'dog' and len(rec.writes) == 13
    assert ''.join(rec.writes) == text


def test_empty_prime_starts_from_a_newline(lm):
    model, vocab = lm
    text = sample(model, vocab, 10, temperature=0)
    assert len(text) == 10
    assert text == sample(model, vocab, 10, prime='\n', temperature=0)[1:]


def test_bytes_vocabulary(tmp_path):
    initializers.set_seed(0)
    data = 'caf\u00e9 \u732b'.encode('utf-8') * 3
    vocab = Vocabulary.from_text(data)
    model = CharRNN(len(vocab), rnn_size=8, num_layers=1)
    out = io.BytesIO()
    res = sample(model, vocab, 20, prime='caf\u00e9', out=out, rng=numpy.random.default_rng(0))
    assert isinstance(res, bytes) and res.startswith('caf\u00e9'.encode()) and len(res) == 25
    assert out.getvalue() == res


def test_cli_same_seed_same_text_and_num_samples(lm, tmp_path, capfdbinary):
    model, vocab = lm
    path = save_checkpoint(tmp_path / 'm.npz', model, vocab)
    args = [str(path), '--length', '30', '--prime', 'the ', '--seed', '5']
    assert sample_main(args) == 0
    first = capfdbinary.readouterr().out
    assert sample_main(args) == 0
    assert capfdbinary.readouterr().out == first
    assert first.decode('utf-8').startswith('the ') and len(first.decode('utf-8')) == 35
    assert sample_main(args + ['--num-samples', '3']) == 0
    text = capfdbinary.readouterr().out.decode('utf-8')
    assert text.count('--- sample ') == 3
    assert sample_main([str(path), '--length', '30', '--prime', 'the ', '--temperature',
                        '0']) == 0
    t0 = capfdbinary.readouterr().out
    assert sample_main([str(path), '--length', '30', '--prime', 'the ', '--argmax']) == 0
    assert capfdbinary.readouterr().out == t0
    prime_file = tmp_path / 'prime.txt'
    prime_file.write_bytes('\ufeffthe dog\n'.encode('utf-8'))     # BOM dropped
    assert sample_main([str(path), '--length', '3', '--prime-file', str(prime_file),
                        '--seed', '1']) == 0
    assert capfdbinary.readouterr().out.startswith(b'the dog\n')


def test_japanese_round_trip_on_real_data(shared_data, tmp_path, charlm, capfdbinary):
    """Train 20 steps on the Japanese corpus, then sample with a Japanese prime: the output
    is valid UTF-8 and begins with the exact prime."""
    raw = (shared_data / 'neko-ja' / 'neko.txt').read_bytes()
    text = raw.decode('utf-8')
    assert '\r\n' in text
    path = tmp_path / 'neko.txt'
    path.write_text(text[:30000], encoding='utf-8', newline='')
    res, summary = charlm.run_train(path, tmp_path / 'neko', rnn_size=16, batch_size=4,
                                    seq_length=10, max_iters=20, eval_every=20)
    assert res.iteration == 20
    prime = '\u543e\u8f29\u306f\u732b\u3067\u3042\u308b\u3002\r\n'      # 吾輩は猫である。
    assert sample_main([res.latest, '--prime', prime, '--length', '50', '--seed', '0']) == 0
    out = capfdbinary.readouterr().out
    decoded = out.decode('utf-8')                       # valid UTF-8 (strict)
    assert decoded.startswith(prime)
    assert len(decoded) == len(prime) + 50 + 1           # + the final newline
    vocab = load_checkpoint(res.latest).vocab
    assert all(c in vocab for c in decoded[:-1])
    assert not math.isnan(load_checkpoint(res.latest).meta['history']['train_loss'][-1])


# -- top-k: exact probabilities, the tie rule, and the CLI flag ---------------------------------

def _reference_top_k_probs(z, temperature, top_k):
    """NumPy reference: softmax(z / T) over the logits >= the k-th largest (ties kept)."""
    z = numpy.asarray(z, numpy.float64)
    keep = numpy.ones(z.size, bool)
    if top_k is not None and top_k < z.size:
        kth = numpy.sort(z)[::-1][top_k - 1]
        keep = z >= kth
    w = numpy.where(keep, numpy.exp((z - z.max()) / temperature), 0.0)
    return w / w.sum()


class _FixedUniform:
    """Stands in for a numpy Generator: ``random()`` returns the given numbers in turn."""

    def __init__(self, values):
        self.values = list(values)

    def random(self):
        return self.values.pop(0)


def _picks_at(logits, temperature, top_k, us):
    return [choose(logits, temperature, top_k=top_k, rng=_FixedUniform([u])) for u in us]


@pytest.mark.parametrize('logits,temperature,top_k', [
    ([0.1, 3.0, 2.9, -2.0, 2.8], 1.0, 2),
    ([0.1, 3.0, 2.9, -2.0, 2.8], 0.7, 3),
    ([1.0, 3.0, 2.0, 3.0, 2.0, 0.0], 1.3, 3),      # tie at the k-th value: 4 survivors
    ([1.0, 3.0, 2.0, 3.0, 2.0, 0.0], 2.0, 1),      # tie at the top: 2 survivors
    ([0.5, -0.5, 0.25], 0.5, 10),                   # k >= V: no restriction
    ([0.5, -0.5, 0.25], 0.5, None),
])
def test_top_k_probabilities_are_exactly_the_renormalised_softmax(logits, temperature, top_k):
    """The documented draw is inverse-CDF with ``rng.random()``: index i is chosen for u in
    [C_{i-1}, C_i), C the cumulative reference probabilities. Probing u just inside both
    ends of every interval pins each probability to 1e-9, so survivors with equal
    probabilities, a dropped tie or a wrong temperature all fail."""
    p = _reference_top_k_probs(logits, temperature, top_k)
    cdf = numpy.cumsum(p)
    lo = numpy.concatenate([[0.0], cdf[:-1]])
    for i in numpy.flatnonzero(p > 0):
        assert _picks_at(logits, temperature, top_k, [lo[i] + 1e-9, cdf[i] - 1e-9]) == [i, i]
    # indices outside the top k are never reachable, whatever u is
    us = numpy.linspace(0, 1, 2001, endpoint=False)
    assert set(_picks_at(logits, temperature, top_k, us)) == set(numpy.flatnonzero(p > 0))


def test_top_k_keeps_every_tie_at_the_kth_value_with_its_own_probability():
    logits = numpy.array([1.0, 3.0, 2.0, 3.0, 2.0, 0.0])
    rng = numpy.random.default_rng(11)
    n = 40000
    counts = numpy.bincount([choose(logits, 1.0, top_k=3, rng=rng) for _ in range(n)],
                            minlength=6)
    e = numpy.exp([3.0, 2.0]) / (2 * numpy.exp(3.0) + 2 * numpy.exp(2.0))
    expected = numpy.array([0, e[0], e[1], e[0], e[1], 0])
    # both values tied at the 3rd largest (2.0, indices 2 and 4) survive, at exp(2)/Z each
    numpy.testing.assert_allclose(counts / n, expected, atol=0.01)
    assert counts[0] == counts[5] == 0


def _reference_sample(ck, prime, length, temperature, top_k, seed):
    """Independent sampler for the CLI check: one window for the prime, then one character
    at a time, each drawn from the reference top-k distribution by inverse CDF."""
    model = ck.build_model()
    vocab = ck.vocab
    rng = numpy.random.default_rng(seed)
    with no_backprop_mode(), using_config('train', False):
        y = model(vocab.encode(prime)[None, :]).array[0, -1]
        out = []
        for _ in range(length):
            cdf = numpy.cumsum(_reference_top_k_probs(y, temperature, top_k))
            k = int(numpy.searchsorted(cdf, rng.random() * cdf[-1], side='right'))
            out.append(k)
            y = model(numpy.array([[k]], numpy.int32)).array[0, -1]
    return prime + vocab.decode(numpy.array(out, numpy.int32))


def test_cli_top_k_reaches_the_sampler(lm, tmp_path, capfdbinary):
    model, vocab = lm
    path = save_checkpoint(tmp_path / 'm.npz', model, vocab)
    base = [str(path), '--length', '40', '--prime', 'the ', '--temperature', '3']

    def run(*extra):
        assert sample_main(base + list(extra)) == 0
        return capfdbinary.readouterr().out.decode('utf-8')[:-1]      # drop the final newline

    # --top-k 1 leaves only the most likely character, at any temperature: greedy text
    greedy = run('--argmax')
    assert run('--top-k', '1', '--seed', '4') == greedy
    assert run('--seed', '4') != greedy                  # (without it, temperature 3 is not)
    ck = load_checkpoint(path)
    for k in (2, 5):
        assert run('--top-k', str(k), '--seed', '9') == \
            _reference_sample(ck, 'the ', 40, 3.0, k, 9)


def test_probabilities_exact_for_float32_and_huge_logits():
    """Logits are converted to float64 before the softmax (float32 arithmetic would move
    the interval ends by ~1e-7), and huge logits neither overflow nor lose precision."""
    for logits, temp, k in (([0.3, 1.7, -0.2, 1.1], 0.9, None), ([1000.0, 999.0, 998.5], 1.0, 2),
                            ([-1e4, -1e4 + 2, -1e4 + 1], 2.0, None)):
        z = numpy.asarray(logits, numpy.float32 if abs(logits[0]) < 100 else numpy.float64)
        p = _reference_top_k_probs(z.astype(numpy.float64), temp, k)
        cdf = numpy.cumsum(p)
        lo = numpy.concatenate([[0.0], cdf[:-1]])
        for i in numpy.flatnonzero(p > 0):
            assert _picks_at(z, temp, k, [lo[i] + 1e-9, cdf[i] - 1e-9]) == [i, i]


def test_u_exactly_zero_never_picks_an_excluded_index():
    """``Generator.random()`` can return exactly 0.0: the draw must still land on a kept
    index (the first one with a non-zero probability), not on an excluded one before it."""
    logits = numpy.array([-3.0, 2.0, 1.0, 0.5])
    assert _picks_at(logits, 1.0, 2, [0.0]) == [1]
    assert _picks_at(logits, 1.0, None, [0.0]) == [0]


def test_single_logit_and_bad_logit_shapes():
    assert choose(numpy.array([0.25]), 1.0, rng=numpy.random.default_rng(0)) == 0
    assert choose([0.25], 1.0, top_k=3, rng=numpy.random.default_rng(0)) == 0
    for bad, shape in ((numpy.zeros(0), '(0,)'), (numpy.zeros((2, 3)), '(2, 3)'),
                       (numpy.float64(1.0), '()')):
        with pytest.raises(SamplingError) as e:
            choose(bad, 1.0, rng=numpy.random.default_rng(0))
        assert str(e.value) == 'logits must be a non-empty 1-D vector, got shape %s' % shape


def test_sampling_error_messages_in_full():
    """The whole message, so a garbled or truncated one fails."""
    def msg(fn, *a, **kw):
        with pytest.raises(SamplingError) as e:
            fn(*a, **kw)
        return str(e.value)

    for bad in (float('nan'), True, '1', None):
        assert msg(choose, [0.0], bad) == \
            'temperature must be a finite number >= 0, got %r' % (bad,)
    assert msg(choose, [0.0], -0.5) == (
        'temperature must be >= 0, got -0.5: use 0 for the most likely character (same as '
        '--argmax), values below 1 for more conservative text and above 1 for more '
        'surprising text')
    for bad in (0, -2, True, 2.0, '3'):
        assert msg(choose, [0.0], 1.0, top_k=bad) == \
            'top_k must be an int >= 1 (or None for no limit), got %r' % (bad,)
    assert msg(choose, [0.0, 1.0], 1.0) == (
        'a numpy.random.Generator (rng) is needed to sample; pass '
        'rng=numpy.random.default_rng(seed)')
    assert msg(choose, [0.0, numpy.nan, numpy.inf, 1.0], 1.0) == (
        'the model produced 2 non-finite logits (NaN or inf; first at index 1 of 4); its '
        'weights are corrupt or diverged, so no character can be chosen. Use another '
        'checkpoint (e.g. best.npz) or retrain with a lower --learning-rate')


def test_length_must_be_a_non_negative_int(lm):
    model, vocab = lm
    for bad in (-1, 2.0, True, '3', None):
        with pytest.raises(SamplingError) as e:
            sample(model, vocab, bad, temperature=0)
        assert str(e.value) == 'length must be an int >= 0, got %r' % (bad,)
    assert sample(model, vocab, 0, prime='dog') == 'dog'


def test_every_piece_is_flushed_and_streams_without_flush_work(lm):
    model, vocab = lm

    class Counting:
        def __init__(self):
            self.events = []

        def write(self, s):
            self.events.append(('write', s))

        def flush(self):
            self.events.append(('flush',))

    out = Counting()
    text = sample(model, vocab, 6, prime='dog', out=out, rng=numpy.random.default_rng(1))
    kinds = [e[0] for e in out.events]
    assert kinds == ['write', 'flush'] * 7                # the prime, then each character
    assert ''.join(e[1] for e in out.events if e[0] == 'write') == text

    class WriteOnly:
        def __init__(self):
            self.parts = []

        def write(self, s):
            self.parts.append(s)

    w = WriteOnly()
    assert sample(model, vocab, 4, prime='dog', out=w, temperature=0) == ''.join(w.parts)
    w = WriteOnly()
    assert sample(model, vocab, 0, prime='dog', out=w) == 'dog' and w.parts == ['dog']
    w = WriteOnly()
    sample(model, vocab, 0, prime='', out=w)
    assert w.parts == []                                  # nothing to write: no empty write


def test_defaults_temperature_one_and_unknown_error(lm):
    model, vocab = lm
    logits = [0.3, -1.0, 2.0]
    p = _reference_top_k_probs(logits, 1.0, None)
    cdf = numpy.cumsum(p)
    assert [choose(logits, rng=_FixedUniform([u])) for u in cdf - 1e-9] == [0, 1, 2]
    runs = [sample(model, vocab, 40, prime='the ', rng=numpy.random.default_rng(3), **kw)
            for kw in ({}, {'temperature': 1.0}, {'temperature': 2.0})]
    assert runs[0] == runs[1] != runs[2]
    from seqdbr.charlm.sample import encode_prime
    with pytest.raises(UnknownCharacterError):
        encode_prime(vocab, 'the Q')
    with pytest.raises(UnknownCharacterError):
        sample(model, vocab, 3, prime='the Q', temperature=0)


def test_without_rng_sampling_draws_from_a_fresh_generator(lm):
    """rng=None is documented: a fresh, unseeded generator for sampling (and none needed
    for greedy decoding)."""
    model, vocab = lm
    for kw in ({}, {'temperature': 1.0}, {'temperature': 0.5, 'top_k': 3}):
        out = sample(model, vocab, 30, prime='dog', **kw)
        assert out.startswith('dog') and len(out) == 33
    assert sample(model, vocab, 10, prime='dog', argmax=True) == \
        sample(model, vocab, 10, prime='dog', temperature=0)


def _tiny_model(text, seed=5):
    initializers.set_seed(seed)
    vocab = Vocabulary.from_text(text)
    model = CharRNN(len(vocab), rnn_size=10, num_layers=1)
    model.out.W.array[...] *= 4
    return model, vocab


@pytest.mark.parametrize('text,start', [
    ('\tab\ncd ab\ncd\t', '\n'),                          # newline exists but is not id 0
    ('abc cab bca', None),                                 # no newline: id 0 starts
])
def test_empty_prime_start_symbol(text, start):
    """Documented: without a prime, generation starts from a newline when the vocabulary has
    one, else from the first symbol; the start symbol is not part of the output."""
    model, vocab = _tiny_model(text)
    first = start if start is not None else vocab.decode(numpy.array([0], numpy.int32))
    assert start is None or vocab.encode(start)[0] != 0
    expected = sample(model, vocab, 12, prime=first, temperature=0)[1:]
    assert sample(model, vocab, 12, temperature=0) == expected
    assert sample(model, vocab, 12, prime='', temperature=0) == expected


def test_empty_prime_start_symbol_bytes_vocabulary():
    model, vocab = _tiny_model(b'\tab\ncd ab\x00cd\t')
    assert vocab.mode == 'bytes' and 10 in vocab and vocab.encode(b'\n')[0] != 0
    expected = sample(model, vocab, 12, prime=b'\n', temperature=0)[1:]
    assert sample(model, vocab, 12, temperature=0) == expected
    model, vocab = _tiny_model(b'abc cab')                 # no newline byte: id 0
    expected = sample(model, vocab, 12, prime=vocab.decode(numpy.array([0])), temperature=0)
    assert sample(model, vocab, 12, temperature=0) == expected[1:]
