"""Real photos: the Fashion-MNIST conversion, the real-photo evaluation and tools/classify_photo.py."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import pytorch_cnn
from conftest import REPO
from photo_convert import PhotoError, convert_file, convert_image

CLASSIFY_PHOTO = os.path.join(REPO, 'tools', 'classify_photo.py')


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


# ----------------------------------------------------------------------------- evaluation on real photos

def test_real_photo_scores_balanced_accuracy_and_contributor_interval():
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 6, 6])
    senders = torch.tensor([1, 1, 2, 2, 3, 3, 4, 5])
    predicted = torch.tensor([0, 0, 0, 0, 1, 8, 8, 8])         # T-shirts 100%, trousers 50%, shirts 0%
    scores = pytorch_cnn.real_photo_scores(predicted, labels, senders, rounds=500)
    assert scores['per_class'] == {0: 100.0, 1: 50.0, 6: 0.0}
    assert scores['balanced'] == pytest.approx(50.0)
    assert scores['overall'] == pytest.approx(62.5)
    low, high = scores['balanced_interval']
    assert low <= scores['balanced'] <= high and high - low > 10
    perfect = pytorch_cnn.real_photo_scores(labels, labels, senders, rounds=50)
    assert perfect['balanced_interval'] == (100.0, 100.0)


def test_real_photo_scores_gain_over_a_baseline_has_a_paired_interval():
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 6, 6])
    senders = torch.tensor([1, 1, 2, 2, 3, 3, 4, 5])
    baseline = torch.tensor([0, 0, 0, 0, 1, 8, 8, 8])          # balanced 50%
    better = torch.tensor([0, 0, 0, 0, 1, 1, 8, 8])            # trousers fixed: balanced 66.7%
    same = pytorch_cnn.real_photo_scores(baseline, labels, senders, rounds=200, baseline=baseline)
    assert same['balanced_gain'] == 0.0 and same['balanced_gain_interval'] == (0.0, 0.0)
    scores = pytorch_cnn.real_photo_scores(better, labels, senders, rounds=500, baseline=baseline)
    assert scores['balanced_gain'] == pytest.approx(100 / 6)
    low, high = scores['balanced_gain_interval']
    assert 0 <= low <= high <= 100 / 3          # never a loss: the better model is right wherever the baseline is
    own_low, own_high = scores['balanced_interval']
    assert high - low < own_high - own_low


def test_the_committed_model_on_the_real_photos(real_photos_path, committed_model):
    """A guard against losing what the committed model does on real photos (issue 13's targets, balanced
    accuracy 55% and no class below 30%, are not met yet: see the README). The per-class floor sits below
    the spread of the smallest class (hoodies, a few dozen photos) between seeds of one recipe."""
    images, labels, senders = pytorch_cnn.load_real_photos(real_photos_path)
    assert images.shape[1:] == (1, 28, 28) and len(labels) == len(senders) > 1000
    scores = pytorch_cnn.real_photo_scores(pytorch_cnn.classify(committed_model, images), labels, senders)
    assert scores['balanced'] >= 43.0, scores
    assert min(scores['per_class'].values()) >= 15.0, scores
    low, high = scores['balanced_interval']
    assert low < scores['balanced'] < high


def test_evaluate_reports_real_photos_beside_fashion_mnist(real_photos_path, committed_model, tmp_path,
                                                            capsys):
    images, labels, senders = pytorch_cnn.load_real_photos(real_photos_path)
    subset = tmp_path / 'real.npz'
    np.savez(subset, images=(images[:40, 0] * 255).round().byte().numpy(), labels=labels[:40].numpy(),
             senders=senders[:40].numpy())
    scores, photos, predicted, files = pytorch_cnn.real_photo_report(committed_model, str(subset))
    assert files is None                                 # this npz names no photo files
    assert len(predicted) == 40 and set(scores['per_class']) == set(labels[:40].tolist())
    assert 'balanced accuracy' in capsys.readouterr().out
    assert pytorch_cnn.real_photo_report(committed_model, str(tmp_path / 'absent.npz')) is None
    assert 'not found' in capsys.readouterr().out


# ----------------------------------------------------------------------------- classify_photo.py

def test_classify_photo_prints_top_three_and_draws_one_figure(real_photos_path, tmp_path):
    folder = os.path.join(REPO, '..', 'shared', 'data', 'realphotos', 'clothing-dev', 'images')
    if not os.path.isdir(folder):
        pytest.skip(f'{folder} not found')
    photos = sorted(os.listdir(folder))[:2]
    (tmp_path / 'notes.jpg').write_text('not a photo')
    figure = tmp_path / 'figure.png'
    result = subprocess.run([sys.executable, CLASSIFY_PHOTO, *(os.path.join(folder, p) for p in photos),
                             str(tmp_path / 'notes.jpg'), '--out', str(figure)],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.endswith('%')]
    assert len(lines) == 2 and all(line.count('%') == 3 for line in lines)
    assert result.stderr.strip().count('\n') == 0 and 'notes.jpg' in result.stderr
    with Image.open(figure) as drawn:
        assert drawn.size[1] > 400                             # a row for each of the two photos


def test_classify_photo_with_no_image_fails(tmp_path):
    (tmp_path / 'notes.txt').write_text('not a photo')
    result = subprocess.run([sys.executable, CLASSIFY_PHOTO, str(tmp_path / 'notes.txt')],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode != 0 and 'no photo could be classified' in result.stderr


def test_compare_models_numbers_are_the_projects_accuracies(committed_model, fashion_root):
    import compare_models
    images, labels = pytorch_cnn.load_fashion_mnist(fashion_root, train=True)
    _, (val_x, val_y) = pytorch_cnn.split_train_val(images, labels, 5000)
    val, shifted = (val_x[:300], val_y[:300]), (val_x[:40], val_y[:40])
    numbers = compare_models.validation_numbers(committed_model, val, shifted, None)
    assert numbers['clean'] == pytorch_cnn.accuracy(committed_model, *val)
    assert numbers['shifts']['inverted'] == pytorch_cnn.accuracy(committed_model, 1.0 - shifted[0], shifted[1])
    assert sorted(numbers['shifts']) == sorted(set(pytorch_cnn.SHIFTS) - {'clean'})
    scene = [numbers['shifts'][name] for name in pytorch_cnn.SCENE_SHIFTS]
    assert numbers['scene'] == pytest.approx(sum(scene) / len(scene))
    summary = compare_models.describe('model.pt', numbers).split('\n')[0]
    assert summary.startswith('model.pt: clean ') and 'real' not in summary


def test_compare_models_reports_the_real_photos_with_their_interval(real_photos_path, repo):
    result = subprocess.run([sys.executable, os.path.join('tools', 'compare_models.py'), 'model.pt', 'model.pt',
                             '--val-images', '100', '--shift-images', '8', '--real-photos', real_photos_path],
                            cwd=repo, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    summaries = [line for line in result.stdout.splitlines() if line.startswith('model.pt: clean')]
    assert len(summaries) == 2
    assert 'real balanced' in summaries[0] and 'per class T-/Tr/Pu/Dr/Co/Sh' in summaries[0]
    assert summaries[1] == summaries[0] + '  balanced gain over the first +0.0 [+0.0, +0.0]'


# ----------------------------------------------------------------------------- tools/probe_features.py

def synthetic_photos(class_signal, photos=600, contributors=60, seed=0):
    """features (N, 20), labels (N,) in the real set's six labels, senders (N,): noise, plus class_signal on the
    feature that belongs to each photo's class."""
    generator = torch.Generator().manual_seed(seed)
    six = torch.tensor([0, 1, 2, 3, 4, 6])
    targets = torch.randint(0, 6, (photos,), generator=generator)
    features = torch.randn(photos, 20, generator=generator)
    features[torch.arange(photos), targets] += class_signal
    return features, six[targets], torch.randint(0, contributors, (photos,), generator=generator)


def test_contributor_folds_keep_each_contributors_photos_together():
    from probe_features import contributor_folds
    senders = torch.tensor([7, 3, 7, 9, 3, 9, 1, 1, 7])
    fold = contributor_folds(senders, folds=3)
    for sender in senders.unique():
        assert len(fold[senders == sender].unique()) == 1
    assert fold.min() >= 0 and fold.max() < 3


def test_the_probe_finds_classes_that_the_features_hold_and_no_others():
    from probe_features import cross_validated_predictions
    features, labels, senders = synthetic_photos(class_signal=4.0)
    predicted = cross_validated_predictions(features, labels, senders)
    assert set(predicted.unique().tolist()) <= {0, 1, 2, 3, 4, 6}
    assert pytorch_cnn.real_photo_scores(predicted, labels, senders)['balanced'] > 95
    noise, labels, senders = synthetic_photos(class_signal=0.0)
    predicted = cross_validated_predictions(noise, labels, senders)
    assert pytorch_cnn.real_photo_scores(predicted, labels, senders)['balanced'] < 35   # six classes: chance is 1/6


def test_a_probe_fitted_on_fewer_contributors_knows_less():
    from probe_features import cross_validated_predictions
    features, labels, senders = synthetic_photos(class_signal=1.0)

    def balanced(fraction):
        predicted = cross_validated_predictions(features, labels, senders, fraction=fraction)
        return pytorch_cnn.real_photo_scores(predicted, labels, senders)['balanced']
    assert balanced(1.0) > balanced(0.05) + 5


def test_probes_across_domains_map_the_labels_of_both(real_photos_path, repo):
    """With the real photos standing in for Fashion-MNIST too, each probe is asked about the photos it was
    fitted on, so both directions must know nearly all of them, class by class."""
    from probe_features import across_domains, real_photo_features
    model = pytorch_cnn.load_model(os.path.join(repo, 'model.pt'))       # in training mode, as loaded
    images, labels, senders = (tensor[:300] for tensor in pytorch_cnn.load_real_photos(real_photos_path))
    features = real_photo_features(model, images)['convolutions']
    assert model.training                    # the features leave the model's mode as it was
    others = torch.randn(50, features.shape[1]), torch.full((50,), 9)  # another class: left out of the probes
    report = across_domains(features, labels, senders, torch.cat([features, others[0]]), torch.cat([labels, others[1]]))
    for scores in report.values():
        assert sorted(scores['per_class']) == sorted(labels.unique().tolist())
        assert min(scores['per_class'].values()) > 90


def test_probe_features_reports_the_head_and_both_probes(real_photos_path, fashion_root, repo):
    result = subprocess.run([sys.executable, os.path.join('tools', 'probe_features.py'), 'model.pt', '--limit', '300',
                             '--real-photos', real_photos_path, '--across', '--data', fashion_root],
                            cwd=repo, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    within, across = result.stdout.splitlines()
    assert within.startswith('model.pt: real balanced, its own head (one view) ')
    assert 'linear probe on the convolutions' in within and 'on the hidden layer' in within
    assert across.startswith('model.pt: across domains, fitted on the real photos, on Fashion-MNIST validation')
