"""Copies the browser tests' screenshots into docs/screenshots/, where the README shows them.

    python -m pytest -q tests/test_e2e.py tests/test_e2e_korean.py tests/test_explore.py   # test-artifacts/*.png
    python tests/refresh_screenshots.py        # then, deliberately: docs/screenshots/ <- test-artifacts/

The tests never write into docs/: running them leaves a clean clone clean.
"""
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
SCREENSHOTS = ROOT / "docs" / "screenshots"
NAMES = ("home", "mlp", "cnn", "draw", "inside-cnn-stride-1-vs-5", "mlp-ko", "fashion", "explore")  # the README's:
# mlp-ko and fashion come from test_e2e_korean, explore from test_explore


def main() -> int:
    missing = [name for name in NAMES if not (ARTIFACTS / f"{name}.png").is_file()]
    if missing:
        print(f"error: no {', '.join(missing)} screenshot in {ARTIFACTS}: run python -m pytest tests/test_e2e.py tests/test_e2e_korean.py tests/test_explore.py first",
              file=sys.stderr)
        return 2
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for name in NAMES:
        shutil.copy(ARTIFACTS / f"{name}.png", SCREENSHOTS / f"{name}.png")
        print(f"docs/screenshots/{name}.png <- test-artifacts/{name}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
