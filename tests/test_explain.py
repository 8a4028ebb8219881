"""Inside the models: the hooks see what shape_flow promises and what conv2d computes, dead and saturated
units are counted as constructed, and `python -m mnist_core explain` writes its pictures and one-line errors."""
from __future__ import annotations

import io
import json
import threading

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from torch.nn import functional as F

from mnist_core import RunCache, RunConfig, run_sweep
from mnist_core.cli import main
from mnist_core.data import normalize, synthetic_data
from mnist_core.evaluate import load_model
from mnist_core.explain import (activation_histogram, as_input, capture, first_layer_filters, grid, hidden_stats,
                                layer_shapes, layer_stats, most_activated_units)
from mnist_core.explain_charts import SHARE_TITLES, activation_histogram_chart, share_frame, unit_share_chart
from mnist_core.i18n import Translator
from mnist_core.models import build_model, shape_flow

TINY_CNN = RunConfig(model="cnn", epochs=1, train_size=256, test_size=100, batch_size=32, seed=5)


@pytest.fixture(scope="module")
def tiny_runs():
    """The seed's CNN, at stride 5 and with 10x10 filters, a few steps on synthetic digits, in the tests' cache."""
    data = synthetic_data(n_train=256, n_test=100)
    results = run_sweep([TINY_CNN, TINY_CNN.replace(stride=5), TINY_CNN.replace(kernel_size=10)], data, RunCache())
    return dict(zip(["seed", "stride 5", "filter 10"], results))


def a_seven(size: int = 200) -> Image.Image:
    """A "7" in black ink on white paper, as a student would photograph one."""
    im = Image.new("L", (size, size), 255)
    pen = ImageDraw.Draw(im)
    pen.line([(50, 40), (150, 40), (90, 170)], fill=0, width=14)
    return im


@pytest.mark.parametrize("name", ["seed", "stride 5", "filter 10"])
def test_captured_maps_have_the_names_and_shapes_of_shape_flow(tiny_runs, name):
    run = tiny_runs[name]
    config = run.config
    model = load_model(config, RunCache().weights(run.key))
    seen = capture(model, as_input(np.random.default_rng(0).random((3, 28, 28), dtype=np.float32)))
    assert layer_shapes(seen) == [(step.layer, step.shape) for step in shape_flow(config)]
    assert all(len(a) == 3 for a in seen.layers.values())  # the batch stays the first axis
    assert seen.probabilities.shape == (3, 10)
    np.testing.assert_allclose(seen.probabilities.sum(axis=1), 1, rtol=1e-5)


@pytest.mark.parametrize("changes", [{}, {"stride": 5}, {"kernel_size": 10, "padding": 0}])
def test_the_first_maps_are_conv2d_by_hand_with_the_layers_weights(changes):
    config = TINY_CNN.replace(**changes)
    torch.manual_seed(1)
    model = build_model(config).eval()
    x = as_input(np.random.default_rng(1).random((2, 28, 28), dtype=np.float32))
    seen = capture(model, x)
    conv = model.features[0]
    by_hand = F.conv2d(x, conv.weight, conv.bias, stride=config.stride, padding=config.padding)
    torch.testing.assert_close(torch.from_numpy(seen.pre_activation["conv1"]), by_hand)
    torch.testing.assert_close(torch.from_numpy(seen.layers["conv1"]), torch.relu(by_hand))
    torch.testing.assert_close(torch.from_numpy(seen.layers["pool1"]), F.max_pool2d(torch.relu(by_hand), 2, 2))
    torch.testing.assert_close(torch.from_numpy(first_layer_filters(model)), conv.weight[:, 0].detach())


def test_a_forward_pass_in_another_thread_during_a_capture_is_not_captured():
    # The app shares each model between sessions: another student's prediction may run while hooks are on.
    model = build_model(TINY_CNN).eval()
    mine, theirs = (as_input(np.random.default_rng(seed).random((28, 28), dtype=np.float32)) for seed in (1, 2))
    alone = capture(model, mine)

    answers = []

    def predict_theirs():
        with torch.inference_mode():
            answers.append(model(theirs))

    def someone_else_predicts(module, inputs):  # in the middle of our pass, after our conv1 hook ran
        if threading.current_thread() is threading.main_thread():  # (their pass comes here too)
            other = threading.Thread(target=predict_theirs)
            other.start()
            other.join()

    handle = model.fc2.register_forward_pre_hook(someone_else_predicts)
    try:
        during = capture(model, mine)
    finally:
        handle.remove()
    assert len(answers) == 1  # their pass did run, with our hooks on
    for name in alone.layers:
        np.testing.assert_array_equal(during.layers[name], alone.layers[name])


def two_images() -> torch.Tensor:
    """Image A has its top-left pixel lit, image B does not; nothing else differs."""
    pixels = torch.zeros(2, 1, 28, 28)
    pixels[0, 0, 0, 0] = 1.0
    return normalize(pixels)


def constructed_mlp(activation: str, biases: list[float], pixel_weights: dict[int, float]):
    """An 8-unit MLP whose first hidden units see only a bias, except some that also see the top-left pixel."""
    model = build_model(RunConfig(model="mlp", hidden=8, activations=(activation, "relu"))).eval()
    with torch.no_grad():
        model.fc1.weight.zero_()
        model.fc1.bias.copy_(torch.tensor(biases))
        for unit, w in pixel_weights.items():
            model.fc1.weight[unit, 0] = w
    return model


def test_dead_relu_units_are_counted_as_constructed():
    # units 1, 3, 5, 7 never fire; unit 6 fires on image A only; 0, 2, 4 always
    model = constructed_mlp("relu", [1, -1, 1, -1, 1, -1, -1, -1], {6: 10.0})
    row = hidden_stats(capture(model, two_images())).set_index("layer").loc["hidden1"]
    assert row["activation"] == "relu" and row["units"] == 8
    assert row["dead_units"] == 0.5
    assert row["zero_fraction"] == 9 / 16  # 4 dead units on both images, unit 6 on image B
    assert np.isnan(row["saturated_units"]) and np.isnan(row["saturated_fraction"])


def test_saturated_sigmoid_units_are_counted_as_constructed():
    # units 0-2 sit far out on the flat tails for every image; unit 3 only on image A (sigmoid(0) = 0.5 on B)
    b = -float(normalize(torch.zeros(1))[0])
    model = constructed_mlp("sigmoid", [10, 10, -10, 10 * b, 0, 0, 0, 0], {3: 10.0})
    seen = capture(model, two_images())
    row = hidden_stats(seen).set_index("layer").loc["hidden1"]
    assert row["activation"] == "sigmoid"
    assert row["saturated_units"] == 3 / 8
    assert row["saturated_fraction"] == 7 / 16
    assert np.isnan(row["dead_units"])
    order = most_activated_units(model, seen, top=3)
    assert order["unit"].tolist() == [3, 0, 1] and order["activation"].is_monotonic_decreasing


def test_layer_stats_describe_one_image():
    model = build_model(TINY_CNN).eval()
    seen = capture(model, as_input(np.zeros((28, 28), dtype=np.float32)))
    rows = {r["layer"]: r for r in layer_stats(seen)}
    assert list(rows)[-1] == "probabilities" and rows["probabilities"]["shape"] == [10]
    assert rows["conv1"]["shape"] == [32, 28, 28] and rows["conv1"]["saturated_fraction"] is None
    fc1 = seen.layers["fc1"][0]
    assert rows["fc1"]["zero_fraction"] == pytest.approx(float((fc1 == 0).mean()))
    assert rows["fc1"]["max"] == pytest.approx(float(fc1.max()))


def test_grid_puts_each_map_in_its_own_tile():
    maps = np.zeros((5, 4, 4))
    maps[3] = 1.0  # one bright channel among dark ones
    picture = grid(maps, columns=3)
    # 4x4 maps are scaled 14x to 56 px; 2 rows x 3 columns with 2 px gaps
    assert picture.shape == (2 * 56 + 2, 3 * 56 + 2 * 2, 3)
    bright, dark = picture[58 + 10, 10], picture[10, 10]
    assert bright.tolist() == [253, 231, 37] and dark.tolist() == [68, 1, 84]
    assert picture[58 + 10, 2 * 58 + 10].tolist() == [255, 255, 255]  # the sixth tile is empty


def explain(capsys, *argv):
    code = main(["explain", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_explain_prints_json_and_writes_one_grid_per_layer(capsys, tiny_runs, tmp_path):
    a_seven().save(tmp_path / "seven.png")
    out_dir = tmp_path / "mine" / "inside"  # created when missing
    code, out, err = explain(capsys, "--run", tiny_runs["seed"].key, str(tmp_path / "seven.png"), "--out", str(out_dir),
                             "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [(r["layer"], r["shape"]) for r in rows] == \
        [(s.layer, list(s.shape)) for s in shape_flow(TINY_CNN)] + [("probabilities", [10])]
    assert all({"layer", "shape", "mean", "max", "zero_fraction", "saturated_fraction"} == set(r) for r in rows)
    names = sorted(p.name for p in out_dir.iterdir())
    assert names[:3] == ["00-input-1x28x28.png", "01-conv1-32x28x28.png", "02-pool1-32x14x14.png"]
    assert "filters-conv1-32x3x3.png" in names and len(names) == 12
    with Image.open(out_dir / "01-conv1-32x28x28.png") as im:
        assert im.size == (6 * 56 + 5 * 2, 6 * 56 + 5 * 2)  # 32 maps in 6 columns, each 28 px scaled 2x
    with Image.open(out_dir / "filters-conv1-32x3x3.png") as im:
        assert im.size == (6 * 54 + 5 * 2, 6 * 54 + 5 * 2)  # 3x3 filters scaled 18x
    with Image.open(out_dir / "00-input-1x28x28.png") as im, Image.open(out_dir / "08-fc1-625.png") as fc1:
        assert im.size == (224, 224) and fc1.size == (200, 200)  # a lone map is drawn bigger; 625 units as 25x25

    code, out, _ = explain(capsys, "--run", tiny_runs["stride 5"].key, str(tmp_path / "seven.png"),
                           "--out", str(out_dir / "s5"))
    assert code == 0
    assert out.splitlines()[0].split() == ["layer", "shape", "mean", "max", "zero_fraction", "saturated_fraction"]
    assert "32 x 6 x 6" in out and "128" in out and "pictures in" in out


def test_cli_explain_an_mlp_shows_its_hidden_layers_and_first_layer_weights(capsys, tiny_mlps, tmp_path):
    a_seven().save(tmp_path / "seven.png")
    sigmoid = tiny_mlps[1]
    code, out, err = explain(capsys, "--run", sigmoid.key, str(tmp_path / "seven.png"), "--out", str(tmp_path / "o"),
                             "--json")
    assert code == 0, err
    rows = {r["layer"]: r for r in json.loads(out)}
    assert list(rows) == ["input", "hidden1", "hidden2", "output", "probabilities"]
    assert rows["hidden1"]["shape"] == [256] and 0 <= rows["hidden1"]["saturated_fraction"] <= 1
    assert rows["output"]["saturated_fraction"] is None
    with Image.open(tmp_path / "o" / "weights-hidden1-256x28x28.png") as im:
        assert im.size == (16 * 56 + 15 * 2, 16 * 56 + 15 * 2)  # 256 units' 28x28 weights, 16 by 16, scaled 2x


def test_cli_explain_bad_input_is_one_line_and_exit_2(capsys, tiny_runs, tmp_path):
    a_seven().save(tmp_path / "seven.png")
    Image.new("L", (60, 60), 255).save(tmp_path / "blank.png")
    (tmp_path / "notes.txt").write_text("not a picture")
    key = tiny_runs["seed"].key
    for argv, words in [(["--run", "cnn-0123456789abcdef", str(tmp_path / "seven.png")], "No cached run"),
                        (["--run", "../etc", str(tmp_path / "seven.png")], "is not a run key"),
                        (["--run", key, str(tmp_path / "notes.txt")], "is not an image"),
                        (["--run", key, str(tmp_path / "missing.png")], "No such image file"),
                        (["--run", key, str(tmp_path / "blank.png")], "the image is blank")]:
        code, out, err = explain(capsys, *argv, "--out", str(tmp_path / "out"))
        assert code == 2 and out == "", (argv, out)
        assert err.startswith("error: ") and words in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()  # nothing written for bad input


# -- the app's views ---------------------------------------------------------------------------------

def test_chart_builders_shade_the_sigmoid_tails_and_group_the_shares():
    model = constructed_mlp("sigmoid", [10, 10, -10, 0, 0, 0, 0, 0], {})
    seen = capture(model, two_images())
    histogram = activation_histogram(seen)
    hidden1 = histogram[histogram["layer"] == "hidden1"]
    assert hidden1["share"].sum() == pytest.approx(1.0) and hidden1["start"].min() == 0.0 and hidden1["end"].max() == 1.0
    spec = activation_histogram_chart(hidden1, title="hidden1").to_dict()
    shade, bars = spec["layer"]
    assert shade["mark"]["type"] == "rect" and bars["mark"]["type"] == "bar"
    assert rows_of(spec, shade) == [{"start": 0.0, "end": 0.05}, {"start": 0.95, "end": 1.0}]

    relu = capture(constructed_mlp("relu", [1, -1] * 4, {}), two_images())
    shares = share_frame({"sigmoid": hidden_stats(seen), "relu": hidden_stats(relu)})
    by = shares.set_index(["run", "layer", "measure"])["share"]
    assert by[("sigmoid", "hidden1", SHARE_TITLES["saturated_units"])] == 3 / 8
    assert by[("relu", "hidden1", SHARE_TITLES["dead_units"])] == 0.5
    assert ("sigmoid", "hidden1", SHARE_TITLES["dead_units"]) not in by  # a sigmoid unit cannot die
    spec = unit_share_chart(shares).to_dict()
    assert spec["encoding"]["xOffset"]["field"] == "run" and spec["encoding"]["column"]["field"] == "measure"
    assert spec["encoding"]["color"]["sort"] == ["sigmoid", "relu"]
    korean = unit_share_chart(shares, text=Translator("ko")).to_dict()  # a Korean page's legend and layer names
    assert korean["encoding"]["color"]["title"] == "실행"
    assert {row["layer"] for row in rows_of(korean, korean)} == {"은닉층 1", "은닉층 2"}
    axis = activation_histogram_chart(hidden1, text=Translator("ko")).to_dict()["layer"][1]["encoding"]["x"]["title"]
    assert "시그모이드" in axis and "sigmoid" not in axis


def rows_of(spec: dict, chart: dict) -> list[dict]:
    return spec["datasets"][chart["data"]["name"]]


@pytest.fixture(scope="module")
def tiny_mlps():
    """The seed's MLP with ReLU and with sigmoid units, a few steps on synthetic digits, in the tests' cache."""
    base = RunConfig(model="mlp", init="xavier_uniform", epochs=1, train_size=256, test_size=100, batch_size=32)
    return run_sweep([base, base.replace(activations=("sigmoid", "sigmoid"))], synthetic_data(256, 100), RunCache())


def test_the_draw_page_shows_two_cnns_side_by_side_and_inside_the_mlps(tiny_runs, tiny_mlps):
    from streamlit.testing.v1 import AppTest
    from app_pages import shared
    shared.run_cache.clear()  # the runs above were stored after the app's cache object may have listed the folder
    at = AppTest.from_file("../app.py", default_timeout=120)
    at.run()
    at.switch_page("app_pages/draw.py").run()
    keys = [tiny_runs["seed"].key, tiny_runs["stride 5"].key] + [r.key for r in tiny_mlps]
    at.multiselect(key="draw.cfg.runs").set_value(keys).run()
    png = io.BytesIO()
    a_seven().save(png, format="PNG")
    at.file_uploader[0].set_value(("seven.png", png.getvalue(), "image/png")).run()
    assert not at.exception and not at.error
    assert [h.value for h in at.header] == ["Inside the models"]
    captions = [c for image in at.get("image") for c in image.captions]
    # stride 1 and stride 5, aligned layer by layer: each layer's caption once per run, shapes from shape_flow
    for layer in ("conv1", "pool1", "conv2", "pool2", "conv3", "pool3", "fc1"):
        pair = [c for c in captions if c.startswith(f"{layer} · ")]
        assert len(pair) == 2, (layer, captions)
    assert any(c.startswith("conv1 · 32x28x28") for c in captions)
    assert any(c.startswith("conv1 · 32x6x6") for c in captions)
    assert any("16 most active of 32" in c for c in captions)
    assert sum(c.startswith("conv1 filters · 32x3x3") for c in captions) == 2
    assert sum(c.startswith("Hidden layer 1's weights of the 16 units") for c in captions) == 2
    titles = [json.loads(chart.proto.spec).get("title") for chart in at.get("vega_lite_chart")]
    assert sum(isinstance(t, str) and t.startswith("fc2 · 10 outputs") for t in titles) == 2
    notes = [m.value for m in at.markdown if m.value.startswith("**hidden")]
    assert len(notes) == 4 and notes[0].startswith("**hidden layer 1** (ReLU) · ") and "dead" in notes[0]
    assert notes[1].startswith("**hidden layer 1** (sigmoid) · ") and "saturated" in notes[1]

    at.select_slider(key="draw.cnn.top").set_value("all").run()
    captions = [c for image in at.get("image") for c in image.captions]
    assert not at.exception and not any("most active" in c for c in captions)
    at.segmented_control(key="draw.inside.source").set_value("test").run()
    at.number_input(key="draw.inside.index").set_value(3).run()
    assert not at.exception and not at.error
    captions = [c for image in at.get("image") for c in image.captions]
    assert any(c.startswith("test digit 3, a ") for c in captions)
    assert sum(c.startswith("conv1 · ") for c in captions) == 2


def test_a_cnn_stride_comparison_shows_inside_the_inspected_run_next_to_the_other():
    from streamlit.testing.v1 import AppTest
    at = AppTest.from_file("../app.py", default_timeout=180)
    at.run()
    at.switch_page("app_pages/cnn.py").run()
    at.text_input(key="cnn.cfg.train_size").set_value("200")
    at.text_input(key="cnn.cfg.test_size").set_value("100")
    at.text_input(key="cnn.cfg.epochs").set_value("1")
    at.text_input(key="cnn.cfg.seed").set_value("41")
    at.selectbox(key="cnn.cfg.param").set_value("stride").run()
    at.text_input(key="cnn.cfg.values").set_value("1, 5").run()
    at.button(key="cnn.run").click().run()  # the server's training service trains them; the page reruns after
    from app_pages.shared import job_service
    jobs = [i for ids in at.session_state["lab.jobs"].values() for i in ids]
    assert job_service().wait(jobs, timeout=180)
    at.run()
    assert not at.exception and not at.error
    assert not any(c.startswith("conv1 · ") for image in at.get("image") for c in image.captions)  # off at first
    at.toggle(key="cnn.view.inside").set_value(True).run()
    assert not at.exception and not at.error
    assert at.selectbox(key="cnn.view.inside.other").value == "5"
    captions = [c for image in at.get("image") for c in image.captions]
    assert [c.split(" (")[0] for c in captions if c.startswith("conv1 · ")] == ["conv1 · 32x28x28", "conv1 · 32x6x6"]
    assert "**stride = 1**" in [m.value for m in at.markdown] and "**stride = 5**" in [m.value for m in at.markdown]
