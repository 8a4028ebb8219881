"""The training service: trainings are jobs that the service owns, not the page or command that asked.

A page (or the CLI) submits a comparison with `JobService.submit(configs, owner)` and watches the
jobs it gets back; changing a widget, leaving the page or closing the tab does not stop them. Only
`cancel` does, once nobody wants the job any more. The flow is one path for every caller:

    page / CLI -> JobService (queue, fair share, dedupe, caps) -> executor -> run_job -> train.train()
               <- results (metrics + weights as bytes) <- the server stores them in its RunCache

Jobs. A comparison is split by `sweep.plan()`: one job per epoch-prefix group (the longest config
trains; the shorter epoch values are snapshots of it), runs already cached need no job, and a run
that an active job already produces is served by that job: everyone asking wants it (`watchers`).

Executors. The service is written against `concurrent.futures.Executor`, so the embedded default
(a ThreadPoolExecutor in the server process, no Dask) and a Dask cluster
(`distributed.Client(...).get_executor()`) are the same code. The service keeps its own queue and
hands a job to the executor only when one of its `capacity` slots is free, so the order in which
jobs start is decided here, identically for both; Dask then only picks the worker (a CUDA job goes
to the executor made with `resources={"GPU": 1}`, which Dask sends only to workers started with
`--resources GPU=1`).

Fair share. The next job to start is the oldest queued job of the owner with the least training
time used recently: the seconds their jobs have run, decayed with a half-life of FAIR_SHARE_HALF_LIFE
(running jobs count as they go). Plain round-robin would also stop one student's two-hour preset
from holding up everyone, but it forgets: a student whose long job just ended would be next again as
soon as their turn comes round; decayed time gives the others the next slots and forgives within the
hour. Ties (nobody has trained yet) go to the oldest job, i.e. first come, first served.
`fair_share=False` gives plain first come, first served (bench/jobs.py compares the two).
A job several students want is in line for each of them (it comes up with whichever of them has used
least: each is waiting for it), and its time is shared among them: two students who asked for the
same run each used half of it, so asking what a classmate asked costs less, never more. The
per-owner cap (MNIST_LAB_MAX_QUEUED_PER_OWNER) counts it in full for each, whether they started or
joined it: once the others withdraw it is wholly theirs, and a request is taken or refused the same
whatever classmates happened to ask. Places in line are computed once per change (a submit, a start,
an end, a withdrawal), not per lookup, so a page's refresh costs O(its jobs) (the class view O(jobs);
bench/service_refresh.py); time alone moves them a little (usage decays; running jobs add to it), so
a line older than PLACES_MAX_AGE is computed again. The dispatcher always computes its own.

Cancel withdraws a request. `cancel(id, who)` withdraws `who`'s, if they asked; the job stops only
when nobody wants it any more (the last to withdraw stays its watcher and sees it cancelled). Anyone
else can do nothing to it, so a student cannot stop a classmate's training by asking for the same
settings and cancelling: the others keep it as theirs, with their own Cancel. The engine checks
`should_stop` every step, so a job stops within a fraction of an epoch. Nothing from a cancelled or
failed job is cached, not even finished snapshots.

Nothing hangs. Every call to a channel or an executor (a Dask one is a round trip to the scheduler)
is made by the job's driver thread, never under the service's lock. Cancel marks the job; its driver
tells the worker and cancels the executor's future, so a task that has not started never does (a
Dask task is released from the scheduler) and the slot is free at once, even if no worker answers; a
worker still running it stops when it next looks at its flag. A Dask-backed service counts the
cluster's workers every WORKER_POLL_SECONDS: a job no connected worker can run (no worker at all; a
CUDA job and no worker started with --resources GPU=1) fails within seconds with a message that says
so (NO_WORKER, NO_GPU_WORKER), rather than holding a slot while its task waits; Run, once a worker is
there, trains it.

Jobs live in the server's memory: after a restart they are gone, and `job(id)` answers None. Finished
jobs beyond the newest `keep_finished` (KEEP_FINISHED) are forgotten too, but never while someone
holds them: one of their watchers still waits on an active job, or was around (asked, was `seen`, had
a job end) within HOLD_SECONDS. So a caller waiting on many jobs (a 1,000-value sweep) finds every
outcome when the last ends, and memory is still bounded by the students who are around.

Modules: `service` (Job, JobService: the queue, dedupe, caps, who waits on what), `fair_share` (who starts
next), `driver` (each job's thread: trains it, stores it, stops it at the run-time cap), `channels` (progress
and cancel between server and worker), `worker` (run_job: a job where it trains), `backends` (the
embedded and Dask services, service_from_env). Everything is imported from here.

For pages: build one service per server process with `service_from_env(cache, data)` (embedded, or
Dask when MNIST_LAB_DASK_SCHEDULER is set); `submit(configs, owner, code)` (`code`: the class code the
student typed; may raise RequestRefused: show its message); keep the job ids in the session; each
refresh, `seen(owner)` and `job(id)`, `jobs(owner=...)` or `jobs(keys=...)` (copies: read freely);
`cancel(id, owner)`; once a job is done, read its runs from the cache (`results_for`). `jobs()`
without an owner is the class view (show no `watchers`).
Hosted settings (hosting.py): MNIST_LAB_MAX_CONCURRENT (slots; with Dask, default: the cluster's
worker threads, recounted every WORKER_POLL_SECONDS so added workers take jobs), MNIST_LAB_MAX_REQUEST_SECONDS,
MNIST_LAB_MAX_QUEUED_PER_OWNER, MNIST_LAB_ABANDONED_AFTER_SECONDS (a queued job nobody has `seen` for
that long is dropped; unset, every job finishes), MNIST_LAB_CLASS_CODE (submit refuses a request
without it).
"""
from .backends import APP_DEFAULT, WORKER_POLL_SECONDS, dask_service, embedded_service, service_from_env
from .channels import CANCEL_POLL_SECONDS, DaskChannel, LocalChannel
from .driver import NO_GPU_WORKER, NO_WORKER, TOO_LONG
from .fair_share import FAIR_SHARE_HALF_LIFE
from .service import (ABANDONED, ACTIVE, CLASS_CODE_NEEDED, HOLD_SECONDS, KEEP_FINISHED, PLACES_MAX_AGE, STATES, Job,
                      JobService, RequestRefused, results_for)
from .worker import WORKER_LOST, JobFailed, JobSpec, run_job, student_message

__all__ = ["Job", "JobService", "JobSpec", "RequestRefused", "JobFailed", "run_job", "embedded_service",
           "dask_service", "service_from_env", "APP_DEFAULT", "results_for", "student_message", "STATES", "ACTIVE", "WORKER_LOST",
           "NO_WORKER", "NO_GPU_WORKER", "TOO_LONG", "ABANDONED", "CLASS_CODE_NEEDED", "LocalChannel", "DaskChannel",
           "FAIR_SHARE_HALF_LIFE", "HOLD_SECONDS", "KEEP_FINISHED", "PLACES_MAX_AGE", "CANCEL_POLL_SECONDS",
           "WORKER_POLL_SECONDS"]
