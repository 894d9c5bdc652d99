"""``scripts/train_mnist.py`` reports user errors as one ``error:`` line, not a traceback.

Before: ``--resume`` with other settings or without a checkpoint, ``--device gpu`` without a
GPU, and missing MNIST files offline all ended in Python tracebacks; ``--help`` showed
``(default: None)`` after help texts that already describe their default.
"""
import importlib.util
import pathlib

import numpy
import pytest

from seqdbr.core import backend
from seqdbr.datasets import TupleDataset
from seqdbr.datasets.download import DownloadError
from seqdbr.examples import mnist

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture
def script():
    spec = importlib.util.spec_from_file_location('train_mnist_script',
                                                  ROOT / 'scripts' / 'train_mnist.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _synthetic():
    rng = numpy.random.default_rng(0)

    def ds(n):
        return TupleDataset(rng.random((n, 784), dtype=numpy.float32),
                            rng.integers(0, 10, n).astype(numpy.int32))
    return ds(40), ds(10)


@pytest.fixture
def on_synthetic_data(monkeypatch):
    """Run the script's training on a small synthetic set (no MNIST files, no network)."""
    real_train = mnist.train
    data = _synthetic()
    monkeypatch.setattr(mnist, 'train', lambda config: real_train(config, data=data))


def _run(script, capsys, args):
    rc = script.main(args)
    cap = capsys.readouterr()
    assert 'Traceback' not in cap.err
    return rc, cap


def test_resume_errors_are_one_line(script, capsys, tmp_path, on_synthetic_data):
    out = str(tmp_path / 'run')
    base = ['--out', out, '--units', '8', '--batchsize', '20', '--no-progress']
    rc, cap = _run(script, capsys, base + ['--resume'])
    assert rc == 1 and 'error: --resume: there is no checkpoint' in cap.err
    rc, cap = _run(script, capsys, base + ['--epochs', '1'])
    assert rc == 0
    rc, cap = _run(script, capsys, ['--out', out, '--units', '9', '--batchsize', '20',
                                    '--epochs', '2', '--resume', '--no-progress'])
    assert rc == 1 and 'error:' in cap.err and '--units 8' in cap.err


def test_offline_download_error_and_ctrl_c(script, capsys, tmp_path, monkeypatch):
    def offline(config):
        raise DownloadError('could not download train-images-idx3-ubyte.gz; put it at X',
                            dest='X', urls=[], failures=[])
    monkeypatch.setattr(mnist, 'train', offline)
    rc, cap = _run(script, capsys, ['--out', str(tmp_path / 'o')])
    assert rc == 1 and 'error: could not download' in cap.err and 'put it at' in cap.err

    def interrupted(config):
        raise KeyboardInterrupt
    monkeypatch.setattr(mnist, 'train', interrupted)
    rc, cap = _run(script, capsys, ['--out', str(tmp_path / 'o')])
    assert rc == 130 and '--resume' in cap.err


@pytest.mark.skipif(backend.is_gpu_available(), reason='a GPU is usable here')
def test_gpu_without_a_gpu_is_an_option_error(script, capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        script.main(['--device', 'gpu', '--out', str(tmp_path / 'o')])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert '--device gpu' in err and 'Traceback' not in err


def test_help_shows_real_defaults_only(script):
    text = script.build_parser().format_help()
    assert '(default: None)' not in text and '(default: False)' not in text
    assert '(default: 20)' in text and '(default: 100)' in text
