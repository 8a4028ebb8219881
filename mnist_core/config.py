"""One validated, immutable config per run, its cache key, and the seed's experiments as presets.

Everything that changes a run's result lives in `RunConfig`; everything else (threads,
progress bars, where the cache is) does not, so that `run_key` is stable.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

from .i18n import N_, LabError, Text

# Bump when a change to the engine changes what a config trains to: every cached run is then retrained.
ENGINE_VERSION = 2  # 2: test_size < 10,000 scores a class-balanced sample, not the first images

MODELS = ("mlp", "cnn")
DATASETS = ("mnist", "fashion-mnist")  # data.DATASETS describes them
ACTIVATIONS = ("relu", "sigmoid", "tanh", "leaky_relu", "gelu")
INITS = ("normal", "xavier_uniform", "kaiming_uniform", "default")
OPTIMIZERS = ("adam", "sgd", "rmsprop", "adamw")
CONV_LAYERS = ("first", "all")
PRECISIONS = ("fp32", "bf16")
DEVICES = ("auto", "cpu", "cuda", "mps")

MIN_LR, MAX_LR = 0.000001, 10  # below 1e-6 nothing moves within any number of epochs; above 10 nothing is learned
MAX_EPOCHS = 200  # the seed's longest run is 100; 200 leaves room without letting a typo run for days
MNIST_TRAIN_SIZE = 60_000
MNIST_TEST_SIZE = 10_000


class ConfigError(LabError, ValueError):
    """A config a run cannot be trained with; the message is meant for the student who typed it."""


class SettingsError(ConfigError):
    """Several settings that cannot be used, each with its own message (`errors`), so a page names them all."""

    def __init__(self, errors: list[ConfigError]):
        super().__init__(N_("{count} settings cannot be used: {errors}"), count=len(errors),
                         errors=" ".join(str(e) for e in errors))
        self.errors = errors


# What each setting is called on screen (and in errors): the student never sees a field name.
FIELD_LABELS = {
    "model": N_("model"), "dataset": N_("dataset"), "hidden": N_("hidden width"), "activations": N_("activations"), "init": N_("weight init"),
    "kernel_size": N_("filter size"), "stride": N_("stride"), "padding": N_("padding"),
    "conv_layers": N_("conv layers changed"), "keep_prob": N_("dropout keep probability"),
    "optimizer": N_("optimizer"), "lr": N_("learning rate"), "momentum": N_("momentum"), "epochs": N_("epochs"),
    "batch_size": N_("batch size"), "train_size": N_("training images"), "test_size": N_("test images per epoch"),
    "seed": N_("random seed"), "precision": N_("precision"), "device": N_("device"),
    "activation": N_("activation function"),
}


def label(name: str) -> Text:
    """A setting's name as the page shows it (translated where it is shown)."""
    return Text(FIELD_LABELS.get(name, name))


# What each option of a choice is called on screen: the config keeps its value ("normal"), the student reads this.
OPTION_LABELS = {
    "relu": N_("ReLU"), "sigmoid": N_("sigmoid"), "tanh": N_("tanh"), "leaky_relu": N_("leaky ReLU"), "gelu": N_("GELU"),
    "normal": N_("normal(0, 1)"), "xavier_uniform": N_("Xavier uniform"), "kaiming_uniform": N_("Kaiming uniform"),
    "default": N_("PyTorch's default"),
    "adam": N_("Adam"), "sgd": N_("SGD"), "rmsprop": N_("RMSprop"), "adamw": N_("AdamW"),
    "first": N_("first conv layer only"), "all": N_("all three conv layers"),
    "fp32": N_("fp32 (32-bit)"), "bf16": N_("bf16 (16-bit)"),
}


def option_label(value: str) -> Text:
    """An option's name as the page shows it (translated where it is shown); a value without one as it is."""
    return Text(OPTION_LABELS.get(value, value))


@dataclass(frozen=True)
class RunConfig:
    model: str = "mlp"
    dataset: str = "mnist"  # or "fashion-mnist": same 28x28 layout, ten kinds of clothing, harder
    # MLP options
    hidden: int = 256
    activations: tuple[str, str] = ("relu", "relu")
    init: str = "normal"  # the seed's torch.nn.init.normal_(mean 0, std 1) on the Linear weights
    # CNN options (the seed's network: 3x3 convs, stride 1, padding 1, dropout keep 0.5)
    kernel_size: int = 3
    stride: int = 1
    padding: int = 1
    conv_layers: str = "first"  # which conv layers take kernel_size/stride/padding: "first" or "all"
    keep_prob: float = 0.5
    # training
    optimizer: str = "adam"
    lr: float = 0.001
    momentum: float = 0.0  # sgd and rmsprop only
    epochs: int = 15
    batch_size: int = 100
    train_size: int = MNIST_TRAIN_SIZE
    # Test images scored after each epoch. A quick look scores fewer (a fixed class-balanced sample,
    # data.balanced_test_sample): on a CPU, the CNN's pass over all 10,000 costs more than a small
    # training epoch. The confusion matrix and mistakes use all of them.
    test_size: int = MNIST_TEST_SIZE
    seed: int = 777
    precision: str = "fp32"  # "bf16": autocast matmuls/convs to bfloat16 where the device supports it
    device: str = "auto"

    def __post_init__(self) -> None:
        _validate(self)

    # -- conversions -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["activations"] = list(self.activations)
        return d

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "RunConfig":
        """Builds a config from loosely typed values (CLI strings, URL parameters, JSON)."""
        unknown = set(values) - set(FIELD_TYPES)
        if unknown:
            raise ConfigError(N_("Unknown setting(s): {names}."), names=", ".join(sorted(unknown)))
        return cls(**{name: coerce(name, value) for name, value in values.items()})

    def replace(self, **changes: Any) -> "RunConfig":
        return dataclasses.replace(self, **{k: coerce(k, v) for k, v in changes.items()})

    def describe(self) -> str:
        """A short one-line summary, e.g. for a results table."""
        if self.model == "mlp":
            arch = f"MLP {self.hidden}x2 {'/'.join(self.activations)} init={self.init}"
        else:
            arch = f"CNN k={self.kernel_size} s={self.stride} p={self.padding} ({self.conv_layers})"
        data = "" if self.dataset == "mnist" else f"{self.dataset} | "
        return (f"{data}{arch} | {self.optimizer} lr={self.lr:g} | {self.epochs} ep, batch {self.batch_size}, "
                f"{self.train_size} images, seed {self.seed}")


FIELD_TYPES: dict[str, type] = {f.name: f.type for f in dataclasses.fields(RunConfig)}  # type: ignore[misc]


def coerce(name: str, value: Any) -> Any:
    """Turns a loosely typed value into the type of field `name`, or raises ConfigError."""
    if name not in FIELD_TYPES:
        raise ConfigError(N_("Unknown setting '{name}'."), name=name)
    kind = FIELD_TYPES[name]
    try:
        if kind in ("int", int):
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, float):
                if not value.is_integer():
                    raise ValueError
                return int(value)
            return int(str(value).strip().replace("_", "").replace(",", ""))  # "60,000" is 60000
        if kind in ("float", float):
            if isinstance(value, bool):
                raise ValueError
            return float(str(value).strip()) if isinstance(value, str) else float(value)
        if name == "activations":
            parts = value.split(",") if isinstance(value, str) else list(value)
            parts = [str(p).strip().lower() for p in parts]
            if len(parts) == 1:
                parts = parts * 2  # "relu" means relu after both hidden layers
            return tuple(parts)
        return str(value).strip().lower()
    except (TypeError, ValueError):
        template = {"int": N_("The {setting} must be a whole number, got '{value}'."),
                    "float": N_("The {setting} must be a number, got '{value}'.")}.get(str(kind), N_(
                        "The {setting} must be text, got '{value}'."))
        raise ConfigError(template, setting=label(name), value=str(value)[:40]) from None


def _check(ok: bool, template: str, **params: Any) -> None:
    if not ok:
        raise ConfigError(template, **params)


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    _check(value in allowed, N_("Unknown {setting} '{value}'. Choose one of: {choices}."),
           setting=label(name), value=value, choices=", ".join(allowed))


def _validate(c: RunConfig) -> None:
    for f in dataclasses.fields(c):
        value = getattr(c, f.name)
        name = label(f.name)
        if f.type in ("int", int):
            _check(isinstance(value, int) and not isinstance(value, bool),
                   N_("The {setting} must be a whole number, got '{value}'."), setting=name, value=value)
        if f.type in ("float", float):
            _check(isinstance(value, (int, float)) and not isinstance(value, bool),
                   N_("The {setting} must be a number, got '{value}'."), setting=name, value=value)
    _choice("model", c.model, MODELS)
    _choice("dataset", c.dataset, DATASETS)
    _choice("init", c.init, INITS)
    _choice("optimizer", c.optimizer, OPTIMIZERS)
    _choice("conv_layers", c.conv_layers, CONV_LAYERS)
    _choice("precision", c.precision, PRECISIONS)
    _choice("device", c.device, DEVICES)
    _check(isinstance(c.activations, tuple) and len(c.activations) == 2,
           N_("The MLP has two hidden layers, so give two activations (e.g. relu,sigmoid), got {value}."),
           value=",".join(map(str, c.activations)) if isinstance(c.activations, (tuple, list)) else c.activations)
    for act in c.activations:
        _choice("activation", act, ACTIVATIONS)
    _check(math.isfinite(c.lr) and c.lr > 0, N_("The learning rate must be a positive number, got {lr}."), lr=c.lr)
    _check(c.lr >= MIN_LR, N_("A learning rate of {lr} is far too small to change anything; use at least {least:g} "
                              "(typical: 0.0001 to 0.1)."), lr=c.lr, least=MIN_LR)
    _check(c.lr <= MAX_LR, N_("A learning rate of {lr} is far too large to learn anything; use at most {most} "
                              "(typical: 0.0001 to 0.1)."), lr=c.lr, most=MAX_LR)
    _check(math.isfinite(c.momentum) and 0 <= c.momentum < 1,
           N_("The momentum must be at least 0 and below 1, got {momentum}."), momentum=c.momentum)
    _check(1 <= c.epochs <= MAX_EPOCHS, N_("The number of epochs must be between 1 and {most}, got {epochs}."),
           most=MAX_EPOCHS, epochs=c.epochs)
    _check(1 <= c.train_size <= MNIST_TRAIN_SIZE,
           N_("The number of training images must be between 1 and {most:,}, got {size}."),
           most=MNIST_TRAIN_SIZE, size=c.train_size)
    _check(100 <= c.test_size <= MNIST_TEST_SIZE,
           N_("The number of test images must be between 100 and {most:,}, got {size}."),
           most=MNIST_TEST_SIZE, size=c.test_size)
    _check(1 <= c.batch_size <= c.train_size,
           N_("The batch size must be between 1 and the number of training images ({size:,}), got {batch}."),
           size=c.train_size, batch=c.batch_size)
    _check(1 <= c.hidden <= 4096, N_("The hidden width must be between 1 and 4096, got {hidden}."), hidden=c.hidden)
    _check(1 <= c.kernel_size <= 28, N_("The filter size must be between 1 and 28, got {size}."), size=c.kernel_size)
    _check(1 <= c.stride <= 28, N_("The stride must be between 1 and 28, got {stride}."), stride=c.stride)
    _check(0 <= c.padding <= 14, N_("The padding must be between 0 and 14, got {padding}."), padding=c.padding)
    _check(math.isfinite(c.keep_prob) and 0 < c.keep_prob <= 1,
           N_("The dropout keep probability must be above 0 and at most 1, got {keep}."), keep=c.keep_prob)
    _check(-(2**63) <= c.seed < 2**63, N_("The random seed must fit in 64 bits, got {seed}."), seed=c.seed)


def read_settings(values: dict[str, Any]) -> RunConfig:
    """A config from loosely typed settings (what a page's fields hold); SettingsError naming each setting that
    cannot be used on its own, with its own message, else ConfigError for the first that conflicts with another."""
    model = values.get("model", "mlp")
    errors = []
    for name, value in values.items():
        try:
            RunConfig.from_dict({"model": model, name: value})
        except ConfigError as e:
            errors.append(e)
    if len(errors) > 1:
        raise SettingsError(errors)
    return RunConfig.from_dict(values)


def measured_on(config: RunConfig) -> str:
    """What a run's test accuracy was measured on, for labelling it."""
    if config.test_size >= MNIST_TEST_SIZE:
        return f"{MNIST_TEST_SIZE:,} test images"
    return f"{config.test_size:,} test images (balanced sample)"


def run_key(config: RunConfig, data_id: str, device: str) -> str:
    """The cache key of a run: changes with anything that changes its result, and nothing else.

    `device` is the resolved device type ("cpu", "cuda", "mps"): the same config trains to slightly
    different numbers on different hardware, so their runs are cached apart.
    """
    payload = {"config": config.replace(device=device).to_dict(), "data": data_id, "engine": ENGINE_VERSION}
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    return f"{config.model}-{digest[:16]}"


# -- presets: every experiment of the seed blog post ---------------------------------------------

@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    description: str
    base: RunConfig
    param: str
    values: tuple = field(default_factory=tuple)

    def configs(self) -> list[RunConfig]:
        return [self.base.replace(**{self.param: v}) for v in self.values]


# The lab code the seed followed trained with lr 0.001, 15 epochs, batch 100 where it says nothing else.
_SEED_MLP = RunConfig(model="mlp", activations=("relu", "relu"), init="normal", optimizer="adam",
                      lr=0.001, epochs=15, batch_size=100)
_SEED_CNN = RunConfig(model="cnn", optimizer="adam", lr=0.001, epochs=15, batch_size=100)

PRESETS: dict[str, Preset] = {p.name: p for p in [
    Preset("mlp-lr", N_("MLP: learning rate"),
           N_("The seed's learning-rate experiment: 50 epochs, batch 100, Adam, ReLU/ReLU, normal(0, 1) init. "
           "The seed saw lr 0.1 end at accuracy 0.10 with the loss stuck near 2.30."),
           _SEED_MLP.replace(epochs=50), "lr", (0.1, 0.01, 0.001, 0.0001)),
    Preset("mlp-epochs", N_("MLP: epochs"),
           N_("The seed's epoch experiment: lr 0.0001, batch 100. All four values are served by one 100-epoch run "
           "(the first E epochs of it are the E-epoch run)."),
           _SEED_MLP.replace(lr=0.0001), "epochs", (5, 30, 50, 100)),
    Preset("mlp-batch", N_("MLP: batch size"),
           N_("The seed's batch-size experiment. The seed gives only its times (15:53, 8:22, 5:26, 5:26 on a GPU "
           "machine); we chose 15 epochs and lr 0.001, the lab code's defaults. Smaller batches mean more steps "
           "per epoch and more time."),
           _SEED_MLP, "batch_size", (10, 30, 100, 1000)),
    Preset("mlp-activation", N_("MLP: activation functions"),
           N_("The seed's activation experiment: the activation after hidden layer 1 and 2. The seed is silent on "
           "the rest; we chose 15 epochs, batch 100, lr 0.001."),
           _SEED_MLP, "activations", (("sigmoid", "sigmoid"), ("sigmoid", "relu"), ("relu", "sigmoid"), ("relu", "relu"))),
    Preset("cnn-stride", N_("CNN: stride"),
           N_("The seed's stride experiment on its CNN: stride of the first conv layer 1 vs 5. The seed is silent on "
           "the rest; we chose 15 epochs, batch 100, lr 0.001 (the lab code's defaults)."),
           _SEED_CNN, "stride", (1, 5)),
    Preset("cnn-filter", N_("CNN: filter size"),
           N_("The seed's filter-size experiment: kernel of the first conv layer 3x3 vs 10x10, padding 1. "
           "15 epochs, batch 100, lr 0.001 (our choice; the seed is silent)."),
           _SEED_CNN, "kernel_size", (3, 10)),
]}

# Hyperparameters a comparison can vary, per model.
SWEEPABLE = {
    "mlp": ("lr", "epochs", "batch_size", "activations", "optimizer", "init", "hidden", "momentum", "seed", "train_size"),
    "cnn": ("lr", "epochs", "batch_size", "stride", "kernel_size", "padding", "conv_layers", "optimizer", "keep_prob",
            "momentum", "seed", "train_size", "precision"),
}


def parse_values(param: str, text: str) -> list[Any]:
    """'0.1,0.01' -> [0.1, 0.01]; activations are separated by ';' or spaces: 'relu,relu; sigmoid,relu'."""
    if param not in FIELD_TYPES:
        raise ConfigError(N_("Unknown setting '{name}'. Choose one of: {choices}."), name=param,
                          choices=", ".join(FIELD_TYPES))
    values = [coerce(param, c) for c in split_values(param, text)]
    check_no_repeats(param, values, text)
    return values


def split_values(param: str, text: str) -> list[str]:
    """The values as typed, not yet read: '0.1, abc' -> ['0.1', 'abc'] (the app reports each bad one alone)."""
    if param == "activations":
        chunks = [c for c in text.replace(";", " ").split() if c]
    else:
        chunks = [c.strip() for c in text.split(",") if c.strip()]
    if not chunks:
        raise ConfigError(N_("Give at least one value for the {setting}."), setting=label(param))
    return chunks


def check_no_repeats(param: str, values: list[Any], text: str) -> None:
    if len(set(values)) != len(values):
        raise ConfigError(N_("The values for the {setting} repeat: {text}."), setting=label(param),
                          text=text)
