"""Put the lab's two data sets where the code reads them, from the first source that works.

    data/FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte   (uncompressed IDX)
    data/full-mnist.npz   (x_train (60000,28,28) uint8, y_train, x_test (10000,28,28), y_test)
    data/realphotos-dev.npz   (phone photos converted to 28x28, with labels and contributor ids)
    data/catalogue-dev.npz    (catalogue photos converted to 28x28 as the paper does, 'images', and
                               with an area/Lanczos resize, 'images_area'; with labels)
    The real photos come only from a mirror's realphotos/ folder: validation, never training.

Sources, in order: a mirror folder (--mirror, layout of ../shared/data:
fashion-mnist/*.gz and mnist/full-mnist.npz), Debian's dataset-fashion-mnist
package (/usr/share/datasets/fashion-mnist, Fashion-MNIST only), then a
download through torchvision (unless --offline). Everything is verified
before it lands, and written to a temporary file that is renamed into place,
so an interrupted run never leaves a half-written file.
"""
import argparse
import csv
import gzip
import os
import sys
import tempfile

import numpy as np

from common import write_atomically
from photo_convert import PhotoError, convert_dataset

SYSTEM_DIR = '/usr/share/datasets/fashion-mnist'
# name -> (folder in the mirror, file written, resize of 'images', other resizes kept as 'images_<resize>')
REAL_PHOTO_SETS = {
    'phone photos': (os.path.join('realphotos', 'clothing-dev'), 'realphotos-dev.npz', 'area', ()),
    'catalogue photos': (os.path.join('realphotos', 'catalogue-dev'), 'catalogue-dev.npz', 'subsample', ('area',)),
}
CONVERTER_VERSION = 2       # bump when photo_convert changes its output, so that `make data` converts anew
FASHION_FILES = {  # file name -> (IDX magic, expected shape)
    'train-images-idx3-ubyte': (2051, (60000, 28, 28)),
    'train-labels-idx1-ubyte': (2049, (60000,)),
    't10k-images-idx3-ubyte': (2051, (10000, 28, 28)),
    't10k-labels-idx1-ubyte': (2049, (10000,)),
}
MNIST_SHAPES = {'x_train': (60000, 28, 28), 'y_train': (60000,),
                'x_test': (10000, 28, 28), 'y_test': (10000,)}
HOW_TO_GET = """How to provide the data (any one of):
  1. a mirror folder:  make data DATA_MIRROR=/path/to/mirror
     (holding fashion-mnist/*-ubyte.gz and mnist/full-mnist.npz, like ../shared/data)
  2. Debian/Ubuntu:     sudo apt-get install dataset-fashion-mnist
     (Fashion-MNIST only, in /usr/share/datasets/fashion-mnist)
  3. be online:         make data   (downloads both through torchvision)"""


class DataError(Exception):
    """A source is missing or holds a damaged file."""


def parse_idx(raw, name):
    """IDX bytes -> uint8 array, checked against FASHION_FILES[name]."""
    magic, shape = FASHION_FILES[name]
    dims = len(shape)
    if len(raw) < 4 + 4 * dims or int.from_bytes(raw[:4], 'big') != magic:
        raise DataError(f'{name}: not an IDX file with magic number {magic}')
    found = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], 'big') for i in range(dims))
    body = raw[4 + 4 * dims:]
    if found != shape or len(body) != int(np.prod(shape)):
        raise DataError(f'{name}: shape {found} with {len(body)} bytes, expected {shape}')
    array = np.frombuffer(body, dtype=np.uint8).reshape(shape)
    if dims == 1:
        check_labels(array, name)
    return array


def check_labels(labels, name):
    counts = np.bincount(labels, minlength=10)
    if labels.max() > 9 or counts.min() == 0:
        raise DataError(f'{name}: labels must cover exactly 0..9, got counts {counts.tolist()}')


def check_mnist(arrays, name):
    for key, shape in MNIST_SHAPES.items():
        if key not in arrays:
            raise DataError(f'{name}: no array {key!r}')
        if arrays[key].shape != shape or arrays[key].dtype != np.uint8:
            raise DataError(f'{name}: {key} is {arrays[key].dtype}{arrays[key].shape}, expected uint8{shape}')
    check_labels(arrays['y_train'], f'{name}:y_train')
    check_labels(arrays['y_test'], f'{name}:y_test')


def read_maybe_gz(folder, name):
    """Bytes of folder/name or folder/name.gz; DataError when neither is there or readable."""
    for path, opener in ((os.path.join(folder, name), open), (os.path.join(folder, name + '.gz'), gzip.open)):
        if os.path.exists(path):
            try:
                with opener(path, 'rb') as file:
                    return file.read()
            except (OSError, EOFError) as error:
                raise DataError(f'{path}: cannot be read ({error})')
    raise DataError(f'{folder}: no {name}[.gz]')


def fashion_from_folder(folder):
    """{file name: verified raw IDX bytes} from a folder of .gz or plain IDX files."""
    files = {}
    for name in FASHION_FILES:
        raw = read_maybe_gz(folder, name)
        parse_idx(raw, name)
        files[name] = raw
    return files


def fashion_by_download():
    from torchvision.datasets import FashionMNIST
    with tempfile.TemporaryDirectory() as tmp:
        for train in (True, False):
            FashionMNIST(tmp, train=train, download=True)
        return fashion_from_folder(os.path.join(tmp, 'FashionMNIST', 'raw'))


def mnist_from_file(path):
    if not os.path.exists(path):
        raise DataError(f'no {path}')
    try:
        with np.load(path) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError) as error:
        raise DataError(f'{path}: cannot be read ({error})')
    check_mnist(arrays, path)
    return arrays


def mnist_by_download():
    from torchvision.datasets import MNIST
    with tempfile.TemporaryDirectory() as tmp:
        train, test = MNIST(tmp, train=True, download=True), MNIST(tmp, train=False, download=True)
        arrays = {'x_train': train.data.numpy(), 'y_train': train.targets.numpy().astype(np.uint8),
                  'x_test': test.data.numpy(), 'y_test': test.targets.numpy().astype(np.uint8)}
    check_mnist(arrays, 'downloaded MNIST')
    return arrays


def first_that_works(what, sources):
    """Try (description, loader) pairs in order; return the first result, or exit with HOW_TO_GET."""
    failures = []
    for description, load in sources:
        try:
            result = load()
            print(f'{what}: from {description}')
            return result
        except DataError as error:
            failures.append(f'  {description}: {error}')
        except Exception as error:  # a download can fail in many ways: no network, bad checksum, ...
            failures.append(f'  {description}: {type(error).__name__}: {error}')
    sys.exit(f'error: could not get {what}. Tried:\n' + '\n'.join(failures) + '\n\n' + HOW_TO_GET)


def fashion_present(raw_dir):
    try:
        for name in FASHION_FILES:
            with open(os.path.join(raw_dir, name), 'rb') as file:
                parse_idx(file.read(), name)
        return True
    except (OSError, DataError):
        return False


def fetch_fashion(out, mirror, system_dir, offline):
    raw_dir = os.path.join(out, 'FashionMNIST', 'raw')
    if fashion_present(raw_dir):
        print(f'Fashion-MNIST: already in {raw_dir}')
        return
    sources = []
    if mirror:
        sources.append((f'mirror {mirror}', lambda: fashion_from_folder(os.path.join(mirror, 'fashion-mnist'))))
    sources.append((f'system folder {system_dir}', lambda: fashion_from_folder(system_dir)))
    if not offline:
        sources.append(('download (torchvision)', fashion_by_download))
    files = first_that_works('Fashion-MNIST', sources)
    for name, raw in files.items():
        write_atomically(os.path.join(raw_dir, name), lambda file, raw=raw: file.write(raw))
    print(f'Fashion-MNIST: wrote {raw_dir} (60000 train + 10000 test images)')


def fetch_mnist(out, mirror, offline):
    path = os.path.join(out, 'full-mnist.npz')
    try:
        mnist_from_file(path)
        print(f'MNIST: already in {path}')
        return
    except DataError:
        pass
    sources = []
    if mirror:
        sources.append((f'mirror {mirror}', lambda: mnist_from_file(os.path.join(mirror, 'mnist', 'full-mnist.npz'))))
    if not offline:
        sources.append(('download (torchvision)', mnist_by_download))
    arrays = first_that_works('MNIST', sources)
    write_atomically(path, lambda file: np.savez_compressed(file, **arrays))
    print(f'MNIST: wrote {path} (60000 train + 10000 test images)')


def real_photos_from_folder(folder, resize, other_resizes=()):
    """A real-photo set converted (see photo_convert.convert_dataset), other resizes as 'images_<resize>'."""
    try:
        arrays = convert_dataset(folder, resize)
        for other in other_resizes:
            arrays[f'images_{other}'] = convert_dataset(folder, other)['images']
    except (PhotoError, OSError, KeyError, ValueError) as error:
        raise DataError(f'{folder}: {error}')
    if len(arrays['images']) == 0:
        raise DataError(f'{folder}: labels.csv names no photo')
    arrays['converter_version'] = np.array(CONVERTER_VERSION)
    return arrays


def class_counts(labels):
    return {int(label): int(count) for label, count in zip(*np.unique(labels, return_counts=True))}


def converted_here(path, listed=None):
    """Whether the npz at path holds 28x28 photos from this converter that name their folder and, where listed
    (labels.csv's counts per class) is given, hold exactly those counts."""
    try:
        with np.load(path) as present:
            if (present['images'].shape[1:] != (28, 28) or 'source' not in present.files
                    or int(present['converter_version']) != CONVERTER_VERSION):
                return False
            return listed is None or (class_counts(present['labels']) == listed
                                      and len(present['images']) == sum(listed.values()))
    except (OSError, ValueError, KeyError, EOFError):
        return False


def fetch_real_photos(out, mirror, name, folder, file_name, resize, other_resizes):
    """Convert <mirror>/<folder> into <out>/<file_name>, where the mirror has it; a one-line notice where not."""
    source = os.path.join(mirror, folder) if mirror else None
    path = os.path.join(out, file_name)
    if source is None or not os.path.isfile(os.path.join(source, 'labels.csv')):
        if converted_here(path):
            print(f'{name.capitalize()}: already in {path} (converted from a mirror before)')
        else:
            print(f'{name.capitalize()}: no {folder} in a mirror; their evaluation will be skipped')
        return
    with open(os.path.join(source, 'labels.csv'), newline='') as handle:
        listed = class_counts([int(row['label']) for row in csv.DictReader(handle)])
    if converted_here(path, listed):
        print(f'{name.capitalize()}: already in {path}')
        return
    arrays = real_photos_from_folder(source, resize, other_resizes)
    write_atomically(path, lambda file: np.savez_compressed(file, **arrays))
    if not converted_here(path, listed):
        raise DataError(f'{path}: its counts per class differ from labels.csv\'s {listed}')
    counts = ', '.join(f'{label}: {count}' for label, count in class_counts(arrays['labels']).items())
    print(f'{name.capitalize()}: wrote {path} ({len(arrays["labels"])} photos; per class {counts})')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0], epilog=HOW_TO_GET,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default='data', help='where the data goes (default: data)')
    parser.add_argument('--mirror', default=os.environ.get('DATA_MIRROR') or None,
                        help='a mirror folder laid out like ../shared/data (default: $DATA_MIRROR)')
    parser.add_argument('--system-dir', default=SYSTEM_DIR, help=f'default: {SYSTEM_DIR}')
    parser.add_argument('--offline', action='store_true', help='never download')
    args = parser.parse_args(argv)
    fetch_fashion(args.out, args.mirror, args.system_dir, args.offline)
    fetch_mnist(args.out, args.mirror, args.offline)
    for name, (folder, file_name, resize, other_resizes) in REAL_PHOTO_SETS.items():
        try:
            fetch_real_photos(args.out, args.mirror, name, folder, file_name, resize, other_resizes)
        except DataError as error:
            sys.exit(f'error: {name}: {error}')


if __name__ == '__main__':
    main()
