"""Timings of MyNet on this machine: a training step in fp32 and bf16, the augmentation, and classify.

    python tools/bench.py                  # make bench
    python tools/bench.py --images 2000    # quicker
    python tools/bench.py --device cuda    # a GPU's step (auto takes it where there is one)

Prints the processor and whether it has bf16 units, milliseconds per training step (batch of
the recipe, one GarmentNet: each phase of MyNet's training trains one of its two) in float32
and under bf16 autocast (emulated, and so slow, on CPUs without bf16 units), whether
``--precision auto`` chose the faster of the two, the milliseconds of augmenting one batch
(without and with scenes) on the CPU and on the training device, images per second of
``classify`` with and without its test-time views on the first --images test images, whether
classify of 10,000 images stays within the grader's 20 s (the exit status says it too), and how
many of its predictions bf16 autocast would change. Run it on a quiet machine: anything else
running slows it.
"""
import argparse
import copy
import dataclasses
import os
import platform
import sys
import time

import torch

from common import REPO
from measure import load_model_or_exit
import pytorch_cnn

GRADER_SECONDS = 20.0       # the grader's limit for classify on 10,000 images


def processor_name():
    try:
        with open('/proc/cpuinfo') as handle:
            return next(line.split(':', 1)[1].strip() for line in handle if line.startswith('model name'))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def milliseconds_per_call(call, repeats):
    """Mean milliseconds of call() over ``repeats`` calls after two warm-up calls. call returns a tensor; copying
    it to the CPU waits for a GPU to finish."""
    for _ in range(2):
        call().cpu()
    started = time.perf_counter()
    for _ in range(repeats):
        result = call()
    result.cpu()
    return 1000.0 * (time.perf_counter() - started) / repeats


def milliseconds_per_step(model, device, dtype, batch_size, steps=6):
    """Time of one ``pytorch_cnn.train_step`` (forward under autocast to dtype, or float32 for None, backward,
    update, weight average) on a copy of model, with random images."""
    recipe = dataclasses.replace(pytorch_cnn.Recipe(), batch_size=batch_size, epochs=1)
    training = pytorch_cnn.start_training(copy.deepcopy(model).train(), recipe, batch_size * (steps + 2), device,
                                          dtype)
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(batch_size, 1, 28, 28, generator=generator)
    y = torch.randint(0, 10, (batch_size,), generator=generator)
    return milliseconds_per_call(lambda: pytorch_cnn.train_step(training, x, y, recipe), steps)


def milliseconds_per_augmentation(images, labels, device, scene_probability, repeats=10):
    """Time of augmenting one batch (images, labels) on device with a generator there, scenes on that fraction."""
    recipe, scenes = pytorch_cnn.Recipe(), (scene_probability, pytorch_cnn.ALL_CLASSES)
    images, labels = images.to(device), labels.to(device)
    generator = torch.Generator(device=device).manual_seed(0)
    return milliseconds_per_call(lambda: pytorch_cnn.augment(images, generator, recipe, labels, scenes), repeats)


def verdict(chosen, milliseconds):
    """One line: whether the precision ``--precision auto`` chose (None: fp32) is the faster one timed."""
    faster = min(milliseconds, key=milliseconds.get)
    name = 'bf16' if chosen == torch.bfloat16 else 'fp32' if chosen is None else str(chosen)
    if name not in milliseconds:
        return f'--precision auto chose {name}, which was not timed here'
    return (f'--precision auto chose {name}: ' + ('the faster one' if name == faster else
            f'the slower one ({faster} takes {milliseconds[faster]:.0f} ms a step)'))


def classify_rate(model, images, tta):
    started = time.perf_counter()
    pytorch_cnn.classify(model, images, tta=tta)
    return len(images) / (time.perf_counter() - started)


def bf16_changed_predictions(model, images):
    """How many of classify's answers (with its views) change when the model runs under bf16 autocast."""
    device = next(model.parameters()).device
    fp32 = pytorch_cnn.classify(model, images)
    with torch.autocast(device.type, dtype=torch.bfloat16):
        bf16 = pytorch_cnn.classify(model, images)
    return int((fp32 != bf16).sum())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--model-pt', default=os.path.join(REPO, 'model.pt'), help='weights for classify')
    parser.add_argument('--data', default=os.path.join(REPO, 'data'), help='folder holding FashionMNIST/raw')
    parser.add_argument('--images', type=int, default=10000, help='test images classified')
    parser.add_argument('--steps', type=int, default=10, help='timed training steps per precision')
    parser.add_argument('--device', choices=('auto', 'cpu', 'cuda', 'mps'), default='auto',
                        help='where the training step runs (auto: CUDA where present, else the CPU)')
    args = parser.parse_args(argv)

    device = pytorch_cnn.pick_device(args.device)
    units = 'yes' if pytorch_cnn.cpu_has_bf16_units() else 'no (bf16 is emulated)'
    print(f'processor: {processor_name()}, {torch.get_num_threads()} threads; device {device}; '
          f'bf16 units: {units}; torch {torch.__version__}')
    trained = load_model_or_exit(args.model_pt)
    model = pytorch_cnn.GarmentNet().to(device)         # what each training phase trains
    batch = pytorch_cnn.Recipe().batch_size
    milliseconds = {}
    for name, dtype in (('fp32', None), ('bf16', torch.bfloat16)):
        milliseconds[name] = milliseconds_per_step(model, device, dtype, batch, steps=args.steps)
        print(f'training step, batch {batch}, {name}: {milliseconds[name]:7.1f} ms')
    chosen = pytorch_cnn.choose_precision('auto', device)
    print(verdict(chosen, milliseconds))
    images, labels = pytorch_cnn.load_fashion_mnist(args.data, train=False)
    step = milliseconds['bf16' if chosen == torch.bfloat16 else 'fp32']
    for where in sorted({torch.device('cpu'), device}, key=str):
        plain, scenes = (milliseconds_per_augmentation(images[:batch], labels[:batch], where, p) for p in (0, 0.25))
        print(f'augmenting a batch of {batch} on {where}: {plain:5.1f} ms, {scenes:5.1f} ms with a quarter in scenes '
              f'(a step on {device}: {step:.1f} ms)')
    images = images[:args.images]
    for tta in (False, True):
        rate = classify_rate(trained, images, tta)
        print(f'classify {len(images)} images, {"with" if tta else "without"} test-time views: '
              f'{rate:7.0f} images/s ({len(images) / rate:.1f} s)')
    seconds = 10000 / rate
    print(f'check: classify of 10,000 images with its views, {seconds:.1f} s here: '
          + ('within' if seconds <= GRADER_SECONDS else 'OVER') + f' the grader\'s {GRADER_SECONDS:.0f} s')
    changed = bf16_changed_predictions(trained, images)
    print(f'classify under bf16 autocast (not used: classify stays fp32): {changed} of {len(images)} '
          f'predictions differ from fp32')
    if seconds > GRADER_SECONDS:
        sys.exit(1)


if __name__ == '__main__':
    main()
