"""The frame around the two lab parts: data fetching, the upload zip and the grader emulation."""
import glob
import gzip
import os
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from conftest import REPO, load_committed_model, skip_unless_ci

FETCH = os.path.join(REPO, 'tools', 'fetch_data.py')
SUBMISSION = os.path.join(REPO, 'tools', 'submission.py')
UPLOAD_FILES = {'numpy_nn.py', 'numpy_nn_training.png', 'numpy_nn_classification.png', 'pytorch_cnn.py', 'model.pt'}
OLDEST_TORCH_PYTHON = os.path.join(REPO, '.venv-torch1.13', 'bin', 'python')    # `make test COMPAT=1` builds it
FASHION_FILES = ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte',
                 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte')


def run(script, *args, cwd=REPO):
    return subprocess.run([sys.executable, script, *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, 'DATA_MIRROR': ''})


def make(*args):
    return subprocess.run(['make', '--no-print-directory', *args], cwd=REPO, capture_output=True, text=True)


# ----------------------------------------------------------------------------- make data

def labels_listed(photo_folder):
    """The labels column of a photo folder's labels.csv."""
    with open(os.path.join(photo_folder, 'labels.csv')) as handle:
        return np.array([int(line.split(',')[1]) for line in list(handle)[1:]])


def test_make_data_from_mirror_into_empty_folder_then_idempotent(tmp_path, small_mirror):
    out = tmp_path / 'data'
    first = make('data', f'DATA={out}', f'DATA_MIRROR={small_mirror}')
    assert first.returncode == 0, first.stdout + first.stderr
    sources = dict(line.split(': ', 1) for line in first.stdout.splitlines() if 'MNIST: from ' in line)
    assert sources['Fashion-MNIST'] == sources['MNIST'] == f'from mirror {small_mirror}'
    with np.load(out / 'realphotos-dev.npz') as real:
        assert real['images'].shape[1:] == (28, 28) and real['images'].dtype == np.uint8
        assert len(real['labels']) == len(real['senders']) == len(real['images'])
        assert real['senders'].tolist() == [0, 0, 1, 1, 2, 2]
        real_labels = real['labels']
    phone = small_mirror / 'realphotos' / 'clothing-dev'
    assert real_labels.tolist() == labels_listed(phone).tolist()
    with np.load(out / 'catalogue-dev.npz') as catalogue:
        assert catalogue['images'].shape == catalogue['images_area'].shape == (len(catalogue['labels']), 28, 28)
        assert 'senders' not in catalogue.files
        catalogue_labels = catalogue['labels']
    assert catalogue_labels.tolist() == labels_listed(small_mirror / 'realphotos' / 'catalogue-dev').tolist()
    raw = out / 'FashionMNIST' / 'raw'
    assert sorted(os.listdir(raw)) == sorted(FASHION_FILES)
    for name in FASHION_FILES:                                  # the mirror's .gz files, uncompressed
        with open(raw / name, 'rb') as written, open(os.path.join(REPO, 'data', 'FashionMNIST', 'raw', name),
                                                        'rb') as original:
            assert written.read() == original.read(), name
    with np.load(out / 'full-mnist.npz') as mnist:
        assert mnist['x_train'].shape == (60000, 28, 28) and mnist['x_test'].dtype == np.uint8
        assert sorted(np.unique(mnist['y_test'])) == list(range(10))

    mtimes = {path: os.stat(path).st_mtime_ns for path in [*raw.iterdir(), *out.glob('*.npz')]}
    second = make('data', f'DATA={out}', f'DATA_MIRROR={small_mirror}')
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stdout.count('already in') == 4
    assert {path: os.stat(path).st_mtime_ns for path in mtimes} == mtimes


def mirror_without_photos(tmp_path, small_mirror):
    """A mirror holding the small mirror's Fashion-MNIST and MNIST (as links) and no real photos."""
    mirror = tmp_path / 'mirror'
    mirror.mkdir()
    for name in ('fashion-mnist', 'mnist'):
        (mirror / name).symlink_to(small_mirror / name)
    return mirror


def test_make_data_without_real_photos_says_so_in_one_line_and_goes_on(tmp_path, small_mirror):
    mirror = mirror_without_photos(tmp_path, small_mirror)
    result = run(FETCH, '--out', str(tmp_path / 'data'), '--mirror', str(mirror), '--offline')
    assert result.returncode == 0, result.stderr
    notices = [line for line in result.stdout.splitlines() if 'photos:' in line]
    assert [line.split(':')[0] for line in notices] == ['Phone photos', 'Catalogue photos']
    assert all('skipped' in line for line in notices)
    assert not (tmp_path / 'data' / 'realphotos-dev.npz').exists()


def test_a_damaged_real_photo_is_named(tmp_path, small_mirror):
    mirror = mirror_without_photos(tmp_path, small_mirror)
    photos = mirror / 'realphotos' / 'clothing-dev'
    shutil.copytree(small_mirror / 'realphotos' / 'clothing-dev', photos)
    (photos / 'images' / '3.jpg').write_bytes(b'not a jpeg')
    result = run(FETCH, '--out', str(tmp_path / 'data'), '--mirror', str(mirror), '--offline')
    assert result.returncode != 0 and '3.jpg' in result.stderr
    assert result.stderr.strip().count('\n') == 0
    assert not any(name.startswith('realphotos') or name.startswith('.tmp')
                   for name in os.listdir(tmp_path / 'data'))


def test_torchvision_accepts_the_fetched_files(fashion_root):
    from torchvision.datasets import FashionMNIST
    test_set = FashionMNIST(fashion_root, train=False, download=False)
    assert test_set.data.shape == (10000, 28, 28)


def test_no_source_names_the_three_ways(tmp_path):
    result = run(FETCH, '--out', str(tmp_path / 'data'), '--mirror', str(tmp_path / 'no-mirror'),
                 '--system-dir', str(tmp_path / 'no-system'), '--offline')
    assert result.returncode != 0
    assert 'could not get Fashion-MNIST' in result.stderr
    for way in ('DATA_MIRROR=', 'apt-get install dataset-fashion-mnist', 'online'):
        assert way in result.stderr
    assert not (tmp_path / 'data' / 'FashionMNIST').exists()


def test_damaged_file_is_named_and_nothing_half_written(tmp_path, small_mirror):
    mirror = tmp_path / 'mirror'
    shutil.copytree(small_mirror / 'fashion-mnist', mirror / 'fashion-mnist')
    damaged = mirror / 'fashion-mnist' / 't10k-labels-idx1-ubyte.gz'
    with gzip.open(damaged, 'rb') as file:
        labels = file.read()
    with gzip.open(damaged, 'wb') as file:
        file.write(labels[:5000])                       # a truncated label file
    out = tmp_path / 'data'
    result = run(FETCH, '--out', str(out), '--mirror', str(mirror),
                 '--system-dir', str(tmp_path / 'no-system'), '--offline')
    assert result.returncode != 0
    assert 't10k-labels-idx1-ubyte' in result.stderr and 'expected (10000,)' in result.stderr
    assert not (out / 'FashionMNIST').exists()


# ----------------------------------------------------------------------------- make zip / check-zip

@pytest.fixture(scope='module')
def good_zip(tmp_path_factory):
    path = tmp_path_factory.mktemp('zip') / 'submission.zip'
    result = make('zip', f'ZIP={path}')
    assert result.returncode == 0, result.stdout + result.stderr
    return path


def rewritten_zip(source, target, drop=(), add=None):
    """A copy of the zip without the members in ``drop`` and with {name: bytes} ``add``ed or replaced."""
    add = add or {}
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, 'w') as copy:
        for name in original.namelist():
            if name not in drop and name not in add:
                copy.writestr(name, original.read(name))
        for name, content in add.items():
            copy.writestr(name, content)
    return target


def check(path):
    return run(SUBMISSION, 'check', str(path), '--data', os.path.join(REPO, 'data'))


def test_zip_holds_exactly_the_five_files_at_its_root(good_zip):
    with zipfile.ZipFile(good_zip) as archive:
        assert set(archive.namelist()) == UPLOAD_FILES
        assert len(archive.namelist()) == len(UPLOAD_FILES)


def test_make_check_zip_passes_on_the_committed_artifacts(good_zip, fashion_root):
    result = make('check-zip', f'ZIP={good_zip}')
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'four layer examples OK' in result.stdout
    assert 'check-zip: OK' in result.stdout


def test_check_zip_rejects_an_extra_file(good_zip, tmp_path):
    broken = rewritten_zip(good_zip, tmp_path / 'extra.zip', add={'notes.txt': b'hello'})
    result = check(broken)
    assert result.returncode != 0
    assert 'extra file' in result.stderr and 'notes.txt' in result.stderr


def test_check_zip_rejects_a_missing_model(good_zip, tmp_path):
    result = check(rewritten_zip(good_zip, tmp_path / 'no-model.zip', drop={'model.pt'}))
    assert result.returncode != 0
    assert 'missing' in result.stderr and 'model.pt' in result.stderr


def test_check_zip_rejects_an_import_the_grader_lacks(good_zip, tmp_path):
    with zipfile.ZipFile(good_zip) as archive:
        source = archive.read('pytorch_cnn.py')
    broken = rewritten_zip(good_zip, tmp_path / 'tqdm.zip', add={'pytorch_cnn.py': b'import tqdm\n' + source})
    result = check(broken)
    assert result.returncode != 0
    assert "pytorch_cnn.py:1 imports 'tqdm'" in result.stderr


def test_check_zip_rejects_a_local_helper_module(good_zip, tmp_path):
    with zipfile.ZipFile(good_zip) as archive:
        source = archive.read('numpy_nn.py')
    broken = rewritten_zip(good_zip, tmp_path / 'helper.zip',
                           add={'numpy_nn.py': source + b'\nfrom helpers import plot\n'})
    result = check(broken)
    assert result.returncode != 0
    assert "numpy_nn.py" in result.stderr and "'helpers'" in result.stderr


def test_check_zip_rejects_a_model_of_another_shape(good_zip, tmp_path):
    import io
    import torch
    from pytorch_cnn import SimpleCNN
    buffer = io.BytesIO()
    torch.save(SimpleCNN().state_dict(), buffer)
    broken = rewritten_zip(good_zip, tmp_path / 'wrong-model.zip', add={'model.pt': buffer.getvalue()})
    result = check(broken)
    assert result.returncode != 0
    assert 'model.pt: does not load into MyNet()' in result.stderr


# ----------------------------------------------------------------------------- older PyTorch and Python

@pytest.fixture(scope='module')
def oldest_torch_python():
    """The Python of .venv-torch1.13; without it these tests are skipped with a notice, except in CI (CI=true),
    whose `make test` builds it, where a missing one is an error."""
    if not os.path.exists(OLDEST_TORCH_PYTHON):
        skip_unless_ci(f'{OLDEST_TORCH_PYTHON} is missing: `make test COMPAT=1` builds it (PyTorch 1.13.1 on Python '
                       '3.10) and runs these checks')
    return OLDEST_TORCH_PYTHON


def check_under(python, path, *args):
    return run(SUBMISSION, 'check', str(path), '--data', os.path.join(REPO, 'data'), '--python', python, *args)


def test_the_upload_classifies_the_test_set_under_pytorch_1_13_as_under_ours(good_zip, fashion_root,
                                                                              oldest_torch_python):
    import pytorch_cnn
    model = load_committed_model()
    images, labels = pytorch_cnn.load_fashion_mnist(fashion_root, train=False)
    ours = 100.0 * (pytorch_cnn.classify(model, images) == labels).double().mean().item()
    result = check_under(oldest_torch_python, good_zip, '--images', str(len(labels)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'PyTorch 1.13.1' in result.stdout and 'check-zip: OK' in result.stdout
    assert f'{ours:.2f}% on {len(labels)} Fashion-MNIST test images' in result.stdout


def test_an_import_time_reference_to_a_newer_pytorch_fails_the_old_pytorch_check(good_zip, tmp_path,
                                                                                  oldest_torch_python):
    with zipfile.ZipFile(good_zip) as archive:
        source = archive.read('pytorch_cnn.py')
    newer = rewritten_zip(good_zip, tmp_path / 'newer.zip',
                          add={'pytorch_cnn.py': source + b'\nSCALER = torch.amp.GradScaler\n'})
    assert check(newer).returncode == 0                     # fine under the project's own PyTorch
    result = check_under(oldest_torch_python, newer)
    assert result.returncode != 0
    assert "pytorch_cnn.py: import failed: AttributeError: module 'torch.amp' has no attribute" in result.stderr


def python_3_8():
    """A Python 3.8 interpreter (pyenv's, or one on the PATH), or None."""
    candidates = sorted(glob.glob(os.path.expanduser('~/.pyenv/versions/3.8*/bin/python3.8')))
    candidates += [path for path in (shutil.which('python3.8'),) if path]
    for python in candidates:
        answer = subprocess.run([python, '-c', 'import sys; print(sys.version_info[:2])'], capture_output=True,
                                text=True)
        if answer.returncode == 0 and answer.stdout.strip() == '(3, 8)':
            return python
    return None


@pytest.mark.parametrize('name', ['numpy_nn.py', 'pytorch_cnn.py', os.path.join('tools', 'submission.py')])
def test_graded_files_and_the_grader_emulation_compile_under_python_3_8(name, tmp_path):
    python = python_3_8()
    if python is None:
        skip_unless_ci(f'no Python 3.8 found (pyenv install 3.8): {name} was not compiled under Python 3.8')
    compiled = subprocess.run([python, '-m', 'py_compile', os.path.join(REPO, name)], capture_output=True, text=True,
                              env={**os.environ, 'PYTHONPYCACHEPREFIX': str(tmp_path)})
    assert compiled.returncode == 0, compiled.stderr


# ----------------------------------------------------------------------------- the README

def test_the_readme_stays_a_short_guide():
    with open(os.path.join(REPO, 'README.md')) as handle:
        words = len(handle.read().split())
    assert words <= 1100, f'README.md has {words} words; the history belongs in docs/EXPERIMENTS.md'
