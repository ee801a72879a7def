"""Fashion-MNIST classifiers in PyTorch: the lab's FCNet and SimpleCNN, and the graded MyNet.

The grader builds ``MyNet()``, loads ``model.pt`` on the CPU and calls ``classify(model, x)`` on real-world photos
x (B, 1, 28, 28) in [0, 1] of the ten classes, with brightness, contrast and other shifts. So ``MyNet`` ignores
brightness, contrast and polarity by construction, holds one network for garments on a plain backdrop and one for
the rest, and is trained on garments laid into photo-like scenes; ``classify`` also reads its batch.

    python pytorch_cnn.py                      # train MyNet, write model.pt (`make data` fetches the data)
    python pytorch_cnn.py --model SimpleCNN    # the lab's other two networks
    python pytorch_cnn.py --help               # every flag, the training Recipe among them
"""
import argparse
import copy
import dataclasses
import json
import math
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

ALL_CLASSES = tuple(range(10))


# ----------------------------------------------------------------------------- the lab's networks

class FCNet(nn.Module):
    """The lab's first network: one linear layer on the 784 pixels, log-softmax."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(28 * 28, 10)

    def forward(self, x):
        """x: (B, 1, 28, 28) -> log-probabilities (B, 10)."""
        return F.log_softmax(self.fc(torch.flatten(x, 1)), dim=1)


class SimpleCNN(nn.Module):
    """The template's CNN: a 3x3 stride-2 convolution with 10 channels, ReLU, linear."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 10, kernel_size=3, stride=2, padding=1)
        self.fc = nn.Linear(10 * 14 * 14, 10)

    def forward(self, x):
        """x: (B, 1, 28, 28) -> log-probabilities (B, 10)."""
        return F.log_softmax(self.fc(torch.flatten(F.relu(self.conv(x)), 1)), dim=1)


# ----------------------------------------------------------------------------- MyNet

class GarmentNet(nn.Module):
    """A VGG-style CNN behind a brightness/contrast/polarity-invariant input stage: 28x28: conv 32, pool, 14x14:
    conv 64, conv 64, pool, 7x7: conv 192, conv 192, pool to 3x3, linear to 256, ReLU, linear to 10."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            conv_bn_relu(1, 32), nn.MaxPool2d(2),
            conv_bn_relu(32, 64), conv_bn_relu(64, 64), nn.MaxPool2d(2),
            conv_bn_relu(64, 192), conv_bn_relu(192, 192), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(nn.Linear(192 * 3 * 3, 256), nn.ReLU(inplace=True), nn.Linear(256, 10))
        # oneDNN's channels-last convolutions are much faster on a CPU; load_state_dict copies
        # into these tensors, so a loaded model.pt keeps the layout.
        self.to(memory_format=torch.channels_last)

    def forward(self, x):
        """x: (B, 1, 28, 28) float, any brightness scale -> log-probabilities (B, 10)."""
        return self.read_standardized(standardize_polarity(x))

    def read_standardized(self, z, with_features=False):
        """z (B, 1, 28, 28) from ``standardize_polarity`` -> log-probabilities (B, 10) [, features (B, 256)]."""
        hidden = self.classifier[:-1](torch.flatten(self.features(z), 1))
        log_probabilities = F.log_softmax(self.classifier[-1](hidden), dim=1)
        return (log_probabilities, hidden) if with_features else log_probabilities


def conv_bn_relu(in_channels, out_channels):
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class MyNet(nn.Module):
    """Two GarmentNets: ``plain`` for garments on a plain background (studio and catalogue photos, as
    Fashion-MNIST's are), ``scene`` for the rest (photos on floors, beds, hangers); each image goes to one of
    them (see ``plain_background``). Both start from one training; their fine-tunings differ (see
    ``training_phases``): shoes and bags on textured floors help the second and cost the first."""

    def __init__(self):
        super().__init__()
        self.plain = GarmentNet()
        self.scene = GarmentNet()

    def forward(self, x):
        """x: (B, 1, 28, 28) float, any brightness scale -> log-probabilities (B, 10)."""
        return self.forward_with_features(x)[0]

    def forward_with_features(self, x):
        """x as ``forward`` -> (log-probabilities (B, 10), the penultimate features (B, 256) of the network that
        read each image, and which one it was (B,): 0 plain, 1 scene). Features of two networks do not compare."""
        if len(x) == 0:
            return x.new_zeros(0, 10), x.new_zeros(0, 256), x.new_zeros(0, dtype=torch.long)
        z, frame = standardize_polarity(x, with_frame=True)
        on_scene = ~plain_background(x, standardized=(z, frame)).to(x.device)
        log_probabilities, features = x.new_empty(len(x), 10), x.new_empty(len(x), 256)
        for network, chosen in ((self.plain, ~on_scene), (self.scene, on_scene)):
            if chosen.any():      # under autocast the features come in bfloat16
                outputs = network.read_standardized(z[chosen], with_features=True)
                log_probabilities[chosen], features[chosen] = (output.to(x.dtype) for output in outputs)
        return log_probabilities, features, on_scene.long()


MODELS = {'FCNet': FCNet, 'SimpleCNN': SimpleCNN, 'MyNet': MyNet}


def get_model_class(_=None):
    """The grader's getter: the class it builds with no arguments."""
    return [MyNet]


# MyNet's input stage: each image standardised, its polarity set by its background, which also routes it

def standardize_polarity(x, with_frame=False):
    """Images x (B, 1, H, W) float -> z, each at zero mean and unit standard deviation, sign-flipped where its frame
    (B, H, W; returned too, with_frame) is brighter than its middle half (the garment): the 2-pixel frame where the
    background shows, at the image's edge or just inside padding bars of a colour rare inside (``padding_bars``).
    z is the same for ``a * x + b`` for every a != 0: brightness, contrast and inversion cannot move it."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    std = x.std(dim=(1, 2, 3), keepdim=True, unbiased=False).clamp_min(1e-6)
    z = (x - mean) / std
    h, w = z.shape[-2:]
    bars = padding_bars(z)
    frame = box_mask(bars, h, w) & ~box_mask(bars + 2, h, w)
    frame_mean = (z[:, 0] * frame).sum(dim=(1, 2)) / frame.sum(dim=(1, 2))
    middle = z[..., h // 4:h - h // 4, w // 4:w - w // 4].mean(dim=(1, 2, 3))
    z = z * (1.0 - 2.0 * (frame_mean > middle).to(z.dtype)).view(-1, 1, 1, 1)     # flipped: background lighter
    return (z, frame) if with_frame else z


def padding_bars(z, widest=8, tolerance=0.1, rare=0.05):
    """Widths (B, 4) of the padding bars at the left, right, top and bottom edge of images z (B, 1, H, W).
    A photo that is not square is padded with its corner's colour, which need not be the floor's (a shadow). A
    side's bar is its run of outermost lines (up to ``widest``) that hold the edge line's value; it counts where
    that value is rare inside (within ``tolerance`` in under a ``rare`` fraction of the pixels between the runs)
    and the runs lie on two opposite sides alone. Fashion-MNIST's black margins are no bars: black is inside too.
    """
    n, _, h, w = z.shape
    sides = (z[:, 0].transpose(1, 2), z[:, 0].flip(2).transpose(1, 2), z[:, 0], z[:, 0].flip(1))
    runs, values = [], []
    for lines in sides:                                   # (B, lines from the edge inwards, pixels)
        value = lines[:, :1, :1]
        flat = (lines[:, :widest] - value).abs().amax(dim=2) < 1e-4
        runs.append(flat.int().cumprod(dim=1).sum(dim=1))
        values.append(value)
    runs = torch.stack(runs, dim=1)
    between = box_mask(runs, h, w)
    rare_inside = torch.stack([(((z[:, 0] - value).abs() < tolerance) & between).sum(dim=(1, 2))
                               < rare * between.sum(dim=(1, 2)) for value in values], dim=1)
    left_right, top_bottom = (runs[:, 2:] == 0).all(dim=1), (runs[:, :2] == 0).all(dim=1)
    on_one_pair = torch.stack([left_right, left_right, top_bottom, top_bottom], dim=1)
    return runs * rare_inside * on_one_pair


def box_mask(widths, h, w):
    """(B, H, W) True inside the box left when widths (B, 4) of the left, right, top, bottom edge are cut off."""
    left, right, top, bottom = (widths[:, k].view(-1, 1, 1) for k in range(4))
    rows = torch.arange(h, device=widths.device).view(1, h, 1)
    columns = torch.arange(w, device=widths.device).view(1, 1, w)
    return (columns >= left) & (columns < w - right) & (rows >= top) & (rows < h - bottom)


def plain_background(x, tolerance=0.1, share=0.7, standardized=None):
    """(B,) True for the images x (B, 1, H, W) whose background is plain, as on a studio backdrop: at least
    ``share`` of the frame of ``standardize_polarity`` lies within ``tolerance`` (in the image's standard deviations)
    of the frame's median. standardized: the caller's ``standardize_polarity(x, with_frame=True)``."""
    if x.shape[0] == 0:
        return torch.zeros(0, dtype=torch.bool, device=x.device)
    z, frame = standardized or standardize_polarity(x.float(), with_frame=True)
    framed = torch.where(frame, z[:, 0], torch.nan).flatten(1)
    median = framed.nanmedian(dim=1, keepdim=True).values
    near = ((framed - median).abs() < tolerance) & frame.flatten(1)
    return near.sum(dim=1) >= share * frame.flatten(1).sum(dim=1)


# ----------------------------------------------------------------------------- classify

def as_image_batch(x):
    """Images (B, 1, 28, 28), (B, 28, 28) or (28, 28), uint8 or float, tensor or array -> float (B, 1, 28, 28).
    Raises ValueError for another shape, or for NaN or infinite pixels."""
    x = x if torch.is_tensor(x) else torch.as_tensor(x, device='cpu')     # a tensor stays on its device
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    if not 2 <= x.dim() <= 4 or x.shape[-2:] != (28, 28) or (x.dim() == 4 and x.shape[1] != 1):
        raise ValueError(f'expected images of shape (B, 1, 28, 28), (B, 28, 28) or (28, 28), got {tuple(x.shape)}')
    if not torch.isfinite(x).all():
        raise ValueError(f'{int((~torch.isfinite(x)).sum())} pixels are NaN or infinite')
    return x if x.dim() == 4 else x.reshape(-1, 1, 28, 28)


def tta_view(x, mirrored, rows, columns):
    """One test-time view of images x (B, 1, H, W): maybe mirrored, then moved down by ``rows`` and right by
    ``columns`` (each -1, 0 or 1), the edge pixels repeated."""
    h, w = x.shape[-2:]
    padded = F.pad(x.flip(-1) if mirrored else x, (1, 1, 1, 1), mode='replicate')
    return padded[..., 1 - rows:1 - rows + h, 1 - columns:1 - columns + w].contiguous(memory_format=torch.channels_last)


# classify's views (mirrored, rows, columns) in the order it adds them: the image, its mirror image, then the
# one-pixel shifts of both, as the training augmentation shows them; an image gets its next stage of views
# while its winning class has less mean probability than SURE
VIEW_STAGES = (((False, 0, 0),), ((True, 0, 0),),
               tuple((mirrored, rows, columns) for mirrored in (False, True)
                     for rows, columns in ((0, 1), (0, -1), (1, 0), (-1, 0))))
SURE = 0.75


def image_outputs(model, x, batch_size=256, tta=True):
    """Each image's own outputs on the CPU, in eval mode (the model's mode restored after): probabilities (B, 10), the
    mean over the views seen (with ``tta`` an image whose winning class gets less than SURE sees the next stage of
    VIEW_STAGES), and ``forward_with_features``' features (B, 256) and network (B,) on the first view (or None)."""
    device = next(model.parameters()).device
    images = as_image_batch(x)
    was_training = model.training
    model.eval()
    summed = torch.zeros(len(images), 10, device='cpu')
    views_seen = torch.zeros(len(images), 1, device='cpu')
    unsure = torch.arange(len(images), device='cpu')
    with_features = hasattr(model, 'forward_with_features')
    features = torch.zeros(len(images), 256, device='cpu') if with_features else None
    networks = torch.zeros(len(images), dtype=torch.long, device='cpu') if with_features else None
    with torch.no_grad():
        for stage in VIEW_STAGES if tta else VIEW_STAGES[:1]:
            for start in range(0, len(unsure), batch_size):
                chosen = unsure[start:start + batch_size]
                batch = images[chosen].to(device)
                if stage is VIEW_STAGES[0] and with_features:
                    log_probabilities, batch_features, batch_networks = model.forward_with_features(
                        tta_view(batch, *stage[0]))
                    features[chosen], networks[chosen] = batch_features.float().cpu(), batch_networks.cpu()
                    summed[chosen] += log_probabilities.exp().cpu()
                else:
                    summed[chosen] += sum(model(tta_view(batch, *how)).exp() for how in stage).cpu()
            views_seen[unsure] += len(stage)
            unsure = unsure[summed[unsure].max(dim=1).values < SURE * views_seen[unsure, 0]]
    model.train(was_training)
    return summed / views_seen, features, networks


# adapt_to_batch: each image is pulled towards the classes of up to NEIGHBOURS images of its batch whose features
# (cosine) are at least NEAR to its own, with full STRENGTH from FULL_STRENGTH_AT images up, less below, and only
# where the batch is less sure of itself than the network is of Fashion-MNIST: not at all at a mean winning
# probability of CONFIDENT or more, fully at UNSURE or less
NEIGHBOURS = 5
NEAR = 0.92
STRENGTH = 1.0
FULL_STRENGTH_AT = 256
CONFIDENT = 0.85
UNSURE = 0.78
ITERATIONS = 30


def nearest_neighbours(features, k, entries=1 << 22):
    """(similarities, indices), each (N, k): each row's k most similar other rows of features (N, F) by cosine.
    Found a block of rows at a time, so memory stays about ``entries`` similarities however large N is."""
    unit = F.normalize(features, dim=1)
    rows_per_block = max(1, entries // len(unit))
    similarities, indices = [], []
    for start in range(0, len(unit), rows_per_block):
        block = unit[start:start + rows_per_block] @ unit.T
        rows = torch.arange(len(block), device=unit.device)
        block[rows, rows + start] = -float('inf')         # not its own neighbour
        found = block.topk(k, dim=1)
        similarities.append(found.values)
        indices.append(found.indices)
    return torch.cat(similarities), torch.cat(indices)


def laplacian_smoothing(probabilities, features, strength):
    """LAME (Boudiaf et al., CVPR 2022) on a near-neighbour graph: assignments z (N, 10) that stay close to
    probabilities (N, 10) and agree with each image's neighbours, z_i proportional to p_i exp(strength sum_j
    w_ij z_j), by fixed-point iteration. w links i and j (weight 1/2 each way) where j is among i's NEIGHBOURS
    most similar images in features (N, F) and at least NEAR to it; an image with no such neighbour keeps p_i."""
    k = min(NEIGHBOURS, len(probabilities) - 1)
    if k < 1 or strength <= 0:
        return probabilities
    similarities, neighbours = nearest_neighbours(features, k)
    weights = (similarities >= NEAR).to(probabilities.dtype).unsqueeze(2) * (strength / 2)     # (N, k, 1)
    if not weights.any():
        return probabilities
    log_p = probabilities.clamp_min(1e-12).log()
    z = probabilities
    for _ in range(ITERATIONS):
        pulled = (weights * z[neighbours]).sum(dim=1)                                     # i's near neighbours
        pulled = pulled.index_add(0, neighbours.flatten(), (weights * z.unsqueeze(1)).flatten(0, 1))   # and j's
        z = torch.softmax(log_p + pulled, dim=1)
    return z


def adapt_to_batch(probabilities, features, networks):
    """probabilities (N, 10) adjusted to the batch: ``laplacian_smoothing`` among the images that one network read
    (networks (N,), features (N, F) of that network) at ``adaptation_strength``; independent of the images' order."""
    adapted = probabilities.clone()
    for network in networks.unique():
        members = (networks == network).nonzero().squeeze(1)
        own = probabilities[members]
        adapted[members] = laplacian_smoothing(own, features[members], adaptation_strength(own))
    return adapted


def adaptation_strength(probabilities):
    """STRENGTH for images with probabilities (N, 10), times min(1, N / FULL_STRENGTH_AT) and where their mean
    winning probability lies between CONFIDENT (0) and UNSURE (1): on images like its training images the network's
    own answers beat its neighbours', on photos unlike them similar photos tell more (EXPERIMENTS, session 21)."""
    doubt = (CONFIDENT - probabilities.max(dim=1).values.mean().item()) / (CONFIDENT - UNSURE)
    return STRENGTH * min(1.0, len(probabilities) / FULL_STRENGTH_AT) * min(1.0, max(0.0, doubt))


def class_probabilities(model, x, batch_size=256, tta=True, adapt=True):
    """Class probabilities (B, 10) for images x (see ``as_image_batch``): each image's own (``image_outputs``),
    then, with ``adapt``, smoothed over its neighbours in the batch (``adapt_to_batch``)."""
    probabilities, features, networks = image_outputs(model, x, batch_size, tta)
    if adapt and features is not None:
        probabilities = adapt_to_batch(probabilities, features, networks)
    return probabilities


def classify(model, x, batch_size=256, tta=True, adapt=True):
    """Predicted labels (B,) int64 for images x: the most probable class of ``class_probabilities``; with adapt,
    an image's label can depend on the others in x (never on their order), and an image alone gets its own."""
    return class_probabilities(model, x, batch_size, tta, adapt).argmax(dim=1)


# ----------------------------------------------------------------------------- data

VAL_SIZE = 5000             # training images held out for validation
VAL_SPLIT_SEED = 0          # the validation split is the same for every --seed


def load_fashion_mnist(root, train):
    """Images (N, 1, 28, 28) float in [0, 1] and labels (N,) int64 from <root>/FashionMNIST/raw; a missing or
    damaged data set ends the program with one line that says how to get it."""
    from torchvision.datasets import FashionMNIST
    try:
        dataset = FashionMNIST(root, train=train, download=False)
        images, labels = dataset.data, dataset.targets
    except Exception as error:      # missing files raise RuntimeError, damaged ones whatever their parser raises
        raise SystemExit(f'error: no readable Fashion-MNIST under {root}/FashionMNIST/raw '
                         f'({type(error).__name__}); run `make data` (or python tools/fetch_data.py --help)') from None
    if images.shape[1:] != (28, 28) or len(images) != len(labels) or len(images) == 0:
        raise SystemExit(f'error: damaged Fashion-MNIST under {root}/FashionMNIST/raw (images {tuple(images.shape)}, '
                         f'{len(labels)} labels); run `make data` again')
    return images.unsqueeze(1).float() / 255.0, labels.long()


def split_train_val(images, labels, val_size=VAL_SIZE):
    """A fixed random split (seeded by VAL_SPLIT_SEED): (train_x, train_y), (val_x, val_y)."""
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(VAL_SPLIT_SEED))
    val, train = order[:val_size], order[val_size:]
    return (images[train], labels[train]), (images[val], labels[val])


SHIFTED_VAL_IMAGES = 250    # the checkpoint choice reads this many validation images under each shift


def validation_sets(args):
    """(train_x, train_y), then the checks, each (images, labels): 'val', the validation split, and 'shifted', its
    first SHIFTED_VAL_IMAGES images under every shift of SHIFTS but 'clean', concatenated; small with --dry-run."""
    images, labels = load_fashion_mnist(args.data, train=True)
    (train_x, train_y), (val_x, val_y) = split_train_val(images, labels)
    shifted_size = SHIFTED_VAL_IMAGES
    if args.dry_run:        # small enough for seconds: 512 images to train on and to validate, 64 a shift
        train_x, train_y, val_x, val_y, shifted_size = train_x[:512], train_y[:512], val_x[:512], val_y[:512], 64
    shifted = [shift(val_x[:shifted_size]) for name, shift in SHIFTS.items() if name != 'clean']
    checks = {'val': (val_x, val_y), 'shifted': (torch.cat(shifted), val_y[:shifted_size].repeat(len(shifted)))}
    return (train_x, train_y), checks


def _affine_all(x, degrees=0.0, zoom=1.0, shear=0.0, right=0.0, down=0.0):
    n = x.shape[0]
    return affine(x, x.new_full((n,), math.radians(degrees)), x.new_full((n,), zoom), x.new_full((n,), shear),
                  x.new_tensor([[right, down]]).expand(n, 2))


def _on_background(x, kind):
    """Each garment x (B, 1, H, W) on a fixed background in [0, 1]: light tiles 9 px apart with darker grout, wavy
    wood grain, a fine weave, or (clutter) the batch's other garments, enlarged and blurred."""
    h, w = x.shape[-2:]
    ys = torch.arange(h, dtype=torch.float32, device='cpu').view(h, 1)
    xs = torch.arange(w, dtype=torch.float32, device='cpu').view(1, w)
    noise = torch.randn(1, 1, h, w, generator=torch.Generator().manual_seed(2), device='cpu')
    if kind == 'tiles':
        background = 0.55 - 0.3 * (((ys % 9) < 1.5) | ((xs % 9) < 1.5)).float() + 0.03 * noise
    elif kind == 'wood':
        background = 0.45 + 0.12 * torch.sin(2 * math.pi * (ys + 1.5 * torch.sin(xs / 4)) / 5) + 0.04 * noise
    elif kind == 'fabric':
        background = 0.4 + 0.1 * torch.sin(2 * math.pi * xs / 3) * torch.sin(2 * math.pi * ys / 3) + 0.05 * noise
    else:
        clutter = _affine_all(x.roll(1, dims=0), degrees=30.0, zoom=1.8)
        background = 0.15 + 0.5 * gaussian_blur(clutter, x.new_full((x.shape[0],), 1.5))
    alpha = garment_mask(x)
    return alpha * x + (1 - alpha) * background.clamp(0, 1).to(x.device)


SHIFTS = {
    'clean': lambda x: x,
    'brighter +0.4': lambda x: (x + 0.4).clamp(0, 1),
    'low contrast x0.3': lambda x: 0.35 + 0.3 * x,
    'gamma 0.5': lambda x: x ** 0.5,
    'gamma 2.0': lambda x: x ** 2.0,
    'inverted': lambda x: 1.0 - x,
    'noise 0.1': lambda x: (x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1),
                                                  device='cpu').to(x.device)).clamp(0, 1),
    'blur 1.0': lambda x: gaussian_blur(x, x.new_full((x.shape[0],), 1.0)),
    'rotated 10': lambda x: _affine_all(x, degrees=-10.0),       # anticlockwise
    'zoomed out 0.65': lambda x: _affine_all(x, zoom=0.65),
    'off-centre 3,4 px': lambda x: _affine_all(x, right=4.0, down=3.0),
    'rotated 20': lambda x: _affine_all(x, degrees=-20.0),
    'sheared 0.3': lambda x: _affine_all(x, shear=0.3),
    'on tiles': lambda x: _on_background(x, 'tiles'),
    'on wood': lambda x: _on_background(x, 'wood'),
    'on fabric': lambda x: _on_background(x, 'fabric'),
    'on blurred clutter': lambda x: _on_background(x, 'clutter'),
}


# ----------------------------------------------------------------------------- augmentation

def augment(x, generator, recipe, labels=None, scenes=None):
    """The training augmentation of x (B, 1, 28, 28) in [0, 1] under ``recipe``: geometry, photo-like scenes,
    random erasing, photometric shifts. scenes: (probability, classes): that fraction of the images of those
    classes (all where no labels (B,) are given) goes on a scene (``random_scene``); None: no scenes."""
    x = random_geometry(x, generator, recipe)
    if scenes is not None and scenes[0] > 0:
        probability, classes = scenes
        in_scene = _chosen(x.shape[0], probability, generator)
        if labels is not None:
            in_scene &= torch.isin(labels, torch.tensor(classes, device=labels.device))
        if in_scene.any():
            x = x.clone()
            x[in_scene] = random_scene(x[in_scene], generator)
    x = random_erasing(x, generator, recipe.erase_probability)
    return photometric_shift(x, generator, recipe.photometric)


def _uniform(n, low, high, generator):
    return low + (high - low) * torch.rand(n, generator=generator, device=generator.device)


def _log_uniform(n, low, high, generator):
    return torch.exp(_uniform(n, math.log(low), math.log(high), generator))


def _chosen(n, p, generator):
    return torch.rand(n, generator=generator, device=generator.device) < p


def random_geometry(x, generator, recipe):
    """Every image shifted and maybe flipped; a recipe.rotate_probability fraction also rotated by up to
    recipe.max_degrees and scaled in the range recipe.scale about the centre (bilinear; the rest stay exact)."""
    x = random_shift_flip(x, generator, recipe.max_shift_pixels)
    n = x.shape[0]
    rotated = _chosen(n, recipe.rotate_probability, generator)
    angle = _uniform(n, -recipe.max_degrees, recipe.max_degrees, generator) * math.pi / 180
    rotated_x = affine(x, angle, _uniform(n, *recipe.scale, generator), x.new_zeros(n), x.new_zeros(n, 2))
    return torch.where(rotated.view(-1, 1, 1, 1), rotated_x, x)


def random_shift_flip(x, generator, max_pixels):
    """x (B, 1, H, W) moved by up to ``max_pixels`` whole pixels (zero fill) and mirrored half the time, each image
    on its own; exact, so the images stay as sharp as the test images (bilinear resampling blurs them)."""
    n, _, h, w = x.shape
    flip = _chosen(n, 0.5, generator)
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
    padded = F.pad(x, (max_pixels,) * 4)
    top = torch.randint(0, 2 * max_pixels + 1, (n, 1, 1), generator=generator, device=x.device)
    left = torch.randint(0, 2 * max_pixels + 1, (n, 1, 1), generator=generator, device=x.device)
    rows = top + torch.arange(h, device=x.device).view(1, h, 1)
    cols = left + torch.arange(w, device=x.device).view(1, 1, w)
    return padded[torch.arange(n, device=x.device).view(-1, 1, 1), 0, rows, cols].unsqueeze(1)


ERASE_AREA = (0.02, 0.2)          # range of the erased rectangle's area, as a fraction of the image
ERASE_LOG_RATIO = (-1.2, 1.2)     # range of the log of its aspect ratio


def random_erasing(x, generator, p):
    """A fraction p of the images x (B, 1, H, W) each get a random rectangle of one random grey level."""
    n, _, h, w = x.shape
    target_area = _uniform(n, *ERASE_AREA, generator) * h * w
    ratio = torch.exp(_uniform(n, *ERASE_LOG_RATIO, generator))
    eh = (target_area * ratio).sqrt().clamp(1, h)
    ew = (target_area / ratio).sqrt().clamp(1, w)
    top = torch.rand(n, generator=generator, device=x.device) * (h - eh)
    left = torch.rand(n, generator=generator, device=x.device) * (w - ew)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    inside = ((rows >= top.view(-1, 1, 1)) & (rows < (top + eh).view(-1, 1, 1))
              & (cols >= left.view(-1, 1, 1)) & (cols < (left + ew).view(-1, 1, 1)))
    inside &= _chosen(n, p, generator).view(-1, 1, 1)
    fill = torch.rand(n, 1, 1, generator=generator, device=x.device).expand(n, h, w)
    return torch.where(inside.unsqueeze(1), fill.unsqueeze(1), x)


# each photometric shift's probability (Recipe.photometric scales them all), then their ranges
PHOTOMETRIC = {'blur': 0.05, 'gamma': 0.15, 'gain': 0.15, 'ramp': 0.05, 'invert': 0.025, 'noise': 0.05,
               'salt_pepper': 0.025}
BLUR_SIGMA = (0.4, 1.3)
GAMMA_RANGE = (0.4, 2.5)          # log-uniform
GAIN_RANGE = (0.25, 2.0)          # log-uniform, contrast with clipping, moving grey 0.5 to a level in MID_GREY
MID_GREY = (0.2, 0.8)
RAMP_SLOPE = 0.6                  # a linear illumination ramp: its largest slope across the image, each axis
NOISE_STD = (0.01, 0.12)          # Gaussian noise
SALT_PEPPER_FRACTION = 0.04       # the largest fraction of the pixels salt-and-pepper noise hits


def photometric_shift(x, generator, strength=1.0):
    """Photo-like corruptions of images x (B, 1, H, W) in [0, 1]; each one hits a random fraction of them: its
    probability in PHOTOMETRIC times strength."""
    n = x.shape[0]
    ones = x.new_ones(n)
    p = {name: min(1.0, strength * probability) for name, probability in PHOTOMETRIC.items()}

    def per_image(values, chosen, neutral):
        return torch.where(chosen, values, neutral * ones).view(-1, 1, 1, 1)

    sigma = _uniform(n, *BLUR_SIGMA, generator)
    blurred = _chosen(n, p['blur'], generator)
    if blurred.any():
        x = torch.where(blurred.view(-1, 1, 1, 1), gaussian_blur(x, sigma), x)
    gamma = per_image(_log_uniform(n, *GAMMA_RANGE, generator), _chosen(n, p['gamma'], generator), 1.0)
    x = x.clamp_min(0) ** gamma
    gain = per_image(_log_uniform(n, *GAIN_RANGE, generator), _chosen(n, p['gain'], generator), 1.0)
    mid_grey = _uniform(n, *MID_GREY, generator).view(-1, 1, 1, 1)          # where 0.5 goes
    x = torch.where(gain != 1.0, (x - 0.5) * gain + mid_grey, x)
    ramp_chosen = _chosen(n, p['ramp'], generator).view(-1, 1, 1, 1)
    h, w = x.shape[-2:]
    ys = torch.linspace(-0.5, 0.5, h, device=x.device).view(1, 1, h, 1)
    xs = torch.linspace(-0.5, 0.5, w, device=x.device).view(1, 1, 1, w)
    slope_y = _uniform(n, -RAMP_SLOPE, RAMP_SLOPE, generator).view(-1, 1, 1, 1)
    slope_x = _uniform(n, -RAMP_SLOPE, RAMP_SLOPE, generator).view(-1, 1, 1, 1)
    x = x + ramp_chosen * (slope_y * ys + slope_x * xs)
    x = torch.where(_chosen(n, p['invert'], generator).view(-1, 1, 1, 1), 1.0 - x, x)
    noise_std = per_image(_uniform(n, *NOISE_STD, generator), _chosen(n, p['noise'], generator), 0.0)
    x = x + noise_std * torch.randn(x.shape, generator=generator, device=x.device)
    x = x.clamp(0, 1)
    salt_pepper = per_image(_uniform(n, 0.0, SALT_PEPPER_FRACTION, generator),
                            _chosen(n, p['salt_pepper'], generator), 0.0)
    hit = torch.rand(x.shape, generator=generator, device=x.device) < salt_pepper
    salt = (torch.rand(x.shape, generator=generator, device=x.device) < 0.5).to(x.dtype)
    return torch.where(hit, salt, x)


def gaussian_blur(x, sigma):
    """Blur each image x[i] (B, 1, H, W) with its own sigma[i] (B,), 5x5 kernel."""
    offsets = torch.arange(-2, 3, dtype=x.dtype, device=x.device)
    weights = torch.exp(-offsets.view(1, -1) ** 2 / (2 * sigma.view(-1, 1) ** 2))
    weights = weights / weights.sum(dim=1, keepdim=True)
    kernels = (weights.unsqueeze(2) * weights.unsqueeze(1)).unsqueeze(1)      # (B, 1, 5, 5)
    padded = F.pad(x.transpose(0, 1), (2, 2, 2, 2), mode='replicate')         # (1, B, H+4, W+4)
    return F.conv2d(padded, kernels, groups=x.shape[0]).transpose(0, 1)


# a scene (see random_scene): the garment's scale, largest rotation (degrees), shear and offset from the centre
# (pixels), the range of its grey-level span, and of the background texture's standard deviation
SCENE_ZOOM = (0.7, 1.0)
SCENE_MAX_DEGREES = 25.0
SCENE_MAX_SHEAR = 0.3
SCENE_MAX_SHIFT = 4.0
GARMENT_CONTRAST = (0.3, 1.0)
BACKGROUND_STD = (0.03, 0.15)


def random_scene(x, generator):
    """Each garment x (B, 1, H, W) on black, as in a photo: smaller, off-centre, rotated and sheared,
    with random grey levels for itself and for a textured background behind it."""
    n, _, h, w = x.shape
    angle = _uniform(n, -SCENE_MAX_DEGREES, SCENE_MAX_DEGREES, generator) * math.pi / 180
    shift = _uniform(2 * n, -SCENE_MAX_SHIFT, SCENE_MAX_SHIFT, generator).view(n, 2)
    zoom = _uniform(n, *SCENE_ZOOM, generator)
    shear = _uniform(n, -SCENE_MAX_SHEAR, SCENE_MAX_SHEAR, generator)
    garment, alpha = affine(torch.cat([x, garment_mask(x)], dim=1), angle, zoom, shear, shift).split(1, dim=1)
    darkest = _uniform(n, 0.0, 0.6, generator).view(-1, 1, 1, 1)
    brightest = (darkest + _uniform(n, *GARMENT_CONTRAST, generator).view(-1, 1, 1, 1)).clamp_max(1)
    garment = darkest + (brightest - darkest) * garment
    level = _uniform(n, 0.0, 1.0, generator).view(-1, 1, 1, 1)
    texture_std = _uniform(n, *BACKGROUND_STD, generator).view(-1, 1, 1, 1)
    background = level + texture_std * random_texture(n, generator, h, w)
    return (alpha * garment + (1 - alpha) * background).clamp(0, 1)


def garment_mask(x, threshold=0.03):
    """Where the garment is in Fashion-MNIST-like images x (B, 1, H, W) on black: 1.0 inside, 0.0 outside. A pixel
    is inside between lit pixels along both its row and its column: dark patches count, the gap in trousers not."""
    lit = (x > threshold).to(torch.int8)
    along_row, along_column = (lit.cummax(dim)[0].bool() & lit.flip(dim).cummax(dim)[0].flip(dim).bool()
                               for dim in (-1, -2))
    return (along_row & along_column).to(x.dtype)


def affine(x, angle, zoom, shear, shift):
    """Each image x[i] (B, C, H, W) scaled by zoom[i], sheared by shear[i], rotated by angle[i] radians about its
    centre, then moved by shift[i] (B, 2) pixels (right, down); bilinear, zero fill."""
    cos, sin = torch.cos(angle), torch.sin(angle)
    rotation = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)
    shearing = torch.eye(2, dtype=x.dtype, device=x.device).repeat(len(angle), 1, 1)
    shearing[:, 0, 1] = shear
    forward = rotation @ shearing * zoom.view(-1, 1, 1)                 # content -> frame
    inverse = torch.linalg.inv(forward)
    offset = 2.0 * shift / torch.tensor(x.shape[-1:-3:-1], dtype=x.dtype, device=x.device)
    theta = torch.cat([inverse, -(inverse @ offset.unsqueeze(2))], dim=2)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode='bilinear', padding_mode='zeros', align_corners=False)


def random_texture(n, generator, h=28, w=28):
    """(n, 1, h, w) backgrounds with zero mean and unit std: blotches, grain, stripes or grids, on blotches."""
    def blotches(cells):        # random values on a cells x cells grid, bicubically interpolated
        coarse = torch.randn(n, 1, cells, cells, generator=generator, device=generator.device)
        return _unit(F.interpolate(coarse, size=(h, w), mode='bicubic', align_corners=False))
    ys = torch.arange(h, dtype=torch.float32, device=generator.device).view(1, 1, h, 1)
    xs = torch.arange(w, dtype=torch.float32, device=generator.device).view(1, 1, 1, w)
    angle = _uniform(n, 0, math.pi, generator).view(-1, 1, 1, 1)
    along = xs * torch.cos(angle) + ys * torch.sin(angle)
    across = -xs * torch.sin(angle) + ys * torch.cos(angle)
    period = _uniform(n, 2.5, 12.0, generator).view(-1, 1, 1, 1)
    phase = _uniform(n, 0, 2 * math.pi, generator).view(-1, 1, 1, 1)
    grain = gaussian_blur(torch.randn(n, 1, h, w, generator=generator, device=generator.device),
                          _uniform(n, 0.4, 1.2, generator))
    stripes = torch.sin(2 * math.pi * along / period + phase + 1.5 * blotches(4))
    grid = torch.maximum(torch.cos(2 * math.pi * along / period + phase),
                         torch.cos(2 * math.pi * across / period + phase)) ** 15
    patterns = torch.stack([blotches(5), _unit(grain), _unit(stripes), _unit(grid)])
    kind = torch.randint(0, len(patterns), (n,), generator=generator, device=generator.device)
    chosen = patterns[kind, torch.arange(n, device=generator.device)]
    weight = _uniform(n, 0.0, 0.6, generator).view(-1, 1, 1, 1)
    return _unit(chosen + weight * blotches(3))


def _unit(pattern):
    """Each pattern (B, 1, H, W) moved to zero mean and unit standard deviation."""
    centred = pattern - pattern.mean(dim=(1, 2, 3), keepdim=True)
    return centred / centred.std(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)


# ----------------------------------------------------------------------------- training

def _setting(default, help_text):
    return dataclasses.field(default=default, metadata={'help': help_text})


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Every setting of the training, each a flag of ``python pytorch_cnn.py`` (``batch_size`` is ``--batch-size``, a
    range takes two numbers, a switch has a ``--no-`` form); one flag switches off each family of the ablation."""
    # length, optimiser and schedule
    epochs: int = _setting(30, 'training length in epochs of steps (epochs x ceil(N / batch size) steps)')
    batch_size: int = _setting(128, 'images per step')
    lr: float = _setting(0.05, 'peak learning rate of the one-cycle schedule')
    warmup_fraction: float = _setting(0.15, 'fraction of the steps in which the learning rate rises to its peak')
    lr_start_divisor: float = _setting(10.0, 'the schedule starts at lr / this')
    lr_end_divisor: float = _setting(200.0, 'and ends at lr / (start divisor x this)')
    momentum: float = _setting(0.9, 'Nesterov momentum of SGD')
    weight_decay: float = _setting(5e-4, 'L2 weight decay of the weights (not of biases and BatchNorm)')
    label_smoothing: float = _setting(0.1, 'label smoothing of the cross-entropy')
    ema_decay: float = _setting(0.999, 'decay of the weight average that is evaluated and saved')
    ema_warmup: int = _setting(10, 'the average decays by (1 + t) / (this + t) while that is below ema_decay')
    easy_kept: float = _setting(0.3, 'fraction of the easier half of the images each pass trains on (1: all)')
    checkpoint_shifted: bool = _setting(True, 'choose each checkpoint by clean and shifted validation, not clean alone')
    # augmentation: every image is shifted by whole pixels and mirrored half the time
    augment: bool = _setting(True, 'augment the training images (all the settings below)')
    max_shift_pixels: int = _setting(1, 'largest whole-pixel shift')
    rotate_probability: float = _setting(0.3, 'fraction of images also rotated and scaled (bilinear)')
    max_degrees: float = _setting(8.0, 'largest rotation of those')
    scale: tuple = _setting((0.92, 1.08), 'range of their scale factor')
    erase_probability: float = _setting(0.2, 'fraction of images with a rectangle of one grey level')
    photometric: float = _setting(1.0, 'scales the probability of every photometric shift (0: none)')
    # fine-tuning: after the main schedule, a short one of its own with scenes, from the best weights so far
    finetune_epochs: int = _setting(4, 'epochs of steps of the fine-tuning on scenes (0: none)')
    finetune_lr: float = _setting(0.01, 'its peak learning rate')
    finetune_scene_probability: float = _setting(0.25, 'fraction of images laid on a textured background in it')
    finetune_scale: tuple = _setting((0.65, 1.08), 'its scale range of rotated images (zoomed out on black)')
    plain_scene_classes: tuple = _setting((0, 1, 2, 3, 4, 6), 'MyNet: the classes on scenes in the fine-tuning '
                                          'of its plain network (footwear and bags stay on black, as in catalogues)')


def training_phases(recipe, model):
    """The phases of a training, [(parts: the names of the MyNet networks it trains, () for the whole model; its
    recipe; its scenes (see ``augment``))]: the main schedule without scenes (if recipe.epochs > 0), then (if
    recipe.finetune_epochs > 0) the fine-tuning: its own one-cycle schedule at finetune_lr, finetune_scene_probability
    scenes, finetune_scale. For MyNet the main schedule trains one GarmentNet that is both its networks; then the
    fine-tuning trains ``scene``, and another with scenes of plain_scene_classes only trains ``plain``."""
    two_networks = isinstance(model, MyNet)
    phases = [(('plain', 'scene') if two_networks else (), recipe, None)] if recipe.epochs > 0 else []
    if recipe.finetune_epochs > 0:
        fine_tuning = dataclasses.replace(recipe, epochs=recipe.finetune_epochs, lr=recipe.finetune_lr,
                                          scale=recipe.finetune_scale)
        probability = recipe.finetune_scene_probability
        phases.append((('scene',) if two_networks else (), fine_tuning, (probability, ALL_CLASSES)))
        if two_networks:
            phases.append((('plain',), fine_tuning, (probability, recipe.plain_scene_classes)))
    return phases


def pick_device(requested='auto'):
    """The torch.device for --device: auto is CUDA where present, else the CPU (MPS only when asked)."""
    mps = getattr(torch.backends, 'mps', None) is not None and torch.backends.mps.is_available()
    available = {'cpu': True, 'cuda': torch.cuda.is_available(), 'mps': mps}
    requested = ('cuda' if available['cuda'] else 'cpu') if requested == 'auto' else requested
    if not available[requested]:
        raise SystemExit(f'error: --device {requested}: this PyTorch sees no such device (try --device auto)')
    return torch.device(requested)


def cpu_has_bf16_units(cpuinfo='/proc/cpuinfo'):
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX); elsewhere bf16 is emulated, slowly."""
    try:
        with open(cpuinfo) as handle:
            return any(line.startswith('flags') and {'avx512_bf16', 'amx_bf16'} & set(line.split()) for line in handle)
    except OSError:
        return False


def choose_precision(requested, device):
    """The autocast dtype of training's forward pass (None: float32) for --precision, printed. auto: bf16 on CUDA
    from Ampere on (fp16 with loss scaling before: there bf16 is emulated and cuDNN has no bf16 convolutions) and on
    a CPU with bf16 units (emulated bf16 is slower than fp32), else fp32. ``tools/bench.py`` times both."""
    if requested == 'fp32' or device.type == 'mps':
        dtype, why = None, device.type
    elif device.type == 'cuda':     # not is_bf16_supported(): it says yes wherever bf16 can be emulated (a T4)
        dtype, why = torch.bfloat16 if torch.cuda.get_device_capability(device)[0] >= 8 else torch.float16, 'cuda'
    else:
        units = cpu_has_bf16_units()
        dtype, why = torch.bfloat16 if units else None, f'a CPU {"with" if units else "without"} bf16 units'
    print(f'precision: {str(dtype).replace("torch.", "") if dtype else "fp32"} ({requested} asked, {why})')
    return dtype


class WeightAverage:
    """Exponential moving average of a model's parameters and buffers, evaluated and saved. Its decay after t
    updates, min(decay, (1 + t) / (warmup + t)), lets it follow the model closely while the weights move fast."""

    def __init__(self, model, decay, warmup):
        self.model = copy.deepcopy(model).eval()
        self.decay, self.warmup, self.updates = decay, warmup, 0

    @torch.no_grad()
    def update(self, model):
        decay = min(self.decay, (1 + self.updates) / (self.warmup + self.updates))
        self.updates += 1
        for average, current in zip(self.model.state_dict().values(), model.state_dict().values()):
            if average.dtype.is_floating_point:
                average.lerp_(current, 1.0 - decay)
            else:
                average.copy_(current)


@dataclasses.dataclass
class Training:
    """What a training run updates step by step."""
    model: nn.Module
    average: WeightAverage
    optimizer: torch.optim.Optimizer
    scheduler: 'torch.optim.lr_scheduler.OneCycleLR'   # names in quotes are not looked up at import time:
    last_loss: torch.Tensor         # (N,) each training image's loss when last trained on (inf: never)
    device: torch.device
    autocast_dtype: torch.dtype = None      # the forward pass's dtype under autocast; None: float32
    scaler: 'torch.amp.GradScaler' = None   # loss scaling for fp16 (a disabled one passes all through)


def start_training(model, recipe, images_in_training, device, autocast_dtype=None):
    """A Training for ``model`` (moved to device) under ``recipe``: optimiser, one-cycle schedule, average."""
    model = model.to(device).to(memory_format=torch.channels_last)
    weights = [parameter for parameter in model.parameters() if parameter.dim() > 1]
    biases_and_norms = [parameter for parameter in model.parameters() if parameter.dim() == 1]
    optimizer = torch.optim.SGD([{'params': weights, 'weight_decay': recipe.weight_decay},
                                 {'params': biases_and_norms, 'weight_decay': 0.0}],
                                lr=recipe.lr, momentum=recipe.momentum, nesterov=True)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=recipe.lr, total_steps=total_steps(recipe, images_in_training),
        pct_start=recipe.warmup_fraction, div_factor=recipe.lr_start_divisor, final_div_factor=recipe.lr_end_divisor)
    fp16 = autocast_dtype == torch.float16          # torch.amp's loss scaler from PyTorch 2.3, torch.cuda.amp's before
    scaler = (torch.amp.GradScaler(device.type, enabled=fp16) if hasattr(torch.amp, 'GradScaler')
              else torch.cuda.amp.GradScaler(enabled=fp16 and device.type == 'cuda'))
    return Training(model, WeightAverage(model, recipe.ema_decay, recipe.ema_warmup), optimizer, scheduler,
                    torch.full((images_in_training,), float('inf'), device=device), device, autocast_dtype, scaler)


def total_steps(recipe, images_in_training):
    return recipe.epochs * math.ceil(images_in_training / recipe.batch_size)


def train_step(training, x, y, recipe):
    """One SGD step on the batch x (B, 1, 28, 28), y (B,); returns each image's loss (B,) on the training device."""
    x = x.to(training.device).contiguous(memory_format=torch.channels_last)
    dtype = training.autocast_dtype
    with torch.autocast(training.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        log_probabilities = training.model(x)
    # the networks return log-probabilities, which cross_entropy's log-softmax leaves as they are
    per_image = F.cross_entropy(log_probabilities.float(), y.to(training.device),
                                label_smoothing=recipe.label_smoothing, reduction='none')
    training.optimizer.zero_grad(set_to_none=True)
    training.scaler.scale(per_image.mean()).backward()      # a disabled scaler (all but fp16) passes all through
    training.scaler.step(training.optimizer)
    training.scaler.update()
    training.scheduler.step()
    training.average.update(training.model)
    return per_image.detach()


def pick_pass(last_loss, easy_kept, generator):
    """The training images of one pass, shuffled: indices into the training set. last_loss (N,) holds each image's
    loss when last trained on (inf: never); a pass takes every image whose loss is at least the median and a
    random ``easy_kept`` fraction of the rest (1: every image)."""
    hard = last_loss >= last_loss.median()
    kept = hard | (torch.rand(len(last_loss), generator=generator, device=generator.device).to(hard.device)
                   < easy_kept)
    chosen = kept.nonzero().squeeze(1)
    return chosen[torch.randperm(len(chosen), generator=generator, device=generator.device).to(chosen.device)]


def train_one_pass(training, images, labels, order, recipe, generator, scenes=None):
    """Trains on images[order] in batches with fresh augmentation (scenes: see ``augment``), writing each image's
    loss into training.last_loss[order]; returns (mean loss, steps taken)."""
    training.model.train()
    total_loss = 0.0        # the loss stays on the device until the end: no wait for the GPU each step
    for start in range(0, len(order), recipe.batch_size):
        batch = order[start:start + recipe.batch_size]
        x = augment(images[batch], generator, recipe, labels[batch], scenes) if recipe.augment else images[batch]
        per_image = train_step(training, x, labels[batch], recipe)
        training.last_loss[batch] = per_image
        total_loss += per_image.sum().double()
    return float(total_loss) / len(order), math.ceil(len(order) / recipe.batch_size)


def accuracy(model, images, labels, tta=True, adapt=True):
    """Percentage of correctly classified images (float tensors (N,1,28,28) in [0,1]), handed to classify at once."""
    return 100.0 * (classify(model, images, tta=tta, adapt=adapt) == labels).double().mean().item()


def train(args):
    """Trains args.model under args.recipe, phase after phase (see ``training_phases``), each fine-tuning from the
    best weights so far (random or --init ones at first), in passes (see ``pick_pass``). After each pass it scores
    the weight average (in the parts the phase trains) on the checks of ``validation_sets`` and saves it to args.out
    whenever its score is the phase's best: the mean of the clean and shifted validation accuracy (the clean one
    without recipe.checkpoint_shifted). So the file ends with the last phase's best, whose score it returns."""
    device = pick_device(args.device)
    torch.manual_seed(args.seed)
    model = load_weights(MODELS[args.model](), args.init) if args.init else MODELS[args.model]()
    model = model.to(device).to(memory_format=torch.channels_last)
    (train_x, train_y), checks = validation_sets(args)
    # on a GPU the training images, their augmentation and its random numbers live there too: augmenting a
    # batch on the CPU takes longer than a GPU's training step (EXPERIMENTS, session 21)
    data_device = device if device.type == 'cuda' else torch.device('cpu')
    train_x, train_y = train_x.to(data_device), train_y.to(data_device)
    generator = torch.Generator(device=data_device).manual_seed(args.seed)
    print(f'{args.model} on {device}, {torch.get_num_threads()} threads: {len(train_y)} training, '
          f'{len(checks["val"][1])} validation images' + (f', starting from {args.init}' if args.init else ''))
    autocast_dtype = choose_precision(args.precision, device)
    phases = training_phases(args.recipe, model)
    steps_per_epoch = math.ceil(len(train_y) / args.recipe.batch_size)
    steps_wanted = sum(total_steps(recipe, len(train_y)) for _, recipe, _ in phases)
    history = {'epoch': [], 'loss': [], 'val': [], 'shifted': [], 'fine_tunings': []}   # per pass; (epoch, parts)
    steps_done, best_score, best_state, saved, started = 0, -1.0, None, None, time.time()
    try:
        for parts, recipe, scenes in phases:
            if scenes is not None:                  # a fine-tuning, from the best weights so far
                print(f'fine-tuning{" of " + " and ".join(parts) if parts else ""}: {recipe.epochs} epochs, '
                      f'peak lr {recipe.lr:g}, scenes (probability, classes) {scenes}')
                if best_state is not None:
                    model.load_state_dict(best_state)
                best_score = -1.0                   # each phase keeps its own best pass
                history['fine_tunings'].append((steps_done / steps_per_epoch, ' and '.join(parts)))
            network = getattr(model, parts[0]) if parts else model
            training = start_training(network, recipe, len(train_y), device, autocast_dtype)
            phase_end = steps_done + total_steps(recipe, len(train_y))
            while steps_done < phase_end:
                pass_start = time.time()
                order = pick_pass(training.last_loss, recipe.easy_kept, generator)
                order = order[:(phase_end - steps_done) * recipe.batch_size]
                loss, steps = train_one_pass(training, train_x, train_y, order, recipe, generator, scenes)
                steps_done += steps
                evaluated = copy.deepcopy(model) if parts else training.average.model
                for name in parts:          # what the phase saves: the model with these parts the weight average
                    setattr(evaluated, name, training.average.model)
                scores = {name: accuracy(evaluated, *found, tta=False, adapt=False) for name, found in checks.items()}
                for key, value in {'epoch': steps_done / steps_per_epoch, 'loss': loss, **scores}.items():
                    history[key].append(value)
                score = (scores['val'] + scores['shifted']) / 2 if recipe.checkpoint_shifted else scores['val']
                improved = score > best_score
                if improved:
                    best_score, best_state = score, copy.deepcopy(evaluated.state_dict())
                    save_atomically(best_state, args.out)
                    saved = f'the weights after pass {len(history["loss"])} (validation score {score:.2f}%)'
                eta = (time.time() - started) / steps_done * (steps_wanted - steps_done)
                print(f'pass {len(history["loss"]):3d}  epoch {history["epoch"][-1]:5.2f}/'
                      f'{steps_wanted / steps_per_epoch:g}  {len(order):5d} images  loss {loss:.4f}  val '
                      f'{scores["val"]:6.2f}%  shifted {scores["shifted"]:6.2f}%  {"best" if improved else "    "}  '
                      f'{time.time() - pass_start:5.1f}s  eta {eta / 60:4.1f} min', flush=True)
    except KeyboardInterrupt:
        print('interrupted' + ('' if saved else f': nothing saved yet, {args.out} is as it was'))
    if saved:
        print(f'saved {args.out}: {saved}, {(time.time() - started) / 60:.1f} min')
    if args.history:
        save_atomically(history, args.history, lambda value, file: file.write(json.dumps(value).encode()))
        print(f'wrote {args.history} (`python tools/plot_training.py` draws it)')
    return best_score


def load_weights(model, path):
    """model with the state_dict at path loaded as the grader loads model.pt; another file ends with one line."""
    try:
        model.load_state_dict(torch.load(path, map_location='cpu', weights_only=True))
    except Exception as error:      # no file, no state_dict (the unpickler raises many kinds), another network's
        raise SystemExit(f'error: --init {path}: no weights of {type(model).__name__} '
                         f'({type(error).__name__})') from None
    return model


def save_atomically(value, path, write=torch.save):
    """write(value, file) into a temporary file beside path, then renamed to path: never half a file."""
    tmp_path = f'{path}.tmp{os.getpid()}'
    try:
        with open(tmp_path, 'wb') as file:
            write(value, file)
        os.replace(tmp_path, path)
    finally:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)


# ----------------------------------------------------------------------------- main

class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (the full usage is long: every Recipe setting is a flag)."""

    def error(self, message):
        self.exit(2, f'{self.prog}: error: {message} (see --help)\n')


def add_recipe_flags(parser):
    """A flag for every field of Recipe, its default and help taken from there."""
    group = parser.add_argument_group('training recipe (see Recipe)')
    for field in dataclasses.fields(Recipe):
        flag, default, help_text = '--' + field.name.replace('_', '-'), field.default, field.metadata['help']
        if isinstance(default, bool):
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_text)
        elif field.name.endswith('classes'):
            group.add_argument(flag, type=int, nargs='+', choices=range(10), default=default, metavar='CLASS',
                               help=help_text)
        elif isinstance(default, tuple):
            group.add_argument(flag, type=float, nargs=2, default=default, metavar=('LOW', 'HIGH'), help=help_text)
        else:
            group.add_argument(flag, type=type(default), default=default, help=help_text)


def parse_args(argv=None):
    """The command line; args.recipe holds the training recipe (a Recipe). Bad values exit with one line."""
    parser = OneLineParser(description=__doc__.split('\n')[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--model', choices=sorted(MODELS), default='MyNet', help='the network to train')
    parser.add_argument('--seed', type=int, default=1, help='seed of the weights, the passes and the augmentation')
    parser.add_argument('--data', default='data', help='folder holding FashionMNIST/raw')
    parser.add_argument('--out', default='model.pt', help='where the trained state_dict goes')
    parser.add_argument('--init', default=None, metavar='MODEL_PT', help='start from these weights instead of '
                        'random ones (MyNet: the main schedule from its plain network); --epochs 0: fine-tune them')
    parser.add_argument('--device', choices=('auto', 'cpu', 'cuda', 'mps'), default='auto', help='auto: CUDA, else CPU')
    parser.add_argument('--precision', choices=('auto', 'fp32', 'bf16'), default='auto', help='forward pass of '
                        'training in float32 or bf16 autocast; auto: bf16 on CUDA and on CPUs with bf16 units')
    parser.add_argument('--dry-run', action='store_true', help='2 epochs (1 of fine-tuning) on 512 images, to try it')
    parser.add_argument('--history', default='training_history.json', metavar='JSON',
                        help='per-pass losses and validation scores (tools/plot_training.py draws them; "": none)')
    add_recipe_flags(parser)
    args = parser.parse_args(argv)
    for flag, value, least in (('--epochs', args.epochs, 0 if args.init else 1), ('--batch-size', args.batch_size, 1),
                               ('--finetune-epochs', args.finetune_epochs, 0)):
        if value < least:
            parser.error(f'{flag} must be at least {least}, got {value}'
                         + (' (0 with --init: the fine-tunings alone)' if flag == '--epochs' else ''))
    if args.epochs == args.finetune_epochs == 0:
        parser.error('--epochs 0 and --finetune-epochs 0: nothing to train')
    for flag, value in (('--lr', args.lr), ('--finetune-lr', args.finetune_lr)):
        if not value > 0:
            parser.error(f'{flag} must be positive, got {value:g}')
    values = {field.name: getattr(args, field.name) for field in dataclasses.fields(Recipe)}
    recipe = Recipe(**{name: tuple(value) if isinstance(value, list) else value for name, value in values.items()})
    dry_run = {'epochs': min(recipe.epochs, 2), 'finetune_epochs': min(recipe.finetune_epochs, 1)}
    args.recipe = dataclasses.replace(recipe, **dry_run) if args.dry_run else recipe
    return args


def main(argv=None):
    train(parse_args(argv))


if __name__ == '__main__':
    main()
