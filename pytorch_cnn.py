"""Fashion-MNIST classifiers in PyTorch: FCNet, SimpleCNN and the graded MyNet.

The grader imports this file, builds ``MyNet()``, loads ``model.pt`` on the CPU
and calls ``classify(model, x)`` with ``x`` a float tensor (B, 1, 28, 28) in [0, 1].
Its test images are real-world photos of the same ten classes, with brightness,
contrast and other shifts, so ``MyNet`` is built to ignore global brightness,
contrast and polarity, and is trained with augmentation that imitates photos.

    python pytorch_cnn.py                      # train MyNet, write model.pt
    python pytorch_cnn.py --model SimpleCNN    # the lab's other two networks
    python pytorch_cnn.py --evaluate model.pt  # test accuracy, shift suite, report figure

Nothing runs at import time, and nothing is downloaded: ``make data`` puts the
data set in ``data/FashionMNIST/raw/``.
"""
import argparse
import copy
import math
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

CLASS_NAMES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat',
               'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot')
VAL_SPLIT_SEED = 0          # the validation split is the same for every --seed
SHIFTED_VAL_IMAGES = 250    # validation images per shift in the per-pass check


# ----------------------------------------------------------------------------- networks

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
        x = F.relu(self.conv(x))
        return F.log_softmax(self.fc(torch.flatten(x, 1)), dim=1)


def standardize_polarity(x, border=2):
    """Per-image standardisation with the background made dark.

    x: (B, 1, H, W) float. Returns z with zero mean and unit standard deviation
    per image, sign-flipped where the ``border``-pixel frame is brighter than the
    image mean (a light background). The result is the same for ``a * x + b``
    for every a != 0: brightness, contrast and inversion cannot move it.
    """
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    std = x.std(dim=(1, 2, 3), keepdim=True, unbiased=False).clamp_min(1e-6)
    z = (x - mean) / std
    frame_sum = z.sum(dim=(1, 2, 3)) - z[..., border:-border, border:-border].sum(dim=(1, 2, 3))
    background_is_light = frame_sum > 0      # the mean of z is 0, so compare with 0
    sign = 1.0 - 2.0 * background_is_light.to(z.dtype)
    return z * sign.view(-1, 1, 1, 1)


def conv_bn_relu(in_channels, out_channels):
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class MyNet(nn.Module):
    """A VGG-style CNN behind a brightness/contrast/polarity-invariant input stage.

    28x28: conv 32 -> pool -> 14x14: conv 64, conv 64 -> pool -> 7x7: conv 192, conv 192
    -> pool to 3x3 -> linear 1728 -> 256 -> ReLU -> linear 256 -> 10.
    944,234 parameters and 33M multiply-adds per image.
    """

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            conv_bn_relu(1, 32), nn.MaxPool2d(2),
            conv_bn_relu(32, 64), conv_bn_relu(64, 64), nn.MaxPool2d(2),
            conv_bn_relu(64, 192), conv_bn_relu(192, 192), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Linear(192 * 3 * 3, 256), nn.ReLU(inplace=True), nn.Linear(256, 10),
        )
        # oneDNN's channels-last convolutions are about 1.7x faster on a CPU; load_state_dict
        # copies into these tensors, so a loaded model.pt keeps the layout.
        self.to(memory_format=torch.channels_last)

    def forward(self, x):
        """x: (B, 1, 28, 28) float, any brightness scale -> log-probabilities (B, 10)."""
        x = standardize_polarity(x)
        x = torch.flatten(self.features(x), 1)
        return F.log_softmax(self.classifier(x), dim=1)


MODELS = {'FCNet': FCNet, 'SimpleCNN': SimpleCNN, 'MyNet': MyNet}


def get_model_class(_=None):
    """The grader's getter: the class it builds with no arguments."""
    return [MyNet]


def as_image_batch(x):
    """Any of (B,1,28,28), (B,28,28), (28,28); uint8 or float; tensor or array -> float (B,1,28,28)."""
    x = torch.as_tensor(x)
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    x = x.float()
    while x.dim() < 4:
        x = x.unsqueeze(-3) if x.dim() == 3 else x.unsqueeze(0)
    return x


def shift_image(x, rows, columns):
    """x (B, C, H, W) moved down by ``rows`` and right by ``columns`` (each -1, 0 or 1), edge pixels repeated."""
    h, w = x.shape[-2:]
    padded = F.pad(x, (1, 1, 1, 1), mode='replicate')
    return padded[..., 1 - rows:1 - rows + h, 1 - columns:1 - columns + w]


def tta_view(x, mirrored, rows, columns):
    """One test-time view of images x (B, 1, H, W): maybe mirrored, then shifted (see ``shift_image``)."""
    x = shift_image(x.flip(-1) if mirrored else x, rows, columns)
    return x.contiguous(memory_format=torch.channels_last)


# classify's views (mirrored, rows, columns) in the order it adds them: the image, its mirror image,
# then the one-pixel shifts of both, as the training augmentation shows them
VIEW_STAGES = (((False, 0, 0),), ((True, 0, 0),),
               tuple((mirrored, rows, columns) for mirrored in (False, True)
                     for rows, columns in ((0, 1), (0, -1), (1, 0), (-1, 0))))
SURE = 0.75     # an image gets its next views while its winning class has less mean probability


def classify(model, x, batch_size=256, tta=True):
    """Predicted labels (B,) int64 for images x (see ``as_image_batch`` for accepted forms).

    Runs in eval mode without gradients on the model's device, then restores the
    mode the model was in. A prediction is the mean class probability over the
    views seen; with ``tta`` (test-time augmentation) the images whose winning
    class gets less than SURE see the next stage of VIEW_STAGES, up to ten views.
    On the validation split this matches ten views for every image, at the cost of
    about two. Float input in 0..255 works too: ``MyNet`` ignores scale.
    """
    device = next(model.parameters()).device
    images = as_image_batch(x)
    was_training = model.training
    model.eval()
    summed = torch.zeros(len(images), 10)
    unsure, views_seen = torch.arange(len(images)), 0
    with torch.no_grad():
        for stage in VIEW_STAGES if tta else VIEW_STAGES[:1]:
            for start in range(0, len(unsure), batch_size):
                chosen = unsure[start:start + batch_size]
                batch = images[chosen].to(device)
                summed[chosen] += sum(model(tta_view(batch, *how)).exp() for how in stage).cpu()
            views_seen += len(stage)
            unsure = unsure[summed[unsure].max(dim=1).values < SURE * views_seen]
    model.train(was_training)
    return summed.argmax(dim=1)


# ----------------------------------------------------------------------------- augmentation

def _uniform(n, low, high, generator):
    return low + (high - low) * torch.rand(n, generator=generator)


def _chosen(n, p, generator):
    return torch.rand(n, generator=generator) < p


def random_shift_flip(x, generator, max_pixels=1):
    """Whole-pixel translation by up to ``max_pixels`` and a horizontal flip, each per image.

    Exact: pixels are moved, never interpolated, so the images stay as sharp as the
    test images (bilinear resampling blurs them). x: (B, 1, H, W) -> same shape, zero fill.
    """
    n, _, h, w = x.shape
    flip = _chosen(n, 0.5, generator)
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
    padded = F.pad(x, (max_pixels,) * 4)
    top = torch.randint(0, 2 * max_pixels + 1, (n, 1, 1), generator=generator)
    left = torch.randint(0, 2 * max_pixels + 1, (n, 1, 1), generator=generator)
    rows = top + torch.arange(h).view(1, h, 1)
    cols = left + torch.arange(w).view(1, 1, w)
    return padded[torch.arange(n).view(-1, 1, 1), 0, rows, cols].unsqueeze(1)


def rotate_scale(x, angle, zoom):
    """Rotate each image x[i] (B, 1, H, W) by angle[i] radians and scale it by zoom[i] about its centre."""
    cos, sin, zero = torch.cos(angle) / zoom, torch.sin(angle) / zoom, torch.zeros_like(angle)
    theta = torch.stack([torch.stack([cos, -sin, zero], dim=1),
                         torch.stack([sin, cos, zero], dim=1)], dim=1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode='bilinear', padding_mode='zeros', align_corners=False)


def random_rotate_scale(x, generator, max_degrees=8.0, scale=(0.92, 1.08)):
    """Rotation and scaling about the centre per image (bilinear resampling)."""
    n = x.shape[0]
    angle = _uniform(n, -max_degrees, max_degrees, generator) * math.pi / 180
    return rotate_scale(x, angle, _uniform(n, *scale, generator))


ROTATE_PROBABILITY = 0.3    # the rest of the images keep their pixels exactly


def random_geometry(x, generator):
    """Every image shifted and maybe flipped; a ROTATE_PROBABILITY fraction also rotated and scaled."""
    x = random_shift_flip(x, generator)
    rotated = _chosen(x.shape[0], ROTATE_PROBABILITY, generator)
    return torch.where(rotated.view(-1, 1, 1, 1), random_rotate_scale(x, generator), x)


def random_erasing(x, generator, p=0.2, area=(0.02, 0.2), log_ratio=(-1.2, 1.2)):
    """Fill a random rectangle of each chosen image with one random grey level."""
    n, _, h, w = x.shape
    target_area = _uniform(n, *area, generator) * h * w
    ratio = torch.exp(_uniform(n, *log_ratio, generator))
    eh = (target_area * ratio).sqrt().clamp(1, h)
    ew = (target_area / ratio).sqrt().clamp(1, w)
    top = torch.rand(n, generator=generator) * (h - eh)
    left = torch.rand(n, generator=generator) * (w - ew)
    rows = torch.arange(h).view(1, h, 1)
    cols = torch.arange(w).view(1, 1, w)
    inside = ((rows >= top.view(-1, 1, 1)) & (rows < (top + eh).view(-1, 1, 1))
              & (cols >= left.view(-1, 1, 1)) & (cols < (left + ew).view(-1, 1, 1)))
    inside &= _chosen(n, p, generator).view(-1, 1, 1)
    fill = torch.rand(n, 1, 1, generator=generator).expand(n, h, w)
    return torch.where(inside.unsqueeze(1), fill.unsqueeze(1), x)


def gaussian_blur(x, sigma):
    """Blur each image x[i] (B, 1, H, W) with its own sigma[i] (B,), 5x5 kernel."""
    offsets = torch.arange(-2, 3, dtype=x.dtype)
    weights = torch.exp(-offsets.view(1, -1) ** 2 / (2 * sigma.view(-1, 1) ** 2))
    weights = weights / weights.sum(dim=1, keepdim=True)
    kernels = (weights.unsqueeze(2) * weights.unsqueeze(1)).unsqueeze(1)      # (B, 1, 5, 5)
    padded = F.pad(x.transpose(0, 1), (2, 2, 2, 2), mode='replicate')         # (1, B, H+4, W+4)
    return F.conv2d(padded, kernels, groups=x.shape[0]).transpose(0, 1)


PHOTOMETRIC_PROBABILITIES = {'blur': 0.05, 'gamma': 0.15, 'gain': 0.15, 'ramp': 0.05, 'invert': 0.025,
                             'noise': 0.05, 'salt_pepper': 0.025}


def photometric_shift(x, generator, p=PHOTOMETRIC_PROBABILITIES):
    """Photo-like corruptions; each one hits a random fraction p[name] of the batch. x in [0, 1]."""
    n = x.shape[0]
    ones = torch.ones(n)

    def per_image(values, chosen, neutral):
        return torch.where(chosen, values, neutral * ones).view(-1, 1, 1, 1)

    sigma = _uniform(n, 0.4, 1.3, generator)
    blurred = _chosen(n, p['blur'], generator)
    if blurred.any():
        x = torch.where(blurred.view(-1, 1, 1, 1), gaussian_blur(x, sigma), x)

    gamma = per_image(torch.exp(_uniform(n, math.log(0.4), math.log(2.5), generator)),
                      _chosen(n, p['gamma'], generator), 1.0)
    x = x.clamp_min(0) ** gamma

    gain = per_image(torch.exp(_uniform(n, math.log(0.25), math.log(2.0), generator)),
                     _chosen(n, p['gain'], generator), 1.0)
    mid_grey = _uniform(n, 0.2, 0.8, generator).view(-1, 1, 1, 1)          # where 0.5 goes
    x = torch.where(gain != 1.0, (x - 0.5) * gain + mid_grey, x)

    ramp_chosen = _chosen(n, p['ramp'], generator).view(-1, 1, 1, 1)
    h, w = x.shape[-2:]
    ys = torch.linspace(-0.5, 0.5, h).view(1, 1, h, 1)
    xs = torch.linspace(-0.5, 0.5, w).view(1, 1, 1, w)
    slope_y = _uniform(n, -0.6, 0.6, generator).view(-1, 1, 1, 1)
    slope_x = _uniform(n, -0.6, 0.6, generator).view(-1, 1, 1, 1)
    x = x + ramp_chosen * (slope_y * ys + slope_x * xs)

    x = torch.where(_chosen(n, p['invert'], generator).view(-1, 1, 1, 1), 1.0 - x, x)

    noise_std = per_image(_uniform(n, 0.01, 0.12, generator), _chosen(n, p['noise'], generator), 0.0)
    x = x + noise_std * torch.randn(x.shape, generator=generator)
    x = x.clamp(0, 1)

    salt_pepper = per_image(_uniform(n, 0.0, 0.04, generator), _chosen(n, p['salt_pepper'], generator), 0.0)
    hit = torch.rand(x.shape, generator=generator) < salt_pepper
    salt = (torch.rand(x.shape, generator=generator) < 0.5).to(x.dtype)
    return torch.where(hit, salt, x)


def augment(x, generator, photometric=1.0):
    """The training augmentation: geometry, random erasing, then photo-like shifts. x: (B,1,28,28) in [0,1].

    ``photometric`` scales every probability in PHOTOMETRIC_PROBABILITIES (0 turns them off).
    """
    x = random_geometry(x, generator)
    x = random_erasing(x, generator)
    p = {name: min(1.0, photometric * probability) for name, probability in PHOTOMETRIC_PROBABILITIES.items()}
    return photometric_shift(x, generator, p)


# ----------------------------------------------------------------------------- shift suite

def _rotate(x, degrees):
    n = x.shape[0]
    return rotate_scale(x, torch.full((n,), math.radians(degrees)), torch.ones(n))


def _with_noise(x, std, seed):
    generator = torch.Generator().manual_seed(seed)
    return (x + std * torch.randn(x.shape, generator=generator)).clamp(0, 1)


SHIFTS = {
    'clean': lambda x: x,
    'brighter +0.4': lambda x: (x + 0.4).clamp(0, 1),
    'low contrast x0.3': lambda x: 0.35 + 0.3 * x,
    'gamma 0.5': lambda x: x ** 0.5,
    'gamma 2.0': lambda x: x ** 2.0,
    'inverted': lambda x: 1.0 - x,
    'noise 0.1': lambda x: _with_noise(x, 0.1, seed=1),
    'blur 1.0': lambda x: gaussian_blur(x, torch.full((x.shape[0],), 1.0)),
    'rotated 10': lambda x: _rotate(x, 10.0),
}
PHOTOMETRIC_SHIFTS = ('brighter +0.4', 'low contrast x0.3', 'gamma 0.5', 'gamma 2.0', 'inverted')


def accuracy(model, images, labels, tta=True):
    """Percentage of correctly classified images (float tensors (N,1,28,28) in [0,1])."""
    return 100.0 * (classify(model, images, tta=tta) == labels).double().mean().item()


def shift_suite(model, images, labels):
    """{shift name: accuracy in %} over every shift in SHIFTS, 'clean' included."""
    return {name: accuracy(model, shift(images), labels) for name, shift in SHIFTS.items()}


# ----------------------------------------------------------------------------- data

def load_fashion_mnist(root, train):
    """Images (N, 1, 28, 28) float in [0, 1] and labels (N,) int64 from <root>/FashionMNIST/raw."""
    from torchvision.datasets import FashionMNIST
    try:
        dataset = FashionMNIST(root, train=train, download=False)
    except RuntimeError as error:
        raise SystemExit(f'Fashion-MNIST not found under {root}/FashionMNIST/raw ({error}).\n'
                         'Run `make data` (or `python tools/fetch_data.py --help`).')
    return dataset.data.unsqueeze(1).float() / 255.0, dataset.targets.long()


def split_train_val(images, labels, val_size):
    """A fixed random split (seeded by VAL_SPLIT_SEED): (train_x, train_y), (val_x, val_y)."""
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(VAL_SPLIT_SEED))
    val, train = order[:val_size], order[val_size:]
    return (images[train], labels[train]), (images[val], labels[val])


def shifted_validation_set(images, labels):
    """The first SHIFTED_VAL_IMAGES validation images under every non-clean shift, concatenated."""
    images, labels = images[:SHIFTED_VAL_IMAGES], labels[:SHIFTED_VAL_IMAGES]
    shifted = [shift(images) for name, shift in SHIFTS.items() if name != 'clean']
    return torch.cat(shifted), labels.repeat(len(shifted))


# ----------------------------------------------------------------------------- training

def pick_device():
    if torch.cuda.is_available():
        return torch.device('cuda')
    if getattr(torch.backends, 'mps', None) is not None and torch.backends.mps.is_available():
        return torch.device('mps')
    return torch.device('cpu')


class WeightAverage:
    """Exponential moving average of a model's parameters and buffers (used for evaluation).

    The decay warms up as min(decay, (1 + t) / (10 + t)) after t updates, so the
    average follows the model closely while its weights still move fast.
    """

    def __init__(self, model, decay):
        self.model = copy.deepcopy(model).eval()
        self.decay = decay
        self.updates = 0

    @torch.no_grad()
    def update(self, model):
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        self.updates += 1
        for average, current in zip(self.model.state_dict().values(), model.state_dict().values()):
            if average.dtype.is_floating_point:
                average.lerp_(current, 1.0 - decay)
            else:
                average.copy_(current)


def save_atomically(state_dict, path):
    tmp_path = f'{path}.tmp{os.getpid()}'
    torch.save(state_dict, tmp_path)
    os.replace(tmp_path, path)


def pick_pass(last_loss, easy_kept, generator):
    """The training images of one pass, shuffled: indices into the training set.

    last_loss (N,) holds each image's loss when it was last trained on (inf: never). A pass
    takes every image whose loss is at least the median (the harder half, and every image
    not yet trained on) and a random ``easy_kept`` fraction of the rest (1: every image).
    """
    hard = last_loss >= last_loss.median()
    kept = hard | (torch.rand(len(last_loss), generator=generator) < easy_kept)
    chosen = kept.nonzero().squeeze(1)
    return chosen[torch.randperm(len(chosen), generator=generator)]


def train_one_pass(model, average, optimizer, scheduler, images, labels, order, last_loss, args, device,
                   generator):
    """Trains on images[order] in batches with fresh augmentation; returns (mean loss, steps taken).

    Writes each image's loss (on its augmented view, label-smoothed) into last_loss[order].
    """
    model.train()
    total_loss, steps = 0.0, 0
    for start in range(0, len(order), args.batch_size):
        batch = order[start:start + args.batch_size]
        x, y = images[batch], labels[batch]
        if args.augment:
            x = augment(x, generator, args.photometric)
        x = x.to(device).contiguous(memory_format=torch.channels_last)
        # the networks return log-probabilities, which cross_entropy's log-softmax leaves as they are
        per_image = F.cross_entropy(model(x), y.to(device), label_smoothing=args.label_smoothing,
                                    reduction='none')
        loss = per_image.mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        average.update(model)
        last_loss[batch] = per_image.detach().cpu()
        total_loss += loss.item() * len(batch)
        steps += 1
    return total_loss / len(order), steps


def build_optimizer(model, args, total_steps):
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        (no_decay if parameter.dim() == 1 else decay).append(parameter)
    optimizer = torch.optim.SGD([{'params': decay, 'weight_decay': args.weight_decay},
                                 {'params': no_decay, 'weight_decay': 0.0}],
                                lr=args.lr, momentum=0.9, nesterov=True)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.lr, total_steps=total_steps,
        pct_start=0.15, div_factor=10.0, final_div_factor=200.0)
    return optimizer, scheduler


def train(args):
    """Trains for args.epochs epochs' worth of steps (epochs x ceil(N / batch size)), in passes
    that after the first skip most of the easier half of the images (see ``pick_pass``)."""
    device = pick_device()
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    images, labels = load_fashion_mnist(args.data, train=True)
    (train_x, train_y), (val_x, val_y) = split_train_val(images, labels, args.val_size)
    if args.dry_run:
        train_x, train_y, val_x, val_y = train_x[:512], train_y[:512], val_x[:512], val_y[:512]
    shifted_x, shifted_y = shifted_validation_set(val_x, val_y)
    print(f'{args.model} on {device}, {torch.get_num_threads()} threads: '
          f'{len(train_y)} training, {len(val_y)} validation images')

    model = MODELS[args.model]().to(device).to(memory_format=torch.channels_last)
    average = WeightAverage(model, args.ema_decay)
    steps_per_epoch = math.ceil(len(train_y) / args.batch_size)
    total_steps = args.epochs * steps_per_epoch
    optimizer, scheduler = build_optimizer(model, args, total_steps)
    last_loss = torch.full((len(train_y),), float('inf'))
    history = {'epoch': [], 'loss': [], 'val': [], 'shifted': []}
    best_score, steps_done, started = -1.0, 0, time.time()
    try:
        while steps_done < total_steps:
            pass_start = time.time()
            order = pick_pass(last_loss, args.easy_kept, generator)
            order = order[:(total_steps - steps_done) * args.batch_size]
            loss, steps = train_one_pass(model, average, optimizer, scheduler, train_x, train_y, order,
                                         last_loss, args, device, generator)
            steps_done += steps
            val_accuracy = accuracy(average.model, val_x, val_y, tta=False)
            shifted_accuracy = accuracy(average.model, shifted_x, shifted_y, tta=False)
            epochs_done = steps_done / steps_per_epoch
            for key, value in zip(history, (epochs_done, loss, val_accuracy, shifted_accuracy)):
                history[key].append(value)
            score = (val_accuracy + shifted_accuracy) / 2
            improved = score > best_score
            if improved:
                best_score = score
                save_atomically(average.model.state_dict(), args.out)
            seconds = time.time() - pass_start
            eta = (time.time() - started) / steps_done * (total_steps - steps_done)
            print(f'pass {len(history["loss"]):3d}  epoch {epochs_done:5.2f}/{args.epochs}  '
                  f'{len(order):5d} images  loss {loss:.4f}  val {val_accuracy:6.2f}%  '
                  f'shifted {shifted_accuracy:6.2f}%  {"best" if improved else "    "}  '
                  f'{seconds:5.1f}s  eta {eta / 60:4.1f} min', flush=True)
    except KeyboardInterrupt:
        print('interrupted: the best model so far is already saved')
    print(f'saved {args.out} (best validation score {best_score:.2f}%, '
          f'{(time.time() - started) / 60:.1f} min)')
    if history['loss'] and not args.dry_run:
        plot_training(history, args.plot)
        print(f'wrote {args.plot}')


# ----------------------------------------------------------------------------- evaluation and figures

def load_model(path, model_class=MyNet):
    """Exactly as the grader does: build with no arguments, load the state_dict on the CPU."""
    model = model_class()
    model.load_state_dict(torch.load(path, map_location='cpu', weights_only=True))
    return model


def confusion_matrix(predicted, labels, classes=10):
    """(classes, classes) counts: rows are true labels, columns predictions."""
    return torch.bincount(labels * classes + predicted, minlength=classes * classes).view(classes, classes)


def evaluate(args):
    model = load_model(args.evaluate, MODELS[args.model])
    test_x, test_y = load_fashion_mnist(args.data, train=False)
    started = time.time()
    predicted = classify(model, test_x)
    seconds = time.time() - started
    test_accuracy = 100.0 * (predicted == test_y).double().mean().item()
    print(f'{args.evaluate}: test accuracy {test_accuracy:.2f}% '
          f'({len(test_y)} images classified in {seconds:.1f}s)')
    suite = shift_suite(model, test_x, test_y)
    for name, value in suite.items():
        print(f'  {name:18s} {value:6.2f}%')
    shifted = [value for name, value in suite.items() if name != 'clean']
    print(f'  {"mean of shifts":18s} {sum(shifted) / len(shifted):6.2f}%')
    plot_report(confusion_matrix(predicted, test_y), suite, test_accuracy, args.report)
    print(f'wrote {args.report}')
    return test_accuracy, suite


def plot_training(history, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    epochs = history['epoch']
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(10, 4))
    loss_axis.plot(epochs, history['loss'], label="training loss of each pass's images (augmented)")
    loss_axis.set(xlabel='epochs of training steps', ylabel='loss', title='Training loss')
    loss_axis.legend()
    accuracy_axis.plot(epochs, history['val'], label='validation, clean')
    accuracy_axis.plot(epochs, history['shifted'], label='validation, shift suite')
    accuracy_axis.set(xlabel='epochs of training steps', ylabel='accuracy [%]',
                      title='Validation accuracy of the EMA weights (single view)')
    accuracy_axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_report(confusion, suite, test_accuracy, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    figure, (matrix_axis, shift_axis) = plt.subplots(1, 2, figsize=(14, 6))
    matrix_axis.imshow(confusion, cmap='Blues')
    for (row, col), count in zip(((r, c) for r in range(10) for c in range(10)), confusion.flatten()):
        matrix_axis.text(col, row, int(count), ha='center', va='center', fontsize=7,
                         color='white' if count > confusion.max() / 2 else 'black')
    matrix_axis.set_xticks(range(10), CLASS_NAMES, rotation=45, ha='right')
    matrix_axis.set_yticks(range(10), CLASS_NAMES)
    matrix_axis.set(xlabel='predicted', ylabel='true',
                    title=f'Fashion-MNIST test set: {test_accuracy:.2f}% correct')
    names = list(suite)
    shift_axis.barh(names, [suite[name] for name in names], color='tab:blue')
    for position, name in enumerate(names):
        shift_axis.text(suite[name] - 1, position, f'{suite[name]:.1f}%', ha='right', va='center',
                        color='white', fontsize=9)
    shift_axis.invert_yaxis()
    shift_axis.set(xlim=(0, 100), xlabel='accuracy [%]', title='Test set under each shift')
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', choices=sorted(MODELS), default='MyNet')
    parser.add_argument('--epochs', type=int, default=22,
                        help='training length in epochs of steps (epochs x ceil(N / batch size) steps)')
    parser.add_argument('--easy-kept', type=float, default=0.3, metavar='FRACTION',
                        help='fraction of the easier half of the images each pass trains on (1: all)')
    parser.add_argument('--lr', type=float, default=0.05, help='peak learning rate (one-cycle)')
    parser.add_argument('--batch-size', type=int, default=128)
    parser.add_argument('--weight-decay', type=float, default=5e-4)
    parser.add_argument('--label-smoothing', type=float, default=0.1)
    parser.add_argument('--ema-decay', type=float, default=0.999)
    parser.add_argument('--no-augment', dest='augment', action='store_false')
    parser.add_argument('--photometric', type=float, default=1.0, metavar='FACTOR',
                        help='scales the probability of every photo-like shift in training')
    parser.add_argument('--seed', type=int, default=1)
    parser.add_argument('--val-size', type=int, default=5000)
    parser.add_argument('--data', default='data', help='folder holding FashionMNIST/raw')
    parser.add_argument('--out', default='model.pt')
    parser.add_argument('--threads', type=int, default=None, help='CPU threads (default: all)')
    parser.add_argument('--dry-run', action='store_true', help='a few steps on a small subset')
    parser.add_argument('--evaluate', nargs='?', const='model.pt', default=None, metavar='MODEL_PT',
                        help='skip training: test accuracy, shift suite and report of MODEL_PT')
    parser.add_argument('--plot', default='pytorch_cnn_training.png', help='training curves figure')
    parser.add_argument('--report', default='pytorch_cnn_report.png', help='--evaluate figure')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.dry_run:
        args.epochs = min(args.epochs, 2)
    if args.evaluate:
        evaluate(args)
    else:
        train(args)


if __name__ == '__main__':
    main()
