"""The Study page: the seed post's six experiments, each with the seed's setting and stated result, our
charts and table, and observations computed from the runs (mnist_core.study). Nothing trains until a
section's Train button is pressed; a section whose runs are not cached says what they would cost.
"""
from __future__ import annotations

import json

import streamlit as st

from app_pages.shared import (ACTIVE, dataset_or_error, job_line, job_service, keep, language, may_train, owner,
                              remember, remembered_jobs, restore, run_cache)
from mnist_core.jobs import RequestRefused
from mnist_core.report import TEXT as REPORT_TEXT, results_table, section_charts, to_html
from mnist_core.study import SIZES, Section, build_study, missing_text, train_runs

PAGE_TEXT = {
    "en": {"title": "The seed's study, regenerated",
           "intro": "The blog post this lab grew from ran six experiments. Here they run again with this lab's engine: "
                    "for each, the post's setting and what it concluded, our runs, and what they show, computed from "
                    "the runs. **quick** trains fewer images and epochs (minutes on 2 CPU cores); **full** is the "
                    "post's settings.",
           "size": "Size", "lang": "Language", "train": "Train this section", "download": "Download the study (HTML)",
           "trained": "Trained {runs} run(s) in {seconds:.0f} s.", "failed": "Training stopped with an error: {error}"},
    "ko": {"title": "원 글의 실험, 다시 돌리기",
           "intro": "이 실습의 바탕이 된 블로그 글은 여섯 가지 실험을 했다. 여기서 이 실습의 엔진으로 다시 돌린다: 각 실험마다 "
                    "원 글의 설정과 결론, 우리의 실행, 그리고 실행에서 계산한 관찰을 보여준다. **quick**은 이미지와 에폭을 "
                    "줄인 것(CPU 2코어에서 몇 분), **full**은 원 글의 설정이다.",
           "size": "크기", "lang": "언어", "train": "이 절 학습하기", "download": "실험 보고서 내려받기 (HTML)",
           "trained": "{runs}개 실행을 {seconds:.0f}초 동안 학습했다.", "failed": "학습이 오류로 멈췄다: {error}"},
}


def seed_block(section: Section, lang: str) -> None:
    t = REPORT_TEXT[lang]
    a, b = section.seed.lines
    with st.expander(f"{t['seed']}: {section.seed.section} (l. {a}–{b})", expanded=False):
        st.markdown(f"{t['setting']}: `{json.dumps(section.seed.setting, ensure_ascii=False)}`")
        st.markdown("\n".join(f"- “{q.korean}” (l. {q.line})" + ("" if lang == "ko" else f" — {q.english}")
                              for q in section.seed.quotes))


def train_section(section: Section, data, cache, lang: str) -> None:
    """Submits the section's runs to the server's training service; the watcher below shows them."""
    configs = [e.config for e in section.items + section.repeats]
    try:
        remember(f"study.{section.preset.name}", job_service().submit(configs, owner()))
    except RequestRefused as e:
        st.session_state["study.notice"] = str(e)
    st.rerun()


@st.fragment(run_every=1.0)
def section_watcher(name: str, keys: list[str]) -> None:
    """A section's trainings (they go on if the student leaves); the page reruns when they end."""
    jobs = remembered_jobs(f"study.{name}", keys)
    if not any(job.state in ACTIVE for job in jobs):
        st.rerun()
    for job in jobs:
        st.progress(job.progress, text=job_line(job, job.config.describe()))


def show_section(section: Section, data, cache, lang: str) -> None:
    t = REPORT_TEXT[lang]
    st.header(section.title, anchor=section.preset.name)
    st.markdown(f"**{t['question']}:** {section.question}")
    st.caption(section.scaling)
    seed_block(section, lang)
    if section.missing:
        st.warning(missing_text(section, lang))
        configs = [e.config for e in section.items + section.repeats]
        keys = [cache.key_for(c, data) for c in configs]
        jobs = remembered_jobs(f"study.{section.preset.name}", keys)
        for job in jobs:
            if job.state == "failed":
                st.error(PAGE_TEXT[lang]["failed"].format(error=job.message))
        if any(job.state in ACTIVE for job in jobs):
            section_watcher(section.preset.name, keys)
        elif st.button(PAGE_TEXT[lang]["train"], key=f"study.train.{section.preset.name}", disabled=not may_train()):
            train_section(section, data, cache, lang)
    charts = section_charts(section, width=None)
    columns = st.columns(2)
    for i, (_, chart) in enumerate(charts):
        columns[i % 2].altair_chart(chart, width="stretch")
    table = results_table(section)
    if len(table):
        st.dataframe(table, hide_index=True, width="stretch")
    if section.observations:
        st.subheader(t["observations"])
        st.markdown("\n".join(f"- {o}" for o in section.observations))


def study_page() -> None:
    restore("study.size", "quick")
    lang = language()  # the sidebar's language switch (app.py) serves every page
    with st.sidebar:
        size = keep("study.size", st.radio("Size / 크기", list(SIZES), key="study.size", horizontal=True))
    text = PAGE_TEXT[lang]
    st.title(text["title"])
    st.markdown(text["intro"])
    if notice := st.session_state.pop("study.notice", None):
        st.error(notice)
    data = dataset_or_error()
    if data is None:
        return
    cache = run_cache()
    sections = build_study(SIZES[size], data, cache, lang=lang, train=False)
    st.download_button(text["download"], data=lambda: to_html(sections, lang), file_name=f"study-{size}-{lang}.html",
                       mime="text/html", key="study.download")
    for section in sections:
        show_section(section, data, cache, lang)


study_page()
