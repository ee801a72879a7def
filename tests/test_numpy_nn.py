"""numpy_nn.py: the lab's examples, gradients against calculus and PyTorch, and a training smoke run."""
import warnings

import numpy as np
import pytest
import torch

import numpy_nn
from numpy_nn import SE, Linear, ReLU, Sigmoid


def relative_error(a, b):
    return np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b)))


def numeric_gradient(f, x, h=1e-6):
    """Central differences of the scalar f() w.r.t. every entry of the array x (changed in place)."""
    gradient = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        original = x[index]
        x[index] = original + h
        plus = f()
        x[index] = original - h
        minus = f()
        x[index] = original
        gradient[index] = (plus - minus) / (2 * h)
    return gradient


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# ----------------------------------------------------------------------------- the lab's contract

def test_the_lab_examples_print_what_the_lab_prints(lab_examples):
    results = lab_examples['run_examples'](Linear, ReLU, Sigmoid, SE)
    assert lab_examples['mismatches'](results) == []


def test_getters_return_the_classes():
    assert numpy_nn.get_linear_class() == [Linear]
    assert numpy_nn.get_relu_class(None) == [ReLU]
    assert numpy_nn.get_sigmoid_class(1, 2) == [Sigmoid]
    assert numpy_nn.get_se_loss_class() == [SE]


def test_linear_shapes_and_initialisation(rng):
    np.random.seed(0)
    layer = Linear(5, 3)
    assert layer.W.shape == (5, 3) and layer.b.shape == (1, 3)
    assert 0.001 < layer.W.std() < 0.05          # randn / 100
    x = rng.normal(size=(4, 5))
    assert layer.forward(x).shape == (4, 3)
    assert layer.backward(rng.normal(size=(4, 3))).shape == (4, 5)
    assert layer.dL_wrt_W.shape == (4, 5, 3) and layer.dL_wrt_b.shape == (4, 1, 3)
    assert set(layer.params()) == set(layer.grads()) == {'W', 'b'}
    assert ReLU().params() == {} and ReLU().grads() == {} and Sigmoid().grads() == {}


def test_linear_per_sample_gradients_are_each_samples_own(rng):
    layer = Linear(4, 3)
    x, upstream = rng.normal(size=(6, 4)), rng.normal(size=(6, 3))
    layer.forward(x)
    layer.backward(upstream)
    for sample in range(6):
        np.testing.assert_allclose(layer.dL_wrt_W[sample], np.outer(x[sample], upstream[sample]))
        np.testing.assert_allclose(layer.dL_wrt_b[sample], upstream[sample:sample + 1])
    np.testing.assert_allclose(layer.dL_wrt_W.sum(axis=0), x.T @ upstream)


def test_params_are_the_live_arrays(rng):
    layer = Linear(3, 2)
    layer.params()['W'] -= 1.0
    layer.params()['b'][...] = 7.0
    x = rng.normal(size=(2, 3))
    np.testing.assert_allclose(layer.forward(x), x @ layer.W + 7.0)
    assert layer.params()['W'] is layer.W


@pytest.mark.parametrize('shape', [(7,), (3, 4), (2, 3, 4), (2, 3, 4, 5)])
@pytest.mark.parametrize('layer_class', [ReLU, Sigmoid])
def test_activations_work_on_any_shape(layer_class, shape, rng):
    layer = layer_class()
    x = rng.normal(size=shape)
    assert layer.forward(x).shape == shape
    upstream = rng.normal(size=shape)
    assert layer.backward(upstream).shape == shape
    expected = np.maximum(x, 0) if layer_class is ReLU else 1 / (1 + np.exp(-x))
    np.testing.assert_allclose(layer.forward(x), expected)


def test_relu_gradient_at_zero_is_zero():
    relu = ReLU()
    relu.forward(np.array([-1.0, 0.0, 1.0]))
    np.testing.assert_array_equal(relu.backward(np.ones(3)), [0.0, 0.0, 1.0])


def test_sigmoid_is_stable_at_extremes():
    sigmoid = Sigmoid()
    with warnings.catch_warnings():
        warnings.simplefilter('error')            # an overflow warning fails the test
        y = sigmoid.forward(np.array([-1000.0, -40.0, 0.0, 40.0, 1000.0]))
        g = sigmoid.backward(np.ones(5))
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(g))
    np.testing.assert_allclose(y, [0.0, 4.248354255291589e-18, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(g[[0, 4]], [0.0, 0.0])


def test_se_loss_and_gradient(rng):
    x, y = rng.normal(size=(5, 1)), rng.normal(size=(5, 1))
    se = SE()
    np.testing.assert_allclose(se.forward(x, y), (x - y) ** 2)
    np.testing.assert_allclose(se.backward(), 2 * (x - y))


# ----------------------------------------------------------------------------- gradients

def stack(rng):
    """Linear -> ReLU -> Linear -> Sigmoid with unit-scale weights (gradients far above rounding noise)."""
    model = [Linear(6, 5), ReLU(), Linear(5, 1), Sigmoid()]
    for layer in (model[0], model[2]):
        layer.W = rng.normal(size=layer.W.shape) / np.sqrt(layer.W.shape[0])
        layer.b = rng.normal(size=layer.b.shape) * 0.1
    return model, rng.normal(size=(4, 6)), rng.integers(0, 2, (4, 1)).astype(float)


def total_loss(model, x, y):
    return SE().forward(numpy_nn.forward(model, x), y).sum()


@pytest.mark.parametrize('layer_class', [ReLU, Sigmoid])
def test_activation_input_gradient_matches_finite_differences(layer_class, rng):
    x = rng.normal(size=(3, 4)) + 0.05               # away from ReLU's kink
    weights = rng.normal(size=(3, 4))
    layer = layer_class()
    layer.forward(x)
    analytic = layer.backward(weights)
    numeric = numeric_gradient(lambda: (layer_class().forward(x) * weights).sum(), x)
    assert relative_error(analytic, numeric) < 1e-6


def test_linear_gradients_match_finite_differences(rng):
    layer = Linear(4, 3)
    x, weights = rng.normal(size=(5, 4)), rng.normal(size=(5, 3))
    layer.forward(x)
    dx = layer.backward(weights)
    loss = lambda: (layer.forward(x) * weights).sum()
    assert relative_error(dx, numeric_gradient(loss, x)) < 1e-6
    assert relative_error(layer.dL_wrt_W.sum(axis=0), numeric_gradient(loss, layer.W)) < 1e-6
    assert relative_error(layer.dL_wrt_b.sum(axis=0), numeric_gradient(loss, layer.b)) < 1e-6


def test_stack_gradients_match_finite_differences(rng):
    model, x, y = stack(rng)
    se = SE()
    se.forward(numpy_nn.forward(model, x), y)
    numpy_nn.backward(model, se.backward())
    for layer in model:
        for name, value in layer.params().items():
            analytic = layer.grads()[name].sum(axis=0)          # per-sample gradients add up
            numeric = numeric_gradient(lambda: total_loss(model, x, y), value)
            assert relative_error(analytic, numeric) < 1e-6, (type(layer).__name__, name)


def test_stack_gradients_match_torch_autograd(rng):
    model, x, y = stack(rng)
    se = SE()
    se.forward(numpy_nn.forward(model, x), y)
    numpy_nn.backward(model, se.backward())
    linear_1, linear_2 = model[0], model[2]
    parameters = [(linear_1, 'W'), (linear_1, 'b'), (linear_2, 'W'), (linear_2, 'b')]
    tensors = [torch.tensor(layer.params()[name], requires_grad=True) for layer, name in parameters]
    W1, b1, W2, b2 = tensors
    per_sample = []
    for sample in range(len(x)):
        out = torch.sigmoid(torch.relu(torch.tensor(x[sample:sample + 1]) @ W1 + b1) @ W2 + b2)
        loss = ((out - torch.tensor(y[sample:sample + 1])) ** 2).sum()
        per_sample.append(torch.autograd.grad(loss, tensors))
    for position, (layer, name) in enumerate(parameters):
        expected = np.stack([grads[position].numpy() for grads in per_sample])
        np.testing.assert_allclose(layer.grads()[name], expected, rtol=1e-10, atol=1e-12)


def test_sigmoid_and_relu_match_torch_autograd(rng):
    x = rng.normal(size=(2, 3, 4))
    upstream = rng.normal(size=x.shape)
    for layer, function in ((ReLU(), torch.relu), (Sigmoid(), torch.sigmoid)):
        tensor = torch.tensor(x, requires_grad=True)
        (function(tensor) * torch.tensor(upstream)).sum().backward()
        layer.forward(x)
        np.testing.assert_allclose(layer.backward(upstream), tensor.grad.numpy(), rtol=1e-12)


# ----------------------------------------------------------------------------- training

def test_restore_writes_the_saved_values_back_into_the_live_arrays(rng):
    model, _, _ = stack(rng)
    saved = numpy_nn.snapshot(model)
    live = model[0].params()['W']
    for layer in model:
        for value in layer.params().values():
            value += 1.0
    numpy_nn.restore(model, saved)
    assert model[0].params()['W'] is live
    for layer, layer_saved in zip(model, saved):
        for name, value in layer.params().items():
            np.testing.assert_array_equal(value, layer_saved[name])


def test_load_data_keeps_two_digits_standardised(mnist_path):
    (x_train, y_train), (x_test, y_test) = numpy_nn.load_data(mnist_path, 4, 9)
    with np.load(mnist_path) as data:
        assert len(x_train) == np.isin(data['y_train'], (4, 9)).sum()
        assert len(x_test) == np.isin(data['y_test'], (4, 9)).sum()
    assert x_train.shape[1] == 784 and y_train.shape == (len(x_train), 1)
    assert set(np.unique(y_test)) == {0.0, 1.0}
    assert abs(x_train.mean()) < 1e-9 and abs(x_train.std() - 1) < 1e-9


def test_training_smoke_run_learns_and_restores_the_best_epoch(mnist_path, capsys):
    (x_train, y_train), (x_test, y_test) = numpy_nn.load_data(mnist_path, 4, 9)
    rng = np.random.default_rng(0)
    np.random.seed(0)
    subset = rng.permutation(len(x_train))[:600]
    train_set, val_set = numpy_nn.split_validation(x_train[subset], y_train[subset], 0.25, rng)
    args = numpy_nn.parse_args(['--epochs', '4', '--hidden', '32', '--log-every', '1', '--no-show'])
    model, loss = numpy_nn.build_model(784, args.hidden), SE()
    history = numpy_nn.train(model, loss, train_set, val_set, args, rng)
    best_epoch = int(np.argmin(history['val_loss']))
    val_loss, val_error = numpy_nn.evaluate(model, loss, *val_set)
    assert val_loss == pytest.approx(history['val_loss'][best_epoch])      # the best epoch is restored
    # 450 digits, 4 epochs: 5-6% validation and 5-8% test error on seeds 0-3 (chance is 50%)
    assert val_error < 0.10
    assert numpy_nn.evaluate(model, loss, x_test, y_test)[1] < 0.10
    assert f'restored the parameters of epoch {best_epoch + 1}' in capsys.readouterr().out


def test_main_writes_both_figures(mnist_path, tmp_path):
    error = numpy_nn.main(['--data', mnist_path, '--classes', '0', '1', '--epochs', '1', '--hidden', '16',
                           '--no-show', '--out-dir', str(tmp_path)])
    assert error < 0.01                 # one epoch tells 0 from 1: 0.14-0.19% test error on seeds 1-3
    for name in ('numpy_nn_training.png', 'numpy_nn_classification.png'):
        assert (tmp_path / name).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_random_shifts_translate_each_image_within_bounds(rng):
    image = np.zeros((28, 28))
    image[10:14, 12:15] = 1.0
    x = np.repeat(image.reshape(1, 784), 50, axis=0)
    shifted = numpy_nn.random_shifts(x, 1, rng).reshape(50, 28, 28)
    assert shifted.shape == (50, 28, 28)
    np.testing.assert_allclose(shifted.sum(axis=(1, 2)), image.sum())       # the blob moved whole
    rows, cols = np.nonzero(shifted.max(axis=0))
    assert rows.min() == 9 and rows.max() == 14 and cols.min() == 11 and cols.max() == 15
    assert len({s.tobytes() for s in shifted}) > 5                           # different per image
    assert numpy_nn.random_shifts(x, 0, rng) is x


@pytest.mark.parametrize('argv, message', [
    (['--classes', '4', '12'], '--classes must be two different digits 0-9, got 4 12'),
    (['--classes', '4', '4'], '--classes must be two different digits 0-9, got 4 4'),
    (['--classes', '-1', '3'], '--classes must be two different digits 0-9, got -1 3'),
    (['--epochs', '0'], '--epochs must be positive, got 0'),
    (['--batch-size', '0'], '--batch-size must be positive, got 0'),
    (['--lr', '0'], '--lr must be positive, got 0'),
])
def test_bad_flags_end_with_one_line_before_any_training(capsys, argv, message):
    with pytest.raises(SystemExit) as stopped:
        numpy_nn.parse_args(argv)
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert error.count('\n') == 1 and message in error


def test_a_damaged_mnist_file_ends_with_one_line(tmp_path):
    (tmp_path / 'full-mnist.npz').write_bytes(b'not an npz')
    with pytest.raises(SystemExit) as stopped:
        numpy_nn.main(['--data', str(tmp_path / 'full-mnist.npz'), '--no-show', '--out-dir', str(tmp_path)])
    assert 'no readable MNIST npz' in stopped.value.code and '\n' not in stopped.value.code
