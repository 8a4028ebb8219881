"""The seed's two networks: an MLP (784-256-256-10) and a small three-block CNN.

`shape_flow` computes the CNN's shapes layer by layer from the config alone, so a config whose
image shrinks to nothing is rejected before any training, and the first Linear layer's input
size comes from the real flow rather than a constant.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .config import ConfigError, RunConfig
from .i18n import N_

ACTIVATION_LAYERS = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
}
CNN_CHANNELS = (32, 64, 128)
CNN_FC = 625


class MLP(nn.Module):
    def __init__(self, config: RunConfig):
        super().__init__()
        h = config.hidden
        self.fc1, self.fc2, self.fc3 = nn.Linear(784, h), nn.Linear(h, h), nn.Linear(h, 10)
        self.act1 = ACTIVATION_LAYERS[config.activations[0]]()
        self.act2 = ACTIVATION_LAYERS[config.activations[1]]()
        for layer in (self.fc1, self.fc2, self.fc3):
            init_weight(layer.weight, config.init)  # biases keep PyTorch's init, as in the lab code

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        return self.fc3(self.act2(self.fc2(self.act1(self.fc1(x)))))


def init_weight(weight: torch.Tensor, init: str) -> None:
    if init == "normal":
        nn.init.normal_(weight)  # mean 0, std 1: the seed's choice, which makes early losses huge
    elif init == "xavier_uniform":
        nn.init.xavier_uniform_(weight)
    elif init == "kaiming_uniform":
        nn.init.kaiming_uniform_(weight, nonlinearity="relu")
    # "default": keep nn.Linear's own init


@dataclass(frozen=True)
class ConvSpec:
    kernel_size: int
    stride: int
    padding: int


def conv_specs(config: RunConfig) -> list[ConvSpec]:
    """kernel/stride/padding of the three conv layers: the config's on the first (or all), the seed's elsewhere."""
    custom = ConvSpec(config.kernel_size, config.stride, config.padding)
    seed = ConvSpec(3, 1, 1)
    return [custom if (i == 0 or config.conv_layers == "all") else seed for i in range(3)]


POOL_PADDING = (0, 0, 1)  # the seed's third pool pads by 1 so 7x7 becomes 4x4


@dataclass(frozen=True)
class FlowStep:
    layer: str
    shape: tuple[int, ...]
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.layer} {self.shape if len(self.shape) > 1 else self.shape[0]}"


def _out_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def shape_flow(config: RunConfig) -> list[FlowStep]:
    """The CNN's activation shapes, layer by layer; raises ConfigError naming the layer that breaks."""
    steps = [FlowStep("input", (1, 28, 28))]
    channels, size = 1, 28

    def fail(template: str, **params) -> None:
        raise ConfigError(template, flow=" -> ".join(str(s) for s in steps), **params)

    for i, (spec, out_channels, pool_pad) in enumerate(zip(conv_specs(config), CNN_CHANNELS, POOL_PADDING), 1):
        if size + 2 * spec.padding < spec.kernel_size:
            fail(N_("This CNN cannot work: at conv{i}, the {kernel}x{kernel} filter is larger than its padded "
                    "{size}x{size} input. Shape flow so far: {flow}. Use a smaller filter size or stride, or more "
                    "padding."), i=i, kernel=spec.kernel_size, size=size + 2 * spec.padding)
        size = _out_size(size, spec.kernel_size, spec.stride, spec.padding)
        channels = out_channels
        steps.append(FlowStep(f"conv{i}", (channels, size, size),
                              f"k={spec.kernel_size} s={spec.stride} p={spec.padding}, ReLU"))
        if size + 2 * pool_pad < 2:
            fail(N_("This CNN cannot work: at pool{i}, the 2x2 max-pool gets a {size}x{size} input. Shape flow so "
                    "far: {flow}. Use a smaller filter size or stride, or more padding."), i=i, size=size)
        size = _out_size(size, 2, 2, pool_pad)
        steps.append(FlowStep(f"pool{i}", (channels, size, size), f"2x2 max-pool, p={pool_pad}"))
    steps.append(FlowStep("flatten", (channels * size * size,)))
    steps.append(FlowStep("fc1", (CNN_FC,), "ReLU, dropout"))
    steps.append(FlowStep("fc2", (10,)))
    return steps


def format_flow(flow: list[FlowStep]) -> str:
    return " -> ".join(str(step) for step in flow)


class CNN(nn.Module):
    def __init__(self, config: RunConfig):
        super().__init__()
        flow = shape_flow(config)
        blocks, in_channels = [], 1
        for spec, out_channels, pool_pad in zip(conv_specs(config), CNN_CHANNELS, POOL_PADDING):
            # Pool before ReLU: max and ReLU commute exactly (values and gradients), and the ReLU then
            # runs on a quarter of the activations, which saves ~10% of a CPU training step.
            blocks += [nn.Conv2d(in_channels, out_channels, spec.kernel_size, spec.stride, spec.padding),
                       nn.MaxPool2d(2, 2, padding=pool_pad), nn.ReLU()]
            in_channels = out_channels
        self.features = nn.Sequential(*blocks)
        flat = next(step.shape[0] for step in flow if step.layer == "flatten")
        self.fc1 = nn.Linear(flat, CNN_FC)
        self.fc2 = nn.Linear(CNN_FC, 10)
        self.keep_prob = config.keep_prob
        # Dropout draws from a generator of the run's own (the engine sets it), so that two runs
        # training at once in one process stay reproducible.
        self.dropout_generator: torch.Generator | None = None
        nn.init.xavier_uniform_(self.fc1.weight)
        nn.init.xavier_uniform_(self.fc2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.fc1(self.features(x).flatten(1)))
        if self.training and self.keep_prob < 1:
            keep = torch.empty_like(x).bernoulli_(self.keep_prob, generator=self.dropout_generator)
            x = x * keep / self.keep_prob
        return self.fc2(x)


def build_model(config: RunConfig) -> nn.Module:
    return MLP(config) if config.model == "mlp" else CNN(config)


def multiply_adds(config: RunConfig) -> int:
    """Multiply-adds of one forward pass for one image (convs and linears; activations and pools ignored)."""
    if config.model == "mlp":
        h = config.hidden
        return 784 * h + h * h + h * 10
    total, in_channels = 0, 1
    flow = shape_flow(config)
    convs = [s for s in flow if s.layer.startswith("conv")]
    for spec, step in zip(conv_specs(config), convs):
        out_channels, size, _ = step.shape
        total += size * size * out_channels * in_channels * spec.kernel_size ** 2
        in_channels = out_channels
    flat = next(step.shape[0] for step in flow if step.layer == "flatten")
    return total + flat * CNN_FC + CNN_FC * 10
