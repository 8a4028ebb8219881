"""The Study page: the seed post's six experiments, each with the seed's setting and stated result, our
charts and table, and observations computed from the runs (mnist_core.study). Nothing trains until a
section's Train button is pressed; a section whose runs are not cached says what they would cost.
"""
from __future__ import annotations

import streamlit as st

from app_pages.shared import dataset_or_error, keep, may_train, restore, run_cache, tr
from app_pages.watcher import failed_block, remembered_jobs, submit, watcher
from mnist_core.compare import settings_text
from mnist_core.jobs import ACTIVE
from mnist_core.report import TEXT as REPORT_TEXT, results_table, section_charts, to_html
from mnist_core.study import SIZE_NAMES, SIZES, Section, build_study, missing_text, seed_setting
from mnist_core.study_grid import GridSection, build_grid_section, seed_text
from mnist_core.study_grid import missing_text as grid_missing_text
from mnist_core.compare import PARAM_TITLES
from mnist_core.grid import lr_batch_note
from app_pages.comparison_grid import heatmaps



def seed_block(section: Section) -> None:
    _ = tr()
    a, b = section.seed.lines
    with st.expander(_("{seed}: {section} (lines {a}–{b})", seed=_(REPORT_TEXT["seed"]), section=section.seed.section,
                       a=a, b=b), expanded=False):
        st.markdown(_("{setting}: {values}", setting=_(REPORT_TEXT["setting"]), values=seed_setting(section, _.lang)))
        paraphrase = (lambda q: "") if _.lang == "ko" else (lambda q: f" — {q.english}")
        quotes = [f"“{q.korean}” {_(REPORT_TEXT['line'], line=q.line)}{paraphrase(q)}" for q in section.seed.quotes]
        st.markdown("\n".join(f"- {q}" for q in quotes))


def train_section(section: Section) -> None:
    """Submits the section's runs to the server's training service; the watcher below shows them."""
    configs = [e.config for e in section.items + section.repeats]
    if refused := submit(f"study.{section.preset.name}", configs):
        st.session_state["study.notice"] = refused
    st.rerun()


def show_section(section: Section, data, cache) -> None:
    _ = tr()
    st.header(section.title, anchor=section.preset.name)
    st.markdown(_("**{question}:** {text}", question=_(REPORT_TEXT["question"]), text=section.question))
    st.caption(section.scaling)
    seed_block(section)
    if section.missing:
        st.warning(missing_text(section, _.lang))
        configs = [e.config for e in section.items + section.repeats]
        keys = [cache.key_for(c, data) for c in configs]
        jobs = remembered_jobs(f"study.{section.preset.name}", keys)
        failed_block(jobs)
        if any(job.state in ACTIVE for job in jobs):
            watcher(f"study.{section.preset.name}", keys, lambda job: settings_text(job.config, _.lang))
        elif st.button(_("Train this section"), key=f"study.train.{section.preset.name}", disabled=not may_train()):
            train_section(section)
    charts = section_charts(section, width=None)
    columns = st.columns(2)
    for i, (_name, chart) in enumerate(charts):
        columns[i % 2].altair_chart(chart, width="stretch")
    table = results_table(section)
    if len(table):
        st.dataframe(table, hide_index=True, width="stretch")
    if section.observations:
        st.subheader(_(REPORT_TEXT["observations"]))
        st.markdown("\n".join(f"- {o}" for o in section.observations))


def show_grid_section(section: GridSection, data, cache) -> None:
    """The learning rate × batch size grid: its heatmaps, the concept note ending with it, its observations."""
    _ = tr()
    scope = "study.lr-batch"
    st.header(section.title, anchor="mlp-lr-batch")
    st.markdown(_("**{question}:** {text}", question=_(REPORT_TEXT["question"]), text=section.question))
    st.caption(section.scaling)
    st.caption(seed_text(_.lang))
    if section.missing:
        st.warning(grid_missing_text(section, _.lang))
        keys = [cache.key_for(c, data) for c in section.configs]
        jobs = remembered_jobs(scope, keys)
        failed_block(jobs)
        if any(job.state in ACTIVE for job in jobs):
            watcher(scope, keys, lambda job: settings_text(job.config, _.lang))
        elif st.button(_("Train this section"), key="study.train.mlp-lr-batch", disabled=not may_train()):
            if refused := submit(scope, section.configs):
                st.session_state["study.notice"] = refused
            st.rerun()
    frame = section.frame()
    heatmaps(frame, _(PARAM_TITLES["lr"]), _(PARAM_TITLES["batch_size"]), _)
    title, body = lr_batch_note(frame, _.lang)
    with st.expander(_("Concept: {title}", title=title)):
        st.markdown(body)
    if section.observations:
        st.subheader(_(REPORT_TEXT["observations"]))
        st.markdown("\n".join(f"- {o}" for o in section.observations))


def study_page() -> None:
    _ = tr()  # the sidebar's language switch (app.py) serves every page
    restore("study.size", "quick")
    with st.sidebar:
        size = keep("study.size", st.radio(_("Size"), list(SIZES), key="study.size", horizontal=True,
                                           format_func=lambda s: _(SIZE_NAMES.get(s, s))))
    st.title(_(REPORT_TEXT["title"]))
    st.markdown(_("The blog post this lab grew from ran six experiments. Here they run again with this lab's engine: "
                  "for each, the post's setting and what it concluded, our runs, and what they show, computed from "
                  "the runs. **{quick}** trains fewer images and epochs (minutes on 2 CPU cores); **{full}** is the "
                  "post's settings.", quick=_(SIZE_NAMES["quick"]), full=_(SIZE_NAMES["full"])))
    if notice := st.session_state.pop("study.notice", None):
        st.error(notice)
    data = dataset_or_error()
    if data is None:
        return
    cache = run_cache()
    sections = build_study(SIZES[size], data, cache, lang=_.lang)
    grid = build_grid_section(SIZES[size], data, cache, lang=_.lang)
    st.download_button(_("Download the study (HTML)"), data=lambda: to_html(sections, _.lang, grid=grid),
                       file_name=f"study-{size}-{_.lang}.html", mime="text/html", key="study.download")
    for section in sections:
        show_section(section, data, cache)
    show_grid_section(grid, data, cache)


study_page()
