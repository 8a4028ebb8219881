"""The job service itself: `Job`, the queue, fair share, dedupe and caps, and each job's driver thread
(see the package's docstring).
"""
from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import heapq
import hmac
import itertools
import logging
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from ..cache import Cancelled, RunCache
from ..config import RunConfig
from ..hosting import HostingLimits
from ..i18n import N_, LabError
from ..results import RunResult
from .channels import DaskChannel, LocalChannel
from .worker import WORKER_LOST, JobFailed, JobSpec, run_job, student_message, unpack

log = logging.getLogger(__name__)

STATES = ("queued", "running", "done", "failed", "cancelled")
ACTIVE = ("queued", "running")
FAIR_SHARE_HALF_LIFE = 15 * 60   # seconds: training time used this long ago counts half
KEEP_FINISHED = 500              # finished jobs remembered beyond those someone holds (for pages that come back)
HOLD_SECONDS = 10 * 60           # a finished job is held while one of its watchers was around this recently
PLACES_MAX_AGE = 2.0             # seconds the places shown may lag behind usage that changed with time alone
NO_WORKER = N_("No machine is connected to train this right now; ask your teacher to start a worker, then press "
               "Run again.")
NO_GPU_WORKER = N_("No machine with a GPU is connected, so this CUDA training cannot start. Train it on the CPU "
                   "(device auto or cpu), or ask your teacher to start a GPU worker, then press Run again.")
ABANDONED = N_("Nobody was watching this any more, so it was not trained.")
CLASS_CODE_NEEDED = N_("This server trains only for its class: enter the class code in the sidebar first.")


class RequestRefused(LabError):
    """A request this server will not take (over a cap, too many waiting); the message says what to do,
    in the student's language where a page shows it (`i18n.translate`)."""


@dataclass
class Job:
    """One training, as pages and the CLI see it (`JobService.job()` returns a copy: read it freely)."""
    id: str
    config: RunConfig             # the config trained (the longest of its epoch-prefix group)
    configs: list[RunConfig]      # every config it produces: `config` and its shorter-epoch snapshots
    keys: list[str]               # their run keys, in the order of `configs`
    device: str                   # "cpu", "cuda" or "mps": where it trains (part of the keys)
    watchers: list[str]           # who want it, in the order they asked: each may withdraw (cancel) their own
    state: str = "queued"         # queued, running, done, failed or cancelled
    place: int | None = None      # in line, 1 = next to start; None unless queued
    epoch: int = 0                # the epoch being trained (1-based; 0 before the first step)
    fraction: float = 0.0         # of that epoch
    running_loss: float | None = None
    epochs: list[dict[str, Any]] = field(default_factory=list)  # each finished epoch's metrics, as they land
    submitted: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    estimate_seconds: float | None = None  # None: nothing measured for this model on this device yet
    message: str | None = None    # why it failed (or was dropped unwatched), for a student
    worker: str | None = None     # "local" (embedded) or the Dask worker's address; None until it starts
    trained: bool = False         # False when done because another process had stored the runs meanwhile

    @property
    def progress(self) -> float:
        """Overall fraction done, 0 to 1."""
        return self.fraction_done(self.config.epochs)

    def fraction_done(self, epochs: int) -> float:
        """How far along the run of `epochs` epochs among `configs` is, 0 to 1 (a snapshot finishes early)."""
        if self.state == "done":
            return 1.0
        return min(1.0, (max(self.epoch - 1, 0) + self.fraction) / epochs)


class JobService:
    """Owns every training of one server process (or one CLI command). Thread-safe.

    `data` is the server's MnistData (only its data_id and device are used: they make the run keys); a
    config of the other dataset uses that one's, loaded when first asked for (`data_for`).
    `shared_files`: workers read the server's data folders (in-process and local workers); else each
    worker reads its own (MNIST_DATA_DIR, FASHION_MNIST_DATA_DIR) and the hashes must agree.
    `keep_finished`, `hold_seconds`: when finished jobs are forgotten (KEEP_FINISHED, HOLD_SECONDS).
    """

    def __init__(self, executor: cf.Executor, cache: RunCache, data: Any, capacity: int | Callable[[], int] = 1,
                 limits: HostingLimits | None = None, *, gpu_executor: cf.Executor | None = None,
                 client: Any = None, shared_files: bool = False, fair_share: bool = True,
                 owns: Iterable[Any] = (), keep_finished: int | None = None, hold_seconds: float | None = None):
        if isinstance(capacity, int) and capacity < 1:
            raise ValueError("the service needs at least one training slot")
        self.executor, self.gpu_executor, self.client = executor, gpu_executor, client
        self.cache, self.data, self.capacity = cache, data, capacity
        self.limits = limits or HostingLimits()
        self.shared_files, self.fair_share = shared_files, fair_share
        self.keep_finished = KEEP_FINISHED if keep_finished is None else keep_finished
        self.hold_seconds = HOLD_SECONDS if hold_seconds is None else hold_seconds
        # Dask: (time.monotonic() when counted, worker threads, workers with a GPU); None: embedded, always able.
        self.cluster: tuple[float, int, int] | None = None
        self._owns = list(owns)  # closed by shutdown(): a private cluster, its client
        self._lock = threading.RLock()
        self._ended = threading.Condition(self._lock)  # notified whenever a job ends
        self._jobs: dict[str, Job] = {}          # every job still remembered, by id
        self._order = itertools.count()          # submission order, for ties
        self._seq: dict[str, int] = {}
        self._by_key: dict[str, str] = {}        # run key -> id of the active job producing it
        self._channels: dict[str, Any] = {}
        self._usage: dict[str, tuple[float, float]] = {}  # owner -> (decayed seconds, as of when)
        self._seen: dict[str, float] = {}        # owner -> when they last asked, or a page showed them their jobs
        self._storing: set[str] = set()          # jobs whose runs are trained and being stored
        self._places: tuple[float, dict[str, int]] | None = None  # (when computed, job id -> place); None: redo
        self._running = 0
        self._closed = False

    def data_for(self, dataset: str) -> Any:
        """The server's copy of a dataset (its hash makes the run keys): `data`, or the other one, loaded on
        the same device once per process when first asked for."""
        if dataset == getattr(self.data, "name", "mnist"):
            return self.data
        from ..data import load_dataset
        return load_dataset(dataset, self.data.device)

    # -- asking ------------------------------------------------------------------------------------
    def submit(self, configs: Iterable[RunConfig], owner: str, code: str | None = None) -> list[Job]:
        """The jobs that will produce `configs` (an empty list if all are cached): new ones, and active
        ones someone else asked for already (`owner` then wants them too). Raises RequestRefused with a
        message for the student when the class code (`code`, what the student typed) is not the one the
        operator set, or hosted caps or the per-owner limit say no."""
        from ..sweep import plan
        expected = self.limits.class_code
        if expected is not None and not hmac.compare_digest((code or "").strip().encode(), expected.encode()):
            raise RequestRefused(CLASS_CODE_NEEDED)
        configs = list(configs)
        if len({c.dataset for c in configs}) > 1:
            raise RequestRefused(N_("A comparison trains on one dataset; these settings name several."))
        data = self.data_for(configs[0].dataset) if configs else self.data
        _, groups = plan(configs, data, self.cache)
        history = self.cache.list() if groups else []  # read before taking the lock: it reads every entry
        with self._lock:
            if self._closed:
                raise RequestRefused(N_("The training service is shutting down; try again in a minute."))
            reused, new = [], []
            for group in groups:
                wanted = [configs[i] for i in group.serves]
                keys = [self.cache.key_for(c, data) for c in wanted]
                todo = []
                for config, key in zip(wanted, keys):
                    if key in self._by_key and self._jobs[self._by_key[key]].state in ACTIVE:
                        job = self._jobs[self._by_key[key]]
                        if job not in reused:
                            reused.append(job)
                    elif config not in todo:
                        todo.append(config)
                if todo:
                    todo.sort(key=lambda c: c.epochs)
                    new.append(todo)
            joined = [job for job in reused if owner not in job.watchers]
            self._check(new, len(joined), owner, history)
            created = [self._create(group, owner, history) for group in new]
            for job in joined:
                job.watchers.append(owner)
            self._seen[owner] = time.time()
            self._places = None
            self._dispatch()
            return [self._copy(job) for job in reused + created]

    def _check(self, new: list[list[RunConfig]], joined: int, owner: str, history: list[RunResult]) -> None:
        cap, more = self.limits.max_queued_per_owner, len(new) + joined
        if cap is not None and more:
            # Every active job the owner wants counts in full, however many others want it too (see the top).
            mine = sum(1 for j in self._jobs.values() if owner in j.watchers and j.state in ACTIVE)
            if mine + more > cap:
                raise RequestRefused(
                    N_("You have {mine} training(s) waiting or running, and this needs {more} more; this server runs "
                       "at most {cap} per person at a time. Wait for yours to finish, or cancel one."),
                    mine=mine, more=more, cap=cap)
        message = self.limits.check([group[-1] for group in new], history, self.data.device.type,
                                    len(self.data.test_x))
        if message:
            raise RequestRefused(message)

    def _create(self, group: list[RunConfig], owner: str, history: list[RunResult]) -> Job:
        from ..compare import estimate_seconds
        config = group[-1]
        data = self.data_for(config.dataset)
        # Where it trains: the device the config names (a "cuda" job goes to the GPU workers), else the server's.
        device = data.device.type if config.device == "auto" else config.device
        guess = estimate_seconds(config, history, device, len(data.test_x))
        job = Job(id=secrets.token_hex(8), config=config, configs=group,
                  keys=[self.cache.key_for(c, data) for c in group], device=device, watchers=[owner],
                  estimate_seconds=guess[0] if guess else None)
        self._jobs[job.id] = job
        self._seq[job.id] = next(self._order)
        for key in job.keys:
            self._by_key[key] = job.id
        return job

    def seen(self, owner: str) -> None:
        """`owner` is still around: a page calls this each time it shows their jobs. With
        MNIST_LAB_ABANDONED_AFTER_SECONDS, a queued job none of whose watchers has been seen (or asked)
        for that long is dropped before it starts (a running job always finishes); and a finished job is
        remembered while one of its watchers was seen within HOLD_SECONDS."""
        with self._lock:
            self._seen[owner] = time.time()

    def _drop_abandoned(self) -> None:
        limit = self.limits.abandoned_after_seconds
        if limit is None:
            return
        now = time.time()
        for job in [j for j in self._jobs.values() if j.state == "queued"]:
            if all(now - self._seen.get(w, job.submitted) > limit for w in job.watchers):
                self._record_end(job, "cancelled", ABANDONED)

    def cancel(self, job_id: str, owner: str) -> bool:
        """Withdraws `owner`'s request for the job; True if they had asked for it and it had not ended.
        The job stops only when nobody else wants it (its last watcher stays, and sees it cancelled)."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or owner not in job.watchers or job.state not in ACTIVE:
                return False  # not theirs to withdraw, or over
            if len(job.watchers) > 1:
                job.watchers.remove(owner)
                self._places = None
                return True
            if job_id in self._storing:
                return False  # trained and being stored: too late to take back
            self._stop(job)
            return True

    def _stop(self, job: Job) -> None:
        if job.state == "queued":
            self._end(job, "cancelled")
        else:  # its driver tells the worker and cancels the executor's future, without this lock
            job.state = "cancelled"

    # -- watching ----------------------------------------------------------------------------------
    def job(self, job_id: str) -> Job | None:
        """A copy of the job, or None if this server does not know it (forgotten, or it restarted since)."""
        with self._lock:
            job = self._jobs.get(job_id)
            return self._copy(job) if job else None

    def jobs(self, owner: str | None = None, active_only: bool = False, keys: Iterable[str] | None = None) -> list[Job]:
        """Copies of the jobs (those `owner` wants, if given; only the active ones producing one of `keys`, if
        given: found by key, so a page's refresh does not copy the whole class's), running first, then by
        place in line, then the finished ones, newest first."""
        with self._lock:
            among = self._jobs if keys is None else {self._by_key[k] for k in keys if k in self._by_key}
            found = [self._copy(j) for j in map(self._jobs.get, among)
                     if (owner is None or owner in j.watchers) and (not active_only or j.state in ACTIVE)]
        return sorted(found, key=lambda j: ({"running": 0, "queued": 1}.get(j.state, 2), j.place or 0,
                                            -(j.finished or 0)))

    def wait(self, job_ids: Iterable[str], timeout: float | None = None) -> bool:
        """Blocks until the jobs have ended (True) or `timeout` seconds passed (False)."""
        ids = list(job_ids)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._ended:  # ended: its state says so and its driver has let go (a cancel takes a moment)
            while any(i in self._channels or i in self._jobs and self._jobs[i].state in ACTIVE for i in ids):
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._ended.wait(left)
            return True

    def close(self, cancel: bool = True) -> None:
        """Refuses new jobs and (by default) stops every active one; does not shut the executor down."""
        with self._lock:
            self._closed = True
            if cancel:
                for job in list(self._jobs.values()):
                    if job.state in ACTIVE and job.id not in self._storing:
                        self._stop(job)

    def counted(self, threads: int, gpu_workers: int) -> None:
        """What a Dask cluster has now (counted by the caller, outside the lock): starts queued jobs if
        slots have come free, and fails those that no connected worker can run."""
        with self._lock:
            self.cluster = (time.monotonic(), threads, gpu_workers)
            self._dispatch()

    def shutdown(self) -> None:
        """close(), waits a few seconds for running jobs to stop, then closes the executors and anything
        the service started (a private local cluster). For commands; a server keeps its service."""
        self.close(cancel=True)
        with self._lock:
            ids = list(self._jobs)
        self.wait(ids, timeout=10)
        for executor in (self.executor, self.gpu_executor):
            if executor is not None:
                executor.shutdown(wait=False)
        for thing in self._owns:
            try:
                thing.close()
            except Exception as e:  # shutting down anyway; say what did not close
                log.warning("closing %r: %r", thing, e)

    # -- scheduling --------------------------------------------------------------------------------
    def _copy(self, job: Job) -> Job:
        copy = Job.__new__(Job)  # a tenth of dataclasses.replace's cost: the class view copies every job
        copy.__dict__.update(job.__dict__)
        copy.configs, copy.keys, copy.watchers = list(job.configs), list(job.keys), list(job.watchers)
        copy.epochs = [dict(m) for m in job.epochs]
        if job.state == "queued":
            copy.place = self._place(job.id)
        return copy

    def _place(self, job_id: str) -> int | None:
        """The queued job's place: from the line computed at the last change. Time alone moves places too
        (usage decays; running jobs add to it), so a line older than PLACES_MAX_AGE is computed again; the
        dispatcher computes its own, so what starts next never depends on this copy."""
        now = time.monotonic()
        if self._places is None or now - self._places[0] > PLACES_MAX_AGE:
            self._places = (now, {job.id: place for place, job in enumerate(self._line(), start=1)})
        return self._places[1].get(job_id)

    def _decayed(self, owner: str, now: float) -> float:
        seconds, when = self._usage.get(owner, (0.0, now))
        return seconds * 0.5 ** ((now - when) / FAIR_SHARE_HALF_LIFE)

    def _line(self) -> list[Job]:
        """Queued jobs in the order they would start if nothing else happened. The next is the oldest job of
        whoever wants one and has used least (recent time, decayed, with running jobs so far, each shared
        among its watchers); each pick charges its watchers its estimate (or a minute when nothing is
        measured yet), shared too, so places are stable. A heap of owners: O(queued log owners)."""
        queued = sorted((j for j in self._jobs.values() if j.state == "queued"), key=lambda j: self._seq[j.id])
        if not self.fair_share:
            return queued
        now = time.time()
        wants: dict[str, list[Job]] = {}  # owner -> their queued jobs, oldest first
        for job in queued:
            for owner in job.watchers:
                wants.setdefault(owner, []).append(job)
        used = {owner: self._decayed(owner, now) for owner in wants}
        for job in self._jobs.values():
            if job.state == "running" and job.started:
                for owner in job.watchers:
                    if owner in used:
                        used[owner] += (now - job.started) / len(job.watchers)
        heads = {owner: 0 for owner in wants}
        placed: set[str] = set()

        def entry(owner: str) -> tuple[float, int, str] | None:  # the owner's rank now: used, their oldest job
            jobs = wants[owner]
            while heads[owner] < len(jobs) and jobs[heads[owner]].id in placed:
                heads[owner] += 1
            return (used[owner], self._seq[jobs[heads[owner]].id], owner) if heads[owner] < len(jobs) else None

        ranks = [entry(owner) for owner in wants]
        heapq.heapify(ranks)
        line = []
        while ranks:
            rank = heapq.heappop(ranks)
            now_rank = entry(rank[2])
            if now_rank != rank:  # charged or moved on since it was pushed: push where it stands now
                if now_rank:
                    heapq.heappush(ranks, now_rank)
                continue
            pick = wants[rank[2]][heads[rank[2]]]
            placed.add(pick.id)
            line.append(pick)
            for owner in pick.watchers:
                used[owner] += (pick.estimate_seconds or 60.0) / len(pick.watchers)
                if (pushed := entry(owner)) is not None:
                    heapq.heappush(ranks, pushed)
        return line

    def _cannot_start(self, job: Job, since: float | None = None) -> str | None:
        """Why no worker of the cluster can run `job` (a message for the student), by the last count, or
        None. `since`: only a count taken after then says so (a job's task was already handed over)."""
        if self.cluster is None or since is not None and self.cluster[0] <= since:
            return None
        _, threads, gpu_workers = self.cluster
        if threads == 0:
            return NO_WORKER
        if job.device == "cuda" and gpu_workers == 0:
            return NO_GPU_WORKER
        return None

    def _dispatch(self) -> None:
        """Starts queued jobs while slots are free, and fails at once those that no worker can run (called
        with the lock held)."""
        for job in [j for j in self._jobs.values() if j.state == "queued"]:
            reason = self._cannot_start(job)
            if reason:
                self._record_end(job, "failed", reason)
        slots = self.capacity() if callable(self.capacity) else self.capacity
        if self._running < slots:
            self._drop_abandoned()
        while self._running < slots and not self._closed:
            line = self._line()
            if not line:
                return
            job = line[0]
            job.state, job.started = "running", time.time()
            self._running += 1
            self._places = None
            channel = DaskChannel(f"mnist-lab-{uuid.uuid4().hex}", self.client) if self.client else LocalChannel()
            self._channels[job.id] = channel
            threading.Thread(target=self._drive, args=(job, channel), name=f"job-{job.id}", daemon=True).start()

    def _end(self, job: Job, state: str, message: str | None = None) -> None:
        """Records a job's end, frees its keys and slot, starts the next (called with the lock held)."""
        self._record_end(job, state, message)
        self._dispatch()

    def _record_end(self, job: Job, state: str, message: str | None) -> None:
        self._ended.notify_all()
        now = time.time()
        if job.id in self._channels:
            self._channels.pop(job.id)
            self._running -= 1
            share = (now - (job.started or now)) / len(job.watchers)  # among those who wanted it at the end
            for owner in job.watchers:
                self._usage[owner] = (self._decayed(owner, now) + share, now)
        job.state, job.message, job.finished = state, message, now
        self._places = None
        for key in job.keys:
            if self._by_key.get(key) == job.id:
                del self._by_key[key]
        self._forget_finished(now)

    def _forget_finished(self, now: float) -> None:
        """Forgets the oldest finished jobs beyond `keep_finished`, except those someone still holds: a
        watcher waits on an active job, or was around within `hold_seconds` (asked, was seen, or had a job
        end), so a caller about to read its jobs' outcomes finds them however many others finished."""
        finished = [j for j in self._jobs.values() if j.state not in ACTIVE]
        if len(finished) <= self.keep_finished:
            return
        recent = now - self.hold_seconds
        holding = {w for j in self._jobs.values() for w in j.watchers
                   if j.state in ACTIVE or (j.finished or 0) > recent}
        holding.update(w for w, when in self._seen.items() if when > recent)
        finished.sort(key=lambda j: j.finished or 0)
        for old in finished[:-self.keep_finished or None]:
            if holding.isdisjoint(old.watchers):
                del self._jobs[old.id]
                self._seq.pop(old.id, None)

    # -- one job, from the server's side -----------------------------------------------------------
    def _drive(self, job: Job, channel: Any) -> None:
        """Holds the job's run keys' locks, has the executor train it, drains its progress, stores it. Every
        call to the channel and the executor happens here, never under the service's lock."""
        data = self.data_for(job.config.dataset)
        spec = JobSpec(job.config, tuple(c.epochs for c in job.configs[:-1]), job.device, data.data_id,
                       data.source if self.shared_files else None)
        executor = self.gpu_executor if job.device == "cuda" and self.gpu_executor else self.executor
        stopping = lambda: job.state == "cancelled"  # noqa: E731
        trained, answered = [], []  # answered: the worker's task ended by itself (not cancelled under it)

        def train_missing(todo: list[int]) -> list[tuple[RunResult, dict]]:
            future, since, told = executor.submit(run_job, spec, channel), time.monotonic(), False
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
                        since = time.monotonic()
                    self._apply(job, events)
                reason = None if told else self._cannot_start(job, since)
                if (stopping() or reason) and not told:
                    told = True
                    channel.cancel()  # the worker sees it within CANCEL_POLL_SECONDS (a step, in-process)
                    future.cancel()   # a task not started yet never starts; a Dask one is released
                    if reason:
                        raise JobFailed(WORKER_LOST if job.worker else reason)
            answered.append(True)
            with self._lock:  # from here on the runs are stored whole, and a cancel comes too late
                if stopping() or out["run"]["status"] == "cancelled":
                    raise Cancelled(f"job {job.id} was cancelled")
                self._storing.add(job.id)
            result, snapshots = unpack(out)
            trained.append(out["worker"])
            return [(result, snapshots)]

        state, message = "done", None
        try:
            self.cache.get_or_train_all([job.config], data, train_missing, stopping)
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
        with self._lock:
            self._storing.discard(job.id)
            if job.state == "cancelled":
                state, message = "cancelled", None
            if trained:
                job.worker, job.trained = trained[0], True
            self._end(job, state, message)

    def _apply(self, job: Job, events: list[dict[str, Any]]) -> None:
        with self._lock:
            for event in events:
                if "worker" in event:  # an attempt begins: show where, from the start
                    job.worker, job.epoch, job.fraction, job.running_loss, job.epochs = event["worker"], 0, 0.0, None, []
                    continue
                job.epoch, job.fraction = event["epoch"], event["fraction"]
                job.running_loss = event["metrics"].get("train_loss")
                if event["fraction"] >= 1.0 and "test_acc" in event["metrics"]:
                    job.epochs.append(event["metrics"])


def results_for(service: JobService, configs: list[RunConfig], jobs: Iterable[Job]) -> list[RunResult | None]:
    """The runs for `configs` once `jobs` have ended, in order: from the cache, marked as trained now
    (cached False, machine["worker"] set) when one of these jobs trained them; None where a run is
    missing (its job failed or was cancelled)."""
    done = {key: job for job in jobs for key in job.keys if job.state == "done"}
    out = []
    for config in configs:
        key = service.cache.key_for(config, service.data_for(config.dataset))
        run = service.cache.get(key)
        job = done.get(key)
        if run is None and job is not None:  # a shorter value whose longer twin diverged before it: so did it
            longest = service.cache.get(job.keys[-1])
            if longest is not None and longest.status == "diverged":
                run = dataclasses.replace(longest, config=config, epochs=longest.epochs[:config.epochs])
        if run is not None and job is not None and job.trained:
            run.cached = False
        out.append(run)
    return out
