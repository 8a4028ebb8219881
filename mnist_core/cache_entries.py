"""The run cache's entries: the file format (a safetensors file whose header holds the run as JSON) read
without torch, the errors a file can have, and the index of headers already parsed.

Headers already parsed are remembered by (inode, size, mtime), so listing an unchanged cache (every
page view does) costs one stat per entry. Nothing here moves, locks or deletes a file: mnist_core/cache.py.
"""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any, Iterable

from .results import RunResult

KEY_PATTERN = re.compile(r"^(mlp|cnn)-[0-9a-f]{16}$")
SUFFIX = ".safetensors"
SCHEMA = 1  # of the stored metadata; a file with a higher number was written by a newer version
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


class UnknownRunError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


class CorruptEntry(ValueError):
    """The file is not a whole, well-formed entry for its key: cut short, garbage, or another run."""


class NewerSchema(Exception):
    """The file was written by a newer version of this code: intact, but not ours to read or replace."""


def check_key(key: str) -> str:
    """Keys come from users (CLI, URLs): only this exact shape is ever turned into a path."""
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        raise UnknownRunError(f"'{key}' is not a run key (keys look like mlp-0123456789abcdef; see 'cache list').")
    return key


def entry_key(name: str) -> str | None:
    """The run key of an entry's file name, or None for any other file (temps, locks, pins, quarantine)."""
    if name.endswith(SUFFIX) and KEY_PATTERN.match(name[: -len(SUFFIX)]):
        return name[: -len(SUFFIX)]
    return None


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


def _signature(st: os.stat_result) -> tuple[int, int, int]:
    return st.st_ino, st.st_size, st.st_mtime_ns


def _copy(result: RunResult, **changes: Any) -> RunResult:
    """A shallow copy (the index keeps its own; callers may set fields), faster than copy.copy."""
    new = RunResult.__new__(RunResult)
    new.__dict__ = {**result.__dict__, **changes}
    return new


class HeaderIndex:
    """Each entry's run as last read, by file name, with the file's signature then."""

    def __init__(self) -> None:
        self._known: dict[str, tuple[tuple[int, int, int], RunResult]] = {}

    def load(self, path: Path, key: str, weights: bool, fresh: bool = False) -> RunResult:
        """The entry at `path` (a copy: callers may change it). Everything is read through one open file,
        so a writer replacing it meanwhile cannot make a whole entry look cut short."""
        if not (weights or fresh):
            known = self._known.get(path.name)
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
            self._known[path.name] = (_signature(st), _copy(result))
            if weights:
                from safetensors.torch import load  # safetensors: tensors only, never a pickle
                f.seek(0)
                try:
                    result.weights = load(f.read())
                except Exception as e:
                    raise CorruptEntry(f"weights unreadable ({type(e).__name__}: {e})") from e
        return result

    def unchanged(self, entry: os.DirEntry) -> RunResult | None:
        """The entry's run as last read, if its file has not changed since (one stat); FileNotFoundError if gone."""
        known = self._known.get(entry.name)
        if known is not None and known[0] == _signature(entry.stat()):
            return _copy(known[1], cached=True)
        return None

    def forget(self, name: str) -> None:
        self._known.pop(name, None)

    def keep_only(self, names: Iterable[str]) -> None:
        """Drops the files that are gone (evicted, or removed by hand)."""
        for name in set(self._known) - set(names):
            self._known.pop(name, None)
