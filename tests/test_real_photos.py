"""Real photos: the Fashion-MNIST conversion, the real photos' scores and intervals, the committed model on them."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

import pytorch_cnn
from measure import load_real_photos, real_photo_scores
from photo_convert import PhotoError, convert_dataset, convert_file, convert_image


def dark_rectangle_photo(width=90, height=60, box=(20, 10, 50, 40), background=(230, 225, 215)):
    """A light photo with a dark rectangle (left, top, right, bottom) off its centre."""
    image = Image.new('RGB', (width, height), background)
    image.paste((40, 30, 35), box)
    return image


def bright_box(view, threshold=128):
    """(top, bottom, left, right) of the pixels above threshold in a 28x28 view (inclusive)."""
    rows, columns = np.nonzero(view > threshold)
    return rows.min(), rows.max(), columns.min(), columns.max()


# ----------------------------------------------------------------------------- the converter

def test_a_dark_rectangle_on_a_light_photo_becomes_a_bright_centred_rectangle_on_black():
    view = convert_image(dark_rectangle_photo())
    assert view.shape == (28, 28) and view.dtype == np.uint8
    top, bottom, left, right = bright_box(view)
    assert (top, bottom, left, right) == (0, 27, 0, 27)       # trimmed to the rectangle, which fills the frame
    square = convert_image(dark_rectangle_photo(box=(10, 10, 40, 25)))       # 30 x 15: wider than tall
    top, bottom, left, right = bright_box(square)
    assert (left, right) == (0, 27) and 12 <= bottom - top + 1 <= 16      # longest edge 28, aspect kept
    assert abs((top + bottom) / 2 - 13.5) <= 1                             # centred vertically
    outside = np.ones((28, 28), bool)
    outside[top:bottom + 1] = False
    background_luma = 0.299 * 230 + 0.587 * 225 + 0.114 * 215
    assert np.abs(square[outside] - (255 - background_luma)).max() <= 2    # the light background, negated: dark


def test_png_with_alpha_grayscale_and_one_pixel_images_convert(tmp_path):
    rgba = Image.new('RGBA', (40, 40), (0, 0, 0, 0))           # transparent, laid on white
    rgba.paste((20, 20, 20, 255), (10, 5, 30, 35))
    rgba.save(tmp_path / 'alpha.png')
    top, bottom, left, right = bright_box(convert_file(tmp_path / 'alpha.png'))
    assert (top, bottom) == (0, 27) and 7 <= right - left + 1 <= 21
    dark_rectangle_photo().convert('L').save(tmp_path / 'grey.png')
    assert bright_box(convert_file(tmp_path / 'grey.png')) == (0, 27, 0, 27)
    Image.new('RGB', (1, 1), (200, 10, 10)).save(tmp_path / 'dot.png')
    dot = convert_file(tmp_path / 'dot.png')
    assert dot.shape == (28, 28) and np.ptp(dot) == 0


def test_exif_orientation_is_applied(tmp_path):
    wide = dark_rectangle_photo(width=80, height=60, box=(10, 25, 70, 35))    # a horizontal bar
    exif = Image.Exif()
    exif[0x0112] = 6                                           # shown rotated by 90 degrees
    wide.save(tmp_path / 'rotated.jpg', exif=exif)
    top, bottom, left, right = bright_box(convert_file(tmp_path / 'rotated.jpg'))
    assert bottom - top > 3 * (right - left)                   # the bar stands upright


def test_a_file_that_is_not_an_image_fails_with_one_line_naming_it(tmp_path):
    text = tmp_path / 'notes.jpg'
    text.write_text('not a photo')
    with pytest.raises(PhotoError) as raised:
        convert_file(text)
    message = str(raised.value)
    assert str(text) in message and '\n' not in message
    with pytest.raises(PhotoError, match='missing.png'):
        convert_file(tmp_path / 'missing.png')


# ----------------------------------------------------------------------------- the converter against the reference

def test_the_converter_follows_the_reference_conversion_of_the_catalogue_photos(photo_folder):
    folder = photo_folder('catalogue-dev')
    reference = np.load(os.path.join(folder, 'reference28.npz'))
    converted = convert_dataset(folder, 'subsample')
    assert list(converted['files']) == list(reference['files'])
    difference = np.abs(converted['images'].astype(float) - reference['images']).mean(axis=(1, 2))
    assert difference.mean() < 3 and difference.max() < 10          # grey levels per pixel, of 255
    area = np.abs(convert_dataset(folder, 'area')['images'].astype(float) - reference['images']).mean()
    assert area > difference.mean() + 3                              # the other resize is another conversion


def test_the_paper_steps_subsample_and_sharpen_an_edge():
    from photo_convert import subsample
    ramp = np.arange(57.0 * 84).reshape(57, 84, 1).repeat(3, axis=2)
    kept = subsample(ramp)
    assert kept.shape == (19, 28, 3)                          # the longest edge to 28, the aspect kept
    assert np.array_equal(kept[:, :, 0], ramp[1::3, 1::3, 0])  # every third pixel, each step's centre, no blend
    step = Image.new('RGB', (28, 28), (200, 200, 200))
    step.paste((100, 100, 100), (14, 0, 28, 28))
    step.putpixel((0, 0), (255, 255, 255))                   # the corners' median stays the light grey
    row = convert_image(step, 'subsample')[14].astype(int)
    assert row[13] < 255 - 200 < 255 - 100 < row[14]         # the unsharp mask overshoots on both sides of the edge
    with pytest.raises(ValueError, match='resize must be one of'):
        convert_image(step, 'bicubic')


# ----------------------------------------------------------------------------- scores and intervals

def test_real_photo_scores_balanced_accuracy_and_contributor_interval():
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 6, 6])
    senders = torch.tensor([1, 1, 2, 2, 3, 3, 4, 5])
    predicted = torch.tensor([0, 0, 0, 0, 1, 8, 8, 8])         # T-shirts 100%, trousers 50%, shirts 0%
    scores = real_photo_scores(predicted, labels, senders, rounds=500)
    assert scores['per_class'] == {0: 100.0, 1: 50.0, 6: 0.0}
    assert scores['balanced'] == pytest.approx(50.0)
    assert scores['overall'] == pytest.approx(62.5)
    low, high = scores['balanced_interval']
    assert low <= scores['balanced'] <= high and high - low > 10
    perfect = real_photo_scores(labels, labels, senders, rounds=50)
    assert perfect['balanced_interval'] == (100.0, 100.0)


def test_without_contributors_the_bootstrap_draws_photos_within_each_class():
    from measure import bootstrap_weights
    labels = torch.tensor([5] * 30 + [9] * 3)
    weights = bootstrap_weights(labels, None, 400, torch.Generator().manual_seed(0))
    torch.testing.assert_close(weights[:, :30].sum(1), torch.full((400,), 30.0, dtype=torch.float64))
    torch.testing.assert_close(weights[:, 30:].sum(1), torch.full((400,), 3.0, dtype=torch.float64))
    predicted = torch.tensor([5] * 30 + [9, 0, 0])          # the small class decides the interval's width
    scores = real_photo_scores(predicted, labels, rounds=400)
    low, high = scores['balanced_interval']
    assert scores['balanced'] == pytest.approx((100 + 100 / 3) / 2)
    assert low >= 50.0 and high <= 100.0 and high - low > 15        # the sandal class alone is always right


def test_real_photo_scores_gain_over_a_baseline_has_a_paired_interval():
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 6, 6])
    senders = torch.tensor([1, 1, 2, 2, 3, 3, 4, 5])
    baseline = torch.tensor([0, 0, 0, 0, 1, 8, 8, 8])          # balanced 50%
    better = torch.tensor([0, 0, 0, 0, 1, 1, 8, 8])            # trousers fixed: balanced 66.7%
    same = real_photo_scores(baseline, labels, senders, rounds=200, baseline=baseline)
    assert same['balanced_gain'] == 0.0 and same['balanced_gain_interval'] == (0.0, 0.0)
    scores = real_photo_scores(better, labels, senders, rounds=500, baseline=baseline)
    assert scores['balanced_gain'] == pytest.approx(100 / 6)
    low, high = scores['balanced_gain_interval']
    assert 0 <= low <= high <= 100 / 3          # never a loss: the better model is right wherever the baseline is
    own_low, own_high = scores['balanced_interval']
    assert high - low < own_high - own_low


# ----------------------------------------------------------------------------- the committed model

def test_the_committed_model_on_the_phone_photos(real_photos_path, committed_model):
    """A guard against losing what the committed model does; the README names the targets it misses."""
    images, labels, senders = load_real_photos(real_photos_path)
    assert images.shape[1:] == (1, 28, 28) and len(labels) == len(senders) > 1000
    scores = real_photo_scores(pytorch_cnn.classify(committed_model, images), labels, senders)
    assert scores['balanced'] >= 47.0, scores
    assert min(scores['per_class'].values()) >= 12.0, scores


def test_the_committed_model_on_the_catalogue_photos(catalogue_path, committed_model):
    """The same guard on the catalogue photos, under both conversions that `make data` writes."""
    for key in ('images', 'images_area'):
        images, labels, senders = load_real_photos(catalogue_path, key)
        assert senders is None and sorted(labels.unique().tolist()) == list(range(10))
        scores = real_photo_scores(pytorch_cnn.classify(committed_model, images), labels)
        assert scores['overall'] >= 86.0 and scores['balanced'] >= 77.0, (key, scores)
