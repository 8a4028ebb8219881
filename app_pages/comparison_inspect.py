"""One run of the comparison: its most confident mistakes, its confusion matrix, the notebook download and
what is inside it (app_pages/inside.py)."""
from __future__ import annotations

import numpy as np
import streamlit as st

from mnist_core.cache import UnknownRunError
from mnist_core.charts import confusion_chart
from mnist_core.compare import Entry
from mnist_core.evaluate import SURE, confusion_table, saturates
from mnist_core.i18n import Translator, keep_words
from mnist_core.notebook import zip_bytes
from mnist_core.results import RunResult
from app_pages.inside import inside_this_run
from app_pages.shared import dataset_or_error, keep, restore, run_cache, test_set_report


MISTAKES_PER_ROW = 6


def inspect_section(model: str, items: list[Entry], results: list[RunResult | None], param_title: str,
                    _: Translator) -> None:
    """Where one run goes wrong: its most confident mistakes and the confusion matrix."""
    inspectable = {e.label: r.key for e, r in zip(items, results)
                   if r is not None and r.key and r.status == "ok" and e.config == r.config}
    if not inspectable:
        return
    st.subheader(_("Inspect one run"))
    labels = list(inspectable)
    if restore(f"{model}.view.inspect", labels[0]) not in labels:  # a run of other settings
        st.session_state[f"{model}.view.inspect"] = labels[0]
    choice = keep(f"{model}.view.inspect",
                  st.selectbox(_("Run ({setting})", setting=param_title), labels, key=f"{model}.view.inspect"))
    if choice not in inspectable:
        return
    run = next(r for r in results if r is not None and r.key == inspectable[choice])
    data = dataset_or_error(run.config.dataset)
    if data is None:
        return
    with st.spinner(_("Running the model on the {n} test images…", n=_.number(len(data.test_x)))):
        report = test_set_report(inspectable[choice])
    classes = [_(c) for c in data.classes]
    gallery, matrix = st.columns([3, 2])
    with gallery:
        wrong = int(report.confusion.sum() - np.trace(report.confusion))
        st.markdown(_("**Most confident mistakes** · {wrong} of {total} test images wrong ({right} right)",
                      wrong=_.number(wrong), total=_.number(int(report.confusion.sum())),
                      right=_.percent(report.accuracy)))
        for n, mistake in enumerate(report.mistakes):
            if n % MISTAKES_PER_ROW == 0:  # a row of its own: a caption that wraps further cannot push the next row
                columns = st.columns(MISTAKES_PER_ROW)
            big = np.kron(mistake.image, np.ones((3, 3)))  # sharp pixels instead of the browser's blur
            columns[n % MISTAKES_PER_ROW].image(big, clamp=True, width="stretch",
                                 caption=keep_words(_("true {true} → {predicted} ({confidence})",
                                                      true=classes[mistake.true_label],
                                                      predicted=classes[mistake.predicted],
                                                      confidence=_.percent(mistake.confidence, 0))))
        certain = sum(m.confidence >= SURE for m in report.mistakes)
        if saturates(run.config) and certain * 2 > len(report.mistakes):
            st.caption(_("{n} of these {total} mistakes read (almost) 100%: the seed's normal(0, 1) init makes this "
                         "MLP's outputs so large that softmax saturates, so it is as sure of a wrong answer as of a "
                         "right one (see the concept notes on softmax and weight init).", n=certain,
                         total=len(report.mistakes)))
    with matrix:
        st.altair_chart(confusion_chart(confusion_table(report.confusion), classes, text=_), width="stretch")
    notebook_button(inspectable[choice], _)
    inside_this_run(model, inspectable, choice, param_title, data)


def notebook_button(key: str, _: Translator) -> None:
    """The run as a notebook to take home, with its weights: built only when clicked (a CNN's zip is ~5 MB)."""
    cache = run_cache()

    def build() -> bytes:  # runs outside the page's script, when the student clicks: no st calls here
        run = cache.get(key, weights=True, touch=True)
        if run is None:  # evicted since the page was drawn
            raise UnknownRunError(f"No cached run {key}.")
        return zip_bytes(run)

    st.download_button(_("Download as notebook"), build, file_name=f"{key}.zip", mime="application/zip",
                       key=f"notebook.{key}", on_click="ignore",
                       help=_("A plain PyTorch notebook that trains this run again, step by step, to the same "
                              "numbers, and the run's trained weights beside it (a zip)."))
