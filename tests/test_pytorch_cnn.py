"""pytorch_cnn.py and model.pt: the grader's contract, robustness by design, the committed model."""
import math
import os
import subprocess
import sys
import time

import pytest
import torch

import pytorch_cnn
from pytorch_cnn import FCNet, MyNet, SimpleCNN, classify

MODEL_PT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'model.pt')


@pytest.fixture(scope='module')
def test_set(fashion_root):
    return pytorch_cnn.load_fashion_mnist(fashion_root, train=False)


@pytest.fixture(scope='module')
def committed_model():
    """model.pt loaded exactly as the grader loads it (and not put in eval mode)."""
    model = pytorch_cnn.get_model_class(None)[0]()
    model.load_state_dict(torch.load(MODEL_PT, map_location='cpu', weights_only=True))
    return model


@pytest.fixture(scope='module')
def committed_test_run(committed_model, test_set):
    """classify on the 10,000 test images, timed: (accuracy in %, seconds)."""
    images, labels = test_set
    started = time.perf_counter()
    predicted = classify(committed_model, images)
    seconds = time.perf_counter() - started
    return 100.0 * (predicted == labels).double().mean().item(), seconds


# ----------------------------------------------------------------------------- contract

@pytest.mark.parametrize('model_class', [FCNet, SimpleCNN, MyNet])
def test_networks_output_log_probabilities(model_class):
    torch.manual_seed(0)
    out = model_class().eval()(torch.rand(5, 1, 28, 28))
    assert out.shape == (5, 10)
    torch.testing.assert_close(out.exp().sum(dim=1), torch.ones(5))


def test_get_model_class_returns_mynet():
    assert pytorch_cnn.get_model_class(None) == [MyNet]
    assert pytorch_cnn.get_model_class() == [MyNet]


def test_classify_contract(committed_model, test_set):
    images = test_set[0][:37]
    labels = classify(committed_model, images)
    assert labels.shape == (37,) and labels.dtype == torch.int64
    assert labels.min() >= 0 and labels.max() <= 9
    assert classify(committed_model, images[:1]).shape == (1,)
    assert classify(committed_model, images[:1])[0] == labels[0]
    torch.testing.assert_close(classify(committed_model, images[:, 0]), labels)              # (B, 28, 28)
    as_uint8 = (images * 255).round().to(torch.uint8)
    torch.testing.assert_close(classify(committed_model, as_uint8), labels)                  # uint8
    torch.testing.assert_close(classify(committed_model, as_uint8.float()), labels)          # 0..255 float
    torch.testing.assert_close(classify(committed_model, images.double()), labels)           # float64
    torch.testing.assert_close(classify(committed_model, images.numpy()), labels)            # a NumPy array


def test_classify_uses_eval_mode_and_leaves_the_model_as_it_was(test_set):
    torch.manual_seed(0)
    model = MyNet()
    model.load_state_dict(torch.load(MODEL_PT, map_location='cpu', weights_only=True))
    model.train()
    running_mean = model.features[0][1].running_mean.clone()
    images = test_set[0][:64]
    in_batch = classify(model, images)
    alone = torch.cat([classify(model, image[None]) for image in images[:8]])
    torch.testing.assert_close(alone, in_batch[:8])           # batch statistics would differ
    assert model.training
    torch.testing.assert_close(model.features[0][1].running_mean, running_mean)
    assert all(parameter.grad is None for parameter in model.parameters())


def test_state_dict_round_trip(tmp_path):
    torch.manual_seed(0)
    model = MyNet().eval()
    path = tmp_path / 'model.pt'
    torch.save(model.state_dict(), path)
    loaded = MyNet().eval()
    loaded.load_state_dict(torch.load(path, map_location='cpu', weights_only=True))
    x = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(loaded(x), model(x))


def test_loaded_mynet_keeps_channels_last_weights(committed_model):
    # oneDNN's fastest layout on a CPU; classify takes about 1.7x as long with the default one
    convolutions = [module for module in committed_model.modules() if isinstance(module, torch.nn.Conv2d)]
    assert len(convolutions) == 5
    assert all(conv.weight.is_contiguous(memory_format=torch.channels_last) for conv in convolutions)
    assert not convolutions[-1].weight.is_contiguous()


def test_shift_image_moves_one_pixel_and_repeats_the_edge():
    x = torch.arange(12.0).view(1, 1, 3, 4)
    torch.testing.assert_close(pytorch_cnn.shift_image(x, 0, 0), x)
    down = pytorch_cnn.shift_image(x, 1, 0)
    torch.testing.assert_close(down[..., 1:, :], x[..., :-1, :])
    torch.testing.assert_close(down[..., 0, :], x[..., 0, :])
    left = pytorch_cnn.shift_image(x, 0, -1)
    torch.testing.assert_close(left[..., :-1], x[..., 1:])
    torch.testing.assert_close(left[..., -1], x[..., -1])


def test_tta_view_mirrors_then_shifts():
    x = torch.arange(12.0).view(1, 1, 3, 4)
    torch.testing.assert_close(pytorch_cnn.tta_view(x, True, 0, 0), x.flip(-1))
    torch.testing.assert_close(pytorch_cnn.tta_view(x, True, 1, 0), pytorch_cnn.shift_image(x.flip(-1), 1, 0))
    assert len({how for stage in pytorch_cnn.VIEW_STAGES for how in stage}) == 10


def test_classify_adds_views_only_while_unsure(committed_model, test_set, monkeypatch):
    images = test_set[0][:1000]
    committed_model.eval()
    with torch.no_grad():
        stages = [sum(committed_model(pytorch_cnn.tta_view(images, *how)).exp() for how in stage)
                  for stage in pytorch_cnn.VIEW_STAGES]
    one, two, ten = stages[0], stages[0] + stages[1], sum(stages)
    labels = [one.argmax(dim=1), two.argmax(dim=1), ten.argmax(dim=1)]
    assert (labels[0] != labels[2]).any()                 # else this test could not tell them apart
    sure = [one.max(dim=1).values >= pytorch_cnn.SURE, two.max(dim=1).values >= 2 * pytorch_cnn.SURE]
    assert 0.8 < sure[0].float().mean() < 0.98
    expected = torch.where(sure[0], labels[0], torch.where(sure[1], labels[1], labels[2]))
    torch.testing.assert_close(classify(committed_model, images), expected)
    torch.testing.assert_close(classify(committed_model, images, tta=False), labels[0])
    monkeypatch.setattr(pytorch_cnn, 'SURE', 1.01)
    torch.testing.assert_close(classify(committed_model, images), labels[2])


def test_classify_takes_at_most_20_seconds_for_10000_images(committed_test_run):
    assert committed_test_run[1] <= 20.0


# ----------------------------------------------------------------------------- robustness by design

@pytest.mark.parametrize('gain, offset', [(0.3, 0.5), (2.0, -0.4), (1.0, 0.3), (-1.0, 1.0), (-0.5, 0.2)])
def test_prediction_ignores_affine_intensity_changes(committed_model, test_set, gain, offset):
    images = test_set[0][:500]
    committed_model.eval()
    with torch.no_grad():
        reference = committed_model(images)
        changed = committed_model(gain * images + offset)
    torch.testing.assert_close(changed, reference, atol=2e-4, rtol=1e-4)
    torch.testing.assert_close(classify(committed_model, gain * images + offset), classify(committed_model, images))


def test_standardize_polarity_gives_dark_background_unit_statistics(test_set):
    images = test_set[0][:100]
    z = pytorch_cnn.standardize_polarity(images)
    torch.testing.assert_close(z.mean(dim=(1, 2, 3)), torch.zeros(100), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.std(dim=(1, 2, 3), unbiased=False), torch.ones(100), atol=1e-4, rtol=0)
    torch.testing.assert_close(pytorch_cnn.standardize_polarity(1 - images), z, atol=1e-4, rtol=0)
    assert (z[:, 0, 0, 0] < 0).float().mean() > 0.95           # corners are background, made dark


def test_augment_keeps_range_and_shape_and_is_seeded(test_set):
    images = test_set[0][:256]
    first = pytorch_cnn.augment(images, torch.Generator().manual_seed(3))
    again = pytorch_cnn.augment(images, torch.Generator().manual_seed(3))
    other = pytorch_cnn.augment(images, torch.Generator().manual_seed(4))
    assert first.shape == images.shape and first.dtype == torch.float32
    assert first.min() >= 0 and first.max() <= 1
    torch.testing.assert_close(first, again)
    assert (first - other).abs().mean() > 0.05
    assert (first - images).abs().mean() > 0.05


def test_shift_flip_moves_whole_pixels_without_blurring():
    images = torch.zeros(200, 1, 28, 28)
    images[:, :, 1:-1, 1:-1] = torch.rand(200, 1, 26, 26, generator=torch.Generator().manual_seed(0))
    moved = pytorch_cnn.random_shift_flip(images, torch.Generator().manual_seed(1), max_pixels=1)
    # every image is some (dy, dx) in [-1, 1]^2 shift of itself or of its mirror image
    matched = torch.zeros(200, dtype=torch.bool)
    offsets = []
    for source in (images, images.flip(-1)):
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                hit = (source.roll((dy, dx), dims=(-2, -1)) == moved).all(dim=(1, 2, 3))
                offsets.append(hit.float().mean().item())
                matched |= hit
    assert matched.all()
    assert min(offsets) > 0.02                      # all 18 (flip, dy, dx) combinations occur


def test_rotation_hits_only_a_fraction_of_the_images(test_set, monkeypatch):
    images = test_set[0][:1000]
    monkeypatch.setattr(pytorch_cnn, 'random_shift_flip', lambda x, generator: x)
    geometry = pytorch_cnn.random_geometry(images, torch.Generator().manual_seed(2))
    untouched = (geometry == images).all(dim=(1, 2, 3)).float().mean().item()
    assert abs(untouched - (1 - pytorch_cnn.ROTATE_PROBABILITY)) < 0.05


def test_gaussian_blur_preserves_constant_images_and_spreads_a_point():
    flat = torch.full((2, 1, 9, 9), 0.3)
    torch.testing.assert_close(pytorch_cnn.gaussian_blur(flat, torch.tensor([0.5, 1.5])), flat)
    point = torch.zeros(1, 1, 9, 9)
    point[0, 0, 4, 4] = 1.0
    blurred = pytorch_cnn.gaussian_blur(point, torch.tensor([1.0]))
    assert blurred.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert 0.1 < blurred[0, 0, 4, 4] < 0.2 and blurred[0, 0, 4, 5] == blurred[0, 0, 5, 4]


# ----------------------------------------------------------------------------- the committed model

def test_committed_model_size():
    assert os.path.getsize(MODEL_PT) <= 6 * 1024 * 1024
    assert sum(parameter.numel() for parameter in MyNet().parameters()) <= 1_500_000


def test_committed_model_test_accuracy(committed_test_run):
    # The committed model measures 94.92% (README); issue 4 asks for at least 94.5% of model.pt.
    assert committed_test_run[0] >= 94.5


@pytest.mark.parametrize('shift', pytorch_cnn.PHOTOMETRIC_SHIFTS)
def test_committed_model_under_photometric_shift(committed_model, test_set, shift):
    images, labels = test_set
    assert pytorch_cnn.accuracy(committed_model, pytorch_cnn.SHIFTS[shift](images), labels) >= 88.0


def test_committed_model_under_other_shifts_keeps_most_accuracy(committed_model, test_set):
    images, labels = test_set[0][:2000], test_set[1][:2000]
    for shift in ('noise 0.1', 'blur 1.0', 'rotated 10'):
        assert pytorch_cnn.accuracy(committed_model, pytorch_cnn.SHIFTS[shift](images), labels) >= 80.0, shift


# ----------------------------------------------------------------------------- training smoke run

def test_dry_run_trains_and_writes_a_loadable_model(tmp_path, fashion_root, repo):
    out = tmp_path / 'dry.pt'
    result = subprocess.run([sys.executable, 'pytorch_cnn.py', '--dry-run', '--data', fashion_root,
                             '--out', str(out)], cwd=repo, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert 'pass   1  epoch  1.00/2' in result.stdout and 'saved' in result.stdout
    model = pytorch_cnn.load_model(str(out))
    assert classify(model, torch.rand(3, 1, 28, 28)).shape == (3,)


def test_one_training_pass_on_a_subset_beats_chance_and_records_each_images_loss(fashion_root):
    torch.manual_seed(0)
    images, labels = pytorch_cnn.load_fashion_mnist(fashion_root, train=True)
    (train_x, train_y), (val_x, val_y) = pytorch_cnn.split_train_val(images[:6000], labels[:6000], 1000)
    args = pytorch_cnn.parse_args(['--model', 'SimpleCNN', '--epochs', '1', '--lr', '0.05'])
    model = SimpleCNN()
    average = pytorch_cnn.WeightAverage(model, decay=0.0)          # evaluate the raw weights
    steps_per_epoch = math.ceil(len(train_y) / args.batch_size)
    optimizer, scheduler = pytorch_cnn.build_optimizer(model, args, steps_per_epoch)
    last_loss = torch.full((len(train_y),), float('inf'))
    order = torch.randperm(len(train_y))[:len(train_y) - 1000]         # 1,000 images left out
    loss, steps = pytorch_cnn.train_one_pass(model, average, optimizer, scheduler, train_x, train_y, order,
                                             last_loss, args, torch.device('cpu'), torch.Generator().manual_seed(0))
    assert steps == math.ceil(len(order) / args.batch_size)
    assert loss < 2.2
    assert pytorch_cnn.accuracy(average.model, val_x, val_y) > 50.0
    trained = torch.zeros(len(train_y), dtype=torch.bool)
    trained[order] = True
    assert torch.isinf(last_loss[~trained]).all()
    assert last_loss[trained].isfinite().all() and (last_loss[trained] > 0).all()
    assert abs(last_loss[trained].mean().item() - loss) < 1e-4


def test_a_pass_takes_the_harder_half_and_a_fraction_of_the_easier_half():
    last_loss = torch.rand(20_000, generator=torch.Generator().manual_seed(1))
    order = pytorch_cnn.pick_pass(last_loss, 0.3, torch.Generator().manual_seed(2))
    assert len(set(order.tolist())) == len(order)                      # no image twice
    assert not torch.equal(order, order.sort().values)                # shuffled
    kept = torch.zeros(len(last_loss), dtype=torch.bool)
    kept[order] = True
    harder = last_loss >= last_loss.median()
    assert kept[harder].all()
    assert abs(kept[~harder].float().mean().item() - 0.3) < 0.02
    never_trained = torch.full((500,), float('inf'))
    assert len(pytorch_cnn.pick_pass(never_trained, 0.3, torch.Generator())) == 500
    assert len(pytorch_cnn.pick_pass(last_loss, 1.0, torch.Generator())) == len(last_loss)


def test_photometric_factor_zero_leaves_only_geometry_and_erasing(test_set):
    images = test_set[0][:64]
    generator = torch.Generator().manual_seed(5)
    geometry_only = pytorch_cnn.random_erasing(pytorch_cnn.random_geometry(images, generator), generator)
    augmented = pytorch_cnn.augment(images, torch.Generator().manual_seed(5), photometric=0.0)
    torch.testing.assert_close(augmented, geometry_only)
    shifted = pytorch_cnn.augment(images, torch.Generator().manual_seed(5), photometric=1.0)
    assert (shifted - geometry_only).abs().amax(dim=(1, 2, 3)).gt(0.01).sum() > 16


def test_weight_average_warms_up_then_decays_slowly():
    model = FCNet()
    average = pytorch_cnn.WeightAverage(model, decay=0.999)
    start = model.fc.weight.detach().clone()
    with torch.no_grad():
        model.fc.weight.add_(1.0)
    average.update(model)                                  # decay 1/10: mostly the new weights
    torch.testing.assert_close(average.model.fc.weight, start + 0.9)
    average.updates = 10_000                               # from here on the decay is capped at 0.999
    average.update(model)
    torch.testing.assert_close(average.model.fc.weight, start + 0.9 + 0.001 * 0.1)
