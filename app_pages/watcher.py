"""Trainings as every page that trains shows them: submitting, finding a scope's jobs again, the job
watcher, and the block for a failed job.

Training never runs in a page script. Pages submit configs to the JobService (mnist_core.jobs) and
watch its jobs from an `st.fragment` that reruns every WATCH_SECONDS: changing a widget, switching
pages, reloading or closing the tab leaves the training alone; Cancel withdraws only this student's
request. A scope names what the jobs are for (a comparison, a Study section, the Draw page's starter).
"""
from __future__ import annotations

import time
from typing import Callable, Iterable

import streamlit as st

from mnist_core import RunConfig
from mnist_core.i18n import N_
from mnist_core.jobs import ACTIVE, Job, RequestRefused
from mnist_core.results import on_this_server
from app_pages.shared import ago, entered_code, job_service, owner, tr

WATCH_SECONDS = 2.0  # how often a watcher asks the service: live enough; each rerun of it costs the server time
JUST_TRAINED_SECONDS = 15 * 60  # a training that ended this recently is still news to whoever opens its comparison

# The one table of job states, for the job lines here and the home page's class view.
STATE_TEXT = {"queued": N_("waiting"), "running": N_("training"), "done": N_("done"), "failed": N_("failed"),
              "cancelled": N_("cancelled")}


def submit(scope: str, configs: list[RunConfig]) -> str | None:
    """Hands `configs` to the training service and remembers its jobs under `scope`. Returns why the service
    refused, in the student's language, or None."""
    try:
        remember(scope, job_service().submit(configs, owner(), entered_code()))
    except RequestRefused as e:
        return tr().error(e)
    return None


def remembered_jobs(scope: str, keys: Iterable[str]) -> list[Job]:
    """The jobs this session started for `scope` (a comparison), and any job of anyone that produces one of
    `keys` and is running, waiting or just trained them (a link opened elsewhere, or this page after a
    reload, finds the training and says it was done). Ids this server no longer knows (it restarted) are
    dropped without a word."""
    service = job_service()
    service.seen(owner())  # every watcher calls this each refresh: a watched job is not dropped as abandoned
    ids = st.session_state.get("lab.jobs", {}).get(scope, [])
    found = [job for job in (service.job(i) for i in ids) if job is not None]
    if len(found) != len(ids):
        remember(scope, found)
    have, now = {job.id for job in found}, time.time()
    found += [job for job in service.jobs(keys=keys) if job.id not in have and (  # by key: O(keys), not the class's
              job.state in ACTIVE or job.state == "done" and job.trained and now - job.finished < JUST_TRAINED_SECONDS)]
    return found


def remember(scope: str, jobs: Iterable[Job]) -> None:
    st.session_state.setdefault("lab.jobs", {})[scope] = [job.id for job in jobs]


def failed_block(jobs: list[Job], sentence: str = N_("Training stopped with an error: {error}")) -> None:
    """Each failed job's reason, in `sentence` (a msgid with {error})."""
    _ = tr()
    for job in jobs:
        if job.state == "failed":
            st.error(_(sentence, error=_(job.message) if job.message else _("no reason given")))


@st.fragment(run_every=WATCH_SECONDS)
def watcher(scope: str, keys: list[str], what: Callable[[Job], str], overall: str | None = None, cancel: bool = False,
            chart: Callable[[list[Job]], None] | None = None) -> None:
    """The scope's trainings, redrawn without rerunning the page; when they end, the page reruns and draws
    what they made. A line per job (`what` names it); `overall`, a msgid with {done} and {n}, adds a bar for
    all of them; `cancel` a Cancel for the student who asked; `chart` draws below the lines."""
    _ = tr()
    jobs = remembered_jobs(scope, keys)
    if not any(job.state in ACTIVE for job in jobs):
        st.rerun()
    service, me = job_service(), owner()
    with st.container(border=overall is not None):
        if overall is not None:
            weights = [job.config.epochs for job in jobs]
            done = sum(job.progress * w for job, w in zip(jobs, weights)) / max(sum(weights), 1)
            st.progress(done, text=_(overall, done=_.percent(done, 0), n=len(jobs)))
        for job in jobs:
            if not cancel:
                st.progress(job.progress, text=job_line(job, what(job)))
                continue
            bar, button = st.columns([6, 1])
            bar.progress(job.progress, text=job_line(job, what(job)))
            if me in job.watchers and job.state in ACTIVE:
                if button.button(_("Cancel"), key=f"cancel.{job.id}", width="stretch"):
                    service.cancel(job.id, me)
                    st.rerun()
            elif job.state in ACTIVE:
                button.caption(_("started by someone else"))
        if chart is not None:
            chart(jobs)


def job_line(job: Job, what: str) -> str:
    """One job in a sentence: what, state, place or progress, estimate, where (no names: anyone may read it)."""
    _ = tr()
    if job.state == "queued":
        return _("{what}: number {place} in line · about {estimate} once it starts · asked {asked}",
                 what=what, place=job.place or "?", estimate=_.duration(job.estimate_seconds), asked=ago(job.submitted))
    if job.state == "running":
        params = dict(what=what, epoch=max(job.epoch, 1), epochs=job.config.epochs, done=_.percent(job.progress, 0),
                      started=ago(job.started), where=worker_name(job))
        return _("{what}: epoch {epoch} of {epochs} ({done}) · about {left} left · started {started} · on {where}",
                 left=_.duration(job.estimate_seconds * (1 - job.progress)), **params)
    return _("{what}: {state}", what=what, state=_(STATE_TEXT[job.state]))


def worker_name(job: Job) -> str:
    _ = tr()
    if on_this_server(job.worker):
        return _("this server ({device})", device=job.device)
    return _("worker {address} ({device})", address=job.worker, device=job.device)
