"""Keeping the run cache within bounds and whole: least-recently-used eviction to the operator's cap, and
quarantine, where a damaged entry is moved for the operator (`cache check`, the server log), never deleted."""
from __future__ import annotations

import logging
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from filelock import FileLock, Timeout

from .cache_entries import SUFFIX, CorruptEntry, NewerSchema
from .cache_locks import KeyLocks

log = logging.getLogger(__name__)
QUARANTINE = "quarantine"


def mark_used(path: Path) -> None:
    """Records that the entry was served: its mtime orders eviction."""
    try:
        os.utime(path)
    except FileNotFoundError:
        raise
    except OSError as e:  # someone else's file: still readable, just not marked as used
        log.info("could not mark %s as used: %s", path.name, e)


def evict(entries: list[Path], max_bytes: int, pinned: set[str], locks: KeyLocks) -> list[str]:
    """Removes least-recently-used entries (by mtime: a served run is touched) until they fit `max_bytes`;
    returns their keys. Never removes a pinned run, one whose lock is held (being trained or stored), or the
    newest."""
    found = []
    for path in entries:
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        found.append((st.st_mtime_ns, st.st_size, path))
    found.sort()
    total, removed = sum(size for _, size, _ in found), []
    for _, size, path in found[:-1]:  # the newest entry stays, even alone over the cap
        if total <= max_bytes:
            break
        key = path.name[: -len(SUFFIX)]
        if key in pinned:
            continue
        lock = locks.try_lock(key)
        if lock is None:  # this thread, another session or another process is training or storing it
            continue
        try:
            path.unlink(missing_ok=True)
        finally:
            lock.release()
        total -= size
        removed.append(key)
    return removed


def quarantine(path: Path, key: str, reason: str, lock: FileLock, reread: Callable[[], Any],
               report: Callable[[str], None]) -> Path | None:
    """Moves a damaged entry aside for the operator, unless someone is writing the key right now (their
    rename replaces it) or it was replaced since we read it (`reread` raises CorruptEntry while it is damaged)."""
    try:
        lock.acquire(timeout=0)  # re-entrant: put quarantines under the lock it holds
    except Timeout:
        report(f"Cached run {key} looked damaged ({reason}) while another process was storing it; left in place.")
        return None
    try:
        try:  # damaged still? (a writer may have replaced it before we locked)
            reread()
            return None
        except CorruptEntry:
            pass
        except (OSError, NewerSchema):
            return None
        folder = path.parent / QUARANTINE
        folder.mkdir(exist_ok=True)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        dest = folder / f"{stamp}-{key}{SUFFIX}"
        os.replace(path, dest)
        report(f"Cached run {key} was damaged ({reason}); moved to {dest} for inspection. "
               f"It will be retrained when asked for.")
        return dest
    finally:
        lock.release()


def quarantined(root: Path) -> list[dict[str, str]]:
    """The operator's rows for the files in quarantine."""
    folder = root / QUARANTINE
    return [{"file": f"{QUARANTINE}/{path.name}", "state": "quarantined",
             "detail": f"{path.stat().st_size:,} bytes; inspect, then delete by hand"}
            for path in (sorted(folder.iterdir()) if folder.is_dir() else [])]
