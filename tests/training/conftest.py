"""Fixture ``tr``: the helpers of ``training_models.py`` (pytest runs with
``--import-mode=importlib``, so test modules cannot import a helper module directly)."""
import importlib.util
import pathlib

import pytest

HERE = pathlib.Path(__file__).resolve().parent


def _load():
    spec = importlib.util.spec_from_file_location('training_models', HERE / 'training_models.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope='session')
def tr():
    """The module ``training_models`` (models, data, trainer factories, ``params``)."""
    return _load()
