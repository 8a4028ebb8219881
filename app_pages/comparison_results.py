"""The comparison's results, read from the run cache: warnings, the loss and accuracy charts, the time table,
the CSV; then one run inspected (comparison_inspect)."""
from __future__ import annotations

import streamlit as st

from mnist_core import RunConfig
from mnist_core.charts import final_accuracy_chart, metric_chart, series_order, timing_chart
from mnist_core.compare import PARAM_TITLES, Comparison, Entry, final_frame, metrics_frame, machine_label, timing_frame
from mnist_core.config import MNIST_TEST_SIZE
from mnist_core.data import DATASETS as DATASET_INFO
from mnist_core.i18n import Translator
from mnist_core.jobs import ACTIVE, Job
from mnist_core.results import RunResult
from app_pages.shared import ago, keep, restore
from app_pages.comparison_plan import concept_note
from app_pages.comparison_inspect import inspect_section


def measured(config: RunConfig, _: Translator) -> str:
    """What a run's test accuracy was measured on (config.measured_on), in the student's language."""
    if config.test_size >= MNIST_TEST_SIZE:
        return _("all {n} test images", n=_.number(MNIST_TEST_SIZE))
    return _("a fixed balanced sample of {n} test images", n=_.number(config.test_size))


def results_section(model: str, comparison: Comparison, items: list[Entry], results: list[RunResult | None],
                    jobs: list[Job], data, _: Translator) -> None:
    param_title = _(PARAM_TITLES.get(comparison.param, comparison.param))
    missing = [e.label for e, r in zip(items, results) if e.config is not None and r is None]
    if all(r is None for r in results):
        if missing and not any(job.state in ACTIVE for job in jobs):
            st.info(_("No results for these settings yet: they are not in the cache. Press **Run comparison** to "
                      "train them."))
        return
    st.header(_("Results"))
    if missing:
        st.warning(_("Not in the cache yet: {setting} = {values}. The charts show what is cached.",
                     setting=param_title, values=", ".join(missing)))

    metrics = metrics_frame(items, results)
    finals = final_frame(items, results)
    timing = timing_frame(items, results)
    series = series_order(finals)  # every value, so each keeps its colour across the charts
    for row in finals.itertuples():
        if row.status == "diverged":
            run = results[row.order]
            if run.diverged_epoch > 1:
                drawn = _("**{setting} = {value}** diverged at epoch {epoch}: its loss became infinite or NaN, so it is "
                          "drawn up to epoch {last} only. A smaller learning rate (or another init) usually fixes that.",
                          setting=param_title, value=row.value, epoch=run.diverged_epoch, last=run.diverged_epoch - 1)
            else:
                drawn = _("**{setting} = {value}** diverged in its first epoch: its loss became infinite or NaN before "
                          "the epoch ended, so it has no curve. A smaller learning rate (or another init) usually "
                          "fixes that.", setting=param_title, value=row.value)
            st.warning(drawn)

    restore(f"{model}.view.log", model == "mlp")
    log_scale = keep(f"{model}.view.log", st.toggle(
        _("Log scale for the loss charts"), key=f"{model}.view.log",
        help=_("The seed's N(0, 1) init starts the loss in the hundreds; a log scale shows both that and the small "
               "losses later.")))
    if len(metrics):
        left, right = st.columns(2)
        left.altair_chart(metric_chart(metrics, "train_loss", log_scale=log_scale, legend_title=param_title,
                                       series=series, text=_), width="stretch")
        right.altair_chart(metric_chart(metrics, "test_loss", log_scale=log_scale, legend_title=param_title,
                                        series=series, text=_), width="stretch")
    left, right = st.columns(2)
    if len(metrics):
        left.altair_chart(metric_chart(metrics, "test_acc", legend_title=param_title, series=series, text=_),
                          width="stretch")
    right.altair_chart(final_accuracy_chart(finals, legend_title=param_title, text=_), width="stretch")
    st.caption(_("Test accuracy is measured on {what} of {dataset} after each epoch.",
                 what=measured(comparison.base, _), dataset=DATASET_INFO[comparison.base.dataset].title))
    left, right = st.columns(2)
    with left:
        concept_note("softmax", _, finals)
    with right:
        concept_note("init", _, finals)

    st.subheader(_("Time"))
    by_key = {r.key: r for r in results if r is not None}
    timing = timing.assign(machine=[machine_label(by_key[k].machine, by_key[k].device, _) if k in by_key else ""
                                    for k in timing["key"]],
                           trained=[ago(t) for t in timing["created"]])  # true after a reload, and for anyone
    st.dataframe(timing.drop(columns=["status", "key", "device", "trained_on", "created"]), hide_index=True,
                 width="stretch", column_config={
        "value": param_title, "total_s": st.column_config.NumberColumn(_("total (s)"), format="%.1f"),
        "s_per_epoch": st.column_config.NumberColumn(_("s / epoch"), format="%.2f"),
        "steps_per_epoch": _("steps / epoch"),
        "samples_per_s": st.column_config.NumberColumn(_("images / s"), format="%d"),
        "batch_size": _("batch"), "machine": st.column_config.TextColumn(_("trained on"), width="large"),
        "trained": _("trained")})
    left, right = st.columns([3, 2])
    left.caption(_("Times are from when each run was trained, on the machine named (cached runs keep theirs). Each "
                   "epoch also scores {n} test images. Smaller batches take more steps per epoch, and each step has a "
                   "fixed cost.", n=_.number(min(comparison.base.test_size, MNIST_TEST_SIZE))))
    right.altair_chart(timing_chart(timing, legend_title=param_title, text=_), width="stretch")

    st.download_button(_("Download every metric (CSV)"), metrics.to_csv(index=False).encode(), key=f"{model}.csv",
                       file_name=f"{model}-{comparison.param}-comparison.csv", mime="text/csv")
    inspect_section(model, items, results, param_title, _)
