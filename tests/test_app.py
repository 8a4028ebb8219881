"""The app through Streamlit's AppTest: every page renders, a small comparison runs and comes back
from the cache, bad input and bad links show st.error, and the Draw page reads an uploaded digit."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from mnist_core import RunConfig
from mnist_core.compare import make_comparison, to_query_params

APP = "../app.py"
TIMEOUT = 120


def open_page(page: str | None = None, query: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    if page:
        at.switch_page(page)
        if query:
            at.query_params.update(query)
        at.run()
    assert not at.exception, at.exception
    return at


def set_mlp(at: AppTest, values: str, seed: int, param: str = "lr") -> None:
    at.number_input(key="mlp.cfg.train_size").set_value(1000)
    at.number_input(key="mlp.cfg.epochs").set_value(2)
    at.number_input(key="mlp.cfg.seed").set_value(seed)  # a seed of each test's own: cache hits are the test's own
    at.selectbox(key="mlp.cfg.param").set_value(param).run()
    at.text_input(key="mlp.cfg.values").set_value(values).run()


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def chart_specs(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("vega_lite_chart")]


def timing_table(at: AppTest):
    return next(df.value for df in at.dataframe if "s_per_epoch" in df.value.columns)


def test_home_page_shows_device_dataset_and_cache():
    at = open_page()
    assert at.title[0].value == "MNIST hyperparameter lab"
    assert any("Training runs on **cpu**" in m.value for m in at.markdown)
    assert any(s.value.startswith("MNIST found in") for s in at.success)
    assert not at.error


def test_home_page_explains_missing_data(tmp_path, monkeypatch):
    from app_pages import shared
    monkeypatch.setenv("MNIST_DATA_DIR", str(tmp_path / "nowhere"))
    shared.dataset.clear()
    try:
        at = open_page()
        assert len(at.error) == 1
        assert "MNIST was not found" in at.error[0].value and "MNIST_DATA_DIR" in at.error[0].value
    finally:
        monkeypatch.undo()
        shared.dataset.clear()


@pytest.mark.parametrize("page, title", [("app_pages/mlp.py", "MLP: compare hyperparameters"),
                                         ("app_pages/cnn.py", "CNN: compare hyperparameters"),
                                         ("app_pages/draw.py", "Draw a digit")])
def test_each_page_renders(page, title):
    at = open_page(page)
    assert at.title[0].value == title
    assert not at.error


def test_mlp_comparison_runs_draws_charts_and_then_comes_from_the_cache():
    at = open_page("app_pages/mlp.py")
    set_mlp(at, "0.01, 0.001", seed=11)
    assert metric(at, "Runs") == "2" and metric(at, "Already cached") == "0 of 2"

    at.button(key="mlp.run").click().run()
    assert not at.exception and not at.error
    specs = chart_specs(at)
    titles = [s.get("title", {}).get("text") if isinstance(s.get("title"), dict) else s.get("title") for s in specs]
    assert {"Train loss (log scale)", "Test loss (log scale)", "Test accuracy", "Final test accuracy"} <= set(titles)
    timing = timing_table(at)
    assert timing["value"].tolist() == ["0.01", "0.001"]
    assert not timing["cached"].any() and (timing["steps_per_epoch"] == 10).all()
    assert at.get("download_button")

    at.button(key="mlp.run").click().run()
    assert metric(at, "Already cached") == "2 of 2" and metric(at, "Estimated time") == "instant"
    assert timing_table(at)["cached"].all()
    assert any("0 run(s) trained" in s.value for s in at.success)


def test_switching_pages_keeps_the_settings():
    at = open_page("app_pages/mlp.py")
    set_mlp(at, "0.05, 0.005", seed=12)
    at.switch_page("app_pages/draw.py").run()
    at.switch_page("app_pages/mlp.py").run()
    assert at.text_input(key="mlp.cfg.values").value == "0.05, 0.005"
    assert at.number_input(key="mlp.cfg.seed").value == 12


def test_switching_pages_keeps_how_the_results_are_viewed():
    at = open_page("app_pages/mlp.py")
    set_mlp(at, "0.01, 0.002", seed=14)
    at.button(key="mlp.run").click().run()
    at.toggle(key="mlp.view.log").set_value(False).run()
    at.selectbox(key="mlp.view.inspect").set_value("0.002").run()
    at.switch_page("app_pages/draw.py").run()
    at.switch_page("app_pages/mlp.py").run()
    assert not at.exception
    assert at.toggle(key="mlp.view.log").value is False
    assert at.selectbox(key="mlp.view.inspect").value == "0.002"
    titles = {s.get("title", {}).get("text") if isinstance(s.get("title"), dict) else s.get("title")
              for s in chart_specs(at)}
    assert "Train loss" in titles and "Train loss (log scale)" not in titles


def test_switching_pages_keeps_the_models_chosen_on_the_draw_page():
    at = open_page("app_pages/mlp.py")
    set_mlp(at, "0.01, 0.002", seed=31)
    at.button(key="mlp.run").click().run()
    at.switch_page("app_pages/draw.py").run()
    newest_first = at.multiselect(key="draw.cfg.runs").value  # the newest runs are chosen by default
    assert len(newest_first) >= 2
    at.multiselect(key="draw.cfg.runs").set_value(newest_first[-1:]).run()
    at.switch_page("app_pages/mlp.py").run()
    at.switch_page("app_pages/draw.py").run()
    assert not at.exception
    assert at.multiselect(key="draw.cfg.runs").value == newest_first[-1:]


def test_a_batch_size_comparison_shows_more_steps_for_smaller_batches():
    at = open_page("app_pages/mlp.py")
    set_mlp(at, "10, 500", seed=13, param="batch_size")
    at.button(key="mlp.run").click().run()
    timing = timing_table(at).set_index("value")
    assert timing.loc["10", "steps_per_epoch"] == 100 and timing.loc["500", "steps_per_epoch"] == 2
    assert timing.loc["10", "s_per_epoch"] > timing.loc["500", "s_per_epoch"]


@pytest.mark.parametrize("widget, value, message", [
    ("values", "0.1, fast", "must be a number"),
    ("values", "", "at least one value"),
    ("lr", 0.0, "learning rate must be a positive number"),
    ("batch_size", 5000, "batch size must be between 1 and the training-set size"),
])
def test_bad_input_shows_an_error_and_nothing_crashes(widget, value, message):
    at = open_page("app_pages/mlp.py")
    at.number_input(key="mlp.cfg.train_size").set_value(1000)
    element = at.text_input(key=f"mlp.cfg.{widget}") if widget == "values" else at.number_input(key=f"mlp.cfg.{widget}")
    element.set_value(value).run()
    assert not at.exception
    assert any(message in e.value for e in at.error), [e.value for e in at.error]
    assert not at.get("vega_lite_chart")


def test_a_shared_link_shows_the_same_comparison_from_the_cache():
    base = RunConfig(model="mlp", epochs=2, train_size=1000, seed=14)
    link = to_query_params(make_comparison(base, "lr", "0.01, 0.001"))
    first = open_page("app_pages/mlp.py", query=link)
    assert first.text_input(key="mlp.cfg.values").value == "0.01, 0.001"
    assert first.number_input(key="mlp.cfg.seed").value == 14
    assert not first.get("vega_lite_chart")  # nothing cached: a link alone trains nothing
    first.button(key="mlp.run").click().run()

    classmate = open_page("app_pages/mlp.py", query=link)
    assert metric(classmate, "Already cached") == "2 of 2"
    assert timing_table(classmate)["cached"].all()
    assert len(chart_specs(classmate)) >= 4


def test_a_bad_link_shows_an_error():
    link = {**to_query_params(make_comparison(RunConfig(), "lr", "0.1")), "lr": "fast"}
    at = open_page("app_pages/mlp.py", query=link)
    assert any("This link does not describe a comparison" in e.value and "lr must be a number" in e.value
               for e in at.error)


def test_cnn_invalid_value_is_an_error_while_the_other_value_runs():
    at = open_page("app_pages/cnn.py")
    at.number_input(key="cnn.cfg.train_size").set_value(200)
    at.number_input(key="cnn.cfg.epochs").set_value(1)
    at.number_input(key="cnn.cfg.padding").set_value(0)
    at.selectbox(key="cnn.cfg.param").set_value("kernel_size").run()
    at.text_input(key="cnn.cfg.values").set_value("3, 28").run()
    assert metric(at, "Runs") == "1"
    [error] = at.error
    assert "filter size = 28" in error.value and "cannot work" in error.value
    flow = next(df.value for df in at.dataframe if "layer" in df.value.columns)
    assert list(flow.columns) == ["layer", "3"] and flow["3"].iloc[1] == "32 × 26 × 26"

    at.button(key="cnn.run").click().run()
    assert not at.exception
    assert timing_table(at)["value"].tolist() == ["3"]
    assert len(at.error) == 1  # still only the 28's error
    assert any("Confusion matrix" in json.dumps(s) for s in chart_specs(at))


def digit_png(mnist, index: int) -> bytes:
    from mnist_core.data import denormalize
    image = (denormalize(mnist.test_x[index, 0]).numpy() * 255).astype(np.uint8)
    big = Image.fromarray(255 - image).resize((200, 200))  # black ink on white paper, as a photo would be
    buffer = io.BytesIO()
    big.save(buffer, format="PNG")
    return buffer.getvalue()


def test_draw_page_trains_a_starter_and_reads_an_uploaded_digit(mnist, tmp_path, monkeypatch):
    from app_pages import shared
    monkeypatch.setattr("mnist_core.cache.CACHE_DIR", tmp_path)  # an empty cache: the page offers a starter model
    shared.run_cache.clear()
    try:
        at = open_page("app_pages/draw.py")
        assert any("No trained model yet" in i.value for i in at.info)
        at.button(key="draw.train_starter").click().run()
        assert not at.exception
        assert len(at.multiselect(key="draw.cfg.runs").value) == 1
        assert any("Draw a digit on the black square" in i.value for i in at.info)

        at.file_uploader[0].set_value(("not-a-digit.png", b"hello", "image/png")).run()
        assert any("not an image that can be read" in e.value for e in at.error)

        index = next(i for i in range(100) if int(mnist.test_y[i]) == 7)
        at.file_uploader[0].set_value(("seven.png", digit_png(mnist, index), "image/png")).run()
        assert not at.error
        [reading] = [m for m in at.metric if m.label == "Reads"]
        assert reading.value == "7"
    finally:
        monkeypatch.undo()
        shared.run_cache.clear()


def test_hosted_mode_refuses_a_request_over_the_cap_and_trains_nothing(monkeypatch):
    from app_pages import shared
    monkeypatch.setenv("MNIST_LAB_HOSTED", "1")
    monkeypatch.setenv("MNIST_LAB_MAX_REQUEST_SECONDS", "1")  # 2 runs x 100 epochs x 1000 images: minutes on a CPU
    for resource in (shared.hosting, shared.run_cache, shared.training_slots):
        resource.clear()
    try:
        at = open_page("app_pages/mlp.py")
        set_mlp(at, "0.02, 0.002", seed=12)
        at.number_input(key="mlp.cfg.epochs").set_value(100).run()
        at.button(key="mlp.run").click().run()
        assert not at.exception
        assert any("allows 1 s per request" in e.value and "fewer epochs" in e.value for e in at.error)
        assert metric(at, "Already cached") == "0 of 2"
    finally:
        monkeypatch.undo()
        for resource in (shared.hosting, shared.run_cache, shared.training_slots):
            resource.clear()
