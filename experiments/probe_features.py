"""How much of the real photos' classes a MyNet's features hold: a linear probe, cross-validated by contributor.

    python experiments/probe_features.py model.pt [other.pt ...] [--random-control] [--fraction 0.25] [--across]

A diagnostic, not a recipe: the probes are fitted to real photos, which the product never trains on, and
nothing here changes a model. For each model file it prints the network's own balanced accuracy on the real
photos (one view, all ten classes), then that of a linear classifier of the six classes on the same photos'
features (the flattened convolution output, and the hidden layer before the last linear one), fitted on the
photos of the other contributors (--folds groups of contributors; each photo is predicted by a probe that saw
none of its contributor's photos), each with its 90% interval from a bootstrap over contributors.
--fraction fits each probe on that fraction of the other contributors only: how many labelled photos it takes.

A probe far above the network's own head says that the features tell the classes of real photos apart and
the head's mapping from features to classes is what the shift from Fashion-MNIST breaks. `--random-control`
adds an untrained MyNet, so the gain that training on Fashion-MNIST brings to the features can be read off.
`--across` asks whether the six classes mean the same in both domains: a probe fitted on all the real photos
classifies Fashion-MNIST's validation images of those classes (interval over images), and one fitted on those
images classifies the real photos (interval over contributors).
"""
import argparse
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'tools'))
from common import REPO  # noqa: E402
from measure import load_model_or_exit, load_real_photos, real_photo_scores  # noqa: E402
import pytorch_cnn  # noqa: E402


def real_photo_features(model, images):
    """One view of images (N, 1, 28, 28) through model in eval mode -> {'convolutions' (N, F), 'hidden' (N, 256),
    'log_probabilities' (N, 10)}: of a MyNet, those of its scene network, the one for photos on floors and beds.
    The model's mode is left as it was."""
    model = model.scene if isinstance(model, pytorch_cnn.MyNet) else model
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            convolutions = torch.flatten(model.features(pytorch_cnn.standardize_polarity(images)), 1)
            first, relu, last = model.classifier
            hidden = relu(first(convolutions))
            log_probabilities = F.log_softmax(last(hidden), 1)
    finally:
        model.train(was_training)
    return {'convolutions': convolutions, 'hidden': hidden, 'log_probabilities': log_probabilities}


def contributor_folds(senders, folds, seed=0):
    """(N,) fold index in [0, folds) per photo; all photos of one contributor share a fold."""
    sender_ids, sender_of = senders.unique(return_inverse=True)
    fold_of_sender = torch.randint(0, folds, (len(sender_ids),), generator=torch.Generator().manual_seed(seed))
    return fold_of_sender[sender_of]


def fit_probe(features, targets, classes, weight_decay):
    """A linear classifier of features (N, F) (standardised with their own mean and spread) into targets
    (N,) in [0, classes), every class weighted alike -> predict(features) -> (N,) targets."""
    mean, spread = features.mean(0), features.std(0) + 1e-6
    counts = torch.bincount(targets, minlength=classes).clamp_min(1).double()
    class_weights = (counts.sum() / counts / classes).float()
    linear = torch.nn.Linear(features.shape[1], classes)
    optimiser = torch.optim.LBFGS(linear.parameters(), max_iter=200, line_search_fn='strong_wolfe')
    standardised = (features - mean) / spread

    def loss():
        optimiser.zero_grad()
        value = (F.cross_entropy(linear(standardised), targets, weight=class_weights)
                 + weight_decay * linear.weight.pow(2).sum())
        value.backward()
        return value

    optimiser.step(loss)
    return lambda new: linear((new - mean) / spread).argmax(1)


def cross_validated_predictions(features, labels, senders, folds=5, weight_decay=0.3, fraction=1.0):
    """(N,) labels predicted for each photo by a probe fitted on the photos of the other folds' contributors
    (of a random ``fraction`` of them)."""
    classes, targets = labels.unique(return_inverse=True)
    fold = contributor_folds(senders, folds)
    generator = torch.Generator().manual_seed(1)
    predicted = torch.empty_like(labels)
    with torch.enable_grad():
        for k in fold.unique().tolist():
            held_out = fold == k
            others = senders[~held_out].unique()
            kept = others[torch.randperm(len(others), generator=generator)[:max(1, round(fraction * len(others)))]]
            fitted_on = ~held_out & torch.isin(senders, kept)
            predict = fit_probe(features[fitted_on], targets[fitted_on], len(classes), weight_decay)
            with torch.no_grad():
                predicted[held_out] = classes[predict(features[held_out])]
    return predicted


def probe_report(features, labels, senders, folds=5, weight_decay=0.3, fraction=1.0):
    """{'head', 'convolutions', 'hidden': real_photo_scores} for one model's real_photo_features."""
    report = {'head': real_photo_scores(features['log_probabilities'].argmax(1), labels, senders)}
    for name in ('convolutions', 'hidden'):
        predicted = cross_validated_predictions(features[name], labels, senders, folds, weight_decay, fraction)
        report[name] = real_photo_scores(predicted, labels, senders)
    return report


def across_domains(real_features, labels, senders, fashion_features, fashion_labels, weight_decay=0.3):
    """Probes fitted on one domain's six classes and asked about the other's -> {'real_to_fashion',
    'fashion_to_real': real_photo_scores}. real_features (N, F) of the real photos (labels, senders (N,));
    fashion_features (M, F) of Fashion-MNIST images of any classes (fashion_labels (M,)), each image its own
    contributor; those of other classes than the real photos' are left out."""
    in_six = torch.isin(fashion_labels, labels.unique())
    fashion_features, fashion_labels = fashion_features[in_six], fashion_labels[in_six]
    fashion_senders = torch.arange(len(fashion_labels))
    classes, real_targets = labels.unique(return_inverse=True)
    fashion_targets = torch.searchsorted(classes, fashion_labels)
    report = {}
    for name, (fit_x, fit_y), (ask_x, ask_labels, ask_senders) in (
            ('real_to_fashion', (real_features, real_targets), (fashion_features, fashion_labels, fashion_senders)),
            ('fashion_to_real', (fashion_features, fashion_targets), (real_features, labels, senders))):
        with torch.enable_grad():
            predict = fit_probe(fit_x, fit_y, len(classes), weight_decay)
        with torch.no_grad():
            report[name] = real_photo_scores(classes[predict(ask_x)], ask_labels, ask_senders)
    return report


def balanced_with_interval(scores):
    low, high = scores['balanced_interval']
    return f'{scores["balanced"]:.1f} [{low:.1f}, {high:.1f}]'


def with_per_class(scores):
    return balanced_with_interval(scores) + ' (per class ' + ' / '.join(
        f'{value:.0f}' for value in scores['per_class'].values()) + ')'


def describe_across(name, report):
    return (f'{name}: across domains, fitted on the real photos, on Fashion-MNIST validation images balanced '
            f'{with_per_class(report["real_to_fashion"])}; fitted on those, on the real photos balanced '
            f'{with_per_class(report["fashion_to_real"])}')


def describe(name, report):
    return (f'{name}: real balanced, its own head (one view) {balanced_with_interval(report["head"])}; linear probe '
            f'on the convolutions {balanced_with_interval(report["convolutions"])}, on the hidden layer '
            f'{balanced_with_interval(report["hidden"])}')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('models', nargs='*', metavar='MODEL_PT', help='state_dicts of MyNet')
    parser.add_argument('--random-control', action='store_true', help='also an untrained MyNet (seed 0)')
    parser.add_argument('--real-photos', default=os.path.join(REPO, 'data', 'realphotos-dev.npz'), metavar='NPZ',
                        help='real photos converted by `make data`')
    parser.add_argument('--folds', type=int, default=5, help='groups of contributors for the cross-validation')
    parser.add_argument('--weight-decay', type=float, default=0.3, help="the probe's L2 penalty")
    parser.add_argument('--fraction', type=float, default=1.0,
                        help="fit each fold's probes on this fraction of the other contributors")
    parser.add_argument('--across', action='store_true',
                        help="also probes across domains, with Fashion-MNIST's validation split")
    parser.add_argument('--data', default=os.path.join(REPO, 'data'), help='folder holding FashionMNIST/raw')
    parser.add_argument('--val-size', type=int, default=pytorch_cnn.VAL_SIZE,
                        help='training images held out for validation')
    parser.add_argument('--limit', type=int, default=None,
                        help='only the first this many photos (and validation images)')
    args = parser.parse_args(argv)
    if not args.models and not args.random_control:
        parser.error('give a model file or --random-control')
    real_photos = load_real_photos(args.real_photos)
    if real_photos is None:
        sys.exit(f'no real photos at {args.real_photos}: `make data DATA_MIRROR=...` converts them')
    images, labels, senders = (tensor[:args.limit] for tensor in real_photos)
    if args.across:
        _, (val_x, val_y) = pytorch_cnn.split_train_val(*pytorch_cnn.load_fashion_mnist(args.data, train=True),
                                                        args.val_size)
        fashion = val_x[:args.limit], val_y[:args.limit]
    models = [(path, load_model_or_exit(path)) for path in args.models]
    if args.random_control:
        torch.manual_seed(0)
        models.append(('untrained MyNet', pytorch_cnn.MyNet()))
    for name, model in models:
        features = real_photo_features(model, images)
        report = probe_report(features, labels, senders, args.folds, args.weight_decay, args.fraction)
        print(describe(name, report), flush=True)
        if args.across:
            fashion_features = real_photo_features(model, fashion[0])['convolutions']
            report = across_domains(features['convolutions'], labels, senders, fashion_features, fashion[1],
                                    args.weight_decay)
            print(describe_across(name, report), flush=True)


if __name__ == '__main__':
    main()
