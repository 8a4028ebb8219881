"""The grid on the MLP and CNN pages through AppTest: a 2 x 2 grid trains through the job service, draws its two
heatmaps, names the pairs that cannot work and why, shows a row's or a column's curves; its link brings it back
from the cache; the lr x batch note ends with the student's own grid; crafted compare2/values2 reach the page only
as plain text; the Korean page reads Korean."""
from __future__ import annotations

import json
import re

import pytest

from mnist_core import RunConfig
from mnist_core.compare import make_comparison
from mnist_core.grid import make_grid, to_query_params
from mnist_core.i18n import markdown_literal
from test_app import chart_specs, job_ids, metric, open_page, run_and_wait
from test_links import IMAGE, LINK, markdown_given


def titles(at) -> list[str]:
    return [s.get("title") for s in chart_specs(at)]


def chart_rows(at, title: str) -> list[dict]:
    """The rows of the chart titled `title` (Streamlit sends a chart's data beside its spec, as Arrow)."""
    from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df
    chart = next(c for c in at.get("vega_lite_chart") if json.loads(c.proto.spec).get("title") == title)
    return [row for named in chart.proto.datasets
            for row in convert_arrow_bytes_to_pandas_df(named.data.data).to_dict("records")]


def heatmap_labels(at, title: str) -> list[str]:
    """The cells' labels, row by row (the chart's first layer draws every cell)."""
    rows = [r for r in chart_rows(at, title) if "label" in r]
    cells = {(r["row_order"], r["column_order"]): r["label"] for r in rows}
    return [cells[k] for k in sorted(cells)]


def cnn_link(seed: int) -> dict[str, str]:
    base = RunConfig(model="cnn", padding=0, train_size=200, test_size=100, epochs=1, seed=seed)
    return to_query_params(make_grid(make_comparison(base, "kernel_size", "3, 28"), "stride", "1, 2"))


def test_a_cnn_grid_names_the_pairs_that_cannot_work_draws_heatmaps_and_a_rows_curves():
    at = open_page("app_pages/cnn.py", query=cnn_link(seed=41))
    assert at.selectbox(key="cnn.cfg.param2").value == "stride" and at.text_input(key="cnn.cfg.values2").value == "1, 2"
    [error] = at.error
    assert "filter size × stride = 28 × 1, 28 × 2" in error.value and "This CNN cannot work" in error.value
    assert metric(at, "Runs") == "2"
    assert heatmap_labels(at, "Final test accuracy over the grid") == ["not trained yet"] * 2 + ["cannot work"] * 2
    assert not job_ids(at)  # a link trains nothing by itself

    run_and_wait(at, "cnn")
    accuracy = heatmap_labels(at, "Final test accuracy over the grid")
    assert all(re.fullmatch(r"\d+\.\d%", label) for label in accuracy[:2]) and accuracy[2:] == ["cannot work"] * 2
    assert all(label.endswith(" s") for label in heatmap_labels(at, "Seconds per epoch over the grid")[:2])
    reasons = [r["reason"] for r in chart_rows(at, "Final test accuracy over the grid") if r["status"] == "invalid"]
    assert reasons and all("This CNN cannot work" in r for r in reasons)  # each grey cell's tooltip gives its reason

    # the first row (filter 3) along the stride: today's comparison, its lines named by the stride
    assert at.selectbox(key="cnn.grid.pick").value == "row:0"
    assert sorted({row["series"] for row in chart_rows(at, "Train loss")}) == ["1", "2"]
    at.selectbox(key="cnn.grid.pick").set_value("column:1").run()  # stride 2 along the filter size: 28 cannot run
    assert not at.exception
    assert next(df.value for df in at.dataframe if "s_per_epoch" in df.value.columns)["value"].tolist() == ["3"]


def test_an_lr_batch_grid_ends_its_note_with_the_students_grid_and_its_link_brings_it_back():
    at = open_page("app_pages/mlp.py")
    at.text_input(key="mlp.cfg.train_size").set_value("300")
    at.text_input(key="mlp.cfg.test_size").set_value("100")
    at.text_input(key="mlp.cfg.epochs").set_value("1")
    at.text_input(key="mlp.cfg.seed").set_value("42")
    at.text_input(key="mlp.cfg.values").set_value("0.01, 0.001")
    at.selectbox(key="mlp.cfg.param2").set_value("batch_size").run()
    assert at.text_input(key="mlp.cfg.values2").value == "10, 30, 100, 1000"  # the batch sizes a comparison starts from
    at.text_input(key="mlp.cfg.values2").set_value("30, 300").run()
    assert metric(at, "Runs") == "4"
    link = {k: v if isinstance(v, str) else v[-1] for k, v in at.query_params.items()}
    assert link["compare"] == "lr" and link["compare2"] == "batch_size" and link["values2"] == "30, 300"
    run_and_wait(at)
    note = next(e for e in at.expander if e.label == "Concept: Learning rate and batch size")
    text = " ".join(m.value for m in note.markdown)
    assert "Best learning rate per batch size in your grid: batch 30: lr " in text and "batch 300: lr " in text

    classmate = open_page("app_pages/mlp.py", query=link)
    assert classmate.selectbox(key="mlp.cfg.param2").value == "batch_size"
    assert metric(classmate, "Already cached") == "4 of 4"
    assert "Final test accuracy over the grid" in titles(classmate)


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_crafted_compare2_and_values2_reach_the_page_only_as_literal_text(lang):
    base = to_query_params(make_grid(make_comparison(RunConfig(), "lr", "0.1"), "batch_size", "100"))
    for name, value in [("values2", LINK), ("values2", IMAGE), ("compare2", LINK),
                        ("values2", "**bold** :red[red] <b>html</b>")]:
        at = open_page("app_pages/mlp.py", query={**base, name: value, "lang": lang})
        shown = markdown_given(at)
        assert any(markdown_literal(value) in text for text in shown), (name, value, shown)
        for text in shown:
            text = re.sub(r"(`+)(?!`).*?(?<!`)\1(?!`)", "", text)  # code spans show their text as it is
            for raw in (LINK, IMAGE, "](http", "**bold**", ":red[", "<b>"):
                assert raw not in text, f"{name}={value!r} reached the page as Markdown: {text!r}"


def test_a_bad_second_hyperparameter_in_a_link_is_a_translated_message():
    link = {**cnn_link(seed=43), "compare2": "kernel_size", "lang": "ko"}
    at = open_page("app_pages/cnn.py", query=link)
    assert any("두 번째 하이퍼파라미터는 첫 번째(필터 크기)와 달라야 합니다." in e.value for e in at.error), \
        [e.value for e in at.error]


def test_the_korean_grid_page_reads_korean():
    at = open_page("app_pages/cnn.py", query={**cnn_link(seed=41), "lang": "ko"})
    assert at.selectbox(key="cnn.cfg.param2").label == "두 번째 하이퍼파라미터 (선택)"
    assert "그리드의 최종 테스트 정확도" in titles(at)
    labels = heatmap_labels(at, "그리드의 최종 테스트 정확도")
    assert "동작 불가" in labels
    assert any("이 CNN은 동작할 수 없습니다" in e.value for e in at.error)
