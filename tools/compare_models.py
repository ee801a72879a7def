"""Validation numbers of model.pt files side by side, to choose between recipes (never the test set).

    python tools/compare_models.py model.pt /tmp/new.pt
    python tools/compare_models.py model.pt --val-images 1000      # quicker

For each file: accuracy on the validation split (``classify`` with its views), every shift of the
suite on the first --shift-images validation images (the photometric and scene means and the worst
shift), and, where `make data` converted them, the real photos: balanced accuracy with its 90% interval
over contributors, overall accuracy and each class's; from the second file on also its balanced gain over
the first file with a paired interval (both models on the same draws of contributors, so it is much
narrower than either model's own interval). The split is the one training holds out (``--val-size``
images, the same for every seed).
"""
import argparse
import os
import sys

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
import pytorch_cnn  # noqa: E402


def validation_numbers(model, val, shifted_images, real_photos, baseline=None):
    """{'clean', 'shifts' {name: %}, 'suite', 'photometric', 'scene' (means), 'real' (real_photo_scores or None),
    'real_predicted'} for val (images, labels), the shift suite on shifted_images (images, labels) and
    real_photos (or None); baseline: another model's 'real_predicted', for the paired gain."""
    shifts = pytorch_cnn.shift_suite(model, *shifted_images)
    del shifts['clean']
    real = predicted = None
    if real_photos is not None:
        images, labels, senders = real_photos
        predicted = pytorch_cnn.classify(model, images)
        real = pytorch_cnn.real_photo_scores(predicted, labels, senders, baseline=baseline)
    return {'clean': pytorch_cnn.accuracy(model, *val), 'shifts': shifts, 'suite': sum(shifts.values()) / len(shifts),
            **pytorch_cnn.shift_group_means(shifts), 'real': real, 'real_predicted': predicted}


def describe(name, numbers):
    """Two lines: the summary, then every shift."""
    shifts = numbers['shifts']
    worst = min(shifts, key=shifts.get)
    line = (f'{name}: clean {numbers["clean"]:.2f}  shift suite {numbers["suite"]:.2f} (photometric '
            f'{numbers["photometric"]:.2f}, scene {numbers["scene"]:.2f}, worst {shifts[worst]:.1f} {worst})')
    real = numbers['real']
    if real is not None:
        low, high = real['balanced_interval']
        per_class = ' / '.join(f'{value:.0f}' for value in real['per_class'].values())
        classes = '/'.join(pytorch_cnn.CLASS_NAMES[label][:2] for label in real['per_class'])
        line += (f'  real balanced {real["balanced"]:.1f} [{low:.1f}, {high:.1f}] overall {real["overall"]:.1f}'
                 f'  per class {classes} {per_class}')
        if 'balanced_gain' in real:
            low, high = real['balanced_gain_interval']
            line += f'  balanced gain over the first {real["balanced_gain"]:+.1f} [{low:+.1f}, {high:+.1f}]'
    return line + '\n    ' + ' | '.join(f'{shift} {value:.1f}' for shift, value in shifts.items())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('models', nargs='+', metavar='MODEL_PT', help='state_dicts of MyNet')
    parser.add_argument('--data', default=os.path.join(REPO, 'data'), help='folder holding FashionMNIST/raw')
    parser.add_argument('--real-photos', default=os.path.join(REPO, 'data', 'realphotos-dev.npz'), metavar='NPZ',
                        help='real photos converted by `make data` (skipped if absent)')
    parser.add_argument('--val-size', type=int, default=5000, help='training images held out for validation')
    parser.add_argument('--val-images', type=int, default=None, help='only the first this many of them')
    parser.add_argument('--shift-images', type=int, default=pytorch_cnn.SHIFTED_VAL_IMAGES,
                        help='validation images under each shift')
    args = parser.parse_args(argv)

    images, labels = pytorch_cnn.load_fashion_mnist(args.data, train=True)
    _, (val_x, val_y) = pytorch_cnn.split_train_val(images, labels, args.val_size)
    shifted_images = val_x[:args.shift_images], val_y[:args.shift_images]
    val = val_x[:args.val_images], val_y[:args.val_images]
    real_photos = pytorch_cnn.load_real_photos(args.real_photos)
    if real_photos is None:
        print(f'no real photos at {args.real_photos} (`make data` converts them where the mirror has them)')
    first_predicted = None
    for path in args.models:
        numbers = validation_numbers(pytorch_cnn.load_model(path), val, shifted_images, real_photos, first_predicted)
        print(describe(path, numbers), flush=True)
        if first_predicted is None:
            first_predicted = numbers['real_predicted']


if __name__ == '__main__':
    main()
