"""The research instruments in experiments/: the training sweep, the feature probes, the structure ablation, the
ablation table."""
import os
import re
import subprocess
import sys

import pytest
import torch

import measure
import pytorch_cnn
from conftest import REPO, load_committed_model

EXPERIMENTS = os.path.join(REPO, 'experiments')


def experiment(name, *args):
    return subprocess.run([sys.executable, os.path.join(EXPERIMENTS, name), *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300)


# ----------------------------------------------------------------------------- probe_features.py

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
    from measure import real_photo_scores
    from probe_features import cross_validated_predictions
    features, labels, senders = synthetic_photos(class_signal=4.0)
    predicted = cross_validated_predictions(features, labels, senders)
    assert set(predicted.unique().tolist()) <= {0, 1, 2, 3, 4, 6}
    assert real_photo_scores(predicted, labels, senders)['balanced'] > 95
    noise, labels, senders = synthetic_photos(class_signal=0.0)
    predicted = cross_validated_predictions(noise, labels, senders)
    assert real_photo_scores(predicted, labels, senders)['balanced'] < 35   # six classes: chance is 1/6


def test_a_probe_fitted_on_fewer_contributors_knows_less():
    from measure import real_photo_scores
    from probe_features import cross_validated_predictions
    features, labels, senders = synthetic_photos(class_signal=1.0)

    def balanced(fraction):
        predicted = cross_validated_predictions(features, labels, senders, fraction=fraction)
        return real_photo_scores(predicted, labels, senders)['balanced']
    assert balanced(1.0) > balanced(0.05) + 5


@pytest.mark.parametrize('shared_signal, least, most', [(4.0, 90, 100), (0.0, 0, 40)])
def test_probes_across_domains_know_the_other_domain_only_where_the_classes_mean_the_same(shared_signal, least,
                                                                                           most):
    """Two domains drawn apart; where a class lights the same feature in both, each probe knows the other domain's
    photos; where the other domain carries no class signal, it knows no more than chance."""
    from probe_features import across_domains
    real, labels, senders = synthetic_photos(class_signal=4.0, seed=1)
    fashion, fashion_labels, _ = synthetic_photos(class_signal=shared_signal, seed=2)
    others = torch.randn(50, 20), torch.full((50,), 9)         # another class: left out of the probes
    report = across_domains(real, labels, senders, torch.cat([fashion, others[0]]),
                            torch.cat([fashion_labels, others[1]]))
    for scores in report.values():
        assert sorted(scores['per_class']) == [0, 1, 2, 3, 4, 6]
        assert least <= scores['balanced'] <= most, scores


def test_probe_features_reports_the_head_and_both_probes(real_photos_path, fashion_root):
    result = experiment('probe_features.py', 'model.pt', '--limit', '300', '--real-photos', real_photos_path, '--across',
                  '--data', fashion_root)
    assert result.returncode == 0, result.stderr
    within, across = result.stdout.splitlines()
    assert within.startswith('model.pt: real balanced, its own head (one view) ')
    assert 'linear probe on the convolutions' in within and 'on the hidden layer' in within
    assert across.startswith('model.pt: across domains, fitted on the real photos, on Fashion-MNIST validation')


# ----------------------------------------------------------------------------- sweep.py

def test_sweep_dry_run_scores_every_config_and_keeps_their_models(tmp_path, fashion_root):
    out = tmp_path / 'sweep'
    result = experiment('sweep.py', '--dry-run', '--configs', 'base,no-erasing',
                 '--seeds', '1', '--workers', '2', '--poll', '0.5', '--out', str(out), '--data', fashion_root)
    assert result.returncode == 0, result.stdout + result.stderr

    rows = {line.split()[0]: line.split() for line in (out / 'summary.txt').read_text().splitlines()[3:]}
    assert set(rows) == {'base', 'no-erasing'}
    for name, row in rows.items():
        runs, clean, shifted = int(row[1]), float(row[2]), float(row[3])
        assert runs == 1 and 10.0 < clean <= 100.0 and 10.0 < shifted <= 100.0, row
    logs = (out / 'logs.txt').read_text()
    epochs = min(pytorch_cnn.Recipe().epochs, 2) + 2 * min(pytorch_cnn.Recipe().finetune_epochs, 1)   # two fine-tunings
    assert logs.count(f'epoch {epochs:5.2f}/{epochs}') == 2 and logs.count('RESULT ') == 2   # each job's last pass

    models = [torch.load(out / f'{name}-s1.pt', map_location='cpu', weights_only=True) for name in rows]
    for state in models:
        pytorch_cnn.MyNet().load_state_dict(state)
    assert any(not torch.equal(models[0][key], models[1][key]) for key in models[0])    # the flag took


def test_sweep_turns_recipe_changes_into_flags_the_trainer_accepts():
    import runpy
    sweep = runpy.run_path(os.path.join(EXPERIMENTS, 'sweep.py'))
    for name, changes in sweep['CONFIGS'].items():
        recipe = pytorch_cnn.parse_args(sweep['recipe_flags'](changes)).recipe
        for field, value in changes.items():
            assert getattr(recipe, field) == (tuple(value) if isinstance(value, list) else value), name


# ----------------------------------------------------------------------------- ablate_structure.py

def test_the_structure_ablation_switches_off_one_part_at_a_time(catalogue_path, real_photos_path, fashion_root):
    result = experiment('ablate_structure.py', 'model.pt', '--limit', '60', '--data', fashion_root)
    assert result.returncode == 0, result.stderr
    rows = dict(line.split(': ', 1) for line in result.stdout.splitlines())
    assert list(rows) == ['committed', 'the plain network for every image', 'the scene network for every image',
                          'no padding bars', 'no test-time views', 'no batch adaptation']
    cells = {name: dict(cell.split(' ', 1) for cell in row.split('; ')) for name, row in rows.items()}
    images, labels = pytorch_cnn.load_fashion_mnist(fashion_root, train=True)
    _, (val_x, val_y) = pytorch_cnn.split_train_val(images, labels, 5000)
    model = load_committed_model()
    committed = pytorch_cnn.accuracy(model, val_x[:60], val_y[:60], adapt=False)
    assert float(cells['committed']['val@1']) == pytest.approx(committed, abs=0.005)
    without_views = pytorch_cnn.accuracy(model, val_x[:60], val_y[:60], tta=False, adapt=False)
    assert float(cells['no test-time views']['val@1']) == pytest.approx(without_views, abs=0.005)
    assert cells['committed']['val@1'] == cells['no batch adaptation']['val@500']      # one alone is not adapted
    assert all(f'; {name}@500 ' in rows['committed'] for name in ('catalogue photos', 'phone photos'))


# ----------------------------------------------------------------------------- ablation_table.py

def test_the_ablation_table_sets_each_model_beside_its_seeds_base(tmp_path, catalogue_path, real_photos_path,
                                                                   fashion_root):
    import shutil
    base, worse = tmp_path / 'base.pt', tmp_path / 'untrained.pt'
    shutil.copy(os.path.join(REPO, 'model.pt'), base)
    torch.manual_seed(0)
    torch.save(pytorch_cnn.MyNet().state_dict(), worse)
    args = (f'base/s1={base}', f'untrained/s1={worse}', '--val-images', '300', '--shift-images', '20', '--batch-sizes',
            '1', '--data', fashion_root)
    first, again = experiment('ablation_table.py', *args), experiment('ablation_table.py', *args)
    assert first.returncode == 0, first.stderr
    assert again.stdout == first.stdout and os.path.exists(f'{worse}.labels.pt')       # read from the cache
    rows = {line.split()[0]: line for line in first.stdout.splitlines() if '/s1 ' in line}
    images, labels = pytorch_cnn.load_fashion_mnist(fashion_root, train=True)
    _, (val_x, val_y) = pytorch_cnn.split_train_val(images, labels, 5000)
    clean = pytorch_cnn.accuracy(measure.load_model(str(base)), val_x[:300], val_y[:300], adapt=False)
    assert float(rows['base/s1'].split()[1]) == pytest.approx(clean, abs=0.005)
    assert rows['base/s1'].count('[') == 2                  # two photo sets, no gain beside the base itself
    gains = [float(gain) for gain in re.findall(r'([+-]\d+\.\d) \[ *[+-]', rows['untrained/s1'])]
    assert len(gains) == 2 and all(gain < -20 for gain in gains), rows['untrained/s1']
