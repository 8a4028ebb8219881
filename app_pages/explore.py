"""Explore page: every run of the class on one page.

Sidebar: filters (model, dataset, each setting that varies among the cached runs, a range of final test
accuracy) and the order of the rows. Main area, top to bottom: the best run of the class per model and
dataset; the filtered runs, one row each, with links to their comparison and to the Draw page; parallel
coordinates of their settings and accuracy, one chart per model; one setting against accuracy; one run
inspected, with its links. Everything comes from the cache's headers (RunCache.list): the page reads no
weights, and runs carry no owner. The logic and the charts are mnist_core.explore's.
"""
from __future__ import annotations

from functools import partial

import pandas as pd
import streamlit as st

from mnist_core.charts import metric_chart
from mnist_core.compare import Entry, metrics_frame, run_label
from mnist_core.config import label
from mnist_core.data import DATASETS
from mnist_core.explore import (ACCURACY, HYPERPARAMETERS, ONLY_FOR, SORTS, best_of_class, choices, comparison_params,
                                draw_params, filter_runs, parallel_axes, parallel_chart, runs_frame, scatter_chart,
                                sort_runs, value_text, varying)
from mnist_core.i18n import Translator
from app_pages.shared import keep, restore, run_cache, tr

PAGES = {"mlp": "app_pages/mlp.py", "cnn": "app_pages/cnn.py"}
SHOWN = {"model": str.upper, "dataset": lambda d: DATASETS[d].title}  # how the filters write these values
COLUMNS = ["open", "draw", "model_name", "dataset_name", ACCURACY, "best_acc", "measured_on",  # the table's
           *(f for f in HYPERPARAMETERS if f != "test_size"), "epochs_trained", "seconds", "status", "trained_on",
           "created"]


def title(field: str) -> str:
    """A setting's name as a heading: 'Learning rate'."""
    name = _(label(field))
    return name[:1].upper() + name[1:]


def remembered(key: str, default, allowed=None):
    """The widget's value as the student left it (see shared.keep), dropping values no longer offered."""
    value = restore(key, default)
    if allowed is not None:
        st.session_state[key] = value = [v for v in value if v in allowed] if isinstance(value, list) else (
            value if value in allowed else default)
    return value


@st.cache_resource(max_entries=4, show_spinner=False)
def class_runs(signature: int, lang: str, _runs: list) -> tuple[pd.DataFrame, dict, pd.DataFrame, dict]:
    """The runs as rows, the filters' choices, the best runs and the run picker's labels, built once per set of
    runs and language: with 1,000 runs that is most of a rerun's work. Shared, so nobody changes them."""
    frame = runs_frame(_runs, Translator(lang))
    return frame, choices(frame), best_of_class(frame), {r.key: run_label(r, lang=lang) for r in _runs}


def inspect_selected(keys: list[str]) -> None:
    """A row clicked in the table is the run inspected below it."""
    rows = st.session_state["explore.table"].selection.rows
    if rows:
        st.session_state["explore.run"] = keys[rows[0]]


_ = tr()
st.title(_("Every run of the class"))
st.caption(_("Every run anyone in the class has trained on this server, from the run cache: filter them, see which "
             "settings go with a high accuracy, and open any run. Runs carry no names."))

runs = run_cache().list()  # headers only: no weights are read
if not runs:
    st.info(_("Nothing trained yet. Run a comparison on the MLP or CNN page: every finished run shows up here."))
    st.page_link(PAGES["mlp"], label=_("Open the MLP page"), icon=":material/show_chart:")
    st.stop()
known = {r.key: r for r in runs}
frame, offered, best, labels = class_runs(hash(tuple((r.key, r.created) for r in runs)), _.lang, runs)

with st.sidebar:
    st.subheader(_("Filter the runs"))
    chosen = {}
    for field, values in offered.items():
        key = f"explore.filter.{field}"
        remembered(key, [], values)
        chosen[field] = keep(key, st.multiselect(title(field), values, key=key, placeholder=_("any"),
                                                 format_func=SHOWN.get(field, str)))
    remembered("explore.accuracy", (0, 100))
    low, high = keep("explore.accuracy", st.slider(_("Final test accuracy (%)"), 0, 100, key="explore.accuracy"))
    remembered("explore.sort", "final_acc", SORTS)
    order = keep("explore.sort", st.selectbox(_("Order"), list(SORTS), key="explore.sort",
                                              format_func=lambda s: _(SORTS[s])))
shown = sort_runs(filter_runs(frame, chosen, (low / 100, high / 100)), order)

st.subheader(_("Best run of the class"))
st.caption(_("The highest final test accuracy per model and dataset among all {n} runs, whatever the filters.",
             n=_.number(len(frame))))
for column, row in zip(st.columns(max(len(best), 1)), best.itertuples()):
    run = known[row.key]
    with column.container(border=True):
        st.metric(f"{row.model_name} · {row.dataset_name}", _.percent(row.final_acc))
        st.caption(_("{run} · measured on {measured}", run=run_label(run, with_accuracy=False, lang=_.lang),
                     measured=row.measured_on))
        st.page_link(PAGES[row.model], label=_("Open its comparison"), icon=":material/open_in_new:",
                     query_params=comparison_params(run.config, _.lang))

st.subheader(_("Runs"))
if shown.empty:
    st.info(_("No run matches these filters. Remove some of them in the sidebar."))
    st.stop()
st.caption(_("{shown} of {total} runs. Click a row to inspect it below; click a column's name to sort by it.",
             shown=_.number(len(shown)), total=_.number(len(frame))))
keys = shown["key"].tolist()
st.dataframe(
    shown[COLUMNS], hide_index=True, width="stretch", key="explore.table", on_select=partial(inspect_selected, keys),
    selection_mode="single-row", column_config={
        "open": st.column_config.LinkColumn(_("comparison"), display_text=_("open")),
        "draw": st.column_config.LinkColumn(_("Draw page"), display_text=_("use")),
        "model_name": _("model"), "dataset_name": _("dataset"),
        ACCURACY: st.column_config.NumberColumn(_("final test accuracy"), format="percent"),
        "best_acc": st.column_config.NumberColumn(_("best test accuracy"), format="percent"),
        "measured_on": _("measured on"), "epochs_trained": _("epochs trained"),
        "seconds": st.column_config.NumberColumn(_("seconds"), format="%.1f"), "status": _("status"),
        "trained_on": _("trained on"), "created": st.column_config.DatetimeColumn(_("when (UTC)"), format="YYYY-MM-DD HH:mm"),
        **{f: _(label(f)) for f in HYPERPARAMETERS}})

st.subheader(_("Settings and accuracy"))
st.caption(_("One line per run, through one axis per setting that varies among the runs shown, to its final test "
             "accuracy on the last axis; the colour is that accuracy too. Lines that end high show the settings "
             "that work."))
for model in ("mlp", "cnn"):
    of_model = shown[(shown["model"] == model) & shown[ACCURACY].notna()]
    axes = parallel_axes(of_model, _) if len(of_model) > 1 else []
    if len(axes) > 1:
        st.altair_chart(parallel_chart(of_model, axes, _, title=model.upper()), width="stretch")
    elif len(of_model):
        st.caption(_("{model}: fewer than two runs with different settings here, nothing to draw.",
                     model=model.upper()))

st.subheader(_("One setting against accuracy"))
fields = varying(shown[shown[ACCURACY].notna()], HYPERPARAMETERS)
if fields:
    remembered("explore.scatter", "lr" if "lr" in fields else fields[0], fields)
    field = keep("explore.scatter", st.selectbox(_("Setting"), fields, key="explore.scatter", format_func=title))
    st.altair_chart(scatter_chart(shown, field, _), width="stretch")
else:
    st.caption(_("Every run shown has the same settings: nothing to put across."))

st.subheader(_("Inspect a run"))
remembered("explore.run", keys[0], keys)
key = st.selectbox(_("Run"), keys, key="explore.run", format_func=labels.get)
run, row = known[key], shown.loc[shown["key"] == key].iloc[0]
facts, curves = st.columns([2, 3], gap="large")
with facts:
    st.metric(_("Final test accuracy"), _.percent(row[ACCURACY]),
              help=_("Measured on {measured}.", measured=row["measured_on"]))
    st.caption(_("Best {best} after epoch {epoch} of {epochs} · measured on {measured} · {time} · trained on {where}",
                 best=_.percent(row["best_acc"]), epoch=value_text(row["best_epoch"]) or "–",
                 epochs=row["epochs_trained"], measured=row["measured_on"], time=_.duration(run.total_seconds),
                 where=row["trained_on"]))
    settings = [f for f in ("dataset", *HYPERPARAMETERS) if ONLY_FOR.get(f, run.config.model) == run.config.model]
    st.dataframe({_("setting"): [title(f) for f in settings],
                  _("value"): [row["dataset_name"] if f == "dataset" else value_text(row[f])
                               for f in settings]}, hide_index=True, width="stretch")
    st.page_link(PAGES[run.config.model], label=_("Open its comparison"), icon=":material/open_in_new:",
                 query_params=comparison_params(run.config, _.lang))
    st.page_link("app_pages/draw.py", label=_("Use it on the Draw page"), icon=":material/draw:",
                 query_params=draw_params(key, _.lang))
with curves:
    epochs = metrics_frame([Entry(_("this run"), None, run.config)], [run])
    if len(epochs):
        st.altair_chart(metric_chart(epochs, "test_acc", legend_title=_("run"), text=_), width="stretch")
        st.altair_chart(metric_chart(epochs, "test_loss", log_scale=True, legend_title=_("run"), text=_),
                        width="stretch")
