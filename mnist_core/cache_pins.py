"""The runs the operator pinned (`cache pin`): never evicted. One JSON file in the cache's folder,
`pins.json`, changed under its own lock and replaced whole."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Callable

from filelock import FileLock

from .cache_entries import KEY_PATTERN

PINS = "pins.json"


class Pins:
    def __init__(self, root: Path):
        self.path = root / PINS

    def read(self) -> set[str]:
        """The pinned keys. Raises ValueError if the pins file is damaged."""
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return set()
        keys = data.get("pinned") if isinstance(data, dict) else None
        if not isinstance(keys, list) or not all(isinstance(k, str) and KEY_PATTERN.match(k) for k in keys):
            raise ValueError(f"{self.path} is not a list of run keys")
        return set(keys)

    def change(self, change: Callable[[set[str]], set[str]]) -> set[str]:
        root = self.path.parent
        with FileLock(str(root / f".{PINS}.lock")):
            pins = change(self.read())
            fd, tmp = tempfile.mkstemp(dir=root, prefix=f".{PINS}.", suffix=".part")
            with os.fdopen(fd, "w") as f:
                json.dump({"pinned": sorted(pins)}, f, indent=1)
            os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the pins from other operators
            os.replace(tmp, self.path)
        return pins
