"""Benchmarks of the job service: what Dask costs per job, and what fair share buys a student in line.

    MNIST_DATA_DIR=../shared/data/mnist python bench/jobs.py     # about 2 minutes on 2 cores

Writes bench/jobs_results.json with the machine.

1. overhead: a 1-epoch run of 2,000 images submitted to the embedded service (a thread of this
   process) and to a Dask LocalCluster of two worker processes on 127.0.0.1, from submit to done
   (the result stored in the cache). Cold: the worker's first job, which loads torch's kernels and
   MNIST in the worker; warm: the median of later jobs, one at a time, after four more jobs have warmed
   up every worker (new seeds, so nothing is cached).
2. queue wait: one training slot; student A submits a 4-value comparison of larger runs, then
   student B one small run. B's wait (submitted -> started) with fair share against first come,
   first served (the same service with fair_share=False), and A's last job's wait for comparison.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # must precede the first import of torch
os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parent.parent
WORK = Path(tempfile.mkdtemp(prefix="mnist-bench-jobs-"))
os.environ["MNIST_CACHE_DIR"] = str(WORK / "cache")  # never the project's cache
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from mnist_core.cache import RunCache  # noqa: E402
from mnist_core.config import RunConfig  # noqa: E402
from mnist_core.data import load_mnist  # noqa: E402
from mnist_core.hosting import HostingLimits  # noqa: E402
from mnist_core.jobs import JobService, dask_service, embedded_service  # noqa: E402
from mnist_core.train import machine_info  # noqa: E402

RESULTS = ROOT / "bench" / "jobs_results.json"
SMALL = dict(train_size=2000, test_size=500, batch_size=50, init="xavier_uniform", epochs=1)


def one_job(service: JobService, seed: int) -> float:
    started = time.perf_counter()
    (job,) = service.submit([RunConfig(**SMALL, seed=seed)], owner="bench")
    assert service.wait([job.id], timeout=600) and service.job(job.id).state == "done", service.job(job.id)
    return time.perf_counter() - started


def overhead(data, repeats: int = 5) -> dict:
    out = {}
    for name in ("embedded", "dask"):
        cache = RunCache(WORK / name)
        service = embedded_service(cache, data) if name == "embedded" else dask_service("local", cache, data)
        try:
            cold = one_job(service, seed=1000)
            # every worker process loads MNIST on its first job: warm them all up before timing
            warmups = service.submit([RunConfig(**SMALL, seed=2000 + i) for i in range(4)], owner="bench")
            assert service.wait([j.id for j in warmups], timeout=600)
            warm = [one_job(service, seed=1001 + i) for i in range(repeats)]
        finally:
            service.shutdown()
        out[name] = {"cold_s": round(cold, 3), "warm_median_s": round(statistics.median(warm), 3),
                     "warm_s": [round(w, 3) for w in warm]}
        print(f"{name:9} cold {cold:6.2f} s   warm median {statistics.median(warm):6.3f} s", flush=True)
    out["dask_minus_embedded_warm_s"] = round(out["dask"]["warm_median_s"] - out["embedded"]["warm_median_s"], 3)
    return out


def queue_wait(data) -> dict:
    big = RunConfig(train_size=10_000, test_size=500, batch_size=50, init="xavier_uniform", epochs=2)
    out = {}
    for name, fair in (("fair_share", True), ("first_come_first_served", False)):
        service = embedded_service(RunCache(WORK / f"queue-{name}"), data, HostingLimits(), fair_share=fair)
        try:
            ann = service.submit([big.replace(lr=lr) for lr in (0.01, 0.003, 0.001, 0.0003)], owner="ann")
            (bob,) = service.submit([RunConfig(**SMALL, seed=7)], owner="bob")
            assert service.wait([j.id for j in ann] + [bob.id], timeout=900)
            bob = service.job(bob.id)
            ann = [service.job(j.id) for j in ann]
        finally:
            service.shutdown()
        out[name] = {"small_job_wait_s": round(bob.started - bob.submitted, 2),
                     "small_job_place_started_after": sum(j.started < bob.started for j in ann),
                     "big_jobs_s": [round(j.finished - j.started, 2) for j in ann],
                     "last_big_job_wait_s": round(ann[-1].started - ann[-1].submitted, 2)}
        print(f"{name:24} small job waited {out[name]['small_job_wait_s']:6.2f} s "
              f"(behind {out[name]['small_job_place_started_after']} of A's 4 jobs)", flush=True)
    return out


def main() -> None:
    started, load_at_start = time.perf_counter(), list(os.getloadavg())
    data = load_mnist("cpu")
    results = {"command": "python bench/jobs.py", "overhead": overhead(data), "queue_wait": queue_wait(data)}
    results["seconds"] = round(time.perf_counter() - started, 1)
    results["machine"] = {**machine_info("cpu"), "platform": platform.platform(), "cpu_count": os.cpu_count(),
                          "threads": torch.get_num_threads(), "omp_wait_policy": os.environ["OMP_WAIT_POLICY"],
                          "load_average_at_start": load_at_start, "load_average_at_end": list(os.getloadavg())}
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
