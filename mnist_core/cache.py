"""The run cache: one safetensors file per finished run, named by its key.

The file holds the weights as tensors and the run's metrics as JSON in the safetensors header, so
an entry is one file, written to a temp name and renamed into place: a process killed mid-write
leaves no entry that loads, only a `.KEY.PID.*.tmp` file, removed the next time a cache opens once
no live writer holds the key's lock. Nothing is ever unpickled. A file lock per key makes two
processes asking for the same uncached config train it once; the writer holds it while writing.

Reading a run's metrics parses the header by hand and needs no torch, so `python -m mnist_core
cache show KEY` answers in a fraction of a second; torch loads only for weights and training.
Headers already parsed are remembered, so listing an unchanged cache costs one stat per entry.

Use is recorded (the file's mtime, for least-recently-used eviction) only when a run is served:
`get(key, touch=True)`. Listing and planning only look. Eviction skips pinned runs (`pins.json`,
set by the operator with `cache pin`) and runs whose lock is held (being trained or stored).

A read that fails for another reason than a damaged file (permissions, the file vanishing in a race,
a file from a newer schema) is a miss that keeps the file. A damaged file is moved to `quarantine/`
for the operator (`cache check`, the server log), never deleted.

RunCache is the one door; its concerns live beside it: the file format and the index of parsed headers
(cache_entries), the per-key locks and dead writers' temp files (cache_locks), the operator's pins
(cache_pins), eviction, use and quarantine (cache_upkeep).
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from filelock import FileLock, Timeout

from .cache_entries import (KEY_PATTERN, SCHEMA, SUFFIX, CorruptEntry, HeaderIndex, NewerSchema, UnknownRunError,
                            check_key, entry_key)
from .cache_locks import Cancelled, KeyLocks
from .cache_pins import PINS, Pins
from .cache_upkeep import QUARANTINE, evict, mark_used, quarantine, quarantined
from .config import RunConfig, run_key
from .paths import CACHE_DIR
from .results import ProgressFn, RunResult, StopFn

if TYPE_CHECKING:
    from .data import MnistData

# What callers import from here, whichever module of the cache defines it.
__all__ = ["RunCache", "Cancelled", "CorruptEntry", "NewerSchema", "UnknownRunError", "check_key", "KEY_PATTERN",
           "SUFFIX", "SCHEMA", "PINS", "QUARANTINE", "save_file"]

log = logging.getLogger(__name__)


def save_file(tensors: dict[str, Any], path: str, metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file as save  # torch loads only when weights are written
    save(tensors, path, metadata=metadata)


class RunCache:
    def __init__(self, root: str | Path | None = None, max_bytes: int | None = None):
        self.root = Path(root) if root else CACHE_DIR / "runs"
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.problems: deque[str] = deque(maxlen=100)  # for the operator: what went wrong since this object was made
        self.index = HeaderIndex()
        self.locks = KeyLocks(self.root)
        self.pins = Pins(self.root)
        self.clean_temps()

    def path(self, key: str) -> Path:
        return self.root / f"{check_key(key)}{SUFFIX}"

    def key_for(self, config: RunConfig, data: MnistData) -> str:
        """The run's key: on the device the config names, else ("auto") where `data` lives. A CPU server
        asks for "cuda" runs that a GPU worker of its Dask cluster trains."""
        return run_key(config, data.data_id, data.device.type if config.device == "auto" else config.device)

    def lock(self, key: str) -> FileLock:
        return self.locks.lock(key)

    def _report(self, message: str) -> None:
        log.warning(message)
        self.problems.append(message)

    # -- reading -------------------------------------------------------------------------------
    def get(self, key: str, weights: bool = False, touch: bool = False) -> RunResult | None:
        """The cached run, or None. `touch=True` records the use (for eviction): pass it only where the run
        is served to someone, never where the cache is only looked at.

        A damaged entry is moved to quarantine and is a miss; an entry that cannot be read for another
        reason (permissions, a newer schema, a race with eviction) is a miss and stays where it is.
        """
        path = self.path(key)
        try:
            if touch:  # first, so that eviction sees it as the newest while it is read
                mark_used(path)
            result = self.index.load(path, key, weights)
        except FileNotFoundError:
            return None
        except CorruptEntry as e:
            self._quarantine(path, key, str(e), weights)
            return None
        except (OSError, NewerSchema) as e:
            self._report(f"Cached run {key} could not be read ({type(e).__name__}: {e}); "
                         f"the file was kept and counts as not cached.")
            return None
        result.cached = True
        return result

    def _quarantine(self, path: Path, key: str, reason: str, weights: bool = False) -> Path | None:
        dest = quarantine(path, key, reason, self.lock(key),
                          lambda: self.index.load(path, key, weights=weights, fresh=True), self._report)
        if dest is not None:
            self.index.forget(path.name)
        return dest

    def weights(self, key: str, touch: bool = True) -> dict[str, Any]:
        """A run's weights, to serve a prediction: records the use unless told not to."""
        result = self.get(key, weights=True, touch=touch)
        if result is None or result.weights is None:
            raise UnknownRunError(f"No cached run {key} (see 'cache list').")
        return result.weights

    def entries(self) -> list[Path]:
        """Every entry's file (not temps, locks, pins or quarantine)."""
        return [self.root / e.name for e in os.scandir(self.root) if entry_key(e.name)]

    def list(self) -> list[RunResult]:
        """Every readable entry, newest first (metrics only). Changes nothing on disk (except moving a
        damaged entry to quarantine); an unchanged entry costs one stat."""
        runs, seen = [], set()
        for entry in os.scandir(self.root):  # os and plain strings: pathlib would cost more than the stats
            if (key := entry_key(entry.name)) is None:
                continue
            seen.add(entry.name)
            try:
                if (known := self.index.unchanged(entry)) is not None:
                    runs.append(known)
                    continue
            except FileNotFoundError:
                continue
            if (run := self.get(key)) is not None:
                runs.append(run)
        self.index.keep_only(seen)
        return sorted(runs, key=lambda r: r.created, reverse=True)

    def size_bytes(self) -> int:
        """Bytes held by entries; temps being written and quarantined files count against nothing."""
        total = 0
        for path in self.entries():
            try:
                total += path.stat().st_size
            except FileNotFoundError:
                pass
        return total

    # -- pins ----------------------------------------------------------------------------------
    def pinned(self) -> set[str]:
        """The keys the operator pinned (never evicted). Raises ValueError if the pins file is damaged."""
        return self.pins.read()

    def pin(self, keys: Iterable[str]) -> set[str]:
        return self.pins.change(lambda pins: pins | {check_key(k) for k in keys})

    def unpin(self, keys: Iterable[str]) -> set[str]:
        return self.pins.change(lambda pins: pins - {check_key(k) for k in keys})

    # -- writing -------------------------------------------------------------------------------
    def put(self, result: RunResult) -> bool:
        """Stores a finished run atomically; returns whether it did. The writer holds the key's lock while
        writing, so no cache opening meanwhile takes its temp file for a dead writer's. Not stored:
        cancelled runs (not results), a run whose key another process holds (it is storing that very
        run), and over an intact entry we cannot read (newer schema, permissions), which is kept."""
        if result.status == "cancelled":
            return False
        if result.weights is None:
            raise ValueError("a run is stored with its weights")
        path = self.path(result.key)
        meta = json.dumps({**result.to_json(), "cached": False})
        lock = self.lock(result.key)
        try:
            lock.acquire(timeout=0)  # re-entrant: get_or_train_all already holds its own keys
        except Timeout:
            log.info("run %s not stored: another process holds its lock and is storing it", result.key)
            return False
        try:
            try:
                self.index.load(path, result.key, weights=False, fresh=True)
            except CorruptEntry as e:
                self._quarantine(path, result.key, str(e))
            except FileNotFoundError:
                pass
            except (OSError, NewerSchema) as e:
                self._report(f"Run {result.key} was not stored: the cached file could not be read "
                             f"({type(e).__name__}: {e}) and is kept as it is.")
                return False
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=f".{result.key}.{os.getpid()}.", suffix=".tmp")
            os.close(fd)
            try:
                save_file({k: v.contiguous() for k, v in result.weights.items()}, tmp,
                          metadata={"run": meta, "schema": str(SCHEMA)})
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        finally:
            lock.release()
        self.evict()
        return True

    def clean_temps(self) -> list[str]:
        """Removes temp files left by writers that died mid-write; returns their names."""
        return self.locks.clean_temps()

    def evict(self) -> list[str]:
        """Removes least-recently-used entries until the cache fits `max_bytes`; returns their keys.
        Never removes a pinned run, one whose lock is held (being trained or stored), or the newest."""
        if self.max_bytes is None:
            return []
        try:
            pinned = self.pinned()
        except (OSError, ValueError) as e:
            self._report(f"Nothing evicted: the pins file could not be read ({e}).")
            return []
        return evict(self.entries(), self.max_bytes, pinned, self.locks)

    # -- the operator's check ------------------------------------------------------------------
    def check(self) -> list[dict[str, str]]:
        """Reads every entry's header afresh (no torch): damaged ones go to quarantine. Returns one row per
        thing the operator should know about: damaged, unreadable, quarantined, temp files, pins of runs
        not cached. An empty list means every entry is whole."""
        rows = []
        for path in sorted(self.entries()):
            key = path.name[: -len(SUFFIX)]
            try:
                self.index.load(path, key, weights=False, fresh=True)
            except FileNotFoundError:
                continue
            except CorruptEntry as e:
                dest = self._quarantine(path, key, str(e))
                rows.append({"file": path.name, "state": "damaged",
                             "detail": f"{e}; moved to {dest}" if dest else f"{e}; being written now, left in place"})
            except (OSError, NewerSchema) as e:
                rows.append({"file": path.name, "state": "unreadable", "detail": f"{type(e).__name__}: {e}; kept"})
        rows += quarantined(self.root)
        self.clean_temps()
        for tmp in sorted(self.root.glob(".*.tmp")):
            rows.append({"file": tmp.name, "state": "temp", "detail": "being written by a live process"})
        try:
            cached = {p.name[: -len(SUFFIX)] for p in self.entries()}
            rows += [{"file": key, "state": "pinned, not cached", "detail": "train it to keep it"}
                     for key in sorted(self.pinned() - cached)]
        except (OSError, ValueError) as e:
            rows.append({"file": PINS, "state": "unreadable", "detail": f"{e}; nothing is evicted until it is fixed"})
        return rows

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
        """The cached run for each of `configs` (served: their use is recorded); `train_missing(indices)`
        trains those not cached and returns (result, snapshots) for each, in order. Every key's lock is
        held meanwhile, taken in sorted order so that two processes asking for overlapping sets cannot
        deadlock; a run another process finished while we waited is served, not trained again.
        """
        keys = [self.key_for(c, data) for c in configs]
        results: list[RunResult | None] = [self.get(key, touch=True) for key in keys]
        if all(r is not None for r in results):
            return results
        locks = []
        try:
            for key in sorted(set(keys)):
                locks.append(self.locks.acquire(key, should_stop))
            results = [self.get(key, touch=True) for key in keys]  # someone else may have trained some while we waited
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
