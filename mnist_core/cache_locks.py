"""The run cache's locks: a file lock per key, held by whoever trains or stores that run, so that two
processes asking for the same uncached config train it once, no writer's temp file is taken for a dead
writer's, and eviction leaves a run being trained or stored alone."""
from __future__ import annotations

import logging
from pathlib import Path

from filelock import FileLock, Timeout

from .cache_entries import KEY_PATTERN, check_key
from .results import StopFn

log = logging.getLogger(__name__)


class Cancelled(Exception):
    """Raised when the caller asked to stop while waiting for another process's training."""


def _temp_key(name: str) -> str:
    """The key a temp file `.KEY.PID.random.tmp` was being written for."""
    return name[1:].split(".", 1)[0]


class KeyLocks:
    def __init__(self, root: Path):
        self.root = root
        self._locks: dict[str, FileLock] = {}

    def lock(self, key: str) -> FileLock:
        """The key's lock: one object per key and cache, re-entrant in the thread that holds it, so that
        storing a run inside get_or_train_all takes it again without waiting for itself."""
        lock = self._locks.get(key)
        return lock if lock is not None else self._locks.setdefault(key, FileLock(str(self.root / f".{check_key(key)}.lock")))

    def try_lock(self, key: str) -> FileLock | None:
        """The key's lock, taken if no one holds it, else None. Held by this thread already counts as held:
        it is training or storing that run."""
        lock = self.lock(key)
        if lock.is_locked:
            return None
        try:
            lock.acquire(timeout=0)
        except Timeout:
            return None  # another session or process holds it
        return lock

    def acquire(self, key: str, should_stop: StopFn | None = None) -> FileLock:
        """Waits for the key's lock; gives up (Cancelled) if the caller is told to stop meanwhile."""
        lock = self.lock(key)
        while True:
            try:
                lock.acquire(timeout=0.5)
                return lock
            except Timeout:
                if should_stop is not None and should_stop():
                    raise Cancelled(f"stopped while waiting for run {key}") from None

    def clean_temps(self) -> list[str]:
        """Removes temp files left by writers that died mid-write (a writer holds its key's lock until its
        rename; a free lock means nobody will finish that file). Returns their names."""
        removed = []
        for tmp in self.root.glob(".*.tmp"):
            key = _temp_key(tmp.name)
            if not KEY_PATTERN.match(key):
                continue
            lock = self.try_lock(key)
            if lock is None:  # a live writer, maybe this thread: its file stays
                continue
            try:
                tmp.unlink(missing_ok=True)
                removed.append(tmp.name)
            finally:
                lock.release()
        if removed:
            log.info("removed %d temp file(s) left by interrupted writes: %s", len(removed), ", ".join(removed))
        return removed
