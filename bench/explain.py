"""How long one image's look inside a model takes on a CPU: the hooks' forward pass (every layer's output as
numpy arrays), and the same plus drawing every layer's heatmap grid, for the seed's CNN at stride 1, at
stride 5, with 10x10 filters, and for the seed's MLP. The issue asks for well under 100 ms per image.

    python bench/explain.py            # writes bench/explain_results.json (medians of 50 repeats)

Random-init weights: the time does not depend on what the weights learned. A real digit-like input
(a 28x28 image with a stroke) goes through as_input exactly as a drawing would.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench/run.py: sane on a shared machine
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from mnist_core.config import RunConfig  # noqa: E402
from mnist_core.explain import as_input, capture, layer_picture  # noqa: E402
from mnist_core.models import build_model  # noqa: E402

REPEATS = 50
RESULTS = ROOT / "bench" / "explain_results.json"
CASES = {"cnn stride 1": RunConfig(model="cnn"), "cnn stride 5": RunConfig(model="cnn", stride=5),
         "cnn filter 10": RunConfig(model="cnn", kernel_size=10), "mlp": RunConfig(model="mlp")}


def median_ms(fn) -> float:
    fn()  # the first call allocates and warms the caches
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    torch.manual_seed(0)
    digit = np.zeros((28, 28), dtype=np.float32)
    digit[6:22, 13:16] = 1.0  # a "1"
    rows = []
    for name, config in CASES.items():
        model = build_model(config).eval()

        def maps():
            return capture(model, as_input(digit))

        def maps_and_pictures():
            seen = maps()
            return [layer_picture(a[0]) for a in seen.layers.values()]

        rows.append({"case": name, "capture_ms": round(median_ms(maps), 3),
                     "capture_and_pictures_ms": round(median_ms(maps_and_pictures), 3)})
        print(f"{name:14s}  capture {rows[-1]['capture_ms']:7.2f} ms   + every layer's grid "
              f"{rows[-1]['capture_and_pictures_ms']:7.2f} ms")
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    RESULTS.write_text(json.dumps({
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python bench/explain.py", "repeats": REPEATS, "statistic": "median",
        "machine": {"cpu_model": cpu, "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(),
                    "cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__,
                    "platform": platform.platform(), "load_average": os.getloadavg()},
        "figures": rows}, indent=1) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
