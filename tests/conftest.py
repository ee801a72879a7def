"""Shared fixtures: where the repo, the data and the data mirror are, and the lab's examples."""
import os
import runpy
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(REPO, 'data')
sys.path.insert(0, REPO)
sys.path.insert(1, os.path.join(REPO, 'tools'))

LAB_EXAMPLES = runpy.run_path(os.path.join(REPO, 'tools', 'lab_examples.py'))


def _require(path):
    if not os.path.exists(path):
        pytest.fail(f'{path} is missing: run `make data` (DATA_MIRROR=../shared/data make data offline)',
                    pytrace=False)
    return path


@pytest.fixture(scope='session')
def repo():
    return REPO


@pytest.fixture(scope='session')
def mnist_path():
    return _require(os.path.join(DATA, 'full-mnist.npz'))


@pytest.fixture(scope='session')
def fashion_root():
    _require(os.path.join(DATA, 'FashionMNIST', 'raw', 't10k-images-idx3-ubyte'))
    return DATA


@pytest.fixture(scope='session')
def data_mirror():
    """The mirror folder (layout of ../shared/data): $DATA_MIRROR, else ../shared/data beside the repo."""
    mirror = os.path.abspath(os.environ.get('DATA_MIRROR') or os.path.join(REPO, '..', 'shared', 'data'))
    _require(os.path.join(mirror, 'mnist', 'full-mnist.npz'))
    return mirror


@pytest.fixture(scope='session')
def lab_examples():
    """tools/lab_examples.py: run_examples(...), mismatches(...), EXPECTED, TOLERANCE."""
    return LAB_EXAMPLES


def _photo_set(file_name):
    """data/<file_name>, which `make data` writes only where a mirror holds the real photos.

    Without it the tests that need it are skipped with a notice, except in CI (CI=true), where the
    mirror is always given and a missing file is an error.
    """
    path = os.path.join(DATA, file_name)
    if not os.path.exists(path):
        if os.environ.get('CI'):
            _require(path)
        pytest.skip(f'{path} not found: the real photos come only from a mirror (make data DATA_MIRROR=...)')
    return path


@pytest.fixture(scope='session')
def real_photos_path():
    """The phone photos, converted (see ``_photo_set``)."""
    return _photo_set('realphotos-dev.npz')


@pytest.fixture(scope='session')
def catalogue_path():
    """The catalogue photos, converted both ways (see ``_photo_set``)."""
    return _photo_set('catalogue-dev.npz')


@pytest.fixture(scope='session')
def committed_model():
    """model.pt loaded exactly as the grader loads it (and not put in eval mode)."""
    import torch
    import pytorch_cnn
    model = pytorch_cnn.get_model_class(None)[0]()
    model.load_state_dict(torch.load(os.path.join(REPO, 'model.pt'), map_location='cpu', weights_only=True))
    return model
