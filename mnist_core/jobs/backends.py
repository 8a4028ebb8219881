"""The two ways to build a service: embedded (threads of this process) or on a Dask cluster, and the one
a server process should use (`service_from_env`)."""
from __future__ import annotations

import concurrent.futures as cf
import os
import threading
import time
from typing import Any

from ..cache import RunCache
from ..hosting import HostingLimits
from ..i18n import N_
from .service import JobService, RequestRefused
from .worker import TORCH_THREADS

WORKER_POLL_SECONDS = 2.0        # how often a Dask-backed service counts the cluster's worker threads
# The app's trainings run in worker processes of their own unless the operator says otherwise: in threads
# of the server, 30 students watching one training (each watcher redrawn every 2 s) held it to 4% of its
# speed alone, since every torch op must win the GIL back from the page threads; in a worker process, 85%
# with the load generator on the same 2 cores (bench/class_load.py; README, A class, measured).
APP_DEFAULT = "local"


def embedded_service(cache: RunCache, data: Any, limits: HostingLimits | None = None, **options: Any) -> JobService:
    """Trains in threads of this process: the default, no Dask needed. `options`: JobService's (fair_share,
    keep_finished, hold_seconds)."""
    limits = limits or HostingLimits()
    executor = cf.ThreadPoolExecutor(max_workers=limits.max_concurrent, thread_name_prefix="train")
    return JobService(executor, cache, data, limits.max_concurrent, limits, shared_files=True, **options)


def dask_service(address: str, cache: RunCache, data: Any, limits: HostingLimits | None = None,
                 capacity: int | None = None, timeout: float = 5.0, local_workers: int = 2) -> JobService:
    """Trains on a Dask cluster: `address` is a scheduler (tcp://host:8786), or "local" for a private
    cluster of `local_workers` single-task worker processes on 127.0.0.1 that lives as long as this
    process, the machine's cores shared among them (torch's threads: cores // workers).

    `capacity` (jobs at once) defaults to the cluster's worker threads (for "local": `local_workers`, never
    counted, as their nannies restart them). A scheduler's workers are counted every
    WORKER_POLL_SECONDS, in a thread of their own (a round trip to the scheduler, never under the
    service's lock): a worker the operator adds takes jobs at once, without restarting the app, and a
    job that no connected worker can run fails with a message that says so. Raises RequestRefused with
    a one-line message when the scheduler cannot be reached.
    """
    import dask
    from distributed import Client, LocalCluster
    limits = limits or HostingLimits()
    shared_files, owns = False, []
    try:
        if address == "local":
            # Dask starts its workers with OMP_NUM_THREADS=1 and MALLOC_TRIM_THRESHOLD_=65536: the second
            # turns off glibc's adaptive mmap threshold, so every tensor over 128 KiB is mapped and unmapped
            # anew, and a run trained 1.2-1.7x slower than in this process (bench/class_mix.py). Neither
            # for our workers: each job sets torch to its worker's share of the cores instead.
            dask.config.set({"distributed.nanny.pre-spawn-environ": {}})
            threads = max(1, (os.cpu_count() or 1) // local_workers)
            cluster = LocalCluster(host="127.0.0.1", n_workers=local_workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None, env={TORCH_THREADS: str(threads)})
            client = Client(cluster, timeout=timeout)
            shared_files, owns = True, [client, cluster]  # the same machine: the same files
        else:
            client = Client(address, timeout=timeout)
            owns = [client]
    except (OSError, TimeoutError) as e:
        raise RequestRefused(N_("cannot reach the Dask scheduler at {address} ({reason}). Is `dask scheduler` "
                                "running there, and is the address right?"), address=address, reason=str(e)) from None

    def count() -> tuple[int, int]:  # worker threads, workers started with a GPU resource
        workers = client.scheduler_info(n_workers=-1)["workers"].values()
        return sum(w["nthreads"] for w in workers), sum(1 for w in workers if w.get("resources", {}).get("GPU"))

    if address == "local":
        # Our own workers, restarted by their nannies if they die: never counted, so a worker that misses
        # a heartbeat while a class loads the machine does not fail the queue with "no machine is connected"
        # (seen with 30 students). A CUDA job goes to them too, and fails there saying there is no GPU.
        return JobService(client.get_executor(pure=False), cache, data, capacity or local_workers, limits,
                          client=client, shared_files=shared_files, owns=owns)
    service = JobService(client.get_executor(pure=False), cache, data, capacity or (lambda: service.cluster[1]),
                         limits, gpu_executor=client.get_executor(pure=False, resources={"GPU": 1}), client=client,
                         shared_files=shared_files, owns=owns)
    service.counted(*count())

    def follow_workers() -> None:
        while not service._closed:
            time.sleep(WORKER_POLL_SECONDS)
            try:
                workers = count()
            except Exception:  # the scheduler is away for now: keep the last count
                continue
            service.counted(*workers)

    threading.Thread(target=follow_workers, name="dask-workers", daemon=True).start()
    return service


def service_from_env(cache: RunCache, data: Any, limits: HostingLimits | None = None,
                     env: dict[str, str] | None = None, default: str = "none") -> JobService:
    """The service a process should use, from MNIST_LAB_DASK_SCHEDULER (else `default`): a scheduler's
    address, "local" for a private cluster of MNIST_LAB_MAX_CONCURRENT worker processes (default 1) that
    share the cores, or "none" for the embedded one. With a scheduler's address, trainings at once =
    MNIST_LAB_MAX_CONCURRENT if set, else the cluster's worker threads."""
    env = os.environ if env is None else env
    limits = limits or HostingLimits.from_env(env)
    address = env.get("MNIST_LAB_DASK_SCHEDULER", "").strip() or default
    if address.lower() == "none":
        return embedded_service(cache, data, limits)
    if address == "local":
        return dask_service(address, cache, data, limits, local_workers=limits.max_concurrent)
    capacity = limits.max_concurrent if env.get("MNIST_LAB_MAX_CONCURRENT", "").strip() else None
    return dask_service(address, cache, data, limits, capacity)
