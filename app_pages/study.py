"""The Study page: the seed post's six experiments, each with the seed's setting and stated result, our
charts and table, and observations computed from the runs (mnist_core.study). Nothing trains until a
section's Train button is pressed; a section whose runs are not cached says what they would cost.
"""
from __future__ import annotations

import json
import time

import streamlit as st

from app_pages.shared import OverTheCap, dataset_or_error, keep, restore, run_cache, training_turn
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
    configs = [e.config for e in section.items + section.repeats]
    bar = st.progress(0.0, text=section.title)
    fractions = [0.0] * len(configs)

    def progress(i: int, epoch: int, fraction: float, metrics: dict) -> None:
        fractions[i] = (epoch - 1 + fraction) / configs[i].epochs
        bar.progress(min(sum(fractions) / len(fractions), 1.0), text=f"{section.title} · run {i + 1}, epoch {epoch}")

    started = time.monotonic()
    try:
        with training_turn(configs, data, cache, lambda text: bar.progress(0.0, text=text)):
            train_runs(configs, data, cache, progress)
    except OverTheCap as e:
        st.session_state["study.notice"] = str(e)
    except Exception as e:  # keep the page alive and say what happened
        st.session_state["study.notice"] = PAGE_TEXT[lang]["failed"].format(error=e)
    else:
        st.session_state["study.done"] = PAGE_TEXT[lang]["trained"].format(
            runs=len(section.missing), seconds=time.monotonic() - started)
    st.rerun()


def show_section(section: Section, data, cache, lang: str) -> None:
    t = REPORT_TEXT[lang]
    st.header(section.title, anchor=section.preset.name)
    st.markdown(f"**{t['question']}:** {section.question}")
    st.caption(section.scaling)
    seed_block(section, lang)
    if section.missing:
        st.warning(missing_text(section, lang))
        if st.button(PAGE_TEXT[lang]["train"], key=f"study.train.{section.preset.name}"):
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
    restore("study.lang", "en")
    with st.sidebar:
        size = keep("study.size", st.radio("Size / 크기", list(SIZES), key="study.size", horizontal=True))
        lang = keep("study.lang", st.radio("Language / 언어", ["en", "ko"], key="study.lang", horizontal=True,
                                           format_func=lambda code: {"en": "English", "ko": "한국어"}[code]))
    text = PAGE_TEXT[lang]
    st.title(text["title"])
    st.markdown(text["intro"])
    if notice := st.session_state.pop("study.notice", None):
        st.error(notice)
    if done := st.session_state.pop("study.done", None):
        st.success(done)
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
