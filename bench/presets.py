"""The app's time estimate against the real time of each MLP preset at full size.

    MNIST_DATA_DIR=../shared/data/mnist python bench/presets.py                  # the four MLP presets (~15 min)
    MNIST_DATA_DIR=../shared/data/mnist python bench/presets.py --preset mlp-lr  # one of them

For each preset, in a fresh cache: first the run a student's first click trains (the MLP page's
quick look: 3 epochs on 5,000 images), which is all the app has to measure this machine's speed
from; then the estimate the page would show for the preset; then the preset itself, trained by
`python -m mnist_core sweep --preset NAME` in a fresh process, timed from outside. Writes
bench/presets_results.json with the machine and the date.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "presets_results.json"
MLP_PRESETS = ("mlp-lr", "mlp-epochs", "mlp-batch", "mlp-activation")
QUICK_LOOK = ["--train-size", "5000", "--test-size", "2000", "--epochs", "3"]  # the MLP page's first comparison


def cli(cache: Path, *args: str) -> float:
    env = {**os.environ, "MNIST_CACHE_DIR": str(cache), "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mnist_core", *args], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def app_estimate(cache: Path, preset: str) -> float | None:
    """What the comparison page shows for `preset`, computed by the page's own function in a fresh process."""
    code = ("import json, sys; from mnist_core import PRESETS, RunCache, load_mnist; "
            "from mnist_core.compare import Comparison, entries, estimate; "
            f"p = PRESETS[{preset!r}]; "
            "print(json.dumps(estimate(entries(Comparison(p.base, p.param, tuple(p.values))), load_mnist('cpu'), "
            "RunCache()).seconds))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True,
                         env={**os.environ, "MNIST_CACHE_DIR": str(cache)})
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine() -> dict[str, str]:
    import torch
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return {"cpu": model, "cores": str(os.cpu_count()), "capability": torch.backends.cpu.get_cpu_capability(),
            "torch": torch.__version__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=MLP_PRESETS, action="append")
    presets = parser.parse_args().preset or list(MLP_PRESETS)
    rows = []
    for preset in presets:
        with tempfile.TemporaryDirectory(prefix="presets-bench-") as tmp:
            cache = Path(tmp)
            cli(cache, "train", *QUICK_LOOK)
            estimated = app_estimate(cache, preset)
            actual = cli(cache, "sweep", "--preset", preset)
        rows.append({"preset": preset, "estimate_s": estimated, "actual_s": round(actual, 1),
                     "estimate_over_actual": round(estimated / actual, 2) if estimated else None,
                     "load_average": os.getloadavg()[0]})
        print(json.dumps(rows[-1]), flush=True)
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    runs = {r["preset"]: r for r in previous.get("presets", [])} | {r["preset"]: r for r in rows}
    RESULTS.write_text(json.dumps({"date": datetime.date.today().isoformat(), "machine": machine(),
                                   "presets": list(runs.values())}, indent=2) + "\n")


if __name__ == "__main__":
    main()
