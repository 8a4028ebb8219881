"""mnist_core: everything the MNIST hyperparameter lab does, without any UI.

data (MNIST as device tensors) -> config (RunConfig, presets, run_key) -> models (MLP, CNN, shape_flow)
-> train (the engine: every run trains through train.train) -> cache (RunCache) -> sweep (comparisons)
-> jobs (the training service: queue, fair share, embedded threads or Dask) -> evaluate / preprocess
-> compare / charts (for the app) -> hosting -> cli.

Names are imported on first use (PEP 562), so `python -m mnist_core cache show KEY` never loads torch.
"""
import os
from importlib import import_module

# Before torch loads (it loads only through this package here): a training shares its cores with pages,
# other jobs or a Dask worker's other tasks, and OpenMP's default spin-waiting threads then slow everyone
# 10-100x (bench/run.py). The CLI's commands and every Dask worker that imports mnist_core get it too.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_HOME = {
    "Cancelled": "cache", "RunCache": "cache", "UnknownRunError": "cache",
    "PRESETS": "config", "ConfigError": "config", "Preset": "config", "RunConfig": "config", "measured_on": "config",
    "run_key": "config",
    "DataNotFoundError": "errors", "DeviceError": "errors",
    "MnistData": "data", "load_mnist": "data", "load_dataset": "data", "normalize": "data",
    "build_model": "models", "format_flow": "models", "shape_flow": "models",
    "run_sweep": "sweep",
    "JobService": "jobs", "RequestRefused": "jobs", "service_from_env": "jobs",
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
