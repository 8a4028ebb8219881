"""The comparison screen the MLP and CNN pages share.

Sidebar: the dataset, the base config and "compare by". Main area, top to bottom: the plan (runs,
cached, estimated time) with the Run button, the comparison's trainings while they run, then the
results of the comparison the sidebar describes, read from the run cache.

Run submits the configs to the server's training service and remembers the job ids under the
comparison. The job watcher (app_pages/watcher.py) shows them (progress per job and overall, the loss
chart growing per epoch, place in line, estimate, Cancel for the owner); when they end it reruns the
whole page, which then draws the results. Changing a widget, switching pages or closing the tab
leaves the training alone; the same comparison shown again, or opened from its link by anyone,
finds its running jobs by their run keys. Session state holds job ids, never weights.

The URL always holds the sidebar's comparison, so the address bar is a link to share; opening a
link shows whatever of it is cached at once and trains nothing until the visitor presses Run
(a link must not start minutes of training on a shared server by itself).
"""
from __future__ import annotations

import json

import streamlit as st

from mnist_core import ConfigError
from mnist_core.config import SettingsError
from mnist_core.compare import PARAM_TITLES, Entry, entries, to_query_params
from mnist_core.grid import to_query_params as grid_query_params
from mnist_core.data import DATASETS as DATASET_INFO
from mnist_core.i18n import N_, markdown_literal
from mnist_core.results import RunResult
from app_pages.shared import dataset_or_error, keep, run_cache, tr
from app_pages.watcher import remembered_jobs
from app_pages.comparison_sidebar import (apply_link, current_preset, init_state, key, read_grid, read_sidebar, sidebar,
                                         widget_keys)
from app_pages.comparison_grid import grid_section
from app_pages.comparison_live import live_section
from app_pages.comparison_plan import plan_section, preset_banner
from app_pages.comparison_results import results_section

PAGE_TITLES = {"mlp": N_("MLP on {dataset}: compare hyperparameters"),
               "cnn": N_("CNN on {dataset}: compare hyperparameters")}
PAGE_INTROS = {
    "mlp": N_("A 784-256-256-10 multilayer perceptron, as in the seed post. Pick one hyperparameter, give the values "
              "to try, and compare their loss and accuracy epoch by epoch."),
    "cnn": N_("The seed's three-block CNN (3x3 convs, 2x2 max-pools, a 625-unit layer with dropout). Change the stride "
              "or filter size of its first conv layer and see what it does to the shapes, the accuracy and the time."),
}


def comparison_page(model: str) -> None:
    _ = tr()
    init_state(model)
    link_error = apply_link(model)
    sidebar(model, _)
    for k in widget_keys(model):
        keep(k, st.session_state[k])

    dataset = st.session_state[key(model, "dataset")]
    st.title(_(PAGE_TITLES[model], dataset=DATASET_INFO[dataset].title))
    st.caption(_(PAGE_INTROS[model]))
    if link_error:
        st.error(_("This link does not describe a comparison this page can show: {error}", error=_.error(link_error)))

    data = dataset_or_error(dataset)
    if data is None:
        return
    try:
        comparison = read_sidebar(model)
        grid = read_grid(model, comparison)  # a second hyperparameter: every pair of values
    except SettingsError as e:
        for error in e.errors:
            st.error(_("**Check the settings in the sidebar.** {error}", error=_.error(error)))
        return
    except ConfigError as e:
        st.error(_("**Check the settings in the sidebar.** {error}", error=_.error(e)))
        return
    params = to_query_params(comparison) if grid is None else grid_query_params(grid)
    st.session_state[f"{model}.link"] = dict(params)
    if _.lang != "en":
        params["lang"] = _.lang
    if st.query_params.to_dict() != params:
        st.query_params.from_dict(params)
    if grid is not None:
        grid_section(model, grid, data, _)
        return

    items = entries(comparison)
    param_title = _(PARAM_TITLES.get(comparison.param, comparison.param))
    for entry in items:
        if entry.error:
            st.error(_("**{setting} = {value}** cannot run: {error}", setting=param_title,
                       value=markdown_literal(entry.label),  # as typed or linked: never Markdown
                       error=_.error(entry.cause) if entry.cause else markdown_literal(entry.error)))
    valid = [e for e in items if e.config is not None]
    cache = run_cache()
    results = lookup(items, data, cache)
    preset = current_preset(comparison)
    if preset is not None:
        preset_banner(preset, items, results, _)

    scope = json.dumps(to_query_params(comparison), sort_keys=True)  # one comparison, whatever page shows it
    keys = [cache.key_for(e.config, data) for e in valid]
    jobs = remembered_jobs(scope, keys)
    plan_section(model, comparison, items, valid, data, cache, jobs, scope, _)
    live_section(model, scope, jobs, {k: e.label for e, k in zip(valid, keys)}, param_title, _)
    results_section(model, comparison, items, results, jobs, data, _)


def lookup(items: list[Entry], data, cache) -> list[RunResult | None]:
    """Each value's run, from the cache (recording the use: these runs are being shown)."""
    return [cache.get(cache.key_for(e.config, data), touch=True) if e.config is not None else None for e in items]
