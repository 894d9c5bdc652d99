"""The char-RNN trainer: summary, log, exact resume in a new process, init-from, guards."""
import json
import math
import os
import shutil
import signal
import subprocess
import sys

import numpy
import pytest

from seqdbr.charlm import train as train_mod
from seqdbr.training import bptt_updater as bptt_updater_mod
from seqdbr.charlm.checkpoint import load_checkpoint
from seqdbr.charlm.errors import ConfigError, TrainingDiverged
from seqdbr.charlm.model import CharRNN
from seqdbr.charlm.vocab import Vocabulary
from seqdbr.core.serializers import load_npz_dict
from seqdbr.rnn.bptt import ParallelSequentialBatcher, window_loss
from seqdbr.training.evaluator import read_jsonl


@pytest.fixture
def corpus(charlm, tmp_path):
    return charlm.write_corpus(tmp_path / 'corpus.txt', 3000)


def test_summary_log_and_checkpoints(charlm, corpus, tmp_path):
    out = tmp_path / 'run'
    res, text = charlm.run_train(corpus, out, max_iters=8, eval_every=4, train_frac=0.9,
                                 val_frac=0.1)
    vocab = Vocabulary.from_text(corpus.read_text(encoding='utf-8'))
    wpe = ParallelSequentialBatcher(numpy.zeros(2700, numpy.int32), 3, 6).windows_per_epoch
    model = CharRNN(len(vocab), rnn_size=8, num_layers=2)
    assert 'vocab size: %d' % len(vocab) in text
    assert 'train 2,700, val 300, test 0' in text
    assert 'batches per epoch: %d' % wpe in text
    assert 'parameters: {:,}'.format(model.count_params()) in text
    assert res.status == 'done' and res.iteration == 8
    recs = read_jsonl(out / 'log.jsonl')
    assert [r['iteration'] for r in recs] == list(range(1, 9))
    for r in recs:
        assert set(r) >= {'iteration', 'epoch', 'train_loss', 'train_bpc', 'val_loss', 'val_bpc',
                          'lr', 'time'}
        assert r['train_bpc'] == pytest.approx(r['train_loss'] / math.log(2))
        assert r['lr'] == pytest.approx(2e-3)
        assert r['epoch'] == pytest.approx(r['iteration'] / wpe)
    evaluated = [r['iteration'] for r in recs if r['val_loss'] is not None]
    assert evaluated == [4, 8]
    for r in recs:
        if r['val_loss'] is not None:
            assert r['val_bpc'] == pytest.approx(r['val_loss'] / math.log(2))
    # The loss starts near ln(V) (an untrained model) and training lowers it.
    assert recs[0]['train_loss'] == pytest.approx(math.log(len(vocab)), rel=0.15)
    ck = load_checkpoint(out / 'latest.npz')
    assert ck.iteration == 8 and ck.vocab == vocab
    assert ck.meta['history']['train_loss'] == [r['train_loss'] for r in recs]
    assert ck.meta['history']['val'] == [[r['iteration'], r['val_loss']] for r in recs
                                         if r['val_loss'] is not None]
    assert ck.meta['corpus']['sha256'] and ck.meta['corpus']['source'] == str(corpus)
    best = load_checkpoint(out / 'best.npz')
    assert best.meta['progress']['best_val_loss'] == min(v for _, v in ck.meta['history']['val'])
    try:
        import matplotlib       # noqa: F401  (in the test extra, so CI draws the plot)
    except ImportError:
        assert 'matplotlib is not installed' in text and not (out / 'loss.png').exists()
    else:
        _assert_loss_plot(out / 'loss.png')
        assert 'matplotlib is not installed' not in text


def _assert_loss_plot(path):
    """``path`` is a PNG image with something drawn on it (not a blank canvas)."""
    data = path.read_bytes()
    assert data[:8] == b'\x89PNG\r\n\x1a\n'
    import matplotlib.image
    img = matplotlib.image.imread(str(path))
    assert img.ndim == 3 and img.shape[0] >= 100 and img.shape[1] >= 100
    rgb = img[..., :3].reshape(-1, 3)
    assert len(numpy.unique(numpy.round(rgb, 2), axis=0)) > 5     # curves, axes, labels


def test_loss_plot_with_and_without_matplotlib(charlm, corpus, tmp_path, monkeypatch):
    pytest.importorskip('matplotlib')
    out = tmp_path / 'with'
    res, text = charlm.run_train(corpus, out, max_iters=4, eval_every=2)
    _assert_loss_plot(out / 'loss.png')
    # without matplotlib: a notice naming the extra, no file, and the run still succeeds
    for name in [m for m in sys.modules if m == 'matplotlib' or m.startswith('matplotlib.')]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, 'matplotlib', None)       # makes the import fail
    out = tmp_path / 'without'
    res, text = charlm.run_train(corpus, out, max_iters=4, eval_every=2)
    assert res.status == 'done'
    assert 'matplotlib is not installed' in text and 'seqdbr[plot]' in text
    assert not (out / 'loss.png').exists()


def test_validation_is_a_full_pass_that_leaves_the_training_state_alone(corpus):
    from seqdbr.charlm.evaluate import evaluate_tokens
    vocab = Vocabulary.from_text(corpus.read_text(encoding='utf-8'))
    ids = vocab.encode(corpus.read_text(encoding='utf-8'))
    model = CharRNN(len(vocab), rnn_size=8, num_layers=2)
    model(ids[:12].reshape(2, 6))
    before = {k: v.copy() for k, v in model.get_state().items()}
    r1 = evaluate_tokens(model, ids[:301], batch_size=7, bptt_len=5)
    after = model.get_state()
    for k in before:
        numpy.testing.assert_array_equal(before[k], after[k])
    assert r1.num_tokens == 300
    # Every target scored once: the same total for any stream/window layout, and equal to a
    # single-stream step-by-step reference.
    r2 = evaluate_tokens(model, ids[:301], batch_size=1, bptt_len=300)
    model.reset_state()
    y = model(ids[None, :300]).array[0].astype(numpy.float64)
    z = y - y.max(axis=1, keepdims=True)
    logp = z - numpy.log(numpy.exp(z).sum(axis=1, keepdims=True))
    ref = -logp[numpy.arange(300), ids[1:301]].mean()
    assert r2.loss == pytest.approx(ref, rel=1e-5)
    assert r1.bits_per_char == pytest.approx(r1.loss / math.log(2))
    assert r1.perplexity == pytest.approx(math.exp(r1.loss))
    assert evaluate_tokens(model, ids[:301], 7, 5) == r1        # deterministic


def _npz_arrays(path):
    d = load_npz_dict(path)
    meta = json.loads(d.pop('meta').tobytes().decode('utf-8'))
    return d, meta


@pytest.mark.parametrize('eval_every', [7, 5])
def test_exact_resume_in_a_new_process(charlm, tmp_path, eval_every):
    """2N iterations in one run == N, checkpoint, resume in a new process, N more: bit for
    bit on the CPU (epoch boundaries with LR decay, dropout and carried state included).
    With eval_every=5 the first run stops between scheduled validations and runs an extra
    end-of-run validation at N, which the resumed run drops: the logs still match."""
    corpus = charlm.write_corpus(tmp_path / 'small.txt', 150)
    # 120 training chars, batch 3 x seq 6 -> 39 positions per stream, 6 windows per epoch:
    # 2N = 14 iterations cross two epoch boundaries (LR decays after each, lr_decay_after=1).
    common = dict(train_frac=0.8, val_frac=0.2, dropout=0.25, lr_decay=0.5, lr_decay_after=1,
                  eval_every=eval_every, checkpoint_every=7, rnn_size=8, batch_size=3,
                  seq_length=6)
    N = 7
    full, _ = charlm.run_train(corpus, tmp_path / 'full', max_iters=2 * N, **common)
    half, _ = charlm.run_train(corpus, tmp_path / 'half', max_iters=N, **common)
    assert half.iteration == N
    log_half = read_jsonl(tmp_path / 'half' / 'log.jsonl')
    assert [r['iteration'] for r in log_half] == list(range(1, N + 1))

    proc = subprocess.run([sys.executable, str(charlm.SCRIPTS / 'train_charrnn.py'), '--resume',
                           str(tmp_path / 'half' / 'latest.npz'), '--max-iters', str(2 * N),
                           '--no-progress'], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert 'resuming' in proc.stdout and 'at iteration %d' % N in proc.stdout

    a, meta_a = _npz_arrays(tmp_path / 'full' / 'latest.npz')
    b, meta_b = _npz_arrays(tmp_path / 'half' / 'latest.npz')
    assert sorted(a) == sorted(b)
    assert any(k.startswith('optimizer/') and k.endswith('/m') for k in a)   # Adam moments
    assert 'state/h' in a and 'state/c' in a                                  # carried state
    for k in a:
        assert a[k].dtype == b[k].dtype and numpy.array_equal(a[k], b[k]), k
    for section in ('history', 'rng', 'batcher'):
        assert meta_a[section] == meta_b[section], section
    for key in ('iteration', 'epoch', 'lr', 'best_val_loss', 'initial_loss'):
        assert meta_a['progress'][key] == meta_b['progress'][key], key
    assert meta_a['progress']['lr'] == 2e-3 * 0.5 ** 2          # two decays happened
    log_full = read_jsonl(tmp_path / 'full' / 'log.jsonl')
    log_resumed = read_jsonl(tmp_path / 'half' / 'log.jsonl')
    strip = lambda recs: [{k: v for k, v in r.items() if k != 'time'} for r in recs]  # noqa
    assert strip(log_full) == strip(log_resumed)
    # The first line written by the new process is iteration N + 1.
    if N % eval_every:
        assert log_half[N - 1]['val_loss'] is not None     # the extra end-of-run validation
        log_half[N - 1] = dict(log_half[N - 1], val_loss=None, val_bpc=None)
    assert log_resumed[:N] == log_half
    assert log_resumed[N]['iteration'] == N + 1


def test_resume_cuts_the_log_back_and_rejects_changed_options(charlm, corpus, tmp_path):
    out = tmp_path / 'run'
    charlm.run_train(corpus, out, max_iters=6, checkpoint_every=3, eval_every=3)
    # Pretend the run went on after its last checkpoint (iteration 6) and crashed.
    with open(out / 'log.jsonl', 'a', encoding='utf-8') as f:
        f.write(json.dumps({'iteration': 7, 'train_loss': 1.0}) + '\n{"iteration": 8, "tr')
    cfg = charlm.tiny_config(corpus, out, resume=str(out / 'latest.npz'), max_iters=8)
    buf = __import__('io').StringIO()
    res = train_mod.train(cfg, explicit={'resume', 'max_iters'}, out_stream=buf)
    assert res.iteration == 8
    assert [r['iteration'] for r in read_jsonl(out / 'log.jsonl')] == list(range(1, 9))
    with pytest.raises(ConfigError, match=r'--learning-rate 0\.1 \(the checkpoint has 0\.002\)'):
        train_mod.train(charlm.tiny_config(corpus, out, resume=str(out / 'latest.npz'),
                                    learning_rate=0.1, max_iters=9),
                        explicit={'resume', 'learning_rate', 'max_iters'})


def test_resume_refuses_another_corpus(charlm, corpus, tmp_path):
    out = tmp_path / 'run'
    charlm.run_train(corpus, out, max_iters=3)
    other = charlm.write_corpus(tmp_path / 'other.txt', 3000, seed=5)
    with pytest.raises(ConfigError, match='not the corpus the checkpoint was trained on'):
        train_mod.train(charlm.tiny_config(other, out, resume=str(out / 'latest.npz'), max_iters=5),
                        explicit={'resume', 'corpus', 'max_iters'})


def test_init_from_maps_the_corpus_onto_the_checkpoint_vocab(charlm, corpus, tmp_path):
    charlm.run_train(corpus, tmp_path / 'base', max_iters=4)
    ck = load_checkpoint(tmp_path / 'base' / 'latest.npz')
    # A corpus using only some of the characters trains with the checkpoint's vocabulary.
    sub = tmp_path / 'sub.txt'
    sub.write_text(charlm.make_text(1500, seed=3).lower(), encoding='utf-8')
    res, _ = charlm.run_train(sub, tmp_path / 'ft', max_iters=3, init_from=str(ck.path))
    ft = load_checkpoint(res.latest)
    assert ft.vocab == ck.vocab and ft.iteration == 3
    # The first step ran on the checkpoint's weights: same loss as a reference forward pass.
    text = sub.read_text(encoding='utf-8')
    ids = ck.vocab.encode(text[:int(len(text) * 0.95)])
    x, t = ParallelSequentialBatcher(ids, 3, 6).window(0)
    ref, n = window_loss(ck.build_model(), x, t)
    assert ft.meta['history']['train_loss'][0] == pytest.approx(float(ref.array) / n, rel=1e-6)
    # A character outside the checkpoint's vocabulary is an error that lists it.
    bad = tmp_path / 'bad.txt'
    bad.write_text(charlm.make_text(1500) + 'Zürich \u732b', encoding='utf-8')
    with pytest.raises(ConfigError) as e:
        charlm.run_train(bad, tmp_path / 'ft2', max_iters=3, init_from=str(ck.path))
    msg = str(e.value)
    assert "'ü'" in msg and "'\u732b'" in msg and "'Z'" in msg and 'init-from' in msg
    assert not (tmp_path / 'ft2').exists()


def test_init_from_fixes_the_architecture(charlm, corpus, tmp_path):
    charlm.run_train(corpus, tmp_path / 'base', max_iters=2)
    with pytest.raises(ConfigError, match='--rnn-size 16'):
        charlm.run_train(corpus, tmp_path / 'x', explicit={'rnn_size', 'init_from'}, rnn_size=16,
                  init_from=str(tmp_path / 'base' / 'latest.npz'))


def test_lr_decay_follows_char_rnn(charlm, corpus, tmp_path):
    small = charlm.write_corpus(tmp_path / 's.txt', 150)
    res, _ = charlm.run_train(small, tmp_path / 'r', max_iters=20, train_frac=0.8, val_frac=0.2,
                       lr_decay=0.5, lr_decay_after=2, eval_every=100)
    recs = read_jsonl(tmp_path / 'r' / 'log.jsonl')
    wpe = 6
    for r in recs:
        done = (r['iteration'] - 1) // wpe          # completed epochs before this step
        assert r['lr'] == pytest.approx(2e-3 * 0.5 ** max(0, done - 2 + 1)), r


def test_divergence_guard_stops_and_keeps_the_best_checkpoint(charlm, corpus, tmp_path,
                                                              monkeypatch):
    out = tmp_path / 'run'
    real_update = bptt_updater_mod.bptt_update
    calls = []

    def poisoned(model, opt, x, t, **kw):
        calls.append(1)
        if len(calls) == 6:                        # a weight goes bad before step 6
            model.out.b.array[0] = numpy.nan
        return real_update(model, opt, x, t, **kw)

    monkeypatch.setattr(bptt_updater_mod, 'bptt_update', poisoned)
    with pytest.raises(TrainingDiverged) as e:
        charlm.run_train(corpus, out, max_iters=20, eval_every=2, checkpoint_every=2)
    assert e.value.iteration == 6 and math.isnan(e.value.loss)
    assert 'iteration 6' in str(e.value) and '--learning-rate' in str(e.value)
    best = load_checkpoint(out / 'best.npz')
    latest = load_checkpoint(out / 'latest.npz')
    assert best.iteration <= 4 and latest.iteration == 4
    best.check_finite()
    latest.check_finite()
    assert read_jsonl(out / 'log.jsonl')[-1]['iteration'] == 6


def test_divergence_guard_on_a_loss_above_three_times_the_first(charlm, corpus, tmp_path,
                                                                monkeypatch):
    real_update = bptt_updater_mod.bptt_update
    calls = []

    def exploding(model, opt, x, t, **kw):
        calls.append(1)
        if len(calls) == 4:                        # push the logits far from the data
            model.out.W.array[...] *= 1e3
        return real_update(model, opt, x, t, **kw)

    monkeypatch.setattr(bptt_updater_mod, 'bptt_update', exploding)
    with pytest.raises(TrainingDiverged, match='more than 3 x the first loss') as e:
        charlm.run_train(corpus, tmp_path / 'run', max_iters=20, eval_every=2)
    assert e.value.iteration == 4


def test_sigint_writes_a_checkpoint_and_stops_cleanly(charlm, corpus, tmp_path, monkeypatch):
    real_update = bptt_updater_mod.bptt_update
    calls = []

    def interrupting(model, opt, x, t, **kw):
        calls.append(1)
        loss = real_update(model, opt, x, t, **kw)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGINT)    # as if Ctrl-C was pressed during step 3
        return loss

    monkeypatch.setattr(bptt_updater_mod, 'bptt_update', interrupting)
    out = tmp_path / 'run'
    # the handler in force before (default_int_handler, or SIG_IGN under nohup / `cmd &`)
    before = signal.getsignal(signal.SIGINT)
    res, text = charlm.run_train(corpus, out, max_iters=50, eval_every=100, checkpoint_every=100)
    assert res.status == 'interrupted' and res.signal == signal.SIGINT
    assert res.iteration == 3
    assert load_checkpoint(out / 'latest.npz').iteration == 3
    assert 'interrupted by SIGINT at iteration 3' in text and '--resume' in text
    assert signal.getsignal(signal.SIGINT) is before   # restored


def test_sigterm_makes_the_command_save_and_exit_with_128_plus_15(charlm, corpus, tmp_path,
                                                                   monkeypatch, capsys):
    from seqdbr.charlm.cli import train_main
    real_update = bptt_updater_mod.bptt_update
    calls = []

    def terminated(*args, **kw):
        calls.append(1)
        loss = real_update(*args, **kw)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)   # as a batch scheduler would
        return loss

    monkeypatch.setattr(bptt_updater_mod, 'bptt_update', terminated)
    out = tmp_path / 'run'
    rc = train_main(['--corpus', str(corpus), '--out', str(out), '--rnn-size', '8',
                     '--batch-size', '3', '--seq-length', '6', '--max-iters', '100',
                     '--no-progress'])
    cap = capsys.readouterr()
    assert rc == 128 + signal.SIGTERM
    assert 'interrupted by SIGTERM at iteration 2' in cap.out
    assert load_checkpoint(out / 'latest.npz').iteration == 2
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_stepwise_impl_trains_and_resumes(charlm, corpus, tmp_path):
    res, text = charlm.run_train(corpus, tmp_path / 'sw', impl='stepwise', model='gru', max_iters=4)
    assert 'gru 2x8, impl stepwise' in text
    ck = load_checkpoint(res.latest)
    assert ck.model_config['impl'] == 'stepwise'
    res2, _ = charlm.run_train(corpus, tmp_path / 'sw', resume=res.latest, max_iters=6,
                               explicit={'resume', 'max_iters'})
    assert res2.iteration == 6
    # The same GRU (same parameters, same optimizer state) continues with the n-step layers,
    # as it would have with the stepwise ones (up to float rounding).
    shutil.copytree(tmp_path / 'sw', tmp_path / 'sw2')
    res3, text = charlm.run_train(corpus, tmp_path / 'sw', resume=res2.latest, max_iters=9,
                                  impl='nstep', explicit={'resume', 'max_iters', 'impl'})
    assert res3.iteration == 9 and 'impl nstep' in text
    charlm.run_train(corpus, tmp_path / 'sw2', resume=str(tmp_path / 'sw2' / 'latest.npz'),
                     max_iters=9, explicit={'resume', 'max_iters'})
    a = read_jsonl(tmp_path / 'sw' / 'log.jsonl')
    b = read_jsonl(tmp_path / 'sw2' / 'log.jsonl')
    assert [r['iteration'] for r in a] == [r['iteration'] for r in b] == list(range(1, 10))
    for ra, rb in zip(a[6:], b[6:]):
        assert ra['train_loss'] == pytest.approx(rb['train_loss'], rel=1e-5)


def test_real_corpus_with_bom_and_crlf(charlm, shared_data, tmp_path):
    """quijote-es has a UTF-8 BOM and CRLF line ends: the BOM is dropped, CRs are kept."""
    raw = (shared_data / 'quijote-es' / 'pg2000.txt').read_bytes()
    assert raw.startswith(b'\xef\xbb\xbf')
    path = tmp_path / 'quijote.txt'
    path.write_bytes(raw[:20000])
    res, text = charlm.run_train(path, tmp_path / 'q', max_iters=3)
    vocab = load_checkpoint(res.latest).vocab
    assert '\r' in vocab and '\ufeff' not in vocab and 'ñ' in vocab


def test_real_tinyshakespeare_loss_goes_down(charlm, shared_data, tmp_path):
    path = shared_data / 'tinyshakespeare' / 'input.txt'
    res, text = charlm.run_train(path, tmp_path / 'ts', rnn_size=32, batch_size=8, seq_length=16,
                          max_iters=60, eval_every=60, learning_rate=1e-2, val_frac=0.002,
                          train_frac=0.998)
    assert 'vocab size: 65' in text
    recs = read_jsonl(tmp_path / 'ts' / 'log.jsonl')
    first = numpy.mean([r['train_loss'] for r in recs[:5]])
    last = numpy.mean([r['train_loss'] for r in recs[-5:]])
    assert last < first - 0.5


def test_forget_bias_reaches_the_model_and_the_checkpoint(charlm, corpus, tmp_path, monkeypatch):
    import seqdbr.charlm.train as train_mod
    seen = []
    real = train_mod.CharRNN

    def spy(*a, **k):
        m = real(*a, **k)
        seen.append(m.canonical_arrays()['rnn/0/b'].copy())     # before any update
        return m
    monkeypatch.setattr(train_mod, 'CharRNN', spy)
    res, _ = charlm.run_train(corpus, tmp_path / 'fb', forget_bias=1.0, max_iters=1)
    H = 8
    numpy.testing.assert_array_equal(seen[0][H:2 * H], 1.0)
    numpy.testing.assert_array_equal(seen[0][:H], 0.0)
    assert load_checkpoint(res.latest).model_config['forget_bias'] == 1.0


def _drop_forget_bias(path):
    """Rewrite a checkpoint as one written before the forget_bias option existed."""
    with numpy.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays['meta'].tobytes().decode('utf-8'))
    del meta['model']['forget_bias']
    del meta['train']['forget_bias']
    arrays['meta'] = numpy.frombuffer(json.dumps(meta).encode('utf-8'), dtype=numpy.uint8)
    with open(path, 'wb') as f:
        numpy.savez(f, **arrays)


def test_legacy_checkpoints_record_the_forget_bias_they_were_trained_with(charlm, corpus,
                                                                            tmp_path):
    res, _ = charlm.run_train(corpus, tmp_path / 'old', max_iters=2)
    _drop_forget_bias(res.latest)
    ck = load_checkpoint(res.latest)
    assert ck.model_config['forget_bias'] == 1.0          # CharRNN's value before the option
    res2, _ = charlm.run_train(corpus, tmp_path / 'old', resume=res.latest, max_iters=3,
                               explicit={'resume', 'max_iters'})
    ck2 = load_checkpoint(res2.latest)
    assert ck2.model_config['forget_bias'] == 1.0
    assert ck2.meta['train']['forget_bias'] == 1.0


def test_init_from_keeps_the_source_forget_bias(charlm, corpus, tmp_path):
    res, _ = charlm.run_train(corpus, tmp_path / 'base', max_iters=2, forget_bias=0.5)
    with pytest.raises(ConfigError, match='--forget-bias 3'):
        charlm.run_train(corpus, tmp_path / 'x', explicit={'forget_bias', 'init_from'},
                         forget_bias=3.0, init_from=res.latest)
    res2, _ = charlm.run_train(corpus, tmp_path / 'ft', max_iters=1, init_from=res.latest,
                               explicit={'init_from', 'max_iters'})
    assert load_checkpoint(res2.latest).model_config['forget_bias'] == 0.5
