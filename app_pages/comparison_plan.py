"""The comparison's plan, above its results: the seed experiment it equals, how many runs, how many are cached,
the estimated time, the Run button, and the concept notes of the compared setting."""
from __future__ import annotations

import streamlit as st

from mnist_core import PRESETS
from mnist_core.compare import Comparison, Entry, estimate, shape_flow_frame
from mnist_core.i18n import Translator
from mnist_core.jobs import ACTIVE, Job
from mnist_core.notes import FOR_PARAM, note
from mnist_core.results import RunResult
from app_pages.shared import may_train
from app_pages.watcher import submit


def preset_banner(name: str, items: list[Entry], results: list[RunResult | None], _: Translator) -> None:
    """The seed experiment the sidebar equals: the seed's words as the seed's, and ours beside them."""
    preset = PRESETS[name]
    text = _("**{title}.** From the seed post: {description}", title=_(preset.title), description=_(preset.description))
    ours = [_("{value}: {accuracy}", value=e.label, accuracy=_.percent(r.final.test_acc))
            for e, r in zip(items, results) if r is not None and r.final is not None]
    if ours:
        text += "\n\n" + _("Ours, with these settings (final test accuracy): {runs}.", runs=" · ".join(ours))
    st.info(text)


def plan_section(model: str, comparison: Comparison, items: list[Entry], valid: list[Entry], data, cache,
                 jobs: list[Job], scope: str, _: Translator) -> None:
    plan = estimate(items, data, cache)
    run_column, runs, cached, time_left = st.columns([2, 1, 1, 1])
    runs.metric(_("Runs"), plan.runs)
    cached.metric(_("Already cached"), _("{n} of {total}", n=plan.cached, total=plan.runs))
    if not valid:
        time_left.metric(_("Estimated time"), "–")
    elif plan.trainings == 0:
        time_left.metric(_("Estimated time"), _("instant"))
    else:
        time_left.metric(_("Estimated time"), _("≈ {duration}", duration=_.duration(plan.seconds)))
    training = any(job.state in ACTIVE for job in jobs)
    allowed = may_train()
    clicked = run_column.button(
        _("Training…") if training else _("Run comparison"), type="primary", key=f"{model}.run",
        disabled=not valid or training or not allowed, width="stretch",
        help=None if allowed else _("Enter the class code in the sidebar to train."))
    if not valid:
        basis = _("Nothing to run: none of the values to try can be trained (see above).")
    elif plan.trainings == 0:
        basis = _("Everything is cached.")
    else:
        basis = _("Estimated from this {device}'s measured speed for the {model} at this batch size.",
                  model=model.upper(), device=data.device.type)
    if plan.trainings and plan.trainings < plan.runs - plan.cached:
        basis += " " + _("An epochs comparison trains only its longest run; the shorter ones are its first epochs.")
    if valid:
        basis += " " + _("Training goes on while you change settings or visit other pages.")
    st.caption(basis)
    for topic in FOR_PARAM.get(comparison.param, ()):
        if topic != "conv_size" or model != "cnn":  # the CNN's is beside the shape-flow table, just below
            concept_note(topic, _, None)
    if model == "cnn" and valid:
        with st.expander(_("Shape flow: the image's shape after each layer")):
            st.dataframe(shape_flow_frame(items).rename(columns={"layer": _("layer")}), hide_index=True,
                         width="stretch")
            title, body = note("conv_size", _.lang)
            st.markdown(f"**{title}.** {body}")
    if clicked:
        if refused := submit(scope, [e.config for e in valid]):
            st.error(refused)
            return
        st.session_state.setdefault("lab.asked", set()).add(scope)
        st.rerun()  # from the top: the watcher shows the new jobs, the Run button says it is training


def concept_note(topic: str, _: Translator, finals) -> None:
    title, body = note(topic, _.lang, finals)
    with st.expander(_("Concept: {title}", title=title)):
        st.markdown(body)
