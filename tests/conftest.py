"""Shared pytest fixtures: the real-data folder and the backend switch.

``SEQDBR_TEST_DEVICE=gpu`` makes the ``xp`` fixture return CuPy, so every
backend-generic test runs on the GPU; the default is NumPy.
"""
import os
import pathlib

import numpy
import pytest

SHARED_DATA = pathlib.Path(os.environ.get('SEQDBR_SHARED_DATA') or
                           pathlib.Path(__file__).resolve().parents[1].parent / 'shared' / 'data')
# (SEQDBR_SHARED_DATA: another location of the real-data folder, e.g. from a git worktree)


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


@pytest.fixture(scope='session')
def shared_data():
    """Path to ``../shared/data`` (real corpora and MNIST; ``$SEQDBR_SHARED_DATA`` overrides
    it, e.g. for a git worktree elsewhere); skips the test when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip('real data folder %s is absent (it lies beside the project root in the '
                    'development workplace)' % SHARED_DATA)
    return SHARED_DATA


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
