"""A crafted link shows its values as plain text, never as Markdown: a link sent around a class must not
put a link, an image or formatting of the sender's choice inside the app (values, dataset, activations,
on the MLP and CNN pages, in English and Korean). AppTest checks the Markdown each box is given; a real
browser checks what a student sees."""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlencode

import pytest
from streamlit.testing.v1 import AppTest

from mnist_core import RunConfig
from mnist_core.compare import make_comparison, to_query_params
from mnist_core.i18n import markdown_literal

LINK = "[click](http://example.invalid)"
IMAGE = "![x](http://example.invalid/x.png)"
CRAFTED = [("values", LINK), ("values", IMAGE), ("dataset", LINK), ("activations", LINK),
           ("values", "**bold** :red[red] $x^2$ <b>html</b>"), ("values", "www.example.invalid")]
MARKDOWN_ELEMENTS = ("error", "warning", "info", "success", "markdown", "caption")


def crafted_query(model: str, name: str, value: str, lang: str) -> dict[str, str]:
    query = {**to_query_params(make_comparison(RunConfig(model=model), "lr", "0.1")), "lang": lang}
    query[name] = value
    return query


def markdown_given(at: AppTest) -> list[str]:
    return [str(element.value) for kind in MARKDOWN_ELEMENTS for element in at.get(kind)]


@pytest.mark.parametrize("lang", ["en", "ko"])
@pytest.mark.parametrize("page, model", [("app_pages/mlp.py", "mlp"), ("app_pages/cnn.py", "cnn")])
def test_crafted_link_values_reach_the_page_only_as_literal_text(page, model, lang):
    for name, value in CRAFTED:
        at = AppTest.from_file("../app.py", default_timeout=60)
        at.run()
        at.switch_page(page)
        at.query_params.update(crafted_query(model, name, value, lang))
        at.run()
        assert not at.exception, at.exception
        shown = markdown_given(at)
        assert any(markdown_literal(value) in text for text in shown), (name, value, shown)  # it says what was wrong
        for text in shown:
            text = re.sub(r"(`+)(?!`).*?(?<!`)\1(?!`)", "", text)  # code spans show their text as it is
            for raw in (LINK, IMAGE, "](http", "**bold**", ":red[", "$x^2$", "<b>", "www.example"):
                assert raw not in text, f"{name}={value!r} reached the page as Markdown: {text!r}"


def test_markdown_literal_leaves_plain_values_and_code_spans_the_rest():
    assert markdown_literal("0.001") == "0.001" and markdown_literal("relu,relu") == "relu,relu"
    assert markdown_literal("학습률 -1") == "학습률 -1" and markdown_literal("notes.png") == "notes.png"
    assert markdown_literal("a_b*c") == "`a_b*c`" and markdown_literal("www.example.invalid") == "`www.example.invalid`"
    assert markdown_literal("me@example.invalid") == "`me@example.invalid`"
    assert markdown_literal("첫\n# 줄") == "`첫 # 줄`"  # no new block from a new line
    assert markdown_literal("a`b") == "``a`b``" and markdown_literal("`x") == "`` `x ``"


def test_a_crafted_link_shows_no_link_or_image_in_the_browser(tmp_path):
    from test_e2e import BROWSER_ARGS, CHROMIUM, Server, settle, shot
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"No Chromium at {CHROMIUM}")
    with Server(tmp_path) as server, playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        for lang in ("en", "ko"):
            for name, value in CRAFTED[:3]:
                page.goto(f"{server.url}/mlp?{urlencode(crafted_query('mlp', name, value, lang))}")
                settle(page)
                main = page.locator('[data-testid="stMain"]')
                # (the page's own share link carries the value inside its query string: that one is ours)
                assert main.locator('a[href^="http://example.invalid"]').count() == 0
                assert main.locator('img[src^="http://example.invalid"]').count() == 0
                if lang == "ko" and value == LINK and name == "values":
                    shot(page, "crafted-link-ko")
                assert value in main.inner_text(), (lang, name)  # shown, as typed
        browser.close()
