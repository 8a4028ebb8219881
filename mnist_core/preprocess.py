"""From a drawing or a photo of a digit to the 28x28 image a model expects, MNIST's way.

MNIST's digits were cropped to their ink, scaled into a 20x20 box keeping their aspect ratio, and
placed in a 28x28 image with their centre of mass at the centre. A drawing off a canvas (280x280,
thick strokes, anywhere on the canvas) looks nothing like that until it goes through the same steps.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import ImageError

INK_THRESHOLD = 0.1  # of the strongest ink: fainter pixels are background noise
MIN_INK_PIXELS = 4   # fewer than this and there is no digit to read
MAX_UPLOAD_PIXELS = 25_000_000  # a photo from a phone is ~12 MP; anything far bigger is not a digit to read
WORKING_SIZE = 560   # larger images are shrunk to this first: a digit needs no more to become 20x20


def load_image(path: str | Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return _as_array(im)
    except FileNotFoundError:
        raise ImageError(f"No such image file: {path}") from None
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        raise ImageError(f"{path} is not an image that can be read ({e}).") from None


def load_image_bytes(data: bytes, name: str = "the upload") -> np.ndarray:
    """An uploaded file's bytes as an array; anything that is not a readable image is an ImageError."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            return _as_array(im)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise ImageError(f"{name} is not an image that can be read; upload a PNG or JPEG of one digit.") from None


def _as_array(im: Image.Image) -> np.ndarray:
    if im.width * im.height > MAX_UPLOAD_PIXELS:
        raise ImageError(f"The image is {im.width}x{im.height} pixels, too large; crop it to the digit.")
    im.draft("L", (WORKING_SIZE, WORKING_SIZE))  # JPEGs decode straight at a reduced size
    im = im.convert("RGBA") if im.mode in ("RGBA", "LA", "P", "PA") else im.convert("L")
    if max(im.size) > WORKING_SIZE:
        im.thumbnail((WORKING_SIZE, WORKING_SIZE), Image.Resampling.LANCZOS)
    return np.asarray(im)


def ink_map(image: np.ndarray) -> np.ndarray:
    """Ink strength in [0, 1] per pixel, whatever the input: RGBA strokes, white-on-black or black-on-white."""
    a = np.asarray(image)
    if a.dtype != np.uint8:
        a = np.clip(a * (255.0 if a.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    if a.ndim == 3 and a.shape[2] == 4 and a[..., 3].min() < 255:
        return a[..., 3] / 255.0  # drawn strokes on a transparent canvas: what is painted is ink
    if a.ndim == 3:
        a = a[..., :3] @ np.array([0.299, 0.587, 0.114])
    gray = a.astype(np.float64) / 255.0
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    background = float(np.median(border))
    if background > 0.5:  # dark ink on light paper: flip so ink is bright, as in MNIST
        gray, background = 1.0 - gray, 1.0 - background
    return np.clip((gray - background) / max(1.0 - background, 1e-6), 0.0, 1.0)


def to_mnist(image: np.ndarray) -> np.ndarray | None:
    """A 28x28 float image in [0, 1] (white digit on black), or None when there is no digit to see."""
    ink = ink_map(image)
    if ink.max() <= 0:
        return None
    mask = ink >= INK_THRESHOLD * ink.max()
    if mask.sum() < MIN_INK_PIXELS:
        return None
    rows, cols = np.nonzero(mask)
    crop = ink[rows.min(): rows.max() + 1, cols.min(): cols.max() + 1]

    h, w = crop.shape
    scale = 20.0 / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    box = np.asarray(Image.fromarray((crop * 255).astype(np.uint8)).resize(size, Image.Resampling.LANCZOS),
                     dtype=np.float64) / 255.0

    total = box.sum()
    if total <= 0:
        return None
    ys, xs = np.indices(box.shape)
    cy, cx = (ys * box).sum() / total, (xs * box).sum() / total
    top, left = int(round(14 - cy)), int(round(14 - cx))
    out = np.zeros((28, 28))
    # paste `box` at (top, left), clipped to the 28x28 frame
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + box.shape[0], 28), min(left + box.shape[1], 28)
    out[y0:y1, x0:x1] = box[y0 - top: y1 - top, x0 - left: x1 - left]
    return (out / out.max()).astype(np.float32)
