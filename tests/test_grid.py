"""Two hyperparameters at once: a grid's cells (a reason for each pair that cannot work), its limits, its link, the
heatmaps' table and chart, where the best learning rate sits per batch size, and the CLI's grid typed as a user
would."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from mnist_core import ConfigError, RunConfig
from mnist_core.charts import grid_heatmap
from mnist_core.compare import from_query_params as comparison_from_link, make_comparison
from mnist_core.grid import (Grid, best_lr_per_batch, cells, from_query_params, grid_frame, heatmap_frame, line,
                             lr_batch_findings, lr_batch_note, make_grid, to_query_params)
from mnist_core.i18n import translate

ROOT = Path(__file__).resolve().parent.parent


def cnn_grid() -> Grid:
    base = RunConfig(model="cnn", padding=0, train_size=200, test_size=100, epochs=1)
    return make_grid(make_comparison(base, "kernel_size", "3, 28"), "stride", "1, 2")


def test_a_grid_has_a_cell_per_pair_and_a_reason_for_each_pair_that_cannot_work():
    grid = cnn_grid()
    grid_cells = cells(grid)
    assert [c.entry.label for c in grid_cells] == ["3 × 1", "3 × 2", "28 × 1", "28 × 2"]
    assert [(c.row, c.column) for c in grid_cells] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    ok, bad = grid_cells[1], grid_cells[2]
    assert ok.entry.config.kernel_size == 3 and ok.entry.config.stride == 2
    assert bad.entry.config is None and "This CNN cannot work" in bad.entry.error
    frame = grid_frame(grid_cells, [None] * 4, "ko")
    assert frame["status"].tolist() == ["missing", "missing", "invalid", "invalid"]
    assert frame["reason"].iloc[2] == translate(bad.entry.cause, "ko") and "CNN" in frame["reason"].iloc[2]
    shown = heatmap_frame(frame, "test_acc")
    assert shown["label"].tolist() == ["not trained yet", "not trained yet", "cannot work", "cannot work"]


def test_a_row_or_a_column_is_a_one_parameter_comparison():
    grid = make_grid(make_comparison(RunConfig(), "lr", "0.1, 0.01"), "batch_size", "10, 100, 1000")
    grid_cells = cells(grid)
    comparison, items, results = line(grid, grid_cells, [f"run{i}" for i in range(6)], "row", 1)
    assert comparison.param == "batch_size" and [e.label for e in items] == ["10", "100", "1000"]
    assert all(e.config.lr == 0.01 for e in items) and results == ["run3", "run4", "run5"]
    comparison, items, results = line(grid, grid_cells, list(range(6)), "column", 2)
    assert comparison.param == "lr" and [e.label for e in items] == ["0.1", "0.01"] and results == [2, 5]
    assert all(e.config.batch_size == 1000 for e in items)


@pytest.mark.parametrize("param2, values2, says", [
    ("lr", "0.1", "must differ from the first"),
    ("colour", "1, 2", "cannot be compared"),
    ("batch_size", "1, 2, 3, 4, 5, 6, 7", "at most 6 values of each"),
    ("batch_size", "10, 10", "repeat"),
])
def test_a_grid_that_cannot_be_is_refused_with_a_message(param2, values2, says):
    with pytest.raises(ConfigError, match=says):
        make_grid(make_comparison(RunConfig(), "lr", "0.1, 0.01"), param2, values2)


def test_a_grid_survives_its_link_and_a_link_without_compare2_is_a_comparison():
    grid = make_grid(make_comparison(RunConfig(seed=5), "lr", "0.1, 0.01"), "batch_size", "10, 100")
    link = to_query_params(grid)
    assert link["compare2"] == "batch_size" and link["values2"] == "10, 100"
    assert from_query_params(link) == grid
    assert from_query_params({k: v for k, v in link.items() if not k.endswith("2")}) == grid.rows
    assert comparison_from_link(link) == grid.rows  # the one-parameter reader accepts a grid's link
    with pytest.raises(ConfigError, match="needs both 'compare2' and 'values2'"):
        from_query_params({**link, "values2": ""})


def frame_of(rows) -> pd.DataFrame:
    """A grid_frame with lr rows and batch-size columns: (lr, batch, final accuracy or None)."""
    return pd.DataFrame([{"row": f"{lr:g}", "column": str(b), "row_value": lr, "column_value": b,
                          "test_acc": float("nan") if acc is None else acc} for lr, b, acc in rows])


def test_the_best_learning_rate_per_batch_size_and_whether_it_moves():
    rising = frame_of([(0.01, 10, 0.90), (0.001, 10, 0.95), (0.01, 1000, 0.93), (0.001, 1000, 0.91)])
    assert best_lr_per_batch(rising) == [(10, 0.001, 0.95), (1000, 0.01, 0.93)]
    found = lr_batch_findings(rising)
    assert found[0] == "Best learning rate per batch size in your grid: batch 10: lr 0.001 (95.0%); batch 1,000: " \
                       "lr 0.01 (93.0%)."
    assert found[1].startswith("It moves up with the batch: from lr 0.001 at batch 10 to lr 0.01 at batch 1,000.")
    # the batch sizes as rows, the learning rates as columns: the same finding
    swapped = rising.rename(columns={"row_value": "column_value", "column_value": "row_value"})
    assert best_lr_per_batch(swapped) == best_lr_per_batch(rising)
    same = frame_of([(0.01, 10, 0.90), (0.001, 10, 0.95), (0.01, 100, 0.90), (0.001, 100, 0.96)])
    assert lr_batch_findings(same)[1].startswith("It is lr 0.001 at every batch size")
    falling = frame_of([(0.01, 10, 0.96), (0.001, 10, 0.95), (0.01, 100, 0.90), (0.001, 100, 0.96)])
    assert lr_batch_findings(falling)[1].startswith("Here it moves down as the batch grows")
    untrained = frame_of([(0.01, 10, 0.9), (0.001, 10, None), (0.01, 100, None)])
    assert lr_batch_findings(untrained) == [lr_batch_findings(untrained)[0]] and "train it" in \
        lr_batch_findings(untrained)[0]
    title, body = lr_batch_note(rising, "ko")
    assert title == "학습률과 배치 크기" and "95.0%" in body and "1,000" in body
    assert lr_batch_note(None, "en")[1].endswith(".")


def test_the_heatmap_labels_every_cell_and_greys_those_without_a_value():
    grid = make_grid(make_comparison(RunConfig(), "lr", "0.1, 0.01"), "batch_size", "10, 100")
    frame = grid_frame(cells(grid), [None] * 4).assign(test_acc=[0.5, 0.9, float("nan"), 0.7],
                                                     status=["ok", "diverged", "missing", "ok"])
    chart = grid_heatmap(heatmap_frame(frame, "test_acc"), "Final test accuracy", "learning rate", "batch size")
    spec = chart.to_dict()
    empty, coloured, labels = spec["layer"]
    assert empty["mark"]["type"] == "rect" and coloured["mark"]["type"] == "rect" and labels["mark"]["type"] == "text"
    data = spec["datasets"]
    texts = [row["label"] for rows in data.values() for row in rows if len(rows) == 4]
    assert texts == ["50.0%", "90.0% ✝", "not trained yet", "70.0%"]
    assert spec["layer"][2]["encoding"]["x"]["sort"] == ["10", "100"]
    assert spec["layer"][2]["encoding"]["y"]["sort"] == ["0.1", "0.01"]


def test_the_cli_trains_a_grid_and_prints_json_typed_as_a_user_would(tmp_path):
    env = {**os.environ, "MNIST_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-m", "mnist_core", "sweep", "--model", "cnn", "--param", "kernel_size",
                        "--values", "3,28", "--param2", "stride", "--values2", "1,2", "--padding", "0",
                        "--train-size", "200", "--test-size", "100", "--epochs", "1", "--json"],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert "Traceback" not in p.stderr
    runs = json.loads(p.stdout)
    assert [r["grid"] for r in runs] == [{"kernel_size": "3", "stride": "1"}, {"kernel_size": "3", "stride": "2"}]
    assert all(r["status"] == "ok" and len(r["epochs"]) == 1 and r["config"]["train_size"] == 200 for r in runs)
    assert [r["config"]["stride"] for r in runs] == [1, 2]
    assert p.stderr.count("skipped kernel_size=28") == 2 and "This CNN cannot work" in p.stderr
    assert p.returncode == 1  # two of the four cells did not run

    p = subprocess.run([sys.executable, "-m", "mnist_core", "sweep", "--param", "lr", "--values", "0.1",
                        "--param2", "lr", "--values2", "0.01"], capture_output=True, text=True, env=env, cwd=ROOT,
                       timeout=120)
    assert p.returncode == 2 and p.stderr.startswith("error: ") and "must differ" in p.stderr


def test_the_studys_grid_crosses_the_seeds_learning_rates_and_batch_sizes_and_says_what_it_shows():
    from mnist_core.study import SIZES, TINY
    from mnist_core.study_grid import observe, scaling_text, section_grid, seed_text
    grid = section_grid(SIZES["quick"])
    assert grid.values == (0.1, 0.01, 0.001, 0.0001) and grid.values2 == (10, 30, 100, 1000)
    assert grid.base.train_size == 10_000 and grid.base.epochs == 5 and grid.base.init == "normal"
    assert scaling_text(SIZES["quick"], "en").startswith("Scaled (quick): training images 60,000 → 10,000")
    assert "batch 10, 30, 100, 1000 (lines 121–176)" in seed_text("en") and "121–176" in seed_text("ko")
    assert section_grid(TINY).values == (0.01, 0.001)
    frame = frame_of([(0.1, 10, 0.11), (0.001, 10, 0.95), (0.1, 1000, 0.93), (0.001, 1000, 0.91)]).assign(
        status="ok", s_per_epoch=[2.0, 2.2, 0.4, 0.5], epochs=5)
    said = observe(frame)
    assert said[:2] == lr_batch_findings(frame)
    assert "The best pair is lr 0.001 at batch 10: 95.0% test accuracy after 5 epoch(s)." in said
    assert "1 of 4 runs collapsed or diverged (below 20% test accuracy): lr 0.1 at batch 10." in said
    assert said[-1] == "Seconds per epoch by batch size (the median over the learning rates): batch 10: 2.10 s; " \
                       "batch 1,000: 0.45 s."
    korean = observe(frame, "ko")
    assert len(korean) == len(said) and all(k != e for k, e in zip(korean, said))
    assert observe(frame.assign(test_acc=float("nan"))) == []
