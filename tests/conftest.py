"""Shared fixtures: where the repo and the data are, a small data mirror, the real photos, the committed model.

No test reads data from outside the repository's data/ (what `make data` writes there) and tmp_path, except the
real photos' originals, which only a mirror given as $DATA_MIRROR holds (see ``photo_folder``)."""
import gzip
import os
import runpy
import shutil
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(REPO, 'data')
sys.path.insert(0, REPO)
sys.path.insert(1, os.path.join(REPO, 'tools'))
sys.path.insert(2, os.path.join(REPO, 'experiments'))

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


def write_photo_set(folder, columns, rows):
    """A real-photo set like the mirror's: folder/images/<n>.jpg, light photos each with a dark garment-like
    rectangle, and folder/labels.csv with the header ``columns`` and one line ``rows[n]`` (after the file) each."""
    from PIL import Image
    (folder / 'images').mkdir(parents=True)
    lines = [','.join(columns)]
    for number, row in enumerate(rows):
        photo = Image.new('RGB', (60 + 7 * number, 80), (225, 220, 210))
        photo.paste((40 + 9 * number, 35, 30), (12, 15 + number, 45, 70))
        photo.save(folder / 'images' / f'{number}.jpg', quality=90)
        lines.append(f'images/{number}.jpg,{row}')
    (folder / 'labels.csv').write_text('\n'.join(lines) + '\n')


@pytest.fixture(scope='session')
def small_mirror(tmp_path_factory, mnist_path, fashion_root):
    """A mirror folder laid out like ../shared/data, built from data/: Fashion-MNIST gzipped as the mirror holds
    it, MNIST, and two real-photo sets of a few generated photos. Tests that change it change a copy."""
    mirror = tmp_path_factory.mktemp('mirror')
    (mirror / 'fashion-mnist').mkdir()
    raw = os.path.join(fashion_root, 'FashionMNIST', 'raw')
    for name in os.listdir(raw):
        with open(os.path.join(raw, name), 'rb') as source, \
                gzip.open(mirror / 'fashion-mnist' / f'{name}.gz', 'wb', compresslevel=1) as target:
            shutil.copyfileobj(source, target)
    (mirror / 'mnist').mkdir()
    shutil.copy(mnist_path, mirror / 'mnist' / 'full-mnist.npz')
    phone_labels = [0, 0, 1, 3, 3, 3]
    write_photo_set(mirror / 'realphotos' / 'clothing-dev', ['file', 'label', 'class_name', 'source_label', 'sender_id'],
                    [f'{label},class {label},source,{number // 2}' for number, label in enumerate(phone_labels)])
    catalogue_labels = [5, 7, 7, 8, 9]
    write_photo_set(mirror / 'realphotos' / 'catalogue-dev', ['file', 'label', 'class_name', 'store'],
                    [f'{label},class {label},store' for label in catalogue_labels])
    return mirror


def skip_unless_ci(message):
    """Skip the test with a notice, except in CI (CI=true), which has everything a test needs (the mirror, PyTorch
    1.13, Python 3.8): there a missing piece is an error."""
    if os.environ.get('CI'):
        pytest.fail(f'{message} (CI has it)', pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope='session')
def photo_folder():
    """photo_folder(name): realphotos/<name> of the mirror in $DATA_MIRROR, the only place the original photos are
    (the catalogue photos are for internal evaluation: never copied into the repository)."""
    def folder(name):
        mirror = os.environ.get('DATA_MIRROR')
        path = os.path.join(mirror, 'realphotos', name) if mirror else None
        if path is None or not os.path.isdir(path):
            skip_unless_ci(f'the original real photos ({name}) come only from a mirror: '
                                 f'make test DATA_MIRROR=... ({path or "no DATA_MIRROR"})')
        return path
    return folder


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
        skip_unless_ci(f'{path} not found: the real photos come only from a mirror (make data DATA_MIRROR=...)')
    return path


@pytest.fixture(scope='session')
def real_photos_path():
    """The phone photos, converted (see ``_photo_set``)."""
    return _photo_set('realphotos-dev.npz')


@pytest.fixture(scope='session')
def catalogue_path():
    """The catalogue photos, converted both ways (see ``_photo_set``)."""
    return _photo_set('catalogue-dev.npz')


def load_committed_model():
    """model.pt loaded exactly as the grader loads it: MyNet(), load_state_dict on the CPU, not put in eval mode."""
    import torch
    import pytorch_cnn
    model = pytorch_cnn.get_model_class(None)[0]()
    model.load_state_dict(torch.load(os.path.join(REPO, 'model.pt'), map_location='cpu', weights_only=True))
    return model


@pytest.fixture
def committed_model():
    """A fresh ``load_committed_model()`` for each test, so that no test sees what another did to it."""
    return load_committed_model()
