"""The Explore page with a big cache: a filter change re-rendered with 1,000 runs cached.

    MNIST_DATA_DIR=../shared/data/mnist python bench/explore.py            # 1,000 entries, 15 reruns
    MNIST_DATA_DIR=../shared/data/mnist python bench/explore.py --entries 3000 --reruns 25

Fills a temp cache the way bench/rerun.py does (its helpers: realistic run headers, MLP and CNN configs of
every kind the pages make, tiny weight tensors), opens the Explore page in Streamlit's AppTest (the server's
script run, without a browser) and times each `.run()` after a filter change, by the wall clock and by the
process' CPU time (which the machine's other work moves less): the learning-rate filter between nothing (all
1,000 runs in the table and the charts: the most the page draws) and one value. Counts the cache entries the
page opens during those reruns (an audit hook on `open`): reading weights would need one, so 0 means it read
none. Writes bench/explore_results.json with the machine and its load average at the start and the end (on a
shared machine the medians move; compare the minimums and the CPU time too).

Target: a filter change re-renders in under 500 ms of server time.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time

from rerun import ROOT, fill, ms, report, run_in_temp_cache, summary, timed  # sets MNIST_CACHE_DIR to its temp folder first

from streamlit.testing.v1 import AppTest  # noqa: E402

from mnist_core.cache import RunCache  # noqa: E402
from mnist_core.data import load_mnist  # noqa: E402

RESULTS = ROOT / "bench" / "explore_results.json"
TARGET_MS = 500
LR_FILTER = "explore.filter.lr"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--reruns", type=int, default=15)
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/explore_results.json alone")
    args = parser.parse_args()

    load_at_start = round(os.getloadavg()[0], 1)
    cache = RunCache()
    start = time.perf_counter()
    fill(cache, args.entries, load_mnist("cpu").data_id, random.Random(0))
    print(f"filled {args.entries} entries ({cache.size_bytes() / 1e6:.1f} MB) in {time.perf_counter() - start:.1f} s")

    opened: list[str] = []
    sys.addaudithook(lambda event, what: event == "open" and str(what[0]).endswith(".safetensors")
                     and opened.append(str(what[0])))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.run()
    at.switch_page("app_pages/explore.py")
    first = timed(at.run)  # the first view: every header is read once (a fresh server's first listing)
    assert not at.exception, at.exception
    opened.clear()
    times: dict[str, list[float]] = {"all runs": [], "one learning rate": []}
    cpu: list[float] = []  # the process' CPU seconds: what the rerun cost the server, whatever else loads the machine
    for i in range(args.reruns + 2):
        state = "one learning rate" if i % 2 == 0 else "all runs"
        at.multiselect(key=LR_FILTER).set_value(["0.001"] if i % 2 == 0 else [])
        before = time.process_time()
        took = timed(at.run)
        used = time.process_time() - before
        assert not at.exception, at.exception
        assert len(at.get("vega_lite_chart")) >= 3, "the rerun should draw the parallel coordinates and the scatter"
        if i >= 2:  # the first two warm Streamlit's caches up
            times[state].append(took)
            cpu.append(used)
    every = [t for ts in times.values() for t in ts]

    out = {
        "entries": args.entries, "cache_mb": round(cache.size_bytes() / 1e6, 1),
        "filter_change_rerun_ms": summary(every), **{f"filter_change_rerun_ms_{k.replace(' ', '_')}": summary(v)
                                                    for k, v in times.items()},
        "filter_change_rerun_cpu_ms": summary(cpu), "load_average_1min_at_start": load_at_start,
        "first_view_ms": ms(first), "cache_entries_opened_by_the_reruns": len(opened),
        "what": "AppTest .run() of the Explore page after changing its learning-rate filter between nothing (every "
                "run in the table and the charts) and one value",
        "target_ms": TARGET_MS, "meets_target": statistics.median(every) * 1000 < TARGET_MS,
    }
    report(out, None if args.no_write else RESULTS)


if __name__ == "__main__":
    run_in_temp_cache(main)
