"""Ablation of MyNet's structure and test-time parts on the committed weights: each part switched off alone.

    python experiments/ablate_structure.py model.pt [--limit N]

Parts: the second network and its routing (every image to ``plain``, or to ``scene``), the padding bars in the
input stage, the test-time views, the batch adaptation. Each variant is measured on the validation split (never
the test set), on the validation split under every shift of pytorch_cnn.SHIFTS (photometric and scene means, and
measure.GEOMETRIC_SHIFTS), and on both real-photo sets (balanced and overall, 90% bootstrap intervals), one image
at a time and 500 a call in a fixed random order (see tools/measure.labels_by_batch_size), with each variant's
paired gain over the committed one (the same bootstrap draws).
"""
import argparse
import contextlib
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'tools'))
from common import REPO  # noqa: E402
from measure import (GEOMETRIC_SHIFTS, PHOTOMETRIC_SHIFTS, SCENE_SHIFTS, labels_by_batch_size,  # noqa: E402
                     load_model_or_exit, load_photo_sets, real_photo_scores)
import pytorch_cnn  # noqa: E402

BATCHES = (1, 500)


@contextlib.contextmanager
def replaced(**values):
    """pytorch_cnn's module-level names replaced by values for the duration."""
    saved = {name: getattr(pytorch_cnn, name) for name in values}
    for name, value in values.items():
        setattr(pytorch_cnn, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(pytorch_cnn, name, value)


def every_image_to(network):
    on_plain = network == 'plain'
    return lambda x, **_: torch.full((len(x),), on_plain, dtype=torch.bool, device=x.device)


VARIANTS = {
    'committed': {},
    'the plain network for every image': {'plain_background': every_image_to('plain')},
    'the scene network for every image': {'plain_background': every_image_to('scene')},
    'no padding bars': {'padding_bars': lambda z, **_: torch.zeros(len(z), 4, dtype=torch.long, device=z.device)},
    'no test-time views': {'VIEW_STAGES': pytorch_cnn.VIEW_STAGES[:1]},
    'no batch adaptation': {'adapt_to_batch': lambda probabilities, features, networks: probabilities},
}


def measure(model, val, photo_sets, committed=None):
    """({column: value}, {photo set: {batch size: labels}}) for one variant; committed: the second of these for the
    committed variant, for the paired gains."""
    images, labels = val
    row, guesses = {}, {}
    shifts = pytorch_cnn.SHIFTS if len(images) else {}
    shifted = {name: labels_by_batch_size(model, shift(images), BATCHES) for name, shift in shifts.items()}
    for size in BATCHES if shifted else ():
        accuracy = {name: 100.0 * (by_size[size] == labels).double().mean().item() for name, by_size in shifted.items()}
        row[f'val@{size}'] = accuracy['clean']
        for group, names in (('photometric', PHOTOMETRIC_SHIFTS), ('scene', SCENE_SHIFTS),
                             ('geometric', GEOMETRIC_SHIFTS)):
            row[f'{group}@{size}'] = sum(accuracy[name] for name in names) / len(names)
    for name, (photos, photo_labels, senders) in photo_sets.items():
        guesses[name] = labels_by_batch_size(model, photos, BATCHES)
        for size, guessed in guesses[name].items():
            scores = real_photo_scores(guessed, photo_labels, senders,
                                       baseline=committed[name][size] if committed else None)
            row[f'{name}@{size}'] = (scores['balanced'], scores['balanced_interval'], scores['overall'],
                                     scores.get('balanced_gain'), scores.get('balanced_gain_interval'))
    return row, guesses


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('model_pt', nargs='?', default=os.path.join(REPO, 'model.pt'))
    parser.add_argument('--data', default=os.path.join(REPO, 'data'))
    parser.add_argument('--limit', type=int, default=None, help='validation images and photos of each set (default: all)')
    parser.add_argument('--photos-only', action='store_true', help='the real-photo sets alone')
    args = parser.parse_args(argv)
    model = load_model_or_exit(args.model_pt)
    images, labels = pytorch_cnn.load_fashion_mnist(args.data, train=True)
    _, (val_x, val_y) = pytorch_cnn.split_train_val(images, labels, 5000)
    val = (val_x[:0 if args.photos_only else args.limit], val_y[:0 if args.photos_only else args.limit])
    photo_sets = {name: tuple(part if part is None else part[:args.limit] for part in photos)
                  for name, photos in load_photo_sets(('catalogue photos', 'phone photos')).items()}
    committed = None
    for name, values in VARIANTS.items():
        with replaced(**values):
            row, guesses = measure(model, val, photo_sets, committed)
        committed = committed or guesses
        cells = []
        for key, value in row.items():
            if isinstance(value, tuple):
                balanced, (low, high), overall, gain, gain_interval = value
                cells.append(f'{key} {balanced:.1f} [{low:.1f}, {high:.1f}] / {overall:.1f}'
                             + (f' (gain {gain:+.1f} [{gain_interval[0]:+.1f}, {gain_interval[1]:+.1f}])'
                                if gain is not None else ''))
            else:
                cells.append(f'{key} {value:.2f}')
        print(f'{name}: ' + '; '.join(cells), flush=True)


if __name__ == '__main__':
    main()
