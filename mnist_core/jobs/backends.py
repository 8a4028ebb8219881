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

WORKER_POLL_SECONDS = 2.0        # how often a Dask-backed service counts the cluster's worker threads


def embedded_service(cache: RunCache, data: Any, limits: HostingLimits | None = None, **options: Any) -> JobService:
    """Trains in threads of this process: the default, no Dask needed. `options`: JobService's (fair_share,
    keep_finished, hold_seconds)."""
    limits = limits or HostingLimits()
    executor = cf.ThreadPoolExecutor(max_workers=limits.max_concurrent, thread_name_prefix="train")
    return JobService(executor, cache, data, limits.max_concurrent, limits, shared_files=True, **options)


def dask_service(address: str, cache: RunCache, data: Any, limits: HostingLimits | None = None,
                 capacity: int | None = None, timeout: float = 5.0) -> JobService:
    """Trains on a Dask cluster: `address` is a scheduler (tcp://host:8786), or "local" for a private
    cluster of two worker processes on 127.0.0.1 that lives as long as this process.

    `capacity` (jobs at once) defaults to the cluster's worker threads. The workers are counted every
    WORKER_POLL_SECONDS, in a thread of their own (a round trip to the scheduler, never under the
    service's lock): a worker the operator adds takes jobs at once, without restarting the app, and a
    job that no connected worker can run fails with a message that says so. Raises RequestRefused with
    a one-line message when the scheduler cannot be reached.
    """
    from distributed import Client, LocalCluster
    limits = limits or HostingLimits()
    shared_files, owns = False, []
    try:
        if address == "local":
            cluster = LocalCluster(host="127.0.0.1", n_workers=2, threads_per_worker=1, processes=True,
                                   dashboard_address=None)
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
                     env: dict[str, str] | None = None) -> JobService:
    """The service a server process should use: Dask when MNIST_LAB_DASK_SCHEDULER is set (an address,
    or "local"), else the embedded one. With Dask, trainings at once = MNIST_LAB_MAX_CONCURRENT if set,
    else the cluster's worker threads."""
    env = os.environ if env is None else env
    limits = limits or HostingLimits.from_env(env)
    address = env.get("MNIST_LAB_DASK_SCHEDULER", "").strip()
    if not address:
        return embedded_service(cache, data, limits)
    capacity = limits.max_concurrent if env.get("MNIST_LAB_MAX_CONCURRENT", "").strip() else None
    return dask_service(address, cache, data, limits, capacity)
