"""Two hyperparameters at once on the MLP and CNN pages: the grid's cells go through the same plan, Run (the job
service, its caps and fair share) and live view as a one-parameter comparison; its results are two heatmaps (final
test accuracy, seconds per epoch), the concept note on learning rate and batch size where the grid has both, and
the curves of one row or column, drawn by the comparison's own results (comparison_results). The work is in
mnist_core.grid."""
from __future__ import annotations

import json

import streamlit as st

from mnist_core.charts import grid_heatmap
from mnist_core.compare import PARAM_TITLES, value_label
from mnist_core.grid import HEATMAP_TITLES, Grid, cells, grid_frame, grid_title, heatmap_frame, is_lr_batch, line, lr_batch_note, \
    to_query_params
from mnist_core.i18n import Translator, markdown_literal
from mnist_core.jobs import Job
from app_pages.shared import keep, restore, run_cache
from app_pages.watcher import remembered_jobs
from app_pages.comparison_live import live_section
from app_pages.comparison_plan import plan_section
from app_pages.comparison_results import results_section


def grid_section(model: str, grid: Grid, data, _: Translator) -> None:
    """Below the page's title: the grid's invalid pairs, its plan and Run, its trainings, its results."""
    grid_cells = cells(grid)
    items = [c.entry for c in grid_cells]
    title = grid_title(grid, _.lang)
    reasons: dict[str, list[str]] = {}  # one message per reason: a value that is not one fails its whole row
    for cell in grid_cells:
        if cell.entry.error:
            reason = _.error(cell.entry.cause) if cell.entry.cause else markdown_literal(cell.entry.error)
            reasons.setdefault(reason, []).append(  # as typed or linked: never Markdown
                f"{markdown_literal(cell.row_label)} × {markdown_literal(cell.column_label)}")
    for reason, labels in reasons.items():
        st.error(_("**{setting} = {values}** cannot run: {error}", setting=title, values=", ".join(labels),
                   error=reason))
    valid = [e for e in items if e.config is not None]
    cache = run_cache()
    results = [cache.get(cache.key_for(e.config, data), touch=True) if e.config is not None else None for e in items]
    scope = json.dumps(to_query_params(grid), sort_keys=True)
    keys = [cache.key_for(e.config, data) for e in valid]
    jobs = remembered_jobs(scope, keys)
    plan_section(model, grid.rows, items, valid, data, cache, jobs, scope, _)
    live_section(model, scope, jobs, {k: e.label for e, k in zip(valid, keys)}, title, _)
    grid_results(model, grid, grid_cells, results, jobs, data, _)


def grid_results(model: str, grid: Grid, grid_cells, results, jobs: list[Job], data, _: Translator) -> None:
    first, second = _(PARAM_TITLES.get(grid.param, grid.param)), _(PARAM_TITLES.get(grid.param2, grid.param2))
    st.header(_("The grid: {title}", title=grid_title(grid, _.lang)))
    frame = grid_frame(grid_cells, results, _.lang)
    heatmaps(frame, first, second, _)
    if is_lr_batch(grid):
        note_title, body = lr_batch_note(frame, _.lang)
        with st.expander(_("Concept: {title}", title=note_title), expanded=True):
            st.markdown(body)

    st.subheader(_("Curves of one row or column"))
    picks = [f"row:{i}" for i in range(len(grid.values))] + [f"column:{j}" for j in range(len(grid.values2))]

    def named(pick: str) -> str:
        axis, index = pick.split(":")
        if axis == "row":
            return _("{setting} = {value} (a row, along the {other})", setting=first,
                     value=value_label(grid.values[int(index)]), other=second)
        return _("{setting} = {value} (a column, along the {other})", setting=second,
                 value=value_label(grid.values2[int(index)]), other=first)
    pick_key = f"{model}.grid.pick"
    if restore(pick_key, picks[0]) not in picks:  # another grid's pick
        st.session_state[pick_key] = picks[0]
    pick = keep(pick_key, st.selectbox(_("Show the curves of"), picks, key=pick_key, format_func=named))
    axis, index = pick.split(":")
    comparison, items, line_results = line(grid, grid_cells, results, axis, int(index))
    results_section(model, comparison, items, line_results, jobs, data, _)


def heatmaps(frame, first: str, second: str, _: Translator) -> None:
    """The grid's two heatmaps side by side (grid.grid_frame; `first`, `second`: the rows' and columns' names)."""
    left, right = st.columns(2)
    accuracy = heatmap_frame(frame, "test_acc", _.lang)
    seconds = heatmap_frame(frame, "s_per_epoch", _.lang)
    left.altair_chart(grid_heatmap(accuracy, _(HEATMAP_TITLES["test_acc"]), first, second, text=_), width="stretch")
    right.altair_chart(grid_heatmap(seconds, _(HEATMAP_TITLES["s_per_epoch"]), first, second, percent=False, text=_),
                       width="stretch")
    st.caption(_("Each cell is one run: its final test accuracy (left; darker is better) and its seconds per epoch "
                 "when it was trained (right; darker is slower). ✝: the run diverged. Grey: not trained yet, or a "
                 "pair that cannot work (its reason is above, and in the cell's tooltip)."))
