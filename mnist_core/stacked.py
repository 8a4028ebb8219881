"""K MLPs trained as one: a sweep over settings that keep the model's shape, stacked.

A learning-rate sweep of four MLPs is four copies of one computation with different numbers. Stacked,
the weights of layer i become one (K, out, in) tensor and each layer is one batched matmul, so the
costs that dominate small batches on a CPU (Python, op dispatch, the autograd graph, kernels too small
to fill the cores) are paid once for all K models instead of K times.

Each model gets exactly what its separate run (train.train) would get, which the tests check:
- its initial weights come from train.seeded_model with its own config and seed;
- its batches come from a shuffle generator seeded like train's (models sharing a seed share batches);
- its optimizer step is train.FusedOptimizer's, the one its separate run takes, on its slices of the
  stacked tensors;
- its metrics, divergence, snapshots and progress are kept apart: a diverged model stops being
  trained and reported, the others go on.
Only the float rounding differs (a batched matmul sums in another order than K small ones).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict
from typing import Any, Callable, Iterable

import torch
from torch.nn import functional as F

from .config import RunConfig
from .data import MnistData
from .models import ACTIVATION_FUNCTIONS
from .train import (EVAL_BATCH, FUSED_DEVICES, FUSED_OPTIMIZERS, PROGRESS_UPDATES_PER_EPOCH, EpochMetrics,
                    FusedOptimizer, RunResult, StopFn, autocast, flush_denormals, seeded_model)

StackProgressFn = Callable[[int, int, float, dict[str, Any]], None]  # (model index, epoch, fraction, metrics)

MAX_STACK = 8  # past this, the matmuls are big enough alone, and the first results would only come later


def stack_key(config: RunConfig, device: str) -> RunConfig | None:
    """Configs with equal keys can train together; None for a config that cannot be stacked.

    Inside a stack the learning rate, init, seed, optimizer and momentum, and activations may differ.
    Everything else (shape, batch size, training-set size, epochs, precision) is shared, so every model
    takes the same steps with tensors of the same shapes.
    """
    if config.model != "mlp" or config.optimizer not in FUSED_OPTIMIZERS or device not in FUSED_DEVICES:
        return None
    return config.replace(lr=0.001, init="normal", seed=0, optimizer="adam", momentum=0.0,
                          activations=("relu", "relu"), device="auto")


class StackedMLP:
    """K MLPs whose parameter `name` (as in MLP.state_dict) is params[name], stacked on a first dim of K.

    Activations are kept feature-major, (K, features, batch): each layer is a batched W @ h with no
    transposes, and when all models see the same batch the first layer is a single (K·h × 784) matmul.
    """

    def __init__(self, configs: list[RunConfig], device: str):
        states = [seeded_model(c, device).state_dict() for c in configs]
        self.params = {name: torch.stack([s[name] for s in states]).requires_grad_() for name in states[0]}
        self.activations = [[ACTIVATION_FUNCTIONS[a] for a in c.activations] for c in configs]

    def parameters(self) -> list[torch.Tensor]:
        return list(self.params.values())

    def zero_grad(self) -> None:
        for p in self.params.values():
            p.grad = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 784) seen by every model, or (K, B, 784) one batch per model. Returns logits (K, 10, B)."""
        p = self.params
        w1 = p["fc1.weight"]
        k, hidden, _ = w1.shape
        if x.dim() == 2:
            h = torch.addmm(p["fc1.bias"].view(-1, 1), w1.view(k * hidden, -1), x.t()).view(k, hidden, -1)
        else:
            h = torch.baddbmm(p["fc1.bias"].unsqueeze(2), w1, x.transpose(1, 2))
        h = self._activate(h, 0)
        h = self._activate(torch.baddbmm(p["fc2.bias"].unsqueeze(2), p["fc2.weight"], h), 1)
        return torch.baddbmm(p["fc3.bias"].unsqueeze(2), p["fc3.weight"], h)

    def _activate(self, h: torch.Tensor, layer: int) -> torch.Tensor:
        fns = [acts[layer] for acts in self.activations]
        if all(fn is fns[0] for fn in fns):
            return fns[0](h)
        return torch.stack([fn(h_k) for fn, h_k in zip(fns, h)])  # an activation sweep: one per model

    def state_dict(self, k: int) -> dict[str, torch.Tensor]:
        """Model k's weights as a separate MLP's state dict, on the CPU."""
        return {name: t[k].detach().to("cpu", copy=True).contiguous() for name, t in self.params.items()}

    @torch.no_grad()
    def clear(self, k: int) -> None:
        """Zeroes model k (a diverged one) so its NaNs cannot reach anything, even the shared loss sum."""
        for t in self.params.values():
            t[k].zero_()


class StackedOptimizer:
    """Model k's step is train.FusedOptimizer's on model k's slices: the step its separate run takes."""

    def __init__(self, configs: list[RunConfig], params: list[torch.Tensor], device: str):
        views = [p.detach().unbind(0) for p in params]  # views[i][k]: model k's slice of tensor i
        self.models = [FusedOptimizer(c, [v[k] for v in views], device) for k, c in enumerate(configs)]

    def step(self, params: list[torch.Tensor], alive: list[bool]) -> None:
        grads = [p.grad.unbind(0) for p in params]
        for k, optimizer in enumerate(self.models):
            if alive[k]:
                optimizer.step([g[k] for g in grads])


@torch.inference_mode()
def evaluate_stacked(model: StackedMLP, x: torch.Tensor, y: torch.Tensor, config: RunConfig,
                     device: str) -> tuple[list[float], list[float]]:
    """Each model's mean cross-entropy and accuracy on (x, y), as train.evaluate computes them."""
    k = len(model.activations)
    loss_sum = torch.zeros(k, device=x.device)
    correct = torch.zeros(k, device=x.device, dtype=torch.long)
    for start in range(0, len(x), EVAL_BATCH):
        xb, yb = x[start:start + EVAL_BATCH].flatten(1), y[start:start + EVAL_BATCH]
        with autocast(config, device):
            logits = model.forward(xb).float()
        loss_sum += F.cross_entropy(logits, yb.expand(k, -1), reduction="none").sum(1)
        correct += (logits.argmax(1) == yb).sum(1)
    return (loss_sum / len(x)).tolist(), (correct / len(x)).tolist()


def train_stacked(configs: list[RunConfig], data: MnistData, *, progress: StackProgressFn | None = None,
                  should_stop: StopFn | None = None, snapshot_epochs: list[Iterable[int]] | None = None,
                  ) -> list[tuple[RunResult, dict[int, dict]]]:
    """Trains configs that share a stack_key together; returns (result, snapshots) per config, as train does.

    Every model's epoch seconds are the stack's: the wall time of the epoch in which all K trained.
    """
    device = str(data.device.type)
    flush_denormals()
    keys = {stack_key(c, device) for c in configs}
    if None in keys or len(keys) != 1:
        raise ValueError("these configs cannot train stacked (see stacked.stack_key)")
    first, k_models = configs[0], len(configs)
    n, batch = first.train_size, first.batch_size
    if n > len(data.train_x):
        raise ValueError(f"train_size {n} exceeds the {len(data.train_x)} training images")
    train_x, train_y = data.train_x[:n], data.train_y[:n]
    steps = math.ceil(n / batch)

    model = StackedMLP(configs, device)
    params = model.parameters()
    optimizer = StackedOptimizer(configs, params, device)
    seeds = [c.seed for c in configs]
    shared = len(set(seeds)) == 1  # one shuffle, one batch for all: the first layer is then one matmul
    shuffles = [torch.Generator().manual_seed(s) for s in (seeds[:1] if shared else seeds)]
    report_every = max(1, steps // PROGRESS_UPDATES_PER_EPOCH)
    wanted = [set(e) for e in (snapshot_epochs or [()] * k_models)]
    snapshots: list[dict[int, dict]] = [{} for _ in configs]
    histories: list[list[EpochMetrics]] = [[] for _ in configs]
    status, diverged_epoch = ["ok"] * k_models, [None] * k_models
    final_weights: list[dict | None] = [None] * k_models
    alive = [True] * k_models

    def diverge(k: int, epoch: int) -> None:
        status[k], diverged_epoch[k], alive[k] = "diverged", epoch, False
        final_weights[k] = model.state_dict(k)
        model.clear(k)

    started = time.perf_counter()
    for epoch in range(1, first.epochs + 1):
        epoch_start = time.perf_counter()
        orders = torch.stack([torch.randperm(n, generator=g) for g in shuffles]).to(data.device)  # (1 or K, n)
        epoch_y = train_y[orders]
        loss_sum = torch.zeros(k_models, device=data.device)
        predicted = torch.empty(k_models, n, dtype=torch.long, device=data.device)
        seen = 0
        for step in range(steps):
            if should_stop is not None and should_stop():
                status = ["cancelled" if a else s for a, s in zip(alive, status)]
                break
            lo, hi = step * batch, min(n, (step + 1) * batch)
            xb = train_x.index_select(0, orders[:, lo:hi].flatten())
            xb = xb.flatten(1) if shared else xb.view(k_models, hi - lo, -1)
            yb = epoch_y[:, lo:hi].expand(k_models, -1)
            with autocast(first, device):
                logits = model.forward(xb).float()
            losses = F.cross_entropy(logits, yb, reduction="none").mean(1)  # each model's mean batch loss
            model.zero_grad()
            losses.sum().backward()  # the models share no weight: each gets the gradient of its own loss
            optimizer.step(params, alive)
            loss_sum.add_(losses.detach(), alpha=hi - lo)
            torch.argmax(logits.detach(), 1, out=predicted[:, lo:hi])
            seen = hi
            if (step + 1) % report_every == 0 and step + 1 < steps:
                running_loss = (loss_sum / seen).tolist()
                running_acc = ((predicted[:, :seen] == epoch_y[:, :seen]).sum(1) / seen).tolist()
                for k in (k for k in range(k_models) if alive[k]):
                    if not math.isfinite(running_loss[k]):
                        diverge(k, epoch)
                    elif progress is not None:
                        progress(k, epoch, (step + 1) / steps,
                                 {"train_loss": running_loss[k], "train_acc": running_acc[k]})
                if not any(alive):
                    break
        if "cancelled" in status or not any(alive):
            break
        train_loss = (loss_sum / seen).tolist()
        train_acc = ((predicted[:, :seen] == epoch_y[:, :seen]).sum(1) / seen).tolist()
        for k in (k for k in range(k_models) if alive[k] and not math.isfinite(train_loss[k])):
            diverge(k, epoch)
        if not any(alive):
            break
        test_loss, test_acc = evaluate_stacked(model, data.test_x[:first.test_size], data.test_y[:first.test_size],
                                               first, device)
        seconds = time.perf_counter() - epoch_start
        for k in (k for k in range(k_models) if alive[k]):
            metrics = EpochMetrics(epoch, train_loss[k], train_acc[k], test_loss[k], test_acc[k], seconds,
                                   seen / seconds)
            histories[k].append(metrics)
            if progress is not None:
                progress(k, epoch, 1.0, asdict(metrics))
            if epoch in wanted[k] and epoch < configs[k].epochs:
                snapshots[k][epoch] = model.state_dict(k)

    total = time.perf_counter() - started
    return [(RunResult(config=config, status=status[k], epochs=histories[k], total_seconds=total,
                       steps_per_epoch=steps, device=device, diverged_epoch=diverged_epoch[k],
                       data_id=data.data_id, weights=final_weights[k] or model.state_dict(k)), snapshots[k])
            for k, config in enumerate(configs)]
