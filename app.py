"""MNIST hyperparameter lab: `streamlit run app.py`.

The entry point: lists the pages, draws what every page shares in the sidebar (the language, the
class code where the operator set one), and the home page: what the app does, the device it trains
on, the dataset, what the server is training now and what waits (the class view), and the runs
already cached. The pages live in app_pages/ (not pages/: see README); the work in mnist_core/.
"""
from __future__ import annotations

import os

# Before torch loads: on a shared server many sessions and the training compete for few cores, and
# OpenMP's default spin-waiting threads then slow everyone 10-100x (measured in bench/run.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pandas as pd  # noqa: E402
import streamlit as st  # noqa: E402
import torch  # noqa: E402

from app_pages.shared import (class_code_box, dataset_or_error, job_service, language_switch,  # noqa: E402
                              owner, run_cache, tr)
from app_pages.watcher import STATE_TEXT  # noqa: E402
from mnist_core import resolve_device  # noqa: E402
from mnist_core.compare import run_label, settings_text  # noqa: E402
from mnist_core.data import DATASETS  # noqa: E402
from mnist_core.explore import comparison_url  # noqa: E402
from mnist_core.results import STATUS_TEXT  # noqa: E402


def home() -> None:
    _ = tr()
    st.title(_("MNIST hyperparameter lab"))
    st.markdown(_(
        "Train small neural networks on handwritten digits (or clothes) and change **one hyperparameter at a time**, "
        "as in the blog post this lab grew from: learning rate, epochs, batch size and activations for an MLP; stride "
        "and filter size for a CNN. Each comparison shows its loss and accuracy curves side by side, how long each run "
        "took, and which images it gets wrong. Then draw your own digit and see what the models read."))
    left, right = st.columns(2)  # two by two: each link's whole label fits a laptop's width
    left.page_link(MLP_PAGE, label=_("**MLP**: learning rate, batch size, …"), icon=":material/show_chart:")
    right.page_link(CNN_PAGE, label=_("**CNN**: stride, filter size"), icon=":material/grid_on:")
    left.page_link(DRAW_PAGE, label=_("**Draw**: test the models"), icon=":material/draw:")
    right.page_link(STUDY_PAGE, label=_("**Study**: the seed's experiments"), icon=":material/menu_book:")

    st.subheader(_("This machine"))
    device = resolve_device("auto")
    if device == "cuda":
        name = torch.cuda.get_device_name(0)
    elif device == "mps":
        name = _("Apple GPU (mps)")
    else:
        name = _("CPU, {n} threads", n=torch.get_num_threads())
    st.markdown(_("Training runs on **{device}**: {name} · PyTorch {version}", device=device, name=name,
                  version=torch.__version__))

    st.subheader(_("Dataset"))
    data = dataset_or_error()
    if data is None:
        return
    st.success(_("{title} found in `{folder}`: {train} training and {test} test images, loaded on {device}.",
                 title=DATASETS[data.name].title, folder=data.source, train=_.number(len(data.train_x)),
                 test=_.number(len(data.test_x)), device=data.device.type))

    class_view()
    cached_runs()


def class_view() -> None:
    """What the server trains now and what waits, for everyone: no names, only the settings; yours marked."""
    _ = tr()
    st.subheader(_("Training now on this server"))
    jobs = job_service().jobs(active_only=True)
    if not jobs:
        st.caption(_("Nothing is training or waiting. A comparison you start trains at once."))
        return
    me = owner()
    # What a student looks for first comes first and narrow, so it fits a laptop's width; the settings, the
    # longest, come last (the whole line shows on hover).
    st.dataframe(pd.DataFrame([{
        _("yours"): me in j.watchers, _("state"): _(STATE_TEXT[j.state]),
        _("place in line"): str(j.place) if j.place is not None else "–", _("progress"): j.progress,
        _("estimate"): _.duration(j.estimate_seconds),
        _("started"): pd.Timestamp(j.started, unit="s", tz="UTC").strftime("%H:%M UTC") if j.started else "–",
        _("dataset"): DATASETS[j.config.dataset].title, _("runs"): len(j.keys),
        _("settings"): settings_text(j.config, _.lang)} for j in jobs]), hide_index=True, width="stretch",
        column_config={_("yours"): st.column_config.CheckboxColumn(_("yours"), width="small"),
                       _("place in line"): st.column_config.TextColumn(_("place in line"), width="small"),
                       _("progress"): st.column_config.ProgressColumn(_("progress"), format="percent",
                                                                       min_value=0.0, max_value=1.0, width="small"),
                       _("runs"): st.column_config.NumberColumn(_("runs"), width="small"),
                       _("settings"): st.column_config.TextColumn(_("settings"), width="large")})
    st.caption(_("{running} training, {waiting} waiting. The next to start is the oldest request of whoever has "
                 "trained least recently, so one long comparison does not hold up everyone.",
                 running=sum(j.state == "running" for j in jobs), waiting=sum(j.state == "queued" for j in jobs)))


def comparison_link(config) -> str:
    """The comparison page showing this run (compared by learning rate, with its one value): add values there."""
    return comparison_url(config, tr().lang)


def cached_runs() -> None:
    _ = tr()
    st.subheader(_("Runs in the cache"))
    cache = run_cache()
    runs = cache.list()  # damaged entries are the operator's business: server log and `cache check`, not here
    if not runs:
        st.info(_("Nothing trained yet. Open the MLP page and press **Run comparison**; every finished run is kept, so "
                  "asking again (or a classmate asking the same) costs nothing."))
        return
    st.caption(_("{n} runs, {mb} MB. Newest first. Accuracies are final test accuracies.", n=len(runs),
                 mb=_.number(cache.size_bytes() / 1e6, 1)))
    st.page_link(EXPLORE_PAGE, label=_("**Explore**: filter every run, see which settings work"),
                 icon=":material/travel_explore:")
    st.dataframe(pd.DataFrame([{
        _("open"): comparison_link(r.config), _("test accuracy"): _.percent(r.final.test_acc) if r.final else "–",
        _("status"): _(STATUS_TEXT[r.status]), _("dataset"): DATASETS[r.config.dataset].title,
        _("run"): run_label(r, with_accuracy=False, lang=_.lang), _("time"): _.duration(r.total_seconds),
        _("device"): r.device} for r in runs]), hide_index=True, width="stretch",
        column_config={_("open"): st.column_config.LinkColumn(_("open"), display_text=_("compare"), width="small"),
                       _("run"): st.column_config.TextColumn(_("run"), width="large")})


st.set_page_config(page_title="MNIST hyperparameter lab", page_icon="🔢", layout="wide")
_ = tr()
HOME_PAGE = st.Page(home, title=_("Home"), icon=":material/home:", default=True)
MLP_PAGE = st.Page("app_pages/mlp.py", title=_("MLP"), icon=":material/show_chart:", url_path="mlp")
CNN_PAGE = st.Page("app_pages/cnn.py", title=_("CNN"), icon=":material/grid_on:", url_path="cnn")
DRAW_PAGE = st.Page("app_pages/draw.py", title=_("Draw"), icon=":material/draw:", url_path="draw")
STUDY_PAGE = st.Page("app_pages/study.py", title=_("Study"), icon=":material/menu_book:", url_path="study")
EXPLORE_PAGE = st.Page("app_pages/explore.py", title=_("Explore"), icon=":material/travel_explore:", url_path="explore")
page = st.navigation([HOME_PAGE, MLP_PAGE, CNN_PAGE, DRAW_PAGE, STUDY_PAGE, EXPLORE_PAGE])
language_switch()
class_code_box()
page.run()
