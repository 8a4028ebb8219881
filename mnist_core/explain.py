"""Inside the models: what each layer makes of one digit, and how a batch of digits spreads over the units.

`capture` runs a model once with forward hooks and keeps every layer's output as a named numpy array;
a CNN's names and shapes are exactly `shape_flow`'s (input, conv1, pool1, ..., flatten, fc1, fc2), so
the page that shows a shape-flow table and the page that shows the maps cannot disagree. The seed's
block is conv -> ReLU -> pool; our CNN pools before its ReLU (the two orders give the same numbers),
so `conv{i}` is ReLU of the conv's output, and the raw conv output is kept in `pre_activation`.

The rest are plain functions on those arrays: statistics per layer (the CLI's table), dead and
saturated units of an MLP over a batch, and heatmap grids drawn with numpy and PIL (no matplotlib).
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import nn

from .config import RunConfig
from .data import normalize
from .errors import ImageError
from .evaluate import load_model
from .models import CNN, MLP
from .preprocess import to_mnist

# An activation "saturates" where its curve is flat and its gradient nearly zero: a sigmoid below 0.05
# or above 0.95 passes on less than a fifth of its steepest gradient. tanh(x) = 2 sigmoid(2x) - 1, so
# the same points on its curve are -0.9 and 0.9.
SATURATION = {"sigmoid": (0.05, 0.95), "tanh": (-0.9, 0.9), "softmax": (0.05, 0.95)}
# A unit is dead when it is never positive: ReLU passes no gradient back through it, so it stays dead.
CAN_DIE = ("relu",)


@dataclass(frozen=True)
class Capture:
    """One forward pass, layer by layer; every array keeps the batch as its first axis."""
    layers: dict[str, np.ndarray]          # after each layer's activation, in order (a CNN's: shape_flow's names)
    pre_activation: dict[str, np.ndarray]  # the same layers before their activation (conv and linear outputs)
    activations: dict[str, str]            # layer -> its activation function ("relu", "sigmoid", "none", ...)
    probabilities: np.ndarray              # softmax of the last layer, (N, 10)


def as_input(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """28x28 images (one or a batch; uint8 0-255 or float 0-1, white digit on black) -> the network's input."""
    x = torch.as_tensor(np.asarray(images))
    if x.shape[-2:] != (28, 28):
        raise ValueError(f"the models take 28x28 images, got {tuple(x.shape)}; use preprocess.to_mnist first")
    return normalize(x if x.dtype == torch.uint8 else x.float()).reshape(-1, 1, 28, 28)


def _taps(model: nn.Module) -> list[tuple[str, nn.Module, bool]]:
    """(name, module, take its input instead of its output) for each place the hooks listen."""
    if isinstance(model, CNN):
        taps = []
        for i in range(len(model.features) // 3):
            conv, _, relu = model.features[3 * i: 3 * i + 3]
            taps += [(f"conv{i + 1}.pre", conv, False), (f"pool{i + 1}", relu, False)]
        return taps + [("flatten", model.fc1, True), ("fc1.pre", model.fc1, False), ("fc2", model.fc2, False)]
    if isinstance(model, MLP):
        return [("hidden1.pre", model.fc1, False), ("hidden1", model.act1, False),
                ("hidden2.pre", model.fc2, False), ("hidden2", model.act2, False), ("output", model.fc3, False)]
    raise TypeError(f"no hooks for {type(model).__name__}")


@torch.inference_mode()
def capture(model: nn.Module, x: torch.Tensor) -> Capture:
    """Every layer's output for the normalised images x (N, 1, 28, 28), from hooks on the model's own forward."""
    seen: dict[str, np.ndarray] = {}
    # The app shares one model object between its sessions' threads: while these hooks are on, another
    # session's forward pass would run them too. They listen to this thread's forward only.
    me = threading.get_ident()

    def listener(name: str, take_input: bool):
        def hook(module, inputs, output):
            if threading.get_ident() == me:
                seen[name] = (inputs[0] if take_input else output).float().cpu().numpy()
        return hook

    model.eval()
    handles = [module.register_forward_hook(listener(name, take_input)) for name, module, take_input in _taps(model)]
    try:
        logits = model(x.to(next(model.parameters()).device))
    finally:
        for handle in handles:
            handle.remove()
    probabilities = torch.softmax(logits.float(), dim=1).cpu().numpy()
    layers = {"input": x.float().cpu().numpy()}
    if isinstance(model, CNN):
        pre = {name[:-4]: a for name, a in seen.items() if name.endswith(".pre")}
        for i in range(1, len(model.features) // 3 + 1):
            layers[f"conv{i}"] = np.maximum(pre[f"conv{i}"], 0)  # the seed's conv -> ReLU; the model pools first
            layers[f"pool{i}"] = seen[f"pool{i}"]
        layers.update(flatten=seen["flatten"], fc1=np.maximum(pre["fc1"], 0), fc2=seen["fc2"])
        pre["fc2"] = seen["fc2"]
        acts = {name: "relu" for name in layers}
        acts.update(input="none", flatten="relu", fc2="none")
    else:
        pre = {"hidden1": seen["hidden1.pre"], "hidden2": seen["hidden2.pre"], "output": seen["output"]}
        layers.update(hidden1=seen["hidden1"], hidden2=seen["hidden2"], output=seen["output"])
        acts = {"input": "none", "hidden1": _activation_name(model.act1), "hidden2": _activation_name(model.act2),
                "output": "none"}
    return Capture(layers, pre, acts, probabilities)


def _activation_name(module: nn.Module) -> str:
    return {nn.ReLU: "relu", nn.Sigmoid: "sigmoid", nn.Tanh: "tanh", nn.LeakyReLU: "leaky_relu",
            nn.GELU: "gelu"}.get(type(module), type(module).__name__.lower())


def layer_shapes(capture: Capture) -> list[tuple[str, tuple[int, ...]]]:
    """(layer, shape of one image's array): for a CNN, the same list shape_flow gives."""
    return [(name, tuple(a.shape[1:])) for name, a in capture.layers.items()]


# -- numbers ---------------------------------------------------------------------------------------

def saturated(values: np.ndarray, activation: str) -> np.ndarray:
    low, high = SATURATION[activation]
    return (values < low) | (values > high)


def layer_stats(capture: Capture, index: int = 0) -> list[dict]:
    """Per layer, for image `index`: {layer, shape, mean, max, zero_fraction, saturated_fraction}.

    saturated_fraction is None where the layer's function cannot saturate (ReLU, a linear output);
    the 10 probabilities come last as their own row."""
    rows = []
    named = [(name, a[index], capture.activations[name]) for name, a in capture.layers.items()]
    for name, values, activation in named + [("probabilities", capture.probabilities[index], "softmax")]:
        rows.append({"layer": name, "shape": [int(s) for s in values.shape], "mean": float(values.mean()),
                     "max": float(values.max()), "zero_fraction": float((values == 0).mean()),
                     "saturated_fraction": float(saturated(values, activation).mean())
                     if activation in SATURATION else None})
    return rows


def unit_stats(values: np.ndarray, activation: str) -> dict:
    """One hidden layer over a batch, values (N images, units): how much of it is doing anything.

    dead_units: share of units never positive on any image (ReLU only: they pass no gradient, ever).
    saturated_units: share of units saturated on every image (sigmoid, tanh). The fractions count values."""
    flat = values.reshape(len(values), -1)
    stats = {"units": flat.shape[1], "mean": float(flat.mean()), "max": float(flat.max()),
             "zero_fraction": float((flat == 0).mean()), "saturated_fraction": None,
             "dead_units": None, "saturated_units": None}
    if activation in CAN_DIE:
        stats["dead_units"] = float((flat.max(axis=0) <= 0).mean())
    if activation in SATURATION:
        flat_tail = saturated(flat, activation)
        stats["saturated_fraction"] = float(flat_tail.mean())
        stats["saturated_units"] = float(flat_tail.all(axis=0).mean())
    return stats


def hidden_stats(capture: Capture) -> pd.DataFrame:
    """An MLP's hidden layers over the captured batch: one row per layer (see unit_stats)."""
    rows = [{"layer": name, "activation": capture.activations[name],
             **unit_stats(capture.layers[name], capture.activations[name])}
            for name in capture.layers if name.startswith("hidden")]
    shares = ["saturated_fraction", "dead_units", "saturated_units"]
    return pd.DataFrame(rows).astype({c: float for c in shares})  # None -> NaN: "does not apply"


def activation_histogram(capture: Capture, bins: int = 40) -> pd.DataFrame:
    """Each hidden layer's activations over the batch as a histogram: rows (layer, activation, start, end, share)."""
    frames = []
    for name in (n for n in capture.layers if n.startswith("hidden")):
        values = capture.layers[name].ravel()
        low, high = float(values.min()), float(values.max())
        if capture.activations[name] in ("sigmoid", "tanh"):  # the whole range, so the flat tails show
            low, high = (0.0, 1.0) if capture.activations[name] == "sigmoid" else (-1.0, 1.0)
        counts, edges = np.histogram(values, bins=bins, range=(low, high if high > low else low + 1))
        frames.append(pd.DataFrame({"layer": name, "activation": capture.activations[name],
                                    "start": edges[:-1], "end": edges[1:], "share": counts / max(len(values), 1)}))
    return pd.concat(frames, ignore_index=True)


def first_layer_filters(model: nn.Module) -> np.ndarray:
    """A CNN's first-layer filters (32, k, k), or an MLP's first-layer weights as images (hidden, 28, 28)."""
    if isinstance(model, CNN):
        return model.features[0].weight.detach().float().cpu().numpy()[:, 0]
    return model.fc1.weight.detach().float().cpu().numpy().reshape(-1, 28, 28)


def most_activated_units(model: MLP, capture: Capture, top: int = 16, index: int = 0) -> pd.DataFrame:
    """The MLP's first hidden units the image excites most: rows (unit, activation), strongest first."""
    activation = capture.layers["hidden1"][index]
    order = np.argsort(-activation, kind="stable")[:top]
    return pd.DataFrame({"unit": order, "activation": activation[order]})


def most_active_channels(maps: np.ndarray, top: int | None) -> np.ndarray:
    """Indices of the `top` channels of (C, H, W) with the largest mean, strongest first (all when top is None)."""
    order = np.argsort(-maps.reshape(len(maps), -1).mean(axis=1), kind="stable")
    return order if top is None else order[:top]


# -- pictures --------------------------------------------------------------------------------------

# viridis at nine evenly spaced points (its published sRGB values), interpolated into a 256-entry table
_ANCHORS = np.array([[68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141],
                     [39, 173, 129], [92, 200, 99], [170, 220, 50], [253, 231, 37]], dtype=np.float64)
VIRIDIS = np.stack([np.interp(np.linspace(0, 8, 256), np.arange(9), _ANCHORS[:, c]) for c in range(3)],
                   axis=1).round().astype(np.uint8)
GAP_COLOUR = 255  # white between the tiles
TILE = 56  # pixels a map's side is scaled up to (at most), so a 2x2 map is as visible as a 28x28 one
GAP = 2


def heatmap(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """(H, W) values -> (H, W, 3) uint8 colours, low -> dark purple, high -> yellow."""
    scaled = (np.asarray(values, dtype=np.float64) - low) / (high - low if high > low else 1.0)
    return VIRIDIS[np.clip(np.nan_to_num(scaled * 255), 0, 255).astype(np.uint8)]


def as_maps(array: np.ndarray) -> np.ndarray:
    """One image's layer as (C, H, W) maps: a vector becomes one near-square map, padded with NaN."""
    if array.ndim == 3:
        return array
    if array.ndim == 2:
        return array[None]
    side = math.ceil(math.sqrt(array.size))
    padded = np.full(side * side, np.nan)
    padded[: array.size] = array.ravel()
    return padded.reshape(1, -1, side)[:, : math.ceil(array.size / side)]


def grid(maps: np.ndarray, columns: int | None = None) -> np.ndarray:
    """(C, H, W) maps -> one RGB image of C heatmaps on one colour scale (the layer's min to max), so
    that a bright tile means a strong channel, not just a channel strong relative to itself."""
    maps = np.asarray(maps, dtype=np.float64)
    channels, height, width = maps.shape
    columns = columns or math.ceil(math.sqrt(channels))
    rows = math.ceil(channels / columns)
    scale = max(1, (TILE if channels > 1 else 4 * TILE) // max(height, width))  # a lone map: bigger
    finite = maps[np.isfinite(maps)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    tiles = heatmap(maps, low, high)
    tiles[~np.isfinite(maps)] = GAP_COLOUR
    tiles = tiles.repeat(scale, 1).repeat(scale, 2)
    # every tile gets a gap below and to its right, empty tiles fill the last row; then one reshape lays
    # them out row by row, and the last gap is cut off
    tiles = np.pad(tiles, ((0, rows * columns - channels), (0, GAP), (0, GAP), (0, 0)), constant_values=255)
    _, tile_h, tile_w, _ = tiles.shape
    out = tiles.reshape(rows, columns, tile_h, tile_w, 3).transpose(0, 2, 1, 3, 4)
    out = out.reshape(rows * tile_h, columns * tile_w, 3)
    return np.ascontiguousarray(out[:-GAP, :-GAP])


def layer_picture(array: np.ndarray, top: int | None = None) -> np.ndarray:
    """One image's layer as a grid of heatmaps: every channel, or the `top` most active, strongest first."""
    maps = as_maps(array)
    if len(maps) > 1:
        maps = maps[most_active_channels(maps, top)]
    return grid(maps)


def shape_text(shape: tuple[int, ...] | list[int]) -> str:
    return "x".join(str(s) for s in shape)


def save_pictures(model: nn.Module, capture: Capture, out_dir: Path, index: int = 0) -> list[Path]:
    """One PNG per layer (named like 03-conv2-64x14x14.png), then the first layer's filters or weights."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for n, (name, a) in enumerate(capture.layers.items()):
        paths.append(out_dir / f"{n:02d}-{name}-{shape_text(a.shape[1:])}.png")
        Image.fromarray(layer_picture(a[index])).save(paths[-1])
    paths.append(out_dir / f"{n + 1:02d}-probabilities-10.png")
    Image.fromarray(layer_picture(capture.probabilities[index])).save(paths[-1])
    weights = first_layer_filters(model)
    what = "filters-conv1" if isinstance(model, CNN) else "weights-hidden1"
    if isinstance(model, MLP):  # the units this image excites most first
        weights = weights[np.argsort(-capture.layers["hidden1"][index], kind="stable")]
    paths.append(out_dir / f"{what}-{shape_text(weights.shape)}.png")
    Image.fromarray(grid(weights)).save(paths[-1])
    return paths


# -- the CLI's command -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Explanation:
    rows: list[dict]    # layer_stats for the image
    pictures: list[Path]
    digit: int          # what the model reads


def explain_image(config: RunConfig, weights: dict[str, torch.Tensor], image: np.ndarray, out_dir: Path) -> Explanation:
    """Everything `python -m mnist_core explain` prints and writes, for one image file's pixels."""
    digit = to_mnist(image)
    if digit is None:
        raise ImageError("no digit found: the image is blank (draw or photograph one digit, dark on light or "
                         "light on dark)")
    model = load_model(config, weights)
    seen = capture(model, as_input(digit))
    return Explanation(layer_stats(seen), save_pictures(model, seen, out_dir), int(seen.probabilities[0].argmax()))
