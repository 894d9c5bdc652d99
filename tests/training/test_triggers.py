"""Triggers: schedules, best values, stop rules, and bad specs."""
import types

import pytest

from seqdbr.training import triggers as T


def fake(iteration=0, epoch=0, new_epoch=False, stop=None, obs=None, seconds=0.0):
    u = types.SimpleNamespace(iteration=iteration, epoch=epoch, is_new_epoch=new_epoch,
                              epoch_detail=float(epoch), iterations_per_epoch=10)
    return types.SimpleNamespace(updater=u, stop_reason=stop, observation=obs or {},
                                 run_seconds=seconds)


@pytest.mark.parametrize('spec, msg', [
    ((0, 'iteration'), 'period must be an integer >= 1'),
    ((-3, 'epoch'), 'period must be an integer >= 1'),
    ((2.5, 'iteration'), 'period must be an integer >= 1'),
    ((5, 'fortnight'), "unknown unit 'fortnight'"),
    ('often', 'bad trigger'),
    ((1, 2, 3), 'bad trigger'),
])
def test_bad_trigger_is_a_value_error_naming_it(spec, msg):
    with pytest.raises(ValueError, match=msg) as e:
        T.get_trigger(spec)
    if isinstance(spec, tuple) and len(spec) == 2:
        assert repr(spec[0]) in str(e.value)


def test_bad_stop_trigger_and_limits():
    with pytest.raises(ValueError, match='stop trigger'):
        T.get_stop_trigger((0, 'epoch'))
    with pytest.raises(ValueError, match='bad stop trigger'):
        T.get_stop_trigger('forever')
    with pytest.raises(ValueError, match='max_minutes'):
        T.StopTrigger(max_minutes=-1)


def test_interval_trigger_by_iteration_epoch_and_at_end():
    t = T.IntervalTrigger(3, 'iteration')
    assert [t(fake(i)) for i in range(1, 8)] == [False, False, True, False, False, True, False]
    e = T.IntervalTrigger(2, 'epoch')
    assert not e(fake(10, epoch=1, new_epoch=True)) and e(fake(20, epoch=2, new_epoch=True))
    assert not e(fake(21, epoch=2, new_epoch=False))
    a = T.IntervalTrigger(5, 'iteration', at_end=True)
    assert a(fake(7, stop='time budget')) and a.extra
    assert a(fake(10, stop='done')) and not a.extra       # on schedule: not extra
    assert not a(fake(7))


def test_min_and_max_value_triggers_and_dropping_an_extra_value():
    m = T.MinValueTrigger('val/loss')
    fired = [m(fake(i, obs=o)) for i, o in enumerate(
        [{}, {'val/loss': 2.0}, {'val/loss': 2.5}, {'val/loss': 1.5}, {'val/loss': 1.5}], 1)]
    assert fired == [False, True, False, True, False]
    assert (m.best, m.best_iteration) == (1.5, 4)
    m.drop_extra(5, ['val/loss'])          # not the value at 5's best: best stays
    assert (m.best, m.best_iteration) == (1.5, 4)
    m.drop_extra(4, ['val/loss'])
    assert (m.best, m.best_iteration) == (2.0, 2)
    x = T.MaxValueTrigger('acc')
    assert x(fake(1, obs={'acc': 0.5})) and not x(fake(2, obs={'acc': 0.4}))
    with pytest.raises(ValueError, match='key'):
        T.MinValueTrigger('')


def test_stop_trigger_first_limit_wins():
    s = T.StopTrigger(max_iterations=25, max_epochs=2)
    assert s.total_iterations(fake().updater) == 20
    assert s.reason(fake(19, epoch=1)) is None
    assert s.reason(fake(20, epoch=2)) == 'done'
    b = T.StopTrigger(max_minutes=0.5)
    assert b.reason(fake(3, seconds=29.0)) is None
    assert b.reason(fake(3, seconds=30.0)) == 'time budget'
