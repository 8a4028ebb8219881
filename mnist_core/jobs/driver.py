"""A job's driver: the thread that has a job trained and stored, for the service (JobService._dispatch
starts one per job). Every call to the channel and the executor (a Dask one is a round trip to the
scheduler) happens here, never under the service's lock."""
from __future__ import annotations

import concurrent.futures as cf
import logging
import time
from typing import Any

from ..cache import Cancelled
from ..i18n import N_, Duration, Message
from ..results import RunResult
from .worker import WORKER_LOST, JobFailed, JobSpec, run_job, student_message, unpack

log = logging.getLogger(__name__)

NO_WORKER = N_("No machine is connected to train this right now; ask your teacher to start a worker, then press "
               "Run again.")
NO_GPU_WORKER = N_("No machine with a GPU is connected, so this CUDA training cannot start. Train it on the CPU "
                   "(device auto or cpu), or ask your teacher to start a GPU worker, then press Run again.")
TOO_LONG = N_("This training ran for {ran}, longer than this shared server allows ({most} per request, plus {grace} "
              "of grace), so it was stopped and nothing of it was kept. Use fewer epochs, a smaller training set, a "
              "larger batch size or a smaller network, then press Run again.")


def drive(service: Any, job: Any, channel: Any) -> None:
    """Holds the job's run keys' locks, has the executor train it, drains its progress, stores it. Every
    call to the channel and the executor happens here, never under the service's lock."""
    data = service.data_for(job.config.dataset)
    spec = JobSpec(job.config, tuple(c.epochs for c in job.configs[:-1]), job.device, data.data_id,
                   data.source if service.shared_files else None)
    executor = service.gpu_executor if job.device == "cuda" and service.gpu_executor else service.executor
    stopping = lambda: job.state == "cancelled"  # noqa: E731
    trained, answered = [], []  # answered: the worker's task ended by itself (not cancelled under it)
    limit = service.limits.run_limit_seconds  # hosted: however wrong its estimate, no job trains longer

    def train_missing(todo: list[int]) -> list[tuple[RunResult, dict]]:
        future, since, told = executor.submit(run_job, spec, channel), time.monotonic(), False
        began = None  # when the worker began training it (a Dask task may wait for a worker first)
        while True:
            try:
                out = future.result(timeout=0.1)
                break
            except cf.TimeoutError:
                pass
            except cf.CancelledError:  # cancelled below: its task never ran, or its result is not wanted
                raise Cancelled(f"job {job.id} was cancelled") from None
            except BaseException:
                answered.append(True)
                raise
            finally:
                events = channel.drain()
                if any("worker" in event for event in events):
                    since = began = time.monotonic()
                _apply(service, job, events)
            reason = None if told else cannot_start(service.cluster, job, since)
            if reason and job.worker:
                reason = WORKER_LOST  # it had begun: its worker is gone
            if limit is not None and began is not None and time.monotonic() - began > limit:
                most = service.limits.max_request_seconds
                reason = Message(TOO_LONG, ran=Duration(time.monotonic() - began), most=Duration(most),
                                 grace=Duration(limit - most))
            if (stopping() or reason) and not told:
                told = True
                channel.cancel()  # the worker sees it within CANCEL_POLL_SECONDS (a step, in-process)
                future.cancel()   # a task not started yet never starts; a Dask one is released
                if reason:
                    raise JobFailed(reason)
        answered.append(True)
        with service._lock:  # from here on the runs are stored whole, and a cancel comes too late
            if stopping() or out["run"]["status"] == "cancelled":
                raise Cancelled(f"job {job.id} was cancelled")
            service._storing.add(job.id)
        result, snapshots = unpack(out)
        trained.append(out["worker"])
        return [(result, snapshots)]

    state, message = "done", None
    try:
        service.cache.get_or_train_all([job.config], data, train_missing, stopping)
    except Cancelled:
        state = "cancelled"
    except Exception as e:
        state, message = "failed", student_message(e)
        log.warning("job %s (%s) failed: %r", job.id, job.config.describe(), e)
    finally:
        if answered:  # else a worker may still be running it: it must go on seeing its cancel flag
            try:
                channel.close()
            except Exception:
                pass
    with service._lock:
        service._storing.discard(job.id)
        if job.state == "cancelled":
            state, message = "cancelled", None
        if trained:
            job.worker, job.trained = trained[0], True
        service._end(job, state, message)

def _apply(service: Any, job: Any, events: list[dict[str, Any]]) -> None:
    with service._lock:
        for event in events:
            if "worker" in event:  # an attempt begins: show where, from the start
                job.worker, job.epoch, job.fraction, job.running_loss, job.epochs = event["worker"], 0, 0.0, None, []
                continue
            job.epoch, job.fraction = event["epoch"], event["fraction"]
            job.running_loss = event["metrics"].get("train_loss")
            if event["fraction"] >= 1.0 and "test_acc" in event["metrics"]:
                job.epochs.append(event["metrics"])


def cannot_start(cluster: tuple[float, int, int] | None, job: Any, since: float | None = None) -> str | None:
    """Why no worker of the cluster (as last counted: when, worker threads, GPU workers) can run `job` (a
    message for the student), or None. `since`: only a count taken after then says so (a job's task was
    already handed over)."""
    if cluster is None or since is not None and cluster[0] <= since:
        return None
    _, threads, gpu_workers = cluster
    if threads == 0:
        return NO_WORKER
    if job.device == "cuda" and gpu_workers == 0:
        return NO_GPU_WORKER
    return None
