"""The run cache: one safetensors file per finished run, named by its key.

The file holds the weights as tensors and the run's metrics as JSON in the safetensors header, so
an entry is one file, written to a temp name and renamed into place: a process killed mid-write
leaves no entry that loads, only a `.KEY.PID.*.tmp` file, removed the next time a cache opens once
no live writer holds the key's lock. Nothing is ever unpickled. A file lock per key makes two
processes asking for the same uncached config train it once; the writer holds it while writing.

Reading a run's metrics parses the header by hand and needs no torch, so `python -m mnist_core
cache show KEY` answers in a fraction of a second; torch loads only for weights and training.
Headers already parsed are remembered by (inode, size, mtime), so listing an unchanged cache (every
page view does) costs one stat per entry.

Use is recorded (the file's mtime, for least-recently-used eviction) only when a run is served:
`get(key, touch=True)`. Listing and planning only look. Eviction skips pinned runs (`pins.json`,
set by the operator with `cache pin`) and runs whose lock is held (being trained or stored).

A read that fails for another reason than a damaged file (permissions, the file vanishing in a race,
a file from a newer schema) is a miss that keeps the file. A damaged file is moved to `quarantine/`
for the operator (`cache check`, the server log), never deleted.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import tempfile
from collections import deque
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from filelock import FileLock, Timeout

from .config import RunConfig, run_key
from .paths import CACHE_DIR
from .results import ProgressFn, RunResult, StopFn

if TYPE_CHECKING:
    from .data import MnistData

log = logging.getLogger(__name__)
KEY_PATTERN = re.compile(r"^(mlp|cnn)-[0-9a-f]{16}$")
SUFFIX = ".safetensors"
SCHEMA = 1  # of the stored metadata; a file with a higher number was written by a newer version
QUARANTINE = "quarantine"
PINS = "pins.json"
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


class UnknownRunError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


class Cancelled(Exception):
    """Raised when the caller asked to stop while waiting for another process's training."""


class CorruptEntry(ValueError):
    """The file is not a whole, well-formed entry for its key: cut short, garbage, or another run."""


class NewerSchema(Exception):
    """The file was written by a newer version of this code: intact, but not ours to read or replace."""


def _read_header(f, size: int) -> dict[str, str]:
    """Parses and checks a safetensors header without torch: every tensor's bytes fit its dtype and
    shape, back to back, and end exactly where the file does. Raises CorruptEntry if not."""
    try:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError("file too short")
        length = int.from_bytes(head, "little")
        if length > min(100_000_000, size - 8):
            raise ValueError("header length out of range")
        header = json.loads(f.read(length))
        end = 0
        for name, t in sorted(((n, t) for n, t in header.items() if n != "__metadata__"),
                              key=lambda nt: nt[1]["data_offsets"][0]):
            start, stop = (int(x) for x in t["data_offsets"])
            if start != end or stop - start != math.prod(t["shape"]) * DTYPE_BYTES[t["dtype"]]:
                raise ValueError(f"tensor {name} does not fit its place in the file")
            end = stop
        if 8 + length + end != size:
            raise ValueError("file size does not match its header (cut short?)")
        meta = header.get("__metadata__") or {}
        if not isinstance(meta, dict):
            raise ValueError("metadata is not a mapping")
        return meta
    except OSError:
        raise
    except Exception as e:  # json, key, type and value errors: all mean the bytes are not an entry
        raise CorruptEntry(f"{type(e).__name__}: {e}") from e


def save_file(tensors: dict[str, Any], path: str, metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file as save  # torch loads only when weights are written
    save(tensors, path, metadata=metadata)


def check_key(key: str) -> str:
    """Keys come from users (CLI, URLs): only this exact shape is ever turned into a path."""
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        raise UnknownRunError(f"'{key}' is not a run key (keys look like mlp-0123456789abcdef; see 'cache list').")
    return key


def _signature(st: os.stat_result) -> tuple[int, int, int]:
    return st.st_ino, st.st_size, st.st_mtime_ns


def _copy(result: RunResult, **changes: Any) -> RunResult:
    """A shallow copy (the index keeps its own; callers may set fields), faster than copy.copy."""
    new = RunResult.__new__(RunResult)
    new.__dict__ = {**result.__dict__, **changes}
    return new


def _temp_key(name: str) -> str:
    """The key a temp file `.KEY.PID.random.tmp` was being written for."""
    return name[1:].split(".", 1)[0]


class RunCache:
    def __init__(self, root: str | Path | None = None, max_bytes: int | None = None):
        self.root = Path(root) if root else CACHE_DIR / "runs"
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.problems: deque[str] = deque(maxlen=100)  # for the operator: what went wrong since this object was made
        self._index: dict[str, tuple[tuple[int, int, int], RunResult]] = {}  # file name -> (signature, header)
        self._locks: dict[str, FileLock] = {}
        self.clean_temps()

    def path(self, key: str) -> Path:
        return self.root / f"{check_key(key)}{SUFFIX}"

    def key_for(self, config: RunConfig, data: MnistData) -> str:
        """The run's key: on the device the config names, else ("auto") where `data` lives. A CPU server
        asks for "cuda" runs that a GPU worker of its Dask cluster trains."""
        return run_key(config, data.data_id, data.device.type if config.device == "auto" else config.device)

    def lock(self, key: str) -> FileLock:
        """The key's lock: one object per key and cache, re-entrant in the thread that holds it, so that
        storing a run inside get_or_train_all takes it again without waiting for itself."""
        lock = self._locks.get(key)
        return lock if lock is not None else self._locks.setdefault(key, FileLock(str(self.root / f".{check_key(key)}.lock")))

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
                self._touch(path)
            result = self._load(path, key, weights)
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

    @staticmethod
    def _touch(path: Path) -> None:
        try:
            os.utime(path)
        except FileNotFoundError:
            raise
        except OSError as e:  # someone else's file: still readable, just not marked as used
            log.info("could not mark %s as used: %s", path.name, e)

    def _load(self, path: Path, key: str, weights: bool, fresh: bool = False) -> RunResult:
        """The entry at `path` (a copy: callers may change it). Everything is read through one open file,
        so a writer replacing it meanwhile cannot make a whole entry look cut short."""
        if not (weights or fresh):
            known = self._index.get(path.name)
            if known is not None and known[0] == _signature(os.stat(path)):
                return _copy(known[1])
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            meta = _read_header(f, st.st_size)
            try:
                schema = int(meta.get("schema", 1))  # files from before the number was written are schema 1
            except (TypeError, ValueError) as e:
                raise CorruptEntry(f"schema {meta.get('schema')!r} is not a number") from e
            if schema > SCHEMA:
                raise NewerSchema(f"written with cache schema {schema}, this version reads {SCHEMA}")
            try:
                result = RunResult.from_json(json.loads(meta["run"]))
            except Exception as e:
                raise CorruptEntry(f"metadata unreadable ({type(e).__name__}: {e})") from e
            if result.key != key:
                raise CorruptEntry(f"the file holds run {result.key}")
            self._index[path.name] = (_signature(st), _copy(result))
            if weights:
                from safetensors.torch import load  # safetensors: tensors only, never a pickle
                f.seek(0)
                try:
                    result.weights = load(f.read())
                except Exception as e:
                    raise CorruptEntry(f"weights unreadable ({type(e).__name__}: {e})") from e
        return result

    def _quarantine(self, path: Path, key: str, reason: str, weights: bool = False) -> Path | None:
        """Moves a damaged entry aside for the operator, unless someone is writing the key right now (their
        rename replaces it) or it was replaced since we read it."""
        lock = self.lock(key)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            self._report(f"Cached run {key} looked damaged ({reason}) while another process was storing it; left in place.")
            return None
        try:
            try:  # damaged still? (a writer may have replaced it before we locked)
                self._load(path, key, weights=weights, fresh=True)
                return None
            except CorruptEntry:
                pass
            except (OSError, NewerSchema):
                return None
            folder = self.root / QUARANTINE
            folder.mkdir(exist_ok=True)
            stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
            dest = folder / f"{stamp}-{key}{SUFFIX}"
            os.replace(path, dest)
            self._index.pop(path.name, None)
            self._report(f"Cached run {key} was damaged ({reason}); moved to {dest} for inspection. "
                         f"It will be retrained when asked for.")
            return dest
        finally:
            lock.release()

    def weights(self, key: str, touch: bool = True) -> dict[str, Any]:
        """A run's weights, to serve a prediction: records the use unless told not to."""
        result = self.get(key, weights=True, touch=touch)
        if result is None or result.weights is None:
            raise UnknownRunError(f"No cached run {key} (see 'cache list').")
        return result.weights

    def entries(self) -> list[Path]:
        """Every entry's file (not temps, locks, pins or quarantine)."""
        return [self.root / e.name for e in os.scandir(self.root)
                if e.name.endswith(SUFFIX) and KEY_PATTERN.match(e.name[: -len(SUFFIX)])]

    def list(self) -> list[RunResult]:
        """Every readable entry, newest first (metrics only). Changes nothing on disk (except moving a
        damaged entry to quarantine); an unchanged entry costs one stat."""
        runs, seen, index = [], set(), self._index
        for entry in os.scandir(self.root):  # os and plain strings: pathlib would cost more than the stats
            name = entry.name
            if not (name.endswith(SUFFIX) and KEY_PATTERN.match(name[: -len(SUFFIX)])):
                continue
            seen.add(name)
            known = index.get(name)
            try:
                if known is not None and known[0] == _signature(entry.stat()):
                    runs.append(_copy(known[1], cached=True))
                    continue
            except FileNotFoundError:
                continue
            if (run := self.get(name[: -len(SUFFIX)])) is not None:
                runs.append(run)
        for name in set(index) - seen:  # gone: evicted, or removed by hand
            index.pop(name, None)
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
        try:
            data = json.loads((self.root / PINS).read_text())
        except FileNotFoundError:
            return set()
        keys = data.get("pinned") if isinstance(data, dict) else None
        if not isinstance(keys, list) or not all(isinstance(k, str) and KEY_PATTERN.match(k) for k in keys):
            raise ValueError(f"{self.root / PINS} is not a list of run keys")
        return set(keys)

    def pin(self, keys: Iterable[str]) -> set[str]:
        return self._change_pins(lambda pins: pins | {check_key(k) for k in keys})

    def unpin(self, keys: Iterable[str]) -> set[str]:
        return self._change_pins(lambda pins: pins - {check_key(k) for k in keys})

    def _change_pins(self, change: Callable[[set[str]], set[str]]) -> set[str]:
        with FileLock(str(self.root / f".{PINS}.lock")):
            pins = change(self.pinned())
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=f".{PINS}.", suffix=".part")
            with os.fdopen(fd, "w") as f:
                json.dump({"pinned": sorted(pins)}, f, indent=1)
            os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the pins from other operators
            os.replace(tmp, self.root / PINS)
        return pins

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
                self._load(path, result.key, weights=False, fresh=True)
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
        """Removes temp files left by writers that died mid-write (a writer holds its key's lock until its
        rename; a free lock means nobody will finish that file). Returns their names."""
        removed = []
        for tmp in self.root.glob(".*.tmp"):
            key = _temp_key(tmp.name)
            if not KEY_PATTERN.match(key):
                continue
            lock = self.lock(key)
            if lock.is_locked:  # this thread is writing it
                continue
            try:
                lock.acquire(timeout=0)
            except Timeout:
                continue  # a live writer: its file stays
            try:
                tmp.unlink(missing_ok=True)
                removed.append(tmp.name)
            finally:
                lock.release()
        if removed:
            log.info("removed %d temp file(s) left by interrupted writes: %s", len(removed), ", ".join(removed))
        return removed

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
        entries = []
        for path in self.entries():
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            entries.append((st.st_mtime_ns, st.st_size, path))
        entries.sort()
        total, removed = sum(size for _, size, _ in entries), []
        for _, size, path in entries[:-1]:  # the newest entry stays, even alone over the cap
            if total <= self.max_bytes:
                break
            key = path.name[: -len(SUFFIX)]
            lock = self.lock(key)
            if key in pinned or lock.is_locked:  # pinned, or this thread is training or storing it
                continue
            try:
                lock.acquire(timeout=0)
            except Timeout:
                continue  # another session or process is training or storing it
            try:
                path.unlink(missing_ok=True)
            finally:
                lock.release()
            total -= size
            removed.append(key)
        return removed

    # -- the operator's check ------------------------------------------------------------------
    def check(self) -> list[dict[str, str]]:
        """Reads every entry's header afresh (no torch): damaged ones go to quarantine. Returns one row per
        thing the operator should know about: damaged, unreadable, quarantined, temp files, pins of runs
        not cached. An empty list means every entry is whole."""
        rows = []
        for path in sorted(self.entries()):
            key = path.name[: -len(SUFFIX)]
            try:
                self._load(path, key, weights=False, fresh=True)
            except FileNotFoundError:
                continue
            except CorruptEntry as e:
                dest = self._quarantine(path, key, str(e))
                rows.append({"file": path.name, "state": "damaged",
                             "detail": f"{e}; moved to {dest}" if dest else f"{e}; being written now, left in place"})
            except (OSError, NewerSchema) as e:
                rows.append({"file": path.name, "state": "unreadable", "detail": f"{type(e).__name__}: {e}; kept"})
        folder = self.root / QUARANTINE
        for path in sorted(folder.iterdir()) if folder.is_dir() else []:
            rows.append({"file": f"{QUARANTINE}/{path.name}", "state": "quarantined",
                         "detail": f"{path.stat().st_size:,} bytes; inspect, then delete by hand"})
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
                locks.append(self._acquire(key, should_stop))
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
