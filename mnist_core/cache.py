"""The run cache: one safetensors file per finished run, named by its key.

The file holds the weights as tensors and the run's metrics as JSON in the safetensors header, so
an entry is one file, written to a temp name and renamed into place: a process killed mid-write
leaves no entry that loads. Nothing is ever unpickled. A file lock per key makes two processes
asking for the same uncached config train it once.

Reading a run's metrics parses the header by hand and needs no torch, so `python -m mnist_core
cache show KEY` answers in a fraction of a second; torch loads only for weights and training.
"""
from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from filelock import FileLock, Timeout

from .config import RunConfig, run_key
from .paths import CACHE_DIR
from .results import ProgressFn, RunResult, StopFn

if TYPE_CHECKING:
    from .data import MnistData

log = logging.getLogger(__name__)
KEY_PATTERN = re.compile(r"^(mlp|cnn)-[0-9a-f]{16}$")
SUFFIX = ".safetensors"


class UnknownRunError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


class Cancelled(Exception):
    """Raised when the caller asked to stop while waiting for another process's training."""


def read_metadata(path: Path) -> dict[str, str]:
    """The `__metadata__` of a safetensors file, checked against the file's size (a cut or padded file fails)."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError("file too short")
        length = int.from_bytes(head, "little")
        if length > 100_000_000:
            raise ValueError("header length out of range")
        header = json.loads(f.read(length))
    data_end = max((t["data_offsets"][1] for name, t in header.items() if name != "__metadata__"), default=0)
    if 8 + length + data_end != path.stat().st_size:
        raise ValueError("file size does not match its header (cut short?)")
    return header.get("__metadata__") or {}


def save_file(tensors: dict[str, Any], path: str, metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file as save  # torch loads only when weights are written
    save(tensors, path, metadata=metadata)


def check_key(key: str) -> str:
    """Keys come from users (CLI, URLs): only this exact shape is ever turned into a path."""
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        raise UnknownRunError(f"'{key}' is not a run key (keys look like mlp-0123456789abcdef; see 'cache list').")
    return key


class RunCache:
    def __init__(self, root: str | Path | None = None, max_bytes: int | None = None):
        self.root = Path(root) if root else CACHE_DIR / "runs"
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.problems: list[str] = []  # corrupt entries found (and removed) since this object was made

    def path(self, key: str) -> Path:
        return self.root / f"{check_key(key)}{SUFFIX}"

    def key_for(self, config: RunConfig, data: MnistData) -> str:
        return run_key(config, data.data_id, data.device.type)

    # -- reading -------------------------------------------------------------------------------
    def get(self, key: str, weights: bool = False) -> RunResult | None:
        """The cached run, or None. A corrupt entry is reported, removed, and treated as missing."""
        path = self.path(key)
        if not path.exists():
            return None
        try:
            result = RunResult.from_json(json.loads(read_metadata(path)["run"]))
            if weights:
                from safetensors.torch import load_file  # safetensors: tensors only, never a pickle
                result.weights = load_file(str(path))
            if result.key != key:
                raise ValueError(f"entry holds run {result.key}")
        except Exception as e:  # any unreadable entry is a miss, never a crash
            message = f"Cached run {key} was unreadable ({type(e).__name__}: {e}); it was removed and will be retrained."
            log.warning(message)
            self.problems.append(message)
            path.unlink(missing_ok=True)
            return None
        result.cached = True
        os.utime(path)  # least-recently-used eviction goes by this time
        return result

    def weights(self, key: str) -> dict[str, Any]:
        result = self.get(key, weights=True)
        if result is None or result.weights is None:
            raise UnknownRunError(f"No cached run {key} (see 'cache list').")
        return result.weights

    def list(self) -> list[RunResult]:
        """Every readable entry, newest first (metrics only)."""
        runs = []
        for path in self.root.glob(f"*{SUFFIX}"):
            key = path.name[: -len(SUFFIX)]
            if KEY_PATTERN.match(key) and (run := self.get(key)) is not None:
                runs.append(run)
        return sorted(runs, key=lambda r: r.created, reverse=True)

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.root.glob(f"*{SUFFIX}"))

    # -- writing -------------------------------------------------------------------------------
    def put(self, result: RunResult) -> None:
        """Stores a finished run atomically. Cancelled runs are not results and are never stored."""
        if result.status == "cancelled":
            return
        if result.weights is None:
            raise ValueError("a run is stored with its weights")
        path = self.path(result.key)
        meta = json.dumps({**result.to_json(), "cached": False})
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=f".{result.key}.", suffix=".tmp")
        os.close(fd)
        try:
            save_file({k: v.contiguous() for k, v in result.weights.items()}, tmp, metadata={"run": meta})
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        self.evict()

    def evict(self) -> list[str]:
        """Removes least-recently-used entries until the cache fits `max_bytes`; returns their keys."""
        if self.max_bytes is None:
            return []
        entries = sorted(self.root.glob(f"*{SUFFIX}"), key=lambda p: p.stat().st_mtime)
        total, removed = sum(p.stat().st_size for p in entries), []
        for path in entries[:-1]:  # the newest entry stays, even alone over the cap
            if total <= self.max_bytes:
                break
            total -= path.stat().st_size
            path.unlink(missing_ok=True)
            removed.append(path.name[: -len(SUFFIX)])
        return removed

    def lock(self, key: str) -> FileLock:
        return FileLock(str(self.root / f".{check_key(key)}.lock"))

    # -- the one way to get a run --------------------------------------------------------------
    def get_or_train(self, config: RunConfig, data: MnistData, *, progress: ProgressFn | None = None,
                     should_stop: StopFn | None = None, snapshot_epochs=(),
                     trainer: Callable[..., tuple[RunResult, dict]] | None = None) -> RunResult:
        """The cached run for `config`, or trains it (once, even if several processes ask at once).

        With `snapshot_epochs`, the weights at those epochs are stored too, each as the run of the
        same config with that many epochs: an epoch sweep trains only its longest value.
        """
        if trainer is None:
            from .train import train as trainer

        def train_it(_: list[int]) -> list[tuple[RunResult, dict]]:
            return [trainer(config, data, progress=progress, should_stop=should_stop, snapshot_epochs=snapshot_epochs)]

        return self.get_or_train_all([config], data, train_it, should_stop)[0]

    def get_or_train_all(self, configs: list[RunConfig], data: MnistData,
                         train_missing: Callable[[list[int]], list[tuple[RunResult, dict]]],
                         should_stop: StopFn | None = None) -> list[RunResult]:
        """The cached run for each of `configs`; `train_missing(indices)` trains those not cached and returns
        (result, snapshots) for each, in order. Every key's lock is held meanwhile, taken in sorted order so
        that two processes asking for overlapping sets cannot deadlock; a run another process finished
        while we waited is served, not trained again.
        """
        keys = [self.key_for(c, data) for c in configs]
        results: list[RunResult | None] = [self.get(key) for key in keys]
        if all(r is not None for r in results):
            return results
        locks = []
        try:
            for key in sorted(set(keys)):
                locks.append(self._acquire(key, should_stop))
            results = [self.get(key) for key in keys]  # someone else may have trained some while we waited
            todo = [i for i, r in enumerate(results) if r is None]
            for i, (result, snapshots) in zip(todo, train_missing(todo) if todo else []):
                result.key = keys[i]
                self._store(result, snapshots, data)
                results[i] = result
            return results
        finally:
            for lock in locks:
                lock.release()

    def _store(self, result: RunResult, snapshots: dict[int, dict], data: MnistData) -> None:
        """Stores a trained run and, as runs of their own, its snapshots: complete shorter runs of the
        same config, kept even if this run stopped later (diverged or cancelled)."""
        for epochs, weights in snapshots.items():
            shorter = result.prefix(epochs, weights)
            shorter.key = self.key_for(shorter.config, data)
            self.put(shorter)
        self.put(result)

    def _acquire(self, key: str, should_stop: StopFn | None = None) -> FileLock:
        """Waits for the key's lock; gives up (Cancelled) if the caller is told to stop meanwhile."""
        lock = self.lock(key)
        while True:
            try:
                lock.acquire(timeout=0.5)
                return lock
            except Timeout:
                if should_stop is not None and should_stop():
                    raise Cancelled(f"stopped while waiting for run {key}") from None
