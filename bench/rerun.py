"""How a page's rerun grows with the cache: a comparison page re-rendered after a widget change, with
1,000 runs in the cache.

    MNIST_DATA_DIR=../shared/data/mnist python bench/rerun.py            # 1,000 entries, 15 reruns
    MNIST_DATA_DIR=../shared/data/mnist python bench/rerun.py --entries 3000 --reruns 25

Fills a temp cache with realistic entries (RunResult metadata as training writes it: 1 to 50 epochs
of metrics, MLP and CNN configs of every kind the pages make; tiny weight tensors, except the runs
the page shows, which get real MLP weights so that the page draws everything it would). Then, in
Streamlit's AppTest (the server's script run, without a browser), opens the MLP page and changes a
sidebar widget (the seed, between two comparisons that are both cached, so every rerun draws the
full results: four curves, the timing table, the inspect section), timing each `.run()`: first with
only the page's own 8 runs cached (the cost of the page itself), then with the cache filled. Also
times RunCache.list() on a fresh cache object (every header read) and on a warm one (what a page
view pays), and compare.estimate.

Target: a rerun under 300 ms of server time with 1,000 runs cached. Writes bench/rerun_results.json
with the machine and its load average: on a busy shared machine the medians move by 100 ms between
runs, so compare the two pages' minimums too, and the list/estimate figures, which are the cache's share.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as app.py does, before torch loads
ROOT = Path(__file__).resolve().parent.parent
WORK = Path(tempfile.mkdtemp(prefix="mnist-rerun-bench-"))
os.environ["MNIST_CACHE_DIR"] = str(WORK)  # never the project's cache
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from mnist_core.cache import RunCache  # noqa: E402
from mnist_core.compare import Comparison, entries, estimate  # noqa: E402
from mnist_core.config import PRESETS, RunConfig, run_key  # noqa: E402
from mnist_core.data import load_mnist  # noqa: E402
from mnist_core.models import build_model  # noqa: E402
from mnist_core.results import EpochMetrics, RunResult  # noqa: E402

RESULTS = ROOT / "bench" / "rerun_results.json"
TARGET_MS = 300
# The MLP page's first view: the learning-rate preset's values on the quick-look config (comparison_sidebar.py).
PAGE_BASE = RunConfig(model="mlp", train_size=5_000, test_size=2_000, epochs=3)
PAGE_SEEDS = (PAGE_BASE.seed, PAGE_BASE.seed + 1)


def a_result(config: RunConfig, data_id: str, rng: random.Random) -> RunResult:
    """Metrics shaped like a real run's: a falling loss, a rising accuracy, seconds per epoch."""
    epochs, acc, loss = [], rng.uniform(0.5, 0.9), rng.uniform(0.3, 3.0)
    seconds = rng.uniform(0.5, 30.0)
    for e in range(1, config.epochs + 1):
        acc = min(0.995, acc + (1 - acc) * rng.uniform(0.0, 0.3))
        loss *= rng.uniform(0.6, 1.0)
        epochs.append(EpochMetrics(e, loss, acc, loss * rng.uniform(1.0, 1.3), acc - rng.uniform(0, 0.02),
                                   seconds, config.train_size / seconds))
    return RunResult(config=config, status="ok", epochs=epochs, total_seconds=seconds * config.epochs,
                     steps_per_epoch=-(-config.train_size // config.batch_size), device="cpu",
                     key=run_key(config, data_id, "cpu"), data_id=data_id, created=time.time() - rng.uniform(0, 1e6))


def filler_configs(n: int, rng: random.Random) -> list[RunConfig]:
    """n distinct configs of the kinds the pages make."""
    out: set[RunConfig] = set()
    while len(out) < n:
        if rng.random() < 0.75:
            config = RunConfig(model="mlp", lr=rng.choice([0.1, 0.01, 0.001, 0.0001]),
                               batch_size=rng.choice([10, 100, 1000]), epochs=rng.choice([1, 3, 5, 15, 30, 50]),
                               activations=rng.choice([("relu", "relu"), ("sigmoid", "relu"), ("relu", "sigmoid")]),
                               init=rng.choice(["normal", "xavier_uniform"]), train_size=rng.choice([5_000, 60_000]),
                               seed=rng.randrange(10_000))
        else:
            config = RunConfig(model="cnn", stride=rng.choice([1, 2]), kernel_size=rng.choice([3, 5]),
                               epochs=rng.choice([1, 3, 15]), train_size=rng.choice([5_000, 60_000]),
                               seed=rng.randrange(10_000))
        out.add(config)
    return sorted(out, key=repr)


def page_runs(cache: RunCache, data_id: str, rng: random.Random) -> int:
    """The runs the page shows: real MLP weights, so that the inspect section runs the model."""
    shown = [e.config for seed in PAGE_SEEDS
             for e in entries(Comparison(PAGE_BASE.replace(seed=seed), "lr", tuple(PRESETS["mlp-lr"].values)))]
    for config in shown:
        result = a_result(config, data_id, rng)
        result.weights = build_model(config).state_dict()
        cache.put(result)
    return len(shown)


def fill(cache: RunCache, n: int, data_id: str, rng: random.Random) -> None:
    for config in filler_configs(n, rng):
        result = a_result(config, data_id, rng)
        result.weights = {"w": torch.zeros(4)}
        cache.put(result)


def reruns(at: AppTest, n: int) -> list[float]:
    """Seconds of each `.run()` after changing the sidebar's seed, flipping between the two cached comparisons.
    The first two are not counted: they fill Streamlit's resources (the models, the test-set reports)."""
    times = []
    for i in range(n + 2):
        at.text_input(key="mlp.cfg.seed").set_value(str(PAGE_SEEDS[(i + 1) % 2]))
        took = timed(at.run)
        assert not at.exception, at.exception
        assert at.get("vega_lite_chart"), "the rerun should draw the cached comparison's charts"
        if i >= 2:
            times.append(took)
    return times


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def summary(times: list[float]) -> dict:
    return {"median": ms(statistics.median(times)), "min": ms(min(times)), "max": ms(max(times)), "runs": len(times)}


def report(results: dict, path: Path | None) -> None:
    """Prints the results with the date and the machine, and writes them to `path` unless it is None (--no-write)."""
    out = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(), **results}
    print(json.dumps(out, indent=2))
    if path is not None:
        path.write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {path.relative_to(ROOT)}")


def run_in_temp_cache(main) -> None:
    """Runs a benchmark's main, then removes the temp cache (WORK) whatever happens."""
    try:
        main()
    finally:
        shutil.rmtree(WORK, ignore_errors=True)


def machine() -> dict:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() \
        else platform.processor()
    return {"cpu": model, "cores": os.cpu_count(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform(),
            "load_average_1min": round(os.getloadavg()[0], 1)}  # a shared machine's noise: compare mins too


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--reruns", type=int, default=15)
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/rerun_results.json alone")
    args = parser.parse_args()

    data = load_mnist("cpu")
    rng = random.Random(0)
    cache = RunCache()
    shown = page_runs(cache, data.data_id, rng)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.run()
    at.switch_page("app_pages/mlp.py")
    at.run()
    alone = reruns(at, args.reruns)  # the same page with only its own runs cached: the cost of the page itself

    start = time.perf_counter()
    fill(cache, args.entries - shown, data.data_id, rng)
    print(f"filled {args.entries} entries ({cache.size_bytes() / 1e6:.1f} MB) in {time.perf_counter() - start:.1f} s")
    full = reruns(at, args.reruns)

    cold = timed(RunCache().list)  # a fresh object: every header is read
    warm_cache = RunCache()
    warm_cache.list()
    warm = [timed(warm_cache.list) for _ in range(20)]
    items = entries(Comparison(PAGE_BASE, "lr", tuple(PRESETS["mlp-lr"].values)))
    est = [timed(lambda: estimate(items, data, warm_cache)) for _ in range(20)]
    assert estimate(items, data, warm_cache).cached == len(items), "the page's comparison should be cached"

    out = {
        "entries": args.entries, "entries_shown_by_the_page": shown, "cache_mb": round(cache.size_bytes() / 1e6, 1),
        "page_rerun_ms": summary(full), "page_rerun_ms_only_its_own_runs_cached": summary(alone),
        "page_rerun_what": "AppTest .run() of the MLP page after changing the sidebar's seed between two cached "
                           "comparisons (4 runs each: curves, timing table, inspect section)",
        "list_ms": {"cold": ms(cold), "warm_median": ms(statistics.median(warm))},
        "estimate_ms_median": ms(statistics.median(est)),
        "target_ms": TARGET_MS, "meets_target": statistics.median(full) * 1000 < TARGET_MS,
    }
    report(out, None if args.no_write else RESULTS)


if __name__ == "__main__":
    run_in_temp_cache(main)
