"""The job service itself: `Job`, the queue, dedupe and caps, who waits on what (see the package's
docstring). Fair share's order: fair_share.py; each job's driver thread: driver.py."""
from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import hmac
import itertools
import logging
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from ..cache import RunCache
from ..config import RunConfig
from ..hosting import HostingLimits
from ..i18n import N_, LabError, Message
from ..results import RunResult
from .channels import DaskChannel, LocalChannel
from .driver import cannot_start, drive
from .fair_share import Usage, line

log = logging.getLogger(__name__)

STATES = ("queued", "running", "done", "failed", "cancelled")
ACTIVE = ("queued", "running")
KEEP_FINISHED = 500              # finished jobs remembered beyond those someone holds (for pages that come back)
HOLD_SECONDS = 10 * 60           # a finished job is held while one of its watchers was around this recently
PLACES_MAX_AGE = 2.0             # seconds the places shown may lag behind usage that changed with time alone
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
    estimate_seconds: float = 0.0  # its training time as estimated when asked (speed.estimate_seconds)
    message: str | None = None    # why it failed (or was dropped unwatched), for a student
    worker: str | None = None     # "local" (embedded) or the Dask worker's address; None until it starts
    trained: bool = False         # False when done because another process had stored the runs meanwhile

    def copy(self) -> "Job":
        """A copy to hand out: a tenth of dataclasses.replace's cost (the class view copies every job)."""
        copy = Job.__new__(Job)
        copy.__dict__.update(self.__dict__)
        copy.configs, copy.keys, copy.watchers = list(self.configs), list(self.keys), list(self.watchers)
        copy.epochs = [dict(m) for m in self.epochs]
        return copy

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

    `data`: the server's MnistData (its data_id and device make the run keys; the other dataset's are loaded
    when first asked for, `data_for`). `shared_files`: workers read the server's data folders, else their
    own (the hashes must agree). `keep_finished`, `hold_seconds`: see `forgettable`.
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
        self._by_key: dict[str, str] = {}        # run key -> id of the newest job producing it (any state)
        self._channels: dict[str, Any] = {}
        self._usage = Usage()                    # each owner's recent training time (fair share)
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
            reused, new = sort_out(groups, configs, lambda c: self._active(self.cache.key_for(c, data)))
            joined = [job for job in reused if owner not in job.watchers]
            mine = sum(1 for j in self._jobs.values() if owner in j.watchers and j.state in ACTIVE)
            refused = too_many(self.limits, mine, len(new) + len(joined)) or self.limits.check(
                [group[-1] for group in new], history, self.data.device.type, len(self.data.test_x))
            if refused:
                raise RequestRefused(refused)
            created = [self._create(group, owner, history) for group in new]
            for job in joined:
                job.watchers.append(owner)
            self._seen[owner] = time.time()
            self._places = None
            self._dispatch()
            return [self._copy_of(job) for job in reused + created]

    def _create(self, group: list[RunConfig], owner: str, history: list[RunResult]) -> Job:
        from ..speed import estimate_seconds
        config = group[-1]
        data = self.data_for(config.dataset)
        # Where it trains: the device the config names (a "cuda" job goes to the GPU workers), else the server's.
        device = data.device.type if config.device == "auto" else config.device
        job = Job(id=secrets.token_hex(8), config=config, configs=group,
                  keys=[self.cache.key_for(c, data) for c in group], device=device, watchers=[owner],
                  estimate_seconds=estimate_seconds(config, history, device, len(data.test_x)))
        self._jobs[job.id] = job
        self._seq[job.id] = next(self._order)
        for key in job.keys:
            self._by_key[key] = job.id
        return job

    def seen(self, owner: str) -> None:
        """`owner` is still around (each page refresh): their jobs are neither `abandoned` nor `forgettable`."""
        with self._lock:
            self._seen[owner] = time.time()

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
            return self._copy_of(job) if job else None

    def jobs(self, owner: str | None = None, active_only: bool = False, keys: Iterable[str] | None = None) -> list[Job]:
        """Copies of the jobs (those `owner` wants, if given; the newest job producing each of `keys`, if given:
        found by key, so a page's refresh does not copy the whole class's), running first, then by place in
        line, then the finished ones, newest first."""
        with self._lock:
            among = self._jobs if keys is None else {self._by_key[k] for k in keys if k in self._by_key}
            found = [self._copy_of(j) for j in map(self._jobs.get, among)
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
                for job in [j for j in self._jobs.values() if j.state in ACTIVE and j.id not in self._storing]:
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
    def _copy_of(self, job: Job) -> Job:
        copy = job.copy()
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

    def _active(self, key: str) -> Job | None:
        job = self._jobs.get(self._by_key.get(key, ""))
        return job if job is not None and job.state in ACTIVE else None

    def _line(self) -> list[Job]:
        return line(self._jobs.values(), self._seq, self._usage, self.fair_share)

    def _dispatch(self) -> None:
        """Starts queued jobs while slots are free, and fails at once those that no worker can run (called
        with the lock held)."""
        for job in [j for j in self._jobs.values() if j.state == "queued"]:
            reason = cannot_start(self.cluster, job)
            if reason:
                self._record_end(job, "failed", reason)
        slots = self.capacity() if callable(self.capacity) else self.capacity
        if self._running < slots and self.limits.abandoned_after_seconds is not None:
            for job in abandoned(self._jobs.values(), self._seen, self.limits.abandoned_after_seconds, time.time()):
                self._record_end(job, "cancelled", ABANDONED)
        while self._running < slots and not self._closed:
            order = self._line()
            if not order:
                return
            job = order[0]
            job.state, job.started = "running", time.time()
            self._running += 1
            self._places = None
            channel = DaskChannel(f"mnist-lab-{uuid.uuid4().hex}", self.client) if self.client else LocalChannel()
            self._channels[job.id] = channel
            threading.Thread(target=drive, args=(self, job, channel), name=f"job-{job.id}", daemon=True).start()

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
            self._usage.charge(job.watchers, now - (job.started or now), now)  # those who wanted it at the end
        job.state, job.message, job.finished = state, message, now
        self._places = None
        for old in forgettable(self._jobs.values(), self._seen, self.keep_finished, self.hold_seconds, now):
            del self._jobs[old.id]
            self._seq.pop(old.id, None)
            for key in old.keys:
                if self._by_key.get(key) == old.id:
                    del self._by_key[key]


# -- the service's rules, as plain functions of what it holds ------------------------------------------

def too_many(limits: HostingLimits, mine: int, more: int) -> Message | None:
    """Why an owner who wants `mine` active jobs may not ask for `more`, or None. Every active job the owner
    wants counts in full, however many others want it too (see the package's docstring)."""
    cap = limits.max_queued_per_owner
    if cap is None or not more or mine + more <= cap:
        return None
    return Message(N_("You have {mine} training(s) waiting or running, and this needs {more} more; this server runs "
                      "at most {cap} per person at a time. Wait for yours to finish, or cancel one."),
                   mine=mine, more=more, cap=cap)


def sort_out(groups: list[Any], configs: list[RunConfig],
             active: Callable[[RunConfig], Job | None]) -> tuple[list[Job], list[list[RunConfig]]]:
    """A request's trainings (`groups`, from sweep.plan): the active jobs that already produce some of its
    runs (`active(config)`), and the new jobs it needs (each a list of configs, shortest first)."""
    reused, new = [], []
    for group in groups:
        todo = []
        for config in (configs[i] for i in group.serves):
            job = active(config)
            if job is not None:
                if job not in reused:
                    reused.append(job)
            elif config not in todo:
                todo.append(config)
        if todo:
            new.append(sorted(todo, key=lambda c: c.epochs))
    return reused, new


def abandoned(jobs: Iterable[Job], seen: dict[str, float], limit: float, now: float) -> list[Job]:
    """Queued jobs none of whose watchers has been seen (or asked) for `limit` seconds."""
    return [job for job in jobs if job.state == "queued"
            and all(now - seen.get(w, job.submitted) > limit for w in job.watchers)]


def forgettable(jobs: Iterable[Job], seen: dict[str, float], keep: int, hold: float, now: float) -> list[Job]:
    """The oldest finished jobs beyond the newest `keep`, except those someone still holds: a watcher waits on
    an active job, or was around within `hold` seconds (asked, was seen, or had a job end), so a caller
    about to read its jobs' outcomes finds them however many others finished."""
    jobs = list(jobs)
    finished = [j for j in jobs if j.state not in ACTIVE]
    if len(finished) <= keep:
        return []
    recent = now - hold
    holding = {w for j in jobs for w in j.watchers if j.state in ACTIVE or (j.finished or 0) > recent}
    holding.update(w for w, when in seen.items() if when > recent)
    finished.sort(key=lambda j: j.finished or 0)
    return [old for old in finished[:-keep or None] if holding.isdisjoint(old.watchers)]


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
