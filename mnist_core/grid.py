"""Two hyperparameters at once: a grid of runs, one per pair of values (at most MAX_SIDE x MAX_SIDE).

The first hyperparameter's values are the grid's rows, the second's its columns. A grid is a comparison
(compare.Comparison: the base config, the first hyperparameter and its values) plus a second
hyperparameter and its values, so everything a one-parameter comparison has works for it: its cells are
compare.Entry objects (one config each, or why that pair cannot work), planned, estimated, trained and
cached the same way. A row or a column is itself a one-parameter comparison (`line`), drawn by the
comparison pages' charts. `grid_frame` is the tidy table of the heatmaps, and `lr_batch_findings` says
where the best learning rate sits in each batch size (the Study's "learning rate x batch size" section
and the concept note end with it). No Streamlit here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import pandas as pd

from .compare import (URL_PARAM2, URL_VALUES2, Comparison, Entry, format_values, make_comparison, value_label,
                      from_query_params as comparison_from_query_params,
                      to_query_params as comparison_query_params)
from .config import FIELD_LABELS, SWEEPABLE, ConfigError, RunConfig, label
from .i18n import N_, Text, gettext, translate
from .models import shape_flow
from .results import RunResult

MAX_SIDE = 6  # values per hyperparameter: 36 runs at most, each cell still readable


@dataclass(frozen=True)
class Grid:
    rows: Comparison   # the base config, the first hyperparameter (the rows) and its values
    param2: str        # the second hyperparameter (the columns)
    values2: tuple

    @property
    def base(self) -> RunConfig:
        return self.rows.base

    @property
    def param(self) -> str:
        return self.rows.param

    @property
    def values(self) -> tuple:
        return self.rows.values

    @property
    def model(self) -> str:
        return self.rows.base.model


@dataclass(frozen=True)
class Cell:
    row: int            # index of the first hyperparameter's value
    column: int         # index of the second's
    entry: Entry        # label "ROW × COLUMN", value (row value, column value), config or error

    @property
    def row_label(self) -> str:
        return self.entry.label.split(" × ")[0]

    @property
    def column_label(self) -> str:
        return self.entry.label.split(" × ")[1]


def make_grid(comparison: Comparison, param2: str, values2_text: str) -> Grid:
    """The grid of `comparison` and a second hyperparameter; ConfigError with a message for the student."""
    model = comparison.model
    if param2 not in SWEEPABLE[model]:
        raise ConfigError(N_("The second hyperparameter '{name}' cannot be compared for the {model}. Choose one of: "
                             "{choices}."), name=str(param2)[:40], model=model.upper(),
                          choices=", ".join(SWEEPABLE[model]))
    if param2 == comparison.param:
        raise ConfigError(N_("The second hyperparameter must differ from the first ({setting})."),
                          setting=label(param2))
    values2 = make_comparison(comparison.base, param2, values2_text).values  # coerced, no repeats
    if len(comparison.values) > MAX_SIDE or len(values2) > MAX_SIDE:
        raise ConfigError(N_("A grid compares at most {most} values of each hyperparameter (got {rows} × "
                             "{columns})."), most=MAX_SIDE, rows=len(comparison.values), columns=len(values2))
    return Grid(comparison, param2, tuple(values2))


def cells(grid: Grid) -> list[Cell]:
    """One cell per pair of values, row by row. A pair whose config cannot work gets its reason (a value that
    is not one, a CNN whose shapes collapse); the other cells still run."""
    out = []
    for i, first in enumerate(grid.values):
        for j, second in enumerate(grid.values2):
            name = f"{value_label(first)} × {value_label(second)}"
            try:
                config = grid.base.replace(**{grid.param: first, grid.param2: second})
                if config.model == "cnn":
                    shape_flow(config)  # a filter that no longer fits fails here, before any training
            except ConfigError as e:
                out.append(Cell(i, j, Entry(name, (first, second), None, str(e), e)))
            else:
                out.append(Cell(i, j, Entry(name, (first, second), config)))
    return out


def line(grid: Grid, grid_cells: Sequence[Cell], results: Sequence[RunResult | None], axis: str,
         index: int) -> tuple[Comparison, list[Entry], list[RunResult | None]]:
    """A row (`axis` "row": one value of the first hyperparameter, its cells along the second) or a column (one
    value of the second, along the first) as a one-parameter comparison: the comparison, its entries labelled
    by the value that varies, and their runs."""
    if axis == "row":
        picked = [(c, r) for c, r in zip(grid_cells, results) if c.row == index]
        param, values, which = grid.param2, grid.values2, 1
    else:
        picked = [(c, r) for c, r in zip(grid_cells, results) if c.column == index]
        param, values, which = grid.param, grid.values, 0
    items = [Entry(c.entry.label.split(" × ")[which], c.entry.value[which], c.entry.config, c.entry.error,
                   c.entry.cause) for c, _ in picked]
    return Comparison(grid.base, param, tuple(values)), items, [r for _, r in picked]


# -- links -----------------------------------------------------------------------------------------

def to_query_params(grid: Grid) -> dict[str, str]:
    return {**comparison_query_params(grid.rows), URL_PARAM2: grid.param2,
            URL_VALUES2: format_values(grid.param2, grid.values2)}


def from_query_params(params: Mapping[str, Any], model: str | None = None) -> Comparison | Grid:
    """What a shared link describes: a comparison, or a grid when it has compare2 and values2. Anything wrong
    raises ConfigError (values from the link are kept as plain str, so pages show them literally)."""
    comparison = comparison_from_query_params(params, model)
    second, values2 = params.get(URL_PARAM2), params.get(URL_VALUES2)
    second, values2 = (v[-1] if isinstance(v, (list, tuple)) and v else v for v in (second, values2))
    if not second and not values2:
        return comparison
    if not second or not values2:
        raise ConfigError(N_("The link names a second hyperparameter without its values, or values without it (it "
                             "needs both 'compare2' and 'values2')."))
    return make_grid(comparison, str(second).strip(), str(values2))


# -- the heatmaps' table ---------------------------------------------------------------------------

GRID_COLUMNS = ["row", "column", "row_order", "column_order", "row_value", "column_value", "status", "test_acc",
                "s_per_epoch", "epochs", "reason"]


def grid_frame(grid_cells: Sequence[Cell], results: Sequence[RunResult | None], lang: str = "en") -> pd.DataFrame:
    """One row per cell: its two values (as labels and as values), its status (ok, diverged, invalid: cannot
    work, missing: not cached yet), final test accuracy, seconds per epoch when it was trained, and for an
    invalid cell the reason, in `lang`."""
    rows = []
    for cell, result in zip(grid_cells, results):
        entry = cell.entry
        if entry.config is None:
            status = "invalid"
        else:
            status = "missing" if result is None else result.status
        final = result.final if result is not None else None
        epochs = len(result.epochs) if result is not None else 0
        seconds = sum(m.seconds for m in result.epochs) / epochs if epochs else float("nan")
        reason = "" if entry.config is not None else (translate(entry.cause, lang) if entry.cause else entry.error)
        rows.append({"row": cell.row_label, "column": cell.column_label, "row_order": cell.row,
                     "column_order": cell.column, "row_value": entry.value[0], "column_value": entry.value[1],
                     "status": status, "test_acc": final.test_acc if final else float("nan"), "s_per_epoch": seconds,
                     "epochs": epochs, "reason": reason})
    return pd.DataFrame(rows, columns=GRID_COLUMNS)


HEATMAP_TITLES = {"test_acc": N_("Final test accuracy over the grid"), "s_per_epoch": N_("Seconds per epoch over the grid")}
CELL_TEXT = {"invalid": N_("cannot work"), "missing": N_("not trained yet"), "diverged": N_("diverged")}


def heatmap_frame(frame: pd.DataFrame, metric: str, lang: str = "en") -> pd.DataFrame:
    """`grid_frame` with what each cell says: `value` (the metric, or NaN) and `label` (it written out, or why
    there is none: cannot work, not trained yet, diverged in its first epoch)."""
    def text(row) -> str:
        value = row[metric]
        if value == value:  # not NaN
            written = f"{value:.1%}" if metric == "test_acc" else gettext(N_("{seconds} s"), lang,
                                                                           seconds=f"{value:.2f}")
            return written + (" ✝" if row["status"] == "diverged" else "")
        return gettext(CELL_TEXT.get(row["status"], N_("no result")), lang)
    labels = [text(row) for _, row in frame.iterrows()]
    return frame.assign(value=frame[metric], label=labels)


# -- what the grid shows: the best learning rate per batch size --------------------------------------

FINDINGS = {
    "items": N_("Best learning rate per batch size in your grid: {items}."),
    "item": N_("batch {batch}: lr {lr} ({acc})"),
    "rises": N_("It moves up with the batch: from lr {low} at batch {small} to lr {high} at batch {big}. Bigger "
                "batches give less noisy gradients and fewer steps per epoch, so they afford, and need, bigger steps."),
    "falls": N_("Here it moves down as the batch grows: from lr {high} at batch {small} to lr {low} at batch {big}, "
                "against the usual pattern. With these settings something else dominates (the seed's normal(0, 1) "
                "init knocks units dead at large steps, or too few epochs), or the differences are within noise."),
    "same": N_("It is lr {lr} at every batch size: in this grid the best learning rate does not move (the values "
               "tried may be too far apart to show it, and Adam's per-weight steps make it move less than SGD's)."),
    "mixed": N_("It goes up and down across the batch sizes: no clear trend in this grid (the differences may be "
                "within the noise of the test images)."),
    "none": N_("Your grid has no two batch sizes with finished runs at two learning rates yet: train it to see where "
               "the best learning rate sits."),
}


def best_lr_per_batch(frame: pd.DataFrame) -> list[tuple[int, float, float]]:
    """(batch size, best learning rate, its final test accuracy) per batch size with at least two finished learning
    rates, in increasing batch size. `frame`: grid_frame of a grid whose two hyperparameters are lr and batch_size
    (either way round); the other columns say which is which."""
    lr_axis = _lr_axis(frame)
    if lr_axis is None:
        return []
    batch_axis = "column" if lr_axis == "row" else "row"
    done = frame[frame["test_acc"].notna()]
    out = []
    for batch, group in done.groupby(f"{batch_axis}_value"):
        if len(group) >= 2:
            best = group.loc[group["test_acc"].idxmax()]
            out.append((int(batch), float(best[f"{lr_axis}_value"]), float(best["test_acc"])))
    return sorted(out)


def _lr_axis(frame: pd.DataFrame) -> str | None:
    """Which axis of a grid_frame holds the learning rate, if the other holds the batch size."""
    for axis, other in (("row", "column"), ("column", "row")):
        values, others = frame[f"{axis}_value"], frame[f"{other}_value"]
        if len(frame) and all(isinstance(v, float) for v in values) and all(
                isinstance(v, int) and not isinstance(v, bool) for v in others):
            return axis
    return None


def lr_batch_findings(frame: pd.DataFrame, lang: str = "en") -> list[str]:
    """Where the best learning rate sits at each batch size, and whether it moves with the batch, in sentences."""
    best = best_lr_per_batch(frame)
    if len(best) < 2:
        return [gettext(FINDINGS["none"], lang)]
    items = "; ".join(gettext(FINDINGS["item"], lang, batch=f"{b:,}", lr=f"{lr:g}", acc=f"{acc:.1%}")
                      for b, lr, acc in best)
    out = [gettext(FINDINGS["items"], lang, items=items)]
    lrs = [lr for _, lr, _ in best]
    small, big = best[0][0], best[-1][0]
    if len(set(lrs)) == 1:
        out.append(gettext(FINDINGS["same"], lang, lr=f"{lrs[0]:g}"))
    elif all(a <= b for a, b in zip(lrs, lrs[1:])):
        out.append(gettext(FINDINGS["rises"], lang, low=f"{lrs[0]:g}", high=f"{lrs[-1]:g}", small=f"{small:,}",
                           big=f"{big:,}"))
    elif all(a >= b for a, b in zip(lrs, lrs[1:])):
        out.append(gettext(FINDINGS["falls"], lang, high=f"{lrs[0]:g}", low=f"{lrs[-1]:g}", small=f"{small:,}",
                           big=f"{big:,}"))
    else:
        out.append(gettext(FINDINGS["mixed"], lang))
    return out


def is_lr_batch(grid: Grid) -> bool:
    return {grid.param, grid.param2} == {"lr", "batch_size"}


def lr_batch_note(frame: pd.DataFrame | None, lang: str) -> tuple[str, str]:
    """The concept note on learning rate and batch size, ending with what the student's own grid shows."""
    from .notes import note
    title, body = note("lr_batch", lang)
    if frame is not None:
        body += " " + " ".join(lr_batch_findings(frame, lang))
    return title, body


def grid_title(grid: Grid, lang: str) -> str:
    """"learning rate × batch size", in `lang`."""
    return gettext(N_("{first} × {second}"), lang, first=Text(FIELD_LABELS.get(grid.param, grid.param)),
                   second=Text(FIELD_LABELS.get(grid.param2, grid.param2)))
