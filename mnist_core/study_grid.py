"""The Study's "learning rate × batch size" section: the seed post's learning rates crossed with its batch sizes.

The post changed one hyperparameter at a time: its learning-rate experiment ran lr 0.1, 0.01, 0.001 and 0.0001 at
batch 100, its batch-size experiment batch 10, 30, 100 and 1000 at one learning rate (seed_claims.py). It never
crossed the two. This section runs every pair (a grid.Grid on the batch experiment's base config, scaled like the
other sections) and says, computed from the runs, where the best learning rate sits at each batch size, which pair
is best, which runs collapsed, and what the batch does to the time per epoch. No Streamlit here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .cache import RunCache
from .compare import Comparison, Estimate, estimate, format_values, value_label
from .config import PRESETS
from .data import MnistData
from .config import RunConfig
from .grid import Cell, Grid, cells, grid_frame, lr_batch_findings, lr_batch_note
from .i18n import N_, Duration, Text, gettext
from .observations import CHANCE
from .results import RunResult
from .seed_claims import SEED
from .study import CHANGE, FIELD_NAMES, SCALING, SCALING_NONE, SIZE_NAMES, StudySize

NAME = "mlp-lr-batch"
TITLE = N_("MLP: learning rate × batch size")
QUESTION = N_("Does the best learning rate move with the batch size?")
SEED_TEXT = N_("The post never crossed the two: its learning-rate experiment ran lr {lrs} at batch {batch} (lines "
               "{lr_a}–{lr_b}), its batch-size experiment batch {batches} (lines {batch_a}–{batch_b}). Here every pair "
               "runs, on the batch experiment's settings.")
LRS = tuple(SEED["mlp-lr"].setting["values"])         # 0.1, 0.01, 0.001, 0.0001
BATCHES = tuple(SEED["mlp-batch"].setting["values"])  # 10, 30, 100, 1000
BASE = PRESETS["mlp-batch"].base                      # the lab code's defaults: 15 epochs, Adam, ReLU/ReLU, normal(0, 1)
SCALES: dict[str, tuple[dict[str, Any], tuple, tuple]] = {  # per study size: config changes, learning rates, batches
    "full": ({}, LRS, BATCHES),
    "quick": ({"train_size": 10_000, "test_size": 2_000, "epochs": 5}, LRS, BATCHES),  # as the quick batch section
    "tiny": ({"train_size": 300, "test_size": 100, "epochs": 1}, (0.01, 0.001), (30, 300)),  # for the tests
}

MISSING = N_("Not trained yet: {n} of the grid's {total} runs. Training them would take about {cost}.")
TEMPLATES = {
    "best_pair": N_("The best pair is lr {lr} at batch {batch}: {acc} test accuracy after {epochs}."),
    "failed": N_("{count} of {total} runs collapsed or diverged (below {chance} test accuracy): {pairs}."),
    "pair": N_("lr {lr} at batch {batch}"),
    "time": N_("Seconds per epoch by batch size (the median over the learning rates): {items}."),
    "time_item": N_("batch {batch}: {seconds} s"),
    "epochs": N_("{n} epoch(s)"),
}


@dataclass
class GridSection:
    grid: Grid
    size: str
    lang: str
    cells: list[Cell]
    results: list[RunResult | None]
    scaling: str
    estimate: Estimate | None = None
    observations: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return gettext(TITLE, self.lang)

    @property
    def question(self) -> str:
        return gettext(QUESTION, self.lang)

    @property
    def configs(self) -> list:
        return [c.entry.config for c in self.cells]

    @property
    def missing(self) -> list[str]:
        return [c.entry.label for c, r in zip(self.cells, self.results) if r is None]

    def frame(self) -> pd.DataFrame:
        return grid_frame(self.cells, self.results, self.lang)

    def to_json(self) -> dict[str, Any]:
        """Like study.Section.to_json, with these differences: `values` are the learning rates (the rows) and
        `param2`/`values2` the batch sizes (the columns); `missing` names cells ("0.1 × 10"); `cells` has each
        pair's status, final test accuracy and seconds per epoch (null: no run); `repeats` is empty; `seed` is
        not a seed experiment (the post never crossed the two) but says which of its experiments the grid
        crosses, with their lines, in `text`; `note` is the concept note on learning rate and batch size."""
        def number(v: Any) -> float | None:
            return None if v != v else float(v)  # NaN: no run
        title, body = lr_batch_note(self.frame(), self.lang)
        return {"experiment": self.title, "preset": NAME, "size": self.size,
                "values": [value_label(v) for v in self.grid.values], "param": self.grid.param,
                "param2": self.grid.param2, "values2": [value_label(v) for v in self.grid.values2],
                "scaling": self.scaling, "runs": [r.key for r in self.results if r is not None], "repeats": [],
                "seed": {"crosses": ["mlp-lr", "mlp-batch"], "text": seed_text(self.lang)},
                "cells": [{"lr": float(row.row_value), "batch_size": int(row.column_value), "status": row.status,
                           "test_acc": number(row.test_acc), "s_per_epoch": number(row.s_per_epoch),
                           "epochs": int(row.epochs)} for row in self.frame().itertuples()],
                "observations": self.observations, "missing": self.missing, "note": {"title": title, "body": body},
                "estimated_seconds": self.estimate.seconds if self.estimate else None}


def section_grid(size: StudySize) -> Grid:
    changes, lrs, batches = SCALES.get(size.name, SCALES["quick"])
    return Grid(Comparison(BASE.replace(**changes), "lr", tuple(lrs)), "batch_size", tuple(batches))


def grid_configs(size: StudySize) -> list[tuple[str, RunConfig]]:
    """Every run of the section, named for a progress line ("mlp-lr-batch: lr 0.1, batch 10"), row by row: what
    `report` submits to the job service with study.study_configs."""
    return [(f"{NAME}: lr {c.entry.value[0]:g}, batch {c.entry.value[1]}", c.entry.config)
            for c in cells(section_grid(size)) if c.entry.config is not None]


def missing_text(section: GridSection, lang: str) -> str:
    """How many of the grid's runs are not cached, and what training them would cost ("" if none)."""
    if not section.missing or section.estimate is None:
        return ""
    return gettext(MISSING, lang, n=len(section.missing), total=len(section.cells),
                   cost=Duration(section.estimate.seconds))


def scaling_text(size: StudySize, lang: str) -> str:
    changes, lrs, batches = SCALES.get(size.name, SCALES["quick"])
    parts = [gettext(CHANGE, lang, field=Text(FIELD_NAMES.get(f, f)), before=f"{getattr(BASE, f):,}", after=f"{v:,}")
             for f, v in changes.items() if getattr(BASE, f) != v]
    if (lrs, batches) != (LRS, BATCHES):
        parts.append(gettext(CHANGE, lang, field=Text(FIELD_NAMES["values"]),
                             before=f"{format_values('lr', LRS)} × {format_values('batch_size', BATCHES)}",
                             after=f"{format_values('lr', lrs)} × {format_values('batch_size', batches)}"))
    if not parts:
        return gettext(SCALING_NONE, lang)
    return gettext(SCALING, lang, size=Text(SIZE_NAMES.get(size.name, size.name)), changes="; ".join(parts))


def seed_text(lang: str) -> str:
    lr, batch = SEED["mlp-lr"], SEED["mlp-batch"]
    return gettext(SEED_TEXT, lang, lrs=", ".join(f"{v:g}" for v in LRS), batch=lr.setting["batch_size"],
                   lr_a=lr.lines[0], lr_b=lr.lines[1], batches=", ".join(str(b) for b in BATCHES),
                   batch_a=batch.lines[0], batch_b=batch.lines[1])


def build_grid_section(size: StudySize, data: MnistData, cache: RunCache, *, lang: str = "en") -> GridSection:
    """The section from the cache (training goes through the job service: the page submits `configs`)."""
    grid = section_grid(size)
    grid_cells = cells(grid)
    results = [cache.get(cache.key_for(c.entry.config, data)) for c in grid_cells]
    section = GridSection(grid, size.name, lang, grid_cells, results, scaling_text(size, lang))
    if section.missing:
        section.estimate = estimate([c.entry for c in grid_cells], data, cache)
    section.observations = observe(section.frame(), lang)
    return section


def observe(frame: pd.DataFrame, lang: str = "en") -> list[str]:
    """What the grid shows, in sentences computed from its runs (grid.grid_frame of an lr × batch grid)."""
    done = frame[frame["test_acc"].notna()]
    if done.empty:
        return []
    out = lr_batch_findings(frame, lang)
    best = done.loc[done["test_acc"].idxmax()]
    out.append(gettext(TEMPLATES["best_pair"], lang, lr=f"{best['row_value']:g}", batch=f"{best['column_value']:,}",
                       acc=f"{best['test_acc']:.1%}", epochs=gettext(TEMPLATES["epochs"], lang, n=int(best["epochs"]))))
    trained = frame[frame["status"].isin(("ok", "diverged"))]
    failed = trained[(trained["status"] == "diverged") | (trained["test_acc"].fillna(0) < CHANCE)]
    if len(failed):
        pairs = ", ".join(gettext(TEMPLATES["pair"], lang, lr=f"{r.row_value:g}", batch=f"{r.column_value:,}")
                          for r in failed.itertuples())
        out.append(gettext(TEMPLATES["failed"], lang, count=len(failed), total=len(trained), chance=f"{CHANCE:.0%}",
                           pairs=pairs))
    times = trained.dropna(subset=["s_per_epoch"]).groupby("column_value")["s_per_epoch"].median()
    if len(times) >= 2:
        items = "; ".join(gettext(TEMPLATES["time_item"], lang, batch=f"{b:,}", seconds=f"{s:.2f}")
                          for b, s in times.sort_index().items())
        out.append(gettext(TEMPLATES["time"], lang, items=items))
    return out
