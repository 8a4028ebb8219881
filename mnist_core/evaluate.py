"""What a trained run gets right and wrong: predictions, confusion matrix, misclassified digits."""
from __future__ import annotations

from dataclasses import dataclass
from itertools import zip_longest

import numpy as np
import pandas as pd
import torch
from torch import nn

from .config import RunConfig
from .data import MnistData, denormalize, normalize
from .models import build_model
from .train import EVAL_BATCH


SURE = 0.995  # a model this sure of an answer reads "100%" (or "99%"): the page says why


def saturates(config: RunConfig) -> bool:
    """Whether the model starts from the seed's normal(0, 1) weights (an MLP's init; the CNN never uses it): its
    outputs are so large that softmax saturates, and it is (almost) 100% sure of every answer, right or wrong."""
    return config.model == "mlp" and config.init == "normal"


def load_model(config: RunConfig, weights: dict[str, torch.Tensor], device: str = "cpu") -> nn.Module:
    model = build_model(config)
    model.load_state_dict(weights)
    return model.to(device).eval()


@torch.inference_mode()
def probabilities(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Softmax probabilities (N, 10) for normalised images (N, 1, 28, 28), in batches."""
    model.eval()
    device = next(model.parameters()).device
    out = [torch.softmax(model(x[i:i + EVAL_BATCH].to(device)).float(), dim=1) for i in range(0, len(x), EVAL_BATCH)]
    return torch.cat(out).cpu()


def predict(model: nn.Module, images: np.ndarray | torch.Tensor) -> np.ndarray:
    """Probabilities (N, 10) for a batch of 28x28 images: uint8 0-255 or float 0-1, white digit on black."""
    x = torch.as_tensor(np.asarray(images))
    if x.ndim == 2:
        x = x.unsqueeze(0)
    if x.shape[-2:] != (28, 28):
        raise ValueError(f"predict takes 28x28 images, got {tuple(x.shape)}; preprocess them first")
    x = normalize(x if x.dtype == torch.uint8 else x.float()).reshape(-1, 1, 28, 28)
    return probabilities(model, x).numpy()


def confusion_matrix(model: nn.Module, data: MnistData, probs: torch.Tensor | None = None) -> np.ndarray:
    """counts[true, predicted] over the test set (`probs`: the test set's probabilities, if already computed)."""
    probs = probabilities(model, data.test_x) if probs is None else probs
    predicted = probs.argmax(1).numpy()
    truth = data.test_y.cpu().numpy()
    return np.bincount(truth * 10 + predicted, minlength=100).reshape(10, 10)


@dataclass(frozen=True)
class Mistake:
    index: int            # position in the test set
    image: np.ndarray     # 28x28 float in [0, 1]
    true_label: int
    predicted: int
    confidence: float     # the model's probability for its (wrong) prediction


def misclassified(model: nn.Module, data: MnistData, limit: int = 36, probs: torch.Tensor | None = None) -> list[Mistake]:
    """The test digits the model gets wrong, most confidently wrong first."""
    probs = probabilities(model, data.test_x) if probs is None else probs
    confidence, predicted = probs.max(1)
    truth = data.test_y.cpu()
    wrong = torch.nonzero(predicted != truth).flatten()
    wrong = wrong[torch.argsort(confidence[wrong], descending=True)][:limit]
    images = denormalize(data.test_x[wrong.to(data.device)].cpu()).squeeze(1).numpy()
    return [Mistake(int(i), images[n], int(truth[i]), int(predicted[i]), float(confidence[i]))
            for n, i in enumerate(wrong.tolist())]


@dataclass(frozen=True)
class EvaluationReport:
    confusion: np.ndarray       # counts[true, predicted]
    mistakes: list[Mistake]     # the most confident mistakes first
    accuracy: float


def evaluate_test_set(model: nn.Module, data: MnistData, limit: int = 36) -> EvaluationReport:
    """Confusion matrix and mistakes from one pass over the test set (a CNN's pass takes seconds on a CPU)."""
    probs = probabilities(model, data.test_x)
    counts = confusion_matrix(model, data, probs)
    return EvaluationReport(counts, misclassified(model, data, limit, probs), float(np.trace(counts)) / counts.sum())


def confusion_table(counts: np.ndarray) -> pd.DataFrame:
    """counts[true, predicted] as tidy rows (true, predicted, count), the shape a heatmap draws."""
    true, predicted = np.indices(counts.shape)
    return pd.DataFrame({"true": true.ravel(), "predicted": predicted.ravel(), "count": counts.ravel().astype(int)})


def probability_table(probs: np.ndarray) -> pd.DataFrame:
    """One image's 10 probabilities as tidy rows (digit, probability)."""
    return pd.DataFrame({"digit": np.arange(10), "probability": np.asarray(probs, dtype=float).ravel()})


def best_runs(runs, datasets: tuple[str, ...] = ("mnist",), limit: int = 4) -> list:
    """The Draw page's default models: the most accurate finished run of each kind of network (an MLP's
    activations and width, a CNN's filter, stride and padding) on `datasets` (on any dataset when none
    is there), MLPs and CNNs taking turns from the best, at most `limit`, MLPs first. So a student sees a
    model that reads well of each kind, not whatever was trained last (which may be a 22% run)."""
    finished = [r for r in runs if r.status == "ok" and r.final is not None]
    chosen = [r for r in finished if r.config.dataset in datasets] or finished
    best = {}
    for run in chosen:
        kind = (run.config.dataset, run.config.model, _architecture(run.config))
        if kind not in best or run.final.test_acc > best[kind].final.test_acc:
            best[kind] = run
    by_model = {m: sorted((r for r in best.values() if r.config.model == m), key=lambda r: -r.final.test_acc)
                for m in ("mlp", "cnn")}
    turns = [r for pair in zip_longest(by_model["mlp"], by_model["cnn"]) for r in pair if r is not None][:limit]
    return sorted(turns, key=lambda r: r.config.model != "mlp")  # stable: the best first within each model


def _architecture(c: RunConfig) -> tuple:
    return (tuple(c.activations), c.hidden) if c.model == "mlp" else (c.kernel_size, c.stride, c.padding,
                                                                      c.conv_layers)
