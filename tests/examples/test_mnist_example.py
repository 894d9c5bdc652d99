"""The evaluator, the JSON-lines logger and the MNIST MLP example (seqdbr.examples.mnist).

Real-MNIST tests use ../shared/data/mnist (the training images in 3 parts, joined and
checked against the sha256 of MANIFEST.md) and skip without it. The 3-epoch full-MNIST
accuracy test is marked slow and runs only with SEQDBR_RUN_SLOW=1.
"""
import hashlib
import json
import math
import os
import pathlib
import re
import subprocess
import sys

import numpy
import pytest

import seqdbr
import seqdbr.functions as F
import seqdbr.links as L
from seqdbr.core import serializers
from seqdbr.datasets import SerialIterator, TupleDataset, get_mnist
from seqdbr.examples import mnist
from seqdbr.training import (JsonlLogger, MeanAccumulator, classifier_metrics, evaluate,
                             read_jsonl, rewrite_jsonl)

ROOT = pathlib.Path(__file__).resolve().parents[2]
TRAIN_IMAGES_SHA = '440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609'
TIME_KEYS = ('time',)


# -- helpers ------------------------------------------------------------------------------

def assemble_mnist_dir(shared_data, out):
    """Build a folder with the four canonical MNIST files from ../shared/data/mnist.

    The training images are stored in 3 parts; they are joined and the result must have
    the sha256 given in ../shared/data/MANIFEST.md. The other three files are linked.
    """
    src = shared_data / 'mnist'
    parts = sorted(src.glob('train-images-idx3-ubyte.gz.part-*'))
    assert [p.name[-7:] for p in parts] == ['part-00', 'part-01', 'part-02']
    blob = b''.join(p.read_bytes() for p in parts)
    assert hashlib.sha256(blob).hexdigest() == TRAIN_IMAGES_SHA
    (out / 'train-images-idx3-ubyte.gz').write_bytes(blob)
    for name in ('train-labels-idx1-ubyte.gz', 't10k-images-idx3-ubyte.gz',
                 't10k-labels-idx1-ubyte.gz'):
        (out / name).symlink_to(src / name)
    return out


@pytest.fixture(scope='module')
def mnist_dir(shared_data, tmp_path_factory):
    return assemble_mnist_dir(shared_data, tmp_path_factory.mktemp('mnist'))


@pytest.fixture(scope='module')
def mnist_data(mnist_dir):
    return get_mnist(data_dir=mnist_dir)


def synthetic(n_train=60, n_test=20, n_in=784, seed=0):
    """Random float32 images and int32 labels shaped like flat MNIST."""
    rng = numpy.random.default_rng(seed)
    def ds(n):
        return TupleDataset(rng.random((n, n_in), dtype=numpy.float32),
                            rng.integers(0, 10, n).astype(numpy.int32))
    return ds(n_train), ds(n_test)


def quick_config(out, **kw):
    kw.setdefault('units', 100)
    kw.setdefault('epochs', 1)
    kw.setdefault('progress', False)
    kw.setdefault('verbose', False)
    return mnist.MnistConfig(out=str(out), **kw)


def strip_times(records):
    return [{k: v for k, v in r.items() if k not in TIME_KEYS} for r in records]


def checkpoint_arrays(out):
    d = serializers.load_npz_dict(pathlib.Path(out) / mnist.CHECKPOINT)
    del d['elapsed']
    return d


def assert_same_arrays(a, b):
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        assert a[k].tobytes() == b[k].tobytes(), 'checkpoint entry %s differs' % k


# -- (a) evaluate: means weighted by example count ----------------------------------------

def five_examples():
    """5 examples with 3-class logits; predicted class = argmax of x.

    Batches of 3 and 2: the first 3 are all predicted right, of the last 2 only one is.
    """
    x = numpy.array([[3, 0, 0], [0, 2, 0], [0, 0, 1],     # labels 0, 1, 2: all right
                     [1, 0, 0],                            # label 0: right
                     [0, 4, 0]], numpy.float32)            # label 2: wrong
    t = numpy.array([0, 1, 2, 0, 2], numpy.int32)
    return TupleDataset(x, t)


def test_evaluate_weights_by_examples_3_of_3_and_1_of_2_is_0_8():
    ds = five_examples()
    seen = []

    def model_fn(x, t):
        seen.append(len(t))
        return {'accuracy': float((x.argmax(axis=1) == t).mean())}

    got = evaluate(model_fn, ds, batch_size=3)
    assert seen == [3, 2]                                  # batches of 3 and 2
    assert got['accuracy'] == pytest.approx(0.8, abs=1e-12)    # (3 + 1) / 5
    assert got['accuracy'] != pytest.approx(0.75)          # not (3/3 + 1/2) / 2


def test_evaluate_classifier_weighted_loss_and_accuracy():
    ds = five_examples()
    # identity predictor: logits = x
    model = L.Classifier(L.Linear(3, 3, nobias=True, initialW=numpy.eye(3, dtype=numpy.float32)))
    got = evaluate(classifier_metrics(model), ds, batch_size=3)
    assert got['accuracy'] == pytest.approx(0.8, abs=1e-7)
    x, t = (a.astype(numpy.float64) for a in ds.arrays)
    logp = x - numpy.log(numpy.exp(x).sum(axis=1, keepdims=True))
    per_example = -logp[numpy.arange(5), ds.arrays[1]]
    assert got['loss'] == pytest.approx(per_example.mean(), rel=1e-6)
    batch_means = (per_example[:3].mean() + per_example[3:].mean()) / 2
    assert abs(got['loss'] - batch_means) > 1e-3   # the per-batch average would differ


def test_evaluate_uses_test_mode_and_no_backprop_and_restores():
    ds = five_examples()
    flags = []

    def model_fn(x, t):
        flags.append((seqdbr.config.train, seqdbr.config.enable_backprop))
        h = F.relu(seqdbr.Variable(x))        # a requires-grad input: still no graph
        assert h.creator is None
        return numpy.float32(1.0)

    assert evaluate(model_fn, ds, batch_size=2) == {'loss': 1.0}
    assert flags == [(False, False)] * 3
    assert seqdbr.config.train is True and seqdbr.config.enable_backprop is True

    def failing(x, t):
        raise RuntimeError('boom')
    with pytest.raises(RuntimeError, match='boom'):
        evaluate(failing, ds, batch_size=2)
    assert seqdbr.config.train is True and seqdbr.config.enable_backprop is True


def test_evaluate_iterator_is_reset_and_reusable():
    ds = five_examples()
    it = SerialIterator(ds, 2, repeat=False, shuffle=False)

    def model_fn(x, t):
        return {'accuracy': (x.argmax(axis=1) == t).mean(), 'n': float(len(t))}

    first = evaluate(model_fn, it)
    second = evaluate(model_fn, it)                    # same iterator, next epoch
    assert first == second
    assert first['accuracy'] == pytest.approx(0.8)
    # 'n' weighted by n: (2*2 + 2*2 + 1*1) / 5
    assert first['n'] == pytest.approx(9 / 5)
    # a plain iterator of batches (no reset): used once as it is
    batches = iter([[ds[0], ds[1], ds[2]], [ds[3], ds[4]]])
    assert evaluate(model_fn, batches) == {'accuracy': pytest.approx(0.8),
                                           'n': pytest.approx((3 * 3 + 2 * 2) / 5)}
    with pytest.raises(ValueError, match='repeat=False'):
        evaluate(model_fn, SerialIterator(ds, 2, repeat=True))
    with pytest.raises(ValueError, match='batch_size'):
        evaluate(model_fn, ds)


def test_mean_accumulator_checks():
    acc = MeanAccumulator()
    assert acc.means() == {}
    acc.add({'loss': seqdbr.Variable(numpy.array(2.0, numpy.float32)),
             'acc': numpy.array([0.5])}, 2)
    acc.add({'loss': 5, 'acc': numpy.float64(1.0)}, 1)
    assert acc.count == 3
    assert acc.means() == {'loss': 3.0, 'acc': pytest.approx(2 / 3)}
    with pytest.raises(ValueError, match='names changed'):
        acc.add({'loss': 1.0}, 1)
    with pytest.raises(ValueError, match='scalar'):
        acc.add({'loss': numpy.zeros(2), 'acc': 1.0}, 1)
    with pytest.raises(ValueError, match='positive int'):
        acc.add({'loss': 1.0, 'acc': 1.0}, 0)
    with pytest.raises(TypeError, match="metric 'loss'"):
        acc.add({'loss': 'x', 'acc': 1.0}, 1)
    assert acc.count == 3 and acc.means()['loss'] == 3.0   # failed adds changed nothing
    acc.reset()
    assert acc.means() == {} and acc.count == 0


# -- JsonlLogger ------------------------------------------------------------------------

def test_jsonl_logger_appends_flushed_lines(tmp_path):
    path = tmp_path / 'sub' / 'log.jsonl'
    logger = JsonlLogger(path)
    logger.log({'epoch': 1, 'loss': numpy.float32(0.5), 'acc': numpy.array([0.25]),
                'name': 'ü'})
    # flushed: visible to a reader before close
    assert json.loads(path.read_text(encoding='utf-8')) == \
        {'epoch': 1, 'loss': 0.5, 'acc': 0.25, 'name': 'ü'}
    with pytest.raises(TypeError, match='JSON log'):
        logger.log({'bad': object()})
    with pytest.raises(TypeError, match='dict'):
        logger.log([1, 2])
    logger.log({'epoch': 2, 'loss': float('nan')})
    logger.close()
    assert logger.closed
    with JsonlLogger(path) as again:                     # reopening appends
        again.log({'epoch': 3})
    text = path.read_text(encoding='utf-8')
    assert text.count('\n') == 3 and text.endswith('\n')
    recs = read_jsonl(path)
    assert [r['epoch'] for r in recs] == [1, 2, 3] and math.isnan(recs[1]['loss'])


def test_read_jsonl_partial_last_line_and_rewrite(tmp_path):
    path = tmp_path / 'log.jsonl'
    assert read_jsonl(path) == []
    path.write_text('{"a": 1}\n{"a": 2}\n{"a": 3, "b"', encoding='utf-8')
    assert read_jsonl(path) == [{'a': 1}, {'a': 2}]        # a crash mid-line
    path.write_text('{"a": 1}\nnot json\n{"a": 3}\n', encoding='utf-8')
    with pytest.raises(ValueError, match='line 2'):
        read_jsonl(path)
    rewrite_jsonl(path, [{'a': 1}, {'a': 2}])
    assert path.read_text(encoding='utf-8') == '{"a": 1}\n{"a": 2}\n'
    assert [p.name for p in tmp_path.iterdir()] == ['log.jsonl']   # no temp file left


# -- the example on synthetic data (no real data needed) -------------------------------------

def test_mlp_shapes_and_params():
    model = mnist.MLP(50)
    assert [n for n, _ in sorted(model.namedparams())] == \
        ['/l1/W', '/l1/b', '/l2/W', '/l2/b', '/l3/W', '/l3/b']
    assert model.count_params() == 784 * 50 + 50 + 50 * 50 + 50 + 50 * 10 + 10
    y = model(numpy.zeros((4, 784), numpy.float32))
    assert y.shape == (4, 10) and y.dtype == numpy.float32
    default = mnist.MnistConfig()
    assert (default.units, default.batchsize, default.epochs) == (1000, 100, 20)


def test_config_validation(tmp_path):
    for kw, match in [({'epochs': 0}, '--epochs'), ({'units': -1}, '--units'),
                      ({'batchsize': 1.5}, '--batchsize'), ({'train_size': 0}, '--train-size'),
                      ({'seed': -1}, '--seed'), ({'device': 'tpu'}, 'unknown device')]:
        with pytest.raises(ValueError, match=match):
            quick_config(tmp_path, **kw).validate()


def test_resume_errors_name_the_problem(tmp_path):
    data = synthetic()
    with pytest.raises(FileNotFoundError, match='without --resume'):
        mnist.train(quick_config(tmp_path / 'none', resume=True, units=8), data=data)
    mnist.train(quick_config(tmp_path / 'a', units=8, batchsize=20), data=data)
    with pytest.raises(ValueError, match='--units 8'):
        mnist.train(quick_config(tmp_path / 'a', units=9, batchsize=20, epochs=2,
                                 resume=True), data=data)
    with pytest.raises(ValueError, match='--batchsize 20'):
        mnist.train(quick_config(tmp_path / 'a', units=8, batchsize=10, epochs=2,
                                 resume=True), data=data)
    # a corrupt checkpoint names the file
    ckpt = tmp_path / 'a' / mnist.CHECKPOINT
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    with pytest.raises(serializers.SerializationError, match=str(ckpt)):
        mnist.train(quick_config(tmp_path / 'a', units=8, batchsize=20, epochs=2,
                                 resume=True), data=data)


def test_resume_drops_log_lines_after_the_checkpoint(tmp_path):
    data = synthetic()
    out = tmp_path / 'run'
    mnist.train(quick_config(out, units=8, batchsize=25, epochs=1), data=data)
    # simulate a crash after the epoch-2 log line but before its checkpoint
    with JsonlLogger(out / mnist.LOG) as lg:
        lg.log({'epoch': 2, 'train_loss': 123.0})
    run = mnist.train(quick_config(out, units=8, batchsize=25, epochs=2, resume=True),
                      data=data)
    recs = read_jsonl(out / mnist.LOG)
    assert [r['epoch'] for r in recs] == [1, 2] and recs[1]['train_loss'] != 123.0
    assert recs == run.log
    # batch 25 does not divide 60: epochs end mid-batch, iterations = ceil(epoch*60/25)
    assert [r['iteration'] for r in recs] == [3, 5]


# -- (b) end to end on a slice of real MNIST ------------------------------------------

def test_mnist_slice_trains_logs_checkpoints_and_resumes_exactly(mnist_data, tmp_path):
    small = dict(units=100, train_size=2000, test_size=500, seed=3)
    a = mnist.train(quick_config(tmp_path / 'a', epochs=1, dot=True, **small), data=mnist_data)

    # learned something in 20 steps: chance is 10% (a float64 NumPy re-implementation of
    # the same 20 steps gives 71.2% with seed 3)
    (rec,) = a.log
    assert sorted(rec) == sorted(mnist.LOG_KEYS)
    assert rec['epoch'] == 1 and rec['iteration'] == 20     # 2000 / 100
    assert rec['test_accuracy'] > 0.6, rec
    assert rec['train_accuracy'] > 0.4 and rec['train_loss'] < 2.0
    assert rec['time'] > 0
    assert read_jsonl(tmp_path / 'a' / mnist.LOG) == a.log

    # the checkpoint: one file; the model part loads into a fresh model by itself
    names = sorted(p.name for p in (tmp_path / 'a').iterdir())
    assert names == sorted([mnist.CHECKPOINT, mnist.LOG, mnist.GRAPH])
    d = serializers.load_npz_dict(tmp_path / 'a' / mnist.CHECKPOINT)
    assert int(d['iteration']) == 20 and int(d['optimizer/t']) == 20
    assert int(d['optimizer/epoch']) == 1 and int(d['iterator/epoch']) == 1
    assert d['model/predictor/l1/W'].shape == (100, 784)
    fresh = L.Classifier(mnist.MLP(100))
    serializers.load_npz(tmp_path / 'a' / mnist.CHECKPOINT, fresh, path_prefix='model')
    x, t = mnist_data[1].arrays
    again = evaluate(classifier_metrics(fresh), TupleDataset(x[:500], t[:500]), 100)
    assert again['accuracy'] == rec['test_accuracy']
    assert again['loss'] == pytest.approx(rec['test_loss'], rel=1e-6)

    dot = (tmp_path / 'a' / mnist.GRAPH).read_text()
    assert dot.lstrip().startswith('digraph') and '(100, 784)' in dot

    # exact resume: epoch 1 + resumed epoch 2 == 2 uninterrupted epochs, bit for bit
    b = mnist.train(quick_config(tmp_path / 'a', epochs=2, resume=True, **small),
                    data=mnist_data)
    c = mnist.train(quick_config(tmp_path / 'c', epochs=2, **small), data=mnist_data)
    assert strip_times(b.log) == strip_times(c.log)
    assert [r['epoch'] for r in b.log] == [1, 2]
    assert strip_times(read_jsonl(tmp_path / 'a' / mnist.LOG)) == strip_times(c.log)
    assert_same_arrays(checkpoint_arrays(tmp_path / 'a'), checkpoint_arrays(tmp_path / 'c'))
    for (n1, p1), (n2, p2) in zip(sorted(b.model.namedparams()),
                                  sorted(c.model.namedparams())):
        assert n1 == n2 and p1.array.tobytes() == p2.array.tobytes()
    assert b.optimizer.t == c.optimizer.t == 40
    assert b.log[1]['test_accuracy'] >= b.log[0]['test_accuracy'] - 0.02


def test_script_front_end(mnist_dir, tmp_path):
    out = tmp_path / 'run'
    base = [sys.executable, str(ROOT / 'scripts' / 'train_mnist.py'), '--data-dir',
            str(mnist_dir), '--train-size', '300', '--test-size', '100', '--units', '20',
            '--batchsize', '50', '--out', str(out), '--no-progress']
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run(base + ['--epochs', '1', '--dot'], capture_output=True, text=True,
                       env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    # PrintReport's table: header, then one row per epoch (iteration, epoch, ...)
    assert 'MNIST MLP 784-20-20-10' in r.stdout and 'test/accuracy' in r.stdout
    assert re.search(r'^6 +1 +[0-9.]+', r.stdout, re.M), r.stdout
    assert (out / mnist.GRAPH).exists() and (out / mnist.CHECKPOINT).exists()
    r = subprocess.run(base + ['--epochs', '2', '--resume'], capture_output=True, text=True,
                       env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert 'resumed from' in r.stdout and re.search(r'^12 +2 +[0-9.]+', r.stdout, re.M)
    assert not re.search(r'^6 +1 ', r.stdout, re.M)
    assert [rec['epoch'] for rec in read_jsonl(out / mnist.LOG)] == [1, 2]
    r = subprocess.run(base + ['--epochs', '0'], capture_output=True, text=True, env=env)
    assert r.returncode == 2 and '--epochs must be a positive integer' in r.stderr


# -- (c) the real thing: 3 epochs of the default model on full MNIST --------------------------

@pytest.mark.slow
@pytest.mark.skipif(os.environ.get('SEQDBR_RUN_SLOW') != '1',
                    reason='slow (3 full MNIST epochs); set SEQDBR_RUN_SLOW=1 to run')
def test_default_mlp_reaches_97_5_percent_in_3_epochs(mnist_data, tmp_path):
    run = mnist.train(mnist.MnistConfig(epochs=3, out=str(tmp_path / 'full'), progress=False,
                                        verbose=True), data=mnist_data)
    assert [r['epoch'] for r in run.log] == [1, 2, 3]
    for r in run.log:
        print('epoch %d: test accuracy %.4f, %.1f s since the start'
              % (r['epoch'], r['test_accuracy'], r['time']))
    assert run.log[-1]['test_accuracy'] >= 0.975
