"""Build the BRUTE upload and check it the way the grader uses it.

    python tools/submission.py zip   [--out submission.zip]
    python tools/submission.py check [submission.zip] [--data data]
    python tools/submission.py check --python .venv-torch1.13/bin/python --images 10000    # make check-zip-compat

``check`` unpacks the zip into an empty temporary folder and, in a fresh
isolated Python process whose working directory and import path are that
folder only, imports both graded modules, calls every getter, runs the lab
text's layer examples, loads model.pt into ``MyNet()`` on the CPU and classifies
real Fashion-MNIST test images with ``classify``. It fails loudly, naming the
file and the problem. ``--python`` runs that process under another interpreter
(one with an older PyTorch, as the grader may have); it needs numpy and torch.
"""
import argparse
import ast
import os
import subprocess
import sys
import tempfile
import zipfile

FILES = ('numpy_nn.py', 'numpy_nn_training.png', 'numpy_nn_classification.png', 'pytorch_cnn.py', 'model.pt')
GRADED_MODULES = ('numpy_nn.py', 'pytorch_cnn.py')
GRADER_PACKAGES = {'numpy', 'torch', 'torchvision', 'matplotlib'}
MIN_ACCURACY = 90.0     # a sanity bound for the emulation; the tests hold the real targets
CHECKED_IMAGES = 2000
HERE = os.path.dirname(os.path.abspath(__file__))


class SubmissionError(Exception):
    pass


def make_zip(out, source_dir='.'):
    missing = [name for name in FILES if not os.path.isfile(os.path.join(source_dir, name))]
    if missing:
        raise SubmissionError(f'cannot build {out}: missing {", ".join(missing)}')
    from common import write_atomically     # here, not at the top: the grader emulation must not import it

    def write(file):
        with zipfile.ZipFile(file, 'w', zipfile.ZIP_DEFLATED) as archive:
            for name in FILES:
                archive.write(os.path.join(source_dir, name), arcname=name)

    write_atomically(out, write)
    print(f'wrote {out}: {", ".join(FILES)}')


def check_members(archive):
    names = archive.namelist()
    folders = [name for name in names if '/' in name or '\\' in name]
    if folders:
        raise SubmissionError(f'files must sit at the zip root, found: {", ".join(folders)}')
    extra = sorted(set(names) - set(FILES))
    if extra:
        raise SubmissionError(f'extra file(s) the upload must not hold: {", ".join(extra)}')
    missing = [name for name in FILES if name not in names]
    if missing:
        raise SubmissionError(f'missing file(s): {", ".join(missing)}')


def imported_top_level_modules(source, filename):
    """{top-level module name: first line} for every import statement in the source."""
    modules = {}
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ''] if node.level == 0 else ['.' * node.level + (node.module or '')]
        else:
            continue
        for name in names:
            modules.setdefault(name.split('.')[0] if not name.startswith('.') else name, node.lineno)
    return modules


def check_imports(name, source):
    allowed = GRADER_PACKAGES | set(sys.stdlib_module_names)
    for module, line in sorted(imported_top_level_modules(source, name).items(), key=lambda item: item[1]):
        if module not in allowed:
            raise SubmissionError(f'{name}:{line} imports {module!r}, which the grader does not have '
                                  f'(allowed: the standard library and {", ".join(sorted(GRADER_PACKAGES))})')


def run_grader_emulation(folder, data, python=sys.executable, images=CHECKED_IMAGES, min_accuracy=MIN_ACCURACY):
    python = os.path.abspath(python) if os.sep in python else python     # the child runs in the folder
    command = [python, '-I', os.path.abspath(__file__), 'child', folder, '--data', os.path.abspath(data),
               '--images', str(images), '--min-accuracy', str(min_accuracy)]
    try:
        completed = subprocess.run(command, cwd=folder, capture_output=True, text=True)
    except OSError as error:
        raise SubmissionError(f'cannot run {python}: {error.strerror}') from None
    sys.stdout.write(completed.stdout)
    if completed.returncode != 0:
        stderr = completed.stderr
        if 'FAILED: ' in stderr:
            raise SubmissionError(' '.join(stderr[stderr.rindex('FAILED: ') + len('FAILED: '):].split()))
        raise SubmissionError(stderr.strip().splitlines()[-1] if stderr.strip()
                              else f'the grader emulation exited with {completed.returncode}')


def check_zip(path, data, python=sys.executable, images=CHECKED_IMAGES, min_accuracy=MIN_ACCURACY):
    if not os.path.isfile(path):
        raise SubmissionError(f'{path} not found (run `make zip`)')
    with zipfile.ZipFile(path) as archive, tempfile.TemporaryDirectory(prefix='brute-') as folder:
        check_members(archive)
        for name in GRADED_MODULES:
            check_imports(name, archive.read(name).decode('utf-8'))
        archive.extractall(folder)
        run_grader_emulation(folder, data, python, images, min_accuracy)
    print(f'check-zip: OK, {path} is ready to upload')


# ----------------------------------------------------------------------------- inside the isolated process

def fail(message):
    raise SystemExit(f'FAILED: {message}')


def load_test_images(data, count):
    """The first ``count`` Fashion-MNIST test images as float (count, 1, 28, 28) in [0, 1], and labels."""
    import numpy as np
    import torch
    raw = os.path.join(data, 'FashionMNIST', 'raw')
    try:
        with open(os.path.join(raw, 't10k-images-idx3-ubyte'), 'rb') as file:
            images = np.frombuffer(file.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)[:count]
        with open(os.path.join(raw, 't10k-labels-idx1-ubyte'), 'rb') as file:
            labels = np.frombuffer(file.read(), np.uint8, offset=8)[:count]
    except OSError as error:
        fail(f'no Fashion-MNIST test set to check model.pt with ({error}); run `make data`')
    return torch.from_numpy(images.astype(np.float32) / 255.0), torch.from_numpy(labels.astype(np.int64))


def import_graded(name):
    import importlib
    before = set(os.listdir('.'))
    try:
        module = importlib.import_module(name)
    except Exception as error:
        fail(f'{name}.py: import failed: {type(error).__name__}: {error}')
    created = set(os.listdir('.')) - before - {'__pycache__'}
    if created:
        fail(f'{name}.py: importing it wrote {", ".join(sorted(created))} (no work at import time)')
    return module


def call_getter(module, getter):
    function = getattr(module, getter, None)
    if function is None:
        fail(f'{module.__name__}.py: no {getter}()')
    result = function(None)
    if not (isinstance(result, list) and len(result) == 1 and isinstance(result[0], type)):
        fail(f'{module.__name__}.py: {getter}(None) returned {result!r}, expected [Class]')
    return result[0]


def check_numpy_part():
    numpy_nn = import_graded('numpy_nn')
    examples = {}
    exec(compile(open(os.path.join(HERE, 'lab_examples.py')).read(), 'lab_examples.py', 'exec'), examples)
    classes = [call_getter(numpy_nn, getter) for getter in
               ('get_linear_class', 'get_relu_class', 'get_sigmoid_class', 'get_se_loss_class')]
    problems = examples['mismatches'](examples['run_examples'](*classes))
    if problems:
        fail('numpy_nn.py: ' + '; '.join(problems))
    print('  numpy_nn.py: getters and the lab\'s four layer examples OK')


def check_pytorch_part(data, images_wanted, min_accuracy):
    import torch
    pytorch_cnn = import_graded('pytorch_cnn')
    model_class = call_getter(pytorch_cnn, 'get_model_class')
    model = model_class()
    try:
        model.load_state_dict(torch.load('model.pt', map_location='cpu'))
    except Exception as error:
        fail(f'model.pt: does not load into {model_class.__name__}(): {type(error).__name__}: {error}')
    images, labels = load_test_images(data, images_wanted)
    predicted = pytorch_cnn.classify(model, images)        # no model.eval() first, like the grader
    if not isinstance(predicted, torch.Tensor) or predicted.shape != labels.shape:
        fail(f'pytorch_cnn.py: classify returned {type(predicted).__name__} of shape '
             f'{getattr(predicted, "shape", None)}, expected a tensor of shape {tuple(labels.shape)}')
    if predicted.dtype not in (torch.int64, torch.int32):
        fail(f'pytorch_cnn.py: classify returned dtype {predicted.dtype}, expected integer labels')
    by_mode = [pytorch_cnn.classify(model.train(mode), images[:8]) for mode in (True, False)]
    if by_mode[0].shape != (8,) or not torch.equal(*by_mode):
        fail('pytorch_cnn.py: classify answers otherwise when the model is left in training mode (model.eval()?)')
    accuracy = 100.0 * (predicted == labels).double().mean().item()
    if accuracy < min_accuracy:
        fail(f'model.pt: {accuracy:.2f}% on {len(labels)} Fashion-MNIST test images, below {min_accuracy}%')
    print(f'  pytorch_cnn.py + model.pt: {accuracy:.2f}% on {len(labels)} Fashion-MNIST test images '
          f'(Python {sys.version.split()[0]}, PyTorch {torch.__version__})')


def child(folder, data, images, min_accuracy):
    sys.path.insert(0, folder)
    os.chdir(folder)
    check_numpy_part()
    check_pytorch_part(data, images, min_accuracy)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    commands = parser.add_subparsers(dest='command', required=True)
    zip_parser = commands.add_parser('zip', help='write the upload')
    zip_parser.add_argument('--out', default='submission.zip')
    check_parser = commands.add_parser('check', help='emulate the grader on a zip')
    check_parser.add_argument('zip', nargs='?', default='submission.zip')
    check_parser.add_argument('--data', default='data', help='folder holding FashionMNIST/raw')
    check_parser.add_argument('--python', default=sys.executable,
                              help='the interpreter of the emulated grader (default: this one)')
    check_parser.add_argument('--images', type=int, default=CHECKED_IMAGES, help='test images to classify')
    check_parser.add_argument('--min-accuracy', type=float, default=MIN_ACCURACY,
                              help='least accuracy on them, in %%')
    child_parser = commands.add_parser('child', help=argparse.SUPPRESS)
    child_parser.add_argument('folder')
    child_parser.add_argument('--data', required=True)
    child_parser.add_argument('--images', type=int, required=True)
    child_parser.add_argument('--min-accuracy', type=float, required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == 'zip':
            make_zip(args.out)
        elif args.command == 'check':
            check_zip(args.zip, args.data, args.python, args.images, args.min_accuracy)
        else:
            child(args.folder, args.data, args.images, args.min_accuracy)
    except SubmissionError as error:
        sys.exit(f'check-zip: FAILED: {error}' if args.command == 'check' else f'error: {error}')


if __name__ == '__main__':
    main()
