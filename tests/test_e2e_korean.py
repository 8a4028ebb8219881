"""End to end in Korean and on Fashion-MNIST: a student switches the language in the sidebar, the pages
and the link keep it, a comparison's results read in Korean; a Fashion-MNIST comparison chosen in the
sidebar names the clothes in its results. The server, browser and helpers are tests/test_e2e.py's.
Screenshots go to test-artifacts/ (mlp-ko.png, fashion.png); refresh_screenshots.py copies them.
"""
from __future__ import annotations

import re

# browser: test_e2e's fixture (one Chromium for this module); pytestmark: its skip where no Chromium is installed
from test_e2e import (ARTIFACTS, Server, browser, comparison_url, go_to, nav_labels, new_page,  # noqa: F401
                      no_errors, pytestmark, settle, shot, wait_done)

HANGUL = re.compile(r"[\uac00-\ud7a3]")


def choose(page, label: str, option: str) -> None:
    """Picks `option` in the selectbox labelled `label`, as a student does (click, then the option)."""
    box = page.get_by_role("combobox", name=label, exact=True)
    box.click()
    box.press_sequentially(option[:4])  # typing filters the list and opens it
    page.get_by_role("option", name=option, exact=True).click()
    page.wait_for_timeout(500)
    settle(page)


def h1(page) -> str:
    return page.locator('[data-testid="stMain"] h1').first.inner_text()


def overlaps(a: dict, b: dict) -> bool:
    return a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"] and \
        a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"]


def toolbar_covers_nothing(page) -> None:
    """The Draw page's canvas shows its toolbar above the square while the pointer is on it: it must not
    cover the page's text (it once hid the caption under the title)."""
    canvas = page.locator(".st-key-draw-canvas canvas").last
    canvas.wait_for(timeout=30_000)
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_timeout(800)  # it slides in
    toolbar = page.locator(".dc-toolbar-card").first.bounding_box()
    texts = page.locator('[data-testid="stMain"] [data-testid="stCaptionContainer"], [data-testid="stMain"] h1')
    assert texts.count() >= 2
    for i in range(texts.count()):
        assert not overlaps(toolbar, texts.nth(i).bounding_box()), texts.nth(i).inner_text()


def test_the_language_switch_keeps_korean_across_pages_and_in_the_link(browser, tmp_path):  # noqa: F811
    with Server(tmp_path) as server:
        page = new_page(browser)
        page.goto(server.url)
        settle(page)
        assert h1(page) == "MNIST hyperparameter lab"
        choose(page, "Language / 언어", "한국어")
        no_errors(page)
        assert h1(page) == "MNIST 하이퍼파라미터 실습"
        assert "lang=ko" in page.url
        assert nav_labels(page) == ["홈", "MLP", "CNN", "그리기", "실험 노트", "둘러보기"]

        go_to(page, "MLP")  # another page: still Korean, and its link says so
        no_errors(page)
        assert "하이퍼파라미터 비교" in h1(page) and "lang=ko" in page.url
        assert page.locator('[data-testid="stSidebar"]').get_by_text("학습률").first.is_visible()
        link = page.url

        page.get_by_role("button", name="비교 실행").click()  # a small comparison, read in Korean
        page.get_by_text(re.compile(r"완료: 실행 \d+개")).first.wait_for(timeout=180_000)
        settle(page)
        no_errors(page)
        assert page.get_by_role("heading", name="결과").is_visible()
        # each mistake's caption wraps at spaces only: the two syllables of "예측" stay on one line
        captions = page.get_by_text(re.compile(r"^정.?답 .+ → 예.?측")).all()[:6]
        assert captions
        for caption in captions:
            lines = caption.evaluate("""e => { const w = document.createTreeWalker(e, NodeFilter.SHOW_TEXT); let n;
                while ((n = w.nextNode())) { const i = n.data.indexOf("예\\u2060측"); if (i >= 0) {
                    const r = document.createRange(); r.setStart(n, i); r.setEnd(n, i + 3);
                    return new Set([...r.getClientRects()].filter(x => x.width > 0).map(x => Math.round(x.top))).size;
                } } return -1; }""")
            assert lines == 1, (caption.inner_text(), lines)
        shot(page, "mlp-ko", height=1400)

        classmate = new_page(browser)  # the shared link opens in Korean in a browser that never chose it
        classmate.goto(link)
        settle(classmate)
        no_errors(classmate)
        assert "하이퍼파라미터 비교" in h1(classmate)
        go_to(classmate, "그리기")
        assert h1(classmate) == "숫자 그리기" and "lang=ko" in classmate.url
        toolbar_covers_nothing(classmate)
        classmate.context.close()
        page.context.close()


def test_a_fashion_mnist_comparison_chosen_in_the_sidebar_names_the_clothes(browser, tmp_path):  # noqa: F811
    with Server(tmp_path) as server:
        page = new_page(browser)
        page.goto(comparison_url(server, train_size="2000", epochs="2"))
        settle(page)
        choose(page, "Dataset", "Fashion-MNIST")
        no_errors(page)
        assert h1(page) == "MLP on Fashion-MNIST: compare hyperparameters"
        assert "dataset=fashion-mnist" in page.url
        page.get_by_role("button", name="Run comparison").click()
        wait_done(page)
        no_errors(page)
        clothes = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")
        mistakes = page.get_by_text(re.compile(r"^true .+ → .+ \(\d+%\)$")).all_inner_texts()
        assert mistakes, "no mistakes gallery"
        assert all(any(f"true {c} →" in m for c in clothes) for m in mistakes), mistakes[:3]
        # the README's picture: the run's mistakes and confusion matrix, named by the clothes
        page.set_viewport_size({"width": 1400, "height": 4000})
        page.wait_for_timeout(2000)
        top = page.get_by_role("heading", name="Inspect one run").bounding_box()["y"]
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "fashion.png"), clip={"x": 300, "y": top - 20, "width": 1100,
                                                                    "height": 820})
        page.context.close()
