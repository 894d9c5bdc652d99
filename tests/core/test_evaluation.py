"""Tests for seqdbr.core.functions.evaluation.accuracy."""
import warnings

import numpy
import pytest

import seqdbr.functions as F
from seqdbr import Variable
from seqdbr.core import backend


def _cpu(v):
    return backend.to_cpu(v.array if isinstance(v, Variable) else v)


def ref_accuracy(y, t, ignore_label=None):
    pred = numpy.argmax(y, axis=1)
    keep = numpy.ones(t.shape, bool) if ignore_label is None else t != ignore_label
    n = int(keep.sum())
    return 0.0 if n == 0 else float(((pred == t) & keep).sum()) / n


def test_hand_computed(xp):
    y = xp.asarray(numpy.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]], numpy.float32))
    t = xp.asarray(numpy.array([1, 1, 1, -1]))
    acc = F.accuracy(y, t, ignore_label=-1)
    assert abs(float(acc.array) - 2.0 / 3.0) < 1e-7
    acc2 = F.accuracy(y, xp.asarray(numpy.array([1, 0, 1, 0])))
    assert float(acc2.array) == 1.0


@pytest.mark.parametrize('dtype', [numpy.float32, numpy.float64])
@pytest.mark.parametrize('yshape', [(10, 4), (1, 1), (1, 3), (6, 3, 5), (2, 4, 3, 2)])
@pytest.mark.parametrize('ignore_label', [None, -1, 0])
def test_matches_reference(xp, dtype, yshape, ignore_label):
    rng = numpy.random.default_rng(sum(yshape))
    y = rng.standard_normal(yshape).astype(dtype)
    t = rng.integers(0, yshape[1], (yshape[0],) + yshape[2:])
    # make some predictions right on purpose so the value is not trivially ~1/C
    pred = y.argmax(1)
    flip = rng.random(t.shape) < 0.5
    t = numpy.where(flip, pred, t)
    if ignore_label == -1:
        t.reshape(-1)[::3] = -1
    acc = F.accuracy(xp.asarray(y), xp.asarray(t), ignore_label=ignore_label)
    assert acc.shape == () and acc.dtype == dtype
    assert abs(float(acc.array) - ref_accuracy(y, t, ignore_label)) < 1e-6


def test_returns_constant_without_graph(xp):
    y = Variable(xp.asarray(numpy.eye(3)))
    acc = F.accuracy(y, xp.asarray(numpy.array([0, 1, 2])))
    assert isinstance(acc, Variable)
    assert acc.creator is None and not acc.requires_grad
    assert float(acc.array) == 1.0


def test_all_ignored_and_empty_give_zero_without_warning(xp):
    y = xp.asarray(numpy.random.default_rng(0).standard_normal((4, 3)))
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        with numpy.errstate(all='raise'):
            a = F.accuracy(y, xp.asarray(numpy.full(4, -1)), ignore_label=-1)
            b = F.accuracy(xp.zeros((0, 3)), xp.zeros(0, dtype=numpy.int32))
            c = F.accuracy(xp.zeros((0, 3)), xp.zeros(0, dtype=numpy.int32), ignore_label=-1)
    for v in (a, b, c):
        assert float(v.array) == 0.0 and not numpy.isnan(_cpu(v))


def test_labels_outside_range_never_match(xp):
    y = xp.asarray(numpy.eye(3, dtype=numpy.float32))
    acc = F.accuracy(y, xp.asarray(numpy.array([0, 7, -5])))
    assert abs(float(acc.array) - 1.0 / 3.0) < 1e-7


def test_errors():
    y = numpy.zeros((3, 4), numpy.float32)
    with pytest.raises(ValueError, match=r't must have shape \(3,\) for y of shape \(3, 4\).*'
                                         r'got \(4,\)'):
        F.accuracy(y, numpy.zeros(4, numpy.int32))
    with pytest.raises(ValueError, match=r'\(B, C\).*got shape \(3,\)'):
        F.accuracy(numpy.zeros(3, numpy.float32), numpy.zeros(3, numpy.int32))
    with pytest.raises(TypeError, match=r'integer array, got dtype float32'):
        F.accuracy(y, numpy.zeros(3, numpy.float32))
    with pytest.raises(TypeError, match=r'floating-point'):
        F.accuracy(numpy.zeros((3, 4), numpy.int32), numpy.zeros(3, numpy.int32))
    with pytest.raises(TypeError, match=r'ignore_label must be an int or None'):
        F.accuracy(y, numpy.zeros(3, numpy.int32), ignore_label='x')


def test_public_names_are_exported_through_seqdbr_functions():
    from seqdbr.core.functions import evaluation as module
    assert sorted(module.__all__) == sorted(['accuracy'])
    for name in module.__all__:
        assert getattr(F, name) is getattr(module, name)
