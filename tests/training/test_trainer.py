"""The Trainer and its extensions: errors, guard, schedules, snapshots, reports, signals."""
import math
import os
import signal
import warnings

import numpy
import pytest

import seqdbr
from seqdbr.core import seeding
from seqdbr.core.lr_schedules import ExponentialDecay, WarmupCosine
from seqdbr.training import (MinValueTrigger, OutputError, SnapshotError, TrainingDiverged,
                             extensions as E, read_jsonl, report)
from seqdbr.training.extension import Extension


class Recorder(Extension):
    def __init__(self, fail_at=None):
        self.calls, self.errors, self.finalized, self.fail_at = [], [], 0, fail_at

    def __call__(self, trainer):
        self.calls.append(trainer.updater.iteration)
        if trainer.updater.iteration == self.fail_at:
            raise RuntimeError('boom at %d' % self.fail_at)

    def on_error(self, trainer, exc):
        self.errors.append(exc)

    def finalize(self, trainer):
        self.finalized += 1


def test_an_extension_that_raises_calls_every_on_error_then_reraises(tr, tmp_path):
    t = tr.make_mlp_trainer(tmp_path)
    bad, other = Recorder(fail_at=3), Recorder()
    t.extend(bad, name='bad')
    t.extend(other, name='other', priority=10)
    with pytest.raises(RuntimeError, match='boom at 3'):
        t.run()
    assert bad.calls == [1, 2, 3] and other.calls == [1, 2]
    assert [str(e) for e in bad.errors + other.errors] == ['boom at 3'] * 2
    assert bad.finalized == other.finalized == 1


def test_an_update_that_raises_reaches_on_error(tr, tmp_path):
    t = tr.make_mlp_trainer(tmp_path)
    rec = Recorder()
    t.extend(rec)
    t.updater.converter = lambda batch, device: (_ for _ in ()).throw(ValueError('bad batch'))
    with pytest.raises(ValueError, match='bad batch'):
        t.run()
    assert len(rec.errors) == 1 and rec.calls == []


def test_bad_trigger_and_duplicate_names_are_value_errors(tr, tmp_path):
    t = tr.make_mlp_trainer(tmp_path)
    with pytest.raises(ValueError, match="unknown unit 'epochs'"):
        t.extend(Recorder(), trigger=(1, 'epochs'))
    t.extend(Recorder(), name='r')
    with pytest.raises(ValueError, match="named 'r' is already"):
        t.extend(Recorder(), name='r')
    with pytest.raises(ValueError, match='period must be an integer >= 1'):
        tr.make_mlp_trainer(tmp_path, stop=(0, 'iteration'))


def test_out_that_is_a_file_or_unwritable_is_a_clear_error(tr, tmp_path):
    f = tmp_path / 'afile'
    f.write_text('x')
    with pytest.raises(OutputError, match='is a file'):
        tr.make_mlp_trainer(f).run()
    with pytest.raises(OutputError, match='cannot write into the output folder'):
        tr.make_mlp_trainer(f / 'sub').run()


def test_snapshot_of_another_program_or_model_is_refused_naming_both(tr, tmp_path):
    t = tr.make_mlp_trainer(tmp_path / 'a')
    t.extend(E.snapshot('s.npz'), trigger=(5, 'iteration'))
    t.run()
    snap = tmp_path / 'a' / 's.npz'
    other = tr.make_mlp_trainer(tmp_path / 'b', program='another-program')
    with pytest.raises(SnapshotError, match="program 'test-mlp', but this is 'another-program'"):
        other.resume(snap)
    wider = tr.make_mlp_trainer(tmp_path / 'c', n_out=5)
    with pytest.raises(SnapshotError, match=r'l2/W: snapshot \[3, 8\] float32, this model '
                                            r'\[5, 8\] float32'):
        wider.resume(snap)
    from seqdbr.core import serializers
    weights = tmp_path / 'weights.npz'
    serializers.save_npz(weights, t.updater.model)
    with pytest.raises(SnapshotError, match='not a seqdbr training snapshot'):
        tr.make_mlp_trainer(tmp_path / 'd').resume(weights)
    charlm = tmp_path / 'charlm.npz'
    import pathlib
    golden = pathlib.Path(__file__).resolve().parents[1] / 'fixtures' / 'golden'
    charlm.write_bytes((golden / 'legacy_latest.npz').read_bytes())
    with pytest.raises(SnapshotError, match="seqdbr.charlm.checkpoint file, not a training "
                                            "snapshot of the program 'test-mlp'"):
        tr.make_mlp_trainer(tmp_path / 'f').resume(charlm)
    from seqdbr.charlm.checkpoint import load_checkpoint
    from seqdbr.charlm.errors import CheckpointError
    with pytest.raises(CheckpointError, match='training snapshot of another seqdbr program'):
        load_checkpoint(snap)
    damaged = tmp_path / 'damaged.npz'
    damaged.write_bytes(snap.read_bytes()[:200])
    with pytest.raises(SnapshotError, match='damaged.npz'):
        tr.make_mlp_trainer(tmp_path / 'e').resume(damaged)


def test_divergence_guard_stops_before_any_snapshot_and_logs_the_iteration(tr, tmp_path):
    t = tr.make_mlp_trainer(tmp_path)
    real = t.updater.loss_fn

    def poisoned(x, t_):
        loss, m = real(x, t_)
        if t.updater.iteration == 3:       # the 4th update
            return loss * float('nan'), m
        return loss, m
    t.updater.loss_fn = poisoned
    t.extend(E.DivergenceGuard())
    t.extend(E.LogReport(trigger=(1, 'iteration')))
    t.extend(E.snapshot('latest.npz'), trigger=(1, 'iteration'))
    before = None
    with pytest.raises(TrainingDiverged, match='iteration 4') as e:
        t.run()
    assert e.value.iteration == 4
    log = read_jsonl(tmp_path / 'log.jsonl')
    assert [r['iteration'] for r in log] == [1, 2, 3, 4] and math.isnan(log[-1]['loss'])
    t2 = tr.make_mlp_trainer(tmp_path / 'r')
    t2.resume(tmp_path / 'latest.npz')
    assert t2.updater.iteration == 3 and before is None
    for p in t2.updater.model.params():
        assert numpy.isfinite(p.array).all()


def test_divergence_guard_factor_uses_the_first_value(tr, tmp_path):
    t = tr.make_mlp_trainer(tmp_path)
    values = iter([1.0, 2.0, 2.9, 3.5])
    t.extend(lambda tr_: report({'fake': next(values)}), name='src', priority=500)
    t.extend(E.DivergenceGuard('fake', factor=3.0))
    with pytest.raises(TrainingDiverged, match='fake 3.5000, more than 3 x the first value 1'):
        t.run()


def test_lr_scheduler_extension_equals_the_optimizer_hook(tr, tmp_path):
    a = tr.make_mlp_trainer(tmp_path / 'a', stop=(12, 'iteration'))
    a.extend(E.LRScheduler(ExponentialDecay(0.5, after=1)))
    a.run()
    b = tr.make_mlp_trainer(tmp_path / 'b', stop=(12, 'iteration'))
    b.updater.optimizer.add_hook(ExponentialDecay(0.5, after=1))
    b.run()
    pa, pb = tr.params(a.updater.model), tr.params(b.updater.model)
    assert all(pa[k].tobytes() == pb[k].tobytes() for k in pa)
    assert a.updater.epoch == 3 and a.updater.optimizer.lr == pytest.approx(0.01 * 0.5 ** 3)


def test_warmup_cosine_values_by_hand():
    s = WarmupCosine(warmup=4, total=12, min_lr=0.1)
    got = [s.lr_at(t, 1.0) for t in (0, 3, 4, 8, 12, 50)]
    want = [0.25, 1.0, 1.0, 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)), 0.1, 0.1]
    assert got == pytest.approx(want, abs=1e-15)
    with pytest.raises(ValueError, match='total must be an integer >= warmup'):
        WarmupCosine(5, 3)


def test_snapshot_keep_last_and_best(tr, tmp_path):
    t = tr.make_mlp_trainer(tmp_path, stop=(20, 'iteration'))
    values = iter([5.0, 4.0, 4.5, 3.0, 3.5])
    t.extend(lambda tr_: report({'val/loss': next(values)}), name='fake-eval',
             trigger=(4, 'iteration'), priority=300)
    t.extend(E.snapshot('snap_{iteration}.npz', keep_last=2), trigger=(4, 'iteration'))
    best = MinValueTrigger('val/loss')
    s = E.snapshot('best.npz')
    t.extend(s, trigger=best)
    t.run()
    assert sorted(p.name for p in tmp_path.glob('snap_*.npz')) == ['snap_16.npz', 'snap_20.npz']
    assert s.last_iteration == 16 and best.best == 3.0


def test_evaluator_token_weighted_means_by_hand(tmp_path, tr):
    t = tr.make_mlp_trainer(tmp_path, stop=(1, 'iteration'))
    data = [(numpy.float32(v), n) for v, n in [(1.0, 1), (2.0, 3), (4.0, 2)]]

    def fn(v, n):                       # per batch: mean value, weight = token count
        return {'loss': float(numpy.mean(v))}, int(n.sum())
    ev = E.Evaluator(data, fn, batch_size=2)
    t.extend(ev, trigger=(1, 'iteration'))
    t.run()
    # batch 1: mean 1.5 weighted by 4 tokens; batch 2: 4.0 by 2 tokens
    assert t.observation['val/loss'] == pytest.approx((1.5 * 4 + 4.0 * 2) / 6)


def test_log_report_interval_means_equal_the_per_iteration_values(tr, tmp_path):
    t = tr.make_mlp_trainer(tmp_path, stop=(12, 'iteration'))
    t.extend(E.LogReport(trigger=(1, 'iteration'), filename='every.jsonl'), name='every')
    t.extend(E.LogReport(['loss', 'missing'], trigger=(4, 'iteration')))
    t.run()
    every = [r['loss'] for r in read_jsonl(tmp_path / 'every.jsonl')]
    grouped = read_jsonl(tmp_path / 'log.jsonl')
    assert [r['iteration'] for r in grouped] == [4, 8, 12]
    for i, r in enumerate(grouped):
        assert r['loss'] == pytest.approx(numpy.mean(every[4 * i:4 * i + 4]), rel=1e-12)
        assert r['missing'] is None and 'accuracy' not in r


def test_plot_report_draws_or_warns_once(tr, tmp_path):
    t = tr.make_mlp_trainer(tmp_path, stop=(6, 'iteration'))
    t.extend(E.PlotReport(['loss'], trigger=(2, 'iteration')))
    try:
        import matplotlib  # noqa: F401
        have = True
    except ImportError:
        have = False
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        t.run()
    png = tmp_path / 'plot.png'
    if have:
        assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    else:
        from seqdbr.training.extensions import plot_report
        msgs = [str(x.message) for x in w if 'matplotlib' in str(x.message)]
        assert len(msgs) <= 1 and plot_report._warned and not png.exists()
        assert t.updater.iteration == 6


def test_seed_makes_weights_and_dropout_reproducible():
    import seqdbr.functions as F
    import seqdbr.links as L
    outs = []
    for _ in range(2):
        seqdbr.seed(7)
        lin = L.Linear(5, 4)
        with seqdbr.using_config('train', True):
            d = F.dropout(numpy.ones((3, 4), numpy.float32), 0.5)
        outs.append((lin.W.array.copy(), d.array.copy()))
    assert outs[0][0].tobytes() == outs[1][0].tobytes()
    assert outs[0][1].tobytes() == outs[1][1].tobytes()
    with pytest.raises(ValueError):
        seqdbr.seed(-1)
    with pytest.raises(ValueError, match='invalid RNG state'):
        seeding.set_rng_state({'initializers': {}, 'dropout': {}})


def test_sigterm_then_a_second_signal_during_the_save_keeps_the_snapshot(tr, tmp_path):
    t = tr.make_mlp_trainer(tmp_path, stop=(50, 'iteration'))
    t.extend(E.snapshot('latest.npz'), trigger=(100, 'iteration'))
    t.extend(lambda tr_: os.kill(os.getpid(), signal.SIGTERM) if tr_.updater.iteration == 3
             else None, name='kill', priority=1000)
    real_save = t.snapshot_format.save

    def save_with_a_second_signal(trainer, path):
        os.kill(os.getpid(), signal.SIGINT)     # Ctrl-C while the snapshot is written
        return real_save(trainer, path)
    t.snapshot_format.save = save_with_a_second_signal
    assert t.run() == 'interrupted'
    assert t.signal == signal.SIGTERM
    t2 = tr.make_mlp_trainer(tmp_path, stop=(5, 'iteration'))
    t2.resume(tmp_path / 'latest.npz')
    assert t2.updater.iteration == 4        # the signal came during iteration 3's extensions


def test_saving_a_snapshot_does_not_advance_the_clock(tr, tmp_path):
    """A snapshot records the elapsed time; writing it must not add that time again."""
    import time
    t = tr.make_mlp_trainer(tmp_path, stop=(6, 'iteration'))
    t.extend(E.snapshot('s.npz'), trigger=(1, 'iteration'))
    t.extend(lambda tr_: time.sleep(0.02), name='slow')
    t0 = time.perf_counter()
    t.run()
    wall = time.perf_counter() - t0
    assert t.elapsed_time <= wall + 1e-6        # six saves did not multiply it
    t2 = tr.make_mlp_trainer(tmp_path / 'r')
    t2.resume(tmp_path / 's.npz')
    assert 0.12 <= t2.elapsed_time <= wall + 1e-6
