"""Every run of the class on one page: the Explore page's logic, without Streamlit.

The run cache's headers (RunCache.list(), no weights) become one row per run: model, dataset, every
hyperparameter, final and best test accuracy and what it was measured on, epochs, time, where and when it
trained. Runs carry no owner, and nothing here adds one. The rows filter by any column's values and by an
accuracy range; the charts are Altair builders: parallel coordinates (one axis per hyperparameter that
varies among the runs, the last one the accuracy, a line per run coloured by its accuracy; categorical
values placed evenly along their axis and labelled) and a scatter of one hyperparameter against accuracy
(a log axis where its values span decades, as learning rates do). Links open a run's comparison on the
MLP/CNN page, or put the run on the Draw page.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence
from urllib.parse import urlencode

import altair as alt
import numpy as np
import pandas as pd

from .charts import accuracy_domain, accuracy_format
from .compare import Comparison, machine_label, to_query_params, value_label
from .config import MNIST_TEST_SIZE, RunConfig, label
from .data import DATASETS
from .i18n import N_, Translator
from .results import RunResult

# Every setting of a run but its model, dataset and device, in the order the MLP/CNN pages show them.
HYPERPARAMETERS = ("hidden", "activations", "init", "kernel_size", "stride", "padding", "conv_layers", "keep_prob",
                   "optimizer", "lr", "momentum", "epochs", "batch_size", "train_size", "test_size", "seed",
                   "precision")
ONLY_FOR = {"hidden": "mlp", "activations": "mlp", "init": "mlp", "kernel_size": "cnn", "stride": "cnn",
            "padding": "cnn", "conv_layers": "cnn", "keep_prob": "cnn"}  # blank for the other model's runs
FILTERABLE = ("model", "dataset", *HYPERPARAMETERS)
ACCURACY = "final_acc"
SORTS = {"final_acc": N_("final test accuracy, best first"), "created": N_("newest first"),
         "seconds": N_("training time, shortest first")}
DECADES = 100     # values whose largest is this many times the smallest get a log axis (lr 0.1 ... 0.0001)
MAX_TICKS = 8     # an axis with more values than this labels a few evenly spaced ones
PARALLEL_HEIGHT = 340


def runs_frame(runs: Iterable[RunResult], text: Translator | None = None) -> pd.DataFrame:
    """One row per run (metrics only: no weights are read). Settings that the run's model does not have
    are blank. `model_name`, `dataset_name`, `trained_on` and `measured_on` are for reading, in the language of
    `text`; `open` and `draw` are the run's links to its comparison and to the Draw page."""
    text = text or Translator("en")
    measured: dict[int, str] = {}  # Babel is slow enough to matter 1,000 times over; a class has few test sizes
    rows = []
    for run in runs:
        config, accs = run.config, [m.test_acc for m in run.epochs]
        best = int(np.argmax(accs)) if accs else None
        row: dict[str, Any] = {"key": run.key, "model": config.model, "dataset": config.dataset,
                               "model_name": config.model.upper(), "dataset_name": DATASETS[config.dataset].title}
        for name in HYPERPARAMETERS:
            value = getattr(config, name) if ONLY_FOR.get(name, config.model) == config.model else None
            row[name] = value_label(value) if name == "activations" and value else value
        if config.test_size not in measured:
            measured[config.test_size] = measured_on_text(config.test_size, text)
        row.update(final_acc=accs[-1] if accs else math.nan, best_acc=accs[best] if accs else math.nan,
                   best_epoch=best + 1 if accs else None, measured_on=measured[config.test_size],
                   epochs_trained=len(accs), seconds=run.total_seconds, status=run.status,
                   trained_on=machine_label(run.machine, run.device, text),
                   created=pd.Timestamp(run.created, unit="s", tz="UTC"), open=comparison_url(config, text.lang),
                   draw=draw_url(run.key, text.lang))
        rows.append(row)
    frame = pd.DataFrame(rows, columns=["key", "model", "dataset", "model_name", "dataset_name", *HYPERPARAMETERS,
                                        "final_acc", "best_acc", "best_epoch", "measured_on", "epochs_trained",
                                        "seconds", "status", "trained_on", "created", "open", "draw"])
    for name in ("hidden", "kernel_size", "stride", "padding", "epochs", "batch_size", "train_size", "test_size",
                 "seed", "best_epoch"):
        frame[name] = frame[name].astype("Int64")  # whole numbers stay whole where the other model's runs are blank
    return frame


def measured_on_text(test_size: int, text: Translator) -> str:
    """What a test accuracy was measured on (config.measured_on), in the student's language."""
    if test_size >= MNIST_TEST_SIZE:
        return text(N_("all {n} test images"), n=text.number(MNIST_TEST_SIZE))
    return text(N_("a fixed balanced sample of {n} test images"), n=text.number(test_size))


def value_text(value: Any) -> str:
    """A cell's value as the filters and the chart labels write it ('' for a blank)."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    return value_label(value.item() if isinstance(value, np.generic) else value)


def _distinct(column: pd.Series) -> list:
    return sorted(column.dropna().unique().tolist())


def varying(frame: pd.DataFrame, fields: Sequence[str] = FILTERABLE) -> list[str]:
    """The fields with more than one value among the rows, in the order given."""
    return [f for f in fields if frame[f].nunique(dropna=True) > 1]


def choices(frame: pd.DataFrame) -> dict[str, list[str]]:
    """Per field that varies among the runs, its values as the filters offer them, in their natural order."""
    return {f: [value_text(v) for v in _distinct(frame[f])] for f in varying(frame)}


def filter_runs(frame: pd.DataFrame, chosen: Mapping[str, Sequence[str]],
                accuracy: tuple[float, float] = (0.0, 1.0)) -> pd.DataFrame:
    """The rows whose value of each field is one of those chosen for it (nothing chosen: any value) and
    whose final test accuracy is in `accuracy` (the whole range keeps runs without an accuracy too)."""
    keep = pd.Series(True, index=frame.index)
    for field, values in chosen.items():
        if values:
            keep &= frame[field].map(value_text).isin(set(values))
    if tuple(accuracy) != (0.0, 1.0):
        keep &= frame[ACCURACY].between(*accuracy)
    return frame[keep]


def sort_runs(frame: pd.DataFrame, by: str) -> pd.DataFrame:
    return frame.sort_values([by, "created"], ascending=[by == "seconds", False], na_position="last", kind="stable")


def best_of_class(frame: pd.DataFrame) -> pd.DataFrame:
    """The run with the highest final test accuracy per model and dataset (the first to reach it on a tie)."""
    finished = frame[(frame["status"] == "ok") & frame[ACCURACY].notna()]
    ranked = finished.sort_values([ACCURACY, "created"], ascending=[False, True], kind="stable")
    return ranked.drop_duplicates(["model", "dataset"]).sort_values(["model", "dataset"], ascending=[False, True])


# -- links ------------------------------------------------------------------------------------------

def comparison_params(config: RunConfig, lang: str = "en") -> dict[str, str]:
    """The MLP/CNN page's link parameters showing this run (compared by learning rate, with its one value)."""
    params = to_query_params(Comparison(config, "lr", (config.lr,)))
    if lang != "en":
        params["lang"] = lang
    return params


def comparison_url(config: RunConfig, lang: str = "en") -> str:
    return f"./{config.model}?{urlencode(comparison_params(config, lang))}"


def draw_params(key: str, lang: str = "en") -> dict[str, str]:
    """The Draw page's link parameters that put this run first among the models it asks."""
    return {"run": key, **({"lang": lang} if lang != "en" else {})}


def draw_url(key: str, lang: str = "en") -> str:
    return f"./draw?{urlencode(draw_params(key, lang))}"


# -- charts -----------------------------------------------------------------------------------------

def spans_decades(values: Iterable[Any]) -> bool:
    numbers = [float(v) for v in values]
    return bool(numbers) and min(numbers) > 0 and max(numbers) / min(numbers) >= DECADES


def _is_number(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


@dataclass(frozen=True)
class Axis:
    field: str
    title: str
    positions: dict[Any, float]  # each value of the runs -> its height on the axis, 0 to 1
    names: dict[Any, str]        # each value of the runs -> how it reads
    ticks: dict[float, str]      # height -> label written beside the axis


def _axis(field: str, column: pd.Series, text: Translator) -> Axis:
    values = _distinct(column)
    title = text(N_("test accuracy")) if field == ACCURACY else text(label(field))
    name = {"dataset": lambda d: DATASETS[d].title, ACCURACY: lambda a: f"{a:.1%}"}.get(field, value_text)
    names = {v: name(v) for v in values}
    if not _is_number(column):  # categories, evenly spaced in their order
        places = {v: i / max(len(values) - 1, 1) for i, v in enumerate(values)}
        return Axis(field, title, places, names, {p: names[v] for v, p in places.items()})
    log = spans_decades(values)
    scale = (lambda v: math.log10(v)) if log else (lambda v: float(v))
    low, high = scale(values[0]), scale(values[-1])
    place = (lambda v: (scale(v) - low) / (high - low)) if high > low else (lambda v: 0.5)
    places = {v: place(v) for v in values}
    if field == ACCURACY:
        ticks = {place(v): text.percent(v) for v in np.linspace(values[0], values[-1], 5)}
    elif len(values) <= MAX_TICKS:
        ticks = {p: names[v] for v, p in places.items()}
    else:
        ticks = {place(v): f"{v:.3g}" for v in (10 ** t if log else t for t in np.linspace(low, high, 5))}
    return Axis(field, title, places, names, ticks)


def parallel_axes(frame: pd.DataFrame, text: Translator | None = None) -> list[Axis]:
    """One axis per setting that varies among the runs with an accuracy (the dataset too, where both are
    there), then the final test accuracy."""
    text = text or Translator("en")
    runs = frame[frame[ACCURACY].notna()]
    return [_axis(f, runs[f], text) for f in (*varying(runs, ("dataset", *HYPERPARAMETERS)), ACCURACY)]


def parallel_chart(frame: pd.DataFrame, axes: list[Axis] | None = None, text: Translator | None = None,
                   title: str = "") -> alt.LayerChart:
    """Parallel coordinates of the runs (of one model: the other model's settings would leave gaps) on `axes`
    (parallel_axes' by default). The axes are the x axis' grid lines; their values are written beside them."""
    text = text or Translator("en")
    runs = frame[frame[ACCURACY].notna()]
    axes = axes or parallel_axes(runs, text)
    titles = [a.title for a in axes]
    lines = pd.DataFrame({
        "key": np.tile(runs["key"].to_numpy(dtype=object), len(axes)),
        "acc": np.tile(runs[ACCURACY].to_numpy(dtype=float), len(axes)),
        "axis": np.repeat(titles, len(runs)), "order": np.repeat(np.arange(len(axes)), len(runs)),
        "position": np.concatenate([runs[a.field].map(a.positions).to_numpy(dtype=float, na_value=math.nan)
                                    for a in axes]),
        "value": np.concatenate([runs[a.field].map(a.names).to_numpy(dtype=object) for a in axes]),
    }).dropna(subset=["position"])
    ticks = pd.DataFrame([{"axis": a.title, "position": p, "label": t} for a in axes for p, t in a.ticks.items()])
    x = alt.X("axis:N", title=None, sort=titles, scale=alt.Scale(domain=titles, padding=0.2),
              axis=alt.Axis(orient="top", labelAngle=0, labelFontSize=12, labelLimit=160, grid=True, gridColor="#888",
                            domain=False, ticks=False))
    y = alt.Y("position:Q", title=None, axis=None, scale=alt.Scale(domain=[-0.04, 1.04]))  # ends off the edges
    domain = accuracy_domain(runs[ACCURACY])
    drawn = alt.Chart(lines).mark_line(opacity=0.55, strokeWidth=1.5).encode(
        x=x, y=y, detail="key:N", order="order:Q",
        color=alt.Color("acc:Q", title=text(N_("test accuracy")), scale=alt.Scale(scheme="viridis", domain=domain),
                        legend=alt.Legend(format=accuracy_format(domain), orient="right")),
        tooltip=[alt.Tooltip("axis:N", title=text(N_("setting"))), alt.Tooltip("value:N", title=text(N_("value"))),
                 alt.Tooltip("acc:Q", title=text(N_("test accuracy")), format=".2%")])
    labels = alt.Chart(ticks).mark_text(align="left", dx=5, fontSize=11, color="#333").encode(x=x, y=y, text="label:N")
    return alt.layer(drawn, labels, title=title, height=PARALLEL_HEIGHT, config=alt.Config(view=alt.ViewConfig(stroke=None)))


def scatter_chart(frame: pd.DataFrame, field: str, text: Translator | None = None) -> alt.Chart:
    """One point per run: `field` across, final test accuracy up, coloured by model, shaped by dataset."""
    text = text or Translator("en")
    runs = frame[frame[ACCURACY].notna() & frame[field].notna()].assign(
        model_name=lambda f: f["model"].str.upper(), dataset_name=lambda f: f["dataset"].map(
            lambda d: DATASETS[d].title), shown=lambda f: f[field].map(value_text))
    title = text(label(field))
    if _is_number(runs[field]):
        log, values = spans_decades(runs[field]), _distinct(runs[field])
        x = alt.X(f"{field}:Q", title=title + (" " + text(N_("(log scale)")) if log else ""),
                  scale=alt.Scale(type="log") if log else alt.Scale(zero=False),
                  axis=alt.Axis(format="~g", values=values if len(values) <= MAX_TICKS else alt.Undefined))
        runs[field] = runs[field].astype(float)
    else:
        x = alt.X(f"{field}:N", title=title, sort=[value_text(v) for v in _distinct(runs[field])],
                  axis=alt.Axis(labelAngle=0))
    domain = accuracy_domain(runs[ACCURACY])
    return alt.Chart(runs).mark_point(filled=True, size=70, opacity=0.7).encode(
        x=x, y=alt.Y(f"{ACCURACY}:Q", title=text(N_("test accuracy")), scale=alt.Scale(domain=domain, clamp=True),
                     axis=alt.Axis(format=accuracy_format(domain))),
        color=alt.Color("model_name:N", title=text(N_("model")),
                        scale=alt.Scale(domain=["MLP", "CNN"], range=["#4c78a8", "#f58518"])),
        shape=alt.Shape("dataset_name:N", title=text(N_("dataset"))),
        tooltip=[alt.Tooltip("shown:N", title=title), alt.Tooltip(f"{ACCURACY}:Q", title=text(N_("test accuracy")),
                                                                  format=".2%"),
                 alt.Tooltip("model_name:N", title=text(N_("model"))), alt.Tooltip("dataset_name:N", title=text(N_("dataset")))],
    ).properties(height=320)
