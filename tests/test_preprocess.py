"""The Draw page's preprocessing: a digit as it comes off the canvas must read as well as MNIST's own.

MNIST test digits are redrawn the way a student's drawing arrives: on a 280x280 canvas, white ink on
black, bigger or smaller than MNIST's, away from the centre, with thicker strokes. After to_mnist a
trained MLP must read them within 2 points of its accuracy on the original images.

Photos of digits written on paper (tests/photos.py: uneven light, grey ink, noise, blur, rotation,
JPEG, 640x480, the table beyond the sheet's edge in half of them) go through the same to_mnist and must read within 3 points of the same digits'
originals. Both bounds compare two accuracies of one model on the same digits, and the drawings and
photos are made from a fixed seed, so the bound is about the preprocessing, not about the machine.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch.nn import functional as F

from mnist_core import RunConfig
from mnist_core.data import denormalize
from mnist_core.evaluate import load_model, predict
from mnist_core.preprocess import load_image_bytes, to_mnist
from mnist_core.train import train
from photos import as_photo, blank_photo

CANVAS = 280
N_DIGITS = 400
N_PHOTOS = 200


def as_canvas_drawing(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 28x28 [0, 1] digit redrawn as a 280x280 RGBA canvas image: scaled, moved, strokes thickened."""
    rows, cols = np.nonzero(digit > 0.05)
    ink = digit[rows.min(): rows.max() + 1, cols.min(): cols.max() + 1]
    height = int(rng.uniform(90, 250))  # MNIST's 20-pixel box x10 is 200: smaller and larger than that
    width = max(4, round(ink.shape[1] * height / ink.shape[0]))
    big = np.asarray(Image.fromarray((ink * 255).astype(np.uint8)).resize((width, height), Image.Resampling.BICUBIC))
    thicken = int(rng.integers(1, 5)) * 2 + 1  # a 3 to 9 pixel max filter: a fatter brush than MNIST's pen
    big = F.max_pool2d(torch.from_numpy(big.copy()).float()[None, None], thicken, stride=1, padding=thicken // 2)[0, 0]
    big = big.numpy().astype(np.uint8)[:CANVAS, :CANVAS]
    h, w = big.shape
    top, left = int(rng.integers(0, CANVAS - h + 1)), int(rng.integers(0, CANVAS - w + 1))
    rgba = np.zeros((CANVAS, CANVAS, 4), dtype=np.uint8)
    rgba[..., 3] = 255  # the canvas sends its black background, fully opaque
    for channel in range(3):
        rgba[top: top + h, left: left + w, channel] = big
    return rgba


@pytest.fixture(scope="module")
def mlp(mnist):
    config = RunConfig(model="mlp", init="xavier_uniform", epochs=1, train_size=30_000, batch_size=100)
    result, _ = train(config, mnist)
    return load_model(config, result.weights)


def test_canvas_drawings_read_as_well_as_mnist(mnist, mlp):
    rng = np.random.default_rng(0)
    originals = denormalize(mnist.test_x[:N_DIGITS]).squeeze(1).numpy()
    truth = mnist.test_y[:N_DIGITS].numpy()
    drawings = [as_canvas_drawing(d, rng) for d in originals]
    processed = np.stack([to_mnist(d) for d in drawings])

    original_acc = (predict(mlp, originals).argmax(1) == truth).mean()
    drawn_acc = (predict(mlp, processed).argmax(1) == truth).mean()
    assert original_acc > 0.9
    assert drawn_acc >= original_acc - 0.02, f"drawn {drawn_acc:.3f} vs original {original_acc:.3f}"


def test_photos_of_digits_on_paper_read_as_well_as_mnist(mnist, mlp):
    rng = np.random.default_rng(1)
    originals = denormalize(mnist.test_x[:N_PHOTOS]).squeeze(1).numpy()
    truth = mnist.test_y[:N_PHOTOS].numpy()
    processed = [to_mnist(load_image_bytes(as_photo(d, rng), name="photo.jpg")) for d in originals]
    assert all(p is not None and p.shape == (28, 28) for p in processed)

    original_acc = (predict(mlp, originals).argmax(1) == truth).mean()
    photo_acc = (predict(mlp, np.stack(processed)).argmax(1) == truth).mean()
    assert original_acc > 0.9
    assert photo_acc >= original_acc - 0.03, f"photos {photo_acc:.3f} vs originals {original_acc:.3f}"


def test_a_photo_of_blank_paper_has_no_digit():
    rng = np.random.default_rng(2)
    for edge in [False, True] * 3:  # the light, paper and noise change from photo to photo
        # the dark table beyond the sheet's edge is no digit either
        assert to_mnist(load_image_bytes(blank_photo(rng, edge))) is None


def test_a_tall_digit_keeps_all_its_ink_in_the_frame():
    # A "7": a heavy bar on top of a thin stem. Its centre of mass is high, so centring by mass alone
    # would push the stem's foot off the bottom of the 28x28 frame.
    seven = np.zeros((200, 200))
    seven[20:50, 40:160] = 1.0
    seven[20:190, 140:150] = 1.0
    out = to_mnist(seven)
    rows = np.nonzero(out.max(axis=1) > 0.1)[0]
    assert rows.max() - rows.min() + 1 >= 19  # the whole 20-pixel box (centring by mass alone kept 18 rows)
