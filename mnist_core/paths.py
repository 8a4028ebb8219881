"""Where runtime data lives: `cache/` beside the package, or MNIST_CACHE_DIR (tests point it at a temp folder)."""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = Path(os.environ.get("MNIST_CACHE_DIR") or PROJECT_ROOT / "cache")
