"""The Draw page's preprocessing: a digit as it comes off the canvas must read as well as MNIST's own.

MNIST test digits are redrawn the way a student's drawing arrives: on a 280x280 canvas, white ink on
black, bigger or smaller than MNIST's, away from the centre, with thicker strokes. After to_mnist a
trained MLP must read them within 2 points of its accuracy on the original images.
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
from mnist_core.preprocess import to_mnist
from mnist_core.train import train

CANVAS = 280
N_DIGITS = 400


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
