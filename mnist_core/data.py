"""MNIST or Fashion-MNIST as four tensors on the training device, loaded once per process.

Both come as the same four IDX files (28x28 images, labels 0-9), so one reader serves both; the
dataset is part of every run's config and key. A "loader" here is tensor indexing (cifar10-airbench style): no Dataset, no DataLoader, no
per-sample PIL transform. Images are normalised once, with the one normalisation used for
training, evaluation and prediction alike.
"""
from __future__ import annotations

import gzip
import hashlib
import logging
import os
import socket
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import config
from .errors import DataNotFoundError
from .i18n import N_, Message, Text
from .paths import CACHE_DIR

log = logging.getLogger(__name__)

# MNIST's own mean and std of the [0, 1] pixels of the training set. Fashion-MNIST uses them too (its own are
# 0.286 and 0.353): one normalisation for every model keeps a drawing's preprocessing the same for all of them,
# and an affine shift of the input costs the first layer nothing to learn.
MEAN, STD = 0.1307, 0.3081

FILES = {  # name -> (IDX magic, number of items)
    "train-images-idx3-ubyte": (2051, 60_000),
    "train-labels-idx1-ubyte": (2049, 60_000),
    "t10k-images-idx3-ubyte": (2051, 10_000),
    "t10k-labels-idx1-ubyte": (2049, 10_000),
}
DEFAULT_ROOT = CACHE_DIR / "data"  # torchvision's download root when the dataset's folder is not set


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
class Dataset:
    """One of the two datasets the lab trains on: same files, same 28x28 layout, other pictures."""
    name: str          # a config's `dataset`
    title: str
    env: str           # the variable naming its folder
    torchvision: str   # the torchvision class that downloads it when online
    classes: tuple[str, ...]


DATASETS = {d.name: d for d in [
    Dataset("mnist", "MNIST", "MNIST_DATA_DIR", "MNIST", tuple(str(i) for i in range(10))),
    # Marked for translation: the gallery, the confusion matrix and the Draw page show them.
    Dataset("fashion-mnist", "Fashion-MNIST", "FASHION_MNIST_DATA_DIR", "FashionMNIST", (
        N_("T-shirt/top"), N_("Trouser"), N_("Pullover"), N_("Dress"), N_("Coat"), N_("Sandal"), N_("Shirt"),
        N_("Sneaker"), N_("Bag"), N_("Ankle boot"))),
]}


assert tuple(DATASETS) == config.DATASETS


@dataclass(frozen=True)
class MnistData:
    train_x: torch.Tensor  # (60000, 1, 28, 28) float32, normalised
    train_y: torch.Tensor  # (60000,) int64
    test_x: torch.Tensor   # (10000, 1, 28, 28)
    test_y: torch.Tensor
    data_id: str           # sha256 over the four files' uncompressed bytes: part of every run key
    source: str            # the folder the files came from
    name: str = "mnist"    # which of DATASETS

    @property
    def device(self) -> torch.device:
        return self.train_x.device

    @property
    def classes(self) -> tuple[str, ...]:
        return DATASETS[self.name].classes if self.name in DATASETS else DATASETS["mnist"].classes

TEST_SAMPLE_SEED = 0  # one fixed sample for every run, whatever the run's own seed


def balanced_test_sample(test_y: torch.Tensor, n: int) -> torch.Tensor:
    """Indices of a fixed, seeded, class-balanced sample of `n` test images, in test-set order.

    MNIST's test set is ordered by source (its first and last 5,000 digits come from different
    writers), so its first N images read several points lower than the whole. Each class gets its
    share of `n` (proportional to its size in the test set, rounded by largest remainder, so the
    counts differ from proportional by less than 1) drawn from one seeded permutation.
    """
    total = len(test_y)
    if n >= total:
        return torch.arange(total, device=test_y.device)
    labels = test_y.cpu()
    counts = torch.bincount(labels, minlength=10).tolist()
    quotas = [n * c / total for c in counts]
    take = [int(q) for q in quotas]
    by_remainder = sorted(range(len(counts)), key=lambda c: (take[c] - quotas[c], c))
    for c in by_remainder[:n - sum(take)]:
        take[c] += 1
    order = torch.randperm(total, generator=torch.Generator().manual_seed(TEST_SAMPLE_SEED))
    chosen = [order[labels[order] == c][:k] for c, k in enumerate(take)]
    return torch.cat(chosen).sort().values.to(test_y.device)


def scored_test_images(data: MnistData, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The test images a run scores after each epoch: all of them, or the balanced sample of `n`."""
    if n >= len(data.test_y):
        return data.test_x, data.test_y
    indices = balanced_test_sample(data.test_y, n)
    return data.test_x.index_select(0, indices), data.test_y.index_select(0, indices)


def data_dir_from_env(dataset: str = "mnist") -> Path | None:
    value = os.environ.get(DATASETS[dataset].env, "").strip()
    return Path(value).expanduser() if value else None


def _find_file(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _read_idx(path: Path, magic: int, count: int) -> np.ndarray:
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as e:
        log.warning("cannot read %s: %r", path, e)  # the details are the operator's; the student reads why in words
        reason = (N_("this server may not read it") if isinstance(e, PermissionError) else
                  N_("it is damaged or cut short") if isinstance(e, (EOFError, gzip.BadGzipFile, zlib.error)) else
                  N_("the system could not read it"))
        raise DataNotFoundError(N_("Cannot read {path}: {reason}. Replace it with a good copy of the file."),
                                path=str(path), reason=Text(reason)) from None
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header or int.from_bytes(raw[:4], "big") != magic:
        raise DataNotFoundError(N_("{path} is not an MNIST-format file (wrong IDX magic number)."), path=str(path))
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    expected_dims = [count] + ([28, 28] if ndim == 3 else [])
    if dims != expected_dims:
        raise DataNotFoundError(N_("{path} holds shape {shape}, expected {expected}."), path=str(path),
                                shape=str(dims), expected=str(expected_dims))
    array = np.frombuffer(raw, dtype=np.uint8, offset=header)
    if array.size != int(np.prod(dims)):
        raise DataNotFoundError(N_("{path} is truncated ({found} of {expected} values)."), path=str(path),
                                found=array.size, expected=int(np.prod(dims)))
    array = array.reshape(dims)
    if ndim == 1 and array.max() > 9:
        raise DataNotFoundError(N_("{path} has labels outside 0-9."), path=str(path))
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


def _not_found(dataset: Dataset, looked: Message) -> DataNotFoundError:
    return DataNotFoundError(
        N_("{title} was not found. Looked in: {looked}. Fix: set {env} to a folder with the four {title} files "
           "(train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
           "t10k-labels-idx1-ubyte.gz; .gz optional), e.g. {env}=../shared/data/{name}."),
        title=Text(dataset.title), looked=looked, env=dataset.env, name=Text(dataset.name))


def _download_with_torchvision(dataset: Dataset, root: Path) -> Path:
    """torchvision's downloader into cache/data/; returns the raw folder. Raises if offline."""
    from torchvision import datasets

    kind = getattr(datasets, dataset.torchvision)
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(10)  # an offline machine should fail in seconds, not hang
    try:
        kind(str(root), train=True, download=True)
        kind(str(root), train=False, download=True)
    finally:
        socket.setdefaulttimeout(old_timeout)
    return root / dataset.torchvision / "raw"


def locate(data_dir: str | Path | None = None, download: bool = True,
           dataset: str = "mnist") -> tuple[dict[str, np.ndarray], str, Path]:
    """Finds and checks the four files: the given folder, else the dataset's variable, else cache/data (download)."""
    spec = DATASETS[dataset]
    folder = Path(data_dir).expanduser() if data_dir else data_dir_from_env(dataset)
    if folder is not None:
        if not folder.is_dir():
            raise _not_found(spec, Message(N_("{folder} (no such folder)"), folder=str(folder)))
        try:
            arrays, digest = _read_folder(folder)
        except FileNotFoundError as e:
            raise _not_found(spec, Message(N_("{folder} (missing {files})"), folder=str(folder), files=str(e))) from None
        return arrays, digest, folder
    raw = DEFAULT_ROOT / spec.torchvision / "raw"
    try:
        arrays, digest = _read_folder(raw)
        return arrays, digest, raw
    except FileNotFoundError:
        pass
    if download:
        try:
            raw = _download_with_torchvision(spec, DEFAULT_ROOT)
            arrays, digest = _read_folder(raw)
            return arrays, digest, raw
        except DataNotFoundError:
            raise
        except Exception as e:  # torchvision raises several kinds when offline; the student needs one message
            log.warning("downloading %s failed: %r", spec.title, e)  # the details are the operator's
            raise _not_found(spec, Message(N_("{env} (not set); {folder} (empty, and downloading the files failed: "
                                              "is this machine offline?)"), env=spec.env, folder=str(raw))) from None
    raise _not_found(spec, Message(N_("{env} (not set); {folder} (empty)"), env=spec.env, folder=str(raw)))


_loaded: dict[tuple[str, str, str], MnistData] = {}
_load_lock = threading.Lock()


def load_dataset(dataset: str = "mnist", device: str | torch.device = "cpu",
                 data_dir: str | Path | None = None) -> MnistData:
    """The dataset as tensors on `device`, read once per process and shared by every run."""
    if dataset not in DATASETS:
        raise DataNotFoundError(N_("Unknown dataset '{name}'. Choose one of: {choices}."), name=str(dataset)[:40],
                                choices=", ".join(DATASETS))
    device = torch.device(device)
    folder = str(Path(data_dir).expanduser().resolve()) if data_dir else str(data_dir_from_env(dataset) or "")
    with _load_lock:
        cache_key = (dataset, folder, str(device))
        if cache_key not in _loaded:
            arrays, digest, source = locate(data_dir, dataset=dataset)

            def images(name: str) -> torch.Tensor:
                # .copy(): the IDX bytes are read-only, and torch wants to own writable memory
                return normalize(torch.from_numpy(arrays.pop(name).copy()).unsqueeze(1)).to(device)

            def labels(name: str) -> torch.Tensor:
                return torch.from_numpy(arrays[name].astype(np.int64)).to(device)

            _loaded[cache_key] = MnistData(
                images("train-images-idx3-ubyte"), labels("train-labels-idx1-ubyte"),
                images("t10k-images-idx3-ubyte"), labels("t10k-labels-idx1-ubyte"),
                data_id=digest, source=str(source), name=dataset)
        return _loaded[cache_key]


def load_mnist(device: str | torch.device = "cpu", data_dir: str | Path | None = None) -> MnistData:
    return load_dataset("mnist", device, data_dir)


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
