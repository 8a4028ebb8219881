"""MNIST as four tensors on the training device, loaded once per process.

A "loader" here is tensor indexing (cifar10-airbench style): no Dataset, no DataLoader, no
per-sample PIL transform. Images are normalised once, with the one normalisation used for
training, evaluation and prediction alike.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import DataNotFoundError
from .paths import CACHE_DIR

# MNIST's own mean and std of the [0, 1] pixels of the training set.
MEAN, STD = 0.1307, 0.3081

FILES = {  # name -> (IDX magic, number of items)
    "train-images-idx3-ubyte": (2051, 60_000),
    "train-labels-idx1-ubyte": (2049, 60_000),
    "t10k-images-idx3-ubyte": (2051, 10_000),
    "t10k-labels-idx1-ubyte": (2049, 10_000),
}
DEFAULT_ROOT = CACHE_DIR / "data"  # torchvision's datasets.MNIST root when MNIST_DATA_DIR is not set


def normalize(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 0-255 or float 0-1 pixels -> the network's input scale. The only normalisation in the project.

    uint8 pixels become one new float tensor, scaled in place: the training set is 188 MB as floats,
    and a hosted server has about 1 GB.
    """
    if pixels.dtype == torch.uint8:
        return pixels.float().div_(255.0).sub_(MEAN).div_(STD)
    return (pixels - MEAN) / STD


def denormalize(x: torch.Tensor) -> torch.Tensor:
    """Network input -> pixels in [0, 1], for showing an image."""
    return (x * STD + MEAN).clamp(0, 1)


@dataclass(frozen=True)
class MnistData:
    train_x: torch.Tensor  # (60000, 1, 28, 28) float32, normalised
    train_y: torch.Tensor  # (60000,) int64
    test_x: torch.Tensor   # (10000, 1, 28, 28)
    test_y: torch.Tensor
    data_id: str           # sha256 over the four files' uncompressed bytes: part of every run key
    source: str            # the folder the files came from

    @property
    def device(self) -> torch.device:
        return self.train_x.device


def data_dir_from_env() -> Path | None:
    value = os.environ.get("MNIST_DATA_DIR", "").strip()
    return Path(value).expanduser() if value else None


def _find_file(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _read_idx(path: Path, magic: int, count: int) -> np.ndarray:
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataNotFoundError(f"Cannot read {path}: {e}. Replace it with a good copy of the MNIST file.") from None
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header or int.from_bytes(raw[:4], "big") != magic:
        raise DataNotFoundError(f"{path} is not an MNIST file (wrong IDX magic number).")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    expected_dims = [count] + ([28, 28] if ndim == 3 else [])
    if dims != expected_dims:
        raise DataNotFoundError(f"{path} holds shape {dims}, expected {expected_dims}.")
    array = np.frombuffer(raw, dtype=np.uint8, offset=header)
    if array.size != int(np.prod(dims)):
        raise DataNotFoundError(f"{path} is truncated ({array.size} of {int(np.prod(dims))} values).")
    array = array.reshape(dims)
    if ndim == 1 and array.max() > 9:
        raise DataNotFoundError(f"{path} has labels outside 0-9.")
    return array


def _read_folder(folder: Path) -> tuple[dict[str, np.ndarray], str]:
    missing = [name for name in FILES if _find_file(folder, name) is None]
    if missing:
        raise FileNotFoundError(", ".join(missing))
    arrays, digest = {}, hashlib.sha256()
    for name, (magic, count) in FILES.items():
        arrays[name] = _read_idx(_find_file(folder, name), magic, count)
        digest.update(arrays[name].tobytes())
    return arrays, digest.hexdigest()


def _how_to_fix(looked: list[str]) -> str:
    return ("MNIST was not found. Looked in: " + "; ".join(looked) + ". Fix: set MNIST_DATA_DIR to a folder with the "
            "four MNIST files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
            "t10k-labels-idx1-ubyte.gz; .gz optional), e.g. MNIST_DATA_DIR=../shared/data/mnist.")


def _download_with_torchvision(root: Path) -> Path:
    """torchvision's datasets.MNIST into cache/data/; returns the raw folder. Raises if offline."""
    from torchvision import datasets

    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(10)  # an offline machine should fail in seconds, not hang
    try:
        datasets.MNIST(str(root), train=True, download=True)
        datasets.MNIST(str(root), train=False, download=True)
    finally:
        socket.setdefaulttimeout(old_timeout)
    return root / "MNIST" / "raw"


def locate(data_dir: str | Path | None = None, download: bool = True) -> tuple[dict[str, np.ndarray], str, Path]:
    """Finds and checks the four files: the given folder, else MNIST_DATA_DIR, else cache/data (download)."""
    folder = Path(data_dir).expanduser() if data_dir else data_dir_from_env()
    if folder is not None:
        if not folder.is_dir():
            raise DataNotFoundError(_how_to_fix([f"{folder} (no such folder)"]))
        try:
            arrays, digest = _read_folder(folder)
        except FileNotFoundError as e:
            raise DataNotFoundError(_how_to_fix([f"{folder} (missing {e})"])) from None
        return arrays, digest, folder
    raw = DEFAULT_ROOT / "MNIST" / "raw"
    try:
        arrays, digest = _read_folder(raw)
        return arrays, digest, raw
    except FileNotFoundError:
        pass
    if download:
        try:
            raw = _download_with_torchvision(DEFAULT_ROOT)
            arrays, digest = _read_folder(raw)
            return arrays, digest, raw
        except DataNotFoundError:
            raise
        except Exception as e:  # torchvision raises several kinds when offline; the student needs one message
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise DataNotFoundError(_how_to_fix([
                "MNIST_DATA_DIR (not set)", f"{raw} (empty; download failed: {reason})"])) from None
    raise DataNotFoundError(_how_to_fix(["MNIST_DATA_DIR (not set)", f"{raw} (empty)"]))


_loaded: dict[tuple[str, str], MnistData] = {}
_load_lock = threading.Lock()


def load_mnist(device: str | torch.device = "cpu", data_dir: str | Path | None = None) -> MnistData:
    """The dataset as tensors on `device`, read once per process and shared by every run."""
    device = torch.device(device)
    folder = str(Path(data_dir).expanduser().resolve()) if data_dir else str(data_dir_from_env() or "")
    with _load_lock:
        cache_key = (folder, str(device))
        if cache_key not in _loaded:
            arrays, digest, source = locate(data_dir)

            def images(name: str) -> torch.Tensor:
                # .copy(): the IDX bytes are read-only, and torch wants to own writable memory
                return normalize(torch.from_numpy(arrays.pop(name).copy()).unsqueeze(1)).to(device)

            def labels(name: str) -> torch.Tensor:
                return torch.from_numpy(arrays[name].astype(np.int64)).to(device)

            _loaded[cache_key] = MnistData(
                images("train-images-idx3-ubyte"), labels("train-labels-idx1-ubyte"),
                images("t10k-images-idx3-ubyte"), labels("t10k-labels-idx1-ubyte"),
                data_id=digest, source=str(source))
        return _loaded[cache_key]


def loaded(data_id: str, device: str | torch.device) -> MnistData | None:
    """The dataset with this id already in this process's memory on `device`, if any: the job service's
    in-process workers train on the server's copy rather than read a second one (190 MB)."""
    device = torch.device(device)
    with _load_lock:
        return next((d for d in _loaded.values() if d.data_id == data_id and d.device.type == device.type), None)


def synthetic_data(n_train: int = 512, n_test: int = 256, seed: int = 0, device: str = "cpu") -> MnistData:
    """Random MNIST-shaped tensors with a learnable rule, for fast unit tests of the engine."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 10, (n_train + n_test,), generator=g)
    x = torch.rand(n_train + n_test, 1, 28, 28, generator=g) * 0.3
    for digit in range(10):  # each class lights up its own horizontal band
        x[y == digit, :, 2 + 2 * digit: 4 + 2 * digit, 4:24] += 0.7
    x = normalize(x.clamp(0, 1)).to(device)
    return MnistData(x[:n_train], y[:n_train].to(device), x[n_train:], y[n_train:].to(device),
                     data_id=f"synthetic-{n_train}-{n_test}-{seed}", source="synthetic")
