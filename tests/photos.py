"""Phone-photo-like images of MNIST digits, for testing the upload path of the Draw page.

A digit written on paper and photographed: grey paper lit unevenly from a random side, dark-grey
ink, the digit at a realistic size somewhere off-centre on a 640x480 frame, turned a few degrees,
slightly out of focus, sensor noise, saved as a JPEG at quality 75. Everything is drawn from `rng`,
so a seed gives the same photos on every machine.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

WIDTH, HEIGHT = 640, 480


def as_photo(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """A 28x28 [0, 1] digit (white on black) as the JPEG bytes of a 640x480 photo of it on paper."""
    size = int(rng.uniform(6, 11) * 28)  # MNIST's 20-pixel box becomes a 120-220 pixel tall digit
    big = Image.fromarray((digit * 255).astype(np.uint8)).resize((size, size), Image.Resampling.BICUBIC)
    big = big.rotate(rng.uniform(-8, 8), resample=Image.Resampling.BICUBIC)
    ink = np.zeros((HEIGHT, WIDTH))
    top = int(rng.integers(10, HEIGHT - size - 10 + 1))
    left = int(rng.integers(10, WIDTH - size - 10 + 1))
    ink[top: top + size, left: left + size] = np.asarray(big) / 255.0

    # Light falls off linearly along a random direction: one side of the frame is 25-45% darker.
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    along = (xs - WIDTH / 2) * np.cos(angle) + (ys - HEIGHT / 2) * np.sin(angle)
    light = 1.0 - rng.uniform(0.25, 0.45) * (along - along.min()) / (along.max() - along.min())
    paper, pen = rng.uniform(0.6, 0.85), rng.uniform(0.1, 0.3)  # grey paper, dark-grey (not black) ink
    photo = light * (paper + (pen - paper) * ink) * 255
    photo = Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(rng.uniform(0.6, 1.5)))
    noisy = np.asarray(photo, dtype=np.float64) + rng.normal(0, rng.uniform(3, 8), (HEIGHT, WIDTH))
    # A warm tint, as under a lamp: the JPEG is colour, as a phone's is.
    rgb = np.clip(noisy[..., None] * np.array([1.0, 0.96, 0.88]), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(out, format="JPEG", quality=75)
    return out.getvalue()


def blank_photo(rng: np.random.Generator) -> bytes:
    """The same paper, light and noise with nothing written on it."""
    return as_photo(np.zeros((28, 28)), rng)
