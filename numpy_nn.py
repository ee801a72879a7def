"""A small neural network in pure NumPy, trained to tell two MNIST digits apart.

Layers follow one interface: ``forward(x)`` remembers what ``backward`` needs,
``backward(dL_wrt_output)`` returns the gradient with respect to the layer's
input, and ``params()`` / ``grads()`` expose the trainable arrays and their
per-sample gradients.

    python numpy_nn.py                    # 4 vs 9, saves the two figures
    python numpy_nn.py --classes 0 1 --epochs 10

The data file ``full-mnist.npz`` comes from ``make data`` (``data/full-mnist.npz``).
"""
import argparse
import os
import time

import numpy as np


class Layer:
    """One differentiable block of a network."""

    def forward(self, x):
        """Compute the output for input x (batch first) and remember what backward needs."""
        raise NotImplementedError

    def backward(self, dL_wrt_output):
        """Gradient of the loss w.r.t. this layer's input, given the one w.r.t. its output."""
        raise NotImplementedError

    def params(self):
        """{name: live parameter array}; training updates these arrays in place."""
        return {}

    def grads(self):
        """{name: per-sample gradient of the loss w.r.t. that parameter}, from the last backward."""
        return {}


class Loss:
    """A loss: forward(x, y) gives the per-element loss, backward() its gradient w.r.t. x."""

    def forward(self, x, y):
        raise NotImplementedError

    def backward(self):
        raise NotImplementedError


class Linear(Layer):
    """Fully connected layer f(x) = x W + b, applied to each row of a batch."""

    def __init__(self, input_dimension, output_dimension):
        self.W = np.random.randn(input_dimension, output_dimension) / 100  # (in, out)
        self.b = np.random.randn(1, output_dimension) / 100                # (1, out)
        self.x = None
        self.dL_wrt_W = None
        self.dL_wrt_b = None

    def forward(self, x):
        """x: (batch, in) -> (batch, out)."""
        self.x = x
        return x @ self.W + self.b

    def backward(self, dL_wrt_output):
        """dL_wrt_output: (batch, out) -> dL_wrt_x: (batch, in).

        Stores the per-sample gradients dL_wrt_W (batch, in, out) and dL_wrt_b (batch, 1, out).
        """
        self.dL_wrt_W = self.x[:, :, np.newaxis] * dL_wrt_output[:, np.newaxis, :]
        self.dL_wrt_b = dL_wrt_output[:, np.newaxis, :].copy()
        return dL_wrt_output @ self.W.T

    def params(self):
        return {'W': self.W, 'b': self.b}

    def grads(self):
        return {'W': self.dL_wrt_W, 'b': self.dL_wrt_b}


class ReLU(Layer):
    """max(0, x) elementwise, for inputs of any shape; the gradient at exactly 0 is 0."""

    def __init__(self):
        self.positive = None

    def forward(self, x):
        """x: any shape -> same shape."""
        self.positive = x > 0
        return np.where(self.positive, x, 0.0)

    def backward(self, dL_wrt_output):
        """dL_wrt_output: shape of x -> dL_wrt_x: shape of x."""
        return np.where(self.positive, dL_wrt_output, 0.0)


class Sigmoid(Layer):
    """1 / (1 + exp(-x)) elementwise, for inputs of any shape; never overflows."""

    def __init__(self):
        self.output = None

    def forward(self, x):
        """x: any shape -> same shape, in (0, 1) (exactly 0 or 1 only in float rounding)."""
        decay = np.exp(-np.abs(x))                  # in (0, 1]: no overflow for any x
        self.output = np.where(x >= 0, 1.0 / (1.0 + decay), decay / (1.0 + decay))
        return self.output

    def backward(self, dL_wrt_output):
        """dL_wrt_output: shape of x -> dL_wrt_x: shape of x."""
        return dL_wrt_output * self.output * (1.0 - self.output)


class SE(Loss):
    """Squared error (x - y)**2 elementwise."""

    def __init__(self):
        self.difference = None

    def forward(self, x, y):
        """x, y: same shape -> elementwise loss, same shape."""
        self.difference = x - y
        return self.difference ** 2

    def backward(self):
        """Gradient of the elementwise loss w.r.t. x: 2 (x - y)."""
        return 2.0 * self.difference


def get_linear_class(*_):
    return [Linear]


def get_relu_class(*_):
    return [ReLU]


def get_sigmoid_class(*_):
    return [Sigmoid]


def get_se_loss_class(*_):
    return [SE]


# ----------------------------------------------------------------------------- data

def load_data(path, class_a, class_b):
    """Images of digits class_a (label 0) and class_b (label 1) from an MNIST npz.

    Returns (x_train, y_train), (x_test, y_test): x float64 (N, 784) standardised
    with the training images' mean and standard deviation, y float64 (N, 1) in {0, 1}.
    """
    with np.load(path) as data:
        splits = [(data['x_train'], data['y_train']), (data['x_test'], data['y_test'])]
    pairs = []
    for images, labels in splits:
        keep = (labels == class_a) | (labels == class_b)
        x = images[keep].reshape(-1, 28 * 28).astype(np.float64) / 255.0
        y = (labels[keep] == class_b).astype(np.float64).reshape(-1, 1)
        pairs.append((x, y))
    mean, std = pairs[0][0].mean(), pairs[0][0].std()
    return [((x - mean) / std, y) for x, y in pairs]


def split_validation(x, y, fraction, rng):
    """Shuffle and split off ``fraction`` of the rows: (x_train, y_train), (x_val, y_val)."""
    order = rng.permutation(len(x))
    n_val = int(round(fraction * len(x)))
    val, train = order[:n_val], order[n_val:]
    return (x[train], y[train]), (x[val], y[val])


def random_shifts(x, max_shift, rng):
    """Translate each flattened 28x28 image of x (N, 784) by up to max_shift pixels along each axis.

    The border pixel values fill what moves in (MNIST borders are background).
    """
    if max_shift == 0:
        return x
    n = len(x)
    padded = np.pad(x.reshape(n, 28, 28), ((0, 0), (max_shift, max_shift), (max_shift, max_shift)), mode='edge')
    dy, dx = rng.integers(0, 2 * max_shift + 1, size=(2, n))
    rows = (dy[:, None] + np.arange(28))[:, :, None]
    cols = (dx[:, None] + np.arange(28))[:, None, :]
    return padded[np.arange(n)[:, None, None], rows, cols].reshape(n, 28 * 28)


# ----------------------------------------------------------------------------- training

def build_model(input_dimension, hidden):
    """Linear -> ReLU -> ... -> Linear -> Sigmoid with the given hidden widths."""
    widths = [input_dimension, *hidden]
    layers = []
    for width_in, width_out in zip(widths[:-1], widths[1:]):
        layers += [Linear(width_in, width_out), ReLU()]
    return layers + [Linear(widths[-1], 1), Sigmoid()]


def forward(model, x):
    for layer in model:
        x = layer.forward(x)
    return x


def backward(model, dL_wrt_output):
    for layer in reversed(model):
        dL_wrt_output = layer.backward(dL_wrt_output)


def snapshot(model):
    """Copies of every layer's parameters."""
    return [{name: value.copy() for name, value in layer.params().items()} for layer in model]


def restore(model, saved):
    """Write the arrays of snapshot() back into the layers' own (live) parameter arrays."""
    for layer, layer_saved in zip(model, saved):
        for name, value in layer.params().items():
            value[...] = layer_saved[name]


def evaluate(model, loss, x, y):
    """(mean loss, error rate) of the model on x (N, 784), y (N, 1)."""
    output = forward(model, x)
    return loss.forward(output, y).mean(), np.mean((output > 0.5) != (y > 0.5))


def train_epoch(model, loss, x, y, velocities, lr, args, rng):
    """One pass of SGD with momentum over shuffled mini-batches; returns the mean training loss."""
    order = rng.permutation(len(x))
    total = 0.0
    for start in range(0, len(x), args.batch_size):
        batch = order[start:start + args.batch_size]
        output = forward(model, random_shifts(x[batch], args.shift_pixels, rng))
        total += loss.forward(output, y[batch]).sum()
        backward(model, loss.backward())        # per-sample gradients of per-sample losses
        for layer, layer_velocity in zip(model, velocities):
            gradients = layer.grads()
            for name, value in layer.params().items():
                step = layer_velocity[name]
                step *= args.momentum
                step -= lr * gradients[name].mean(axis=0)
                value += step
    return total / len(x)


def train(model, loss, train_set, val_set, args, rng):
    """Train for args.epochs (cosine learning-rate decay), restore the parameters with the lowest validation loss; history dict."""
    velocities = [{name: np.zeros_like(value) for name, value in layer.params().items()} for layer in model]
    history = {'train_loss': [], 'val_loss': [], 'val_error': []}
    best_loss, best_params, best_epoch = np.inf, snapshot(model), 0
    started = time.time()
    for epoch in range(1, args.epochs + 1):
        lr = args.lr * 0.5 * (1 + np.cos(np.pi * (epoch - 1) / args.epochs))    # cosine annealing
        train_loss = train_epoch(model, loss, *train_set, velocities, lr, args, rng)
        val_loss, val_error = evaluate(model, loss, *val_set)
        for key, value in zip(history, (train_loss, val_loss, val_error)):
            history[key].append(value)
        if val_loss < best_loss:
            best_loss, best_params, best_epoch = val_loss, snapshot(model), epoch
        if epoch % args.log_every == 0 or epoch == args.epochs:
            print(f'epoch {epoch:3d}/{args.epochs}  train loss {train_loss:.5f}  val loss {val_loss:.5f}  '
                  f'val error {100 * val_error:5.2f}%  {time.time() - started:5.1f}s', flush=True)
    restore(model, best_params)
    print(f'restored the parameters of epoch {best_epoch} (validation loss {best_loss:.5f})')
    return history


# ----------------------------------------------------------------------------- figures

def montage(images, columns=None):
    """Tile images (N, 28, 28) into one 2-D array, row by row; empty cells are blank."""
    n = len(images)
    columns = columns or max(1, int(np.ceil(np.sqrt(n))))
    rows = max(1, int(np.ceil(n / columns)))
    height, width = images.shape[1:] if n else (28, 28)
    canvas = np.full((rows * height, columns * width), np.nan)
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        canvas[row * height:(row + 1) * height, column * width:(column + 1) * width] = image
    return canvas


def plot_training(history, path, show):
    import matplotlib.pyplot as plt
    epochs = np.arange(1, len(history['train_loss']) + 1)
    figure, axis = plt.subplots(figsize=(7, 4.5))
    axis.plot(epochs, history['train_loss'], label='training loss')
    axis.plot(epochs, history['val_loss'], label='validation loss')
    axis.set(xlabel='epoch', ylabel='mean squared error', yscale='log', title='NumPy network: training')
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    if show:
        plt.show()
    plt.close(figure)


def plot_classification(x, y, predicted, class_names, path, show, per_class=100):
    """Test images grouped by predicted class; misclassified ones are shown first, in red."""
    import matplotlib.pyplot as plt
    images = x.reshape(-1, 28, 28)
    wrong = predicted != y
    error = 100 * wrong.mean()
    figure, axes = plt.subplots(1, 2, figsize=(12, 6.5))
    for label, axis in enumerate(axes):
        in_class = np.flatnonzero(predicted == label)
        shown = np.concatenate([in_class[wrong[in_class]], in_class[~wrong[in_class]]])[:per_class]
        tiles = images[shown]
        axis.imshow(montage(tiles), cmap='gray')
        marked = np.zeros((len(shown), 28, 28))
        marked[wrong[shown]] = 1.0
        axis.imshow(np.ma.masked_where(montage(marked) != 1.0, montage(marked)), cmap='autumn', alpha=0.45)
        axis.set_title(f'classified as {class_names[label]} ({len(in_class)} images, '
                       f'{wrong[in_class].sum()} wrong, in red)')
        axis.axis('off')
    figure.suptitle(f'NumPy network on the MNIST test set: {class_names[0]} vs {class_names[1]}, '
                    f'test error {error:.2f}%')
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    if show:
        plt.show()
    plt.close(figure)


# ----------------------------------------------------------------------------- main

def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--data', default=os.path.join('data', 'full-mnist.npz'), help='the MNIST .npz (make data)')
    parser.add_argument('--classes', type=int, nargs=2, default=(4, 9), metavar=('A', 'B'),
                        help='the two digits to tell apart (A is 0, B is 1)')
    parser.add_argument('--epochs', type=int, default=20, help='passes over the training digits')
    parser.add_argument('--lr', type=float, default=0.05, help='initial learning rate (cosine decay)')
    parser.add_argument('--momentum', type=float, default=0.9, help='SGD momentum')
    parser.add_argument('--batch-size', type=int, default=32,
                        help='32 keeps the per-sample gradients (batch x 784 x 128) small enough to reuse memory')
    parser.add_argument('--hidden', type=int, nargs='*', default=[128, 64], help='hidden layer widths')
    parser.add_argument('--shift-pixels', type=int, default=1,
                        help='augmentation: random translation of training images by up to this many pixels')
    parser.add_argument('--seed', type=int, default=1, help='seed of the weights, the split and the batches')
    parser.add_argument('--val-fraction', type=float, default=0.1,
                        help='training digits held out to pick the best epoch')
    parser.add_argument('--log-every', type=int, default=5, help='epochs between progress lines')
    parser.add_argument('--no-show', dest='show', action='store_false', default=None,
                        help='only save the figures (None: show them when there is a display)')
    parser.add_argument('--out-dir', default='.', help='where the two figures go')
    args = parser.parse_args(argv)
    problems = [f'--classes must be two different digits 0-9, got {args.classes[0]} {args.classes[1]}'
                for a, b in [args.classes] if a == b or not (0 <= a <= 9 and 0 <= b <= 9)]
    problems += [f'{flag} must be positive, got {value:g}' for flag, value in
                 (('--epochs', args.epochs), ('--lr', args.lr), ('--batch-size', args.batch_size)) if not value > 0]
    if not 0 < args.val_fraction < 1:
        problems.append(f'--val-fraction must lie between 0 and 1, got {args.val_fraction:g}')
    if problems:
        parser.exit(2, f'{parser.prog}: error: {problems[0]}\n')
    if args.show is None:
        args.show = bool(os.environ.get('DISPLAY') or os.environ.get('WAYLAND_DISPLAY'))
    return args


def main(argv=None):
    args = parse_args(argv)
    if not args.show:
        import matplotlib
        matplotlib.use('Agg')
    if not os.path.exists(args.data):
        raise SystemExit(f'error: {args.data} not found: run `make data` (or pass --data PATH)')
    rng = np.random.default_rng(args.seed)
    np.random.seed(args.seed)                       # Linear's initialisation uses the global generator
    class_a, class_b = args.classes
    try:
        (x_train, y_train), (x_test, y_test) = load_data(args.data, class_a, class_b)
    except (OSError, ValueError, KeyError, EOFError) as error:
        raise SystemExit(f'error: {args.data} is no readable MNIST npz ({type(error).__name__}); run `make data`')
    train_set, val_set = split_validation(x_train, y_train, args.val_fraction, rng)
    print(f'digits {class_a} vs {class_b}: {len(train_set[0])} training, {len(val_set[0])} validation, '
          f'{len(x_test)} test images; hidden layers {args.hidden}')

    model, loss = build_model(x_train.shape[1], args.hidden), SE()
    started = time.time()
    history = train(model, loss, train_set, val_set, args, rng)
    test_loss, test_error = evaluate(model, loss, x_test, y_test)
    print(f'test loss {test_loss:.5f}  test error {100 * test_error:.2f}%  '
          f'({time.time() - started:.1f}s training)')

    predicted = (forward(model, x_test) > 0.5).astype(np.float64)
    plot_training(history, os.path.join(args.out_dir, 'numpy_nn_training.png'), args.show)
    plot_classification(x_test, y_test.ravel(), predicted.ravel(), (str(class_a), str(class_b)),
                        os.path.join(args.out_dir, 'numpy_nn_classification.png'), args.show)
    return test_error


if __name__ == '__main__':
    main()
