"""Altair charts for the views inside the models: frames from mnist_core.explain in, charts out (no Streamlit).

A hidden layer's activation histogram marks the flat tails where a sigmoid saturates, so the seed's
sigmoid-vs-ReLU experiment shows why the sigmoid learns slower: most of its outputs sit where the
gradient is nearly zero. A share chart puts the runs' dead and saturated units side by side.
"""
from __future__ import annotations

from typing import Callable

import altair as alt
import pandas as pd

from .config import option_label
from .explain import SATURATION
from .i18n import N_

HEIGHT = 180
SHARE_TITLES = {"dead_units": N_("dead units (never positive)"),
                "saturated_units": N_("saturated units (always in a tail)"),
                "zero_fraction": N_("outputs exactly 0"), "saturated_fraction": N_("outputs in a flat tail")}
LAYER_NAMES = {"hidden1": N_("hidden layer 1"), "hidden2": N_("hidden layer 2")}  # an MLP's layers, on screen
Text = Callable[[str], str]  # a translator (i18n.Translator) or anything str -> str; English by default


def _same(message: str) -> str:
    return message


def activation_histogram_chart(frame: pd.DataFrame, title: str = "", text: Text = _same) -> alt.Chart:
    """One hidden layer's histogram, rows (start, end, share, activation); the saturated tails are shaded."""
    activation = str(frame["activation"].iloc[0]) if len(frame) else ""
    x = alt.X("start:Q", title=text(N_("output of {activation}")).format(activation=text(option_label(activation))),
              bin="binned")
    bars = alt.Chart(frame).mark_bar(color="#4c78a8").encode(
        x=x, x2="end:Q", y=alt.Y("share:Q", title=text(N_("share of outputs")), axis=alt.Axis(format=".0%")),
        tooltip=[alt.Tooltip("start:Q", title=text(N_("from")), format=".3f"),
                 alt.Tooltip("end:Q", title=text(N_("to")), format=".3f"),
                 alt.Tooltip("share:Q", title=text(N_("share of outputs")), format=".1%")])
    if activation not in SATURATION:
        return bars.properties(title=title, height=HEIGHT)
    low, high = SATURATION[activation]
    start, end = float(frame["start"].min()), float(frame["end"].max())
    tails = pd.DataFrame({"start": [start, high], "end": [low, end]})
    shade = alt.Chart(tails).mark_rect(color="#e45756", opacity=0.15).encode(x="start:Q", x2="end:Q")
    return alt.layer(shade, bars).properties(title=title, height=HEIGHT)


def unit_share_chart(frame: pd.DataFrame, text: Text = _same) -> alt.Chart:
    """Dead and saturated shares per run and hidden layer, rows (run, layer, measure, share): grouped bars."""
    order = list(dict.fromkeys(frame["run"].tolist()))
    frame = frame.assign(measure=frame["measure"].map(lambda m: text(m)),
                         layer=frame["layer"].map(lambda name: text(LAYER_NAMES.get(name, name))))
    return alt.Chart(frame).mark_bar().encode(
        x=alt.X("layer:N", title=None, axis=alt.Axis(labelAngle=0)),
        xOffset=alt.XOffset("run:N", sort=order),
        y=alt.Y("share:Q", title=text(N_("share")), scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format=".0%")),
        color=alt.Color("run:N", title=text(N_("run")), sort=order, scale=alt.Scale(domain=order, scheme="tableau10"),
                        legend=alt.Legend(orient="bottom", columns=1, labelLimit=600)),
        column=alt.Column("measure:N", title=None, sort=[text(t) for t in SHARE_TITLES.values()]),
        tooltip=[alt.Tooltip("run:N", title=text(N_("run"))), alt.Tooltip("layer:N", title=text(N_("layer"))),
                 alt.Tooltip("measure:N", title=text(N_("measure"))),
                 alt.Tooltip("share:Q", title=text(N_("share")), format=".1%")],
    ).properties(height=HEIGHT, width=140)


def share_frame(stats: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """{run label: explain.hidden_stats frame} -> the rows unit_share_chart draws (measures that apply only)."""
    rows = [{"run": run, "layer": row["layer"], "measure": title, "share": float(row[measure])}
            for run, frame in stats.items() for _, row in frame.iterrows()
            for measure, title in SHARE_TITLES.items() if pd.notna(row[measure])]
    return pd.DataFrame(rows, columns=["run", "layer", "measure", "share"])
