"""Shared pytest fixtures: the real-data folder and the backend switch.

``SEQDBR_TEST_DEVICE=gpu`` makes the ``xp`` fixture return CuPy, so every
backend-generic test runs on the GPU; the default is NumPy.

Real data (fixture ``shared_data``): ``SEQDBR_TEST_DATA=DIR`` points the tests at the data
folder; without it they look for ``../shared/data`` beside the repository root. When the
folder is absent they skip, unless ``SEQDBR_REQUIRE_DATA=1`` (set by ``.ci/run`` when the
folder exists beside the clone), which makes its absence a failure. The tests only read
there (CI lays the folder out without write bits).
"""
import os
import pathlib

import numpy
import pytest

SHARED_DATA = pathlib.Path(__file__).resolve().parents[1].parent / 'shared' / 'data'


def pytest_configure(config):
    config.addinivalue_line('markers', 'gpu: needs CuPy and a CUDA GPU (skipped otherwise)')
    config.addinivalue_line('markers', 'slow: takes more than a few seconds')


def _gpu_ok():
    from seqdbr.core import backend
    return backend.is_gpu_available()


def pytest_collection_modifyitems(config, items):
    if any(item.get_closest_marker('gpu') for item in items) and not _gpu_ok():
        skip = pytest.mark.skip(reason='needs CuPy and a usable CUDA GPU')
        for item in items:
            if item.get_closest_marker('gpu'):
                item.add_marker(skip)


def data_dir():
    """The real-data folder the tests use: ``$SEQDBR_TEST_DATA``, else ``../shared/data``."""
    env = os.environ.get('SEQDBR_TEST_DATA')
    return pathlib.Path(env).expanduser().resolve() if env else SHARED_DATA


@pytest.fixture(scope='session')
def shared_data():
    """Path to the real-data folder (corpora and MNIST; read-only); skips the test when it is
    absent, or fails it under ``SEQDBR_REQUIRE_DATA=1`` or a ``SEQDBR_TEST_DATA`` that names
    no folder."""
    path = data_dir()
    if path.is_dir():
        return path
    if os.environ.get('SEQDBR_TEST_DATA'):
        pytest.fail('SEQDBR_TEST_DATA=%s is not a folder; point it at the real-data folder '
                    '(the one holding tinyshakespeare/, mnist/, ...) or unset it'
                    % os.environ['SEQDBR_TEST_DATA'], pytrace=False)
    if os.environ.get('SEQDBR_REQUIRE_DATA') == '1':
        pytest.fail('real data folder %s is absent and SEQDBR_REQUIRE_DATA=1; set '
                    'SEQDBR_TEST_DATA to the folder, or unset SEQDBR_REQUIRE_DATA to skip these '
                    'tests' % path, pytrace=False)
    pytest.skip('real data folder %s is absent (it lies beside the project root in the '
                'development workplace; SEQDBR_TEST_DATA=DIR points elsewhere)' % path)


@pytest.fixture(scope='session')
def device_name():
    name = os.environ.get('SEQDBR_TEST_DEVICE', 'cpu')
    if name not in ('cpu', 'gpu'):
        raise pytest.UsageError("SEQDBR_TEST_DEVICE must be 'cpu' or 'gpu', got %r" % name)
    if name == 'gpu' and not _gpu_ok():
        pytest.skip('SEQDBR_TEST_DEVICE=gpu but no usable CuPy/GPU')
    return name


@pytest.fixture
def xp(device_name):
    """The array module of the device under test (numpy, or cupy with SEQDBR_TEST_DEVICE=gpu)."""
    if device_name == 'gpu':
        import cupy
        return cupy
    return numpy
