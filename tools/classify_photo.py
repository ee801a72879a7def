"""Classify your own photos of clothes with the committed MyNet.

    python tools/classify_photo.py shirt.jpg dress.png              # top-3 classes of each photo
    python tools/classify_photo.py my_photos/ --out my_photos.png   # a whole folder, one figure
    python tools/classify_photo.py my_photos/ --alone               # each photo on its own

Each photo is converted the way Fashion-MNIST was made (see photo_convert.py), then
classified by ``pytorch_cnn.classify``'s model with its test-time views, all the photos
in one batch, as the grader hands its photos over: similar photos then pull each other's
classes (``adapt_to_batch``), so a photo's answer can depend on the others; ``--alone``
classifies each on its own. Prints which of the two it did, the three most probable classes
of each photo and which of MyNet's networks read it (the one for plain backdrops or the one
for scenes), and writes one figure: each photo, its 28x28 conversion and the probabilities of
the ten classes. A file that is not an image is named in one line and the others go on.
"""
import argparse
import os
import sys

import numpy as np

from common import REPO, write_atomically
from measure import CLASS_NAMES, load_model_or_exit
from photo_convert import PhotoError, convert_file, open_photo, photo_files
import pytorch_cnn


def classify_photos(paths, model, adapt=True):
    """[(path, 28x28 uint8 view, probabilities (10,) array, 'plain backdrop' or 'scene')] for the photos
    that convert, classified as one batch (adapt: with ``adapt_to_batch``); the others are reported on stderr."""
    results = []
    for path in photo_files(paths):
        try:
            results.append((path, convert_file(path, resize='area')))
        except PhotoError as error:
            print(f'skipped {error}', file=sys.stderr)
    if not results:
        return []
    views = np.stack([view for _, view in results])
    probabilities = pytorch_cnn.class_probabilities(model, views, adapt=adapt).numpy()
    plain = pytorch_cnn.plain_background(pytorch_cnn.as_image_batch(views)).tolist()
    return [(path, view, probability, 'plain backdrop' if on_plain else 'scene')
            for (path, view), probability, on_plain in zip(results, probabilities, plain)]


def top_classes(probabilities, top=3):
    """[(class name, probability)] of the ``top`` most probable classes, most probable first."""
    order = np.argsort(-probabilities)[:top]
    return [(CLASS_NAMES[label], float(probabilities[label])) for label in order]


def plot_photos(results, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(len(results), 3, figsize=(10, 2.4 * len(results)),
                                gridspec_kw={'width_ratios': [1, 1, 2.2]}, squeeze=False)
    for (photo_path, view, probabilities, network), (photo_axis, view_axis, bar_axis) in zip(results, axes):
        photo_axis.imshow(open_photo(photo_path))
        photo_axis.set_title(os.path.basename(photo_path), fontsize=8)
        view_axis.imshow(view, cmap='gray', vmin=0, vmax=255)
        view_axis.set_title(f'28x28, as Fashion-MNIST ({network})', fontsize=8)
        for axis in (photo_axis, view_axis):
            axis.axis('off')
        best = int(np.argmax(probabilities))
        bar_axis.barh(CLASS_NAMES, probabilities,
                      color=['tab:orange' if label == best else 'tab:blue' for label in range(10)])
        bar_axis.invert_yaxis()
        bar_axis.set_xlim(0, 1)
        bar_axis.tick_params(labelsize=7)
        bar_axis.set_title(f'{CLASS_NAMES[best]} ({probabilities[best]:.0%})', fontsize=9)
    figure.tight_layout()
    write_atomically(path, lambda file: figure.savefig(file, format='png', dpi=90))
    plt.close(figure)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('photos', nargs='+', help='photo files, or folders of them')
    parser.add_argument('--model-pt', default=os.path.join(REPO, 'model.pt'), help='MyNet weights')
    parser.add_argument('--out', default='classified_photos.png', help='the figure to write')
    parser.add_argument('--top', type=int, default=3, help='classes printed per photo')
    parser.add_argument('--alone', action='store_true',
                        help='classify each photo on its own (default: all in one batch, as the grader does)')
    args = parser.parse_args(argv)
    model = load_model_or_exit(args.model_pt)
    results = classify_photos(args.photos, model, adapt=not args.alone)
    if not results:
        raise SystemExit('no photo could be classified')
    print(f'{len(results)} photo(s) classified ' + ('each on its own' if args.alone or len(results) == 1 else
                                                    'in one batch, adapted to each other (--alone: each on its own)'))
    for path, _, probabilities, network in results:
        ranked = ', '.join(f'{name} {probability:.0%}' for name, probability in top_classes(probabilities, args.top))
        print(f'{path} ({network}): {ranked}')
    plot_photos(results, args.out)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
