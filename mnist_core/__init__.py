"""mnist_core: everything the MNIST hyperparameter lab does, without any UI.

data (MNIST as device tensors) -> config (RunConfig, presets, run_key) -> models (MLP, CNN, shape_flow)
-> train (the engine: every run trains through train.train) -> cache (RunCache) -> sweep
(comparisons) -> evaluate / preprocess -> compare / charts (for the app) -> hosting -> cli.

Names are imported on first use (PEP 562), so `python -m mnist_core cache show KEY` never loads torch.
"""
from importlib import import_module

_HOME = {
    "Cancelled": "cache", "RunCache": "cache", "UnknownRunError": "cache",
    "PRESETS": "config", "ConfigError": "config", "Preset": "config", "RunConfig": "config", "measured_on": "config",
    "run_key": "config",
    "DataNotFoundError": "errors", "DeviceError": "errors",
    "MnistData": "data", "load_mnist": "data", "load_dataset": "data", "normalize": "data",
    "build_model": "models", "format_flow": "models", "shape_flow": "models",
    "run_sweep": "sweep",
    "EpochMetrics": "results", "RunResult": "results",
    "bf16_native": "train", "resolve_device": "train",
}
__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module 'mnist_core' has no attribute {name!r}")
    value = getattr(import_module(f".{_HOME[name]}", __name__), name)
    globals()[name] = value
    return value
