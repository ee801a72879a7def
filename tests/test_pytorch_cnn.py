"""pytorch_cnn.py and model.pt: the grader's contract, robustness by design, the committed model."""
import copy
import dataclasses
import json
import math
import os
import subprocess
import sys

import pytest
import torch

import measure
import pytorch_cnn
from common import percent_correct
from conftest import load_committed_model
from pytorch_cnn import FCNet, MyNet, SimpleCNN, classify

MODEL_PT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'model.pt')


@pytest.fixture(scope='module')
def test_set(fashion_root):
    return pytorch_cnn.load_fashion_mnist(fashion_root, train=False)


@pytest.fixture(scope='module')
def committed_test_accuracy(test_set):
    """classify's accuracy on the 10,000 test images, in % (its time is make bench's, never a test's)."""
    return percent_correct(classify(load_committed_model(), test_set[0]), test_set[1])


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
    assert committed_model.training                     # as the grader loads it: nobody called eval()
    images = test_set[0][:37]
    labels = classify(committed_model, images)
    assert labels.shape == (37,) and labels.dtype == torch.int64
    assert labels.min() >= 0 and labels.max() <= 9
    torch.testing.assert_close(classify(committed_model, images[:, 0]), labels)              # (B, 28, 28)
    as_uint8 = (images * 255).round().to(torch.uint8)
    torch.testing.assert_close(classify(committed_model, as_uint8), labels)                  # uint8
    torch.testing.assert_close(classify(committed_model, as_uint8.float()), labels)          # 0..255 float
    torch.testing.assert_close(classify(committed_model, images.double()), labels)           # float64
    torch.testing.assert_close(classify(committed_model, images.numpy()), labels)            # a NumPy array


@pytest.mark.parametrize('bad, message', [
    (torch.full((2, 1, 28, 28), float('nan')), 'NaN or infinite'),
    (torch.full((2, 1, 28, 28), float('inf')), 'NaN or infinite'),
    (torch.rand(2, 2, 28, 28), r'expected images of shape \(B, 1, 28, 28\)'),
    (torch.rand(2, 28, 28, 1), r'got \(2, 28, 28, 1\)'),
    (torch.rand(2, 1, 32, 32), r'expected images of shape .* got \(2, 1, 32, 32\)'),
    (torch.rand(2, 3, 28, 28), 'expected images of shape'),
    (torch.rand(1, 1, 1, 28, 28), 'expected images of shape'),
])
def test_classify_rejects_bad_input_with_a_clear_message(committed_model, bad, message):
    with pytest.raises(ValueError, match=message):
        classify(committed_model, bad)


def test_grader_shaped_input_is_passed_through_unchanged():
    images = torch.rand(4, 1, 28, 28)
    assert pytorch_cnn.as_image_batch(images) is images


def test_classify_uses_eval_mode_and_leaves_the_model_as_it_was(test_set):
    torch.manual_seed(0)
    model = MyNet()
    model.load_state_dict(torch.load(MODEL_PT, map_location='cpu', weights_only=True))
    model.train()
    batch_norm = next(module for module in model.modules() if isinstance(module, torch.nn.BatchNorm2d))
    running_mean = batch_norm.running_mean.clone()
    images = test_set[0][:64]
    in_batch = classify(model, images)
    alone = torch.cat([classify(model, image[None]) for image in images[:8]])
    torch.testing.assert_close(alone, in_batch[:8])           # batch statistics would differ
    assert model.training
    torch.testing.assert_close(batch_norm.running_mean, running_mean)
    assert all(parameter.grad is None for parameter in model.parameters())


def test_loaded_mynet_keeps_channels_last_weights(committed_model):
    # oneDNN's fastest layout on a CPU; classify is much slower with the default one
    convolutions = [module for module in committed_model.modules() if isinstance(module, torch.nn.Conv2d)]
    assert all(conv.weight.is_contiguous(memory_format=torch.channels_last) for conv in convolutions)
    assert not all(conv.weight.is_contiguous() for conv in convolutions)


def test_tta_view_moves_one_pixel_and_repeats_the_edge():
    x = torch.arange(12.0).view(1, 1, 3, 4)
    torch.testing.assert_close(pytorch_cnn.tta_view(x, False, 0, 0), x)
    down = pytorch_cnn.tta_view(x, False, 1, 0)
    torch.testing.assert_close(down[..., 1:, :], x[..., :-1, :])
    torch.testing.assert_close(down[..., 0, :], x[..., 0, :])
    left = pytorch_cnn.tta_view(x, False, 0, -1)
    torch.testing.assert_close(left[..., :-1], x[..., 1:])
    torch.testing.assert_close(left[..., -1], x[..., -1])


def test_tta_view_mirrors_then_shifts():
    x = torch.arange(12.0).view(1, 1, 3, 4)
    torch.testing.assert_close(pytorch_cnn.tta_view(x, True, 0, 0), x.flip(-1))
    shifted_mirror = pytorch_cnn.tta_view(x, True, 1, 0)
    torch.testing.assert_close(shifted_mirror[..., 1:, :], x.flip(-1)[..., :-1, :])
    views = [pytorch_cnn.tta_view(torch.rand(1, 1, 6, 6, generator=torch.Generator().manual_seed(0)), *how)
             for stage in pytorch_cnn.VIEW_STAGES for how in stage]
    assert all(not torch.equal(a, b) for i, a in enumerate(views) for b in views[:i])      # no view seen twice


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
    torch.testing.assert_close(classify(committed_model, images, adapt=False), expected)
    torch.testing.assert_close(classify(committed_model, images, tta=False, adapt=False), labels[0])
    monkeypatch.setattr(pytorch_cnn, 'SURE', 1.01)
    torch.testing.assert_close(classify(committed_model, images, adapt=False), labels[2])


# ----------------------------------------------------------------------------- the batch

def clustered_batch(per_class=40, classes=3, wrong=0.3, seed=0):
    """(probabilities, features, labels): images whose features lie close around one point per class (cosine
    above NEAR), each image's own probabilities favouring its class, except a ``wrong`` fraction's, which
    favour the next class a little."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(classes).repeat_interleave(per_class)
    centres = torch.randn(classes, 64, generator=generator)
    features = centres[labels] + 0.05 * torch.randn(len(labels), 64, generator=generator)
    favoured = torch.where(torch.rand(len(labels), generator=generator) < wrong, (labels + 1) % classes, labels)
    logits = torch.randn(len(labels), 10, generator=generator) * 0.1
    logits[torch.arange(len(labels)), labels] += 1.0
    logits[torch.arange(len(labels)), favoured] += 1.3
    return torch.softmax(logits, dim=1), features, labels


def test_adaptation_lets_an_images_near_neighbours_correct_it():
    probabilities, features, labels = clustered_batch()
    own = probabilities.argmax(dim=1)
    assert 0.6 < (own == labels).float().mean() < 0.9
    adapted = pytorch_cnn.adapt_to_batch(probabilities, features, torch.zeros(len(labels), dtype=torch.long))
    assert torch.equal(adapted.argmax(dim=1), labels)
    torch.testing.assert_close(adapted.sum(dim=1), torch.ones(len(labels)))


def test_adaptation_does_not_mix_the_two_networks_images():
    probabilities, features, labels = clustered_batch()
    networks = torch.arange(len(labels)) % 2          # neighbours only within a network: each half sees 60
    apart = pytorch_cnn.adapt_to_batch(probabilities, features, networks)
    for network in (0, 1):
        members = networks == network
        alone = pytorch_cnn.adapt_to_batch(probabilities[members], features[members], networks[members])
        torch.testing.assert_close(apart[members], alone)


def test_adaptation_is_weaker_in_small_batches_and_absent_without_near_neighbours():
    probabilities, features, labels = clustered_batch(per_class=10)
    networks = torch.zeros(len(labels), dtype=torch.long)
    small = pytorch_cnn.adapt_to_batch(probabilities, features, networks)
    strong = pytorch_cnn.laplacian_smoothing(probabilities, features, pytorch_cnn.STRENGTH)
    assert len(labels) < pytorch_cnn.FULL_STRENGTH_AT
    assert (small - probabilities).abs().sum() < (strong - probabilities).abs().sum()
    far_apart = torch.eye(len(labels), 64)             # every pair orthogonal: no neighbour is near
    torch.testing.assert_close(pytorch_cnn.adapt_to_batch(probabilities, far_apart, networks), probabilities)


def test_adaptation_grows_with_the_batchs_doubt_and_size():
    def batch(count, winning):
        probabilities = torch.full((count, 10), (1 - winning) / 9)
        probabilities[:, 0] = winning
        return probabilities

    full = pytorch_cnn.FULL_STRENGTH_AT
    assert pytorch_cnn.adaptation_strength(batch(full, pytorch_cnn.CONFIDENT + 0.01)) == 0.0    # as on Fashion-MNIST
    assert pytorch_cnn.adaptation_strength(batch(full, pytorch_cnn.UNSURE - 0.01)) == pytorch_cnn.STRENGTH
    middle = (pytorch_cnn.CONFIDENT + pytorch_cnn.UNSURE) / 2
    assert pytorch_cnn.adaptation_strength(batch(full, middle)) == pytest.approx(pytorch_cnn.STRENGTH / 2)
    assert pytorch_cnn.adaptation_strength(batch(full // 4, 0.5)) == pytest.approx(pytorch_cnn.STRENGTH / 4)


@pytest.fixture(scope='module')
def tiles_batch(test_set):
    """300 test images on tiles (the scene network's, unsure enough to adapt) and their labels from classify
    with and without adaptation."""
    images, model = pytorch_cnn.SHIFTS['on tiles'](test_set[0][:300]), load_committed_model()
    return images, classify(model, images), classify(model, images, adapt=False)


def test_one_image_alone_gets_the_answer_it_gets_without_adaptation(committed_model, tiles_batch):
    images, adapted, without = tiles_batch
    changed = (adapted != without).nonzero().squeeze(1)
    assert len(changed) > 0                            # else this test could not tell them apart
    for index in [*changed[:5].tolist(), 0, 1]:
        assert classify(committed_model, images[index:index + 1]).item() == without[index].item()


def test_permuting_a_batch_permutes_its_labels(committed_model, tiles_batch):
    images, labels, without = tiles_batch
    assert not torch.equal(labels, without)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(1))
    assert torch.equal(classify(committed_model, images[order]), labels[order])


def test_a_batch_of_ten_thousand_never_holds_a_dense_similarity_matrix(monkeypatch):
    count, blocks, topk = 10_000, [], torch.Tensor.topk
    monkeypatch.setattr(torch.Tensor, 'topk', lambda self, *args, **kwargs: blocks.append(self.shape)
                        or topk(self, *args, **kwargs))
    probabilities, features, _ = clustered_batch(per_class=count // 4, classes=4)
    adapted = pytorch_cnn.adapt_to_batch(probabilities, features, torch.zeros(count, dtype=torch.long))
    assert adapted.shape == (count, 10)
    assert sum(rows for rows, _ in blocks) == count and all(columns == count for _, columns in blocks)
    assert max(rows * columns for rows, columns in blocks) <= 1 << 22        # 16 MB of floats, not 400 MB


def test_nearest_neighbours_in_blocks_are_the_dense_ones():
    features = torch.randn(500, 16, generator=torch.Generator().manual_seed(0))
    unit = torch.nn.functional.normalize(features, dim=1)
    dense = unit @ unit.T
    dense.fill_diagonal_(-float('inf'))
    similarities, indices = pytorch_cnn.nearest_neighbours(features, 4, entries=3000)
    expected = dense.topk(4, dim=1)
    torch.testing.assert_close(similarities, expected.values)
    assert torch.equal(indices, expected.indices)


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


def test_polarity_makes_the_garment_bright_whatever_the_frame_does():
    bright_on_grey = torch.full((1, 1, 28, 28), 0.4)        # a light garment on a grey floor ...
    bright_on_grey[..., 8:20, 8:20] = 0.9
    framed = bright_on_grey.clone()                          # ... padded with a lighter corner colour
    framed[..., :2, :] = framed[..., -2:, :] = framed[..., :, :2] = framed[..., :, -2:] = 0.7
    dark_on_light = 1.2 - bright_on_grey                     # a dark garment on a light floor
    for image in (bright_on_grey, framed, dark_on_light):
        z = pytorch_cnn.standardize_polarity(image)[0, 0]
        assert z[14, 14] > z[4, 4] and z[14, 14] > z[0, 0]


def light_garment_on_dark_floor_in_light_bars(bar_width=4):
    """A photo that is not square, padded with a light corner colour: light bars on two sides,
    a dark floor and a light garment between them (1, 1, 28, 28)."""
    image = torch.full((1, 1, 28, 28), 0.2)
    image[..., 3:26, 10:19] = 0.7
    image[..., :, :bar_width] = image[..., :, 28 - bar_width:] = 0.9
    return image


def test_padding_bars_of_a_colour_rare_inside_are_not_background():
    image = light_garment_on_dark_floor_in_light_bars()
    z = pytorch_cnn.standardize_polarity(image)[0, 0]
    assert z[14, 14] > z[14, 6] and z[14, 14] > z[1, 14]      # the garment bright, the floor dark
    torch.testing.assert_close(pytorch_cnn.standardize_polarity(1 - image), z.view(1, 1, 28, 28))
    z_of_affine = pytorch_cnn.standardize_polarity(-3 * image + 2)
    torch.testing.assert_close(z_of_affine, z.view(1, 1, 28, 28), atol=1e-5, rtol=0)
    widths = pytorch_cnn.padding_bars(z.view(1, 1, 28, 28))
    assert widths.tolist() == [[4, 4, 0, 0]]


def test_padding_bars_of_the_floor_colour_are_background():
    image = light_garment_on_dark_floor_in_light_bars()
    image[..., :, :4] = image[..., :, 24:] = 0.2                # padded with the floor's own colour
    z = pytorch_cnn.standardize_polarity(image)
    assert pytorch_cnn.padding_bars(z).sum() == 0
    assert z[0, 0, 14, 14] > z[0, 0, 14, 2]


def test_fashion_mnist_margins_are_no_padding_bars(test_set):
    """Black margins are Fashion-MNIST's background: the frame stays at the image's edge for nearly all."""
    images = test_set[0][:2000]
    z = pytorch_cnn.standardize_polarity(images)
    bars = pytorch_cnn.padding_bars(z)
    assert (bars.sum(dim=1) > 0).float().mean() < 0.01


def test_plain_backgrounds_are_fashion_mnists_and_not_a_scenes_or_noises(test_set):
    images = test_set[0][:1000]
    plain = pytorch_cnn.plain_background(images)
    assert plain.float().mean() > 0.9
    for same in (1 - images, 0.2 + 0.5 * images, 3 * images):          # inverted, low contrast, another scale
        assert torch.equal(pytorch_cnn.plain_background(same), plain)
    for shift in ('on tiles', 'on wood', 'on fabric', 'noise 0.1'):
        assert pytorch_cnn.plain_background(pytorch_cnn.SHIFTS[shift](images)).float().mean() < 0.5, shift


def test_mynet_sends_each_image_to_one_of_its_networks(test_set):
    torch.manual_seed(0)
    model = MyNet().eval()
    garments = test_set[0][:8]
    images = torch.cat([garments, pytorch_cnn.SHIFTS['on wood'](garments)])
    plain = pytorch_cnn.plain_background(images)
    assert 0 < plain.sum() < len(images)
    with torch.no_grad():
        routed = model(images)
        torch.testing.assert_close(routed[plain], model.plain(images[plain]))
        torch.testing.assert_close(routed[~plain], model.scene(images[~plain]))
        assert not torch.allclose(model.plain(images), model.scene(images))


def test_mynet_takes_an_empty_batch():
    assert MyNet().eval()(torch.zeros(0, 1, 28, 28)).shape == (0, 10)


def test_augment_keeps_range_and_shape_and_is_seeded(test_set):
    images = test_set[0][:256]
    recipe = pytorch_cnn.Recipe()
    first = pytorch_cnn.augment(images, torch.Generator().manual_seed(3), recipe)
    again = pytorch_cnn.augment(images, torch.Generator().manual_seed(3), recipe)
    other = pytorch_cnn.augment(images, torch.Generator().manual_seed(4), recipe)
    assert first.shape == images.shape and first.dtype == torch.float32
    assert first.min() >= 0 and first.max() <= 1
    torch.testing.assert_close(first, again)
    assert (first - other).abs().mean() > 0.05
    assert (first - images).abs().mean() > 0.05


def test_augment_lays_only_the_scene_classes_on_scenes(test_set):
    images, labels = test_set[0][:256], test_set[1][:256]
    recipe = pytorch_cnn.Recipe(photometric=0.0, erase_probability=0.0)
    augmented = pytorch_cnn.augment(images, torch.Generator().manual_seed(3), recipe, labels, scenes=(1.0, (0, 3)))
    geometry_only = pytorch_cnn.random_geometry(images, torch.Generator().manual_seed(3), recipe)
    in_scene = (labels == 0) | (labels == 3)
    torch.testing.assert_close(augmented[~in_scene], geometry_only[~in_scene])
    assert (augmented[in_scene] - geometry_only[in_scene]).abs().amax(dim=(1, 2, 3)).gt(0.1).all()


def test_augment_takes_a_small_last_batch_that_gets_no_scene(test_set):
    """A pass's last batch can be a few images, none of them drawn for a scene: they come out as with the same
    draws where no class may go on a scene."""
    images, labels, recipe = test_set[0][:2], test_set[1][:2], pytorch_cnn.Recipe()

    def augmented(seed, probability, classes=pytorch_cnn.ALL_CLASSES):
        return pytorch_cnn.augment(images, torch.Generator().manual_seed(seed), recipe, labels, (probability, classes))

    for seed in range(5):
        torch.testing.assert_close(augmented(seed, 0.01), augmented(seed, 0.01, ()), rtol=0, atol=0)
    assert not torch.equal(augmented(0, 1.0), augmented(0, 1.0, ()))       # the comparison can tell a scene


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


def test_rotation_hits_only_a_fraction_of_the_images(test_set):
    images = test_set[0][:1000]
    recipe = pytorch_cnn.Recipe(max_shift_pixels=0, rotate_probability=0.3)
    geometry = pytorch_cnn.random_geometry(images, torch.Generator().manual_seed(2), recipe)
    untouched = ((geometry == images) | (geometry == images.flip(-1))).all(dim=(1, 2, 3)).float().mean().item()
    assert abs(untouched - 0.7) < 0.05


def test_garment_mask_fills_dark_patches_but_not_the_gap_between_legs():
    trousers = torch.zeros(1, 1, 28, 28)
    trousers[..., 4:24, 8:13] = 0.8                  # two legs ...
    trousers[..., 4:24, 15:20] = 0.8
    trousers[..., 4:8, 8:20] = 0.8                   # ... joined at the waist
    trousers[..., 12:14, 9:11] = 0.0                 # a dark patch on a leg
    mask = pytorch_cnn.garment_mask(trousers)
    assert mask[0, 0, 12, 9] == 1 and mask[0, 0, 5, 14] == 1
    assert mask[0, 0, 16, 14] == 0 and mask[0, 0, 0, 0] == 0
    assert mask.sum() == 20 * 5 * 2 + 4 * 2


def test_scene_lays_the_garment_on_a_textured_background(test_set):
    images = test_set[0][:256]
    scenes = pytorch_cnn.random_scene(images, torch.Generator().manual_seed(0))
    assert scenes.shape == images.shape and scenes.min() >= 0 and scenes.max() <= 1
    corners = torch.cat([scenes[..., :3, :3], scenes[..., -3:, -3:]], dim=-1).flatten(1)
    assert corners.mean(dim=1).std() > 0.15          # background levels vary from image to image
    assert (corners.std(dim=1) > 0.01).float().mean() > 0.5      # and are textured, not flat
    lit = (images > 0.03).flatten(1).sum(dim=1).float()
    changed = ((scenes - images).abs() > 0.03).flatten(1).sum(dim=1).float()
    assert (changed > lit).float().mean() > 0.9      # the black background itself changed


def test_affine_zooms_out_and_moves_by_whole_pixels_when_asked():
    point = torch.zeros(1, 1, 28, 28)
    point[0, 0, 10, 10] = 1.0
    one = torch.ones(1)
    moved = pytorch_cnn.affine(point, 0 * one, one, 0 * one, torch.tensor([[3.0, -2.0]]))
    assert moved[0, 0, 8, 13] == pytest.approx(1.0, abs=1e-5)
    square = torch.zeros(1, 1, 28, 28)
    square[..., 4:24, 4:24] = 1.0
    smaller = pytorch_cnn.affine(square, 0 * one, 0.5 * one, 0 * one, torch.zeros(1, 2))
    assert smaller.sum().item() == pytest.approx(square.sum().item() / 4, rel=0.02)


def test_every_recipe_setting_is_a_flag_with_its_default():
    defaults = pytorch_cnn.parse_args([]).recipe
    assert defaults == pytorch_cnn.Recipe()
    changed = pytorch_cnn.parse_args(['--finetune-scene-probability', '0.1', '--scale', '0.9', '1.1', '--no-augment',
                                      '--batch-size', '64', '--no-checkpoint-shifted']).recipe
    assert (changed.finetune_scene_probability, changed.scale, changed.augment, changed.batch_size,
            changed.checkpoint_shifted) == (0.1, (0.9, 1.1), False, 64, False)
    assert len(dataclasses.fields(pytorch_cnn.Recipe)) <= 30
    assert pytorch_cnn.parse_args(['--plain-scene-classes', '1', '2', '6']).recipe.plain_scene_classes == (1, 2, 6)
    dry = pytorch_cnn.parse_args(['--dry-run', '--finetune-epochs', '5']).recipe
    assert (dry.epochs, dry.finetune_epochs) == (2, 1)


def test_fine_tuning_is_a_second_phase_with_its_own_length_rate_scenes_and_scales():
    single = pytorch_cnn.GarmentNet()
    assert pytorch_cnn.training_phases(pytorch_cnn.Recipe(finetune_epochs=0), single) == [
        ((), pytorch_cnn.Recipe(finetune_epochs=0), None)]
    recipe = pytorch_cnn.Recipe(epochs=7, lr=0.05, scale=(0.9, 1.1), finetune_epochs=3,
                                finetune_lr=0.02, finetune_scene_probability=0.4, finetune_scale=(0.6, 1.2))
    (main_parts, main, main_scenes), (fine_parts, fine, fine_scenes) = pytorch_cnn.training_phases(recipe, single)
    assert main == recipe and main_parts == fine_parts == () and main_scenes is None
    assert (fine.epochs, fine.lr, fine.scale, fine_scenes) == (3, 0.02, (0.6, 1.2), (0.4, pytorch_cnn.ALL_CLASSES))
    assert dataclasses.replace(fine, epochs=7, lr=0.05, scale=(0.9, 1.1)) == recipe


def test_mynet_trains_one_network_then_fine_tunes_each_of_its_two():
    recipe = pytorch_cnn.Recipe(plain_scene_classes=(0, 3))
    (main, main_recipe, main_scenes), (scene, scene_recipe, scenes), (plain, plain_recipe, plain_scenes) = \
        pytorch_cnn.training_phases(recipe, MyNet())
    assert (main, scene, plain) == (('plain', 'scene'), ('scene',), ('plain',))
    assert main_recipe == recipe and main_scenes is None and scene_recipe == plain_recipe
    assert scenes == (0.25, tuple(range(10))) and plain_scenes == (0.25, (0, 3))
    assert len(pytorch_cnn.training_phases(pytorch_cnn.Recipe(finetune_epochs=0), MyNet())) == 1


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
    assert os.path.getsize(MODEL_PT) <= 8 * 1024 * 1024
    assert sum(parameter.numel() for parameter in MyNet().parameters()) <= 2_000_000


def test_committed_model_test_accuracy(committed_test_accuracy):
    assert committed_test_accuracy >= 94.5


# the committed model's accuracy (%) on the first 2,000 test images under each shift (session 22), less 3 points:
# a margin for other CPUs, PyTorch versions and retrainings, well inside what a broken part of the model costs
SHIFT_FLOORS = {name: measured - 3.0 for name, measured in {
    'brighter +0.4': 92.95, 'low contrast x0.3': 95.0, 'gamma 0.5': 94.45, 'gamma 2.0': 94.2, 'inverted': 95.0,
    'zoomed out 0.65': 89.9, 'off-centre 3,4 px': 85.35, 'rotated 20': 84.2, 'sheared 0.3': 90.75,
    'on tiles': 86.5, 'on wood': 83.15, 'on fabric': 86.05, 'on blurred clutter': 88.2,
    'noise 0.1': 91.3, 'blur 1.0': 93.2, 'rotated 10': 93.1}.items()}


def test_the_shift_floors_cover_the_suite():
    assert set(measure.PHOTOMETRIC_SHIFTS + measure.SCENE_SHIFTS) <= set(SHIFT_FLOORS) <= set(pytorch_cnn.SHIFTS)


@pytest.mark.parametrize('shift', sorted(SHIFT_FLOORS))
def test_committed_model_under_each_shift(committed_model, test_set, shift):
    images, labels = test_set[0][:2000], test_set[1][:2000]
    accuracy = pytorch_cnn.accuracy(committed_model, pytorch_cnn.SHIFTS[shift](images), labels)
    assert accuracy >= SHIFT_FLOORS[shift], f'{shift}: {accuracy:.2f}%'


# ----------------------------------------------------------------------------- devices

def test_every_tensor_takes_the_device_of_the_data_it_meets(committed_model, test_set):
    """Inside torch.device('meta') a tensor made without naming its device lands on the meta device, where the
    CPU data it then meets stops the code: the mistake that stops a training on a GPU, shown without one."""
    images, labels = test_set[0][:64], test_set[1][:64]
    mixed = torch.cat([images[:32], pytorch_cnn.SHIFTS['on tiles'](images[32:])])   # both of MyNet's networks
    assert 0 < pytorch_cnn.plain_background(mixed).sum() < len(mixed)
    recipe = pytorch_cnn.Recipe()
    generator, last_loss = torch.Generator().manual_seed(0), torch.rand(100)
    network = pytorch_cnn.GarmentNet()
    with torch.device('meta'):
        outputs = [network(images), committed_model(mixed), classify(committed_model, mixed),
                   pytorch_cnn.augment(images, generator, recipe, labels, (0.5, (0, 1, 2, 3, 4))),
                   pytorch_cnn.pick_pass(last_loss, 0.3, generator),
                   *(shift(images) for shift in pytorch_cnn.SHIFTS.values())]
    assert all(output.device.type == 'cpu' for output in outputs)


def test_auto_device_is_cuda_where_present_else_the_cpu_and_mps_only_when_asked(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(torch.backends.mps, 'is_available', lambda: False)
    assert pytorch_cnn.pick_device('auto') == pytorch_cnn.pick_device('cpu') == torch.device('cpu')
    for device in ('cuda', 'mps'):
        with pytest.raises(SystemExit, match=f'--device {device}: this PyTorch sees no such device'):
            pytorch_cnn.pick_device(device)
    monkeypatch.setattr(torch.backends.mps, 'is_available', lambda: True)      # a Mac
    assert pytorch_cnn.pick_device('auto') == torch.device('cpu')
    assert pytorch_cnn.pick_device('mps') == torch.device('mps')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    assert pytorch_cnn.pick_device('auto') == torch.device('cuda')


# ----------------------------------------------------------------------------- training smoke run

def test_dry_run_trains_and_writes_a_loadable_model_and_its_history(tmp_path, fashion_root, repo):
    out, history = tmp_path / 'dry.pt', tmp_path / 'dry.json'
    result = subprocess.run([sys.executable, 'pytorch_cnn.py', '--dry-run', '--device', 'cpu', '--data', fashion_root,
                             '--out', str(out), '--history', str(history)],
                            cwd=repo, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('MyNet on cpu,')
    fine_tuning = min(pytorch_cnn.Recipe().finetune_epochs, 1)
    assert f'pass   1  epoch  1.00/{2 + 2 * fine_tuning}' in result.stdout and 'saved' in result.stdout
    assert ('fine-tuning of scene:' in result.stdout) == ('fine-tuning of plain:' in result.stdout) == (fine_tuning > 0)
    units = pytorch_cnn.cpu_has_bf16_units()
    expected = 'bfloat16 (auto asked, a CPU with bf16' if units else 'fp32 (auto asked, a CPU without bf16'
    assert expected in result.stdout.splitlines()[1]
    model = measure.load_model(str(out))
    assert classify(model, torch.rand(3, 1, 28, 28)).shape == (3,)
    passes = [line for line in result.stdout.splitlines() if line.startswith('pass')]
    recorded = json.loads(history.read_text())
    assert len(recorded['epoch']) == len(recorded['val']) == len(passes)
    assert recorded['epoch'][-1] == 2 + 2 * fine_tuning
    assert recorded['fine_tunings'] == ([[2.0, 'scene'], [3.0, 'plain']] if fine_tuning else [])


def record_starting_weights(monkeypatch):
    """A list that gets a copy of the model's weights each time a training phase starts."""
    started_from, start_training = [], pytorch_cnn.start_training

    def recording_start(model, *rest):
        started_from.append({name: value.clone() for name, value in model.state_dict().items()})
        return start_training(model, *rest)

    monkeypatch.setattr(pytorch_cnn, 'start_training', recording_start)
    return started_from


def score_passes(monkeypatch, passes):
    """Each training pass's checks score as given in passes: {'val': %, 'shifted': %}, or one % for both."""
    scores = iter([(scores if isinstance(scores, dict) else dict.fromkeys(('val', 'shifted'), scores))[check]
                   for scores in passes for check in ('val', 'shifted')])   # train scores the checks in this order
    monkeypatch.setattr(pytorch_cnn, 'accuracy', lambda *_, **__: next(scores))


def test_each_fine_tuning_starts_from_the_main_schedules_best_and_keeps_its_own_best(tmp_path, fashion_root,
                                                                                       monkeypatch):
    score_passes(monkeypatch, [90.0, 70.0, 80.0, 60.0, 50.0])   # main: the first of three passes; one per fine-tuning
    started_from = record_starting_weights(monkeypatch)
    saves, save_atomically = [], pytorch_cnn.save_atomically
    monkeypatch.setattr(pytorch_cnn, 'save_atomically',
                        lambda value, *rest: saves.append(copy.deepcopy(value)) or save_atomically(value, *rest))
    out = tmp_path / 'dry.pt'
    args = pytorch_cnn.parse_args(['--dry-run', '--data', fashion_root,
                                   '--finetune-epochs', '1', '--out', str(out), '--history', ''])
    assert pytorch_cnn.train(args) == 50.0          # the last phase's best, though the main schedule scored more
    assert len(started_from) == 3 and len(saves) == 3
    main_best = saves[0]
    for name, value in started_from[1].items():     # the scene network, then the plain one
        torch.testing.assert_close(main_best['plain.' + name], main_best['scene.' + name])
        torch.testing.assert_close(value, main_best['scene.' + name])
        torch.testing.assert_close(started_from[2][name], main_best['plain.' + name])
    assert any(not torch.equal(started_from[0][name], value) for name, value in started_from[1].items())
    saved = torch.load(out, weights_only=True)
    for name in started_from[1]:
        torch.testing.assert_close(saved['scene.' + name], saves[1]['scene.' + name])   # kept from its phase
    assert any(not torch.equal(saved['plain.' + name], saved['scene.' + name]) for name in started_from[1])


@pytest.mark.parametrize('interrupted_pass', [1, 2, 3])
def test_ctrl_c_says_what_was_saved(tmp_path, fashion_root, monkeypatch, capsys, interrupted_pass):
    """Ctrl-C in pass n: passes before it were validated and the best of them saved (scores 70 then 80)."""
    score_passes(monkeypatch, [70.0, 80.0])
    passes, train_one_pass = [], pytorch_cnn.train_one_pass

    def interruptible(*args):
        passes.append(1)
        if len(passes) == interrupted_pass:
            raise KeyboardInterrupt
        return train_one_pass(*args)

    monkeypatch.setattr(pytorch_cnn, 'train_one_pass', interruptible)
    out = tmp_path / 'model.pt'
    out.write_bytes(b'the old model')
    args = pytorch_cnn.parse_args(['--dry-run', '--data', fashion_root,
                                   '--epochs', '2', '--finetune-epochs', '1', '--out', str(out), '--history', ''])
    pytorch_cnn.train(args)
    printed = capsys.readouterr().out.splitlines()
    interrupted = printed.index('interrupted' + ('' if interrupted_pass > 1 else
                                                 f': nothing saved yet, {out} is as it was'))
    if interrupted_pass == 1:
        assert interrupted == len(printed) - 1 and out.read_bytes() == b'the old model'
    else:
        best = interrupted_pass - 1
        assert printed[interrupted + 1].startswith(f'saved {out}: the weights after pass {best} '
                                                   f'(validation score {70.0 + 10 * (best - 1):.2f}%), ')
        measure.load_model(str(out))


@pytest.mark.parametrize('flag, kept', [('--checkpoint-shifted', 1), ('--no-checkpoint-shifted', 2)])
def test_the_checkpoint_is_chosen_on_clean_and_shifted_validation_or_on_clean_alone(tmp_path, fashion_root,
                                                                                   monkeypatch, capsys, flag, kept):
    score_passes(monkeypatch, [{'val': 80.0, 'shifted': 90.0}, {'val': 85.0, 'shifted': 70.0}, 60.0])
    out = tmp_path / 'model.pt'
    args = pytorch_cnn.parse_args(['--dry-run', '--data', fashion_root, '--epochs', '2', '--finetune-epochs', '0',
                                   flag, '--out', str(out), '--history', ''])
    pytorch_cnn.train(args)
    assert f'saved {out}: the weights after pass {kept} ' in capsys.readouterr().out


def test_init_starts_the_training_from_the_given_weights(tmp_path, fashion_root, monkeypatch):
    initial = tmp_path / 'initial.pt'
    torch.save(MyNet().state_dict(), initial)
    started_from = record_starting_weights(monkeypatch)
    args = pytorch_cnn.parse_args(['--dry-run', '--data', fashion_root,
                                   '--init', str(initial), '--epochs', '1', '--finetune-epochs', '0',
                                   '--out', str(tmp_path / 'out.pt'), '--history', ''])
    pytorch_cnn.train(args)
    assert len(started_from) == 1
    initial_weights = torch.load(initial, weights_only=True)
    for name, value in started_from[0].items():         # MyNet's main schedule starts from its plain network
        torch.testing.assert_close(value, initial_weights['plain.' + name])


def test_epochs_0_with_init_runs_the_fine_tunings_alone_from_the_given_weights(tmp_path, fashion_root, monkeypatch):
    torch.manual_seed(0)
    initial_model = MyNet()
    initial_model.scene.load_state_dict(pytorch_cnn.GarmentNet().state_dict())      # two different networks
    initial = tmp_path / 'initial.pt'
    torch.save(initial_model.state_dict(), initial)
    started_from = record_starting_weights(monkeypatch)
    args = pytorch_cnn.parse_args(['--dry-run', '--data', fashion_root, '--init', str(initial), '--epochs', '0',
                                   '--finetune-epochs', '1', '--out', str(tmp_path / 'out.pt'), '--history', ''])
    assert [parts for parts, *_ in pytorch_cnn.training_phases(args.recipe, MyNet())] == [('scene',), ('plain',)]
    pytorch_cnn.train(args)
    assert len(started_from) == 2
    initial_weights = torch.load(initial, weights_only=True)
    for name in started_from[0]:                        # each network's fine-tuning starts from its own weights
        torch.testing.assert_close(started_from[0][name], initial_weights['scene.' + name])
        torch.testing.assert_close(started_from[1][name], initial_weights['plain.' + name])


def test_one_training_pass_on_a_subset_beats_chance_and_records_each_images_loss(fashion_root):
    torch.manual_seed(0)
    images, labels = pytorch_cnn.load_fashion_mnist(fashion_root, train=True)
    (train_x, train_y), (val_x, val_y) = pytorch_cnn.split_train_val(images[:6000], labels[:6000], 1000)
    recipe = pytorch_cnn.Recipe(epochs=1, ema_decay=0.0)          # evaluate the raw weights
    training = pytorch_cnn.start_training(SimpleCNN(), recipe, len(train_y), torch.device('cpu'))
    order = torch.randperm(len(train_y))[:len(train_y) - 1000]         # 1,000 images left out
    loss, steps = pytorch_cnn.train_one_pass(training, train_x, train_y, order, recipe,
                                             torch.Generator().manual_seed(0))
    assert steps == math.ceil(len(order) / recipe.batch_size)
    assert loss < 2.2
    assert pytorch_cnn.accuracy(training.average.model, val_x, val_y) > 50.0
    trained = torch.zeros(len(train_y), dtype=torch.bool)
    trained[order] = True
    last_loss = training.last_loss
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
    recipe = pytorch_cnn.Recipe(photometric=0.0)
    generator = torch.Generator().manual_seed(5)
    geometry = pytorch_cnn.random_geometry(images, generator, recipe)
    geometry_only = pytorch_cnn.random_erasing(geometry, generator, recipe.erase_probability)
    augmented = pytorch_cnn.augment(images, torch.Generator().manual_seed(5), recipe)
    torch.testing.assert_close(augmented, geometry_only)
    shifted = pytorch_cnn.augment(images, torch.Generator().manual_seed(5),
                                  dataclasses.replace(recipe, photometric=1.0))
    assert (shifted - geometry_only).abs().amax(dim=(1, 2, 3)).gt(0.01).sum() > 16


def test_weight_average_warms_up_then_decays_slowly():
    model = FCNet()
    average = pytorch_cnn.WeightAverage(model, decay=0.999, warmup=10)
    start = model.fc.weight.detach().clone()
    with torch.no_grad():
        model.fc.weight.add_(1.0)
    average.update(model)                                  # decay 1/10: mostly the new weights
    torch.testing.assert_close(average.model.fc.weight, start + 0.9)
    average.updates = 10_000                               # from here on the decay is capped at 0.999
    average.update(model)
    torch.testing.assert_close(average.model.fc.weight, start + 0.9 + 0.001 * 0.1)


# ----------------------------------------------------------------------------- precision

CPUINFO = """processor\t: 0
vendor_id\t: {vendor}
model name\t: {name}
flags\t\t: fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx avx2 fma avx512f avx512bw avx512vl {units}
bogomips\t: 4000.00

processor\t: 1
flags\t\t: fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx avx2 fma avx512f avx512bw avx512vl {units}
"""


@pytest.mark.parametrize('vendor, name, units, expected', [
    ('GenuineIntel', 'Intel(R) Xeon(R) Platinum 8480+', 'avx512_bf16 amx_bf16 amx_tile amx_int8', True),
    ('GenuineIntel', 'Intel(R) Xeon(R) Processor', 'amx_bf16 amx_tile', True),
    ('AuthenticAMD', 'AMD EPYC 9654', 'avx512_bf16 avx512_vnni', True),
    ('GenuineIntel', 'Intel(R) Xeon(R) Platinum 8375C', 'avx512_vnni avx512_vbmi', False),
    ('AuthenticAMD', 'AMD EPYC 7763', 'avx2 bmi2', False),
])
def test_bf16_units_are_read_from_the_cpus_flags(tmp_path, vendor, name, units, expected):
    cpuinfo = tmp_path / 'cpuinfo'
    cpuinfo.write_text(CPUINFO.format(vendor=vendor, name=name, units=units))
    assert pytorch_cnn.cpu_has_bf16_units(str(cpuinfo)) is expected
    assert pytorch_cnn.cpu_has_bf16_units(str(tmp_path / 'no-cpuinfo')) is False       # not Linux: no /proc


@pytest.mark.parametrize('units, expected', [(True, torch.bfloat16), (False, None)])
def test_auto_precision_follows_the_cpus_bf16_units(monkeypatch, capsys, units, expected):
    monkeypatch.setattr(pytorch_cnn, 'cpu_has_bf16_units', lambda: units)
    cpu = torch.device('cpu')
    assert pytorch_cnn.choose_precision('auto', cpu) == expected
    printed = 'bfloat16 (auto asked, a CPU with bf16 units)' if units else 'fp32 (auto asked, a CPU without bf16 units)'
    assert printed in capsys.readouterr().out
    assert pytorch_cnn.choose_precision('fp32', cpu) is None


@pytest.mark.parametrize('bf16, expected', [(True, torch.bfloat16), (False, torch.float16)])
def test_auto_precision_on_cuda_takes_bf16_else_fp16(monkeypatch, bf16, expected):
    monkeypatch.setattr(torch.cuda, 'get_device_capability', lambda *_: (8, 0) if bf16 else (7, 5))    # A100, T4
    assert pytorch_cnn.choose_precision('auto', torch.device('cuda')) == expected


def test_a_bf16_training_step_keeps_float32_weights_and_learns(test_set):
    torch.manual_seed(0)
    model = MyNet()
    training = pytorch_cnn.start_training(model, pytorch_cnn.Recipe(epochs=1), 1000, torch.device('cpu'),
                                          torch.bfloat16)
    images, labels = test_set[0][:16], test_set[1][:16]
    losses = [pytorch_cnn.train_step(training, images, labels, pytorch_cnn.Recipe()) for _ in range(3)]
    assert all(loss.dtype == torch.float32 and loss.isfinite().all() for loss in losses)
    assert losses[-1].mean() < losses[0].mean()
    assert all(p.dtype == torch.float32 for p in list(model.parameters()) + list(training.average.model.parameters()))


# ----------------------------------------------------------------------------- bad input: one line, non-zero exit

@pytest.mark.parametrize('argv, message', [
    (['--batch-size', '0'], '--batch-size must be at least 1, got 0'),
    (['--epochs', '0'], '--epochs must be at least 1, got 0 (0 with --init: the fine-tunings alone)'),
    (['--init', 'model.pt', '--epochs', '0', '--finetune-epochs', '0'], 'nothing to train'),
    (['--lr', '0'], '--lr must be positive, got 0'),
    (['--plain-scene-classes', '0', '10'], 'argument --plain-scene-classes: invalid choice: 10'),
    (['--lr', '-0.1'], '--lr must be positive, got -0.1'),
    (['--finetune-lr', '0'], '--finetune-lr must be positive'),
    (['--no-such-flag'], 'unrecognized arguments: --no-such-flag'),
])
def test_bad_training_flags_end_with_one_line(capsys, argv, message):
    with pytest.raises(SystemExit) as stopped:
        pytorch_cnn.parse_args(['--dry-run', *argv])
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert error.count('\n') == 1 and message in error


@pytest.mark.parametrize('content, message', [
    (None, 'no such file'),
    (b'not a model', 'not a saved state_dict'),
    ({'fc.weight': torch.zeros(10, 784)}, 'not the weights of MyNet'),
    (torch.zeros(3), 'holds a Tensor, not a state_dict'),
])
def test_a_bad_model_file_is_named_in_one_line(tmp_path, content, message):
    path = tmp_path / 'model.pt'
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(measure.ModelFileError, match=message) as raised:
        measure.load_model(str(path))
    assert str(path) in str(raised.value) and '\n' not in str(raised.value)


def test_init_with_a_bad_model_file_ends_with_one_line_before_any_work(tmp_path, capsys):
    (tmp_path / 'junk.pt').write_bytes(b'junk')
    with pytest.raises(SystemExit) as stopped:
        pytorch_cnn.main(['--dry-run', '--data', str(tmp_path), '--init', str(tmp_path / 'junk.pt')])
    assert str(stopped.value.code).startswith('error: --init ') and 'no weights of MyNet' in stopped.value.code
    assert capsys.readouterr().out == ''


@pytest.mark.parametrize('damage', ['missing', 'truncated'])
def test_a_missing_or_damaged_fashion_mnist_ends_with_one_line(tmp_path, fashion_root, damage):
    raw = tmp_path / 'FashionMNIST' / 'raw'
    raw.mkdir(parents=True)
    if damage == 'truncated':
        for name in os.listdir(os.path.join(fashion_root, 'FashionMNIST', 'raw')):
            data = open(os.path.join(fashion_root, 'FashionMNIST', 'raw', name), 'rb').read()
            (raw / name).write_bytes(data[:len(data) // 2] if name.startswith('t10k-images') else data)
    with pytest.raises(SystemExit) as stopped:
        pytorch_cnn.load_fashion_mnist(str(tmp_path), train=False)
    assert '\n' not in stopped.value.code and 'make data' in stopped.value.code


# ----------------------------------------------------------------------------- the fixture itself (last in the file)

def test_every_test_gets_the_committed_model_as_the_grader_loads_it(committed_model):
    """Earlier tests put their committed_model in eval mode and ran it; this one's is fresh."""
    assert committed_model.training and all(module.training for module in committed_model.modules())
    saved = torch.load(MODEL_PT, map_location='cpu', weights_only=True)
    assert all(torch.equal(value, saved[name]) for name, value in committed_model.state_dict().items())
