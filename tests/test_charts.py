"""The chart builders, checked on their Vega-Lite spec: no browser needed."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mnist_core.charts import (accuracy_domain, accuracy_format, confusion_chart, final_accuracy_chart, metric_chart,
                               probability_chart, timing_chart)
from mnist_core.evaluate import confusion_table, probability_table


def metrics(diverged: bool = False) -> pd.DataFrame:
    rows = []
    for order, (value, losses) in enumerate([("0.1", [250.0, 40.0, 2.3]), ("0.001", [120.0, 8.0, 0.2])]):
        status = "diverged" if diverged and value == "0.1" else "ok"
        series = f"{value} (diverged at epoch 4)" if status == "diverged" else value
        for epoch, loss in enumerate(losses, 1):
            rows.append({"value": value, "series": series, "order": order, "epoch": epoch, "train_loss": loss,
                         "train_acc": 0.5, "test_loss": loss, "test_acc": 0.5 + 0.1 * epoch, "seconds": 1.0,
                         "status": status})
    return pd.DataFrame(rows)


def layers(spec: dict) -> list[dict]:
    return spec.get("layer", [spec])


def rows(spec: dict, chart: dict | None = None) -> list[dict]:
    name = (chart or spec).get("data", spec.get("data", {})).get("name")
    return spec["datasets"][name]


def test_loss_chart_draws_a_line_per_value_in_the_compared_order():
    spec = metric_chart(metrics(), "train_loss", legend_title="learning rate").to_dict()
    line = layers(spec)[0]
    assert line["mark"]["type"] == "line"
    enc = line["encoding"]
    assert enc["x"]["field"] == "epoch" and enc["y"]["field"] == "train_loss"
    assert enc["color"]["field"] == "series" and enc["color"]["sort"] == ["0.1", "0.001"]
    assert enc["color"]["title"] == "learning rate"
    assert [t["field"] for t in enc["tooltip"]] == ["series", "epoch", "train_loss"]
    assert enc["y"]["scale"].get("type") is None
    assert len(rows(spec)) == 6


def test_the_log_toggle_sets_a_log_scale_on_losses_only():
    loss = layers(metric_chart(metrics(), "test_loss", log_scale=True).to_dict())[0]
    assert loss["encoding"]["y"]["scale"]["type"] == "log"
    accuracy = layers(metric_chart(metrics(), "test_acc", log_scale=True).to_dict())[0]
    assert accuracy["encoding"]["y"]["scale"].get("type") is None
    assert accuracy["encoding"]["y"]["axis"]["format"] == ".0%"


def test_a_loss_axis_with_one_epoch_reads_a_short_number():
    import vl_convert as vlc
    one = metrics().query("epoch == 1 and value == '0.001'").assign(train_loss=0.811416)  # the live chart's first epoch
    svg = vlc.vegalite_to_svg(metric_chart(one, "train_loss").properties(width=300).to_dict())
    assert ">0.811<" in svg and "0.811416" not in svg


def test_a_diverged_run_ends_in_a_labelled_cross():
    spec = metric_chart(metrics(diverged=True), "train_loss").to_dict()
    marks = [layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"] for layer in spec["layer"]]
    assert marks == ["line", "point", "text"]
    cross = spec["layer"][1]
    assert cross["mark"]["shape"] == "cross"
    end = rows(spec, cross)
    assert len(end) == 1 and end[0]["epoch"] == 3 and end[0]["series"] == "0.1 (diverged at epoch 4)"
    assert spec["layer"][2]["encoding"]["text"]["value"] == "diverged"


def test_unknown_metric_is_refused():
    with pytest.raises(ValueError, match="unknown metric"):
        metric_chart(metrics(), "f1")


def finals(accuracies=(0.97, 0.95)) -> pd.DataFrame:
    n = len(accuracies)
    values = [str(10 ** (i + 1)) for i in range(n)]  # batch sizes 10, 100, ...
    return pd.DataFrame({"value": values, "series": values, "order": list(range(n)), "status": ["ok"] * n,
                         "epochs": [15] * n, "test_acc": list(accuracies), "test_loss": [0.1] * n,
                         "train_loss": [0.1] * n})


def test_final_accuracy_bars_keep_the_order_on_an_axis_fitted_to_the_accuracies():
    spec = final_accuracy_chart(finals(), legend_title="batch size").to_dict()
    bars, labels = spec["layer"]
    assert bars["mark"]["type"] == "bar" and bars["mark"]["clip"] is True  # bars start at the axis' lower end
    assert bars["encoding"]["x"]["sort"] == ["10", "100"]
    y = bars["encoding"]["y"]
    low, high = y["scale"]["domain"]
    # 95% and 97% on a 0-100% axis look the same; on this one the difference is most of the height
    assert y["field"] == "test_acc" and 0.9 < low < 0.95 and 0.97 <= high <= 1.0
    assert (0.97 - 0.95) / (high - low) > 0.25
    assert labels["encoding"]["text"]["format"] == ".1%"
    assert "tooltip" in bars["encoding"] and "tooltip" in labels["encoding"]


def test_an_accuracy_axis_spans_what_the_runs_reached():
    assert accuracy_domain([0.95, 0.98]) == [0.93, 0.99]
    assert accuracy_domain([0.1, 0.98]) == [0.0, 1.0]  # a run that learnt nothing: the whole range
    assert accuracy_domain([0.999, 1.0])[1] == 1.0  # never past 100%
    assert accuracy_domain([float("nan")]) == [0.0, 1.0]
    # a narrow axis gets a decimal, or every tick would read "97%"
    assert accuracy_format(accuracy_domain([0.971, 0.973])) == ".1~%"
    assert accuracy_format(accuracy_domain([0.5, 0.9])) == ".0%"


def test_the_test_accuracy_lines_are_fitted_to_the_data_with_several_ticks():
    frame = metrics()  # test accuracy 0.6, 0.7, 0.8
    line = layers(metric_chart(frame, "test_acc").to_dict())[0]
    low, high = line["encoding"]["y"]["scale"]["domain"]
    assert 0.4 < low < 0.6 and 0.8 <= high <= 1.0
    assert line["encoding"]["y"]["axis"]["tickCount"] >= 4


@pytest.mark.parametrize("build", [
    lambda: metric_chart(metrics(), "train_loss"), lambda: metric_chart(metrics(diverged=True), "test_acc"),
    lambda: final_accuracy_chart(finals()),
], ids=["loss", "accuracy-diverged", "final"])
def test_charts_are_tall_with_the_legend_beside_the_plot_and_a_tooltip_on_every_point(build):
    spec = build().to_dict()
    assert spec["height"] >= 260  # the whole chart; the plot area was ~60 px when legends sat underneath
    drawn = layers(spec)
    colors = [layer["encoding"]["color"] for layer in drawn if "color" in layer.get("encoding", {})]
    legends = [color["legend"] for color in colors if "legend" in color]
    assert legends and all(legend["orient"] == "right" for legend in legends)
    for layer in drawn:
        mark = layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"]
        if mark in ("line", "bar", "point"):
            assert layer["encoding"]["tooltip"], mark
        if mark == "line":
            assert layer["mark"]["point"]  # the tooltips hang on a point at every epoch


def test_timing_bars_show_seconds_per_epoch():
    timing = pd.DataFrame({"value": ["10", "100"], "s_per_epoch": [9.0, 1.5], "steps_per_epoch": [6000, 600],
                           "samples_per_s": [6667, 40000], "cached": [True, False]})
    spec = timing_chart(timing).to_dict()
    assert spec["mark"]["type"] == "bar" and spec["encoding"]["y"]["field"] == "s_per_epoch"
    assert [r["s_per_epoch"] for r in rows(spec)] == [9.0, 1.5]


def test_confusion_heatmap_has_100_cells_on_a_symlog_scale():
    counts = np.eye(10, dtype=int) * 980 + 2
    frame = confusion_table(counts)
    assert len(frame) == 100 and frame["count"].sum() == counts.sum()
    assert frame.query("true == 3 and predicted == 3")["count"].item() == 982
    spec = confusion_chart(frame).to_dict()
    cells = spec["layer"][0]
    assert cells["mark"]["type"] == "rect"
    assert cells["encoding"]["color"]["scale"]["type"] == "symlog"
    assert {cells["encoding"]["x"]["field"], cells["encoding"]["y"]["field"]} == {"predicted", "true"}
    assert spec["width"] == "container"  # as wide as the page's column, however wide


def test_probability_bars_highlight_the_predicted_digit():
    probs = np.full(10, 0.02)
    probs[7] = 0.82
    spec = probability_chart(probability_table(probs)).to_dict()
    assert len(rows(spec)) == 10
    bars, labels = spec["layer"]
    assert bars["encoding"]["color"]["condition"]["test"] == "(datum.digit === 7)"
    assert bars["encoding"]["x"]["scale"]["domain"] == [0, 1]
    assert spec["height"] >= 200


def test_probability_chart_labels_every_digit_and_writes_each_probability():
    probs = np.zeros(10)
    probs[3] = 1.0  # the seed's init: "100% sure"
    spec = probability_chart(probability_table(probs)).to_dict()
    bars, labels = spec["layer"]
    digit = bars["encoding"]["y"]  # one row per digit: ten labels fit a narrow column
    assert digit["field"] == "digit" and digit["scale"]["domain"] == list(range(10))
    assert digit["axis"]["values"] == list(range(10)) and digit["axis"]["labelOverlap"] is False
    assert labels["mark"]["type"] == "text" and labels["encoding"]["text"]["field"] == "label"
    assert "'<1%'" in labels["transform"][0]["calculate"]  # not a rounded "0%" beside the "100%"
    assert bars["encoding"]["tooltip"]


def test_every_value_keeps_its_colour_even_without_a_line():
    # 0.05 diverged in its first epoch: no rows, but the bar chart shows it, so the lines must not
    # shift colours by leaving it out of the scale.
    frame = pd.DataFrame({"series": ["0.001", "0.001"], "epoch": [1, 2], "train_loss": [0.5, 0.3],
                          "status": ["ok", "ok"], "order": [1, 1]})
    spec = metric_chart(frame, "train_loss", series=["0.05 (diverged at epoch 1)", "0.001"]).to_dict()
    assert spec["encoding"]["color"]["scale"]["domain"] == ["0.05 (diverged at epoch 1)", "0.001"]
