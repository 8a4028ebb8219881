"""The Explore page: every run of the class on one page. Real runs, trained here by the engine on 500 images
for one epoch (MLPs on MNIST and Fashion-MNIST, two CNNs), in the cache the app reads; then
mnist_core.explore's rows, filters, best runs and chart specs, the page through AppTest in English and
Korean (its links round-trip to the runs, it opens no cache entry on a rerun, so it reads no weights), the
Draw page's ?run= link, and one browser session that filters the runs and opens one.
"""
from __future__ import annotations

import json
import re
import sys
from urllib.parse import parse_qsl

import pytest
from streamlit.testing.v1 import AppTest

from mnist_core import RunCache, RunConfig, run_sweep
from mnist_core.compare import entries, from_query_params
from mnist_core.explore import (ACCURACY, HYPERPARAMETERS, best_of_class, choices, filter_runs, parallel_axes,
                                parallel_chart, runs_frame, scatter_chart, spans_decades)
from mnist_core.i18n import Translator

APP = "../app.py"
PAGE = "app_pages/explore.py"
SEED = 8_642  # this module's runs, whatever else the test session cached
TINY = dict(train_size=500, test_size=100, epochs=1, seed=SEED)
MLP = RunConfig(model="mlp", init="xavier_uniform", **TINY)
MLP_MNIST = [MLP.replace(lr=0.1), MLP.replace(lr=0.001), MLP.replace(lr=0.1, activations=("sigmoid", "relu"))]
MLP_FASHION = [MLP.replace(dataset="fashion-mnist", lr=0.001)]
CNNS = [RunConfig(model="cnn", **TINY), RunConfig(model="cnn", stride=2, **TINY)]
HANGUL = re.compile(r"[\uac00-\ud7a3]")


@pytest.fixture(scope="module")
def runs(mnist, fashion):
    """This module's runs, as the cache lists them (headers), keyed by config."""
    cache = RunCache()
    trained = run_sweep(MLP_MNIST + CNNS, mnist, cache) + run_sweep(MLP_FASHION, fashion, cache)
    listed = {r.key: r for r in cache.list()}
    return {r.config: listed[r.key] for r in trained}


def mine(frame):
    return filter_runs(frame, {"seed": [str(SEED)]})


def open_explore(lang: str | None = None, **filters: list[str]) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    if lang:
        at.query_params["lang"] = lang
    at.run()
    at.switch_page(PAGE)
    if lang:
        at.query_params["lang"] = lang
    at.run()
    assert not at.exception, at.exception
    mine_only = {"seed": [str(SEED)]} if any(w.key == "explore.filter.seed" for w in at.multiselect) else {}
    for field, values in {**mine_only, **filters}.items():  # no seed filter where only this module's runs are cached
        at.multiselect(key=f"explore.filter.{field}").set_value(values).run()
        assert not at.exception, at.exception
    return at


def table(at: AppTest):
    return next(df.value for df in at.dataframe if "open" in df.value.columns)


def specs(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("vega_lite_chart")]


# -- mnist_core.explore ---------------------------------------------------------------------------

def test_a_row_per_run_with_every_setting_its_accuracies_and_no_owner(runs):
    frame = mine(runs_frame(RunCache().list()))
    assert sorted(frame["key"]) == sorted(r.key for r in runs.values())
    assert not {"owner", "user", "session", "watchers"} & set(frame.columns)
    for config, run in runs.items():
        row = frame[frame["key"] == run.key].iloc[0]
        accs = [m.test_acc for m in run.epochs]
        assert row[ACCURACY] == accs[-1] and row["best_acc"] == max(accs) and row["epochs_trained"] == len(accs)
        assert row["measured_on"] == "a fixed balanced sample of 100 test images"
        assert row["lr"] == config.lr and row["seed"] == SEED and row["dataset"] == config.dataset
        if config.model == "mlp":
            assert row["activations"] == "/".join(config.activations) and row.isna()["stride"]
        else:
            assert row["stride"] == config.stride and row.isna()["activations"]
        assert row["open"].startswith(f"./{config.model}?") and row["draw"] == f"./draw?run={run.key}"
    assert set(HYPERPARAMETERS) <= set(frame.columns)


def test_filters_narrow_the_rows(runs):
    frame = mine(runs_frame(RunCache().list()))
    assert set(choices(frame)["model"]) == {"mlp", "cnn"} and "lr" in choices(frame)
    assert len(filter_runs(frame, {"model": ["mlp"]})) == len(MLP_MNIST + MLP_FASHION)
    assert len(filter_runs(frame, {"model": ["mlp"], "dataset": ["mnist"]})) == len(MLP_MNIST)
    assert len(filter_runs(frame, {"model": ["mlp"], "dataset": ["mnist"], "lr": ["0.1"]})) == 2
    assert len(filter_runs(frame, {"activations": ["sigmoid/relu"]})) == 1
    assert len(filter_runs(frame, {"stride": ["1", "2"]})) == len(CNNS)
    middle = sorted(frame[ACCURACY])[len(frame) // 2]
    high = filter_runs(frame, {}, (middle, 1.0))
    assert len(high) == sum(frame[ACCURACY] >= middle) and (high[ACCURACY] >= middle).all()


def test_the_best_run_of_each_model_and_dataset(runs):
    listed = RunCache().list()
    best = best_of_class(runs_frame(listed))
    for model, dataset in {(r.config.model, r.config.dataset) for r in listed if r.status == "ok" and r.final}:
        top = max(r.final.test_acc for r in listed if (r.config.model, r.config.dataset) == (model, dataset)
                  and r.status == "ok" and r.final)
        row = best[(best["model"] == model) & (best["dataset"] == dataset)]
        assert len(row) == 1 and row[ACCURACY].iloc[0] == top
    assert len(best) == len({(r.config.model, r.config.dataset) for r in listed if r.status == "ok" and r.final})


def test_parallel_coordinates_have_an_axis_per_varying_setting_then_accuracy(runs):
    frame = filter_runs(mine(runs_frame(RunCache().list())), {"model": ["mlp"], "dataset": ["mnist"]})
    axes = parallel_axes(frame)
    assert [a.field for a in axes] == ["activations", "lr", ACCURACY]  # everything else is the same
    activations = axes[0]
    assert activations.positions == {"relu/relu": 0.0, "sigmoid/relu": 1.0}
    assert set(activations.ticks.values()) == {"relu/relu", "sigmoid/relu"}
    assert axes[1].positions == {0.001: 0.0, 0.1: 1.0} and not spans_decades([0.1, 0.01])
    spec = parallel_chart(frame, axes).to_dict()
    x = spec["layer"][0]["encoding"]["x"]
    assert x["sort"] == ["activations", "learning rate", "test accuracy"]
    assert spec["layer"][0]["encoding"]["color"]["field"] == "acc"
    lines = spec["datasets"][spec["layer"][0]["data"]["name"]]
    assert len(lines) == 3 * len(frame) and {row["key"] for row in lines} == set(frame["key"])


def test_the_scatter_has_a_log_axis_where_the_values_span_decades(runs):
    frame = mine(runs_frame(RunCache().list()))
    assert spans_decades(frame["lr"])  # 0.1 and 0.001
    assert scatter_chart(frame, "lr").to_dict()["encoding"]["x"]["scale"]["type"] == "log"
    assert "type" not in scatter_chart(frame, "stride").to_dict()["encoding"]["x"].get("scale", {})
    x = scatter_chart(frame, "activations").to_dict()["encoding"]["x"]
    assert x["type"] == "nominal" and x["sort"] == ["relu/relu", "sigmoid/relu"]


# -- the page -------------------------------------------------------------------------------------

@pytest.mark.parametrize("lang", ["en", "ko"])
def test_the_page_shows_the_runs_filters_them_and_draws_them(runs, lang):
    _ = Translator(lang)
    at = open_explore(lang)
    assert at.title[0].value == _("Every run of the class") and (lang == "en") != bool(HANGUL.search(at.title[0].value))
    assert len(table(at)) == len(runs)
    at.multiselect(key="explore.filter.model").set_value(["mlp"]).run()
    at.multiselect(key="explore.filter.dataset").set_value(["mnist"]).run()
    assert not at.exception, at.exception
    assert sorted(table(at)[ACCURACY]) == sorted(runs[c].final.test_acc for c in MLP_MNIST)
    parallel = [s for s in specs(at) if "layer" in s and s["layer"][0]["mark"]["type"] == "line"
                and s["layer"][0]["encoding"].get("detail")]
    assert len(parallel) == 1  # no CNN left
    assert parallel[0]["layer"][0]["encoding"]["x"]["sort"] == [_(t) for t in ("activations", "learning rate",
                                                                              "test accuracy")]
    best = {m.label: m.value for m in at.metric}
    listed = RunCache().list()
    top = max(r.final.test_acc for r in listed if r.config.model == "mlp" and r.config.dataset == "mnist" and r.final)
    assert best["MLP · MNIST"] == _.percent(top)


def test_links_round_trip_to_the_run_and_a_rerun_opens_no_cache_entry(runs):
    opened: list[str] = []
    sys.addaudithook(lambda event, args: event == "open" and str(args[0]).endswith(".safetensors")
                     and opened.append(str(args[0])))
    at = open_explore(model=["mlp"])
    run = runs[MLP_MNIST[1]]
    opened.clear()
    at.selectbox(key="explore.run").set_value(run.key).run()
    at.slider(key="explore.accuracy").set_value((1, 100)).run()
    assert not at.exception, at.exception
    assert opened == []  # listing the cache reads headers once, when an entry is new; weights never
    comparison, draw = [link for link in at.get("page_link")][-2:]
    assert comparison.proto.page.endswith("mlp") and draw.proto.page.endswith("draw")
    linked = from_query_params(dict(parse_qsl(comparison.proto.query_string)), model="mlp")
    assert [e.config for e in entries(linked)] == [run.config]
    assert dict(parse_qsl(draw.proto.query_string)) == {"run": run.key}


def test_the_draw_page_puts_a_linked_run_first(runs):
    run = runs[CNNS[1]]
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("app_pages/draw.py")
    at.query_params["run"] = run.key
    at.run()
    assert not at.exception, at.exception
    assert at.multiselect(key="draw.cfg.runs").value[0] == run.key and "run" not in at.query_params


# -- in a browser ---------------------------------------------------------------------------------

def test_a_student_filters_the_runs_and_opens_the_best_one(mnist, tmp_path):
    """A server of its own whose cache holds eight tiny runs; Chromium filters them to the MLPs and opens the
    best one's comparison. Screenshots of the page in English and Korean go to test-artifacts/."""
    e2e = pytest.importorskip("test_e2e")  # its server, browser settings and helpers
    from test_e2e_korean import choose
    if not e2e.Path(e2e.CHROMIUM).exists():
        pytest.skip(f"No Chromium at {e2e.CHROMIUM}: install Debian's chromium package (apt-get install chromium)")
    configs = [MLP.replace(lr=lr, activations=acts, seed=SEED + 1) for lr in (0.1, 0.01, 0.001)
               for acts in (("relu", "relu"), ("sigmoid", "relu"))] + [c.replace(seed=SEED + 1) for c in CNNS]
    with e2e.Server(tmp_path) as server, e2e.playwright_api.sync_playwright() as p:
        trained = run_sweep(configs, mnist, RunCache(server.cache_dir / "runs"))
        best = max((r for r in trained if r.config.model == "mlp"), key=lambda r: r.final.test_acc)
        browser = p.chromium.launch(executable_path=e2e.CHROMIUM, args=e2e.BROWSER_ARGS)
        page = e2e.new_page(browser)
        page.goto(f"{server.url}/explore")
        e2e.settle(page)
        e2e.no_errors(page)
        assert page.get_by_text("8 of 8 runs.").is_visible()
        choose(page, "Model", "MLP")
        page.keyboard.press("Escape")
        e2e.settle(page)
        e2e.no_errors(page)
        assert page.get_by_text("6 of 8 runs.").is_visible()
        assert "0.001" in e2e.table_text(page, "0.001")
        e2e.shot(page, "explore", height=3000)

        page.get_by_role("link", name="Open its comparison").last.click()  # the run inspected: the best first
        page.wait_for_url(re.compile(r"/mlp\?"))
        e2e.settle(page)
        e2e.no_errors(page)
        assert "MLP on MNIST" in page.locator("h1").first.inner_text()
        shown = dict(parse_qsl(page.url.split("?", 1)[1]))
        assert RunConfig.from_dict({k: v for k, v in shown.items() if k not in ("compare", "values")}) == best.config
        assert page.locator('[data-testid="stVegaLiteChart"]').count() >= 1  # cached: its results at once

        page.goto(f"{server.url}/explore?lang=ko")
        e2e.settle(page)
        e2e.no_errors(page)
        assert HANGUL.search(page.locator("h1").first.inner_text())
        e2e.shot(page, "explore-ko", height=3000)
        browser.close()
