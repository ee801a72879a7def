"""Any photo file -> a 28x28 Fashion-MNIST-style image, the way Fashion-MNIST itself was made.

Xiao, Rasul & Vollgraf 2017 (arXiv:1708.07747), section 2: trim the border that has the
corner colour, resize the longest edge to 28, sharpen, extend to 28x28 with the corner
colour, negate, convert to 8-bit grayscale. Before that a photo is turned upright by its
EXIF orientation, made RGB (transparency over white, like a product shot) and, when large,
downscaled with an area filter so that no detail aliases into the small image.

    python tools/photo_convert.py PHOTO [PHOTO ...] --out converted.npz
    python tools/photo_convert.py --dataset ../shared/data/realphotos/clothing-dev --out data/realphotos-dev.npz

As a module: ``convert_file(path)`` -> uint8 (28, 28); ``convert_dataset(folder)`` -> dict of arrays.
"""
import argparse
import csv
import os
import sys

import numpy as np
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError

from common import write_atomically

SIDE = 28
WORKING_EDGE = 4 * SIDE     # photos are area-downscaled to this longest edge before the paper's steps
CORNER_TOLERANCE = 12       # 0..255 per channel: how far a pixel may be from the corner colour and still be border
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.gif', '.tif', '.tiff', '.webp')


class PhotoError(Exception):
    """A file that cannot be converted; the message is one line that names the file."""


def open_photo(path):
    """The photo at path as an upright RGB PIL image; PhotoError when it is not a readable image."""
    try:
        with Image.open(path) as image:
            image.load()
            image = ImageOps.exif_transpose(image)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as error:
        raise PhotoError(f'{path}: not a readable image ({type(error).__name__}: {error})') from None
    return as_rgb(image)


def as_rgb(image):
    """RGB; an image with transparency is laid on white first."""
    if image.mode in ('RGBA', 'LA', 'PA') or (image.mode == 'P' and 'transparency' in image.info):
        rgba = image.convert('RGBA')
        white = Image.new('RGBA', rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert('RGB')
    return image.convert('RGB')


def area_downscale(image, longest_edge=WORKING_EDGE):
    """Shrink with a box (area) filter so that the longest edge is at most ``longest_edge``."""
    scale = longest_edge / max(image.size)
    if scale >= 1:
        return image
    size = tuple(max(1, round(side * scale)) for side in image.size)
    return image.resize(size, Image.BOX)


def corner_colour(image):
    return image.getpixel((0, 0))


def trim_corner_colour(image, colour, tolerance=CORNER_TOLERANCE):
    """The smallest crop that holds every pixel farther than ``tolerance`` from ``colour``."""
    pixels = np.asarray(image, dtype=np.int16)
    differs = (np.abs(pixels - np.array(colour, dtype=np.int16)) > tolerance).any(axis=2)
    rows, columns = np.flatnonzero(differs.any(axis=1)), np.flatnonzero(differs.any(axis=0))
    if len(rows) == 0:
        return image
    return image.crop((columns[0], rows[0], columns[-1] + 1, rows[-1] + 1))


def fit_longest_edge(image, side=SIDE):
    scale = side / max(image.size)
    size = tuple(min(side, max(1, round(length * scale))) for length in image.size)
    return image.resize(size, Image.LANCZOS)


def extend_to_square(image, colour, side=SIDE):
    canvas = Image.new('RGB', (side, side), colour)
    canvas.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    return canvas


def convert_image(image):
    """An RGB PIL image -> uint8 array (28, 28), garment bright on a dark background as in Fashion-MNIST."""
    image = area_downscale(as_rgb(image))
    colour = corner_colour(image)
    image = fit_longest_edge(trim_corner_colour(image, colour))
    image = extend_to_square(image.filter(ImageFilter.SHARPEN), colour)
    return np.asarray(ImageOps.invert(image).convert('L'), dtype=np.uint8)


def convert_file(path):
    """The photo file at path -> uint8 (28, 28); PhotoError (one line naming the file) when it cannot."""
    return convert_image(open_photo(path))


def photo_files(paths):
    """The paths given, with each folder replaced by the image files in it (sorted)."""
    files = []
    for path in paths:
        if os.path.isdir(path):
            files += sorted(os.path.join(path, name) for name in os.listdir(path)
                            if name.lower().endswith(IMAGE_SUFFIXES))
        else:
            files.append(path)
    return files


def convert_dataset(folder):
    """A folder with labels.csv (file, label, ..., sender_id) -> {'images' (N,28,28) uint8,
    'labels' (N,) int64, 'senders' (N,) int64, 'files' (N,) str, 'source': the folder}, in labels.csv's order."""
    with open(os.path.join(folder, 'labels.csv'), newline='') as handle:
        rows = list(csv.DictReader(handle))
    images = np.stack([convert_file(os.path.join(folder, row['file'])) for row in rows])
    return {'images': images,
            'labels': np.array([int(row['label']) for row in rows], dtype=np.int64),
            'senders': np.array([int(row['sender_id']) for row in rows], dtype=np.int64),
            'files': np.array([row['file'] for row in rows]),
            'source': np.array(os.path.abspath(folder))}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('photos', nargs='*', help='photo files or folders of photos')
    parser.add_argument('--dataset', help='a folder with labels.csv and the photos it names')
    parser.add_argument('--out', required=True, help='the .npz to write (images, and labels etc. with --dataset)')
    args = parser.parse_args(argv)
    if args.dataset:
        arrays = convert_dataset(args.dataset)
    else:
        converted, names = [], []
        for path in photo_files(args.photos):
            try:
                converted.append(convert_file(path))
                names.append(path)
            except PhotoError as error:
                print(error, file=sys.stderr)
        if not converted:
            raise SystemExit('no photo could be converted')
        arrays = {'images': np.stack(converted), 'files': np.array(names)}
    write_atomically(args.out, lambda file: np.savez_compressed(file, **arrays))
    print(f'wrote {args.out}: {len(arrays["images"])} images')


if __name__ == '__main__':
    main()
