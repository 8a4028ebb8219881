"""Altair charts for the app: a tidy DataFrame in, a chart out. No Streamlit here, so the tests can
check each chart's spec (encodings, scales, rows) without a browser.

The frames come from mnist_core.compare (per-epoch metrics, final accuracy, timing) and
mnist_core.evaluate (confusion matrix, probabilities). Every comparison chart colours its lines or
bars by the compared value in the order the student typed them, so one value keeps one colour.

Streamlit fits a chart's whole drawing (title, axes, legend) into the height given here, so the
legends stand beside the plot, not under it, and HEIGHT leaves a plot area that shows the curves.
Accuracies span a few points after the first epochs: their axes start just below the lowest value,
not at zero, so 96% and 98% do not look the same.
"""
from __future__ import annotations

import json
import math

from typing import Callable

import altair as alt
import pandas as pd

from .i18n import N_

# Titles are English, marked for translation; every builder takes `text`, the page's translator
# (`i18n.Translator`, or any str -> str), and shows them through it. The default keeps them English.
METRIC_TITLES = {
    "train_loss": N_("Train loss"),
    "test_loss": N_("Test loss"),
    "train_acc": N_("Train accuracy"),
    "test_acc": N_("Test accuracy"),
}
LOG_TITLES = {"train_loss": N_("Train loss (log scale)"), "test_loss": N_("Test loss (log scale)")}
Text = Callable[[str], str]


def _same(message: str) -> str:
    return message

ACCURACY_METRICS = ("train_acc", "test_acc")
HEIGHT = 300  # the whole chart; the plot area is about 220 px of it
CONFUSION_HEIGHT = 420
PROBABILITY_HEIGHT = 260  # ten rows of about 20 px: every digit label readable
SCHEME = "tableau10"  # ten clearly different colours; the default blues make 0.1 and 0.01 look alike


def series_order(frame: pd.DataFrame, column: str = "series") -> list[str]:
    """The legend's order: the order the values were compared in, not alphabetical."""
    if "order" in frame:
        frame = frame.sort_values("order", kind="stable")
    return list(dict.fromkeys(frame[column].tolist()))


def accuracy_domain(values) -> list[float]:
    """A y range for accuracies that shows their differences: from a little below the lowest to a little
    above the highest, on whole percents, never outside [0, 1]."""
    values = [float(v) for v in values if v == v]  # NaN: a run without a result
    if not values:
        return [0.0, 1.0]
    low, high = min(values), max(values)
    margin = max(high - low, 0.02) / 2
    return [max(0.0, math.floor((low - margin) * 100) / 100), min(1.0, math.ceil((high + margin / 2) * 100) / 100)]


def accuracy_format(domain: list[float]) -> str:
    """Whole percents unless the axis spans so few that its ticks would all read the same."""
    return ".0%" if domain[1] - domain[0] >= 0.05 else ".1~%"  # ~: 97%, 97.5%, not 97.0%


def _color(frame: pd.DataFrame, title: str, series: list[str] | None = None) -> alt.Color:
    domain = series or series_order(frame)
    return alt.Color("series:N", title=title, sort=domain,
                     scale=alt.Scale(domain=domain, scheme=SCHEME), legend=alt.Legend(orient="right"))


def metric_chart(frame: pd.DataFrame, metric: str, *, log_scale: bool = False, legend_title: str = "value",
                 series: list[str] | None = None, text: Text = _same) -> alt.Chart:
    """One line per compared value over epochs. A diverged run ends in a red cross where it stopped.

    `series`: every compared value, in order, so each keeps its colour even if some have no line
    (a run that diverged in its first epoch) and the other charts show them."""
    if metric not in METRIC_TITLES:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRIC_TITLES)}")
    is_accuracy = metric in ACCURACY_METRICS
    # A log scale cannot show 0 or less; the seed's normal(0, 1) init starts losses in the hundreds, and
    # only a log axis shows both that and the later 0.05s.
    if is_accuracy:
        domain = accuracy_domain(frame[metric]) if metric in frame else [0.0, 1.0]
        scale, axis = alt.Scale(domain=domain, clamp=True), alt.Axis(format=accuracy_format(domain), tickCount=5)
    else:
        scale = alt.Scale(type="log") if log_scale else alt.Scale(zero=False)
        axis = alt.Axis(format=".3~r", tickCount=5)  # one epoch's tick reads 0.811, not 0.811416; 2000, not 2e+3
    y = alt.Y(f"{metric}:Q", title=text(METRIC_TITLES[metric]), scale=scale, axis=axis)
    x = alt.X("epoch:Q", title=text(N_("epoch")), axis=alt.Axis(tickMinStep=1, format="d"))
    tooltip = [alt.Tooltip("series:N", title=legend_title), alt.Tooltip("epoch:Q", title=text(N_("epoch"))),
               alt.Tooltip(f"{metric}:Q", title=text(METRIC_TITLES[metric]), format=".2%" if is_accuracy else ".4f")]
    base = alt.Chart(frame).encode(x=x, y=y, color=_color(frame, legend_title, series), tooltip=tooltip)
    lines = base.mark_line(point=alt.OverlayMarkDef(size=30), strokeWidth=2)
    layers = [lines]
    diverged = frame[frame["status"] == "diverged"] if "status" in frame else frame.iloc[0:0]
    if len(diverged):
        ends = diverged.sort_values("epoch").groupby("series", as_index=False).tail(1)
        layers.append(alt.Chart(ends).mark_point(shape="cross", size=160, color="#d62728", filled=True)
                      .encode(x=x, y=y, tooltip=tooltip))
        layers.append(alt.Chart(ends).mark_text(align="left", dx=8, dy=-8, color="#d62728")
                      .encode(x=x, y=y, text=alt.value(text(N_("diverged")))))
    chart = alt.layer(*layers) if len(layers) > 1 else lines
    title = LOG_TITLES[metric] if log_scale and not is_accuracy else METRIC_TITLES[metric]
    return chart.properties(title=text(title), height=HEIGHT)


def final_accuracy_chart(frame: pd.DataFrame, legend_title: str = "value", text: Text = _same) -> alt.Chart:
    """A bar per compared value: final test accuracy, labelled in percent on the bar."""
    order = series_order(frame, "value")
    x = alt.X("value:N", title=legend_title, sort=order, axis=alt.Axis(labelAngle=0))
    domain = accuracy_domain(frame["test_acc"]) if "test_acc" in frame else [0.0, 1.0]
    # The bars start at the axis' lower end, not at zero (clip keeps them inside the plot): the
    # differences between 95% and 98% are what the student came to see.
    y = alt.Y("test_acc:Q", title=text(N_("test accuracy")), scale=alt.Scale(domain=domain, clamp=True),
              axis=alt.Axis(format=accuracy_format(domain), tickCount=5))
    tooltip = [alt.Tooltip("series:N", title=legend_title),
               alt.Tooltip("test_acc:Q", title=text(N_("test accuracy")), format=".2%"),
               alt.Tooltip("epochs:Q", title=text(N_("epochs"))), alt.Tooltip("status:N", title=text(N_("status")))]
    base = alt.Chart(frame).encode(x=x, y=y, tooltip=tooltip)
    bars = base.mark_bar(clip=True).encode(color=_color(frame, legend_title))
    labels = base.mark_text(dy=-8).encode(text=alt.Text("test_acc:Q", format=".1%"))
    return alt.layer(bars, labels).properties(title=text(N_("Final test accuracy")), height=HEIGHT)


def timing_chart(frame: pd.DataFrame, legend_title: str = "value", text: Text = _same) -> alt.Chart:
    """Seconds per epoch for each value: the batch-size finding (small batches are slow) at a glance."""
    order = series_order(frame, "value")
    chart = alt.Chart(frame.assign(series=frame["value"])).mark_bar().encode(
        x=alt.X("value:N", title=legend_title, sort=order, axis=alt.Axis(labelAngle=0)),
        y=alt.Y("s_per_epoch:Q", title=text(N_("Seconds per epoch"))),
        color=alt.Color("series:N", sort=order, scale=alt.Scale(domain=order, scheme=SCHEME), legend=None),
        tooltip=[alt.Tooltip("value:N", title=legend_title), alt.Tooltip("s_per_epoch:Q", title=text(N_("s/epoch"))),
                 alt.Tooltip("steps_per_epoch:Q", title=text(N_("steps/epoch"))),
                 alt.Tooltip("samples_per_s:Q", title=text(N_("images/s")))])
    return chart.properties(title=text(N_("Time per epoch (when it was trained)")), height=HEIGHT)


def confusion_chart(frame: pd.DataFrame, classes: list[str] | None = None, text: Text = _same) -> alt.Chart:
    """A heatmap of counts[true, predicted]. The colour scale is symlog, so a handful of mistakes
    still shows next to the diagonal's thousand correct answers. `classes`: the names shown for
    0-9 (Fashion-MNIST's clothes, already translated); digits when not given."""
    if classes is not None:
        names = dict(enumerate(classes))
        frame = frame.assign(true=frame["true"].map(names), predicted=frame["predicted"].map(names))
    order = list(classes) if classes is not None else None
    # Class names are long: slanted, every one shown (Vega would otherwise drop the ones that overlap), each
    # beside its own column (anchored at its end, so neighbours do not run into each other).
    long_names = max(map(len, order or ["0"])) > 2
    x = alt.X("predicted:O", title=text(N_("Predicted class")), sort=order,
              axis=alt.Axis(labelAngle=-45 if long_names else 0, labelAlign="left" if long_names else "center",
                            orient="top", labelOverlap=False, labelLimit=110))
    y = alt.Y("true:O", title=text(N_("True class")), sort=order)
    base = alt.Chart(frame).encode(x=x, y=y)
    cells = base.mark_rect().encode(
        color=alt.Color("count:Q", title=text(N_("test images")), scale=alt.Scale(type="symlog", scheme="blues"),
                        legend=None),  # every cell writes its count: the matrix takes the legend's room
        tooltip=[alt.Tooltip("true:O", title=text(N_("True class"))),
                 alt.Tooltip("predicted:O", title=text(N_("Predicted class"))),
                 alt.Tooltip("count:Q", title=text(N_("test images")))])
    threshold = max(float(frame["count"].max()) / 4, 1.0) if len(frame) else 1.0
    counts = base.mark_text(fontSize=11).encode(
        text=alt.Text("count:Q"),
        color=alt.condition(alt.datum.count > threshold, alt.value("white"), alt.value("#333")))
    # As wide as its column (a discrete axis would otherwise take 20 px a class, small in a wide column).
    return alt.layer(cells, counts).properties(title=text(N_("Confusion matrix (test set)")), width="container",
                                               height=CONFUSION_HEIGHT)


def probability_chart(frame: pd.DataFrame, title: str = "", classes: list[str] | tuple[str, ...] | None = None,
                      text: Text = _same) -> alt.Chart:
    """A bar per class 0-9 with the model's softmax probability written beside it; the predicted class
    stands out. Bars lie on their side, one row per class, so all ten labels fit a narrow column, and
    "100% sure" reads as one full bar and nine empty ones. `classes`: the names shown for 0-9
    (Fashion-MNIST's clothes, already translated); digits when not given."""
    top = int(frame.loc[frame["probability"].idxmax(), "digit"]) if len(frame) else -1
    digits = list(range(10))
    names = [str(c) for c in classes] if classes is not None else [str(d) for d in digits]
    frame = frame.assign(name=frame["digit"].map(dict(enumerate(names))))
    axis = alt.Axis(values=digits, labelOverlap=False, labelFontSize=12, ticks=False, labelLimit=120)
    if classes is not None:  # the class's name beside its row; the field stays the index 0-9
        axis = alt.Axis(values=digits, labelOverlap=False, labelFontSize=12, ticks=False, labelLimit=120,
                        labelExpr=f"{json.dumps(names, ensure_ascii=False)}[datum.value]")
    base = alt.Chart(frame).encode(
        y=alt.Y("digit:O", title=None, scale=alt.Scale(domain=digits), axis=axis),
        x=alt.X("probability:Q", title=None, scale=alt.Scale(domain=[0, 1]),
                axis=alt.Axis(format=".0%", values=[0, 0.5, 1], grid=True)),
        tooltip=[alt.Tooltip("name:N", title=text(N_("class"))),
                 alt.Tooltip("probability:Q", title=text(N_("probability")), format=".2%")])
    bars = base.mark_bar().encode(color=alt.condition(alt.datum.digit == top, alt.value("#e45756"), alt.value("#9ecae9")))
    # "<1%" rather than a rounded "0%" beside a "100%": the model is never exactly certain.
    labels = base.transform_calculate(
        label="datum.probability < 0.005 ? '<1%' : format(datum.probability, '.0%')",
    ).mark_text(align="left", dx=3, fontSize=10).encode(text="label:N")
    return alt.layer(bars, labels).properties(title=title, height=PROBABILITY_HEIGHT)


GRID_CELL = 44  # px per heatmap row
GRID_FRAME = 120  # the title and the top axis with its title: Streamlit fits the whole drawing into the height


def grid_heatmap(frame: pd.DataFrame, title: str, row_title: str, column_title: str, *, percent: bool = True,
                 text: Text = _same) -> alt.Chart:
    """A grid of runs as a heatmap: one cell per pair of values, coloured by `value` and labelled with `label`
    (grid.heatmap_frame: the number written out, or why there is none). Cells without a value (a pair that
    cannot work, a run not trained yet) are grey, their label says why and their tooltip gives the reason."""
    rows, columns = series_order(frame.assign(order=frame["row_order"]), "row"), \
        series_order(frame.assign(order=frame["column_order"]), "column")
    x = alt.X("column:N", title=column_title, sort=columns, axis=alt.Axis(labelAngle=0, orient="top"))
    y = alt.Y("row:N", title=row_title, sort=rows)
    tooltip = [alt.Tooltip("row:N", title=row_title), alt.Tooltip("column:N", title=column_title),
               alt.Tooltip("label:N", title=title), alt.Tooltip("reason:N", title=text(N_("why")))]
    base = alt.Chart(frame).encode(x=x, y=y, tooltip=tooltip)
    empty = base.mark_rect(color="#e8e8e8", stroke="white", strokeWidth=2)
    valued = frame[frame["value"].notna()]
    low, high = (float(valued["value"].min()), float(valued["value"].max())) if len(valued) else (0.0, 1.0)
    # Accuracy: darker is better. Time: darker is slower.
    colour = alt.Color("value:Q", title=title, legend=None,
                       scale=alt.Scale(scheme="blues" if percent else "oranges", domain=[low, high] if high > low
                                       else [low - 1e-9, high + 1e-9]))
    cells = alt.Chart(valued).encode(x=x, y=y, tooltip=tooltip).mark_rect(stroke="white", strokeWidth=2) \
        .encode(color=colour)
    middle = (low + high) / 2
    labels = base.mark_text(fontSize=12, lineBreak="\n").encode(
        text="label:N",
        color=alt.condition(f"isValid(datum.value) && datum.value > {middle}", alt.value("white"),
                            alt.value("#333")))
    return alt.layer(empty, cells, labels).properties(title=title, width="container",
                                                       height=GRID_FRAME + GRID_CELL * max(len(rows), 1))
