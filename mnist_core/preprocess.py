"""From a drawing or a photo of a digit to the 28x28 image a model expects, MNIST's way.

MNIST's digits were cropped to their ink, scaled into a 20x20 box keeping their aspect ratio, and
placed in a 28x28 image with their centre of mass at the centre. A drawing off a canvas (280x280,
thick strokes, anywhere on the canvas) looks nothing like that until it goes through the same steps.

A photo of a digit on paper needs one more: the paper is not one grey. A lamp or a window lights one
side more than the other, so the paper's level is estimated as a smooth surface and subtracted before
Otsu's threshold separates ink from paper; the largest inked parts are the digit, specks are not.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, UnidentifiedImageError

from .errors import ImageError, ImageSizeError
from .i18n import N_

INK_THRESHOLD = 0.1  # of the strongest ink: fainter pixels are background noise
MIN_INK_PIXELS = 4   # fewer than this and there is no digit to read
MAX_UPLOAD_PIXELS = 25_000_000  # a photo from a phone is ~12 MP; anything far bigger is not a digit to read
MIN_UPLOAD_SIDE = 8  # pixels: a smaller image cannot hold a digit anyone could read (MNIST's are 20 in 28)
MIN_CONTRAST = 0.04  # ink within 10 grey levels of the paper is not a digit anyone can see
INK_OVER_NOISE = 6  # and ink must stand this many noise deviations clear of the paper
NOISE_DEVIATIONS = 4  # paper pixels this far from the paper's level are rare enough to call ink
WORKING_SIZE = 560   # larger images are shrunk to this first: a digit needs no more to become 20x20


def load_image(path: str | Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return _as_array(im)
    except FileNotFoundError:
        raise ImageError(N_("No such image file: {path}"), path=str(path)) from None
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        raise ImageError(N_("{path} is not an image that can be read ({reason})."), path=str(path), reason=str(e)) from None


def load_image_bytes(data: bytes, name: str = "") -> np.ndarray:
    """An uploaded file's bytes as an array; anything that is not a readable image is an ImageError."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            return _as_array(im)
    except ImageSizeError:
        raise  # readable, but not the size of a digit: its own message says so
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        if name:
            raise ImageError(N_("{name} is not an image that can be read; upload a PNG or JPEG of one digit."),
                             name=name) from None
        raise ImageError(N_("The upload is not an image that can be read; upload a PNG or JPEG of one digit.")) from None


def _as_array(im: Image.Image) -> np.ndarray:
    if im.width * im.height > MAX_UPLOAD_PIXELS:
        raise ImageSizeError(N_("The image is {width}x{height} pixels, too large; crop it to the digit."),
                             width=im.width, height=im.height)
    if min(im.size) < MIN_UPLOAD_SIDE:
        raise ImageSizeError(N_("The image is {width}x{height} pixels, too small to hold a digit; upload one at least "
                                "{least} pixels on each side."), width=im.width, height=im.height,
                             least=MIN_UPLOAD_SIDE)
    im.draft("L", (WORKING_SIZE, WORKING_SIZE))  # JPEGs decode straight at a reduced size
    im = im.convert("RGBA") if im.mode in ("RGBA", "LA", "P", "PA") else im.convert("L")
    if max(im.size) > WORKING_SIZE:
        im.thumbnail((WORKING_SIZE, WORKING_SIZE), Image.Resampling.LANCZOS)
    return np.asarray(im)


def ink_map(image: np.ndarray) -> np.ndarray:
    """Ink strength in [0, 1] per pixel, whatever the input: RGBA strokes, white-on-black or black-on-white,
    a clean canvas or a photo of paper under uneven light. All zeros when there is no digit to see."""
    a = np.asarray(image)
    if a.dtype != np.uint8:
        a = np.clip(a * (255.0 if a.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    if a.ndim == 3 and a.shape[2] == 4 and a[..., 3].min() < 255:
        return a[..., 3] / 255.0  # drawn strokes on a transparent canvas: what is painted is ink
    if a.ndim == 3:
        a = a[..., :3] @ np.array([0.299, 0.587, 0.114])
    gray = a.astype(np.float64) / 255.0

    # Paper under a lamp is brighter on one side than the other, often by more than the ink differs
    # from the paper; a single background level would call the darker side "ink". A smooth surface
    # fitted to the paper follows the light, but not when ink covers half the image (a close crop):
    # of the two, the estimate that leaves the paper flattest is the paper. Then decide whether the
    # ink is the dark or the bright side.
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    spread = lambda r: np.median(np.abs(r - np.median(r)))  # noqa: E731
    residual = min(gray - np.median(border), gray - background(gray), key=spread)
    dark, bright = np.percentile(residual, [0.5, 99.5])
    if -dark > bright:  # dark ink on light paper: flip so ink is bright, as in MNIST
        residual = -residual

    # Otsu's threshold splits paper from ink, but never inside the paper's noise: a thin "1" is too few
    # pixels for Otsu to see as a class of its own, and it then splits the noise in two. The noise is
    # measured between neighbouring pixels, the same on paper and in wide strokes.
    noise = 1.4826 * float(np.median(np.abs(np.diff(residual, axis=1)))) / np.sqrt(2)
    # Beyond the paper (the table past the sheet's edge, a shadow across the frame) there is often
    # something darker than any ink: what runs along the image's border is set aside and the
    # threshold found again without it.
    aside = np.zeros(gray.shape, dtype=bool)
    for _ in range(3):
        threshold = max(otsu_threshold(residual[~aside]), NOISE_DEVIATIONS * noise)
        keep, edges = digit_parts((residual > threshold) & ~aside)
        if not edges.any():
            break
        aside |= np.asarray(Image.fromarray(edges.astype(np.uint8) * 255).filter(ImageFilter.MaxFilter(5))) > 0
    if not keep.any():
        return np.zeros_like(gray)
    # The ink must stand well clear of the paper's noise, or there is nothing written (a photo of
    # blank paper would otherwise become a digit of noise).
    level = float(np.percentile(residual[keep], 90))
    if level < max(MIN_CONTRAST, INK_OVER_NOISE * noise):
        return np.zeros_like(gray)
    # The digit's own strokes, with a rim around them for the soft edges the threshold cut off.
    rim = np.asarray(Image.fromarray(keep.astype(np.uint8) * 255).filter(ImageFilter.MaxFilter(5))) > 0
    return np.clip(residual / level, 0.0, 1.0) * rim


def background(gray: np.ndarray, blocks: int = 24) -> np.ndarray:
    """A smooth (quadratic) surface through the paper's level, however thick the strokes on it.

    The image is cut into about `blocks` blocks along its long side; each block's median is the
    paper's level there unless ink covers most of it. A quadratic in x and y is fitted to the blocks,
    and blocks far from the fit (ink, not paper) are dropped and the fit repeated."""
    h, w = gray.shape
    size = max(1, max(h, w) // blocks)
    rows, cols = h // size, w // size
    if rows == 0 or cols == 0:
        return np.full_like(gray, np.median(gray))
    level = np.median(gray[:rows * size, :cols * size].reshape(rows, size, cols, size).transpose(0, 2, 1, 3)
                      .reshape(rows, cols, -1), axis=2).ravel()
    yb, xb = np.mgrid[0:rows, 0:cols]
    terms = lambda y, x: np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=-1)  # noqa: E731
    # Coordinates in [-1, 1]-ish units so the least-squares system is well conditioned.
    basis = terms((yb.ravel() + 0.5) * size / h * 2 - 1, (xb.ravel() + 0.5) * size / w * 2 - 1)
    # Start from the blocks near the median level: most of a photo is paper, and a fit through every
    # block would be pulled up by thick strokes enough to lose the paper itself.
    spread = max(1.4826 * float(np.median(np.abs(level - np.median(level)))), 1 / 255)
    paper = np.abs(level - np.median(level)) <= 3 * spread
    for _ in range(5):
        coef = np.linalg.lstsq(basis[paper], level[paper], rcond=None)[0]
        off = level - basis @ coef
        spread = max(1.4826 * float(np.median(np.abs(off[paper]))), 1 / 255)
        paper = np.abs(off) <= 3 * spread
        if paper.sum() < basis.shape[1]:
            break
    y, x = np.mgrid[0:h, 0:w]
    return terms((y + 0.5) / h * 2 - 1, (x + 0.5) / w * 2 - 1) @ coef


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """The level that splits `values` into two classes with the largest between-class variance (Otsu)."""
    if values.size == 0 or values.min() == values.max():
        return float(values.max()) if values.size else 0.0  # one class only: nothing lies above it
    counts, edges = np.histogram(values, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    weight = np.cumsum(counts)
    mean = np.cumsum(counts * centres)
    total, total_mean = weight[-1], mean[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (total_mean * weight - mean * total) ** 2 / (weight * (total - weight))
    if bins < 2 or not np.isfinite(between[:-1]).any():  # one level everywhere (a blank image): nothing above it
        return float(edges[-1])
    return float(centres[int(np.nanargmax(between[:-1]))])


def digit_parts(mask: np.ndarray, share: float = 0.1, cells: int = 140) -> tuple[np.ndarray, np.ndarray]:
    """The digit in `mask`, and what runs along the image's border, as two masks.

    The mask's 8-connected parts are found on a grid of at most `cells` cells along the long side (a
    digit needs no finer one): labels spread as the minimum over neighbours, each cell jumping to its
    label's label, so a part of any shape is labelled in a few dozen numpy passes. A part that lies
    along the image's border (for half a side's length, all sides together) is an edge (of the sheet,
    of a shadow), not a digit. Of the rest, the digit is every part with at least `share` of the
    largest one's pixels: specks are left out, a stroke the threshold broke in two is not."""
    f = -(-max(mask.shape) // cells)
    h, w = -(-mask.shape[0] // f), -(-mask.shape[1] // f)
    grid = np.pad(mask, ((0, h * f - mask.shape[0]), (0, w * f - mask.shape[1])))
    grid = grid.reshape(h, f, w, f).any(axis=(1, 3))
    none = h * w
    labels = np.where(grid, np.arange(none).reshape(h, w), none)
    while True:
        padded = np.pad(labels, 1, constant_values=none)
        spread = np.min([padded[1 + dy: 1 + dy + h, 1 + dx: 1 + dx + w]
                         for dy in (-1, 0, 1) for dx in (-1, 0, 1)], axis=0)
        flat = np.append(np.where(grid, spread, none).ravel(), none)
        spread = np.where(grid, flat[flat[spread]], none)  # jump: take the label of the label
        if np.array_equal(spread, labels):
            break
        labels = spread

    digit, edges = [], []
    for part in np.unique(labels[grid]):
        rows, cols = np.nonzero(labels == part)
        # A digit cropped close touches the border with a stroke's end or two; a sheet's edge or the
        # table's corner lies along it.
        along = ((rows == 0).sum() + (rows == h - 1).sum()) / w + ((cols == 0).sum() + (cols == w - 1).sum()) / h
        (edges if along >= 0.5 and h > 2 and w > 2 else digit).append((part, len(rows)))
    largest = max((n for _, n in digit), default=0)
    kept = [part for part, n in digit if n >= share * largest]

    def full(parts: list[int]) -> np.ndarray:
        small = np.isin(labels, parts)
        return np.repeat(np.repeat(small, f, axis=0), f, axis=1)[:mask.shape[0], :mask.shape[1]] & mask
    return full(kept), full([part for part, _ in edges])


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
    # By centre of mass, as MNIST, but never past the frame and one pixel clear of it: a tall "7" (its mass
    # high, in the bar) would otherwise lose or touch with the foot of its stem the bottom edge; MNIST's
    # own 7s end in row 26 (the median) of 0-27.
    top = int(np.clip(round(14 - cy), 1, 27 - box.shape[0]))
    left = int(np.clip(round(14 - cx), 1, 27 - box.shape[1]))
    out = np.zeros((28, 28))
    # paste `box` at (top, left), clipped to the 28x28 frame
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + box.shape[0], 28), min(left + box.shape[1], 28)
    out[y0:y1, x0:x1] = box[y0 - top: y1 - top, x0 - left: x1 - left]
    return (out / out.max()).astype(np.float32)
