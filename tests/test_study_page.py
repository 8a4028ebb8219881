"""The Study page through Streamlit's AppTest: with nothing cached it renders all six sections, each
saying what its runs would cost with a button to train them, in English and in Korean, and trains nothing."""
from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from conftest import train_through_the_service
from mnist_core.cache import RunCache

APP = "../app.py"


@pytest.fixture(autouse=True)
def fresh_service():
    """The job service is a server-wide resource built on run_cache(): one built while a test patched that to a
    temp cache would keep training into it, and a later test's page would not find its runs."""
    from app_pages import shared
    shared.job_service.clear()
    yield
    shared.job_service.clear()


def test_study_page_with_nothing_cached_shows_costs_and_trains_nothing(tmp_path, monkeypatch):
    import streamlit
    from app_pages import shared
    empty = RunCache(tmp_path / "runs")
    monkeypatch.setattr(shared, "run_cache", lambda: empty)
    downloads = {}  # the download's data is made on click: keep the callable, and have it call a stand-in to_html
    button = streamlit.download_button
    monkeypatch.setattr(streamlit, "download_button", lambda label, data, **kw: (
        downloads.__setitem__(kw.get("key"), data), button(label, data, **kw))[1])
    monkeypatch.setattr("mnist_core.report.to_html", lambda sections, lang, grid=None: (sections, lang, grid))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("app_pages/study.py").run()
    assert not at.exception, at.exception
    assert at.title[0].value == "The seed's study, regenerated"
    assert [h.value for h in at.header] == ["MLP: learning rate", "MLP: epochs", "MLP: batch size",
                                            "MLP: activation functions", "CNN: stride", "CNN: filter size",
                                            "MLP: learning rate × batch size"]
    warnings = [w.value for w in at.warning]
    assert len(warnings) == 7 and all(w.startswith("Not trained yet:") for w in warnings)
    assert warnings[6].startswith("Not trained yet: 16 of the grid's 16 runs.")
    assert "0.1, 0.01, 0.001, 0.0001, 0.1 (seed 1), 0.1 (seed 2)" in warnings[0]
    assert len([b for b in at.button if b.key and b.key.startswith("study.train.")]) == 7
    assert any(c.value.startswith("Scaled (quick): training images 60,000 → 10,000") for c in at.caption)
    assert empty.list() == []  # opening the page trained nothing
    sections, lang, grid = downloads["study.download"]()  # "Download the study (HTML)": the grid section too
    assert len(sections) == 6 and lang == "en" and grid.title == "MLP: learning rate × batch size"
    assert len(grid.missing) == 16

    at.selectbox(key="lab.lang").set_value("ko").run()  # the language switch every page shares
    assert not at.exception
    assert at.title[0].value == "원 글의 실험, 다시 돌리기"
    assert at.header[0].value == "MLP: 학습률" and at.warning[0].value.startswith("아직 학습하지 않음")
    assert at.radio(key="study.size").options == ["원래 크기", "빠르게"] and at.radio(key="study.size").value == "quick"
    assert not any("quick" in m.value or "full" in m.value for m in at.markdown)
    assert any(c.value.startswith("축소 설정 (빠르게)") for c in at.caption)


def test_study_page_shows_charts_tables_and_observations_of_cached_runs(tmp_path, monkeypatch, mnist):
    """The tiny study, trained into the page's cache, shown through a size the page lists only here."""
    from app_pages import shared
    from mnist_core import study, study_grid
    cache = RunCache(tmp_path / "runs")
    configs = [config for _, config in study.study_configs(study.TINY)]
    train_through_the_service(configs + study_grid.build_grid_section(study.TINY, mnist, cache).configs, mnist, cache)
    monkeypatch.setattr(shared, "run_cache", lambda: cache)
    monkeypatch.setitem(study.SIZES, "tiny", study.TINY)
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("app_pages/study.py").run()
    at.radio(key="study.size").set_value("tiny").run()
    assert not at.exception, at.exception
    assert not at.warning  # everything cached: no cost, no train button
    assert not [b for b in at.button if b.key and b.key.startswith("study.train.")]
    assert len(at.get("vega_lite_chart")) >= 6 * 4
    assert len(at.dataframe) == 6 and at.dataframe[1].value.columns[0] == "epochs"
    observations = [m.value for m in at.markdown if m.value.startswith("- ")]
    assert len(observations) >= 6 and any("Values into the classifier" in m for m in observations)
    assert any(m.startswith("- Best learning rate per batch size in your grid: batch 30: lr ") for m in observations)
    assert {"Final test accuracy over the grid", "Seconds per epoch over the grid"} <= \
        {json.loads(c.proto.spec).get("title") for c in at.get("vega_lite_chart")}
