"""Any photo file -> a 28x28 Fashion-MNIST-style image, the way Fashion-MNIST itself was made.

Xiao, Rasul & Vollgraf 2017 (arXiv:1708.07747), section 2: trim the border that has the corner
colour, resize the longest edge to 28 by subsampling the pixels, sharpen with a Gaussian unsharp mask
of radius and sigma 1, extend to 28x28 with the corner colour, negate, convert to 8-bit grayscale.
Where the paper is not explicit this module chooses, and says why:
- the corner colour is the median of the four corners (one corner may hold a shadow or a logo);
- a pixel is border while its colour lies within 5% of the full range of the corner colour, as the
  root mean square over R, G and B (ImageMagick's -fuzz 5%);
- subsampling takes each output pixel's centre (the image is not shifted by half a step);
- the extension centres the image, the extra pixel of an odd margin going right and down.
On catalogue photos this matches the reference conversion of ../shared/data/realphotos/catalogue-dev
to within a few grey levels per pixel (tests/test_real_photos.py).

``resize='area'`` departs from the paper on purpose: a photo far larger than Zalando's thumbnails
(a phone photo) is first downscaled with an area filter, then resized with Lanczos, so that no
detail aliases into the small image. Before any of this a photo is turned upright by its EXIF
orientation and made RGB (transparency over white, like a product shot).

    python tools/photo_convert.py PHOTO [PHOTO ...] --out converted.npz [--resize area]
    python tools/photo_convert.py --dataset ../shared/data/realphotos/clothing-dev --out data/realphotos-dev.npz

As a module: ``convert_file(path)`` -> uint8 (28, 28); ``convert_dataset(folder)`` -> dict of arrays.
"""
import argparse
import csv
import os
import sys

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from common import write_atomically

SIDE = 28
WORKING_EDGE = 4 * SIDE     # resize='area': photos are area-downscaled to this longest edge first
FUZZ = 0.05 * 255           # border: RMS distance over R, G, B from the corner colour at most this
LUMA = (0.299, 0.587, 0.114)
RESIZES = ('subsample', 'area')
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


def corner_colour(pixels):
    """The median of the four corner colours of pixels (H, W, 3) -> (3,) float."""
    return np.median(pixels[[0, 0, -1, -1], [0, -1, 0, -1]], axis=0)


def trim_corner_colour(pixels, colour, fuzz=FUZZ):
    """The smallest crop of pixels (H, W, 3) that holds every pixel farther than ``fuzz`` from ``colour``."""
    distance = np.sqrt(((pixels - colour) ** 2).mean(axis=2))
    rows, columns = np.flatnonzero((distance > fuzz).any(axis=1)), np.flatnonzero((distance > fuzz).any(axis=0))
    if len(rows) == 0:
        return pixels
    return pixels[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1]


def fitted_size(height, width, side=SIDE):
    scale = side / max(height, width)
    return min(side, max(1, round(height * scale))), min(side, max(1, round(width * scale)))


def subsample(pixels, side=SIDE):
    """Longest edge to ``side`` by keeping the pixel nearest each output pixel's centre (the paper's)."""
    height, width = pixels.shape[:2]
    new_height, new_width = fitted_size(height, width, side)
    rows = ((np.arange(new_height) + 0.5) * height / new_height).astype(int)
    columns = ((np.arange(new_width) + 0.5) * width / new_width).astype(int)
    return pixels[rows][:, columns]


def lanczos(pixels, side=SIDE):
    """Longest edge to ``side`` with a Lanczos filter."""
    height, width = fitted_size(*pixels.shape[:2], side)
    image = Image.fromarray(pixels.round().clip(0, 255).astype(np.uint8))
    return np.asarray(image.resize((width, height), Image.LANCZOS), dtype=np.float64)


def unsharp_mask(pixels, sigma=1.0, radius=1, amount=1.0):
    """pixels (H, W, 3) plus ``amount`` times their difference from a Gaussian blur (edges repeated)."""
    offsets = np.arange(-radius, radius + 1)
    weights = np.exp(-offsets ** 2 / (2 * sigma ** 2))
    weights /= weights.sum()
    padded = np.pad(pixels, ((radius, radius), (radius, radius), (0, 0)), mode='edge')
    height, width = pixels.shape[:2]
    blurred = sum(weights[i] * weights[j] * padded[i:i + height, j:j + width]
                  for i in range(len(offsets)) for j in range(len(offsets)))
    return pixels + amount * (pixels - blurred)


def extend_to_square(pixels, colour, side=SIDE):
    canvas = np.empty((side, side, 3))
    canvas[:] = colour
    top, left = (side - pixels.shape[0]) // 2, (side - pixels.shape[1]) // 2
    canvas[top:top + pixels.shape[0], left:left + pixels.shape[1]] = pixels
    return canvas


def convert_image(image, resize='subsample'):
    """An RGB PIL image -> uint8 array (28, 28), garment bright on a dark background as in Fashion-MNIST.

    resize: 'subsample' (the paper's) or 'area' (area downscale, then Lanczos; for large photos)."""
    if resize not in RESIZES:
        raise ValueError(f'resize must be one of {RESIZES}, got {resize!r}')
    image = as_rgb(image)
    if resize == 'area':
        image = area_downscale(image)
    pixels = np.asarray(image, dtype=np.float64)
    colour = corner_colour(pixels)
    pixels = trim_corner_colour(pixels, colour)
    pixels = subsample(pixels) if resize == 'subsample' else lanczos(pixels)
    pixels = extend_to_square(unsharp_mask(pixels).round().clip(0, 255), colour.round())
    grey = (255 - pixels) @ np.array(LUMA)
    return grey.round().clip(0, 255).astype(np.uint8)


def convert_file(path, resize='subsample'):
    """The photo file at path -> uint8 (28, 28); PhotoError (one line naming the file) when it cannot."""
    return convert_image(open_photo(path), resize)


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


def photo_path(folder, name):
    """Where labels.csv's file ``name`` lies: folder/name, or folder/images/name where the csv omits the folder."""
    path = os.path.join(folder, name)
    return path if os.path.exists(path) else os.path.join(folder, 'images', name)


def convert_dataset(folder, resize='subsample'):
    """A folder with labels.csv (file, label, ...) -> {'images' (N,28,28) uint8, 'labels' (N,) int64,
    'files' (N,) str, 'source': the folder, and 'senders' (N,) int64 where labels.csv has sender_id},
    in labels.csv's order."""
    with open(os.path.join(folder, 'labels.csv'), newline='') as handle:
        rows = list(csv.DictReader(handle))
    arrays = {'images': np.stack([convert_file(photo_path(folder, row['file']), resize) for row in rows]),
              'labels': np.array([int(row['label']) for row in rows], dtype=np.int64),
              'files': np.array([row['file'] for row in rows]),
              'source': np.array(os.path.abspath(folder))}
    if rows and 'sender_id' in rows[0]:
        arrays['senders'] = np.array([int(row['sender_id']) for row in rows], dtype=np.int64)
    return arrays


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('photos', nargs='*', help='photo files or folders of photos')
    parser.add_argument('--dataset', help='a folder with labels.csv and the photos it names')
    parser.add_argument('--resize', choices=RESIZES, default='area',
                        help="'subsample' as the paper (for thumbnails), 'area' for larger photos (default)")
    parser.add_argument('--out', required=True, help='the .npz to write (images, and labels etc. with --dataset)')
    args = parser.parse_args(argv)
    if args.dataset:
        arrays = convert_dataset(args.dataset, args.resize)
    else:
        converted, names = [], []
        for path in photo_files(args.photos):
            try:
                converted.append(convert_file(path, args.resize))
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
