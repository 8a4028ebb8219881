"""mnist_core: everything the MNIST hyperparameter lab does, without any UI.

data (MNIST as device tensors) -> config (RunConfig, presets, run_key) -> models (MLP, CNN, shape_flow)
-> train (the engine) -> cache (RunCache) -> sweep (comparisons) -> evaluate / preprocess -> cli.
"""
from .cache import Cancelled, RunCache, UnknownRunError
from .config import PRESETS, ConfigError, Preset, RunConfig, run_key
from .data import DataNotFoundError, MnistData, load_mnist, normalize
from .models import build_model, format_flow, shape_flow
from .sweep import run_sweep
from .train import EpochMetrics, RunResult, resolve_device

__all__ = [
    "Cancelled", "ConfigError", "DataNotFoundError", "EpochMetrics", "MnistData", "PRESETS", "Preset", "RunCache",
    "RunConfig", "RunResult", "UnknownRunError", "build_model", "format_flow", "load_mnist", "normalize",
    "resolve_device", "run_key", "run_sweep", "shape_flow",
]
