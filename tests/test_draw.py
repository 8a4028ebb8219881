"""The Draw page: it asks the best cached run of each kind by default (not the newest, which may be a bad
one), shows every model's ten probabilities with the "100% sure" note, no delta arrow, and answers an
upload with class names, Fashion-MNIST's included, in the student's language.

Real trainings (small subsets) fill a cache of the test's own; AppTest runs the page in this process."""
from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from mnist_core import RunConfig
from mnist_core.cache import RunCache
from mnist_core.data import DATASETS, denormalize
from mnist_core.evaluate import best_runs
from mnist_core.i18n import Translator
from mnist_core.results import EpochMetrics, RunResult
from mnist_core.sweep import run_sweep

APP = "../app.py"
TIMEOUT = 120


def a_run(model: str, dataset: str, accuracy: float, created: float, status: str = "ok") -> RunResult:
    metrics = EpochMetrics(1, 0.5, accuracy, 0.5, accuracy, 1.0, 1000.0)
    return RunResult(RunConfig(model=model, dataset=dataset, seed=int(1000 * accuracy)), status, [metrics], 1.0, 10,
                     "cpu", key=f"{model}-{dataset}-{accuracy}", created=created)


def test_best_runs_are_the_most_accurate_of_each_kind_not_the_newest():
    runs = [a_run("mlp", "mnist", 0.22, created=9),           # the newest: a bad run of some comparison
            a_run("cnn", "mnist", 0.99, created=8, status="diverged"),
            a_run("mlp", "mnist", 0.97, created=1), a_run("mlp", "mnist", 0.95, created=2),
            a_run("cnn", "mnist", 0.98, created=3), a_run("mlp", "fashion-mnist", 0.85, created=7)]
    assert [(r.config.model, r.final.test_acc) for r in best_runs(runs)] == [("mlp", 0.97), ("cnn", 0.98)]
    # the Draw page is for digits, but with only Fashion-MNIST models it still offers them
    fashion = [a_run("cnn", "fashion-mnist", 0.80, 1), a_run("mlp", "fashion-mnist", 0.85, 2)]
    assert [r.config.model for r in best_runs(fashion)] == ["mlp", "cnn"]
    assert best_runs([]) == []
    # other kinds of network (a stride-5 CNN, sigmoid MLPs) are shown too, the best first, at most four
    kinds = [a_run("cnn", "mnist", 0.96, 1), a_run("cnn", "mnist", 0.91, 2), a_run("mlp", "mnist", 0.94, 3),
             a_run("mlp", "mnist", 0.93, 4), a_run("mlp", "mnist", 0.80, 5)]
    kinds[1].config = kinds[1].config.replace(stride=5)
    kinds[3].config = kinds[3].config.replace(activations=("sigmoid", "sigmoid"))
    kinds[4].config = kinds[4].config.replace(activations=("relu", "sigmoid"))
    assert [r.final.test_acc for r in best_runs(kinds)] == [0.94, 0.93, 0.96, 0.91]


def png_of(image: np.ndarray) -> bytes:
    """A 28x28 image in [0, 1] as black ink on white paper, 200x200, the way a photo would come."""
    big = Image.fromarray(255 - (image * 255).astype(np.uint8)).resize((200, 200))
    buffer = io.BytesIO()
    big.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def draw_cache(tmp_path_factory, mnist, fashion):
    """A cache with a good MLP, a CNN, a Fashion-MNIST MLP and, newest, a poor MLP (100 images)."""
    root = tmp_path_factory.mktemp("draw-cache")
    cache = RunCache(root / "runs")
    quick = dict(epochs=1, test_size=500, seed=3)
    good_mlp, cnn, poor_mlp = (RunConfig(model="mlp", train_size=3000, **quick),
                               RunConfig(model="cnn", train_size=600, **quick),
                               RunConfig(model="mlp", train_size=100, lr=0.0001, **quick))
    fashion_mlp = RunConfig(model="mlp", dataset="fashion-mnist", train_size=3000, **quick)
    [good, conv] = run_sweep([good_mlp, cnn], mnist, cache)
    [cloth] = run_sweep([fashion_mlp], fashion, cache)
    [poor] = run_sweep([poor_mlp], mnist, cache)
    assert poor.final.test_acc < good.final.test_acc - 0.1  # the premise: the newest run is the worse MLP
    return root, {"mlp": good.key, "cnn": conv.key, "fashion": cloth.key, "poor": poor.key}


@pytest.fixture
def draw_page(draw_cache, monkeypatch):
    """A fresh server (its cache: draw_cache) and a browser session on the Draw page."""
    from app_pages import shared
    root, keys = draw_cache
    monkeypatch.setattr("mnist_core.cache.CACHE_DIR", root)
    for resource in (shared.run_cache, shared.job_service):
        resource.clear()

    def open_draw(lang: str = "en") -> AppTest:
        at = AppTest.from_file(APP, default_timeout=TIMEOUT)
        at.run()
        at.switch_page("app_pages/draw.py")
        at.query_params["lang"] = lang
        at.run()
        assert not at.exception, at.exception
        return at

    yield open_draw, keys
    monkeypatch.undo()
    for resource in (shared.run_cache, shared.job_service):
        resource.clear()


def probability_specs(at: AppTest) -> list[dict]:
    specs = [json.loads(chart.proto.spec) for chart in at.get("vega_lite_chart")]
    return [s for s in specs if "probability" in json.dumps(s.get("layer", [{}])[0].get("encoding", {}))]


def test_the_page_asks_the_best_mlp_and_cnn_and_shows_all_ten_probabilities(draw_page, mnist):
    open_draw, keys = draw_page
    at = open_draw()
    assert at.multiselect(key="draw.cfg.runs").value == [keys["mlp"], keys["cnn"]]  # not the newest, poor MLP
    seven = next(i for i in range(100) if int(mnist.test_y[i]) == 7)
    at.file_uploader[0].set_value(("seven.png", png_of(denormalize(mnist.test_x[seven, 0]).numpy()), "image/png"))
    at.run()
    assert not at.exception and not at.error
    readings = [m for m in at.metric if m.label == "Reads"]
    assert len(readings) == 2 and all(m.value in DATASETS["mnist"].classes for m in readings)
    assert all(not m.proto.delta for m in readings)  # no meaningless arrow
    assert sum(bool(re.match(r"\d+% sure · ", c.value)) for c in at.caption) == 2  # "100% sure · <the run>"
    specs = probability_specs(at)
    assert len(specs) >= 2
    for spec in specs:
        rows = spec["layer"][0]["encoding"]["y"]
        assert rows["axis"]["values"] == list(range(10))  # every class labelled
    notes = " ".join(m.value for e in at.expander for m in e.markdown)
    assert "Softmax" in notes and "normal(0, 1)" in notes  # why a model can read "100% sure"
    preview = [c for image in at.get("image") for c in image.captions if c.startswith("What the models see")]
    assert preview == ["What the models see: 28×28, from seven.png"]


def test_an_upload_to_a_fashion_mnist_model_is_answered_with_class_names_in_the_students_language(draw_page,
                                                                                                   fashion):
    open_draw, keys = draw_page
    for lang in ("en", "ko"):
        _ = Translator(lang)
        at = open_draw(lang)
        at.multiselect(key="draw.cfg.runs").set_value([keys["fashion"]]).run()
        trouser = next(i for i in range(200) if int(fashion.test_y[i]) == 1)
        at.file_uploader[0].set_value(("trouser.png", png_of(denormalize(fashion.test_x[trouser, 0]).numpy()),
                                       "image/png")).run()
        assert not at.exception and not at.error
        names = [_(c) for c in DATASETS["fashion-mnist"].classes]
        [reading] = [m for m in at.metric if m.label == _("Reads")]
        assert reading.value in names
        [spec] = probability_specs(at)[:1]
        labels = spec["layer"][0]["encoding"]["y"]["axis"]["labelExpr"]
        assert all(json.dumps(n, ensure_ascii=False) in labels for n in names)
    assert "바지" in labels  # Korean names on the axis, not the English ones

    at = open_draw()  # a Fashion-MNIST and an MNIST model: inside, one dataset at a time
    at.multiselect(key="draw.cfg.runs").set_value([keys["fashion"], keys["mlp"]]).run()
    assert not at.exception
    assert any(c.value.startswith("Only the Fashion-MNIST models are shown here") for c in at.caption)


def test_a_file_that_is_not_an_image_gets_one_translated_sentence(draw_page):
    open_draw, _keys = draw_page
    at = open_draw("ko")
    at.file_uploader[0].set_value(("notes.png", b"hello", "image/png")).run()
    assert not at.exception
    expected = "notes.png 파일을 이미지로 읽을 수 없습니다. 숫자 하나를 찍은 PNG나 JPEG를 올려 주세요."
    assert [e.value for e in at.error] == [expected]


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("size, english, korean", [
    ((6000, 6000), "The image is 6000x6000 pixels, too large; crop it to the digit.", "너무 큽니다"),
    ((1, 1), "The image is 1x1 pixels, too small to hold a digit; upload one at least 8 pixels on each side.",
     "너무 작습니다"),
])
def test_an_image_of_the_wrong_size_is_told_its_size_not_that_it_cannot_be_read(draw_page, size, english, korean):
    open_draw, _keys = draw_page
    upload = ("digit.png", png_bytes(Image.new("L", size, 255)), "image/png")  # a valid PNG
    at = open_draw()
    at.file_uploader[0].set_value(upload).run()
    assert [e.value for e in at.error] == [english]
    at = open_draw("ko")
    at.file_uploader[0].set_value(upload).run()
    assert len(at.error) == 1 and korean in at.error[0].value and f"{size[0]}x{size[1]}" in at.error[0].value


def test_a_blank_upload_is_told_no_digit_was_found(draw_page):
    open_draw, _keys = draw_page
    at = open_draw()
    at.file_uploader[0].set_value(("blank.png", png_bytes(Image.new("L", (200, 200), 255)), "image/png")).run()
    assert not at.error and any(w.value.startswith("No digit found in blank.png") for w in at.warning)


def test_the_seeds_init_is_named_as_the_reason_for_certainty_only_for_models_that_use_it(draw_page, mnist):
    open_draw, keys = draw_page
    seven = next(i for i in range(100) if int(mnist.test_y[i]) == 7)
    upload = ("seven.png", png_of(denormalize(mnist.test_x[seven, 0]).numpy()), "image/png")
    for chosen, uses_it in (([keys["cnn"]], False), ([keys["mlp"]], True)):  # the CNN never uses that init
        at = open_draw()
        at.multiselect(key="draw.cfg.runs").set_value(chosen).run()
        at.file_uploader[0].set_value(upload).run()
        sure = [c.value for c in at.caption if "models give one class" in c.value]
        named = [c for c in sure if "normal(0, 1) weight init" in c]
        assert (named == sure) if uses_it else not named, sure


def test_a_tall_seven_keeps_clear_of_the_frame_in_the_28x28_preview():
    # A canvas drawing (white strokes on black, 280x280 RGBA) of a "7" from the top to the bottom edge: its
    # mass is high, in the bar, so centring the mass alone would push the foot of the stem onto row 27.
    from PIL import ImageDraw
    from mnist_core.preprocess import to_mnist
    im = Image.new("RGBA", (280, 280), (0, 0, 0, 255))
    pen = ImageDraw.Draw(im)
    pen.line([(60, 20), (220, 20)], fill=(255, 255, 255, 255), width=22)
    pen.line([(220, 20), (120, 270)], fill=(255, 255, 255, 255), width=22)
    digit = to_mnist(np.asarray(im))
    rows = np.nonzero(digit.max(axis=1) > 0.05)[0]
    assert rows.max() - rows.min() >= 17  # still scaled to MNIST's 20-pixel box
    assert rows.min() >= 1 and rows.max() <= 26  # one pixel clear of the frame, as MNIST's own 7s
    assert not digit[[0, 27], :].any() and not digit[:, [0, 27]].any()
