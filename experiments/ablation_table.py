"""The training ablation's table: trained models side by side, each beside the base recipe's model of its seed.

    python experiments/ablation_table.py base/s3=/tmp/ft_base_s3.pt no-erasing/s3=/tmp/ft_noerase_s3.pt ...

Each argument is CONFIG/SEED=MODEL_PT; the config named ``base`` is the reference of its seed. For each model
and each number of images a call (--batch-sizes, in a fixed random order, see measure.labels_by_batch_size):
clean validation accuracy (the first --val-images), the photometric, scene and geometric shift means on the
first --shift-images validation images, and both real-photo sets' balanced accuracy (the paper's conversion)
with its 90% interval, overall beside it; from a non-base model also its balanced gain over its seed's base with
a paired interval. A model's labels are kept in MODEL_PT.labels.pt, so a model is classified once however often
the table is drawn. The test set is never read.
"""
import argparse
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO, os.path.join(REPO, 'tools')]
import torch  # noqa: E402

import pytorch_cnn  # noqa: E402
from measure import (GEOMETRIC_SHIFTS, PHOTOMETRIC_SHIFTS, SCENE_SHIFTS, labels_by_batch_size,  # noqa: E402
                     load_model_or_exit, load_photo_sets, real_photo_scores)


def model_labels(path, sets, batch_sizes):
    """{set name: {batch size: labels}} of the model at path on sets ({name: images}), cached beside it."""
    cache = f'{path}.labels.pt'
    key = (tuple(sorted((name, len(images)) for name, images in sets.items())), tuple(batch_sizes))
    if os.path.exists(cache):
        stored = torch.load(cache, weights_only=False)
        if stored['key'] == key:
            return stored['labels']
    model = load_model_or_exit(path)
    labels = {name: labels_by_batch_size(model, images, batch_sizes) for name, images in sets.items()}
    pytorch_cnn.save_atomically({'key': key, 'labels': labels}, cache)
    return labels


def mean_accuracy(labels, truth, names, size):
    return sum(100.0 * (labels[name][size] == truth).double().mean().item() for name in names) / len(names)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('models', nargs='+', metavar='CONFIG/SEED=MODEL_PT')
    parser.add_argument('--data', default=os.path.join(REPO, 'data'), help='folder holding FashionMNIST/raw')
    parser.add_argument('--val-images', type=int, default=5000, help='validation images, clean')
    parser.add_argument('--shift-images', type=int, default=2000, help='validation images under each shift')
    parser.add_argument('--batch-sizes', type=int, nargs='+', default=[1, 500], metavar='N')
    args = parser.parse_args(argv)
    runs = [(spec.split('=', 1)[0], spec.split('=', 1)[1]) for spec in args.models]

    images, labels = pytorch_cnn.load_fashion_mnist(args.data, train=True)
    _, (val_x, val_y) = pytorch_cnn.split_train_val(images, labels, 5000)
    shifted_x, shifted_y = val_x[:args.shift_images], val_y[:args.shift_images]
    val_x, val_y = val_x[:args.val_images], val_y[:args.val_images]
    photos = load_photo_sets(('phone photos', 'catalogue photos'))
    sets = {'clean': val_x, **{name: shift(shifted_x) for name, shift in pytorch_cnn.SHIFTS.items()
                               if name != 'clean'}, **{name: found[0] for name, found in photos.items()}}
    predicted = {name: model_labels(path, sets, args.batch_sizes) for name, path in runs}

    for size in args.batch_sizes:
        print(f'\n{size} a call: clean | photometric scene geometric (shift means, {args.shift_images} images) | '
              'balanced [90%] overall, paired balanced gain over the seed\'s base [90%]')
        for name, _ in runs:
            found, base = predicted[name], predicted.get('base/' + name.split('/')[-1])
            row = [f'{name:24s} {100.0 * (found["clean"][size] == val_y).double().mean().item():6.2f} |']
            row += [f'{mean_accuracy(found, shifted_y, group, size):6.2f}' for group in
                    (PHOTOMETRIC_SHIFTS, SCENE_SHIFTS, GEOMETRIC_SHIFTS)]
            for photo_set, (_, truth, senders) in photos.items():
                baseline = base[photo_set][size] if base is not None and found is not base else None
                scores = real_photo_scores(found[photo_set][size], truth, senders, baseline=baseline)
                low, high = scores['balanced_interval']
                row.append(f'| {photo_set.split()[0]} {scores["balanced"]:5.1f} [{low:4.1f},{high:5.1f}] '
                           f'{scores["overall"]:5.1f}')
                if baseline is not None:
                    low, high = scores['balanced_gain_interval']
                    row.append(f'{scores["balanced_gain"]:+5.1f} [{low:+5.1f},{high:+5.1f}]')
            print(' '.join(row), flush=True)


if __name__ == '__main__':
    main()
