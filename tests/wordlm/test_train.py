"""The training program on tiny corpora: Zaremba's loss units, a full run, exact resume,
self-contained checkpoints, sampling and the real PTB."""
import io
import json
import math

import numpy
import pytest

import seqdbr
import seqdbr.functions as F
from seqdbr.core import serializers
from seqdbr.rnn.bptt import ParallelSequentialBatcher
from seqdbr.training import BPTTUpdater
from seqdbr.wordlm.checkpoint import load_checkpoint
from seqdbr.wordlm.model import WordLM
from seqdbr.wordlm.sample import choose, sample_sentences
from seqdbr.wordlm.train import PRESETS, TrainConfig, make_optimizer, train


def _cfg(tiny_files, tmp_path, **kw):
    tr, va, te = tiny_files
    # init 0.5: with 8 units the preset's 0.1 sits on the unigram plateau for many epochs
    base = dict(train_file=tr, valid_file=va, test_file=te, rnn_size=8, batch_size=4, bptt=5,
                init_scale=0.5, max_epochs=2, out=str(tmp_path / 'out'), progress=False)
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.parametrize('clip,pair', [(5.0, False), (0.01, False), (0.01, True)])
def test_update_is_zarembas_sgd_step(clip, pair):
    """One update of the program's optimizer = p - lr * clip(grad of the loss summed over
    the window's steps and averaged over the batch, clip), computed here by hand."""
    B, T, V = 3, 4, 11
    ids = numpy.random.default_rng(0).integers(0, V, 200).astype(numpy.int32)
    cfg = TrainConfig(rnn_size=5, num_layers=2, bptt=T, batch_size=B, learning_rate=0.7,
                      grad_clip=clip).resolved()
    seqdbr.seed(0)
    m = WordLM(V, 5, 2, bias_pair=pair)
    seqdbr.seed(0)
    ref = WordLM(V, 5, 2, bias_pair=pair)
    x, t = ParallelSequentialBatcher(ids, B, T).next_window()
    batcher = ParallelSequentialBatcher(ids, B, T)
    opt, _ = make_optimizer(cfg, m)           # at epoch 0 the schedule gives the base rate
    BPTTUpdater(batcher, opt, m).update()
    # by hand: sum over steps of the batch-mean cross-entropy
    y = ref(x)
    loss = sum(F.softmax_cross_entropy(y[:, j], t[:, j]) for j in range(T))
    ref.cleargrads()
    loss.backward()
    grads = {k: p.grad.astype(numpy.float64) for k, p in ref.weights().items()}
    norm = math.sqrt(sum(float((g ** 2).sum()) for g in grads.values()))
    scale = min(1.0, clip / norm)
    assert (scale < 1) == (clip < 1)          # the small threshold really clips
    for k, p in m.weights().items():
        want = ref.weights()[k].array - 0.7 * scale * grads[k]
        numpy.testing.assert_allclose(p.array, want, rtol=1e-4, atol=1e-6, err_msg=k)


def test_presets_are_zarembas():
    s, m = PRESETS['small'], PRESETS['medium']
    assert (s['rnn_size'], s['num_layers'], s['dropout'], s['init_scale'], s['learning_rate'],
            s['lr_decay'], s['lr_decay_after'], s['max_epochs'], s['batch_size'], s['bptt'],
            s['grad_clip']) == (200, 2, 0.0, 0.1, 1.0, 0.5, 4, 13, 20, 20, 5.0)
    # Zaremba's Torch7 LSTM: i2h and h2h Linears, each with a bias
    assert all(p['bias_pair'] is True for p in PRESETS.values())
    assert (m['rnn_size'], m['dropout'], m['max_epochs'], m['bptt'], m['init_scale'],
            m['lr_decay_after']) == (650, 0.5, 39, 35, 0.05, 6)
    assert m['lr_decay'] == pytest.approx(1 / 1.2)


def test_tiny_run_learns_and_writes_self_contained_checkpoints(tiny_files, tmp_path):
    out = io.StringIO()
    res = train(_cfg(tiny_files, tmp_path, max_epochs=4, learning_rate=1.0), out_stream=out)
    text = out.getvalue()
    assert res.status == 'done' and 'final model: valid perplexity' in text
    log = [json.loads(line) for line in open(res.log)]
    assert len(log) == 4 and [round(r['epoch']) for r in log] == [1, 2, 3, 4]
    # 15 words + <eos> + <unk>: uniform guessing is 17, knowing the grammar about 2.3
    assert log[-1]['val_perplexity'] < 4 and res.test_perplexity < 4
    assert log[-1]['val_perplexity'] < log[0]['val_perplexity']
    ck = load_checkpoint(res.latest)
    assert len(ck.vocab) == 17 and ck.model_config['rnn_size'] == 8
    model = ck.build_model()
    # the checkpoint alone rebuilds the model: its valid perplexity is the logged one
    from seqdbr.wordlm.evaluate import evaluate_checkpoint
    r = evaluate_checkpoint(ck, files=[tiny_files[1]], batch_size=4, bptt=5)
    assert r[tiny_files[1]].perplexity == pytest.approx(log[-1]['val_perplexity'], rel=1e-5)
    assert model.count_params() > 0


def test_resume_is_exact(tiny_files, tmp_path):
    full = train(_cfg(tiny_files, tmp_path / 'a', max_epochs=3), out_stream=io.StringIO())
    train(_cfg(tiny_files, tmp_path / 'b', max_epochs=1, max_iters=7),
          out_stream=io.StringIO())
    half = str(tmp_path / 'b' / 'out' / 'latest.npz')
    res = train(TrainConfig(resume=half, max_epochs=3, progress=False),
                out_stream=io.StringIO())
    assert res.iteration == full.iteration
    a = serializers.load_npz_dict(full.latest)
    b = serializers.load_npz_dict(res.latest)
    for k in a:
        if k.startswith('model/') or k.startswith('optimizer/'):
            numpy.testing.assert_array_equal(a[k], b[k], err_msg=k)
    la = [json.loads(x) for x in open(full.log)]
    lb = [json.loads(x) for x in open(res.log)]
    assert [r['val_perplexity'] for r in la] == [r['val_perplexity'] for r in lb]
    assert res.test_perplexity == full.test_perplexity


def test_one_bias_run_and_checkpoints_from_before_the_option(tiny_files, tmp_path):
    from seqdbr.wordlm.train import _merge_resume
    res = train(_cfg(tiny_files, tmp_path, bias_pair=False, max_epochs=1),
                out_stream=io.StringIO())
    ck = load_checkpoint(res.latest)
    assert ck.model_config['bias_pair'] is False and 'rnn/0/b_hh' not in ck.weights
    assert ck.train_config['bias_pair'] is False
    old = dict(ck.train_config)
    del old['bias_pair']                    # a checkpoint written before the option
    merged = _merge_resume(TrainConfig(resume=res.latest), old)
    assert merged.bias_pair is False and merged.resolved().bias_pair is False
    assert TrainConfig().resolved().bias_pair is True


def test_tied_run(tiny_files, tmp_path):
    res = train(_cfg(tiny_files, tmp_path, tied=True, max_epochs=1), out_stream=io.StringIO())
    ck = load_checkpoint(res.latest)
    assert ck.model_config['tied'] and 'out/W' not in ck.weights


def test_sampling(tiny_files, tmp_path):
    res = train(_cfg(tiny_files, tmp_path, max_epochs=2), out_stream=io.StringIO())
    ck = load_checkpoint(res.latest)
    m = ck.build_model()
    a = sample_sentences(m, ck.vocab, 4, temperature=1.0, top_k=5, seed=3)
    assert a == sample_sentences(m, ck.vocab, 4, temperature=1.0, top_k=5, seed=3)
    assert len(a) == 4 and all(w in ck.vocab for s in a for w in s.split())
    # temperature 0 = greedy: every sentence the same, each word the argmax given the ones
    # before it (checked here by rescoring the sentence)
    g = sample_sentences(m, ck.vocab, 2, temperature=0, max_words=6, prime=['the'])
    assert g[0].split()[0] == 'the'
    words = g[0].split()
    m.reset_state()
    ids = [ck.vocab.eos_id] + ck.vocab.encode(words).tolist()
    y = m(numpy.array([ids], numpy.int32)).array[0]
    for j in range(1, len(ids) - 1):
        assert numpy.argmax(y[j]) == ids[j + 1]
    assert '<unk>' not in ' '.join(sample_sentences(m, ck.vocab, 20, temperature=3.0,
                                                    allow_unk=False))


def test_choose_top_k_and_temperature():
    rng = numpy.random.default_rng(0)
    z = numpy.array([0.0, 3.0, 2.0, -1.0, 2.5])
    got = {choose(z, 1.0, 2, rng) for _ in range(200)}
    assert got == {1, 4}
    assert choose(z, 0.0, None, rng) == 1
    counts = numpy.bincount([choose(z, 1.0, None, rng) for _ in range(4000)], minlength=5)
    p = numpy.exp(z) / numpy.exp(z).sum()
    numpy.testing.assert_allclose(counts / 4000, p, atol=0.03)


def test_real_ptb_first_updates(shared_data):
    """The real PTB through the program's data path: 10,000 words, and three updates of the
    'small' model lower the window loss from about ln(10000)."""
    from seqdbr.wordlm.data import load_data
    cfg = TrainConfig(data='ptb', data_dir=str(shared_data / 'ptb')).resolved()
    c = load_data(cfg)
    assert len(c.vocab) == 10000 and c.train.size == 929589 and c.test.size == 82430
    seqdbr.seed(1)
    m = WordLM(10000, 32, 1)
    opt, _ = make_optimizer(cfg, m)
    up = BPTTUpdater(ParallelSequentialBatcher(c.train, 20, 20), opt, m)
    from seqdbr.training.reporter import reporting
    losses = []
    for _ in range(3):
        with reporting({}) as obs:
            up.update()
        losses.append(float(obs['loss']))
    assert abs(losses[0] - math.log(10000)) < 0.1 and losses[-1] < losses[0] - 0.5
