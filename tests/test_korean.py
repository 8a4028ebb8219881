"""Korean, page by page: every page renders in Korean from a ?lang=ko link without an exception and shows
Korean where a student reads (titles, sidebar labels, captions); the study report's charts are drawn with
Korean labels where a Korean font is installed, English ones where not. (That every text of the code has
its Korean is tests/test_i18n.py's job.)"""
from __future__ import annotations

import re

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from mnist_core.charts import final_accuracy_chart
from mnist_core.i18n import Translator

APP = "../app.py"
HANGUL = re.compile(r"[\uac00-\ud7a3]")
PAGES = {  # page -> a word of the seed's vocabulary the page shows
    None: "하이퍼파라미터", "app_pages/mlp.py": "학습률", "app_pages/cnn.py": "스트라이드",
    "app_pages/draw.py": "숫자 그리기", "app_pages/study.py": "에폭",
}


def texts(at: AppTest) -> list[str]:
    """What a student reads: titles, headers, markdown, captions, and the widgets' labels."""
    found = [e.value for kind in ("title", "header", "subheader", "markdown", "caption", "info", "warning")
             for e in at.get(kind)]
    found += [w.label for kind in ("number_input", "selectbox", "text_input", "button", "radio", "multiselect",
                                   "toggle", "checkbox") for w in at.get(kind)]
    return [t for t in found if t]


@pytest.mark.parametrize("page", list(PAGES), ids=lambda p: p or "home")
def test_every_page_renders_in_korean_from_a_link(page):
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["lang"] = "ko"
    at.run()
    if page:
        at.switch_page(page)
        at.query_params["lang"] = "ko"
        at.run()
    assert not at.exception, at.exception
    assert at.session_state["lab.lang"] == "ko"
    shown = texts(at)
    assert HANGUL.search(at.title[0].value), at.title[0].value
    assert any(PAGES[page] in t for t in shown), shown[:20]
    # Most of what is shown is Korean: an untranslated page would show English sentences instead.
    sentences = [t for t in shown if len(t) > 30]
    assert sentences and sum(bool(HANGUL.search(t)) for t in sentences) >= 0.8 * len(sentences), sentences


def test_english_stays_the_default_without_a_link_or_browser_language():
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception
    shown = [t for t in texts(at) if t != "Language / 언어"]  # the switch names both
    assert at.title[0].value == "MNIST hyperparameter lab" and not HANGUL.search(" ".join(shown))


def test_report_charts_are_korean_where_a_korean_font_is_installed():
    from mnist_core.report import KOREAN_FONT, KOREAN_FONTS, chart_language, render
    frame = pd.DataFrame({"value": ["0.1", "0.01"], "series": ["0.1", "0.01"], "order": [0, 1],
                          "test_acc": [0.1, 0.97], "epochs": [2, 2], "status": ["ok", "ok"]})
    if not (KOREAN_FONTS / f"{KOREAN_FONT}.ttf").is_file():
        assert chart_language("ko") == "en"  # no boxes instead of Hangul: the labels stay English
        return
    assert chart_language("ko") == "ko"
    chart = final_accuracy_chart(frame, legend_title="학습률", text=Translator("ko"))
    svg = render(chart.properties(width=300), "svg").decode()
    assert "최종 테스트 정확도" in svg or "NanumGothic" in svg
