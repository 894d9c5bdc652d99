"""backend: the fetch helper, deferred checks, lazy scalars, cheap array tests, using_device."""
import pathlib
import re

import numpy
import pytest

from seqdbr.core import backend

PACKAGE = pathlib.Path(backend.__file__).resolve().parents[1]
# Lead-owned modules being rewritten now; their fetches are listed in the issue-12 report.
NOT_YET = set()


def test_library_code_fetches_only_through_the_backend_helpers():
    """Direct device->host transfers (``.get()``, ``cupy.asnumpy``) and per-op
    ``hasattr(x, '__cuda_array_interface__')`` checks only inside core/backend.py."""
    pattern = re.compile(r'\.get\(\)|asnumpy\(|__cuda_array_interface__')
    offenders = []
    for path in sorted(PACKAGE.rglob('*.py')):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel == 'core/backend.py' or rel in NOT_YET:
            continue
        for n, line in enumerate(path.read_text(encoding='utf-8').splitlines(), 1):
            if pattern.search(line.split('#')[0]):
                offenders.append('%s:%d: %s' % (rel, n, line.strip()))
    assert not offenders, ('use backend.to_host / fetch_scalars / is_device_array:\n'
                           + '\n'.join(offenders))


def test_is_array_and_is_device_array():
    class Dev:
        __cuda_array_interface__ = property(lambda self: 1 / 0)   # never evaluated

    assert backend.is_array(numpy.zeros(2)) and not backend.is_device_array(numpy.zeros(2))
    assert backend.is_device_array(Dev()) and backend.is_array(Dev())
    for x in (1.0, [1], None, numpy.float32(1)):
        assert not backend.is_array(x) and not backend.is_device_array(x)


def test_to_host_and_fetch_scalars_count_one_transfer_each():
    a = numpy.arange(3.0)
    with backend.counting_fetches() as c:
        assert backend.to_host(a) is a
        assert backend.fetch_scalars(numpy.float32(1.5), numpy.array(2), 3) == (1.5, 2.0, 3.0)
    assert c.count == 2
    assert backend.fetch_scalars() == ()


def test_deferred_checks_ride_along_with_the_next_fetch():
    with backend.counting_fetches() as c:
        backend.check_later(numpy.array(False), lambda: AssertionError('never'))
        backend.check_index_range(numpy.array([0, 4, -1]), 0, 4, -1, lambda: IndexError('x'))
        assert c.count == 0
        assert backend.fetch_scalars(numpy.array(7.0)) == (7.0,)
        assert c.count == 1
        backend.check_index_range(numpy.array([0, 5]), 0, 4, None,
                                  lambda: IndexError('id 5 is out of range'))
        with pytest.raises(IndexError, match='id 5'):
            backend.to_host(numpy.zeros((2, 2)))
        assert c.count == 2
        backend.flush_checks()                    # nothing pending: no transfer
        assert c.count == 2


def test_host_checks_raise_at_once_outside_the_counter():
    with pytest.raises(IndexError, match='now'):
        backend.check_index_range(numpy.array([3, -2]), 0, 4, -1, lambda: IndexError('now'))
    backend.check_index_range(numpy.array([3, -1]), 0, 4, -1, lambda: IndexError('no'))
    backend.check_index_range(numpy.zeros(0, int), 0, -1, None, lambda: IndexError('empty'))
    with pytest.raises(ValueError):
        backend.check_later(True, lambda: ValueError('bool'))


def test_queued_checks_are_merged_without_a_transfer_and_flushed_when_too_many(monkeypatch):
    monkeypatch.setattr(backend, 'COMPACT_CHECKS', 3)
    monkeypatch.setattr(backend, 'MAX_PENDING_CHECKS', 10)
    with backend.counting_fetches() as c:
        for k in range(9):
            backend.check_later(numpy.array(k == 7), lambda k=k: ValueError('check %d' % k))
        assert c.count == 0 and len(backend._state.pending) <= 4
        with pytest.raises(ValueError, match='check 7'):      # the right factory
            backend.fetch_scalars(numpy.array(1.0))
        assert c.count == 1
        for _ in range(11):
            backend.check_later(numpy.array(False), lambda: AssertionError('no'))
        assert c.count == 2                                    # the 11th forced a read
        backend.check_later(numpy.array(True), lambda: ValueError('late'))
        with pytest.raises(ValueError, match='late'):
            backend.flush_checks()


def test_lazy_scalar_fetches_once():
    v = backend.LazyScalar(numpy.array(2.5, numpy.float32))
    with backend.counting_fetches() as c:
        assert 'not fetched' in repr(v)
        assert float(v) == 2.5 and v.item() == 2.5 and '%.1f' % v == '2.5'
    assert c.count == 1


def test_using_device_on_host_data_is_a_shared_no_op():
    ctx = backend.using_device(numpy.zeros(1))
    assert ctx is backend.using_device(None) is backend.using_device('cpu')
    with ctx:
        pass
    from seqdbr import Variable
    assert backend.using_device(Variable(numpy.zeros(1))) is ctx
    with pytest.raises(TypeError, match='using_device expects'):
        backend.using_device(object())
