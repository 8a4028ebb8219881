"""The comparison's trainings while they run (the job watcher, with each run's values and the loss chart
growing epoch by epoch) and what became of them."""
from __future__ import annotations

import functools
import io
import json

import pandas as pd
import streamlit as st

from mnist_core.charts import metric_chart
from mnist_core.compare import Entry, metrics_frame, settings_text
from mnist_core.i18n import N_, Translator
from mnist_core.jobs import ACTIVE, Job
from mnist_core.results import EpochMetrics, RunResult
from app_pages.shared import restore, tr
from app_pages.watcher import failed_block, watcher


def live_section(model: str, scope: str, jobs: list[Job], names: dict[str, str], param_title: str,
                 _: Translator) -> None:
    """Below the plan: what Run did, and the trainings of the comparison while they run (names: each run key's
    value, as the sidebar wrote it)."""
    if scope in st.session_state.get("lab.asked", ()) and not st.session_state.get("lab.jobs", {}).get(scope):
        # Run found it all cached (a classmate's training of it may have ended just then)
        st.info(_("Everything was already in the cache: nothing to train."))
    ended_messages(jobs, _)
    if any(job.state in ACTIVE for job in jobs):
        watcher(scope, list(names), functools.partial(job_what, names, param_title, _.lang),
                overall=N_("Overall: {done} · {n} training(s) for this comparison"), cancel=True,
                chart=functools.partial(live_chart, names=names, model=model, param_title=param_title))


def ended_messages(jobs: list[Job], _: Translator) -> None:
    """What became of this session's trainings of this comparison (until the next Run)."""
    failed_block(jobs, N_("A training of this comparison failed: {error}"))
    if any(j.state == "cancelled" for j in jobs):
        st.warning(_("Cancelled. Runs that had finished are kept in the cache; nothing of a cancelled training is "
                     "kept."))
    done = [j for j in jobs if j.state == "done"]
    if done and not any(j.state in ACTIVE for j in jobs) and not any(j.state == "failed" for j in jobs):
        started = min(j.started or j.submitted for j in done)
        finished = max(j.finished or started for j in done)
        runs = sum(len(j.keys) for j in done)
        st.success(_("Done: {runs} run(s) trained in {duration}.", runs=runs, duration=_.duration(finished - started)))


def job_what(names: dict[str, str], param_title: str, lang: str, job: Job) -> str:
    """A job's line in the watcher: the compared values it trains, else its settings."""
    _, values = Translator(lang), ", ".join(names[k] for k in job.keys if k in names)
    if values:
        return _("{setting} = {values}", setting=param_title, values=values)
    return settings_text(job.config, lang)


def live_chart(jobs: list[Job], names: dict[str, str], model: str, param_title: str) -> None:
    """The loss chart of the running jobs, growing epoch by epoch, below their lines in the watcher."""
    frame = live_frame(jobs, names)
    if len(frame):
        log_scale = restore(f"{model}.view.log", model == "mlp")
        st.vega_lite_chart(json.loads(live_spec(frame.to_csv(index=False), log_scale, param_title, tr().lang)),
                           width="stretch")


@functools.lru_cache(maxsize=256)
def live_spec(csv: str, log_scale: bool, legend_title: str, lang: str) -> str:
    """The live loss chart's Vega-Lite spec, built once per new epoch rather than at every watcher rerun:
    building and validating an Altair chart costs a few hundred ms on a busy server, five watching sessions
    then take the training thread's time (measured with bench/server_memory.py's five sessions)."""
    frame = pd.read_csv(io.StringIO(csv), dtype={"value": str, "series": str})
    return json.dumps(metric_chart(frame, "train_loss", log_scale=log_scale, legend_title=legend_title,
                                   text=Translator(lang)).to_dict())


def live_frame(jobs: list[Job], names: dict[str, str]):
    """The finished epochs of the running jobs, as a comparison's metrics table (a job's shorter-epoch runs
    are its first epochs)."""
    items, partial = [], []
    for job in jobs:
        for config, run_key in zip(job.configs, job.keys):
            if run_key not in names:
                continue
            epochs = [EpochMetrics(**{f: m[f] for f in EpochMetrics.__dataclass_fields__})
                      for m in job.epochs[:config.epochs]]
            items.append(Entry(names[run_key], None, config))
            partial.append(RunResult(config=config, status="ok", epochs=epochs, total_seconds=0, steps_per_epoch=0,
                                     device=job.device))
    return metrics_frame(items, partial)
