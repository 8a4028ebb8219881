"""Phone-photo-like images of MNIST digits, for testing the upload path of the Draw page.

A digit written on paper and photographed: grey paper lit unevenly from a random side, dark-grey
ink, the digit at a realistic size somewhere off-centre on a 640x480 frame (in half the photos with a
strip of dark table beyond the sheet's edge along one side), turned a few degrees,
slightly out of focus, sensor noise, saved as a JPEG at quality 75. Everything is drawn from `rng`,
so a seed gives the same photos on every machine.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

WIDTH, HEIGHT = 640, 480


def as_photo(digit: np.ndarray, rng: np.random.Generator, edge: bool | None = None) -> bytes:
    """A 28x28 [0, 1] digit (white on black) as the JPEG bytes of a 640x480 photo of it on paper;
    `edge`: whether the table shows beyond the sheet (None: a coin toss)."""
    size = int(rng.uniform(6, 11) * 28)  # MNIST's 20-pixel box becomes a 120-220 pixel tall digit
    big = Image.fromarray((digit * 255).astype(np.uint8)).resize((size, size), Image.Resampling.BICUBIC)
    big = big.rotate(rng.uniform(-8, 8), resample=Image.Resampling.BICUBIC)
    # Half the photos catch the dark table beyond the sheet's edge, along one side; the digit is on the sheet.
    edge = rng.random() < 0.5 if edge is None else edge
    strip, side = int(rng.integers(15, 50)), int(rng.integers(4))  # side: top, bottom, left, right
    margin = [10, 10, 10, 10]
    if edge:
        margin[side] += strip
    top = int(rng.integers(margin[0], HEIGHT - size - margin[1] + 1))
    left = int(rng.integers(margin[2], WIDTH - size - margin[3] + 1))
    ink = np.zeros((HEIGHT, WIDTH))
    ink[top: top + size, left: left + size] = np.asarray(big) / 255.0

    # Light falls off linearly along a random direction: one side of the frame is 25-45% darker.
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    along = (xs - WIDTH / 2) * np.cos(angle) + (ys - HEIGHT / 2) * np.sin(angle)
    light = 1.0 - rng.uniform(0.25, 0.45) * (along - along.min()) / (along.max() - along.min())
    paper, pen = rng.uniform(0.6, 0.85), rng.uniform(0.1, 0.3)  # grey paper, dark-grey (not black) ink
    reflect = paper + (pen - paper) * ink
    if edge:
        table = np.zeros((HEIGHT, WIDTH), dtype=bool)
        table[[np.s_[:strip, :], np.s_[-strip:, :], np.s_[:, :strip], np.s_[:, -strip:]][side]] = True
        reflect = np.where(table, rng.uniform(0.05, 0.2), reflect)
    photo = light * reflect * 255
    photo = Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(rng.uniform(0.6, 1.5)))
    noisy = np.asarray(photo, dtype=np.float64) + rng.normal(0, rng.uniform(3, 8), (HEIGHT, WIDTH))
    # A warm tint, as under a lamp: the JPEG is colour, as a phone's is.
    rgb = np.clip(noisy[..., None] * np.array([1.0, 0.96, 0.88]), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(out, format="JPEG", quality=75)
    return out.getvalue()


def blank_photo(rng: np.random.Generator, edge: bool | None = None) -> bytes:
    """The same paper, light and noise with nothing written on it."""
    return as_photo(np.zeros((28, 28)), rng, edge)
