"""Validation numbers of model.pt files side by side, to choose between recipes (never the test set).

    python tools/compare_models.py model.pt /tmp/new.pt
    python tools/compare_models.py model.pt --val-images 1000      # quicker
    python tools/compare_models.py model.pt /tmp/new.pt --batch-sizes 1 500

For each file and each number of images handed to ``classify`` at once (one, 64, 500, the whole set, in
a fixed random order: see measure.labels_by_batch_size): accuracy on the validation split (``classify``
with its views), every shift of the suite on the first --shift-images validation images (the photometric
and scene means and the worst shift), and each real-photo set that `make data` converted (phone photos;
catalogue photos under the paper's conversion and an area/Lanczos resize): balanced accuracy with its 90%
interval, overall accuracy and each class's; from the second file on also its balanced gain over the first
file at the same batch size, with a paired interval (both models on the same bootstrap draws, so it is much
narrower than either model's own). The split is the one training holds out (``--val-size`` images, the
same for every seed).
"""
import argparse
import os

from common import REPO
from measure import (BATCH_SIZES, accuracies_by_batch_size, at_a_time, describe_scores, labels_by_batch_size,
                     load_model_or_exit, load_photo_sets, real_photo_scores, shift_group_means, shift_suite)
import pytorch_cnn


def validation_numbers(model, val, shifted_images, photo_sets, baselines=None, batch_sizes=BATCH_SIZES):
    """{batch size: {'clean', 'shifts' {name: %}, 'suite', 'photometric', 'scene' (means), 'photos' {set name:
    real_photo_scores}, 'predicted' {set name: labels}}} for val (images, labels), the shift suite on
    shifted_images (images, labels) and photo_sets ({name: (images, labels, senders)}); baselines: another
    model's {batch size: 'predicted'}, for the paired gains."""
    clean = accuracies_by_batch_size(model, *val, batch_sizes)
    suite = shift_suite(model, *shifted_images, batch_sizes)
    guessed = {name: labels_by_batch_size(model, images, batch_sizes) for name, (images, _, _) in photo_sets.items()}
    numbers = {}
    for size in batch_sizes:
        shifts = {name: value for name, value in suite[size].items() if name != 'clean'}
        predicted = {name: by_size[size] for name, by_size in guessed.items()}
        photos = {name: real_photo_scores(predicted[name], labels, senders,
                                          baseline=baselines and baselines[size][name])
                  for name, (_, labels, senders) in photo_sets.items()}
        numbers[size] = {'clean': clean[size], 'shifts': shifts, 'suite': sum(shifts.values()) / len(shifts),
                         **shift_group_means(shifts), 'photos': photos, 'predicted': predicted}
    return numbers


def describe(name, numbers, photo_counts):
    """The summary line, every shift, then a line per real-photo set."""
    shifts = numbers['shifts']
    worst = min(shifts, key=shifts.get)
    lines = [f'{name}: clean {numbers["clean"]:.2f}  shift suite {numbers["suite"]:.2f} (photometric '
             f'{numbers["photometric"]:.2f}, scene {numbers["scene"]:.2f}, worst {shifts[worst]:.1f} {worst})',
             ' | '.join(f'{shift} {value:.1f}' for shift, value in shifts.items())]
    lines += [describe_scores(set_name, photo_counts[set_name], scores)
              for set_name, scores in numbers['photos'].items()]
    return '\n    '.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('models', nargs='+', metavar='MODEL_PT', help='state_dicts of MyNet')
    parser.add_argument('--data', default=os.path.join(REPO, 'data'), help='folder holding FashionMNIST/raw')
    parser.add_argument('--val-size', type=int, default=pytorch_cnn.VAL_SIZE,
                        help='training images held out for validation')
    parser.add_argument('--val-images', type=int, default=None, help='only the first this many of them')
    parser.add_argument('--shift-images', type=int, default=pytorch_cnn.SHIFTED_VAL_IMAGES,
                        help='validation images under each shift')
    parser.add_argument('--batch-sizes', type=lambda text: None if text == 'all' else int(text), nargs='+',
                        default=list(BATCH_SIZES), metavar='N', help='images a call to classify ("all": the whole set)')
    args = parser.parse_args(argv)

    models = [(path, load_model_or_exit(path)) for path in args.models]        # every file checked before work
    images, labels = pytorch_cnn.load_fashion_mnist(args.data, train=True)
    _, (val_x, val_y) = pytorch_cnn.split_train_val(images, labels, args.val_size)
    shifted_images = val_x[:args.shift_images], val_y[:args.shift_images]
    val = val_x[:args.val_images], val_y[:args.val_images]
    photo_sets = load_photo_sets()
    counts = {name: len(photos[1]) for name, photos in photo_sets.items()}
    first_predicted = None
    for path, model in models:
        numbers = validation_numbers(model, val, shifted_images, photo_sets, first_predicted, args.batch_sizes)
        for size, at_size in numbers.items():
            print(describe(f'{path}, {at_a_time(size)}', at_size, counts), flush=True)
        first_predicted = first_predicted or {size: at_size['predicted'] for size, at_size in numbers.items()}


if __name__ == '__main__':
    main()
