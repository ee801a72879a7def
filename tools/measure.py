"""What the evaluation tools share: loading a model file, the shift suite, the real-photo sets and their scores
with bootstrap intervals. The graded modules do not import this."""
import os
import sys

import numpy as np
import torch

from common import REPO

sys.path.insert(0, REPO)
import pytorch_cnn  # noqa: E402  (the graded module lives at the repository root)

# name -> (file `make data` writes, images key): the real-photo sets, each measured, never trained on
PHOTO_SETS = {
    'phone photos': (os.path.join(REPO, 'data', 'realphotos-dev.npz'), 'images'),
    'catalogue photos': (os.path.join(REPO, 'data', 'catalogue-dev.npz'), 'images'),
    'catalogue photos, area resize': (os.path.join(REPO, 'data', 'catalogue-dev.npz'), 'images_area'),
}


class ModelFileError(Exception):
    """A model file that is missing, unreadable, or of another network; its message is one line."""


def load_model(path, model_class=pytorch_cnn.MyNet):
    """As the grader does: model_class(), then load_state_dict of the file at path on the CPU (ModelFileError
    where it is missing, no state_dict, or another network's)."""
    if not os.path.isfile(path):
        raise ModelFileError(f'{path}: no such file')
    try:
        state_dict = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as error:      # the unpickler raises many kinds for a file that is not a model
        raise ModelFileError(f'{path}: not a saved state_dict ({type(error).__name__})') from None
    if not isinstance(state_dict, dict):
        raise ModelFileError(f'{path}: holds a {type(state_dict).__name__}, not a state_dict')
    model = model_class()
    try:
        model.load_state_dict(state_dict)
    except RuntimeError:
        raise ModelFileError(f'{path}: not the weights of {model_class.__name__} (other layers or shapes)') from None
    return model


def load_model_or_exit(path):
    """MyNet with the weights at path; a bad file ends the program with one line naming it."""
    try:
        return load_model(path)
    except ModelFileError as error:
        sys.exit(f'error: {error}')


# how many images the grader may hand classify at once: one at a time, 64, 500, or the whole set (None)
BATCH_SIZES = (1, 64, 500, None)


def batch_name(size):
    """A batch size as a column heads it: '1', '64', ..., 'whole'."""
    return 'whole' if size is None else str(size)


def at_a_time(size):
    """A batch size in words: '1 at a time', ..., 'all at once'."""
    return 'all at once' if size is None else f'{size} at a time'


def labels_by_batch_size(model, images, batch_sizes=BATCH_SIZES, seed=0):
    """{batch size: labels (N,)}: what ``classify`` answers for images (N, 1, 28, 28) handed to it in a fixed
    random order (seeded), batch size at a time (None: all at once), in the images' own order.

    Each image's own outputs do not depend on its batch (eval mode), so the network reads each image once
    (``image_outputs``) and only ``adapt_to_batch`` sees the batches, as in ``classify``; one at a time is
    classify without adaptation (an image alone keeps its own answer). Accuracies per class come from these
    whole passes, never from calls on one class's images."""
    probabilities, features, networks = pytorch_cnn.image_outputs(model, images)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    labels = {}
    for size in batch_sizes:
        adapted = probabilities.clone()
        if size != 1 and features is not None:
            step = size or len(images)
            for start in range(0, len(images), step):
                batch = order[start:start + step]
                adapted[batch] = pytorch_cnn.adapt_to_batch(probabilities[batch], features[batch], networks[batch])
        labels[size] = adapted.argmax(dim=1)
    return labels


def accuracies_by_batch_size(model, images, labels, batch_sizes=BATCH_SIZES):
    """{batch size: accuracy in %} of ``labels_by_batch_size``."""
    return {size: 100.0 * (predicted == labels).double().mean().item()
            for size, predicted in labels_by_batch_size(model, images, batch_sizes).items()}


def shift_suite(model, images, labels, batch_sizes=BATCH_SIZES):
    """{batch size: {shift name: accuracy in %}} over every shift in pytorch_cnn.SHIFTS, 'clean' included."""
    by_shift = {name: accuracies_by_batch_size(model, shift(images), labels, batch_sizes)
                for name, shift in pytorch_cnn.SHIFTS.items()}
    return {size: {name: by_size[size] for name, by_size in by_shift.items()} for size in batch_sizes}


CLASS_NAMES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot')

# groups of pytorch_cnn.SHIFTS: brightness and contrast; the garment in a photo-like scene (smaller, moved, on
# a background); what moves or deforms the garment without changing its size class (rotation, shear, scale)
PHOTOMETRIC_SHIFTS = ('brighter +0.4', 'low contrast x0.3', 'gamma 0.5', 'gamma 2.0', 'inverted')
SCENE_SHIFTS = ('zoomed out 0.65', 'off-centre 3,4 px', 'rotated 20', 'sheared 0.3',
                'on tiles', 'on wood', 'on fabric', 'on blurred clutter')
GEOMETRIC_SHIFTS = ('rotated 10', 'rotated 20', 'sheared 0.3', 'zoomed out 0.65')


def shift_group_means(suite):
    """{'photometric', 'scene': the mean accuracy over that group's shifts} of one batch size's ``shift_suite``."""
    return {group: sum(suite[name] for name in names) / len(names)
            for group, names in (('photometric', PHOTOMETRIC_SHIFTS), ('scene', SCENE_SHIFTS))}


def load_real_photos(path, images_key='images'):
    """Real photos converted by `make data`: (images (N, 1, 28, 28) float in [0, 1], labels (N,), contributor ids
    (N,) or None where the set names none), or None where the file is absent (the real photos are optional).
    images_key: 'images', or 'images_area' for the catalogue photos resized with an area filter."""
    if not os.path.exists(path):
        return None
    with np.load(path) as arrays:
        images = torch.from_numpy(arrays[images_key]).unsqueeze(1).float() / 255.0
        senders = torch.from_numpy(arrays['senders']).long() if 'senders' in arrays.files else None
        return images, torch.from_numpy(arrays['labels']).long(), senders


def load_photo_sets(names=tuple(PHOTO_SETS)):
    """{name: (images, labels, senders or None)} of the PHOTO_SETS that `make data` wrote; prints the absent ones."""
    found = {}
    for name in names:
        path, key = PHOTO_SETS[name]
        photos = load_real_photos(path, key)
        if photos is None:
            print(f'{name}: {path} not found, skipped (`make data DATA_MIRROR=...` converts them)')
        else:
            found[name] = photos
    return found


def bootstrap_weights(labels, senders, rounds, generator):
    """(rounds, N) how often each photo is drawn in each round: whole contributors with replacement where
    senders (N,) is given, else photos with replacement within their class (each class keeps its size)."""
    if senders is not None:
        sender_ids, sender_of = senders.unique(return_inverse=True)
        draws = torch.randint(0, len(sender_ids), (rounds, len(sender_ids)), generator=generator)
        per_sender = torch.zeros(rounds, len(sender_ids), dtype=torch.float64).scatter_add_(
            1, draws, torch.ones(draws.shape, dtype=torch.float64))
        return per_sender[:, sender_of]
    weights = torch.zeros(rounds, len(labels), dtype=torch.float64)
    for label in labels.unique():
        members = (labels == label).nonzero().squeeze(1)
        draws = members[torch.randint(0, len(members), (rounds, len(members)), generator=generator)]
        weights.scatter_add_(1, draws, torch.ones(draws.shape, dtype=torch.float64))
    return weights


def real_photo_scores(predicted, labels, senders=None, rounds=2000, seed=0, baseline=None):
    """Accuracy on real photos, with 90% bootstrap intervals (see ``bootstrap_weights``).

    Returns {'balanced', 'overall': %, 'per_class': {label: %}, 'balanced_interval',
    'overall_interval': (low %, high %)}; balanced is the mean of the per-class accuracies.
    With ``baseline`` (another model's predictions on the same photos) also 'balanced_gain' and
    its paired interval 'balanced_gain_interval': balanced accuracy of predicted minus that of
    baseline, both on the same draws.
    """
    classes = labels.unique()
    in_class = (labels.view(-1, 1) == classes.view(1, -1)).double()            # (N, classes)
    weights = bootstrap_weights(labels, senders, rounds, torch.Generator().manual_seed(seed))
    drawn_per_class = weights @ in_class

    def balanced(guesses):      # per round; a class that no draw holds is left out
        right = (guesses == labels).double().view(-1, 1)
        return ((weights @ (in_class * right)) / drawn_per_class).nanmean(dim=1)

    def interval(values):
        return tuple(100.0 * torch.quantile(values, q).item() for q in (0.05, 0.95))

    right = (predicted == labels).double()
    per_class = 100.0 * (right @ in_class) / in_class.sum(0)
    scores = {'balanced': per_class.mean().item(), 'overall': 100.0 * right.mean().item(),
              'per_class': dict(zip(classes.tolist(), per_class.tolist())),
              'balanced_interval': interval(balanced(predicted)),
              'overall_interval': interval((weights @ right) / weights.sum(1))}
    if baseline is not None:
        baseline_per_class = 100.0 * ((baseline == labels).double() @ in_class) / in_class.sum(0)
        scores['balanced_gain'] = scores['balanced'] - baseline_per_class.mean().item()
        scores['balanced_gain_interval'] = interval(balanced(predicted) - balanced(baseline))
    return scores


def describe_scores(name, count, scores):
    """One line: balanced and overall accuracy with their intervals, then each class's accuracy."""
    (low, high), (overall_low, overall_high) = scores['balanced_interval'], scores['overall_interval']
    per_class = ' / '.join(f'{CLASS_NAMES[label].split("/")[0]} {value:.0f}'
                           for label, value in scores['per_class'].items())
    line = (f'{name} ({count}): balanced {scores["balanced"]:.1f}% [{low:.1f}, {high:.1f}], overall '
            f'{scores["overall"]:.1f}% [{overall_low:.1f}, {overall_high:.1f}]; {per_class}')
    if 'balanced_gain' in scores:
        low, high = scores['balanced_gain_interval']
        line += f'; balanced gain over the first {scores["balanced_gain"]:+.1f} [{low:+.1f}, {high:+.1f}]'
    return line
