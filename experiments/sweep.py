"""The training ablation of MyNet: many trainings side by side on one GPU, each family of the recipe switched off
in one config, scored on the validation split and on both real-photo sets.

    python experiments/sweep.py --out sweep/ --seconds 490 --workers 14              # every config, seeds 1-3
    python experiments/sweep.py --configs base,no-erasing --seeds 1,2 --workers 4 --epochs 10   # a shorter schedule

Each job is ``pytorch_cnn.train`` with one config of CONFIGS (flags that change the Recipe) and one seed,
in its own single-threaded process; ``--workers`` of them run at once (on an H100, 14 kept the GPU at
99% and each 22-epoch run took about 4 minutes). A job's score is the accuracy of its saved model on
the clean validation split and on the validation shift suite, both as ``classify`` labels them one at a time;
beside it the balanced accuracy of both real-photo sets, 500 photos a call (tools/measure.py), where
`make data` converted them. The test set is never read. Jobs that would not finish before ``--seconds`` are not started; those still
running then are stopped and reported by their last progress line. ``--out`` receives
``summary.txt`` (rewritten every few seconds), ``logs.txt`` (every job's log) and the best three models.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO, os.path.join(REPO, 'tools')]
from common import write_atomically  # noqa: E402

CONFIGS = {     # name -> changes to pytorch_cnn.Recipe's defaults (field name -> value): one family off in each
    'base': {},
    'no-photometric': {'photometric': 0.0},
    'no-rotation-scaling': {'rotate_probability': 0.0},
    'no-erasing': {'erase_probability': 0.0},
    'no-hard-passes': {'easy_kept': 1.0},
    'no-shifted-checkpoint': {'checkpoint_shifted': False},
    'no-fine-tuning': {'finetune_epochs': 0},
}


def recipe_flags(changes):
    """['--field-name', 'value', ...] for a dict of Recipe changes (a range gives two values, a switch its
    --name or --no-name)."""
    flags = []
    for field, value in changes.items():
        flag = '--' + field.replace('_', '-')
        if isinstance(value, bool):
            flags.append(flag if value else flag.replace('--', '--no-', 1))
        else:
            flags += [flag, *map(str, value if isinstance(value, (list, tuple)) else [value])]
    return flags


def work(name, config, data_root, run_dir):
    """One job: train with ``config`` (a CONFIGS entry plus 'seed'), then print its RESULT line."""
    import torch
    torch.set_num_threads(1)
    torch.backends.cudnn.benchmark = True
    import pytorch_cnn as P
    from measure import labels_by_batch_size, load_model_or_exit, load_photo_sets, real_photo_scores
    changes = {key: value for key, value in config.items() if key not in ('seed', 'dry_run')}
    out = os.path.join(run_dir, f'{name}.pt')
    argv = ['--seed', str(config['seed']), '--data', data_root, '--out', out,
            '--history', os.path.join(run_dir, f'{name}.json'), *recipe_flags(changes)]
    argv += ['--dry-run'] if config.get('dry_run') else []
    started = time.time()
    train_args = P.parse_args(argv)
    P.train(train_args)
    model = load_model_or_exit(out).to(P.pick_device())
    scores = {name: P.accuracy(model, *found, tta=False, adapt=False)
              for name, found in P.validation_sets(train_args)[1].items()}
    photos = {}
    for photo_set, (images, labels, senders) in load_photo_sets(('phone photos', 'catalogue photos')).items():
        photos[photo_set.split()[0]] = real_photo_scores(labels_by_batch_size(model, images, (500,))[500], labels,
                                                         senders, rounds=200)['balanced']
    print('RESULT ' + json.dumps({'name': name, 'clean': scores['val'], 'shifted': scores['shifted'],
                                  'real': photos.get('phone'), 'catalogue': photos.get('catalogue'),
                                  'score': (scores['val'] + scores['shifted']) / 2,
                                  'minutes': (time.time() - started) / 60}), flush=True)


def last_pass_line(log_path):
    with open(log_path) as handle:
        passes = [line.strip() for line in handle if line.startswith('pass')]
    return passes[-1] if passes else 'no pass yet'


def summary_text(results, running, queued, elapsed, run_dir):
    """A table: per config, the mean over its finished seeds, then each seed; then the unfinished jobs."""
    lines = [f'elapsed {elapsed:.0f} s, {len(running)} running, {queued} queued', '',
             f'{"config":22s} {"n":>2s} {"clean":>6s} {"shifted":>7s} {"score":>6s} {"phone":>5s} {"catal":>5s}   '
             'per seed: clean/shifted (photos: balanced accuracy, 500 a call)']

    def mean_of(runs, key):
        found = [r[key] for r in runs if r.get(key) is not None]
        return f'{statistics.mean(found):5.1f}' if found else '    -'

    for config in dict.fromkeys(result['config'] for result in results):
        runs = sorted((r for r in results if r['config'] == config), key=lambda r: r['seed'])
        mean = {key: statistics.mean(r[key] for r in runs) for key in ('clean', 'shifted', 'score')}
        seeds = '  '.join(f's{r["seed"]} {r["clean"]:.2f}/{r["shifted"]:.2f} ({r["minutes"]:.1f} min)' for r in runs)
        lines.append(f'{config:22s} {len(runs):2d} {mean["clean"]:6.2f} {mean["shifted"]:7.2f} '
                     f'{mean["score"]:6.2f} {mean_of(runs, "real")} {mean_of(runs, "catalogue")}   {seeds}')
    lines += [f'unfinished {name}: {last_pass_line(os.path.join(run_dir, name + ".log"))}'
              for name in sorted(running)]
    return '\n'.join(lines) + '\n'


def drive(args):
    """Run the jobs, at most args.workers at a time, and write summary.txt, logs.txt and the best models."""
    os.makedirs(args.out, exist_ok=True)
    run_dir = tempfile.mkdtemp(prefix='sweep_')
    extra = {'dry_run': True} if args.dry_run else {}
    extra.update({'epochs': args.epochs} if args.epochs else {})
    queue = [(f'{config}-s{seed}', config, dict(CONFIGS[config], seed=seed, **extra))
             for seed in args.seeds for config in args.configs]
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHONUNBUFFERED='1')
    running, results, durations, started = {}, [], [], time.time()

    def write_summary():
        text = summary_text(results, running, len(queue), time.time() - started, run_dir)
        write_atomically(os.path.join(args.out, 'summary.txt'), lambda handle: handle.write(text.encode()))
        return text

    while queue or running:
        left = args.seconds - (time.time() - started)
        expected = statistics.median(durations) if durations else 0.0
        if left <= 0.9 * expected:
            queue.clear()
        while queue and len(running) < args.workers:
            name, config, spec = queue.pop(0)
            log = open(os.path.join(run_dir, f'{name}.log'), 'w')
            process = subprocess.Popen([sys.executable, os.path.abspath(__file__), '--work', name, json.dumps(spec),
                                        '--data', args.data, '--out', run_dir],
                                       stdout=log, stderr=subprocess.STDOUT, env=env)
            running[name] = (process, config, spec['seed'], time.time(), log)
        if left <= 0:
            write_summary()
            for process, *_ in running.values():
                process.kill()
            break
        time.sleep(args.poll)
        for name, (process, config, seed, begun, log) in list(running.items()):
            if process.poll() is None:
                continue
            log.close()
            del running[name]
            durations.append(time.time() - begun)
            with open(os.path.join(run_dir, f'{name}.log')) as handle:
                found = [line for line in handle if line.startswith('RESULT ')]
            if found:
                results.append(dict(json.loads(found[-1][len('RESULT '):]), config=config, seed=seed))
        write_summary()
    text = write_summary() if not running else open(os.path.join(args.out, 'summary.txt')).read()
    logs = []
    for name in sorted(os.listdir(run_dir)):
        if name.endswith('.log'):
            with open(os.path.join(run_dir, name)) as handle:
                logs.append(f'===== {name}\n{handle.read()}')
    write_atomically(os.path.join(args.out, 'logs.txt'), lambda handle: handle.write(''.join(logs).encode()))
    for result in sorted(results, key=lambda r: -r['score'])[:3]:
        path = os.path.join(run_dir, f'{result["name"]}.pt')
        if os.path.exists(path):
            os.replace(path, os.path.join(args.out, os.path.basename(path)))
    print(text, end='')
    return results


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='sweep', help='folder for summary.txt, logs.txt and the best models')
    parser.add_argument('--data', default=os.path.join(REPO, 'data'), help='folder holding FashionMNIST/raw')
    parser.add_argument('--configs', type=lambda text: text.split(','), default=list(CONFIGS),
                        help='comma-separated names from: ' + ', '.join(CONFIGS))
    parser.add_argument('--seeds', type=lambda text: [int(s) for s in text.split(',')], default=[1, 2, 3])
    parser.add_argument('--seconds', type=float, default=490, help='no job starts that would end after this')
    parser.add_argument('--workers', type=int, default=14, help='jobs at once')
    parser.add_argument('--poll', type=float, default=5.0, help='seconds between checks')
    parser.add_argument('--dry-run', action='store_true', help='every job a --dry-run training (smoke test)')
    parser.add_argument('--epochs', type=int, default=None, help='a shorter main schedule for every job')
    parser.add_argument('--work', nargs=2, metavar=('NAME', 'CONFIG_JSON'), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = [name for name in args.configs if name not in CONFIGS]
    if unknown:
        parser.error(f'unknown config(s) {unknown}; choose from {list(CONFIGS)}')
    return args


if __name__ == '__main__':
    arguments = parse_args()
    if arguments.work:
        work(arguments.work[0], json.loads(arguments.work[1]), arguments.data, arguments.out)
    else:
        drive(arguments)
