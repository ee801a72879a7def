"""Evaluate a MyNet model file: the Fashion-MNIST test set, the shift suite, the real photos, a report figure.

    python tools/evaluate.py                 # model.pt (make evaluate)
    python tools/evaluate.py new.pt --report new_report.png

Every set is classified as the grader may hand it to ``classify``: one image at a time, in batches of 64 and
500, and the whole set at once, in a fixed random order (see measure.labels_by_batch_size); the figure shows
batches of 500. The test set is read to report a model, never to choose one (tools/compare_models.py uses
the validation split). Real photos (`make data` converts them from a mirror) are scored by balanced accuracy, the mean of
the per-class accuracies, with a 90% bootstrap interval: over contributors for the phone photos, over
photos within each class for the catalogue photos, which are reported under two conversions (the paper's
subsampling and an area/Lanczos resize). The figure shows numbers only, never a photo.
"""
import argparse
import os
import time

import torch

from common import REPO, percent_correct, write_atomically
from measure import (BATCH_SIZES, CLASS_NAMES, at_a_time, batch_name, describe_scores, labels_by_batch_size,
                     load_model_or_exit, load_photo_sets, real_photo_scores, shift_group_means, shift_suite)
import pytorch_cnn

PICTURED = 500      # the batch size the figure shows


def confusion_matrix(predicted, labels, classes=10):
    """(classes, classes) counts: rows are true labels, columns predictions."""
    return torch.bincount(labels * classes + predicted, minlength=classes * classes).view(classes, classes)


def evaluate(model, data, photo_sets, limit=None):
    """{'test': {batch size: %}, 'seconds', 'confusion' (batches of PICTURED), 'suite': {batch size: {shift: %}},
    'groups': {batch size: {group: mean %}}, 'photos': {batch size: {set name: real_photo_scores}}}, printed
    (batch sizes: measure.BATCH_SIZES, None for the whole set); limit: only the first this many test images and
    photos of each set."""
    test_x, test_y = (part[:limit] for part in pytorch_cnn.load_fashion_mnist(data, train=False))
    started = time.time()
    pytorch_cnn.classify(model, test_x)
    seconds = time.time() - started
    predicted = labels_by_batch_size(model, test_x)
    results = {'test': {size: percent_correct(labels, test_y) for size, labels in predicted.items()},
               'seconds': seconds, 'confusion': confusion_matrix(predicted[PICTURED], test_y),
               'suite': shift_suite(model, test_x, test_y)}
    results['groups'] = {size: shift_group_means(suite) for size, suite in results['suite'].items()}
    print(f'Fashion-MNIST test set, {len(test_y)} images (classify of all at once: {seconds:.1f} s), accuracy '
          f'in % by images per call:')
    print(f'  {"":18s}' + ''.join(f'{batch_name(size):>8s}' for size in BATCH_SIZES))
    rows = {'test set': results['test'], **{name: {size: results['suite'][size][name] for size in BATCH_SIZES}
                                            for name in pytorch_cnn.SHIFTS if name != 'clean'},
            **{'mean, ' + group: {size: results['groups'][size][group] for size in BATCH_SIZES}
               for group in ('photometric', 'scene')}}
    for name, by_size in rows.items():
        print(f'  {name:18s}' + ''.join(f'{by_size[size]:8.2f}' for size in BATCH_SIZES))
    results['photos'] = {size: {} for size in BATCH_SIZES}
    for name, photos in photo_sets.items():
        images, labels, senders = (part if part is None else part[:limit] for part in photos)
        for size, guessed in labels_by_batch_size(model, images).items():
            results['photos'][size][name] = real_photo_scores(guessed, labels, senders)
            print(describe_scores(f'{name}, {at_a_time(size)}', len(labels), results['photos'][size][name]))
    return results


def plot_report(results, path):
    """Confusion matrix of the test set, the shift suite, and each real-photo set's per-class accuracy."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    panels = 2 + len(results['photos'][PICTURED])
    figure, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 5.5), layout='constrained')
    confusion = results['confusion'].numpy()
    axes[0].imshow(confusion, cmap='Blues')
    for (row, col), count in zip(((r, c) for r in range(10) for c in range(10)), confusion.flatten()):
        axes[0].text(col, row, int(count), ha='center', va='center', fontsize=7,
                     color='white' if count > confusion.max() / 2 else 'black')
    axes[0].set_xticks(range(10), CLASS_NAMES, rotation=45, ha='right')
    axes[0].set_yticks(range(10), CLASS_NAMES)
    axes[0].set(xlabel='predicted', ylabel='true',
                title=f'Fashion-MNIST test set: {results["test"][PICTURED]:.2f}%\n(classify {PICTURED} images at a time)')
    suite = results['suite'][PICTURED]
    bars(axes[1], list(suite), list(suite.values()), 'Test set under each shift')
    for axis, (name, scores) in zip(axes[2:], results['photos'][PICTURED].items()):
        low, high = scores['balanced_interval']
        names = [CLASS_NAMES[label] for label in scores['per_class']]
        bars(axis, names, list(scores['per_class'].values()),
             f'{name.capitalize()}\nbalanced {scores["balanced"]:.1f}% [{low:.1f}, {high:.1f}]')
    write_atomically(path, lambda file: figure.savefig(file, format='png', dpi=90))
    plt.close(figure)


def bars(axis, names, values, title):
    axis.barh(names, values, color='tab:blue')
    for position, value in enumerate(values):
        axis.text(max(value - 1, 12), position, f'{value:.1f}%', ha='right', va='center', color='white', fontsize=8)
    axis.invert_yaxis()
    axis.set(xlim=(0, 100), xlabel='accuracy [%]', title=title)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('model_pt', nargs='?', default=os.path.join(REPO, 'model.pt'), help='MyNet weights')
    parser.add_argument('--data', default=os.path.join(REPO, 'data'), help='folder holding FashionMNIST/raw')
    parser.add_argument('--report', default=os.path.join(REPO, 'pytorch_cnn_report.png'), help='the figure')
    parser.add_argument('--limit', type=int, default=None, help='only the first this many images of each set')
    args = parser.parse_args(argv)
    model = load_model_or_exit(args.model_pt)
    results = evaluate(model, args.data, load_photo_sets(), args.limit)
    plot_report(results, args.report)
    print(f'wrote {args.report}')


if __name__ == '__main__':
    main()
