"""What one watching page costs the training service per refresh, with a class's worth of jobs queued.

    python bench/service_refresh.py     # a few seconds; no MNIST needed (synthetic data makes the keys)

40 students have 8 jobs each waiting (320 queued; no slot free, so nothing trains and the figure is the
service's alone). One refresh is what a page's watcher asks each time (app_pages/watcher.remembered_jobs):
`seen(owner)`, `job(id)` for each of its 8 jobs, and `jobs(keys=...)` (a link opened
elsewhere finds the running job). Two cases:

- steady: nothing changed since the last refresh (places come from the line computed at the last change);
- after a change: before each refresh another student asks for one of its jobs and withdraws again, so
  every refresh finds the queue changed and computes the whole line (the worst case).

At c1b7034, before places were computed once per change, the same refresh (with `jobs(active_only=True)`
and no keys) took 252 ms (median) on the project's 2-core AMD EPYC at load average 3.8; this version
0.037 ms steady and 0.81 ms after a change, measured minutes apart (bench/service_refresh_results.json).

Writes bench/service_refresh_results.json with the machine and the load average.
"""
from __future__ import annotations

import concurrent.futures as cf
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = Path(tempfile.mkdtemp(prefix="mnist-bench-refresh-"))
os.environ["MNIST_CACHE_DIR"] = str(WORK / "cache")  # never the project's cache
sys.path.insert(0, str(ROOT))

from mnist_core.cache import RunCache  # noqa: E402
from mnist_core.config import RunConfig  # noqa: E402
from mnist_core.data import synthetic_data  # noqa: E402
from mnist_core.jobs import JobService  # noqa: E402
from mnist_core.train import machine_info  # noqa: E402

RESULTS = ROOT / "bench" / "service_refresh_results.json"
STUDENTS, JOBS_EACH, ROUNDS = 40, 8, 25
LRS = (0.1, 0.03, 0.01, 0.003, 0.001, 0.0003, 0.0001, 0.00003)


def refresh(service: JobService, owner: str, ids: list[str], keys: list[str]) -> None:
    service.seen(owner)
    jobs = [service.job(i) for i in ids]
    assert all(job is not None and job.place for job in jobs)
    service.jobs(keys=keys)  # as app_pages/watcher.remembered_jobs asks


def measure(service: JobService, mine: dict[str, list[str]], change: bool) -> list[float]:
    times = []
    jobs = {owner: [service.job(i) for i in ids] for owner, ids in mine.items()}
    for _ in range(ROUNDS):
        for owner, ids in mine.items():
            if change:  # someone asks for it too and withdraws: the line changed (outside the timing)
                service.submit(jobs[owner][0].configs, "visitor")
                service.cancel(ids[0], "visitor")
            started = time.perf_counter()
            refresh(service, owner, ids, [key for job in jobs[owner] for key in job.keys])
            times.append(time.perf_counter() - started)
    return times


def main() -> None:
    load_at_start = list(os.getloadavg())
    data = synthetic_data()
    # No free slot (capacity 0): every job stays queued; the executor is never used.
    service = JobService(cf.ThreadPoolExecutor(max_workers=1), RunCache(WORK / "runs"), data, capacity=lambda: 0)
    mine = {}
    for s in range(STUDENTS):
        owner = f"student-{s}"
        jobs = service.submit([RunConfig(train_size=1000, epochs=1, seed=s, lr=lr) for lr in LRS[:JOBS_EACH]], owner)
        mine[owner] = [job.id for job in jobs]
    results = {"command": "python bench/service_refresh.py", "students": STUDENTS, "jobs_each": JOBS_EACH,
               "queued": len(service.jobs(active_only=True))}
    for name, change in (("steady", False), ("after_a_change", True)):
        times = measure(service, mine, change)
        results[name] = {"median_ms": round(statistics.median(times) * 1000, 3),
                         "mean_ms": round(statistics.mean(times) * 1000, 3),
                         "p95_ms": round(sorted(times)[int(len(times) * 0.95)] * 1000, 3), "refreshes": len(times)}
        print(f"{name:15} median {results[name]['median_ms']:8.3f} ms per refresh  (p95 "
              f"{results[name]['p95_ms']:.3f} ms, {len(times)} refreshes, {results['queued']} jobs queued)", flush=True)
    service.shutdown()
    results["machine"] = {**machine_info("cpu"), "platform": platform.platform(), "cpu_count": os.cpu_count(),
                          "python": platform.python_version(), "load_average_at_start": load_at_start,
                          "load_average_at_end": list(os.getloadavg())}
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
