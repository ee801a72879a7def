"""The tools: evaluate, compare_models, classify_photo, bench, plot_training."""
import json
import os
import subprocess
import sys

import pytest
import torch
from PIL import Image

import measure
import pytorch_cnn
from conftest import REPO

TOOLS = os.path.join(REPO, 'tools')


def tool(name, *args, cwd=REPO):
    return subprocess.run([sys.executable, os.path.join(TOOLS, name), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope='module')
def untrained_model_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp('models') / 'untrained.pt'
    torch.save(pytorch_cnn.MyNet().state_dict(), path)
    return str(path)


# ----------------------------------------------------------------------------- every tool: bad model files

@pytest.fixture(scope='module')
def bad_model_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp('bad')
    (folder / 'junk.pt').write_bytes(b'not a model')
    torch.save(pytorch_cnn.SimpleCNN().state_dict(), folder / 'simple.pt')
    return {'missing': str(folder / 'missing.pt'), 'junk': str(folder / 'junk.pt'), 'simple': str(folder / 'simple.pt')}


@pytest.mark.parametrize('module, args', [('evaluate', []), ('compare_models', []), ('bench', ['--model-pt']),
                                          ('classify_photo', ['photo.jpg', '--model-pt'])])
@pytest.mark.parametrize('kind, message', [('missing', 'no such file'), ('junk', 'not a saved state_dict'),
                                           ('simple', 'not the weights of MyNet')])
def test_every_tool_names_a_bad_model_file_in_one_line(bad_model_files, capsys, module, args, kind, message):
    main = __import__(module).main
    with pytest.raises(SystemExit) as stopped:
        main([*args, bad_model_files[kind]])
    assert stopped.value.code.startswith(f'error: {bad_model_files[kind]}: ')
    assert message in stopped.value.code and '\n' not in stopped.value.code


# ----------------------------------------------------------------------------- evaluate.py

def test_evaluate_reports_the_test_set_the_shifts_and_both_photo_sets(real_photos_path, catalogue_path, tmp_path,
                                                                       capsys):
    import evaluate
    evaluate.main(['--limit', '120', '--report', str(tmp_path / 'report.png')])
    out = capsys.readouterr().out
    assert 'Fashion-MNIST test set, 120 images' in out
    assert '1      64     500   whole' in out
    assert all(f'  {name:18s}' in out for name in ['test set', *pytorch_cnn.SHIFTS][2:])
    photo_lines = [line for line in out.splitlines() if line.split(', ')[0].split(' (')[0] in
                   ('phone photos', 'catalogue photos')]
    sets = ['phone photos', 'catalogue photos', 'catalogue photos, area resize']
    assert [line.split(' (')[0] for line in photo_lines] == [
        f'{name}, {when}' for name in sets for when in ('1 at a time', '64 at a time', '500 at a time', 'all at once')]
    assert all(line.split(' (')[1].startswith('120):') and 'balanced' in line and 'overall' in line
               for line in photo_lines)
    with Image.open(tmp_path / 'report.png') as figure:
        assert figure.size[0] > 4 * figure.size[1]                 # five panels side by side


def test_evaluate_numbers_are_the_projects_accuracies(committed_model, fashion_root):
    import evaluate
    photos = {'some photos': (torch.rand(30, 1, 28, 28), torch.arange(30) % 3, None)}
    results = evaluate.evaluate(committed_model, fashion_root, photos, limit=200)
    test_x, test_y = (part[:200] for part in pytorch_cnn.load_fashion_mnist(fashion_root, train=False))
    assert results['test'][None] == pytorch_cnn.accuracy(committed_model, test_x, test_y)        # all at once
    assert results['test'][1] == pytorch_cnn.accuracy(committed_model, test_x, test_y, adapt=False)
    assert results['confusion'].sum() == 200 and results['confusion'].trace() == round(2 * results['test'][500])
    assert results['suite'][None]['inverted'] == pytorch_cnn.accuracy(committed_model, 1 - test_x, test_y)
    images, labels, _ = photos['some photos']
    right = pytorch_cnn.classify(committed_model, images) == labels
    assert results['photos'][None]['some photos']['balanced'] == pytest.approx(
        sum(100.0 * right[labels == label].double().mean().item() for label in range(3)) / 3)


def test_labels_by_batch_size_are_classifys_answers_to_those_batches(committed_model, fashion_root):
    from measure import labels_by_batch_size
    images, labels = (part[:300] for part in pytorch_cnn.load_fashion_mnist(fashion_root, train=False))
    images = pytorch_cnn.SHIFTS['on tiles'](images)
    guessed = labels_by_batch_size(committed_model, images, (1, 64, 128), seed=3)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(3))
    for size in (1, 64, 128):
        by_calls = torch.empty(len(images), dtype=torch.long)
        for start in range(0, len(images), size):
            batch = order[start:start + size]
            by_calls[batch] = pytorch_cnn.classify(committed_model, images[batch])
        assert torch.equal(guessed[size], by_calls), size
    assert not torch.equal(guessed[1], guessed[128])        # else this test could not tell batches apart


# ----------------------------------------------------------------------------- compare_models.py

def test_compare_models_numbers_are_the_projects_accuracies(committed_model, fashion_root):
    import compare_models
    images, labels = pytorch_cnn.load_fashion_mnist(fashion_root, train=True)
    _, (val_x, val_y) = pytorch_cnn.split_train_val(images, labels, 5000)
    val, shifted = (val_x[:300], val_y[:300]), (val_x[:40], val_y[:40])
    numbers = compare_models.validation_numbers(committed_model, val, shifted, {})[None]       # all at once
    assert numbers['clean'] == pytorch_cnn.accuracy(committed_model, *val)
    assert numbers['shifts']['inverted'] == pytorch_cnn.accuracy(committed_model, 1.0 - shifted[0], shifted[1])
    assert sorted(numbers['shifts']) == sorted(set(pytorch_cnn.SHIFTS) - {'clean'})
    scene = [numbers['shifts'][name] for name in measure.SCENE_SHIFTS]
    assert numbers['scene'] == pytest.approx(sum(scene) / len(scene))
    assert compare_models.describe('model.pt', numbers, {}).startswith('model.pt: clean ')


def test_compare_models_reports_a_worse_model_as_a_loss_on_both_photo_sets(real_photos_path, catalogue_path,
                                                                           untrained_model_file):
    result = tool('compare_models.py', 'model.pt', untrained_model_file, '--val-images', '100', '--shift-images', '8',
                  '--batch-sizes', '500', 'all')
    assert result.returncode == 0, result.stderr
    assert 'all at once' in result.stdout and ' at a time' not in result.stdout.replace('500 at a time', '')
    first, second = result.stdout.split(untrained_model_file + ', 500 at a time: clean')[0:2]
    first = first.split('model.pt, 500 at a time: clean')[1]
    for name in ('phone photos', 'catalogue photos', 'catalogue photos, area resize'):
        assert f'    {name} (' in first and 'gain' not in first.split(f'    {name} (')[1].split('\n')[0]
        line = second.split(f'    {name} (')[1].split('\n')[0]
        gain, interval = line.split('balanced gain over the first ')[1].split(' ', 1)
        high = float(interval.strip('[]').split(', ')[1])
        assert float(gain) < -20 and high < 0, line             # an untrained network: a loss beyond its interval


# ----------------------------------------------------------------------------- classify_photo.py

def test_classify_photo_prints_top_three_and_draws_one_figure(tmp_path):
    folder = os.path.join(REPO, 'tests', 'photos')          # two CC0 phone photos (see its README)
    photos = ['t-shirt.jpg', 'trousers.jpg']
    (tmp_path / 'notes.jpg').write_text('not a photo')
    figure = tmp_path / 'figure.png'
    result = tool('classify_photo.py', *(os.path.join(folder, p) for p in photos), str(tmp_path / 'notes.jpg'),
                  '--out', str(figure), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.endswith('%')]
    assert len(lines) == 2 and all(line.count('%') == 3 for line in lines)
    assert all(' (plain backdrop): ' in line or ' (scene): ' in line for line in lines)
    likeliest = [line.split('): ')[1].split(' ')[0] for line in lines]
    assert likeliest == ['T-shirt/top', 'Trouser']                # what the committed model makes of them
    assert '2 photo(s) classified in one batch, adapted to each other' in result.stdout
    assert result.stderr.strip().count('\n') == 0 and 'notes.jpg' in result.stderr
    with Image.open(figure) as drawn:
        assert drawn.size[1] > 400                             # a row for each of the two photos


def test_classify_photo_with_no_image_fails(tmp_path):
    (tmp_path / 'notes.txt').write_text('not a photo')
    result = tool('classify_photo.py', str(tmp_path / 'notes.txt'), cwd=tmp_path)
    assert result.returncode != 0 and 'no photo could be classified' in result.stderr


# ----------------------------------------------------------------------------- bench.py

def test_bench_prints_the_processor_both_precisions_and_whether_auto_chose_the_faster(fashion_root):
    result = tool('bench.py', '--images', '300', '--steps', '1', '--data', fashion_root)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('processor: ') and 'bf16 units: ' in result.stdout
    timings = {name: float(line.split(': ')[1].split(' ms')[0]) for line in result.stdout.splitlines()
               for name in ('fp32', 'bf16') if line.startswith(f'training step, batch 128, {name}: ')}
    assert sorted(timings) == ['bf16', 'fp32'] and min(timings.values()) > 0
    assert '--precision auto chose ' in result.stdout and result.stdout.count('images/s') == 2


@pytest.mark.parametrize('chosen, expected', [(None, 'fp32: the faster one'),
                                              (torch.bfloat16, 'bf16: the slower one (fp32 takes 90 ms a step)')])
def test_bench_says_whether_the_chosen_precision_was_the_faster(chosen, expected):
    import bench
    assert bench.verdict(chosen, {'fp32': 90.0, 'bf16': 120.0}).endswith(expected)


def test_timing_a_training_step_leaves_the_timed_model_alone():
    import bench
    torch.manual_seed(0)
    model = pytorch_cnn.MyNet()
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    assert bench.milliseconds_per_step(model, torch.device('cpu'), None, 4, steps=1) > 0
    assert all(torch.equal(before[name], tensor) for name, tensor in model.state_dict().items())


@pytest.mark.parametrize('margin, changed', [(1e-4, 5), (1.0, 0)])
def test_bench_counts_the_predictions_that_bf16_changes(margin, changed):
    import bench
    linear = torch.nn.Linear(784, 10, bias=False)
    with torch.no_grad():
        linear.weight.zero_()
        linear.weight[0] = 1.0 / 784
        linear.weight[1] = (1.0 + margin) / 784        # wins in fp32; a tie with class 0 in bf16 when margin is tiny
    model = torch.nn.Sequential(torch.nn.Flatten(), linear, torch.nn.LogSoftmax(dim=1))
    assert bench.bf16_changed_predictions(model, torch.ones(5, 1, 28, 28)) == changed


# ----------------------------------------------------------------------------- plot_training.py

def test_the_training_figure_draws_both_validation_curves(tmp_path):
    import plot_training
    history = {'epoch': [1.0, 2.0, 3.0], 'loss': [1.2, 1.0, 1.1], 'val': [80.0, 85.0, 84.0],
               'shifted': [70.0, 75.0, 78.0], 'fine_tunings': [[2.0, 'scene']]}
    (tmp_path / 'history.json').write_text(json.dumps(history))
    plot_training.main([str(tmp_path / 'history.json'), '--out', str(tmp_path / 'training.png')])
    assert plot_training.plot_training(history, str(tmp_path / 'again.png')) == ['validation, clean',
                                                                                 'validation, shift suite']
    with Image.open(tmp_path / 'training.png') as figure:
        assert figure.size == (1000, 400)


def test_plot_training_names_a_file_that_is_no_history(tmp_path):
    (tmp_path / 'junk.json').write_text('{"epoch": []}')
    result = tool('plot_training.py', str(tmp_path / 'junk.json'), '--out', str(tmp_path / 'x.png'))
    expected = f'error: {tmp_path / "junk.json"}: not a training history (no pass recorded)'
    assert result.returncode == 1 and result.stderr.strip() == expected
