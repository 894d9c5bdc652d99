"""TupleDataset, SerialIterator (incl. checkpoint/resume) and concat_examples."""
import io

import numpy
import pytest

from seqdbr.datasets import SerialIterator, TupleDataset, concat_examples


# -- TupleDataset ----------------------------------------------------------------------

def _xy(n=6):
    x = numpy.arange(n * 2, dtype=numpy.float32).reshape(n, 2)
    y = numpy.arange(n, dtype=numpy.int32) * 10
    return x, y


def test_tuple_dataset_int_indexing():
    x, y = _xy()
    ds = TupleDataset(x, y)
    assert len(ds) == 6 and ds.arrays[0] is x and ds.arrays[1] is y
    a, b = ds[2]
    assert a.tolist() == [4.0, 5.0] and int(b) == 20
    assert ds[-1][0].tolist() == [10.0, 11.0] and int(ds[numpy.int64(-1)][1]) == 50
    with pytest.raises(IndexError, match='index 6 is out of range .* length 6'):
        ds[6]
    with pytest.raises(IndexError, match='out of range'):
        ds[-7]


def test_tuple_dataset_slice_array_mask():
    x, y = _xy()
    ds = TupleDataset(x, y)
    sl = ds[1:5:2]
    assert isinstance(sl, list) and len(sl) == 2
    assert [int(t) for _, t in sl] == [10, 30] and sl[1][0].tolist() == [6.0, 7.0]
    assert [int(t) for _, t in ds[numpy.array([5, 0, -2])]] == [50, 0, 40]
    assert [int(t) for _, t in ds[[3, 3]]] == [30, 30]
    mask = numpy.array([True, False, False, True, False, True])
    assert [int(t) for _, t in ds[mask]] == [0, 30, 50]
    assert ds[[]] == [] and ds[4:2] == []
    with pytest.raises(IndexError, match='out of range'):
        ds[numpy.array([0, 6])]
    with pytest.raises(IndexError, match='boolean mask must have shape'):
        ds[numpy.array([True, False])]
    with pytest.raises(IndexError, match='1-D integer array'):
        ds[numpy.zeros((2, 2), dtype=numpy.int64)]
    with pytest.raises(IndexError, match='must be an int'):
        ds[1.0]


def test_tuple_dataset_mixed_components():
    words = ['a', 'bb', 'ccc']
    lengths = numpy.array([1, 2, 3])
    ds = TupleDataset(words, lengths)
    assert ds[1] == ('bb', 2)
    assert [w for w, _ in ds[::-1]] == ['ccc', 'bb', 'a']
    assert [w for w, _ in ds[numpy.array([2, 0])]] == ['ccc', 'a']


def test_tuple_dataset_validation():
    with pytest.raises(ValueError, match=r'same length, got lengths \[3, 2, 3\]'):
        TupleDataset(numpy.zeros(3), numpy.zeros(2), [1, 2, 3])
    with pytest.raises(ValueError, match='at least one array'):
        TupleDataset()
    with pytest.raises(TypeError, match='component 1 .* has no len'):
        TupleDataset([1, 2], 5)


# -- SerialIterator --------------------------------------------------------------------

def _ids(batch):
    return [int(ex) for ex in batch]


def test_no_shuffle_no_repeat_keeps_last_partial_batch():
    it = SerialIterator(list(range(10)), 4, repeat=False, shuffle=False)
    assert it.previous_epoch_detail is None and it.epoch_detail == 0.0
    expected = [([0, 1, 2, 3], 0.4, 0.0, False), ([4, 5, 6, 7], 0.8, 0.4, False),
                ([8, 9], 1.0, 0.8, True)]
    for ids, detail, previous, new_epoch in expected:
        assert _ids(next(it)) == ids
        assert it.epoch_detail == pytest.approx(detail)
        assert it.previous_epoch_detail == pytest.approx(previous)
        assert it.is_new_epoch is new_epoch
    assert it.epoch == 1
    with pytest.raises(StopIteration):
        next(it)
    it.reset()
    assert [_ids(b) for b in it] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_no_shuffle_repeat_wraps_into_next_epoch():
    it = SerialIterator(list(range(10)), 4, repeat=True, shuffle=False)
    got = [(_ids(next(it)), it.epoch, it.current_position, it.is_new_epoch) for _ in range(5)]
    assert got == [([0, 1, 2, 3], 0, 4, False), ([4, 5, 6, 7], 0, 8, False),
                   ([8, 9, 0, 1], 1, 2, True), ([2, 3, 4, 5], 1, 6, False),
                   ([6, 7, 8, 9], 2, 0, True)]
    assert it.epoch_detail == 2.0 and it.previous_epoch_detail == pytest.approx(1.6)


def test_batch_larger_than_dataset():
    it = SerialIterator(['a', 'b', 'c'], 7, shuffle=False)
    assert next(it) == ['a', 'b', 'c', 'a', 'b', 'c', 'a']
    assert (it.epoch, it.current_position, it.is_new_epoch) == (2, 1, True)
    once = SerialIterator(['a', 'b', 'c'], 7, repeat=False, shuffle=False)
    assert list(once) == [['a', 'b', 'c']]


def test_shuffle_epochs_are_the_generators_permutations():
    n, bs, seed = 10, 3, 1234
    it = SerialIterator(list(range(n)), bs, seed=seed)
    stream = [i for _ in range(10) for i in _ids(next(it))]          # 30 = 3 epochs
    ref = numpy.random.Generator(numpy.random.PCG64(seed))
    epochs = [ref.permutation(n).tolist() for _ in range(4)]
    assert stream == epochs[0] + epochs[1] + epochs[2]
    assert it.order.tolist() == epochs[3] and it.epoch == 3
    assert any(e != list(range(n)) for e in epochs[:3])
    with pytest.raises(ValueError):
        it.order[0] = 5                                             # read-only view


def test_shuffle_no_repeat_visits_each_example_once():
    x = numpy.arange(23, dtype=numpy.float32)
    ds = TupleDataset(x, x.astype(numpy.int32) * 2)
    batches = list(SerialIterator(ds, 5, repeat=False, seed=0))
    assert [len(b) for b in batches] == [5, 5, 5, 5, 3]
    seen = [float(a) for b in batches for a, _ in b]
    assert sorted(seen) == list(range(23))
    assert all(int(t) == 2 * int(a) for b in batches for a, t in b)   # pairs stay together


def test_same_seed_same_batches_other_seed_differs():
    def run(seed):
        it = SerialIterator(list(range(50)), 8, seed=seed)
        return [_ids(next(it)) for _ in range(20)]
    assert run(7) == run(7)
    assert run(7) != run(8)


def test_iterator_validation():
    with pytest.raises(ValueError, match='empty'):
        SerialIterator([], 2)
    with pytest.raises(ValueError, match='batch_size must be a positive int'):
        SerialIterator([1, 2], 0)
    with pytest.raises(ValueError, match='seed must be None or a non-negative int'):
        SerialIterator([1, 2], 1, seed=-3)
    with pytest.raises(TypeError, match='len'):
        SerialIterator(5, 1)


# A tiny dictionary serializer pair that follows the protocol in docs/design.md.
class DictSaver:
    def __init__(self, target=None, prefix=''):
        self.target = {} if target is None else target
        self.prefix = prefix

    def __getitem__(self, name):
        return DictSaver(self.target, self.prefix + name + '/')

    def __call__(self, key, value):
        assert value is not None
        self.target[self.prefix + key] = value.copy() if isinstance(value, numpy.ndarray) \
            else value
        return value


class DictLoader:
    def __init__(self, source, prefix=''):
        self.source = source
        self.prefix = prefix

    def __getitem__(self, name):
        return DictLoader(self.source, self.prefix + name + '/')

    def __call__(self, key, value):
        full = self.prefix + key
        if full not in self.source:
            raise KeyError('key %r is not in the stored state' % full)
        stored = self.source[full]
        if isinstance(value, numpy.ndarray):
            stored = numpy.asarray(stored)
            if stored.shape != value.shape:
                raise ValueError('shape mismatch for %r: %s vs %s'
                                 % (full, stored.shape, value.shape))
            value[...] = stored
            return value
        if value is None:
            return numpy.asarray(stored)
        return type(value)(stored.item() if isinstance(stored, numpy.ndarray) else stored)


def _npz_roundtrip(state):
    """Write the saved state as .npz and read it back without pickles."""
    buf = io.BytesIO()
    numpy.savez(buf, **{k: numpy.asarray(v) for k, v in state.items()})
    buf.seek(0)
    with numpy.load(buf, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


@pytest.mark.parametrize('shuffle', [True, False])
@pytest.mark.parametrize('steps', [0, 3, 4, 9])      # N=10, bs=3 (wraps); 4 and 9 hit boundaries
def test_serialize_resume_gives_identical_future(shuffle, steps):
    data = list(range(10))
    a = SerialIterator(data, 3, shuffle=shuffle, seed=42)
    for _ in range(steps):
        next(a)
    state = {}
    a.serialize(DictSaver(state)['iterator'])
    assert all(k.startswith('iterator/') for k in state)
    for v in state.values():
        assert isinstance(v, (bool, int, float)) or v.dtype != object
    restored_state = _npz_roundtrip(state)

    b = SerialIterator(data, 3, shuffle=shuffle, seed=999)
    next(b)                                     # some unrelated progress, overwritten below
    b.serialize(DictLoader(restored_state)['iterator'])
    for attr in ('epoch', 'current_position', 'is_new_epoch', 'epoch_detail',
                 'previous_epoch_detail'):
        assert getattr(b, attr) == getattr(a, attr), attr
    future_a = [_ids(next(a)) for _ in range(12)]
    future_b = [_ids(next(b)) for _ in range(12)]
    assert future_a == future_b


def test_serialize_keys_and_pickle_free_values():
    it = SerialIterator(list(range(5)), 2, seed=1)
    next(it)
    state = {}
    it.serialize(DictSaver(state))
    assert set(state) == {'dataset_length', 'shuffle', 'current_position', 'epoch',
                          'is_new_epoch', 'previous_epoch_detail', 'order', 'rng_state'}
    assert state['order'].dtype == numpy.int64 and state['order'].shape == (5,)
    assert state['rng_state'].dtype == numpy.uint64 and state['rng_state'].shape == (6,)
    assert (state['current_position'], state['epoch'], state['previous_epoch_detail']) == \
        (2, 0, 0.0)


def test_load_rejects_mismatched_or_corrupt_state():
    src = SerialIterator(list(range(6)), 2, seed=3)
    next(src)
    state = {}
    src.serialize(DictSaver(state))
    with pytest.raises(ValueError, match='dataset of 6 examples into one over 7'):
        SerialIterator(list(range(7)), 2).serialize(DictLoader(state))
    with pytest.raises(ValueError, match='shuffle=True into an iterator with shuffle=False'):
        SerialIterator(list(range(6)), 2, shuffle=False).serialize(DictLoader(state))
    bad = dict(state, order=numpy.array([0, 0, 1, 2, 3, 4]))
    target = SerialIterator(list(range(6)), 2, seed=5)
    before = target.order.copy()
    with pytest.raises(ValueError, match='not a permutation'):
        target.serialize(DictLoader(bad))
    numpy.testing.assert_array_equal(target.order, before)   # not half-loaded
    with pytest.raises(ValueError, match='current_position=6'):
        SerialIterator(list(range(6)), 2, seed=5).serialize(
            DictLoader(dict(state, current_position=6)))
    missing = {k: v for k, v in state.items() if k != 'rng_state'}
    with pytest.raises(KeyError, match='rng_state'):
        SerialIterator(list(range(6)), 2, seed=5).serialize(DictLoader(missing))


# -- concat_examples -------------------------------------------------------------------

def test_concat_tuple_examples_from_iterator():
    x = numpy.arange(12, dtype=numpy.float32).reshape(6, 2)
    t = numpy.arange(6, dtype=numpy.int32)
    it = SerialIterator(TupleDataset(x, t), 4, shuffle=False)
    bx, bt = concat_examples(next(it))
    assert bx.dtype == numpy.float32 and bx.shape == (4, 2)
    assert bt.dtype == numpy.int32 and bt.tolist() == [0, 1, 2, 3]
    numpy.testing.assert_array_equal(bx, x[:4])
    bx, bt = concat_examples(next(it))                     # wrapped batch: 4, 5, 0, 1
    assert bt.tolist() == [4, 5, 0, 1]
    numpy.testing.assert_array_equal(bx, x[[4, 5, 0, 1]])


def test_concat_arrays_and_dicts():
    out = concat_examples([numpy.ones((2, 3)), numpy.zeros((2, 3))])
    assert out.shape == (2, 2, 3) and out[0].sum() == 6 and out[1].sum() == 0
    d = concat_examples([{'a': numpy.int64(1), 'b': numpy.ones(2)},
                         {'a': numpy.int64(2), 'b': numpy.zeros(2)}])
    assert d['a'].tolist() == [1, 2] and d['b'].shape == (2, 2)
    with pytest.raises(ValueError, match='same keys'):
        concat_examples([{'a': 1}, {'b': 1}])


def test_concat_shape_mismatch_and_padding():
    seqs = [(numpy.array([1, 2, 3], numpy.int32), numpy.int32(0)),
            (numpy.array([4], numpy.int32), numpy.int32(1))]
    with pytest.raises(ValueError, match=r'example 0 has shape \(3,\) but example 1 has shape '
                                         r'\(1,\); pass padding'):
        concat_examples(seqs)
    xs, ts = concat_examples(seqs, padding=(-1, None))
    assert xs.tolist() == [[1, 2, 3], [4, -1, -1]] and xs.dtype == numpy.int32
    assert ts.tolist() == [0, 1]
    img = concat_examples([numpy.ones((1, 2)), numpy.ones((2, 1))], padding=0)
    assert img.tolist() == [[[1, 1], [0, 0]], [[1, 0], [1, 0]]]
    with pytest.raises(ValueError, match='padding has 3 entries'):
        concat_examples(seqs, padding=(0, 0, 0))
    with pytest.raises(ValueError, match='same structure'):
        concat_examples([(1, 2), (1,)])
    with pytest.raises(ValueError, match='batch is empty'):
        concat_examples([])


def test_concat_to_cpu_device():
    from seqdbr.core import backend     # seqdbr's own module: an import error must fail
    x, t = concat_examples([(numpy.ones(2), 1), (numpy.zeros(2), 2)], device='cpu')
    assert backend.get_array_module(x) is numpy
    assert isinstance(t, numpy.ndarray) and t.tolist() == [1, 2]
