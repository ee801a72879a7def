"""Draw a training's curves from the history that ``python pytorch_cnn.py`` writes.

    python tools/plot_training.py                                   # training_history.json -> pytorch_cnn_training.png
    python tools/plot_training.py run.json --out run.png

Left: the training loss of each pass's (augmented) images. Right: the weight average's single-view accuracy on
the validation split, clean and under the shift suite; a dashed line where each fine-tuning began.
"""
import argparse
import json
import os
import sys

from common import REPO, write_atomically

CURVES = {'val': 'validation, clean', 'shifted': 'validation, shift suite'}


def plot_training(history, path):
    """history: lists under 'epoch', 'loss' and each key of CURVES, and 'fine_tunings' ([epoch it started, the
    networks it trained ('' for the whole)] each). Returns the labels of the accuracy curves drawn."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    epochs = history['epoch']
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(10, 4))
    loss_axis.plot(epochs, history['loss'], label="training loss of each pass's images (augmented)")
    loss_axis.set(xlabel='epochs of training steps', ylabel='loss', title='Training loss')
    for key, label in CURVES.items():
        accuracy_axis.plot(epochs, history[key], label=label)
    accuracy_axis.set(xlabel='epochs of training steps', ylabel='accuracy [%]',
                      title='Validation accuracy of the EMA weights (single view)')
    for axis in (loss_axis, accuracy_axis):
        for (epoch, networks), style in zip(history.get('fine_tunings', []), ('--', ':', '-.')):
            label = f'fine-tuning of {networks}' if networks else 'fine-tuning'
            axis.axvline(epoch, color='grey', linestyle=style, label=label)
        axis.legend(fontsize=8)
    figure.tight_layout()
    write_atomically(path, lambda file: figure.savefig(file, format='png', dpi=100))
    plt.close(figure)
    return list(CURVES.values())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('history', nargs='?', default=os.path.join(REPO, 'training_history.json'))
    parser.add_argument('--out', default=os.path.join(REPO, 'pytorch_cnn_training.png'))
    args = parser.parse_args(argv)
    try:
        with open(args.history) as handle:
            history = json.load(handle)
        if not history.get('epoch'):
            raise ValueError('no pass recorded')
    except (OSError, ValueError) as error:
        sys.exit(f'error: {args.history}: not a training history ({error})')
    plot_training(history, args.out)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
