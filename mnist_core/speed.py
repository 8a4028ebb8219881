"""How long a training will take on this device, known before it runs: every estimate and the hosted cap.

An epoch costs, for `steps` = ceil(train_size / batch) steps of `batch` images and a test pass:

    steps x fixed(batch)  +  train_size x per_image(batch) x multiply_adds  +  test pass

`fixed` is what a step costs whatever the network's size (Python, op dispatch, autograd, the optimizer's
walk over its tensors); `per_image` the work per image per multiply-add, which falls as batches grow
(bigger matrix products use the cores better). A width-1 MLP at batch 1 is nearly all fixed cost; a
1,024-wide one at batch 1,000 nearly all arithmetic. Scaling one measured run by multiply-adds alone
priced the first ~300x too cheap.

Both are measured once per model on this device (`measure`: a few seconds), by training two networks of
very different sizes for a few steps at each of CALIBRATION_BATCHES with the real engine (`train.train`,
on random images), then kept in `cache/speeds.json` (or the file MNIST_LAB_SPEEDS_FILE names; JSON,
keyed by the machine, the torch version and the thread count). A batch size in between is interpolated on a log scale. The test
pass is measured the same way (`train.evaluate`, EVAL_BATCH images at a time).

What the service's estimate adds (`estimate_seconds`): finished runs of the same model on this device
correct the measurement for what it cannot see (other work on the machine, a Dask worker's threads), by
the median ratio of their real to their predicted time.
"""
from __future__ import annotations

import json
import math
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

from .config import MNIST_TEST_SIZE, MNIST_TRAIN_SIZE, RunConfig
from .models import multiply_adds
from .results import RunResult

# The CNN stops at 100: a step of 1,000 costs it seconds, and per image it is within 1.5x of a step of 100.
CALIBRATION_BATCHES = {"mlp": (1, 10, 100, 1000), "cnn": (1, 10, 100)}
# Two networks per model, far apart in size, so that a step's fixed cost and its per-image cost separate.
CALIBRATION_CONFIGS = {
    "mlp": (RunConfig(model="mlp", hidden=8), RunConfig(model="mlp", hidden=512)),
    "cnn": (RunConfig(model="cnn", stride=3, conv_layers="all"), RunConfig(model="cnn")),
}
CALIBRATION_SECONDS = 0.08   # each (batch, network) epoch lasts about this long (at least two steps)
CALIBRATION_EPOCHS = 6       # the first warms up; the fastest of the others counts
CORRECTION_RANGE = (0.5, 3.0)  # what finished runs may do to the measurement: a hint, never a rewrite
FILE = "speeds.json"


@dataclass(frozen=True)
class Speed:
    """One model's measured costs on one device (seconds)."""
    model: str
    device: str
    batches: tuple[int, ...]
    fixed: tuple[float, ...]        # per step, at each of `batches`
    per_image: tuple[float, ...]    # per image per multiply-add, at each of `batches`
    eval_fixed: float               # per test batch (EVAL_BATCH images)
    eval_per_image: float           # per test image per multiply-add
    machine: str
    measured: float                 # time.time() when measured

    def seconds(self, config: RunConfig, test_images: int = MNIST_TEST_SIZE) -> float:
        """Predicted training time of `config`, test passes included."""
        from .train import EVAL_BATCH
        fixed, per_image = self._at(config.batch_size)
        madds = multiply_adds(config)
        steps = math.ceil(config.train_size / config.batch_size)
        tests = min(config.test_size, test_images)
        epoch = (steps * fixed + config.train_size * per_image * madds
                 + math.ceil(tests / EVAL_BATCH) * self.eval_fixed + tests * self.eval_per_image * madds)
        return config.epochs * epoch

    def _at(self, batch: int) -> tuple[float, float]:
        """fixed and per_image at `batch`: interpolated between the measured batch sizes on a log scale,
        the nearest measured one beyond them."""
        logs = [math.log(b) for b in self.batches]
        x = min(max(math.log(batch), logs[0]), logs[-1])
        i = max(j for j in range(len(logs) - 1) if logs[j] <= x) if x < logs[-1] else len(logs) - 2
        t = (x - logs[i]) / (logs[i + 1] - logs[i])

        def between(values: tuple[float, ...]) -> float:  # geometric: costs fall by factors, not steps
            lo, hi = max(values[i], 1e-12), max(values[i + 1], 1e-12)
            return lo ** (1 - t) * hi ** t
        return between(self.fixed), between(self.per_image)


def machine_key(device: str) -> str:
    """What a measurement is valid for: the same device, CPU kernels, torch and threads."""
    import torch

    from .train import machine_info
    info = machine_info(device)
    return " | ".join([device, info.get("cpu", ""), info.get("gpu", ""), info.get("cpu_capability", ""),
                       torch.__version__, f"{torch.get_num_threads()} threads"])


def measure(model: str, device: str) -> Speed:
    """Trains the model's two calibration networks for a few steps at each batch size, on random images
    with the real engine, and fits each batch size's fixed and per-image cost (a few seconds)."""
    from .data import synthetic_data
    from .train import EVAL_BATCH, evaluate, seeded_model, train
    small, large = CALIBRATION_CONFIGS[model]
    m_small, m_large = multiply_adds(small), multiply_adds(large)
    fixed, per_image = [], []
    for batch in CALIBRATION_BATCHES[model]:
        step = {}
        for config in (small, large):
            step[config] = _step_seconds(config, batch, device, train, synthetic_data)
        slope = max(step[large] - step[small], 0.0) / (batch * (m_large - m_small))
        per_image.append(slope)
        fixed.append(max(step[small] - slope * batch * m_small, 0.0))
    data = synthetic_data(EVAL_BATCH, EVAL_BATCH, device=device)
    passes = {}
    for config in (small, large):
        net = seeded_model(config, device)
        evaluate(net, data.test_x, data.test_y, config, device)  # warm up
        started = time.perf_counter()
        evaluate(net, data.test_x, data.test_y, config, device)
        passes[config] = time.perf_counter() - started
    eval_per_image = max(passes[large] - passes[small], 0.0) / (EVAL_BATCH * (m_large - m_small))
    eval_fixed = max(passes[small] - eval_per_image * EVAL_BATCH * m_small, 0.0)
    return Speed(model, device, CALIBRATION_BATCHES[model], tuple(fixed), tuple(per_image), eval_fixed, eval_per_image,
                 machine_key(device), time.time())


def _step_seconds(config: RunConfig, batch: int, device: str, train, synthetic_data) -> float:
    """Seconds per training step of `config` at `batch`: the fastest of epochs 2 to CALIBRATION_EPOCHS of a
    few steps (the first warms the kernels and the allocator; the fastest of several shrugs off a moment of
    other work: with the faster of two, one calibration in three was off by 2-3x at some batch size)."""
    guess = 2e-4 + batch * multiply_adds(config) * 3e-10  # only to choose how many steps to time
    steps = int(min(max(2, CALIBRATION_SECONDS / guess), 200, MNIST_TRAIN_SIZE // batch))
    data = synthetic_data(steps * batch, 100, device=device)
    run = config.replace(batch_size=batch, train_size=steps * batch, test_size=100, epochs=CALIBRATION_EPOCHS,
                         device=device, init="xavier_uniform")  # no run that diverges and stops early
    result, _ = train(run, data)
    return min(epoch.seconds for epoch in result.epochs[1:] or result.epochs) / steps


# -- one measurement per model and machine, shared by every estimate of the process --------------------

_lock = threading.Lock()
_known: dict[tuple[str, str, Path], Speed] = {}


def speed_for(model: str, device: str, path: Path | None = None) -> Speed:
    """This device's Speed for `model`: from memory, else from the speeds file (`path`, by default
    `speeds_file()`) if measured on this machine, else measured now (once per process: others asking
    meanwhile wait for it) and saved there. A device this process does not have (a CUDA job for a Dask GPU
    worker, asked on a CPU-only server) is priced at this CPU's speed: too slow for a GPU, so a cap holds."""
    device = device if _here(device) else "cpu"
    key, path = machine_key(device), path or speeds_file()
    with _lock:
        if (model, key, path) in _known:
            return _known[(model, key, path)]
        saved = _read(path)
        entry = saved.get(f"{model} | {key}")
        speed = _from_json(entry) if entry else None
        if speed is None:
            speed = measure(model, device)
            saved[f"{model} | {key}"] = _to_json(speed)
            _write(path, saved)
        _known[(model, key, path)] = speed
        return speed


def save(speed: Speed, path: Path) -> None:
    """Keeps `speed` in the speeds file at `path` (for this machine), beside what is there."""
    with _lock:
        saved = _read(path)
        saved[f"{speed.model} | {speed.machine}"] = _to_json(speed)
        _write(path, saved)


def _here(device: str) -> bool:
    import torch
    if device == "cuda":
        return torch.cuda.is_available()
    if device == "mps":
        return torch.backends.mps.is_available()
    return True


def speeds_file() -> Path:
    from .paths import CACHE_DIR
    return Path(os.environ.get("MNIST_LAB_SPEEDS_FILE") or CACHE_DIR / FILE)


def _to_json(speed: Speed) -> dict:
    return asdict(speed)


def _from_json(entry: dict) -> Speed | None:
    try:
        speed = Speed(**{**entry, **{k: tuple(entry[k]) for k in ("batches", "fixed", "per_image")}})
        speed._at(100)
        return speed
    except (TypeError, KeyError, ValueError):  # an older or damaged file: measure again
        return None


def _read(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
        return value if isinstance(value, dict) else {}
    except (OSError, ValueError):
        return {}


def _write(path: Path, saved: dict) -> None:
    """Whole or not at all: a file killed mid-write is never read half (write a temp file, then rename)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        temp.write_text(json.dumps(saved, indent=1))
        os.replace(temp, path)
    except OSError:  # a read-only cache: the measurement still serves this process
        pass


# -- the estimate ------------------------------------------------------------------------------------

def estimate_seconds(config: RunConfig, history: Iterable[RunResult], device: str,
                     test_images: int = MNIST_TEST_SIZE, path: Path | None = None) -> float:
    """Seconds to train `config` on `device`: the measured speed, corrected by how finished runs of the same
    model here compared with it (the median ratio of real to predicted time, within CORRECTION_RANGE)."""
    speed = speed_for(config.model, device, path)
    finished = sorted((r for r in history if r.device == device and r.status == "ok" and r.config.model == config.model
                       and r.total_seconds and len(r.epochs) == r.config.epochs), key=lambda r: r.created)[-50:]
    ratios = sorted(r.total_seconds / speed.seconds(r.config, test_images) for r in finished)
    correction = ratios[len(ratios) // 2] if ratios else 1.0
    return speed.seconds(config, test_images) * min(max(correction, CORRECTION_RANGE[0]), CORRECTION_RANGE[1])
